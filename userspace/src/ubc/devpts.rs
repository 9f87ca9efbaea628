//! numpty: the VE's own devpts instance refuses past `max=` (ENOSPC). Host root mounts it
//! before the VE's user namespace exists, so VE root cannot remount it; held is every pty
//! the VE's processes hold, on any devpts instance (a VE may mount its own).
use vz_common::{res, VeLimits, VeUsage, UB_UNLIMITED};

use super::{snapshot, Family, Mechanism, Probe, Target, UbcError};
use crate::{
    cgroup::Cgroups,
    ns::{self, InitSpec},
};

pub struct Ptys;

impl Family for Ptys {
    fn rows(&self) -> &'static [u32] {
        &[res::NUMPTY]
    }
    fn mechanism(&self, _id: u32, _cg: &dyn Cgroups, _veid: u32) -> Option<Mechanism> {
        Some(Mechanism::Devpts)
    }
    fn walked(&self) -> &'static [u32] {
        &[res::NUMPTY]
    }
    fn read(&self, p: &Probe, usage: &mut VeUsage) {
        // No hook counts refusals or peaks: maxheld is held now.
        usage.res[res::NUMPTY as usize] = snapshot(ns::pty_count(p.init, &p.procs, p.console));
    }
    fn at_init(&self, full: &VeLimits, spec: &mut InitSpec) -> Result<Option<String>, UbcError> {
        spec.pty_max = pty_max(full);
        Ok(None)
    }
    fn live(&self, _t: &Target, init: i32, full: &VeLimits) -> Result<Option<String>, UbcError> {
        ns::set_pty_max(init, pty_max(full))?;
        Ok(None)
    }
}

/// The pty of the VE's console (`vzctl console`), in the same devpts instance: the host's,
/// not one of the VE's numpty (OpenVZ's console was no pty either).
const CONSOLE_PTYS: u64 = 1;

/// devpts `max` for a limit record: numpty's barrier, plus the console's (None: no limit).
pub fn pty_max(full: &VeLimits) -> Option<u64> {
    let b = full.res[res::NUMPTY as usize].barrier;
    (b < UB_UNLIMITED).then_some(b + CONSOLE_PTYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_barrier_and_the_console_are_devpts_max() {
        let mut l = VeLimits::default();
        assert_eq!(pty_max(&l), None);
        l.res[res::NUMPTY as usize] = vz_common::UbcLimit { barrier: 4, limit: 8 };
        assert_eq!(pty_max(&l), Some(5), "4 for the VE, 1 for its console");
    }
}
