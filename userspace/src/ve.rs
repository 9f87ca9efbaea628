//! The VE lifecycle: create, mount, start, stop, destroy, exec, enter, runscript, set.
//!
//! State is read from the system, not from files vzctl keeps: a VE exists when its config
//! does, is mounted when VE_ROOT is a mount point, and runs when its cgroup holds processes.
//! So a vzctl killed at any point leaves nothing the next command cannot see and finish.
use std::{
    fs, io,
    os::fd::{AsRawFd as _, OwnedFd},
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
    inroot,
    limits::{self, Mechanism},
    lock::{Intent, LockError, VeLock},
    ns::{self, InitSpec, NsError},
    relay,
    template::{self, TemplateError},
    ubc::{Resource, UbcError},
};

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
    #[error("injected failure at step '{0}' (VZ_FAIL_AT)")]
    Injected(String),
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

/// Options of `vzctl create`.
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub ostemplate: Option<String>,
    pub config: Option<String>,
    pub hostname: Option<String>,
    pub name: Option<String>,
    pub private: Option<PathBuf>,
    pub root: Option<PathBuf>,
    /// `--ipadd A` (repeatable).
    pub ipadd: Vec<String>,
    /// `--layout simfs|ploop` (default VE_LAYOUT of vz.conf, else simfs).
    pub layout: Option<String>,
    /// `--diskspace soft:hard`, `--diskinodes soft:hard`.
    pub diskspace: Option<String>,
    pub diskinodes: Option<String>,
}

/// Parameters of `vzctl set`.
#[derive(Debug, Clone, Default)]
pub struct SetOpts {
    pub hostname: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub onboot: Option<String>,
    /// (resource name, barrier[:limit]) pairs.
    pub ubc: Vec<(&'static str, String)>,
    /// VSwap: `--ram`, `--swap` (sizes), `--vm_overcommit` (ratio).
    pub ram: Option<String>,
    pub swap: Option<String>,
    pub vm_overcommit: Option<String>,
    /// `--ipadd A` (repeatable) and `--ipdel A|all`.
    pub ipadd: Vec<String>,
    pub ipdel: Vec<String>,
    /// `--nameserver A` and `--searchdomain D` (repeatable): the VE's resolv.conf.
    pub nameserver: Vec<String>,
    pub searchdomain: Vec<String>,
    /// `--netfilter-rule R` (repeatable): the VE's whole rule list; `none` clears it.
    pub netfilter: Vec<String>,
    /// `--netif_add ifname[,mac,host_ifname,host_mac,bridge]`, `--netif_del ifname|all`.
    pub netif_add: Vec<String>,
    pub netif_del: Vec<String>,
    /// `--rate KBIT` (or OpenVZ's dev:class:kbit): egress limit; 0 or none lifts it.
    pub rate: Option<String>,
    /// `--cpuunits`, `--cpulimit`, `--cpus`, `--cpumask`.
    pub cpuunits: Option<String>,
    pub cpulimit: Option<String>,
    pub cpus: Option<String>,
    pub cpumask: Option<String>,
    /// `--ioprio`, `--iolimit`, `--iopslimit`.
    pub ioprio: Option<String>,
    pub iolimit: Option<String>,
    pub iopslimit: Option<String>,
    /// `--diskspace`, `--diskinodes` (soft:hard), `--quotaugidlimit N`.
    pub diskspace: Option<String>,
    pub diskinodes: Option<String>,
    pub quotaugidlimit: Option<String>,
}

impl SetOpts {
    pub fn is_empty(&self) -> bool {
        self.ipadd.is_empty()
            && self.ipdel.is_empty()
            && self.nameserver.is_empty()
            && self.netfilter.is_empty()
            && self.netif_add.is_empty()
            && self.netif_del.is_empty()
            && self.rate.is_none()
            && self.cpuunits.is_none()
            && self.cpulimit.is_none()
            && self.cpus.is_none()
            && self.cpumask.is_none()
            && self.ioprio.is_none()
            && self.iolimit.is_none()
            && self.iopslimit.is_none()
            && self.diskspace.is_none()
            && self.diskinodes.is_none()
            && self.quotaugidlimit.is_none()
            && self.searchdomain.is_empty()
            && self.hostname.is_none()
            && self.name.is_none()
            && self.description.is_none()
            && self.onboot.is_none()
            && self.ubc.is_empty()
            && self.ram.is_none()
            && self.swap.is_none()
            && self.vm_overcommit.is_none()
    }
}

/// What `set` did to the CPU settings, as vzctl says it, with the effective limit.
pub(crate) fn print_cpu(cpu: &crate::cpu::CpuSettings, opts: &SetOpts) {
    if opts.cpuunits.is_some() {
        println!("Setting CPU units: {}", cpu.units.unwrap_or(crate::cpu::DEFAULT_UNITS));
    }
    if opts.cpulimit.is_some() {
        println!("Setting CPU limit: {}", cpu.limit.unwrap_or(0));
    }
    if opts.cpus.is_some() {
        println!("Setting CPUs: {}", cpu.cpus.filter(|n| *n > 0).map_or("unlimited".to_string(), |n| n.to_string()));
    }
    if opts.cpumask.is_some() {
        println!("Setting CPU mask: {}", cpu.mask.as_deref().unwrap_or("all"));
    }
    if opts.cpulimit.is_some() || opts.cpus.is_some() {
        match cpu.effective_limit() {
            Some(p) => println!("Effective CPU limit: {p}% of one CPU ({:.2} CPUs)", f64::from(p) / 100.0),
            None => println!("Effective CPU limit: none"),
        }
    }
}

/// What `set` did to the I/O settings.
pub(crate) fn print_io(s: &crate::io::IoSettings, opts: &SetOpts) {
    use crate::io;
    if opts.ioprio.is_some() {
        let p = s.prio.unwrap_or(io::DEFAULT_PRIO);
        println!("Setting I/O priority: {p} (BFQ weight {})", io::weight(p));
    }
    let show = |v: Option<u64>, unit: &str| match v.filter(|v| *v > 0) {
        Some(v) => format!("{v} {unit}"),
        None => "unlimited".into(),
    };
    if opts.iolimit.is_some() {
        println!("Setting I/O limit: {}", show(s.limit, "bytes/s"));
    }
    if opts.iopslimit.is_some() {
        println!("Setting IOPS limit: {}", show(s.iops, "ops/s"));
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

/// The VE's CPU settings (CPUUNITS, CPULIMIT, CPUS, CPUMASK), checked against this host.
pub fn conf_cpu(conf: &ConfFile) -> Result<crate::cpu::CpuSettings, VeError> {
    use crate::cpu;
    let n = cpu::host_cpus();
    Ok(cpu::CpuSettings {
        units: conf.get("CPUUNITS").map(cpu::parse_units).transpose()?,
        limit: conf.get("CPULIMIT").map(|v| cpu::parse_limit(v, n)).transpose()?,
        cpus: conf.get("CPUS").map(|v| cpu::parse_cpus(v, n)).transpose()?,
        mask: conf.get("CPUMASK").map(|v| cpu::parse_mask(v, n)).transpose()?.flatten(),
    })
}

/// The VE's I/O settings (IOPRIO, IOLIMIT, IOPSLIMIT).
pub fn conf_io(conf: &ConfFile) -> Result<crate::io::IoSettings, VeError> {
    use crate::io;
    Ok(io::IoSettings {
        prio: conf.get("IOPRIO").map(io::parse_prio).transpose()?,
        limit: conf.get("IOLIMIT").map(io::parse_limit).transpose()?,
        iops: conf.get("IOPSLIMIT").map(io::parse_iops).transpose()?,
    })
}

/// The VE's disk settings: layout (VE_LAYOUT, default simfs), DISKSPACE and DISKINODES
/// (soft:hard), QUOTAUGIDLIMIT.
#[derive(Debug, Clone, Copy)]
pub struct DiskConf {
    pub layout: crate::disk::Layout,
    pub space: Option<crate::disk::Limit>,
    pub inodes: Option<crate::disk::Limit>,
    pub ugid: u64,
}

pub fn conf_disk(conf: &ConfFile) -> Result<DiskConf, VeError> {
    use crate::disk;
    let ugid = match conf.get("QUOTAUGIDLIMIT") {
        Some(v) => parse_ugid(v)?,
        None => 0,
    };
    Ok(DiskConf {
        layout: conf.get("VE_LAYOUT").map(disk::Layout::parse).transpose()?.unwrap_or(disk::Layout::Simfs),
        space: conf.get("DISKSPACE").map(disk::parse_diskspace).transpose()?,
        inodes: conf.get("DISKINODES").map(disk::parse_diskinodes).transpose()?,
        ugid,
    })
}

pub(crate) fn parse_ugid(v: &str) -> Result<u64, VeError> {
    v.trim().parse::<u64>().map_err(|_| VeError::BadValue {
        key: "quotaugidlimit",
        value: v.into(),
        why: "use a number of user and group ids (0: no per-user quota)",
    })
}

/// Tells the admin about limits stored but not enforced.
fn say_disk(veid: u32, applied: crate::disk::Applied) {
    if let crate::disk::Applied::NotEnforced(why) = applied {
        warn!(veid, "disk quota not enforced: {why}");
        eprintln!("Warning: disk quota is stored but not enforced: {why}");
    }
}

/// The VE's addresses (`IP_ADDRESS="10.0.0.2 fd00::2"`).
pub fn conf_ips(conf: &ConfFile) -> Result<Vec<std::net::IpAddr>, VeError> {
    conf.get("IP_ADDRESS").unwrap_or("").split_whitespace().map(|a| Ok(crate::net::parse_ip(a)?)).collect()
}

/// Every beancounter set in a config (`NUMPROC="240:240"`, ...).
pub fn conf_limits(conf: &ConfFile) -> Result<Vec<(&'static Resource, UbcLimit)>, VeError> {
    let mut out = Vec::new();
    for r in crate::ubc::ALL {
        if let Some(v) = conf.get(&r.name.to_ascii_uppercase()) {
            out.push((r, r.parse_limit(v)?));
        }
    }
    Ok(out)
}

/// One report row and what stands behind it.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub row: crate::ubc::UbcRow,
    pub mechanism: Mechanism,
}

pub const SAMPLE_BASIC: &str = "\
# Basic VE: room for a small web or mail server. VSwap: 256 MiB of RAM, 512 MiB of swap.
ONBOOT=\"no\"
NUMPROC=\"240:240\"
NUMTCPSOCK=\"360:360\"
NUMOTHERSOCK=\"360:360\"
KMEMSIZE=\"14372700:14790164\"
TCPSNDBUF=\"1720320:2703360\"
TCPRCVBUF=\"1720320:2703360\"
OTHERSOCKBUF=\"1126080:2097152\"
DGRAMRCVBUF=\"262144:262144\"
OOMGUARPAGES=\"26112:9223372036854775807\"
PRIVVMPAGES=\"65536:69632\"
LOCKEDPAGES=\"256:256\"
SHMPAGES=\"21504:21504\"
PHYSPAGES=\"0:65536\"
SWAPPAGES=\"0:131072\"
VMGUARPAGES=\"33792:9223372036854775807\"
NUMFILE=\"9312:9312\"
NUMFLOCK=\"188:206\"
NUMPTY=\"16:16\"
NUMSIGINFO=\"256:256\"
DCACHESIZE=\"3409920:3624960\"
NUMIPTENT=\"128:128\"
";

pub const SAMPLE_LIGHT: &str = "\
# Light VE: a few processes, few sockets. VSwap: 64 MiB of RAM, 128 MiB of swap.
ONBOOT=\"no\"
NUMPROC=\"64:64\"
NUMTCPSOCK=\"64:64\"
NUMOTHERSOCK=\"64:64\"
KMEMSIZE=\"2752512:2936012\"
TCPSNDBUF=\"319488:524288\"
TCPRCVBUF=\"319488:524288\"
OTHERSOCKBUF=\"132096:336896\"
DGRAMRCVBUF=\"132096:132096\"
OOMGUARPAGES=\"6144:9223372036854775807\"
PRIVVMPAGES=\"16384:18432\"
LOCKEDPAGES=\"32:32\"
SHMPAGES=\"8192:8192\"
PHYSPAGES=\"0:16384\"
SWAPPAGES=\"0:32768\"
VMGUARPAGES=\"6144:9223372036854775807\"
NUMFILE=\"2048:2048\"
NUMFLOCK=\"100:110\"
NUMPTY=\"4:4\"
NUMSIGINFO=\"256:256\"
DCACHESIZE=\"1048576:1097728\"
NUMIPTENT=\"32:32\"
";

const DEFAULT_VZ_CONF: &str = "\
## Global settings of vzbpf (OpenVZ's vz.conf keys)
VE_ROOT=\"/vz/root/$VEID\"
VE_PRIVATE=\"/vz/private/$VEID\"
TEMPLATE=\"/vz/template\"
LOCKDIR=\"/vz/lock\"
DEF_OSTEMPLATE=\"busybox\"
CONFIGFILE=\"basic\"
## Each container gets its own range of 65536 host ids, allocated from here up
## (recorded as LOCAL_UID/LOCAL_GID in its config).
LOCAL_UID=\"100000\"
LOCAL_GID=\"100000\"
STOP_TIMEOUT=\"10\"
## dcachesize accounting runs a tracepoint program on every slab allocation and free of
## the host (see the README's benchmark); off unless wanted.
DCACHE_ACCOUNTING=\"no\"
";

/// Why `--quotaugidlimit` is stored only.
const UGID_QUOTA_WHY: &str = "per-user and per-group quota inside a VE is not available: quotactl(2) on the VE's file system needs CAP_SYS_ADMIN in the host's user namespace, which the VE's root does not have";

/// Image size of a ploop VE created without --diskspace (OpenVZ's basic sample).
const DEFAULT_PLOOP_DISKSPACE: &str = "2G:2G";

/// Is `path` a mount point (per this process's mount table)?
pub fn is_mounted(path: &Path) -> bool {
    let want = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|mi| mi.lines().any(|l| l.split(' ').nth(4).is_some_and(|m| Path::new(&unescape_mount(m)) == want)))
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

pub(crate) fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && !n.bytes().all(|b| b.is_ascii_digit())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub(crate) fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 64
        && h.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// Refuses a value that would not survive the config file: control characters (a newline
/// would end the line and start another key).
pub fn check_text(key: &'static str, value: &str) -> Result<(), VeError> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(VeError::BadValue {
            key,
            value: value.escape_default().to_string(),
            why: if c == '\n' { "contains a newline" } else { "contains a control character" },
        });
    }
    Ok(())
}

/// The controller: global settings and the host's cgroup layout.
pub struct Vz {
    pub paths: Paths,
    pub cg: Box<dyn Cgroups>,
}

impl Vz {
    pub fn new(paths: Paths) -> Result<Self, VeError> {
        let cg = cgroup::detect_anchored(&paths.cgroup_parent, &paths.lock_dir.join("cgroup-anchor"))?;
        Ok(Self { paths, cg })
    }

    /// Test seam, in debug builds only (what `cargo xtask test` runs): `VZ_FAIL_AT=<step>`
    /// makes a lifecycle command fail at that step, `VZ_KILL_AT=<step>` SIGKILLs it there,
    /// so tests can prove each step's rollback and repair.
    pub(crate) fn step(&self, name: &str) -> Result<(), VeError> {
        tracing::trace!(step = name, "step");
        #[cfg(debug_assertions)]
        {
            if std::env::var("VZ_KILL_AT").is_ok_and(|s| s == name) {
                // SAFETY: signalling ourselves.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            }
            if std::env::var("VZ_FAIL_AT").is_ok_and(|s| s == name) {
                return Err(VeError::Injected(name.into()));
            }
        }
        Ok(())
    }

    /// Takes the VE's lock, then repairs what a vzctl killed half-way through a create or
    /// a start left (it held this lock, so it is dead now).
    pub fn lock(&self, veid: u32) -> Result<VeLock, VeError> {
        let l = VeLock::take(&self.paths.lock_dir, veid)?;
        self.repair(veid);
        Ok(l)
    }

    /// Repairs a killed command's leftovers when nobody else holds the VE's lock: for
    /// commands that take no lock (status, exec, enter, ubc), so none of them sees a VE
    /// half made.
    pub fn repair_if_idle(&self, veid: u32) {
        let dir = &self.paths.lock_dir;
        if Intent::left(dir, veid, "creating").is_none() && Intent::left(dir, veid, "starting").is_none() {
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
                warn!(veid, "repairing a create that was interrupted");
                eprintln!("Removing what an interrupted create of container {veid} left");
                if let Some(root) = facts.get("ROOT").map(PathBuf::from) {
                    if is_mounted(&root) {
                        let _ = umount(&root);
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
            warn!(veid, "repairing a start that was interrupted");
            eprintln!("Stopping what an interrupted start of container {veid} left");
            let root = match self.conf(veid) {
                Ok(c) => self.root_of(veid, &c),
                Err(_) => self.paths.root_of(veid),
            };
            if let Err(e) = self.cleanup_runtime(veid, &root) {
                warn!(veid, "repair: {e}");
            }
            Intent::forget(dir, veid, "starting");
        }
    }

    /// The VE's host id ranges: LOCAL_UID/LOCAL_GID of its config, else (a VE made before
    /// ranges were per VE) vz.conf's.
    pub fn ve_ids(&self, conf: &ConfFile) -> (u32, u32) {
        let get = |k: &str, d: u32| conf.get(k).and_then(|v| v.trim().parse().ok()).unwrap_or(d);
        (get("LOCAL_UID", self.paths.local_uid), get("LOCAL_GID", self.paths.local_gid))
    }

    /// The id ranges of every VE but `except`, and of creates in progress.
    fn ranges_in_use(&self, except: u32) -> Vec<(u32, u32)> {
        let mut used: Vec<(u32, u32)> = self
            .veids()
            .into_iter()
            .filter(|v| *v != except)
            .filter_map(|v| Some(self.ve_ids(&self.conf(v).ok()?)))
            .collect();
        if let Ok(rd) = fs::read_dir(&self.paths.lock_dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".creating") && n != format!("{except}.creating") {
                    if let Ok(c) = ConfFile::read(&e.path()) {
                        used.push(self.ve_ids(&c));
                    }
                }
            }
        }
        used
    }

    /// A fresh id range for `veid`; call with the "idmap" lock held until it is recorded.
    fn allocate_ids(&self, veid: u32) -> Result<(u32, u32), VeError> {
        crate::idmap::allocate(
            (self.paths.local_uid, self.paths.local_gid),
            &self.ranges_in_use(veid),
            &crate::idmap::Taken::host(true),
            &crate::idmap::Taken::host(false),
        )
        .ok_or(VeError::NoIds(veid))
    }

    /// Writes the default vz.conf and config samples where they are missing, as a package
    /// install would.
    pub fn ensure_installed(&self) -> Result<(), VeError> {
        let g = self.paths.global_conf();
        if !g.exists() {
            config::write_atomic(&g, DEFAULT_VZ_CONF.as_bytes())?;
        }
        for (name, text) in [("basic", SAMPLE_BASIC), ("light", SAMPLE_LIGHT)] {
            let p = self.paths.sample(name);
            if !p.exists() {
                config::write_atomic(&p, text.as_bytes())?;
            }
        }
        Ok(())
    }

    pub fn conf(&self, veid: u32) -> Result<ConfFile, VeError> {
        let p = self.paths.ve_conf(veid);
        if !p.exists() {
            return Err(VeError::NotExist(veid));
        }
        Ok(ConfFile::read(&p)?)
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
    fn other_ve(&self, except: u32, pred: impl Fn(&ConfFile) -> bool) -> Option<u32> {
        self.veids().into_iter().filter(|v| *v != except).find(|v| self.conf(*v).is_ok_and(|c| pred(&c)))
    }

    /// The other VE whose config names `host_ifname` for a bridged interface, if any.
    pub(crate) fn netif_owner(&self, host_ifname: &str, except: u32) -> Option<u32> {
        self.other_ve(except, |c| {
            crate::net::parse_netifs(c.get("NETIF").unwrap_or(""))
                .is_ok_and(|l| l.iter().any(|n| n.host_ifname == host_ifname))
        })
    }

    /// The other VE whose config holds `ip`, if any.
    fn ip_owner(&self, ip: std::net::IpAddr, except: u32) -> Option<u32> {
        self.other_ve(except, |c| conf_ips(c).is_ok_and(|ips| ips.contains(&ip)))
    }

    /// `--ipadd` addresses for `veid`, each one a VE may own, not the host's own and held
    /// by no other VE, without repeats.
    pub(crate) fn addable_ips(&self, veid: u32, specs: &[String]) -> Result<Vec<std::net::IpAddr>, VeError> {
        let mut ips = Vec::new();
        let host = if specs.is_empty() { Vec::new() } else { crate::net::host_addrs() };
        for a in specs {
            let ip = crate::net::parse_ve_ip(a)?;
            if host.contains(&ip) {
                return Err(
                    crate::net::NetError::Unusable { addr: a.clone(), why: "it is an address of this host" }.into()
                );
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
    pub fn resolve(&self, arg: &str) -> Result<u32, VeError> {
        if arg.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(config::parse_veid(arg)?);
        }
        for v in self.veids() {
            if self.conf(v).ok().and_then(|c| c.get("NAME").map(|n| n == arg)).unwrap_or(false) {
                return Ok(v);
            }
        }
        Err(ConfigError::BadVeid(arg.to_string()).into())
    }

    /// The VEs a reporting tool shows: those named (ids or names), else every running one.
    pub fn named_or_running(&self, named: &[String]) -> Result<Vec<u32>, VeError> {
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

    /// Checks a VE's private area and root paths before anything is made: absolute, not
    /// each other (or inside each other), and not used by any other VE, so one VE can
    /// never be given another's files or mount point.
    fn check_paths(&self, veid: u32, private: &Path, root: &Path) -> Result<(), VeError> {
        let bad = |key: &'static str, p: &Path, why: &'static str| VeError::BadValue {
            key,
            value: p.display().to_string(),
            why,
        };
        for (key, p) in [("private", private), ("root", root)] {
            if !p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(bad(key, p, "use an absolute path without '..'"));
            }
            if p.parent().is_none() {
                return Err(bad(key, p, "not the host's root directory"));
            }
        }
        let norm = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let (pv, rt) = (norm(private), norm(root));
        if pv.starts_with(&rt) || rt.starts_with(&pv) {
            return Err(bad("root", root, "the root and the private area must be apart"));
        }
        for other in self.veids().into_iter().filter(|v| *v != veid) {
            let Ok(c) = self.conf(other) else { continue };
            for theirs in [norm(&self.private_of(other, &c)), norm(&self.root_of(other, &c))] {
                for (key, mine, orig) in [("private", &pv, private), ("root", &rt, root)] {
                    if mine.starts_with(&theirs) || theirs.starts_with(mine) {
                        return Err(VeError::BadValue {
                            key,
                            value: orig.display().to_string(),
                            why: "overlaps the files of another container",
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The directory holding a VE's private area or root must keep other host users out
    /// (a VE's setuid files, its users' ids): root-owned, mode 0700. Made so when missing;
    /// the directory of vz.conf's own pattern is tightened; any other is refused.
    fn secure_parent(&self, key: &'static str, path: &Path, veid: u32) -> Result<(), VeError> {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let Some(parent) = path.parent() else { return Ok(()) };
        if !parent.exists() {
            fs::create_dir_all(parent).map_err(io_err("mkdir", parent))?;
            fs::set_permissions(parent, fs::Permissions::from_mode(0o700)).map_err(io_err("chmod", parent))?;
            return Ok(());
        }
        let md = fs::metadata(parent).map_err(io_err("stat", parent))?;
        if md.uid() == 0 && md.mode() & 0o077 == 0 {
            return Ok(());
        }
        let ours = [self.paths.private_of(veid), self.paths.root_of(veid)].iter().any(|p| p.parent() == Some(parent));
        if !ours {
            return Err(VeError::BadValue {
                key,
                value: path.display().to_string(),
                why: "its directory lets other host users in: make it root-owned with mode 0700",
            });
        }
        info!(dir = %parent.display(), "made 0700 root-owned: other host users must not reach containers' files");
        std::os::unix::fs::chown(parent, Some(0), Some(0)).map_err(io_err("chown", parent))?;
        fs::set_permissions(parent, fs::Permissions::from_mode(0o700)).map_err(io_err("chmod", parent))
    }

    /// `vzctl create`: config from a sample, private area from a template, a range of host
    /// ids of its own. Everything made is removed again if a later step fails, or by the
    /// next command if this one is killed.
    pub fn create(&self, veid: u32, opts: &CreateOpts) -> Result<(), VeError> {
        let _lock = self.lock(veid)?;
        self.ensure_installed()?;
        let conf_path = self.paths.ve_conf(veid);
        if conf_path.exists() {
            return Err(VeError::Exists(veid));
        }
        if let Some(h) = &opts.hostname {
            if !valid_hostname(h) {
                return Err(VeError::BadValue { key: "hostname", value: h.clone(), why: "not a valid host name" });
            }
        }
        if let Some(n) = &opts.name {
            self.check_name_free(n, veid)?;
        }
        let ips = self.addable_ips(veid, &opts.ipadd)?;
        let sample_name = opts.config.clone().unwrap_or_else(|| self.paths.configfile.clone());
        if template::check_name(&sample_name).is_err() {
            return Err(VeError::NoSample { name: sample_name.clone(), path: self.paths.sample(&sample_name) });
        }
        let sample = self.paths.sample(&sample_name);
        if !sample.is_file() {
            return Err(VeError::NoSample { name: sample_name, path: sample });
        }
        let ostemplate = opts.ostemplate.clone().unwrap_or_else(|| self.paths.def_ostemplate.clone());
        template::check_name(&ostemplate)?;
        let archive = template::find_or_build_default(&self.paths, &ostemplate)?;
        let mut conf = ConfFile::read(&sample)?;
        for (k, _) in conf.keys().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>() {
            // Validate sample beancounters now: a bad sample must not make a bad VE.
            if let Ok(r) = Resource::by_name(&k) {
                if let Some(v) = conf.get(&k) {
                    r.parse_limit(v)?;
                }
            }
        }
        for (key, p) in [("private", &opts.private), ("root", &opts.root)] {
            if let Some(p) = p {
                check_text(key, &p.to_string_lossy())?;
            }
        }
        conf.set("OSTEMPLATE", &ostemplate);
        conf.set("ORIGIN_SAMPLE", &sample_name);
        conf.set("VE_ROOT", &opts.root.as_ref().map_or(self.paths.ve_root.clone(), |p| p.to_string_lossy().into()));
        conf.set(
            "VE_PRIVATE",
            &opts.private.as_ref().map_or(self.paths.ve_private.clone(), |p| p.to_string_lossy().into()),
        );
        if !ips.is_empty() {
            conf.set("IP_ADDRESS", &ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(" "));
        }
        if let Some(h) = &opts.hostname {
            conf.set("HOSTNAME", h);
        }
        if let Some(n) = &opts.name {
            conf.set("NAME", n);
        }
        let layout_name = opts.layout.clone().unwrap_or_else(|| self.paths.ve_layout.clone());
        let layout = crate::disk::Layout::parse(&layout_name)?;
        conf.set("VE_LAYOUT", layout.name());
        if let Some(v) = &opts.diskspace {
            crate::disk::parse_diskspace(v)?;
            conf.set("DISKSPACE", v);
        }
        if let Some(v) = &opts.diskinodes {
            crate::disk::parse_diskinodes(v)?;
            conf.set("DISKINODES", v);
        }
        if layout == crate::disk::Layout::Ploop && conf.get("DISKSPACE").is_none() {
            // The image needs a size: OpenVZ's basic sample gives 2G.
            conf.set("DISKSPACE", DEFAULT_PLOOP_DISKSPACE);
        }
        let dconf = conf_disk(&conf)?;
        let private = self.private_of(veid, &conf);
        let root = self.root_of(veid, &conf);
        self.check_paths(veid, &private, &root)?;
        if private.exists() {
            return Err(VeError::Io {
                op: "create private area",
                path: private,
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        self.secure_parent("private", &private, veid)?;
        self.secure_parent("root", &root, veid)?;

        // The id range is recorded (in the intent, then the config) before the allocation
        // lock goes, so parallel creates never pick the same one.
        let idmap_lock = VeLock::global(&self.paths.lock_dir, "idmap")?;
        let (uid, gid) = self.allocate_ids(veid)?;
        conf.set("LOCAL_UID", &uid.to_string());
        conf.set("LOCAL_GID", &gid.to_string());
        let mut facts = ConfFile::default();
        facts.set("PRIVATE", &private.to_string_lossy());
        facts.set("ROOT", &root.to_string_lossy());
        facts.set("ROOT_MADE", if root.exists() { "no" } else { "yes" });
        facts.set("LOCAL_UID", &uid.to_string());
        facts.set("LOCAL_GID", &gid.to_string());
        let intent = Intent::begin(&self.paths.lock_dir, veid, "creating", &facts)?;
        drop(idmap_lock);

        let mut undo = Undo::new(self);
        println!("Creating container private area ({ostemplate})");
        self.step("create:private")?;
        undo.dir(private.clone());
        if !root.exists() {
            fs::create_dir_all(&root).map_err(io_err("mkdir", &root))?;
            undo.dir(root.clone());
        }
        match (dconf.layout, dconf.space) {
            (crate::disk::Layout::Ploop, Some(space)) => {
                let image = crate::disk::image_path(&private);
                crate::disk::create_image(&image, space, dconf.inodes)?;
                crate::disk::mount_image(&image, &root)?;
                undo.umount(root.clone());
                self.step("create:extract")?;
                template::extract(&archive, &root, uid, gid)?;
                say_disk(veid, crate::disk::apply_ploop(&root, Some(space), dconf.inodes)?);
                umount(&root)?;
            }
            _ => {
                self.step("create:extract")?;
                template::extract(&archive, &private, uid, gid)?;
                say_disk(veid, crate::disk::apply_simfs(&private, veid, dconf.space, dconf.inodes)?);
            }
        }
        self.step("create:root")?;
        self.step("create:config")?;
        conf.write_atomic(&conf_path)?;
        undo.file(conf_path);
        self.step("create:done")?;
        undo.commit();
        intent.done();
        println!("Container private area was created");
        Ok(())
    }

    /// `vzctl destroy`: only a stopped VE; removes private area, mount point and config.
    pub fn destroy(&self, veid: u32) -> Result<(), VeError> {
        let _lock = self.lock(veid)?;
        let conf = self.conf(veid)?;
        if self.is_running(veid) {
            return Err(VeError::Running(veid));
        }
        let (root, private) = (self.root_of(veid, &conf), self.private_of(veid, &conf));
        self.cleanup_runtime(veid, &root)?;
        println!("Destroying container private area: {}", private.display());
        if private.exists() {
            fs::remove_dir_all(&private).map_err(io_err("remove", &private))?;
        }
        let _ = fs::remove_dir(&root);
        let conf_path = self.paths.ve_conf(veid);
        fs::rename(&conf_path, conf_path.with_extension("conf.destroyed")).map_err(io_err("rename", &conf_path))?;
        println!("Container private area was destroyed");
        Ok(())
    }

    fn do_mount(&self, veid: u32, conf: &ConfFile) -> Result<bool, VeError> {
        let (root, private) = (self.root_of(veid, conf), self.private_of(veid, conf));
        self.secure_parent("private", &private, veid)?;
        self.secure_parent("root", &root, veid)?;
        if is_mounted(&root) {
            return Ok(false);
        }
        if !private.is_dir() {
            return Err(VeError::Io {
                op: "private area",
                path: private,
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        }
        fs::create_dir_all(&root).map_err(io_err("mkdir", &root))?;
        let d = conf_disk(conf)?;
        match d.layout {
            crate::disk::Layout::Ploop => {
                let image = crate::disk::image_path(&private);
                if let Some(s) = d.space {
                    // A limit raised while stopped, beyond the file system: grown offline.
                    if crate::disk::image_kb(&image)? < s.hard {
                        crate::disk::drop_balloons(&image, &root)?;
                        crate::disk::resize_offline(&image, crate::disk::capacity_kb(s.hard))?;
                    }
                }
                crate::disk::mount_image(&image, &root)?;
                // The config may have changed while stopped (or by hand): limits as it says.
                match crate::disk::apply_ploop(&root, d.space, d.inodes) {
                    Ok(a) => say_disk(veid, a),
                    Err(e) => {
                        let _ = umount(&root);
                        return Err(e.into());
                    }
                }
                if d.ugid > 0 {
                    say_disk(veid, crate::disk::Applied::NotEnforced(UGID_QUOTA_WHY.into()));
                }
            }
            crate::disk::Layout::Simfs => {
                bind_mount(&private, &root)?;
                if let Err(e) = crate::disk::apply_simfs(&private, veid, d.space, d.inodes).map(|a| say_disk(veid, a)) {
                    let _ = umount(&root);
                    return Err(e.into());
                }
            }
        }
        Ok(true)
    }

    /// `vzctl mount`: the private area appears at VE_ROOT (simfs layout: a bind mount).
    pub fn mount(&self, veid: u32) -> Result<(), VeError> {
        let _lock = self.lock(veid)?;
        let conf = self.conf(veid)?;
        self.do_mount(veid, &conf)?;
        println!("Container is mounted");
        Ok(())
    }

    /// `vzctl umount`: only a stopped VE.
    pub fn umount(&self, veid: u32) -> Result<(), VeError> {
        let _lock = self.lock(veid)?;
        let conf = self.conf(veid)?;
        if self.is_running(veid) {
            return Err(VeError::Running(veid));
        }
        let root = self.root_of(veid, &conf);
        if !is_mounted(&root) {
            return Err(VeError::NotMounted(veid));
        }
        umount(&root)?;
        println!("Container is unmounted");
        Ok(())
    }

    pub fn bpf_config(&self) -> BpfConfig {
        let mut cfg = BpfConfig::for_cgroups(self.paths.bpf_root.clone(), self.cg.as_ref());
        cfg.dcache = self.paths.dcache_accounting;
        cfg
    }

    /// Loads or reuses the programs and applies the VE's beancounters: limits go to the
    /// BPF map (for every row) and to the kernel controllers that enforce some of them. A
    /// kernel that cannot run the programs is reported, and the controller limits still
    /// apply.
    /// I/O weight and caps for the disk under the VE's root, and the VE's blkio cgroup made
    /// known to the block I/O accounting. Settings that cannot act here are said, not fatal.
    pub(crate) fn apply_io(&self, veid: u32, cgid: u64, root: &Path, s: &crate::io::IoSettings) -> Result<(), VeError> {
        let disk = crate::io::disk_of(root);
        for note in crate::io::apply(self.cg.as_ref(), veid, s, disk.as_ref())? {
            warn!(veid, "{note}");
            eprintln!("Warning: {note}");
        }
        if let Some(dir) = crate::io::blkio_dir(self.cg.as_ref(), veid) {
            if let Ok(mut bpf) = Bpf::open_existing(&self.paths.bpf_root) {
                bpf.set_io_cgroup(cgid, crate::cgroup::cgroup_id(&dir)?)?;
            }
        }
        Ok(())
    }

    /// `set --diskspace/--diskinodes/--quotaugidlimit`: live where the VE's root is mounted
    /// (an image's balloons resized), offline otherwise (the image itself resized).
    pub(crate) fn set_disk(&self, veid: u32, conf: &ConfFile, d: &DiskConf, opts: &SetOpts) -> Result<(), VeError> {
        let ugid_given = opts.quotaugidlimit.is_some();
        use crate::disk::{self, Layout};
        let (root, private) = (self.root_of(veid, conf), self.private_of(veid, conf));
        let mounted = is_mounted(&root);
        match d.layout {
            Layout::Ploop => {
                let image = disk::image_path(&private);
                if let (Some(s), false) = (d.space, mounted) {
                    // Stopped: the image itself is resized (shrinking gives the host its space
                    // back); the balloon is sized at the next mount.
                    if disk::image_kb(&image)? != disk::capacity_kb(s.hard) {
                        disk::drop_balloons(&image, &root)?;
                        disk::resize_offline(&image, disk::capacity_kb(s.hard))?;
                    }
                }
                if mounted {
                    let space = d.space.filter(|_| opts.diskspace.is_some());
                    let inodes = d.inodes.filter(|_| opts.diskinodes.is_some());
                    say_disk(veid, disk::change_ploop(&root, space, inodes)?);
                }
                if ugid_given && d.ugid > 0 {
                    say_disk(veid, disk::Applied::NotEnforced(UGID_QUOTA_WHY.into()));
                }
            }
            Layout::Simfs => {
                say_disk(veid, disk::apply_simfs(&private, veid, d.space, d.inodes)?);
                if ugid_given && d.ugid > 0 {
                    say_disk(veid, disk::Applied::NotEnforced(UGID_QUOTA_WHY.into()));
                }
            }
        }
        if let Some(s) = d.space.filter(|_| opts.diskspace.is_some()) {
            println!("Setting diskspace: {}:{} KiB", s.soft, s.hard);
        }
        if let Some(i) = d.inodes.filter(|_| opts.diskinodes.is_some()) {
            println!("Setting diskinodes: {}:{}", i.soft, i.hard);
        }
        Ok(())
    }

    fn apply_ubc(&self, veid: u32, cgid: u64, conf: &ConfFile) -> Result<(), VeError> {
        let mut full = VeLimits::default();
        for (r, l) in conf_limits(conf)? {
            full.res[r.id as usize] = l;
        }
        limits::apply(self.cg.as_ref(), veid, &full)?;
        match Bpf::ensure(&self.bpf_config()) {
            Ok(mut bpf) => {
                bpf.register_ve(cgid)?;
                let all: Vec<(u32, UbcLimit)> =
                    crate::ubc::ALL.iter().map(|r| (r.id, full.res[r.id as usize])).collect();
                bpf.set_limits(cgid, &all)?;
                Ok(())
            }
            Err(
                e @ (BpfError::NotPrivileged { .. }
                | BpfError::NoBpfSyscall
                | BpfError::BpfDenied
                | BpfError::ProgramRejected { .. }),
            ) => {
                warn!("beancounters are not enforced for container {veid}: {e}");
                eprintln!("Warning: beancounters are not enforced: {e}");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A running VE's usage and limits, with the controller-kept rows filled in from the
    /// kernel controllers. `bpf` is an open handle on the pins (None: limits from config).
    pub fn ubc_record(&self, veid: u32, bpf: Option<&Bpf>) -> Option<(VeUsage, VeLimits)> {
        let cgid = self.cg.ve_id(veid).ok()?;
        let (mut usage, lim) = match bpf.and_then(|b| Some((b.usage(cgid).ok()?, b.limits(cgid).ok()?))) {
            Some(x) => x,
            None => {
                let mut l = VeLimits::default();
                for (r, v) in self.conf(veid).ok().map(|c| conf_limits(&c)).and_then(Result::ok).unwrap_or_default() {
                    l.res[r.id as usize] = v;
                }
                (VeUsage::default(), l)
            }
        };
        for r in crate::ubc::ALL {
            if let Some(u) = limits::usage(r, self.cg.as_ref(), veid) {
                usage.res[r.id as usize] = u;
            }
        }
        // numfile: an iterator snapshot, exact now; no hook gives its peak or refusals.
        if let Some(n) = bpf.and_then(|b| b.files_of(cgid)) {
            usage.res[vz_common::res::NUMFILE as usize] = vz_common::UbcUsage { held: n, maxheld: n, failcnt: 0 };
        }
        // privvmpages, lockedpages: sizes of the VE's accounted / mlocked mappings.
        if let Some([privvm, locked]) = bpf.and_then(|b| b.vms_of(cgid)) {
            usage.res[vz_common::res::PRIVVMPAGES as usize] =
                vz_common::UbcUsage { held: privvm, maxheld: privvm, failcnt: 0 };
            usage.res[vz_common::res::LOCKEDPAGES as usize] =
                vz_common::UbcUsage { held: locked, maxheld: locked, failcnt: 0 };
            // vmguarpages guarantees allocations up to its barrier: what it covers is the
            // VE's private virtual memory.
            usage.res[vz_common::res::VMGUARPAGES as usize] =
                vz_common::UbcUsage { held: privvm, maxheld: privvm, failcnt: 0 };
        }
        if let Some(init) = ns::find_init(self.cg.as_ref(), veid) {
            use vz_common::res::{DGRAMRCVBUF, NUMSIGINFO, OTHERSOCKBUF, TCPRCVBUF, TCPSNDBUF};
            // Socket buffers: snapshots from the socket iterators, run in the VE's netns.
            let read = bpf.map(|b| b.pins.root.clone()).and_then(|root| {
                ns::in_ve_net(init, move || Ok(Bpf::socket_buffers(&root)?.map(|b| (b, ns::rcvbuf_drops())))).ok()
            });
            if let Some(Some((bufs, (tcp_drops, udp_errors)))) = read {
                for (r, held) in [TCPSNDBUF, TCPRCVBUF, OTHERSOCKBUF, DGRAMRCVBUF].into_iter().zip(bufs) {
                    let u = &mut usage.res[r as usize];
                    u.held = held;
                    u.maxheld = held;
                }
                // Refusals of receive buffer the VE met: vz_setsockopt's cuts, plus the
                // packets its namespace dropped for a full receive buffer.
                usage.res[TCPRCVBUF as usize].failcnt += tcp_drops;
                // The namespace counter and the open sockets' own drop counts overlap;
                // take the larger (a socket's drops leave with it).
                usage.res[DGRAMRCVBUF as usize].failcnt += udp_errors.max(bufs[4]);
            }
            // numsiginfo: queued signals now; failcnt from the tp_btf program.
            let held = ns::queued_signals(&self.cg.procs(veid));
            let u = &mut usage.res[NUMSIGINFO as usize];
            u.held = held;
            u.maxheld = held;
        }
        Some((usage, lim))
    }

    /// The report rows of a running VE: every beancounter with real figures on this host.
    pub fn ubc_rows(&self, veid: u32, bpf: Option<&Bpf>) -> Result<Vec<Row>, VeError> {
        let record = self.ubc_record(veid, bpf).ok_or(VeError::NotRunning(veid))?;
        Ok(self.rows_of(veid, bpf, record))
    }

    /// The report rows of a record from `ubc_record`: every beancounter with real figures
    /// on this host.
    pub fn rows_of(&self, veid: u32, bpf: Option<&Bpf>, (usage, lim): (VeUsage, VeLimits)) -> Vec<Row> {
        crate::ubc::ALL
            .iter()
            .filter_map(|r| {
                let mechanism = limits::mechanism(r, self.cg.as_ref(), veid)?;
                let needs_bpf = matches!(
                    mechanism,
                    Mechanism::Bpf
                        | Mechanism::IterAccounted
                        | Mechanism::MemcgSock
                        | Mechanism::BpfClamp
                        | Mechanism::Rlimit
                        | Mechanism::BpfAccounted
                );
                if needs_bpf && bpf.is_none() {
                    return None;
                }
                if matches!(mechanism, Mechanism::MemcgSock | Mechanism::BpfClamp)
                    && !bpf.is_some_and(|b| b.pins.link(vz_common::progs::ITER_TCP).exists())
                {
                    return None;
                }
                if mechanism == Mechanism::BpfAccounted
                    && !bpf.is_some_and(|b| b.pins.link(vz_common::progs::DCACHE_FREE).exists())
                {
                    return None;
                }
                if mechanism == Mechanism::IterAccounted {
                    let have = match r.id {
                        vz_common::res::NUMFILE => bpf.and_then(|b| b.files_of(0)).is_some(),
                        _ => bpf.and_then(|b| b.vms_of(0)).is_some(),
                    };
                    if !have {
                        return None;
                    }
                }
                Some(Row {
                    row: crate::ubc::UbcRow {
                        resource: r,
                        usage: usage.res[r.id as usize],
                        limit: lim.res[r.id as usize],
                    },
                    mechanism,
                })
            })
            .collect()
    }

    /// Removes what a stopped (or half-started, or killed) VE left: its processes, cgroups,
    /// BPF records and the VE_ROOT mount.
    fn cleanup_runtime(&self, veid: u32, root: &Path) -> Result<(), VeError> {
        if !self.cg.procs(veid).is_empty() {
            self.cg.kill_all(veid);
            self.wait_empty(veid, Duration::from_secs(10));
        }
        if let Ok(id) = self.cg.ve_id(veid) {
            if let Err(e) = crate::net::teardown(id) {
                warn!(veid, "cannot remove the VE's network pair: {e}");
            }
            // Bridged interfaces the VE runs with (live) or is configured with; each is
            // removed only if it is one vzctl made for this VE.
            let mut netifs = Vec::new();
            for c in [self.live_conf(veid).ok(), self.conf(veid).ok()].into_iter().flatten() {
                for n in crate::net::parse_netifs(c.get("NETIF").unwrap_or("")).unwrap_or_default() {
                    if !netifs.iter().any(|m: &crate::net::NetIf| m.host_ifname == n.host_ifname) {
                        netifs.push(n);
                    }
                }
            }
            for n in netifs {
                if let Err(e) = crate::net::del_netif(&n.host_ifname) {
                    warn!(veid, "cannot remove interface {}: {e}", n.host_ifname);
                }
            }
            if let Ok(mut bpf) = Bpf::open_existing(&self.paths.bpf_root) {
                // Cleanup goes on regardless: a stale record only costs map space.
                bpf.detach_venet(&crate::net::host_ifname(id));
                if let Err(e) = bpf.unregister_ve(id) {
                    warn!(veid, "cannot drop beancounter records: {e}");
                }
            }
        }
        self.cg.remove_ve(veid)?;
        if is_mounted(root) {
            umount(root)?;
        }
        let _ = fs::remove_file(self.live_path(veid));
        Ok(())
    }

    fn wait_empty(&self, veid: u32, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.cg.procs(veid).is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.cg.procs(veid).is_empty()
    }

    /// `vzctl start`: mount, cgroups, beancounters, then the template's init in new
    /// namespaces. Any failure undoes every step made; a vzctl killed half-way leaves an
    /// intent the next command finds, and it stops what was started.
    pub fn start(&self, veid: u32) -> Result<(), VeError> {
        let _lock = self.lock(veid)?;
        let mut conf = self.conf(veid)?;
        if self.is_running(veid) {
            return Err(VeError::Running(veid));
        }
        println!("Starting container...");
        let root = self.root_of(veid, &conf);
        // Leftovers of a start or stop that was killed half-way.
        self.cleanup_runtime(veid, &root)?;
        let intent = Intent::begin(&self.paths.lock_dir, veid, "starting", &ConfFile::default())?;
        let mut undo = Undo::new(self);
        self.step("start:mount")?;
        if self.do_mount(veid, &conf)? {
            undo.umount(root.clone());
        }
        println!("Container is mounted");
        let (uid, gid) = self.own_ids(veid, &mut conf, &root)?;
        self.step("start:cgroup")?;
        let created = self.cg.create_ve(veid);
        undo.cgroup(veid);
        let cgid = created?;
        self.step("start:ubc")?;
        self.apply_ubc(veid, cgid, &conf)?;
        crate::cpu::apply(self.cg.as_ref(), veid, &conf_cpu(&conf)?)?;
        self.apply_io(veid, cgid, &root, &conf_io(&conf)?)?;
        undo.bpf(cgid, self.paths.bpf_root.clone());
        self.step("start:hostname")?;
        let hostname = self.hostname(veid, &conf, &root);
        if let Err(e) = self.write_resolver(&root, &conf) {
            warn!(veid, "cannot write /etc/resolv.conf: {e}");
            eprintln!("Warning: cannot write the container's /etc/resolv.conf: {e}");
        }
        self.step("start:init")?;
        let mut full = VeLimits::default();
        for (r, l) in conf_limits(&conf)? {
            full.res[r.id as usize] = l;
        }
        let spec = InitSpec {
            root: root.clone(),
            hostname,
            argv: vec!["/sbin/init".into()],
            uid_base: uid,
            gid_base: gid,
            relay: false,
            pty_max: limits::pty_max(&full),
            shm_bytes: limits::shm_pages_limit(&full).map(|p| p.saturating_mul(crate::ubc::PAGE_SIZE)),
        };
        // numsiginfo: init inherits this process's RLIMIT_SIGPENDING, so set it here; the
        // hard limit cannot be raised again from inside the VE (that needs host
        // CAP_SYS_RESOURCE).
        if let Some((mut soft, mut hard)) = limits::sigpending(&full) {
            if let Some(now) = ns::sigpending_of(std::process::id() as i32) {
                // Without CAP_SYS_RESOURCE the hard limit cannot go above this process's.
                if hard > now.rlim_max && ns::set_sigpending(0, Some((soft, hard))).is_err() {
                    let w = format!("numsiginfo {hard} is above what this host's root may grant (RLIMIT_SIGPENDING {}; no CAP_SYS_RESOURCE): using {}", now.rlim_max, now.rlim_max);
                    warn!(veid, "{w}");
                    eprintln!("Warning: {w}");
                    hard = now.rlim_max;
                    soft = soft.min(hard);
                }
            }
            ns::set_sigpending(0, Some((soft, hard)))
                .map_err(|e| VeError::Exec(format!("cannot set numsiginfo (RLIMIT_SIGPENDING): {e}")))?;
        }
        let started = ns::start_init(&spec, self.cg.as_ref(), veid);
        undo.kill(veid);
        let started = started?;
        if let Some(pages) = limits::shm_pages_limit(&full) {
            ns::set_shmall(started.pid, pages, uid)?;
        }
        self.step("start:net")?;
        let ips = conf_ips(&conf)?;
        if !ips.is_empty() {
            crate::net::warn_if_not_forwarding(veid, &ips);
        }
        // The pair, then the programs on its host end (with the VE's addresses, rules and
        // rate in their maps), then up: nothing passes unchecked or uncounted.
        let made = crate::net::create_pair(started.pid, cgid).map_err(VeError::from).and_then(|ifindex| {
            self.attach_net(veid, &conf, cgid, ifindex, &ips)?;
            Ok(crate::net::bring_up(started.pid, cgid, &ips)?)
        });
        if let Err(e) = made {
            // A pair or shaper made before the failure would outlive the VE on the host.
            let _ = crate::net::teardown(cgid);
            return Err(e);
        }
        let netifs = crate::net::parse_netifs(conf.get("NETIF").unwrap_or(""))?;
        for (i, n) in netifs.iter().enumerate() {
            if let Err(e) = crate::net::add_netif(started.pid, n) {
                let _ = crate::net::teardown(cgid);
                for m in &netifs[..i] {
                    let _ = crate::net::del_netif(&m.host_ifname);
                }
                return Err(e.into());
            }
        }
        // What runs now, for `set` to change and roll back from.
        conf.write_runtime(&self.live_path(veid))?;
        self.step("start:done")?;
        undo.commit();
        intent.done();
        info!(veid, init = started.pid, "container started");
        println!("Container start in progress...");
        Ok(())
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

    /// The VE's id range. A VE made before ranges were per VE shares vz.conf's with every
    /// other such VE: the first to start keeps it, any other gets a fresh one and its files
    /// move to it (the VE is stopped and its root mounted). Recorded in its config.
    fn own_ids(&self, veid: u32, conf: &mut ConfFile, root: &Path) -> Result<(u32, u32), VeError> {
        const MOVING: &str = "LOCAL_IDS_MOVED_FROM";
        let ids = self.ve_ids(conf);
        let moving = conf.get(MOVING).and_then(|v| {
            let (u, g) = v.split_once(':')?;
            Some((u.parse::<u32>().ok()?, g.parse::<u32>().ok()?))
        });
        if conf.get("LOCAL_UID").is_some() && conf.get("LOCAL_GID").is_some() && moving.is_none() {
            return Ok(ids);
        }
        let (old, new) = match moving {
            // A move that was interrupted: finished (only ids still in the old range move).
            Some(old) => (old, ids),
            None => {
                let _idmap = VeLock::global(&self.paths.lock_dir, "idmap")?;
                let shared = self.ranges_in_use(veid).iter().any(|(u, g)| {
                    let near =
                        |a: u32, b: u32| u64::from(a.max(b)) < u64::from(a.min(b)) + u64::from(crate::idmap::RANGE);
                    near(*u, ids.0) || near(*g, ids.1)
                });
                let new = if shared { self.allocate_ids(veid)? } else { ids };
                conf.set("LOCAL_UID", &new.0.to_string());
                conf.set("LOCAL_GID", &new.1.to_string());
                if new != ids {
                    conf.set(MOVING, &format!("{}:{}", ids.0, ids.1));
                }
                conf.write_atomic(&self.paths.ve_conf(veid))?;
                (ids, new)
            }
        };
        if new != old {
            println!("Moving container {veid} to host ids {}-{} of its own", new.0, new.0 + (crate::idmap::RANGE - 1));
            let map =
                |u: u32, g: u32| (crate::idmap::moved_id(u, old.0, new.0), crate::idmap::moved_id(g, old.1, new.1));
            crate::idmap::chown_tree(root, &map).map_err(io_err("move ids of", root))?;
            conf.remove(MOVING);
            conf.write_atomic(&self.paths.ve_conf(veid))?;
        }
        Ok(new)
    }

    /// Gives the venet programs a starting VE: its addresses (bind and anti-spoofing), rules
    /// and rate in their maps, and the programs on the pair's host end. Skipped where BPF
    /// is unavailable (reported with the beancounters; a rate limit is reported here).
    fn attach_net(
        &self,
        veid: u32,
        conf: &ConfFile,
        cgid: u64,
        ifindex: u32,
        ips: &[std::net::IpAddr],
    ) -> Result<(), VeError> {
        let rate = crate::net::parse_rate(conf.get("RATE").unwrap_or("0"))?;
        let Ok(mut bpf) = Bpf::open_existing(&self.paths.bpf_root) else {
            if rate.is_some() {
                warn!(veid, "no BPF: the rate limit is not enforced");
                eprintln!("Warning: BPF is unavailable: the rate limit of container {veid} is not enforced");
            }
            return Ok(());
        };
        // Its venet0's link-local address too: the one link-local source it may send from
        // beyond neighbour discovery.
        let mut own = ips.to_vec();
        own.push(crate::net::link_local(crate::net::ve_mac(cgid)));
        bpf.set_ve_addrs(cgid, &own, None)?;
        let rules = crate::netfilter::parse_rules(&[conf.get("NETFILTER").unwrap_or("")])?;
        bpf.set_net_rules(cgid, &rules)?;
        set_rate(&mut bpf, cgid, rate)?;
        Ok(bpf.attach_venet(&crate::net::host_ifname(cgid), cgid, ifindex)?)
    }

    /// Writes the VE's /etc/hostname and its /etc/hosts line for `hostname`, as the VE's
    /// root's files (see `inroot`: nothing the VE planted is followed or opened).
    pub(crate) fn write_names(&self, root: &Path, conf: &ConfFile, hostname: &str) -> io::Result<()> {
        let (uid, gid) = self.ve_ids(conf);
        let dir = inroot::host_dir(root)?;
        let previous = inroot::read_small(&dir, "etc/hostname", VE_FILE_MAX).ok().map(|s| s.trim().to_string());
        inroot::replace_file(&dir, "etc/hostname", format!("{hostname}\n").as_bytes(), 0o644, uid, gid)?;
        let old = inroot::read_small(&dir, "etc/hosts", VE_FILE_MAX).unwrap_or_default();
        let ip = conf_ips(conf).ok().and_then(|v| v.first().copied());
        let text = hosts_file(&old, previous.as_deref(), hostname, ip);
        inroot::replace_file(&dir, "etc/hosts", text.as_bytes(), 0o644, uid, gid)
    }

    /// Writes the VE's /etc/resolv.conf from NAMESERVER and SEARCHDOMAIN (when set).
    pub(crate) fn write_resolver(&self, root: &Path, conf: &ConfFile) -> io::Result<()> {
        let servers: Vec<&str> = conf.get("NAMESERVER").unwrap_or("").split_whitespace().collect();
        let search: Vec<&str> = conf.get("SEARCHDOMAIN").unwrap_or("").split_whitespace().collect();
        if servers.is_empty() && search.is_empty() {
            return Ok(());
        }
        let (uid, gid) = self.ve_ids(conf);
        let dir = inroot::host_dir(root)?;
        let old = inroot::read_small(&dir, "etc/resolv.conf", VE_FILE_MAX).unwrap_or_default();
        inroot::replace_file(&dir, "etc/resolv.conf", resolv_conf(&old, &search, &servers).as_bytes(), 0o644, uid, gid)
    }

    /// The VE's hostname: HOSTNAME from its config, else its /etc/hostname, else localhost.
    /// A configured name is also written to the VE's /etc/hostname.
    fn hostname(&self, veid: u32, conf: &ConfFile, root: &Path) -> String {
        match conf.get("HOSTNAME") {
            Some(h) if valid_hostname(h) => {
                if let Err(e) = self.write_names(root, conf, h) {
                    warn!(veid, "cannot write the VE's name files: {e}");
                    eprintln!("Warning: cannot write the container's /etc/hostname or /etc/hosts: {e}");
                }
                h.to_string()
            }
            _ => inroot::host_dir(root)
                .and_then(|d| inroot::read_small(&d, "etc/hostname", VE_FILE_MAX))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|h| valid_hostname(h))
                .unwrap_or_else(|| "localhost".into()),
        }
    }

    /// `vzctl stop`: ask init to halt, wait STOP_TIMEOUT, then kill whatever is left; then
    /// remove cgroups, BPF records and the mount. `fast` kills at once, and does so even
    /// while another vzctl holds the VE's lock: the VE always stops; the cleanup then
    /// waits for the lock a bounded time (else the next command does it).
    pub fn stop(&self, veid: u32, fast: bool) -> Result<(), VeError> {
        let killed_first = fast && {
            self.conf(veid)?;
            self.is_running(veid)
        };
        if killed_first {
            println!("Stopping container ...");
            self.cg.kill_all(veid);
            self.wait_empty(veid, KILL_WAIT);
        }
        let _lock = if fast {
            match VeLock::take_within(&self.paths.lock_dir, veid, FAST_LOCK_WAIT)? {
                Some(l) => {
                    self.repair(veid);
                    l
                }
                None if killed_first => {
                    let who =
                        VeLock::holder(&self.paths.lock_dir, veid).map(|p| format!(" (pid {p})")).unwrap_or_default();
                    warn!(veid, "stopped; cleanup left to the vzctl holding the lock{who}");
                    println!("Container was stopped");
                    eprintln!("Warning: another vzctl{who} holds container {veid}'s lock: its mount and cgroups are removed by the next command");
                    return Ok(());
                }
                None => {
                    return Err(LockError::Busy {
                        veid,
                        holder: VeLock::holder(&self.paths.lock_dir, veid),
                        secs: FAST_LOCK_WAIT.as_secs(),
                    }
                    .into())
                }
            }
        } else {
            self.lock(veid)?
        };
        let conf = self.conf(veid)?;
        let root = self.root_of(veid, &conf);
        let running = killed_first || self.is_running(veid);
        if running && !killed_first {
            println!("Stopping container ...");
            if !fast {
                let timeout = Duration::from_secs(u64::from(self.paths.stop_timeout));
                self.halt(veid, timeout);
                if !self.wait_empty(veid, timeout) {
                    warn!(veid, "init did not halt within {} s; killing", self.paths.stop_timeout);
                    println!("Killing container ...");
                }
            }
        }
        self.cleanup_runtime(veid, &root)?;
        if running {
            println!("Container was stopped");
            println!("Container is unmounted");
            Ok(())
        } else {
            Err(VeError::NotRunning(veid))
        }
    }

    /// Asks the VE's init to halt: runs the VE's own `halt` (for at most `timeout`: the
    /// VE's /bin/sh may never return), else signals init (SIGPWR for sysvinit and busybox
    /// alike).
    fn halt(&self, veid: u32, timeout: Duration) {
        let Some(init) = ns::find_init(self.cg.as_ref(), veid) else { return };
        let argv = vec!["/bin/sh".to_string(), "-c".into(), "exec halt".into()];
        let ran = (|| {
            let p = relay::pipes().ok()?;
            let [cin, cout, cerr] = p.child;
            let mut cmd = ns::command_in_ve(self.cg.as_ref(), veid, init, &argv, false).ok()?;
            cmd.stdin(Stdio::from(cin)).stdout(Stdio::from(cout)).stderr(Stdio::from(cerr));
            let mut child = cmd.spawn().ok()?;
            drop((cmd, p.ours));
            let done = relay::pidfd(child.id() as i32).ok().is_some_and(|fd| wait_fd(&fd, timeout));
            if !done {
                warn!(veid, "the container's halt did not return within {} s", timeout.as_secs());
                let _ = child.kill();
            }
            child.wait().ok().filter(|_| done)
        })();
        if !ran.is_some_and(|s| s.success()) {
            // SAFETY: signalling the VE's init by its host pid.
            unsafe { libc::kill(init, libc::SIGPWR) };
        }
    }

    pub fn restart(&self, veid: u32) -> Result<(), VeError> {
        println!("Restarting container");
        match self.stop(veid, false) {
            Ok(()) | Err(VeError::NotRunning(_)) => {}
            Err(e) => return Err(e),
        }
        self.start(veid)
    }

    fn running_init(&self, veid: u32) -> Result<i32, VeError> {
        self.conf(veid)?;
        self.repair_if_idle(veid);
        ns::find_init(self.cg.as_ref(), veid).ok_or(VeError::NotRunning(veid))
    }

    /// Runs `argv` inside a running VE with its stdio relayed through pipes (see
    /// `relay`); returns its exit code.
    pub fn exec_argv(&self, veid: u32, argv: &[String], input: relay::Input) -> Result<i32, VeError> {
        let init = self.running_init(veid)?;
        let p = relay::pipes().map_err(io_err("pipe", Path::new("exec")))?;
        let [cin, cout, cerr] = p.child;
        let mut cmd = ns::command_in_ve(self.cg.as_ref(), veid, init, argv, false)?;
        cmd.stdin(Stdio::from(cin)).stdout(Stdio::from(cout)).stderr(Stdio::from(cerr));
        let mut child = cmd.spawn().map_err(|e| VeError::Exec(format!("{}: {e}", argv[0])))?;
        // Our copies of the command's ends must go, or its pipes never reach end of file.
        drop(cmd);
        let pidfd = relay::pidfd(child.id() as i32).map_err(|e| VeError::Exec(format!("pidfd: {e}")))?;
        let [win, rout, rerr] = p.ours;
        relay::relay(&pidfd, Some(win), rout, rerr, input);
        let status = child.wait().map_err(|e| VeError::Exec(format!("{}: {e}", argv[0])))?;
        Ok(status.code().unwrap_or(255))
    }

    /// `vzctl exec` / `exec2`: the command line runs through the VE's /bin/sh.
    pub fn exec(&self, veid: u32, command: &[String]) -> Result<i32, VeError> {
        let line = command.join(" ");
        let argv = vec!["/bin/sh".to_string(), "-c".into(), line];
        self.exec_argv(veid, &argv, relay::Input::Stdin)
    }

    /// `vzctl enter`: an interactive shell on a pseudo-terminal of the VE's own devpts,
    /// relayed to this terminal. `exec` is typed into the shell first.
    pub fn enter(&self, veid: u32, exec: Option<&str>) -> Result<i32, VeError> {
        let init = self.running_init(veid)?;
        let (master, slave) = ns::ve_pty(init)?;
        let argv = vec!["/bin/sh".to_string(), "-l".into()];
        let mut cmd = ns::command_in_ve(self.cg.as_ref(), veid, init, &argv, true)?;
        let dup = |f: &std::os::fd::OwnedFd| f.try_clone().map(Stdio::from).map_err(io_err("dup", Path::new("pty")));
        cmd.stdin(dup(&slave)?).stdout(dup(&slave)?).stderr(Stdio::from(slave));
        eprintln!("entered into container {veid}");
        let child = cmd.spawn().map_err(|e| VeError::Exec(format!("/bin/sh: {e}")))?;
        // Our copies of the terminal's slave side must go, or the relay never sees EOF.
        drop(cmd);
        let code = crate::pty::relay(master, child, exec).map_err(|e| VeError::Exec(e.to_string()))?;
        eprintln!("exited from container {veid}");
        Ok(code)
    }

    /// `vzctl runscript`: a host script run by the VE's /bin/sh, fed through a pipe (the
    /// VE never gets the host file). A stopped VE is not started: the script runs as PID 1
    /// of a temporary VE on its mounted root.
    pub fn runscript(&self, veid: u32, script: &Path) -> Result<i32, VeError> {
        let text = fs::read(script).map_err(io_err("read", script))?;
        let _lock = self.lock(veid)?;
        let conf = self.conf(veid)?;
        if ns::find_init(self.cg.as_ref(), veid).is_some() {
            let argv = vec!["/bin/sh".to_string(), "-s".into()];
            return self.exec_argv(veid, &argv, relay::Input::Bytes(text));
        }
        let root = self.root_of(veid, &conf);
        self.cleanup_runtime(veid, &root)?;
        let mut undo = Undo::new(self);
        if self.do_mount(veid, &conf)? {
            undo.umount(root.clone());
        }
        let created = self.cg.create_ve(veid);
        undo.cgroup(veid);
        created?;
        undo.kill(veid);
        let hostname = self.hostname(veid, &conf, &root);
        let (uid, gid) = self.ve_ids(&conf);
        let r = run_script_as_init(self, veid, &root, hostname, (uid, gid), text);
        drop(undo);
        r
    }
}

/// Runs a script as PID 1 of a temporary VE (namespaces on the VE's root, no init),
/// relaying its output, and waits for it; used by runscript on a stopped VE.
fn run_script_as_init(
    vz: &Vz,
    veid: u32,
    root: &Path,
    hostname: String,
    (uid, gid): (u32, u32),
    script: Vec<u8>,
) -> Result<i32, VeError> {
    // The script's shell is our grandchild: be its subreaper so we can wait for it.
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let spec = InitSpec {
        root: root.to_path_buf(),
        hostname,
        argv: vec!["/bin/sh".into(), "-s".into()],
        uid_base: uid,
        gid_base: gid,
        relay: true,
        pty_max: None,
        shm_bytes: None,
    };
    let started = ns::start_init(&spec, vz.cg.as_ref(), veid)?;
    let pidfd = relay::pidfd(started.pid).map_err(|e| VeError::Exec(format!("pidfd: {e}")))?;
    if let Some([win, rout, rerr]) = started.stdio {
        relay::relay(&pidfd, Some(win), rout, rerr, relay::Input::Bytes(script));
    }
    let mut st = 0;
    // SAFETY: waiting for the script shell, reparented to us.
    while unsafe { libc::waitpid(started.pid, &mut st, 0) } < 0 {
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(VeError::Exec(format!("wait: {}", io::Error::last_os_error())));
        }
    }
    Ok(if libc::WIFEXITED(st) { libc::WEXITSTATUS(st) } else { 128 + libc::WTERMSIG(st) })
}

/// Waits until `fd` (a pidfd) is readable, at most `timeout`.
fn wait_fd(fd: &OwnedFd, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n > 0 {
            return true;
        }
        if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// The most vzctl reads of a VE's name and resolver files (a VE may make them huge).
const VE_FILE_MAX: u64 = 1 << 20;
/// How long `stop --fast` waits for the processes it killed to be gone.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long `stop --fast` waits for the lock after killing the VE.
const FAST_LOCK_WAIT: Duration = Duration::from_secs(10);

/// /etc/hosts with the VE's own line: `IP fqdn short` (IP: its first address, else
/// 127.0.1.1), replacing any line that named the previous or the new host name; a
/// localhost line is kept or added.
pub fn hosts_file(old: &str, previous: Option<&str>, hostname: &str, ip: Option<std::net::IpAddr>) -> String {
    let short = hostname.split('.').next().unwrap_or(hostname);
    let named = |n: &str| {
        n == hostname || (n == short && short != "localhost") || Some(n) == previous.filter(|p| *p != "localhost")
    };
    let mut out = String::new();
    let mut localhost = false;
    for line in old.lines() {
        let names: Vec<&str> = line.split('#').next().unwrap_or("").split_whitespace().skip(1).collect();
        if names.iter().any(|n| named(n)) {
            continue;
        }
        localhost |= names.contains(&"localhost");
        out.push_str(line);
        out.push('\n');
    }
    if !localhost {
        out.insert_str(0, "127.0.0.1\tlocalhost\n");
    }
    let ip = ip.map_or_else(|| "127.0.1.1".to_string(), |i| i.to_string());
    if short == hostname {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    } else {
        out.push_str(&format!("{ip}\t{hostname} {short}\n"));
    }
    out
}

/// /etc/resolv.conf with the given search domains and name servers, other lines kept.
pub fn resolv_conf(old: &str, search: &[&str], servers: &[&str]) -> String {
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for l in old.lines() {
        let key = l.split_whitespace().next().unwrap_or("");
        let drop = (key == "nameserver" && !servers.is_empty())
            || ((key == "search" || key == "domain") && !search.is_empty());
        if !drop {
            out.push_str(l);
            out.push('\n');
        }
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out
}

fn cpath(p: &Path) -> Result<std::ffi::CString, VeError> {
    use std::os::unix::ffi::OsStrExt as _;
    std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|e| VeError::Io {
        op: "path",
        path: p.into(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })
}

/// VE_ROOT of a simfs VE: its private area, as the host sees it nosuid,nodev (a VE's
/// setuid files are never the host's; the VE's own mount of its root clears both inside).
fn bind_mount(src: &Path, dst: &Path) -> Result<(), VeError> {
    let (s, d) = (cpath(src)?, cpath(dst)?);
    // SAFETY: NUL-terminated paths.
    if unsafe { libc::mount(s.as_ptr(), d.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) } != 0 {
        return Err(io_err("bind-mount", dst)(io::Error::last_os_error()));
    }
    let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV;
    // SAFETY: NUL-terminated path.
    if unsafe { libc::mount(std::ptr::null(), d.as_ptr(), std::ptr::null(), flags, std::ptr::null()) } != 0 {
        let e = io::Error::last_os_error();
        // SAFETY: undo the bind just made.
        unsafe { libc::umount2(d.as_ptr(), libc::MNT_DETACH) };
        return Err(io_err("remount nosuid,nodev", dst)(e));
    }
    // Private, so the VE's mounts never propagate back to the host.
    // SAFETY: as above.
    unsafe { libc::mount(std::ptr::null(), d.as_ptr(), std::ptr::null(), libc::MS_PRIVATE, std::ptr::null()) };
    Ok(())
}

fn umount(dst: &Path) -> Result<(), VeError> {
    let d = cpath(dst)?;
    // SAFETY: NUL-terminated path.
    if unsafe { libc::umount2(d.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(io_err("umount", dst)(io::Error::last_os_error()));
    }
    Ok(())
}

/// Steps to undo if a command fails before `commit`, run in reverse order on drop.
struct Undo<'a> {
    vz: &'a Vz,
    actions: Vec<UndoStep>,
    committed: bool,
}

enum UndoStep {
    Dir(PathBuf),
    File(PathBuf),
    Umount(PathBuf),
    Cgroup(u32),
    Bpf(u64, PathBuf),
    Kill(u32),
}

impl<'a> Undo<'a> {
    fn new(vz: &'a Vz) -> Self {
        Self { vz, actions: Vec::new(), committed: false }
    }
    fn dir(&mut self, p: PathBuf) {
        self.actions.push(UndoStep::Dir(p));
    }
    fn file(&mut self, p: PathBuf) {
        self.actions.push(UndoStep::File(p));
    }
    fn umount(&mut self, p: PathBuf) {
        self.actions.push(UndoStep::Umount(p));
    }
    fn cgroup(&mut self, veid: u32) {
        self.actions.push(UndoStep::Cgroup(veid));
    }
    fn bpf(&mut self, cgid: u64, pins: PathBuf) {
        self.actions.push(UndoStep::Bpf(cgid, pins));
    }
    fn kill(&mut self, veid: u32) {
        self.actions.push(UndoStep::Kill(veid));
    }
    fn commit(&mut self) {
        self.committed = true;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let cg = Some(&self.vz.cg);
        for a in self.actions.drain(..).rev() {
            match a {
                UndoStep::Dir(p) => {
                    let _ = fs::remove_dir_all(p);
                }
                UndoStep::File(p) => {
                    let _ = fs::remove_file(p);
                }
                UndoStep::Umount(p) => {
                    let _ = umount(&p);
                }
                UndoStep::Cgroup(v) => {
                    if let Some(cg) = &cg {
                        let _ = cg.remove_ve(v);
                    }
                }
                UndoStep::Bpf(id, pins) => {
                    if let Ok(mut b) = Bpf::open_existing(&pins) {
                        b.detach_venet(&crate::net::host_ifname(id));
                        let _ = b.unregister_ve(id);
                    }
                }
                UndoStep::Kill(v) => {
                    if let Some(cg) = &cg {
                        cg.kill_all(v);
                        let end = Instant::now() + Duration::from_secs(5);
                        while !cg.procs(v).is_empty() && Instant::now() < end {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod name_file_tests {
    use super::{hosts_file, resolv_conf};

    #[test]
    fn hosts_gets_one_line_for_the_ve_and_keeps_the_rest() {
        let old = "127.0.0.1\tlocalhost\n10.0.0.5\told.example.com old\n::1 ip6-localhost\n";
        let ip = "10.77.0.1".parse().ok();
        assert_eq!(
            hosts_file(old, Some("old.example.com"), "ve1.example.com", ip),
            "127.0.0.1\tlocalhost\n::1 ip6-localhost\n10.77.0.1\tve1.example.com ve1\n"
        );
        // The previous name's line goes (also under a new name); no localhost line gets one.
        let again = hosts_file(&hosts_file("", None, "ve1.example.com", ip), Some("ve1.example.com"), "ve2", None);
        assert_eq!(again, "127.0.0.1\tlocalhost\n127.0.1.1\tve2\n");
    }

    #[test]
    fn resolv_conf_replaces_servers_and_search_only() {
        let old = "nameserver 8.8.8.8\noptions ndots:2\nsearch old.example\n";
        assert_eq!(
            resolv_conf(old, &["example.com"], &["10.0.0.1", "10.0.0.2"]),
            "search example.com\noptions ndots:2\nnameserver 10.0.0.1\nnameserver 10.0.0.2\n"
        );
        // Only servers given: the search line stays.
        assert_eq!(resolv_conf(old, &[], &["1.1.1.1"]), "options ndots:2\nsearch old.example\nnameserver 1.1.1.1\n");
    }
}
