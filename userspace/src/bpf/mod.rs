//! Loading, pinning and upgrading the BPF programs, and the beancounter maps they share.
//!
//! Pin layout (bpffs), documented in the README:
//! ```text
//! <pin root>/            default /sys/fs/bpf/vz
//!   progs/<program>      loaded programs (vz_sock_create, vz_sock_release, vz_sysctl, ...)
//!   maps/<MAP>           VZ_UBC_V1, VZ_LIMITS_V1, VZ_SOCKS_V1, VZ_SOCKS_OVF_V1,
//!                        VZ_STATS_V1, VZ_META_V1, VZ_EVENTS_V1, VZ_FILES_V1, VZ_VMS_V1
//!   progs/vz_iter_files, links/vz_iter_files   iter/task_file counting open files
//!   progs/vz_iter_vmas, links/vz_iter_vmas     iter/task_vma: privvmpages, lockedpages
//!   progs/vz_iter_{tcp,udp,unix}, links/...    socket buffers (run inside a VE's netns)
//!   progs/vz_signal, links/vz_signal           tp_btf/signal_generate: numsiginfo failcnt
//!   progs/vz_exit, links/vz_exit               tp_btf/sched_process_exit: a VE's init exits
//!                                              (reboot, halt) to VZ_EVENTS_V1
//!   progs/vz_dcache_{alloc,free}, links/...    tp_btf/kmem_cache_{alloc,free}: dcachesize
//!   progs/vz_io_{queue,done,rq_done}, links/.. tp_btf/block_bio_{queue,complete} and
//!                                              block_rq_complete: block I/O per VE (maps
//!                                              VZ_IO_CGRPS_V1, VZ_IO_STATS_V1, VZ_IO_FLIGHT_V1)
//!   links/<program>      cgroup links on the VE parent cgroup (vz_sock_create,
//!                        vz_sock_release, vz_sysctl, vz_setsockopt, vz_device: device
//!                        access per VE from VZ_DEVICES_V1)
//! ```
//! Everything outlives the CLI: limits stay enforced with no vzctl process running.
//!
//! `load` installs the programs and pins, `venet`, `blkio` and `counters` are the map
//! surfaces of those families; the VE records and limits are here.

mod blkio;
pub mod btf;
mod counters;
mod devices;
mod klog;
mod load;
use crate::sys::bpf as sys;
mod venet;

pub use self::{load::*, venet::*};

use std::{
    fs, io,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, HashMap, MapData, MapError},
    programs::{
        cgroup_sock::CgroupSockAttachType,
        links::{FdLink, PinnedLink},
        CgroupAttachMode, CgroupSock, ProgramError,
    },
    Ebpf, EbpfError, EbpfLoader,
};
pub use klog::KernelLog;
use tracing::{debug, info, warn};
use vz_common::{maps, progs, Meta, UbcLimit, VeLimits, VeUsage, LAYOUT_VERSION};

/// The programs, embedded at build time so an installed vzctl is one file.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("VZ_BPF_OBJECT"));

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("loading BPF programs needs root (CAP_SYS_ADMIN, or CAP_BPF with CAP_NET_ADMIN); this process (uid {uid}) has neither")]
    NotPrivileged { uid: u32 },
    #[error(
        "this kernel has no bpf() system call (built without CONFIG_BPF_SYSCALL); vzbpf cannot enforce limits here"
    )]
    NoBpfSyscall,
    #[error("the kernel refused bpf() (EPERM): BPF is locked down for this process (kernel.unprivileged_bpf_disabled, lockdown or a seccomp filter)")]
    BpfDenied,
    #[error("cannot mount bpffs at {path}: {source}")]
    Bpffs { path: PathBuf, source: io::Error },
    #[error("pin directory {pins} belongs to another cgroup parent (cgroup id {pinned}, not {wanted}); use a separate pin directory per parent")]
    ParentMismatch { pins: PathBuf, pinned: u64, wanted: u64 },
    #[error("the kernel refused program {prog}: {detail} (vzbpf needs Linux 5.18+ with BPF ISA v3 atomics, bpf_set_retval and BPF links for cgroups)")]
    ProgramRejected { prog: &'static str, detail: String },
    #[error("pinned map {name} has an unexpected layout ({what}); remove {path} to start afresh")]
    MapLayout { name: &'static str, what: String, path: PathBuf },
    #[error("no VE beancounter record for cgroup {0}")]
    NoVe(u64),
    #[error("BPF object: {0}")]
    Object(#[from] EbpfError),
    #[error("BPF map: {0}")]
    Map(#[from] MapError),
    #[error("BPF program: {0}")]
    Program(#[from] ProgramError),
    #[error("BPF link: {0}")]
    Link(#[from] aya::programs::links::LinkError),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
}

impl BpfError {
    pub fn kind(&self) -> crate::kind::Kind {
        use crate::kind::Kind;
        match self {
            BpfError::NotPrivileged { .. }
            | BpfError::NoBpfSyscall
            | BpfError::BpfDenied
            | BpfError::ProgramRejected { .. } => Kind::BadKernel,
            BpfError::NoVe(_) => Kind::NotRunning,
            _ => Kind::Limits,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BpfError + 'a {
    move |source| BpfError::Io { op, path: path.to_path_buf(), source }
}

/// Where the programs attach and where their pins live.
#[derive(Debug, Clone)]
pub struct BpfConfig {
    /// bpffs directory for pins (default /sys/fs/bpf/vz).
    pub pin_root: PathBuf,
    /// cgroup2 directory that holds every VE; links attach here.
    pub cgroup_parent: PathBuf,
    /// cgroup2 level of a VE's own directory.
    pub ve_level: u32,
    /// Level of a VE's directory in the blkio (v1) or io (cgroup2) hierarchy.
    pub io_level: u32,
    /// Buckets of the charged-socket table (power of two; 8 sockets each). Used when the
    /// table is first made; an existing pinned table keeps its size.
    pub sock_buckets: u32,
    /// Attach the dcachesize tracepoint programs (they run on every slab allocation and
    /// free of the host, see the README's benchmark).
    pub dcache: bool,
}

impl BpfConfig {
    pub fn new(pin_root: PathBuf, cgroup_parent: PathBuf, ve_level: u32) -> Self {
        Self {
            pin_root,
            cgroup_parent,
            ve_level,
            io_level: ve_level,
            sock_buckets: vz_common::DEFAULT_SOCK_BUCKETS,
            dcache: false,
        }
    }

    /// For VEs under `cg`'s parent: its cgroup2 parent and the VEs' levels.
    pub fn for_cgroups(pin_root: PathBuf, cg: &dyn crate::cgroup::Cgroups) -> Self {
        let mut cfg = Self::new(pin_root, cg.parent_dir(), cg.ve_level());
        cfg.io_level = cg.io_level();
        cfg
    }
}

/// An object to load, with the hash that identifies it in `VZ_META`.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    pub bytes: &'a [u8],
    pub hash: u64,
}

impl Object<'static> {
    pub fn embedded() -> Self {
        Self { bytes: OBJECT, hash: fnv1a(OBJECT) }
    }
}

/// FNV-1a 64: identifies an object build; not a security boundary.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// The fixed pin layout below a root.
#[derive(Debug, Clone)]
pub struct Pins {
    pub root: PathBuf,
}

impl Pins {
    pub fn progs(&self) -> PathBuf {
        self.root.join("progs")
    }
    pub fn maps(&self) -> PathBuf {
        self.root.join("maps")
    }
    pub fn links(&self) -> PathBuf {
        self.root.join("links")
    }
    pub fn prog(&self, name: &str) -> PathBuf {
        self.progs().join(name)
    }
    pub fn map(&self, name: &str) -> PathBuf {
        self.maps().join(name)
    }
    pub fn link(&self, name: &str) -> PathBuf {
        self.links().join(name)
    }

    /// Removes every pin (links first, so programs detach before their maps go). What is
    /// not pinned elsewhere is freed by the kernel.
    pub fn remove_all(&self) -> io::Result<()> {
        for dir in [self.links(), self.progs(), self.maps()] {
            match fs::read_dir(&dir) {
                Ok(entries) => {
                    for e in entries.flatten() {
                        fs::remove_file(e.path())?;
                    }
                    fs::remove_dir(&dir)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        match fs::remove_dir(&self.root) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// tc programs: loaded and pinned once, attached to each VE's venet pair at its start.
const TC_PROGS: [&str; 2] = [progs::TC_FROM_VE, progs::TC_TO_VE];

/// Global tp_btf programs: (program, tracepoint, what goes missing without it).
const TP_BTF_PROGS: [(&str, &str, &str); 7] = [
    (progs::SIGNAL, "signal_generate", "numsiginfo refusals are not counted"),
    (progs::EXIT, "sched_process_exit", "a reboot inside a VE stops it (vzeventd cannot tell)"),
    (progs::IO_QUEUE, "block_bio_queue", "block I/O is not accounted per VE"),
    (progs::IO_DONE, "block_bio_complete", "block I/O latency on bio-based devices is not accounted per VE"),
    (progs::IO_RQ_DONE, "block_rq_complete", "block I/O latency is not accounted per VE"),
    (progs::DCACHE_ALLOC, "kmem_cache_alloc", "dcachesize is not accounted"),
    (progs::DCACHE_FREE, "kmem_cache_free", "dcachesize is not accounted"),
];

/// Iterator programs: (name, kernel iterator type).
const ITERS: [(&str, &str); 5] = [
    (progs::ITER_FILES, "task_file"),
    (progs::ITER_VMAS, "task_vma"),
    (progs::ITER_TCP, "tcp"),
    (progs::ITER_UDP, "udp"),
    (progs::ITER_UNIX, "unix"),
];

/// Raw cgroup links: (program, attach type). aya 0.14 cannot turn these into an FdLink.
const RAW_CGROUP_PROGS: [(&str, u32); 5] = [
    (progs::SYSCTL, sys::BPF_CGROUP_SYSCTL),
    (progs::DEVICE, sys::BPF_CGROUP_DEVICE),
    (progs::SETSOCKOPT, sys::BPF_CGROUP_SETSOCKOPT),
    (progs::BIND4, sys::BPF_CGROUP_INET4_BIND),
    (progs::BIND6, sys::BPF_CGROUP_INET6_BIND),
];

/// Cgroup socket programs, in load order.
const SOCK_PROGS: [&str; 2] = [progs::SOCK_CREATE, progs::SOCK_RELEASE];

fn sock_attach_type(name: &str) -> CgroupSockAttachType {
    if name == progs::SOCK_RELEASE {
        CgroupSockAttachType::SockRelease
    } else {
        CgroupSockAttachType::SockCreate
    }
}

/// One pinned program and the link that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    pub name: &'static str,
    pub prog_id: u32,
    pub link_id: u32,
    /// The program the link currently runs; equals `prog_id` unless an upgrade is half-done.
    pub link_prog_id: u32,
}

/// Handle on the loaded, pinned programs and their maps.
pub struct Bpf {
    pub pins: Pins,
    ubc: HashMap<MapData, u64, VeUsage>,
    limits: HashMap<MapData, u64, VeLimits>,
    /// Whether this call loaded (or replaced) the programs rather than reusing pins.
    pub loaded_now: bool,
    /// Kernel log forwarding, when this process has the log map.
    pub klog: Option<KernelLog>,
    /// Open files per VE from one iterator run, taken on first use.
    files: std::cell::OnceCell<Option<std::collections::HashMap<u64, u64>>>,
    vms: std::cell::OnceCell<Option<std::collections::HashMap<u64, [u64; 2]>>>,
    /// Block I/O per VE and device, read on first use (`io_stats`).
    io: std::cell::OnceCell<std::collections::HashMap<u64, Vec<(u32, crate::io::IoTotals)>>>,
}

impl std::fmt::Debug for Bpf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bpf").field("pins", &self.pins).field("loaded_now", &self.loaded_now).finish()
    }
}

impl Bpf {
    /// Loads the embedded programs or reuses what is pinned.
    pub fn ensure(cfg: &BpfConfig) -> Result<Self, BpfError> {
        Self::ensure_object(cfg, Object::embedded())
    }

    /// Loads `obj` unless the pins already hold it. A different object replaces the pinned
    /// programs in place (BPF_LINK_UPDATE), keeping maps, so counters carry over and no
    /// socket goes unaccounted or unenforced during the swap.
    pub fn ensure_object(cfg: &BpfConfig, obj: Object<'_>) -> Result<Self, BpfError> {
        check_can_load()?;
        ensure_bpffs(&cfg.pin_root)?;
        let pins = Pins { root: cfg.pin_root.clone() };
        for d in [pins.root.clone(), pins.progs(), pins.maps(), pins.links()] {
            fs::create_dir_all(&d).map_err(io_err("mkdir", &d))?;
        }
        let _lock = PinLock::take(&pins.root)?;
        let parent_id = fs::metadata(&cfg.cgroup_parent)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .map_err(io_err("stat", &cfg.cgroup_parent))?;

        let meta = read_meta(&pins);
        if let Some(m) = meta {
            if m.parent_cgroup != parent_id {
                return Err(BpfError::ParentMismatch {
                    pins: pins.root.clone(),
                    pinned: m.parent_cgroup,
                    wanted: parent_id,
                });
            }
            let complete = SOCK_PROGS
                .iter()
                .chain(RAW_CGROUP_PROGS.iter().map(|(p, _)| p))
                .all(|p| pins.prog(p).exists() && pins.link(p).exists());
            let dcache_as_wanted = pins.link(progs::DCACHE_FREE).exists() == cfg.dcache;
            if m.object_hash == obj.hash && complete && dcache_as_wanted {
                debug!(pins = %pins.root.display(), "reusing pinned programs");
                return Self::open(pins, false, None);
            }
        }
        Self::load(cfg, obj, pins, parent_id)
    }

    /// Opens what is pinned under `pin_root` without loading anything (readers such as
    /// vzlist, and cleanup).
    pub fn open_existing(pin_root: &Path) -> Result<Self, BpfError> {
        Self::open(Pins { root: pin_root.to_path_buf() }, false, None)
    }

    fn open(pins: Pins, loaded_now: bool, klog: Option<KernelLog>) -> Result<Self, BpfError> {
        let ubc = HashMap::try_from(aya::maps::Map::HashMap(MapData::from_pin(pins.map(maps::UBC))?))?;
        let limits = HashMap::try_from(aya::maps::Map::HashMap(MapData::from_pin(pins.map(maps::LIMITS))?))?;
        Ok(Self {
            pins,
            ubc,
            limits,
            loaded_now,
            klog,
            files: std::cell::OnceCell::new(),
            vms: std::cell::OnceCell::new(),
            io: std::cell::OnceCell::new(),
        })
    }

    /// Forwards kernel log records while the returned handle lives (for long-running
    /// commands that did not load the programs themselves).
    pub fn follow_kernel_log(&mut self) -> Result<(), BpfError> {
        if self.klog.is_some() {
            return Ok(());
        }
        let prog = CgroupSock::from_pin(self.pins.prog(progs::SOCK_CREATE), CgroupSockAttachType::SockCreate)?;
        let info = prog.info()?;
        self.klog = KernelLog::from_program_id(info.id()).map_err(|e| debug!("kernel log unavailable: {e}")).ok();
        Ok(())
    }

    /// What is pinned and attached, by kernel ids (as `bpftool prog|link show` lists them).
    pub fn attachments(&self) -> Result<Vec<Attachment>, BpfError> {
        SOCK_PROGS
            .iter()
            .map(|&name| {
                let prog = CgroupSock::from_pin(self.pins.prog(name), sock_attach_type(name))?;
                let link = FdLink::from(PinnedLink::from_pin(self.pins.link(name))?).info()?;
                Ok(Attachment { name, prog_id: prog.info()?.id(), link_id: link.id(), link_prog_id: link.program_id() })
            })
            .collect()
    }

    /// Creates a VE's records: zeroed usage and unlimited limits, and its VEID by cgroup id
    /// (`VZ_VEIDS_V1`). Idempotent: existing records (held by running programs) are left as
    /// they are.
    pub fn register_ve(&mut self, cgroup: u64, veid: u32) -> Result<(), BpfError> {
        const NOEXIST: u64 = 1;
        ignore_exists(self.ubc.insert(cgroup, VeUsage::default(), NOEXIST))?;
        ignore_exists(self.limits.insert(cgroup, VeLimits::default(), NOEXIST))?;
        if let Some(mut ids) = self.pinned_hash::<u64, u32>(maps::VEIDS)? {
            ids.insert(cgroup, veid, 0)?;
        }
        Ok(())
    }

    /// The VEID registered for a VE cgroup id.
    pub fn veid_of(&self, cgroup: u64) -> Result<Option<u32>, BpfError> {
        let Some(ids) = self.pinned_hash::<u64, u32>(maps::VEIDS)? else { return Ok(None) };
        match ids.get(&cgroup, 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops a VE's records (after its cgroup is gone). Its venet links are the caller's to
    /// detach (`detach_venet`): their names are the network layer's.
    pub fn unregister_ve(&mut self, cgroup: u64) -> Result<(), BpfError> {
        // Every dentry or inode recorded for the VE holds part of its dcachesize, and its
        // cgroup is empty now (nothing more is charged): with nothing held there is nothing
        // to forget, and the walk over the whole table (~13 ms) is skipped.
        let dcache_held = match self.ubc.get(&cgroup, 0) {
            Ok(u) => u.res[vz_common::res::DCACHESIZE as usize].held,
            Err(_) => u64::MAX,
        };
        removed(self.ubc.remove(&cgroup))?;
        removed(self.limits.remove(&cgroup))?;
        if let Some(mut ids) = self.pinned_hash::<u64, u32>(maps::VEIDS)? {
            removed(ids.remove(&cgroup))?;
        }
        self.set_ve_addrs(cgroup, &[], None)?;
        self.set_devices(cgroup, &[], false)?;
        self.set_net_rules(cgroup, &vz_common::NetRules::default())?;
        self.set_net_shaper(cgroup, None)?;
        // Its interface and traffic counters.
        if let Some(mut ifs) = self.pinned_hash::<u32, u64>(maps::NET_IFS)? {
            remove_where_value(&mut ifs, cgroup);
        }
        if let Ok(m) = MapData::from_pin(self.pins.map(maps::NET_STATS)) {
            let mut stats: aya::maps::PerCpuHashMap<MapData, u64, vz_common::NetStats> =
                aya::maps::PerCpuHashMap::try_from(aya::maps::Map::PerCpuHashMap(m))?;
            removed(stats.remove(&cgroup))?;
        }
        // Dentries and inodes the VE allocated outlive it in the caches; forget them, so
        // the table keeps room for running VEs (their frees then find no record).
        if dcache_held > 0 {
            if let Some(mut objs) = self.pinned_hash::<u64, u64>(maps::DCACHE_OBJS)? {
                remove_where_value(&mut objs, cgroup);
            }
        }
        // Its blkio cgroup and block I/O counters (bios still in flight age out of the LRU).
        if let Some(mut cgs) = self.pinned_hash::<u64, u64>(maps::IO_CGROUPS)? {
            remove_where_value(&mut cgs, cgroup);
        }
        if let Some(mut stats) = self.io_stats_map()? {
            let keys: Vec<vz_common::IoKey> =
                stats.keys().filter_map(Result::ok).filter(|k: &vz_common::IoKey| k.ve == cgroup).collect();
            for k in keys {
                let _ = stats.remove(&k);
            }
        }
        Ok(())
    }

    /// A pinned hash map of this loader, None when it is not pinned (an older object).
    fn pinned_hash<K: aya::Pod, V: aya::Pod>(&self, name: &str) -> Result<Option<HashMap<MapData, K, V>>, BpfError> {
        match MapData::from_pin(self.pins.map(name)) {
            Ok(m) => Ok(Some(HashMap::try_from(aya::maps::Map::HashMap(m))?)),
            Err(_) => Ok(None),
        }
    }

    /// Registers a VE (if it is new) and puts its whole limit record in place.
    pub fn put_limits(&mut self, cgroup: u64, veid: u32, full: &VeLimits) -> Result<(), BpfError> {
        self.register_ve(cgroup, veid)?;
        self.limits.insert(cgroup, *full, 0)?;
        Ok(())
    }

    /// Sets barrier/limit of some resources; takes effect for the next charge.
    pub fn set_limits(&mut self, cgroup: u64, changes: &[(u32, UbcLimit)]) -> Result<(), BpfError> {
        let mut lim = match self.limits.get(&cgroup, 0) {
            Ok(l) => l,
            Err(MapError::KeyNotFound) => return Err(BpfError::NoVe(cgroup)),
            Err(e) => return Err(e.into()),
        };
        for (res, l) in changes {
            lim.res[*res as usize] = *l;
        }
        self.limits.insert(cgroup, lim, 0)?;
        Ok(())
    }

    pub fn usage(&self, cgroup: u64) -> Result<VeUsage, BpfError> {
        match self.ubc.get(&cgroup, 0) {
            Ok(u) => Ok(u),
            Err(MapError::KeyNotFound) => Err(BpfError::NoVe(cgroup)),
            Err(e) => Err(e.into()),
        }
    }

    /// Carries a restored VE's maxheld and failcnt over from its checkpoint, before any of
    /// its processes runs (held is charged again by what the restore recreates).
    pub fn carry_usage(&mut self, cgroup: u64, rows: &[(u32, u64, u64)]) -> Result<(), BpfError> {
        let mut u = self.usage(cgroup)?;
        for &(res, maxheld, failcnt) in rows {
            if let Some(slot) = u.res.get_mut(res as usize) {
                slot.maxheld = slot.maxheld.max(maxheld);
                slot.failcnt = failcnt;
            }
        }
        Ok(self.ubc.insert(cgroup, u, 0)?)
    }

    /// Number of VEs with a usage record.
    pub fn ve_count(&self) -> Result<usize, BpfError> {
        Ok(self.ubc.keys().filter(Result::is_ok).count())
    }

    pub fn limits(&self, cgroup: u64) -> Result<VeLimits, BpfError> {
        match self.limits.get(&cgroup, 0) {
            Ok(l) => Ok(l),
            Err(MapError::KeyNotFound) => Err(BpfError::NoVe(cgroup)),
            Err(e) => Err(e.into()),
        }
    }
}

/// A removal where the key being gone already is success.
fn removed(r: Result<(), MapError>) -> Result<(), BpfError> {
    match r {
        Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes every entry whose value is `value` (a VE's records in a map keyed by
/// something else).
fn remove_where_value<K: aya::Pod + Eq>(map: &mut HashMap<MapData, K, u64>, value: u64) {
    let keys: Vec<K> = map.iter().filter_map(Result::ok).filter(|(_, v)| *v == value).map(|(k, _)| k).collect();
    for k in keys {
        // A key gone meanwhile (its object freed) is what we wanted.
        let _ = map.remove(&k);
    }
}

fn ignore_exists(r: Result<(), MapError>) -> Result<(), BpfError> {
    match r {
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => Ok(r?),
    }
}
