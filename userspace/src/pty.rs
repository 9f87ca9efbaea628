//! Relaying a terminal to a VE's pseudo-terminal (`vzctl enter`).
use std::{
    io,
    os::fd::{AsFd as _, OwnedFd},
    process::Child,
    time::Duration,
};

use nix::poll::PollFlags;

use crate::sys::{fd, tty};

/// Copies this process's stdin to `master` and `master` to stdout until the shell exits;
/// returns its exit code. `first` is typed into the shell first.
pub fn relay(master: OwnedFd, mut child: Child, first: Option<&str>) -> io::Result<i32> {
    let m = master.as_fd();
    let (admin_in, admin_out) = (io::stdin(), io::stdout());
    let _raw = tty::RawMode::enter(admin_in.as_fd());
    tty::copy_window_size(admin_in.as_fd(), m);
    if let Some(cmd) = first {
        let _ = fd::write_all(m, format!("{cmd}\n").as_bytes());
    }
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    let mut exited = None;
    loop {
        let slots = [(Some(m), PollFlags::POLLIN), (stdin_open.then(|| admin_in.as_fd()), PollFlags::POLLIN)];
        let Ok(fds) = fd::poll(&slots, Some(Duration::from_millis(100))) else { break };
        let quiet = fds.iter().all(|f| f.is_empty());
        if fds[0].intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match fd::read(m, &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = fd::write_all(admin_out.as_fd(), &buf[..n]);
                }
                _ => break, // EIO: every holder of the slave side is gone.
            }
            continue;
        }
        if fds[1].intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
            match fd::read(admin_in.as_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    if fd::write_all(m, &buf[..n]).is_err() {
                        break;
                    }
                }
                _ => stdin_open = false,
            }
        }
        if exited.is_none() {
            exited = child.try_wait().ok().flatten();
        } else if quiet {
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
