//! A VE's block I/O controller: v1 blkio or the cgroup2 io controller, file names here only.
use std::path::{Path, PathBuf};

use super::{write_value, CgroupError, Cgroups};

#[derive(Debug, Clone)]
pub struct BlkIo {
    dir: PathBuf,
    v1: bool,
}

impl BlkIo {
    pub fn of(cg: &dyn Cgroups, veid: u32) -> Option<Self> {
        let dir = cg.controller_dir(veid, "blkio").or_else(|| cg.controller_dir(veid, "io"))?;
        let v1 = dir.join("blkio.throttle.read_bps_device").exists() || dir.join("blkio.bfq.weight").exists();
        Some(Self { dir, v1 })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets the VE's BFQ weight; false when the kernel has no BFQ group scheduling.
    pub fn set_weight(&self, weight: u64) -> Result<bool, CgroupError> {
        let file = self.dir.join(if self.v1 { "blkio.bfq.weight" } else { "io.bfq.weight" });
        if !file.exists() {
            return Ok(false);
        }
        write_value(&file, &if self.v1 { weight.to_string() } else { format!("default {weight}") })?;
        Ok(true)
    }

    /// Caps reads and writes on the disk `dev` (`MAJ:MIN`) at `bps` bytes and `iops`
    /// operations per second; 0 lifts a cap. Returns the control files this kernel lacks for
    /// caps that were asked.
    pub fn set_throttle(&self, dev: &str, bps: u64, iops: u64) -> Result<Vec<&'static str>, CgroupError> {
        let mut missing = Vec::new();
        if self.v1 {
            for (file, v) in [
                ("blkio.throttle.read_bps_device", bps),
                ("blkio.throttle.write_bps_device", bps),
                ("blkio.throttle.read_iops_device", iops),
                ("blkio.throttle.write_iops_device", iops),
            ] {
                let p = self.dir.join(file);
                if p.exists() {
                    // 0 removes the device's rule.
                    write_value(&p, &format!("{dev} {v}"))?;
                } else if v > 0 {
                    missing.push(file);
                }
            }
        } else {
            let p = self.dir.join("io.max");
            let n = |v: u64| if v == 0 { "max".to_string() } else { v.to_string() };
            if p.exists() {
                let (l, i) = (n(bps), n(iops));
                write_value(&p, &format!("{dev} rbps={l} wbps={l} riops={i} wiops={i}"))?;
            } else if bps > 0 || iops > 0 {
                missing.push("io.max");
            }
        }
        Ok(missing)
    }
}
