//! vzbpf: OpenVZ-style Virtual Environments on a stock kernel.
//!
//! The library holds the logic; `vzctl` and friends are thin binaries on top.
pub mod bpf;
pub mod cgroup;
pub mod config;
pub mod ubc;

pub use bpf::{Bpf, BpfConfig, BpfError};
pub use cgroup::{CgroupError, Cgroups};
pub use ubc::{Resource, UbcError};

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
}

/// vzctl exit codes, as OpenVZ's vzerror.h numbers them.
pub mod exit {
    pub const SETUBC_ERROR: i32 = 1;
    pub const SYSTEM_ERROR: i32 = 3;
    pub const BAD_KERNEL: i32 = 5;
    pub const INVALID_PARAMETER_SYNTAX: i32 = 20;
    pub const INVALID_PARAMETER_VALUE: i32 = 21;
    pub const VE_NOT_RUNNING: i32 = 31;
}

impl Error {
    /// The exit code vzctl uses for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Bpf(
                BpfError::NotPrivileged { .. }
                | BpfError::NoBpfSyscall
                | BpfError::BpfDenied
                | BpfError::ProgramRejected { .. },
            ) => exit::BAD_KERNEL,
            Error::Bpf(BpfError::NoVe(_)) | Error::Cgroup(CgroupError::VeNotRunning { .. }) => {
                exit::VE_NOT_RUNNING
            }
            Error::Bpf(_) => exit::SETUBC_ERROR,
            Error::Cgroup(_) => exit::SYSTEM_ERROR,
            Error::Ubc(_) | Error::Config(_) => exit::INVALID_PARAMETER_VALUE,
        }
    }
}
