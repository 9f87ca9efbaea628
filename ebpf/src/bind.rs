//! A VE binds only to its own addresses, the wildcard or loopback: `cgroup/bind4` and
//! `cgroup/bind6` look the address up in `VZ_VE_ADDRS` (VE, address) and refuse anything
//! else with EADDRNOTAVAIL, even where the VE's own namespace would allow it
//! (`ip_nonlocal_bind`, IP_FREEBIND). Sockets with their own bind (raw, ping) do not pass
//! this hook; what they send is the anti-spoofing filter's business.
use aya_ebpf::{
    helpers::{bpf_get_current_ancestor_cgroup_id, bpf_set_retval},
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
};
use vz_common::VeAddr;

use crate::maps::{VZ_UBC, VZ_VE_ADDRS, VZ_VE_LEVEL};

const ALLOW: i32 = 1;
const DENY: i32 = 0;
const EADDRNOTAVAIL: i32 = 99;

#[inline(always)]
fn check(addr: [u32; 4]) -> i32 {
    // SAFETY: helper with a constant argument.
    let ve = unsafe { bpf_get_current_ancestor_cgroup_id(VZ_VE_LEVEL.load() as i32) };
    if ve == 0 || VZ_UBC.get_ptr(ve).is_none() {
        return ALLOW;
    }
    let key = VeAddr { ve, addr };
    // SAFETY: map lookup with a stack key.
    if unsafe { VZ_VE_ADDRS.get(key) }.is_some() {
        return ALLOW;
    }
    // SAFETY: plain helper call; sock_addr programs may set their errno.
    unsafe { bpf_set_retval(-EADDRNOTAVAIL) };
    DENY
}

#[cgroup_sock_addr(bind4)]
pub fn vz_bind4(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel passes a valid context; user_ip4 is in network order.
    let ip = unsafe { (*ctx.sock_addr).user_ip4 };
    let first = u32::from_be(ip) >> 24;
    if ip == 0 || first == 127 {
        return ALLOW;
    }
    check(vz_common::ve_addr_v4(ip))
}

#[cgroup_sock_addr(bind6)]
pub fn vz_bind6(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel passes a valid context.
    let ip = unsafe { (*ctx.sock_addr).user_ip6 };
    let w0 = u32::from_be(ip[0]);
    let any = ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] == 0;
    let loopback = ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && u32::from_be(ip[3]) == 1;
    // Link-local addresses belong to one interface of the VE's own namespace.
    let link_local = w0 >> 22 == 0x3fa;
    if any || loopback || link_local {
        return ALLOW;
    }
    // v4-mapped ::ffff:a.b.c.d binds an IPv4 address.
    if ip[0] == 0 && ip[1] == 0 && u32::from_be(ip[2]) == 0xffff {
        let first = u32::from_be(ip[3]) >> 24;
        if ip[3] == 0 || first == 127 {
            return ALLOW;
        }
    }
    check(ip)
}
