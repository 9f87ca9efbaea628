//! OpenVZ's `--features NAME:on|off` (config FEATURES="tun:on fuse:on"), each mapped to
//! what it means on a stock kernel, or refused with the reason:
//! - `tun`, `fuse`, `ppp`: the device (/dev/net/tun, /dev/fuse, /dev/ppp) granted to the VE
//!   and its node made in the VE's /dev (see `devices`); refused where the host has no
//!   such device.
//! - `bridge`, `ipip`, `sit`, `ipgre`: the VE's root may make these interfaces in its own
//!   network namespace once the host's kernel has them; a user namespace cannot load a
//!   module, so a feature whose module is not loaded on the host is refused, naming it.
//! - `sysfs`: every VE has its /sys; `off` is refused.
//! - `nfs`, `nfsd`: refused: the kernel lets no user namespace mount NFS or serve it.
use crate::devices::DevNode;
use vz_common::{DEV_ACC_READ, DEV_ACC_WRITE};

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("invalid value '{0}' for --features: use NAME:on|off with NAME one of tun, fuse, ppp, bridge, ipip, sit, ipgre, sysfs, nfs, nfsd")]
    Bad(String),
    #[error("invalid value '{value}' for --features: {why}")]
    Unavailable { value: String, why: String },
}

impl FeatureError {
    pub fn kind(&self) -> crate::kind::Kind {
        crate::kind::Kind::BadValue
    }
}

pub const NAMES: [&str; 10] = ["tun", "fuse", "ppp", "bridge", "ipip", "sit", "ipgre", "sysfs", "nfs", "nfsd"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    pub name: &'static str,
    pub on: bool,
}

pub fn parse_feature(s: &str) -> Result<Feature, FeatureError> {
    let bad = || FeatureError::Bad(s.to_string());
    let (name, on) = crate::caps::name_on_off(s).ok_or_else(bad)?;
    let name = NAMES.iter().copied().find(|n| *n == name).ok_or_else(bad)?;
    Ok(Feature { name, on })
}

pub fn parse_features(v: &str) -> Result<Vec<Feature>, FeatureError> {
    v.split_whitespace().map(parse_feature).collect()
}

pub fn format_features(f: &[Feature]) -> String {
    f.iter().map(|x| format!("{}:{}", x.name, if x.on { "on" } else { "off" })).collect::<Vec<_>>().join(" ")
}

pub fn merge(old: &[Feature], new: &[Feature]) -> Vec<Feature> {
    let mut out: Vec<Feature> = old.iter().filter(|o| !new.iter().any(|n| n.name == o.name)).cloned().collect();
    for n in new {
        out.retain(|o| o.name != n.name);
        out.push(n.clone());
    }
    out
}

/// The device node a feature grants, if it is one.
fn node_of(name: &str) -> Option<&'static str> {
    match name {
        "tun" => Some("net/tun"),
        "fuse" => Some("fuse"),
        "ppp" => Some("ppp"),
        _ => None,
    }
}

/// The kernel module a feature needs on the host.
fn module_of(name: &str) -> Option<&'static str> {
    match name {
        "bridge" => Some("bridge"),
        "ipip" => Some("ipip"),
        "sit" => Some("sit"),
        "ipgre" => Some("ip_gre"),
        _ => None,
    }
}

/// Whether `f` can be had on this host; why not if it cannot. `has_module` and `has_node`
/// look at the host (a seam for the unit tests).
pub fn check(
    f: &Feature,
    has_module: impl Fn(&str) -> bool,
    has_node: impl Fn(&str) -> bool,
) -> Result<(), FeatureError> {
    let value = format!("{}:{}", f.name, if f.on { "on" } else { "off" });
    let no = |why: String| Err(FeatureError::Unavailable { value: value.clone(), why });
    match (f.name, f.on) {
        (_, false) if f.name != "sysfs" => Ok(()),
        ("sysfs", false) => no("every container has its /sys".into()),
        ("sysfs", true) => Ok(()),
        ("nfs" | "nfsd", true) => no("the kernel lets no user namespace mount NFS or serve it".into()),
        (n, true) => {
            if let Some(node) = node_of(n).filter(|node| !has_node(node)) {
                return no(format!("this host has no /dev/{node}"));
            }
            if let Some(m) = module_of(n).filter(|m| !has_module(m)) {
                return no(format!("the host's kernel has no {m} loaded (a container cannot load modules)"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `check` against this host.
pub fn check_host(f: &Feature) -> Result<(), FeatureError> {
    check(
        f,
        |m| std::path::Path::new("/sys/module").join(m).exists(),
        |n| std::path::Path::new("/dev").join(n).exists(),
    )
}

/// The device nodes the features turned on grant (read and write).
pub fn nodes(features: &[Feature]) -> Vec<DevNode> {
    features
        .iter()
        .filter(|f| f.on)
        .filter_map(|f| node_of(f.name))
        .map(|n| DevNode { name: n.to_string(), perm: DEV_ACC_READ | DEV_ACC_WRITE })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_map_to_devices_or_are_refused_with_the_reason() {
        let f = parse_features("tun:on fuse:off bridge:on").unwrap();
        assert_eq!(
            format_features(&merge(&f, &parse_features("fuse:on tun:off").unwrap())),
            "bridge:on fuse:on tun:off"
        );
        assert_eq!(nodes(&f).iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["net/tun"]);
        for b in ["tun", "tun:yes", "zfs:on"] {
            assert!(parse_feature(b).unwrap_err().to_string().contains(&format!("'{b}'")), "{b}");
        }
        let host = |m: &str| m == "bridge";
        let dev = |n: &str| n != "ppp";
        assert!(check(&parse_feature("bridge:on").unwrap(), host, dev).is_ok());
        let e = check(&parse_feature("ipip:on").unwrap(), host, dev).unwrap_err().to_string();
        assert!(e.contains("'ipip:on'") && e.contains("ipip loaded"), "{e}");
        assert!(check(&parse_feature("ppp:on").unwrap(), host, dev).unwrap_err().to_string().contains("/dev/ppp"));
        assert!(check(&parse_feature("nfs:on").unwrap(), host, dev).unwrap_err().to_string().contains("NFS"));
        assert!(check(&parse_feature("sysfs:off").unwrap(), host, dev).is_err());
        assert!(check(&parse_feature("ipip:off").unwrap(), host, dev).is_ok());
    }
}
