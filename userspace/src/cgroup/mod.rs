//! Cgroup hierarchies: where a VE's cgroups live and how they are made and removed.
//!
//! One trait, [`Cgroups`], with an implementation per host layout: pure cgroup2
//! ([`Unified`]) and the hybrid v1 + cgroup2 layout ([`Hybrid`]). BPF programs always key a
//! VE by its cgroup2 directory, which both layouts have.
mod blkio;
mod cpu;
mod memory;
pub use blkio::BlkIo;
pub use cpu::{cpu_usage_ns, Cpu, CpuShare, Cpuset};
pub use memory::{limit_word, Counter, Memory, MemoryLimits, Pids};

use std::{
    fs,
    io::{self, Write as _},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup2 hierarchy is mounted (looked in /proc/self/mountinfo); vzbpf needs one for its BPF programs")]
    NoCgroup2,
    #[error("cgroup parent '{0}' is invalid: use a relative path without '..'")]
    BadParent(String),
    #[error("VE {veid} is not running (no cgroup {path})")]
    VeNotRunning { veid: u32, path: PathBuf },
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
}

impl CgroupError {
    pub fn kind(&self) -> crate::kind::Kind {
        match self {
            CgroupError::VeNotRunning { .. } => crate::kind::Kind::NotRunning,
            _ => crate::kind::Kind::System,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io { op, path: path.to_path_buf(), source }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// cgroup2 only, with controllers (modern hosts).
    Unified,
    /// v1 controller hierarchies plus a controller-less cgroup2 (this project's CI hosts).
    Hybrid,
}

/// A mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub path: PathBuf,
    /// Depth of the mount's root inside the hierarchy (non-zero inside a cgroup namespace).
    pub root_level: u32,
}

/// The VE parent inside one hierarchy: `<mount>/<base>/<parent>`, where `base` is this
/// process's own cgroup there. VEs nest below where the controller runs, so it never writes
/// outside its own subtree (on hosts where root runs in `/`, that is `<mount>/vz`).
#[derive(Debug, Clone)]
pub struct Tree {
    mount: Mount,
    base: PathBuf,
    parent: PathBuf,
}

impl Tree {
    pub fn parent_dir(&self) -> PathBuf {
        self.mount.path.join(&self.base).join(&self.parent)
    }
    pub fn ve_dir(&self, veid: u32) -> PathBuf {
        self.parent_dir().join(veid.to_string())
    }
    /// The VE's cgroup as /proc/PID/cgroup names it (from the hierarchy's root).
    pub fn ve_path(&self, veid: u32) -> PathBuf {
        Path::new("/").join(&self.base).join(&self.parent).join(veid.to_string())
    }
    /// Level of a VE's directory in this hierarchy (its root is level 0).
    pub fn ve_level(&self) -> u32 {
        self.mount.root_level + self.base.components().count() as u32 + self.parent.components().count() as u32 + 1
    }
}

/// A v1 hierarchy with its controllers (e.g. "memory", "cpu,cpuacct").
#[derive(Debug, Clone)]
pub struct V1Tree {
    pub controllers: String,
    pub tree: Tree,
}

/// What the rest of the controller needs from cgroups. Implementations provide the layout
/// and their trees; the cgroup2 directory is the VE's BPF identity on both layouts.
pub trait Cgroups: std::fmt::Debug + Send + Sync {
    fn layout(&self) -> Layout;
    /// The cgroup2 tree.
    fn tree(&self) -> &Tree;
    /// v1 controller hierarchies (hybrid hosts).
    fn v1(&self) -> &[V1Tree] {
        &[]
    }

    /// cgroup2 directory that holds every VE; BPF programs attach here.
    fn parent_dir(&self) -> PathBuf {
        self.tree().parent_dir()
    }
    /// cgroup2 directory of one VE.
    fn ve_dir(&self, veid: u32) -> PathBuf {
        self.tree().ve_dir(veid)
    }
    /// The VE's directories in every hierarchy, cgroup2 first.
    fn ve_dirs(&self, veid: u32) -> Vec<PathBuf> {
        std::iter::once(self.ve_dir(veid)).chain(self.v1().iter().map(|h| h.tree.ve_dir(veid))).collect()
    }
    /// Where each cgroup of a dumped VE goes on this host, as criu's `--cgroup-root`
    /// values: `dumped` is the VE init's /proc/PID/cgroup when it was dumped (maybe on
    /// another node, with another VE parent). The VE's own cgroup in a hierarchy maps to
    /// this host's VE cgroup there; a cgroup outside the VE (a hierarchy where VEs get none)
    /// maps to itself, so criu never makes a cgroup outside the VE's subtree.
    fn restore_roots(&self, veid: u32, dumped: &str) -> Vec<(Option<String>, PathBuf)> {
        let own = format!("/{veid}");
        let mut roots = Vec::new();
        for line in dumped.lines() {
            let mut f = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else { continue };
            let ve_cgroup = path.ends_with(&own);
            if ctrls.is_empty() {
                let to = if ve_cgroup { self.tree().ve_path(veid) } else { PathBuf::from(path) };
                roots.push((None, to));
            } else {
                let here = self.v1().iter().find(|h| same_controllers(&h.controllers, ctrls));
                let to = match here {
                    Some(h) if ve_cgroup => h.tree.ve_path(veid),
                    _ => PathBuf::from(path),
                };
                let name = ctrls.split(',').next().unwrap_or(ctrls).to_string();
                roots.push((Some(name), to));
            }
        }
        roots
    }
    /// cgroup2 level of a VE's directory (what `bpf_get_current_ancestor_cgroup_id` takes).
    fn ve_level(&self) -> u32 {
        self.tree().ve_level()
    }
    /// Level of a VE's directory in the hierarchy that carries block I/O control (v1
    /// blkio, else cgroup2): where the block I/O programs find a bio's VE.
    fn io_level(&self) -> u32 {
        self.v1()
            .iter()
            .find(|h| h.controllers.split(',').any(|c| c == "blkio"))
            .map_or(self.ve_level(), |h| h.tree.ve_level())
    }
    /// cgroup2 id of a running VE.
    fn ve_id(&self, veid: u32) -> Result<u64, CgroupError> {
        let path = self.ve_dir(veid);
        cgroup_id(&path).map_err(|_| CgroupError::VeNotRunning { veid, path })
    }
    /// Creates the parent directories (idempotent).
    fn create_parent(&self) -> Result<(), CgroupError> {
        mkdir_p(&self.parent_dir())?;
        for h in self.v1() {
            mkdir_v1(&h.tree.parent_dir())?;
        }
        Ok(())
    }
    /// Creates the VE's cgroups in every hierarchy; returns its cgroup2 id.
    fn create_ve(&self, veid: u32) -> Result<u64, CgroupError> {
        self.create_parent()?;
        if self.v1().is_empty() {
            enable_controllers(&self.parent_dir());
        }
        let dir = self.ve_dir(veid);
        mkdir_p(&dir)?;
        for h in self.v1() {
            mkdir_v1(&h.tree.ve_dir(veid))?;
        }
        cgroup_id(&dir)
    }
    /// Removes the VE's cgroups (and any the VE made inside its own); they must hold no
    /// process.
    fn remove_ve(&self, veid: u32) -> Result<(), CgroupError> {
        for d in self.ve_dirs(veid).iter().rev() {
            rmdir_tree(d)?;
        }
        Ok(())
    }
    /// Delegates the VE's cgroup2 directory to VE root (host `uid`/`gid`), as the kernel's
    /// cgroup-v2 delegation is done: the directory and its cgroup.procs, cgroup.threads and
    /// cgroup.subtree_control, nothing else. Inside its cgroup namespace the VE's init (systemd)
    /// then makes and fills cgroups of its own below it; the limits stay in files the VE does
    /// not own, and every cgroup it makes is still the VE's for the BPF programs, which find
    /// a task's VE by its ancestor at VE level.
    fn delegate(&self, veid: u32, uid: u32, gid: u32) -> Result<(), CgroupError> {
        let dir = self.ve_dir(veid);
        // Bounds on what the VE makes there (each cgroup is kernel memory); the files stay
        // the host's.
        write_file(&dir.join("cgroup.max.descendants"), &MAX_DESCENDANTS.to_string())?;
        write_file(&dir.join("cgroup.max.depth"), &MAX_DEPTH.to_string())?;
        let (u, g) = (Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid)));
        for p in [dir.clone(), dir.join("cgroup.procs"), dir.join("cgroup.threads"), dir.join("cgroup.subtree_control")]
        {
            nix::unistd::chown(&p, u, g).map_err(|e| CgroupError::Io {
                op: "chown",
                path: p.clone(),
                source: e.into(),
            })?;
        }
        Ok(())
    }
    /// Moves a process into the VE's cgroups, v1 first, cgroup2 (the BPF identity) last.
    fn add_task(&self, veid: u32, pid: i32) -> Result<(), CgroupError> {
        for d in self.ve_dirs(veid).iter().rev() {
            write_file(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }
    /// The VE's directory in the hierarchy that carries `controller` (e.g. "pids",
    /// "memory"), if this host has that controller for VEs.
    fn controller_dir(&self, veid: u32, controller: &str) -> Option<PathBuf> {
        if let Some(h) = self.v1().iter().find(|h| h.controllers.split(',').any(|c| c == controller)) {
            return Some(h.tree.ve_dir(veid));
        }
        let dir = self.ve_dir(veid);
        let ctrls = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        ctrls.split_whitespace().any(|c| c == controller).then_some(dir)
    }
    /// The VE's tasks (processes and threads) by the pids controller's count (0 when the
    /// VE has no cgroup), None where there is no pids controller for VEs.
    fn tasks(&self, veid: u32) -> Option<u64> {
        Some(read_num(&self.controller_dir(veid, "pids")?.join("pids.current")).unwrap_or(0))
    }
    /// Every process in the VE's cgroup2 subtree.
    fn procs(&self, veid: u32) -> Vec<i32> {
        let mut out = Vec::new();
        collect_procs(&self.ve_dir(veid), &mut out);
        out
    }
    /// Freezes (or thaws) every process of the VE with the cgroup2 freezer and waits until
    /// the kernel says it is so (`frozen` in cgroup.events), at most `timeout`.
    fn freeze(&self, veid: u32, on: bool, timeout: std::time::Duration) -> Result<(), CgroupError> {
        let dir = self.ve_dir(veid);
        write_file(&dir.join("cgroup.freeze"), if on { "1" } else { "0" })?;
        let want = u64::from(on);
        let end = std::time::Instant::now() + timeout;
        while read_keyed(&dir.join("cgroup.events"), "frozen") != Some(want) {
            if std::time::Instant::now() >= end {
                return Err(CgroupError::Io {
                    op: if on { "freeze (timed out)" } else { "thaw (timed out)" },
                    path: dir,
                    source: io::Error::from(io::ErrorKind::TimedOut),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        Ok(())
    }
    /// Is the VE frozen (suspended)?
    fn is_frozen(&self, veid: u32) -> bool {
        read_keyed(&self.ve_dir(veid).join("cgroup.events"), "frozen") == Some(1)
    }
    /// Kills every process of the VE (cgroup.kill where the kernel has it, else SIGKILL to
    /// each listed pid: every one is a VE process, started by vzctl for the VE).
    fn kill_all(&self, veid: u32) {
        let dir = self.ve_dir(veid);
        if write_file(&dir.join("cgroup.kill"), "1").is_err() {
            for pid in self.procs(veid) {
                let _ = crate::sys::proc::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

/// Most cgroups a VE may make below its own, and how deep: systemd makes one per unit
/// (tens to a few hundred), nested containers a few levels more.
pub const MAX_DESCENDANTS: u32 = 1024;
pub const MAX_DEPTH: u32 = 16;

/// Where a process joins a VE's cgroup `dir`: the directory itself, unless the VE's own
/// init (systemd, to which the directory is delegated) has turned on controllers for its
/// subtree there: cgroup2 then takes processes only in leaves, so a fresh leaf of vzctl's,
/// `.vz-exec-PID-N`, holds what `exec` and `enter` start. Made by host root now, its files
/// are the host's: the VE cannot have set it up beforehand (frozen, pids.max 0) to catch
/// the admin's command, nor change it later. Leaves of earlier commands are removed once
/// empty. Only on a pure cgroup2 host: the hybrid layout's cgroup2 has no controllers, v1
/// has no such rule.
pub fn joinable(dir: &Path) -> PathBuf {
    let busy = fs::read_to_string(dir.join("cgroup.subtree_control")).is_ok_and(|c| !c.trim().is_empty());
    if !busy {
        return dir.to_path_buf();
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".vz-exec-") {
                // Fails while processes of its command live on: left for the next time.
                let _ = fs::remove_dir(e.path());
            }
        }
    }
    // Only one this call made: a name the VE took (a process of its own inside, so it
    // stays) is passed over.
    (0..64)
        .map(|n| dir.join(format!(".vz-exec-{}-{n}", std::process::id())))
        .find(|leaf| fs::create_dir(leaf).is_ok())
        .unwrap_or_else(|| dir.to_path_buf())
}

/// On cgroup2, VEs get the controllers their limits use when the parent may delegate them
/// (best effort: without one, what it would carry is reported as not applied).
fn enable_controllers(parent: &Path) {
    let avail = fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
    for c in ["pids", "memory", "cpu", "cpuset", "io"] {
        if avail.split_whitespace().any(|a| a == c) {
            let _ = write_file(&parent.join("cgroup.subtree_control"), &format!("+{c}"));
        }
    }
}

/// Reads a cgroup file as one number ("max" is None).
pub fn read_num(path: &Path) -> Option<u64> {
    // One read of a small buffer: a cgroup file hands its whole (short) text to the first
    // read, and listings read one per VE.
    let mut buf = [0u8; 64];
    let n = io::Read::read(&mut fs::File::open(path).ok()?, &mut buf).ok()?;
    if n == buf.len() {
        return fs::read_to_string(path).ok()?.trim().parse().ok();
    }
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

/// Reads `key value` lines (pids.events, memory.events, memory.stat) and returns `key`'s.
pub fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key)).then(|| it.next()?.parse().ok()).flatten()
    })
}

pub fn write_value(path: &Path, value: &str) -> Result<(), CgroupError> {
    write_file(path, value)
}

fn collect_procs(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(t) = fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_procs(&e.path(), out);
            }
        }
    }
}

/// Removes a cgroup directory and the cgroups below it, deepest first.
fn rmdir_tree(dir: &Path) -> Result<(), CgroupError> {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path())?;
            }
        }
    }
    rmdir_if_exists(dir)
}

/// mkdir for a v1 hierarchy: a new cpuset cgroup has no CPUs or memory nodes until given
/// its parent's, and no task can join it before that.
fn mkdir_v1(dir: &Path) -> Result<(), CgroupError> {
    mkdir_p(dir)?;
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let p = dir.join(f);
        if let Ok(cur) = fs::read_to_string(&p) {
            if cur.trim().is_empty() {
                if let Some(parent) = dir.parent() {
                    let v = fs::read_to_string(parent.join(f)).unwrap_or_default();
                    write_file(&p, v.trim())?;
                }
            }
        }
    }
    Ok(())
}

/// cgroup2 id of a directory: the kernfs inode number, which is what
/// `bpf_get_current_cgroup_id()` returns on 64-bit kernels.
pub fn cgroup_id(dir: &Path) -> Result<u64, CgroupError> {
    Ok(fs::metadata(dir).map_err(io_err("stat", dir))?.ino())
}

fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    let mut f = fs::OpenOptions::new().write(true).open(path).map_err(io_err("open", path))?;
    f.write_all(value.as_bytes()).map_err(io_err("write", path))
}

fn check_parent(parent: &str) -> Result<PathBuf, CgroupError> {
    let p = Path::new(parent);
    if parent.is_empty() || p.is_absolute() || p.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(CgroupError::BadParent(parent.to_string()));
    }
    Ok(p.to_path_buf())
}

/// Mounts of cgroup hierarchies, parsed from `/proc/self/mountinfo` text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Mounts {
    pub cgroup2: Option<Mount>,
    /// v1 hierarchies: (controller list as mounted, mount).
    pub v1: Vec<(String, Mount)>,
}

impl Mounts {
    pub fn parse(mountinfo: &str) -> Self {
        let mut m = Mounts::default();
        for e in crate::sys::mountinfo::MountTable::parse(mountinfo).entries {
            let root_level =
                e.root.components().filter(|c| matches!(c, std::path::Component::Normal(_))).count() as u32;
            let mount = Mount { path: e.mount_point, root_level };
            match e.fstype.as_str() {
                // Prefer the first cgroup2 mount; hybrid hosts have exactly one.
                "cgroup2" if m.cgroup2.is_none() => m.cgroup2 = Some(mount),
                "cgroup" => {
                    let ctrls = e
                        .super_opts
                        .split(',')
                        .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                        .filter(|o| !o.starts_with("no") && *o != "clone_children")
                        .collect::<Vec<_>>()
                        .join(",");
                    m.v1.push((ctrls, mount));
                }
                _ => {}
            }
        }
        m
    }

    pub fn read() -> Result<Self, CgroupError> {
        let p = Path::new("/proc/self/mountinfo");
        Ok(Self::parse(&fs::read_to_string(p).map_err(io_err("read", p))?))
    }
}

/// This process's cgroup in each hierarchy, from `/proc/self/cgroup` text:
/// (controllers, path); cgroup2 has empty controllers.
pub fn parse_proc_cgroup(text: &str) -> Vec<(String, PathBuf)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            Some((ctrls.to_string(), PathBuf::from(path.trim_start_matches('/'))))
        })
        .collect()
}

fn same_controllers(a: &str, b: &str) -> bool {
    let mut x: Vec<&str> = a.split(',').collect();
    let mut y: Vec<&str> = b.split(',').collect();
    x.sort_unstable();
    y.sort_unstable();
    x == y
}

fn own_cgroups() -> Result<String, CgroupError> {
    let p = Path::new("/proc/self/cgroup");
    fs::read_to_string(p).map_err(io_err("read", p))
}

/// Picks the implementation for this host. `parent` is the VE parent's path relative to
/// this process's cgroup in each hierarchy (default `vz`; tests use their own).
pub fn detect(parent: &str) -> Result<Box<dyn Cgroups>, CgroupError> {
    from_mounts(Mounts::read()?, &parse_proc_cgroup(&own_cgroups()?), parent)
}

/// Like `detect`, but stable whoever runs it: an absolute `parent` (`/vz`) is that path in
/// every hierarchy; a relative one is anchored at the cgroups of the vzctl that first made
/// it, recorded in `anchor` (a copy of its /proc/self/cgroup), so a vzctl run from a
/// login session or a service finds the same VEs. The record is renewed only when a
/// directory it names is gone (after a reboot): then no VE can be running under it. VEs
/// so never land outside the subtree of the first vzctl, on hosts whose supervisor owns
/// the top of a hierarchy.
pub fn detect_anchored(parent: &str, anchor: &Path) -> Result<Box<dyn Cgroups>, CgroupError> {
    let mounts = Mounts::read()?;
    if let Some(abs) = parent.strip_prefix('/') {
        return from_mounts(mounts, &[], abs);
    }
    let usable = |text: &str| {
        let bases = parse_proc_cgroup(text);
        let ok = from_mounts(mounts.clone(), &bases, parent).is_ok_and(|cg| {
            let base_of = |t: &Tree| t.mount.path.join(&t.base);
            base_of(cg.tree()).is_dir() && cg.v1().iter().all(|h| base_of(&h.tree).is_dir())
        });
        ok.then_some(bases)
    };
    if let Some(bases) = fs::read_to_string(anchor).ok().and_then(|t| usable(&t)) {
        return from_mounts(mounts, &bases, parent);
    }
    let dir = anchor.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(io_err("mkdir", dir))?;
    let _lock = crate::lock::VeLock::global(dir, "cgroup-anchor").map_err(|e| CgroupError::Io {
        op: "lock",
        path: dir.to_path_buf(),
        source: io::Error::other(e),
    })?;
    // Another vzctl may have recorded it while this one waited.
    if let Some(bases) = fs::read_to_string(anchor).ok().and_then(|t| usable(&t)) {
        return from_mounts(mounts, &bases, parent);
    }
    let own = own_cgroups()?;
    crate::config::write_atomic(anchor, own.as_bytes()).map_err(|e| CgroupError::Io {
        op: "write",
        path: anchor.to_path_buf(),
        source: io::Error::other(e),
    })?;
    from_mounts(mounts, &parse_proc_cgroup(&own), parent)
}

pub fn from_mounts(mounts: Mounts, own: &[(String, PathBuf)], parent: &str) -> Result<Box<dyn Cgroups>, CgroupError> {
    let parent = check_parent(parent)?;
    let base_of = |ctrls: &str| {
        own.iter()
            .find(|(c, _)| if ctrls.is_empty() { c.is_empty() } else { same_controllers(c, ctrls) })
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    };
    let cg2 = mounts.cgroup2.ok_or(CgroupError::NoCgroup2)?;
    let tree = Tree { base: base_of(""), mount: cg2, parent: parent.clone() };
    // Named hierarchies (name=systemd) carry no controllers: nothing to join there.
    let v1: Vec<V1Tree> = mounts
        .v1
        .into_iter()
        .filter(|(c, _)| !c.is_empty())
        .map(|(controllers, mount)| V1Tree {
            tree: Tree { base: base_of(&controllers), mount, parent: parent.clone() },
            controllers,
        })
        .collect();
    if v1.is_empty() {
        Ok(Box::new(Unified { tree }))
    } else {
        Ok(Box::new(Hybrid { tree, v1 }))
    }
}

fn mkdir_p(dir: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(dir).map_err(io_err("mkdir", dir))
}

fn rmdir_if_exists(dir: &Path) -> Result<(), CgroupError> {
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("rmdir", dir)(e)),
        _ => Ok(()),
    }
}

/// Pure cgroup2 host.
#[derive(Debug)]
pub struct Unified {
    tree: Tree,
}

impl Cgroups for Unified {
    fn layout(&self) -> Layout {
        Layout::Unified
    }
    fn tree(&self) -> &Tree {
        &self.tree
    }
}

/// v1 controllers plus a controller-less cgroup2: the VE gets a directory in each, the
/// cgroup2 one being its BPF identity.
#[derive(Debug)]
pub struct Hybrid {
    tree: Tree,
    v1: Vec<V1Tree>,
}

impl Cgroups for Hybrid {
    fn layout(&self) -> Layout {
        Layout::Hybrid
    }
    fn tree(&self) -> &Tree {
        &self.tree
    }
    fn v1(&self) -> &[V1Tree] {
        &self.v1
    }
}

#[cfg(test)]
mod tests;
