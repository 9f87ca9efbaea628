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
    /// FIREWALL: the VE's firewall rules.
    pub rules: vz_common::NetRules,
    /// NETFILTER: OpenVZ's netfilter mode (None: not set, full).
    pub nf_mode: Option<crate::netfilter::NfMode>,
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
        let lenient = |k: &str| replaced.contains(&k);
        let (nf_mode, legacy) = conf_netfilter(&file)?;
        let fw_key = crate::netfilter::FIREWALL_KEY;
        let rules = crate::netfilter::parse_rules(&[file.get(fw_key).or(legacy.as_deref()).unwrap_or("")]);
        Ok(Self {
            limits,
            cpu: conf_cpu(&file)?,
            io: conf_io(&file)?,
            disk: conf_disk(&file)?,
            ips: conf_ips(&file)?,
            netifs: crate::net::parse_netifs(file.get("NETIF").unwrap_or(""))?,
            rate: if lenient("RATE") { rate.unwrap_or(None) } else { rate? },
            rules: if lenient(fw_key) { rules.unwrap_or_default() } else { rules? },
            nf_mode,
            devnodes: crate::devices::parse_devnodes(file.get("DEVNODES").unwrap_or(""))?,
            devices: crate::devices::parse_devices(file.get("DEVICES").unwrap_or(""))?,
            netdevs: super::netdev::conf_netdevs(&file)?,
            caps: crate::caps::parse_caps(file.get("CAPABILITY").unwrap_or(""))?,
            features: crate::features::parse_features(file.get("FEATURES").unwrap_or(""))?,
            file,
        })
    }
}

/// NETFILTER: OpenVZ's mode, or rules an older config of ours kept there (returned as the
/// second value, read as FIREWALL's when the config has none).
pub fn conf_netfilter(conf: &ConfFile) -> Result<(Option<crate::netfilter::NfMode>, Option<String>), VeError> {
    let v = conf.get("NETFILTER").unwrap_or("");
    if v.trim().is_empty() {
        return Ok((None, None));
    }
    if let Some(m) = crate::netfilter::NfMode::parse(v) {
        return Ok((Some(m), None));
    }
    if crate::netfilter::parse_rules(&[v]).is_ok() {
        return Ok((None, Some(v.to_string())));
    }
    Err(VeError::BadValue {
        key: "netfilter",
        value: v.escape_default().to_string(),
        why: "use disabled, stateless, stateful or full (OpenVZ's NETFILTER; firewall rules go in FIREWALL)",
    })
}

/// Moves firewall rules an older config of ours kept in NETFILTER to FIREWALL (NETFILTER
/// is OpenVZ's netfilter mode). Returns whether the config changed.
pub fn move_legacy_rules(conf: &mut ConfFile) -> bool {
    match conf_netfilter(conf) {
        Ok((None, Some(rules))) => {
            if conf.get(crate::netfilter::FIREWALL_KEY).is_none() {
                conf.set(crate::netfilter::FIREWALL_KEY, &rules);
            }
            conf.remove("NETFILTER");
            true
        }
        _ => false,
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
    let layout = conf.get("VE_LAYOUT").map(disk::Layout::parse).transpose()?.unwrap_or(disk::Layout::Simfs);
    let space = conf.get("DISKSPACE").map(disk::parse_diskspace).transpose()?;
    let inodes = conf.get("DISKINODES").map(disk::parse_diskinodes).transpose()?;
    // OpenVZ's DISK_QUOTA=no: no disk quota for the VE (a ploop image still takes its size
    // from DISKSPACE).
    let quota = conf.get("DISK_QUOTA").map(str::trim) != Some("no") || layout != disk::Layout::Simfs;
    Ok(DiskConf { layout, space: space.filter(|_| quota), inodes: inodes.filter(|_| quota), ugid })
}

/// OpenVZ config keys a stock kernel gives no meaning here, with the reason: said at
/// every start, never dropped silently (the values are kept in the file).
const UNUSED_KEYS: [(&str, &str); 8] = [
    ("AVNUMPROC", "an estimate for OpenVZ's vzcfgvalidate, not a limit"),
    ("QUOTATIME", "soft disk limits have no grace period here: the hard limit is what holds"),
    ("JOURNALED_QUOTA", "simfs quota here is the host's project quota, journaled by the file system"),
    ("NODEMASK", "NUMA node binding is not applied (CPUMASK is)"),
    ("PCI", "PCI devices are not passed to containers"),
    ("MEMINFO", "/proc/meminfo in a container shows its memory cgroup (LXCFS), not a set figure"),
    ("HA_ENABLE", "there is no HA cluster manager here"),
    ("HA_PRIO", "there is no HA cluster manager here"),
];

/// The OpenVZ keys of `conf` that are kept but not used here, each with why.
pub fn unused_keys(conf: &ConfFile) -> Vec<String> {
    UNUSED_KEYS
        .iter()
        // QUOTATIME=0 (no grace period) is what holds here anyway.
        .filter(|(k, _)| conf.get(k).is_some_and(|v| !(v.trim().is_empty() || *k == "QUOTATIME" && v.trim() == "0")))
        .map(|(k, why)| format!("{k} is kept but not used: {why}"))
        .collect()
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

/// OpenVZ's VSwap samples (vzctl 4.x's `ve-vswap-*.conf-sample`), their values as shipped:
/// RAM and swap, a 2G disk, CPU weight 1000, netfilter stateless. (name, RAM, swap)
const VSWAP_SAMPLES: [(&str, &str, &str); 6] = [
    ("vswap-256m", "256M", "512M"),
    ("vswap-512m", "512M", "1G"),
    ("vswap-1024m", "1G", "2G"),
    ("vswap-1g", "1G", "2G"),
    ("vswap-2g", "2G", "4G"),
    ("vswap-4g", "4G", "8G"),
];

fn vswap_sample(ram: &str, swap: &str) -> String {
    format!(
        "# OpenVZ VSwap sample: {ram} of RAM, {swap} of swap.\n\
         PHYSPAGES=\"0:{ram}\"\nSWAPPAGES=\"0:{swap}\"\n\
         DISKSPACE=\"2G:2.2G\"\nDISKINODES=\"131072:144179\"\nQUOTATIME=\"0\"\n\
         CPUUNITS=\"1000\"\nNETFILTER=\"stateless\"\n"
    )
}

/// OpenVZ's `ve-unlimited.conf-sample`, its values as shipped.
pub const SAMPLE_UNLIMITED: &str = "\
# Unlimited VE: no beancounter limits, no disk quota (OpenVZ's sample).
VERSION=\"2\"
ONBOOT=\"no\"
AVNUMPROC=\"unlimited\"
NUMPROC=\"unlimited\"
NUMTCPSOCK=\"419430\"
NUMOTHERSOCK=\"419430\"
VMGUARPAGES=\"unlimited\"
KMEMSIZE=\"unlimited\"
TCPSNDBUF=\"1073741823:2147483647\"
TCPRCVBUF=\"1073741823:2147483647\"
OTHERSOCKBUF=\"1073741823:2147483647\"
DGRAMRCVBUF=\"unlimited\"
OOMGUARPAGES=\"unlimited\"
LOCKEDPAGES=\"unlimited\"
SHMPAGES=\"unlimited\"
PRIVVMPAGES=\"unlimited\"
NUMFILE=\"unlimited\"
NUMFLOCK=\"unlimited\"
NUMPTY=\"unlimited\"
NUMSIGINFO=\"unlimited\"
DCACHESIZE=\"unlimited\"
PHYSPAGES=\"0:unlimited\"
NUMIPTENT=\"unlimited\"
DISK_QUOTA=\"no\"
";

/// Every sample vzctl installs: (name, text).
pub fn samples() -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("basic", SAMPLE_BASIC.to_string()),
        ("light", SAMPLE_LIGHT.to_string()),
        ("unlimited", SAMPLE_UNLIMITED.to_string()),
    ];
    v.extend(VSWAP_SAMPLES.iter().map(|(n, r, s)| (*n, vswap_sample(r, s))));
    v
}

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
            "NUMPROC=\"40:50\"\nIP_ADDRESS=\"10.0.0.2 fd00::2\"\nRATE=\"8000\"\nFIREWALL=\"deny in tcp 25\"\nNETFILTER=\"stateless\"\nIOPRIO=\"6\"\n",
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
