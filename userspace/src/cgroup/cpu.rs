//! A VE's cpu, cpuacct and cpuset controllers, whichever layout carries them: the v1 and
//! cgroup2 file names live here only.
use std::path::PathBuf;

use super::{read_keyed, read_num, write_value, CgroupError, Cgroups};

/// A VE's cpu controller.
#[derive(Debug, Clone)]
pub struct Cpu {
    dir: PathBuf,
    v1: bool,
}

/// A relative share in both layouts' words: v1 `cpu.shares`, cgroup2 `cpu.weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuShare {
    pub shares: u64,
    pub weight: u64,
}

impl Cpu {
    pub fn of(cg: &dyn Cgroups, veid: u32) -> Option<Self> {
        let dir = cg.controller_dir(veid, "cpu")?;
        let v1 = dir.join("cpu.shares").exists();
        Some(Self { dir, v1 })
    }

    /// The VE's share, and its bandwidth: `quota_us` per `period_us` (None: no cap).
    pub fn set(&self, share: CpuShare, quota_us: Option<u64>, period_us: u64) -> Result<(), CgroupError> {
        let d = &self.dir;
        if self.v1 {
            write_value(&d.join("cpu.shares"), &share.shares.to_string())?;
            write_value(&d.join("cpu.cfs_period_us"), &period_us.to_string())?;
            write_value(&d.join("cpu.cfs_quota_us"), &quota_us.map_or("-1".to_string(), |q| q.to_string()))
        } else {
            write_value(&d.join("cpu.weight"), &share.weight.to_string())?;
            write_value(
                &d.join("cpu.max"),
                &format!("{} {period_us}", quota_us.map_or("max".to_string(), |q| q.to_string())),
            )
        }
    }
}

/// CPU time the VE has used, in nanoseconds (cpuacct v1, or cpu.stat v2).
pub fn cpu_usage_ns(cg: &dyn Cgroups, veid: u32) -> Option<u64> {
    if let Some(d) = cg.controller_dir(veid, "cpuacct") {
        if let Some(n) = read_num(&d.join("cpuacct.usage")) {
            return Some(n);
        }
    }
    let d = cg.controller_dir(veid, "cpu")?;
    read_keyed(&d.join("cpu.stat"), "usage_usec").map(|us| us * 1000)
}

/// A VE's cpuset controller.
#[derive(Debug, Clone)]
pub struct Cpuset {
    dir: PathBuf,
}

impl Cpuset {
    pub fn of(cg: &dyn Cgroups, veid: u32) -> Option<Self> {
        cg.controller_dir(veid, "cpuset").map(|dir| Self { dir })
    }

    /// The CPUs the VE may run on, as a cpuset list ("0-3,6").
    pub fn set_cpus(&self, list: &str) -> Result<(), CgroupError> {
        write_value(&self.dir.join("cpuset.cpus"), list)
    }
}
