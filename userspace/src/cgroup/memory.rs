//! A VE's memory and pids controllers, whichever layout carries them: the v1 and cgroup2
//! file names live here only. Figures are bytes (counts for pids); callers turn them into
//! beancounter rows.
use std::path::PathBuf;

use super::{read_keyed, read_num, write_value, CgroupError, Cgroups};

/// A usage figure as a controller keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    pub now: u64,
    /// The peak, where the controller keeps one.
    pub peak: Option<u64>,
    /// Refusals (limit hits, OOM kills: see each reader).
    pub failcnt: u64,
}

/// A VE's memory cgroup.
#[derive(Debug, Clone)]
pub struct Memory {
    dir: PathBuf,
    v1: bool,
}

/// The limits `Memory::set_limits` writes, in bytes; None lifts one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryLimits {
    pub ram: Option<u64>,
    pub swap: Option<u64>,
    /// RAM + swap, for v1's memsw (which must stay >= ram).
    pub ram_swap: Option<u64>,
    /// Kept for the VE under pressure (v1 soft limit, v2 memory.low).
    pub guarantee: Option<u64>,
    /// v1 socket memory (`memory.kmem.tcp.limit_in_bytes`); no cgroup2 equivalent.
    pub socket: Option<u64>,
}

impl Memory {
    pub fn of(cg: &dyn Cgroups, veid: u32) -> Option<Self> {
        let dir = cg.controller_dir(veid, "memory")?;
        let v1 = dir.join("memory.usage_in_bytes").exists();
        Some(Self { dir, v1 })
    }

    fn f(&self, v1: &str, v2: &str) -> PathBuf {
        self.dir.join(if self.v1 { v1 } else { v2 })
    }

    /// Whether swap is accounted (v1 memsw, v2 swap files).
    pub fn has_swap(&self) -> bool {
        self.f("memory.memsw.usage_in_bytes", "memory.swap.current").exists()
    }

    /// Whether socket memory has a limit of its own (v1 only).
    pub fn has_socket_limit(&self) -> bool {
        self.v1 && self.dir.join("memory.kmem.tcp.limit_in_bytes").exists()
    }

    /// RAM in use; failcnt counts limit hits of memory or memory+swap (v1 charges memsw
    /// first; the two count disjoint events) plus OOM kills: this kernel does not always
    /// bump the v1 failcnt, but a kill is always a refusal the VE met.
    pub fn ram(&self) -> Option<Counter> {
        let d = &self.dir;
        Some(Counter {
            now: read_num(&self.f("memory.usage_in_bytes", "memory.current"))?,
            peak: read_num(&self.f("memory.max_usage_in_bytes", "memory.peak")),
            failcnt: if self.v1 {
                read_num(&d.join("memory.failcnt")).unwrap_or(0)
                    + read_num(&d.join("memory.memsw.failcnt")).unwrap_or(0)
                    + read_keyed(&d.join("memory.oom_control"), "oom_kill").unwrap_or(0)
            } else {
                read_keyed(&d.join("memory.events"), "max").unwrap_or(0)
                    + read_keyed(&d.join("memory.events"), "oom_kill").unwrap_or(0)
            },
        })
    }

    /// Swap in use (v1: memory+swap less memory).
    pub fn swap(&self) -> Option<Counter> {
        let d = &self.dir;
        if self.v1 {
            let mem = read_num(&d.join("memory.usage_in_bytes"))?;
            let memsw = read_num(&d.join("memory.memsw.usage_in_bytes"))?;
            let peak = read_num(&d.join("memory.memsw.max_usage_in_bytes")).unwrap_or(memsw);
            let mpeak = read_num(&d.join("memory.max_usage_in_bytes")).unwrap_or(mem);
            Some(Counter {
                now: memsw.saturating_sub(mem),
                peak: Some(peak.saturating_sub(mpeak)),
                failcnt: read_num(&d.join("memory.memsw.failcnt")).unwrap_or(0),
            })
        } else {
            Some(Counter {
                now: read_num(&d.join("memory.swap.current"))?,
                peak: read_num(&d.join("memory.swap.peak")),
                failcnt: read_keyed(&d.join("memory.swap.events"), "max").unwrap_or(0),
            })
        }
    }

    /// RAM and swap together; failcnt is the VE's OOM kills.
    pub fn ram_and_swap(&self) -> Option<Counter> {
        let d = &self.dir;
        if self.v1 {
            Some(Counter {
                now: read_num(&d.join("memory.memsw.usage_in_bytes"))
                    .or_else(|| read_num(&d.join("memory.usage_in_bytes")))?,
                peak: read_num(&d.join("memory.memsw.max_usage_in_bytes"))
                    .or_else(|| read_num(&d.join("memory.max_usage_in_bytes"))),
                failcnt: read_keyed(&d.join("memory.oom_control"), "oom_kill").unwrap_or(0),
            })
        } else {
            Some(Counter {
                now: read_num(&d.join("memory.current"))? + read_num(&d.join("memory.swap.current")).unwrap_or(0),
                peak: None,
                failcnt: read_keyed(&d.join("memory.events"), "oom_kill").unwrap_or(0),
            })
        }
    }

    /// Kernel memory charged to the VE.
    pub fn kernel(&self) -> Option<Counter> {
        let d = &self.dir;
        if self.v1 {
            Some(Counter {
                now: read_num(&d.join("memory.kmem.usage_in_bytes"))?,
                peak: read_num(&d.join("memory.kmem.max_usage_in_bytes")),
                failcnt: read_num(&d.join("memory.kmem.failcnt")).unwrap_or(0),
            })
        } else {
            Some(Counter { now: read_keyed(&d.join("memory.stat"), "kernel")?, peak: None, failcnt: 0 })
        }
    }

    /// Shared memory (tmpfs, SysV, POSIX) the VE's processes brought in, in bytes.
    pub fn shmem(&self) -> Option<u64> {
        read_keyed(&self.dir.join("memory.stat"), if self.v1 { "total_shmem" } else { "shmem" })
    }

    fn limit(&self, v: Option<u64>) -> String {
        limit_word(v, self.v1)
    }

    /// Writes the limits. On v1, memsw must stay >= the memory limit: it is raised first
    /// and lowered last.
    pub fn set_limits(&self, l: &MemoryLimits) -> Result<(), CgroupError> {
        let d = &self.dir;
        let mem = self.limit(l.ram);
        if self.v1 {
            let memsw = self.limit(l.ram_swap);
            let memsw_path = d.join("memory.memsw.limit_in_bytes");
            if memsw_path.exists() {
                if write_value(&memsw_path, &memsw).is_err() {
                    write_value(&d.join("memory.limit_in_bytes"), &mem)?;
                    write_value(&memsw_path, &memsw)?;
                } else {
                    write_value(&d.join("memory.limit_in_bytes"), &mem)?;
                }
            } else {
                write_value(&d.join("memory.limit_in_bytes"), &mem)?;
            }
            write_value(&d.join("memory.soft_limit_in_bytes"), &self.limit(l.guarantee))?;
            let tcp = d.join("memory.kmem.tcp.limit_in_bytes");
            if tcp.exists() {
                // Writing the file switches socket accounting on for the cgroup (and logs a
                // deprecation note), so it is written only for a finite limit, or to lift one.
                match l.socket {
                    Some(bytes) => write_value(&tcp, &bytes.to_string())?,
                    None if read_num(&tcp)
                        .is_some_and(|v| v < (vz_common::UB_UNLIMITED & !(crate::units::PAGE_SIZE - 1))) =>
                    {
                        write_value(&tcp, "-1")?
                    }
                    None => {}
                }
            }
        } else {
            write_value(&d.join("memory.max"), &mem)?;
            let sp = d.join("memory.swap.max");
            if sp.exists() {
                write_value(&sp, &self.limit(l.swap))?;
            }
            if d.join("memory.low").exists() {
                write_value(&d.join("memory.low"), &l.guarantee.unwrap_or(0).to_string())?;
            }
        }
        Ok(())
    }
}

/// A limit as the controller writes it: bytes, or its word for none (v1 -1, cgroup2 max).
pub fn limit_word(v: Option<u64>, v1: bool) -> String {
    match v {
        Some(b) => b.to_string(),
        None if v1 => "-1".into(),
        None => "max".into(),
    }
}

/// A VE's pids cgroup.
#[derive(Debug, Clone)]
pub struct Pids {
    dir: PathBuf,
}

impl Pids {
    pub fn of(cg: &dyn Cgroups, veid: u32) -> Option<Self> {
        cg.controller_dir(veid, "pids").map(|dir| Self { dir })
    }

    /// Tasks now, their peak where the kernel keeps one, and refused forks.
    pub fn usage(&self) -> Option<Counter> {
        Some(Counter {
            now: read_num(&self.dir.join("pids.current"))?,
            peak: read_num(&self.dir.join("pids.peak")),
            failcnt: read_keyed(&self.dir.join("pids.events"), "max").unwrap_or(0),
        })
    }

    /// pids.max; None lifts it.
    pub fn set_max(&self, max: Option<u64>) -> Result<(), CgroupError> {
        write_value(&self.dir.join("pids.max"), &max.map_or_else(|| "max".to_string(), |m| m.to_string()))
    }
}
