//! Fair CPU between VEs: OpenVZ's `--cpuunits`, `--cpulimit`, `--cpus` and `--cpumask`
//! on the cgroup cpu and cpuset controllers (v1 or v2, wherever the host mounts them).
//!
//! Mapping (documented in the README):
//! - cpuunits 8..500000 (default 1000) -> v1 `cpu.shares` = units * 1024 / 1000 (so the
//!   default VE weighs what any other cgroup weighs, 1024; clamped to the kernel's
//!   2..262144), v2 `cpu.weight` = units / 10 (default 100; clamped to 1..10000). Shares
//!   are proportional, so two VEs at 1000 and 2000 split a busy CPU 1:2 on either layout.
//! - cpulimit PCT (100 = one CPU, 0 = none) and cpus N (0 = all): one CFS bandwidth
//!   quota per 100 ms period, of min(PCT, N * 100) % of a CPU.
//! - cpumask LIST (`0-1,3`, or `all`) -> `cpuset.cpus`.
//! - cpus N without a cpumask also gives the VE N CPUs in `cpuset.cpus` (as OpenVZ's VE
//!   saw N CPUs: `nproc`, sched_getaffinity), chosen from its VEID so VEs spread over the
//!   host's CPUs.

use crate::cgroup::{self, CgroupError, Cgroups};

#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error("invalid value '{value}' for --{key}: {why}")]
    Bad { key: &'static str, value: String, why: String },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

impl CpuError {
    pub fn kind(&self) -> crate::kind::Kind {
        match self {
            CpuError::Bad { .. } => crate::kind::Kind::BadValue,
            CpuError::Cgroup(e) => e.kind(),
        }
    }
}

fn bad(key: &'static str, value: &str, why: impl Into<String>) -> CpuError {
    CpuError::Bad { key, value: value.to_string(), why: why.into() }
}

pub const DEFAULT_UNITS: u32 = 1000;
/// CFS period: the quota is a share of it.
const PERIOD_US: u64 = 100_000;

/// A VE's CPU settings as its config holds them (None: not set, the default applies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSettings {
    pub units: Option<u32>,
    /// Percent of one CPU; 0 = no limit.
    pub limit: Option<u32>,
    /// Number of CPUs' worth of time; 0 = all.
    pub cpus: Option<u32>,
    /// Normalised CPU list (`0-1,3`); None or "all" = every CPU.
    pub mask: Option<String>,
}

impl CpuSettings {
    /// The percent of one CPU the VE may use, if limited: the lower of cpulimit and
    /// cpus x 100.
    pub fn effective_limit(&self) -> Option<u32> {
        let limit = self.limit.filter(|l| *l > 0);
        let cpus = self.cpus.filter(|c| *c > 0).map(|c| c * 100);
        match (limit, cpus) {
            (Some(l), Some(c)) => Some(l.min(c)),
            (l, c) => l.or(c),
        }
    }
}

pub fn parse_units(s: &str) -> Result<u32, CpuError> {
    match s.trim().parse::<u32>() {
        Ok(u) if (8..=500_000).contains(&u) => Ok(u),
        _ => Err(bad("cpuunits", s, "use a number from 8 to 500000")),
    }
}

/// `--cpulimit PCT` (a trailing `%` is allowed): up to 100 per host CPU; 0 lifts it.
pub fn parse_limit(s: &str, ncpus: u32) -> Result<u32, CpuError> {
    let max = 100 * ncpus;
    match s.trim().trim_end_matches('%').parse::<u32>() {
        Ok(l) if l <= max => Ok(l),
        _ => Err(bad(
            "cpulimit",
            s,
            format!("use a percentage of one CPU from 0 (no limit) to {max} (this host's {ncpus} CPUs)"),
        )),
    }
}

/// `--cpus N`: 1..host CPUs; 0 or `unlimited` lifts it.
pub fn parse_cpus(s: &str, ncpus: u32) -> Result<u32, CpuError> {
    if s.trim() == "unlimited" {
        return Ok(0);
    }
    match s.trim().parse::<u32>() {
        Ok(n) if n <= ncpus => Ok(n),
        _ => Err(bad("cpus", s, format!("use a number of CPUs from 1 to {ncpus}, or 0/unlimited"))),
    }
}

/// `--cpumask LIST`: CPU numbers and ranges of this host (`0-1,3`), or `all`. Returns the
/// normalised list (sorted ranges), or None for all CPUs.
pub fn parse_mask(s: &str, ncpus: u32) -> Result<Option<String>, CpuError> {
    let s = s.trim();
    if s == "all" {
        return Ok(None);
    }
    let err = || bad("cpumask", s, format!("use CPU numbers and ranges from 0 to {} (e.g. 0-1,3), or all", ncpus - 1));
    let mut on = vec![false; ncpus as usize];
    for part in s.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>().map_err(|_| err())?, b.trim().parse::<u32>().map_err(|_| err())?),
            None => {
                let n = part.trim().parse::<u32>().map_err(|_| err())?;
                (n, n)
            }
        };
        if lo > hi || hi >= ncpus {
            return Err(err());
        }
        for c in lo..=hi {
            on[c as usize] = true;
        }
    }
    Ok(Some(format_mask(&on)))
}

fn format_mask(on: &[bool]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < on.len() {
        if on[i] {
            let start = i;
            while i + 1 < on.len() && on[i + 1] {
                i += 1;
            }
            out.push(if start == i { start.to_string() } else { format!("{start}-{i}") });
        }
        i += 1;
    }
    out.join(",")
}

/// v1 `cpu.shares` for cpuunits.
pub fn shares_v1(units: u32) -> u64 {
    (u64::from(units) * 1024 / 1000).clamp(2, 262_144)
}

/// v2 `cpu.weight` for cpuunits.
pub fn weight_v2(units: u32) -> u64 {
    ((u64::from(units) + 5) / 10).clamp(1, 10_000)
}

/// CFS quota in µs per 100 ms period for a limit in percent of one CPU.
pub fn quota_us(pct: u32) -> u64 {
    u64::from(pct) * PERIOD_US / 100
}

/// The host's CPU count (online CPUs).
pub fn host_cpus() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}

/// The CPU list of a VE with `--cpus n` and no mask: n consecutive CPUs (wrapping),
/// starting at VEID mod the host's count; every CPU when n covers them all.
pub fn cpus_for(veid: u32, n: u32, host: u32) -> String {
    let host = host.max(1);
    if n >= host {
        return format!("0-{}", host - 1);
    }
    let mut cpus: Vec<u32> = (0..n).map(|i| (veid + i) % host).collect();
    cpus.sort_unstable();
    cpus.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Applies `s` to a VE's cgroups (defaults for what is not set, so a lifted limit goes).
pub fn apply(cg: &dyn Cgroups, veid: u32, s: &CpuSettings) -> Result<(), CpuError> {
    let units = s.units.unwrap_or(DEFAULT_UNITS);
    let quota = s.effective_limit().map(quota_us);
    if let Some(c) = cgroup::Cpu::of(cg, veid) {
        c.set(cgroup::CpuShare { shares: shares_v1(units), weight: weight_v2(units) }, quota, PERIOD_US)?;
    } else if s != &CpuSettings::default() {
        crate::report::warning(
            veid,
            format!("this host has no cpu cgroup controller for container {veid}: CPU settings not applied"),
        );
    }
    if let Some(c) = cgroup::Cpuset::of(cg, veid) {
        let all = format!("0-{}", host_cpus().saturating_sub(1));
        let spread = s.cpus.filter(|n| *n > 0).map(|n| cpus_for(veid, n, host_cpus()));
        c.set_cpus(s.mask.as_deref().or(spread.as_deref()).unwrap_or(&all))?;
    } else if s.mask.is_some() {
        crate::report::warning(
            veid,
            format!("this host has no cpuset cgroup controller for container {veid}: CPU mask not applied"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_spread_by_veid() {
        assert_eq!(cpus_for(101, 1, 2), "1");
        assert_eq!(cpus_for(102, 1, 2), "0");
        assert_eq!(cpus_for(103, 2, 4), "0,3");
        assert_eq!(cpus_for(103, 3, 4), "0,1,3");
        assert_eq!(cpus_for(101, 2, 2), "0-1");
        assert_eq!(cpus_for(101, 8, 2), "0-1");
    }

    #[test]
    fn units_map_to_shares_and_weight_proportionally() {
        assert_eq!(shares_v1(1000), 1024);
        assert_eq!(shares_v1(2000), 2048);
        assert_eq!(shares_v1(8), 8);
        assert_eq!(shares_v1(500_000), 262_144);
        assert_eq!(weight_v2(1000), 100);
        assert_eq!(weight_v2(2000), 200);
        assert_eq!(weight_v2(8), 1);
        assert_eq!(weight_v2(500_000), 10_000);
        assert_eq!(parse_units("2000").unwrap(), 2000);
        for b in ["7", "500001", "x", ""] {
            assert!(parse_units(b).unwrap_err().to_string().contains(&format!("'{b}'")), "{b}");
        }
    }

    #[test]
    fn limits_take_the_lower_of_cpulimit_and_cpus() {
        let s = |limit, cpus| CpuSettings { limit, cpus, ..Default::default() };
        assert_eq!(s(Some(25), None).effective_limit(), Some(25));
        assert_eq!(s(Some(150), Some(1)).effective_limit(), Some(100));
        assert_eq!(s(Some(0), Some(2)).effective_limit(), Some(200));
        assert_eq!(s(Some(0), Some(0)).effective_limit(), None);
        assert_eq!(s(None, None).effective_limit(), None);
        assert_eq!(quota_us(25), 25_000);
        assert_eq!(parse_limit("25%", 2).unwrap(), 25);
        assert!(parse_limit("201", 2).unwrap_err().to_string().contains("'201'"));
        assert_eq!(parse_cpus("unlimited", 2).unwrap(), 0);
        assert!(parse_cpus("3", 2).is_err());
    }

    #[test]
    fn masks_are_checked_against_the_host_and_normalised() {
        assert_eq!(parse_mask("3,0-1", 4).unwrap().as_deref(), Some("0-1,3"));
        assert_eq!(parse_mask("1,0", 2).unwrap().as_deref(), Some("0-1"));
        assert_eq!(parse_mask("all", 2).unwrap(), None);
        for b in ["2", "1-0", "a", "0,", "0-5"] {
            assert!(parse_mask(b, 2).unwrap_err().to_string().contains(&format!("'{b}'")), "{b}");
        }
    }
}
