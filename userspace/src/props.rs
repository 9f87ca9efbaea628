//! Property tests for every parser an admin or a VE owner feeds: config lines, limit
//! values and their arithmetic, addresses, firewall rules, names, id ranges. Each runs on
//! random input and on input built to sit on the edges; none needs root.
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use vz_common::UB_UNLIMITED;

use crate::{config::ConfFile, idmap, net, netfilter, ubc, ve};

fn cfg() -> ProptestConfig {
    ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() }
}

/// Text with the characters configs and command lines are made of, and some that break
/// them.
fn texty() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ -~\t\n\"'\\\\$`=:;,./\u{e9}\u{0}]{0,40}").unwrap()
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn config_parse_never_panics_and_round_trips(text in texty()) {
        if let Ok(c) = ConfFile::parse(&text, Path::new("t")) {
            let again = ConfFile::parse(&c.render(), Path::new("t")).expect("a parsed config renders parseably");
            prop_assert_eq!(again.keys().collect::<Vec<_>>(), c.keys().collect::<Vec<_>>());
        }
    }

    #[test]
    fn every_value_set_reads_back_or_is_refused_first(key in "[A-Z_][A-Z0-9_]{0,12}", value in texty()) {
        match ve::check_text("x", &value) {
            Ok(()) => {
                let mut c = ConfFile::default();
                c.set(&key, &value);
                let again = ConfFile::parse(&c.render(), Path::new("t")).expect("a set value keeps the file parseable");
                prop_assert_eq!(again.get(&key), Some(value.as_str()));
            }
            Err(e) => {
                prop_assert!(value.chars().any(char::is_control));
                prop_assert_eq!(e.to_string().lines().count(), 1);
            }
        }
    }

    #[test]
    fn limits_parse_to_barrier_at_most_limit_and_back(v in "[0-9]{0,21}[KMGTPkmgtp]?(:[0-9]{0,21}[KMGTPkmgtp]?)?|unlimited(:unlimited)?|[ -~]{0,12}") {
        for r in ubc::ALL {
            if let Ok(l) = r.parse_limit(&v) {
                prop_assert!(l.barrier <= l.limit && l.limit <= UB_UNLIMITED, "{} {v} -> {l:?}", r.name);
                prop_assert_eq!(r.parse_limit(&format!("{}:{}", l.barrier, l.limit)).unwrap(), l);
            }
        }
    }

    #[test]
    fn vswap_never_overflows_and_saves_what_a_start_accepts(
        ram in prop_oneof![0..=UB_UNLIMITED, Just(UB_UNLIMITED), Just(u64::MAX), 0u64..1 << 40],
        swap in prop_oneof![0..=UB_UNLIMITED, Just(UB_UNLIMITED), Just(u64::MAX), 0u64..1 << 40],
        oc in prop_oneof![0.0f64..1e9, Just(0.0), Just(2.0), Just(f64::INFINITY), Just(f64::NAN), Just(-1.0)],
    ) {
        for (id, l) in ubc::vswap(ram, swap, oc) {
            let r = ubc::Resource::by_id(id).unwrap();
            prop_assert!(l.barrier <= l.limit && l.limit <= UB_UNLIMITED, "{} {l:?}", r.name);
            prop_assert_eq!(r.parse_limit(&format!("{}:{}", l.barrier, l.limit)).unwrap(), l);
        }
    }

    #[test]
    fn memory_and_swap_bytes_never_overflow(phys in any::<u64>(), swap in any::<u64>()) {
        if let Some(b) = crate::ubc::memcg::memsw_bytes(phys, swap) {
            prop_assert!(b < UB_UNLIMITED && b == (phys + swap) * ubc::PAGE_SIZE);
        }
    }

    #[test]
    fn ve_addresses_are_unicast_and_in_one_spelling(s in "[0-9a-fA-F:./x]{0,45}") {
        if let Ok(ip) = net::parse_ve_ip(&s) {
            prop_assert!(net::unusable(ip).is_none(), "{s} -> {ip}");
            if let IpAddr::V6(v6) = ip {
                prop_assert!(v6.to_ipv4_mapped().is_none(), "{s} kept its mapped spelling");
            }
        }
    }

    #[test]
    fn an_ipv4_address_and_its_mapped_spelling_are_one(a in any::<u32>(), prefix in proptest::option::of(0u32..40)) {
        let v4 = Ipv4Addr::from(a);
        let mapped = v4.to_ipv6_mapped();
        let p = prefix.map(|p| format!("/{p}")).unwrap_or_default();
        let (r4, r6) = (net::parse_ve_ip(&format!("{v4}{p}")), net::parse_ve_ip(&format!("{mapped}")));
        prop_assert_eq!(r4.is_ok(), prefix.is_none_or(|p| p <= 32) && net::unusable(IpAddr::V4(v4)).is_none());
        prop_assert_eq!(r6.ok(), net::parse_ve_ip(&v4.to_string()).ok());
    }

    #[test]
    fn ipv6_link_local_multicast_and_loopback_are_never_a_ves(seg in any::<[u16; 8]>()) {
        let mut s = seg;
        s[0] = 0xfe80 | (s[0] & 0x3f);
        prop_assert!(net::parse_ve_ip(&Ipv6Addr::from(s).to_string()).is_err());
        let mut m = seg;
        m[0] = 0xff00 | (m[0] & 0xff);
        prop_assert!(net::parse_ve_ip(&Ipv6Addr::from(m).to_string()).is_err());
    }

    #[test]
    fn rules_parse_or_refuse_and_round_trip(
        text in "(allow|deny|permit) (in|out|up) (tcp|udp|icmp|icmpv6|any|sctp)? ?([0-9]{1,6}(-[0-9]{1,6})?)? ?((from|to) [0-9a-f.:/]{1,24})?|[ -~]{0,30}"
    ) {
        if let Ok(r) = netfilter::parse_rules(&[&text]) {
            let again = netfilter::parse_rules(&[&netfilter::format_rules(&r)]).expect("formatted rules parse");
            prop_assert_eq!(netfilter::format_rules(&again), netfilter::format_rules(&r));
        }
    }

    #[test]
    fn names_a_ve_may_be_given_are_plain(n in texty()) {
        if ve::valid_name(&n) || ve::valid_hostname(&n) {
            prop_assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')), "{n:?}");
            prop_assert!(ve::check_text("name", &n).is_ok());
        }
    }

    #[test]
    fn id_ranges_never_overlap_what_is_taken(
        used in proptest::collection::vec((100_000u32..2_000_000_000, 100_000u32..2_000_000_000), 0..20),
        host in proptest::collection::vec((0u64..2_200_000_000, 1u64..200_000), 0..10),
    ) {
        let mut t = idmap::Taken::default();
        for (s, n) in &host {
            t.add(*s, *n);
        }
        if let Some((u, g)) = idmap::allocate((100_000, 100_000), &used, &t, &t) {
            let r = u64::from(idmap::RANGE);
            prop_assert!(u64::from(u) + r <= 1 << 31 && u64::from(g) + r <= 1 << 31);
            for (a, b) in &used {
                prop_assert!(u64::from(*a) + r <= u64::from(u) || u64::from(u) + r <= u64::from(*a));
                prop_assert!(u64::from(*b) + r <= u64::from(g) || u64::from(g) + r <= u64::from(*b));
            }
            for (s, n) in &host {
                prop_assert!(s + n <= u64::from(u) || u64::from(u) + r <= *s);
            }
        }
    }
}
