//! numtcpsock / numothersock: `cgroup/sock_create` charges, `cgroup/sock_release` uncharges.
//!
//! Attached once to the VE parent cgroup; they run for every VE below it. The hook exists for
//! AF_INET and AF_INET6 sockets only (the kernel calls it from inet_create/inet6_create).
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_ancestor_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_socket_cookie,
        bpf_set_retval,
    },
    macros::cgroup_sock,
    programs::SockContext,
    EbpfContext,
};
use aya_log_ebpf::info;
use vz_common::{res, sock_bucket, SockCharge, SockSlot, UbcEvent, SOCK_BUCKET_SLOTS, STAT_SOCK_OVERFLOW};

use crate::{
    maps::{VZ_EVENTS, VZ_LIMITS, VZ_SOCKS, VZ_SOCKS_OVF, VZ_SOCK_MASK, VZ_STATS, VZ_UBC, VZ_VE_LEVEL},
    ubc::{self, atomic},
};

const ALLOW: i32 = 1;
const DENY: i32 = 0;
/// OpenVZ refuses sockets over the beancounter with ENOBUFS; so do we (via bpf_set_retval,
/// otherwise a denying cgroup program yields EPERM).
const ENOBUFS: i32 = 105;
const SOCK_STREAM: u32 = 1;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_MPTCP: u32 = 262;

/// A TCP socket for the beancounters (MPTCP counts as TCP, as its subflows are).
#[inline(always)]
pub(crate) fn is_tcp(sk_type: u32, protocol: u32) -> bool {
    sk_type == SOCK_STREAM && (protocol == IPPROTO_TCP || protocol == IPPROTO_MPTCP)
}

#[cgroup_sock(sock_create)]
pub fn vz_sock_create(ctx: SockContext) -> i32 {
    // SAFETY: helper with a constant argument; returns 0 when the task is above VE level.
    let ve = unsafe { bpf_get_current_ancestor_cgroup_id(VZ_VE_LEVEL.load() as i32) };
    if ve == 0 {
        return ALLOW;
    }
    let Some(usage) = VZ_UBC.get_ptr_mut(ve) else {
        // A cgroup below the parent that is not (or no longer) a registered VE.
        return ALLOW;
    };
    // SAFETY: ctx.sock is the kernel-provided context, valid for this run.
    let (sk_type, protocol) = unsafe { ((*ctx.sock).type_, (*ctx.sock).protocol) };
    let resource = if is_tcp(sk_type, protocol) { res::NUMTCPSOCK } else { res::NUMOTHERSOCK };
    let threshold = match VZ_LIMITS.get_ptr(ve) {
        // SAFETY: valid map value pointer; a torn read during a limit update is harmless.
        Some(limits) => unsafe { (*limits).res[resource as usize].barrier },
        None => vz_common::UB_UNLIMITED,
    };
    // SAFETY: usage is a valid map value pointer; index is a constant < UB_SLOTS.
    let slot = unsafe { &raw mut (*usage).res[resource as usize] };
    if !ubc::charge(slot, 1, threshold) {
        info!(&ctx, "ve {} refused socket res {} barrier {}", ve, resource, threshold);
        // SAFETY: valid map value pointers.
        let (held, limit) = unsafe {
            (
                atomic::load(&raw mut (*slot).held),
                VZ_LIMITS.get_ptr(ve).map_or(vz_common::UB_UNLIMITED, |l| (*l).res[resource as usize].limit),
            )
        };
        report(ve, resource, held, threshold, limit);
        return refuse();
    }
    // SAFETY: ctx is a bpf_sock context, which this helper accepts.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    if !record(cookie, SockCharge { ve, res: resource, _pad: 0 }) {
        // Without a record the release could not uncharge; refuse rather than drift.
        ubc::uncharge(slot, 1);
        // SAFETY: valid map value pointer; the VE met a refusal, so it counts.
        atomic::add(unsafe { &raw mut (*slot).failcnt }, 1);
        info!(&ctx, "ve {} socket refused: charge table full", ve);
        return refuse();
    }
    ALLOW
}

/// Streams a limit hit to the events ring buffer (dropped if it is full).
#[inline(always)]
pub(crate) fn report(ve: u64, res: u32, held: u64, barrier: u64, limit: u64) {
    if let Some(mut e) = VZ_EVENTS.reserve(0) {
        let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        let comm = bpf_get_current_comm().unwrap_or([0; 16]);
        e.write(UbcEvent { ve, held, barrier, limit, res, pid, comm: comm.map(|c| c) });
        e.submit(0);
    }
}

#[inline(always)]
fn refuse() -> i32 {
    // SAFETY: plain helper call; cgroup programs may set their return errno.
    unsafe { bpf_set_retval(-ENOBUFS) };
    DENY
}

#[cgroup_sock(sock_release)]
pub fn vz_sock_release(ctx: SockContext) -> i32 {
    // SAFETY: ctx is a bpf_sock context, which this helper accepts.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let Some(SockCharge { ve, res, .. }) = take(cookie) else {
        return ALLOW;
    };
    if let Some(usage) = VZ_UBC.get_ptr_mut(ve) {
        if (res as usize) < vz_common::UB_SLOTS {
            // SAFETY: valid map value pointer, index bounds-checked above.
            ubc::uncharge(unsafe { &raw mut (*usage).res[res as usize] }, 1);
        }
    }
    ALLOW
}

#[inline(always)]
fn slot_ptr(cookie: u64, i: usize) -> Option<*mut SockSlot> {
    let bucket = VZ_SOCKS.get_ptr_mut(sock_bucket(cookie, VZ_SOCK_MASK.load()))?;
    let s = ((cookie as usize).wrapping_add(i)) & (SOCK_BUCKET_SLOTS - 1);
    // SAFETY: valid map value pointer; s < SOCK_BUCKET_SLOTS.
    Some(unsafe { &raw mut (*bucket).slots[s] })
}

/// Stores a socket's charge record: a free entry of its bucket, claimed with one
/// compare-and-swap, or, when the bucket is full, the overflow hash. False if neither had
/// room.
#[inline(always)]
fn record(cookie: u64, charge: SockCharge) -> bool {
    for i in 0..SOCK_BUCKET_SLOTS {
        let Some(slot) = slot_ptr(cookie, i) else { break };
        // SAFETY: valid map value pointer.
        if atomic::cmpxchg(unsafe { &raw mut (*slot).cookie }, 0, cookie) == 0 {
            // SAFETY: the entry is ours until this socket's release clears the cookie.
            unsafe { (*slot).charge = charge };
            return true;
        }
    }
    if VZ_SOCKS_OVF.insert(cookie, charge, u64::from(BPF_NOEXIST)).is_err() {
        return false;
    }
    if let Some(n) = VZ_STATS.get_ptr_mut(STAT_SOCK_OVERFLOW) {
        atomic::add(n, 1);
    }
    true
}

/// Removes and returns a socket's charge record; None if it was never charged. Only this
/// socket's release looks for its cookie, so a record is taken exactly once.
#[inline(always)]
fn take(cookie: u64) -> Option<SockCharge> {
    for i in 0..SOCK_BUCKET_SLOTS {
        let Some(slot) = slot_ptr(cookie, i) else { break };
        // SAFETY: valid map value pointer.
        let c = unsafe { &raw mut (*slot).cookie };
        if atomic::load(c) == cookie {
            // SAFETY: as above; read the record before freeing the entry.
            let charge = unsafe { (*slot).charge };
            atomic::store(c, 0);
            return Some(charge);
        }
    }
    // The overflow hash is searched only while it holds something.
    let n = VZ_STATS.get_ptr_mut(STAT_SOCK_OVERFLOW)?;
    if atomic::load(n) == 0 {
        return None;
    }
    // SAFETY: valid map value pointer, copied before removal.
    let charge = unsafe { *VZ_SOCKS_OVF.get_ptr(cookie)? };
    VZ_SOCKS_OVF.remove(cookie).ok()?;
    atomic::add(n, u64::MAX);
    Some(charge)
}
