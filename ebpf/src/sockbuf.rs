//! Socket buffers: tcpsndbuf, tcprcvbuf, othersockbuf, dgramrcvbuf.
//!
//! `cgroup/setsockopt` keeps a VE's sockets from asking for more buffer than the row's
//! limit (the request is cut, failcnt counts the cut). The totals are snapshots by
//! `iter/tcp`, `iter/udp` and `iter/unix`: those walk the reader's network namespace, and
//! a VE owns its namespace, so the controller runs them from a thread inside it and every
//! socket seen is the VE's. Each socket is written to the iterator's output as three u64s,
//! (send bytes, receive bytes, packets dropped at its receive buffer), and the controller adds
//! them up.
use aya_ebpf::{
    helpers::{bpf_get_current_ancestor_cgroup_id, bpf_probe_read_kernel, bpf_seq_write},
    macros::cgroup_sockopt,
    programs::SockoptContext,
    Global,
};
use vz_common::{res, UB_UNLIMITED};

use crate::{
    maps::{VZ_LIMITS, VZ_UBC, VZ_VE_LEVEL},
    sock::{is_tcp, report},
    ubc::atomic,
};

const SOL_SOCKET: i32 = 1;
const SO_SNDBUF: i32 = 7;
const SO_RCVBUF: i32 = 8;
const SO_SNDBUFFORCE: i32 = 32;
const SO_RCVBUFFORCE: i32 = 33;
const PROCEED: i32 = 1;

#[cgroup_sockopt(setsockopt)]
pub fn vz_setsockopt(ctx: SockoptContext) -> i32 {
    let so = ctx.sockopt;
    // SAFETY: the kernel passes a valid context.
    let (level, optname) = unsafe { ((*so).level, (*so).optname) };
    if level != SOL_SOCKET {
        return PROCEED;
    }
    let send = match optname {
        SO_SNDBUF | SO_SNDBUFFORCE => true,
        SO_RCVBUF | SO_RCVBUFFORCE => false,
        _ => return PROCEED,
    };
    // SAFETY: helper with a constant argument.
    let ve = unsafe { bpf_get_current_ancestor_cgroup_id(VZ_VE_LEVEL.load() as i32) };
    if ve == 0 {
        return PROCEED;
    }
    let Some(usage) = VZ_UBC.get_ptr_mut(ve) else {
        return PROCEED;
    };
    let Some(limits) = VZ_LIMITS.get_ptr(ve) else {
        return PROCEED;
    };
    // SAFETY: sk is the kernel's socket for this call.
    let (sk_type, protocol) = unsafe {
        let sk = (*so).__bindgen_anon_1.sk;
        ((*sk).type_, (*sk).protocol)
    };
    let tcp = is_tcp(sk_type, protocol);
    let resource = match (tcp, send) {
        (true, true) => res::TCPSNDBUF,
        (true, false) => res::TCPRCVBUF,
        (false, true) => res::OTHERSOCKBUF,
        (false, false) => res::DGRAMRCVBUF,
    };
    // SAFETY: valid map value pointer, constant index.
    let (barrier, limit) =
        unsafe { ((*limits).res[resource as usize].barrier, (*limits).res[resource as usize].limit) };
    if limit >= UB_UNLIMITED {
        return PROCEED;
    }
    // SAFETY: the kernel's copy of the caller's value; bounds checked against optval_end.
    unsafe {
        let val = (*so).__bindgen_anon_2.optval as *mut i32;
        let end = (*so).__bindgen_anon_3.optval_end as *mut i32;
        if val.is_null() || val.add(1) > end {
            return PROCEED;
        }
        // The kernel doubles the requested size for its bookkeeping overhead.
        let cap = (limit / 2).min(i32::MAX as u64) as i32;
        let asked = *val;
        if asked > cap {
            *val = cap;
            atomic::add(&raw mut (*usage).res[resource as usize].failcnt, 1);
            report(ve, resource, asked as u64 * 2, barrier, limit);
        }
    }
    PROCEED
}

/// `struct bpf_iter_meta`.
#[repr(C)]
pub struct IterMeta {
    seq: *mut core::ffi::c_void,
    session_id: u64,
    seq_num: u64,
}

/// `struct bpf_iter__tcp`, `bpf_iter__udp`, `bpf_iter__unix`: meta, then the socket (a
/// `sock_common`, `udp_sock` or `unix_sock`, each starting with its `struct sock`).
#[repr(C)]
pub struct IterSock {
    meta: *const IterMeta,
    sk: u64,
}

#[unsafe(no_mangle)]
pub static VZ_OFF_SKC_STATE: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_SK_RMEM_ALLOC: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_SK_WMEM_ALLOC: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_SK_WMEM_QUEUED: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_SK_DROPS: Global<u32> = Global::new(0);
/// `sock.sk_drop_counters` (Linux 6.18+: per-NUMA counters some protocols use instead of
/// `sk_drops`); 0 on kernels without it.
#[unsafe(no_mangle)]
pub static VZ_OFF_SK_DROP_COUNTERS: Global<u32> = Global::new(0);
/// `numa_drop_counters.drops1` (`drops0` is at 0).
#[unsafe(no_mangle)]
pub static VZ_OFF_DROPS1: Global<u32> = Global::new(0);

const TCP_TIME_WAIT: u8 = 6;
const TCP_NEW_SYN_RECV: u8 = 12;

#[inline(always)]
fn read_i32(addr: u64) -> i64 {
    // SAFETY: probe read; a bad address reads as 0.
    i64::from(unsafe { bpf_probe_read_kernel(addr as *const i32) }.unwrap_or(0))
}

#[inline(always)]
fn emit(ctx: *mut IterSock, sk: u64, send: i64, recv: i64) {
    // As the kernel's sk_drops_read().
    let off = VZ_OFF_SK_DROP_COUNTERS.load();
    // SAFETY: probe read; a bad address reads as 0.
    let counters =
        if off == 0 { 0 } else { unsafe { bpf_probe_read_kernel((sk + u64::from(off)) as *const u64) }.unwrap_or(0) };
    let drops = if counters == 0 {
        read_i32(sk + u64::from(VZ_OFF_SK_DROPS.load()))
    } else {
        read_i32(counters) + read_i32(counters + u64::from(VZ_OFF_DROPS1.load()))
    };
    let rec = [send.max(0) as u64, recv.max(0) as u64, drops.max(0) as u64];
    // SAFETY: meta and its seq are kernel-typed pointers of the iterator context.
    unsafe {
        let seq = (*(*ctx).meta).seq;
        bpf_seq_write(seq.cast(), rec.as_ptr().cast(), 24);
    }
}

/// TCP: send = bytes queued for sending (`sk_wmem_queued`), receive = `sk_rmem_alloc`.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/tcp")]
pub fn vz_iter_tcp(ctx: *mut IterSock) -> i32 {
    // SAFETY: the kernel passes a valid iterator context.
    let sk = unsafe { (*ctx).sk };
    if sk == 0 {
        return 0;
    }
    // SAFETY: probe read.
    let state: u8 =
        unsafe { bpf_probe_read_kernel((sk + u64::from(VZ_OFF_SKC_STATE.load())) as *const u8) }.unwrap_or(0);
    // Time-wait and request sockets are not full sockets and hold no buffers.
    if state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV {
        return 0;
    }
    let send = read_i32(sk + u64::from(VZ_OFF_SK_WMEM_QUEUED.load()));
    let recv = read_i32(sk + u64::from(VZ_OFF_SK_RMEM_ALLOC.load()));
    emit(ctx, sk, send, recv);
    0
}

/// UDP, and UNIX sockets: send = skbs in flight (`sk_wmem_alloc`, which starts at 1),
/// receive = `sk_rmem_alloc` (always 0 for UNIX: its queued skbs stay charged to the
/// sender).
#[inline(always)]
fn dgram(ctx: *mut IterSock) -> i32 {
    // SAFETY: the kernel passes a valid iterator context.
    let sk = unsafe { (*ctx).sk };
    if sk == 0 {
        return 0;
    }
    let send = read_i32(sk + u64::from(VZ_OFF_SK_WMEM_ALLOC.load())) - 1;
    let recv = read_i32(sk + u64::from(VZ_OFF_SK_RMEM_ALLOC.load()));
    emit(ctx, sk, send, recv);
    0
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/udp")]
pub fn vz_iter_udp(ctx: *mut IterSock) -> i32 {
    dgram(ctx)
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/unix")]
pub fn vz_iter_unix(ctx: *mut IterSock) -> i32 {
    dgram(ctx)
}
