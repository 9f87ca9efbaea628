//! Block I/O per VE. A bio carries the blkio cgroup of the task that submitted it (the
//! kernel sets `bio->bi_blkg` when the bio is made), so the VE is known at submission even
//! when blk-throttle (`--iolimit`) later dispatches the bio from a kernel worker, and loop
//! devices forward it from their own threads. `tp_btf/block_bio_queue` counts bytes and
//! operations; the completion adds the latency to the VE's histogram. Disks with request
//! queues (blk-mq: virtio, NVMe, loop) complete requests (`tp_btf/block_rq_complete`): the
//! latency is the request's, from its allocation (`rq->start_time_ns`, the kernel's own
//! clock for iostat) and the VE is its first bio's (bios of different cgroups are never
//! merged). Bio-based devices (device-mapper, md) complete bios
//! (`tp_btf/block_bio_complete`): only their bios are remembered at submission, in an LRU
//! map, so the common path costs no map insert and delete per bio.
use aya_ebpf::{
    bindings::BPF_NOEXIST, helpers::bpf_ktime_get_ns, macros::btf_tracepoint, programs::BtfTracePointContext, Global,
};
use vz_common::{IoKey, IoStart, IoStats, IO_HIST_BUCKETS};

use crate::{
    iter::{VZ_OFF_CGROUP_KN, VZ_OFF_CGROUP_LEVEL, VZ_OFF_KN_ID},
    maps::{VZ_IO_CGROUPS, VZ_IO_INFLIGHT, VZ_IO_STATS},
};

#[unsafe(no_mangle)]
pub static VZ_OFF_BIO_BDEV: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_BIO_OPF: Global<u32> = Global::new(0);
/// `bio.bi_iter.bi_size`.
#[unsafe(no_mangle)]
pub static VZ_OFF_BIO_SIZE: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_BIO_BLKG: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_BLKG_BLKCG: Global<u32> = Global::new(0);
/// `blkcg.css`: the blkio controller state of the cgroup.
#[unsafe(no_mangle)]
pub static VZ_OFF_BLKCG_CSS: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_CSS_CGROUP: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_CSS_PARENT: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_BDEV_DEV: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_BDEV_DISK: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_DISK_QUEUE: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_QUEUE_MQ_OPS: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_RQ_BIO: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_RQ_START_NS: Global<u32> = Global::new(0);

const REQ_OP_MASK: u32 = 0xff;
const REQ_OP_READ: u32 = 0;
const REQ_OP_WRITE: u32 = 1;
/// A VE may make cgroups of its own below its blkio cgroup: this many levels are climbed
/// (deeper ones go uncounted).
const MAX_NESTING: usize = 4;

/// A field of a kernel struct. The tracepoints' arguments are typed (BTF) pointers, so a
/// plain load is checked by the verifier against the struct's layout and made fault-safe
/// by the JIT: no helper call per field (a `bpf_probe_read_kernel` costs ~40 ns here).
#[inline(always)]
fn read<T: Copy>(base: u64, off: &Global<u32>) -> Option<T> {
    // SAFETY: the verifier tracks `base` as a kernel pointer of a known type; a load that
    // faults reads 0.
    Some(unsafe { core::ptr::read_volatile((base + u64::from(off.load())) as *const T) })
}

/// Level of a VE's cgroup in the blkio (v1) or io (cgroup2) hierarchy; set by the loader.
#[unsafe(no_mangle)]
pub static VZ_IO_VE_LEVEL: Global<u32> = Global::new(0);

/// The VE whose process submitted `bio`: its blkio cgroup's ancestor at the VE level,
/// looked up in `VZ_IO_CGROUPS`. Host cgroups above that level cost no lookup; a VE's own
/// nested cgroups are climbed with plain loads, so a bio costs one lookup at most.
#[inline(always)]
fn bio_ve(bio: u64) -> Option<u64> {
    let blkg: u64 = read(bio, &VZ_OFF_BIO_BLKG)?;
    if blkg == 0 {
        return None;
    }
    let blkcg: u64 = read(blkg, &VZ_OFF_BLKG_BLKCG)?;
    let want = VZ_IO_VE_LEVEL.load() as i32;
    let mut css = blkcg + u64::from(VZ_OFF_BLKCG_CSS.load());
    for _ in 0..MAX_NESTING {
        if css == 0 {
            return None;
        }
        let cgroup: u64 = read(css, &VZ_OFF_CSS_CGROUP)?;
        let level: i32 = read(cgroup, &VZ_OFF_CGROUP_LEVEL)?;
        if level < want {
            return None;
        }
        if level == want {
            let kn: u64 = read(cgroup, &VZ_OFF_CGROUP_KN)?;
            let id: u64 = read(kn, &VZ_OFF_KN_ID)?;
            // SAFETY: valid map value pointer.
            return VZ_IO_CGROUPS.get_ptr(id).map(|ve| unsafe { *ve });
        }
        css = read(css, &VZ_OFF_CSS_PARENT)?;
    }
    None
}

#[inline(always)]
fn stats(key: &IoKey) -> Option<*mut IoStats> {
    if let Some(s) = VZ_IO_STATS.get_ptr_mut(key) {
        return Some(s);
    }
    let _ = VZ_IO_STATS.insert(key, IoStats::default(), u64::from(BPF_NOEXIST));
    VZ_IO_STATS.get_ptr_mut(key)
}

#[btf_tracepoint(function = "block_bio_queue")]
pub fn vz_io_queue(ctx: BtfTracePointContext) -> i32 {
    // block_bio_queue(struct bio *bio)
    let bio: u64 = ctx.arg(0);
    let Some(ve) = bio_ve(bio) else { return 0 };
    let Some(opf) = read::<u32>(bio, &VZ_OFF_BIO_OPF) else { return 0 };
    let op = opf & REQ_OP_MASK;
    if op != REQ_OP_READ && op != REQ_OP_WRITE {
        // Flushes, discards, zeroing: no data moved on the VE's behalf.
        return 0;
    }
    let Some(size) = read::<u32>(bio, &VZ_OFF_BIO_SIZE) else { return 0 };
    let Some(bdev) = read::<u64>(bio, &VZ_OFF_BIO_BDEV) else { return 0 };
    let Some(dev) = read::<u32>(bdev, &VZ_OFF_BDEV_DEV) else { return 0 };
    let key = IoKey { ve, dev, _pad: 0 };
    let Some(s) = stats(&key) else { return 0 };
    // SAFETY: valid per-CPU map value pointer: no other writer on this CPU.
    unsafe {
        if op == REQ_OP_READ {
            (*s).read_bytes += u64::from(size);
            (*s).read_ops += 1;
        } else {
            (*s).write_bytes += u64::from(size);
            (*s).write_ops += 1;
        }
    }
    // Request-based disks report their latency per request (vz_io_rq_done).
    let Some(disk) = read::<u64>(bdev, &VZ_OFF_BDEV_DISK) else { return 0 };
    let Some(queue) = read::<u64>(disk, &VZ_OFF_DISK_QUEUE) else { return 0 };
    if read::<u64>(queue, &VZ_OFF_QUEUE_MQ_OPS).unwrap_or(0) != 0 {
        return 0;
    }
    // SAFETY: helper without arguments.
    let start_ns = unsafe { bpf_ktime_get_ns() };
    let _ = VZ_IO_INFLIGHT.insert(bio, IoStart { key, start_ns }, 0);
    0
}

#[btf_tracepoint(function = "block_bio_complete")]
pub fn vz_io_done(ctx: BtfTracePointContext) -> i32 {
    // block_bio_complete(struct request_queue *q, struct bio *bio)
    done(ctx.arg(1));
    0
}

#[btf_tracepoint(function = "block_rq_complete")]
pub fn vz_io_rq_done(ctx: BtfTracePointContext) -> i32 {
    // block_rq_complete(struct request *rq, blk_status_t error, unsigned int nr_bytes):
    // fired before the request's bios are ended.
    let rq: u64 = ctx.arg(0);
    let Some(bio) = read::<u64>(rq, &VZ_OFF_RQ_BIO) else { return 0 };
    let Some(start_ns) = read::<u64>(rq, &VZ_OFF_RQ_START_NS) else { return 0 };
    if bio == 0 || start_ns == 0 {
        // A flush, or a queue without I/O statistics (no start time kept).
        return 0;
    }
    let Some(ve) = bio_ve(bio) else { return 0 };
    let Some(bdev) = read::<u64>(bio, &VZ_OFF_BIO_BDEV) else { return 0 };
    let Some(dev) = read::<u32>(bdev, &VZ_OFF_BDEV_DEV) else { return 0 };
    record_latency(&IoKey { ve, dev, _pad: 0 }, start_ns);
    0
}

/// A bio-based device's bio completed: its latency, if it is a VE's.
#[inline(always)]
fn done(bio: u64) {
    let start = match VZ_IO_INFLIGHT.get_ptr(bio) {
        // SAFETY: valid map value pointer, copied before removal.
        Some(v) => unsafe { *v },
        None => return,
    };
    let _ = VZ_IO_INFLIGHT.remove(bio);
    record_latency(&start.key, start.start_ns);
}

#[inline(always)]
fn record_latency(key: &IoKey, start_ns: u64) {
    // SAFETY: helper without arguments.
    let ns = unsafe { bpf_ktime_get_ns() }.saturating_sub(start_ns);
    let Some(s) = stats(key) else { return };
    let bucket = log2(ns / 1000).min(IO_HIST_BUCKETS as u32 - 1) as usize;
    // SAFETY: valid per-CPU map value pointer; bucket is bounded above.
    unsafe {
        (*s).lat_ns += ns;
        (*s).done += 1;
        if let Some(b) = (*s).hist.get_mut(bucket) {
            *b += 1;
        }
    }
}

/// floor(log2(v)), 0 for v < 2. Straight-line code (LLVM expands the bit count without
/// branches), so the verifier has no paths to multiply per bio walked.
#[inline(always)]
fn log2(v: u64) -> u32 {
    63 - (v | 1).leading_zeros()
}
