//! Disk I/O between VEs: OpenVZ's `--ioprio`, `--iolimit` and `--iopslimit` on the blkio
//! controller (v1) or io controller (cgroup2), for the block device that holds the VE's
//! root.
//!
//! Mapping (documented in the README):
//! - ioprio 0..7 (default 4) -> BFQ group weight 25, 35, 50, 70, 100, 140, 200, 280 (each step
//!   x1.4, so 7 gets 11x the weight of 0; 4 is BFQ's default, what every other cgroup weighs):
//!   v1 `blkio.bfq.weight`, v2 `io.bfq.weight`. A weight only acts on a device whose
//!   scheduler is BFQ; vzctl never switches one itself (`vzctl iosched DEV bfq` does, when
//!   the admin says so) and says plainly when the VE's device is not on BFQ.
//! - iolimit BYTES/s and iopslimit N -> blk-throttle caps on reads and on writes of the VE's
//!   device (v1 `blkio.throttle.{read,write}_{bps,iops}_device`, v2 `io.max`); 0 lifts them.
use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use crate::cgroup::{self, CgroupError, Cgroups};

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("invalid value '{value}' for --{key}: {why}")]
    Bad { key: &'static str, value: String, why: String },
    #[error("no block device '{0}' (see /sys/block)")]
    NoDevice(String),
    #[error("device {dev} has no I/O scheduler '{sched}' (it offers: {offered})")]
    NoScheduler { dev: String, sched: String, offered: String },
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

impl IoError {
    pub fn kind(&self) -> crate::kind::Kind {
        match self {
            IoError::Bad { .. } | IoError::NoDevice(_) | IoError::NoScheduler { .. } => crate::kind::Kind::BadValue,
            IoError::Io { .. } => crate::kind::Kind::System,
            IoError::Cgroup(e) => e.kind(),
        }
    }
}

fn bad(key: &'static str, value: &str, why: impl Into<String>) -> IoError {
    IoError::Bad { key, value: value.to_string(), why: why.into() }
}

pub const DEFAULT_PRIO: u8 = 4;
/// BFQ weight per ioprio.
const WEIGHTS: [u32; 8] = [25, 35, 50, 70, 100, 140, 200, 280];

/// A VE's I/O settings as its config holds them (None: not set, the default applies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoSettings {
    pub prio: Option<u8>,
    /// Bytes per second, reads and writes each; 0 = none.
    pub limit: Option<u64>,
    /// Operations per second, reads and writes each; 0 = none.
    pub iops: Option<u64>,
}

pub fn weight(prio: u8) -> u32 {
    WEIGHTS[usize::from(prio.min(7))]
}

pub fn parse_prio(s: &str) -> Result<u8, IoError> {
    match s.trim().parse::<u8>() {
        Ok(p) if p <= 7 => Ok(p),
        _ => Err(bad("ioprio", s, "use a priority from 0 (lowest) to 7 (highest)")),
    }
}

/// `--iolimit`: bytes per second, with an optional K, M, G or T (powers of 1024); 0 or
/// `unlimited` lifts it.
pub fn parse_limit(s: &str) -> Result<u64, IoError> {
    if s.trim() == "unlimited" {
        return Ok(0);
    }
    crate::units::parse_bytes(s)
        .map_err(|_| bad("iolimit", s, "use bytes per second, optionally with K, M, G or T (0: no limit)"))
}

/// `--iopslimit`: operations per second; 0 or `unlimited` lifts it.
pub fn parse_iops(s: &str) -> Result<u64, IoError> {
    if s.trim() == "unlimited" {
        return Ok(0);
    }
    s.trim().parse::<u64>().map_err(|_| bad("iopslimit", s, "use operations per second (0: no limit)"))
}

/// What `set_scheduler("bfq")` sets besides the scheduler.
const BFQ_TUNING: [(&str, &str); 2] = [("low_latency", "0"), ("strict_guarantees", "1")];

/// A whole block device (blk-throttle and BFQ act on disks, not partitions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub name: String,
    pub major: u32,
    pub minor: u32,
}

impl Disk {
    pub fn dev(&self) -> String {
        format!("{}:{}", self.major, self.minor)
    }
    /// `dev_t` as the kernel keeps it inside (`bd_dev`, what the BPF maps hold).
    pub fn kdev(&self) -> u32 {
        (self.major << 20) | self.minor
    }
    pub fn by_name(name: &str) -> Result<Self, IoError> {
        let name = name.trim_start_matches("/dev/");
        let dev = fs::read_to_string(Path::new("/sys/block").join(name).join("dev"))
            .map_err(|_| IoError::NoDevice(name.to_string()))?;
        let (major, minor) = parse_dev(&dev).ok_or_else(|| IoError::NoDevice(name.to_string()))?;
        Ok(Self { name: name.to_string(), major, minor })
    }
    /// The scheduler in use and those offered (`[none] mq-deadline bfq`).
    pub fn scheduler(&self) -> (String, Vec<String>) {
        let text = fs::read_to_string(self.sched_path()).unwrap_or_default();
        let mut cur = String::new();
        let offered = text
            .split_whitespace()
            .map(|w| match w.strip_prefix('[').and_then(|w| w.strip_suffix(']')) {
                Some(c) => {
                    cur = c.to_string();
                    c.to_string()
                }
                None => w.to_string(),
            })
            .collect();
        (cur, offered)
    }
    /// Switches the device's scheduler: the admin's explicit step for `--ioprio`. BFQ is
    /// tuned for shares between VEs rather than desktop latency: `low_latency` off (it
    /// boosts every newly started process for seconds, whatever its VE's weight) and
    /// `strict_guarantees` on (it idles for the VE being served even on a fast device, so a
    /// VE with a low weight cannot slip requests in). Measured on a loop disk, weights 25 vs
    /// 280: read throughput 1:1.0 to 1:6 from run to run with BFQ's defaults, 1:11 with these.
    pub fn set_scheduler(&self, sched: &str) -> Result<(), IoError> {
        let (_, offered) = self.scheduler();
        if !offered.iter().any(|o| o == sched) {
            return Err(IoError::NoScheduler {
                dev: self.name.clone(),
                sched: sched.to_string(),
                offered: offered.join(" "),
            });
        }
        let p = self.sched_path();
        fs::write(&p, sched).map_err(|source| IoError::Io { op: "write", path: p, source })?;
        if sched == "bfq" {
            for (knob, v) in BFQ_TUNING {
                let p = self.iosched_dir().join(knob);
                fs::write(&p, v).map_err(|source| IoError::Io { op: "write", path: p, source })?;
            }
        }
        Ok(())
    }
    /// BFQ's tuning knobs as set now (empty for other schedulers).
    pub fn bfq_tuning(&self) -> Vec<(&'static str, String)> {
        BFQ_TUNING
            .iter()
            .filter_map(|(k, _)| Some((*k, fs::read_to_string(self.iosched_dir().join(k)).ok()?.trim().to_string())))
            .collect()
    }
    fn iosched_dir(&self) -> PathBuf {
        Path::new("/sys/block").join(&self.name).join("queue/iosched")
    }
    fn sched_path(&self) -> PathBuf {
        Path::new("/sys/block").join(&self.name).join("queue/scheduler")
    }
}

fn parse_dev(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The disk that holds `path` (the VE's root): its file system's device, or the whole disk
/// of a partition. None when the file system has no block device (tmpfs, overlay).
pub fn disk_of(path: &Path) -> Option<Disk> {
    let dev = fs::metadata(path).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let sys = fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let disk = if sys.join("partition").exists() { sys.parent()?.to_path_buf() } else { sys };
    let (major, minor) = parse_dev(&fs::read_to_string(disk.join("dev")).ok()?)?;
    Some(Disk { name: disk.file_name()?.to_string_lossy().into_owned(), major, minor })
}

/// The VE's directory in the hierarchy that carries block I/O control (v1 blkio, v2 io).
pub fn blkio_dir(cg: &dyn Cgroups, veid: u32) -> Option<PathBuf> {
    cgroup::BlkIo::of(cg, veid).map(|b| b.dir().to_path_buf())
}

/// Applies `s` to a VE's cgroups for `disk` (defaults for what is not set, so a lifted
/// limit goes). Returns what the admin should know: settings that cannot act here.
pub fn apply(cg: &dyn Cgroups, veid: u32, s: &IoSettings, disk: Option<&Disk>) -> Result<Vec<String>, IoError> {
    let mut notes = Vec::new();
    let Some(blk) = cgroup::BlkIo::of(cg, veid) else {
        if s != &IoSettings::default() {
            notes.push("this host has no blkio/io cgroup controller for VEs: I/O settings not applied".to_string());
        }
        return Ok(notes);
    };
    let prio = s.prio.unwrap_or(DEFAULT_PRIO);
    let w = weight(prio);
    if blk.set_weight(u64::from(w))? {
        if let (Some(d), Some(_)) = (disk, s.prio) {
            let (cur, _) = d.scheduler();
            if cur != "bfq" {
                notes.push(format!(
                    "ioprio {prio} (BFQ weight {w}) has no effect on /dev/{} while it uses the '{cur}' scheduler; switch it with: vzctl iosched {} bfq",
                    d.name, d.name
                ));
            }
        }
    } else if s.prio.is_some() {
        notes.push("this kernel has no BFQ group scheduling (CONFIG_BFQ_GROUP_IOSCHED): ioprio not applied".into());
    }
    let limit = s.limit.unwrap_or(0);
    let iops = s.iops.unwrap_or(0);
    let Some(d) = disk else {
        if limit > 0 || iops > 0 {
            notes.push(
                "the container's root has no block device (tmpfs or overlay): iolimit/iopslimit not applied".into(),
            );
        }
        return Ok(notes);
    };
    for file in blk.set_throttle(&d.dev(), limit, iops)? {
        notes.push(if file == "io.max" {
            "this kernel has no io.max (blk-throttle): iolimit/iopslimit not applied".to_string()
        } else {
            format!("this kernel has no blk-throttle ({file}): limit not applied")
        });
    }
    Ok(notes)
}

/// A VE's block I/O on one device, or summed over several (per-CPU values summed).
pub use vz_common::IoStats as IoTotals;

/// Name of a disk from the kernel's `dev_t` (`loop3`, `vda`), or `MAJ:MIN` if unknown.
pub fn kdev_name(kdev: u32) -> String {
    let (major, minor) = (kdev >> 20, kdev & 0xf_ffff);
    fs::canonicalize(format!("/sys/dev/block/{major}:{minor}"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| format!("{major}:{minor}"))
}

/// vzstat's table: one row per VE and device.
pub fn stat_table(rows: &[(u32, String, IoTotals)]) -> String {
    let mut out = format!(
        "{:>10} {:<8} {:>14} {:>14} {:>10} {:>10} {:>9} {:>9} {:>9}\n",
        "VEID", "DEVICE", "READ(bytes)", "WRITE(bytes)", "READS", "WRITES", "AVG(us)", "P50(us)", "P99(us)"
    );
    for (veid, dev, t) in rows {
        out.push_str(&format!(
            "{:>10} {:<8} {:>14} {:>14} {:>10} {:>10} {:>9} {:>9} {:>9}\n",
            veid,
            dev,
            t.read_bytes,
            t.write_bytes,
            t.read_ops,
            t.write_ops,
            t.avg_us(),
            t.quantile_us(500),
            t.quantile_us(990)
        ));
    }
    out
}

/// The latency histogram as lines of `[lo, hi) µs  count`, non-empty buckets only.
pub fn hist_lines(t: &IoTotals) -> String {
    let mut out = String::new();
    for (i, n) in t.hist.iter().enumerate().filter(|(_, n)| **n > 0) {
        let lo = if i == 0 { 0 } else { 1u64 << i };
        out.push_str(&format!("  [{lo:>8}, {:>8}) us {n:>10}\n", 2u64 << i));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioprio_maps_to_rising_bfq_weights() {
        assert_eq!(weight(DEFAULT_PRIO), 100);
        assert!(WEIGHTS.windows(2).all(|w| w[1] > w[0]));
        assert!(weight(7) >= 10 * weight(0));
        assert_eq!(parse_prio("7").unwrap(), 7);
        for b in ["8", "-1", "x", ""] {
            assert!(parse_prio(b).unwrap_err().to_string().contains(&format!("'{b}'")), "{b}");
        }
    }

    #[test]
    fn limits_take_suffixes_and_refuse_garbage() {
        assert_eq!(parse_limit("10485760").unwrap(), 10 << 20);
        assert_eq!(parse_limit("10M").unwrap(), 10 << 20);
        assert_eq!(parse_limit("512k").unwrap(), 512 << 10);
        assert_eq!(parse_limit("1G").unwrap(), 1 << 30);
        assert_eq!(parse_limit("0").unwrap(), 0);
        assert_eq!(parse_limit("unlimited").unwrap(), 0);
        for b in ["10X", "M", "-5", "fast", "99999999999999999999"] {
            assert!(parse_limit(b).unwrap_err().to_string().contains(&format!("'{b}'")), "{b}");
        }
        assert_eq!(parse_iops("300").unwrap(), 300);
        assert!(parse_iops("3e2").is_err());
    }

    #[test]
    fn latency_quantiles_come_from_the_histogram() {
        let mut t = IoTotals::default();
        t.hist[3] = 90; // 8..16 µs
        t.hist[10] = 10; // 1..2 ms
        assert_eq!(t.quantile_us(500), 16);
        assert_eq!(t.quantile_us(900), 16);
        assert_eq!(t.quantile_us(990), 2048);
        assert_eq!(IoTotals::default().quantile_us(500), 0);
        assert_eq!(hist_lines(&t), "  [       8,       16) us         90\n  [    1024,     2048) us         10\n");
        t.lat_ns = 3_000_000;
        t.done = 100;
        assert_eq!(t.avg_us(), 30);
    }
}
