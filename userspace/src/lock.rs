//! Per-VE lock: two vzctl runs on one VEID are serialised, runs on different VEIDs go in
//! parallel. An flock on `LOCKDIR/VEID.lck` is released by the kernel when the holder
//! exits, even by SIGKILL, so a killed vzctl never leaves a stale lock.
use std::{
    fs, io,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Held for the life of the value.
#[derive(Debug)]
pub struct VeLock {
    _file: fs::File,
    pub path: PathBuf,
}

impl VeLock {
    /// Waits for and takes the VE's lock.
    pub fn take(lock_dir: &Path, veid: u32) -> Result<Self, LockError> {
        let path = lock_dir.join(format!("{veid}.lck"));
        let err = |source| LockError::Io { path: path.clone(), source };
        fs::create_dir_all(lock_dir).map_err(err)?;
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(err)?;
        loop {
            // SAFETY: valid fd; blocking exclusive lock.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(err(e));
            }
        }
        Ok(Self { _file: file, path })
    }
}
