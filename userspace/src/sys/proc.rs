//! Processes: signals, waits, pidfds, limits and the fd table of the calling process.
use std::{io, os::fd::OwnedFd};

use nix::{
    errno::Errno,
    sys::{
        signal::{self, Signal},
        wait::{self, WaitStatus},
    },
    unistd::Pid,
};

/// Sends `sig` to `pid`.
pub fn kill(pid: i32, sig: Signal) -> io::Result<()> {
    Ok(signal::kill(Pid::from_raw(pid), sig)?)
}

/// This process's effective uid.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Makes this process the reaper of its orphaned descendants (so it can wait for a
/// grandchild).
pub fn set_child_subreaper() -> io::Result<()> {
    Ok(nix::sys::prctl::set_child_subreaper(true)?)
}

/// Waits for child `pid` to end, retrying on EINTR; returns its wait status.
pub fn wait_child(pid: i32) -> io::Result<WaitStatus> {
    loop {
        match wait::waitpid(Pid::from_raw(pid), None) {
            Err(Errno::EINTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// The exit code a shell would give for a wait status (128 + signal for a killed one).
pub fn exit_code(st: WaitStatus) -> i32 {
    match st {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        _ => 1,
    }
}

/// A pidfd for `pid` (pidfd_open(2)): readable once the process has ended, and immune to
/// pid reuse.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) with no flags takes no pointers and returns a new fd.
    unsafe { super::new_fd(libc::syscall(libc::SYS_pidfd_open, pid, 0)) }
}

/// A copy of fd `fd` of the process `pidfd` refers to (pidfd_getfd(2); close-on-exec).
pub fn pidfd_getfd(pidfd: &impl std::os::fd::AsRawFd, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd(2) takes no pointers and returns a new fd.
    unsafe { super::new_fd(libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0)) }
}

/// Marks every fd from `first` up close-on-exec (close_range(2) with CLOSE_RANGE_CLOEXEC):
/// nothing is closed under anyone, and nothing of ours reaches a program we exec.
pub fn cloexec_from(first: u32) {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: close_range(2) takes no pointers and only sets flags on fds.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
}

/// RLIMIT_SIGPENDING of process `pid` (0: this one); None is unlimited.
pub fn set_sigpending(pid: i32, lim: Option<(u64, u64)>) -> io::Result<()> {
    let (cur, max) = lim.unwrap_or((libc::RLIM_INFINITY, libc::RLIM_INFINITY));
    let new = libc::rlimit { rlim_cur: cur, rlim_max: max };
    // SAFETY: prlimit reads one valid struct and gets no old-value pointer.
    super::check(i64::from(unsafe { libc::prlimit(pid, libc::RLIMIT_SIGPENDING, &new, std::ptr::null_mut()) }))
        .map(drop)
}

/// Sets this thread's real, effective and saved uid and gid with the raw system calls
/// (glibc's setresuid changes every thread of the process). `None` keeps an id. The gid
/// goes first: after the uid changes, setting it may no longer be allowed.
pub fn thread_setresid(gid: Option<[u32; 3]>, uid: Option<[u32; 3]>) -> io::Result<()> {
    let keep = u32::MAX; // -1: unchanged
    if let Some([r, e, s]) = gid {
        // SAFETY: a raw syscall taking three integers; it changes this thread only.
        super::check(unsafe { libc::syscall(libc::SYS_setresgid, r, e, s) })?;
    }
    let [r, e, s] = uid.unwrap_or([keep; 3]);
    if uid.is_some() {
        // SAFETY: as above.
        super::check(unsafe { libc::syscall(libc::SYS_setresuid, r, e, s) })?;
    }
    Ok(())
}

/// Drops the capabilities of `mask` (bit = capability number) from this process's bounding
/// set; numbers this kernel does not know are skipped. Async-signal-safe (one prctl per
/// bit), so it may run between fork and exec.
pub fn capbset_drop(mask: u64) -> io::Result<()> {
    for bit in 0..64 {
        if mask & (1 << bit) == 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, bit as libc::c_ulong, 0, 0, 0) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The bounding set of process `pid` (CapBnd of its status).
pub fn cap_bounding(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("CapBnd:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}
