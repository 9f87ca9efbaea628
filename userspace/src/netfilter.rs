//! Per-VE firewall rules: the syntax admins write and the records the tc programs read.
//!
//! A rule is `allow|deny in|out [tcp|udp|icmp|icmpv6|any] [PORT[-PORT]] [from|to PREFIX]`,
//! for example `deny in tcp 25` or `allow in tcp 22 from 10.0.0.0/8`. `in` is traffic to
//! the VE (the port is the VE's own, the destination port; the prefix the sender), `out`
//! traffic from it (the port is the remote one, the destination port: `deny out tcp 25`
//! keeps a VE from sending mail; the prefix the destination). Rules are tried in order;
//! the first that matches decides; no match allows. Config key `FIREWALL`, rules
//! separated by `;` (`NETFILTER` is OpenVZ's netfilter mode, `NfMode`; configs of ours
//! that kept rules there are moved to `FIREWALL` when a command first locks the VE).
use std::net::IpAddr;

use vz_common::{rule, NetRule, NetRules, MAX_RULES};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid firewall rule '{rule}': {why}")]
pub struct RuleError {
    pub rule: String,
    pub why: String,
}

/// The config key of a VE's firewall rules.
pub const FIREWALL_KEY: &str = "FIREWALL";

/// OpenVZ's `NETFILTER` (`--netfilter`): which netfilter a VE may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NfMode {
    Disabled,
    Stateless,
    Stateful,
    Full,
}

impl NfMode {
    pub const NAMES: [&'static str; 4] = ["disabled", "stateless", "stateful", "full"];

    pub fn parse(v: &str) -> Option<Self> {
        match v.trim() {
            "disabled" => Some(Self::Disabled),
            "stateless" => Some(Self::Stateless),
            "stateful" => Some(Self::Stateful),
            "full" => Some(Self::Full),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// What this mode gets on a stock kernel, when it is less than OpenVZ gave: said at
    /// start and when set.
    pub fn shortfall(self) -> Option<String> {
        match self {
            // Enforced: see `sys::seccomp`.
            Self::Full | Self::Disabled => None,
            m => Some(format!(
                "NETFILTER={} is not narrowed on a stock kernel: the container's network namespace has netfilter tables of its own with everything the host's kernel offers (connection tracking and NAT too), and none of it can be withheld from one container; --netfilter full says so and silences this",
                m.name()
            )),
        }
    }
}

/// Says what `mode` gets here when it is less than OpenVZ gave (nothing for full or none).
pub fn say_shortfall(veid: u32, mode: Option<NfMode>) {
    if let Some(w) = mode.and_then(NfMode::shortfall) {
        crate::report::warning(veid, w);
    }
}

/// Parses one rule.
pub fn parse_rule(text: &str) -> Result<NetRule, RuleError> {
    let bad = |why: &str| RuleError { rule: text.trim().to_string(), why: why.to_string() };
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut it = words.iter().copied().peekable();
    let action = match it.next() {
        Some("allow") => rule::ALLOW,
        Some("deny") => rule::DENY,
        _ => return Err(bad("start with allow or deny")),
    };
    let dir = match it.next() {
        Some("in") => rule::IN,
        Some("out") => rule::OUT,
        _ => return Err(bad("the second word is in or out")),
    };
    let mut r = NetRule { action, dir, port_lo: 0, port_hi: u16::MAX, ..NetRule::default() };
    if let Some(p) = it.peek().copied() {
        let proto = match p {
            "tcp" => Some(6),
            "udp" => Some(17),
            "icmp" => Some(1),
            "icmpv6" => Some(58),
            "any" => Some(rule::ANY),
            _ => None,
        };
        if let Some(proto) = proto {
            r.proto = proto;
            it.next();
        }
    }
    if let Some(p) = it.peek().copied().filter(|p| p.starts_with(|c: char| c.is_ascii_digit())) {
        if r.proto != 6 && r.proto != 17 {
            return Err(bad("ports need tcp or udp"));
        }
        let (lo, hi) = p.split_once('-').unwrap_or((p, p));
        let port = |s: &str| s.parse::<u16>().map_err(|_| bad("a port is a number 0-65535"));
        (r.port_lo, r.port_hi) = (port(lo)?, port(hi)?);
        if r.port_lo > r.port_hi {
            return Err(bad("port range runs backwards"));
        }
        it.next();
    }
    if let Some(kw) = it.next() {
        if kw != "from" && kw != "to" {
            return Err(bad("expected from PREFIX or to PREFIX"));
        }
        let p = it.next().ok_or_else(|| bad("from/to needs an address or prefix"))?;
        let (a, len) = p.split_once('/').map_or((p, None), |(a, l)| (a, Some(l)));
        let ip: IpAddr = a.parse().map_err(|_| bad("not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = match len {
            Some(l) => l.parse().ok().filter(|l| *l <= max).ok_or_else(|| bad("bad prefix length"))?,
            None => max,
        };
        r.family = if ip.is_ipv4() { 4 } else { 6 };
        r.prefix_len = if ip.is_ipv4() { len + 96 } else { len };
        r.peer = crate::bpf::addr_words(&ip);
    }
    if it.next().is_some() {
        return Err(bad("unexpected words at the end"));
    }
    Ok(r)
}

/// Parses a config value or a list of rules: `;`-separated, empty or `none` for no rules.
pub fn parse_rules(list: &[&str]) -> Result<NetRules, RuleError> {
    let mut all = Vec::new();
    for l in list {
        all.extend(parse_rule_list(l)?);
    }
    collect(&all)
}

/// One value's rules: `;`-separated, empty or `none` for none.
pub fn parse_rule_list(text: &str) -> Result<Vec<NetRule>, RuleError> {
    text.split(';').map(str::trim).filter(|r| !r.is_empty() && *r != "none").map(parse_rule).collect()
}

/// A VE's rule table from its rules, at most [`MAX_RULES`] of them.
pub fn collect(rules: &[NetRule]) -> Result<NetRules, RuleError> {
    let mut out = NetRules::default();
    if rules.len() > MAX_RULES {
        let text: Vec<String> = rules.iter().map(format_rule).collect();
        return Err(RuleError { rule: text.join("; "), why: format!("at most {MAX_RULES} rules per container") });
    }
    out.rules[..rules.len()].copy_from_slice(rules);
    out.count = rules.len() as u32;
    Ok(out)
}

/// A rule written back in the syntax it was read in.
pub fn format_rule(r: &NetRule) -> String {
    let mut s = format!(
        "{} {}",
        if r.action == rule::ALLOW { "allow" } else { "deny" },
        if r.dir == rule::IN { "in" } else { "out" }
    );
    let proto = match r.proto {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        58 => "icmpv6",
        _ => "any",
    };
    s.push(' ');
    s.push_str(proto);
    if !(r.port_lo == 0 && r.port_hi == u16::MAX) {
        if r.port_lo == r.port_hi {
            s.push_str(&format!(" {}", r.port_lo));
        } else {
            s.push_str(&format!(" {}-{}", r.port_lo, r.port_hi));
        }
    }
    if r.family != rule::FAMILY_ANY {
        let b: Vec<u8> = r.peer.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let mut o = [0u8; 16];
        o.copy_from_slice(&b);
        let v6 = std::net::Ipv6Addr::from(o);
        let (ip, len) = match (r.family, v6.to_ipv4_mapped()) {
            (4, Some(v4)) => (IpAddr::V4(v4), r.prefix_len.saturating_sub(96)),
            _ => (IpAddr::V6(v6), r.prefix_len),
        };
        s.push_str(&format!(" {} {ip}/{len}", if r.dir == rule::IN { "from" } else { "to" }));
    }
    s
}

/// The config value for a rule set.
pub fn format_rules(r: &NetRules) -> String {
    r.rules[..r.count as usize].iter().map(format_rule).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print_back() {
        for (text, back) in [
            ("deny in tcp 25", "deny in tcp 25"),
            ("allow in tcp 22 from 10.0.0.0/8", "allow in tcp 22 from 10.0.0.0/8"),
            ("deny out udp 1000-2000 to 192.0.2.7", "deny out udp 1000-2000 to 192.0.2.7/32"),
            ("deny in from fd00::/16", "deny in any from fd00::/16"),
            ("allow out icmp", "allow out icmp"),
        ] {
            let r = parse_rule(text).unwrap();
            assert_eq!(format_rule(&r), back, "{text}");
            assert_eq!(parse_rule(&format_rule(&r)).unwrap(), r);
        }
        let r = parse_rule("allow in tcp 22 from 10.0.0.0/8").unwrap();
        assert_eq!((r.proto, r.port_lo, r.port_hi, r.family, r.prefix_len), (6, 22, 22, 4, 104));
    }

    #[test]
    fn bad_rules_name_the_rule_and_the_problem() {
        for (text, why) in [
            ("block in tcp 25", "allow or deny"),
            ("deny sideways", "in or out"),
            ("deny in icmp 25", "ports need tcp or udp"),
            ("deny in tcp 70000", "0-65535"),
            ("deny in tcp 30-20", "backwards"),
            ("deny in from 10.0.0.0/33", "prefix length"),
            ("deny in tcp 25 extra", "expected from"),
        ] {
            let e = parse_rule(text).unwrap_err();
            assert!(e.to_string().contains(text) && e.to_string().contains(why), "{e}");
        }
    }

    #[test]
    fn a_rule_list_round_trips_through_the_config() {
        let r = parse_rules(&["deny in tcp 25; allow out any", "deny in udp 53"]).unwrap();
        assert_eq!(r.count, 3);
        assert_eq!(format_rules(&r), "deny in tcp 25; allow out any; deny in udp 53");
        assert_eq!(parse_rules(&["none"]).unwrap().count, 0);
        let many = vec!["deny in tcp 1"; MAX_RULES + 1];
        assert!(parse_rules(&many).is_err());
    }
}
