//! Routed VE networking, like OpenVZ's venet: a veth pair per running VE, `venet0` inside
//! holding the VE's addresses with a default route to the host, and on the host a /32
//! (/128) route per VE address to the pair's host end. The host end carries the link-local
//! gateway addresses 169.254.0.1 and fe80::1, so the VE reaches its gateway without any
//! host sysctl; forwarding between VEs needs the host's `net.ipv4.ip_forward` (vzctl never
//! changes it; it says so).
//!
//! Netlink goes through rtnetlink. A netlink socket talks to the network namespace it was
//! opened in, so VE-side work runs on a thread that joined the VE's namespace first.
//!
//! `addr` checks addresses, `venet` is the routed pair, `veth` the bridged interfaces,
//! `shaper` the rate limit, `netdev` host interfaces given to a VE; netlink plumbing and
//! link tagging are here.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::stream::TryStreamExt as _;
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

mod addr;
mod neigh;
mod netdev;
mod shaper;
mod venet;
mod veth;

pub use self::{addr::*, neigh::*, netdev::*, shaper::*, venet::*, veth::*};

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

impl NetError {
    pub fn kind(&self) -> crate::kind::Kind {
        match self {
            NetError::BadAddress(_) | NetError::Unusable { .. } | NetError::BadNetif(_) | NetError::BadRate(_) => {
                crate::kind::Kind::BadValue
            }
            _ => crate::kind::Kind::System,
        }
    }
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

/// Whether a link of this name exists in this network namespace (the host's).
pub fn link_exists(name: &str) -> Result<bool, NetError> {
    with_netlink(async |h| match link_index(&h, name).await {
        Ok(_) => Ok(true),
        Err(NetError::NoLink(_)) => Ok(false),
        Err(e) => Err(e),
    })
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
    with_netlink(async |h| {
        let Some(link) = link_by_name(&h, name).await? else { return Ok(()) };
        if !is_ours(&link) {
            return Err(NetError::NotOurs(name.to_string()));
        }
        Ok(h.link().del(link.header.index).execute().await?)
    })
}

/// Takes link `name` down if vzctl made it: its routes go at once (IPv4 and IPv6 alike
/// flush the routes through a device that goes down); missing is fine.
fn down_link(name: &str) -> Result<(), NetError> {
    with_netlink(async |h| {
        let Some(link) = link_by_name(&h, name).await? else { return Ok(()) };
        if !is_ours(&link) {
            return Err(NetError::NotOurs(name.to_string()));
        }
        Ok(h.link().set(LinkUnspec::new_with_index(link.header.index).down().build()).execute().await?)
    })
}

/// Link `name` of the handle's namespace, if there is one.
async fn link_by_name(h: &Handle, name: &str) -> Result<Option<rtnetlink::packet_route::link::LinkMessage>, NetError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(l) => Ok(l),
        Err(rtnetlink::Error::NetlinkError(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether vzctl made this link (its group, see `tag`).
fn is_ours(link: &rtnetlink::packet_route::link::LinkMessage) -> bool {
    use rtnetlink::packet_route::link::LinkAttribute;
    link.attributes.iter().any(|a| matches!(a, LinkAttribute::Group(g) if *g == LINK_GROUP))
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
    link_by_name(h, name).await?.map(|l| l.header.index).ok_or_else(|| NetError::NoLink(name.to_string()))
}

/// Adding what is already there (EEXIST) succeeds: the config and the running VE may
/// differ after a change without --save.
fn exists_ok(r: Result<(), rtnetlink::Error>) -> Result<(), NetError> {
    match r {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
        other => Ok(other?),
    }
}

/// The ifindex of a VE's host end.
pub fn host_ifindex(cgid: u64) -> Result<u32, NetError> {
    let host_if = host_ifname(cgid);
    with_netlink(async |h| link_index(&h, &host_if).await)
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
