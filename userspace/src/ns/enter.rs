//! Into a running VE: commands in its namespaces and cgroups, settings changed from inside (hostname, devpts max, /dev/shm size), its ptys.
use super::*;

/// Namespaces a command joins, user first: it owns the others.
pub(super) const NAMESPACES: [(&str, libc::c_int); 7] = [
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
    // numsiginfo is the VE init's RLIMIT_SIGPENDING; whoever enters the VE takes it too.
    let sigpending = sigpending_of(init);
    // The VE's capabilities: what its init's bounding set holds (CAPABILITY ...:off
    // dropped there); unknown, nothing is dropped beyond what the kernel lacks.
    let cap_drop = crate::sys::proc::cap_bounding(init).map_or(0, |b| !b);
    let namespaces = nsfds.into_iter().map(|(f, t)| (f, CloneFlags::from_bits_retain(t))).collect();
    crate::sys::spawn::enter_on_exec(
        &mut cmd,
        crate::sys::spawn::EnterOnExec {
            cgroup_procs: cgfds,
            namespaces,
            sigpending,
            tty,
            cap_drop,
            netfilter_off: crate::sys::seccomp::filtered(init),
        },
    );
    Ok(cmd)
}

/// Runs `action` in a short-lived child that joined the given namespaces of a running VE
/// (user first). Returns whether it reported success.
pub(super) fn in_ve_child(
    init: i32,
    namespaces: &[(&str, libc::c_int)],
    action: crate::sys::spawn::ChildAction<'_>,
) -> Result<bool, NsError> {
    let fds = namespaces
        .iter()
        .map(|(ns, t)| {
            let p = format!("/proc/{init}/ns/{ns}");
            fs::File::open(&p).map(|f| (f, CloneFlags::from_bits_retain(*t))).map_err(sys(format!("open {p}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    crate::sys::spawn::in_forked_child(&fds, action).map_err(sys("fork"))
}

/// Sets a running VE's hostname (its UTS namespace).
pub fn set_hostname(init: i32, name: &str) -> Result<(), NsError> {
    let ns = [("user", libc::CLONE_NEWUSER), ("uts", libc::CLONE_NEWUTS)];
    let ok = in_ve_child(init, &ns, crate::sys::spawn::ChildAction::SetHostname(name))?;
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
pub(super) fn reconfigure_in_ve(
    init: i32,
    rel: &str,
    magic: i64,
    key: &str,
    value: &str,
    what: &str,
) -> Result<(), NsError> {
    use crate::sys::inroot;
    let err = |e: io::Error| NsError::Init(format!("could not change the VE's {what}: {e}"));
    let root = inroot::ve_root(init).map_err(err)?;
    let dir = inroot::dir_fd(&root, rel, inroot::Follow::Never).map_err(err)?;
    if inroot::fstatfs_type(&dir).map_err(err)? != magic {
        return Err(err(io::Error::other(format!("/{rel} is not the file system vzctl mounted there"))));
    }
    crate::sys::mount::reconfigure(dir.as_fd(), key, value).map_err(err)
}

/// Changes a running VE's numpty: the `max` of its devpts instance.
pub fn set_pty_max(init: i32, max: Option<u64>) -> Result<(), NsError> {
    let m = max.unwrap_or(PTY_MAX_UNLIMITED).min(PTY_MAX_UNLIMITED);
    reconfigure_in_ve(init, "dev/pts", crate::sys::inroot::DEVPTS_MAGIC, "max", &m.to_string(), "pty limit")
}

/// Changes a running VE's /dev/shm size (shmpages).
pub fn set_shm_size(init: i32, bytes: Option<u64>) -> Result<(), NsError> {
    let size = shm_size(bytes);
    let v = size.trim_start_matches("size=");
    reconfigure_in_ve(init, "dev/shm", crate::sys::inroot::TMPFS_MAGIC, "size", v, "/dev/shm size")
}

/// Runs `f` on a thread that joined one of the VE's namespaces (setns of an IPC or network
/// namespace affects the calling thread only).
pub(super) fn in_ve_thread<T: Send + 'static>(
    init: i32,
    (name, flag): (&'static str, libc::c_int),
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, NsError> {
    let p = format!("/proc/{init}/ns/{name}");
    let ns = fs::File::open(&p).map_err(sys(format!("open {p}")))?;
    std::thread::spawn(move || {
        // This thread only.
        nix::sched::setns(&ns, CloneFlags::from_bits_retain(flag))?;
        f()
    })
    .join()
    .map_err(|_| NsError::Init(format!("{name} namespace thread panicked")))?
    .map_err(sys(format!("VE {name} namespace")))
}

/// `f` in the VE's IPC namespace: /proc/sys/kernel/shm* and /proc/sysvipc show the VE's.
pub(super) fn in_ve_ipc<T: Send + 'static>(
    init: i32,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, NsError> {
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

/// A pseudo-terminal pair from the VE's own devpts instance (so it counts as the VE's):
/// its `/dev/pts/ptmx`, found inside the VE's root with no symlink followed, and opened
/// only once it is known to be a devpts ptmx (never a host file, FIFO or other device the
/// VE put there).
pub fn ve_pty(init: i32) -> Result<(OwnedFd, OwnedFd), NsError> {
    use crate::sys::inroot;
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
    crate::sys::fd::set_nonblocking(master.as_fd(), false).map_err(err)?;
    let slave = crate::sys::tty::pty_peer(&master).map_err(sys("open pty peer"))?;
    Ok((master, slave))
}
