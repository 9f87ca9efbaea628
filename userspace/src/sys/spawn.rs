//! Code that runs between fork and exec, and the forks themselves.
//!
//! vzctl is multi-threaded (tokio for netlink, namespace threads), so a child of its fork
//! may only make async-signal-safe calls until it execs: no allocation, no lock. Those
//! children run the closures here, written with raw system calls on fds opened before the
//! fork. The per-thread credential changes are in `proc::thread_setresid`.
use std::{
    collections::BTreeSet,
    fs, io,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
        unix::process::CommandExt as _,
    },
    process::Command,
    sync::Mutex,
};

use nix::{sched::CloneFlags, unistd::ForkResult};

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    super::check(i64::from(r)).map(|v| v as libc::c_int)
}

/// Async-signal-safe: moves the calling process into the cgroups whose `cgroup.procs`
/// files are `fds`.
fn join_cgroups(fds: &[RawFd]) -> io::Result<()> {
    for &fd in fds {
        // SAFETY: a write of one byte from a static buffer to an open fd.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The child gets SIGKILL when the thread that spawned it ends (the process, when that is
/// the main thread): a helper that must not outlive a killed vzmigrate (its ssh master).
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure makes one async-signal-safe call, prctl, with integer arguments.
    unsafe {
        cmd.pre_exec(|| {
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0))?;
            Ok(())
        });
    }
}

/// A daemon of vzctl's (the console keeper): a session of its own, `fd` as fd `at`, and
/// nothing else of ours past it. The fd lives in `cmd` until it is dropped.
pub fn daemon_with_fd(cmd: &mut Command, fd: OwnedFd, at: RawFd) {
    let raw = fd.as_raw_fd();
    // SAFETY: the closure makes only async-signal-safe calls (setsid, dup2, close_range)
    // on an fd it owns (moved in below), between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &fd;
            check(libc::setsid())?;
            check(libc::dup2(raw, at))?;
            super::proc::cloexec_from(at as u32 + 1);
            Ok(())
        });
    }
}

/// Stage 1 of a VE start (`vzctl __ve-init`): before its exec, the child gets `sync_in`
/// and `sync_out` as fds `in_fd` and `out_fd`, and nothing else of ours past them (vzctl
/// moves it into the VE's cgroups meanwhile, `join_cgroups_of`). The fds live in `cmd`
/// until it is dropped: drop it right after spawning.
pub fn stage1_on_exec(cmd: &mut Command, sync: [(OwnedFd, RawFd); 2]) {
    let moves: [(RawFd, RawFd); 2] = [(sync[0].0.as_raw_fd(), sync[0].1), (sync[1].0.as_raw_fd(), sync[1].1)];
    let after = sync[0].1.max(sync[1].1) as u32 + 1;
    // SAFETY: the closure makes only async-signal-safe calls (dup2, close_range) on fds it
    // owns (moved in below), between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &sync;
            for (from, to) in moves {
                check(libc::dup2(from, to))?;
            }
            super::proc::cloexec_from(after);
            Ok(())
        });
    }
}

/// Moves process `pid` into each cgroup whose `cgroup.procs` is open in `procs`, in order.
pub fn join_cgroups_of(procs: &[OwnedFd], pid: i32) -> io::Result<()> {
    let line = pid.to_string();
    for fd in procs {
        if nix::unistd::write(fd, line.as_bytes())? != line.len() {
            return Err(io::Error::other("short write to cgroup.procs"));
        }
    }
    Ok(())
}

/// What a command entering a running VE does before its exec.
pub struct EnterOnExec {
    /// `cgroup.procs` of each of the VE's cgroups.
    pub cgroup_procs: Vec<OwnedFd>,
    /// The VE's namespaces, user first (it owns the others).
    pub namespaces: Vec<(OwnedFd, CloneFlags)>,
    /// The VE init's RLIMIT_SIGPENDING, which whoever enters takes too.
    pub sigpending: Option<libc::rlimit>,
    /// stdin becomes the controlling terminal of the command's new session.
    pub tty: bool,
    /// Capabilities (bits) dropped from the bounding set once in the VE's user namespace
    /// (whose entry fills it): those the VE's init lacks.
    pub cap_drop: u64,
    /// The VE's init runs under the netfilter seccomp filter: so does the command.
    pub netfilter_off: bool,
}

/// Makes `cmd` run inside a running VE: in its cgroups and namespaces, as its root, in a
/// session of its own; its PID is in the VE's pid namespace (one more fork: the first
/// child only waits and passes the exit status on). The fds live in `cmd` until it is
/// dropped: drop it right after spawning.
pub fn enter_on_exec(cmd: &mut Command, e: EnterOnExec) {
    let raw_cg: Vec<RawFd> = e.cgroup_procs.iter().map(|f| f.as_raw_fd()).collect();
    let raw_ns: Vec<(RawFd, libc::c_int)> = e.namespaces.iter().map(|(f, t)| (f.as_raw_fd(), t.bits())).collect();
    let (sigpending, tty, cap_drop, netfilter_off) = (e.sigpending, e.tty, e.cap_drop, e.netfilter_off);
    // SAFETY: only async-signal-safe calls (write, setrlimit, setns, prctl, set*id, fork,
    // waitpid, ioctl, close_range, _exit) run between fork and exec, on fds the closure
    // owns.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = (&e.cgroup_procs, &e.namespaces);
            join_cgroups(&raw_cg)?;
            if let Some(l) = &sigpending {
                check(libc::setrlimit(libc::RLIMIT_SIGPENDING, l))?;
            }
            for &(fd, t) in &raw_ns {
                check(libc::setns(fd, t))?;
            }
            super::proc::capbset_drop(cap_drop)?;
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(0, 0, 0))?;
            check(libc::setresuid(0, 0, 0))?;
            if netfilter_off {
                super::seccomp::deny_netfilter()?;
            }
            // setns(pid) applies to children: fork once more.
            match libc::fork() {
                -1 => Err(io::Error::last_os_error()),
                0 => {
                    // A session of its own: no VE process shares the admin's controlling
                    // terminal (opening /dev/tty inside gets nothing), whatever stdio it has.
                    libc::setsid();
                    if tty {
                        libc::ioctl(0, libc::TIOCSCTTY, 0);
                    }
                    super::proc::cloexec_from(3);
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
}

/// What `in_forked_child` may run in its child: async-signal-safe actions only.
#[derive(Debug, Clone, Copy)]
pub enum ChildAction<'a> {
    SetHostname(&'a str),
}

/// Runs `action` in a short-lived child that joined `namespaces` (in order); whether it
/// succeeded.
pub fn in_forked_child(namespaces: &[(fs::File, CloneFlags)], action: ChildAction<'_>) -> io::Result<bool> {
    let raw: Vec<(RawFd, libc::c_int)> = namespaces.iter().map(|(f, t)| (f.as_raw_fd(), t.bits())).collect();
    // SAFETY: the child makes only raw syscalls (setns, the action) on memory allocated
    // before the fork, then _exits.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => unsafe {
            let ok = raw.iter().all(|&(f, t)| libc::setns(f, t) == 0)
                && match action {
                    ChildAction::SetHostname(n) => libc::sethostname(n.as_ptr().cast(), n.len()) == 0,
                };
            libc::_exit(if ok { 0 } else { 1 })
        },
        pid => {
            let st = super::proc::wait_child(pid)?;
            Ok(matches!(st, nix::sys::wait::WaitStatus::Exited(_, 0)))
        }
    }
}

/// Whether this process has one thread (/proc/self/status `Threads:`).
fn single_threaded() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim() == "1")))
        .unwrap_or(false)
}

/// fork(2) in a single-threaded process (stage 1, a fresh exec): the child may do
/// anything. Refused in a multi-threaded one.
pub fn fork_single_threaded() -> io::Result<ForkResult> {
    if !single_threaded() {
        return Err(io::Error::other("fork refused: this process has more than one thread"));
    }
    // SAFETY: with one thread, the child's memory and locks are consistent.
    Ok(unsafe { nix::unistd::fork() }?)
}

static TAKEN: Mutex<BTreeSet<RawFd>> = Mutex::new(BTreeSet::new());

/// Takes ownership of fd `fd` that this process inherited open (stage 1's sync pipes):
/// once per fd number; None if it is not open or was taken before.
pub fn take_inherited(fd: RawFd) -> Option<OwnedFd> {
    let mut taken = TAKEN.lock().ok()?;
    // SAFETY: F_GETFD takes no pointer; it only says whether the fd is open.
    if taken.contains(&fd) || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    taken.insert(fd);
    // SAFETY: the fd is open, came from our parent, and nothing else in this process
    // owns it: outside `sys` nothing makes an owned fd from a number, and here only this
    // function does, once per number.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
