//! Per-VE lock and intent files.
//!
//! Two vzctl runs on one VEID are serialised, runs on different VEIDs go in parallel. An
//! flock on `LOCKDIR/VEID.lck` is released by the kernel when the holder exits, even by
//! SIGKILL, so a killed vzctl never leaves a stale lock. The holder writes its pid into
//! the file, so a waiter can say who it waits for.
//!
//! An intent file (`LOCKDIR/VEID.creating`, `VEID.starting`) is written before a command
//! starts changing the system and removed when it has finished: whoever takes the lock
//! and finds one knows the command that wrote it was killed half-way (it held the lock),
//! and repairs what it left.
use std::{
    fs, io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::config::ConfFile;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("container {veid} is locked by another vzctl{} (waited {secs} s)", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Busy { veid: u32, holder: Option<i32>, secs: u64 },
}

impl LockError {
    pub fn kind(&self) -> crate::kind::Kind {
        match self {
            LockError::Busy { .. } => crate::kind::Kind::Locked,
            LockError::Io { .. } => crate::kind::Kind::System,
        }
    }
}

/// Held for the life of the value (unless skipped: `--skiplock`).
#[derive(Debug)]
pub struct VeLock {
    /// The flock is held while this file is open.
    _file: Option<fs::File>,
    pub path: PathBuf,
}

fn open_lock(path: &Path) -> Result<fs::File, LockError> {
    let err = |source| LockError::Io { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path).map_err(err)
}

impl VeLock {
    fn path_of(lock_dir: &Path, veid: u32) -> PathBuf {
        lock_dir.join(format!("{veid}.lck"))
    }

    fn held(file: fs::File, path: PathBuf) -> Self {
        // Who holds it, for those who find it busy (best effort: the lock is the flock).
        // Written over the last holder's, then cut to length: the file never reads empty,
        // and it is not cleared at release (it is read only while the lock is busy), so a
        // busy lock always names a pid.
        let line = format!("{}\n", std::process::id());
        if std::os::unix::fs::FileExt::write_all_at(&file, line.as_bytes(), 0).is_ok() {
            let _ = file.set_len(line.len() as u64);
        }
        Self { _file: Some(file), path }
    }

    /// A lock not taken (`--skiplock`): another vzctl may hold it; its pid stays written.
    pub fn skipped(lock_dir: &Path, veid: u32) -> Self {
        Self { _file: None, path: Self::path_of(lock_dir, veid) }
    }

    /// Waits for and takes the VE's lock.
    pub fn take(lock_dir: &Path, veid: u32) -> Result<Self, LockError> {
        let path = Self::path_of(lock_dir, veid);
        let file = open_lock(&path)?;
        crate::sys::flock(&file, true, true).map_err(|source| LockError::Io { path: path.clone(), source })?;
        Ok(Self::held(file, path))
    }

    /// Takes the VE's lock, waiting at most `wait`; None if another vzctl still holds it.
    pub fn take_within(lock_dir: &Path, veid: u32, wait: Duration) -> Result<Option<Self>, LockError> {
        let path = Self::path_of(lock_dir, veid);
        let file = open_lock(&path)?;
        let end = Instant::now() + wait;
        loop {
            match crate::sys::flock(&file, true, false) {
                Ok(()) => return Ok(Some(Self::held(file, path))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(source) => return Err(LockError::Io { path, source }),
            }
            if Instant::now() >= end {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of the vzctl holding a VE's lock, as it wrote it.
    pub fn holder(lock_dir: &Path, veid: u32) -> Option<i32> {
        // The first line: a longer pid of the last holder may still follow until cut.
        fs::read_to_string(Self::path_of(lock_dir, veid)).ok()?.lines().next()?.trim().parse().ok()
    }

    /// A lock of the whole installation (`LOCKDIR/NAME.lck`): id range allocation.
    pub fn global(lock_dir: &Path, name: &str) -> Result<Self, LockError> {
        let path = lock_dir.join(format!("{name}.lck"));
        let file = open_lock(&path)?;
        crate::sys::flock(&file, true, true).map_err(|source| LockError::Io { path: path.clone(), source })?;
        Ok(Self::held(file, path))
    }
}

/// What a command is about to do to a VE, kept until it is done.
#[derive(Debug)]
pub struct Intent {
    path: PathBuf,
    done: bool,
}

impl Intent {
    fn path_of(lock_dir: &Path, veid: u32, kind: &str) -> PathBuf {
        lock_dir.join(format!("{veid}.{kind}"))
    }

    /// Records an intent (with what repairing it needs to know), atomically.
    pub fn begin(lock_dir: &Path, veid: u32, kind: &str, facts: &ConfFile) -> Result<Self, crate::config::ConfigError> {
        let path = Self::path_of(lock_dir, veid, kind);
        facts.write_runtime(&path)?;
        Ok(Self { path, done: false })
    }

    /// The command moved on: what repairing it needs now replaces what was recorded.
    pub fn update(&self, facts: &ConfFile) -> Result<(), crate::config::ConfigError> {
        facts.write_runtime(&self.path)
    }

    /// The command finished: the intent goes.
    pub fn done(mut self) {
        self.done = true;
        let _ = fs::remove_file(&self.path);
    }

    /// An intent a killed command left (only meaningful while holding the VE's lock).
    pub fn left(lock_dir: &Path, veid: u32, kind: &str) -> Option<ConfFile> {
        let p = Self::path_of(lock_dir, veid, kind);
        p.exists().then(|| ConfFile::read(&p).unwrap_or_default())
    }

    pub fn forget(lock_dir: &Path, veid: u32, kind: &str) {
        let _ = fs::remove_file(Self::path_of(lock_dir, veid, kind));
    }
}

impl Drop for Intent {
    /// A command that failed (returned an error) rolled back what it made: its intent is
    /// settled too. Only a killed command leaves the file.
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_names_its_holder_from_taking_it_on_and_never_reads_empty() {
        let dir = std::env::temp_dir().join(format!("vz-lock-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // A longer pid of an earlier holder, not yet cut: the first line is the holder.
        fs::write(VeLock::path_of(&dir, 101), "987\n5\n").unwrap();
        assert_eq!(VeLock::holder(&dir, 101), Some(987));
        fs::write(VeLock::path_of(&dir, 101), "4294967\n").unwrap();
        let l = VeLock::take(&dir, 101).unwrap();
        assert_eq!(VeLock::holder(&dir, 101), Some(std::process::id() as i32));
        drop(l);
        // Left written at release: only read while the lock is busy.
        assert_eq!(VeLock::holder(&dir, 101), Some(std::process::id() as i32));
        fs::remove_dir_all(&dir).unwrap();
    }
}
