//! A VE's network in the maps: its venet tc links, addresses, firewall rules, shaper and traffic counters.
use super::*;

impl Bpf {
    /// Attaches the venet programs to a VE's host end `ifname` as filters of a clsact qdisc
    /// (netlink, direct action), before either end of the pair is up. Not tcx links: a tcx
    /// attach waits out a full RCU grace period under the RTNL lock (`tcx_entry_sync`,
    /// 13-15 ms per direction here, half of a `vzctl start`, and every other start waits on
    /// the lock meanwhile), and the device's removal at stop waits out one more per
    /// direction; the first filter on a fresh clsact qdisc needs only an expedited grace
    /// period (well under a millisecond). The filters go with the interface.
    pub fn attach_venet(&mut self, ifname: &str, cgroup: u64, ifindex: u32) -> Result<(), BpfError> {
        use aya::programs::tc::{self, NlOptions, TcAttachOptions, TcAttachType};
        let mut ifs: HashMap<MapData, u32, u64> =
            HashMap::try_from(aya::maps::Map::HashMap(MapData::from_pin(self.pins.map(maps::NET_IFS))?))?;
        ifs.insert(ifindex, cgroup, 0)?;
        // Pins of tcx links an earlier vzbpf made on an interface of this name: theirs is gone.
        self.detach_venet(ifname);
        if let Err(e) = tc::qdisc_add_clsact(ifname) {
            // Made already (a restore reattaching): the filters below say if it is unusable.
            debug!("clsact on {ifname}: {e}");
        }
        for (name, dir) in [(progs::TC_FROM_VE, TcAttachType::Ingress), (progs::TC_TO_VE, TcAttachType::Egress)] {
            let mut prog = aya::programs::SchedClassifier::from_pin(self.pins.prog(name))?;
            let id = prog.attach_with_options(ifname, dir, TcAttachOptions::Netlink(NlOptions::default()))?;
            // The tc filter holds the program; dropping our handle must not detach it.
            std::mem::forget(prog.take_link(id)?);
        }
        Ok(())
    }

    /// Detaches the venet programs from `ifname` (tcx links: by their pins; clsact filters
    /// go with the interface). Missing pins are fine.
    pub fn detach_venet(&mut self, ifname: &str) {
        for name in TC_PROGS {
            let _ = fs::remove_file(self.pins.link(&tc_link_name(name, ifname)));
        }
    }

    /// Sends what a VE sends through its shaper (the ifb's ifindex), or straight on (None).
    pub fn set_net_shaper(&mut self, cgroup: u64, shaper: Option<u32>) -> Result<(), BpfError> {
        let Some(mut map) = self.pinned_hash::<u64, u32>(maps::NET_RATE)? else { return Ok(()) };
        match shaper {
            Some(ifindex) => Ok(map.insert(cgroup, ifindex, 0)?),
            None => removed(map.remove(&cgroup)),
        }
    }

    /// Replaces a VE's firewall rules (no rules: the record goes).
    pub fn set_net_rules(&mut self, cgroup: u64, rules: &vz_common::NetRules) -> Result<(), BpfError> {
        let Some(mut map) = self.pinned_hash::<u64, vz_common::NetRules>(maps::NET_RULES)? else { return Ok(()) };
        if rules.count == 0 {
            removed(map.remove(&cgroup))
        } else {
            Ok(map.insert(cgroup, rules, 0)?)
        }
    }

    /// A VE's traffic counters, summed over CPUs (None: nothing counted yet).
    pub fn net_stats(&self, cgroup: u64) -> Result<Option<vz_common::NetStats>, BpfError> {
        let Ok(m) = MapData::from_pin(self.pins.map(maps::NET_STATS)) else { return Ok(None) };
        let stats: aya::maps::PerCpuHashMap<MapData, u64, vz_common::NetStats> =
            aya::maps::PerCpuHashMap::try_from(aya::maps::Map::PerCpuHashMap(m))?;
        match stats.get(&cgroup, 0) {
            Ok(per_cpu) => Ok(Some(per_cpu.iter().fold(vz_common::NetStats::default(), |a, s| vz_common::NetStats {
                in_bytes: a.in_bytes + s.in_bytes,
                in_packets: a.in_packets + s.in_packets,
                out_bytes: a.out_bytes + s.out_bytes,
                out_packets: a.out_packets + s.out_packets,
                drops: a.drops + s.drops,
                filtered: a.filtered + s.filtered,
            }))),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Records a VE's addresses for the bind programs: adds `add`, and removes `del` (None:
    /// every address of the VE not in `add`).
    pub fn set_ve_addrs(
        &mut self,
        cgroup: u64,
        add: &[std::net::IpAddr],
        del: Option<&[std::net::IpAddr]>,
    ) -> Result<(), BpfError> {
        let Some(mut addrs) = self.pinned_hash::<vz_common::VeAddr, u8>(maps::VE_ADDRS)? else { return Ok(()) };
        let key = |ip: &std::net::IpAddr| vz_common::VeAddr { ve: cgroup, addr: addr_words(ip) };
        let keep: Vec<vz_common::VeAddr> = add.iter().map(key).collect();
        let doomed: Vec<vz_common::VeAddr> = match del {
            Some(d) => d.iter().map(key).collect(),
            None => addrs.keys().filter_map(Result::ok).filter(|k| k.ve == cgroup && !keep.contains(k)).collect(),
        };
        for k in doomed {
            let _ = addrs.remove(&k);
        }
        for k in keep {
            addrs.insert(k, 1, 0)?;
        }
        Ok(())
    }
}

/// An address as `VeAddr` words: IPv6 as is, IPv4 v4-mapped; network byte order.
pub fn addr_words(ip: &std::net::IpAddr) -> [u32; 4] {
    let b = match ip {
        std::net::IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(a) => a.octets(),
    };
    std::array::from_fn(|i| u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]))
}

/// Pin name of a venet program's tcx link on `ifname` (bpffs takes no dots in names).
pub(super) fn tc_link_name(prog: &str, ifname: &str) -> String {
    format!("{prog}_{ifname}")
}

#[cfg(test)]
mod addr_tests {
    use super::addr_words;

    #[test]
    fn addresses_are_v4_mapped_words_in_network_order() {
        // What the bind4 program builds from user_ip4 (network order, read natively).
        let v4 = addr_words(&"10.77.0.1".parse().unwrap());
        assert_eq!(v4, vz_common::ve_addr_v4(u32::from_ne_bytes([10, 77, 0, 1])));
        let v6 = addr_words(&"fd00::1".parse().unwrap());
        assert_eq!(v6[0].to_ne_bytes(), [0xfd, 0, 0, 0]);
        assert_eq!(v6[3].to_ne_bytes(), [0, 0, 0, 1]);
    }
}
