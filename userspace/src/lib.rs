//! vzbpf: OpenVZ-style Virtual Environments on a stock kernel.
//!
//! The library holds the logic; `vzctl` and `vzlist` are thin binaries on top.
pub mod bpf;
pub mod caps;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod console;
pub mod cpu;
pub mod criu;
pub mod daemon;
pub mod devices;
pub mod disk;
pub mod docs;
pub mod events;
pub mod features;
pub mod given;
pub mod glob;
pub mod idmap;
pub mod io;
pub mod json;
pub mod kind;
pub mod list;
pub mod lock;
pub mod log;
pub mod lxcfs;
pub mod metrics;
pub mod net;
pub mod netfilter;
pub mod ns;
pub mod passwd;
#[cfg(test)]
mod props;
pub mod pty;
pub mod relay;
pub mod report;
pub mod sys;
pub mod template;
pub mod ubc;
pub mod units;
pub mod ve;

pub use bpf::{Bpf, BpfConfig, BpfError};
pub use cgroup::{CgroupError, Cgroups};
pub use kind::{exit, Kind};
pub use ubc::{Resource, UbcError};
pub use ve::{VeError, Vz};

/// Every failure the library reports; binaries turn it into a one-line message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Ubc(#[from] UbcError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Ve(#[from] VeError),
    #[error(transparent)]
    Template(#[from] template::TemplateError),
}

impl Error {
    /// The class of this failure.
    pub fn kind(&self) -> Kind {
        match self {
            Error::Bpf(e) => e.kind(),
            Error::Cgroup(e) => e.kind(),
            Error::Ubc(e) => e.kind(),
            Error::Config(e) => e.kind(),
            Error::Ve(e) => e.kind(),
            Error::Template(e) => e.kind(),
        }
    }

    /// The exit code vzctl uses for this failure.
    pub fn exit_code(&self) -> i32 {
        self.kind().exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> std::io::Error {
        std::io::Error::from_raw_os_error(libc::EBUSY)
    }

    #[test]
    fn wrapped_errors_exit_as_their_inner_kind() {
        let cases: Vec<(Error, i32)> = vec![
            (
                VeError::Ubc(UbcError::BarrierOverLimit { name: "numproc", value: "9:1".into(), barrier: 9, limit: 1 })
                    .into(),
                exit::INVALID_PARAMETER_VALUE,
            ),
            (VeError::Lock(lock::LockError::Busy { veid: 101, holder: None, secs: 1 }).into(), exit::LOCKED),
            (
                VeError::Cpu(cpu::CpuError::Cgroup(CgroupError::VeNotRunning { veid: 101, path: "/x".into() })).into(),
                exit::VE_NOT_RUNNING,
            ),
            (
                VeError::Ubc(UbcError::Cgroup(CgroupError::Io { op: "write", path: "/x".into(), source: io() })).into(),
                exit::SYSTEM_ERROR,
            ),
            (Error::Bpf(BpfError::NoBpfSyscall), exit::BAD_KERNEL),
            (VeError::Bpf(BpfError::NoVe(7)).into(), exit::VE_NOT_RUNNING),
            (VeError::IpInUse { ip: "10.0.0.1".into(), veid: 102 }.into(), exit::IP_INUSE),
            (VeError::NotExist(101).into(), exit::NOVECONFIG),
            (Error::Config(config::ConfigError::BadVeid("x".into())), exit::INVALID_PARAMETER_VALUE),
            (
                Error::Config(config::ConfigError::Io { op: "read", path: "/x".into(), source: io() }),
                exit::SYSTEM_ERROR,
            ),
            (VeError::Template(template::TemplateError::BadName("../x".into())).into(), exit::FS_BAD_TMPL),
            (VeError::Ns(ns::NsError::Init("died".into())).into(), exit::ENVCREATE_ERROR),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e}");
        }
    }

    #[test]
    fn every_kind_has_its_own_code() {
        let all = Kind::ALL;
        let codes: std::collections::BTreeSet<i32> = all.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes.len(), all.len());
        assert!(!codes.contains(&0));
    }
}
