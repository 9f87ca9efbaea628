//! Relaying a VE command's standard streams through pipes (`vzctl exec`, `exec2`,
//! `runscript`), as OpenVZ's vzctl does.
//!
//! A VE process never gets one of the admin's file descriptors: not the terminal (which
//! would let it type commands into the admin's shell with TIOCSTI, or keep reading what
//! the admin types after vzctl returned), not a file. It gets pipes, and vzctl copies
//! between them and its own stdio while the command runs. When the command has exited,
//! what its output pipes still hold is drained for a short, bounded time (a background
//! process of the VE may keep them open forever), and nothing is read from the admin any
//! more.
use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    time::{Duration, Instant},
};

/// After the command exits: stop when its output has been quiet this long...
const DRAIN_IDLE: Duration = Duration::from_millis(100);
/// ...or after this long in all.
const DRAIN_MAX: Duration = Duration::from_secs(1);

/// What the command reads on its stdin.
pub enum Input {
    /// This process's stdin, until it ends (or the command exits).
    Stdin,
    /// These bytes, then end of file (runscript's script).
    Bytes(Vec<u8>),
}

/// A process to wait for, as a pidfd (readable when it has exited).
pub fn pidfd(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) with no flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

fn write_all(fd: RawFd, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: valid buffer and fd.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The admin's side went away (a closed pipe): nothing to keep.
            return;
        }
        buf = &buf[n as usize..];
    }
}

/// One output pipe of the command and where it goes.
struct Out {
    pipe: Option<OwnedFd>,
    to: RawFd,
}

impl Out {
    /// Copies what is readable now; false at end of file.
    fn pump(&mut self, buf: &mut [u8]) -> bool {
        let Some(p) = &self.pipe else { return false };
        loop {
            // SAFETY: valid buffer; the pipe is non-blocking.
            let n = unsafe { libc::read(p.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            match n {
                0 => {
                    self.pipe = None;
                    return false;
                }
                n if n > 0 => write_all(self.to, &buf[..n as usize]),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    if e.kind() != io::ErrorKind::WouldBlock {
                        self.pipe = None;
                        return false;
                    }
                    return true;
                }
            }
        }
    }
}

/// Relays until the process behind `exited` is gone and its output is drained. `stdin`,
/// `stdout`, `stderr` are this side's ends of the command's pipes.
pub fn relay(exited: &OwnedFd, stdin: Option<OwnedFd>, stdout: OwnedFd, stderr: OwnedFd, input: Input) {
    let mut outs = [Out { pipe: Some(stdout), to: 1 }, Out { pipe: Some(stderr), to: 2 }];
    for o in &outs {
        if let Some(p) = &o.pipe {
            nonblocking(p.as_raw_fd());
        }
    }
    let mut to_child = stdin;
    if let Some(p) = &to_child {
        nonblocking(p.as_raw_fd());
    }
    let (mut pending, mut read_stdin) = match input {
        Input::Stdin => (Vec::new(), true),
        Input::Bytes(b) => (b, false),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut done_at: Option<Instant> = None;
    let mut last_data = Instant::now();
    loop {
        if to_child.is_some() && pending.is_empty() && !read_stdin {
            // Everything is written and no more comes: end of file for the command.
            to_child = None;
        }
        let want_stdin = read_stdin && pending.is_empty() && to_child.is_some() && done_at.is_none();
        let mut fds = [
            libc::pollfd { fd: exited.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: outs[0].pipe.as_ref().map_or(-1, |p| p.as_raw_fd()), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: outs[1].pipe.as_ref().map_or(-1, |p| p.as_raw_fd()), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: if want_stdin { 0 } else { -1 }, events: libc::POLLIN, revents: 0 },
            libc::pollfd {
                fd: match (&to_child, pending.is_empty(), done_at) {
                    (Some(p), false, None) => p.as_raw_fd(),
                    _ => -1,
                },
                events: libc::POLLOUT,
                revents: 0,
            },
        ];
        let timeout = if done_at.is_some() { 20 } else { -1 };
        // SAFETY: a valid array of pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
        if done_at.is_none() && fds[0].revents != 0 {
            done_at = Some(Instant::now());
            // The command is gone: nothing more from the admin reaches the VE.
            to_child = None;
            read_stdin = false;
        }
        let mut got = false;
        for (i, o) in outs.iter_mut().enumerate() {
            if fds[1 + i].revents != 0 {
                got = true;
                o.pump(&mut buf);
            }
        }
        if got {
            last_data = Instant::now();
        }
        if fds[3].revents != 0 {
            // SAFETY: valid buffer; poll said stdin is readable, so this does not block.
            let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                read_stdin = false;
            } else {
                pending.extend_from_slice(&buf[..r as usize]);
            }
        }
        if fds[4].revents & libc::POLLOUT != 0 {
            if let Some(p) = &to_child {
                // SAFETY: valid buffer; the pipe is non-blocking.
                let w = unsafe { libc::write(p.as_raw_fd(), pending.as_ptr().cast(), pending.len()) };
                if w > 0 {
                    pending.drain(..w as usize);
                } else if w < 0 && io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock {
                    // The command closed its stdin (EPIPE): drop what it did not want.
                    pending.clear();
                    read_stdin = false;
                    to_child = None;
                }
            }
        } else if fds[4].revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            pending.clear();
            read_stdin = false;
            to_child = None;
        }
        if let Some(t) = done_at {
            let open = outs.iter().any(|o| o.pipe.is_some());
            if !open || last_data.elapsed() >= DRAIN_IDLE || t.elapsed() >= DRAIN_MAX {
                return;
            }
        }
    }
}

/// Three pipes for a command: (its stdin, stdout, stderr) and our ends of them.
pub struct Pipes {
    pub child: [OwnedFd; 3],
    pub ours: [OwnedFd; 3],
}

pub fn pipes() -> io::Result<Pipes> {
    let mk = || -> io::Result<(OwnedFd, OwnedFd)> {
        let mut fds = [0; 2];
        // SAFETY: valid out-array of two fds.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned these fds.
        Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
    };
    let (in_r, in_w) = mk()?;
    let (out_r, out_w) = mk()?;
    let (err_r, err_w) = mk()?;
    Ok(Pipes { child: [in_r, out_w, err_w], ours: [in_w, out_r, err_r] })
}
