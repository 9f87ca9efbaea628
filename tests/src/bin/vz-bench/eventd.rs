//! vzeventd at scale: with every VE of the density bench running, the time one Prometheus
//! scrape takes (and the first, which walks), the daemon's memory after scrapes, and what it costs while nobody scrapes
//! and nothing happens (CPU time over a quiet minute).
use std::time::Duration;

use vz_tests::VzEnv;

fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let t = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    t.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// utime + stime of a process, in ms.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = after.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // Fields 14 and 15 of stat; `after` starts at field 3 (state, not a number).
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 * 1000.0 / hz
}

pub fn at_scale(env: &VzEnv, n: u32) {
    let mut d = env
        .cmd("vzeventd", &["--listen", "127.0.0.1:9765"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("vzeventd");
    let pid = d.id();
    let scrape = || -> Option<(f64, usize)> {
        let o = env
            .in_netns(&[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{time_total} %{size_download}",
                "http://127.0.0.1:9765/metrics",
            ])
            .output()
            .ok()?;
        let t = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut it = t.split_whitespace();
        Some((it.next()?.parse::<f64>().ok()? * 1000.0, it.next()?.parse().ok()?))
    };
    // The first scrape walks every task and socket (the rows served from a walk for 60 s).
    let mut tries = 0;
    let walk_ms = loop {
        match scrape() {
            Some((ms, size)) if size > 0 => break ms,
            _ if tries >= 100 => break f64::NAN,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
        tries += 1;
    };
    let rss_idle = proc_field(pid, "status", "VmRSS:").unwrap_or(0);
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..7 {
        if let Some((ms, s)) = scrape() {
            times.push(ms);
            size = s;
        }
    }
    let rss = proc_field(pid, "status", "VmRSS:").unwrap_or(0);
    let hwm = proc_field(pid, "status", "VmHWM:").unwrap_or(0);
    let cpu0 = cpu_ms(pid);
    std::thread::sleep(Duration::from_secs(60));
    let quiet = cpu_ms(pid) - cpu0;
    println!(
        "vzeventd at {n} VEs: scrape median {:.0} ms ({} KiB of text; the first, walking every task and socket, {walk_ms:.0} ms); daemon RSS {rss_idle} KiB before scrapes, {rss} KiB after (peak {hwm} KiB); quiet minute: {quiet:.0} ms CPU ({:.2} ms per VE: the v1 failcnt files read every 5 s, cgroup2 hosts none)",
        super::median(times),
        size / 1024,
        quiet / f64::from(n.max(1)),
    );
    let _ = d.kill();
    let _ = d.wait();
}
