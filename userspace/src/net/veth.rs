//! Bridged interfaces (`--netif_add`): veth pairs vzctl makes and, tagged, is the only one to delete.
use super::*;

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

pub fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

pub(super) fn parse_mac(s: &str) -> Option<[u8; 6]> {
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
pub(super) fn default_mac(veid: u32, ifname: &str, host: bool) -> [u8; 6] {
    let h = crate::bpf::fnv1a(format!("{veid}/{ifname}/{host}").as_bytes()).to_le_bytes();
    [0x00, 0x18, 0x51, h[0], h[1], h[2]]
}

/// `--netif_add ifname[,mac,host_ifname,host_mac,bridge]` as given: what is left empty
/// takes a default that depends on the VE ([`NetIfSpec::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetIfSpec {
    pub text: String,
    pub ifname: String,
    pub mac: Option<[u8; 6]>,
    pub host_ifname: Option<String>,
    pub host_mac: Option<[u8; 6]>,
    pub bridge: Option<String>,
}

impl NetIfSpec {
    pub fn parse(spec: &str) -> Result<Self, NetError> {
        let bad = || NetError::BadNetif(spec.to_string());
        let f: Vec<&str> = spec.split(',').map(str::trim).collect();
        if f.len() > 5 {
            return Err(bad());
        }
        let get = |i: usize| f.get(i).copied().filter(|s| !s.is_empty());
        let name = |i: usize| match get(i) {
            Some(n) if valid_ifname(n) => Ok(Some(n.to_string())),
            Some(_) => Err(bad()),
            None => Ok(None),
        };
        let mac = |i: usize| get(i).map(|m| parse_mac(m).ok_or_else(bad)).transpose();
        Ok(Self {
            text: spec.to_string(),
            ifname: name(0)?.ok_or_else(bad)?,
            mac: mac(1)?,
            host_ifname: name(2)?,
            host_mac: mac(3)?,
            bridge: name(4)?,
        })
    }

    /// The interface, with the defaults for VE `veid`'s `index`th interface filled in.
    pub fn resolve(&self, veid: u32, index: usize) -> NetIf {
        NetIf {
            ifname: self.ifname.clone(),
            mac: self.mac.unwrap_or_else(|| default_mac(veid, &self.ifname, false)),
            host_ifname: self.host_ifname.clone().unwrap_or_else(|| format!("veth{veid}.{index}")),
            host_mac: self.host_mac.unwrap_or_else(|| default_mac(veid, &self.ifname, true)),
            bridge: self.bridge.clone(),
        }
    }
}

impl NetIf {
    /// Parses `--netif_add ifname[,mac,host_ifname,host_mac,bridge]` (empty fields take
    /// defaults: host_ifname veth<VEID>.<n>, MACs from 00:18:51:..., no bridge).
    pub fn parse_add(veid: u32, spec: &str, index: usize) -> Result<Self, NetError> {
        Ok(NetIfSpec::parse(spec)?.resolve(veid, index))
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
