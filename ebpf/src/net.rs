//! A VE's traffic at the host end of its venet pair (tc, one program per direction for all
//! VEs; the pair's ifindex finds the VE in `VZ_NET_IFS`):
//! - `vz_tc_from_ve` (ingress of the host end: what the VE sends) drops every packet whose
//!   source is not one of the VE's addresses (`VZ_VE_ADDRS`), whatever made it — TCP, UDP,
//!   raw or packet sockets — and counts it; ARP must name one of its addresses too; IPv6
//!   link-local and unspecified sources (neighbour discovery) pass.
//! - `vz_tc_to_ve` (egress of the host end: what the VE receives) counts.
//!
//! Counters per VE in `VZ_NET_STATS` (per CPU): bytes and packets each way, drops.
use aya_ebpf::{macros::classifier, programs::TcContext};
use vz_common::{NetStats, VeAddr};

use crate::maps::{VZ_NET_IFS, VZ_NET_STATS, VZ_VE_ADDRS};

const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;
const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

#[inline(always)]
fn ve_of(ctx: &TcContext) -> Option<u64> {
    // SAFETY: the kernel's __sk_buff for this run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: map lookup with a stack key.
    unsafe { VZ_NET_IFS.get(&ifindex) }.copied()
}

#[inline(always)]
fn stats(ve: u64) -> Option<*mut NetStats> {
    if let Some(s) = VZ_NET_STATS.get_ptr_mut(&ve) {
        return Some(s);
    }
    let _ = VZ_NET_STATS.insert(&ve, &NetStats::default(), 0);
    VZ_NET_STATS.get_ptr_mut(&ve)
}

#[inline(always)]
fn own(ve: u64, addr: [u32; 4]) -> bool {
    // SAFETY: map lookup with a stack key.
    unsafe { VZ_VE_ADDRS.get(&VeAddr { ve, addr }) }.is_some()
}

/// Whether the VE may send this frame: its source is one of the VE's addresses.
#[inline(always)]
fn source_ok(ctx: &TcContext, ve: u64) -> bool {
    let Ok(proto) = ctx.load::<u16>(12).map(u16::from_be) else { return false };
    match proto {
        ETH_P_IP => match ctx.load::<u32>(ETH_HLEN + 12) {
            Ok(src) => own(ve, vz_common::ve_addr_v4(src)),
            Err(_) => false,
        },
        ETH_P_ARP => match ctx.load::<u32>(ETH_HLEN + 14) {
            // Sender protocol address: the VE's own, or 0 (a probe).
            Ok(spa) => spa == 0 || own(ve, vz_common::ve_addr_v4(spa)),
            Err(_) => false,
        },
        ETH_P_IPV6 => {
            let Ok(src) = ctx.load::<[u32; 4]>(ETH_HLEN + 8) else { return false };
            let unspecified = src[0] == 0 && src[1] == 0 && src[2] == 0 && src[3] == 0;
            let link_local = u32::from_be(src[0]) >> 22 == 0x3fa;
            unspecified || link_local || own(ve, src)
        }
        _ => false,
    }
}

#[classifier]
pub fn vz_tc_from_ve(ctx: TcContext) -> i32 {
    let Some(ve) = ve_of(&ctx) else { return TC_ACT_OK };
    let ok = source_ok(&ctx, ve);
    if let Some(s) = stats(ve) {
        // SAFETY: per-CPU value of this CPU: no other writer.
        unsafe {
            if ok {
                (*s).out_bytes += u64::from(ctx.len());
                (*s).out_packets += 1;
            } else {
                (*s).drops += 1;
            }
        }
    }
    if ok {
        TC_ACT_OK
    } else {
        TC_ACT_SHOT
    }
}

#[classifier]
pub fn vz_tc_to_ve(ctx: TcContext) -> i32 {
    let Some(ve) = ve_of(&ctx) else { return TC_ACT_OK };
    if let Some(s) = stats(ve) {
        // SAFETY: per-CPU value of this CPU: no other writer.
        unsafe {
            (*s).in_bytes += u64::from(ctx.len());
            (*s).in_packets += 1;
        }
    }
    TC_ACT_OK
}
