//! vzbpf: OpenVZ-style Virtual Environments on a stock kernel.
//!
//! The library holds the logic; `vzctl` and `vzlist` are thin binaries on top.
pub mod bpf;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod cpu;
pub mod disk;
pub mod idmap;
pub mod inroot;
pub mod io;
pub mod list;
pub mod lock;
pub mod net;
pub mod netfilter;
pub mod ns;
#[cfg(test)]
mod props;
pub mod pty;
pub mod relay;
pub mod report;
mod set;
pub mod sys;
pub mod template;
pub mod ubc;
pub mod units;
pub mod ve;

pub use bpf::{Bpf, BpfConfig, BpfError};
pub use cgroup::{CgroupError, Cgroups};
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

/// vzctl exit codes, as OpenVZ's vzerror.h numbers them.
pub mod exit {
    pub const SETUBC_ERROR: i32 = 1;
    pub const SYSTEM_ERROR: i32 = 3;
    pub const BAD_KERNEL: i32 = 5;
    pub const COMMAND_EXECUTION_ERROR: i32 = 8;
    pub const LOCKED: i32 = 9;
    pub const NOVECONFIG: i32 = 14;
    pub const INVALID_PARAMETER_SYNTAX: i32 = 20;
    pub const INVALID_PARAMETER_VALUE: i32 = 21;
    pub const VE_NOT_RUNNING: i32 = 31;
    pub const VE_RUNNING: i32 = 32;
    pub const FS_NOT_MOUNTED: i32 = 40;
    pub const FS_PRVT_AREA_EXIST: i32 = 44;
    pub const FS_BAD_TMPL: i32 = 47;
    pub const ENVCREATE_ERROR: i32 = 7;
    pub const IP_INUSE: i32 = 78;
}

fn bpf_code(e: &BpfError) -> i32 {
    match e {
        BpfError::NotPrivileged { .. }
        | BpfError::NoBpfSyscall
        | BpfError::BpfDenied
        | BpfError::ProgramRejected { .. } => exit::BAD_KERNEL,
        BpfError::NoVe(_) => exit::VE_NOT_RUNNING,
        _ => exit::SETUBC_ERROR,
    }
}

impl Error {
    /// The exit code vzctl uses for this failure.
    pub fn exit_code(&self) -> i32 {
        use template::TemplateError as T;
        match self {
            Error::Bpf(e) | Error::Ve(VeError::Bpf(e)) => bpf_code(e),
            Error::Cgroup(CgroupError::VeNotRunning { .. }) | Error::Ve(VeError::NotRunning(_)) => exit::VE_NOT_RUNNING,
            Error::Cgroup(_)
            | Error::Ve(
                VeError::Cgroup(_)
                | VeError::Cpu(cpu::CpuError::Cgroup(_))
                | VeError::Io { .. }
                | VeError::Lock(lock::LockError::Io { .. })
                | VeError::NoIds(_),
            ) => exit::SYSTEM_ERROR,
            Error::Ve(VeError::Lock(lock::LockError::Busy { .. })) => exit::LOCKED,
            Error::Ubc(_) | Error::Config(_) | Error::Ve(VeError::Ubc(_) | VeError::Config(_)) => {
                exit::INVALID_PARAMETER_VALUE
            }
            Error::Ve(VeError::BadValue { .. } | VeError::BadName(_) | VeError::NameTaken { .. }) => {
                exit::INVALID_PARAMETER_VALUE
            }
            Error::Ve(VeError::NotExist(_)) => exit::NOVECONFIG,
            Error::Ve(VeError::IpInUse { .. }) => exit::IP_INUSE,
            Error::Ve(VeError::Rule(_)) => exit::INVALID_PARAMETER_VALUE,
            Error::Ve(VeError::Cpu(cpu::CpuError::Bad { .. })) => exit::INVALID_PARAMETER_VALUE,
            Error::Ve(VeError::BlkIo(
                io::IoError::Bad { .. } | io::IoError::NoDevice(_) | io::IoError::NoScheduler { .. },
            )) => exit::INVALID_PARAMETER_VALUE,
            Error::Ve(VeError::BlkIo(_)) => exit::SYSTEM_ERROR,
            Error::Ve(VeError::Disk(disk::DiskError::Bad { .. })) => exit::INVALID_PARAMETER_VALUE,
            Error::Ve(VeError::Disk(_)) => exit::SYSTEM_ERROR,
            Error::Ve(VeError::Net(
                net::NetError::BadAddress(_)
                | net::NetError::Unusable { .. }
                | net::NetError::BadNetif(_)
                | net::NetError::BadRate(_),
            )) => exit::INVALID_PARAMETER_VALUE,
            Error::Ve(VeError::Net(_)) => exit::SYSTEM_ERROR,
            Error::Ve(VeError::NoSample { .. }) => exit::INVALID_PARAMETER_VALUE,
            Error::Ve(VeError::Exists(_)) => exit::FS_PRVT_AREA_EXIST,
            Error::Ve(VeError::Running(_)) => exit::VE_RUNNING,
            Error::Ve(VeError::NotMounted(_)) => exit::FS_NOT_MOUNTED,
            Error::Template(T::Unknown { .. } | T::BadName(_))
            | Error::Ve(VeError::Template(T::Unknown { .. } | T::BadName(_))) => exit::FS_BAD_TMPL,
            Error::Template(_) | Error::Ve(VeError::Template(_)) => exit::FS_BAD_TMPL,
            Error::Ve(VeError::Ns(_) | VeError::Injected(_)) => exit::ENVCREATE_ERROR,
            Error::Ve(VeError::Exec(_)) => exit::COMMAND_EXECUTION_ERROR,
        }
    }
}
