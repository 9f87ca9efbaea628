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
//!   progs/vz_dcache_{alloc,free}, links/...    tp_btf/kmem_cache_{alloc,free}: dcachesize
//!   progs/vz_io_{queue,done,rq_done}, links/.. tp_btf/block_bio_{queue,complete} and
//!                                              block_rq_complete: block I/O per VE (maps
//!                                              VZ_IO_CGROUPS_V1, VZ_IO_STATS_V1, VZ_IO_INFLIGHT_V1)
//!   links/<program>      cgroup links on the VE parent cgroup (vz_sock_create,
//!                        vz_sock_release, vz_sysctl, vz_setsockopt)
//! ```
//! Everything outlives the CLI: limits stay enforced with no vzctl process running.
pub mod btf;
mod klog;
pub mod sys;

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

/// Every pinned map.
const ALL_MAPS: [&str; 19] = [
    maps::UBC,
    maps::LIMITS,
    maps::SOCKS,
    maps::SOCKS_OVF,
    maps::STATS,
    maps::META,
    maps::EVENTS,
    maps::FILES,
    maps::VMS,
    maps::DCACHE_CACHES,
    maps::DCACHE_OBJS,
    maps::VE_ADDRS,
    maps::NET_IFS,
    maps::NET_STATS,
    maps::NET_RULES,
    maps::NET_RATE,
    maps::IO_CGROUPS,
    maps::IO_STATS,
    maps::IO_INFLIGHT,
];

/// tc programs: loaded and pinned once, attached to each VE's venet pair at its start.
const TC_PROGS: [&str; 2] = [progs::TC_FROM_VE, progs::TC_TO_VE];

/// Global tp_btf programs: (program, tracepoint, what goes missing without it).
const TP_BTF_PROGS: [(&str, &str, &str); 6] = [
    (progs::SIGNAL, "signal_generate", "numsiginfo refusals are not counted"),
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
const RAW_CGROUP_PROGS: [(&str, u32); 4] = [
    (progs::SYSCTL, sys::BPF_CGROUP_SYSCTL),
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
}

impl std::fmt::Debug for Bpf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bpf").field("pins", &self.pins).field("loaded_now", &self.loaded_now).finish()
    }
}

/// Checks, before touching anything, that this process may load BPF at all, so the admin
/// gets the reason rather than an errno from deep inside the loader.
pub fn check_can_load() -> Result<(), BpfError> {
    let caps = sys::effective_caps();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if !(has(sys::CAP_SYS_ADMIN) || (has(sys::CAP_BPF) && has(sys::CAP_NET_ADMIN))) {
        // SAFETY: getuid cannot fail.
        return Err(BpfError::NotPrivileged { uid: unsafe { libc::geteuid() } });
    }
    match sys::probe() {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Err(BpfError::NoBpfSyscall),
        Err(_) => Err(BpfError::BpfDenied),
    }
}

/// Makes sure `pin_root` is on a bpffs, mounting one at /sys/fs/bpf when none is there.
fn ensure_bpffs(pin_root: &Path) -> Result<(), BpfError> {
    let mut probe = pin_root.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    if sys::is_bpffs(&probe) {
        return Ok(());
    }
    let base = Path::new("/sys/fs/bpf");
    if !pin_root.starts_with(base) {
        return Err(BpfError::Bpffs {
            path: pin_root.to_path_buf(),
            source: io::Error::other("not on a bpffs, and not below /sys/fs/bpf where one could be mounted"),
        });
    }
    fs::create_dir_all(base).map_err(io_err("mkdir", base))?;
    if !sys::is_bpffs(base) {
        info!("mounting bpffs at {}", base.display());
        sys::mount_bpffs(base).map_err(|source| BpfError::Bpffs { path: base.into(), source })?;
    }
    Ok(())
}

/// Holds an exclusive flock on the pin root for the life of the value, so concurrent
/// loaders do not interleave.
struct PinLock {
    _file: fs::File,
}

impl PinLock {
    fn take(root: &Path) -> Result<Self, BpfError> {
        let f = fs::File::open(root).map_err(io_err("open", root))?;
        // SAFETY: valid fd, blocking exclusive lock.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) } != 0 {
            return Err(io_err("flock", root)(io::Error::last_os_error()));
        }
        Ok(Self { _file: f })
    }
}

fn read_meta(pins: &Pins) -> Option<Meta> {
    let data = MapData::from_pin(pins.map(maps::META)).ok()?;
    let arr: Array<MapData, Meta> = Array::try_from(aya::maps::Map::Array(data)).ok()?;
    arr.get(&0, 0).ok()
}

/// Cleans up what a failed first load pinned, so a failure changes nothing.
struct Rollback {
    paths: Vec<PathBuf>,
    armed: bool,
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if self.armed {
            for p in self.paths.iter().rev() {
                let _ = fs::remove_file(p);
            }
        }
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

    fn load(cfg: &BpfConfig, obj: Object<'_>, pins: Pins, parent_id: u64) -> Result<Self, BpfError> {
        let fresh_maps: Vec<PathBuf> = ALL_MAPS.iter().map(|m| pins.map(m)).filter(|p| !p.exists()).collect();
        let mut rollback = Rollback { paths: fresh_maps, armed: true };

        // The program's bucket mask must match the table it runs against: a pinned table
        // keeps the size it was made with.
        let buckets = match MapData::from_pin(pins.map(maps::SOCKS)) {
            Ok(m) => m.info()?.max_entries(),
            Err(_) => cfg.sock_buckets,
        };
        if !buckets.is_power_of_two() {
            return Err(BpfError::MapLayout {
                name: maps::SOCKS,
                what: format!("{buckets} buckets, not a power of two"),
                path: pins.map(maps::SOCKS),
            });
        }
        let mask = buckets - 1;
        // Kernel struct offsets for the iterator (no CO-RE in Rust BPF). Without kernel BTF
        // the iterator is left out and open files are not counted.
        let (offsets, no_io) = match kernel_offsets() {
            Ok((offs, no_io)) => (Some(offs), no_io),
            Err(e) => {
                warn!("iterator counts (numfile, privvmpages, lockedpages) unavailable: {e}");
                (None, None)
            }
        };
        if let Some(e) = &no_io {
            warn!("block I/O is not accounted per VE: {e}");
        }
        let mut loader = EbpfLoader::new();
        loader
            .default_map_pin_directory(pins.maps())
            .map_max_entries(maps::SOCKS, buckets)
            .override_global(vz_common::GLOBAL_VE_LEVEL, &cfg.ve_level, true)
            .override_global(vz_common::GLOBAL_IO_VE_LEVEL, &cfg.io_level, true)
            .override_global(vz_common::GLOBAL_SOCK_MASK, &mask, true);
        if let Some(offs) = &offsets {
            for (name, v) in offs {
                loader.override_global(name, v, true);
            }
        }
        let mut ebpf = loader.load(obj.bytes)?;
        check_map_layouts(&ebpf, &pins)?;

        let parent = fs::File::open(&cfg.cgroup_parent).map_err(io_err("open", &cfg.cgroup_parent))?;
        for name in SOCK_PROGS {
            let prog: &mut CgroupSock = program(&mut ebpf, name)?.try_into()?;
            prog.load().map_err(|e| BpfError::ProgramRejected { prog: name, detail: verifier_summary(&e) })?;
            let fd = prog_fd(prog.fd()?)?;
            install_link(&pins, &mut rollback, name, fd.as_fd(), |tmp| {
                let id = prog.attach(&parent, CgroupAttachMode::Single)?;
                pin_fdlink(prog.take_link(id)?.try_into()?, tmp)
            })?;
            pin_program(&pins, name, |p| prog.pin(p))?;
        }
        for (name, attach_type) in RAW_CGROUP_PROGS {
            let prog = program(&mut ebpf, name)?;
            match prog {
                aya::programs::Program::CgroupSysctl(p) => p.load(),
                aya::programs::Program::CgroupSockopt(p) => p.load(),
                aya::programs::Program::CgroupSockAddr(p) => p.load(),
                _ => return Err(BpfError::ProgramRejected { prog: name, detail: "unexpected program type".into() }),
            }
            .map_err(|e| BpfError::ProgramRejected { prog: name, detail: verifier_summary(&e) })?;
            let fd = prog_fd(prog.fd()?)?;
            install_link(&pins, &mut rollback, name, fd.as_fd(), |tmp| {
                let link = sys::link_create_cgroup(fd.as_fd(), parent.as_fd(), attach_type)
                    .map_err(io_err("bpf_link_create", &cfg.cgroup_parent))?;
                sys::obj_pin(link.as_fd(), tmp).map_err(io_err("pin", tmp))
            })?;
            pin_program(&pins, name, |p| prog.pin(p))?;
        }

        for name in TC_PROGS {
            let prog: &mut aya::programs::SchedClassifier = program(&mut ebpf, name)?.try_into()?;
            prog.load().map_err(|e| BpfError::ProgramRejected { prog: name, detail: verifier_summary(&e) })?;
            pin_program(&pins, name, |p| prog.pin(p))?;
        }

        // Parsed once for every BTF-typed program below (each parse reads all of vmlinux BTF).
        let kbtf = match offsets {
            Some(_) => aya::Btf::from_sys_fs().map_err(|e| warn!("kernel BTF unreadable: {e}")).ok(),
            None => None,
        };
        if let Some(kbtf) = &kbtf {
            for (name, kind) in ITERS {
                if let Err(e) = load_iter(&mut ebpf, &pins, &mut rollback, kbtf, name, kind) {
                    warn!("{name} not loaded, its counts are missing: {e}");
                }
            }
            for (name, tp, missing) in TP_BTF_PROGS {
                if !cfg.dcache && (name == progs::DCACHE_ALLOC || name == progs::DCACHE_FREE) {
                    // Switched off: dropping the pins detaches the programs.
                    for pin in [pins.link(name), pins.prog(name)] {
                        let _ = fs::remove_file(pin);
                    }
                    continue;
                }
                if no_io.is_some() && [progs::IO_QUEUE, progs::IO_DONE, progs::IO_RQ_DONE].contains(&name) {
                    continue;
                }
                if let Err(e) = load_tp_btf(&mut ebpf, &pins, &mut rollback, kbtf, name, tp) {
                    warn!("{name} not loaded, {missing}: {e}");
                }
            }
        }

        let meta =
            Meta { object_hash: obj.hash, parent_cgroup: parent_id, ve_level: cfg.ve_level, layout: LAYOUT_VERSION };
        let mut arr: Array<_, Meta> =
            Array::try_from(ebpf.map_mut(maps::META).ok_or(MapError::InvalidName { name: maps::META.into() })?)?;
        arr.set(0, meta, 0)?;
        rollback.armed = false;

        // After every program is loaded: the logger takes the log map out of `ebpf`.
        let klog = KernelLog::from_loaded(&mut ebpf).map_err(|e| debug!("kernel log unavailable: {e}")).ok();
        Self::open(pins, true, klog)
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

    /// Creates a VE's records: zeroed usage and unlimited limits. Idempotent: existing
    /// records (held by running programs) are left as they are.
    pub fn register_ve(&mut self, cgroup: u64) -> Result<(), BpfError> {
        const NOEXIST: u64 = 1;
        ignore_exists(self.ubc.insert(cgroup, VeUsage::default(), NOEXIST))?;
        ignore_exists(self.limits.insert(cgroup, VeLimits::default(), NOEXIST))?;
        Ok(())
    }

    /// Drops a VE's records (after its cgroup is gone). Its venet links are the caller's to
    /// detach (`detach_venet`): their names are the network layer's.
    pub fn unregister_ve(&mut self, cgroup: u64) -> Result<(), BpfError> {
        removed(self.ubc.remove(&cgroup))?;
        removed(self.limits.remove(&cgroup))?;
        self.set_ve_addrs(cgroup, &[], None)?;
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
        if let Some(mut objs) = self.pinned_hash::<u64, u64>(maps::DCACHE_OBJS)? {
            remove_where_value(&mut objs, cgroup);
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

    /// Tells the block I/O programs which blkio cgroup is the VE's (`blkcg`: the id of the
    /// VE's directory in the hierarchy that carries blkio/io).
    pub fn set_io_cgroup(&mut self, cgroup: u64, blkcg: u64) -> Result<(), BpfError> {
        let Some(mut map) = self.pinned_hash::<u64, u64>(maps::IO_CGROUPS)? else { return Ok(()) };
        Ok(map.insert(blkcg, cgroup, 0)?)
    }

    fn io_stats_map(
        &self,
    ) -> Result<Option<aya::maps::PerCpuHashMap<MapData, vz_common::IoKey, vz_common::IoStats>>, BpfError> {
        let Ok(m) = MapData::from_pin(self.pins.map(maps::IO_STATS)) else { return Ok(None) };
        Ok(Some(aya::maps::PerCpuHashMap::try_from(aya::maps::Map::PerCpuHashMap(m))?))
    }

    /// A VE's block I/O per device (kernel `dev_t`), summed over CPUs.
    pub fn io_stats(&self, cgroup: u64) -> Result<Vec<(u32, crate::io::IoTotals)>, BpfError> {
        let Some(map) = self.io_stats_map()? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for item in map.iter() {
            let (k, per_cpu) = item?;
            if k.ve != cgroup {
                continue;
            }
            let mut t = crate::io::IoTotals::default();
            for s in per_cpu.iter() {
                t.add(s);
            }
            out.push((k.dev, t));
        }
        out.sort_by_key(|(d, _)| *d);
        Ok(out)
    }

    /// Whether the block I/O programs are attached (kernels without the offsets they need,
    /// or without BTF, leave them out).
    pub fn io_accounting(&self) -> bool {
        self.pins.link(progs::IO_QUEUE).exists()
    }

    /// A pinned hash map of this loader, None when it is not pinned (an older object).
    fn pinned_hash<K: aya::Pod, V: aya::Pod>(&self, name: &str) -> Result<Option<HashMap<MapData, K, V>>, BpfError> {
        match MapData::from_pin(self.pins.map(name)) {
            Ok(m) => Ok(Some(HashMap::try_from(aya::maps::Map::HashMap(m))?)),
            Err(_) => Ok(None),
        }
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

    /// Number of VEs with a usage record.
    pub fn ve_count(&self) -> Result<usize, BpfError> {
        Ok(self.ubc.keys().filter(Result::is_ok).count())
    }

    /// Attaches the venet programs to a VE's host end `ifname`: as tcx links (Linux 6.6+;
    /// no qdisc, the cheapest dispatch: a pass-only program costs nothing measurable where a
    /// clsact filter costs 2.4 % of a round trip), pinned as `links/vz_tc_{from,to}_ve_IFNAME`
    /// so they outlive vzctl; older kernels get a clsact qdisc with netlink filters, which go
    /// with the interface.
    pub fn attach_venet(&mut self, ifname: &str, cgroup: u64, ifindex: u32) -> Result<(), BpfError> {
        use aya::programs::tc::{self, NlOptions, TcAttachOptions, TcAttachType};
        let mut ifs: HashMap<MapData, u32, u64> =
            HashMap::try_from(aya::maps::Map::HashMap(MapData::from_pin(self.pins.map(maps::NET_IFS))?))?;
        ifs.insert(ifindex, cgroup, 0)?;
        let attach_one = |name: &'static str, dir: TcAttachType, tcx: u32| -> Result<(), BpfError> {
            let pin = self.pins.link(&tc_link_name(name, ifname));
            // A pin of an earlier VE with this name: its interface, and so its link, is gone.
            let _ = fs::remove_file(&pin);
            let prog_pin = self.pins.prog(name);
            let prog = sys::obj_get(&prog_pin).map_err(io_err("open", &prog_pin))?;
            match sys::link_create_tcx(prog.as_fd(), ifindex, tcx) {
                Ok(link) => sys::obj_pin(link.as_fd(), &pin).map_err(io_err("pin", &pin)),
                Err(e) => {
                    debug!("tcx on {ifname}: {e}; using a clsact filter");
                    if let Err(e) = tc::qdisc_add_clsact(ifname) {
                        debug!("clsact on {ifname}: {e}");
                    }
                    let mut prog = aya::programs::SchedClassifier::from_pin(&prog_pin)?;
                    let id = prog.attach_with_options(ifname, dir, TcAttachOptions::Netlink(NlOptions::default()))?;
                    // The tc filter holds the program; dropping our handle must not detach it.
                    std::mem::forget(prog.take_link(id)?);
                    Ok(())
                }
            }
        };
        // Each attach waits out an RCU grace period in the kernel (about 10 ms here): both
        // directions at once. (A new thread starts in this thread's network namespace.)
        std::thread::scope(|s| {
            let egress = s.spawn(|| attach_one(progs::TC_TO_VE, TcAttachType::Egress, sys::BPF_TCX_EGRESS));
            let ingress = attach_one(progs::TC_FROM_VE, TcAttachType::Ingress, sys::BPF_TCX_INGRESS);
            let egress = egress.join().unwrap_or_else(|_| {
                Err(BpfError::Io {
                    op: "attach",
                    path: self.pins.prog(progs::TC_TO_VE),
                    source: io::Error::other("panicked"),
                })
            });
            ingress.and(egress)
        })
    }

    /// Detaches the venet programs from `ifname` (tcx links: by their pins; clsact filters
    /// go with the interface). Missing pins are fine.
    pub fn detach_venet(&mut self, ifname: &str) {
        for name in TC_PROGS {
            let _ = fs::remove_file(self.pins.link(&tc_link_name(name, ifname)));
        }
    }

    /// Sends what a VE sends through its shaper (the ifb's ifindex), or straight on (None).
    pub fn set_net_shaper(&mut self, cgroup: u64, shaper: Option<u32>) -> Result<(), BpfError> {
        let Some(mut map) = self.pinned_hash::<u64, u32>(maps::NET_RATE)? else { return Ok(()) };
        match shaper {
            Some(ifindex) => Ok(map.insert(cgroup, ifindex, 0)?),
            None => removed(map.remove(&cgroup)),
        }
    }

    /// Replaces a VE's firewall rules (no rules: the record goes).
    pub fn set_net_rules(&mut self, cgroup: u64, rules: &vz_common::NetRules) -> Result<(), BpfError> {
        let Some(mut map) = self.pinned_hash::<u64, vz_common::NetRules>(maps::NET_RULES)? else { return Ok(()) };
        if rules.count == 0 {
            removed(map.remove(&cgroup))
        } else {
            Ok(map.insert(cgroup, rules, 0)?)
        }
    }

    /// A VE's traffic counters, summed over CPUs (None: nothing counted yet).
    pub fn net_stats(&self, cgroup: u64) -> Result<Option<vz_common::NetStats>, BpfError> {
        let Ok(m) = MapData::from_pin(self.pins.map(maps::NET_STATS)) else { return Ok(None) };
        let stats: aya::maps::PerCpuHashMap<MapData, u64, vz_common::NetStats> =
            aya::maps::PerCpuHashMap::try_from(aya::maps::Map::PerCpuHashMap(m))?;
        match stats.get(&cgroup, 0) {
            Ok(per_cpu) => Ok(Some(per_cpu.iter().fold(vz_common::NetStats::default(), |a, s| vz_common::NetStats {
                in_bytes: a.in_bytes + s.in_bytes,
                in_packets: a.in_packets + s.in_packets,
                out_bytes: a.out_bytes + s.out_bytes,
                out_packets: a.out_packets + s.out_packets,
                drops: a.drops + s.drops,
                filtered: a.filtered + s.filtered,
            }))),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Records a VE's addresses for the bind programs: adds `add`, and removes `del` (None:
    /// every address of the VE not in `add`).
    pub fn set_ve_addrs(
        &mut self,
        cgroup: u64,
        add: &[std::net::IpAddr],
        del: Option<&[std::net::IpAddr]>,
    ) -> Result<(), BpfError> {
        let Some(mut addrs) = self.pinned_hash::<vz_common::VeAddr, u8>(maps::VE_ADDRS)? else { return Ok(()) };
        let key = |ip: &std::net::IpAddr| vz_common::VeAddr { ve: cgroup, addr: addr_words(ip) };
        let keep: Vec<vz_common::VeAddr> = add.iter().map(key).collect();
        let doomed: Vec<vz_common::VeAddr> = match del {
            Some(d) => d.iter().map(key).collect(),
            None => addrs.keys().filter_map(Result::ok).filter(|k| k.ve == cgroup && !keep.contains(k)).collect(),
        };
        for k in doomed {
            let _ = addrs.remove(&k);
        }
        for k in keep {
            addrs.insert(k, 1, 0)?;
        }
        Ok(())
    }

    /// Open files of one VE (cgroup id), from an iterator run made once per handle; None
    /// when the iterator is not available.
    pub fn files_of(&self, cgroup: u64) -> Option<u64> {
        let counts = self.files.get_or_init(|| self.run_iter(progs::ITER_FILES, maps::FILES));
        counts.as_ref().map(|m| m.get(&cgroup).copied().unwrap_or(0))
    }

    /// [privvmpages, lockedpages] of one VE, like `files_of`.
    pub fn vms_of(&self, cgroup: u64) -> Option<[u64; 2]> {
        let counts = self.vms.get_or_init(|| self.run_iter(progs::ITER_VMAS, maps::VMS));
        counts.as_ref().map(|m| m.get(&cgroup).copied().unwrap_or([0, 0]))
    }

    fn run_iter<V: aya::Pod>(&self, prog: &str, map: &str) -> Option<std::collections::HashMap<u64, V>> {
        self.count(prog, map).unwrap_or_else(|e| {
            warn!("running {prog} failed: {e}");
            None
        })
    }

    /// Empties `map`, runs iterator `prog` over every task, returns what it counted.
    fn count<V: aya::Pod>(&self, prog: &str, map: &str) -> Result<Option<std::collections::HashMap<u64, V>>, BpfError> {
        let link_pin = self.pins.link(prog);
        if !link_pin.exists() {
            return Ok(None);
        }
        // One run at a time: runs share the map.
        let _lock = PinLock::take(&self.pins.root)?;
        let mut counts: HashMap<MapData, u64, V> =
            HashMap::try_from(aya::maps::Map::HashMap(MapData::from_pin(self.pins.map(map))?))?;
        let keys: Vec<u64> = counts.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = counts.remove(&k);
        }
        run_iter_link(&link_pin).map_err(io_err("run iterator", &link_pin))?;
        Ok(Some(counts.iter().filter_map(Result::ok).collect()))
    }

    /// Socket buffer bytes of the calling thread's network namespace (run it on a thread
    /// inside the VE's, see `ns::in_ve_net`): [TCP send queued, TCP receive, UDP and UNIX
    /// send in flight, UDP receive, packets the UDP sockets dropped for lack of receive
    /// buffer]. None when the socket iterators are not loaded.
    pub fn socket_buffers(pin_root: &Path) -> io::Result<Option<[u64; 5]>> {
        let pins = Pins { root: pin_root.to_path_buf() };
        let mut out = [0u64; 5];
        for (i, prog) in [progs::ITER_TCP, progs::ITER_UDP, progs::ITER_UNIX].iter().enumerate() {
            let link_pin = pins.link(prog);
            if !link_pin.exists() {
                return Ok(None);
            }
            let recs = run_iter_link(&link_pin)?;
            for rec in recs.chunks_exact(24) {
                let word = |at: usize| rec[at..at + 8].try_into().map(u64::from_ne_bytes).unwrap_or(0);
                let (send, recv, drops) = (word(0), word(8), word(16));
                match i {
                    0 => {
                        out[0] += send;
                        out[1] += recv;
                    }
                    1 => {
                        out[2] += send;
                        out[3] += recv;
                        out[4] += drops;
                    }
                    _ => out[2] += send,
                }
            }
        }
        Ok(Some(out))
    }

    /// Charge records that did not fit their bucket and live in the overflow hash now.
    pub fn sock_overflow(&self) -> Result<u64, BpfError> {
        let arr: Array<MapData, u64> =
            Array::try_from(aya::maps::Map::Array(MapData::from_pin(self.pins.map(maps::STATS))?))?;
        Ok(arr.get(&vz_common::STAT_SOCK_OVERFLOW, 0)?)
    }

    pub fn limits(&self, cgroup: u64) -> Result<VeLimits, BpfError> {
        match self.limits.get(&cgroup, 0) {
            Ok(l) => Ok(l),
            Err(MapError::KeyNotFound) => Err(BpfError::NoVe(cgroup)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Runs the iterator behind a pinned link once; returns what it wrote.
fn run_iter_link(link_pin: &Path) -> io::Result<Vec<u8>> {
    let link = FdLink::from(PinnedLink::from_pin(link_pin).map_err(io::Error::other)?);
    let mut f = aya::programs::iter::IterLink::try_from(link)
        .map_err(io::Error::other)?
        .into_file()
        .map_err(io::Error::other)?;
    let mut out = Vec::new();
    io::Read::read_to_end(&mut f, &mut out)?;
    Ok(out)
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

/// aya reuses a pinned map by name without checking its shape; a map pinned by a build with
/// another layout must be refused, not misread.
fn check_map_layouts(ebpf: &Ebpf, pins: &Pins) -> Result<(), BpfError> {
    use std::mem::size_of;
    let expect = [
        (maps::UBC, 8, size_of::<VeUsage>()),
        (maps::LIMITS, 8, size_of::<VeLimits>()),
        (maps::SOCKS, 4, size_of::<vz_common::SockBucket>()),
        (maps::SOCKS_OVF, 8, size_of::<vz_common::SockCharge>()),
        (maps::STATS, 4, size_of::<u64>()),
        (maps::FILES, 8, size_of::<u64>()),
        (maps::VMS, 8, 2 * size_of::<u64>()),
        (maps::DCACHE_CACHES, 8, size_of::<u32>()),
        (maps::DCACHE_OBJS, 8, size_of::<u64>()),
        (maps::VE_ADDRS, size_of::<vz_common::VeAddr>(), 1),
        (maps::NET_IFS, 4, size_of::<u64>()),
        (maps::NET_STATS, 8, size_of::<vz_common::NetStats>()),
        (maps::NET_RULES, 8, size_of::<vz_common::NetRules>()),
        (maps::NET_RATE, 8, size_of::<u32>()),
        (maps::IO_CGROUPS, 8, size_of::<u64>()),
        (maps::IO_STATS, size_of::<vz_common::IoKey>(), size_of::<vz_common::IoStats>()),
        (maps::IO_INFLIGHT, 8, size_of::<vz_common::IoStart>()),
        (maps::META, 4, size_of::<Meta>()),
    ];
    for (name, key, value) in expect {
        let map = ebpf.map(name).ok_or(MapError::InvalidName { name: name.into() })?;
        let info = match map {
            aya::maps::Map::HashMap(d)
            | aya::maps::Map::LruHashMap(d)
            | aya::maps::Map::Array(d)
            | aya::maps::Map::PerCpuHashMap(d) => d.info()?,
            _ => return Err(BpfError::MapLayout { name, what: "wrong map type".into(), path: pins.map(name) }),
        };
        if info.key_size() as usize != key || info.value_size() as usize != value {
            return Err(BpfError::MapLayout {
                name,
                what: format!("key {} value {}, expected key {key} value {value}", info.key_size(), info.value_size()),
                path: pins.map(name),
            });
        }
    }
    Ok(())
}

/// An address as `VeAddr` words: IPv6 as is, IPv4 v4-mapped; network byte order.
pub fn addr_words(ip: &std::net::IpAddr) -> [u32; 4] {
    let b = match ip {
        std::net::IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(a) => a.octets(),
    };
    std::array::from_fn(|i| u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]))
}

/// Named struct member offsets handed to the programs as read-only globals.
type Offsets = Vec<(&'static str, u32)>;

/// Offsets the iterator reads kernel structs at, from the running kernel's BTF. The block
/// I/O offsets come last and only when the kernel has them all (a kernel without blkio
/// cgroups has no `bio.bi_blkg`): the second value says why they are missing.
fn kernel_offsets() -> Result<(Offsets, Option<btf::BtfError>), btf::BtfError> {
    let l = btf::Layouts::from_sys_fs()?;
    let mut offs = base_offsets(&l)?;
    match io_offsets(&l) {
        Ok(io) => {
            offs.extend(io);
            Ok((offs, None))
        }
        Err(e) => Ok((offs, Some(e))),
    }
}

fn io_offsets(l: &btf::Layouts) -> Result<Vec<(&'static str, u32)>, btf::BtfError> {
    Ok(vec![
        ("VZ_OFF_BIO_BDEV", l.offset("bio", "bi_bdev")?),
        ("VZ_OFF_BIO_OPF", l.offset("bio", "bi_opf")?),
        ("VZ_OFF_BIO_SIZE", l.offset("bio", "bi_iter")? + l.offset("bvec_iter", "bi_size")?),
        ("VZ_OFF_BIO_BLKG", l.offset("bio", "bi_blkg")?),
        ("VZ_OFF_BLKG_BLKCG", l.offset("blkcg_gq", "blkcg")?),
        ("VZ_OFF_BLKCG_CSS", l.offset("blkcg", "css")?),
        ("VZ_OFF_CSS_CGROUP", l.offset("cgroup_subsys_state", "cgroup")?),
        ("VZ_OFF_CSS_PARENT", l.offset("cgroup_subsys_state", "parent")?),
        ("VZ_OFF_BDEV_DEV", l.offset("block_device", "bd_dev")?),
        ("VZ_OFF_BDEV_DISK", l.offset("block_device", "bd_disk")?),
        ("VZ_OFF_DISK_QUEUE", l.offset("gendisk", "queue")?),
        ("VZ_OFF_QUEUE_MQ_OPS", l.offset("request_queue", "mq_ops")?),
        ("VZ_OFF_RQ_BIO", l.offset("request", "bio")?),
        ("VZ_OFF_RQ_START_NS", l.offset("request", "start_time_ns")?),
    ])
}

fn base_offsets(l: &btf::Layouts) -> Result<Vec<(&'static str, u32)>, btf::BtfError> {
    Ok(vec![
        ("VZ_OFF_TASK_CGROUPS", l.offset("task_struct", "cgroups")?),
        ("VZ_OFF_CSS_DFL_CGRP", l.offset("css_set", "dfl_cgrp")?),
        ("VZ_OFF_CGROUP_LEVEL", l.offset("cgroup", "level")?),
        ("VZ_OFF_CGROUP_ANCESTORS", l.offset("cgroup", "ancestors")?),
        ("VZ_OFF_CGROUP_KN", l.offset("cgroup", "kn")?),
        ("VZ_OFF_KN_ID", l.offset("kernfs_node", "id")?),
        ("VZ_OFF_TASK_PID", l.offset("task_struct", "pid")?),
        ("VZ_OFF_TASK_TGID", l.offset("task_struct", "tgid")?),
        ("VZ_OFF_VMA_START", l.offset("vm_area_struct", "vm_start")?),
        ("VZ_OFF_VMA_END", l.offset("vm_area_struct", "vm_end")?),
        ("VZ_OFF_VMA_FLAGS", l.offset("vm_area_struct", "vm_flags")?),
        ("VZ_OFF_SKC_STATE", l.offset("sock_common", "skc_state")?),
        // sk_rmem_alloc is sk_backlog.rmem_alloc, the first member of sk_backlog.
        ("VZ_OFF_SK_RMEM_ALLOC", l.offset("sock", "sk_backlog")?),
        ("VZ_OFF_SK_WMEM_ALLOC", l.offset("sock", "sk_wmem_alloc")?),
        ("VZ_OFF_SK_WMEM_QUEUED", l.offset("sock", "sk_wmem_queued")?),
        ("VZ_OFF_SK_DROPS", l.offset("sock", "sk_drops")?),
        // Absent before Linux 6.18: 0 tells the program to read sk_drops only.
        ("VZ_OFF_SK_DROP_COUNTERS", l.offset("sock", "sk_drop_counters").unwrap_or(0)),
        ("VZ_OFF_DROPS1", l.offset("numa_drop_counters", "drops1").unwrap_or(0)),
        ("VZ_OFF_KMEM_CACHE_NAME", l.offset("kmem_cache", "name")?),
        ("VZ_OFF_KMEM_CACHE_SIZE", l.offset("kmem_cache", "size")?),
    ])
}

/// Loads an iterator program and pins it (or swaps it into its pinned link).
fn load_iter(
    ebpf: &mut Ebpf,
    pins: &Pins,
    rollback: &mut Rollback,
    kbtf: &aya::Btf,
    name: &'static str,
    kind: &str,
) -> Result<(), BpfError> {
    let prog: &mut aya::programs::Iter = program(ebpf, name)?.try_into()?;
    prog.load(kind, kbtf).map_err(|e| BpfError::ProgramRejected { prog: name, detail: verifier_summary(&e) })?;
    let fd = prog_fd(prog.fd()?)?;
    install_link(pins, rollback, name, fd.as_fd(), |tmp| {
        let id = prog.attach()?;
        pin_fdlink(prog.take_link(id)?.try_into()?, tmp)
    })?;
    pin_program(pins, name, |p| prog.pin(p))
}

/// Loads a tp_btf program. A raw tracepoint link cannot swap its program, so an upgrade
/// pins a new link over the old one (for an instant both may run: a signal refusal could
/// count twice; a dentry charged by one is uncharged by either, as they share the maps).
fn load_tp_btf(
    ebpf: &mut Ebpf,
    pins: &Pins,
    rollback: &mut Rollback,
    kbtf: &aya::Btf,
    name: &'static str,
    tp: &str,
) -> Result<(), BpfError> {
    let prog: &mut aya::programs::BtfTracePoint = program(ebpf, name)?.try_into()?;
    prog.load(tp, kbtf).map_err(|e| BpfError::ProgramRejected { prog: name, detail: verifier_summary(&e) })?;
    let link_pin = pins.link(name);
    let tmp = tmp_pin(&link_pin);
    let _ = fs::remove_file(&tmp);
    let id = prog.attach()?;
    let link: FdLink = prog.take_link(id)?.into();
    pin_fdlink(link, &tmp)?;
    let fresh = !link_pin.exists();
    fs::rename(&tmp, &link_pin).map_err(io_err("rename", &link_pin))?;
    if fresh {
        rollback.paths.push(link_pin);
    }
    pin_program(pins, name, |p| prog.pin(p))
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut aya::programs::Program, BpfError> {
    ebpf.program_mut(name).ok_or_else(|| BpfError::ProgramRejected { prog: name, detail: "missing from object".into() })
}

/// An owned copy of a program's fd (so the program can be borrowed again to attach it).
fn prog_fd(fd: &aya::programs::ProgramFd) -> Result<std::os::fd::OwnedFd, BpfError> {
    fd.as_fd().try_clone_to_owned().map_err(io_err("dup", Path::new("program fd")))
}

fn pin_fdlink(link: FdLink, path: &Path) -> Result<(), BpfError> {
    link.pin(path).map(drop).map_err(|e| BpfError::Io {
        op: "pin",
        path: path.into(),
        source: io::Error::other(chain(&e)),
    })
}

/// Puts a loaded program into service: into its pinned link with BPF_LINK_UPDATE (one
/// atomic swap, no moment without a program and none with two), or, the first time,
/// through a new link that `attach_and_pin` creates and pins at the path it is given.
fn install_link(
    pins: &Pins,
    rollback: &mut Rollback,
    name: &'static str,
    prog_fd: std::os::fd::BorrowedFd<'_>,
    attach_and_pin: impl FnOnce(&Path) -> Result<(), BpfError>,
) -> Result<(), BpfError> {
    let link_pin = pins.link(name);
    if link_pin.exists() {
        let link = sys::obj_get(&link_pin).map_err(io_err("BPF_OBJ_GET", &link_pin))?;
        sys::link_update(link.as_fd(), prog_fd).map_err(io_err("BPF_LINK_UPDATE", &link_pin))?;
        info!(prog = name, "replaced program in pinned link");
        return Ok(());
    }
    let tmp = tmp_pin(&link_pin);
    let _ = fs::remove_file(&tmp);
    attach_and_pin(&tmp)?;
    fs::rename(&tmp, &link_pin).map_err(io_err("rename", &link_pin))?;
    rollback.paths.push(link_pin);
    info!(prog = name, "attached");
    Ok(())
}

/// Pins a program under a temporary name, then renames it over the old pin: the program
/// path never disappears.
fn pin_program(
    pins: &Pins,
    name: &str,
    pin: impl FnOnce(&Path) -> Result<(), aya::pin::PinError>,
) -> Result<(), BpfError> {
    let prog_pin = pins.prog(name);
    let tmp = tmp_pin(&prog_pin);
    let _ = fs::remove_file(&tmp);
    pin(&tmp).map_err(|e| BpfError::Io { op: "pin", path: tmp.clone(), source: io::Error::other(chain(&e)) })?;
    fs::rename(&tmp, &prog_pin).map_err(io_err("rename", &prog_pin))
}

/// Pin name of a venet program's tcx link on `ifname` (bpffs takes no dots in names).
fn tc_link_name(prog: &str, ifname: &str) -> String {
    format!("{prog}_{ifname}")
}

/// bpffs refuses names with dots, so temporary pins get a suffix instead of an extension.
fn tmp_pin(pin: &Path) -> PathBuf {
    let mut name = pin.file_name().unwrap_or_default().to_os_string();
    name.push("__new");
    pin.with_file_name(name)
}

/// An error with its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The verifier's last words are what tells an admin which kernel feature is missing.
fn verifier_summary(e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            // The verifier's complaint is the line before its statistics.
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .filter(|l| !l.trim().is_empty() && !l.starts_with("processed ") && !l.starts_with("stack depth"))
                .take(2)
                .collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("{io_error}: {}", tail.join(" / "))
        }
        e => e.to_string(),
    }
}

#[cfg(test)]
mod addr_tests {
    use super::addr_words;

    #[test]
    fn addresses_are_v4_mapped_words_in_network_order() {
        // What the bind4 program builds from user_ip4 (network order, read natively).
        let v4 = addr_words(&"10.77.0.1".parse().unwrap());
        assert_eq!(v4, vz_common::ve_addr_v4(u32::from_ne_bytes([10, 77, 0, 1])));
        let v6 = addr_words(&"fd00::1".parse().unwrap());
        assert_eq!(v6[0].to_ne_bytes(), [0xfd, 0, 0, 0]);
        assert_eq!(v6[3].to_ne_bytes(), [0, 0, 0, 1]);
    }
}
