//! The addresses a VE may own: parsing, one canonical spelling, and what is never a VE's (unspecified, loopback, multicast, link-local, the host's own).
use super::*;

/// Parses an address as it is stored (an optional /prefix is ignored: VE addresses are
/// host routes); an IPv4-mapped IPv6 address is the IPv4 address it maps.
pub fn parse_ip(s: &str) -> Result<IpAddr, NetError> {
    let a = s.split('/').next().unwrap_or("");
    a.parse::<IpAddr>().map(canonical).map_err(|_| NetError::BadAddress(s.to_string()))
}

/// `::ffff:a.b.c.d` is a.b.c.d: one address, one spelling (else the in-use check misses
/// it, and a VE could bind and send as another's address).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why `ip` cannot be a VE's own address, if it cannot: it must be one unicast host on
/// a network (not this host, not every host, not a group, not the link).
pub fn unusable(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            if a.is_unspecified() || o[0] == 0 {
                Some("0.0.0.0/8 means this host")
            } else if a.is_broadcast() {
                Some("it is the broadcast address")
            } else if a.is_loopback() {
                Some("it is a loopback address")
            } else if a.is_multicast() {
                Some("it is a multicast address")
            } else if a.is_link_local() {
                Some("it is link-local (169.254.0.0/16)")
            } else if o[0] >= 240 {
                Some("240.0.0.0/4 is reserved")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            let seg = a.segments();
            if a.is_unspecified() {
                Some("it is the unspecified address")
            } else if a.is_loopback() {
                Some("it is the loopback address")
            } else if a.is_multicast() {
                Some("it is a multicast address")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("it is link-local (fe80::/10)")
            } else if seg[..6].iter().all(|s| *s == 0) {
                Some("IPv4-compatible addresses (::/96) are deprecated")
            } else {
                None
            }
        }
    }
}

/// Parses `--ipadd ADDR[/PREFIX]` strictly: a prefix, if given, is a length (0..32 or
/// 0..128) or an IPv4 netmask; the address must be one a VE can own. Returns it in its
/// one spelling (`canonical`).
pub fn parse_ve_ip(s: &str) -> Result<IpAddr, NetError> {
    let bad = || NetError::BadAddress(s.to_string());
    let (a, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip = canonical(a.trim().parse::<IpAddr>().map_err(|_| bad())?);
    if let Some(p) = prefix {
        let max = if a.contains(':') { 128 } else { 32 };
        let len_ok = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u32>().is_ok_and(|n| n <= max);
        let mask_ok = !a.contains(':')
            && p.parse::<Ipv4Addr>().is_ok_and(|m| {
                let m = u32::from(m);
                m.leading_ones() + m.trailing_zeros() == 32
            });
        if !len_ok && !mask_ok {
            return Err(bad());
        }
    }
    if let Some(why) = unusable(ip) {
        return Err(NetError::Unusable { addr: s.to_string(), why });
    }
    Ok(ip)
}

/// The addresses of this network namespace's interfaces (the host's, as vzctl sees it).
pub fn host_addrs() -> Vec<IpAddr> {
    crate::sys::net::interface_addrs()
}
