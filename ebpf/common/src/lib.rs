//! Types shared by the kernel side (`ebpf/`) and the controller (`userspace/`).
//!
//! Everything here is `#[repr(C)]` and lives in BPF maps, so a field change is a map
//! layout change: bump [`LAYOUT_VERSION`] and the map names that carry it.
#![no_std]

/// Version of the map layouts below. Part of every pinned map name, so a controller with a
/// different layout never reads a map it does not understand.
pub const LAYOUT_VERSION: u32 = 1;

/// Number of beancounter slots in a per-VE record. OpenVZ numbers its resources 0..=24
/// (swappages is 24); the record keeps a slot for each id, with room to spare, so adding a
/// resource does not change the layout.
pub const UB_SLOTS: usize = 32;

/// "unlimited": LONG_MAX, as OpenVZ prints it.
pub const UB_UNLIMITED: u64 = i64::MAX as u64;

/// Beancounter resource ids, numbered as in OpenVZ's kernel (`include/bc/beancounter.h`), which
/// is also the row order of `/proc/user_beancounters`.
pub mod res {
    pub const KMEMSIZE: u32 = 0;
    pub const LOCKEDPAGES: u32 = 1;
    pub const PRIVVMPAGES: u32 = 2;
    pub const SHMPAGES: u32 = 3;
    pub const NUMPROC: u32 = 5;
    pub const PHYSPAGES: u32 = 6;
    pub const VMGUARPAGES: u32 = 7;
    pub const OOMGUARPAGES: u32 = 8;
    pub const NUMTCPSOCK: u32 = 9;
    pub const NUMFLOCK: u32 = 10;
    pub const NUMPTY: u32 = 11;
    pub const NUMSIGINFO: u32 = 12;
    pub const TCPSNDBUF: u32 = 13;
    pub const TCPRCVBUF: u32 = 14;
    pub const OTHERSOCKBUF: u32 = 15;
    pub const DGRAMRCVBUF: u32 = 16;
    pub const NUMOTHERSOCK: u32 = 17;
    pub const DCACHESIZE: u32 = 18;
    pub const NUMFILE: u32 = 19;
    pub const NUMIPTENT: u32 = 23;
    pub const SWAPPAGES: u32 = 24;
}

/// Kernel-maintained usage of one resource. Only BPF programs write these fields (with atomic
/// instructions); userspace creates the record zeroed and otherwise only reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UbcUsage {
    pub held: u64,
    pub maxheld: u64,
    pub failcnt: u64,
}

/// Per-VE usage record: value of the `VZ_UBC` map, keyed by the VE's cgroup2 id.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VeUsage {
    pub res: [UbcUsage; UB_SLOTS],
}

impl Default for VeUsage {
    fn default() -> Self {
        Self { res: [UbcUsage::default(); UB_SLOTS] }
    }
}

/// Admin-set thresholds of one resource.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UbcLimit {
    pub barrier: u64,
    pub limit: u64,
}

impl UbcLimit {
    pub const UNLIMITED: Self = Self { barrier: UB_UNLIMITED, limit: UB_UNLIMITED };
}

impl Default for UbcLimit {
    fn default() -> Self {
        Self::UNLIMITED
    }
}

/// Per-VE limits: value of the `VZ_LIMITS` map, keyed by the VE's cgroup2 id. Only userspace
/// writes it (whole-record replace); programs only read it. Kept apart from [`VeUsage`] so a
/// limit change can never overwrite a counter the kernel is updating.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VeLimits {
    pub res: [UbcLimit; UB_SLOTS],
}

impl Default for VeLimits {
    fn default() -> Self {
        Self { res: [UbcLimit::UNLIMITED; UB_SLOTS] }
    }
}

/// What a charged socket owes: value of the `VZ_SOCKS` map, keyed by socket cookie.
/// The release program uncharges exactly the VE and resource recorded here, whichever task
/// happens to close the socket; a socket without an entry (accepted connections, sockets from
/// before the VE existed) is never uncharged, so `held` cannot drift below the truth.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockCharge {
    pub ve: u64,
    pub res: u32,
    pub _pad: u32,
}

/// Loader bookkeeping: value of the one-entry `VZ_META` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// FNV-1a 64 hash of the embedded object that the pinned programs were loaded from.
    pub object_hash: u64,
    /// cgroup2 id of the VE parent the links are attached to.
    pub parent_cgroup: u64,
    /// cgroup2 level of a VE's own cgroup (parent level + 1).
    pub ve_level: u32,
    pub layout: u32,
}

/// Map names. The layout version is part of each pinned name (see [`LAYOUT_VERSION`]).
pub mod maps {
    pub const UBC: &str = "VZ_UBC_V1";
    pub const LIMITS: &str = "VZ_LIMITS_V1";
    pub const SOCKS: &str = "VZ_SOCKS_V1";
    pub const META: &str = "VZ_META_V1";
}

/// Program names (the Rust function names in `ebpf/`).
pub mod progs {
    pub const SOCK_CREATE: &str = "vz_sock_create";
    pub const SOCK_RELEASE: &str = "vz_sock_release";
}

/// Name of the read-only global that holds the VE cgroup level.
pub const GLOBAL_VE_LEVEL: &str = "VZ_VE_LEVEL";

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), contain only integers and have no padding holes that
    // the kernel would not also see.
    unsafe impl aya::Pod for super::UbcUsage {}
    unsafe impl aya::Pod for super::VeUsage {}
    unsafe impl aya::Pod for super::UbcLimit {}
    unsafe impl aya::Pod for super::VeLimits {}
    unsafe impl aya::Pod for super::SockCharge {}
    unsafe impl aya::Pod for super::Meta {}
}
