//! What vzlist, the metrics endpoint and anything else that lists VEs read for one VE: one
//! reader, so the numbers a scrape returns are the ones vzlist shows.
use super::VeRow;
use crate::{bpf::Bpf, config::ConfFile, sys::mountinfo::LazyMountTable, ve::Status, Vz};

/// Which of the costlier parts of a row to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Want {
    pub ubc: bool,
    pub net: bool,
    pub io: bool,
    pub disk: bool,
    /// The beancounter rows found by walking processes, sockets and namespaces
    /// (`ubc::walked_rows`); without, they and `measured` are left for the caller.
    pub walks: bool,
}

impl Want {
    pub const ALL: Want = Want { ubc: true, net: true, io: true, disk: true, walks: true };
}

/// One VE's row. `bpf` is an open handle on the pins, shared by every row of one listing:
/// its iterators run once for all VEs.
pub fn row(vz: &Vz, bpf: Option<&Bpf>, mounts: &LazyMountTable, veid: u32, conf: ConfFile, want: Want) -> VeRow {
    // Tasks (processes and threads, what OpenVZ's NPROC and numproc count) from the pids
    // controller: one read, where listing every cgroup.procs below the VE's cgroup takes a
    // read and a directory walk each.
    let tasks = vz.cg.tasks(veid).map_or_else(|| vz.cg.procs(veid).len(), |n| n as usize);
    let root = vz.root_of(veid, &conf);
    // One statx where the kernel reports mount roots (the table's lookup resolves the
    // path's every component first).
    let mounted = crate::sys::mount::is_mount_root(&root).unwrap_or_else(|| mounts.get().is_mount_point(&root));
    let running = tasks > 0;
    let cgid = if running && (want.net || want.io) { vz.cg.ve_id(veid).ok() } else { None };
    // Beancounters only when asked: some rows are read inside the VE's namespaces, which
    // would make a plain listing of many VEs slow.
    let ubc = if running && want.ubc { vz.ubc_record_with(veid, bpf, want.walks) } else { None };
    let net = bpf.zip(cgid).filter(|_| want.net).and_then(|(b, id)| b.net_stats(id).ok().flatten());
    let io = bpf.zip(cgid).filter(|_| want.io).and_then(|(b, id)| {
        let per_dev = b.io_stats(id).ok()?;
        let mut t = crate::io::IoTotals::default();
        for (_, d) in &per_dev {
            t.add(d);
        }
        Some(t)
    });
    // simfs usage comes from project quota, mounted or not; a ploop image's when mounted.
    let disk = if want.disk {
        crate::ve::conf_disk(&conf)
            .ok()
            .and_then(|d| crate::disk::usage(&vz.private_of(veid, &conf), &root, d.layout, veid, mounts.get()))
    } else {
        None
    };
    // Rows with a real source on this host (the same choice as `vzctl ubc`).
    // (Some rows' figures depend on an iterator having run: known after a walk only.)
    let measured = ubc
        .filter(|_| want.walks)
        .map_or(0, |rec| vz.rows_of(veid, bpf, rec).iter().fold(0, |m, r| m | 1 << r.row.resource.id));
    VeRow { veid, status: Status { exist: true, mounted, running }, nproc: tasks, conf, ubc, net, io, disk, measured }
}
