//! The row registry: which family stands behind each beancounter, and the walks over the
//! families that start, set and every reader use.
use vz_common::{UbcUsage, VeLimits, VeUsage};

use super::{Mechanism, Resource, UbcError, UbcRow, ALL};
use crate::{bpf::Bpf, cgroup::Cgroups, ns::InitSpec};

/// A running VE as the readers see it, gathered once per VE.
pub struct Probe<'a> {
    pub cg: &'a dyn Cgroups,
    pub veid: u32,
    /// The VE's cgroup id: its key in the pinned maps.
    pub cgid: u64,
    /// The pinned maps and programs (None: not loaded, or not readable by this user).
    pub bpf: Option<&'a Bpf>,
    pub init: Option<i32>,
    /// The VE's processes, read once for every row that counts per process.
    pub procs: Vec<i32>,
    /// The number of the VE's console pty (the host's keeper holds it; not the VE's).
    pub console: Option<u64>,
}

impl<'a> Probe<'a> {
    pub fn new(cg: &'a dyn Cgroups, veid: u32, cgid: u64, bpf: Option<&'a Bpf>, console: Option<u64>) -> Self {
        Self { cg, veid, cgid, bpf, init: crate::ns::find_init(cg, veid), procs: cg.procs(veid), console }
    }
}

/// A VE whose limits are being put in force.
pub struct Target<'a> {
    pub cg: &'a dyn Cgroups,
    pub veid: u32,
    /// The host uid of the VE's root (owner of its IPC namespace).
    pub uid: u32,
}

/// One mechanism family: the rows it stands behind and everything done with them.
pub trait Family: Sync {
    /// Its rows (OpenVZ resource ids).
    fn rows(&self) -> &'static [u32];
    /// The mechanism behind row `id` for this VE on this host; None when nothing here counts
    /// it (the row is stored only).
    fn mechanism(&self, id: u32, cg: &dyn Cgroups, veid: u32) -> Option<Mechanism>;
    /// Whether row `id` has figures now (BPF-counted rows need the pins, some a program).
    fn has_figures(&self, _id: u32, _bpf: Option<&Bpf>) -> bool {
        true
    }
    /// Fills its rows of `usage`, which holds the BPF map's record (or zeros) on entry.
    fn read(&self, _p: &Probe, _usage: &mut VeUsage) {}
    /// The rows `read` finds by walking the VE's processes, sockets or namespaces (an
    /// iterator, /proc, setns): their cost grows with those, not with the number of VEs,
    /// so a metrics scrape takes them from a recent walk (see [`read_unwalked`]).
    fn walked(&self) -> &'static [u32] {
        &[]
    }
    /// Whether `read` keeps the failcnt the BPF record holds for its rows (adding to it),
    /// rather than putting a kernel counter's in its place.
    fn keeps_bpf_failcnt(&self) -> bool {
        false
    }
    /// Limits on the VE's cgroups: at start before init exists, and on every live set.
    fn apply_cgroup(&self, _t: &Target, _full: &VeLimits) -> Result<(), UbcError> {
        Ok(())
    }
    /// At start, what the VE's init is made with; a warning for the admin if it got less.
    fn at_init(&self, _full: &VeLimits, _spec: &mut InitSpec) -> Result<Option<String>, UbcError> {
        Ok(None)
    }
    /// At start, once init exists.
    fn after_init(&self, _t: &Target, _init: i32, _full: &VeLimits) -> Result<(), UbcError> {
        Ok(())
    }
    /// On a running VE one of whose rows changed (after `apply_cgroup`); a warning for the
    /// admin if the change waits for the next start.
    fn live(&self, _t: &Target, _init: i32, _full: &VeLimits) -> Result<Option<String>, UbcError> {
        Ok(None)
    }
}

static FAMILIES: &[&dyn Family] = &[
    &super::sock::Sockets,
    &super::pids::Procs,
    &super::memcg::Memcg,
    &super::devpts::Ptys,
    &super::shm::Shm,
    &super::siginfo::Signals,
    &super::iter::Snapshots,
    &super::counted::Counted,
];

/// The family standing behind row `id`.
pub fn family_of(id: u32) -> Option<&'static dyn Family> {
    FAMILIES.iter().copied().find(|f| f.rows().contains(&id))
}

/// The mechanism behind `r` for this VE on this host, if the row has real figures here.
pub fn mechanism(r: &Resource, cg: &dyn Cgroups, veid: u32) -> Option<Mechanism> {
    family_of(r.id)?.mechanism(r.id, cg, veid)
}

/// Fills every controller- and iterator-kept row of `usage` (BPF-kept rows are already in it).
///
/// A restored VE's kernel-kept rows start again from zero in its new cgroups; the maxheld
/// and failcnt its dump carried sit in the BPF record's slot of each row (no program writes
/// the slot of a row the kernel keeps), and are merged back here: the larger maxheld, the
/// sum of failcnts. For every other VE those slots are zero and this changes nothing.
pub fn read(p: &Probe, usage: &mut VeUsage) {
    read_families(p, usage, |_| true);
}

fn read_families(p: &Probe, usage: &mut VeUsage, which: impl Fn(&dyn Family) -> bool) {
    let carried = *usage;
    for f in FAMILIES.iter().filter(|f| which(**f)) {
        f.read(p, usage);
        merge_carried(f.rows(), f.keeps_bpf_failcnt(), &carried, usage);
    }
}

/// Like [`read`] without the families that walk (their rows keep the BPF record's figures):
/// a cost that grows with the VE's limits and controllers only.
pub fn read_unwalked(p: &Probe, usage: &mut VeUsage) {
    read_families(p, usage, |f| f.walked().is_empty());
}

/// Every row some family finds by walking.
pub fn walked_rows() -> impl Iterator<Item = u32> {
    FAMILIES.iter().flat_map(|f| f.walked().iter().copied())
}

/// Puts a walk's figures for the walked rows into a record read without walking: held as
/// walked, peak and refusals the larger of the two (both only grow, so counters stay
/// monotonic).
pub fn merge_walked(walk: &VeUsage, usage: &mut VeUsage) {
    for id in walked_rows() {
        let (Some(now), Some(w)) = (usage.res.get_mut(id as usize), walk.res.get(id as usize)) else { continue };
        now.held = w.held;
        now.maxheld = now.maxheld.max(w.maxheld);
        now.failcnt = now.failcnt.max(w.failcnt);
    }
}

fn merge_carried(rows: &[u32], keeps_failcnt: bool, carried: &VeUsage, usage: &mut VeUsage) {
    for &id in rows {
        let (Some(now), Some(was)) = (usage.res.get_mut(id as usize), carried.res.get(id as usize)) else { continue };
        if *now == *was {
            // Untouched by the family: a BPF-kept row, already whole.
            continue;
        }
        now.maxheld = now.maxheld.max(was.maxheld);
        if !keeps_failcnt {
            now.failcnt += was.failcnt;
        }
    }
}

/// One report row and what stands behind it.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub row: UbcRow,
    pub mechanism: Mechanism,
}

/// The report rows of a record: every beancounter with real figures on this host now.
pub fn rows(cg: &dyn Cgroups, veid: u32, bpf: Option<&Bpf>, (usage, lim): (VeUsage, VeLimits)) -> Vec<Row> {
    ALL.iter()
        .filter_map(|r| {
            let f = family_of(r.id)?;
            let mechanism = f.mechanism(r.id, cg, veid)?;
            f.has_figures(r.id, bpf).then_some(Row {
                row: UbcRow { resource: r, usage: usage.res[r.id as usize], limit: lim.res[r.id as usize] },
                mechanism,
            })
        })
        .collect()
}

/// Start, before init exists: every family's cgroup limits.
pub fn apply_cgroups(t: &Target, full: &VeLimits) -> Result<(), UbcError> {
    FAMILIES.iter().try_for_each(|f| f.apply_cgroup(t, full))
}

/// Start: what init is made with. Returns the admin's warnings.
pub fn init_spec(full: &VeLimits, spec: &mut InitSpec) -> Result<Vec<String>, UbcError> {
    let mut warnings = Vec::new();
    for f in FAMILIES {
        warnings.extend(f.at_init(full, spec)?);
    }
    Ok(warnings)
}

/// Start, once init exists.
pub fn after_init(t: &Target, init: i32, full: &VeLimits) -> Result<(), UbcError> {
    FAMILIES.iter().try_for_each(|f| f.after_init(t, init, full))
}

/// A running VE: `full` in force on its cgroups, and the families of the rows in `changed`
/// applied live. Returns the admin's warnings.
pub fn apply_live(t: &Target, init: i32, full: &VeLimits, changed: &[u32]) -> Result<Vec<String>, UbcError> {
    apply_cgroups(t, full)?;
    let mut warnings = Vec::new();
    for f in FAMILIES.iter().filter(|f| f.rows().iter().any(|id| changed.contains(id))) {
        warnings.extend(f.live(t, init, full)?);
    }
    Ok(warnings)
}

/// A counter as a row: in pages (`unit` PAGE_SIZE) or bytes (1); maxheld never below held.
pub(super) fn counter_row(c: crate::cgroup::Counter, unit: u64) -> UbcUsage {
    let held = c.now.div_ceil(unit);
    UbcUsage { held, maxheld: c.peak.map_or(held, |p| p.div_ceil(unit)).max(held), failcnt: c.failcnt }
}

/// A snapshot as a row: no hook gives its peak or refusals.
pub(super) fn snapshot(held: u64) -> UbcUsage {
    UbcUsage { held, maxheld: held, failcnt: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_exactly_one_family() {
        for r in ALL {
            let n = FAMILIES.iter().filter(|f| f.rows().contains(&r.id)).count();
            assert_eq!(n, 1, "{} is in {n} families", r.name);
        }
        let listed: usize = FAMILIES.iter().map(|f| f.rows().len()).sum();
        assert_eq!(listed, ALL.len(), "a family lists a row that is not a beancounter");
    }

    #[test]
    fn a_counter_row_never_has_maxheld_below_held() {
        let c = crate::cgroup::Counter { now: 8193, peak: Some(4096), failcnt: 3 };
        let r = counter_row(c, 4096);
        assert_eq!((r.held, r.maxheld, r.failcnt), (3, 3, 3));
        let r = counter_row(crate::cgroup::Counter { now: 10, peak: None, failcnt: 0 }, 1);
        assert_eq!((r.held, r.maxheld), (10, 10));
    }
}

#[cfg(test)]
mod carried_tests {
    use super::*;
    use vz_common::{res, UbcUsage};

    #[test]
    fn a_restored_ves_carried_maxheld_and_failcnt_join_the_kernels_figures() {
        let mut carried = VeUsage { res: [UbcUsage::default(); vz_common::UB_SLOTS] };
        carried.res[res::NUMPROC as usize] = UbcUsage { held: 0, maxheld: 40, failcnt: 3 };
        carried.res[res::NUMTCPSOCK as usize] = UbcUsage { held: 2, maxheld: 9, failcnt: 1 };
        let mut now = carried;
        // The pids controller's figures replace the row; the BPF-kept row is left alone.
        now.res[res::NUMPROC as usize] = UbcUsage { held: 5, maxheld: 7, failcnt: 1 };
        merge_carried(&[res::NUMPROC, res::NUMTCPSOCK], false, &carried, &mut now);
        assert_eq!(now.res[res::NUMPROC as usize], UbcUsage { held: 5, maxheld: 40, failcnt: 4 });
        assert_eq!(now.res[res::NUMTCPSOCK as usize], UbcUsage { held: 2, maxheld: 9, failcnt: 1 });
        // A family that adds to the BPF record's failcnt keeps it: no second add.
        let mut sock = carried;
        sock.res[res::NUMTCPSOCK as usize] = UbcUsage { held: 3, maxheld: 3, failcnt: 2 };
        merge_carried(&[res::NUMTCPSOCK], true, &carried, &mut sock);
        assert_eq!(sock.res[res::NUMTCPSOCK as usize], UbcUsage { held: 3, maxheld: 9, failcnt: 2 });
    }
}
