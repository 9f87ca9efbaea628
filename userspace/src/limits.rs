//! Beancounters kept by kernel controllers: where each row's numbers come from, and what
//! refuses past its limit.
//!
//! numtcpsock and numothersock are counted and refused by vzbpf's own programs (maps
//! `VZ_UBC_V1`); numproc by the pids controller; physpages, swappages and kmemsize by the
//! VE's memory cgroup. Barrier and limit of every row live in `VZ_LIMITS_V1`, whatever
//! enforces them, so the maps show what the admin set.
use std::path::{Path, PathBuf};

use vz_common::{res, UbcUsage, UB_UNLIMITED};

use crate::{
    cgroup::{read_keyed, read_num, write_value, CgroupError, Cgroups},
    ubc::{Resource, PAGE_SIZE},
};

/// What stands behind a beancounter row on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// vzbpf's cgroup socket programs count and refuse (ENOBUFS).
    Bpf,
    /// The pids controller counts and refuses forks (EAGAIN).
    Pids,
    /// The memory controller counts and reclaims / OOM-kills at the limit.
    Memcg,
    /// Counted by the memory controller; this kernel has no way to refuse it.
    MemcgAccounted,
    /// The VE's own devpts instance refuses past `max=` (ENOSPC); held is its entries.
    Devpts,
    /// Counted by a BPF iterator snapshot; nothing on this kernel can refuse it.
    IterAccounted,
    /// The VE's IPC namespace kernel.shmall and its /dev/shm size; vz_sysctl keeps VE root
    /// from raising shmall.
    Shm,
}

impl Mechanism {
    /// Short name for report columns and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Mechanism::Bpf => "bpf",
            Mechanism::Pids => "pids",
            Mechanism::Memcg => "memcg",
            Mechanism::MemcgAccounted => "memcg-acct",
            Mechanism::Devpts => "devpts",
            Mechanism::IterAccounted => "iter-acct",
            Mechanism::Shm => "ipc+tmpfs",
        }
    }

    pub fn enforces(&self) -> bool {
        !matches!(self, Mechanism::MemcgAccounted | Mechanism::IterAccounted)
    }
}

/// Which memory cgroup interface the VE's directory has.
fn memory_dir(cg: &dyn Cgroups, veid: u32) -> Option<(PathBuf, bool)> {
    let d = cg.controller_dir(veid, "memory")?;
    let v1 = d.join("memory.usage_in_bytes").exists();
    Some((d, v1))
}

/// The mechanism behind `r` for this VE on this host, if the row has real figures here.
pub fn mechanism(r: &Resource, cg: &dyn Cgroups, veid: u32) -> Option<Mechanism> {
    match r.id {
        res::NUMTCPSOCK | res::NUMOTHERSOCK => Some(Mechanism::Bpf),
        res::NUMPROC => cg.controller_dir(veid, "pids").map(|_| Mechanism::Pids),
        res::PHYSPAGES => memory_dir(cg, veid).map(|_| Mechanism::Memcg),
        res::SWAPPAGES => memory_dir(cg, veid).and_then(|(d, v1)| {
            let f = if v1 { "memory.memsw.usage_in_bytes" } else { "memory.swap.current" };
            d.join(f).exists().then_some(Mechanism::Memcg)
        }),
        res::KMEMSIZE => memory_dir(cg, veid).map(|_| Mechanism::MemcgAccounted),
        res::NUMPTY => Some(Mechanism::Devpts),
        res::NUMFILE | res::PRIVVMPAGES | res::LOCKEDPAGES => Some(Mechanism::IterAccounted),
        res::SHMPAGES => Some(Mechanism::Shm),
        _ => None,
    }
}

/// shmpages' limit in pages (None: unlimited).
pub fn shm_pages_limit(lim: &vz_common::VeLimits) -> Option<u64> {
    let l = lim.res[res::SHMPAGES as usize].limit;
    (l < UB_UNLIMITED / PAGE_SIZE).then_some(l)
}

/// numpty's devpts `max` for a limit record (None: no limit).
pub fn pty_max(lim: &vz_common::VeLimits) -> Option<u64> {
    let b = lim.res[res::NUMPTY as usize].barrier;
    (b < UB_UNLIMITED).then_some(b)
}

fn pages(bytes: Option<u64>) -> Option<u64> {
    bytes.map(|b| b.div_ceil(PAGE_SIZE))
}

/// Usage of a controller-backed row (None for BPF rows and rows without a source).
pub fn usage(r: &Resource, cg: &dyn Cgroups, veid: u32) -> Option<UbcUsage> {
    match r.id {
        res::NUMPROC => {
            let d = cg.controller_dir(veid, "pids")?;
            let held = read_num(&d.join("pids.current"))?;
            Some(UbcUsage {
                held,
                maxheld: read_num(&d.join("pids.peak")).unwrap_or(held).max(held),
                failcnt: read_keyed(&d.join("pids.events"), "max").unwrap_or(0),
            })
        }
        res::PHYSPAGES => {
            let (d, v1) = memory_dir(cg, veid)?;
            let f = |a: &str, b: &str| d.join(if v1 { a } else { b });
            let held = pages(read_num(&f("memory.usage_in_bytes", "memory.current")))?;
            Some(UbcUsage {
                held,
                maxheld: pages(read_num(&f("memory.max_usage_in_bytes", "memory.peak"))).unwrap_or(held).max(held),
                // Limit hits of memory or memory+swap (v1 charges memsw first; the two count
                // disjoint events), plus OOM kills: this kernel does not always bump the v1
                // failcnt, but a kill is always a refusal the VE met.
                failcnt: if v1 {
                    read_num(&d.join("memory.failcnt")).unwrap_or(0)
                        + read_num(&d.join("memory.memsw.failcnt")).unwrap_or(0)
                        + read_keyed(&d.join("memory.oom_control"), "oom_kill").unwrap_or(0)
                } else {
                    read_keyed(&d.join("memory.events"), "max").unwrap_or(0)
                        + read_keyed(&d.join("memory.events"), "oom_kill").unwrap_or(0)
                },
            })
        }
        res::SWAPPAGES => {
            let (d, v1) = memory_dir(cg, veid)?;
            if v1 {
                let mem = read_num(&d.join("memory.usage_in_bytes"))?;
                let memsw = read_num(&d.join("memory.memsw.usage_in_bytes"))?;
                let held = pages(Some(memsw.saturating_sub(mem)))?;
                let peak = read_num(&d.join("memory.memsw.max_usage_in_bytes")).unwrap_or(memsw);
                let mpeak = read_num(&d.join("memory.max_usage_in_bytes")).unwrap_or(mem);
                Some(UbcUsage {
                    held,
                    maxheld: pages(Some(peak.saturating_sub(mpeak))).unwrap_or(0).max(held),
                    failcnt: read_num(&d.join("memory.memsw.failcnt")).unwrap_or(0),
                })
            } else {
                let held = pages(read_num(&d.join("memory.swap.current")))?;
                Some(UbcUsage {
                    held,
                    maxheld: pages(read_num(&d.join("memory.swap.peak"))).unwrap_or(held).max(held),
                    failcnt: read_keyed(&d.join("memory.swap.events"), "max").unwrap_or(0),
                })
            }
        }
        res::SHMPAGES => {
            // SysV segments of its IPC namespace plus its /dev/shm; no peak, no refusal count.
            let held = crate::ns::shm_pages(crate::ns::find_init(cg, veid)?)?;
            Some(UbcUsage { held, maxheld: held, failcnt: 0 })
        }
        res::NUMPTY => {
            // No hook counts devpts refusals or peaks: held is exact, maxheld is held now.
            let held = crate::ns::pty_count(crate::ns::find_init(cg, veid)?)?;
            Some(UbcUsage { held, maxheld: held, failcnt: 0 })
        }
        res::KMEMSIZE => {
            let (d, v1) = memory_dir(cg, veid)?;
            if v1 {
                let held = read_num(&d.join("memory.kmem.usage_in_bytes"))?;
                Some(UbcUsage {
                    held,
                    maxheld: read_num(&d.join("memory.kmem.max_usage_in_bytes")).unwrap_or(held).max(held),
                    failcnt: read_num(&d.join("memory.kmem.failcnt")).unwrap_or(0),
                })
            } else {
                let held = read_keyed(&d.join("memory.stat"), "kernel")?;
                Some(UbcUsage { held, maxheld: held, failcnt: 0 })
            }
        }
        _ => None,
    }
}

fn limit_str(v: u64, unit: u64, v1: bool) -> String {
    if v >= UB_UNLIMITED / unit.max(1) {
        if v1 {
            "-1".into()
        } else {
            "max".into()
        }
    } else {
        (v * unit).to_string()
    }
}

fn write(path: &Path, v: &str) -> Result<(), CgroupError> {
    write_value(path, v)
}

/// Writes the kernel-side limits of the controller-backed rows from a VE's full limit
/// record: pids.max from numproc's barrier; memory limit from physpages' limit; memory+swap
/// from physpages + swappages limits (VSwap).
pub fn apply(cg: &dyn Cgroups, veid: u32, lim: &vz_common::VeLimits) -> Result<(), CgroupError> {
    if let Some(d) = cg.controller_dir(veid, "pids") {
        let b = lim.res[res::NUMPROC as usize].barrier;
        write(&d.join("pids.max"), &if b >= i32::MAX as u64 { "max".to_string() } else { b.to_string() })?;
    }
    if let Some((d, v1)) = memory_dir(cg, veid) {
        let phys = lim.res[res::PHYSPAGES as usize].limit;
        let swap = lim.res[res::SWAPPAGES as usize].limit;
        let mem = limit_str(phys, PAGE_SIZE, v1);
        if v1 {
            let memsw = if phys >= UB_UNLIMITED / PAGE_SIZE || swap >= UB_UNLIMITED / PAGE_SIZE {
                "-1".to_string()
            } else {
                ((phys + swap) * PAGE_SIZE).to_string()
            };
            let memsw_path = d.join("memory.memsw.limit_in_bytes");
            // memsw must stay >= mem: raise memsw first, lower it last.
            if memsw_path.exists() {
                if write(&memsw_path, &memsw).is_err() {
                    write(&d.join("memory.limit_in_bytes"), &mem)?;
                    write(&memsw_path, &memsw)?;
                } else {
                    write(&d.join("memory.limit_in_bytes"), &mem)?;
                }
            } else {
                write(&d.join("memory.limit_in_bytes"), &mem)?;
            }
        } else {
            write(&d.join("memory.max"), &mem)?;
            let sp = d.join("memory.swap.max");
            if sp.exists() {
                write(&sp, &limit_str(swap, PAGE_SIZE, false))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_becomes_the_controllers_word() {
        assert_eq!(limit_str(UB_UNLIMITED, PAGE_SIZE, true), "-1");
        assert_eq!(limit_str(UB_UNLIMITED, PAGE_SIZE, false), "max");
        assert_eq!(limit_str(256, PAGE_SIZE, true), "1048576");
    }

    #[test]
    fn labels() {
        assert_eq!(Mechanism::Pids.label(), "pids");
        assert!(!Mechanism::MemcgAccounted.enforces());
        assert!(Mechanism::Bpf.enforces());
    }
}
