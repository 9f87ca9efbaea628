//! The escape suite: every way out of a VE that a hostile VE root was once seen to use,
//! tried again against real VEs, each asserting containment. These tests stay, so no
//! later change can reopen a hole (README, "Security model").
use std::{
    os::{
        fd::{AsRawFd as _, OwnedFd},
        unix::{fs::MetadataExt as _, process::CommandExt as _},
    },
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use vz_tests::{openpty, VzEnv};

/// A VE from the Debian template (glibc: the test helper runs in it) with the helper.
fn debian_ve(env: &VzEnv, veid: &str, extra: &[&str]) {
    env.debian_template();
    let mut args = vec!["create", veid, "--ostemplate", "debian-12-minbase"];
    args.extend_from_slice(extra);
    env.ok(&args);
    let dest = env.private(veid.parse().unwrap()).join("usr/local/bin/vzt-helper");
    std::fs::copy(vz_tests::bin("vzt-helper"), &dest).expect("install helper");
}

/// Runs the helper in the VE in the background; returns its reply line.
fn helper(env: &VzEnv, veid: &str, name: &str, args: &str) -> String {
    let out = env.private(veid.parse().unwrap()).join(format!("root/{name}.out"));
    let _ = std::fs::remove_file(&out);
    env.ok(&["exec2", veid, &format!("vzt-helper {args} </dev/null >/root/{name}.out 2>&1 &")]);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = std::fs::read_to_string(&out) {
            if s.ends_with('\n') {
                return s.trim().to_string();
            }
        }
        assert!(Instant::now() < end, "no reply from helper {args}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ok COUNT ERRNO` replies.
fn count_errno(reply: &str) -> (u64, i32) {
    let f: Vec<&str> = reply.split_whitespace().collect();
    assert_eq!(f.first(), Some(&"ok"), "{reply}");
    (f[1].parse().unwrap(), f[2].parse().unwrap())
}

/// The `ubc` row of one resource: [held, maxheld, barrier, limit, failcnt].
fn ubc_row(env: &VzEnv, veid: &str, res: &str) -> Vec<u64> {
    let out = env.ok(&["ubc", veid]);
    let line = out
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == res))
        .unwrap_or_else(|| panic!("no {res} row in\n{out}"));
    line.split_whitespace().filter_map(|w| w.parse().ok()).collect()
}

fn held(env: &VzEnv, veid: &str, res: &str) -> u64 {
    let r = ubc_row(env, veid, res);
    // The first row carries the VEID ("101:") too, which does not parse.
    r[0]
}

/// Runs `cmd` as from the admin's shell: the pty `slave` its stdio and controlling terminal.
fn on_admin_terminal(cmd: &mut std::process::Command, slave: &OwnedFd) {
    let s = slave.as_raw_fd();
    // SAFETY: between fork and exec only setsid, ioctl and dup2.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            libc::ioctl(s, libc::TIOCSCTTY, 0);
            for fd in 0..3 {
                libc::dup2(s, fd);
            }
            Ok(())
        });
    }
}

/// The admin types a secret once vzctl has returned: it stays in the admin's terminal, and
/// the VE's reader (writing what it got to `ve_file` in VE 101's root) never sees it.
fn typed_after_reaches_no_ve(env: &VzEnv, master: &OwnedFd, slave: &OwnedFd, ve_file: &str, wait: Duration) {
    // SAFETY: write of a valid buffer to our own pty master.
    unsafe { libc::write(master.as_raw_fd(), b"secret-typed\n".as_ptr().cast(), 13) };
    std::thread::sleep(wait);
    let read = std::fs::read(env.private(101).join(ve_file)).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&read).contains("secret"), "the VE read the admin's typing");
    assert_eq!(pending_input(slave), b"secret-typed\n", "the admin's input went elsewhere");
}

/// What is waiting to be read on a terminal's slave side (what would reach the admin's
/// shell as typed input).
fn pending_input(slave: &OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let mut p = libc::pollfd { fd: slave.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; read into a valid buffer.
        unsafe {
            if libc::poll(&mut p, 1, 100) <= 0 {
                return out;
            }
            let n = libc::read(slave.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
    }
}

#[test]
fn exec_hands_the_ve_no_terminal_fd_or_session_of_the_admin() {
    let env = VzEnv::new("esc-tty");
    debian_ve(&env, "101", &[]);
    env.ok(&["start", "101"]);
    // The VE's root makes its /bin/sh the hostile one.
    // (It acts on `-c evil` only, and is the real shell for everything else the VE runs.)
    env.ok(&[
        "exec2",
        "101",
        "cp /bin/dash /bin/sh.real && ln -sf /usr/local/bin/vzt-helper /bin/sh.evil && mv -f /bin/sh.evil /bin/sh",
    ]);
    let (master, slave) = openpty();
    let mut cmd = env.cmd("vzctl", &["exec2", "101", "evil"]);
    on_admin_terminal(&mut cmd, &slave);
    let t = Instant::now();
    let st = cmd.status().expect("vzctl exec2");
    assert!(st.success(), "{st:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "exec waited on the VE's background process");
    let report = std::fs::read_to_string(env.private(101).join("root/evil.report")).expect("the evil shell ran");
    // Its stdio are pipes; no fd refers to a terminal or any file of the host.
    for l in report.lines().filter(|l| l.starts_with("fd ")) {
        let target = l.split_whitespace().nth(2).unwrap_or("");
        assert!(
            target.starts_with("pipe:") || target.starts_with("/proc/") || target.is_empty(),
            "the VE process holds {l}:\n{report}"
        );
    }
    // TIOCSTI finds no terminal, and the VE has no controlling terminal: /dev/tty is ENXIO.
    for fd in 0..3 {
        assert!(report.contains(&format!("sti {fd} {}", libc::ENOTTY)), "{report}");
    }
    assert!(report.contains(&format!("tty {}", libc::ENXIO)), "{report}");
    assert_eq!(pending_input(&slave), b"", "the VE typed into the admin's terminal");
    // What the admin types after exec returned reaches no VE process.
    typed_after_reaches_no_ve(&env, &master, &slave, "root/evil.typed", Duration::from_secs(4));
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn symlinks_planted_in_the_ve_never_lead_to_host_files() {
    let env = VzEnv::new("esc-link");
    let host_file = env.dir.join("host-secret");
    std::fs::write(&host_file, "host data\n").unwrap();
    let before = std::fs::metadata(&host_file).unwrap();
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    let hf = host_file.display();
    // Over its /dev the VE puts a tmpfs of its own with links to host paths where vzctl
    // used to look: /dev/pts/ptmx, /dev/pts, /dev/shm.
    env.ok(&[
        "exec2",
        "101",
        &format!(
            "mount -t tmpfs none /dev && mkdir /dev/pts && ln -s {hf} /dev/pts/ptmx && ln -s {hf} /dev/ptmx && ln -s / /dev/shm && ln -s /dev/null /dev/null2"
        ),
    ]);
    let o = env.vzctl_on_tty(&["enter", "101"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("ptmx"), "{o:?}");
    // The reports read nothing the VE points at: numpty counts no host file, shmpages is
    // what the VE holds (not the host's disk, as a statfs through /dev/shm -> / would say).
    let r = ubc_row(&env, "101", "shmpages");
    assert!(r[0] < 1024, "shmpages held {} pages: read through the VE's link?", r[0]);
    assert_eq!(held(&env, "101", "numpty"), 0);
    let l = env.vzlist(&["-H", "-o", "ctid,numpty,shmpages", "101"]);
    assert_eq!(l.code, 0, "{l:?}");
    let b = env.cmd("vzubc", &["101"]).output().unwrap();
    assert!(b.status.success(), "{b:?}");
    let after = std::fs::metadata(&host_file).unwrap();
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host data\n");
    assert_eq!((after.mtime(), after.mtime_nsec(), after.ino()), (before.mtime(), before.mtime_nsec(), before.ino()));
    // Live changes to the pty and shm limits reach vzctl's own mounts, or fail plainly;
    // they never act on what the VE planted.
    let s = env.vzctl(&["set", "101", "--numpty", "5"]);
    assert!(s.code == 0 || s.stderr.contains("/dev/pts"), "{s:?}");
    env.ok(&["stop", "--fast", "101"]);
}

fn mount_opts(mountinfo: &str, mnt: &Path) -> String {
    let m = mnt.to_string_lossy();
    mountinfo
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(&*m))
        .map(|l| l.split(' ').nth(5).unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Runs `argv` as host uid:gid (no groups, no capabilities, from before its exec: the
/// path to the program is walked as that user too).
fn as_user(uid: u32, gid: u32, argv: &[&str]) -> std::process::Output {
    Command::new(argv[0]).args(&argv[1..]).uid(uid).gid(gid).output().expect("run as user")
}

#[test]
fn host_users_cannot_reach_ve_files_and_ves_share_no_ids() {
    let env = VzEnv::new("esc-ids");
    env.ok(&["create", "101"]);
    env.ok(&["create", "102"]);
    env.ok(&["start", "101"]);
    env.ok(&["start", "102"]);
    let (u1, g1) = env.ids(101);
    let (u2, g2) = env.ids(102);
    // Ranges of their own: 65536 ids each, apart.
    assert!(u1.abs_diff(u2) >= 65536 && g1.abs_diff(g2) >= 65536, "{u1} {u2} {g1} {g2}");
    // VE 101's root plants a setuid copy of its shell.
    env.ok(&["exec2", "101", "mkdir /tmp/s && cp /bin/busybox /tmp/s/busybox && chmod 4755 /tmp/s/busybox"]);
    let planted = env.root(101).join("tmp/s/busybox");
    assert_eq!(std::fs::metadata(&planted).unwrap().mode() & 0o4000, 0o4000);
    assert_eq!(std::fs::metadata(&planted).unwrap().uid(), u1);
    // 1. Other host users cannot get to any VE's files: the directories holding VE roots
    //    and private areas are root's, 0700.
    for dir in [env.root(101).parent().unwrap().to_path_buf(), env.private(101).parent().unwrap().to_path_buf()] {
        let md = std::fs::metadata(&dir).unwrap();
        assert_eq!((md.uid(), md.mode() & 0o777), (0, 0o700), "{}", dir.display());
    }
    for p in [planted.clone(), env.private(101).join("tmp/s/busybox")] {
        let e = Command::new(&p).args(["id", "-u"]).uid(65534).gid(65534).output().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "nobody reached {}: {e}", p.display());
    }
    // 2. What the host sees of a VE's root is nosuid,nodev: even reached some other way
    //    (here a bind mount of the test's own, which keeps those flags), a planted setuid
    //    file gives nobody the VE root's id.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let opts = mount_opts(&mi, &env.root(101));
    assert!(opts.contains("nosuid") && opts.contains("nodev"), "VE_ROOT mounted {opts}");
    let open_dir = env.dir.join("open");
    std::fs::create_dir_all(&open_dir).unwrap();
    std::fs::set_permissions(&env.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&open_dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let _bind = BindGuard::new(&env.root(101), &open_dir);
    let o = as_user(65534, 65534, &[&open_dir.join("tmp/s/busybox").to_string_lossy(), "id", "-u"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "65534", "setuid took effect: {o:?}");
    // 3. A process with VE 101 root's host id is nobody to VE 102: it cannot signal its
    //    init or write its files.
    let init2 = env.init_pid(102).to_string();
    let k = as_user(u1, g1, &["kill", "-0", &init2]);
    assert!(!k.status.success(), "VE 101's uid signalled VE 102's init: {k:?}");
    let _bind2 = BindGuard::new(&env.root(102), &env.dir.join("open2"));
    let target = env.dir.join("open2/etc/hostname");
    let w = as_user(u1, g1, &["sh", "-c", &format!("echo owned >> {}", target.display())]);
    assert!(!w.status.success(), "VE 101's uid wrote VE 102's file: {w:?}");
    assert!(!std::fs::read_to_string(&target).unwrap().contains("owned"));
    env.ok(&["stop", "--fast", "101"]);
    env.ok(&["stop", "--fast", "102"]);
}

/// A bind mount the test makes (and takes down on drop).
struct BindGuard(std::path::PathBuf);

impl BindGuard {
    fn new(src: &Path, dst: &Path) -> Self {
        std::fs::create_dir_all(dst).unwrap();
        let st = Command::new("mount").arg("--bind").arg(src).arg(dst).status().unwrap();
        assert!(st.success());
        Self(dst.to_path_buf())
    }
}

impl Drop for BindGuard {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn per_user_kernel_counts_are_each_ves_own() {
    let env = VzEnv::new("esc-ucount");
    debian_ve(&env, "101", &[]);
    debian_ve(&env, "102", &[]);
    env.ok(&["start", "101"]);
    env.ok(&["start", "102"]);
    // The VE's user namespace belongs to its own host uid, not to host root.
    let init = env.init_pid(101);
    let ns = std::fs::File::open(format!("/proc/{init}/ns/user")).unwrap();
    let mut owner: libc::uid_t = 0;
    const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;
    // SAFETY: ioctl on an nsfs fd with a pointer to a uid_t.
    assert_eq!(unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_OWNER_UID, &mut owner) }, 0);
    assert_eq!(owner, env.ids(101).0);
    // VE 101 takes every inotify instance it may have, and keys until its quota.
    let max_inotify: u64 =
        std::fs::read_to_string("/proc/sys/user/max_inotify_instances").unwrap().trim().parse().unwrap();
    let (n, e) = count_errno(&helper(&env, "101", "ino", "inotify 100000 60"));
    assert!(n > 0 && n <= max_inotify && e == libc::EMFILE, "VE 101's inotify instances: {n} {e}");
    let (k, e) = count_errno(&helper(&env, "101", "keys", "keys 100000 60"));
    assert!(k > 0 && e == libc::EDQUOT, "VE 101's keys: {k} {e}");
    // Host root still makes inotify instances; VE 102 makes both.
    // SAFETY: plain syscall; closed right after.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(fd >= 0, "host root lost its inotify instances to a VE: errno {}", std::io::Error::last_os_error());
    // SAFETY: our own fd.
    unsafe { libc::close(fd) };
    assert_eq!(count_errno(&helper(&env, "102", "ino", "inotify 5 0")), (5, 0));
    assert_eq!(count_errno(&helper(&env, "102", "keys", "keys 5 0")), (5, 0));
    env.ok(&["stop", "--fast", "101"]);
    env.ok(&["stop", "--fast", "102"]);
}

/// A mount option of the VE's mount at `mnt`, as its init sees it.
fn ve_mount_opts(env: &VzEnv, veid: u32, mnt: &str) -> String {
    let mi = std::fs::read_to_string(format!("/proc/{}/mountinfo", env.init_pid(veid))).unwrap();
    // The super options follow the " - fstype source " part.
    mi.lines()
        .rfind(|l| l.split(' ').nth(4) == Some(mnt))
        .and_then(|l| l.split(" - ").nth(1))
        .map(|s| s.split(' ').nth(2).unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn limits_cannot_be_lifted_from_inside() {
    let env = VzEnv::new("esc-lift");
    debian_ve(&env, "101", &[]);
    env.ok(&["set", "101", "--numpty", "4", "--shmpages", "1024", "--save"]);
    env.ok(&["start", "101"]);
    let (pts, shm) = (ve_mount_opts(&env, 101, "/dev/pts"), ve_mount_opts(&env, 101, "/dev/shm"));
    // numpty 4, plus the console's pty (the host's).
    assert!(pts.contains("max=5") && shm.contains("size=4096k"), "{pts} / {shm}");
    // Remounting with other options, or unmounting, is refused.
    for cmd in [
        "mount -o remount,max=1000 /dev/pts",
        "mount -o remount,size=2g /dev/shm",
        "umount /dev/pts",
        "umount -l /dev/shm",
    ] {
        let o = env.vzctl(&["exec2", "101", cmd]);
        assert_ne!(o.code, 0, "VE root could: {cmd}");
    }
    assert_eq!(ve_mount_opts(&env, 101, "/dev/pts"), pts);
    assert_eq!(ve_mount_opts(&env, 101, "/dev/shm"), shm);
    // Its /dev/shm still ends at 4 MiB.
    let dd = env.vzctl(&["exec2", "101", "dd if=/dev/zero of=/dev/shm/x bs=1M count=8"]);
    assert_ne!(dd.code, 0, "{dd:?}");
    env.ok(&["exec2", "101", "rm -f /dev/shm/x"]);
    // What it makes beside them is counted: a devpts instance of its own...
    env.ok(&["exec2", "101", "mkdir -p /mnt/pts && mount -t devpts -o newinstance,ptmxmode=0666 devpts /mnt/pts"]);
    assert_eq!(count_errno(&helper(&env, "101", "pty", "ptys /mnt/pts/ptmx 6 60")), (6, 0));
    assert!(held(&env, "101", "numpty") >= 6, "ptys of the VE's own devpts not counted");
    // ...64 MiB of SysV shared memory in a nested IPC namespace (its own refuses it: its
    // kernel.shmall is the limit), and a tmpfs of its own.
    let before = held(&env, "101", "shmpages");
    assert_eq!(helper(&env, "101", "shm", "shm 64 60"), format!("err {}", libc::ENOSPC));
    let o = env.vzctl(&["exec2", "101", "unshare -i vzt-helper shm 64 60 </dev/null >/root/shm2.out 2>&1 &"]);
    assert_eq!(o.code, 0, "{o:?}");
    env.ok(&[
        "exec2",
        "101",
        "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && dd if=/dev/zero of=/mnt/t/x bs=1M count=8 2>/dev/null",
    ]);
    let end = Instant::now() + Duration::from_secs(20);
    let mut now = 0;
    while Instant::now() < end {
        now = held(&env, "101", "shmpages");
        if now >= before + 16384 + 2048 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(now >= before + 16384 + 2048, "shmpages held {before} -> {now}: nested instances not counted");
    env.ok(&["stop", "--fast", "101"]);
}

/// Runs vzctl and returns its output and how long it took, killing it after `max`.
fn timed(env: &VzEnv, args: &[&str], max: Duration) -> (vz_tests::Out, Duration) {
    let t = Instant::now();
    let mut c =
        env.cmd("vzctl", args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    loop {
        if let Some(_st) = c.try_wait().unwrap() {
            return (vz_tests::Out::of(c.wait_with_output().unwrap()), t.elapsed());
        }
        if t.elapsed() > max {
            let _ = c.kill();
            let out = c.wait_with_output().unwrap();
            panic!("vzctl {args:?} hung for {max:?}: {}", String::from_utf8_lossy(&out.stdout));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_wait_on_a_ve_ends() {
    let env = VzEnv::new("esc-hang");
    let conf = env.dir.join("conf/vz.conf");
    let text = std::fs::read_to_string(&conf).unwrap().replace("STOP_TIMEOUT=\"10\"", "STOP_TIMEOUT=\"3\"");
    std::fs::write(&conf, text).unwrap();
    env.ok(&["create", "101"]);
    // A FIFO as /etc/hostname: start and set --hostname go on without it.
    let fifo = std::ffi::CString::new(env.private(101).join("etc/hostname").to_string_lossy().as_bytes()).unwrap();
    std::fs::remove_file(env.private(101).join("etc/hostname")).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let (o, t) = timed(&env, &["start", "101"], Duration::from_secs(30));
    assert_eq!(o.code, 0, "{o:?}");
    assert!(t < Duration::from_secs(10), "start took {t:?}");
    assert_eq!(env.ok(&["exec2", "101", "hostname"]).trim(), "localhost");
    env.ok(&["exec2", "101", "rm /etc/hostname && mkfifo /etc/hostname && rm /etc/hosts && mkfifo /etc/hosts"]);
    let (o, t) = timed(&env, &["set", "101", "--hostname", "calm.test"], Duration::from_secs(30));
    assert_eq!(o.code, 0, "{o:?}");
    assert!(t < Duration::from_secs(10), "set took {t:?}");
    assert_eq!(env.ok(&["exec2", "101", "hostname; cat /etc/hostname"]), "calm.test\ncalm.test\n");
    // exec does not wait for a background process that keeps its output open.
    let (o, t) = timed(&env, &["exec", "101", "sleep 100 &"], Duration::from_secs(30));
    assert_eq!(o.code, 0, "{o:?}");
    assert!(t < Duration::from_secs(5), "exec waited {t:?} for a background process");
    // A /bin/sh that never returns: stop still stops, within its timeouts.
    env.ok(&[
        "exec2",
        "101",
        "printf '#!/bin/ash\\ntrap \"\" TERM INT HUP\\nwhile :; do sleep 1; done\\n' > /bin/sh.new && chmod 755 /bin/sh.new && mv /bin/sh.new /bin/sh",
    ]);
    let (o, t) = timed(&env, &["stop", "101"], Duration::from_secs(60));
    assert_eq!(o.code, 0, "{o:?}");
    assert!(t < Duration::from_secs(20), "stop took {t:?}");
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist unmounted down\n");
    // stop --fast stops the VE even while another vzctl holds its lock.
    std::fs::remove_file(env.private(101).join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("/bin/busybox", env.private(101).join("bin/sh")).unwrap();
    env.ok(&["start", "101"]);
    let lock = std::fs::OpenOptions::new().read(true).write(true).open(env.dir.join("lock/101.lck")).unwrap();
    // SAFETY: flock on our own open file (the test holds the VE's lock).
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let (o, t) = timed(&env, &["stop", "--fast", "101"], Duration::from_secs(60));
    assert_eq!(o.code, 0, "{o:?}");
    assert!(t < Duration::from_secs(30), "stop --fast took {t:?}");
    assert!(o.stderr.contains("holds container 101's lock"), "{o:?}");
    assert!(env.cg().procs(101).is_empty(), "the VE still runs");
    drop(lock);
    // The next command finishes the cleanup.
    let o = env.vzctl(&["stop", "101"]);
    assert_eq!(o.code, 31, "{o:?}");
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist unmounted down\n");
    assert!(env.cgroup_dirs().is_empty() && env.mounts().is_empty());
}

/// Reads a VE's live limit record from its pins.
fn bpf_limit(env: &VzEnv, veid: u32, res: u32) -> vz_common::UbcLimit {
    let b = vz::Bpf::open_existing(&env.bpf_root).unwrap();
    b.limits(env.cg().ve_id(veid).unwrap()).unwrap().res[res as usize]
}

#[test]
fn set_is_all_or_nothing_and_its_arithmetic_never_overflows() {
    use vz_common::res::{NUMTCPSOCK, PHYSPAGES};
    let env = VzEnv::new("esc-set");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    let mem = || {
        let d = env.cg().controller_dir(101, "memory").unwrap();
        let f = if d.join("memory.limit_in_bytes").exists() { "memory.limit_in_bytes" } else { "memory.max" };
        std::fs::read_to_string(d.join(f)).unwrap().trim().to_string()
    };
    let (tcp0, phys0, mem0) = (bpf_limit(&env, 101, NUMTCPSOCK), bpf_limit(&env, 101, PHYSPAGES), mem());
    // --ram 0 is refused before anything changes.
    env.vzctl(&["set", "101", "--ram", "0", "--numtcpsock", "5"]).one_line_error("vzctl", 21, "'0'");
    assert_eq!(bpf_limit(&env, 101, NUMTCPSOCK), tcp0);
    // A limit the kernel refuses (below what the VE holds in tmpfs, with no swap to go
    // to) undoes the steps before it.
    env.ok(&["exec2", "101", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null"]);
    let o = env.vzctl(&["set", "101", "--numtcpsock", "5", "--ram", "8M", "--swap", "0", "--hostname", "never.test"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert_eq!(o.stderr.lines().filter(|l| l.starts_with("vzctl: ")).count(), 1, "{o:?}");
    assert_eq!(bpf_limit(&env, 101, NUMTCPSOCK), tcp0, "numtcpsock changed by a failed set");
    assert_eq!(bpf_limit(&env, 101, PHYSPAGES), phys0);
    assert_eq!(mem(), mem0, "memory limit changed by a failed set");
    assert_ne!(env.ok(&["exec2", "101", "hostname"]).trim(), "never.test");
    env.ok(&["exec2", "101", "rm /dev/shm/fill"]);
    // A live --swap builds on a live --ram, not on the config.
    env.ok(&["set", "101", "--ram", "64M"]);
    env.ok(&["set", "101", "--swap", "32M"]);
    assert_eq!(bpf_limit(&env, 101, PHYSPAGES).limit, 16384);
    assert_eq!(mem(), (64u64 << 20).to_string());
    // A newline cannot get into the config.
    let conf0 = std::fs::read_to_string(env.conf_path(101)).unwrap();
    env.vzctl(&["set", "101", "--description", "one\nTWO=\"x\"", "--save"]).one_line_error("vzctl", 21, "newline");
    assert_eq!(std::fs::read_to_string(env.conf_path(101)).unwrap(), conf0);
    env.ok(&["stop", "--fast", "101"]);
    // vm_overcommit on unlimited RAM saves a value the next start takes.
    env.ok(&["set", "101", "--physpages", "0:unlimited", "--swappages", "0:unlimited", "--save"]);
    env.ok(&["set", "101", "--vm_overcommit", "2", "--save"]);
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    assert!(conf.contains("PRIVVMPAGES=\"9223372036854775807:9223372036854775807\""), "{conf}");
    env.ok(&["start", "101"]);
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn addresses_a_ve_cannot_own_are_refused() {
    let env = VzEnv::new("esc-ip");
    env.ok(&["create", "101", "--ipadd", "10.88.0.1"]);
    env.ok(&["create", "102"]);
    assert!(env.in_netns(&["ip", "addr", "add", "10.88.9.9/32", "dev", "lo"]).status().unwrap().success());
    let conf0 = std::fs::read_to_string(env.conf_path(102)).unwrap();
    for (bad, code, why) in [
        ("0.0.0.0", 21, "this host"),
        ("255.255.255.255", 21, "broadcast"),
        ("127.0.0.5", 21, "loopback"),
        ("::1", 21, "loopback"),
        ("224.0.0.1", 21, "multicast"),
        ("ff02::1", 21, "multicast"),
        ("169.254.0.1", 21, "link-local"),
        ("fe80::1", 21, "link-local"),
        ("240.0.0.1", 21, "reserved"),
        ("::", 21, "unspecified"),
        ("10.1.2.3/garbage", 21, "10.1.2.3/garbage"),
        ("10.1.2.3/33", 21, "10.1.2.3/33"),
        ("10.88.9.9", 21, "address of this host"),
        ("::ffff:10.88.0.1", 78, "container 101"),
    ] {
        env.vzctl(&["set", "102", "--ipadd", bad, "--save"]).one_line_error("vzctl", code, why);
        env.vzctl(&["create", "103", "--ipadd", bad]).one_line_error("vzctl", code, why);
    }
    assert_eq!(std::fs::read_to_string(env.conf_path(102)).unwrap(), conf0, "a refused set changed the config");
    assert!(!env.conf_path(103).exists());
    // A prefix or netmask is taken; a mapped address is stored as the address it maps.
    env.ok(&[
        "set",
        "102",
        "--ipadd",
        "10.88.0.2/24",
        "--ipadd",
        "10.88.0.3/255.255.255.0",
        "--ipadd",
        "::ffff:10.88.0.4",
        "--save",
    ]);
    let conf = std::fs::read_to_string(env.conf_path(102)).unwrap();
    assert!(conf.contains("IP_ADDRESS=\"10.88.0.2 10.88.0.3 10.88.0.4\""), "{conf}");
}

#[test]
fn ve_paths_and_host_interfaces_are_never_another_ones() {
    let env = VzEnv::new("esc-paths");
    env.ok(&["create", "101"]);
    let (r1, p1) = (env.root(101), env.private(101));
    for (opt, path, why) in [
        ("--root", r1.clone(), "another container"),
        ("--private", p1.clone(), "another container"),
        ("--private", p1.join("sub"), "another container"),
        ("--root", Path::new("relative/root").to_path_buf(), "absolute"),
        ("--root", env.private(102), "apart"),
    ] {
        let o = env.vzctl(&["create", "102", opt, &path.to_string_lossy()]);
        o.one_line_error("vzctl", 21, why);
        assert!(!env.conf_path(102).exists());
    }
    // A host interface the admin made is neither taken nor deleted.
    assert!(env.in_netns(&["ip", "link", "add", "admin0", "type", "bridge"]).status().unwrap().success());
    env.ok(&["start", "101"]);
    env.vzctl(&["set", "101", "--netif_add", "eth1,,admin0", "--save"]).one_line_error(
        "vzctl",
        21,
        "exists on the host",
    );
    env.ok(&["stop", "--fast", "101"]);
    // Even named in the config by hand: the start fails (the name is taken) and the
    // admin's interface survives it, and the stop after.
    let c = std::fs::read_to_string(env.conf_path(101)).unwrap();
    std::fs::write(
        env.conf_path(101),
        format!("{c}NETIF=\"ifname=eth1,mac=00:18:51:00:00:01,host_ifname=admin0,host_mac=00:18:51:00:00:02\"\n"),
    )
    .unwrap();
    let _ = env.vzctl(&["start", "101"]);
    let _ = env.vzctl(&["stop", "--fast", "101"]);
    let links = env.in_netns(&["ip", "-o", "link", "show", "admin0"]).output().unwrap();
    assert!(links.status.success(), "vzctl deleted the admin's interface");
    assert!(String::from_utf8_lossy(&links.stdout).contains("admin0"));
}

#[test]
fn ipv6_link_local_and_unspecified_sources_pass_only_for_neighbour_discovery() {
    let env = VzEnv::new("esc-ip6");
    debian_ve(&env, "101", &["--ipadd", "fd90::1", "--ipadd", "10.90.0.1"]);
    env.ok(&["start", "101"]);
    // A UDP listener on the host side (the test's network namespace), for the sources
    // that reach it.
    let netns = std::fs::File::open(format!("/proc/{}/ns/net", env.netns_pid().unwrap())).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let listener = std::thread::spawn(move || {
        // SAFETY: setns on this thread only.
        assert_eq!(unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let s = std::net::UdpSocket::bind("[::]:9301").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        tx.send(()).unwrap();
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(15);
        let mut buf = [0u8; 128];
        while Instant::now() < end {
            if let Ok((_, a)) = s.recv_from(&mut buf) {
                got.push(a.ip().to_string());
            }
        }
        got
    });
    rx.recv().unwrap();
    let drops = || -> u64 {
        let o = env.cmd("vznetstat", &["-v", "101"]).output().unwrap();
        let t = String::from_utf8_lossy(&o.stdout).to_string();
        let n: Vec<u64> = t.lines().nth(1).unwrap().split_whitespace().filter_map(|w| w.parse().ok()).collect();
        n[6]
    };
    // The VE's own link-local address, as its kernel made it.
    let own_ll = env.ok(&["exec2", "101", "ip -o -6 addr show dev venet0 scope link"]);
    let own_ll = own_ll.split_whitespace().nth(3).and_then(|a| a.split('/').next()).unwrap().to_string();
    assert!(own_ll.starts_with("fe80::"), "{own_ll}");
    let send = |src: &str, kind: &str| {
        let r = env.ok(&["exec2", "101", &format!("vzt-helper spoof6 venet0 {src} fe80::1 {kind} 9301")]);
        assert_eq!(r.trim(), "ok", "{src} {kind}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let d0 = drops();
    // The host's own link-local address, and the unspecified one: dropped.
    send("fe80::1", "udp");
    send("::", "udp");
    send("fe80::dead", "udp");
    let d1 = drops();
    assert_eq!(d1 - d0, 3, "spoofed link-local or unspecified UDP passed");
    // Router adverts never pass, even from the VE's own address.
    send(&own_ll, "ra");
    assert_eq!(drops() - d1, 1, "a router advertisement from a VE passed");
    // Neighbour discovery passes from any link-local or the unspecified address, and
    // the VE's own link-local address sends anything.
    let d2 = drops();
    send("fe80::dead", "ns");
    send("::", "ns");
    send(&own_ll, "udp");
    assert_eq!(drops(), d2, "neighbour discovery or the VE's own link-local address was dropped");
    let got = listener.join().unwrap();
    assert!(got.contains(&own_ll), "the VE's own link-local UDP did not arrive: {got:?}");
    assert!(!got.iter().any(|l| l == "fe80::1" || l == "::" || l == "fe80::dead"), "{got:?}");
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn sigkill_at_every_step_of_create_and_start_is_repaired_by_the_next_command() {
    let env = VzEnv::new("esc-kill");
    for step in ["create:private", "create:extract", "create:root", "create:config", "create:done"] {
        let st = env.cmd("vzctl", &["create", "101"]).env("VZ_KILL_AT", step).stdout(Stdio::null()).status().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(libc::SIGKILL), "{step}");
        // The next create finishes or repairs; either way the VEID is usable.
        let o = env.vzctl(&["create", "101"]);
        assert!(o.code == 0 || o.code == 44, "{step}: {o:?}");
        env.ok(&["destroy", "101"]);
        assert!(!env.private(101).exists(), "{step}: private area left");
        env.ok(&["create", "101"]);
        env.ok(&["destroy", "101"]);
    }
    env.ok(&["create", "101"]);
    for step in ["start:mount", "start:cgroup", "start:ubc", "start:hostname", "start:init", "start:net", "start:done"]
    {
        let st = env.cmd("vzctl", &["start", "101"]).env("VZ_KILL_AT", step).stdout(Stdio::null()).status().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(libc::SIGKILL), "{step}");
        // The next command sees the interrupted start and stops what it left.
        assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist unmounted down\n", "{step}");
        assert!(env.cgroup_dirs().is_empty(), "{step}: {:?}", env.cgroup_dirs());
        assert!(env.mounts().is_empty(), "{step}: {:?}", env.mounts());
        assert_eq!(env.ubc_entries(), 0, "{step}");
        env.ok(&["start", "101"]);
        assert!(env.ok(&["exec2", "101", "ip -o link show venet0"]).contains("venet0"), "{step}");
        env.ok(&["stop", "--fast", "101"]);
    }
}

#[test]
fn vzctl_run_from_another_cgroup_finds_the_same_ves() {
    let env = VzEnv::new("esc-cg");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    // A sibling cgroup of the test's own, in every hierarchy: where a login session runs.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mounts = vz::cgroup::Mounts::read().unwrap();
    let mut dirs = Vec::new();
    for (ctrls, path) in vz::cgroup::parse_proc_cgroup(&own) {
        let mnt = if ctrls.is_empty() {
            mounts.cgroup2.as_ref().map(|m| m.path.clone())
        } else {
            mounts
                .v1
                .iter()
                .find(|(c, _)| {
                    let mut a: Vec<&str> = c.split(',').collect();
                    let mut b: Vec<&str> = ctrls.split(',').collect();
                    a.sort();
                    b.sort();
                    a == b
                })
                .map(|(_, m)| m.path.clone())
        };
        if let Some(m) = mnt {
            let d = m.join(path).join(format!("{}-other", env.name));
            if std::fs::create_dir(&d).is_ok() {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    if let Ok(v) = std::fs::read_to_string(d.parent().unwrap().join(f)) {
                        let _ = std::fs::write(d.join(f), v.trim());
                    }
                }
                dirs.push(d);
            }
        }
    }
    let _cleanup = CgGuard(dirs.clone());
    let procs: Vec<std::ffi::CString> = dirs
        .iter()
        .map(|d| std::ffi::CString::new(d.join("cgroup.procs").to_string_lossy().as_bytes()).unwrap())
        .collect();
    let elsewhere = |args: &[&str]| {
        let mut c = env.cmd("vzctl", args);
        let p = procs.clone();
        // SAFETY: open/write/close only, between fork and exec.
        unsafe {
            c.pre_exec(move || {
                for f in &p {
                    let fd = libc::open(f.as_ptr(), libc::O_WRONLY);
                    if fd >= 0 {
                        libc::write(fd, b"0".as_ptr().cast(), 1);
                        libc::close(fd);
                    }
                }
                Ok(())
            });
        }
        vz_tests::Out::of(c.stdin(Stdio::null()).output().unwrap())
    };
    let o = elsewhere(&["exec2", "101", "echo hello"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "hello\n"), "{o:?}");
    let u = elsewhere(&["ubc", "101"]);
    let phys: u64 =
        u.stdout.lines().find(|l| l.contains("physpages")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(phys > 0, "physpages read from the wrong cgroup: {}", u.stdout);
    let s = elsewhere(&["stop", "101"]);
    assert_eq!(s.code, 0, "{s:?}");
    assert!(env.cgroup_dirs().is_empty(), "cgroups left: {:?}", env.cgroup_dirs());
}

struct CgGuard(Vec<std::path::PathBuf>);

impl Drop for CgGuard {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
fn ves_made_before_id_ranges_get_their_own_at_start() {
    let env = VzEnv::new("esc-legacy");
    env.ok(&["create", "101"]);
    env.ok(&["create", "102"]);
    // As older vzbpf made them: no LOCAL_UID in the config, files at vz.conf's base.
    let base = {
        let v = std::fs::read_to_string(env.dir.join("conf/vz.conf")).unwrap();
        v.lines().find_map(|l| l.strip_prefix("LOCAL_UID=")).unwrap().trim_matches('"').parse::<u32>().unwrap()
    };
    for v in [101u32, 102] {
        let (u, g) = env.ids(v);
        let c = std::fs::read_to_string(env.conf_path(v)).unwrap();
        let c: String = c.lines().filter(|l| !l.starts_with("LOCAL_")).map(|l| format!("{l}\n")).collect();
        std::fs::write(env.conf_path(v), c).unwrap();
        let st = Command::new("chown")
            .args(["-hR", "--from", &format!("{u}:{g}"), &format!("{base}:{base}")])
            .arg(env.private(v))
            .status()
            .unwrap();
        assert!(st.success());
    }
    env.ok(&["start", "101"]);
    env.ok(&["start", "102"]);
    let (a, b) = (env.ids(101), env.ids(102));
    assert_ne!(a, b);
    assert!(a.0 == base || b.0 == base, "one keeps vz.conf's range: {a:?} {b:?}");
    for (v, (u, g)) in [(101, a), (102, b)] {
        let md = std::fs::metadata(env.private(v).join("bin/busybox")).unwrap();
        assert_eq!((md.uid(), md.gid()), (u, g), "VE {v}'s files did not move with it");
        assert_eq!(env.ok(&["exec2", &v.to_string(), "id -u; touch /root/x && echo ok"]), "0\nok\n");
    }
    env.ok(&["stop", "--fast", "101"]);
    env.ok(&["stop", "--fast", "102"]);
}

#[test]
fn a_non_root_user_is_told_vzctl_needs_root() {
    let env = VzEnv::new("esc-user");
    // A copy nobody may run (the build tree need not be reachable for other users).
    let exe = env.dir.join("vzctl");
    std::fs::copy(vz_tests::bin("vzctl"), &exe).unwrap();
    std::fs::set_permissions(&env.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(["status", "101"])
        .env("VZ_CONF_DIR", env.dir.join("conf"))
        .output()
        .unwrap();
    vz_tests::Out::of(o).one_line_error("vzctl", 3, "vzctl needs root");
}

#[test]
fn a_ploop_balloon_cannot_be_moved_or_replaced_from_inside() {
    let env = VzEnv::new("esc-balloon");
    let host_dir = env.dir.join("host-dir");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::set_permissions(&host_dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.ok(&["create", "101", "--layout", "ploop", "--diskspace", "60M:64M"]);
    env.ok(&["start", "101"]);
    // The balloon is the host's: it can be neither renamed nor removed, and a link in its
    // place is not followed.
    for cmd in ["mv /.vz-balloon /moved", "rm -rf /.vz-balloon", "rmdir /.vz-balloon"] {
        assert_ne!(env.vzctl(&["exec2", "101", cmd]).code, 0, "VE root could: {cmd}");
    }
    env.ok(&["exec2", "101", &format!("ln -s {} /.vz-balloon-link", host_dir.display())]);
    env.ok(&["set", "101", "--diskspace", "50M:56M"]);
    env.ok(&["set", "101", "--diskinodes", "9000:10000"]);
    let md = std::fs::metadata(&host_dir).unwrap();
    assert_eq!(md.mode() & 0o777, 0o755, "vzctl changed a host directory");
    assert_eq!(std::fs::read_dir(&host_dir).unwrap().count(), 0, "vzctl wrote into a host directory");
    // The limit holds: a write past 56M fails inside.
    let dd = env.vzctl(&["exec2", "101", "dd if=/dev/zero of=/fill bs=1M count=80"]);
    assert_ne!(dd.code, 0, "{dd:?}");
    env.ok(&["stop", "--fast", "101"]);
}

/// The admin attached to a VE's console from a real terminal: whatever the VE does on its
/// console (TIOCSTI, writing), nothing is typed into the admin's terminal; the VE's console
/// is its own pty, never the admin's; after Esc . what the admin types reaches no VE
/// process.
#[test]
fn the_console_gives_the_ve_no_way_into_the_admins_terminal() {
    use std::io::Read as _;
    let env = VzEnv::new("esc-console");
    debian_ve(&env, "101", &[]);
    env.ok(&["start", "101"]);
    let (master, slave) = openpty();
    let mut cmd = env.cmd("vzctl", &["console", "101"]);
    on_admin_terminal(&mut cmd, &slave);
    let mut console = vz_tests::Reaped(cmd.spawn().expect("vzctl console"));
    // The admin's screen: what the master side reads, collected as it comes.
    let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut m = std::fs::File::from(master.try_clone().unwrap());
    let sc = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = m.read(&mut buf) {
            if n == 0 {
                break;
            }
            sc.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let seen = || String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    vz_tests::wait_until("attached", || seen().contains("Attached to CT 101"));
    // The VE types into its console and writes to it.
    // (Refused outright where the host turned legacy TIOCSTI off; either way, nothing of
    // it may reach the admin.)
    let typed = helper(&env, "101", "sti", "sti /dev/console injected");
    assert!(typed == "ok 8" || typed.starts_with("err "), "{typed}");
    env.ok(&["exec2", "101", "echo from-the-ve > /dev/console"]);
    vz_tests::wait_until("the VE's output on the admin's screen", || seen().contains("from-the-ve"));
    assert_eq!(pending_input(&slave), b"", "the VE typed into the admin's terminal");
    // Detach, then type: nothing of it reaches the VE's console readers.
    env.ok(&[
        "exec2",
        "101",
        "setsid sh -c 'timeout 6 cat </dev/console >/root/console.read' </dev/null >/dev/null 2>&1 &",
    ]);
    // SAFETY: writes of valid buffers to our own pty master.
    unsafe { libc::write(master.as_raw_fd(), b"\x1b.".as_ptr().cast(), 2) };
    vz_tests::wait_until("vzctl console detached", || console.0.try_wait().unwrap().is_some());
    typed_after_reaches_no_ve(&env, &master, &slave, "root/console.read", Duration::from_secs(2));
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn the_delegated_cgroup_subtree_is_bounded_and_its_bounds_stay_the_hosts() {
    let env = VzEnv::new("esc-cgroup");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    let max = vz::cgroup::MAX_DESCENDANTS;
    assert_eq!(env.ok(&["exec2", "101", "cat /sys/fs/cgroup/cgroup.max.descendants"]).trim(), max.to_string());
    for f in ["cgroup.max.descendants", "cgroup.max.depth", "cgroup.freeze", "cgroup.kill"] {
        let o = env.vzctl(&["exec2", "101", &format!("echo max > /sys/fs/cgroup/{f}")]);
        assert_ne!(o.code, 0, "VE root wrote its own {f}");
    }
    // As many cgroups as the bound allows, then no more; none deeper than its depth.
    let made =
        env.ok(&["exec2", "101", "i=0; while mkdir /sys/fs/cgroup/c$i 2>/dev/null; do i=$((i+1)); done; echo $i"]);
    assert_eq!(made.trim(), max.to_string(), "cgroups made");
    env.ok(&["exec2", "101", "rmdir /sys/fs/cgroup/c[0-9]*"]);
    let deep = env.ok(&["exec2", "101", "cd /sys/fs/cgroup; i=0; while mkdir d && cd d; do i=$((i+1)); done; echo $i"]);
    assert_eq!(deep.trim(), vz::cgroup::MAX_DEPTH.to_string(), "depth");
    // Its processes there are still the VE's: counted, and killed at stop.
    env.ok(&["exec2", "101", "cd /sys/fs/cgroup/d/d; (echo $$ > cgroup.procs; exec sleep 600) >/dev/null 2>&1 &"]);
    let dir = env.cg().ve_dir(101);
    assert!(env.cg().procs(101).len() >= 2);
    env.ok(&["stop", "101"]);
    assert!(!dir.exists(), "the VE's cgroup tree outlived it");
}
