//! Disk quota: OpenVZ's `--diskspace` and `--diskinodes` (soft:hard) on two layouts.
//!
//! - `ploop` (the image layout): the VE's private area holds `root.hdd/root.hds`, a sparse
//!   file with an ext4 file system of its own, attached to a loop device (direct I/O,
//!   discard, freed when unmounted) and mounted as the VE's root. The file system is the
//!   diskspace hard limit (plus the 2 % ext4 holds back from every writer), so `df` inside
//!   the VE shows its limit; it is fitted again at every mount (resize2fs while unmounted)
//!   after a limit changed. A limit raised while the VE runs grows the file system online
//!   where the host may (ext4's resize needs CAP_SYS_RESOURCE), else at the next start,
//!   said so. A limit lowered while it runs is held by a **balloon**, as OpenVZ's ploop
//!   does: `/.vz-balloon/space`, a file preallocated to the excess (unwritten extents: the
//!   sparse image does not grow for it), in a directory owned by the host's root with mode
//!   0700 and immutable, made at every mount, which the VE's root (root of its user
//!   namespace only) can neither enter, replace nor empty. Inodes likewise: the file
//!   system has room for twice the inode limit and the balloon holds the excess as empty
//!   files. So a write or a file past the hard limit gets ENOSPC inside the VE, as on any
//!   full file system, and the host's file system only ever sees the image file. Lowering
//!   a limit below what the VE uses fails and changes nothing. Soft limits are kept and
//!   shown; nothing refuses at them (as on OpenVZ's ploop).
//! - `simfs` (a directory): the host file system's project quota, where it has one
//!   (project id = VEID on every file of the private area); otherwise the limits are stored
//!   and vzctl says plainly that they are not enforced.
//!
//! `ploop` makes and mounts image-backed private areas, `balloon` enforces their limits,
//! `quota` is the simfs (project quota) layout.
use std::{
    fs,
    io::{self},
    os::{
        fd::{AsFd as _, AsRawFd as _, OwnedFd},
        unix::fs::MetadataExt as _,
    },
    path::{Path, PathBuf},
    process::Command,
};

use nix::{
    fcntl::{AtFlags, OFlag},
    sys::stat::Mode,
};

use crate::sys::mountinfo::MountTable;

mod balloon;
mod ploop;
mod quota;
mod snapshot;

pub use self::{balloon::*, ploop::*, quota::*, snapshot::*};

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("invalid value '{value}' for --{key}: {why}")]
    Bad { key: &'static str, value: String, why: String },
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("{cmd} failed: {why}")]
    Tool { cmd: String, why: String },
}

impl DiskError {
    pub fn kind(&self) -> crate::kind::Kind {
        match self {
            DiskError::Bad { .. } => crate::kind::Kind::BadValue,
            DiskError::Io { .. } | DiskError::Tool { .. } => crate::kind::Kind::System,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DiskError + 'a {
    move |source| DiskError::Io { op, path: path.to_path_buf(), source }
}

fn bad(key: &'static str, value: &str, why: impl Into<String>) -> DiskError {
    DiskError::Bad { key, value: value.to_string(), why: why.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Simfs,
    Ploop,
}

impl Layout {
    pub fn parse(s: &str) -> Result<Self, DiskError> {
        match s.trim() {
            "simfs" => Ok(Layout::Simfs),
            "ploop" => Ok(Layout::Ploop),
            _ => Err(bad("layout", s, "use simfs or ploop")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Layout::Simfs => "simfs",
            Layout::Ploop => "ploop",
        }
    }
}

/// A soft:hard pair (diskspace in 1 KiB blocks, as OpenVZ counts it; diskinodes in inodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: u64,
    pub hard: u64,
}

/// One size in 1 KiB blocks: a number of blocks, or with K, M, G or T; fractions as
/// OpenVZ writes them ("2.2G").
fn parse_kb(key: &'static str, whole: &str, s: &str) -> Result<u64, DiskError> {
    use crate::units::{parse_units_fractional, SizeError};
    parse_units_fractional(s, 1024).map_err(|e| match e {
        SizeError::OutOfRange => bad(key, whole, "out of range"),
        _ => bad(key, whole, "use 1 KiB blocks, or sizes with K, M, G or T, as soft:hard"),
    })
}

/// `--diskspace soft[:hard]` (one value: both).
pub fn parse_diskspace(s: &str) -> Result<Limit, DiskError> {
    let (a, b) = s.split_once(':').unwrap_or((s, s));
    let l = Limit { soft: parse_kb("diskspace", s, a)?, hard: parse_kb("diskspace", s, b)? };
    check(l, "diskspace", s)
}

/// `--diskinodes soft[:hard]`.
pub fn parse_diskinodes(s: &str) -> Result<Limit, DiskError> {
    let (a, b) = s.split_once(':').unwrap_or((s, s));
    let n = |v: &str| v.trim().parse::<u64>().map_err(|_| bad("diskinodes", s, "use inode counts as soft:hard"));
    check(Limit { soft: n(a)?, hard: n(b)? }, "diskinodes", s)
}

fn check(l: Limit, key: &'static str, s: &str) -> Result<Limit, DiskError> {
    if l.soft > l.hard {
        return Err(bad(key, s, "the soft limit is above the hard limit"));
    }
    if l.hard == 0 {
        return Err(bad(key, s, "the hard limit must be above 0"));
    }
    Ok(l)
}

fn run(cmd: &mut Command) -> Result<(), DiskError> {
    let name = format!("{cmd:?}");
    let o = cmd.output().map_err(|e| DiskError::Tool { cmd: name.clone(), why: e.to_string() })?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let why = err.lines().next().unwrap_or("").to_string();
        return Err(DiskError::Tool { cmd: name, why: format!("{} ({why})", o.status) });
    }
    Ok(())
}

/// What applying limits did, for the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Enforced,
    /// Stored but not enforced, and why.
    NotEnforced(String),
}

/// A VE's disk usage in KiB and inodes: its image's file system (ploop, mounted), or its
/// project's quota (simfs with project quota).
/// `mounts` is the host's mount table, read once by a caller that lists many VEs.
pub fn usage(private: &Path, root: &Path, layout: Layout, id: u32, mounts: &MountTable) -> Option<(u64, u64)> {
    match layout {
        Layout::Ploop => {
            mounts.top_at(root)?;
            Some((used_kb(root).ok()?, image_inodes_used(root).ok()?))
        }
        Layout::Simfs => project_usage(&device_in(private, mounts)?.0, id).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diskspace_takes_blocks_and_suffixes() {
        assert_eq!(parse_diskspace("1000:2000").unwrap(), Limit { soft: 1000, hard: 2000 });
        assert_eq!(parse_diskspace("2G:2.2G").unwrap(), Limit { soft: 2 << 20, hard: 2306867 });
        assert_eq!(parse_diskspace("512M").unwrap(), Limit { soft: 512 << 10, hard: 512 << 10 });
        for b in ["2G:1G", "x", "1Q:2Q", "0:0", ":", "-1:5"] {
            assert!(parse_diskspace(b).unwrap_err().to_string().contains(&format!("'{b}'")), "{b}");
        }
        assert!(parse_diskspace("2G:1G").unwrap_err().to_string().contains("soft limit is above"));
    }

    #[test]
    fn an_image_is_fitted_to_its_limit_within_the_slack() {
        let st =
            Vfs { f_blocks: 0, f_bfree: 1000, f_bavail: 700, f_frsize: 4096, f_bsize: 4096, f_files: 0, f_ffree: 0 };
        // What ext4 holds back (300 blocks here) comes on top of the limit.
        assert_eq!(fs_target_kb(65536, &st), 65536 + 1200);
        // Within the target and its slack: left alone.
        assert_eq!(refit_kb(70000, 66736, 66736), None);
        assert_eq!(refit_kb(70000, 66736 + 512, 66736), None);
        // Too small: grown by the difference; too big (a limit lowered): shrunk.
        assert_eq!(refit_kb(70000, 66000, 66736), Some(70736));
        assert_eq!(refit_kb(140000, 133000, 66736), Some(73736));
        // Never below what ext4 needs.
        assert_eq!(refit_kb(40000, 36000, 1000), Some(MIN_IMAGE_KB));
    }

    #[test]
    fn diskinodes_are_counts() {
        assert_eq!(parse_diskinodes("200000:220000").unwrap(), Limit { soft: 200000, hard: 220000 });
        assert_eq!(parse_diskinodes("5000").unwrap(), Limit { soft: 5000, hard: 5000 });
        for b in ["1k", "9:8", "a:b"] {
            assert!(parse_diskinodes(b).is_err(), "{b}");
        }
        assert_eq!(Layout::parse("ploop").unwrap(), Layout::Ploop);
        assert!(Layout::parse("zfs").unwrap_err().to_string().contains("'zfs'"));
    }
}
