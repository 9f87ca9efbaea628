//! The VE's own /proc view: LXCFS (what LXC and Incus use) serves meminfo, cpuinfo, stat,
//! uptime, loadavg, diskstats, swaps and the online CPU list from the reading process's
//! cgroups; each VE's init binds those files over its own before pivot_root. One LXCFS
//! serves the node: the one running at LXCFS (vz.conf, default /var/lib/lxcfs, where
//! Debian's lxcfs.service mounts it), else vzctl starts it there. Without the lxcfs
//! program, VEs start and see the host's figures; vzctl says so.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{config::Paths, lock::VeLock, sys::mountinfo::MountTable};

/// The files a VE gets from LXCFS, relative to its root (and to the LXCFS mount).
pub const FILES: &[&str] = &[
    "proc/meminfo",
    "proc/cpuinfo",
    "proc/stat",
    "proc/uptime",
    "proc/loadavg",
    "proc/diskstats",
    "proc/swaps",
    "sys/devices/system/cpu/online",
];

#[derive(Debug, thiserror::Error)]
pub enum LxcfsError {
    #[error("lxcfs is not installed: /proc/meminfo, /proc/cpuinfo, uptime and the like in the container show the host's (apt install lxcfs)")]
    Missing,
    #[error("lxcfs did not come up at {dir}: {why}")]
    NotUp { dir: PathBuf, why: String },
}

/// statfs(2)'s f_type of a FUSE file system.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

fn serving(dir: &Path) -> bool {
    // The common case without reading the whole mount table: a live FUSE mount on our
    // own directory (a dead LXCFS fails statfs with ENOTCONN, and the table decides).
    let live_fuse = nix::sys::statfs::statfs(dir).is_ok_and(|s| s.filesystem_type().0 == FUSE_SUPER_MAGIC);
    if live_fuse && crate::sys::mount::is_mount_root(dir) == Some(true) {
        return true;
    }
    MountTable::read().ok().and_then(|t| t.top_at(dir).map(|m| m.fstype.contains("lxcfs"))).unwrap_or(false)
}

/// The pid file of the LXCFS vzctl starts.
pub fn pidfile(paths: &Paths) -> PathBuf {
    paths.lock_dir.join("lxcfs.pid")
}

/// The LXCFS mount VEs bind from, started if it is not running; None when LXCFS=no.
pub fn ensure(paths: &Paths) -> Result<Option<PathBuf>, LxcfsError> {
    let Some(dir) = paths.lxcfs.clone() else { return Ok(None) };
    if serving(&dir) {
        return Ok(Some(dir));
    }
    let not_up = |why: String| LxcfsError::NotUp { dir: dir.clone(), why };
    // Two starts at once must not stack two LXCFS on one directory.
    let _lock = VeLock::global(&paths.lock_dir, "lxcfs").map_err(|e| not_up(e.to_string()))?;
    if serving(&dir) {
        return Ok(Some(dir));
    }
    std::fs::create_dir_all(&dir).map_err(|e| not_up(e.to_string()))?;
    // Daemonises once its mount is up; --enable-cfs: the CPU count from the VE's CFS quota
    // (--cpus); -l: its own load average.
    let out = Command::new("lxcfs")
        .args(["--enable-cfs", "-l", "-p"])
        .arg(pidfile(paths))
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(
            |e| if e.kind() == std::io::ErrorKind::NotFound { LxcfsError::Missing } else { not_up(e.to_string()) },
        )?;
    let end = Instant::now() + Duration::from_secs(10);
    let mut child = out;
    while !serving(&dir) {
        if let Ok(Some(s)) = child.try_wait() {
            if !s.success() {
                let mut err = String::new();
                if let Some(e) = child.stderr.as_mut() {
                    let _ = std::io::Read::read_to_string(&mut std::io::Read::take(e, 2048), &mut err);
                }
                return Err(not_up(format!("{s}: {}", err.lines().last().unwrap_or("").trim())));
            }
        }
        if Instant::now() > end {
            return Err(not_up("no mount after 10 s".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Some(dir))
}
