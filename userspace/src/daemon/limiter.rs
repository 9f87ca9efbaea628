//! At most one limit-hit line per VE and resource a second: a VE hammering its limit (a
//! hostile one can, millions of times a second) must not flood the log, push the other
//! VEs' events out of its bounded history, or keep the daemon busy. The line that goes
//! out says how many were folded into it since the one before.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

const EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Limiter {
    /// (veid, resource) -> when its last line went out, hits folded since.
    last: HashMap<(u32, u32), (Instant, u64)>,
}

impl Limiter {
    /// Some(folded) when a line for this hit goes out (`folded` hits were dropped since
    /// the last line), None when it is folded.
    pub fn admit(&mut self, veid: u32, res: u32, now: Instant) -> Option<u64> {
        match self.last.get_mut(&(veid, res)) {
            Some((at, folded)) if now.duration_since(*at) < EVERY => {
                *folded += 1;
                None
            }
            Some((at, folded)) => {
                *at = now;
                Some(std::mem::take(folded))
            }
            None => {
                self.last.insert((veid, res), (now, 0));
                Some(0)
            }
        }
    }

    /// Forgets the VEs not in `running`.
    pub fn retain(&mut self, running: &[u32]) {
        self.last.retain(|(v, _), _| running.contains(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_per_ve_and_resource() {
        let mut l = Limiter::default();
        let t = Instant::now();
        assert_eq!(l.admit(101, 9, t), Some(0));
        for i in 1..=1000 {
            assert_eq!(l.admit(101, 9, t + Duration::from_micros(i)), None);
        }
        // Another resource and another VE are their own.
        assert_eq!(l.admit(101, 5, t), Some(0));
        assert_eq!(l.admit(102, 9, t), Some(0));
        assert_eq!(l.admit(101, 9, t + EVERY), Some(1000));
        assert_eq!(l.admit(101, 9, t + EVERY + Duration::from_millis(1)), None);
        l.retain(&[102]);
        assert_eq!(l.admit(101, 9, t + EVERY + Duration::from_millis(2)), Some(0));
    }
}
