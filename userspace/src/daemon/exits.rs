//! What vzeventd does when a VE's init exits (OpenVZ's vzevent-reboot): a `reboot` inside
//! the VE starts it again, a `halt` stops it for good, any other death is cleaned up so the
//! VE shows stopped and starts again. While a vzctl holds the VE's lock (stop, chkpnt,
//! migrate may have made the exit), vzeventd waits for it and acts only on what it left:
//! a VE down but still mounted.
use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use vz_common::UbcEvent;

/// A VE that reboots this often within `REBOOT_WINDOW` is left stopped: a hostile (or
/// broken) VE must not keep the host busy starting it.
pub const MAX_REBOOTS: usize = 5;
pub const REBOOT_WINDOW: Duration = Duration::from_secs(60);

/// The reboots each VE asked for lately.
#[derive(Default)]
pub struct RebootGuard {
    at: HashMap<u32, VecDeque<Instant>>,
}

impl RebootGuard {
    /// Whether a reboot of `veid` at `now` is carried out (counted if so).
    pub fn allow(&mut self, veid: u32, now: Instant) -> bool {
        let q = self.at.entry(veid).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= REBOOT_WINDOW) {
            q.pop_front();
        }
        if q.len() >= MAX_REBOOTS {
            return false;
        }
        q.push_back(now);
        true
    }
}

const SIGHUP: u64 = 1;
const SIGINT: u64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Reboot,
    Halt,
    Died,
}

impl Exit {
    pub fn of(e: &UbcEvent) -> Self {
        match e.held {
            SIGHUP => Exit::Reboot,
            SIGINT => Exit::Halt,
            _ => Exit::Died,
        }
    }
    pub fn event(&self) -> &'static str {
        match self {
            Exit::Reboot => "reboot",
            Exit::Halt => "halt",
            Exit::Died => "exit",
        }
    }
    /// The vzctl verb that follows.
    pub fn verb(&self) -> &'static str {
        match self {
            Exit::Reboot => "restart",
            Exit::Halt | Exit::Died => "stop",
        }
    }
}

/// Whether an exiting init at pid namespace `level` is a VE's own: VEs' namespaces are
/// children of the one vzctl and vzeventd run in; a deeper one is a namespace the VE made.
pub fn is_ve_init(e: &UbcEvent, own_level: u32) -> bool {
    e.limit & 0xffff_ffff == u64::from(own_level) + 1
}

/// The VEID the exit program found for the VE when its init exited (0: none recorded).
pub fn exit_veid(e: &UbcEvent) -> Option<u32> {
    Some((e.limit >> 32) as u32).filter(|v| *v != 0)
}

/// This process's pid namespace level: entries of its NSpid line, less one.
pub fn own_level(status: &str) -> u32 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map_or(0, |v| v.split_whitespace().count().saturating_sub(1) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(held: u64, level: u64) -> UbcEvent {
        UbcEvent { held, limit: level, res: vz_common::EVENT_VE_EXIT, ..Default::default() }
    }

    #[test]
    fn reboot_restarts_halt_and_death_stop() {
        assert_eq!(Exit::of(&ev(1, 1)), Exit::Reboot);
        assert_eq!(Exit::of(&ev(2, 1)), Exit::Halt);
        assert_eq!(Exit::of(&ev(0, 1)), Exit::Died);
        assert_eq!(Exit::Reboot.verb(), "restart");
        assert_eq!(Exit::Halt.verb(), "stop");
        assert_eq!(Exit::Died.verb(), "stop");
        assert_eq!(Exit::Reboot.event(), "reboot");
    }

    #[test]
    fn a_reboot_loop_is_stopped() {
        let mut g = RebootGuard::default();
        let t = Instant::now();
        for i in 0..MAX_REBOOTS as u64 {
            assert!(g.allow(101, t + Duration::from_secs(i)));
        }
        assert!(!g.allow(101, t + Duration::from_secs(10)));
        assert!(g.allow(102, t + Duration::from_secs(10)), "another VE is its own");
        // Once the oldest is a window old, one more is allowed.
        assert!(g.allow(101, t + REBOOT_WINDOW));
        assert!(!g.allow(101, t + REBOOT_WINDOW));
    }

    #[test]
    fn only_inits_one_level_below_count() {
        assert!(is_ve_init(&ev(1, 1), 0));
        assert!(!is_ve_init(&ev(1, 2), 0));
        assert!(is_ve_init(&ev(1, 3), 2));
        assert_eq!(own_level("Name:\tx\nNSpid:\t77\n"), 0);
        assert_eq!(own_level("NSpid:\t900\t12\t1\n"), 2);
        // The VEID the program found rides in the top half; the level test ignores it.
        let with_veid = ev(1, 1 | 101 << 32);
        assert!(is_ve_init(&with_veid, 0));
        assert_eq!(exit_veid(&with_veid), Some(101));
        assert_eq!(exit_veid(&ev(1, 1)), None);
    }
}
