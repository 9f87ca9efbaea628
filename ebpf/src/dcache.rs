//! dcachesize: bytes of dentry and inode objects a VE's processes allocated and that are
//! still alive, charged when the slab allocator hands them out (`tp_btf/kmem_cache_alloc`)
//! and uncharged when they are freed (`tp_btf/kmem_cache_free`, from whatever context the
//! kernel frees them in). Each charged object is remembered (address -> VE), so a free
//! uncharges exactly the VE charged, once. The kernel cannot refuse a dentry, so this
//! row is accounted only.
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_ancestor_cgroup_id, bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
    Global,
};
use vz_common::{res, UB_UNLIMITED};

use crate::{
    maps::{VZ_DCACHE_CACHES, VZ_DCACHE_OBJS, VZ_UBC, VZ_VE_LEVEL},
    ubc,
};

#[unsafe(no_mangle)]
pub static VZ_OFF_KMEM_CACHE_NAME: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_KMEM_CACHE_SIZE: Global<u32> = Global::new(0);

const SUFFIX: &[u8; 11] = b"inode_cache";

/// Slot size of `cache` if it holds dentries or inodes ("dentry", "*inode_cache"), else 0;
/// decided once per cache and remembered.
#[inline(always)]
fn cache_size(cache: u64) -> u32 {
    if let Some(v) = VZ_DCACHE_CACHES.get_ptr(cache) {
        // SAFETY: valid map value pointer.
        return unsafe { *v };
    }
    let mut name = [0u8; 32];
    // SAFETY: probe reads; a bad address gives an error, not a fault.
    let len = unsafe {
        let Ok(p) = bpf_probe_read_kernel((cache + u64::from(VZ_OFF_KMEM_CACHE_NAME.load())) as *const u64) else {
            return 0;
        };
        match bpf_probe_read_kernel_str_bytes(p as *const u8, &mut name) {
            Ok(s) => s.len(),
            Err(_) => return 0,
        }
    };
    let dentry = len == 6
        && name[0] == b'd'
        && name[1] == b'e'
        && name[2] == b'n'
        && name[3] == b't'
        && name[4] == b'r'
        && name[5] == b'y';
    let mut inode = len >= SUFFIX.len() && len <= name.len();
    if inode {
        // An index loop on purpose: it stays the shape the verifier was shown to accept
        // (a constant trip count, the name index masked).
        #[allow(clippy::needless_range_loop)]
        for i in 0..SUFFIX.len() {
            let at = (len - SUFFIX.len() + i) & 31;
            if name[at] != SUFFIX[i] {
                inode = false;
            }
        }
    }
    let size = if dentry || inode {
        // SAFETY: probe read.
        unsafe { bpf_probe_read_kernel((cache + u64::from(VZ_OFF_KMEM_CACHE_SIZE.load())) as *const u32) }.unwrap_or(0)
    } else {
        0
    };
    let _ = VZ_DCACHE_CACHES.insert(cache, size, 0);
    size
}

#[btf_tracepoint(function = "kmem_cache_alloc")]
pub fn vz_dcache_alloc(ctx: BtfTracePointContext) -> i32 {
    // SAFETY: helper with a constant argument.
    let ve = unsafe { bpf_get_current_ancestor_cgroup_id(VZ_VE_LEVEL.load() as i32) };
    if ve == 0 {
        return 0;
    }
    let Some(usage) = VZ_UBC.get_ptr_mut(ve) else {
        return 0;
    };
    // kmem_cache_alloc(call_site, ptr, s, gfp_flags, node)
    let (obj, cache): (u64, u64) = (ctx.arg(1), ctx.arg(2));
    if obj == 0 {
        return 0;
    }
    let size = cache_size(cache);
    if size == 0 {
        return 0;
    }
    // Without a record the free could not uncharge: only remembered objects count.
    if VZ_DCACHE_OBJS.insert(obj, ve, u64::from(BPF_NOEXIST)).is_err() {
        return 0;
    }
    // SAFETY: valid map value pointer, constant index.
    ubc::charge(unsafe { &raw mut (*usage).res[res::DCACHESIZE as usize] }, u64::from(size), UB_UNLIMITED);
    0
}

#[btf_tracepoint(function = "kmem_cache_free")]
pub fn vz_dcache_free(ctx: BtfTracePointContext) -> i32 {
    // kmem_cache_free(call_site, ptr, s)
    let (obj, cache): (u64, u64) = (ctx.arg(1), ctx.arg(2));
    // Only caches a VE allocated from are known; any other free returns here.
    let size = match VZ_DCACHE_CACHES.get_ptr(cache) {
        // SAFETY: valid map value pointer.
        Some(v) => unsafe { *v },
        None => return 0,
    };
    if size == 0 {
        return 0;
    }
    let ve = match VZ_DCACHE_OBJS.get_ptr(obj) {
        // SAFETY: valid map value pointer, copied before removal.
        Some(v) => unsafe { *v },
        None => return 0,
    };
    let _ = VZ_DCACHE_OBJS.remove(obj);
    if let Some(usage) = VZ_UBC.get_ptr_mut(ve) {
        // SAFETY: valid map value pointer, constant index.
        ubc::uncharge(unsafe { &raw mut (*usage).res[res::DCACHESIZE as usize] }, u64::from(size));
    }
    0
}
