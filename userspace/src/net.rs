//! Routed VE networking, like OpenVZ's venet: a veth pair per running VE, `venet0` inside
//! holding the VE's addresses with a default route to the host, and on the host a /32
//! (/128) route per VE address to the pair's host end. The host end carries the link-local
//! gateway addresses 169.254.0.1 and fe80::1, so the VE reaches its gateway without any
//! host sysctl; forwarding between VEs needs the host's `net.ipv4.ip_forward` (vzctl never
//! changes it; it says so).
//!
//! Netlink goes through rtnetlink. A netlink socket talks to the network namespace it was
//! opened in, so VE-side work runs on a thread that joined the VE's namespace first.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::stream::TryStreamExt as _;
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// The VE side's name, as in OpenVZ.
pub const VE_IFNAME: &str = "venet0";
/// The gateway addresses on the host end, as the VE sees them.
pub const GATEWAY4: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
    #[error("{op}: {source}")]
    Io { op: String, source: std::io::Error },
    #[error("network interface {0} not found")]
    NoLink(String),
    #[error("invalid IP address '{0}'")]
    BadAddress(String),
    #[error("IP address '{addr}' cannot be a container's: {why}")]
    Unusable { addr: String, why: &'static str },
    #[error("network interface {0} exists on the host and was not made by vzctl: it is left alone")]
    NotOurs(String),
    #[error("invalid network interface '{0}': use ifname[,mac,host_ifname,host_mac,bridge]")]
    BadNetif(String),
    #[error("invalid rate '{0}': use kbit/s (0 or none: no limit)")]
    BadRate(String),
}

fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetError {
    let op = op.into();
    move |source| NetError::Io { op, source }
}

/// Host end of a VE's pair: unique on the host (the VE's cgroup id; ids never reach 2^48),
/// at most 15 bytes as the kernel requires.
pub fn host_ifname(cgid: u64) -> String {
    format!("vz{:x}", cgid & 0xffff_ffff_ffff)
}

fn peer_ifname(cgid: u64) -> String {
    format!("vzp{:x}", cgid & 0xffff_ffff_ffff)
}

/// Every link vzctl makes on the host carries this interface group (IFLA_GROUP, set at
/// creation), and vzctl deletes only links that do: a name in a config never makes it
/// remove an interface the admin made.
pub const LINK_GROUP: u32 = 0x767a;

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
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below; we only read it meanwhile.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut p = head;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

/// Whether a link of this name exists in this network namespace (the host's).
pub fn link_exists(name: &str) -> Result<bool, NetError> {
    with_netlink(async |h| match link_index(&h, name).await {
        Ok(_) => Ok(true),
        Err(NetError::NoLink(_)) => Ok(false),
        Err(e) => Err(e),
    })
}

/// The MAC address of a VE's venet0 (stable for its cgroup id), and so its IPv6 link-local
/// address: the only link-local source the anti-spoofing program lets it use beyond
/// neighbour discovery.
pub fn ve_mac(cgid: u64) -> [u8; 6] {
    let h = crate::bpf::fnv1a(&cgid.to_le_bytes()).to_le_bytes();
    [0x00, 0x18, 0x51, h[0], h[1], h[2]]
}

/// fe80::/64 with the EUI-64 interface id of `mac` (what the kernel gives venet0).
pub fn link_local(mac: [u8; 6]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 2,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ]))
}

/// Runs `f` with a netlink handle of the calling thread's network namespace.
fn with_netlink<T>(f: impl AsyncFnOnce(Handle) -> Result<T, NetError>) -> Result<T, NetError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(io("tokio runtime"))?;
    rt.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(io("netlink socket"))?;
        let task = tokio::spawn(conn);
        let r = f(handle).await;
        task.abort();
        r
    })
}

/// Runs `f` with a netlink handle of a VE's network namespace: on a thread that joined
/// the namespace of the VE's init first.
fn with_ve_netlink<T, F>(init: i32, f: F) -> Result<T, NetError>
where
    T: Send + 'static,
    F: AsyncFnOnce(Handle) -> Result<T, NetError> + Send + 'static,
{
    crate::ns::in_ve_net(init, move || Ok(with_netlink(f)))
        .map_err(|e| NetError::Io { op: "VE network namespace".into(), source: std::io::Error::other(e) })?
}

/// Deletes a link vzctl made, by name; a missing one is fine (the goal is that it is
/// gone); one without vzctl's group is someone else's and stays.
fn del_link(name: &str) -> Result<(), NetError> {
    use rtnetlink::packet_route::link::LinkAttribute;
    with_netlink(async |h| {
        let mut links = h.link().get().match_name(name.to_string()).execute();
        let link = match links.try_next().await {
            Ok(Some(l)) => l,
            Ok(None) | Err(rtnetlink::Error::NetlinkError(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let ours = link.attributes.iter().any(|a| matches!(a, LinkAttribute::Group(g) if *g == LINK_GROUP));
        if !ours {
            return Err(NetError::NotOurs(name.to_string()));
        }
        Ok(h.link().del(link.header.index).execute().await?)
    })
}

/// Marks a link vzctl makes as its own (the group is applied at creation; an alias,
/// for the admin reading `ip link`, only after).
fn tag(msg: &mut rtnetlink::packet_route::link::LinkMessage) {
    msg.attributes.push(rtnetlink::packet_route::link::LinkAttribute::Group(LINK_GROUP));
}

async fn set_alias(h: &Handle, index: u32, alias: String) -> Result<(), NetError> {
    let mut msg = LinkUnspec::new_with_index(index).build();
    msg.attributes.push(rtnetlink::packet_route::link::LinkAttribute::IfAlias(alias));
    Ok(h.link().set(msg).execute().await?)
}

async fn link_index(h: &Handle, name: &str) -> Result<u32, NetError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(l.header.index),
        Ok(None) | Err(rtnetlink::Error::NetlinkError(_)) => Err(NetError::NoLink(name.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Adding what is already there (EEXIST) succeeds: the config and the running VE may
/// differ after a change without --save.
fn exists_ok(r: Result<(), rtnetlink::Error>) -> Result<(), NetError> {
    match r {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
        other => Ok(other?),
    }
}

fn prefix(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn host_route(ip: IpAddr, index: u32) -> rtnetlink::packet_route::route::RouteMessage {
    match ip {
        IpAddr::V4(a) => {
            RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(a, 32).output_interface(index).build()
        }
        IpAddr::V6(a) => {
            RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(a, 128).output_interface(index).build()
        }
    }
}

/// Adds an address usable at once: no duplicate address detection (the pair has only
/// two ends, and a VE address is checked against every config before it is given).
async fn add_address(h: &Handle, index: u32, ip: IpAddr, prefix_len: u8) -> Result<(), rtnetlink::Error> {
    use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
    let mut req = h.address().add(index, ip, prefix_len);
    if ip.is_ipv6() {
        req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    req.execute().await
}

/// The VE's routes to its gateway on the host end, and its default routes through it.
async fn gateway_routes(h: &Handle, venet: u32) -> Result<(), NetError> {
    let gw = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(GATEWAY4, 32)
        .output_interface(venet)
        .scope(rtnetlink::packet_route::route::RouteScope::Link)
        .build();
    exists_ok(h.route().add(gw).execute().await)?;
    let def4 = RouteMessageBuilder::<Ipv4Addr>::new().gateway(GATEWAY4).output_interface(venet).build();
    exists_ok(h.route().add(def4).execute().await)?;
    let def6 = RouteMessageBuilder::<Ipv6Addr>::new().gateway(GATEWAY6).output_interface(venet).build();
    exists_ok(h.route().add(def6).execute().await)
}

/// Makes a VE's venet pair, both ends down: `venet0`'s future self moved into the VE's
/// namespace, the host end left for the tc programs to be attached before any packet can
/// pass (an interface coming up sends neighbour discovery at once). Returns the host
/// end's ifindex; `bring_up` finishes.
pub fn create_pair(init: i32, cgid: u64) -> Result<u32, NetError> {
    let (host_if, peer_if) = (host_ifname(cgid), peer_ifname(cgid));
    with_netlink(async |h| {
        // The peer is made inside the VE's namespace (IFLA_NET_NS_PID on the peer): moving
        // it there afterwards costs the kernel a network-wide synchronisation.
        use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkInfo};
        let mut msg = LinkVeth::new(&host_if, &peer_if).build();
        for a in &mut msg.attributes {
            if let LinkAttribute::LinkInfo(infos) = a {
                for i in infos {
                    if let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) = i {
                        peer.attributes.push(LinkAttribute::NetNsPid(init as u32));
                        peer.attributes.push(LinkAttribute::Address(ve_mac(cgid).to_vec()));
                    }
                }
            }
        }
        tag(&mut msg);
        h.link().add(msg).execute().await?;
        let idx = link_index(&h, &host_if).await?;
        set_alias(&h, idx, format!("vzbpf venet of cgroup {cgid}")).await?;
        Ok(idx)
    })
}

/// Brings a VE's pair up: the host end with the gateway addresses, `venet0` with the
/// VE's addresses and its default routes, and a host route per address.
pub fn bring_up(init: i32, cgid: u64, ips: &[IpAddr]) -> Result<(), NetError> {
    let (host_if, peer_if) = (host_ifname(cgid), peer_ifname(cgid));
    // The VE's end first: what the host end sends while its peer is down, veth drops after
    // the programs counted it.
    with_ve_netlink(init, async move |h| {
        let peer = link_index(&h, &peer_if).await?;
        h.link().set(LinkUnspec::new_with_index(peer).name(VE_IFNAME.to_string()).up().build()).execute().await?;
        gateway_routes(&h, peer).await
    })?;
    with_netlink(async |h| {
        let host = link_index(&h, &host_if).await?;
        h.link().set(LinkUnspec::new_with_index(host).up().build()).execute().await?;
        add_address(&h, host, IpAddr::V4(GATEWAY4), 32).await?;
        add_address(&h, host, IpAddr::V6(GATEWAY6), 64).await?;
        Ok(())
    })?;
    add_ips(init, cgid, ips)
}

/// A bridged-mode interface (`--netif_add ifname[,mac,host_ifname,host_mac,bridge]`): a
/// veth pair whose VE end is `ifname` with `mac`, and whose host end is `host_ifname`
/// with `host_mac`, optionally enslaved to `bridge`. The VE configures its addresses on it
/// itself (static or DHCP), as with OpenVZ's veth; no filtering is applied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetIf {
    pub ifname: String,
    pub mac: [u8; 6],
    pub host_ifname: String,
    pub host_mac: [u8; 6],
    pub bridge: Option<String>,
}

fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 2)?;
    }
    // A unicast address.
    (mac[0] & 1 == 0).then_some(mac)
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// A MAC in OpenVZ's range (00:18:51), derived from the VE and interface so it is stable.
fn default_mac(veid: u32, ifname: &str, host: bool) -> [u8; 6] {
    let h = crate::bpf::fnv1a(format!("{veid}/{ifname}/{host}").as_bytes()).to_le_bytes();
    [0x00, 0x18, 0x51, h[0], h[1], h[2]]
}

impl NetIf {
    /// Parses `--netif_add ifname[,mac,host_ifname,host_mac,bridge]` (empty fields take
    /// defaults: host_ifname veth<VEID>.<n>, MACs from 00:18:51:..., no bridge).
    pub fn parse_add(veid: u32, spec: &str, index: usize) -> Result<Self, NetError> {
        let bad = || NetError::BadNetif(spec.to_string());
        let f: Vec<&str> = spec.split(',').map(str::trim).collect();
        if f.len() > 5 {
            return Err(bad());
        }
        let get = |i: usize| f.get(i).copied().filter(|s| !s.is_empty());
        let ifname = get(0).filter(|n| valid_ifname(n)).ok_or_else(bad)?.to_string();
        let mac = match get(1) {
            Some(m) => parse_mac(m).ok_or_else(bad)?,
            None => default_mac(veid, &ifname, false),
        };
        let host_ifname = match get(2) {
            Some(h) if valid_ifname(h) => h.to_string(),
            Some(_) => return Err(bad()),
            None => format!("veth{veid}.{index}"),
        };
        let host_mac = match get(3) {
            Some(m) => parse_mac(m).ok_or_else(bad)?,
            None => default_mac(veid, &ifname, true),
        };
        let bridge = match get(4) {
            Some(b) if valid_ifname(b) => Some(b.to_string()),
            Some(_) => return Err(bad()),
            None => None,
        };
        Ok(Self { ifname, mac, host_ifname, host_mac, bridge })
    }

    /// The config form, as OpenVZ writes NETIF: `ifname=..,mac=..,host_ifname=..,host_mac=..[,bridge=..]`.
    pub fn to_conf(&self) -> String {
        let mut s = format!(
            "ifname={},mac={},host_ifname={},host_mac={}",
            self.ifname,
            format_mac(&self.mac),
            self.host_ifname,
            format_mac(&self.host_mac)
        );
        if let Some(b) = &self.bridge {
            s.push_str(&format!(",bridge={b}"));
        }
        s
    }

    pub fn from_conf(s: &str) -> Result<Self, NetError> {
        let bad = || NetError::BadNetif(s.to_string());
        let mut n =
            Self { ifname: String::new(), mac: [0; 6], host_ifname: String::new(), host_mac: [0; 6], bridge: None };
        for kv in s.split(',') {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            match k.trim() {
                "ifname" => n.ifname = v.to_string(),
                "mac" => n.mac = parse_mac(v).ok_or_else(bad)?,
                "host_ifname" => n.host_ifname = v.to_string(),
                "host_mac" => n.host_mac = parse_mac(v).ok_or_else(bad)?,
                "bridge" => n.bridge = Some(v.to_string()),
                _ => {}
            }
        }
        if !valid_ifname(&n.ifname) || !valid_ifname(&n.host_ifname) {
            return Err(bad());
        }
        Ok(n)
    }
}

/// The NETIF config value: interfaces separated by `;`.
pub fn parse_netifs(v: &str) -> Result<Vec<NetIf>, NetError> {
    v.split(';').map(str::trim).filter(|s| !s.is_empty()).map(NetIf::from_conf).collect()
}

pub fn format_netifs(list: &[NetIf]) -> String {
    list.iter().map(NetIf::to_conf).collect::<Vec<_>>().join(";")
}

/// Makes a bridged interface for a running VE.
pub fn add_netif(init: i32, n: &NetIf) -> Result<(), NetError> {
    let peer_tmp = format!("vzn{}", crate::bpf::fnv1a(n.host_ifname.as_bytes()) & 0xffff_ffff);
    let n2 = n.clone();
    let tmp2 = peer_tmp.clone();
    let r = with_netlink(async |h| {
        let mut msg = LinkVeth::new(&n.host_ifname, &peer_tmp).build();
        tag(&mut msg);
        h.link().add(msg).execute().await?;
        let host = link_index(&h, &n.host_ifname).await?;
        set_alias(&h, host, format!("vzbpf bridged interface {}", n.ifname)).await?;
        let mut set = LinkUnspec::new_with_index(host).address(n.host_mac.to_vec()).up();
        if let Some(b) = &n.bridge {
            set = set.controller(link_index(&h, b).await?);
        }
        h.link().set(set.build()).execute().await?;
        let peer = link_index(&h, &peer_tmp).await?;
        h.link()
            .set(LinkUnspec::new_with_index(peer).address(n.mac.to_vec()).setns_by_pid(init as u32).build())
            .execute()
            .await?;
        Ok(())
    })
    .and_then(|()| {
        with_ve_netlink(init, async move |h| {
            let peer = link_index(&h, &tmp2).await?;
            Ok(h.link().set(LinkUnspec::new_with_index(peer).name(n2.ifname.clone()).up().build()).execute().await?)
        })
    });
    if r.is_err() {
        // A half-made pair goes: its host end would outlive the VE.
        let _ = del_netif(&n.host_ifname);
    }
    r
}

/// Removes a bridged interface (its host end; the VE end goes with it). Missing is fine.
pub fn del_netif(host_ifname: &str) -> Result<(), NetError> {
    del_link(host_ifname)
}

/// Parses `--rate`: kbit/s as a number, or OpenVZ's `dev:class:kbit`; 0 or `none` means
/// no limit.
pub fn parse_rate(s: &str) -> Result<Option<u64>, NetError> {
    let fields: Vec<&str> = s.trim().split(':').collect();
    let v = match fields.as_slice() {
        [k] | [_, _, k] => *k,
        _ => return Err(NetError::BadRate(s.to_string())),
    };
    if v == "none" {
        return Ok(None);
    }
    match v.parse::<u64>() {
        // Up to 1 Tbit/s: bytes per second then fit tbf's 64-bit rate.
        Ok(k) if k <= 1_000_000_000 => Ok((k > 0).then_some(k)),
        _ => Err(NetError::BadRate(s.to_string())),
    }
}

/// A VE's shaper: an ifb device on the host (unique per VE like its pair's host end).
pub fn shaper_ifname(cgid: u64) -> String {
    format!("vzr{:x}", cgid & 0xffff_ffff_ffff)
}

/// The tbf qdisc's options for `kbit` (TCA_OPTIONS of kind "tbf"): the bucket holds 20 ms
/// at the rate (at least 16 KiB, so a full-sized frame always fits; larger GSO packets are
/// split by tbf), and the queue holds 200 ms, at least 1 MiB (about a classic 1000-packet
/// pfifo), before it drops: a TCP sender, whose queued bytes TCP small queues bound, then
/// slows down on its own window instead of losing packets (a 64 KiB floor let TCP fall
/// 13 % under a 4000 kbit/s limit), where a policer's losses would collapse it.
fn tbf_options(kbit: u64) -> Vec<rtnetlink::packet_route::tc::TcOption> {
    use rtnetlink::packet_core::DefaultNla;
    use rtnetlink::packet_route::tc::TcOption;
    const TCA_TBF_PARMS: u16 = 1;
    const TCA_TBF_RATE64: u16 = 4;
    const TCA_TBF_BURST: u16 = 6;
    const TC_LINKLAYER_ETHERNET: u8 = 1;
    let bytes_per_sec = kbit * 1000 / 8;
    let burst = (bytes_per_sec / 50).clamp(16 * 1024, u64::from(u32::MAX)) as u32;
    let limit = (bytes_per_sec / 5).clamp(1024 * 1024, u64::from(u32::MAX)) as u32;
    // struct tc_tbf_qopt: rate and peakrate (struct tc_ratespec, 12 bytes each), limit,
    // buffer, mtu. The burst attribute stands in for buffer; no peak rate.
    let mut qopt = Vec::with_capacity(36);
    qopt.extend_from_slice(&[0, TC_LINKLAYER_ETHERNET, 0, 0, 0, 0, 0, 0]);
    qopt.extend_from_slice(&(bytes_per_sec.min(u64::from(u32::MAX)) as u32).to_ne_bytes());
    qopt.extend_from_slice(&[0; 12]);
    qopt.extend_from_slice(&limit.to_ne_bytes());
    qopt.extend_from_slice(&[0; 8]);
    let mut opts = vec![
        TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, qopt)),
        TcOption::Other(DefaultNla::new(TCA_TBF_BURST, burst.to_ne_bytes().to_vec())),
    ];
    if bytes_per_sec > u64::from(u32::MAX) {
        opts.push(TcOption::Other(DefaultNla::new(TCA_TBF_RATE64, bytes_per_sec.to_ne_bytes().to_vec())));
    }
    opts
}

/// Makes (or retunes) a VE's shaper for `kbit` and returns its ifindex for the tc program
/// to redirect the VE's traffic into.
pub fn set_shaper(cgid: u64, kbit: u64) -> Result<u32, NetError> {
    use rtnetlink::packet_core::{
        NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST,
    };
    use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage};
    use rtnetlink::packet_route::RouteNetlinkMessage;
    let name = shaper_ifname(cgid);
    with_netlink(async |mut h| {
        let idx = match link_index(&h, &name).await {
            Ok(i) => i,
            Err(NetError::NoLink(_)) => {
                let mut ifb = rtnetlink::LinkMessageBuilder::<rtnetlink::LinkUnspec>::new_with_info_kind(
                    rtnetlink::packet_route::link::InfoKind::Ifb,
                )
                .name(name.clone())
                .build();
                tag(&mut ifb);
                h.link().add(ifb).execute().await?;
                link_index(&h, &name).await?
            }
            Err(e) => return Err(e),
        };
        let mut msg = TcMessage::with_index(idx as i32);
        msg.header.parent = TcHandle::ROOT;
        msg.header.handle = TcHandle { major: 1, minor: 0 };
        msg.attributes.push(TcAttribute::Kind("tbf".to_string()));
        msg.attributes.push(TcAttribute::Options(tbf_options(kbit)));
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewQueueDiscipline(msg));
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        let mut resp = h.request(req)?;
        while let Some(m) = futures::StreamExt::next(&mut resp).await {
            if let NetlinkPayload::Error(e) = m.payload {
                return Err(rtnetlink::Error::NetlinkError(e).into());
            }
        }
        h.link().set(LinkUnspec::new_with_index(idx).up().build()).execute().await?;
        Ok(idx)
    })
}

/// Removes a VE's shaper; missing is fine.
pub fn del_shaper(cgid: u64) -> Result<(), NetError> {
    del_link(&shaper_ifname(cgid))
}

/// Says plainly when this host does not forward the families of `ips`: the VE then
/// reaches the host, but not other VEs or anything beyond. vzctl never changes host
/// sysctls itself.
pub fn warn_if_not_forwarding(veid: u32, ips: &[IpAddr]) {
    let on = |p: &str| std::fs::read_to_string(p).is_ok_and(|v| v.trim() == "1");
    for (v6, key, path) in [
        (false, "net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"),
        (true, "net.ipv6.conf.all.forwarding", "/proc/sys/net/ipv6/conf/all/forwarding"),
    ] {
        if ips.iter().any(|ip| ip.is_ipv6() == v6) && !on(path) {
            tracing::warn!(veid, "{key} is 0: the container reaches the host only");
            eprintln!("Warning: {key} is 0 on this host: container {veid} reaches the host but not other containers or beyond (vzctl does not change host sysctls)");
        }
    }
}

/// The ifindex of a VE's host end.
pub fn host_ifindex(cgid: u64) -> Result<u32, NetError> {
    let host_if = host_ifname(cgid);
    with_netlink(async |h| link_index(&h, &host_if).await)
}

/// Removes a VE's pair from the host (its namespace going away would, but later: network
/// namespaces are torn down asynchronously). Missing is fine.
pub fn teardown(cgid: u64) -> Result<(), NetError> {
    del_link(&host_ifname(cgid))?;
    del_shaper(cgid)
}

/// Adds addresses to a running VE: on its venet0, and a host route each.
pub fn add_ips(init: i32, cgid: u64, ips: &[IpAddr]) -> Result<(), NetError> {
    let list = ips.to_vec();
    with_ve_netlink(init, async move |h| {
        let idx = link_index(&h, VE_IFNAME).await?;
        for ip in &list {
            exists_ok(add_address(&h, idx, *ip, prefix(ip)).await)?;
        }
        // Removing a device's last IPv4 address flushes its IPv4 routes: put them back.
        gateway_routes(&h, idx).await
    })?;
    let host_if = host_ifname(cgid);
    with_netlink(async |h| {
        let idx = link_index(&h, &host_if).await?;
        for ip in ips {
            exists_ok(h.route().add(host_route(*ip, idx)).execute().await)?;
        }
        Ok(())
    })
}

/// Takes addresses from a running VE: the host route first (traffic stops at once), then
/// the address inside.
pub fn del_ips(init: i32, cgid: u64, ips: &[IpAddr]) -> Result<(), NetError> {
    let host_if = host_ifname(cgid);
    with_netlink(async |h| {
        let idx = link_index(&h, &host_if).await?;
        for ip in ips {
            // Already gone is fine: the goal is that it is gone.
            if let Err(e) = h.route().del(host_route(*ip, idx)).execute().await {
                tracing::debug!("route {ip}: {e}");
            }
        }
        Ok(())
    })?;
    let list = ips.to_vec();
    with_ve_netlink(init, async move |h| {
        let mut addrs = h.address().get().execute();
        let mut doomed = Vec::new();
        while let Some(m) = addrs.try_next().await? {
            let has = m.attributes.iter().any(
                |a| matches!(a, rtnetlink::packet_route::address::AddressAttribute::Address(x) if list.contains(x)),
            );
            if has {
                doomed.push(m);
            }
        }
        for m in doomed {
            h.address().del(m).execute().await?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netif_specs_take_openvz_defaults_and_round_trip() {
        let n = NetIf::parse_add(101, "eth0", 0).unwrap();
        assert_eq!((n.ifname.as_str(), n.host_ifname.as_str(), n.bridge.as_deref()), ("eth0", "veth101.0", None));
        assert_eq!(&n.mac[..3], &[0x00, 0x18, 0x51]);
        assert_ne!(n.mac, n.host_mac);
        let full = NetIf::parse_add(101, "eth1,02:00:00:00:00:01,vh1,02:00:00:00:00:02,br0", 1).unwrap();
        assert_eq!(
            full.to_conf(),
            "ifname=eth1,mac=02:00:00:00:00:01,host_ifname=vh1,host_mac=02:00:00:00:00:02,bridge=br0"
        );
        let list = vec![n.clone(), full.clone()];
        assert_eq!(parse_netifs(&format_netifs(&list)).unwrap(), list);
        for bad in ["", "eth0,zz:00:00:00:00:01", "eth0,01:00:00:00:00:01", "a-name-that-is-too-long", "eth0,,,,,x"] {
            let e = NetIf::parse_add(101, bad, 0).unwrap_err();
            assert!(e.to_string().contains(&format!("'{bad}'")), "{e}");
        }
    }

    #[test]
    fn rates_take_a_number_or_openvz_form() {
        assert_eq!(parse_rate("8000").unwrap(), Some(8000));
        assert_eq!(parse_rate("venet0:1:8000").unwrap(), Some(8000));
        assert_eq!(parse_rate("0").unwrap(), None);
        assert_eq!(parse_rate("none").unwrap(), None);
        for bad in ["fast", "-1", "1:8000", "venet0:1:", "2000000000"] {
            assert!(parse_rate(bad).unwrap_err().to_string().contains(&format!("'{bad}'")), "{bad}");
        }
    }

    #[test]
    fn tbf_holds_20_ms_and_queues_200_ms() {
        use rtnetlink::packet_core::Nla;
        let opts = tbf_options(80_000); // 10 MB/s
        let value = |kind: u16| {
            let o = opts.iter().find(|o| o.kind() == kind).unwrap();
            let mut b = vec![0; o.value_len()];
            o.emit_value(&mut b);
            b
        };
        let parms = value(1);
        assert_eq!(parms.len(), 36);
        assert_eq!(u32::from_ne_bytes(parms[8..12].try_into().unwrap()), 10_000_000);
        assert_eq!(u32::from_ne_bytes(parms[24..28].try_into().unwrap()), 2_000_000);
        assert_eq!(u32::from_ne_bytes(value(6).try_into().unwrap()), 200_000);
        assert!(opts.iter().all(|o| o.kind() != 4), "no 64-bit rate below 4 GB/s");
        // Slow rates keep a bucket a frame fits in.
        let slow = tbf_options(8);
        assert!(slow.iter().any(|o| o.kind() == 6 && {
            let mut b = vec![0; 4];
            o.emit_value(&mut b);
            u32::from_ne_bytes(b.try_into().unwrap()) == 16 * 1024
        }));
        // 100 Gbit/s = 12.5 GB/s needs the 64-bit rate.
        assert!(tbf_options(100_000_000).iter().any(|o| o.kind() == 4));
    }

    #[test]
    fn names_fit_the_kernels_limit_and_addresses_parse() {
        assert_eq!(host_ifname(0x1234), "vz1234");
        assert!(peer_ifname(u64::MAX).len() <= 15);
        assert_eq!(parse_ip("10.0.0.2/24").unwrap(), "10.0.0.2".parse::<IpAddr>().unwrap());
        assert!(parse_ip("fd00::5").unwrap().is_ipv6());
        let e = parse_ip("10.0.0.300").unwrap_err();
        assert!(e.to_string().contains("10.0.0.300"));
    }
}
