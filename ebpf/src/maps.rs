//! Maps shared by all program families. Pinned by name under the loader's `maps/` directory,
//! so counters and limits survive the controller and program upgrades.
use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuHashMap, RingBuf},
    Global,
};
use vz_common::{IoKey, IoStart, IoStats, Meta, NetRules, NetStats, SockBucket, SockCharge, VeAddr, VeLimits, VeUsage};

/// Upper bound on VEs per host. Non-preallocated: memory is used per live VE only, and
/// entries are freed after an RCU grace period, so a program holding a pointer to a record
/// that userspace deletes never writes into another VE's record.
const MAX_VES: u32 = 65536;
/// Records that found their bucket full (rare: the table is sized well above the number of
/// charged sockets).
const MAX_OVERFLOW_SOCKS: u32 = 1 << 16;

/// Usage per VE, keyed by the VE's cgroup2 id. Written only by programs, atomically.
#[map(name = "VZ_UBC_V1")]
pub static VZ_UBC: HashMap<u64, VeUsage> = HashMap::pinned(MAX_VES, BPF_F_NO_PREALLOC);

/// Barrier and limit per VE, keyed by the VE's cgroup2 id. Written only by userspace.
#[map(name = "VZ_LIMITS_V1")]
pub static VZ_LIMITS: HashMap<u64, VeLimits> = HashMap::pinned(MAX_VES, BPF_F_NO_PREALLOC);

/// Charged sockets, by cookie: whom to uncharge on release. A preallocated table of
/// buckets (see `SockBucket`); the loader sets its size (`map_max_entries`) and
/// `VZ_SOCK_MASK` together.
#[map(name = "VZ_SOCKS_V1")]
pub static VZ_SOCKS: Array<SockBucket> = Array::pinned(vz_common::DEFAULT_SOCK_BUCKETS, 0);

/// Records whose bucket was full, keyed by cookie.
#[map(name = "VZ_SOCKS_OVF_V1")]
pub static VZ_SOCKS_OVF: HashMap<u64, SockCharge> = HashMap::pinned(MAX_OVERFLOW_SOCKS, BPF_F_NO_PREALLOC);

/// Counters about the tables themselves (`STAT_*` in vz-common).
#[map(name = "VZ_STATS_V1")]
pub static VZ_STATS: Array<u64> = Array::pinned(vz_common::STATS_LEN, 0);

/// Limit hits for the controller's log (`vzeventd`); a full buffer drops events, never
/// blocks a refusal.
#[map(name = "VZ_EVENTS_V1")]
pub static VZ_EVENTS: RingBuf = RingBuf::pinned(vz_common::EVENTS_BYTES, 0);

/// Open files per VE, refilled by each run of the `vz_iter_files` iterator.
#[map(name = "VZ_FILES_V1")]
pub static VZ_FILES: HashMap<u64, u64> = HashMap::pinned(MAX_VES, BPF_F_NO_PREALLOC);

/// [privvmpages, lockedpages] per VE, refilled by each run of the `vz_iter_vmas` iterator.
#[map(name = "VZ_VMS_V1")]
pub static VZ_VMS: HashMap<u64, [u64; 2]> = HashMap::pinned(MAX_VES, BPF_F_NO_PREALLOC);

/// Slab caches seen by `vz_dcache_alloc`: slot size if the cache holds dentries or inodes,
/// else 0.
#[map(name = "VZ_DCACHE_CACHES_V1")]
pub static VZ_DCACHE_CACHES: HashMap<u64, u32> = HashMap::pinned(4096, BPF_F_NO_PREALLOC);

/// Dentry and inode objects charged to a VE: object address -> VE (cgroup id).
#[map(name = "VZ_DCACHE_OBJS_V1")]
pub static VZ_DCACHE_OBJS: HashMap<u64, u64> = HashMap::pinned(vz_common::DCACHE_OBJS, BPF_F_NO_PREALLOC);

/// Every VE's addresses (key: VE and address; value unused). Written by userspace as
/// addresses come and go.
#[map(name = "VZ_VE_ADDRS_V1")]
pub static VZ_VE_ADDRS: HashMap<VeAddr, u8> = HashMap::pinned(vz_common::MAX_VE_ADDRS, BPF_F_NO_PREALLOC);

/// Host end of each running VE's venet pair: ifindex -> VE (cgroup id).
#[map(name = "VZ_NET_IFS_V1")]
pub static VZ_NET_IFS: HashMap<u32, u64> = HashMap::pinned(MAX_VES, BPF_F_NO_PREALLOC);

/// Traffic per VE, per CPU (summed by readers).
#[map(name = "VZ_NET_STATS_V1")]
pub static VZ_NET_STATS: PerCpuHashMap<u64, NetStats> = PerCpuHashMap::pinned(MAX_VES, BPF_F_NO_PREALLOC);

/// Firewall rules per VE (cgroup id), written whole by userspace.
#[map(name = "VZ_NET_RULES_V1")]
pub static VZ_NET_RULES: HashMap<u64, NetRules> = HashMap::pinned(MAX_VES, BPF_F_NO_PREALLOC);

/// VEs with an egress rate limit (cgroup id -> ifindex of the VE's shaper, an ifb device
/// with a tbf qdisc): what such a VE sends goes through it before the host routes it.
#[map(name = "VZ_NET_RATE_V1")]
pub static VZ_NET_RATE: HashMap<u64, u32> = HashMap::pinned(MAX_VES, BPF_F_NO_PREALLOC);

/// blkio cgroup of each running VE (the v1 blkio directory's id on hybrid hosts, the VE's
/// own cgroup2 id on cgroup2 hosts) -> the VE (cgroup2 id). Written by userspace.
#[map(name = "VZ_IO_CGROUPS_V1")]
pub static VZ_IO_CGROUPS: HashMap<u64, u64> = HashMap::pinned(MAX_VES, BPF_F_NO_PREALLOC);

/// Block I/O per VE and device, per CPU (summed by readers).
#[map(name = "VZ_IO_STATS_V1")]
pub static VZ_IO_STATS: PerCpuHashMap<IoKey, IoStats> = PerCpuHashMap::pinned(MAX_VES, BPF_F_NO_PREALLOC);

/// VE bios of bio-based devices (device-mapper, md) between submission and completion
/// (bio address -> VE, device, start). LRU: a bio whose completion is never seen cannot
/// fill it.
#[map(name = "VZ_IO_INFLIGHT_V1")]
pub static VZ_IO_INFLIGHT: LruHashMap<u64, IoStart> = LruHashMap::pinned(16384, 0);

/// Loader bookkeeping (object hash, parent, level); programs never read it.
#[map(name = "VZ_META_V1")]
pub static VZ_META: Array<Meta> = Array::pinned(1, 0);

/// cgroup2 level of a VE's own cgroup; set by the loader (`EbpfLoader::override_global`).
/// A VE may nest cgroups of its own, so its processes are found by their ancestor at this
/// level, not by their leaf cgroup.
#[unsafe(no_mangle)]
pub static VZ_VE_LEVEL: Global<u32> = Global::new(0);

/// `VZ_SOCKS` buckets - 1 (a power of two minus one); set by the loader.
#[unsafe(no_mangle)]
pub static VZ_SOCK_MASK: Global<u32> = Global::new(vz_common::DEFAULT_SOCK_BUCKETS - 1);
