//! A VE's settings as its config file states them (`VeConfig`, parsed and checked once per
//! command), the samples, and value checks.
use super::*;

/// A VE's settings, parsed and checked once: the verbs read these, not the file's strings.
#[derive(Debug, Clone)]
pub struct VeConfig {
    /// The file itself (unknown keys kept): what is written back, and keys kept as text
    /// (HOSTNAME, NAMESERVER, NAME, ...).
    pub file: ConfFile,
    /// Every beancounter row; rows the file does not set are unlimited.
    pub limits: VeLimits,
    pub cpu: crate::cpu::CpuSettings,
    pub io: crate::io::IoSettings,
    pub disk: DiskConf,
    pub ips: Vec<std::net::IpAddr>,
    pub netifs: Vec<crate::net::NetIf>,
    /// RATE in kbit/s (None: no shaping).
    pub rate: Option<u64>,
    /// NETFILTER: the VE's firewall rules.
    pub rules: vz_common::NetRules,
    /// DEVNODES and DEVICES: devices beyond the VE's own /dev.
    pub devnodes: Vec<crate::devices::DevNode>,
    pub devices: Vec<crate::devices::DevRule>,
    /// NETDEV: host interfaces moved into the VE.
    pub netdevs: Vec<String>,
    /// CAPABILITY: capabilities turned on or off.
    pub caps: Vec<crate::caps::Cap>,
    /// FEATURES: tun, fuse, ... on or off.
    pub features: Vec<crate::features::Feature>,
}

impl VeConfig {
    /// Every value checked; the first bad one is the error.
    pub fn parse(file: ConfFile) -> Result<Self, VeError> {
        Self::parse_except(file, &[])
    }

    /// As `parse`, but a bad value of a key in `replaced` is read as unset instead of failing:
    /// a `set` about to replace it, so an admin can mend a bad value with vzctl itself. A good
    /// value is read as usual (a rollback restores it).
    pub fn parse_except(file: ConfFile, replaced: &[&str]) -> Result<Self, VeError> {
        let mut limits = VeLimits::default();
        for (r, l) in conf_limits(&file)? {
            limits.res[r.id as usize] = l;
        }
        let rate = crate::net::parse_rate(file.get("RATE").unwrap_or("0"));
        let rules = crate::netfilter::parse_rules(&[file.get("NETFILTER").unwrap_or("")]);
        let lenient = |k: &str| replaced.contains(&k);
        Ok(Self {
            limits,
            cpu: conf_cpu(&file)?,
            io: conf_io(&file)?,
            disk: conf_disk(&file)?,
            ips: conf_ips(&file)?,
            netifs: crate::net::parse_netifs(file.get("NETIF").unwrap_or(""))?,
            rate: if lenient("RATE") { rate.unwrap_or(None) } else { rate? },
            rules: if lenient("NETFILTER") { rules.unwrap_or_default() } else { rules? },
            devnodes: crate::devices::parse_devnodes(file.get("DEVNODES").unwrap_or(""))?,
            devices: crate::devices::parse_devices(file.get("DEVICES").unwrap_or(""))?,
            netdevs: super::netdev::conf_netdevs(&file)?,
            caps: crate::caps::parse_caps(file.get("CAPABILITY").unwrap_or(""))?,
            features: crate::features::parse_features(file.get("FEATURES").unwrap_or(""))?,
            file,
        })
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
pub(super) fn say_disk(veid: u32, applied: crate::disk::Applied) {
    if let crate::disk::Applied::NotEnforced(why) = applied {
        crate::report::warning(veid, format!("disk quota is stored but not enforced: {why}"));
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

pub(super) const DEFAULT_VZ_CONF: &str = "\
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
pub(super) const UGID_QUOTA_WHY: &str = "per-user and per-group quota inside a VE is not available: quotactl(2) on the VE's file system needs CAP_SYS_ADMIN in the host's user namespace, which the VE's root does not have";

/// Image size of a ploop VE created without --diskspace (OpenVZ's basic sample).
pub(super) const DEFAULT_PLOOP_DISKSPACE: &str = "2G:2G";

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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> ConfFile {
        ConfFile::parse(text, Path::new("101.conf")).unwrap()
    }

    #[test]
    fn settings_are_parsed_once_into_types() {
        let c = VeConfig::parse(file(
            "NUMPROC=\"40:50\"\nIP_ADDRESS=\"10.0.0.2 fd00::2\"\nRATE=\"8000\"\nNETFILTER=\"deny in tcp 25\"\nIOPRIO=\"6\"\n",
        ))
        .unwrap();
        assert_eq!(c.limits.res[vz_common::res::NUMPROC as usize], UbcLimit { barrier: 40, limit: 50 });
        assert_eq!(c.limits.res[vz_common::res::NUMTCPSOCK as usize], UbcLimit::UNLIMITED);
        assert_eq!(c.ips.len(), 2);
        assert_eq!(c.rate, Some(8000));
        assert_eq!(c.rules.count, 1);
        assert_eq!(c.io.prio, Some(6));
        assert_eq!(c.file.get("RATE"), Some("8000"));
    }

    #[test]
    fn a_bad_value_fails_unless_this_set_replaces_it() {
        let bad_rate = "RATE=\"fast\"\n";
        assert!(VeConfig::parse(file(bad_rate)).is_err());
        let c = VeConfig::parse_except(file(bad_rate), &["RATE"]).unwrap();
        assert_eq!(c.rate, None);
        // A good value being replaced is still read: a rollback restores it.
        assert_eq!(VeConfig::parse_except(file("RATE=\"8000\"\n"), &["RATE"]).unwrap().rate, Some(8000));
        // Only the replaced key is let through.
        assert!(VeConfig::parse_except(file("RATE=\"fast\"\nNUMPROC=\"9:1\"\n"), &["RATE"]).is_err());
        assert!(VeConfig::parse(file("IP_ADDRESS=\"10.0.0.300\"\n")).is_err());
    }
}
