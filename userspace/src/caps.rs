//! OpenVZ's `--capability NAME:on|off` (config CAPABILITY="NET_ADMIN:off CHOWN:on"): which
//! capabilities the VE's processes may ever hold. A capability turned off is dropped from
//! the bounding set of the VE's init (after it entered its user namespace, which resets
//! the set) and of every process vzctl starts inside (`exec`, `enter`), which take the
//! init's bounding set. On by default, as on OpenVZ, but for `DEFAULT_OFF`. A running VE gets a change at its
//! next start (a process's bounding set only shrinks).

#[derive(Debug, thiserror::Error)]
pub enum CapError {
    #[error(
        "invalid value '{0}' for --capability: use NAME:on|off with a capability name such as net_admin or sys_time"
    )]
    Bad(String),
}

impl CapError {
    pub fn kind(&self) -> crate::kind::Kind {
        crate::kind::Kind::BadValue
    }
}

/// Capability names (as OpenVZ and capabilities(7) spell them, without CAP_), by number.
pub const NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// One setting: capability number and whether it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub bit: u32,
    pub on: bool,
}

/// OpenVZ's `NAME:on|off` (CAPABILITY, FEATURES): the name in lower case, and the state.
pub(crate) fn name_on_off(s: &str) -> Option<(String, bool)> {
    let (name, state) = s.split_once(':')?;
    let on = match state.trim() {
        "on" => true,
        "off" => false,
        _ => return None,
    };
    Some((name.trim().to_ascii_lowercase(), on))
}

/// `NAME:on|off`, the name in either case (OpenVZ writes them upper-case), `CAP_` allowed.
pub fn parse_cap(s: &str) -> Result<Cap, CapError> {
    let (name, on) = name_on_off(s).ok_or_else(|| CapError::Bad(s.to_string()))?;
    let name = name.strip_prefix("cap_").unwrap_or(&name);
    let bit = NAMES.iter().position(|n| *n == name).ok_or_else(|| CapError::Bad(s.to_string()))? as u32;
    Ok(Cap { bit, on })
}

/// A whole CAPABILITY value.
pub fn parse_caps(v: &str) -> Result<Vec<Cap>, CapError> {
    v.split_whitespace().map(parse_cap).collect()
}

/// As OpenVZ writes CAPABILITY.
pub fn format_caps(caps: &[Cap]) -> String {
    caps.iter()
        .map(|c| format!("{}:{}", NAMES[c.bit as usize].to_ascii_uppercase(), if c.on { "on" } else { "off" }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The settings after a set: a capability given again takes its new state.
pub fn merge(old: &[Cap], new: &[Cap]) -> Vec<Cap> {
    let mut out: Vec<Cap> = old.iter().filter(|o| !new.iter().any(|n| n.bit == o.bit)).copied().collect();
    for n in new {
        out.retain(|o| o.bit != n.bit);
        out.push(*n);
    }
    out
}

/// Bits of the capabilities turned off.
pub fn drop_mask(caps: &[Cap]) -> u64 {
    let on = caps.iter().filter(|c| c.on).fold(0, |m, c| m | 1 << c.bit);
    caps.iter().filter(|c| !c.on).fold(DEFAULT_OFF & !on, |m, c| m | 1 << c.bit)
}

/// Off unless the config turns them on. sys_rawio gives nothing in a VE's user namespace
/// (the kernel checks it against the host's), and with it in the bounding set systemd
/// tries to mount debugfs and tracefs, which a VE cannot, and boots "degraded" (LXC and
/// systemd-nspawn drop it too).
pub const DEFAULT_OFF: u64 = 1 << 17;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openvz_spellings_parse_and_merge() {
        assert_eq!(parse_cap("NET_ADMIN:off").unwrap(), Cap { bit: 12, on: false });
        assert_eq!(parse_cap("cap_sys_time:on").unwrap(), Cap { bit: 25, on: true });
        for b in ["net_admin", "net_admin:maybe", "foo:on", ":off"] {
            assert!(parse_cap(b).unwrap_err().to_string().contains(&format!("'{b}'")), "{b}");
        }
        let old = parse_caps("NET_ADMIN:off CHOWN:off").unwrap();
        let m = merge(&old, &parse_caps("chown:on sys_time:off").unwrap());
        assert_eq!(format_caps(&m), "NET_ADMIN:off CHOWN:on SYS_TIME:off");
        assert_eq!(drop_mask(&m), 1 << 12 | 1 << 25 | DEFAULT_OFF);
        assert_eq!(drop_mask(&parse_caps("sys_rawio:on").unwrap()), 0, "turned on by the config");
        assert_eq!(drop_mask(&[]), 1 << 17, "sys_rawio is off by default");
    }
}
