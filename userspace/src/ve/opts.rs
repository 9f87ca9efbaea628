//! What `vzctl create` and `vzctl set` take, as clap arguments the CLI flattens.
use super::*;

pub use crate::given::{Given, Sel};

/// A VE as the admin names it on the command line: its VEID, or its NAME (resolved by
/// `Vz::resolve`, which needs the configs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VeRef {
    Id(u32),
    Name(String),
}

impl std::fmt::Display for VeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VeRef::Id(v) => write!(f, "{v}"),
            VeRef::Name(n) => f.write_str(n),
        }
    }
}

impl std::str::FromStr for VeRef {
    type Err = VeError;
    fn from_str(s: &str) -> Result<Self, VeError> {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(VeRef::Id(config::parse_veid(s)?));
        }
        if !valid_name(s) {
            return Err(ConfigError::BadVeid(s.escape_default().to_string()).into());
        }
        Ok(VeRef::Name(s.to_string()))
    }
}

/// The rules of one `--netfilter-rule` (several `;`-separated, or none).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleList(pub Vec<vz_common::NetRule>);

/// `--cpumask`: a normalised CPU list, or None for all CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuMask(pub Option<String>);

/// Why OpenVZ's IPTABLES (`--iptables`) is refused, and said of a config that has one.
pub const IPTABLES_WHY: &str = "a module list cannot be honoured on a stock kernel: a container's own netfilter tables (iptables or nftables, in its network namespace) can use every module the host's kernel has, and none can be withheld from one container";

/// `--userpasswd USER:PASSWORD`; the password never shows in Debug output (logs).
#[derive(Clone)]
pub struct UserPass {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for UserPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserPass({}:***)", self.user)
    }
}

/// Parsers for the values the command line takes: each checks what can be checked without
/// looking at the host's VEs, so a bad value stops vzctl before it touches anything.
pub mod arg {
    use std::net::IpAddr;

    use super::*;
    use crate::{netfilter, ubc};

    pub fn text(key: &'static str) -> impl Fn(&str) -> Result<String, VeError> + Clone {
        move |s| check_text(key, s).map(|()| s.to_string())
    }

    pub fn path(key: &'static str) -> impl Fn(&str) -> Result<PathBuf, VeError> + Clone {
        move |s| check_text(key, s).map(|()| PathBuf::from(s))
    }

    pub fn hostname(s: &str) -> Result<String, VeError> {
        check_text("hostname", s)?;
        if !valid_hostname(s) {
            return Err(VeError::BadValue { key: "hostname", value: s.into(), why: "not a valid host name" });
        }
        Ok(s.to_string())
    }

    pub fn domain(s: &str) -> Result<String, VeError> {
        check_text("searchdomain", s)?;
        if !valid_hostname(s) {
            return Err(VeError::BadValue { key: "searchdomain", value: s.into(), why: "not a valid domain name" });
        }
        Ok(s.to_string())
    }

    pub fn name(s: &str) -> Result<String, VeError> {
        if !valid_name(s) {
            return Err(VeError::BadName(s.escape_default().to_string()));
        }
        Ok(s.to_string())
    }

    pub fn template(s: &str) -> Result<String, VeError> {
        crate::template::check_name(s)?;
        Ok(s.to_string())
    }

    /// An address a VE may own (not loopback, multicast, this host's own...).
    pub fn ve_ip(s: &str) -> Result<IpAddr, VeError> {
        Ok(crate::net::parse_ve_ip(s)?)
    }

    pub fn ip(s: &str) -> Result<IpAddr, VeError> {
        check_text("nameserver", s)?;
        Ok(crate::net::parse_ip(s)?)
    }

    pub fn ip_or_all(s: &str) -> Result<Sel<IpAddr>, VeError> {
        if s == "all" {
            return Ok(Sel::All);
        }
        Ok(Sel::One(crate::net::parse_ip(s)?))
    }

    pub fn ifname_or_all(s: &str) -> Result<Sel<String>, VeError> {
        if s == "all" {
            return Ok(Sel::All);
        }
        if !crate::net::valid_ifname(s) {
            return Err(VeError::BadValue {
                key: "netif_del",
                value: s.escape_default().to_string(),
                why: "not an interface name",
            });
        }
        Ok(Sel::One(s.to_string()))
    }

    pub fn netif(s: &str) -> Result<crate::net::NetIfSpec, VeError> {
        check_text("netif_add", s)?;
        Ok(crate::net::NetIfSpec::parse(s)?)
    }

    /// One `--netfilter-rule`: rules separated by `;`, or `none`.
    pub fn rules(s: &str) -> Result<RuleList, VeError> {
        check_text("netfilter-rule", s)?;
        Ok(RuleList(netfilter::parse_rule_list(s)?))
    }

    pub fn rate(s: &str) -> Result<Given<Option<u64>>, VeError> {
        check_text("rate", s)?;
        Ok(Given::of(s, crate::net::parse_rate(s)?))
    }

    pub fn cpuunits(s: &str) -> Result<u32, VeError> {
        Ok(crate::cpu::parse_units(s)?)
    }

    pub fn cpulimit(s: &str) -> Result<u32, VeError> {
        Ok(crate::cpu::parse_limit(s, crate::cpu::host_cpus())?)
    }

    pub fn cpus(s: &str) -> Result<u32, VeError> {
        Ok(crate::cpu::parse_cpus(s, crate::cpu::host_cpus())?)
    }

    pub fn cpumask(s: &str) -> Result<CpuMask, VeError> {
        Ok(CpuMask(crate::cpu::parse_mask(s, crate::cpu::host_cpus())?))
    }

    pub fn ioprio(s: &str) -> Result<u8, VeError> {
        Ok(crate::io::parse_prio(s)?)
    }

    pub fn iolimit(s: &str) -> Result<u64, VeError> {
        Ok(crate::io::parse_limit(s)?)
    }

    pub fn iopslimit(s: &str) -> Result<u64, VeError> {
        Ok(crate::io::parse_iops(s)?)
    }

    pub fn netdev(key: &'static str) -> impl Fn(&str) -> Result<String, VeError> + Clone {
        move |s| {
            if crate::net::valid_ifname(s) {
                Ok(s.to_string())
            } else {
                Err(VeError::BadValue { key, value: s.escape_default().to_string(), why: "not an interface name" })
            }
        }
    }

    pub fn userpasswd(s: &str) -> Result<UserPass, VeError> {
        let (user, password) = s.split_once(':').unwrap_or((s, ""));
        let bad =
            |value: &str, why| VeError::BadValue { key: "userpasswd", value: value.escape_default().to_string(), why };
        let user_ok = !user.is_empty()
            && user.len() <= 32
            && user.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && user.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
        if !user_ok {
            return Err(bad(user, "use USER:PASSWORD with a user name of lower-case letters, digits, _ . -"));
        }
        if password.is_empty() || password.contains(['\n', '\0']) {
            // The password is not echoed back.
            return Err(bad(user, "the password must be given after ':' and hold no newline"));
        }
        Ok(UserPass { user: user.to_string(), password: password.to_string() })
    }

    pub fn netfilter_mode(s: &str) -> Result<crate::netfilter::NfMode, VeError> {
        crate::netfilter::NfMode::parse(s).ok_or_else(|| VeError::BadValue {
            key: "netfilter",
            value: s.escape_default().to_string(),
            why: "use disabled, stateless, stateful or full (firewall rules: --netfilter-rule)",
        })
    }

    pub fn iptables(s: &str) -> Result<String, VeError> {
        Err(VeError::BadValue { key: "iptables", value: s.escape_default().to_string(), why: IPTABLES_WHY })
    }

    pub fn feature(s: &str) -> Result<crate::features::Feature, VeError> {
        Ok(crate::features::parse_feature(s)?)
    }

    pub fn capability(s: &str) -> Result<crate::caps::Cap, VeError> {
        Ok(crate::caps::parse_cap(s)?)
    }

    pub fn devnode(s: &str) -> Result<crate::devices::DevNode, VeError> {
        Ok(crate::devices::parse_devnode(s)?)
    }

    pub fn device(s: &str) -> Result<crate::devices::DevRule, VeError> {
        Ok(crate::devices::parse_device(s)?)
    }

    pub fn layout(s: &str) -> Result<crate::disk::Layout, VeError> {
        Ok(crate::disk::Layout::parse(s)?)
    }

    pub fn diskspace(s: &str) -> Result<Given<crate::disk::Limit>, VeError> {
        Ok(Given::of(s, crate::disk::parse_diskspace(s)?))
    }

    pub fn diskinodes(s: &str) -> Result<Given<crate::disk::Limit>, VeError> {
        Ok(Given::of(s, crate::disk::parse_diskinodes(s)?))
    }

    pub fn ugid(s: &str) -> Result<u64, VeError> {
        parse_ugid(s)
    }

    pub fn yes_no(key: &'static str) -> impl Fn(&str) -> Result<bool, VeError> + Clone {
        move |s| match s {
            "yes" => Ok(true),
            "no" => Ok(false),
            _ => Err(VeError::BadValue { key, value: s.escape_default().to_string(), why: "use yes or no" }),
        }
    }

    /// `--ram`: pages, at least [`MIN_RAM_PAGES`].
    pub fn ram(s: &str) -> Result<u64, VeError> {
        let n = ubc::parse_vswap_size("ram", s)?;
        if n < MIN_RAM_PAGES {
            let why = if unitless(s) {
                "a number without a unit is bytes, less than the 1M a container needs (add a unit: 256M)"
            } else {
                "a container needs at least 1M of RAM"
            };
            return Err(VeError::BadValue { key: "ram", value: s.into(), why });
        }
        Ok(n)
    }

    /// `--swap`: pages; 0 is none. A unitless number under 1M (bytes: a page or so of
    /// swap) is taken for a forgotten unit and refused.
    pub fn swap(s: &str) -> Result<u64, VeError> {
        let n = ubc::parse_vswap_size("swap", s)?;
        if n > 0 && n < MIN_RAM_PAGES && unitless(s) {
            return Err(VeError::BadValue {
                key: "swap",
                value: s.into(),
                why: "a number without a unit is bytes: a swap of a page or so (add a unit: 512M, or 0 for none)",
            });
        }
        Ok(n)
    }

    pub fn overcommit(s: &str) -> Result<Given<f64>, VeError> {
        crate::ubc::parse_overcommit(s).map(|f| Given::of(s, f)).map_err(Into::into)
    }
}

/// A size given as a bare number (bytes, for --ram and --swap).
fn unitless(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())
}

/// The least RAM a VE may be given (`--ram`): below it the memory controller refuses the
/// limit (or the VE cannot run anything).
pub const MIN_RAM_PAGES: u64 = 256;

/// Options of `vzctl create`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CreateOpts {
    /// OS template (a cache in TEMPLATE/cache); default DEF_OSTEMPLATE.
    #[arg(long, value_parser = arg::template)]
    pub ostemplate: Option<String>,
    /// Config sample (conf/ve-NAME.conf-sample); default CONFIGFILE.
    #[arg(long)]
    pub config: Option<String>,
    #[arg(long, value_parser = arg::hostname)]
    pub hostname: Option<String>,
    /// An IPv4 or IPv6 address for the VE (repeatable).
    #[arg(long, value_parser = arg::ve_ip)]
    pub ipadd: Vec<IpAddr>,
    /// A name to use in place of the VEID.
    #[arg(long, value_parser = arg::name)]
    pub name: Option<String>,
    /// Private area (default VE_PRIVATE).
    #[arg(long, value_parser = arg::path("private"))]
    pub private: Option<PathBuf>,
    /// Mount point (default VE_ROOT).
    #[arg(long, value_parser = arg::path("root"))]
    pub root: Option<PathBuf>,
    /// simfs (a directory) or ploop (an image file with its own file system); default
    /// VE_LAYOUT.
    #[arg(long, value_parser = arg::layout)]
    pub layout: Option<crate::disk::Layout>,
    /// Disk space soft:hard, in 1 KiB blocks or with K M G T (ploop: the image size is the
    /// hard limit; default 2G).
    #[arg(long, value_parser = arg::diskspace)]
    pub diskspace: Option<Given<crate::disk::Limit>>,
    /// Inodes soft:hard.
    #[arg(long, value_parser = arg::diskinodes)]
    pub diskinodes: Option<Given<crate::disk::Limit>>,
}

/// Parameters of `vzctl set`, as its command line takes them (the CLI flattens this), each
/// typed and checked as it is read.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SetOpts {
    /// Add an IPv4 or IPv6 address (repeatable); live on a running VE.
    #[arg(long, value_parser = arg::ve_ip)]
    pub ipadd: Vec<IpAddr>,
    /// Remove an address, or `all`.
    #[arg(long, value_parser = arg::ip_or_all)]
    pub ipdel: Vec<Sel<IpAddr>>,
    /// DNS server for the VE's /etc/resolv.conf (repeatable).
    #[arg(long, value_parser = arg::ip)]
    pub nameserver: Vec<IpAddr>,
    /// DNS search domain for the VE's /etc/resolv.conf (repeatable).
    #[arg(long, value_parser = arg::domain)]
    pub searchdomain: Vec<String>,
    /// Firewall rule, e.g. "deny in tcp 25" or "allow in tcp 22 from 10.0.0.0/8"
    /// (repeatable; together they replace the VE's rules; "none" clears them).
    #[arg(long = "netfilter-rule", value_parser = arg::rules)]
    pub netfilter: Vec<RuleList>,
    /// OpenVZ's netfilter mode: disabled, stateless, stateful or full (NETFILTER; at the
    /// next start). On a stock kernel a container always has netfilter tables of its own:
    /// any mode but full is said to be not narrowed.
    #[arg(long = "netfilter", value_parser = arg::netfilter_mode)]
    pub nf_mode: Option<crate::netfilter::NfMode>,
    /// Bridged interface: ifname[,mac,host_ifname,host_mac,bridge] (repeatable).
    #[arg(long = "netif_add", value_parser = arg::netif)]
    pub netif_add: Vec<crate::net::NetIfSpec>,
    /// Remove a bridged interface by its name in the VE, or `all`.
    #[arg(long = "netif_del", value_parser = arg::ifname_or_all)]
    pub netif_del: Vec<Sel<String>>,
    /// USER:PASSWORD: the VE's user (made if missing) gets this password, set by the VE's
    /// own chpasswd inside it; a stopped VE is mounted for it, not started. Not saved.
    #[arg(long, value_parser = arg::userpasswd)]
    pub userpasswd: Option<UserPass>,
    /// Take the settings of a config sample (conf/ve-NAME.conf-sample): beancounters, CPU,
    /// I/O, disk limits, capabilities, devices; not its names, addresses or paths.
    #[arg(long)]
    pub applyconfig: Option<String>,
    /// Put the VE's saved beancounter limits back in force on the running VE.
    #[arg(long = "reset_ub")]
    pub reset_ub: bool,
    /// restart: restart a running VE when a change needs it (capabilities); ignore (the
    /// default): it waits for the next start.
    #[arg(long, value_parser = ["restart", "ignore"])]
    pub setmode: Option<String>,
    /// yes: `vzctl start` refuses the VE (exit 105) unless --force; no: it starts again.
    #[arg(long, value_parser = arg::yes_no("onboot"))]
    pub disabled: Option<bool>,
    /// Seconds `vzctl stop` waits for the VE's init to halt before killing what is left
    /// (the VE's own STOP_TIMEOUT; default vz.conf's).
    #[arg(long = "stop-timeout", value_parser = clap::value_parser!(u32).range(0..=86400))]
    pub stop_timeout: Option<u32>,
    /// OpenVZ's list of netfilter modules a VE may use: refused here, see the README
    /// (a VE's own tables use what the host kernel has; none can be withheld from one VE).
    #[arg(long, value_parser = arg::iptables)]
    pub iptables: Option<String>,
    /// An OpenVZ feature, NAME:on|off: tun, fuse, ppp (their device in the VE), bridge,
    /// ipip, sit, ipgre (where the host's kernel has them), sysfs; nfs and nfsd are refused
    /// (repeatable).
    #[arg(long, value_parser = arg::feature)]
    pub features: Vec<crate::features::Feature>,
    /// A capability the VE's processes may hold, NAME:on|off (net_admin:off); from the
    /// next start (repeatable).
    #[arg(long, value_parser = arg::capability)]
    pub capability: Vec<crate::caps::Cap>,
    /// A host interface moved into the VE, keeping its name (repeatable); back at stop.
    #[arg(long = "netdev_add", value_parser = arg::netdev("netdev_add"))]
    pub netdev_add: Vec<String>,
    /// An interface given with --netdev_add moved back to the host (repeatable).
    #[arg(long = "netdev_del", value_parser = arg::netdev("netdev_del"))]
    pub netdev_del: Vec<String>,
    /// A host device node for the VE, NAME:r|w|rw|none (sdb1:rw, net/tun:rw): the node
    /// appears in the VE's /dev with that access; none removes it (repeatable).
    #[arg(long, value_parser = arg::devnode)]
    pub devnodes: Vec<crate::devices::DevNode>,
    /// Access to devices by number, b|c:MAJOR:MINOR|all:r|w|rw|none (repeatable); no node
    /// is made.
    #[arg(long, value_parser = arg::device)]
    pub devices: Vec<crate::devices::DevRule>,
    /// Egress rate limit in kbit/s (or dev:class:kbit); 0 or none lifts it.
    #[arg(long, value_parser = arg::rate)]
    pub rate: Option<Given<Option<u64>>>,
    /// CPU share weight, 8..500000 (default 1000): VEs get busy CPUs in proportion.
    #[arg(long, value_parser = arg::cpuunits)]
    pub cpuunits: Option<u32>,
    /// CPU time limit in percent of one CPU (100 = one CPU); 0 lifts it.
    #[arg(long, value_parser = arg::cpulimit)]
    pub cpulimit: Option<u32>,
    /// Number of CPUs' worth of time the VE may use; 0 or unlimited lifts it.
    #[arg(long, value_parser = arg::cpus)]
    pub cpus: Option<u32>,
    /// CPUs the VE may run on: a list like 0-1,3, or all.
    #[arg(long, value_parser = arg::cpumask)]
    pub cpumask: Option<CpuMask>,
    /// Disk time share, 0 (lowest) to 7 (highest), default 4 (BFQ group weight; the VE's
    /// disk must use the bfq scheduler, see `vzctl iosched`).
    #[arg(long, value_parser = arg::ioprio)]
    pub ioprio: Option<u8>,
    /// Disk bandwidth cap in bytes/s (K, M, G suffixes), reads and writes each; 0 lifts it.
    #[arg(long, value_parser = arg::iolimit)]
    pub iolimit: Option<u64>,
    /// Disk operations cap per second, reads and writes each; 0 lifts it.
    #[arg(long, value_parser = arg::iopslimit)]
    pub iopslimit: Option<u64>,
    /// Disk space soft:hard, in 1 KiB blocks or with K M G T. ploop: a lower limit holds at
    /// once; a higher one grows the image online where the host may, else at the next start.
    #[arg(long, value_parser = arg::diskspace)]
    pub diskspace: Option<Given<crate::disk::Limit>>,
    /// Inodes soft:hard.
    #[arg(long, value_parser = arg::diskinodes)]
    pub diskinodes: Option<Given<crate::disk::Limit>>,
    /// Per-user and per-group quota inside the VE (ploop): number of ids; 0 turns it off.
    #[arg(long, value_parser = arg::ugid)]
    pub quotaugidlimit: Option<u64>,
    #[arg(long, value_parser = arg::hostname)]
    pub hostname: Option<String>,
    #[arg(long, value_parser = arg::name)]
    pub name: Option<String>,
    #[arg(long, value_parser = arg::text("description"))]
    pub description: Option<String>,
    /// yes or no: started when the node boots (vz.service).
    #[arg(long, value_parser = arg::yes_no("disabled"))]
    pub onboot: Option<bool>,
    /// Boot order: higher starts first, stops last (OpenVZ's BOOTORDER).
    #[arg(long, value_parser = clap::value_parser!(u32))]
    pub bootorder: Option<u32>,
    #[command(flatten)]
    pub ubc: crate::ubc::UbcArgs,
    /// VSwap: RAM size (bytes with K M G T, or pages with P); derives physpages and more.
    #[arg(long, value_parser = arg::ram)]
    pub ram: Option<u64>,
    /// VSwap: swap size.
    #[arg(long, value_parser = arg::swap)]
    pub swap: Option<u64>,
    /// VSwap: privvmpages = (ram + swap) x this (0: unlimited).
    #[arg(long = "vm_overcommit", value_parser = arg::overcommit)]
    pub vm_overcommit: Option<Given<f64>>,
}

impl SetOpts {
    pub fn is_empty(&self) -> bool {
        self.ipadd.is_empty()
            && self.ipdel.is_empty()
            && self.nameserver.is_empty()
            && self.netfilter.is_empty()
            && self.nf_mode.is_none()
            && self.netif_add.is_empty()
            && self.netif_del.is_empty()
            && self.devnodes.is_empty()
            && self.capability.is_empty()
            && self.features.is_empty()
            && self.iptables.is_none()
            && self.disabled.is_none()
            && self.userpasswd.is_none()
            && self.applyconfig.is_none()
            && !self.reset_ub
            && self.stop_timeout.is_none()
            && self.netdev_add.is_empty()
            && self.netdev_del.is_empty()
            && self.devices.is_empty()
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
            && self.bootorder.is_none()
            && self.ubc.0.is_empty()
            && self.ram.is_none()
            && self.swap.is_none()
            && self.vm_overcommit.is_none()
    }
}
