//! Loading the object once per host: bpffs, the pin lock, kernel offsets from BTF, programs loaded, pinned and attached, maps checked against their layout; an upgrade replaces the set atomically.
use super::*;

impl Bpf {
    pub(super) fn load(cfg: &BpfConfig, obj: Object<'_>, pins: Pins, parent_id: u64) -> Result<Self, BpfError> {
        let fresh_maps: Vec<PathBuf> = maps::ALL.iter().map(|m| pins.map(m)).filter(|p| !p.exists()).collect();
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
        // BTF maps carry no pinning attribute: each is pinned (or its pin reused) by name.
        let map_pins: Vec<(&str, PathBuf)> = maps::ALL.iter().map(|m| (*m, pins.map(m))).collect();
        for (name, path) in &map_pins {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(obj.bytes)?;
        check_map_layouts(&ebpf, &pins)?;
        // Entries of maps an older build pinned under longer names, before any program
        // runs against the new ones (and again, below, for what the old programs added
        // meanwhile).
        move_renamed(&mut ebpf, &pins)?;

        let parent = fs::File::open(&cfg.cgroup_parent).map_err(io_err("open", &cfg.cgroup_parent))?;
        for name in SOCK_PROGS {
            let prog: &mut CgroupSock = program(&mut ebpf, name)?.try_into()?;
            retry_load(|| prog.load())
                .map_err(|e| BpfError::ProgramRejected { prog: name, detail: verifier_summary(&e) })?;
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
                aya::programs::Program::CgroupSysctl(p) => retry_load(|| p.load()),
                aya::programs::Program::CgroupDevice(p) => retry_load(|| p.load()),
                aya::programs::Program::CgroupSockopt(p) => retry_load(|| p.load()),
                aya::programs::Program::CgroupSockAddr(p) => retry_load(|| p.load()),
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
            retry_load(|| prog.load())
                .map_err(|e| BpfError::ProgramRejected { prog: name, detail: verifier_summary(&e) })?;
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
        move_renamed(&mut ebpf, &pins)?;
        for (old, _) in maps::RENAMED {
            let _ = fs::remove_file(pins.map(old));
        }
        rollback.armed = false;

        // After every program is loaded: the logger takes the log map out of `ebpf`.
        let klog = KernelLog::from_loaded(&mut ebpf).map_err(|e| debug!("kernel log unavailable: {e}")).ok();
        Self::open(pins, true, klog)
    }
}

/// Checks, before touching anything, that this process may load BPF at all, so the admin
/// gets the reason rather than an errno from deep inside the loader.
pub fn check_can_load() -> Result<(), BpfError> {
    let caps = sys::effective_caps();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if !(has(sys::CAP_SYS_ADMIN) || (has(sys::CAP_BPF) && has(sys::CAP_NET_ADMIN))) {
        return Err(BpfError::NotPrivileged { uid: crate::sys::proc::euid() });
    }
    match sys::probe() {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Err(BpfError::NoBpfSyscall),
        Err(_) => Err(BpfError::BpfDenied),
    }
}

/// Makes sure `pin_root` is on a bpffs, mounting one at /sys/fs/bpf when none is there.
pub(super) fn ensure_bpffs(pin_root: &Path) -> Result<(), BpfError> {
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
        crate::report::detail(format!("Mounting bpffs at {}", base.display()));
        sys::mount_bpffs(base).map_err(|source| BpfError::Bpffs { path: base.into(), source })?;
    }
    Ok(())
}

/// Holds an exclusive flock on the pin root for the life of the value, so concurrent
/// loaders do not interleave.
pub(super) struct PinLock {
    _file: fs::File,
}

impl PinLock {
    pub(super) fn take(root: &Path) -> Result<Self, BpfError> {
        let f = fs::File::open(root).map_err(io_err("open", root))?;
        crate::sys::flock(&f, true, true).map_err(io_err("flock", root))?;
        Ok(Self { _file: f })
    }
}

pub(super) fn read_meta(pins: &Pins) -> Option<Meta> {
    let data = MapData::from_pin(pins.map(maps::META)).ok()?;
    let arr: Array<MapData, Meta> = Array::try_from(aya::maps::Map::Array(data)).ok()?;
    arr.get(&0, 0).ok()
}

/// Cleans up what a failed first load pinned, so a failure changes nothing.
pub(super) struct Rollback {
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

/// Copies the entries of each older pin in `maps::RENAMED` into its new map, keeping what the
/// new map already holds (newer than the copy). The old pins go once the new programs run.
fn move_renamed(ebpf: &mut Ebpf, pins: &Pins) -> Result<(), BpfError> {
    fn copy<K: aya::Pod + Eq + std::hash::Hash, V: aya::Pod>(
        ebpf: &mut Ebpf,
        pins: &Pins,
        old: &str,
        new: &'static str,
    ) -> Result<usize, BpfError> {
        let Ok(data) = MapData::from_pin(pins.map(old)) else { return Ok(0) };
        let from: aya::maps::HashMap<MapData, K, V> = aya::maps::HashMap::try_from(aya::maps::Map::HashMap(data))?;
        let mut to: aya::maps::HashMap<_, K, V> =
            aya::maps::HashMap::try_from(ebpf.map_mut(new).ok_or(MapError::InvalidName { name: new.into() })?)?;
        let mut n = 0;
        for (k, v) in from.iter().flatten() {
            // BPF_NOEXIST (1): an entry the new programs made stays.
            if to.insert(k, v, 1).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
    for (old, new) in maps::RENAMED {
        let n = match *new {
            maps::DCACHE_CACHES => copy::<u64, u32>(ebpf, pins, old, new)?,
            maps::IO_INFLIGHT => copy::<u64, vz_common::IoStart>(ebpf, pins, old, new)?,
            _ => copy::<u64, u64>(ebpf, pins, old, new)?,
        };
        if n > 0 {
            info!("moved {n} entries of {old} into {new}");
        }
    }
    Ok(())
}

/// aya reuses a pinned map by name without checking its shape; a map pinned by a build with
/// another layout must be refused, not misread.
pub(super) fn check_map_layouts(ebpf: &Ebpf, pins: &Pins) -> Result<(), BpfError> {
    // (name, key size, value size) of every keyed map, from vz-common's one table.
    macro_rules! layouts {
        ($($(#[$doc:meta])* $konst:ident, $stat:ident, $name:literal, $kind:ident, $k:ty, $v:ty, $e:expr, $f:ident;)*) => {
            [$(layout!($kind, $name, $k, $v)),*]
        };
    }
    macro_rules! layout {
        (RingBuf, $name:literal, $k:ty, $v:ty) => {
            None
        };
        ($kind:ident, $name:literal, $k:ty, $v:ty) => {
            Some(($name, std::mem::size_of::<$k>(), std::mem::size_of::<$v>()))
        };
    }
    let expect = vz_common::for_each_map!(layouts);
    for (name, key, value) in expect.into_iter().flatten() {
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

/// Named struct member offsets handed to the programs as read-only globals.
pub(super) type Offsets = Vec<(&'static str, u32)>;

/// Offsets the iterator reads kernel structs at, from the running kernel's BTF. The block
/// I/O offsets come last and only when the kernel has them all (a kernel without blkio
/// cgroups has no `bio.bi_blkg`): the second value says why they are missing.
pub(super) fn kernel_offsets() -> Result<(Offsets, Option<btf::BtfError>), btf::BtfError> {
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

pub(super) fn io_offsets(l: &btf::Layouts) -> Result<Vec<(&'static str, u32)>, btf::BtfError> {
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

pub(super) fn base_offsets(l: &btf::Layouts) -> Result<Vec<(&'static str, u32)>, btf::BtfError> {
    Ok(vec![
        ("VZ_OFF_TASK_CGROUPS", l.offset("task_struct", "cgroups")?),
        ("VZ_OFF_CSS_DFL_CGRP", l.offset("css_set", "dfl_cgrp")?),
        ("VZ_OFF_CGROUP_LEVEL", l.offset("cgroup", "level")?),
        ("VZ_OFF_CGROUP_ANCESTORS", l.offset("cgroup", "ancestors")?),
        ("VZ_OFF_CGROUP_KN", l.offset("cgroup", "kn")?),
        ("VZ_OFF_KN_ID", l.offset("kernfs_node", "id")?),
        ("VZ_OFF_TASK_PID", l.offset("task_struct", "pid")?),
        ("VZ_OFF_TASK_TGID", l.offset("task_struct", "tgid")?),
        ("VZ_OFF_TASK_THREAD_PID", l.offset("task_struct", "thread_pid")?),
        ("VZ_OFF_TASK_EXIT_CODE", l.offset("task_struct", "exit_code")?),
        ("VZ_OFF_PID_LEVEL", l.offset("pid", "level")?),
        ("VZ_OFF_PID_NUMBERS", l.offset("pid", "numbers")?),
        ("VZ_OFF_UPID_NS", l.offset("upid", "ns")?),
        ("VZ_OFF_PIDNS_REBOOT", l.offset("pid_namespace", "reboot")?),
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
pub(super) fn load_iter(
    ebpf: &mut Ebpf,
    pins: &Pins,
    rollback: &mut Rollback,
    kbtf: &aya::Btf,
    name: &'static str,
    kind: &str,
) -> Result<(), BpfError> {
    let prog: &mut aya::programs::Iter = program(ebpf, name)?.try_into()?;
    retry_load(|| prog.load(kind, kbtf))
        .map_err(|e| BpfError::ProgramRejected { prog: name, detail: verifier_summary(&e) })?;
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
pub(super) fn load_tp_btf(
    ebpf: &mut Ebpf,
    pins: &Pins,
    rollback: &mut Rollback,
    kbtf: &aya::Btf,
    name: &'static str,
    tp: &str,
) -> Result<(), BpfError> {
    let prog: &mut aya::programs::BtfTracePoint = program(ebpf, name)?.try_into()?;
    retry_load(|| prog.load(tp, kbtf))
        .map_err(|e| BpfError::ProgramRejected { prog: name, detail: verifier_summary(&e) })?;
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

pub(super) fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut aya::programs::Program, BpfError> {
    ebpf.program_mut(name).ok_or_else(|| BpfError::ProgramRejected { prog: name, detail: "missing from object".into() })
}

/// An owned copy of a program's fd (so the program can be borrowed again to attach it).
pub(super) fn prog_fd(fd: &aya::programs::ProgramFd) -> Result<std::os::fd::OwnedFd, BpfError> {
    fd.as_fd().try_clone_to_owned().map_err(io_err("dup", Path::new("program fd")))
}

pub(super) fn pin_fdlink(link: FdLink, path: &Path) -> Result<(), BpfError> {
    link.pin(path).map(drop).map_err(|e| BpfError::Io {
        op: "pin",
        path: path.into(),
        source: io::Error::other(chain(&e)),
    })
}

/// Puts a loaded program into service: into its pinned link with BPF_LINK_UPDATE (one
/// atomic swap, no moment without a program and none with two), or, the first time,
/// through a new link that `attach_and_pin` creates and pins at the path it is given.
pub(super) fn install_link(
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
pub(super) fn pin_program(
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

/// bpffs refuses names with dots, so temporary pins get a suffix instead of an extension.
pub(super) fn tmp_pin(pin: &Path) -> PathBuf {
    let mut name = pin.file_name().unwrap_or_default().to_os_string();
    name.push("__new");
    pin.with_file_name(name)
}

/// An error with its sources, on one line.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A program load, retried when the verifier gave up with EAGAIN: it does when a signal is
/// pending for the loading thread (a child of ours exiting), as libbpf knows and retries.
fn retry_load(mut load: impl FnMut() -> Result<(), ProgramError>) -> Result<(), ProgramError> {
    let mut tries = 0;
    loop {
        match load() {
            Err(ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && tries < 5 =>
            {
                tries += 1;
            }
            r => return r,
        }
    }
}

/// The verifier's last words are what tells an admin which kernel feature is missing.
pub(super) fn verifier_summary(e: &ProgramError) -> String {
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
