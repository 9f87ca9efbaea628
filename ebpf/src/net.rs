//! A VE's traffic at the host end of its venet pair (tc, one program per direction for all
//! VEs; the pair's ifindex finds the VE in `VZ_NET_IFS`):
//! - `vz_tc_from_ve` (ingress of the host end: what the VE sends) drops every packet whose
//!   source is not one of the VE's addresses (`VZ_VE_ADDRS`), whatever made it — TCP, UDP,
//!   raw or packet sockets — and counts it; ARP must name one of its addresses too. From
//!   the IPv6 unspecified address only duplicate address detection, router solicitation
//!   and MLD reports pass; from a link-local address other than the VE's own (its venet0's,
//!   in `VZ_VE_ADDRS` too) only neighbour discovery and MLD. Router advertisements and
//!   redirects never pass: a VE is not the host's router.
//! - `vz_tc_to_ve` (egress of the host end: what the VE receives) counts.
//! - Both apply the VE's firewall rules (`VZ_NET_RULES`, first match decides, default
//!   allow): the cost depends on that VE's rules only, never on how many VEs there are.
//!
//! - A VE with an egress rate limit (`VZ_NET_RATE`) has what it sends redirected into its
//!   shaper, an ifb device whose tbf qdisc queues it to the rate (TCP backs off on the
//!   queue instead of losing packets to a policer); the ifb hands each packet back to this
//!   interface's input, past tc, so it is checked and counted once. All of it sits on the
//!   host: nothing the VE does inside its namespace lifts the limit.
//!
//! Counters per VE in `VZ_NET_STATS` (per CPU): bytes and packets each way, drops.
use aya_ebpf::{macros::classifier, programs::TcContext};
use vz_common::{rule, NetRules, NetStats, VeAddr, MAX_RULES};

use crate::maps::{VZ_NET_IFS, VZ_NET_RATE, VZ_NET_RULES, VZ_NET_STATS, VZ_VE_ADDRS};

const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;
const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

/// Reads packet bytes directly where the linear data holds them (a bounds check, no helper
/// call), through bpf_skb_load_bytes otherwise.
#[inline(always)]
fn get<T: Copy>(ctx: &TcContext, off: usize) -> Result<T, i64> {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + off + core::mem::size_of::<T>() <= end {
        // SAFETY: within [data, data_end), as the bounds check above proves to the verifier.
        return Ok(unsafe { core::ptr::read_unaligned((start + off) as *const T) });
    }
    ctx.load::<T>(off)
}

#[inline(always)]
fn ve_of(ctx: &TcContext) -> Option<u64> {
    // SAFETY: the kernel's __sk_buff for this run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: map lookup with a stack key.
    unsafe { VZ_NET_IFS.get(ifindex) }.copied()
}

#[inline(always)]
fn stats(ve: u64) -> Option<*mut NetStats> {
    if let Some(s) = VZ_NET_STATS.get_ptr_mut(ve) {
        return Some(s);
    }
    let _ = VZ_NET_STATS.insert(ve, NetStats::default(), 0);
    VZ_NET_STATS.get_ptr_mut(ve)
}

#[inline(always)]
fn own(ve: u64, addr: [u32; 4]) -> bool {
    // SAFETY: map lookup with a stack key.
    unsafe { VZ_VE_ADDRS.get(VeAddr { ve, addr }) }.is_some()
}

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;
/// IPv6 extension headers walked to find the transport header.
const MAX_EXT_HEADERS: usize = 4;

#[inline(always)]
fn is_ext_header(proto: u8) -> bool {
    matches!(proto, IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_FRAGMENT | IPPROTO_DSTOPTS)
}

/// No port (not TCP/UDP, or a later fragment): only rules for all ports match.
const NO_PORT: u32 = 0x1_0000;

/// What the checks look at, read from the packet once. `family` is 4 or 6 for a complete
/// IP header, 0 otherwise; for ARP, `src` is the sender's protocol address.
struct Pkt {
    eth: u16,
    family: u8,
    proto: u8,
    src: [u32; 4],
    dst: [u32; 4],
    dport: u32,
    /// IPv6 whose transport header could not be found (a truncated or too long extension
    /// header chain): a VE with rules neither sends nor receives it.
    opaque: bool,
    /// ICMPv6 message type (full parse only); NO_ICMP6 for anything else.
    icmp6_type: u8,
}

const NO_ICMP6: u8 = 255;
const IPPROTO_ICMPV6: u8 = 58;

/// `full`: also the destination, protocol and destination port (only rules need them).
#[inline(always)]
fn parse(ctx: &TcContext, full: bool) -> Pkt {
    let mut p = Pkt {
        eth: 0,
        family: 0,
        proto: 0,
        src: [0; 4],
        dst: [0; 4],
        dport: NO_PORT,
        opaque: false,
        icmp6_type: NO_ICMP6,
    };
    let Ok(eth) = get::<u16>(ctx, 12) else { return p };
    p.eth = u16::from_be(eth);
    let mut l4: usize = 0;
    if p.eth == ETH_P_IP {
        let Ok(src) = get::<u32>(ctx, ETH_HLEN + 12) else { return p };
        p.family = 4;
        p.src = vz_common::ve_addr_v4(src);
        if !full {
            return p;
        }
        let (Ok(vihl), Ok(frag), Ok(proto), Ok(dst)) = (
            get::<u8>(ctx, ETH_HLEN),
            get::<u16>(ctx, ETH_HLEN + 6),
            get::<u8>(ctx, ETH_HLEN + 9),
            get::<u32>(ctx, ETH_HLEN + 16),
        ) else {
            p.family = 0;
            return p;
        };
        p.proto = proto;
        p.dst = vz_common::ve_addr_v4(dst);
        // Later fragments carry no ports.
        if u16::from_be(frag) & 0x1fff == 0 {
            l4 = ETH_HLEN + usize::from(vihl & 0x0f) * 4;
        }
    } else if p.eth == ETH_P_IPV6 {
        let Ok(src) = get::<[u32; 4]>(ctx, ETH_HLEN + 8) else { return p };
        p.family = 6;
        p.src = src;
        if !full {
            return p;
        }
        let (Ok(proto), Ok(dst)) = (get::<u8>(ctx, ETH_HLEN + 6), get::<[u32; 4]>(ctx, ETH_HLEN + 24)) else {
            p.family = 0;
            return p;
        };
        p.proto = proto;
        p.dst = dst;
        l4 = ETH_HLEN + 40;
        // Extension headers before the transport header: a rule's protocol and port must
        // not be hidden behind them.
        for _ in 0..MAX_EXT_HEADERS {
            let step = match p.proto {
                IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => match get::<[u8; 2]>(ctx, l4) {
                    Ok([next, len]) => Some((next, (usize::from(len) + 1) * 8, false)),
                    Err(_) => None,
                },
                IPPROTO_FRAGMENT => match get::<[u8; 4]>(ctx, l4) {
                    // Offset in 8-byte units, the upper 13 bits of bytes 2-3.
                    Ok([next, _, hi, lo]) => Some((next, 8, (u16::from(hi) << 5 | u16::from(lo) >> 3) != 0)),
                    Err(_) => None,
                },
                _ => break,
            };
            let Some((next, len, later_fragment)) = step else {
                p.opaque = true;
                return p;
            };
            p.proto = next;
            l4 += len;
            if later_fragment {
                l4 = 0;
                break;
            }
        }
        if is_ext_header(p.proto) && l4 != 0 {
            // A longer chain than walked: the rules cannot be applied to it.
            p.opaque = true;
            return p;
        }
    } else if p.eth == ETH_P_ARP {
        if let Ok(spa) = get::<u32>(ctx, ETH_HLEN + 14) {
            p.src = vz_common::ve_addr_v4(spa);
            p.family = 4;
        }
        return p;
    }
    if (p.proto == 6 || p.proto == 17) && l4 != 0 {
        if let Ok(dport) = get::<u16>(ctx, l4 + 2) {
            p.dport = u32::from(u16::from_be(dport));
        }
    } else if p.proto == IPPROTO_ICMPV6 && p.family == 6 && l4 != 0 {
        // Rare (neighbour discovery, mostly): the helper, whose bounds the kernel checks,
        // rather than a direct read at an offset the verifier cannot bound here.
        if let Ok(t) = ctx.load::<u8>(l4) {
            p.icmp6_type = t;
        }
    }
    p
}

/// An IPv6 source that needs the message type to be judged: unspecified or link-local.
#[inline(always)]
fn special_v6_source(s: &[u32; 4]) -> bool {
    (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0) || u32::from_be(s[0]) >> 22 == 0x3fa
}

/// Whether the VE may send this frame: its source is one of the VE's addresses.
#[inline(always)]
fn source_ok(p: &Pkt, ve: u64) -> bool {
    if p.family == 0 {
        // Not IP or ARP, or too short to say: nothing a VE needs to send.
        return false;
    }
    match p.eth {
        // Sender protocol address: the VE's own, or 0 (a probe).
        ETH_P_ARP => p.src[3] == 0 || own(ve, p.src),
        ETH_P_IPV6 => {
            let s = p.src;
            if !special_v6_source(&s) {
                return own(ve, s);
            }
            let t = p.icmp6_type;
            // Router advertisement, redirect: a VE is never the host's router.
            if t == 134 || t == 137 {
                return false;
            }
            // MLD queries and reports.
            let mld = matches!(t, 130..=132 | 143);
            if s[0] == 0 {
                // Unspecified: duplicate address detection (neighbour solicitation), router
                // solicitation and MLDv2 reports only.
                return matches!(t, 133 | 135 | 143);
            }
            // Link-local: neighbour discovery from any, anything from the VE's own.
            matches!(t, 133 | 135 | 136) || mld || own(ve, s)
        }
        _ => own(ve, p.src),
    }
}

#[inline(always)]
fn prefix_match(peer: &[u32; 4], want: &[u32; 4], len: u32) -> bool {
    for i in 0..4 {
        let bits = len.saturating_sub(32 * i as u32).min(32);
        if bits == 0 {
            continue;
        }
        let mask = u32::MAX << (32 - bits);
        if (u32::from_be(peer[i]) ^ u32::from_be(want[i])) & mask != 0 {
            return false;
        }
    }
    true
}

/// Whether the VE's rules let this packet through (first match decides; none: allow).
/// `dir`: rule::OUT for what the VE sends (peer = destination), rule::IN for what it
/// receives (peer = source). The port is the destination port either way: the VE's
/// service for `in`, the remote service for `out`.
#[inline(always)]
fn rules_allow(rules: *const NetRules, p: &Pkt, dir: u8) -> bool {
    if p.opaque {
        return false;
    }
    if p.family == 0 || p.eth == ETH_P_ARP {
        return true;
    }
    let out = dir == rule::OUT;
    let (peer, port) = if out { (&p.dst, p.dport) } else { (&p.src, p.dport) };
    // SAFETY: valid map value pointer.
    let count = unsafe { (*rules).count } as usize;
    for i in 0..MAX_RULES {
        if i >= count {
            break;
        }
        // SAFETY: i < MAX_RULES.
        let r = unsafe { &(*rules).rules[i] };
        if r.dir != dir || (r.proto != rule::ANY && r.proto != p.proto) {
            continue;
        }
        let all_ports = r.port_lo == 0 && r.port_hi == u16::MAX;
        if !all_ports && (port < u32::from(r.port_lo) || port > u32::from(r.port_hi)) {
            continue;
        }
        if r.family != rule::FAMILY_ANY
            && (r.family != p.family || !prefix_match(peer, &r.peer, u32::from(r.prefix_len)))
        {
            continue;
        }
        return r.action == rule::ALLOW;
    }
    true
}

#[classifier]
pub fn vz_tc_from_ve(ctx: TcContext) -> i32 {
    let Some(ve) = ve_of(&ctx) else { return TC_ACT_OK };
    let rules = VZ_NET_RULES.get_ptr(ve);
    let mut p = parse(&ctx, rules.is_some());
    if rules.is_none() && p.eth == ETH_P_IPV6 && special_v6_source(&p.src) {
        // Only these (neighbour discovery, mostly) need the message type.
        p = parse(&ctx, true);
    }
    let spoofed = !source_ok(&p, ve);
    let denied = !spoofed && rules.is_some_and(|r| !rules_allow(r, &p, rule::OUT));
    if let Some(s) = stats(ve) {
        // SAFETY: per-CPU value of this CPU: no other writer.
        unsafe {
            if spoofed {
                (*s).drops += 1;
            } else if denied {
                (*s).filtered += 1;
            } else {
                (*s).out_bytes += u64::from(ctx.len());
                (*s).out_packets += 1;
            }
        }
    }
    if spoofed || denied {
        return TC_ACT_SHOT;
    }
    // SAFETY: map lookup with a stack key.
    match unsafe { VZ_NET_RATE.get(ve) } {
        // SAFETY: plain helper call; it returns TC_ACT_REDIRECT, or TC_ACT_SHOT for a shaper
        // that is gone (the VE is being stopped).
        Some(shaper) => unsafe { aya_ebpf::helpers::bpf_redirect(*shaper, 0) as i32 },
        None => TC_ACT_OK,
    }
}

#[classifier]
pub fn vz_tc_to_ve(ctx: TcContext) -> i32 {
    let Some(ve) = ve_of(&ctx) else { return TC_ACT_OK };
    // Headers are read only when the VE has rules to check them against.
    let denied = VZ_NET_RULES.get_ptr(ve).is_some_and(|r| !rules_allow(r, &parse(&ctx, true), rule::IN));
    if let Some(s) = stats(ve) {
        // SAFETY: per-CPU value of this CPU: no other writer.
        unsafe {
            if denied {
                (*s).filtered += 1;
            } else {
                (*s).in_bytes += u64::from(ctx.len());
                (*s).in_packets += 1;
            }
        }
    }
    if denied {
        TC_ACT_SHOT
    } else {
        TC_ACT_OK
    }
}
