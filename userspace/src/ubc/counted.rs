//! Rows counted but refused by nothing on this kernel. numflock: the VE's processes' entries
//! in /proc/locks. numiptent: netfilter entries, read over netlink in the VE's network
//! namespace. dcachesize: charged and uncharged by vzbpf's tracepoint programs as dentries
//! and inodes come and go (the map's figures; shown only when those programs run).
use vz_common::{progs, res, VeUsage};

use super::{snapshot, Family, Mechanism, Probe};
use crate::{bpf::Bpf, cgroup::Cgroups, ns};

pub struct Counted;

impl Family for Counted {
    fn rows(&self) -> &'static [u32] {
        &[res::NUMFLOCK, res::NUMIPTENT, res::DCACHESIZE]
    }
    fn mechanism(&self, id: u32, _cg: &dyn Cgroups, _veid: u32) -> Option<Mechanism> {
        match id {
            res::NUMFLOCK => Some(Mechanism::LocksAccounted),
            res::NUMIPTENT => Some(Mechanism::NetfilterAccounted),
            res::DCACHESIZE => Some(Mechanism::BpfAccounted),
            _ => None,
        }
    }
    fn has_figures(&self, id: u32, bpf: Option<&Bpf>) -> bool {
        id != res::DCACHESIZE || bpf.is_some_and(|b| b.pins.link(progs::DCACHE_FREE).exists())
    }
    fn walked(&self) -> &'static [u32] {
        &[res::NUMFLOCK, res::NUMIPTENT]
    }
    fn read(&self, p: &Probe, usage: &mut VeUsage) {
        if let Ok(locks) = std::fs::read_to_string("/proc/locks") {
            usage.res[res::NUMFLOCK as usize] = snapshot(ns::file_locks(&locks, &p.procs));
        }
        if let Some(n) = p.init.and_then(ns::netfilter_entries) {
            usage.res[res::NUMIPTENT as usize] = snapshot(n);
        }
    }
}
