//! What went wrong, in the classes OpenVZ's exit codes name. Every module's error says its
//! kind (`kind()`); the binaries exit with `Kind::exit_code`. Errors that wrap another
//! module's error take the inner kind, so a cgroup failure reached through `set` exits as
//! a cgroup failure does everywhere.

/// vzctl exit codes, as OpenVZ's vzerror.h numbers them.
pub mod exit {
    pub const SETUBC_ERROR: i32 = 1;
    pub const SYSTEM_ERROR: i32 = 3;
    pub const BAD_KERNEL: i32 = 5;
    pub const ENVCREATE_ERROR: i32 = 7;
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
    pub const CHANGEPASS: i32 = 74;
    pub const IP_INUSE: i32 = 78;
    pub const ACTIONSCRIPT_ERROR: i32 = 79;
    pub const VE_START_DISABLED: i32 = 105;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value the admin gave (or a config holds) is not acceptable.
    BadValue,
    /// The kernel took a beancounter limit badly, or the maps refused it.
    Limits,
    /// A system call or file operation on the host failed.
    System,
    /// This kernel cannot run what vzbpf needs (no bpf(), programs rejected).
    BadKernel,
    /// The VE's namespaces or init could not be made.
    EnvCreate,
    /// A command run in the VE failed.
    Exec,
    /// Another vzctl holds the VE's lock.
    Locked,
    /// No such VE.
    NoConfig,
    NotRunning,
    Running,
    NotMounted,
    /// The VE (or its private area) already exists.
    Exists,
    /// No such template, or it cannot be made.
    BadTemplate,
    IpInUse,
    /// The VE is DISABLED: start refused without --force.
    StartDisabled,
    /// A password could not be set in the VE.
    ChangePass,
    /// An admin's action script (VEID.mount, ...) failed.
    ActionScript,
}

impl Kind {
    pub const ALL: [Kind; 17] = [
        Kind::BadValue,
        Kind::Limits,
        Kind::System,
        Kind::BadKernel,
        Kind::EnvCreate,
        Kind::Exec,
        Kind::Locked,
        Kind::NoConfig,
        Kind::NotRunning,
        Kind::Running,
        Kind::NotMounted,
        Kind::Exists,
        Kind::BadTemplate,
        Kind::IpInUse,
        Kind::StartDisabled,
        Kind::ChangePass,
        Kind::ActionScript,
    ];

    pub fn exit_code(self) -> i32 {
        match self {
            Kind::BadValue => exit::INVALID_PARAMETER_VALUE,
            Kind::Limits => exit::SETUBC_ERROR,
            Kind::System => exit::SYSTEM_ERROR,
            Kind::BadKernel => exit::BAD_KERNEL,
            Kind::EnvCreate => exit::ENVCREATE_ERROR,
            Kind::Exec => exit::COMMAND_EXECUTION_ERROR,
            Kind::Locked => exit::LOCKED,
            Kind::NoConfig => exit::NOVECONFIG,
            Kind::NotRunning => exit::VE_NOT_RUNNING,
            Kind::Running => exit::VE_RUNNING,
            Kind::NotMounted => exit::FS_NOT_MOUNTED,
            Kind::Exists => exit::FS_PRVT_AREA_EXIST,
            Kind::BadTemplate => exit::FS_BAD_TMPL,
            Kind::IpInUse => exit::IP_INUSE,
            Kind::StartDisabled => exit::VE_START_DISABLED,
            Kind::ChangePass => exit::CHANGEPASS,
            Kind::ActionScript => exit::ACTIONSCRIPT_ERROR,
        }
    }
}
