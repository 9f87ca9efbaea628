//! A VE's console (`vzctl console VEID`). At start, stage 1 makes a pty in the VE's own
//! devpts instance before anything of the VE runs, links `/dev/console` and `/dev/tty1` to
//! its slave, and hands the master to vzctl, which gives it to a **console keeper**: a
//! small daemon of the host (`vzctl __console`), one per running VE, that holds the master
//! for the VE's life. It always reads what the VE writes to its console (so a VE writing
//! with nobody attached never blocks, and nothing piles up on the host), and passes it on
//! to at most one attached `vzctl console`, whose keys it writes to the console. vzctl
//! reaches the keeper on a unix socket in LOCKDIR (root's, mode 0600). The keeper ends
//! when the VE's init does.
//!
//! Nothing of the host reaches the VE: the keeper is outside it, and the VE gets only its
//! own pty; what it writes is relayed to the admin's terminal as `vzctl enter` relays it,
//! and never blocks the keeper (an attached client that does not read loses output).
use std::{
    io::{self, Read as _, Write as _},
    os::{
        fd::{AsFd as _, OwnedFd},
        unix::{
            fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _},
            net::{UnixListener, UnixStream},
        },
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use nix::poll::PollFlags;

use crate::sys::{fd, tty};

/// The fd the keeper finds the master on.
const MASTER_FD: i32 = 3;
const ESC: u8 = 0x1b;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(
        "the console of container {0} is not kept (it runs since before consoles, or was restored): restart it for one"
    )]
    NotKept(u32),
    #[error("only tty1 (the console) is kept for a container, not tty{0}")]
    BadTty(String),
    #[error("the console of container {0} is attached in another vzctl console")]
    Busy(u32),
    #[error("a checkpoint cannot carry container {veid}'s console, whose other end is the host's: {who} keep it open (stop them, or their getty, first)")]
    Held { veid: u32, who: String },
    #[error("console of container {veid}: {source}")]
    Io { veid: u32, source: io::Error },
}

impl ConsoleError {
    pub fn kind(&self) -> crate::kind::Kind {
        match self {
            ConsoleError::BadTty(_) => crate::kind::Kind::BadValue,
            ConsoleError::NotKept(_) | ConsoleError::Busy(_) | ConsoleError::Held { .. } => crate::kind::Kind::Exec,
            ConsoleError::Io { .. } => crate::kind::Kind::System,
        }
    }
}

/// Where a VE's keeper listens.
pub fn socket_path(lock_dir: &Path, veid: u32) -> PathBuf {
    lock_dir.join(format!("{veid}.console"))
}

/// Where the number of a VE's console pty (its /dev/pts/N) is kept while it runs.
fn number_path(lock_dir: &Path, veid: u32) -> PathBuf {
    lock_dir.join(format!("{veid}.console.pty"))
}

/// The number of a running VE's console pty (its /dev/pts/N), if it has one.
pub fn pty_number(lock_dir: &Path, veid: u32) -> Option<u64> {
    std::fs::read_to_string(number_path(lock_dir, veid)).ok()?.trim().parse().ok()
}

/// What the VE last wrote to its console (`LOCKDIR/VEID.console.log`): kept after the VE
/// stops, so a start can say why its init died; started afresh by each start.
pub fn log_path(lock_dir: &Path, veid: u32) -> PathBuf {
    lock_dir.join(format!("{veid}.console.log"))
}

/// The console log is cut back to its last `LOG_KEEP` bytes once it passes `LOG_MAX`: a VE
/// writing to its console without end costs the host a bounded file.
const LOG_MAX: u64 = 256 * 1024;
const LOG_KEEP: usize = 32 * 1024;

/// The last `lines` lines the VE wrote to its console, control characters but tabs
/// dropped (they are the VE's: none reaches the admin's terminal).
pub fn last_words(lock_dir: &Path, veid: u32, lines: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(log_path(lock_dir, veid)) else { return Vec::new() };
    let text = String::from_utf8_lossy(&bytes);
    let clean: Vec<String> = text
        .split(['\n', '\r'])
        .map(|l| strip_escapes(l).chars().filter(|c| shown(*c)).take(LINE_MAX).collect::<String>())
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.trim().is_empty())
        .collect();
    clean[clean.len().saturating_sub(lines)..].to_vec()
}

/// The longest line of a VE's console quoted to the admin.
const LINE_MAX: usize = 200;

/// A character of the VE's that may reach the admin's terminal: no control character
/// (tabs aside), no invisible or direction-changing format character.
fn shown(c: char) -> bool {
    (!c.is_control() || c == '\t')
        && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A line without its terminal escape sequences (ESC [ ... final byte), as systemd colours
/// its status lines.
fn strip_escapes(l: &str) -> String {
    let mut out = String::with_capacity(l.len());
    let mut it = l.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            if it.peek() == Some(&'[') {
                it.next();
                for d in it.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Bytes per second the keeper writes to the log at most (bursts up to `LOG_MAX`): a VE
/// flooding its console costs the host's disk no more than that. What goes past it is
/// kept in memory (the last `LOG_KEEP` bytes) and written when the rate allows again, and
/// when init ends: the log always ends with init's last words.
const LOG_RATE: f64 = 64.0 * 1024.0;

/// The console log as the keeper writes it.
struct ConsoleLog {
    file: Option<std::fs::File>,
    size: u64,
    tail: std::collections::VecDeque<u8>,
    /// Bytes the rate allows now, and when that was reckoned.
    tokens: f64,
    at: std::time::Instant,
    /// Some output reached only `tail`.
    behind: bool,
}

impl ConsoleLog {
    fn create(path: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .ok();
        Self {
            file,
            size: 0,
            tail: std::collections::VecDeque::with_capacity(LOG_KEEP),
            tokens: LOG_MAX as f64,
            at: std::time::Instant::now(),
            behind: false,
        }
    }

    fn write(&mut self, data: &[u8]) {
        self.tail.extend(data);
        let over = self.tail.len().saturating_sub(LOG_KEEP);
        self.tail.drain(..over);
        let now = std::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * LOG_RATE).min(LOG_MAX as f64);
        self.at = now;
        let cost = if self.behind { self.tail.len() } else { data.len() } as f64;
        if cost > self.tokens {
            self.behind = true;
            return;
        }
        self.tokens -= cost;
        if self.behind || self.size + data.len() as u64 > LOG_MAX {
            return self.rewrite();
        }
        let Some(f) = &mut self.file else { return };
        if f.write_all(data).is_err() {
            self.file = None;
        }
        self.size += data.len() as u64;
    }

    /// The log becomes the tail (what the VE wrote last).
    fn rewrite(&mut self) {
        let Some(f) = &mut self.file else { return };
        let (a, b) = self.tail.as_slices();
        let done = f
            .set_len(0)
            .and_then(|()| std::io::Seek::rewind(f))
            .and_then(|()| f.write_all(a))
            .and_then(|()| f.write_all(b));
        self.size = self.tail.len() as u64;
        self.behind = false;
        if done.is_err() {
            self.file = None;
        }
    }

    /// At init's end: whatever the rate held back is written.
    fn finish(&mut self) {
        if self.behind {
            self.rewrite();
        }
    }
}

/// The files a running VE's console leaves in LOCKDIR (removed at stop).
pub fn runtime_files(lock_dir: &Path, veid: u32) -> [PathBuf; 2] {
    [socket_path(lock_dir, veid), number_path(lock_dir, veid)]
}

/// The VE's processes that have its console open (pid, command): a checkpoint cannot
/// carry them, since the console's other end is the host's keeper.
pub fn holders(lock_dir: &Path, veid: u32, procs: &[i32]) -> Vec<(i32, String)> {
    let Some(n) = pty_number(lock_dir, veid) else { return Vec::new() };
    // The kernel's name of the file, as the process's own root sees it.
    let want = PathBuf::from(format!("/dev/pts/{n}"));
    procs
        .iter()
        .filter_map(|&pid| {
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
            let holds = fds.flatten().any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == want));
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            holds.then(|| (pid, comm.trim().to_string()))
        })
        .collect()
}

/// Starts the keeper of a VE whose init is `init`, with the console's `master`; returns a
/// pidfd of the keeper (readable once it has ended: it has then logged all init wrote).
pub fn spawn_keeper(lock_dir: &Path, veid: u32, init: i32, master: OwnedFd) -> io::Result<OwnedFd> {
    let n = tty::pty_number(&master)?;
    crate::config::write_runtime(&number_path(lock_dir, veid), format!("{n}\n").as_bytes())
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("__console").arg(socket_path(lock_dir, veid)).arg(init.to_string()).arg(log_path(lock_dir, veid));
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).env_clear();
    crate::sys::spawn::daemon_with_fd(&mut cmd, master, MASTER_FD);
    // Not waited for: it lives as long as the VE, reparented when vzctl exits.
    let child = cmd.spawn()?;
    crate::sys::proc::pidfd_open(child.id() as i32)
}

/// A console for a restored VE (its keeper died with the VE it was dumped from): a new pty
/// of its devpts instance wired as its console, and a keeper. Only while the VE is frozen:
/// nothing of it can race the links.
pub fn renew(lock_dir: &Path, veid: u32, init: i32, uid: u32, gid: u32) -> io::Result<()> {
    use crate::sys::inroot;
    let (master, _) = crate::ns::ve_pty(init).map_err(|e| io::Error::other(e.to_string()))?;
    let dev = inroot::dir_fd(&inroot::ve_root(init)?, "dev", inroot::Follow::Never)?;
    crate::ns::wire_console(&dev, &master, uid, gid)?;
    spawn_keeper(lock_dir, veid, init, master).map(drop)
}

/// Entry of `vzctl __console SOCKET INITPID`: the keeper. Never returns.
pub fn keeper_main(args: &[String]) -> ! {
    let code = match keep(args) {
        Ok(()) => 0,
        Err(e) => {
            tracing::warn!("console keeper: {e}");
            1
        }
    };
    std::process::exit(code)
}

fn keep(args: &[String]) -> io::Result<()> {
    let [sock, init, log] = args else { return Err(io::Error::other("bad __console arguments")) };
    let master = crate::sys::spawn::take_inherited(MASTER_FD).ok_or_else(|| io::Error::other("no console master"))?;
    let init: i32 = init.parse().map_err(|_| io::Error::other("bad init pid"))?;
    let died = crate::sys::proc::pidfd_open(init)?;
    // Held so the master never reads as hung up while no VE process has the console open.
    let _slave = tty::pty_peer(&master)?;
    fd::set_nonblocking(master.as_fd(), true)?;
    let sock = Path::new(sock);
    if std::fs::symlink_metadata(sock).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(sock)?;
    }
    let listener = UnixListener::bind(sock)?;
    std::fs::set_permissions(sock, std::fs::Permissions::from_mode(0o600))?;
    let ours = std::fs::symlink_metadata(sock).map(|m| std::os::unix::fs::MetadataExt::ino(&m))?;
    let mut log = ConsoleLog::create(Path::new(log));
    let result = serve(&master, &died, &listener, &mut log);
    // Unless a keeper of the VE's next start has put its own there meanwhile.
    if std::fs::symlink_metadata(sock).is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == ours) {
        let _ = std::fs::remove_file(sock);
    }
    result
}

fn serve(master: &OwnedFd, died: &OwnedFd, listener: &UnixListener, log: &mut ConsoleLog) -> io::Result<()> {
    let mut client: Option<UnixStream> = None;
    let mut buf = [0u8; 8192];
    loop {
        let c = client.as_ref().map(|c| c.as_fd());
        let slots = [
            (Some(master.as_fd()), PollFlags::POLLIN),
            (Some(listener.as_fd()), PollFlags::POLLIN),
            (Some(died.as_fd()), PollFlags::POLLIN),
            (c, PollFlags::POLLIN),
        ];
        let ready = fd::poll(&slots, None)?;
        if !ready[2].is_empty() {
            // What init wrote just before it died is its last words: read it all first.
            while let Ok(n @ 1..) = fd::read(master.as_fd(), &mut buf) {
                log.write(&buf[..n]);
            }
            log.finish();
            return Ok(());
        }
        if ready[0].intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match fd::read(master.as_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    log.write(&buf[..n]);
                    if let Some(c) = &mut client {
                        // Non-blocking: a client that does not read loses output, the VE
                        // never waits for it.
                        if matches!(c.write(&buf[..n]), Err(ref e) if e.kind() != io::ErrorKind::WouldBlock) {
                            client = None;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // EIO: no slave left (ours is held): not expected; wait for init's end.
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        if !ready[1].is_empty() {
            if let Ok((mut s, _)) = listener.accept() {
                if client.is_some() {
                    let _ = s.write_all(b"BUSY\n");
                } else if s.set_nonblocking(true).is_ok() && s.write_all(b"OK\n").is_ok() {
                    client = Some(s);
                }
            }
        }
        if ready[3].intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            if let Some(c) = &mut client {
                match c.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = fd::write_all(master.as_fd(), &buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    _ => client = None,
                }
            }
        }
    }
}

/// Finds "Esc ." in what the admin types: bytes to pass on, and whether to detach.
#[derive(Default)]
pub struct Detach {
    after_esc: bool,
}

impl Detach {
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if self.after_esc {
                self.after_esc = false;
                if b == b'.' {
                    return true;
                }
                out.push(ESC);
            }
            if b == ESC {
                self.after_esc = true;
            } else {
                out.push(b);
            }
        }
        false
    }
}

/// `vzctl console VEID [TTY]`: attaches this terminal to the VE's console until Esc . is
/// typed or the input ends (or the VE stops).
pub fn attach(lock_dir: &Path, veid: u32, tty_num: Option<&str>) -> Result<(), ConsoleError> {
    if let Some(t) = tty_num.filter(|t| *t != "1") {
        return Err(ConsoleError::BadTty(t.to_string()));
    }
    let io_err = |source| ConsoleError::Io { veid, source };
    let mut s = UnixStream::connect(socket_path(lock_dir, veid)).map_err(|_| ConsoleError::NotKept(veid))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(io_err)?;
    let mut hello = [0u8; 3];
    s.read_exact(&mut hello).map_err(io_err)?;
    if &hello != b"OK\n" {
        return Err(ConsoleError::Busy(veid));
    }
    s.set_read_timeout(None).map_err(io_err)?;
    eprintln!("Attached to CT {veid} (ESC . to detach)");
    let (admin_in, admin_out) = (io::stdin(), io::stdout());
    let raw = tty::RawMode::enter(admin_in.as_fd());
    let (mut buf, mut out, mut detach) = ([0u8; 8192], Vec::new(), Detach::default());
    loop {
        let slots = [(Some(s.as_fd()), PollFlags::POLLIN), (Some(admin_in.as_fd()), PollFlags::POLLIN)];
        let ready = fd::poll(&slots, None).map_err(io_err)?;
        if ready[0].intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match s.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = fd::write_all(admin_out.as_fd(), &buf[..n]);
                }
                // The VE stopped: its keeper is gone.
                _ => break,
            }
        }
        if ready[1].intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            let n = fd::read(admin_in.as_fd(), &mut buf).unwrap_or(0);
            out.clear();
            let done = n == 0 || detach.feed(&buf[..n], &mut out);
            if !out.is_empty() && s.write_all(&out).is_err() {
                break;
            }
            if done {
                break;
            }
        }
    }
    drop(raw);
    eprintln!("\r\nDetached from CT {veid}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooded_console_log_stays_bounded_and_ends_with_the_last_words() {
        let dir = std::env::temp_dir().join(format!("vz-console-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("flood.log");
        let mut log = ConsoleLog::create(&path);
        let line = [b'x'; 1023];
        // 4 MiB at once: far past the rate and the size.
        for i in 0..4096 {
            log.write(&line);
            log.write(if i == 4095 { b"\nlast words\n" } else { b"\n" });
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= LOG_MAX, "log past its bound");
        log.finish();
        let text = std::fs::read(&path).unwrap();
        assert!(text.len() <= LOG_KEEP && text.ends_with(b"last words\n"), "{} bytes", text.len());
        // No hole from a cut file written at its old offset.
        assert!(!text.contains(&0), "the cut log has a hole");
        // Read back as the start's error quotes it: no escapes, controls or bidi
        // overrides reach the admin, lines cut.
        assert_eq!(strip_escapes("\x1b[0;1;31mFailed\x1b[0m to start"), "Failed to start");
        std::fs::write(&path, format!("ok\x1b]0;title\x07 \u{202e}evil\x08\n{}\n", "y".repeat(1000))).unwrap();
        let log = log_path(&dir, 0);
        std::fs::rename(&path, &log).unwrap();
        let words = last_words(&dir, 0, 4);
        assert_eq!(words.len(), 2, "{words:?}");
        assert!(words.iter().all(|w| w.chars().all(shown) && w.chars().count() <= LINE_MAX), "{words:?}");
        assert!(words[0].starts_with("ok") && words[0].ends_with("evil"), "{words:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn esc_dot_detaches_and_any_other_escape_passes() {
        let mut d = Detach::default();
        let mut out = Vec::new();
        assert!(!d.feed(b"ls\x1b[A\n", &mut out));
        assert_eq!(out, b"ls\x1b[A\n");
        out.clear();
        // Split across reads.
        assert!(!d.feed(b"x\x1b", &mut out));
        assert!(d.feed(b".y", &mut out));
        assert_eq!(out, b"x");
        let mut d = Detach::default();
        out.clear();
        assert!(!d.feed(b"\x1b\x1b", &mut out));
        assert!(d.feed(b".", &mut out), "the second Esc starts the sequence");
        assert_eq!(out, b"\x1b");
        assert!(matches!(attach(Path::new("/nonexistent"), 101, Some("2")), Err(ConsoleError::BadTty(t)) if t == "2"));
    }
}
