//! shmpages: the VE's IPC namespace kernel.shmall and the size of its /dev/shm (a tmpfs host
//! root mounts); vz_sysctl keeps VE root from raising shmall. Held is the memory
//! controller's shmem count: every tmpfs, SysV or POSIX segment the VE's processes brought
//! in, whatever namespace or mount they made for it.
use vz_common::{res, VeLimits, VeUsage, UB_UNLIMITED};

use super::{snapshot, Family, Mechanism, Probe, Target, UbcError, PAGE_SIZE};
use crate::{
    cgroup::{Cgroups, Memory},
    ns::{self, InitSpec},
};

pub struct Shm;

/// shmall when shmpages is unlimited: the kernel's own default (ULONG_MAX - 2^24).
const SHMALL_DEFAULT: u64 = u64::MAX - (1 << 24);

impl Family for Shm {
    fn rows(&self) -> &'static [u32] {
        &[res::SHMPAGES]
    }
    fn mechanism(&self, _id: u32, _cg: &dyn Cgroups, _veid: u32) -> Option<Mechanism> {
        Some(Mechanism::Shm)
    }
    fn read(&self, p: &Probe, usage: &mut VeUsage) {
        let held = match Memory::of(p.cg, p.veid) {
            Some(m) => m.shmem().map(|b| b.div_ceil(PAGE_SIZE)),
            // Without a memory controller, the VE's own instances only.
            None => p.init.and_then(ns::own_shm_pages),
        };
        if let Some(held) = held {
            usage.res[res::SHMPAGES as usize] = snapshot(held);
        }
    }
    fn at_init(&self, full: &VeLimits, spec: &mut InitSpec) -> Result<Option<String>, UbcError> {
        spec.shm_bytes = shm_pages_limit(full).map(|p| p.saturating_mul(PAGE_SIZE));
        Ok(None)
    }
    fn after_init(&self, t: &Target, init: i32, full: &VeLimits) -> Result<(), UbcError> {
        if let Some(pages) = shm_pages_limit(full) {
            ns::set_shmall(init, pages, t.uid)?;
        }
        Ok(())
    }
    fn live(&self, t: &Target, init: i32, full: &VeLimits) -> Result<Option<String>, UbcError> {
        let pages = shm_pages_limit(full);
        ns::set_shm_size(init, pages.map(|p| p.saturating_mul(PAGE_SIZE)))?;
        ns::set_shmall(init, pages.unwrap_or(SHMALL_DEFAULT), t.uid)?;
        Ok(None)
    }
}

/// shmpages' limit in pages (None: unlimited).
pub fn shm_pages_limit(full: &VeLimits) -> Option<u64> {
    let l = full.res[res::SHMPAGES as usize].limit;
    (l < UB_UNLIMITED / PAGE_SIZE).then_some(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_in_pages_or_unlimited() {
        let mut l = VeLimits::default();
        assert_eq!(shm_pages_limit(&l), None);
        l.res[res::SHMPAGES as usize] = vz_common::UbcLimit { barrier: 100, limit: 8192 };
        assert_eq!(shm_pages_limit(&l), Some(8192));
    }
}
