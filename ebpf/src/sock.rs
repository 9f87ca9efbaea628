//! numtcpsock / numothersock: `cgroup/sock_create` charges, `cgroup/sock_release` uncharges.
//!
//! Attached once to the VE parent cgroup; they run for every VE below it. The hook exists for
//! AF_INET and AF_INET6 sockets only (the kernel calls it from inet_create/inet6_create).
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_ancestor_cgroup_id, bpf_get_socket_cookie, bpf_set_retval},
    macros::cgroup_sock,
    programs::SockContext,
    EbpfContext,
};
use aya_log_ebpf::info;
use vz_common::{res, SockCharge};

use crate::{
    maps::{VZ_LIMITS, VZ_SOCKS, VZ_UBC, VZ_VE_LEVEL},
    ubc,
};

const ALLOW: i32 = 1;
const DENY: i32 = 0;
/// OpenVZ refuses sockets over the beancounter with ENOBUFS; so do we (via bpf_set_retval,
/// otherwise a denying cgroup program yields EPERM).
const ENOBUFS: i32 = 105;
const SOCK_STREAM: u32 = 1;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_MPTCP: u32 = 262;

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
    let resource = if sk_type == SOCK_STREAM && (protocol == IPPROTO_TCP || protocol == IPPROTO_MPTCP)
    {
        res::NUMTCPSOCK
    } else {
        res::NUMOTHERSOCK
    };
    let threshold = match VZ_LIMITS.get_ptr(ve) {
        // SAFETY: valid map value pointer; a torn read during a limit update is harmless.
        Some(limits) => unsafe { (*limits).res[resource as usize].barrier },
        None => vz_common::UB_UNLIMITED,
    };
    // SAFETY: usage is a valid map value pointer; index is a constant < UB_SLOTS.
    let slot = unsafe { &raw mut (*usage).res[resource as usize] };
    if !ubc::charge(slot, 1, threshold) {
        info!(&ctx, "ve {} refused socket res {} barrier {}", ve, resource, threshold);
        return refuse();
    }
    // SAFETY: ctx is a bpf_sock context, which this helper accepts.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let charge = SockCharge { ve, res: resource, _pad: 0 };
    if VZ_SOCKS.insert(cookie, charge, u64::from(BPF_NOEXIST)).is_err() {
        // Without a record the release could not uncharge; refuse rather than drift.
        ubc::uncharge(slot, 1);
        info!(&ctx, "ve {} socket refused: charge table full", ve);
        return refuse();
    }
    ALLOW
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
    let Some(charge) = VZ_SOCKS.get_ptr(cookie) else {
        return ALLOW;
    };
    // SAFETY: valid map value pointer, read before the entry is removed.
    let SockCharge { ve, res, .. } = unsafe { *charge };
    // Removal succeeds once per cookie, so a socket is uncharged exactly once.
    if VZ_SOCKS.remove(cookie).is_err() {
        return ALLOW;
    }
    if let Some(usage) = VZ_UBC.get_ptr_mut(ve) {
        if (res as usize) < vz_common::UB_SLOTS {
            // SAFETY: valid map value pointer, index bounds-checked above.
            ubc::uncharge(unsafe { &raw mut (*usage).res[res as usize] }, 1);
        }
    }
    ALLOW
}
