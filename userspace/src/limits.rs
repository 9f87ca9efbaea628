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
    /// The VE's own devpts instance refuses past `max=` (ENOSPC; its superblock is the
    /// host's, so VE root cannot remount it); held is every pty the VE's processes hold, on
    /// any devpts instance.
    Devpts,
    /// Counted by a BPF iterator snapshot; nothing on this kernel can refuse it.
    IterAccounted,
    /// The VE's IPC namespace kernel.shmall and its /dev/shm size (a host-owned tmpfs);
    /// vz_sysctl keeps VE root from raising shmall. Held is the memory controller's shmem
    /// count: every instance and namespace the VE makes.
    Shm,
    /// The memory cgroup's socket-memory limit (v1 `memory.kmem.tcp.limit_in_bytes`) bounds
    /// the VE's TCP buffers and datagram receive queues together; vz_setsockopt cuts
    /// SO_SNDBUF/SO_RCVBUF requests above the row's limit. Held by socket iterators.
    MemcgSock,
    /// vz_setsockopt cuts SO_SNDBUF/SO_RCVBUF requests above the row's limit (per socket);
    /// held by socket iterators.
    BpfClamp,
    /// RLIMIT_SIGPENDING of every VE process (per user of the VE); refusals counted by
    /// the tp_btf/signal_generate program.
    Rlimit,
    /// A guarantee: the memory cgroup's soft limit (v1) or memory.low (v2), so a VE within
    /// it is reclaimed last; held is RAM + swap in use, failcnt the VE's OOM kills.
    MemcgGuarantee,
    /// Counted from /proc/locks; nothing on this kernel can refuse it.
    LocksAccounted,
    /// Counted over netlink in the VE's network namespace; nothing can refuse it.
    NetfilterAccounted,
    /// Charged and uncharged by vzbpf tracepoint programs as objects come and go; nothing
    /// on this kernel can refuse it.
    BpfAccounted,
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
            Mechanism::MemcgSock => "memcg-sock+bpf",
            Mechanism::BpfClamp => "bpf-clamp",
            Mechanism::Rlimit => "rlimit+tp",
            Mechanism::MemcgGuarantee => "memcg-guar",
            Mechanism::LocksAccounted => "locks-acct",
            Mechanism::NetfilterAccounted => "nl-acct",
            Mechanism::BpfAccounted => "bpf-acct",
        }
    }

    pub fn enforces(&self) -> bool {
        !matches!(
            self,
            Mechanism::MemcgAccounted
                | Mechanism::IterAccounted
                | Mechanism::LocksAccounted
                | Mechanism::NetfilterAccounted
                | Mechanism::BpfAccounted
        )
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
        res::NUMFILE | res::PRIVVMPAGES | res::LOCKEDPAGES | res::VMGUARPAGES => Some(Mechanism::IterAccounted),
        res::SHMPAGES => Some(Mechanism::Shm),
        res::TCPSNDBUF | res::TCPRCVBUF | res::DGRAMRCVBUF => Some(match memory_dir(cg, veid) {
            Some((d, true)) if d.join("memory.kmem.tcp.limit_in_bytes").exists() => Mechanism::MemcgSock,
            _ => Mechanism::BpfClamp,
        }),
        res::OTHERSOCKBUF => Some(Mechanism::BpfClamp),
        res::NUMSIGINFO => Some(Mechanism::Rlimit),
        res::OOMGUARPAGES => memory_dir(cg, veid).map(|_| Mechanism::MemcgGuarantee),
        res::NUMFLOCK => Some(Mechanism::LocksAccounted),
        res::NUMIPTENT => Some(Mechanism::NetfilterAccounted),
        res::DCACHESIZE => Some(Mechanism::BpfAccounted),
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
            // Every page of shared memory the VE's processes brought in, in any tmpfs, SysV
            // or POSIX segment, whatever IPC namespace or mount they made for it: the memory
            // controller charges each to the VE. Without one, the VE's own instances only.
            let held = match memory_dir(cg, veid) {
                Some((d, v1)) => pages(read_keyed(&d.join("memory.stat"), if v1 { "total_shmem" } else { "shmem" }))?,
                None => crate::ns::own_shm_pages(crate::ns::find_init(cg, veid)?)?,
            };
            Some(UbcUsage { held, maxheld: held, failcnt: 0 })
        }
        res::NUMPTY => {
            // Every pty pair the VE's processes hold, on any devpts instance (a VE may mount
            // its own); no hook counts refusals or peaks: maxheld is held now.
            let held = crate::ns::pty_count(crate::ns::find_init(cg, veid), &cg.procs(veid));
            Some(UbcUsage { held, maxheld: held, failcnt: 0 })
        }
        res::OOMGUARPAGES => {
            // RAM + swap in use, as OpenVZ's oomguarpages; its failcnt is the VE's OOM kills.
            let (d, v1) = memory_dir(cg, veid)?;
            if v1 {
                let held = pages(
                    read_num(&d.join("memory.memsw.usage_in_bytes"))
                        .or_else(|| read_num(&d.join("memory.usage_in_bytes"))),
                )?;
                let peak = read_num(&d.join("memory.memsw.max_usage_in_bytes"))
                    .or_else(|| read_num(&d.join("memory.max_usage_in_bytes")));
                Some(UbcUsage {
                    held,
                    maxheld: pages(peak).unwrap_or(held).max(held),
                    failcnt: read_keyed(&d.join("memory.oom_control"), "oom_kill").unwrap_or(0),
                })
            } else {
                let held = pages(Some(
                    read_num(&d.join("memory.current"))? + read_num(&d.join("memory.swap.current")).unwrap_or(0),
                ))?;
                Some(UbcUsage {
                    held,
                    maxheld: held,
                    failcnt: read_keyed(&d.join("memory.events"), "oom_kill").unwrap_or(0),
                })
            }
        }
        res::NUMFLOCK => {
            let locks = std::fs::read_to_string("/proc/locks").ok()?;
            let held = crate::ns::file_locks(&locks, &cg.procs(veid));
            Some(UbcUsage { held, maxheld: held, failcnt: 0 })
        }
        res::NUMIPTENT => {
            let held = crate::ns::netfilter_entries(crate::ns::find_init(cg, veid)?)?;
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
            let memsw = memsw_bytes(phys, swap).map_or_else(|| "-1".to_string(), |b| b.to_string());
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
        // oomguarpages' barrier is the VE's guarantee.
        let guar = lim.res[res::OOMGUARPAGES as usize].barrier;
        if v1 {
            write(&d.join("memory.soft_limit_in_bytes"), &limit_str(guar, PAGE_SIZE, true))?;
        } else if d.join("memory.low").exists() {
            let low = if guar >= UB_UNLIMITED / PAGE_SIZE { "0".to_string() } else { (guar * PAGE_SIZE).to_string() };
            write(&d.join("memory.low"), &low)?;
        }
        let tcp = d.join("memory.kmem.tcp.limit_in_bytes");
        if v1 && tcp.exists() {
            // Writing the file switches socket accounting on for the cgroup (and logs a
            // deprecation note), so it is written only for a finite limit, or to lift one.
            match socket_memory_limit(lim) {
                Some(bytes) => write(&tcp, &bytes.to_string())?,
                None if read_num(&tcp).is_some_and(|v| v < (UB_UNLIMITED & !(PAGE_SIZE - 1))) => write(&tcp, "-1")?,
                None => {}
            }
        }
    }
    Ok(())
}

/// The v1 memory+swap limit in bytes for physpages and swappages limits (pages); None is
/// unlimited (either unlimited, or a sum past what the kernel takes).
pub fn memsw_bytes(phys: u64, swap: u64) -> Option<u64> {
    let b = phys.checked_add(swap)?.checked_mul(PAGE_SIZE)?;
    (phys < UB_UNLIMITED / PAGE_SIZE && swap < UB_UNLIMITED / PAGE_SIZE && b < UB_UNLIMITED).then_some(b)
}

/// Bytes of socket memory the kernel charges to a VE's memory cgroup (TCP send and receive
/// buffers, datagram receive queues): the sum of those rows' limits, None if any is
/// unlimited.
pub fn socket_memory_limit(lim: &vz_common::VeLimits) -> Option<u64> {
    [res::TCPSNDBUF, res::TCPRCVBUF, res::DGRAMRCVBUF]
        .iter()
        .map(|r| lim.res[*r as usize].limit)
        .try_fold(0u64, |acc, l| (l < UB_UNLIMITED).then(|| acc.saturating_add(l)))
}

/// numsiginfo's RLIMIT_SIGPENDING (soft = barrier, hard = limit); None is unlimited.
pub fn sigpending(lim: &vz_common::VeLimits) -> Option<(u64, u64)> {
    let l = lim.res[res::NUMSIGINFO as usize];
    (l.limit < UB_UNLIMITED).then_some((l.barrier, l.limit))
}

/// Applies numsiginfo to every process of a running VE. Returns a warning when the hard
/// limit could not be raised (a host root without CAP_SYS_RESOURCE): the processes keep
/// their old, lower limit until the VE restarts.
pub fn apply_sigpending(cg: &dyn Cgroups, veid: u32, lim: &vz_common::VeLimits) -> Result<Option<String>, CgroupError> {
    let want = sigpending(lim);
    let mut warning = None;
    for pid in cg.procs(veid) {
        match crate::ns::set_sigpending_of(pid, want) {
            Ok(()) => {}
            // A process that exited meanwhile is fine.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                warning = Some(
                    "numsiginfo: the running container keeps its lower RLIMIT_SIGPENDING (raising a hard limit needs CAP_SYS_RESOURCE, which this host's root lacks); the new value applies at the next start"
                        .to_string(),
                );
            }
            Err(e) => {
                return Err(CgroupError::Io { op: "prlimit", path: PathBuf::from(format!("/proc/{pid}")), source: e })
            }
        }
    }
    Ok(warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_memory_is_the_sum_of_the_charged_rows_or_unlimited() {
        let mut l = vz_common::VeLimits::default();
        assert_eq!(socket_memory_limit(&l), None);
        for (r, v) in [(res::TCPSNDBUF, 100), (res::TCPRCVBUF, 200)] {
            l.res[r as usize] = vz_common::UbcLimit { barrier: v, limit: v };
        }
        // dgramrcvbuf still unlimited: the shared pool is too.
        assert_eq!(socket_memory_limit(&l), None);
        l.res[res::DGRAMRCVBUF as usize] = vz_common::UbcLimit { barrier: 5, limit: 50 };
        assert_eq!(socket_memory_limit(&l), Some(350));
        // othersockbuf is not charged to the memory cgroup.
        l.res[res::OTHERSOCKBUF as usize] = vz_common::UbcLimit { barrier: 1, limit: 1 };
        assert_eq!(socket_memory_limit(&l), Some(350));
    }

    #[test]
    fn sigpending_is_barrier_soft_limit_hard() {
        let mut l = vz_common::VeLimits::default();
        assert_eq!(sigpending(&l), None);
        l.res[res::NUMSIGINFO as usize] = vz_common::UbcLimit { barrier: 256, limit: 300 };
        assert_eq!(sigpending(&l), Some((256, 300)));
    }

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
