//! Devices a VE may use beyond its own /dev, as OpenVZ's vzctl sets them:
//! `--devnodes NAME:r|w|rw|none` (the host's /dev/NAME appears in the VE's /dev and may be
//! used so; config DEVNODES) and `--devices b|c:MAJOR:MINOR|all:r|w|rw|none` (access only;
//! config DEVICES). The kernel decides every open and mknod by the global `vz_device`
//! program and the `VZ_DEVICES` map (see `ebpf/src/device.rs`); this module is the parsing,
//! merging and the map's entries, with no I/O but the host's /dev lookups.
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};

use vz_common::{DEV_ACC_READ, DEV_ACC_WRITE, DEV_ANY_MINOR, DEV_BLOCK, DEV_CHAR};

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("invalid value '{value}' for --{key}: {why}")]
    Bad { key: &'static str, value: String, why: String },
}

impl DevError {
    pub fn kind(&self) -> crate::kind::Kind {
        crate::kind::Kind::BadValue
    }
}

fn bad(key: &'static str, value: &str, why: impl Into<String>) -> DevError {
    DevError::Bad { key, value: value.to_string(), why: why.into() }
}

/// `r`, `w`, `rw` or `none` as `DEV_ACC_*` bits.
fn parse_perm(key: &'static str, whole: &str, s: &str) -> Result<u32, DevError> {
    match s {
        "r" => Ok(DEV_ACC_READ),
        "w" => Ok(DEV_ACC_WRITE),
        "rw" | "wr" => Ok(DEV_ACC_READ | DEV_ACC_WRITE),
        "none" => Ok(0),
        _ => Err(bad(key, whole, "the access must be r, w, rw or none")),
    }
}

fn perm_text(p: u32) -> &'static str {
    match p & (DEV_ACC_READ | DEV_ACC_WRITE) {
        DEV_ACC_READ => "r",
        DEV_ACC_WRITE => "w",
        0 => "none",
        _ => "rw",
    }
}

/// One `--devnodes` entry: a node under /dev (e.g. `sdb1`, `net/tun`) and its access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevNode {
    pub name: String,
    pub perm: u32,
}

/// One `--devices` entry: block or char, major, minor (`DEV_ANY_MINOR`: all), access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevRule {
    pub kind: u32,
    pub major: u32,
    pub minor: u32,
    pub perm: u32,
}

/// `NAME:perm`: NAME relative to /dev, plain names and `/` only (no `..`, no leading `/`).
pub fn parse_devnode(s: &str) -> Result<DevNode, DevError> {
    let (name, perm) = s.rsplit_once(':').ok_or_else(|| bad("devnodes", s, "use NAME:r|w|rw|none"))?;
    let name = name.strip_prefix("/dev/").unwrap_or(name);
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-+".contains(c);
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && p.chars().all(ok_char));
    if !ok {
        return Err(bad("devnodes", s, "the name must be a node under /dev, like sdb1 or net/tun"));
    }
    if ["pts", "shm", "ptmx", "fd", "stdin", "stdout", "stderr"].contains(&name.split('/').next().unwrap_or("")) {
        return Err(bad("devnodes", s, "that name is the VE's own /dev"));
    }
    Ok(DevNode { name: name.to_string(), perm: parse_perm("devnodes", s, perm)? })
}

/// `b|c:MAJOR:MINOR|all:perm`.
pub fn parse_device(s: &str) -> Result<DevRule, DevError> {
    let f: Vec<&str> = s.split(':').collect();
    let [kind, major, minor, perm] = f[..] else {
        return Err(bad("devices", s, "use b|c:MAJOR:MINOR|all:r|w|rw|none"));
    };
    let kind = match kind {
        "b" => DEV_BLOCK,
        "c" => DEV_CHAR,
        _ => return Err(bad("devices", s, "the type must be b (block) or c (char)")),
    };
    let num = |v: &str| v.parse::<u32>().ok().filter(|n| *n < (1 << 20));
    let major = num(major).ok_or_else(|| bad("devices", s, "the major must be a number below 2^20"))?;
    let minor = match minor {
        "all" => DEV_ANY_MINOR,
        m => num(m).ok_or_else(|| bad("devices", s, "the minor must be a number below 2^20 or all"))?,
    };
    Ok(DevRule { kind, major, minor, perm: parse_perm("devices", s, perm)? })
}

/// Parses a whole DEVNODES or DEVICES value (space-separated entries).
pub fn parse_devnodes(v: &str) -> Result<Vec<DevNode>, DevError> {
    v.split_whitespace().map(parse_devnode).collect()
}

pub fn parse_devices(v: &str) -> Result<Vec<DevRule>, DevError> {
    v.split_whitespace().map(parse_device).collect()
}

pub fn format_devnodes(nodes: &[DevNode]) -> String {
    nodes.iter().map(|n| format!("{}:{}", n.name, perm_text(n.perm))).collect::<Vec<_>>().join(" ")
}

pub fn format_devices(rules: &[DevRule]) -> String {
    rules
        .iter()
        .map(|r| {
            let minor = if r.minor == DEV_ANY_MINOR { "all".to_string() } else { r.minor.to_string() };
            format!("{}:{}:{minor}:{}", if r.kind == DEV_BLOCK { "b" } else { "c" }, r.major, perm_text(r.perm))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// DEVNODES after a set: a name given again takes its new access; `none` removes it.
pub fn merge_devnodes(old: &[DevNode], new: &[DevNode]) -> Vec<DevNode> {
    let mut out: Vec<DevNode> = old.iter().filter(|o| !new.iter().any(|n| n.name == o.name)).cloned().collect();
    out.extend(new.iter().filter(|n| n.perm != 0).cloned());
    out
}

/// DEVICES after a set: a device given again takes its new access. `none` is kept as a
/// refusal: it takes away a device a node grants, or one every VE has (`DEV_DEFAULTS`).
pub fn merge_devices(old: &[DevRule], new: &[DevRule]) -> Vec<DevRule> {
    let same = |a: &DevRule, b: &DevRule| (a.kind, a.major, a.minor) == (b.kind, b.major, b.minor);
    let mut out: Vec<DevRule> = old.iter().filter(|o| !new.iter().any(|n| same(n, o))).copied().collect();
    out.extend(new.iter().copied());
    out
}

/// The host's /dev/NAME: (block or char, major, minor, mode bits).
pub fn host_node(name: &str) -> Result<(u32, u32, u32, u32), DevError> {
    let p = std::path::Path::new("/dev").join(name);
    let md = std::fs::metadata(&p).map_err(|e| bad("devnodes", name, format!("{}: {e}", p.display())))?;
    let kind = if md.file_type().is_block_device() {
        DEV_BLOCK
    } else if md.file_type().is_char_device() {
        DEV_CHAR
    } else {
        return Err(bad("devnodes", name, format!("{} is not a device node", p.display())));
    };
    let rdev = md.rdev();
    Ok((kind, libc::major(rdev), libc::minor(rdev), md.mode() & 0o7777))
}

/// The map's entries for a VE: its nodes' devices, then DEVICES (which win for a device
/// named twice). Nodes missing on the host give no entry (vzctl says so when it makes them).
pub fn grants(nodes: &[DevNode], rules: &[DevRule]) -> Vec<DevRule> {
    let mut out: Vec<DevRule> = Vec::new();
    let mut put = |r: DevRule| {
        out.retain(|o| (o.kind, o.major, o.minor) != (r.kind, r.major, r.minor));
        out.push(r);
    };
    for n in nodes {
        if let Ok((kind, major, minor, _)) = host_node(&n.name) {
            put(DevRule { kind, major, minor, perm: n.perm });
        }
    }
    for r in rules {
        put(*r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devnodes_and_devices_parse_as_openvz_writes_them() {
        assert_eq!(parse_devnode("sdb1:rw").unwrap(), DevNode { name: "sdb1".into(), perm: 6 });
        assert_eq!(parse_devnode("/dev/net/tun:r").unwrap(), DevNode { name: "net/tun".into(), perm: 2 });
        assert_eq!(parse_devnode("ttyS0:none").unwrap().perm, 0);
        for b in ["sdb1", "../etc/passwd:rw", "a//b:r", "pts/0:rw", "sdb1:x", ":rw", "a b:rw"] {
            let e = parse_devnode(b).unwrap_err().to_string();
            assert!(e.contains(&format!("'{b}'")), "{b}: {e}");
        }
        assert_eq!(parse_device("b:7:3:r").unwrap(), DevRule { kind: DEV_BLOCK, major: 7, minor: 3, perm: 2 });
        assert_eq!(parse_device("c:4:all:rw").unwrap().minor, DEV_ANY_MINOR);
        for b in ["x:1:2:r", "b:1:2", "b:one:2:r", "c:1:2:rwx", "c:1:99999999:r"] {
            assert!(parse_device(b).unwrap_err().to_string().contains(&format!("'{b}'")), "{b}");
        }
        let all = parse_devices("b:7:3:r c:4:all:rw c:1:3:none").unwrap();
        assert_eq!(format_devices(&all), "b:7:3:r c:4:all:rw c:1:3:none");
        assert_eq!(format_devnodes(&parse_devnodes("net/tun:rw sdb1:w").unwrap()), "net/tun:rw sdb1:w");
    }

    #[test]
    fn a_set_replaces_entries_and_none_removes_them() {
        let old = parse_devnodes("sdb1:rw net/tun:rw").unwrap();
        let m = merge_devnodes(&old, &parse_devnodes("sdb1:r ttyS0:rw net/tun:none").unwrap());
        assert_eq!(format_devnodes(&m), "sdb1:r ttyS0:rw");
        let old = parse_devices("b:7:3:rw c:4:all:r").unwrap();
        // none replaces a grant and stays, a refusal (of a node's device, or a default one).
        let m = merge_devices(&old, &parse_devices("b:7:3:none c:1:3:none c:4:all:rw").unwrap());
        assert_eq!(format_devices(&m), "b:7:3:none c:1:3:none c:4:all:rw");
        let g = grants(&[], &m);
        assert_eq!(g.iter().find(|r| r.major == 7).map(|r| r.perm), Some(0));
    }

    #[test]
    fn devices_win_over_nodes_of_the_same_device() {
        // /dev/null exists on every host: c 1:3.
        let g = grants(&parse_devnodes("null:r").unwrap(), &parse_devices("c:1:3:rw b:7:0:r").unwrap());
        assert_eq!(g.len(), 2);
        assert_eq!(g[0], DevRule { kind: DEV_CHAR, major: 1, minor: 3, perm: DEV_ACC_READ | DEV_ACC_WRITE });
        assert!(host_node("nonexistent-node").is_err());
        assert!(host_node("pts").unwrap_err().to_string().contains("not a device node"));
    }
}
