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

/// What a charged socket owes. The release program uncharges exactly the VE and resource
/// recorded here, whichever task happens to close the socket; a socket without a record
/// (accepted connections, sockets from before the VE existed) is never uncharged, so `held`
/// cannot drift below the truth.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockCharge {
    pub ve: u64,
    pub res: u32,
    pub _pad: u32,
}

/// One entry of the charged-socket table: a claimed entry has a non-zero cookie.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockSlot {
    pub cookie: u64,
    pub charge: SockCharge,
}

/// Entries per bucket of the charged-socket table.
pub const SOCK_BUCKET_SLOTS: usize = 8;

/// Value of the `VZ_SOCKS` array: a socket's cookie hashes to one bucket, and its record
/// takes any free entry there (claimed with compare-and-swap, no lock, no allocation).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockBucket {
    pub slots: [SockSlot; SOCK_BUCKET_SLOTS],
}

/// Default number of buckets (power of two): 2^17 x 8 entries = 1M sockets, 24 MiB.
pub const DEFAULT_SOCK_BUCKETS: u32 = 1 << 17;

/// Hashes a socket cookie to a bucket. Cookies are handed out in per-CPU runs of
/// consecutive numbers; spreading them keeps a burst of long-lived sockets from filling
/// neighbouring buckets.
#[inline(always)]
pub fn sock_bucket(cookie: u64, mask: u32) -> u32 {
    ((cookie.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32) & mask
}

/// Index of the overflow counter in `VZ_STATS`: records that did not fit their bucket and
/// went to the `VZ_SOCKS_OVF` hash.
pub const STAT_SOCK_OVERFLOW: u32 = 0;
pub const STATS_LEN: u32 = 4;

/// `UbcEvent::res` of a record that is no limit hit but a VE's init exiting (`vz_exit`):
/// `held` is the pid namespace's reboot signal (SIGHUP reboot, SIGINT halt, 0 neither),
/// `barrier` the exit code, `limit` the pid namespace level, `pid` the host pid.
pub const EVENT_VE_EXIT: u32 = 0x100;

/// A limit hit, streamed through the `VZ_EVENTS` ring buffer: which VE, which resource,
/// its numbers at that moment, and the refused process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UbcEvent {
    pub ve: u64,
    pub held: u64,
    pub barrier: u64,
    pub limit: u64,
    pub res: u32,
    pub pid: u32,
    pub comm: [u8; 16],
}

/// Key of `VZ_VE_ADDRS`: one of a VE's addresses, IPv4 as v4-mapped IPv6 (::ffff:a.b.c.d),
/// each u32 as the kernel has it (network byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VeAddr {
    pub ve: u64,
    pub addr: [u32; 4],
}

/// The `VeAddr` words of an IPv4 address given in network byte order.
#[inline(always)]
pub const fn ve_addr_v4(ip_be: u32) -> [u32; 4] {
    [0, 0, u32::to_be(0xffff), ip_be]
}

/// A VE's traffic as its venet pair sees it (value of `VZ_NET_STATS`, per CPU): `in` is
/// what the VE received, `out` what it sent; `drops` are packets it sent with a source
/// that is not its own.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub in_bytes: u64,
    pub in_packets: u64,
    pub out_bytes: u64,
    pub out_packets: u64,
    pub drops: u64,
    /// Packets a firewall rule of the VE denied (both ways).
    pub filtered: u64,
}

/// Rules per VE (`VZ_NET_RULES`); evaluated in order, first match decides.
pub const MAX_RULES: usize = 32;

pub mod rule {
    pub const ALLOW: u8 = 1;
    pub const DENY: u8 = 2;
    /// Direction: into the VE / out of it.
    pub const IN: u8 = 1;
    pub const OUT: u8 = 2;
    /// Protocol 0 matches any; else an IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6).
    pub const ANY: u8 = 0;
    /// Family of `NetRule::peer`: 0 any address, 4 or 6.
    pub const FAMILY_ANY: u8 = 0;
}

/// One firewall rule of a VE: action, direction, protocol, port range of the VE's side
/// (0..=65535 for all), and the peer's prefix (IPv4 v4-mapped, network order words).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetRule {
    pub action: u8,
    pub dir: u8,
    pub proto: u8,
    pub family: u8,
    pub prefix_len: u8,
    pub _pad: [u8; 3],
    pub port_lo: u16,
    pub port_hi: u16,
    pub _pad2: u32,
    pub peer: [u32; 4],
}

/// A VE's rules: value of `VZ_NET_RULES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetRules {
    pub count: u32,
    pub _pad: u32,
    pub rules: [NetRule; MAX_RULES],
}

impl Default for NetRules {
    fn default() -> Self {
        Self { count: 0, _pad: 0, rules: [NetRule::default(); MAX_RULES] }
    }
}

/// Addresses of all VEs together (`VZ_VE_ADDRS`).
pub const MAX_VE_ADDRS: u32 = 1 << 18;

/// Dentry and inode objects that can be charged to VEs at once (`VZ_DCACHE_OBJS`).
pub const DCACHE_OBJS: u32 = 1 << 21;

/// Bytes of the events ring buffer.
pub const EVENTS_BYTES: u32 = 256 * 1024;

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

/// Buckets of the block I/O latency histogram: bucket `i` counts bios that took
/// [2^i, 2^(i+1)) microseconds from submission to completion (bucket 0 also < 1 µs, the
/// last one everything from about 8.4 s up).
pub const IO_HIST_BUCKETS: usize = 24;

/// Block I/O of one VE on one device (`VZ_IO_STATS`): what the VE's processes submitted,
/// counted at submission (bytes, operations) and at completion (latency). Per CPU; readers
/// sum.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
    /// Sum of completed bios' latencies, ns.
    pub lat_ns: u64,
    /// Completed bios (the histogram's total).
    pub done: u64,
    pub hist: [u64; IO_HIST_BUCKETS],
}

/// Readers' arithmetic: per-CPU values summed, intervals, latency figures.
impl IoStats {
    pub fn add(&mut self, o: &IoStats) {
        self.read_bytes += o.read_bytes;
        self.write_bytes += o.write_bytes;
        self.read_ops += o.read_ops;
        self.write_ops += o.write_ops;
        self.lat_ns += o.lat_ns;
        self.done += o.done;
        for (a, b) in self.hist.iter_mut().zip(o.hist.iter()) {
            *a += b;
        }
    }
    /// What happened after `old` was read.
    pub fn since(&self, old: &IoStats) -> IoStats {
        let mut d = IoStats {
            read_bytes: self.read_bytes.saturating_sub(old.read_bytes),
            write_bytes: self.write_bytes.saturating_sub(old.write_bytes),
            read_ops: self.read_ops.saturating_sub(old.read_ops),
            write_ops: self.write_ops.saturating_sub(old.write_ops),
            lat_ns: self.lat_ns.saturating_sub(old.lat_ns),
            done: self.done.saturating_sub(old.done),
            hist: self.hist,
        };
        for (a, b) in d.hist.iter_mut().zip(old.hist.iter()) {
            *a = a.saturating_sub(*b);
        }
        d
    }
    /// Mean latency, µs.
    pub fn avg_us(&self) -> u64 {
        self.lat_ns.checked_div(self.done).unwrap_or(0) / 1000
    }
    /// Upper edge (µs) of the histogram bucket that holds the `permille`/1000 quantile.
    pub fn quantile_us(&self, permille: u64) -> u64 {
        let total: u64 = self.hist.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = (permille * total).div_ceil(1000).max(1);
        let mut seen = 0;
        for (i, n) in self.hist.iter().enumerate() {
            seen += n;
            if seen >= want {
                return 2u64 << i;
            }
        }
        2u64 << (IO_HIST_BUCKETS - 1)
    }
}

/// Key of `VZ_IO_STATS`: the VE (cgroup2 id) and the device (`dev_t` as the kernel keeps it:
/// major << 20 | minor).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IoKey {
    pub ve: u64,
    pub dev: u32,
    pub _pad: u32,
}

/// A bio in flight (`VZ_IO_INFLIGHT`, keyed by the bio's address): whom its completion is
/// charged to and when it was submitted.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStart {
    pub key: IoKey,
    pub start_ns: u64,
}

/// One device a VE was granted or refused (`VZ_DEVICES`, value: `DEV_ACC_*` bits, 0 for
/// none): its cgroup id, block or char, major and minor ([`DEV_ANY_MINOR`]: every minor of
/// the major, OpenVZ's `--devices c:MAJOR:all:rw`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DevKey {
    pub ve: u64,
    pub kind: u32,
    pub major: u32,
    pub minor: u32,
    pub _pad: u32,
}

/// `DevKey::kind` and the low half of `bpf_cgroup_dev_ctx.access_type` (BPF_DEVCG_DEV_*).
pub const DEV_BLOCK: u32 = 1;
pub const DEV_CHAR: u32 = 2;
/// Access bits (BPF_DEVCG_ACC_*, the high half of `access_type`).
pub const DEV_ACC_MKNOD: u32 = 1;
pub const DEV_ACC_READ: u32 = 2;
pub const DEV_ACC_WRITE: u32 = 4;
/// `DevKey::minor` standing for every minor.
pub const DEV_ANY_MINOR: u32 = u32::MAX;
/// Grants per host, all VEs together.
pub const MAX_DEV_GRANTS: u32 = 65536;

/// What every VE may use with no grant (read and write, no mknod): the nodes of its /dev
/// (null, zero, full, random, urandom, tty; ptmx and its own devpts instance's ptys, which
/// take majors 136-143, see [`dev_default`]). Anything else needs a grant in `VZ_DEVICES`; a grant of 0 there
/// takes one of these away.
pub const DEV_DEFAULTS: [(u32, u32, u32); 7] = [
    (DEV_CHAR, 1, 3),
    (DEV_CHAR, 1, 5),
    (DEV_CHAR, 1, 7),
    (DEV_CHAR, 1, 8),
    (DEV_CHAR, 1, 9),
    (DEV_CHAR, 5, 0),
    (DEV_CHAR, 5, 2),
];

/// Whether (kind, major, minor) is one of [`DEV_DEFAULTS`] (majors 136-143 are all ptys).
#[inline(always)]
pub fn dev_default(kind: u32, major: u32, minor: u32) -> bool {
    if kind == DEV_CHAR && (136..=143).contains(&major) {
        return true;
    }
    let mut i = 0;
    while i < DEV_DEFAULTS.len() {
        let (k, ma, mi) = DEV_DEFAULTS[i];
        if k == kind && ma == major && mi == minor {
            return true;
        }
        i += 1;
    }
    false
}

/// The one table of pinned maps. Each row: its constant in [`maps`], the static the
/// programs use, its pinned name, map type, key, value, max entries, and whether it is
/// preallocated. `ebpf/src/maps.rs` declares the maps from it, the loader takes its pin
/// list and the layout check (key and value sizes) from it, and [`maps`] its names: a map
/// added here is everywhere at once.
#[macro_export]
macro_rules! for_each_map {
    ($cb:ident) => {
        $cb! {
            /// Usage per VE, keyed by the VE's cgroup2 id. Written only by programs, atomically.
            UBC, VZ_UBC, "VZ_UBC_V1", HashMap, u64, $crate::VeUsage, $crate::MAX_VES, NO_PREALLOC;
            /// Barrier and limit per VE, keyed by the VE's cgroup2 id. Written only by userspace.
            LIMITS, VZ_LIMITS, "VZ_LIMITS_V1", HashMap, u64, $crate::VeLimits, $crate::MAX_VES, NO_PREALLOC;
            /// Charged sockets, by cookie: whom to uncharge on release. A preallocated table of
            /// buckets (see `SockBucket`); the loader sets its size (`map_max_entries`) and
            /// `VZ_SOCK_MASK` together.
            SOCKS, VZ_SOCKS, "VZ_SOCKS_V1", Array, u32, $crate::SockBucket, $crate::DEFAULT_SOCK_BUCKETS, PREALLOC;
            /// Records whose bucket was full, keyed by cookie.
            SOCKS_OVF, VZ_SOCKS_OVF, "VZ_SOCKS_OVF_V1", HashMap, u64, $crate::SockCharge, $crate::MAX_OVERFLOW_SOCKS, NO_PREALLOC;
            /// Counters about the tables themselves (`STAT_*` in vz-common).
            STATS, VZ_STATS, "VZ_STATS_V1", Array, u32, u64, $crate::STATS_LEN, PREALLOC;
            /// Limit hits for the controller's log (`vzeventd`); a full buffer drops events, never
            /// blocks a refusal.
            EVENTS, VZ_EVENTS, "VZ_EVENTS_V1", RingBuf, (), $crate::UbcEvent, $crate::EVENTS_BYTES, PREALLOC;
            /// Open files per VE, refilled by each run of the `vz_iter_files` iterator.
            FILES, VZ_FILES, "VZ_FILES_V1", HashMap, u64, u64, $crate::MAX_VES, NO_PREALLOC;
            /// [privvmpages, lockedpages] per VE, refilled by each run of the `vz_iter_vmas` iterator.
            VMS, VZ_VMS, "VZ_VMS_V1", HashMap, u64, [u64; 2], $crate::MAX_VES, NO_PREALLOC;
            /// Slab caches seen by `vz_dcache_alloc`: slot size if the cache holds dentries or inodes,
            /// else 0.
            DCACHE_CACHES, VZ_DCACHE_CACHES, "VZ_DC_CACHES_V1", HashMap, u64, u32, 4096, NO_PREALLOC;
            /// Dentry and inode objects charged to a VE: object address -> VE (cgroup id).
            DCACHE_OBJS, VZ_DCACHE_OBJS, "VZ_DC_OBJS_V1", HashMap, u64, u64, $crate::DCACHE_OBJS, NO_PREALLOC;
            /// Every VE's addresses (key: VE and address; value unused). Written by userspace as
            /// addresses come and go.
            VE_ADDRS, VZ_VE_ADDRS, "VZ_VE_ADDRS_V1", HashMap, $crate::VeAddr, u8, $crate::MAX_VE_ADDRS, NO_PREALLOC;
            /// Host end of each running VE's venet pair: ifindex -> VE (cgroup id).
            NET_IFS, VZ_NET_IFS, "VZ_NET_IFS_V1", HashMap, u32, u64, $crate::MAX_VES, NO_PREALLOC;
            /// Traffic per VE, per CPU (summed by readers).
            NET_STATS, VZ_NET_STATS, "VZ_NET_STATS_V1", PerCpuHashMap, u64, $crate::NetStats, $crate::MAX_VES, NO_PREALLOC;
            /// Firewall rules per VE (cgroup id), written whole by userspace.
            NET_RULES, VZ_NET_RULES, "VZ_NET_RULES_V1", HashMap, u64, $crate::NetRules, $crate::MAX_VES, NO_PREALLOC;
            /// VEs with an egress rate limit (cgroup id -> ifindex of the VE's shaper, an ifb device
            /// with a tbf qdisc): what such a VE sends goes through it before the host routes it.
            NET_RATE, VZ_NET_RATE, "VZ_NET_RATE_V1", HashMap, u64, u32, $crate::MAX_VES, NO_PREALLOC;
            /// blkio cgroup of each running VE (the v1 blkio directory's id on hybrid hosts, the VE's
            /// own cgroup2 id on cgroup2 hosts) -> the VE (cgroup2 id). Written by userspace.
            IO_CGROUPS, VZ_IO_CGROUPS, "VZ_IO_CGRPS_V1", HashMap, u64, u64, $crate::MAX_VES, NO_PREALLOC;
            /// Block I/O per VE and device, per CPU (summed by readers).
            IO_STATS, VZ_IO_STATS, "VZ_IO_STATS_V1", PerCpuHashMap, $crate::IoKey, $crate::IoStats, $crate::MAX_VES, NO_PREALLOC;
            /// VE bios of bio-based devices (device-mapper, md) between submission and completion
            /// (bio address -> VE, device, start). LRU: a bio whose completion is never seen cannot
            /// fill it.
            IO_INFLIGHT, VZ_IO_INFLIGHT, "VZ_IO_FLIGHT_V1", LruHashMap, u64, $crate::IoStart, 16384, PREALLOC;
            /// Devices granted to (or taken from) each VE beyond `DEV_DEFAULTS`, read by
            /// `vz_device` at every open and mknod of a device node. Written by userspace.
            DEVICES, VZ_DEVICES, "VZ_DEVICES_V1", HashMap, $crate::DevKey, u32, $crate::MAX_DEV_GRANTS, NO_PREALLOC;
            /// VEID of each registered VE, by its cgroup2 id: how an admin reading the other maps
            /// (all keyed by cgroup id) finds the VE. Written by userspace; programs never read it.
            VEIDS, VZ_VEIDS, "VZ_VEIDS_V1", HashMap, u64, u32, $crate::MAX_VES, NO_PREALLOC;
            /// Loader bookkeeping (object hash, parent, level); programs never read it.
            META, VZ_META, "VZ_META_V1", Array, u32, $crate::Meta, 1, PREALLOC;
        }
    };
}

/// Upper bound on VEs per host. Non-preallocated maps use memory per live VE only, and
/// free entries after an RCU grace period, so a program holding a pointer to a record
/// that userspace deletes never writes into another VE's record.
pub const MAX_VES: u32 = 65536;
/// Socket records that found their bucket full (rare: the table is sized well above the
/// number of charged sockets).
pub const MAX_OVERFLOW_SOCKS: u32 = 1 << 16;

macro_rules! map_names {
    ($($(#[$doc:meta])* $konst:ident, $stat:ident, $name:literal, $kind:ident, $k:ty, $v:ty, $e:expr, $f:ident;)*) => {
        /// Map names (at most 15 characters: the kernel's map name is the pinned name). The
        /// layout version is part of each pinned name (see [`LAYOUT_VERSION`]).
        pub mod maps {
            $(pub const $konst: &str = $name;)*
            /// Every pinned map.
            pub const ALL: &[&str] = &[$($name),*];
            /// Pins of older builds under names the kernel cut to 15 characters: (old, new).
            /// The loader moves their entries into the new maps and removes them.
            pub const RENAMED: &[(&str, &str)] = &[
                ("VZ_DCACHE_CACHES_V1", DCACHE_CACHES),
                ("VZ_DCACHE_OBJS_V1", DCACHE_OBJS),
                ("VZ_IO_CGROUPS_V1", IO_CGROUPS),
                ("VZ_IO_INFLIGHT_V1", IO_INFLIGHT),
            ];
            const _: () = {
                let mut i = 0;
                while i < ALL.len() {
                    assert!(ALL[i].len() <= 15, "a map name longer than 15 characters");
                    i += 1;
                }
            };
        }
    };
}
for_each_map!(map_names);

/// Program names (the Rust function names in `ebpf/`).
pub mod progs {
    pub const SOCK_CREATE: &str = "vz_sock_create";
    pub const SOCK_RELEASE: &str = "vz_sock_release";
    pub const ITER_FILES: &str = "vz_iter_files";
    pub const ITER_VMAS: &str = "vz_iter_vmas";
    pub const SYSCTL: &str = "vz_sysctl";
    pub const DEVICE: &str = "vz_device";
    pub const SETSOCKOPT: &str = "vz_setsockopt";
    pub const SIGNAL: &str = "vz_signal";
    pub const EXIT: &str = "vz_exit";
    pub const DCACHE_ALLOC: &str = "vz_dcache_alloc";
    pub const DCACHE_FREE: &str = "vz_dcache_free";
    pub const BIND4: &str = "vz_bind4";
    pub const BIND6: &str = "vz_bind6";
    pub const TC_FROM_VE: &str = "vz_tc_from_ve";
    pub const TC_TO_VE: &str = "vz_tc_to_ve";
    pub const ITER_TCP: &str = "vz_iter_tcp";
    pub const ITER_UDP: &str = "vz_iter_udp";
    pub const ITER_UNIX: &str = "vz_iter_unix";
    pub const IO_QUEUE: &str = "vz_io_queue";
    pub const IO_DONE: &str = "vz_io_done";
    pub const IO_RQ_DONE: &str = "vz_io_rq_done";
}

/// Name of the read-only global that holds the VE cgroup level.
pub const GLOBAL_VE_LEVEL: &str = "VZ_VE_LEVEL";
/// Name of the read-only global that holds the VE level in the blkio/io hierarchy.
pub const GLOBAL_IO_VE_LEVEL: &str = "VZ_IO_VE_LEVEL";
/// Name of the read-only global that holds `VZ_SOCKS` buckets - 1.
pub const GLOBAL_SOCK_MASK: &str = "VZ_SOCK_MASK";

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), contain only integers and have no padding holes that
    // the kernel would not also see.
    unsafe impl aya::Pod for super::UbcUsage {}
    unsafe impl aya::Pod for super::VeUsage {}
    unsafe impl aya::Pod for super::UbcLimit {}
    unsafe impl aya::Pod for super::VeLimits {}
    unsafe impl aya::Pod for super::SockCharge {}
    unsafe impl aya::Pod for super::SockSlot {}
    unsafe impl aya::Pod for super::SockBucket {}
    unsafe impl aya::Pod for super::Meta {}
    unsafe impl aya::Pod for super::UbcEvent {}
    unsafe impl aya::Pod for super::VeAddr {}
    unsafe impl aya::Pod for super::DevKey {}
    unsafe impl aya::Pod for super::NetStats {}
    unsafe impl aya::Pod for super::NetRule {}
    unsafe impl aya::Pod for super::NetRules {}
    unsafe impl aya::Pod for super::IoStats {}
    unsafe impl aya::Pod for super::IoKey {}
    unsafe impl aya::Pod for super::IoStart {}
}
