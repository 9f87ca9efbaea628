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
    ffi::{CString, OsStr},
    fs,
    io::{self, BufRead as _, BufReader, Write as _},
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
        unix::{ffi::OsStrExt as _, process::CommandExt as _},
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
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

fn cstr(p: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(p.as_ref().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
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
    pub uid_base: u32,
    pub gid_base: u32,
    /// Keep stdout/stderr for PID 1 (runscript) instead of /dev/null.
    pub stdio: bool,
    /// File PID 1 reads as stdin (runscript's script); /dev/null when None.
    pub stdin: Option<PathBuf>,
    /// numpty: most pseudo-terminals the VE's devpts instance hands out (None: no limit).
    pub pty_max: Option<u64>,
    /// shmpages: size of the VE's /dev/shm in bytes (None: tmpfs default).
    pub shm_bytes: Option<u64>,
}

/// Mount options of a VE's /dev/shm; `bytes` is its shmpages limit.
pub fn shm_options(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!("mode=1777,size={b}"),
        None => "mode=1777".into(),
    }
}

/// Mount options of a VE's devpts instance; `max` is its numpty limit.
pub fn devpts_options(max: Option<u64>) -> String {
    let mut o = String::from("newinstance,ptmxmode=0666,mode=0620,gid=5");
    if let Some(m) = max {
        o.push_str(&format!(",max={m}"));
    }
    o
}

const SYNC_IN: RawFd = 3;
const SYNC_OUT: RawFd = 4;

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

/// A started VE init.
#[derive(Debug)]
pub struct Started {
    /// Host pid of the VE's PID 1.
    pub pid: i32,
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
        .arg(if spec.stdio { "stdio" } else { "null" })
        .arg(spec.pty_max.map_or_else(|| "-".to_string(), |m| m.to_string()))
        .arg(spec.shm_bytes.map_or_else(|| "-".to_string(), |m| m.to_string()))
        .args(&spec.argv)
        .env_clear();
    if !spec.stdio {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    match &spec.stdin {
        Some(p) => cmd.stdin(fs::File::open(p).map_err(sys(format!("open {}", p.display())))?),
        None => cmd.stdin(Stdio::null()),
    };
    // SAFETY: only async-signal-safe calls (write, dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            join_cgroups(&raw_cg)?;
            check(libc::dup2(cin, SYNC_IN))?;
            check(libc::dup2(cout, SYNC_OUT))?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(sys("spawn VE init"))?;
    drop((to_child_r, from_child_w, cgfds));
    let stage1 = child.id() as i32;
    let mut reader = BufReader::new(fs::File::from(from_child_r));
    let mut writer = fs::File::from(to_child_w);

    let result = (|| {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(sys("read from VE init"))?;
        match line.trim() {
            "U" => {}
            l => return Err(NsError::Init(l.strip_prefix("E ").unwrap_or("stage 1 exited").to_string())),
        }
        for (file, base) in [("uid_map", spec.uid_base), ("gid_map", spec.gid_base)] {
            let p = format!("/proc/{stage1}/{file}");
            fs::write(&p, format!("0 {base} {ID_RANGE}\n")).map_err(sys(format!("write {p}")))?;
        }
        writer.write_all(b"M\n").map_err(sys("write to VE init"))?;
        let mut pid = None;
        let mut err = None;
        for l in (&mut reader).lines() {
            let l = l.map_err(sys("read from VE init"))?;
            if let Some(p) = l.strip_prefix("P ") {
                pid = p.trim().parse::<i32>().ok();
            } else if let Some(e) = l.strip_prefix("E ") {
                err.get_or_insert_with(|| e.to_string());
            }
        }
        match (err, pid) {
            (Some(e), _) => Err(NsError::Init(e)),
            (None, Some(pid)) => Ok(Started { pid }),
            (None, None) => Err(NsError::Init("stage 1 exited without starting init".into())),
        }
    })();
    let _ = child.wait();
    result
}

/// Entry of `vzctl __ve-init ROOT HOSTNAME stdio|null PTYMAX|- SHMBYTES|- ARGV...` (stage
/// 1). Never returns.
pub fn stage1_main(args: &[String]) -> ! {
    // SAFETY: fds 3 and 4 were set up by `start_init` for this process.
    let mut out = unsafe { fs::File::from_raw_fd(SYNC_OUT) };
    let fail = |out: &mut fs::File, msg: String| -> ! {
        let _ = writeln!(out, "E {msg}");
        std::process::exit(1)
    };
    let [root, hostname, stdio, pty_max, shm, argv @ ..] = args else {
        fail(&mut out, "bad __ve-init arguments".into())
    };
    let limits = (pty_max.parse::<u64>().ok(), shm.parse::<u64>().ok());
    if argv.is_empty() {
        fail(&mut out, "no init given".into());
    }
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_NEWPID;
    // SAFETY: plain syscall; this process is single-threaded (fresh exec).
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
        check(libc::setgroups(0, std::ptr::null()))
            .and_then(|_| check(libc::setresgid(0, 0, 0)))
            .and_then(|_| check(libc::setresuid(0, 0, 0)))
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
            let e = pid1(Path::new(root), hostname, stdio == "stdio", limits, argv);
            fail(&mut out, e)
        }
        pid => {
            let _ = writeln!(out, "P {pid}");
            std::process::exit(0)
        }
    }
}

/// PID 1 of the VE, before exec: mounts, pivot_root, hostname, loopback, then init.
/// Returns only on failure, with the reason.
fn pid1(root: &Path, hostname: &str, stdio: bool, limits: (Option<u64>, Option<u64>), argv: &[String]) -> String {
    if let Err(e) = setup_mounts(root, limits) {
        return e;
    }
    // SAFETY: plain syscall in the VE's own UTS namespace.
    if unsafe { libc::sethostname(hostname.as_ptr().cast(), hostname.len()) } != 0 {
        return format!("sethostname {hostname}: {}", io::Error::last_os_error());
    }
    if let Err(e) = loopback_up() {
        return format!("bring up lo: {e}");
    }
    if !stdio {
        match fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
            Ok(null) => {
                for fd in 0..3 {
                    // SAFETY: dup2 onto the standard fds.
                    unsafe { libc::dup2(null.as_raw_fd(), fd) };
                }
            }
            Err(e) => return format!("open /dev/null: {e}"),
        }
    }
    // SAFETY: new session, so init has no controlling terminal of the host.
    unsafe { libc::setsid() };
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
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let c = |s: Option<&str>| s.map(|s| CString::new(s).unwrap_or_default());
    let (src_c, fs_c, data_c) = (c(src), c(fstype), c(data));
    let target_c = cstr(target).map_err(|e| e.to_string())?;
    let p = |o: &Option<CString>| o.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: all pointers are NUL-terminated strings or null, alive across the call.
    let r = unsafe { libc::mount(p(&src_c), target_c.as_ptr(), p(&fs_c), flags, p(&data_c).cast()) };
    if r != 0 {
        return Err(format!(
            "mount {} on {}: {}",
            fstype.or(src).unwrap_or("?"),
            target.display(),
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn mkdir(p: &Path) -> Result<(), String> {
    fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))
}

/// The VE's file system view: its root, its own /proc, read-only /sys, a minimal /dev with
/// its own devpts instance, then pivot_root so the host's tree is gone.
fn setup_mounts(root: &Path, (pty_max, shm_bytes): (Option<u64>, Option<u64>)) -> Result<(), String> {
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    mount(Some(&root.to_string_lossy()), root, None, libc::MS_BIND | libc::MS_REC, None)?;
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let proc_ = root.join("proc");
    mkdir(&proc_)?;
    mount(Some("proc"), &proc_, Some("proc"), nosuid, None)?;
    let sys = root.join("sys");
    mkdir(&sys)?;
    if mount(Some("sysfs"), &sys, Some("sysfs"), nosuid | libc::MS_RDONLY, None).is_err() {
        mount(Some("/sys"), &sys, None, libc::MS_BIND | libc::MS_REC, None)?;
        mount(None, &sys, None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | nosuid, None)?;
    }
    let dev = root.join("dev");
    mkdir(&dev)?;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=755,size=1m,nr_inodes=4096"),
    )?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let t = dev.join(node);
        fs::File::create(&t).map_err(|e| format!("create {}: {e}", t.display()))?;
        mount(Some(&format!("/dev/{node}")), &t, None, libc::MS_BIND, None)?;
    }
    let pts = dev.join("pts");
    mkdir(&pts)?;
    mount(Some("devpts"), &pts, Some("devpts"), libc::MS_NOSUID | libc::MS_NOEXEC, Some(&devpts_options(pty_max)))?;
    let shm = dev.join("shm");
    mkdir(&shm)?;
    mount(Some("tmpfs"), &shm, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some(&shm_options(shm_bytes)))?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link)).map_err(|e| format!("symlink /dev/{link}: {e}"))?;
    }
    std::env::set_current_dir(root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
    // pivot_root(".", "."): the old root ends up on top of the new one and is detached.
    let dot = c".";
    // SAFETY: NUL-terminated paths; raw syscall as libc has no wrapper.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        return Err(format!("pivot_root {}: {}", root.display(), io::Error::last_os_error()));
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
                    if tty {
                        libc::setsid();
                        libc::ioctl(0, libc::TIOCSCTTY, 0);
                    }
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

/// Remounts one of a running VE's own mounts with new options, from a child in the VE's
/// user and mount namespaces.
fn remount_in_ve(
    init: i32,
    target: &'static std::ffi::CStr,
    flags: libc::c_ulong,
    options: String,
    what: &str,
) -> Result<(), NsError> {
    let data = CString::new(options).map_err(|e| sys("mount options")(io::Error::other(e)))?;
    let ns = [("user", libc::CLONE_NEWUSER), ("mnt", libc::CLONE_NEWNS)];
    let remount = || {
        // SAFETY: NUL-terminated strings prepared before the fork.
        unsafe {
            libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | flags,
                data.as_ptr().cast(),
            ) == 0
        }
    };
    if in_ve_child(init, &ns, remount)? {
        Ok(())
    } else {
        Err(NsError::Init(format!("could not change the VE's {what}")))
    }
}

/// Changes a running VE's numpty: remounts its devpts instance with a new `max`.
pub fn set_pty_max(init: i32, max: Option<u64>) -> Result<(), NsError> {
    remount_in_ve(init, c"/dev/pts", libc::MS_NOSUID | libc::MS_NOEXEC, devpts_options(max), "pty limit")
}

/// Changes a running VE's /dev/shm size (shmpages) by remounting its tmpfs.
pub fn set_shm_size(init: i32, bytes: Option<u64>) -> Result<(), NsError> {
    remount_in_ve(init, c"/dev/shm", libc::MS_NOSUID | libc::MS_NODEV, shm_options(bytes), "/dev/shm size")
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

/// RLIMIT_SIGPENDING of a process, to hand to a process that joins its VE.
pub fn sigpending_of(pid: i32) -> Option<libc::rlimit> {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: prlimit reading into a valid struct.
    (unsafe { libc::prlimit(pid, libc::RLIMIT_SIGPENDING, std::ptr::null(), &mut old) } == 0).then_some(old)
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

/// Pages of SysV shared memory in the VE's IPC namespace plus pages used in its /dev/shm.
pub fn shm_pages(init: i32) -> Option<u64> {
    let sysv = in_ve_ipc(init, || fs::read_to_string("/proc/sysvipc/shm")).ok()?;
    let segs: u64 = sysv
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
        .map(|b| b.div_ceil(4096))
        .sum();
    let p = CString::new(format!("/proc/{init}/root/dev/shm")).ok()?;
    // SAFETY: statfs fills the zeroed struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let tmpfs = if unsafe { libc::statfs(p.as_ptr(), &mut st) } == 0 {
        (st.f_blocks - st.f_bfree) * st.f_bsize as u64 / 4096
    } else {
        0
    };
    Some(segs + tmpfs)
}

/// Pseudo-terminals a running VE holds: the entries of its devpts instance.
pub fn pty_count(init: i32) -> Option<u64> {
    let d = fs::read_dir(format!("/proc/{init}/root/dev/pts")).ok()?;
    Some(d.flatten().filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))).count()
        as u64)
}

/// A pseudo-terminal pair from the VE's own devpts instance (so it counts as the VE's).
pub fn ve_pty(init: i32) -> Result<(OwnedFd, OwnedFd), NsError> {
    let p = format!("/proc/{init}/root/dev/pts/ptmx");
    let master = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&p)
        .map_err(sys(format!("open {p}")))?;
    let unlock: libc::c_int = 0;
    // SAFETY: ioctls on the master fd with valid arguments.
    let slave = unsafe {
        check(libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock)).map_err(sys("unlock pty"))?;
        check(libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY))
            .map_err(sys("open pty peer"))?
    };
    // SAFETY: the kernel returned this fd.
    Ok((OwnedFd::from(master), unsafe { OwnedFd::from_raw_fd(slave) }))
}

use std::os::unix::fs::OpenOptionsExt as _;

#[cfg(test)]
mod locks_tests {
    use super::file_locks;

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
