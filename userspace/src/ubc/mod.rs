//! Beancounters: names, value syntax, the `/proc/user_beancounters` format (here, pure
//! logic unit-tested without root), and the registry of what stands behind each row.
//!
//! Every row belongs to one mechanism family, a file of its own: `sock` (socket counts
//! and buffers), `pids` (numproc), `memcg` (physpages, swappages, kmemsize, oomguarpages),
//! `devpts` (numpty), `shm` (shmpages), `siginfo` (numsiginfo), `iter` (numfile and the
//! address-space rows) and `counted` (numflock, numiptent, dcachesize). Each says the
//! mechanism it uses on this host, how it reads usage, and how it applies a limit at start
//! and on a running VE (`family::Family`). Start, set, the report and any other reader go
//! through `family`'s functions, never to a row's mechanism directly.
use std::fmt::Write as _;

use vz_common::{res, UbcLimit, UbcUsage, UB_UNLIMITED};

mod counted;
mod devpts;
mod family;
mod iter;
mod mechanism;
pub(crate) mod memcg;
mod pids;
mod shm;
mod siginfo;
mod sock;

pub use self::{family::*, mechanism::Mechanism};
/// Page size used for `P` suffixes and page-unit parameters.
pub use crate::units::PAGE_SIZE;

#[derive(Debug, thiserror::Error)]
pub enum UbcError {
    #[error("unknown beancounter parameter '{0}'")]
    UnknownResource(String),
    #[error("invalid value '{value}' for {name}: {why}")]
    BadValue { name: &'static str, value: String, why: &'static str },
    #[error("invalid value '{value}' for {name}: barrier {barrier} is greater than limit {limit}")]
    BarrierOverLimit { name: &'static str, value: String, barrier: u64, limit: u64 },
    /// A limit the kernel refused to take (e.g. RAM below what the VE uses).
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    #[error(transparent)]
    Ns(#[from] crate::ns::NsError),
    #[error("cannot set numsiginfo (RLIMIT_SIGPENDING) of process {pid}: {source}")]
    Sigpending { pid: i32, source: std::io::Error },
}

impl UbcError {
    pub fn kind(&self) -> crate::kind::Kind {
        match self {
            UbcError::UnknownResource(_) | UbcError::BadValue { .. } | UbcError::BarrierOverLimit { .. } => {
                crate::kind::Kind::BadValue
            }
            UbcError::Cgroup(e) => e.kind(),
            UbcError::Ns(e) => e.kind(),
            UbcError::Sigpending { .. } => crate::kind::Kind::Limits,
        }
    }
}

/// What a parameter counts, which decides the suffixes it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Pages,
}

/// Where a refusal happens, per OpenVZ's classes (see ../shared/reference/beancounters.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Primary,
    Secondary,
    Auxiliary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    pub name: &'static str,
    /// OpenVZ resource id, also the slot in the per-VE map records.
    pub id: u32,
    pub unit: Unit,
    pub class: Class,
}

macro_rules! resources {
    ($($name:literal $id:ident $unit:ident $class:ident),* $(,)?) => {
        /// Every beancounter, in `/proc/user_beancounters` row order.
        pub const ALL: &[Resource] = &[
            $(Resource { name: $name, id: res::$id, unit: Unit::$unit, class: Class::$class }),*
        ];
    };
}

resources! {
    "kmemsize" KMEMSIZE Bytes Secondary,
    "lockedpages" LOCKEDPAGES Pages Auxiliary,
    "privvmpages" PRIVVMPAGES Pages Secondary,
    "shmpages" SHMPAGES Pages Auxiliary,
    "numproc" NUMPROC Count Primary,
    "physpages" PHYSPAGES Pages Auxiliary,
    "vmguarpages" VMGUARPAGES Pages Primary,
    "oomguarpages" OOMGUARPAGES Pages Secondary,
    "numtcpsock" NUMTCPSOCK Count Primary,
    "numflock" NUMFLOCK Count Auxiliary,
    "numpty" NUMPTY Count Auxiliary,
    "numsiginfo" NUMSIGINFO Count Auxiliary,
    "tcpsndbuf" TCPSNDBUF Bytes Secondary,
    "tcprcvbuf" TCPRCVBUF Bytes Secondary,
    "othersockbuf" OTHERSOCKBUF Bytes Secondary,
    "dgramrcvbuf" DGRAMRCVBUF Bytes Secondary,
    "numothersock" NUMOTHERSOCK Count Primary,
    "dcachesize" DCACHESIZE Bytes Auxiliary,
    "numfile" NUMFILE Count Auxiliary,
    "numiptent" NUMIPTENT Count Auxiliary,
    "swappages" SWAPPAGES Pages Auxiliary,
}

/// VSwap: the limits OpenVZ derives from `--ram` and `--swap` (in pages) and
/// `--vm_overcommit` (0 = unlimited privvmpages). Unlimited RAM or swap makes their sum and
/// privvmpages unlimited; every value stays at most `UB_UNLIMITED`, so what is saved is
/// always a value the next start accepts.
pub fn vswap(ram: u64, swap: u64, overcommit: f64) -> Vec<(u32, UbcLimit)> {
    let (ram, swap) = (ram.min(UB_UNLIMITED), swap.min(UB_UNLIMITED));
    let both = if ram == UB_UNLIMITED || swap == UB_UNLIMITED { UB_UNLIMITED } else { (ram + swap).min(UB_UNLIMITED) };
    let privvm = if overcommit.is_nan() || overcommit <= 0.0 || !overcommit.is_finite() || both == UB_UNLIMITED {
        UB_UNLIMITED
    } else {
        // 2^63 as f64 is UB_UNLIMITED + 1: anything at or above it is unlimited.
        let x = both as f64 * overcommit;
        if x >= UB_UNLIMITED as f64 {
            UB_UNLIMITED
        } else {
            (x as u64).min(UB_UNLIMITED)
        }
    };
    vec![
        (res::PHYSPAGES, UbcLimit { barrier: 0, limit: ram }),
        (res::SWAPPAGES, UbcLimit { barrier: 0, limit: swap }),
        (res::LOCKEDPAGES, UbcLimit { barrier: ram, limit: ram }),
        (res::OOMGUARPAGES, UbcLimit { barrier: ram, limit: UB_UNLIMITED }),
        (res::VMGUARPAGES, UbcLimit { barrier: both, limit: UB_UNLIMITED }),
        (res::PRIVVMPAGES, UbcLimit { barrier: privvm, limit: privvm }),
    ]
}

/// Parses a VSwap size (`--ram`, `--swap`): bytes with K M G T, or pages with P; returns
/// pages.
pub fn parse_vswap_size(key: &'static str, v: &str) -> Result<u64, UbcError> {
    let r = Resource { name: key, id: res::PHYSPAGES, unit: Unit::Pages, class: Class::Auxiliary };
    let has_suffix = v.trim().ends_with(|c: char| c.is_ascii_alphabetic());
    let n = r.parse_one(v, v)?;
    // A bare number is bytes for --ram/--swap (vzctl's convention).
    Ok(if has_suffix { n } else { n.div_ceil(PAGE_SIZE) })
}

/// `--vm_overcommit` / VM_OVERCOMMIT: a non-negative factor.
pub fn parse_overcommit(v: &str) -> Result<f64, UbcError> {
    v.trim().parse::<f64>().ok().filter(|f| f.is_finite() && *f >= 0.0).ok_or_else(|| UbcError::BadValue {
        name: "vm_overcommit",
        value: v.to_string(),
        why: "expected a non-negative number",
    })
}

impl Resource {
    pub fn by_name(name: &str) -> Result<&'static Resource, UbcError> {
        let lower = name.to_ascii_lowercase();
        ALL.iter().find(|r| r.name == lower).ok_or_else(|| UbcError::UnknownResource(name.to_string()))
    }

    pub fn by_id(id: u32) -> Option<&'static Resource> {
        ALL.iter().find(|r| r.id == id)
    }

    /// The value at which a charge is refused. OpenVZ refuses counts at the barrier;
    /// secondary memory-like resources may run up to the limit.
    pub fn threshold(&self, lim: &UbcLimit) -> u64 {
        match self.class {
            Class::Secondary => lim.limit,
            Class::Primary | Class::Auxiliary => lim.barrier,
        }
    }

    /// Parses `barrier[:limit]` as vzctl does: one number sets both; `unlimited`; K M G T
    /// (powers of 1024) for byte and page parameters, P for pages.
    pub fn parse_limit(&self, value: &str) -> Result<UbcLimit, UbcError> {
        let (b, l) = match value.split_once(':') {
            Some((b, l)) => (b, l),
            None => (value, value),
        };
        let barrier = self.parse_one(b, value)?;
        let limit = self.parse_one(l, value)?;
        if barrier > limit {
            return Err(UbcError::BarrierOverLimit { name: self.name, value: value.to_string(), barrier, limit });
        }
        Ok(UbcLimit { barrier, limit })
    }

    pub(crate) fn parse_one(&self, part: &str, whole: &str) -> Result<u64, UbcError> {
        let bad = |why| UbcError::BadValue { name: self.name, value: whole.to_string(), why };
        let part = part.trim();
        if part.eq_ignore_ascii_case("unlimited") {
            return Ok(UB_UNLIMITED);
        }
        let (digits, suffix) = crate::units::split_suffix(part);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expected a number, 'unlimited' or barrier:limit"));
        }
        let n: u64 = digits.parse().map_err(|_| bad("number out of range"))?;
        // Byte multipliers; page parameters then convert bytes back to pages.
        let bytes_mult: u64 = match suffix {
            None => 0,
            Some('P') => PAGE_SIZE,
            Some(c) => crate::units::binary_multiplier(c).ok_or_else(|| bad("unknown suffix (use K, M, G, T or P)"))?,
        };
        let v = match (self.unit, bytes_mult) {
            (_, 0) => Some(n),
            (Unit::Count, _) => return Err(bad("a count takes no suffix")),
            (Unit::Bytes, m) => n.checked_mul(m),
            (Unit::Pages, m) => n.checked_mul(m).map(|b| b / PAGE_SIZE),
        };
        match v {
            Some(v) if v <= UB_UNLIMITED => Ok(v),
            _ => Err(bad("number out of range")),
        }
    }
}

/// One report row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UbcRow {
    pub resource: &'static Resource,
    pub usage: UbcUsage,
    pub limit: UbcLimit,
}

pub const REPORT_VERSION_LINE: &str = "Version: 2.5";

fn row(out: &mut String, uid: &str, name: &str, cols: [&dyn std::fmt::Display; 5]) {
    // Column layout of OpenVZ's /proc/user_beancounters: 10-wide id, two spaces, 12-wide
    // left-aligned name, then five 20-wide right-aligned numbers separated by a space.
    let _ = writeln!(
        out,
        "{uid:>10}  {name:<12} {:>20} {:>20} {:>20} {:>20} {:>20}",
        cols[0], cols[1], cols[2], cols[3], cols[4]
    );
}

/// Renders `/proc/user_beancounters`: the version line, the header, then each VE's rows
/// with `VEID:` on its first row only.
pub fn format_report(ves: &[(u32, Vec<UbcRow>)]) -> String {
    let mut out = String::new();
    out.push_str(REPORT_VERSION_LINE);
    out.push('\n');
    row(&mut out, "uid", "resource", [&"held", &"maxheld", &"barrier", &"limit", &"failcnt"]);
    for (veid, rows) in ves {
        for (i, r) in rows.iter().enumerate() {
            let uid = if i == 0 { format!("{veid}:") } else { String::new() };
            row(
                &mut out,
                &uid,
                r.resource.name,
                [&r.usage.held, &r.usage.maxheld, &r.limit.barrier, &r.limit.limit, &r.usage.failcnt],
            );
        }
    }
    out
}

/// `--NAME barrier[:limit]` for every beancounter, as clap arguments.
#[derive(Debug, Clone, Default)]
pub struct UbcArgs(pub Vec<(&'static Resource, crate::given::Given<UbcLimit>)>);

impl clap::FromArgMatches for UbcArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut out = Self::default();
        out.update_from_arg_matches(m)?;
        Ok(out)
    }
    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        for r in ALL {
            if let Some(v) = m.get_one::<crate::given::Given<UbcLimit>>(r.name) {
                self.0.retain(|(n, _)| n.id != r.id);
                self.0.push((r, v.clone()));
            }
        }
        Ok(())
    }
}

impl clap::Args for UbcArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        ALL.iter().fold(cmd, |c, r| {
            c.arg(
                clap::Arg::new(r.name)
                    .long(r.name)
                    .value_name("B[:L]")
                    .allow_hyphen_values(true)
                    .value_parser(move |s: &str| {
                        r.parse_limit(s).map(|l| crate::given::Given { value: l, text: s.trim().to_string() })
                    })
                    .help_heading("Beancounters (barrier[:limit], suffixes K M G T P, unlimited)"),
            )
        })
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str) -> &'static Resource {
        Resource::by_name(name).unwrap()
    }

    #[test]
    fn one_number_sets_both() {
        assert_eq!(r("numtcpsock").parse_limit("80").unwrap(), UbcLimit { barrier: 80, limit: 80 });
    }

    #[test]
    fn barrier_and_limit() {
        assert_eq!(r("numothersock").parse_limit("80:100").unwrap(), UbcLimit { barrier: 80, limit: 100 });
    }

    #[test]
    fn unlimited_is_long_max() {
        let l = r("numtcpsock").parse_limit("unlimited").unwrap();
        assert_eq!(l.barrier, 9223372036854775807);
        assert_eq!(r("numtcpsock").parse_limit("5:unlimited").unwrap().limit, UB_UNLIMITED);
    }

    #[test]
    fn suffixes_for_bytes_and_pages() {
        assert_eq!(r("kmemsize").parse_limit("2M").unwrap().barrier, 2 << 20);
        assert_eq!(r("kmemsize").parse_limit("1K:2G").unwrap().limit, 2 << 30);
        assert_eq!(r("kmemsize").parse_limit("3P").unwrap().barrier, 3 * 4096);
        // Pages: bytes become pages, P is pages.
        assert_eq!(r("physpages").parse_limit("1G").unwrap().barrier, 262144);
        assert_eq!(r("physpages").parse_limit("10P").unwrap().barrier, 10);
        assert_eq!(r("physpages").parse_limit("10").unwrap().barrier, 10);
    }

    #[test]
    fn barrier_over_limit_is_refused_naming_the_value() {
        let e = r("numtcpsock").parse_limit("10:5").unwrap_err();
        assert!(matches!(e, UbcError::BarrierOverLimit { barrier: 10, limit: 5, .. }));
        assert!(e.to_string().contains("'10:5'"), "{e}");
    }

    #[test]
    fn garbage_is_refused() {
        for v in ["", "-1", "abc", "5x", "1K", "5:", ":5", "99999999999999999999999"] {
            let e = r("numtcpsock").parse_limit(v);
            assert!(e.is_err(), "{v:?} accepted: {e:?}");
        }
        // Above LONG_MAX after the multiplier.
        assert!(r("kmemsize").parse_limit("9223372036854775807K").is_err());
    }

    #[test]
    fn unknown_name() {
        assert!(matches!(Resource::by_name("numbogus"), Err(UbcError::UnknownResource(n)) if n == "numbogus"));
        assert_eq!(Resource::by_name("NUMTCPSOCK").unwrap().id, res::NUMTCPSOCK);
    }

    #[test]
    fn thresholds_follow_the_class() {
        let lim = UbcLimit { barrier: 5, limit: 9 };
        assert_eq!(r("numtcpsock").threshold(&lim), 5);
        assert_eq!(r("tcpsndbuf").threshold(&lim), 9);
    }

    #[test]
    fn ids_are_unique_and_fit_the_record() {
        for (i, a) in ALL.iter().enumerate() {
            assert!((a.id as usize) < vz_common::UB_SLOTS, "{}", a.name);
            for b in &ALL[i + 1..] {
                assert_ne!(a.id, b.id, "{} and {}", a.name, b.name);
            }
        }
    }

    #[test]
    fn vswap_derivation() {
        let l = vswap(131072, 65536, 1.5);
        let get = |id| l.iter().find(|(r, _)| *r == id).unwrap().1;
        assert_eq!(get(res::PHYSPAGES), UbcLimit { barrier: 0, limit: 131072 });
        assert_eq!(get(res::SWAPPAGES), UbcLimit { barrier: 0, limit: 65536 });
        assert_eq!(get(res::LOCKEDPAGES).barrier, 131072);
        assert_eq!(get(res::OOMGUARPAGES), UbcLimit { barrier: 131072, limit: UB_UNLIMITED });
        assert_eq!(get(res::VMGUARPAGES).barrier, 196608);
        assert_eq!(get(res::PRIVVMPAGES).limit, 294912);
        assert_eq!(vswap(10, 0, 0.0).iter().find(|(r, _)| *r == res::PRIVVMPAGES).unwrap().1.limit, UB_UNLIMITED);
        assert_eq!(parse_vswap_size("ram", "512M").unwrap(), 131072);
        assert_eq!(parse_vswap_size("ram", "4096").unwrap(), 1);
        assert_eq!(parse_vswap_size("ram", "10P").unwrap(), 10);
        assert!(parse_vswap_size("swap", "lots").is_err());
    }

    #[test]
    fn report_format_is_byte_exact() {
        let rows = vec![
            UbcRow {
                resource: r("kmemsize"),
                usage: UbcUsage { held: 836919, maxheld: 1005343, failcnt: 0 },
                limit: UbcLimit { barrier: 2752512, limit: 2936012 },
            },
            UbcRow {
                resource: r("lockedpages"),
                usage: UbcUsage { held: 0, maxheld: 0, failcnt: 0 },
                limit: UbcLimit { barrier: 32, limit: 32 },
            },
        ];
        let expected = "Version: 2.5\n\
\x20      uid  resource                     held              maxheld              barrier                limit              failcnt\n\
\x20     101:  kmemsize                   836919              1005343              2752512              2936012                    0\n\
\x20           lockedpages                     0                    0                   32                   32                    0\n";
        assert_eq!(format_report(&[(101, rows)]), expected);
    }
}
