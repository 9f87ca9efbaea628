//! Namespaces: starting a VE's init in new namespaces, and running commands inside a
//! running VE.
//!
//! Starting uses a re-exec of this binary (`vzctl __ve-init`), so the namespace work runs in
//! a fresh single-threaded process (as runc/youki do): stage 1 unshares every namespace at
//! once (the user namespace first, owning the rest), waits for the parent to write its id
//! maps, then forks the VE's PID 1, which builds the VE's mounts, pivots into the VE root
//! and execs the template's init. Errors travel back on a close-on-exec pipe: EOF without an
//! error line means init is running.
use std::{
    ffi::CString,
    fs,
    io::{self, BufRead as _, BufReader, Write as _},
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
        unix::process::CommandExt as _,
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::cgroup::Cgroups;

#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("VE init did not start: {0}")]
    Init(String),
    #[error("{op}: {source}")]
    Sys { op: String, source: io::Error },
}

fn sys(op: impl Into<String>) -> impl FnOnce(io::Error) -> NsError {
    let op = op.into();
    move |source| NsError::Sys { op, source }
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Size of each VE's id range (VE ids 0..65535).
pub const ID_RANGE: u32 = 65536;

/// What to start as a VE's PID 1.
#[derive(Debug, Clone)]
pub struct InitSpec {
    /// VE_ROOT, already mounted.
    pub root: PathBuf,
    pub hostname: String,
    /// argv of PID 1 (the template's /sbin/init, or a shell for runscript).
    pub argv: Vec<String>,
    /// The VE's host id ranges (its root is host uid `uid_base`).
    pub uid_base: u32,
    pub gid_base: u32,
    /// PID 1's stdio: pipes relayed by vzctl (runscript), else the VE's own /dev/null.
    pub relay: bool,
    /// numpty: most pseudo-terminals the VE's devpts instance hands out (None: no limit).
    pub pty_max: Option<u64>,
    /// shmpages: size of the VE's /dev/shm in bytes (None: tmpfs's default, half of RAM).
    pub shm_bytes: Option<u64>,
}

/// Mount options of a VE's /dev/shm; `bytes` is its shmpages limit. It is always mounted
/// with a size: tmpfs cannot be given one later if it had none.
pub fn shm_options(bytes: Option<u64>, uid: u32, gid: u32) -> String {
    format!("mode=1777,uid={uid},gid={gid},{}", shm_size(bytes))
}

fn shm_size(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!("size={}", b.max(4096)),
        None => "size=50%".into(),
    }
}

/// devpts' own ceiling (NR_UNIX98_PTY_MAX): "no numpty limit".
const PTY_MAX_UNLIMITED: u64 = 1 << 20;

/// Mount options of a VE's devpts instance; `max` is its numpty limit; `gid` is the host
/// gid of the VE's tty group (5 inside).
pub fn devpts_options(max: Option<u64>, gid: u32) -> String {
    format!(
        "newinstance,ptmxmode=0666,mode=0620,gid={gid},max={}",
        max.unwrap_or(PTY_MAX_UNLIMITED).min(PTY_MAX_UNLIMITED)
    )
}

const SYNC_IN: RawFd = 3;
const SYNC_OUT: RawFd = 4;
/// How long a VE's init may take to get from fork to its exec (mounts, pivot_root).
const INIT_TIMEOUT: Duration = Duration::from_secs(30);

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid out-array of two fds.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: the kernel just returned these fds.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Opens `cgroup.procs` of each of the VE's cgroups, for a child to join before anything
/// else (so BPF accounting applies from the VE's first instruction).
fn cgroup_fds(cg: &dyn Cgroups, veid: u32) -> Result<Vec<OwnedFd>, NsError> {
    cg.ve_dirs(veid)
        .iter()
        .rev()
        .map(|d| {
            let p = d.join("cgroup.procs");
            fs::OpenOptions::new().write(true).open(&p).map(OwnedFd::from).map_err(sys(format!("open {}", p.display())))
        })
        .collect()
}

/// Async-signal-safe: moves the calling process into the cgroups behind `fds`.
fn join_cgroups(fds: &[RawFd]) -> io::Result<()> {
    for &fd in fds {
        // SAFETY: write of a 1-byte buffer to an open fd.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Async-signal-safe: every fd from `first` on is closed at the next exec. What vzctl
/// inherited from whoever ran it must never reach a VE process.
fn cloexec_from(first: u32) {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: close_range(2) only marks fds; nothing is closed under anyone.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
}

/// A started VE init.
#[derive(Debug)]
pub struct Started {
    /// Host pid of the VE's PID 1.
    pub pid: i32,
    /// With `relay`: our ends of PID 1's stdin, stdout and stderr.
    pub stdio: Option<[OwnedFd; 3]>,
}

/// Reads one line from `r` within `deadline`.
fn read_line_by(r: &mut BufReader<fs::File>, deadline: Instant) -> io::Result<String> {
    let mut line = String::new();
    loop {
        if !r.buffer().is_empty() {
            let n = r.read_line(&mut line)?;
            if n == 0 || line.ends_with('\n') {
                return Ok(line);
            }
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        let mut pfd = libc::pollfd { fd: r.get_ref().as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(io::Error::last_os_error());
        }
        if n > 0 {
            let n = r.read_line(&mut line)?;
            if n == 0 || line.ends_with('\n') {
                return Ok(line);
            }
        }
    }
}

/// Starts PID 1 of a VE in new namespaces and in the VE's cgroups. Returns once init has
/// been exec'd (or with the reason it could not be).
pub fn start_init(spec: &InitSpec, cg: &dyn Cgroups, veid: u32) -> Result<Started, NsError> {
    let (to_child_r, to_child_w) = pipe().map_err(sys("pipe"))?;
    let (from_child_r, from_child_w) = pipe().map_err(sys("pipe"))?;
    let cgfds = cgroup_fds(cg, veid)?;
    let raw_cg: Vec<RawFd> = cgfds.iter().map(|f| f.as_raw_fd()).collect();
    let (cin, cout) = (to_child_r.as_raw_fd(), from_child_w.as_raw_fd());

    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("__ve-init")
        .arg(&spec.root)
        .arg(&spec.hostname)
        .arg(if spec.relay { "relay" } else { "null" })
        .arg(spec.pty_max.map_or_else(|| "-".to_string(), |m| m.to_string()))
        .arg(spec.shm_bytes.map_or_else(|| "-".to_string(), |m| m.to_string()))
        .arg(spec.uid_base.to_string())
        .arg(spec.gid_base.to_string())
        .args(&spec.argv)
        .env_clear();
    let pipes = if spec.relay { Some(crate::relay::pipes().map_err(sys("pipe"))?) } else { None };
    match &pipes {
        Some(p) => {
            let dup = |f: &OwnedFd| f.try_clone().map(Stdio::from).map_err(sys("dup pipe"));
            cmd.stdin(dup(&p.child[0])?).stdout(dup(&p.child[1])?).stderr(dup(&p.child[2])?);
        }
        // PID 1 puts the VE's own /dev/null there before its exec.
        None => {
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    // SAFETY: only async-signal-safe calls (write, dup2, close_range) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            join_cgroups(&raw_cg)?;
            check(libc::dup2(cin, SYNC_IN))?;
            check(libc::dup2(cout, SYNC_OUT))?;
            cloexec_from(SYNC_OUT as u32 + 1);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(sys("spawn VE init"))?;
    drop((to_child_r, from_child_w, cgfds));
    let stage1 = child.id() as i32;
    let mut reader = BufReader::new(fs::File::from(from_child_r));
    let mut writer = fs::File::from(to_child_w);
    let deadline = Instant::now() + INIT_TIMEOUT;

    let result = (|| {
        let line = read_line_by(&mut reader, deadline).map_err(sys("wait for VE init"))?;
        match line.trim() {
            "U" => {}
            l => return Err(NsError::Init(l.strip_prefix("E ").unwrap_or("stage 1 exited").to_string())),
        }
        for (file, base) in [("uid_map", spec.uid_base), ("gid_map", spec.gid_base)] {
            let p = format!("/proc/{stage1}/{file}");
            fs::write(&p, format!("0 {base} {}\n", crate::idmap::RANGE)).map_err(sys(format!("write {p}")))?;
        }
        writer.write_all(b"M\n").map_err(sys("write to VE init"))?;
        let mut pid = None;
        let mut err = None;
        loop {
            let l = read_line_by(&mut reader, deadline).map_err(sys("wait for VE init"))?;
            if l.is_empty() {
                break;
            }
            if let Some(p) = l.trim().strip_prefix("P ") {
                pid = p.trim().parse::<i32>().ok();
            } else if let Some(e) = l.trim().strip_prefix("E ") {
                err.get_or_insert_with(|| e.to_string());
            }
        }
        match (err, pid) {
            (Some(e), _) => Err(NsError::Init(e)),
            (None, Some(pid)) => Ok(pid),
            (None, None) => Err(NsError::Init("stage 1 exited without starting init".into())),
        }
    })();
    if result.is_err() {
        // Stage 1 (and so the half-made namespaces) must not outlive the failure.
        let _ = child.kill();
    }
    let _ = child.wait();
    let pid = result?;
    Ok(Started { pid, stdio: pipes.map(|p| p.ours) })
}

/// Entry of `vzctl __ve-init ROOT HOSTNAME relay|null PTYMAX|- SHMBYTES|- UID GID ARGV...`
/// (stage 1). Never returns.
///
/// Stage 1 first builds, as host root in a mount namespace of its own, the mounts that
/// carry the VE's limits (/dev, its devpts instance with numpty's `max`, /dev/shm with
/// shmpages' size): their superblocks belong to the host's user namespace, so VE root can
/// neither remount them with other options nor unmount them (they are locked into the
/// VE's namespace). Then it becomes the VE's host uid and unshares every namespace: the
/// VE's user namespace is owned by the VE's own host uid, so the kernel's per-user counts
/// (inotify instances, user namespaces, queued signals) land on that uid, not on host root.
pub fn stage1_main(args: &[String]) -> ! {
    // SAFETY: fds 3 and 4 were set up by `start_init` for this process.
    let mut out = unsafe { fs::File::from_raw_fd(SYNC_OUT) };
    let fail = |out: &mut fs::File, msg: String| -> ! {
        let _ = writeln!(out, "E {msg}");
        std::process::exit(1)
    };
    let [root, hostname, stdio, pty_max, shm, uid, gid, argv @ ..] = args else {
        fail(&mut out, "bad __ve-init arguments".into())
    };
    let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else {
        fail(&mut out, "bad __ve-init ids".into())
    };
    if argv.is_empty() {
        fail(&mut out, "no init given".into());
    }
    let root = Path::new(root);
    let limits = (pty_max.parse::<u64>().ok(), shm.parse::<u64>().ok());
    if let Err(e) = host_mounts(root, uid, gid, limits) {
        fail(&mut out, e);
    }
    // The VE's root as the working directory: unshare carries it into the new mount
    // namespace, and PID 1 starts from it (its path's directories are 0700, for host root
    // only).
    if let Err(e) = std::env::set_current_dir(root) {
        fail(&mut out, format!("chdir {}: {e}", root.display()));
    }
    // SAFETY: plain syscalls; this process is single-threaded (fresh exec). From here on
    // it holds no capability in the host's user namespace.
    let dropped = unsafe {
        check(libc::setgroups(0, std::ptr::null()))
            .and_then(|_| check(libc::setresgid(gid, gid, gid)))
            .and_then(|_| check(libc::setresuid(uid, uid, uid)))
    };
    if let Err(e) = dropped {
        fail(&mut out, format!("become the VE's host uid {uid}: {e}"));
    }
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_NEWPID;
    // SAFETY: plain syscall.
    if let Err(e) = check(unsafe { libc::unshare(flags) }) {
        fail(&mut out, format!("unshare namespaces: {e}"));
    }
    let _ = writeln!(out, "U");
    // SAFETY: fd 3 set up by the parent.
    let mut input = BufReader::new(unsafe { fs::File::from_raw_fd(SYNC_IN) });
    let mut line = String::new();
    if input.read_line(&mut line).is_err() || line.trim() != "M" {
        fail(&mut out, "parent did not write the id maps".into());
    }
    // SAFETY: plain syscalls; the maps give this process uid/gid 0 in the new namespace.
    let ids = unsafe {
        check(libc::setresgid(0, 0, 0))
            .and_then(|_| check(libc::setresuid(0, 0, 0)))
            .and_then(|_| check(libc::setgroups(0, std::ptr::null())))
    };
    if let Err(e) = ids {
        fail(&mut out, format!("become VE root: {e}"));
    }
    // SAFETY: single-threaded process.
    match unsafe { libc::fork() } {
        -1 => fail(&mut out, format!("fork: {}", io::Error::last_os_error())),
        0 => {
            drop(input);
            // SAFETY: make the report pipe close on exec: EOF then means "init runs".
            unsafe { libc::fcntl(SYNC_OUT, libc::F_SETFD, libc::FD_CLOEXEC) };
            let e = pid1(hostname, stdio == "relay", argv);
            fail(&mut out, e)
        }
        pid => {
            let _ = writeln!(out, "P {pid}");
            std::process::exit(0)
        }
    }
}

/// PID 1 of the VE, before exec: its own /proc and /sys, pivot_root, hostname, loopback,
/// stdio, then init. Returns only on failure, with the reason.
fn pid1(hostname: &str, relay: bool, argv: &[String]) -> String {
    if let Err(e) = ve_mounts() {
        return e;
    }
    // SAFETY: plain syscall in the VE's own UTS namespace.
    if unsafe { libc::sethostname(hostname.as_ptr().cast(), hostname.len()) } != 0 {
        return format!("sethostname {hostname}: {}", io::Error::last_os_error());
    }
    if let Err(e) = loopback_up() {
        return format!("bring up lo: {e}");
    }
    if !relay {
        // The VE's own /dev/null (not a host fd: CRIU and the VE see only VE files).
        match fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open("/dev/null") {
            Ok(null) => {
                for fd in 0..3 {
                    // SAFETY: dup2 onto the standard fds.
                    unsafe { libc::dup2(null.as_raw_fd(), fd) };
                }
            }
            Err(e) => return format!("open /dev/null: {e}"),
        }
    }
    // SAFETY: a new session: init has no controlling terminal of the host.
    unsafe { libc::setsid() };
    cloexec_from(3);
    let _ = std::env::set_current_dir("/");
    let err = Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/root")
        .env("TERM", "linux")
        .env("container", "vzbpf")
        .exec();
    format!("exec {}: {err}", argv[0])
}

fn mount(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
    what: &str,
) -> Result<(), String> {
    let c = |s: Option<&str>| s.map(|s| CString::new(s).unwrap_or_default());
    let (src_c, fs_c, data_c) = (c(src), c(fstype), c(data));
    let target_c = CString::new(target).map_err(|e| e.to_string())?;
    let p = |o: &Option<CString>| o.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: all pointers are NUL-terminated strings or null, alive across the call.
    let r = unsafe { libc::mount(p(&src_c), target_c.as_ptr(), p(&fs_c), flags, p(&data_c).cast()) };
    if r != 0 {
        return Err(format!("mount {what}: {}", io::Error::last_os_error()));
    }
    Ok(())
}

/// Stage 1, as host root in a private mount namespace: a mount of the VE's root without
/// the nosuid/nodev the host sees on VE_ROOT, and on it the mounts that carry limits —
/// a small tmpfs /dev owned by VE root with the few host device nodes a VE gets, the VE's
/// devpts instance (numpty as `max`) and /dev/shm (shmpages as its size). Every name in
/// the VE's tree is resolved inside it with no symlink, and mounted on by fd.
fn host_mounts(
    root: &Path,
    uid: u32,
    gid: u32,
    (pty_max, shm_bytes): (Option<u64>, Option<u64>),
) -> Result<(), String> {
    use crate::inroot;
    // SAFETY: plain syscall; this process is single-threaded.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) }).map_err(|e| format!("unshare mount namespace: {e}"))?;
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None, "/ private")?;
    let r = root.to_str().ok_or("VE root is not UTF-8")?;
    mount(Some(r), r, None, libc::MS_BIND, None, "VE root")?;
    // Inside, the VE's own setuid programs work; the host's view stays nosuid,nodev.
    mount(None, r, None, libc::MS_REMOUNT | libc::MS_BIND, None, "VE root flags")?;
    let rootfd = inroot::host_dir(root).map_err(|e| format!("open {r}: {e}"))?;
    let dev = inroot::ensure_dir(&rootfd, "dev", uid, gid).map_err(|e| format!("the VE's /dev: {e}"))?;
    mount(
        Some("tmpfs"),
        &inroot::fd_path(&dev),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(&format!("mode=755,size=1m,nr_inodes=4096,uid={uid},gid={gid}")),
        "tmpfs on /dev",
    )?;
    // The fresh tmpfs: nothing in it is the VE's yet.
    let dev = inroot::dir_fd(&rootfd, "dev", inroot::Follow::Never).map_err(|e| format!("the VE's /dev: {e}"))?;
    let at = |name: &str| CString::new(name).unwrap_or_default();
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let n = at(node);
        // SAFETY: openat of a new file in our own directory fd.
        let fd = unsafe {
            libc::openat(
                dev.as_raw_fd(),
                n.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                0o644,
            )
        };
        if fd < 0 {
            return Err(format!("create /dev/{node}: {}", io::Error::last_os_error()));
        }
        // SAFETY: the kernel just returned this fd.
        let f = unsafe { OwnedFd::from_raw_fd(fd) };
        mount(Some(&format!("/dev/{node}")), &inroot::fd_path(&f), None, libc::MS_BIND, None, &format!("/dev/{node}"))?;
    }
    for (name, fstype, flags, options) in [
        ("pts", "devpts", libc::MS_NOSUID | libc::MS_NOEXEC, devpts_options(pty_max, gid + 5)),
        ("shm", "tmpfs", libc::MS_NOSUID | libc::MS_NODEV, shm_options(shm_bytes, uid, gid)),
    ] {
        let n = at(name);
        // SAFETY: mkdirat/fchownat of a new name in our own directory fd.
        unsafe {
            libc::mkdirat(dev.as_raw_fd(), n.as_ptr(), 0o755);
            libc::fchownat(dev.as_raw_fd(), n.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW);
        }
        let d = inroot::dir_fd(&dev, name, inroot::Follow::Never).map_err(|e| format!("/dev/{name}: {e}"))?;
        mount(
            Some(fstype),
            &inroot::fd_path(&d),
            Some(fstype),
            flags,
            Some(&options),
            &format!("{fstype} on /dev/{name}"),
        )?;
    }
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let (l, t) = (at(link), at(to));
        // SAFETY: symlinkat/fchownat of a new name in our own directory fd.
        unsafe {
            if libc::symlinkat(t.as_ptr(), dev.as_raw_fd(), l.as_ptr()) != 0 {
                return Err(format!("symlink /dev/{link}: {}", io::Error::last_os_error()));
            }
            libc::fchownat(dev.as_raw_fd(), l.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW);
        }
    }
    Ok(())
}

/// PID 1, as VE root in the VE's namespaces, in the VE's root (its working directory): a
/// mount of that tree of its own (pivot_root refuses the locked copy of stage 1's), cloned
/// and attached by fd, its /proc and /sys, then pivot_root so the host's tree is gone.
fn ve_mounts() -> Result<(), String> {
    use crate::inroot;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    // SAFETY: open_tree/move_mount with valid fds and NUL-terminated paths; the new fd is ours.
    let root = unsafe {
        let t = libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c".".as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
        );
        if t < 0 {
            return Err(format!("clone the VE's root: {}", io::Error::last_os_error()));
        }
        let t = OwnedFd::from_raw_fd(t as RawFd);
        if libc::syscall(
            libc::SYS_move_mount,
            t.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c".".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        ) != 0
        {
            return Err(format!("attach the VE's root: {}", io::Error::last_os_error()));
        }
        if libc::fchdir(t.as_raw_fd()) != 0 {
            return Err(format!("enter the VE's root: {}", io::Error::last_os_error()));
        }
        t
    };
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let proc_ = inroot::ensure_dir(&root, "proc", 0, 0).map_err(|e| format!("the VE's /proc: {e}"))?;
    mount(Some("proc"), &inroot::fd_path(&proc_), Some("proc"), nosuid, None, "proc")?;
    let sys = inroot::ensure_dir(&root, "sys", 0, 0).map_err(|e| format!("the VE's /sys: {e}"))?;
    let sysp = inroot::fd_path(&sys);
    if mount(Some("sysfs"), &sysp, Some("sysfs"), nosuid | libc::MS_RDONLY, None, "sysfs").is_err() {
        mount(Some("/sys"), &sysp, None, libc::MS_BIND | libc::MS_REC, None, "/sys")?;
        mount(None, &sysp, None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | nosuid, None, "/sys read-only")?;
    }
    drop((proc_, sys, root));
    // pivot_root(".", "."): the old root ends up on top of the new one and is detached.
    let dot = c".";
    // SAFETY: NUL-terminated paths; raw syscall as libc has no wrapper.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        return Err(format!("pivot_root: {}", io::Error::last_os_error()));
    }
    // SAFETY: detach the old root stacked on ".".
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(format!("detach old root: {}", io::Error::last_os_error()));
    }
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))
}

/// `ip link set lo up` by ioctl, in the VE's own network namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket; closed below.
    let s = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: the kernel returned this fd.
    let s = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: ifreq is plain data; ioctls read and write it.
    unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        check(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr))?;
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr))?;
    }
    Ok(())
}

/// The value of one `Key:` line of a /proc/PID/status text.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')).map(str::trim)
}

/// Host pid of a running VE's PID 1: the process of its cgroup whose innermost pid is 1.
pub fn find_init(cg: &dyn Cgroups, veid: u32) -> Option<i32> {
    cg.procs(veid).into_iter().find(|pid| {
        fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            status_field(&s, "NSpid").is_some_and(|v| {
                let f: Vec<&str> = v.split_whitespace().collect();
                f.len() >= 2 && f.last() == Some(&"1")
            })
        })
    })
}

/// Namespaces a command joins, user first: it owns the others.
const NAMESPACES: [(&str, libc::c_int); 7] = [
    ("user", libc::CLONE_NEWUSER),
    ("mnt", libc::CLONE_NEWNS),
    ("uts", libc::CLONE_NEWUTS),
    ("ipc", libc::CLONE_NEWIPC),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("pid", libc::CLONE_NEWPID),
];

/// A command that runs inside a running VE: in its cgroups and all its namespaces, as its
/// root. With `tty`, the command gets a new session with stdin as controlling terminal.
pub fn command_in_ve(cg: &dyn Cgroups, veid: u32, init: i32, argv: &[String], tty: bool) -> Result<Command, NsError> {
    let cgfds = cgroup_fds(cg, veid)?;
    let nsfds: Vec<(OwnedFd, libc::c_int)> = NAMESPACES
        .iter()
        .map(|(name, flag)| {
            let p = format!("/proc/{init}/ns/{name}");
            fs::File::open(&p).map(|f| (OwnedFd::from(f), *flag)).map_err(sys(format!("open {p}")))
        })
        .collect::<Result<_, _>>()?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/root")
        .env("TERM", std::env::var("TERM").unwrap_or_else(|_| "xterm".into()))
        .env("container", "vzbpf");
    let raw_cg: Vec<RawFd> = cgfds.iter().map(|f| f.as_raw_fd()).collect();
    // numsiginfo is the VE init's RLIMIT_SIGPENDING; whoever enters the VE takes it too.
    let sigpending = sigpending_of(init);
    let raw_ns: Vec<(RawFd, libc::c_int)> = nsfds.iter().map(|(f, t)| (f.as_raw_fd(), *t)).collect();
    // SAFETY: only async-signal-safe calls (write, setrlimit, setns, set*id, fork, waitpid, ioctl,
    // _exit) run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Keep the fds alive until the closure is dropped with the Command.
            let _keep = (&cgfds, &nsfds);
            join_cgroups(&raw_cg)?;
            if let Some(l) = &sigpending {
                check(libc::setrlimit(libc::RLIMIT_SIGPENDING, l))?;
            }
            for &(fd, t) in &raw_ns {
                check(libc::setns(fd, t))?;
            }
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(0, 0, 0))?;
            check(libc::setresuid(0, 0, 0))?;
            // setns(pid) applies to children: fork once more; this process only waits and
            // passes the exit status on.
            match libc::fork() {
                -1 => Err(io::Error::last_os_error()),
                0 => {
                    // A session of its own: no VE process shares the admin's controlling
                    // terminal (opening /dev/tty inside gets nothing), whatever stdio it has.
                    libc::setsid();
                    if tty {
                        libc::ioctl(0, libc::TIOCSCTTY, 0);
                    }
                    cloexec_from(3);
                    Ok(())
                }
                pid => {
                    // Hold nothing the caller waits on (stdio, std's exec-status pipe):
                    // only the command's own copies decide when they close.
                    libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                    let mut st = 0;
                    while libc::waitpid(pid, &mut st, 0) < 0 {
                        if *libc::__errno_location() != libc::EINTR {
                            libc::_exit(255);
                        }
                    }
                    let code = if libc::WIFEXITED(st) { libc::WEXITSTATUS(st) } else { 128 + libc::WTERMSIG(st) };
                    libc::_exit(code)
                }
            }
        });
    }
    Ok(cmd)
}

/// Runs `action` in a short-lived child that joined the given namespaces of a running VE
/// (user first). `action` runs between fork and exit in a possibly multi-threaded
/// process: it may only make raw syscalls. Returns whether it reported success.
fn in_ve_child(init: i32, namespaces: &[(&str, libc::c_int)], action: impl Fn() -> bool) -> Result<bool, NsError> {
    let fds = namespaces
        .iter()
        .map(|(ns, t)| {
            let p = format!("/proc/{init}/ns/{ns}");
            fs::File::open(&p).map(|f| (f, *t)).map_err(sys(format!("open {p}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // SAFETY: the child makes only raw syscalls (setns, then `action`) and _exits.
    match unsafe { libc::fork() } {
        -1 => Err(sys("fork")(io::Error::last_os_error())),
        0 => unsafe {
            let ok = fds.iter().all(|(f, t)| libc::setns(f.as_raw_fd(), *t) == 0) && action();
            libc::_exit(if ok { 0 } else { 1 })
        },
        pid => {
            let mut st = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut st, 0) };
            Ok(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0)
        }
    }
}

/// Sets a running VE's hostname (its UTS namespace).
pub fn set_hostname(init: i32, name: &str) -> Result<(), NsError> {
    let ns = [("user", libc::CLONE_NEWUSER), ("uts", libc::CLONE_NEWUTS)];
    // SAFETY: sethostname with a valid buffer.
    let ok = in_ve_child(init, &ns, || unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) == 0 })?;
    if ok {
        Ok(())
    } else {
        Err(NsError::Init(format!("could not set hostname {name} in the VE")))
    }
}

/// Changes one option of a running VE's limit-carrying mount (`rel`: "dev/pts" or
/// "dev/shm", of file system `magic`). Those superblocks belong to the host's user
/// namespace, so only host root may reconfigure them: by fd (fspick + fsconfig), on the
/// mount found inside the VE's root with no symlink followed.
fn reconfigure_in_ve(init: i32, rel: &str, magic: i64, key: &str, value: &str, what: &str) -> Result<(), NsError> {
    use crate::inroot;
    const FSPICK_CLOEXEC: libc::c_uint = 1;
    const FSPICK_NO_AUTOMOUNT: libc::c_uint = 4;
    const FSPICK_EMPTY_PATH: libc::c_uint = 8;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_RECONFIGURE: libc::c_uint = 7;
    let err = |e: io::Error| NsError::Init(format!("could not change the VE's {what}: {e}"));
    let root = inroot::ve_root(init).map_err(err)?;
    let dir = inroot::dir_fd(&root, rel, inroot::Follow::Never).map_err(err)?;
    if inroot::fstatfs_type(&dir).map_err(err)? != magic {
        return Err(err(io::Error::other(format!("/{rel} is not the file system vzctl mounted there"))));
    }
    let (k, v) = (
        CString::new(key).map_err(io::Error::other).map_err(err)?,
        CString::new(value).map_err(io::Error::other).map_err(err)?,
    );
    // SAFETY: fspick/fsconfig with valid fds and NUL-terminated strings; the new fd is ours.
    unsafe {
        let fc = libc::syscall(
            libc::SYS_fspick,
            dir.as_raw_fd(),
            c"".as_ptr(),
            FSPICK_CLOEXEC | FSPICK_NO_AUTOMOUNT | FSPICK_EMPTY_PATH,
        );
        if fc < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        let fc = OwnedFd::from_raw_fd(fc as RawFd);
        if libc::syscall(libc::SYS_fsconfig, fc.as_raw_fd(), FSCONFIG_SET_STRING, k.as_ptr(), v.as_ptr(), 0) < 0
            || libc::syscall(
                libc::SYS_fsconfig,
                fc.as_raw_fd(),
                FSCONFIG_CMD_RECONFIGURE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            ) < 0
        {
            return Err(err(io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Changes a running VE's numpty: the `max` of its devpts instance.
pub fn set_pty_max(init: i32, max: Option<u64>) -> Result<(), NsError> {
    let m = max.unwrap_or(PTY_MAX_UNLIMITED).min(PTY_MAX_UNLIMITED);
    reconfigure_in_ve(init, "dev/pts", crate::inroot::DEVPTS_MAGIC, "max", &m.to_string(), "pty limit")
}

/// Changes a running VE's /dev/shm size (shmpages).
pub fn set_shm_size(init: i32, bytes: Option<u64>) -> Result<(), NsError> {
    let size = shm_size(bytes);
    let v = size.trim_start_matches("size=");
    reconfigure_in_ve(init, "dev/shm", crate::inroot::TMPFS_MAGIC, "size", v, "/dev/shm size")
}

/// Runs `f` on a thread that joined one of the VE's namespaces (setns of an IPC or network
/// namespace affects the calling thread only).
fn in_ve_thread<T: Send + 'static>(
    init: i32,
    (name, flag): (&'static str, libc::c_int),
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, NsError> {
    let p = format!("/proc/{init}/ns/{name}");
    let ns = fs::File::open(&p).map_err(sys(format!("open {p}")))?;
    std::thread::spawn(move || {
        // SAFETY: plain setns on this thread.
        check(unsafe { libc::setns(ns.as_raw_fd(), flag) })?;
        f()
    })
    .join()
    .map_err(|_| NsError::Init(format!("{name} namespace thread panicked")))?
    .map_err(sys(format!("VE {name} namespace")))
}

/// `f` in the VE's IPC namespace: /proc/sys/kernel/shm* and /proc/sysvipc show the VE's.
fn in_ve_ipc<T: Send + 'static>(init: i32, f: impl FnOnce() -> io::Result<T> + Send + 'static) -> Result<T, NsError> {
    in_ve_thread(init, ("ipc", libc::CLONE_NEWIPC), f)
}

/// `f` in the VE's network namespace: netlink, socket iterators and /proc/thread-self/net
/// see the VE's.
pub fn in_ve_net<T: Send + 'static>(
    init: i32,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, NsError> {
    in_ve_thread(init, ("net", libc::CLONE_NEWNET), f)
}

/// numiptent: netfilter rules in the VE's network namespace — nftables rules (iptables-nft
/// rules are nftables rules) plus the entries of legacy iptables tables.
pub fn netfilter_entries(init: i32) -> Option<u64> {
    in_ve_net(init, || Ok(nft_rules()? + legacy_ipt_entries())).ok()
}

/// Counts the NFT_MSG_NEWRULE replies of an NFT_MSG_GETRULE dump over netlink.
fn nft_rules() -> io::Result<u64> {
    const NETLINK_NETFILTER: libc::c_int = 12;
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_NEWRULE: u16 = 6;
    const NFT_MSG_GETRULE: u16 = 7;
    // SAFETY: plain socket(2).
    let fd = check(unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_NETFILTER) })?;
    // SAFETY: the kernel returned this fd.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = Vec::with_capacity(20);
    req.extend_from_slice(&20u32.to_ne_bytes());
    req.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE).to_ne_bytes());
    req.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    req.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]); // nfgenmsg: every family, v0
                                                              // SAFETY: send of a valid buffer.
    check(unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } as i32)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut rules = 0u64;
    loop {
        // SAFETY: recv into a buffer of the given size.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut off = 0usize;
        let n = n as usize;
        while off + 16 <= n {
            let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
            let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            match ty as libc::c_int {
                libc::NLMSG_DONE => return Ok(rules),
                libc::NLMSG_ERROR => {
                    let errno = i32::from_ne_bytes([buf[off + 16], buf[off + 17], buf[off + 18], buf[off + 19]]);
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                _ if ty == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE => rules += 1,
                _ => {}
            }
            if len < 16 {
                break;
            }
            off += (len + 3) & !3;
        }
    }
}

/// Entries of the legacy iptables tables this namespace has loaded (IPT_SO_GET_INFO); each
/// table's built-in chain policies count, as OpenVZ counted them.
fn legacy_ipt_entries() -> u64 {
    const IPT_SO_GET_INFO: libc::c_int = 64;
    let Ok(names) = fs::read_to_string("/proc/thread-self/net/ip_tables_names") else {
        return 0;
    };
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW) };
    if fd < 0 {
        return 0;
    }
    // SAFETY: the kernel returned this fd.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    names
        .lines()
        .filter_map(|table| {
            // struct ipt_getinfo: name[32], valid_hooks, hook_entry[5], underflow[5],
            // num_entries, size.
            let mut info = [0u8; 84];
            let name = table.trim().as_bytes();
            info[..name.len().min(31)].copy_from_slice(&name[..name.len().min(31)]);
            let mut len = info.len() as libc::socklen_t;
            // SAFETY: getsockopt into a buffer of the given length.
            let r = unsafe {
                libc::getsockopt(
                    sock.as_raw_fd(),
                    libc::IPPROTO_IP,
                    IPT_SO_GET_INFO,
                    info.as_mut_ptr().cast(),
                    &mut len,
                )
            };
            (r == 0).then(|| u64::from(u32::from_ne_bytes([info[76], info[77], info[78], info[79]])))
        })
        .sum()
}

/// Receive-buffer refusals the calling thread's network namespace counted (run it inside
/// the VE's): TCP segments dropped for a full receive queue (TcpExt TCPRcvQDrop) and UDP
/// datagrams dropped for lack of receive buffer (Udp and Udp6 RcvbufErrors).
pub fn rcvbuf_drops() -> (u64, u64) {
    let table = |file: &str, prefix: &str, key: &str| -> u64 {
        let text = fs::read_to_string(format!("/proc/thread-self/net/{file}")).unwrap_or_default();
        let mut lines = text.lines().filter(|l| l.starts_with(prefix));
        let (Some(h), Some(v)) = (lines.next(), lines.next()) else {
            return 0;
        };
        h.split_whitespace()
            .zip(v.split_whitespace())
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    let udp6 = fs::read_to_string("/proc/thread-self/net/snmp6")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Udp6RcvbufErrors").and_then(|v| v.trim().parse::<u64>().ok()))
        .unwrap_or(0);
    (table("netstat", "TcpExt:", "TCPRcvQDrop"), table("snmp", "Udp:", "RcvbufErrors") + udp6)
}

/// numsiginfo held: signals queued for the VE's users. The kernel counts them per user of
/// the VE's user namespace (what `SigQ` in /proc/PID/status shows), so each user is read
/// once, from any of its processes.
pub fn queued_signals(pids: &[i32]) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for pid in pids {
        let Ok(st) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let uid = status_field(&st, "Uid").and_then(|u| u.split_whitespace().next()).unwrap_or("");
        if !seen.insert(uid.to_string()) {
            continue;
        }
        total += status_field(&st, "SigQ").and_then(|q| q.split('/').next()?.parse::<u64>().ok()).unwrap_or(0);
    }
    total
}

/// numflock held: lines of /proc/locks (read in the host's pid namespace) whose owner is
/// one of `pids`. Waiters ("->" lines) hold nothing; OFD locks have no owning process
/// (pid -1) and cannot be attributed.
pub fn file_locks(locks: &str, pids: &[i32]) -> u64 {
    let set: std::collections::HashSet<i32> = pids.iter().copied().collect();
    locks
        .lines()
        .filter(|l| !l.contains("->"))
        .filter_map(|l| l.split_whitespace().nth(4)?.parse::<i32>().ok())
        .filter(|pid| set.contains(pid))
        .count() as u64
}

/// Sets RLIMIT_SIGPENDING (numsiginfo: soft = barrier, hard = limit) of one process (0:
/// this one); None is unlimited.
pub fn set_sigpending(pid: i32, lim: Option<(u64, u64)>) -> io::Result<()> {
    let (cur, max) = lim.unwrap_or((libc::RLIM_INFINITY, libc::RLIM_INFINITY));
    let new = libc::rlimit { rlim_cur: cur, rlim_max: max };
    // SAFETY: prlimit with a valid struct and no old-value pointer.
    check(unsafe { libc::prlimit(pid, libc::RLIMIT_SIGPENDING, &new, std::ptr::null_mut()) }).map(drop)
}

/// Sets a VE process's RLIMIT_SIGPENDING. Host root may do that with CAP_SYS_RESOURCE; a
/// root without it (some hosts drop it) may still change a process whose ids it takes on,
/// so this retries from a thread that takes the process's uid and gid (raw syscalls: this
/// thread only). Raising a hard limit needs CAP_SYS_RESOURCE whatever the ids.
pub fn set_sigpending_of(pid: i32, lim: Option<(u64, u64)>) -> io::Result<()> {
    match set_sigpending(pid, lim) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        other => return other,
    }
    let st = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let id = |k: &str| -> io::Result<u32> {
        status_field(&st, k)
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no {k} in /proc/{pid}/status")))
    };
    let (uid, gid) = (id("Uid")?, id("Gid")?);
    std::thread::spawn(move || {
        // SAFETY: raw set*id syscalls change this thread's credentials only; the saved
        // ids stay 0, and the thread ends right after.
        unsafe {
            check(libc::syscall(libc::SYS_setresgid, gid, gid, 0u32) as i32)?;
            check(libc::syscall(libc::SYS_setresuid, uid, uid, 0u32) as i32)?;
        }
        set_sigpending(pid, lim)
    })
    .join()
    .map_err(|_| io::Error::other("prlimit thread panicked"))?
}

/// RLIMIT_SIGPENDING of a process, to hand to a process that joins its VE. Read from
/// /proc/PID/limits: prlimit(2) on a VE process needs CAP_SYS_RESOURCE over its user
/// namespace, which host root has only as the namespace's owner (it is the VE's own uid).
pub fn sigpending_of(pid: i32) -> Option<libc::rlimit> {
    parse_sigpending(&fs::read_to_string(format!("/proc/{pid}/limits")).ok()?)
}

/// The "Max pending signals" line of a /proc/PID/limits text.
pub fn parse_sigpending(limits: &str) -> Option<libc::rlimit> {
    let rest = limits.lines().find_map(|l| l.strip_prefix("Max pending signals"))?;
    let mut it = rest.split_whitespace();
    let v = |s: Option<&str>| match s? {
        "unlimited" => Some(libc::RLIM_INFINITY),
        n => n.parse().ok(),
    };
    Some(libc::rlimit { rlim_cur: v(it.next())?, rlim_max: v(it.next())? })
}

/// Sets the VE's kernel.shmall (pages of SysV shared memory). Done from the host, outside
/// the VE's cgroup: the VE itself may not write kernel/shm* (the vz_sysctl program refuses
/// it). The IPC namespace lets only its root's uid write, so this thread takes the VE
/// root's host uid (a raw setresuid: this thread only, not the whole process).
pub fn set_shmall(init: i32, pages: u64, uid_base: u32) -> Result<(), NsError> {
    in_ve_ipc(init, move || {
        // SAFETY: raw syscall changing this thread's effective uid only.
        if unsafe { libc::syscall(libc::SYS_setresuid, -1i32, uid_base, -1i32) } != 0 {
            return Err(io::Error::last_os_error());
        }
        fs::write("/proc/sys/kernel/shmall", pages.to_string())
    })
}

/// Pages of SysV shared memory in the VE's own IPC namespace plus pages used in its own
/// /dev/shm (found inside its root, no symlink followed). Only what those two instances
/// hold: the memory controller's shmem count, which sees every instance, is preferred.
pub fn own_shm_pages(init: i32) -> Option<u64> {
    use crate::inroot;
    let sysv = in_ve_ipc(init, || fs::read_to_string("/proc/sysvipc/shm")).ok()?;
    let segs: u64 = sysv
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
        .map(|b| b.div_ceil(4096))
        .sum();
    let tmpfs = (|| {
        let root = inroot::ve_root(init).ok()?;
        let d = inroot::dir_fd(&root, "dev/shm", inroot::Follow::Never).ok()?;
        // SAFETY: fstatfs fills the zeroed struct; works on an O_PATH fd.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        (unsafe { libc::fstatfs(d.as_raw_fd(), &mut st) } == 0 && st.f_type as i64 == inroot::TMPFS_MAGIC)
            .then(|| (st.f_blocks - st.f_bfree) * st.f_bsize as u64 / 4096)
    })()
    .unwrap_or(0);
    Some(segs + tmpfs)
}

/// Pseudo-terminals of a VE: the pairs of its own devpts instance (`init`'s /dev/pts,
/// found with no symlink followed), and those its processes hold on any other (one VE
/// root mounted itself), each once, by (instance, index). Masters are known by
/// `tty-index` in their fdinfo, slaves by their minor. Only stat(2) on the fd links and
/// reads of fdinfo: nothing a VE holds is opened.
pub fn pty_count(init: Option<i32>, pids: &[i32]) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    const UNIX98_PTY_SLAVE_MAJOR: u64 = 136;
    let mut seen = std::collections::HashSet::new();
    // The pairs of the VE's own instance, whoever holds them (vzctl enter holds the
    // master of the VE's shell): its numbered entries.
    if let Some(root) = init.and_then(|i| crate::inroot::ve_root(i).ok()) {
        use crate::inroot;
        if let Ok(d) = inroot::dir_fd(&root, "dev/pts", inroot::Follow::Never) {
            if inroot::fstatfs_type(&d).ok() == Some(inroot::DEVPTS_MAGIC) {
                let dev = inroot::fstat(&d).map(|st| st.st_dev).unwrap_or(0);
                for e in fs::read_dir(inroot::fd_path(&d)).into_iter().flatten().flatten() {
                    if let Some(i) = e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) {
                        seen.insert((dev, i));
                    }
                }
            }
        }
    }
    for pid in pids {
        let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for e in rd.flatten() {
            let Ok(md) = fs::metadata(e.path()) else { continue };
            if md.mode() & libc::S_IFMT != libc::S_IFCHR {
                continue;
            }
            let (major, minor) = (libc::major(md.rdev()) as u64, libc::minor(md.rdev()) as u64);
            let index = match major {
                5 if minor == 2 => {
                    let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", e.file_name().to_string_lossy()));
                    match info.ok().and_then(|t| status_field(&t, "tty-index").and_then(|v| v.parse::<u64>().ok())) {
                        Some(i) => i,
                        None => continue,
                    }
                }
                m if (UNIX98_PTY_SLAVE_MAJOR..UNIX98_PTY_SLAVE_MAJOR + 8).contains(&m) => {
                    (m - UNIX98_PTY_SLAVE_MAJOR) * 256 + minor
                }
                _ => continue,
            };
            seen.insert((md.dev(), index));
        }
    }
    seen.len() as u64
}

/// A pseudo-terminal pair from the VE's own devpts instance (so it counts as the VE's):
/// its `/dev/pts/ptmx`, found inside the VE's root with no symlink followed, and opened
/// only once it is known to be a devpts ptmx (never a host file, FIFO or other device the
/// VE put there).
pub fn ve_pty(init: i32) -> Result<(OwnedFd, OwnedFd), NsError> {
    use crate::inroot;
    let what = "the container's /dev/pts/ptmx";
    let err = |e: io::Error| NsError::Sys { op: format!("open {what}"), source: e };
    let root = inroot::ve_root(init).map_err(err)?;
    let p = inroot::path_fd(&root, "dev/pts/ptmx", inroot::Follow::Never).map_err(err)?;
    let st = inroot::fstat(&p).map_err(err)?;
    let ptmx = st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(5, 2);
    if !ptmx || inroot::fstatfs_type(&p).map_err(err)? != inroot::DEVPTS_MAGIC {
        return Err(NsError::Init(format!("{what} is not a devpts ptmx (replaced inside the container?)")));
    }
    let master = inroot::reopen(&p, libc::O_RDWR).map_err(err)?;
    // The relay waits in poll; blocking reads and writes are simpler after it.
    // SAFETY: fcntl on our own fd.
    unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_RDWR) };
    let unlock: libc::c_int = 0;
    // SAFETY: ioctls on the master fd with valid arguments.
    let slave = unsafe {
        check(libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock)).map_err(sys("unlock pty"))?;
        check(libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY))
            .map_err(sys("open pty peer"))?
    };
    // SAFETY: the kernel returned this fd.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

use std::os::unix::fs::OpenOptionsExt as _;

#[cfg(test)]
mod locks_tests {
    use super::{file_locks, parse_sigpending};

    #[test]
    fn sigpending_comes_from_the_limits_table() {
        let t = "Limit                     Soft Limit           Hard Limit           Units     \n\
                 Max processes             96362                96362                processes \n\
                 Max pending signals       50                   80                   signals   \n";
        let l = parse_sigpending(t).unwrap();
        assert_eq!((l.rlim_cur, l.rlim_max), (50, 80));
        let u =
            parse_sigpending("Max pending signals       unlimited            unlimited            signals\n").unwrap();
        assert_eq!((u.rlim_cur, u.rlim_max), (libc::RLIM_INFINITY, libc::RLIM_INFINITY));
        assert!(parse_sigpending("Max processes 5 5 processes\n").is_none());
    }

    #[test]
    fn file_locks_counts_held_locks_of_the_given_pids_only() {
        let locks = "1: POSIX  ADVISORY  WRITE 4242 00:2b:1234 0 EOF\n\
                     1: -> POSIX  ADVISORY  WRITE 4243 00:2b:1234 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4243 00:2b:1235 0 EOF\n\
                     3: OFDLCK ADVISORY  READ -1 00:2b:1236 0 EOF\n\
                     4: FLOCK  ADVISORY  WRITE 99 00:2b:1237 0 EOF\n";
        // The waiter ("->") holds nothing; OFD locks have no pid; 99 is not the VE's.
        assert_eq!(file_locks(locks, &[4242, 4243]), 2);
        assert_eq!(file_locks(locks, &[]), 0);
    }
}
