//! Beancounters kept by kernel controllers: where each row's numbers come from, and what
//! refuses past its limit.
//!
//! numtcpsock and numothersock are counted and refused by vzbpf's own programs (maps
//! `VZ_UBC_V1`); numproc by the pids controller; physpages, swappages and kmemsize by the
//! VE's memory cgroup. Barrier and limit of every row live in `VZ_LIMITS_V1`, whatever
//! enforces them, so the maps show what the admin set.
use vz_common::{res, UbcUsage, UB_UNLIMITED};

use crate::{
    cgroup::{CgroupError, Cgroups, Counter, Memory, MemoryLimits, Pids},
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

/// The mechanism behind `r` for this VE on this host, if the row has real figures here.
pub fn mechanism(r: &Resource, cg: &dyn Cgroups, veid: u32) -> Option<Mechanism> {
    match r.id {
        res::NUMTCPSOCK | res::NUMOTHERSOCK => Some(Mechanism::Bpf),
        res::NUMPROC => Pids::of(cg, veid).map(|_| Mechanism::Pids),
        res::PHYSPAGES => Memory::of(cg, veid).map(|_| Mechanism::Memcg),
        res::SWAPPAGES => Memory::of(cg, veid).filter(Memory::has_swap).map(|_| Mechanism::Memcg),
        res::KMEMSIZE => Memory::of(cg, veid).map(|_| Mechanism::MemcgAccounted),
        res::NUMPTY => Some(Mechanism::Devpts),
        res::NUMFILE | res::PRIVVMPAGES | res::LOCKEDPAGES | res::VMGUARPAGES => Some(Mechanism::IterAccounted),
        res::SHMPAGES => Some(Mechanism::Shm),
        res::TCPSNDBUF | res::TCPRCVBUF | res::DGRAMRCVBUF => {
            Some(if Memory::of(cg, veid).is_some_and(|m| m.has_socket_limit()) {
                Mechanism::MemcgSock
            } else {
                Mechanism::BpfClamp
            })
        }
        res::OTHERSOCKBUF => Some(Mechanism::BpfClamp),
        res::NUMSIGINFO => Some(Mechanism::Rlimit),
        res::OOMGUARPAGES => Memory::of(cg, veid).map(|_| Mechanism::MemcgGuarantee),
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

/// A controller's counter as a row: in pages (`unit` PAGE_SIZE) or bytes (1); maxheld
/// never below held.
fn row(c: Counter, unit: u64) -> UbcUsage {
    let held = c.now.div_ceil(unit);
    UbcUsage { held, maxheld: c.peak.map_or(held, |p| p.div_ceil(unit)).max(held), failcnt: c.failcnt }
}

/// Usage of a controller-backed row (None for BPF rows and rows without a source).
pub fn usage(r: &Resource, cg: &dyn Cgroups, veid: u32) -> Option<UbcUsage> {
    match r.id {
        res::NUMPROC => Some(row(Pids::of(cg, veid)?.usage()?, 1)),
        res::PHYSPAGES => Some(row(Memory::of(cg, veid)?.ram()?, PAGE_SIZE)),
        res::SWAPPAGES => Some(row(Memory::of(cg, veid)?.swap()?, PAGE_SIZE)),
        res::SHMPAGES => {
            // Every page of shared memory the VE's processes brought in, in any tmpfs, SysV
            // or POSIX segment, whatever IPC namespace or mount they made for it: the memory
            // controller charges each to the VE. Without one, the VE's own instances only.
            let held = match Memory::of(cg, veid) {
                Some(m) => pages(m.shmem())?,
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
        // RAM + swap in use, as OpenVZ's oomguarpages; its failcnt is the VE's OOM kills.
        res::OOMGUARPAGES => Some(row(Memory::of(cg, veid)?.ram_and_swap()?, PAGE_SIZE)),
        res::NUMFLOCK => {
            let locks = std::fs::read_to_string("/proc/locks").ok()?;
            let held = crate::ns::file_locks(&locks, &cg.procs(veid));
            Some(UbcUsage { held, maxheld: held, failcnt: 0 })
        }
        res::NUMIPTENT => {
            let held = crate::ns::netfilter_entries(crate::ns::find_init(cg, veid)?)?;
            Some(UbcUsage { held, maxheld: held, failcnt: 0 })
        }
        res::KMEMSIZE => Some(row(Memory::of(cg, veid)?.kernel()?, 1)),
        _ => None,
    }
}

/// Bytes of a page limit; None when it is unlimited.
fn bytes_of(pages: u64) -> Option<u64> {
    (pages < UB_UNLIMITED / PAGE_SIZE).then(|| pages * PAGE_SIZE)
}

/// Writes the kernel-side limits of the controller-backed rows from a VE's full limit
/// record: pids.max from numproc's barrier; memory limit from physpages' limit; memory+swap
/// from physpages + swappages limits (VSwap); oomguarpages' barrier as the VE's guarantee.
pub fn apply(cg: &dyn Cgroups, veid: u32, lim: &vz_common::VeLimits) -> Result<(), CgroupError> {
    if let Some(p) = Pids::of(cg, veid) {
        let b = lim.res[res::NUMPROC as usize].barrier;
        p.set_max((b < i32::MAX as u64).then_some(b))?;
    }
    if let Some(m) = Memory::of(cg, veid) {
        let phys = lim.res[res::PHYSPAGES as usize].limit;
        let swap = lim.res[res::SWAPPAGES as usize].limit;
        m.set_limits(&MemoryLimits {
            ram: bytes_of(phys),
            swap: bytes_of(swap),
            ram_swap: memsw_bytes(phys, swap),
            guarantee: bytes_of(lim.res[res::OOMGUARPAGES as usize].barrier),
            socket: socket_memory_limit(lim),
        })?;
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
                return Err(CgroupError::Io {
                    op: "prlimit",
                    path: std::path::PathBuf::from(format!("/proc/{pid}")),
                    source: e,
                })
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
        use crate::cgroup::limit_word;
        assert_eq!(limit_word(bytes_of(UB_UNLIMITED), true), "-1");
        assert_eq!(limit_word(bytes_of(UB_UNLIMITED), false), "max");
        assert_eq!(limit_word(bytes_of(256), true), "1048576");
    }

    #[test]
    fn labels() {
        assert_eq!(Mechanism::Pids.label(), "pids");
        assert!(!Mechanism::MemcgAccounted.enforces());
        assert!(Mechanism::Bpf.enforces());
    }
}
