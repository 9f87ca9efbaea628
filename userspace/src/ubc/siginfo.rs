//! numsiginfo: RLIMIT_SIGPENDING of every VE process (soft = barrier, hard = limit; per user
//! of the VE); the tp_btf/signal_generate program counts the refusals into the map's
//! failcnt, held is the signals queued now.
use tracing::warn;
use vz_common::{res, VeLimits, VeUsage, UB_UNLIMITED};

use super::{snapshot, Family, Mechanism, Probe, Target, UbcError};
use crate::{
    bpf::Bpf,
    cgroup::Cgroups,
    ns::{self, InitSpec},
};

pub struct Signals;

impl Family for Signals {
    fn keeps_bpf_failcnt(&self) -> bool {
        true
    }
    fn rows(&self) -> &'static [u32] {
        &[res::NUMSIGINFO]
    }
    fn mechanism(&self, _id: u32, _cg: &dyn Cgroups, _veid: u32) -> Option<Mechanism> {
        Some(Mechanism::Rlimit)
    }
    fn has_figures(&self, _id: u32, bpf: Option<&Bpf>) -> bool {
        bpf.is_some()
    }
    fn walked(&self) -> &'static [u32] {
        &[res::NUMSIGINFO]
    }
    fn read(&self, p: &Probe, usage: &mut VeUsage) {
        if p.init.is_some() {
            let failcnt = usage.res[res::NUMSIGINFO as usize].failcnt;
            usage.res[res::NUMSIGINFO as usize] = snapshot(ns::queued_signals(&p.procs));
            usage.res[res::NUMSIGINFO as usize].failcnt = failcnt;
        }
    }
    /// Init inherits this process's RLIMIT_SIGPENDING, so it is set here; the hard limit
    /// cannot be raised again from inside the VE (that needs host CAP_SYS_RESOURCE).
    fn at_init(&self, full: &VeLimits, _spec: &mut InitSpec) -> Result<Option<String>, UbcError> {
        let Some((mut soft, mut hard)) = sigpending(full) else { return Ok(None) };
        let mut warning = None;
        if let Some(now) = ns::sigpending_of(std::process::id() as i32) {
            // Without CAP_SYS_RESOURCE the hard limit cannot go above this process's.
            if hard > now.rlim_max && ns::set_sigpending(0, Some((soft, hard))).is_err() {
                warning = Some(format!("numsiginfo {hard} is above what this host's root may grant (RLIMIT_SIGPENDING {}; no CAP_SYS_RESOURCE): using {}", now.rlim_max, now.rlim_max));
                hard = now.rlim_max;
                soft = soft.min(hard);
            }
        }
        ns::set_sigpending(0, Some((soft, hard))).map_err(|source| UbcError::Sigpending { pid: 0, source })?;
        Ok(warning)
    }
    /// Every process of the running VE. A hard limit that cannot be raised (a host root
    /// without CAP_SYS_RESOURCE) is a warning: the processes keep their old, lower limit
    /// until the VE restarts.
    fn live(&self, t: &Target, _init: i32, full: &VeLimits) -> Result<Option<String>, UbcError> {
        let want = sigpending(full);
        let mut warning = None;
        for pid in t.cg.procs(t.veid) {
            match ns::set_sigpending_of(pid, want) {
                Ok(()) => {}
                // A process that exited meanwhile is fine.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    warn!(veid = t.veid, pid, "cannot raise RLIMIT_SIGPENDING: {e}");
                    warning = Some(
                        "numsiginfo: the running container keeps its lower RLIMIT_SIGPENDING (raising a hard limit needs CAP_SYS_RESOURCE, which this host's root lacks); the new value applies at the next start"
                            .to_string(),
                    );
                }
                Err(source) => return Err(UbcError::Sigpending { pid, source }),
            }
        }
        Ok(warning)
    }
}

/// numsiginfo's RLIMIT_SIGPENDING (soft = barrier, hard = limit); None is unlimited.
pub fn sigpending(full: &VeLimits) -> Option<(u64, u64)> {
    let l = full.res[res::NUMSIGINFO as usize];
    (l.limit < UB_UNLIMITED).then_some((l.barrier, l.limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigpending_is_barrier_soft_limit_hard() {
        let mut l = VeLimits::default();
        assert_eq!(sigpending(&l), None);
        l.res[res::NUMSIGINFO as usize] = vz_common::UbcLimit { barrier: 256, limit: 300 };
        assert_eq!(sigpending(&l), Some((256, 300)));
    }
}
