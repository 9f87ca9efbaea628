//! physpages, swappages, kmemsize and oomguarpages: the VE's memory cgroup counts them; it
//! reclaims and OOM-kills at the RAM and swap limits (VSwap), keeps oomguarpages' barrier
//! as the VE's guarantee, and only accounts kmemsize. It also carries the socket-memory
//! limit of the `sock` family's buffer rows (one `set_limits` writes them all).
use vz_common::{res, VeLimits, VeUsage, UB_UNLIMITED};

use super::{counter_row, Family, Mechanism, Probe, Target, UbcError, PAGE_SIZE};
use crate::cgroup::{Cgroups, Memory, MemoryLimits};

pub struct Memcg;

impl Family for Memcg {
    fn rows(&self) -> &'static [u32] {
        &[res::PHYSPAGES, res::SWAPPAGES, res::KMEMSIZE, res::OOMGUARPAGES]
    }
    fn mechanism(&self, id: u32, cg: &dyn Cgroups, veid: u32) -> Option<Mechanism> {
        let m = Memory::of(cg, veid)?;
        match id {
            res::PHYSPAGES => Some(Mechanism::Memcg),
            res::SWAPPAGES => m.has_swap().then_some(Mechanism::Memcg),
            res::KMEMSIZE => Some(Mechanism::MemcgAccounted),
            res::OOMGUARPAGES => Some(Mechanism::MemcgGuarantee),
            _ => None,
        }
    }
    fn read(&self, p: &Probe, usage: &mut VeUsage) {
        let Some(m) = Memory::of(p.cg, p.veid) else { return };
        let rows = [
            (res::PHYSPAGES, m.ram(), PAGE_SIZE),
            (res::SWAPPAGES, m.swap(), PAGE_SIZE),
            // RAM + swap in use, as OpenVZ's oomguarpages; its failcnt is the VE's OOM kills.
            (res::OOMGUARPAGES, m.ram_and_swap(), PAGE_SIZE),
            (res::KMEMSIZE, m.kernel(), 1),
        ];
        for (id, counter, unit) in rows {
            if let Some(c) = counter {
                usage.res[id as usize] = counter_row(c, unit);
            }
        }
    }
    fn apply_cgroup(&self, t: &Target, full: &VeLimits) -> Result<(), UbcError> {
        if let Some(m) = Memory::of(t.cg, t.veid) {
            m.set_limits(&limits_of(full))?;
        }
        Ok(())
    }
}

/// The memory controller's limits for a full limit record: RAM from physpages' limit,
/// memory+swap from physpages + swappages (VSwap), oomguarpages' barrier as the guarantee.
pub fn limits_of(full: &VeLimits) -> MemoryLimits {
    let phys = full.res[res::PHYSPAGES as usize].limit;
    let swap = full.res[res::SWAPPAGES as usize].limit;
    MemoryLimits {
        ram: bytes_of(phys),
        swap: bytes_of(swap),
        ram_swap: memsw_bytes(phys, swap),
        guarantee: bytes_of(full.res[res::OOMGUARPAGES as usize].barrier),
        socket: socket_memory_limit(full),
    }
}

/// Bytes of a page limit; None when it is unlimited.
fn bytes_of(pages: u64) -> Option<u64> {
    (pages < UB_UNLIMITED / PAGE_SIZE).then(|| pages * PAGE_SIZE)
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
pub fn socket_memory_limit(full: &VeLimits) -> Option<u64> {
    [res::TCPSNDBUF, res::TCPRCVBUF, res::DGRAMRCVBUF]
        .iter()
        .map(|r| full.res[*r as usize].limit)
        .try_fold(0u64, |acc, l| (l < UB_UNLIMITED).then(|| acc.saturating_add(l)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_memory_is_the_sum_of_the_charged_rows_or_unlimited() {
        let mut l = VeLimits::default();
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
    fn unlimited_becomes_the_controllers_word() {
        use crate::cgroup::limit_word;
        assert_eq!(limit_word(bytes_of(UB_UNLIMITED), true), "-1");
        assert_eq!(limit_word(bytes_of(UB_UNLIMITED), false), "max");
        assert_eq!(limit_word(bytes_of(256), true), "1048576");
    }

    #[test]
    fn vswap_limits_become_ram_and_ram_plus_swap() {
        let mut l = VeLimits::default();
        l.res[res::PHYSPAGES as usize] = vz_common::UbcLimit { barrier: 0, limit: 256 };
        l.res[res::SWAPPAGES as usize] = vz_common::UbcLimit { barrier: 0, limit: 512 };
        let m = limits_of(&l);
        assert_eq!(m.ram, Some(256 * PAGE_SIZE));
        assert_eq!(m.ram_swap, Some(768 * PAGE_SIZE));
        assert_eq!(m.guarantee, None);
    }
}
