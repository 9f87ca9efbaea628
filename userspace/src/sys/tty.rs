//! Terminals: raw mode for the admin's terminal, its window size, and the pty ioctls.
use std::{
    io,
    os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd},
};

use nix::sys::termios::{self, SetArg, Termios};

/// Puts a terminal in raw mode for the life of the value (keys like ^C and ^Z then reach
/// the VE's shell instead of vzctl).
pub struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    /// None when `fd` is not a terminal.
    pub fn enter(fd: BorrowedFd<'a>) -> Option<Self> {
        if !nix::unistd::isatty(fd).unwrap_or(false) {
            return None;
        }
        let saved = termios::tcgetattr(fd).ok()?;
        let mut t = saved.clone();
        termios::cfmakeraw(&mut t);
        let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &t);
        Some(Self { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}

/// Gives `to` (a pty) the window size of `from` if that is a terminal.
pub fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    // SAFETY: winsize is plain data the first ioctl fills; both ioctls take a pointer to
    // one winsize that lives across the call.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// The slave side of a pty master, unlocked and opened without becoming our controlling
/// terminal (TIOCSPTLCK, TIOCGPTPEER: no path lookup, so nothing planted is followed).
pub fn pty_peer(master: &impl AsFd) -> io::Result<OwnedFd> {
    let m = master.as_fd().as_raw_fd();
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int that lives across the call.
    super::check(i64::from(unsafe { libc::ioctl(m, libc::TIOCSPTLCK, &unlock) }))?;
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new fd.
    unsafe {
        super::new_fd(i64::from(libc::ioctl(m, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC)))
    }
}

/// The number of a pty master's slave (its /dev/pts/N, TIOCGPTN).
pub fn pty_number(master: &impl AsFd) -> io::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int that lives across the call.
    super::check(i64::from(unsafe { libc::ioctl(master.as_fd().as_raw_fd(), libc::TIOCGPTN, &mut n) }))?;
    Ok(n)
}
