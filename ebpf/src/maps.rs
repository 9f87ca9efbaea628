//! Maps shared by all program families. Pinned by name under the loader's `maps/` directory,
//! so counters and limits survive the controller and program upgrades.
use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    btf_maps::{Array, HashMap, LruHashMap, PerCpuHashMap, RingBuf},
    macros::btf_map,
    Global,
};

// Every pinned map, declared from vz-common's one table (`for_each_map!`) as a BTF map, so
// the kernel knows its key and value types (`bpftool map dump` prints their fields). The
// loader pins each by name (`EbpfLoader::map_pin_path`).
macro_rules! declare_maps {
    ($($(#[$doc:meta])* $konst:ident, $stat:ident, $name:literal, $kind:ident, $k:ty, $v:ty, $e:expr, $f:ident;)*) => {
        $(declare_map!($(#[$doc])* $stat, $name, $kind, $k, $v, $e, $f);)*
    };
}

macro_rules! declare_map {
    ($(#[$doc:meta])* $stat:ident, $name:literal, Array, $k:ty, $v:ty, $e:expr, $f:ident) => {
        $(#[$doc])*
        #[btf_map(name = $name)]
        pub static $stat: Array<$v, { $e as usize }, { flags!($f) }> = Array::new();
    };
    ($(#[$doc:meta])* $stat:ident, $name:literal, RingBuf, $k:ty, $v:ty, $e:expr, $f:ident) => {
        $(#[$doc])*
        #[btf_map(name = $name)]
        pub static $stat: RingBuf<$v, { $e as usize }, { flags!($f) }> = RingBuf::new();
    };
    ($(#[$doc:meta])* $stat:ident, $name:literal, $kind:ident, $k:ty, $v:ty, $e:expr, $f:ident) => {
        $(#[$doc])*
        #[btf_map(name = $name)]
        pub static $stat: $kind<$k, $v, { $e as usize }, { flags!($f) }> = $kind::new();
    };
}

macro_rules! flags {
    (NO_PREALLOC) => {
        BPF_F_NO_PREALLOC as usize
    };
    (PREALLOC) => {
        0
    };
}

vz_common::for_each_map!(declare_maps);

/// cgroup2 level of a VE's own cgroup; set by the loader (`EbpfLoader::override_global`).
/// A VE may nest cgroups of its own, so its processes are found by their ancestor at this
/// level, not by their leaf cgroup.
#[unsafe(no_mangle)]
pub static VZ_VE_LEVEL: Global<u32> = Global::new(0);

/// `VZ_SOCKS` buckets - 1 (a power of two minus one); set by the loader.
#[unsafe(no_mangle)]
pub static VZ_SOCK_MASK: Global<u32> = Global::new(vz_common::DEFAULT_SOCK_BUCKETS - 1);
