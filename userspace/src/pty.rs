//! Relaying a terminal to a VE's pseudo-terminal (`vzctl enter`).
use std::{
    io,
    os::fd::{AsRawFd as _, OwnedFd, RawFd},
    process::Child,
};

/// Puts a terminal in raw mode for the life of the value (keys like ^C and ^Z then reach
/// the VE's shell instead of vzctl).
struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: RawFd) -> Option<Self> {
        // SAFETY: termios is plain data; tcgetattr fills it.
        unsafe {
            if libc::isatty(fd) != 1 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
            Some(Self { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the saved attributes.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: valid buffer.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Copies this process's stdin to `master` and `master` to stdout until the shell exits;
/// returns its exit code. `first` is typed into the shell first.
pub fn relay(master: OwnedFd, mut child: Child, first: Option<&str>) -> io::Result<i32> {
    let m = master.as_raw_fd();
    let _raw = RawMode::enter(0);
    // SAFETY: winsize is plain data; copy the terminal size if stdin is a terminal.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(m, libc::TIOCSWINSZ, &ws);
        }
    }
    if let Some(cmd) = first {
        let _ = write_all(m, format!("{cmd}\n").as_bytes());
    }
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    let mut exited = None;
    loop {
        let mut fds = [
            libc::pollfd { fd: m, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: if stdin_open { 0 } else { -1 }, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 100) };
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            // SAFETY: valid buffer.
            let r = unsafe { libc::read(m, buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                break; // EIO: every holder of the slave side is gone.
            }
            let _ = write_all(1, &buf[..r as usize]);
            continue;
        }
        if fds[1].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            // SAFETY: valid buffer.
            let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                stdin_open = false;
            } else if write_all(m, &buf[..r as usize]).is_err() {
                break;
            }
        }
        if exited.is_none() {
            exited = child.try_wait().ok().flatten();
        } else if n == 0 {
            // The shell is gone and nothing more came for a poll period (its background
            // jobs may still hold the terminal).
            break;
        }
    }
    let status = match exited {
        Some(s) => s,
        None => child.wait()?,
    };
    Ok(status.code().unwrap_or(255))
}
