//! numfile, privvmpages, lockedpages and vmguarpages: snapshots by vzbpf's BPF iterators
//! (open files; accounted and mlocked mappings). Exact now; no hook gives their peaks or
//! refusals, and nothing on this kernel can refuse them.
use vz_common::{res, VeUsage};

use super::{snapshot, Family, Mechanism, Probe};
use crate::{bpf::Bpf, cgroup::Cgroups};

pub struct Snapshots;

impl Family for Snapshots {
    fn rows(&self) -> &'static [u32] {
        &[res::NUMFILE, res::PRIVVMPAGES, res::LOCKEDPAGES, res::VMGUARPAGES]
    }
    fn mechanism(&self, _id: u32, _cg: &dyn Cgroups, _veid: u32) -> Option<Mechanism> {
        Some(Mechanism::IterAccounted)
    }
    fn has_figures(&self, id: u32, bpf: Option<&Bpf>) -> bool {
        match id {
            res::NUMFILE => bpf.and_then(|b| b.files_of(0)).is_some(),
            _ => bpf.and_then(|b| b.vms_of(0)).is_some(),
        }
    }
    fn walked(&self) -> &'static [u32] {
        self.rows()
    }
    fn read(&self, p: &Probe, usage: &mut VeUsage) {
        let Some(bpf) = p.bpf else { return };
        if let Some(n) = bpf.files_of(p.cgid) {
            usage.res[res::NUMFILE as usize] = snapshot(n);
        }
        if let Some([privvm, locked]) = bpf.vms_of(p.cgid) {
            usage.res[res::PRIVVMPAGES as usize] = snapshot(privvm);
            usage.res[res::LOCKEDPAGES as usize] = snapshot(locked);
            // vmguarpages guarantees allocations up to its barrier: what it covers is the
            // VE's private virtual memory.
            usage.res[res::VMGUARPAGES as usize] = snapshot(privvm);
        }
    }
}
