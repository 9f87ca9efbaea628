//! File descriptors: reads and writes that retry, non-blocking mode, pipes, and waiting
//! for input.
use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd, OwnedFd},
    time::Duration,
};

use nix::{
    errno::Errno,
    fcntl::{fcntl, FcntlArg, OFlag},
    poll::{PollFd, PollFlags, PollTimeout},
};

/// read(2), retried on EINTR.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(fd, buf) {
            Err(Errno::EINTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// write(2), retried on EINTR; returns what was written (maybe less than `buf`).
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::write(fd, buf) {
            Err(Errno::EINTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// Writes all of `buf`; on a non-blocking fd a full pipe is `WouldBlock`.
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match write(fd, buf)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => buf = &buf[n..],
        }
    }
    Ok(())
}

/// Sets or clears O_NONBLOCK.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let mut fl = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fl.set(OFlag::O_NONBLOCK, on);
    fcntl(fd, FcntlArg::F_SETFL(fl))?;
    Ok(())
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

fn timeout_of(d: Duration) -> PollTimeout {
    PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX)
}

/// Whether `fd` has input (or hang-up) within `timeout`; EINTR counts as none yet.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut p = [PollFd::new(fd, PollFlags::POLLIN)];
    match nix::poll::poll(&mut p, timeout_of(timeout)) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Polls each present fd for its events (None: a slot poll skips); returns each slot's
/// revents, all empty on a timeout or EINTR. `timeout` None waits for ever.
pub fn poll(fds: &[(Option<BorrowedFd<'_>>, PollFlags)], timeout: Option<Duration>) -> io::Result<Vec<PollFlags>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, ev)| libc::pollfd { fd: fd.map_or(-1, |f| f.as_raw_fd()), events: ev.bits(), revents: 0 })
        .collect();
    let t = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
    // SAFETY: poll reads and writes our own array of the length given; the fds are
    // borrowed for the call (a negative one is skipped by the kernel).
    if unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, t) } < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
        p.iter_mut().for_each(|x| x.revents = 0);
    }
    Ok(p.iter().map(|x| PollFlags::from_bits_retain(x.revents)).collect())
}

/// An owned fd for tokio's reactor: it never hands out a different fd, and owns the one it
/// gives for its whole life.
pub struct Owned<T>(pub T);

impl<T: std::os::fd::AsFd> std::os::fd::AsRawFd for Owned<T> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.0.as_fd())
    }
}

/// `inner` registered with the current tokio reactor.
pub fn async_fd<T: std::os::fd::AsFd>(inner: T) -> io::Result<tokio::io::unix::AsyncFd<Owned<T>>> {
    // SAFETY: `Owned` owns `inner`, whose fd stays open and the same until the AsyncFd
    // drops it.
    unsafe { tokio::io::unix::AsyncFd::register(Owned(inner)) }.map_err(|e| e.into_parts().1)
}
