//! The host's kernel interfaces, behind safe functions: the only place in the library with
//! `unsafe` (`cargo xtask lint` refuses it anywhere else). Most calls go through nix; what
//! nix does not cover here is raw and small: bpf(2) commands (`bpf`), loop, quota and inode
//! ioctls (`disk`), fspick/fsconfig and open_tree/move_mount (`mount`), netlink and raw
//! sockets (`net`), pidfds, close_range, prlimit and per-thread set*id (`proc`), pty
//! ioctls and window size (`tty`), and the code between fork and exec (`spawn`). Also the
//! one mount table parser (`mountinfo`), the one flock, and the in-root file API every
//! access to a VE's files goes through (`inroot`).
pub mod bpf;
pub mod disk;
pub mod fd;
pub mod inroot;
pub mod mount;
pub mod mountinfo;
pub mod net;
pub mod proc;
pub mod seccomp;
pub mod spawn;
pub mod syscall;
pub mod tty;

use std::{
    fs, io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

/// A raw system call's result: its value, or the error it left in errno (a negative value).
pub(crate) fn check(r: i64) -> io::Result<i64> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The new fd a raw system call returned, or the error it left in errno.
///
/// # Safety
/// `r` must come straight from a call that returns a new fd (or -1): nothing else may own it.
pub(crate) unsafe fn new_fd(r: i64) -> io::Result<OwnedFd> {
    let fd = check(r)?;
    // SAFETY: per this function's contract, a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// flock(2) on `file`, retried on EINTR. `exclusive` or shared; `wait` false returns
/// `WouldBlock` when another holds it.
/// Writes out the file system holding `dir` (syncfs(2)).
pub fn syncfs(dir: &std::path::Path) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let f = fs::File::open(dir)?;
    // SAFETY: syncfs takes an fd we own for the call.
    check(i64::from(unsafe { libc::syncfs(f.as_raw_fd()) })).map(|_| ())
}

pub fn flock(file: &fs::File, exclusive: bool, wait: bool) -> io::Result<()> {
    let mut op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
    if !wait {
        op |= libc::LOCK_NB;
    }
    loop {
        // SAFETY: a valid fd for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A plain-data record (a `#[repr(C)]` type shared with the kernel side) from the start of
/// `bytes`, however aligned; None if `bytes` is too short.
pub fn read_pod<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: `bytes` holds at least size_of::<T>() bytes and Pod types accept any bit
    // pattern; read_unaligned needs no alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_exclusive_flock_without_wait_would_block() {
        let path = std::env::temp_dir().join(format!("vz-flock-test-{}", std::process::id()));
        let a = fs::File::create(&path).unwrap();
        let b = fs::File::open(&path).unwrap();
        flock(&a, true, true).unwrap();
        let e = flock(&b, true, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(a);
        flock(&b, true, false).unwrap();
        fs::remove_file(&path).unwrap();
    }
}
