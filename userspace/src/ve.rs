//! The VE lifecycle: create, mount, start, stop, destroy, exec, enter, runscript, set.
//!
//! State is read from the system, not from files vzctl keeps: a VE exists when its config
//! does, is mounted when VE_ROOT is a mount point, and runs when its cgroup holds processes.
//! So a vzctl killed at any point leaves nothing the next command cannot see and finish.
use std::{
    fs, io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
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
    limits::{self, Mechanism},
    lock::{LockError, VeLock},
    ns::{self, InitSpec, NsError},
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

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> VeError + 'a {
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
fn print_cpu(cpu: &crate::cpu::CpuSettings, opts: &SetOpts) {
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
fn print_io(s: &crate::io::IoSettings, opts: &SetOpts) {
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
fn set_rate(bpf: &mut Bpf, cgid: u64, kbit: Option<u64>) -> Result<(), VeError> {
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

fn parse_ugid(v: &str) -> Result<u64, VeError> {
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
# Basic VE: room for a small web or mail server.
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
PHYSPAGES=\"0:9223372036854775807\"
VMGUARPAGES=\"33792:9223372036854775807\"
NUMFILE=\"9312:9312\"
NUMFLOCK=\"188:206\"
NUMPTY=\"16:16\"
NUMSIGINFO=\"256:256\"
DCACHESIZE=\"3409920:3624960\"
NUMIPTENT=\"128:128\"
";

pub const SAMPLE_LIGHT: &str = "\
# Light VE: a few processes, few sockets.
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
PHYSPAGES=\"0:9223372036854775807\"
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

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && !n.bytes().all(|b| b.is_ascii_digit())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 64
        && h.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// The controller: global settings and the host's cgroup layout.
pub struct Vz {
    pub paths: Paths,
    pub cg: Box<dyn Cgroups>,
}

impl Vz {
    pub fn new(paths: Paths) -> Result<Self, VeError> {
        let cg = cgroup::detect(&paths.cgroup_parent)?;
        Ok(Self { paths, cg })
    }

    /// Test seam: `VZ_FAIL_AT=<step>` makes a lifecycle command fail at that step, so tests
    /// can prove each step's rollback.
    fn step(&self, name: &str) -> Result<(), VeError> {
        tracing::trace!(step = name, "step");
        match std::env::var("VZ_FAIL_AT") {
            Ok(s) if s == name => Err(VeError::Injected(name.into())),
            _ => Ok(()),
        }
    }

    pub fn lock(&self, veid: u32) -> Result<VeLock, VeError> {
        Ok(VeLock::take(&self.paths.lock_dir, veid)?)
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
    fn netif_owner(&self, host_ifname: &str, except: u32) -> Option<u32> {
        self.other_ve(except, |c| {
            crate::net::parse_netifs(c.get("NETIF").unwrap_or(""))
                .is_ok_and(|l| l.iter().any(|n| n.host_ifname == host_ifname))
        })
    }

    /// The other VE whose config holds `ip`, if any.
    fn ip_owner(&self, ip: std::net::IpAddr, except: u32) -> Option<u32> {
        self.other_ve(except, |c| conf_ips(c).is_ok_and(|ips| ips.contains(&ip)))
    }

    /// `--ipadd` addresses for `veid`, each valid and held by no other VE, without repeats.
    fn addable_ips(&self, veid: u32, specs: &[String]) -> Result<Vec<std::net::IpAddr>, VeError> {
        let mut ips = Vec::new();
        for a in specs {
            let ip = crate::net::parse_ip(a)?;
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

    fn check_name_free(&self, name: &str, veid: u32) -> Result<(), VeError> {
        if !valid_name(name) {
            return Err(VeError::BadName(name.into()));
        }
        match self.other_ve(veid, |c| c.get("NAME") == Some(name)) {
            Some(other) => Err(VeError::NameTaken { name: name.into(), veid: other }),
            None => Ok(()),
        }
    }

    /// `vzctl create`: config from a sample, private area from a template. Everything made
    /// is removed again if a later step fails.
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
        if private.exists() {
            return Err(VeError::Io {
                op: "create private area",
                path: private,
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }

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
                template::extract(&archive, &root, self.paths.local_uid, self.paths.local_gid)?;
                say_disk(veid, crate::disk::apply_ploop(&root, Some(space), dconf.inodes)?);
                umount(&root)?;
            }
            _ => {
                template::extract(&archive, &private, self.paths.local_uid, self.paths.local_gid)?;
                say_disk(veid, crate::disk::apply_simfs(&private, veid, dconf.space, dconf.inodes)?);
            }
        }
        self.step("create:root")?;
        self.step("create:config")?;
        conf.write_atomic(&conf_path)?;
        undo.file(conf_path);
        self.step("create:done")?;
        undo.commit();
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
    fn apply_io(&self, veid: u32, cgid: u64, root: &Path, s: &crate::io::IoSettings) -> Result<(), VeError> {
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
    fn set_disk(&self, veid: u32, conf: &ConfFile, d: &DiskConf, opts: &SetOpts) -> Result<(), VeError> {
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
            let netifs = self.conf(veid).ok().and_then(|c| crate::net::parse_netifs(c.get("NETIF").unwrap_or("")).ok());
            for n in netifs.unwrap_or_default() {
                if let Err(e) = crate::net::del_netif(&n.host_ifname) {
                    warn!(veid, "cannot remove interface {}: {e}", n.host_ifname);
                }
            }
            if let Ok(mut bpf) = Bpf::open_existing(&self.paths.bpf_root) {
                // Cleanup goes on regardless: a stale record only costs map space.
                if let Err(e) = bpf.unregister_ve(id) {
                    warn!(veid, "cannot drop beancounter records: {e}");
                }
            }
        }
        self.cg.remove_ve(veid)?;
        if is_mounted(root) {
            umount(root)?;
        }
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
    /// namespaces. Any failure undoes every step made.
    pub fn start(&self, veid: u32) -> Result<(), VeError> {
        let _lock = self.lock(veid)?;
        let conf = self.conf(veid)?;
        if self.is_running(veid) {
            return Err(VeError::Running(veid));
        }
        println!("Starting container...");
        let root = self.root_of(veid, &conf);
        // Leftovers of a start or stop that was killed half-way.
        self.cleanup_runtime(veid, &root)?;
        let mut undo = Undo::new(self);
        self.step("start:mount")?;
        if self.do_mount(veid, &conf)? {
            undo.umount(root.clone());
        }
        println!("Container is mounted");
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
            uid_base: self.paths.local_uid,
            gid_base: self.paths.local_gid,
            stdio: false,
            stdin: None,
            pty_max: limits::pty_max(&full),
            shm_bytes: limits::shm_pages_limit(&full).map(|p| p * crate::ubc::PAGE_SIZE),
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
            ns::set_shmall(started.pid, pages, self.paths.local_uid)?;
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
        self.step("start:done")?;
        undo.commit();
        info!(veid, init = started.pid, "container started");
        println!("Container start in progress...");
        Ok(())
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
        bpf.set_ve_addrs(cgid, ips, None)?;
        let rules = crate::netfilter::parse_rules(&[conf.get("NETFILTER").unwrap_or("")])?;
        bpf.set_net_rules(cgid, &rules)?;
        set_rate(&mut bpf, cgid, rate)?;
        Ok(bpf.attach_venet(&crate::net::host_ifname(cgid), cgid, ifindex)?)
    }

    /// Writes the VE's /etc/hostname and its /etc/hosts line for `hostname`.
    fn write_names(&self, root: &Path, conf: &ConfFile, hostname: &str) -> io::Result<()> {
        let (uid, gid) = (self.paths.local_uid, self.paths.local_gid);
        let previous = read_ve_file(root, "etc/hostname").ok().map(|s| s.trim().to_string());
        write_ve_file(root, "etc/hostname", &format!("{hostname}\n"), uid, gid)?;
        let old = read_ve_file(root, "etc/hosts").unwrap_or_default();
        let ip = conf_ips(conf).ok().and_then(|v| v.first().copied());
        write_ve_file(root, "etc/hosts", &hosts_file(&old, previous.as_deref(), hostname, ip), uid, gid)
    }

    /// Writes the VE's /etc/resolv.conf from NAMESERVER and SEARCHDOMAIN (when set).
    fn write_resolver(&self, root: &Path, conf: &ConfFile) -> io::Result<()> {
        let servers: Vec<&str> = conf.get("NAMESERVER").unwrap_or("").split_whitespace().collect();
        let search: Vec<&str> = conf.get("SEARCHDOMAIN").unwrap_or("").split_whitespace().collect();
        if servers.is_empty() && search.is_empty() {
            return Ok(());
        }
        let old = read_ve_file(root, "etc/resolv.conf").unwrap_or_default();
        write_ve_file(
            root,
            "etc/resolv.conf",
            &resolv_conf(&old, &search, &servers),
            self.paths.local_uid,
            self.paths.local_gid,
        )
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
            _ => read_ve_file(root, "etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|h| valid_hostname(h))
                .unwrap_or_else(|| "localhost".into()),
        }
    }

    /// `vzctl stop`: ask init to halt, wait STOP_TIMEOUT, then kill whatever is left; then
    /// remove cgroups, BPF records and the mount. `fast` skips the halt.
    pub fn stop(&self, veid: u32, fast: bool) -> Result<(), VeError> {
        let _lock = self.lock(veid)?;
        let conf = self.conf(veid)?;
        let root = self.root_of(veid, &conf);
        let running = self.is_running(veid);
        if running {
            println!("Stopping container ...");
            if !fast {
                self.halt(veid);
                if !self.wait_empty(veid, Duration::from_secs(u64::from(self.paths.stop_timeout))) {
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

    /// Asks the VE's init to halt: runs the VE's own `halt`, else signals init (SIGPWR for
    /// sysvinit and busybox alike).
    fn halt(&self, veid: u32) {
        let Some(init) = ns::find_init(self.cg.as_ref(), veid) else { return };
        let argv = vec!["/bin/sh".to_string(), "-c".into(), "exec halt".into()];
        let ran = ns::command_in_ve(self.cg.as_ref(), veid, init, &argv, false)
            .ok()
            .and_then(|mut c| c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().ok());
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
        ns::find_init(self.cg.as_ref(), veid).ok_or(VeError::NotRunning(veid))
    }

    /// Runs `argv` inside a running VE with the given stdio; returns its exit code.
    pub fn exec_argv(&self, veid: u32, argv: &[String], stdin: Stdio) -> Result<i32, VeError> {
        let init = self.running_init(veid)?;
        let status = ns::command_in_ve(self.cg.as_ref(), veid, init, argv, false)?
            .stdin(stdin)
            .status()
            .map_err(|e| VeError::Exec(format!("{}: {e}", argv[0])))?;
        Ok(status.code().unwrap_or(255))
    }

    /// `vzctl exec` / `exec2`: the command line runs through the VE's /bin/sh.
    pub fn exec(&self, veid: u32, command: &[String]) -> Result<i32, VeError> {
        let line = command.join(" ");
        let argv = vec!["/bin/sh".to_string(), "-c".into(), line];
        self.exec_argv(veid, &argv, Stdio::inherit())
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
        let code = crate::pty::relay(master, child, exec)?;
        eprintln!("exited from container {veid}");
        Ok(code)
    }

    /// `vzctl runscript`: a host script run by the VE's /bin/sh. A stopped VE is not
    /// started: the script runs as PID 1 of a temporary VE on its mounted root.
    pub fn runscript(&self, veid: u32, script: &Path) -> Result<i32, VeError> {
        let text = fs::read(script).map_err(io_err("read", script))?;
        let _lock = self.lock(veid)?;
        let conf = self.conf(veid)?;
        let feed = |mut w: std::process::ChildStdin| {
            std::thread::spawn(move || {
                let _ = io::Write::write_all(&mut w, &text);
            })
        };
        if let Some(init) = ns::find_init(self.cg.as_ref(), veid) {
            let argv = vec!["/bin/sh".to_string(), "-s".into()];
            let mut child = ns::command_in_ve(self.cg.as_ref(), veid, init, &argv, false)?
                .stdin(Stdio::piped())
                .spawn()
                .map_err(|e| VeError::Exec(format!("/bin/sh: {e}")))?;
            let t = child.stdin.take().map(feed);
            let st = child.wait().map_err(|e| VeError::Exec(e.to_string()))?;
            if let Some(t) = t {
                let _ = t.join();
            }
            return Ok(st.code().unwrap_or(255));
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
        let r = run_script_as_init(self, veid, &root, hostname, script);
        drop(undo);
        r
    }

    /// `vzctl set`: changes apply to a running VE at once; `save` also writes the config.
    pub fn set(&self, veid: u32, opts: &SetOpts, save: bool) -> Result<(), VeError> {
        let _lock = self.lock(veid)?;
        let mut conf = self.conf(veid)?;
        // Validate everything before changing anything.
        if let Some(h) = &opts.hostname {
            if !valid_hostname(h) {
                return Err(VeError::BadValue { key: "hostname", value: h.clone(), why: "not a valid host name" });
            }
        }
        if let Some(n) = &opts.name {
            self.check_name_free(n, veid)?;
        }
        if let Some(o) = &opts.onboot {
            if o != "yes" && o != "no" {
                return Err(VeError::BadValue { key: "onboot", value: o.clone(), why: "use yes or no" });
            }
        }
        for a in &opts.nameserver {
            crate::net::parse_ip(a)?;
        }
        let rate = opts.rate.as_deref().map(crate::net::parse_rate).transpose()?;
        // CPU: the settings after this set, checked before anything changes.
        let cpu_given =
            opts.cpuunits.is_some() || opts.cpulimit.is_some() || opts.cpus.is_some() || opts.cpumask.is_some();
        let mut cpu = conf_cpu(&conf)?;
        {
            use crate::cpu as c;
            let n = c::host_cpus();
            if let Some(v) = &opts.cpuunits {
                cpu.units = Some(c::parse_units(v)?);
            }
            if let Some(v) = &opts.cpulimit {
                cpu.limit = Some(c::parse_limit(v, n)?);
            }
            if let Some(v) = &opts.cpus {
                cpu.cpus = Some(c::parse_cpus(v, n)?);
            }
            if let Some(v) = &opts.cpumask {
                cpu.mask = c::parse_mask(v, n)?;
            }
        }
        // I/O: likewise.
        let io_given = opts.ioprio.is_some() || opts.iolimit.is_some() || opts.iopslimit.is_some();
        let mut ios = conf_io(&conf)?;
        if let Some(v) = &opts.ioprio {
            ios.prio = Some(crate::io::parse_prio(v)?);
        }
        if let Some(v) = &opts.iolimit {
            ios.limit = Some(crate::io::parse_limit(v)?);
        }
        if let Some(v) = &opts.iopslimit {
            ios.iops = Some(crate::io::parse_iops(v)?);
        }
        // Disk: likewise.
        let disk_given = opts.diskspace.is_some() || opts.diskinodes.is_some() || opts.quotaugidlimit.is_some();
        let mut dconf = conf_disk(&conf)?;
        if let Some(v) = &opts.diskspace {
            dconf.space = Some(crate::disk::parse_diskspace(v)?);
        }
        if let Some(v) = &opts.diskinodes {
            dconf.inodes = Some(crate::disk::parse_diskinodes(v)?);
        }
        if let Some(v) = &opts.quotaugidlimit {
            dconf.ugid = parse_ugid(v)?;
        }
        // Bridged interfaces: the list after this set, checked before anything changes.
        let old_netifs = crate::net::parse_netifs(conf.get("NETIF").unwrap_or(""))?;
        let mut netifs: Vec<crate::net::NetIf> = old_netifs
            .iter()
            .filter(|n| !opts.netif_del.iter().any(|d| d == "all" || *d == n.ifname))
            .cloned()
            .collect();
        let mut netif_new = Vec::new();
        for spec in &opts.netif_add {
            let n = crate::net::NetIf::parse_add(veid, spec, netifs.len())?;
            let taken = netifs.iter().any(|o| o.ifname == n.ifname || o.host_ifname == n.host_ifname)
                || self.netif_owner(&n.host_ifname, veid).is_some();
            if taken {
                return Err(VeError::BadValue {
                    key: "netif_add",
                    value: spec.clone(),
                    why: "interface name already in use",
                });
            }
            netifs.push(n.clone());
            netif_new.push(n);
        }
        let netif_gone: Vec<crate::net::NetIf> =
            old_netifs.iter().filter(|o| !netifs.iter().any(|n| n.ifname == o.ifname)).cloned().collect();
        let rules = if opts.netfilter.is_empty() {
            None
        } else {
            Some(crate::netfilter::parse_rules(&opts.netfilter.iter().map(String::as_str).collect::<Vec<_>>())?)
        };
        for d in &opts.searchdomain {
            if !valid_hostname(d) {
                return Err(VeError::BadValue {
                    key: "searchdomain",
                    value: d.clone(),
                    why: "not a valid domain name",
                });
            }
        }
        // Addresses: every one valid, none held by another VE, before anything changes.
        let old_ips = conf_ips(&conf)?;
        let add_ips = self.addable_ips(veid, &opts.ipadd)?;
        let mut del_ips = Vec::new();
        for a in &opts.ipdel {
            if a == "all" {
                del_ips.extend(old_ips.iter().copied());
            } else {
                del_ips.push(crate::net::parse_ip(a)?);
            }
        }
        let mut limits: Vec<(&'static Resource, String, UbcLimit)> = Vec::new();
        for (name, v) in &opts.ubc {
            let r = Resource::by_name(name)?;
            limits.push((r, v.clone(), r.parse_limit(v)?));
        }
        if opts.ram.is_some() || opts.swap.is_some() || opts.vm_overcommit.is_some() {
            let cur = |r: u32| {
                conf_limits(&conf).ok().and_then(|l| l.into_iter().find(|(x, _)| x.id == r).map(|(_, l)| l.limit))
            };
            let ram = match &opts.ram {
                Some(v) => crate::ubc::parse_vswap_size("ram", v)?,
                None => cur(vz_common::res::PHYSPAGES).unwrap_or(vz_common::UB_UNLIMITED),
            };
            let swap = match &opts.swap {
                Some(v) => crate::ubc::parse_vswap_size("swap", v)?,
                None => cur(vz_common::res::SWAPPAGES).unwrap_or(0),
            };
            let oc = match opts.vm_overcommit.as_deref().or(conf.get("VM_OVERCOMMIT")) {
                Some(v) => v.parse::<f64>().ok().filter(|f| *f >= 0.0).ok_or_else(|| VeError::BadValue {
                    key: "vm_overcommit",
                    value: v.into(),
                    why: "expected a non-negative number",
                })?,
                None => 0.0,
            };
            for (id, l) in crate::ubc::vswap(ram, swap, oc) {
                let r = crate::ubc::ALL.iter().find(|r| r.id == id).ok_or(VeError::Exec("vswap".into()))?;
                limits.retain(|(x, _, _)| x.id != id);
                limits.push((r, format!("{}:{}", l.barrier, l.limit), l));
            }
        }
        for (r, _, _) in &limits {
            if r.id == vz_common::res::DCACHESIZE && !self.paths.dcache_accounting {
                eprintln!("Warning: dcachesize is stored but not accounted: set DCACHE_ACCOUNTING=\"yes\" in vz.conf (its tracepoints cost every slab allocation on the host)");
                continue;
            }
            match limits::mechanism(r, self.cg.as_ref(), veid) {
                Some(m) if m.enforces() => {}
                Some(m) => {
                    eprintln!("Warning: {} is only accounted on this kernel ({}), not enforced", r.name, m.label())
                }
                None => eprintln!("Warning: {} is stored but neither accounted nor enforced on this kernel", r.name),
            }
        }
        let init = ns::find_init(self.cg.as_ref(), veid);
        if init.is_none() && !save {
            return Err(VeError::NotRunning(veid));
        }
        if disk_given {
            self.set_disk(veid, &conf, &dconf, opts)?;
        }
        if cpu_given {
            if init.is_some() {
                crate::cpu::apply(self.cg.as_ref(), veid, &cpu)?;
            }
            print_cpu(&cpu, opts);
        }
        if io_given {
            if init.is_some() {
                let cgid = self.cg.ve_id(veid)?;
                self.apply_io(veid, cgid, &self.root_of(veid, &conf), &ios)?;
            }
            print_io(&ios, opts);
        }
        if let Some(init) = init {
            if !del_ips.is_empty() || !add_ips.is_empty() {
                crate::net::warn_if_not_forwarding(veid, &add_ips);
                let cgid = self.cg.ve_id(veid)?;
                crate::net::del_ips(init, cgid, &del_ips)?;
                crate::net::add_ips(init, cgid, &add_ips)?;
                if let Ok(mut bpf) = Bpf::open_existing(&self.paths.bpf_root) {
                    bpf.set_ve_addrs(cgid, &add_ips, Some(&del_ips))?;
                }
            }
            // The VE's name and resolver files, from what its config says after this set;
            // written before the live host name changes, so a failed write leaves the VE's
            // name as it was.
            let mut eff = conf.clone();
            set_net_keys(&mut eff, opts, &add_ips, &del_ips);
            let root = self.root_of(veid, &conf);
            let names = opts.hostname.clone().or_else(|| eff.get("HOSTNAME").map(str::to_string));
            if let Some(h) = names.filter(|_| opts.hostname.is_some() || !add_ips.is_empty() || !del_ips.is_empty()) {
                self.write_names(&root, &eff, &h).map_err(io_err("write /etc/hostname, /etc/hosts", &root))?;
            }
            if let Some(h) = &opts.hostname {
                ns::set_hostname(init, h)?;
            }
            if !opts.nameserver.is_empty() || !opts.searchdomain.is_empty() {
                self.write_resolver(&root, &eff).map_err(io_err("write /etc/resolv.conf", &root))?;
            }
            if let Some(r) = &rules {
                let cgid = self.cg.ve_id(veid)?;
                Bpf::open_existing(&self.paths.bpf_root)?.set_net_rules(cgid, r)?;
            }
            if let Some(k) = rate {
                let cgid = self.cg.ve_id(veid)?;
                set_rate(&mut Bpf::open_existing(&self.paths.bpf_root)?, cgid, k)?;
            }
            for n in &netif_gone {
                crate::net::del_netif(&n.host_ifname)?;
            }
            for n in &netif_new {
                crate::net::add_netif(init, n)?;
            }
            if !limits.is_empty() {
                let cgid = self.cg.ve_id(veid)?;
                let mut bpf = Bpf::ensure(&self.bpf_config())?;
                bpf.register_ve(cgid)?;
                bpf.set_limits(cgid, &limits.iter().map(|(r, _, l)| (r.id, *l)).collect::<Vec<_>>())?;
                let full = bpf.limits(cgid)?;
                limits::apply(self.cg.as_ref(), veid, &full)?;
                if limits.iter().any(|(r, _, _)| r.id == vz_common::res::NUMSIGINFO) {
                    if let Some(w) = limits::apply_sigpending(self.cg.as_ref(), veid, &full)? {
                        warn!(veid, "{w}");
                        eprintln!("Warning: {w}");
                    }
                }
                if limits.iter().any(|(r, _, _)| r.id == vz_common::res::NUMPTY) {
                    ns::set_pty_max(init, limits::pty_max(&full))?;
                }
                if limits.iter().any(|(r, _, _)| r.id == vz_common::res::SHMPAGES) {
                    let pages = limits::shm_pages_limit(&full);
                    ns::set_shm_size(init, pages.map(|p| p * crate::ubc::PAGE_SIZE))?;
                    // Unlimited: the kernel's own default (ULONG_MAX - 2^24).
                    ns::set_shmall(init, pages.unwrap_or(u64::MAX - (1 << 24)), self.paths.local_uid)?;
                }
                println!("UB limits were set successfully");
            }
        }
        if save {
            for (key, v) in [
                ("HOSTNAME", &opts.hostname),
                ("NAME", &opts.name),
                ("DESCRIPTION", &opts.description),
                ("ONBOOT", &opts.onboot),
            ] {
                if let Some(v) = v {
                    conf.set(key, v);
                }
            }
            for (r, v, _) in &limits {
                conf.set(&r.name.to_ascii_uppercase(), v);
            }
            if let Some(u) = cpu.units.filter(|_| opts.cpuunits.is_some()) {
                conf.set("CPUUNITS", &u.to_string());
            }
            if let Some(l) = cpu.limit.filter(|_| opts.cpulimit.is_some()) {
                conf.set("CPULIMIT", &l.to_string());
            }
            if let Some(n) = cpu.cpus.filter(|_| opts.cpus.is_some()) {
                conf.set("CPUS", &n.to_string());
            }
            if opts.cpumask.is_some() {
                conf.set("CPUMASK", cpu.mask.as_deref().unwrap_or("all"));
            }
            if let Some(p) = ios.prio.filter(|_| opts.ioprio.is_some()) {
                conf.set("IOPRIO", &p.to_string());
            }
            if let Some(l) = ios.limit.filter(|_| opts.iolimit.is_some()) {
                conf.set("IOLIMIT", &l.to_string());
            }
            if let Some(n) = ios.iops.filter(|_| opts.iopslimit.is_some()) {
                conf.set("IOPSLIMIT", &n.to_string());
            }
            if let Some(l) = dconf.space.filter(|_| opts.diskspace.is_some()) {
                conf.set("DISKSPACE", &format!("{}:{}", l.soft, l.hard));
            }
            if let Some(l) = dconf.inodes.filter(|_| opts.diskinodes.is_some()) {
                conf.set("DISKINODES", &format!("{}:{}", l.soft, l.hard));
            }
            if opts.quotaugidlimit.is_some() {
                conf.set("QUOTAUGIDLIMIT", &dconf.ugid.to_string());
            }
            set_net_keys(&mut conf, opts, &add_ips, &del_ips);
            if let Some(r) = &rules {
                conf.set("NETFILTER", &crate::netfilter::format_rules(r));
            }
            if !opts.netif_add.is_empty() || !opts.netif_del.is_empty() {
                conf.set("NETIF", &crate::net::format_netifs(&netifs));
            }
            // Kept in the admin's own form (kbit or OpenVZ's dev:class:kbit).
            match (rate, &opts.rate) {
                (Some(Some(_)), Some(given)) => conf.set("RATE", given.trim()),
                (Some(None), _) => conf.remove("RATE"),
                _ => {}
            }
            if let Some(v) = &opts.vm_overcommit {
                conf.set("VM_OVERCOMMIT", v);
            }
            conf.write_atomic(&self.paths.ve_conf(veid))?;
            println!("Saved parameters for Container {veid}");
        }
        Ok(())
    }
}

/// Runs a script as PID 1 of a temporary VE (namespaces on the VE's root, no init) and
/// waits for it; used by runscript on a stopped VE.
fn run_script_as_init(vz: &Vz, veid: u32, root: &Path, hostname: String, script: &Path) -> Result<i32, VeError> {
    // The script's shell is our grandchild: be its subreaper so we can wait for it.
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let spec = InitSpec {
        root: root.to_path_buf(),
        hostname,
        argv: vec!["/bin/sh".into(), "-s".into()],
        uid_base: vz.paths.local_uid,
        gid_base: vz.paths.local_gid,
        stdio: true,
        stdin: Some(script.to_path_buf()),
        pty_max: None,
        shm_bytes: None,
    };
    let started = ns::start_init(&spec, vz.cg.as_ref(), veid)?;
    let mut st = 0;
    // SAFETY: waiting for the script shell, reparented to us.
    while unsafe { libc::waitpid(started.pid, &mut st, 0) } < 0 {
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(VeError::Exec(format!("wait: {}", io::Error::last_os_error())));
        }
    }
    Ok(if libc::WIFEXITED(st) { libc::WEXITSTATUS(st) } else { 128 + libc::WTERMSIG(st) })
}

/// Writes a file inside a VE's tree: an existing file keeps its owner; a new one belongs
/// to VE root.
/// Puts a set's network keys into a config: IP_ADDRESS (old minus deleted plus added),
/// NAMESERVER, SEARCHDOMAIN.
fn set_net_keys(conf: &mut ConfFile, opts: &SetOpts, add: &[std::net::IpAddr], del: &[std::net::IpAddr]) {
    if !add.is_empty() || !del.is_empty() {
        let mut ips: Vec<std::net::IpAddr> =
            conf_ips(conf).unwrap_or_default().into_iter().filter(|ip| !del.contains(ip)).collect();
        for ip in add {
            if !ips.contains(ip) {
                ips.push(*ip);
            }
        }
        let ips: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
        conf.set("IP_ADDRESS", &ips.join(" "));
    }
    if !opts.nameserver.is_empty() {
        conf.set("NAMESERVER", &opts.nameserver.join(" "));
    }
    if !opts.searchdomain.is_empty() {
        conf.set("SEARCHDOMAIN", &opts.searchdomain.join(" "));
    }
}

/// Opens `rel` (a directory, or a file to read) inside a VE's root as the VE sees it:
/// every component, symlinks included, resolves inside the root (openat2 RESOLVE_IN_ROOT),
/// so nothing the VE planted can lead host root out to the host's files.
fn open_in_ve(root: &Path, rel: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let root_fd = fs::File::open(root)?;
    let c = std::ffi::CString::new(rel).map_err(io::Error::other)?;
    // struct open_how (u64 flags, mode, resolve); libc's is non-exhaustive.
    let how: [u64; 3] = [(flags | libc::O_CLOEXEC) as u64, 0, libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS];
    // SAFETY: openat2 with a valid dirfd, NUL-terminated path and open_how of the given size.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, root_fd.as_raw_fd(), c.as_ptr(), how.as_ptr(), std::mem::size_of_val(&how))
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Reads a file of a VE as the VE sees it (see `open_in_ve`).
fn read_ve_file(root: &Path, rel: &str) -> io::Result<String> {
    let mut s = String::new();
    io::Read::read_to_string(&mut fs::File::from(open_in_ve(root, rel, libc::O_RDONLY)?), &mut s)?;
    Ok(s)
}

/// Writes a file of a VE (e.g. "etc/hostname") as the VE sees it, owned by the VE's root:
/// its directory is resolved inside the VE's root, the text goes to a temporary file
/// there and is renamed over the old one (which replaces a symlink, never follows it).
fn write_ve_file(root: &Path, rel: &str, text: &str, uid: u32, gid: u32) -> io::Result<()> {
    let (dir, name) = rel.rsplit_once('/').unwrap_or((".", rel));
    let dir_fd = open_in_ve(root, dir, libc::O_PATH | libc::O_DIRECTORY)?;
    let tmp = std::ffi::CString::new(format!(".{name}.vztmp")).map_err(io::Error::other)?;
    let target = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: openat relative to our directory fd; O_NOFOLLOW refuses a planted symlink.
    let fd = unsafe {
        libc::openat(
            dir_fd.as_raw_fd(),
            tmp.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned this fd.
    let mut f = fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    io::Write::write_all(&mut f, text.as_bytes())?;
    std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
    drop(f);
    // SAFETY: renameat within our directory fd.
    if unsafe { libc::renameat(dir_fd.as_raw_fd(), tmp.as_ptr(), dir_fd.as_raw_fd(), target.as_ptr()) } != 0 {
        let e = io::Error::last_os_error();
        // SAFETY: unlinkat of our own temporary file.
        unsafe { libc::unlinkat(dir_fd.as_raw_fd(), tmp.as_ptr(), 0) };
        return Err(e);
    }
    Ok(())
}

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

fn bind_mount(src: &Path, dst: &Path) -> Result<(), VeError> {
    let (s, d) = (cpath(src)?, cpath(dst)?);
    // SAFETY: NUL-terminated paths.
    if unsafe { libc::mount(s.as_ptr(), d.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) } != 0 {
        return Err(io_err("bind-mount", dst)(io::Error::last_os_error()));
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
