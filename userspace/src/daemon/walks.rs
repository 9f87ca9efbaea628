//! The rows a scrape does not walk for: open files, VM pages, socket buffers, ptys, queued
//! signals, locks and netfilter entries are found by walking every task, socket or the VE's
//! namespaces (`ubc::walked_rows`), which costs with those, not with the number of VEs. A
//! scrape takes them from the last walk and walks again only when that is older than
//! `every` (or the VE is new to it), so scrapes at Prometheus' pace cost what reading
//! the maps and cgroups of each VE costs. Nobody scraping, nothing walks.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use vz_common::VeUsage;

/// How old the walked rows of a scrape may be, by default.
pub const EVERY: Duration = Duration::from_secs(60);

pub struct Walks {
    every: Duration,
    /// When the last full walk was, and what it found per VE: usage and measured rows.
    at: Option<Instant>,
    found: HashMap<u32, (VeUsage, u32)>,
}

impl Walks {
    pub fn new(every: Duration) -> Self {
        Self { every, at: None, found: HashMap::new() }
    }

    /// Whether this scrape walks every VE.
    pub fn due(&self, now: Instant) -> bool {
        self.at.is_none_or(|at| now.duration_since(at) >= self.every)
    }

    /// Whether VE `veid` is walked in a scrape (`due`: all are).
    pub fn walk(&self, due: bool, veid: u32) -> bool {
        due || !self.found.contains_key(&veid)
    }

    /// After a scrape: what the walked VEs gave, the VEs gone forgotten.
    pub fn done(&mut self, due: bool, now: Instant, walked: Vec<(u32, VeUsage, u32)>, running: &[u32]) {
        if due {
            self.at = Some(now);
        }
        for (veid, usage, measured) in walked {
            self.found.insert(veid, (usage, measured));
        }
        self.found.retain(|v, _| running.contains(v));
    }

    /// A record read without walking, completed from the last walk: its walked rows and
    /// which rows have figures.
    pub fn complete(&self, veid: u32, usage: &mut VeUsage, measured: &mut u32) {
        if let Some((walk, m)) = self.found.get(&veid) {
            crate::ubc::merge_walked(walk, usage);
            *measured = *m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vz_common::res;

    #[test]
    fn walks_when_due_or_new_and_completes_the_rest_from_the_last() {
        let t0 = Instant::now();
        let mut w = Walks::new(Duration::from_secs(60));
        assert!(w.due(t0));
        let mut walked = VeUsage::default();
        walked.res[res::NUMFILE as usize].held = 40;
        walked.res[res::NUMFILE as usize].maxheld = 40;
        walked.res[res::TCPRCVBUF as usize].failcnt = 7;
        w.done(true, t0, vec![(101, walked, 0b1010)], &[101]);
        let t1 = t0 + Duration::from_secs(30);
        assert!(!w.due(t1));
        assert!(!w.walk(false, 101));
        assert!(w.walk(false, 102), "a VE started since is walked at once");
        // Read without walking: the BPF record's figures, the walk's for walked rows.
        let mut now = VeUsage::default();
        now.res[res::NUMPROC as usize].held = 9;
        now.res[res::TCPRCVBUF as usize].failcnt = 9;
        let mut measured = 0;
        w.complete(101, &mut now, &mut measured);
        assert_eq!(now.res[res::NUMFILE as usize].held, 40);
        assert_eq!(now.res[res::NUMPROC as usize].held, 9, "unwalked rows stay as read");
        assert_eq!(now.res[res::TCPRCVBUF as usize].failcnt, 9, "a counter never goes back");
        assert_eq!(measured, 0b1010);
        assert!(w.due(t0 + Duration::from_secs(60)));
        // Stopped VEs are forgotten.
        w.done(false, t1, vec![], &[]);
        assert!(w.walk(false, 101));
    }
}
