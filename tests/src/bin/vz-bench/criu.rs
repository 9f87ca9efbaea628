//! Checkpoint/restore and online migration (CRIU): how long the VE is paused, and the
//! longest gap a TCP client sees while it sends a line every 10 ms to an echo server in
//! the VE, idle and with 256 MB of anonymous memory touched. Medians (spread).
use std::{
    io::{BufRead as _, Write as _},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use vz_tests::{
    nodes::{in_ns, TwoNodes, VE_IP},
    VzEnv,
};

use super::{median, ms, ok};

/// The echo server, plus (for `hog`) a process holding 256 MB: busybox sort keeps every
/// line it has read until its input ends (never). Waits until the VE's memory cgroup
/// holds the 256 MB.
fn start_workload(env: &VzEnv, hog: bool) {
    let mut start = String::from("setsid nc -ll -p 7000 -e cat </dev/null >/dev/null 2>&1 &");
    if hog {
        start.push_str(
            " L=$(printf '%01023d' 0); setsid sh -c \"(yes $L | head -n 262144; sleep 100000) | sort >/dev/null\" </dev/null >/dev/null 2>&1 &",
        );
    }
    ok(env, &["exec2", "101", &start]);
    if hog {
        let mem = env.cg().controller_dir(101, "memory").expect("memory cgroup");
        let file = if mem.join("memory.current").exists() { "memory.current" } else { "memory.usage_in_bytes" };
        let t = Instant::now();
        while std::fs::read_to_string(mem.join(file)).ok().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0)
            < 256 << 20
        {
            assert!(t.elapsed() < Duration::from_secs(60), "the VE did not reach 256 MB");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A client (busybox nc, as `cmd` starts it) sending a line every 10 ms and timing the
/// echoes; killed however the round ends.
struct Pinger {
    nc: Child,
    stop: Arc<AtomicBool>,
    echoes: Arc<AtomicU64>,
    thread: Option<JoinHandle<(Duration, bool)>>,
}

impl Pinger {
    fn start(mut cmd: Command) -> Self {
        let mut nc = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("nc");
        let mut tx = nc.stdin.take().expect("stdin");
        let mut rx = std::io::BufReader::new(nc.stdout.take().expect("stdout"));
        let (stop, echoes) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (stop2, echoes2) = (stop.clone(), echoes.clone());
        let thread = std::thread::spawn(move || {
            let (mut last, mut worst) = (Instant::now(), Duration::ZERO);
            let mut line = String::new();
            while !stop2.load(Ordering::Relaxed) {
                let gone = |worst| (worst, stop2.load(Ordering::Relaxed));
                if writeln!(tx, "x").and_then(|()| tx.flush()).is_err() {
                    return gone(worst);
                }
                line.clear();
                if rx.read_line(&mut line).unwrap_or(0) == 0 {
                    return gone(worst);
                }
                echoes2.fetch_add(1, Ordering::Relaxed);
                worst = worst.max(last.elapsed());
                last = Instant::now();
                std::thread::sleep(Duration::from_millis(10));
            }
            (worst, true)
        });
        // Echoes flowing before anything is measured.
        std::thread::sleep(Duration::from_millis(200));
        Self { nc, stop, echoes, thread: Some(thread) }
    }

    /// Once the VE runs again: the longest gap between echoes, or None if the connection
    /// was lost. The connection is kept when echoes come again (TCP's retransmission
    /// backoff decides when the client tries next); it is lost when nc ends by itself.
    fn finish(mut self) -> Option<Duration> {
        let thread = self.thread.take().expect("pinger thread");
        let seen = self.echoes.load(Ordering::Relaxed);
        let t = Instant::now();
        while self.echoes.load(Ordering::Relaxed) < seen + 3
            && t.elapsed() < Duration::from_secs(10)
            && !thread.is_finished()
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.nc.kill();
        let (gap, kept) = thread.join().expect("pinger");
        kept.then_some(gap)
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.nc.kill();
        let _ = self.nc.wait();
    }
}

/// "median ms (lowest-highest)".
fn figure(v: &[f64]) -> String {
    let (lo, hi) = v.iter().fold((f64::MAX, 0f64), |(a, b), x| (a.min(*x), b.max(*x)));
    format!("{:.0} ms ({lo:.0}-{hi:.0})", median(v.to_vec()))
}

/// `vzctl chkpnt` + `vzctl restore` of a running VE: dump time, restore time, the whole
/// pause (freeze to running again) and the client's longest gap, the client in the host
/// side's namespace. 5 rounds each.
pub fn chkpnt_times() {
    println!("== checkpoint / restore (CRIU) ==");
    for (label, hog) in [("idle VE", false), ("VE with 256 MB touched", true)] {
        let env = VzEnv::new("bench-chkpnt");
        ok(&env, &["create", "101", "--ipadd", "10.79.0.1"]);
        ok(&env, &["set", "101", "--ram", "1G", "--swap", "0", "--save"]);
        ok(&env, &["start", "101"]);
        start_workload(&env, hog);
        let (mut dumps, mut restores, mut pauses, mut gaps) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..5 {
            let pinger = Pinger::start(env.in_netns(&["busybox", "nc", "10.79.0.1", "7000"]));
            let t = Instant::now();
            ok(&env, &["chkpnt", "101"]);
            dumps.push(ms(t.elapsed()));
            let t2 = Instant::now();
            ok(&env, &["restore", "101"]);
            restores.push(ms(t2.elapsed()));
            pauses.push(ms(t.elapsed()));
            gaps.extend(pinger.finish().map(ms));
        }
        println!(
            "{label}: chkpnt {}, restore {}, pause {}, TCP gap {}, connections lost {} of 5",
            figure(&dumps),
            figure(&restores),
            figure(&pauses),
            figure(&gaps),
            5 - gaps.len()
        );
        ok(&env, &["stop", "--fast", "101"]);
    }
}

/// `vzmigrate --online` between two nodes on this machine (real sshd, rsync, criu): the
/// whole migration, the pause (from the freeze, when vzmigrate says "Setting up
/// checkpoint", to the return of the restore there, when it says the VE is running there)
/// in its parts, and the client's longest gap, the client on the nodes' LAN. A fresh VE
/// each round.
pub fn migrate_times() {
    println!("== online migration (vzmigrate --online, ssh + rsync + criu) ==");
    let nodes = TwoNodes::new("bench-mig");
    for (label, hog, rounds) in [("idle VE", false, 5), ("VE with 256 MB touched", true, 3)] {
        let (mut totals, mut pauses, mut gaps, mut phases) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            ok(&nodes.src, &["create", "101", "--ipadd", VE_IP]);
            ok(&nodes.src, &["set", "101", "--ram", "1G", "--swap", "0", "--save"]);
            ok(&nodes.src, &["start", "101"]);
            start_workload(&nodes.src, hog);
            let pinger = Pinger::start(in_ns(nodes.lan.0.id(), &["busybox", "nc", VE_IP, "7000"]));
            let ssh = format!("--ssh={}", nodes.ssh_opts());
            let t = Instant::now();
            let mut child = nodes
                .src
                .cmd("vzmigrate", &[&ssh, "--online", "root@10.79.0.2", "101"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("vzmigrate");
            let out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
            // When vzmigrate said each: frozen, dumped, sent, restored there (and killed here).
            let mut at: [Option<Instant>; 4] = [None; 4];
            for line in out.lines().map_while(Result::ok) {
                let marks = [
                    "Setting up checkpoint",
                    "Checkpointing completed",
                    "Restoring container",
                    "Container 101 is running",
                ];
                if let Some(i) = marks.iter().position(|m| line.starts_with(m)) {
                    at[i] = Some(Instant::now());
                }
            }
            let o = child.wait_with_output().expect("vzmigrate");
            assert!(o.status.success(), "vzmigrate: {}", String::from_utf8_lossy(&o.stderr));
            totals.push(ms(t.elapsed()));
            let [Some(frozen), Some(dumped), Some(sent), Some(moved)] = at else {
                panic!("vzmigrate did not say each step: {at:?}");
            };
            pauses.push(ms(moved - frozen));
            phases.push([ms(dumped - frozen), ms(sent - dumped), ms(moved - sent)]);
            gaps.extend(pinger.finish().map(ms));
            ok(&nodes.dst, &["stop", "--fast", "101"]);
            ok(&nodes.dst, &["destroy", "101"]);
        }
        println!(
            "{label}: migration {}, pause {}, TCP gap {}, connections lost {} of {rounds}",
            figure(&totals),
            figure(&pauses),
            figure(&gaps),
            rounds - gaps.len()
        );
        let phase = |i: usize| figure(&phases.iter().map(|p: &[f64; 3]| p[i]).collect::<Vec<_>>());
        println!("  the pause: dump {}, last copy after it {}, restore there {}", phase(0), phase(1), phase(2));
    }
}

/// `vzctl snapshot` of a running ploop VE holding 200 MB of data, with and without its
/// running state: the whole command, and the longest gap a TCP client sees (the VE is
/// frozen while its image is copied). 5 rounds each, each snapshot deleted after.
pub fn snapshot_times() {
    println!("== snapshots of a running ploop VE (200 MB of data, image copied while frozen) ==");
    let env = VzEnv::new("bench-snap");
    ok(&env, &["create", "101", "--layout", "ploop", "--diskspace", "1G:1G", "--ipadd", "10.79.0.1"]);
    ok(&env, &["start", "101"]);
    ok(&env, &["exec2", "101", "dd if=/dev/urandom of=/data bs=1M count=200 2>/dev/null; sync"]);
    start_workload(&env, false);
    for (label, extra) in
        [("disk and config (--skip-suspend)", Some("--skip-suspend")), ("with running state (CRIU)", None)]
    {
        let (mut totals, mut gaps) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let pinger = Pinger::start(env.in_netns(&["busybox", "nc", "10.79.0.1", "7000"]));
            let id = "{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}";
            let mut args = vec!["snapshot", "101", "--id", id];
            args.extend(extra);
            let t = Instant::now();
            ok(&env, &args);
            totals.push(ms(t.elapsed()));
            gaps.extend(pinger.finish().map(ms));
            ok(&env, &["snapshot-delete", "101", "--id", id]);
        }
        println!(
            "{label}: snapshot {}, TCP gap {}, connections lost {} of 5",
            figure(&totals),
            figure(&gaps),
            5 - gaps.len()
        );
    }
    ok(&env, &["stop", "--fast", "101"]);
}
