//! The routed venet pair: the VE's end inside its namespace, host routes to its addresses, its link-local address.
use super::*;

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

pub(super) fn prefix(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

pub(super) fn host_route(ip: IpAddr, index: u32) -> rtnetlink::packet_route::route::RouteMessage {
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

/// A VE's pair made for a restore: both ends on the host, down; criu moves the VE end
/// (`peer`, returned with the host end's index) into the restored namespace as venet0.
pub fn create_parked_pair(cgid: u64) -> Result<(u32, String), NetError> {
    let (host_if, peer_if) = (host_ifname(cgid), peer_ifname(cgid));
    let peer = peer_if.clone();
    let idx = with_netlink(async |h| {
        let mut msg = LinkVeth::new(&host_if, &peer_if).build();
        tag(&mut msg);
        h.link().add(msg).execute().await?;
        let idx = link_index(&h, &host_if).await?;
        set_alias(&h, idx, format!("vzbpf venet of cgroup {cgid}")).await?;
        Ok(idx)
    })?;
    Ok((idx, peer))
}

/// The host side of a restored VE's pair: its end up with the gateway addresses and a
/// host route per address (the VE side came back with its namespace).
pub fn bring_up_host(cgid: u64, ips: &[IpAddr]) -> Result<(), NetError> {
    let host_if = host_ifname(cgid);
    with_netlink(async |h| {
        let host = link_index(&h, &host_if).await?;
        h.link().set(LinkUnspec::new_with_index(host).up().build()).execute().await?;
        exists_ok(add_address(&h, host, IpAddr::V4(GATEWAY4), 32).await)?;
        exists_ok(add_address(&h, host, IpAddr::V6(GATEWAY6), 64).await)?;
        for ip in ips {
            exists_ok(h.route().add(host_route(*ip, host)).execute().await)?;
        }
        Ok(())
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
            crate::report::warning(veid, format!("{key} is 0 on this host: container {veid} reaches the host but not other containers or beyond (vzctl does not change host sysctls)"));
        }
    }
}

/// A stopped VE's pair: the host end goes down now, which takes its routes to the VE's
/// addresses with it (so another VE can take them at once), and the pair itself goes with
/// the VE's network namespace, which the kernel tears down in the background once the
/// VE's last process is gone. Deleting it here instead waited out RCU grace periods
/// (15-40 ms of every stop). The end's name is the VE cgroup's, never reused.
pub fn retire(cgid: u64) -> Result<(), NetError> {
    super::down_link(&host_ifname(cgid))?;
    del_shaper(cgid)
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
