//! Proxy ARP for VE addresses, as OpenVZ's NEIGHBOUR_DEVS: a VE address taken from a LAN
//! the host is on is answered for by the host on that LAN's interface, and announced with a
//! gratuitous ARP when the VE starts, is restored or gets the address, so the LAN's
//! neighbours (and a router) send its traffic to this host at once; after a migration,
//! to the new node.
use super::*;
use rtnetlink::packet_route::{
    address::AddressAttribute,
    link::LinkAttribute,
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags},
};

/// Which host interfaces answer for VE addresses (vz.conf `NEIGHBOUR_DEVS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeighbourDevs {
    /// Every interface with an IPv4 address whose network holds the VE's address (OpenVZ's
    /// default). Links vzctl made are never chosen.
    Detect,
    /// No proxy ARP: the VE's addresses are routed to this host by someone else.
    None,
    /// These interfaces, for every VE address.
    List(Vec<String>),
}

impl NeighbourDevs {
    pub fn parse(v: &str) -> Self {
        match v.trim() {
            "" | "detect" => Self::Detect,
            "none" | "no" => Self::None,
            l => Self::List(l.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_string).collect()),
        }
    }
}

struct HostLink {
    index: u32,
    name: String,
    mac: Option<[u8; 6]>,
    nets: Vec<(Ipv4Addr, u8)>,
}

fn in_net(ip: Ipv4Addr, (net, len): (Ipv4Addr, u8)) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
    len > 0 && len < 32 && (u32::from(ip) & mask) == (u32::from(net) & mask)
}

async fn host_links(h: &Handle) -> Result<Vec<HostLink>, NetError> {
    let mut out = Vec::new();
    let mut links = h.link().get().execute();
    while let Some(l) = links.try_next().await? {
        let mut link = HostLink { index: l.header.index, name: String::new(), mac: None, nets: Vec::new() };
        let mut ours = false;
        for a in &l.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name.clone_from(n),
                LinkAttribute::Address(m) if m.len() == 6 => link.mac = m.as_slice().try_into().ok(),
                LinkAttribute::Group(g) if *g == LINK_GROUP => ours = true,
                _ => {}
            }
        }
        if !ours && link.name != "lo" {
            out.push(link);
        }
    }
    let mut addrs = h.address().get().execute();
    while let Some(m) = addrs.try_next().await? {
        for a in &m.attributes {
            if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                if let Some(l) = out.iter_mut().find(|l| l.index == m.header.index) {
                    l.nets.push((*ip, m.header.prefix_len));
                }
            }
        }
    }
    Ok(out)
}

/// Host interfaces that answer for `ip` under `devs`.
fn chosen<'a>(links: &'a [HostLink], devs: &NeighbourDevs, ip: Ipv4Addr) -> Vec<&'a HostLink> {
    links
        .iter()
        .filter(|l| match devs {
            NeighbourDevs::Detect => l.nets.iter().any(|n| in_net(ip, *n)),
            NeighbourDevs::None => false,
            NeighbourDevs::List(names) => names.contains(&l.name),
        })
        .collect()
}

/// Answers ARP for the VE's IPv4 addresses on the chosen interfaces and announces each
/// once. The host must forward IPv4 for the kernel to answer (vzctl says so when it does
/// not). IPv6 addresses are left to the admin's routing (no NDP proxy yet).
pub fn announce(devs: &NeighbourDevs, ips: &[IpAddr]) -> Result<(), NetError> {
    let v4: Vec<Ipv4Addr> = ips.iter().filter_map(|ip| if let IpAddr::V4(a) = ip { Some(*a) } else { None }).collect();
    if v4.is_empty() || *devs == NeighbourDevs::None {
        return Ok(());
    }
    let links = with_netlink(async |h| {
        let links = host_links(&h).await?;
        for ip in &v4 {
            for l in chosen(&links, devs, *ip) {
                let add = h.neighbours().add(l.index, IpAddr::V4(*ip)).flags(NeighbourFlags::Proxy);
                exists_ok(add.execute().await)?;
            }
        }
        Ok(links)
    })?;
    for ip in &v4 {
        for l in chosen(&links, devs, *ip) {
            if let Some(mac) = l.mac {
                if let Err(e) = crate::sys::net::send_gratuitous_arp(l.index, mac, *ip) {
                    tracing::warn!("gratuitous ARP for {ip} on {}: {e}", l.name);
                }
            }
        }
    }
    Ok(())
}

/// Stops answering for these addresses on every interface (whatever NEIGHBOUR_DEVS was when
/// they were announced). None there is fine.
pub fn withdraw(ips: &[IpAddr]) -> Result<(), NetError> {
    if !ips.iter().any(IpAddr::is_ipv4) {
        return Ok(());
    }
    with_netlink(async |h| {
        let mut doomed = Vec::new();
        let mut entries = h.neighbours().get().proxies().execute();
        while let Some(m) = entries.try_next().await? {
            let hit = m.attributes.iter().any(|a| {
                matches!(a, NeighbourAttribute::Destination(NeighbourAddress::Inet(x)) if ips.contains(&IpAddr::V4(*x)))
            });
            if hit {
                doomed.push(m);
            }
        }
        for m in doomed {
            if let Err(e) = h.neighbours().del(m).execute().await {
                tracing::debug!("proxy neighbour: {e}");
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_devs_parse_and_nets_match() {
        assert_eq!(NeighbourDevs::parse("detect"), NeighbourDevs::Detect);
        assert_eq!(NeighbourDevs::parse(""), NeighbourDevs::Detect);
        assert_eq!(NeighbourDevs::parse("none"), NeighbourDevs::None);
        assert_eq!(NeighbourDevs::parse("eth0 eth1"), NeighbourDevs::List(vec!["eth0".into(), "eth1".into()]));
        let lan = (Ipv4Addr::new(10, 77, 0, 1), 24);
        assert!(in_net(Ipv4Addr::new(10, 77, 0, 100), lan));
        assert!(!in_net(Ipv4Addr::new(10, 78, 0, 100), lan));
        // A host route or a default route is no LAN.
        assert!(!in_net(Ipv4Addr::new(10, 77, 0, 1), (Ipv4Addr::new(10, 77, 0, 1), 32)));
        assert!(!in_net(Ipv4Addr::new(1, 2, 3, 4), (Ipv4Addr::new(0, 0, 0, 0), 0)));
    }
}
