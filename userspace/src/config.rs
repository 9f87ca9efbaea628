//! Controller settings and VEID rules. Every path can be redirected (flag or environment),
//! so tests run against their own pin root and cgroup parent.
use std::path::PathBuf;

pub const DEFAULT_BPF_ROOT: &str = "/sys/fs/bpf/vz";
pub const DEFAULT_CGROUP_PARENT: &str = "vz";
/// VEIDs up to this are reserved (0 is the host), as in OpenVZ.
pub const MAX_RESERVED_VEID: u32 = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid VEID '{0}': VEIDs are integers above {MAX_RESERVED_VEID} (0..{MAX_RESERVED_VEID} are reserved)")]
    BadVeid(String),
}

/// Parses a VEID as vzctl does: a decimal integer above the reserved range.
pub fn parse_veid(s: &str) -> Result<u32, ConfigError> {
    match s.parse::<u32>() {
        Ok(v) if v > MAX_RESERVED_VEID && s.bytes().all(|b| b.is_ascii_digit()) => Ok(v),
        _ => Err(ConfigError::BadVeid(s.to_string())),
    }
}

/// Where the controller keeps its kernel-side state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// bpffs pin root (`VZ_BPF_ROOT`).
    pub bpf_root: PathBuf,
    /// VE parent relative to each cgroup hierarchy root (`VZ_CGROUP_PARENT`).
    pub cgroup_parent: String,
}

impl Default for Paths {
    fn default() -> Self {
        Self { bpf_root: DEFAULT_BPF_ROOT.into(), cgroup_parent: DEFAULT_CGROUP_PARENT.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veids() {
        assert_eq!(parse_veid("101"), Ok(101));
        assert_eq!(parse_veid("4294967295"), Ok(u32::MAX));
        for bad in ["0", "100", "-5", "abc", "", "+101", "101a", "4294967296"] {
            assert_eq!(parse_veid(bad), Err(ConfigError::BadVeid(bad.into())), "{bad}");
        }
        assert!(parse_veid("7").unwrap_err().to_string().contains("'7'"));
    }
}
