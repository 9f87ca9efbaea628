//! numproc: the pids controller counts and refuses forks (EAGAIN) at the barrier.
use vz_common::{res, VeLimits, VeUsage};

use super::{counter_row, Family, Mechanism, Probe, Target, UbcError};
use crate::cgroup::{Cgroups, Pids};

pub struct Procs;

impl Family for Procs {
    fn rows(&self) -> &'static [u32] {
        &[res::NUMPROC]
    }
    fn mechanism(&self, _id: u32, cg: &dyn Cgroups, veid: u32) -> Option<Mechanism> {
        Pids::of(cg, veid).map(|_| Mechanism::Pids)
    }
    fn read(&self, p: &Probe, usage: &mut VeUsage) {
        if let Some(c) = Pids::of(p.cg, p.veid).and_then(|pids| pids.usage()) {
            usage.res[res::NUMPROC as usize] = counter_row(c, 1);
        }
    }
    fn apply_cgroup(&self, t: &Target, full: &VeLimits) -> Result<(), UbcError> {
        if let Some(p) = Pids::of(t.cg, t.veid) {
            p.set_max(pids_max(full))?;
        }
        Ok(())
    }
}

/// pids.max from numproc's barrier (None: max); the controller takes at most an int.
fn pids_max(full: &VeLimits) -> Option<u64> {
    let b = full.res[res::NUMPROC as usize].barrier;
    (b < i32::MAX as u64).then_some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_max_is_the_barrier_or_unlimited() {
        let mut l = VeLimits::default();
        assert_eq!(pids_max(&l), None);
        l.res[res::NUMPROC as usize] = vz_common::UbcLimit { barrier: 40, limit: 50 };
        assert_eq!(pids_max(&l), Some(40));
    }
}
