//! The VE lifecycle: create, mount, start, stop, destroy, exec, enter, runscript, set.
//!
//! State is read from the system, not from files vzctl keeps: a VE exists when its config
//! does, is mounted when VE_ROOT is a mount point, and runs when its cgroup holds processes.
//! So a vzctl killed at any point leaves nothing the next command cannot see and finish.
//!
//! `Vz` (here) holds the paths, cgroups and the `Syscall` seam; each verb is a file of its own
//! adding to it: `create`, `destroy`, `mount` (and umount), `start`, `stop` (and restart),
//! `exec` (exec, exec2, enter, runscript). `conf` reads a VE's settings from its config,
//! `resources` turns them into BPF records and cgroup settings and the beancounter rows,
//! `ids` gives each VE its host id range, `undo` rolls back a verb that failed half-way,
//! `set` changes settings (plan, apply with rollback, save), `opts` types what create and
//! set take.
use std::{
    fs, io,
    net::IpAddr,
    os::fd::{AsFd as _, OwnedFd},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tracing::{info, warn};

use vz_common::{UbcLimit, VeLimits, VeUsage};

use crate::{
    bpf::{Bpf, BpfConfig, BpfError},
    cgroup::{self, CgroupError, Cgroups},
    config::{self, ConfFile, ConfigError, Paths},
    lock::{Intent, LockError, VeLock},
    ns::{self, InitSpec, NsError},
    relay,
    sys::{inroot, syscall::Syscall},
    template::{self, TemplateError},
    ubc::{Resource, UbcError},
};

mod actions;
mod applyconfig;
mod chkpnt;
mod conf;
mod create;
mod destroy;
mod devices;
mod dumpfiles;
mod exec;
mod handle;
mod ids;
mod migrate;
mod mount;
mod netdev;
mod node;
mod opts;
mod resources;
pub(crate) mod run;
mod set;
mod snapshot;
mod start;
mod stop;
mod undo;
mod userpasswd;

pub use self::{
    chkpnt::{ChkpntStep, RestoreStep},
    conf::*,
    handle::Ve,
    migrate::{shell_words, MigrateOpts, Settle},
    mount::*,
    opts::*,
    snapshot::{snapshot_field_names, Resume, SnapshotOpts},
    start::*,
};
use self::{exec::*, undo::*};
pub use crate::ubc::Row;

#[derive(Debug, thiserror::Error)]
pub enum VeError {
    #[error("Container {0} does not exist")]
    NotExist(u32),
    #[error("Container {0} already exists")]
    Exists(u32),
    #[error("Container {0} is running")]
    Running(u32),
    #[error("Container {0} is not running")]
    NotRunning(u32),
    #[error("the init of container {veid} exited while it started{}", if words.is_empty() { " (it wrote nothing to its console)".to_string() } else { format!("; last on its console: {words}") })]
    InitDied { veid: u32, words: String },
    #[error("Container {0} is suspended (vzctl chkpnt --resume or --kill, or restore --resume)")]
    Suspended(u32),
    #[error("Container {0} is not mounted")]
    NotMounted(u32),
    #[error("name '{name}' is already used by container {veid}")]
    NameTaken { name: String, veid: u32 },
    #[error("invalid name '{0}': use letters, digits, '.', '_' and '-', not only digits")]
    BadName(String),
    #[error("invalid value '{value}' for --{key}: {why}")]
    BadValue { key: &'static str, value: String, why: &'static str },
    #[error("config sample '{name}' not found: no {path}")]
    NoSample { name: String, path: PathBuf },
    #[error("at step '{name}': {source}")]
    Step { name: String, source: io::Error },
    #[error(
        "no free range of 65536 host user and group ids is left for container {0} (LOCAL_UID/LOCAL_GID in vz.conf)"
    )]
    NoIds(u32),
    #[error("command failed: {0}")]
    Exec(String),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error(transparent)]
    Ns(#[from] NsError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Ubc(#[from] UbcError),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error("IP address {ip} is already in use by container {veid}")]
    IpInUse { ip: String, veid: u32 },
    #[error(transparent)]
    Rule(#[from] crate::netfilter::RuleError),
    #[error(transparent)]
    Cpu(#[from] crate::cpu::CpuError),
    #[error(transparent)]
    BlkIo(#[from] crate::io::IoError),
    #[error(transparent)]
    Disk(#[from] crate::disk::DiskError),
    #[error(transparent)]
    Criu(#[from] crate::criu::CriuError),
    #[error(transparent)]
    Device(#[from] crate::devices::DevError),
    #[error(transparent)]
    Cap(#[from] crate::caps::CapError),
    #[error(transparent)]
    Feature(#[from] crate::features::FeatureError),
    #[error(transparent)]
    Passwd(#[from] crate::passwd::PasswdError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error("Container start disabled (DISABLED=yes; vzctl set {0} --disabled no --save, or start --force)")]
    StartDisabled(u32),
    #[error("action script {} failed: {why}", script.display())]
    ActionScript { script: PathBuf, why: String },
    #[error("Unable to set password for {user} in container {veid}: {why}")]
    ChangePass { veid: u32, user: String, why: &'static str },
    #[error("{dest}: {why}")]
    Remote { dest: String, why: String, code: i32 },
}

impl VeError {
    /// The class of this failure, from which vzctl's exit code follows.
    pub fn kind(&self) -> crate::kind::Kind {
        use crate::kind::Kind;
        match self {
            VeError::NotExist(_) => Kind::NoConfig,
            VeError::Exists(_) => Kind::Exists,
            VeError::Running(_) => Kind::Running,
            VeError::NotRunning(_) | VeError::Suspended(_) => Kind::NotRunning,
            VeError::NotMounted(_) => Kind::NotMounted,
            VeError::NameTaken { .. } | VeError::BadName(_) | VeError::BadValue { .. } | VeError::NoSample { .. } => {
                Kind::BadValue
            }
            VeError::Step { .. } | VeError::InitDied { .. } => Kind::EnvCreate,
            VeError::NoIds(_) | VeError::Io { .. } => Kind::System,
            VeError::Exec(_) => Kind::Exec,
            VeError::IpInUse { .. } => Kind::IpInUse,
            VeError::Rule(_) => Kind::BadValue,
            VeError::Config(e) => e.kind(),
            VeError::Template(e) => e.kind(),
            VeError::Cgroup(e) => e.kind(),
            VeError::Bpf(e) => e.kind(),
            VeError::Ns(e) => e.kind(),
            VeError::Lock(e) => e.kind(),
            VeError::Ubc(e) => e.kind(),
            VeError::Net(e) => e.kind(),
            VeError::Cpu(e) => e.kind(),
            VeError::BlkIo(e) => e.kind(),
            VeError::Disk(e) => e.kind(),
            VeError::Criu(e) => e.kind(),
            VeError::Device(e) => e.kind(),
            VeError::Cap(e) => e.kind(),
            VeError::Feature(e) => e.kind(),
            VeError::Passwd(e) => e.kind(),
            VeError::Console(e) => e.kind(),
            VeError::StartDisabled(_) => Kind::StartDisabled,
            VeError::ChangePass { .. } => Kind::ChangePass,
            VeError::ActionScript { .. } => Kind::ActionScript,
            // The destination's vzctl said why, with OpenVZ's code for it.
            VeError::Remote { code, .. } => {
                Kind::ALL.into_iter().find(|k| k.exit_code() == *code).unwrap_or(Kind::System)
            }
        }
    }
}

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> VeError + 'a {
    move |source| VeError::Io { op, path: path.to_path_buf(), source }
}

/// What `vzctl status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub exist: bool,
    pub mounted: bool,
    pub running: bool,
}

impl Status {
    pub fn line(&self, veid: u32) -> String {
        format!(
            "VEID {veid} {} {} {}",
            if self.exist { "exist" } else { "deleted" },
            if self.mounted { "mounted" } else { "unmounted" },
            if self.running { "running" } else { "down" }
        )
    }
}

/// What `set` did to the CPU settings, as vzctl says it, with the effective limit.
pub(crate) fn print_cpu(cpu: &crate::cpu::CpuSettings, opts: &SetOpts) {
    if opts.cpuunits.is_some() {
        crate::report::progress(format!("Setting CPU units: {}", cpu.units.unwrap_or(crate::cpu::DEFAULT_UNITS)));
    }
    if opts.cpulimit.is_some() {
        crate::report::progress(format!("Setting CPU limit: {}", cpu.limit.unwrap_or(0)));
    }
    if opts.cpus.is_some() {
        crate::report::progress(format!(
            "Setting CPUs: {}",
            cpu.cpus.filter(|n| *n > 0).map_or("unlimited".to_string(), |n| n.to_string())
        ));
    }
    if opts.cpumask.is_some() {
        crate::report::progress(format!("Setting CPU mask: {}", cpu.mask.as_deref().unwrap_or("all")));
    }
    if opts.cpulimit.is_some() || opts.cpus.is_some() {
        match cpu.effective_limit() {
            Some(p) => crate::report::progress(format!(
                "Effective CPU limit: {p}% of one CPU ({:.2} CPUs)",
                f64::from(p) / 100.0
            )),
            None => crate::report::progress("Effective CPU limit: none"),
        }
    }
}

/// What `set` did to the I/O settings.
pub(crate) fn print_io(s: &crate::io::IoSettings, opts: &SetOpts) {
    use crate::io;
    if opts.ioprio.is_some() {
        let p = s.prio.unwrap_or(io::DEFAULT_PRIO);
        crate::report::progress(format!("Setting I/O priority: {p} (BFQ weight {})", io::weight(p)));
    }
    let show = |v: Option<u64>, unit: &str| match v.filter(|v| *v > 0) {
        Some(v) => format!("{v} {unit}"),
        None => "unlimited".into(),
    };
    if opts.iolimit.is_some() {
        crate::report::progress(format!("Setting I/O limit: {}", show(s.limit, "bytes/s")));
    }
    if opts.iopslimit.is_some() {
        crate::report::progress(format!("Setting IOPS limit: {}", show(s.iops, "ops/s")));
    }
}

/// Puts a running VE's egress behind a shaper of `kbit` (None: lifts it). The shaper is
/// made before the tc program is told to use it, and forgotten by the program before it
/// goes, so no packet is sent to a missing device.
pub(crate) fn set_rate(bpf: &mut Bpf, cgid: u64, kbit: Option<u64>) -> Result<(), VeError> {
    match kbit {
        Some(k) => {
            let ifindex = crate::net::set_shaper(cgid, k)?;
            info!(cgid, kbit = k, ifindex, "egress rate limit");
            Ok(bpf.set_net_shaper(cgid, Some(ifindex))?)
        }
        None => {
            bpf.set_net_shaper(cgid, None)?;
            Ok(crate::net::del_shaper(cgid)?)
        }
    }
}

/// The controller: global settings and the host's cgroup layout.
pub struct Vz {
    pub paths: Paths,
    pub cg: Box<dyn Cgroups>,
    /// Where host mounts and step points go (the test seam).
    pub sys: Box<dyn Syscall>,
    /// `--skiplock` (OpenVZ's): commands do not take the VE's lock. The admin's escape
    /// from a lock held by a stuck vzctl; nothing then keeps two commands apart.
    pub skip_lock: bool,
    /// When this Vz was made (the verb's start, for `vz::timing`).
    pub began: Instant,
}

impl Vz {
    pub fn new(paths: Paths) -> Result<Self, VeError> {
        let cg = cgroup::detect_anchored(&paths.cgroup_parent, &paths.lock_dir.join("cgroup-anchor"))?;
        Ok(Self { paths, cg, sys: crate::sys::syscall::create_syscall(), skip_lock: false, began: Instant::now() })
    }

    /// A named point between two steps of a verb, where a test makes it fail or die
    /// (through the `Syscall` seam), so tests can prove each step's rollback and repair.
    /// Also where `vzctl -vv` says how long the verb took so far (`vz::timing`).
    pub(crate) fn step(&self, name: &str) -> Result<(), VeError> {
        self.mark(name);
        self.sys.step(name).map_err(|e| VeError::Step { name: name.into(), source: e })
    }

    /// A point of a verb where `vzctl -vv` says how long it took so far (`vz::timing`).
    pub(crate) fn mark(&self, name: &str) {
        let ms = self.began.elapsed().as_secs_f64() * 1000.0;
        tracing::debug!(target: "vz::timing", step = name, ms = format!("{ms:.1}"), "step");
    }

    /// Records an event of the VE in the node's event log (`vzctl events`).
    pub fn event(&self, veid: u32, event: &str, fields: &[(&str, crate::events::Val)]) {
        crate::events::record(&self.paths.events_log, veid, event, fields);
    }

    pub(crate) fn sys(&self) -> &dyn Syscall {
        self.sys.as_ref()
    }

    /// Takes the VE's lock, then repairs what a vzctl killed half-way through a create or
    /// a start left (it held this lock, so it is dead now).
    /// Waits LOCK_WAIT seconds at most: then the VE is "locked" (exit 9), naming the
    /// vzctl that holds it. With --skiplock nothing is taken, and nothing repaired (the
    /// holder may be at work).
    pub fn lock(&self, veid: u32) -> Result<VeLock, VeError> {
        let dir = &self.paths.lock_dir;
        if self.skip_lock {
            warn!(veid, "--skiplock: the container's lock is not taken");
            return Ok(VeLock::skipped(dir, veid));
        }
        let wait = Duration::from_secs(self.paths.lock_wait.into());
        let Some(l) = VeLock::take_within(dir, veid, wait)? else {
            let holder = VeLock::holder(dir, veid);
            return Err(crate::lock::LockError::Busy { veid, holder, secs: wait.as_secs() }.into());
        };
        self.repair(veid);
        Ok(l)
    }

    /// Repairs a killed command's leftovers when nobody else holds the VE's lock: for
    /// commands that take no lock (status, exec, enter, ubc), so none of them sees a VE
    /// half made.
    pub fn repair_if_idle(&self, veid: u32) {
        let dir = &self.paths.lock_dir;
        if ["creating", "starting", "migrating"].iter().all(|k| Intent::left(dir, veid, k).is_none()) {
            return;
        }
        if let Ok(Some(_l)) = VeLock::take_within(dir, veid, Duration::ZERO) {
            self.repair(veid);
        }
    }

    fn repair(&self, veid: u32) {
        let dir = &self.paths.lock_dir;
        if let Some(facts) = Intent::left(dir, veid, "creating") {
            if self.paths.ve_conf(veid).exists() {
                // Killed after the config was written: the VE is whole.
            } else {
                info!(veid, "repairing a create that was interrupted");
                crate::report::notice(format!("Removing what an interrupted create of container {veid} left"));
                if let Some(root) = facts.get("ROOT").map(PathBuf::from) {
                    if is_mounted(&root) {
                        let _ = umount(self.sys(), &root);
                    }
                    if facts.get("ROOT_MADE") == Some("yes") {
                        let _ = fs::remove_dir(&root);
                    }
                }
                if let Some(private) = facts.get("PRIVATE") {
                    let _ = fs::remove_dir_all(private);
                }
            }
            Intent::forget(dir, veid, "creating");
        }
        if Intent::left(dir, veid, "starting").is_some() {
            info!(veid, "repairing a start that was interrupted");
            crate::report::notice(format!("Stopping what an interrupted start of container {veid} left"));
            let root = match self.conf(veid) {
                Ok(c) => self.root_of(veid, &c),
                Err(_) => self.paths.root_of(veid),
            };
            if let Err(e) = self.cleanup_runtime(veid, &root) {
                warn!(veid, "repair: {e}");
            }
            Intent::forget(dir, veid, "starting");
        }
        if let Some(facts) = Intent::left(dir, veid, "migrating") {
            self.repair_migration(veid, &facts);
        }
    }

    /// Writes the default vz.conf and config samples where they are missing, as a package
    /// install would.
    pub fn ensure_installed(&self) -> Result<(), VeError> {
        let g = self.paths.global_conf();
        if !g.exists() {
            config::write_atomic(&g, DEFAULT_VZ_CONF.as_bytes())?;
        }
        for (name, text) in conf::samples() {
            let p = self.paths.sample(name);
            if !p.exists() {
                config::write_atomic(&p, text.as_bytes())?;
            }
        }
        Ok(())
    }

    pub fn conf(&self, veid: u32) -> Result<ConfFile, VeError> {
        ConfFile::read_existing(&self.paths.ve_conf(veid))?.ok_or(VeError::NotExist(veid))
    }

    fn conf_path_value(&self, conf: &ConfFile, key: &str, veid: u32) -> PathBuf {
        match conf.get(key) {
            Some(v) => config::expand_veid(v, veid),
            None if key == "VE_ROOT" => self.paths.root_of(veid),
            None => self.paths.private_of(veid),
        }
    }

    pub fn root_of(&self, veid: u32, conf: &ConfFile) -> PathBuf {
        self.conf_path_value(conf, "VE_ROOT", veid)
    }

    pub fn private_of(&self, veid: u32, conf: &ConfFile) -> PathBuf {
        self.conf_path_value(conf, "VE_PRIVATE", veid)
    }

    /// Every VE with a config, sorted.
    /// The first VE other than `except` whose config satisfies `pred`: ids, names and
    /// interface names belong to one VE only.
    pub(super) fn other_ve(&self, except: u32, pred: impl Fn(&ConfFile) -> bool) -> Option<u32> {
        self.veids().into_iter().filter(|v| *v != except).find(|v| self.conf(*v).is_ok_and(|c| pred(&c)))
    }

    /// The other VE whose config names `host_ifname` for a bridged interface, if any.
    pub(crate) fn netif_owner(&self, host_ifname: &str, except: u32) -> Option<u32> {
        self.other_ve(except, |c| {
            crate::net::parse_netifs(c.get("NETIF").unwrap_or(""))
                .is_ok_and(|l| l.iter().any(|n| n.host_ifname == host_ifname))
        })
    }

    /// Proxy ARP and a gratuitous ARP for a VE's addresses (NEIGHBOUR_DEVS); a failure is
    /// said, not fatal: the VE runs, only neighbours on the LAN may not find it.
    pub(crate) fn announce(&self, veid: u32, ips: &[IpAddr]) {
        let devs = crate::net::NeighbourDevs::parse(&self.paths.neighbour_devs);
        if let Err(e) = crate::net::announce(&devs, ips) {
            warn!(veid, "proxy ARP for the container's addresses: {e}");
        }
    }

    /// The host no longer answers ARP for the addresses a VE ran with or is configured with.
    pub(crate) fn withdraw(&self, veid: u32) {
        let mut ips = Vec::new();
        for c in [self.live_conf(veid).ok(), self.conf(veid).ok()].into_iter().flatten() {
            ips.extend(conf_ips(&c).unwrap_or_default());
        }
        if let Err(e) = crate::net::withdraw(&ips) {
            warn!(veid, "proxy ARP for the container's addresses: {e}");
        }
    }

    /// The other VE whose config holds `ip`, if any.
    fn ip_owner(&self, ip: std::net::IpAddr, except: u32) -> Option<u32> {
        self.other_ve(except, |c| conf_ips(c).is_ok_and(|ips| ips.contains(&ip)))
    }

    /// `--ipadd` addresses for `veid`, each one a VE may own, not the host's own and held
    /// by no other VE, without repeats.
    pub(crate) fn addable_ips(&self, veid: u32, given: &[IpAddr]) -> Result<Vec<IpAddr>, VeError> {
        let mut ips = Vec::new();
        let host = if given.is_empty() { Vec::new() } else { crate::net::host_addrs() };
        for &ip in given {
            if host.contains(&ip) {
                return Err(crate::net::NetError::Unusable {
                    addr: ip.to_string(),
                    why: "it is an address of this host",
                }
                .into());
            }
            if let Some(other) = self.ip_owner(ip, veid) {
                return Err(VeError::IpInUse { ip: ip.to_string(), veid: other });
            }
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        Ok(ips)
    }

    pub fn veids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = fs::read_dir(self.paths.ve_conf_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".conf")?.parse().ok())
            .filter(|v| *v > config::MAX_RESERVED_VEID)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// A VEID or a VE name, as vzctl accepts either.
    pub fn resolve(&self, r: &VeRef) -> Result<u32, VeError> {
        let name = match r {
            VeRef::Id(v) => return Ok(*v),
            VeRef::Name(n) => n,
        };
        for v in self.veids() {
            if self.conf(v).ok().and_then(|c| c.get("NAME").map(|n| n == name)).unwrap_or(false) {
                return Ok(v);
            }
        }
        Err(ConfigError::BadVeid(name.clone()).into())
    }

    /// The VEs a reporting tool shows: those named (ids or names), else every running one.
    pub fn named_or_running(&self, named: &[VeRef]) -> Result<Vec<u32>, VeError> {
        if named.is_empty() {
            Ok(self.veids().into_iter().filter(|v| self.is_running(*v)).collect())
        } else {
            named.iter().map(|v| self.resolve(v)).collect()
        }
    }

    pub fn is_running(&self, veid: u32) -> bool {
        !self.cg.procs(veid).is_empty()
    }

    pub fn status(&self, veid: u32) -> Status {
        let exist = self.paths.ve_conf(veid).exists();
        let root = match self.conf(veid) {
            Ok(c) => self.root_of(veid, &c),
            Err(_) => self.paths.root_of(veid),
        };
        Status { exist, mounted: is_mounted(&root), running: self.is_running(veid) }
    }

    pub(crate) fn check_name_free(&self, name: &str, veid: u32) -> Result<(), VeError> {
        if !valid_name(name) {
            return Err(VeError::BadName(name.into()));
        }
        match self.other_ve(veid, |c| c.get("NAME") == Some(name)) {
            Some(other) => Err(VeError::NameTaken { name: name.into(), veid: other }),
            None => Ok(()),
        }
    }

    /// Where the settings a running VE runs with are kept (its config plus what `set`
    /// changed without --save); removed at stop.
    pub(crate) fn live_path(&self, veid: u32) -> PathBuf {
        self.paths.lock_dir.join(format!("{veid}.live"))
    }

    /// The settings a running VE runs with (its config if it was started before they were
    /// kept).
    pub(crate) fn live_conf(&self, veid: u32) -> Result<ConfFile, VeError> {
        let p = self.live_path(veid);
        if p.exists() {
            Ok(ConfFile::read(&p)?)
        } else {
            self.conf(veid)
        }
    }

    fn running_init(&self, veid: u32) -> Result<i32, VeError> {
        self.conf(veid)?;
        self.repair_if_idle(veid);
        let init = ns::find_init(self.cg.as_ref(), veid).ok_or(VeError::NotRunning(veid))?;
        // A command joining a frozen VE would be frozen with it, with no end.
        if self.cg.is_frozen(veid) {
            return Err(VeError::Suspended(veid));
        }
        Ok(init)
    }
}

/// The most vzctl reads of a VE's name and resolver files (a VE may make them huge).
const VE_FILE_MAX: u64 = 1 << 20;
/// How long `stop --fast` waits for the processes it killed to be gone.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long `stop --fast` waits for the lock after killing the VE.
const FAST_LOCK_WAIT: Duration = Duration::from_secs(10);
