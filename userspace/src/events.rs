//! The node's event stream: VEs started, stopped, rebooted, halted, and beancounter limit
//! hits, one JSON object per line in EVENTS_LOG. vzctl and vzeventd append; `vzctl events`
//! reads. The history is bounded: past `MAX_BYTES` the file moves to `EVENTS_LOG.1`
//! (replacing the one before), so at most twice that is kept.
use std::{
    fmt::Write as _,
    fs,
    io::{self, Read as _, Seek as _, Write as _},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::json::json_str;

pub const MAX_BYTES: u64 = 1 << 20;

/// A value of an event field.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Num(u64),
    Str(String),
}

impl From<u64> for Val {
    fn from(n: u64) -> Self {
        Val::Num(n)
    }
}
impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Val::Str(s.into())
    }
}
impl From<String> for Val {
    fn from(s: String) -> Self {
        Val::Str(s)
    }
}

/// UTC time as RFC 3339 with milliseconds, from milliseconds since the epoch.
pub fn rfc3339(ms: u64) -> String {
    let (secs, milli) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One event as its JSON line (with the newline).
pub fn line(ms: u64, veid: u32, event: &str, fields: &[(&str, Val)]) -> String {
    let mut o = format!("{{\"time\":\"{}\",\"veid\":{veid},\"event\":{}", rfc3339(ms), json_str(event));
    for (k, v) in fields {
        let _ = match v {
            Val::Num(n) => write!(o, ",{}:{n}", json_str(k)),
            Val::Str(s) => write!(o, ",{}:{}", json_str(k), json_str(s)),
        };
    }
    o.push_str("}\n");
    o
}

fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    s.into()
}

/// Appends one line; rotates first when the file would pass `max`. Writers serialise on
/// an flock of the file, so a rotation never loses another writer's line.
pub fn append_line(path: &Path, text: &str, max: u64) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let open = || fs::OpenOptions::new().create(true).append(true).open(path);
    let mut f = open()?;
    crate::sys::flock(&f, true, true)?;
    if f.metadata()?.len() + text.len() as u64 > max {
        fs::rename(path, rotated(path))?;
        f = open()?;
        crate::sys::flock(&f, true, true)?;
    }
    f.write_all(text.as_bytes())
}

/// Records an event in the node's log, best effort: an event that cannot be written is
/// logged, and never fails the verb that made it.
pub fn record(log: &Path, veid: u32, event: &str, fields: &[(&str, Val)]) {
    let text = line(now_ms(), veid, event, fields);
    tracing::info!(target: "vz::events", veid, "{}", text.trim_end());
    if let Err(e) = append_line(log, &text, MAX_BYTES) {
        tracing::warn!("event not recorded in {}: {e}", log.display());
    }
}

/// The `veid` of an event line (as this module writes it).
pub fn veid_of(line: &str) -> Option<u32> {
    let rest = line.split_once("\"veid\":")?.1;
    rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
}

fn wanted(line: &str, veids: &[u32]) -> bool {
    veids.is_empty() || veid_of(line).is_some_and(|v| veids.contains(&v))
}

/// The last `n` events (of `veids`, or all), oldest first, from the rotated file and the
/// current one.
pub fn tail(log: &Path, n: usize, veids: &[u32]) -> io::Result<Vec<String>> {
    let mut lines = Vec::new();
    for p in [rotated(log), log.to_path_buf()] {
        match fs::read_to_string(&p) {
            Ok(t) => lines.extend(t.lines().filter(|l| wanted(l, veids)).map(str::to_string)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines.split_off(skip))
}

/// Follows the log: hands each new line (of `veids`) to `out` as it is appended, across
/// rotations, until `out` returns false or `until` passes.
pub fn follow(
    log: &Path,
    veids: &[u32],
    until: Option<std::time::Instant>,
    mut out: impl FnMut(&str) -> bool,
) -> io::Result<()> {
    let open = |p: &Path| fs::File::open(p).ok().and_then(|f| Some((f.metadata().ok()?.ino(), f)));
    let mut cur = open(log);
    let mut pos = cur.as_ref().and_then(|(_, f)| f.metadata().ok()).map_or(0, |m| m.len());
    let mut partial = String::new();
    loop {
        if until.is_some_and(|u| std::time::Instant::now() >= u) {
            return Ok(());
        }
        if let Some((_, f)) = cur.as_mut() {
            f.seek(io::SeekFrom::Start(pos))?;
            let mut buf = String::new();
            pos += f.read_to_string(&mut buf)? as u64;
            partial.push_str(&buf);
            while let Some(i) = partial.find('\n') {
                let l: String = partial.drain(..=i).collect();
                if wanted(&l, veids) && !out(l.trim_end()) {
                    return Ok(());
                }
            }
        }
        // A new file under the name: the old one was rotated away (read to its end above).
        let now = open(log);
        if now.as_ref().map(|(i, _)| *i) != cur.as_ref().map(|(i, _)| *i) {
            cur = now;
            pos = 0;
            continue;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_796_392_245_007), "2026-12-04T13:50:45.007Z");
    }

    #[test]
    fn lines_are_json_objects() {
        let l =
            line(0, 101, "limit", &[("resource", "numproc".into()), ("held", 5u64.into()), ("comm", "a\"b".into())]);
        assert_eq!(
            l,
            "{\"time\":\"1970-01-01T00:00:00.000Z\",\"veid\":101,\"event\":\"limit\",\"resource\":\"numproc\",\"held\":5,\"comm\":\"a\\\"b\"}\n"
        );
        assert_eq!(veid_of(&l), Some(101));
        assert_eq!(veid_of("{\"veid\":x}"), None);
    }

    #[test]
    fn history_is_bounded_and_read_in_order() {
        let dir = std::env::temp_dir().join(format!("vz-events-{}", std::process::id()));
        let log = dir.join("events.log");
        for i in 0..50u64 {
            let veid = if i % 2 == 0 { 101 } else { 102 };
            append_line(&log, &line(i, veid, "start", &[("n", i.into())]), 400).unwrap();
        }
        let size = |p: &Path| fs::metadata(p).unwrap().len();
        assert!(size(&log) <= 400 && size(&rotated(&log)) <= 400);
        let all = tail(&log, 1000, &[]).unwrap();
        // Oldest first, the newest last, nothing past the two files.
        assert!(all.last().unwrap().contains("\"n\":49"));
        assert!(all.len() < 50 && all.len() >= 4);
        let ns: Vec<u64> =
            all.iter().map(|l| l.rsplit(':').next().unwrap().trim_end_matches('}').parse().unwrap()).collect();
        assert!(ns.windows(2).all(|w| w[1] == w[0] + 1), "{ns:?}");
        let mine = tail(&log, 2, &[102]).unwrap();
        assert_eq!(mine.len(), 2);
        assert!(mine.iter().all(|l| veid_of(l) == Some(102)) && mine[1].contains("\"n\":49"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
