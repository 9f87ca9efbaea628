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
    os::fd::{AsFd as _, BorrowedFd, OwnedFd},
    time::{Duration, Instant},
};

use nix::poll::PollFlags;

use crate::sys::fd;

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
    /// These bytes, then this process's stdin (`enter --exec` with piped input).
    BytesThenStdin(Vec<u8>),
}

/// A process to wait for, as a pidfd (readable when it has exited).
pub fn pidfd(pid: i32) -> io::Result<OwnedFd> {
    crate::sys::proc::pidfd_open(pid)
}

/// Copies to the admin's side; if it went away (a closed pipe), nothing is kept.
fn write_all(to: BorrowedFd<'_>, buf: &[u8]) {
    let _ = fd::write_all(to, buf);
}

/// One output pipe of the command and where it goes.
struct Out<'a> {
    pipe: Option<OwnedFd>,
    to: BorrowedFd<'a>,
}

impl Out<'_> {
    /// Copies what is readable now; false at end of file.
    fn pump(&mut self, buf: &mut [u8]) -> bool {
        let Some(p) = &self.pipe else { return false };
        loop {
            // The pipe is non-blocking.
            match fd::read(p.as_fd(), buf) {
                Ok(0) => {
                    self.pipe = None;
                    return false;
                }
                Ok(n) => write_all(self.to, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => {
                    self.pipe = None;
                    return false;
                }
            }
        }
    }
}

/// Relays until the process behind `exited` is gone and its output is drained. `stdin`,
/// `stdout`, `stderr` are this side's ends of the command's pipes.
pub fn relay(exited: &OwnedFd, stdin: Option<OwnedFd>, stdout: OwnedFd, stderr: OwnedFd, input: Input) {
    let (out, err) = (io::stdout(), io::stderr());
    let mut outs = [Out { pipe: Some(stdout), to: out.as_fd() }, Out { pipe: Some(stderr), to: err.as_fd() }];
    for p in outs.iter().filter_map(|o| o.pipe.as_ref()).chain(stdin.as_ref()) {
        let _ = fd::set_nonblocking(p.as_fd(), true);
    }
    let mut to_child = stdin;
    let admin_in = io::stdin();
    let (mut pending, mut read_stdin) = match input {
        Input::Stdin => (Vec::new(), true),
        Input::Bytes(b) => (b, false),
        Input::BytesThenStdin(b) => (b, true),
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
        let writing = match (&to_child, pending.is_empty(), done_at) {
            (Some(p), false, None) => Some(p.as_fd()),
            _ => None,
        };
        let slots = [
            (Some(exited.as_fd()), PollFlags::POLLIN),
            (outs[0].pipe.as_ref().map(|p| p.as_fd()), PollFlags::POLLIN),
            (outs[1].pipe.as_ref().map(|p| p.as_fd()), PollFlags::POLLIN),
            (want_stdin.then(|| admin_in.as_fd()), PollFlags::POLLIN),
            (writing, PollFlags::POLLOUT),
        ];
        let timeout = done_at.map(|_| Duration::from_millis(20));
        let Ok(fds) = fd::poll(&slots, timeout) else { return };
        if done_at.is_none() && !fds[0].is_empty() {
            done_at = Some(Instant::now());
            // The command is gone: nothing more from the admin reaches the VE.
            to_child = None;
            read_stdin = false;
        }
        let mut got = false;
        for (i, o) in outs.iter_mut().enumerate() {
            if !fds[1 + i].is_empty() {
                got = true;
                o.pump(&mut buf);
            }
        }
        if got {
            last_data = Instant::now();
        }
        if !fds[3].is_empty() {
            // Poll said stdin is readable, so this does not block.
            match fd::read(admin_in.as_fd(), &mut buf) {
                Ok(n) if n > 0 => pending.extend_from_slice(&buf[..n]),
                _ => read_stdin = false,
            }
        }
        if fds[4].contains(PollFlags::POLLOUT) {
            if let Some(p) = &to_child {
                // The pipe is non-blocking.
                match fd::write(p.as_fd(), &pending) {
                    Ok(w) => {
                        pending.drain(..w);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        // The command closed its stdin (EPIPE): drop what it did not want.
                        pending.clear();
                        read_stdin = false;
                        to_child = None;
                    }
                }
            }
        } else if fds[4].intersects(PollFlags::POLLERR | PollFlags::POLLHUP) {
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
    let mk = fd::pipe;
    let (in_r, in_w) = mk()?;
    let (out_r, out_w) = mk()?;
    let (err_r, err_w) = mk()?;
    Ok(Pipes { child: [in_r, out_w, err_w], ours: [in_w, out_r, err_r] })
}
