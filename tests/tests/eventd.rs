//! vzeventd, the node's event daemon, against real VEs: its Prometheus endpoint read by a
//! real Prometheus (Debian's) and checked by promtool, agreeing with vzlist; a `reboot`
//! inside a VE starting it again and `halt` stopping it; limit hits as JSON events, with
//! enforcement holding while the daemon is dead; `vzctl events`; LOGFILE.
use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use vz_tests::{wait_until, Reaped, VzEnv};

/// The daemon, killed (by pid: it is our child) when dropped.
struct Daemon;

impl Daemon {
    fn start(env: &VzEnv, args: &[&str]) -> Reaped {
        let log = std::fs::File::create(env.dir.join("vzeventd.out")).expect("daemon output");
        let child =
            env.cmd("vzeventd", args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().expect("vzeventd");
        let d = Reaped(child);
        // Ready once it has made (and watches) the event log.
        wait_until("vzeventd up", || env.dir.join("events.log").exists());
        std::thread::sleep(Duration::from_millis(300));
        d
    }
}

fn events(env: &VzEnv) -> Vec<String> {
    std::fs::read_to_string(env.dir.join("events.log")).unwrap_or_default().lines().map(String::from).collect()
}

fn wait_event(env: &VzEnv, what: &str, f: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(l) = events(env).into_iter().find(|l| f(l)) {
            return l;
        }
        let daemon = std::fs::read_to_string(env.dir.join("vzeventd.out")).unwrap_or_default();
        assert!(Instant::now() < end, "no {what} event in {:#?}\nvzeventd said:\n{daemon}", events(env));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(env: &VzEnv, url: &str) -> String {
    let o = env.in_netns(&["curl", "-sS", "--max-time", "20", url]).output().expect("curl");
    assert!(o.status.success(), "GET {url}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The value of one series of a scrape.
fn series(text: &str, name: &str, labels: &str) -> Option<String> {
    let key = format!("{name}{{{labels}}} ");
    text.lines().find_map(|l| l.strip_prefix(&key)).map(str::to_string)
}

fn vzlist_one(env: &VzEnv, veid: &str, field: &str) -> String {
    let o = env.vzlist(&["-H", "-o", field, veid]);
    assert_eq!(o.code, 0, "{o:?}");
    o.stdout.trim().to_string()
}

#[test]
fn metrics_agree_with_vzlist_and_a_real_prometheus_scrapes_them() {
    let env = VzEnv::new("evmetrics");
    env.ok(&["create", "101", "--name", "web"]);
    env.ok(&["set", "101", "--numproc", "90:100", "--save"]);
    env.ok(&["start", "101"]);
    env.ok(&["create", "102"]);
    let _d = Daemon::start(&env, &["--listen", "127.0.0.1:9765"]);
    let text = get(&env, "http://127.0.0.1:9765/metrics");
    let l = "veid=\"101\",name=\"web\"";
    assert_eq!(series(&text, "vz_ve_running", l).as_deref(), Some("1"), "{text}");
    assert_eq!(series(&text, "vz_ve_running", "veid=\"102\",name=\"\"").as_deref(), Some("0"));
    for (res, col, field) in [
        ("numproc", "vz_ubc_limit", "numproc.l"),
        ("numproc", "vz_ubc_barrier", "numproc.b"),
        ("numproc", "vz_ubc_held", "numproc"),
        ("numproc", "vz_ubc_failcnt_total", "numproc.f"),
        ("physpages", "vz_ubc_limit", "physpages.l"),
        ("numtcpsock", "vz_ubc_barrier", "numtcpsock.b"),
    ] {
        let got = series(&text, col, &format!("{l},resource=\"{res}\""));
        assert_eq!(got.as_deref(), Some(vzlist_one(&env, "101", field).as_str()), "{col} {res}");
    }
    assert_eq!(series(&text, "vz_ubc_limit", &format!("{l},resource=\"numproc\"")).as_deref(), Some("100"));
    assert_eq!(series(&text, "vz_ve_processes", l), Some(vzlist_one(&env, "101", "nproc")));
    let cpu: f64 = series(&text, "vz_cpu_seconds_total", l).expect("cpu series").parse().unwrap();
    assert!(cpu > 0.0, "the VE's init has run: {cpu}");
    // A stopped VE has no usage series.
    assert!(!text.contains("veid=\"102\",name=\"\",resource"));

    // promtool's own checks of the exposition (lint included).
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let o = check.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "promtool has remarks: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // A real Prometheus in the test's network namespace scrapes the endpoint.
    let pdir = env.dir.join("prometheus");
    std::fs::create_dir_all(&pdir).unwrap();
    let cfg = pdir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: vz\n    static_configs:\n      - targets: ['127.0.0.1:9765']\n",
    )
    .unwrap();
    let prom = env
        .in_netns(&[
            "prometheus",
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.tsdb.path={}", pdir.join("data").display()),
            "--web.listen-address=127.0.0.1:9090",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus");
    let _prom = Reaped(prom);
    let query = |q: &str| get(&env, &format!("http://127.0.0.1:9090/api/v1/query?query={q}"));
    let want = vzlist_one(&env, "101", "numproc.l");
    let q = "vz_ubc_limit%7Bveid%3D%22101%22%2Cresource%3D%22numproc%22%7D";
    let end = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let a = std::panic::catch_unwind(|| query(q)).unwrap_or_default();
        if a.contains("\"value\"") {
            break a;
        }
        assert!(Instant::now() < end, "Prometheus never had the series: {a}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(answer.contains(&format!(",\"{want}\"]")), "Prometheus says {answer}, vzlist {want}");
    assert!(answer.contains("\"name\":\"web\""), "{answer}");
    let up = query("up%7Bjob%3D%22vz%22%7D");
    assert!(up.contains(",\"1\"]"), "the scrape target is up: {up}");
}

#[test]
fn a_scrape_takes_walked_rows_from_the_last_walk_and_walks_again_when_it_is_old() {
    let env = VzEnv::new("evwalks");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    let _d = Daemon::start(&env, &["--listen", "127.0.0.1:9765", "--walk-every", "4"]);
    let numfile = |text: &str| series(text, "vz_ubc_held", "veid=\"101\",name=\"\",resource=\"numfile\"");
    let first = get(&env, "http://127.0.0.1:9765/metrics");
    let before = numfile(&first).expect("numfile series");
    assert_eq!(before, vzlist_one(&env, "101", "numfile"), "the first scrape walks");
    // A process holding 6 more files: found by the files iterator only.
    env.ok(&["exec", "101", "exec 3</etc/passwd 4</etc/passwd 5</etc/passwd; sleep 300 >/dev/null 2>&1 &"]);
    let grown = vzlist_one(&env, "101", "numfile");
    assert_ne!(grown, before, "vzlist walks and sees the new files");
    // Within the walk's age, a scrape reads maps and cgroups only (numproc is live).
    let cached = get(&env, "http://127.0.0.1:9765/metrics");
    assert_eq!(numfile(&cached), Some(before.clone()), "the files iterator ran for a scrape");
    let procs = series(&cached, "vz_ubc_held", "veid=\"101\",name=\"\",resource=\"numproc\"");
    assert_eq!(procs, Some(vzlist_one(&env, "101", "numproc")), "unwalked rows are read at each scrape");
    // Older than --walk-every: walked again.
    std::thread::sleep(Duration::from_secs(4));
    let fresh = get(&env, "http://127.0.0.1:9765/metrics");
    assert_eq!(numfile(&fresh), Some(grown), "walked again after 4 s");
}

#[test]
fn reboot_inside_a_ve_starts_it_again_and_halt_stops_it() {
    let env = VzEnv::new("evreboot");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    let _d = Daemon::start(&env, &["--no-metrics"]);
    let first = env.init_pid(101);
    let starts = |env: &VzEnv| events(env).iter().filter(|l| l.contains("\"event\":\"start\"")).count();
    assert_eq!(starts(&env), 1);
    // busybox's reboot -f: reboot(2) from the VE's root, as any distribution's init does last.
    let _ = env.vzctl(&["exec", "101", "reboot -f"]);
    let line = wait_event(&env, "reboot", |l| l.contains("\"event\":\"reboot\""));
    assert!(line.contains("\"veid\":101") && line.contains("vzctl restart"), "{line}");
    wait_until("VE 101 running again", || {
        env.vzctl(&["status", "101"]).stdout.contains("running") && env.try_init_pid(101).is_some_and(|p| p != first)
    });
    // The restart is whole once its start is recorded (its init runs a little before).
    wait_until("the restart's start event", || starts(&env) == 2);
    assert!(env.ok(&["exec", "101", "echo alive"]).contains("alive"));

    // A reboot loop: four more are carried out, the sixth within a minute leaves it stopped.
    for _ in 0..4 {
        let before = starts(&env);
        let _ = env.vzctl(&["exec", "101", "reboot -f"]);
        wait_until("started again", || starts(&env) > before);
    }
    let _ = env.vzctl(&["exec", "101", "reboot -f"]);
    let line = wait_event(&env, "the looping reboot", |l| l.contains("left stopped"));
    assert!(line.contains("\"event\":\"reboot\"") && line.contains("vzctl stop"), "{line}");
    wait_until("VE 101 left down and unmounted", || {
        let s = env.vzctl(&["status", "101"]).stdout;
        s.contains("down") && s.contains("unmounted")
    });
    env.ok(&["start", "101"]);

    let _ = env.vzctl(&["exec", "101", "halt -f"]);
    let line = wait_event(&env, "halt", |l| l.contains("\"event\":\"halt\""));
    assert!(line.contains("vzctl stop"), "{line}");
    wait_until("VE 101 down and unmounted", || {
        let s = env.vzctl(&["status", "101"]).stdout;
        s.contains("down") && s.contains("unmounted")
    });
    // vzctl stop itself halts the VE: vzeventd waits for it, finds the VE stopped, and
    // leaves it so.
    env.ok(&["start", "101"]);
    env.ok(&["stop", "101"]);
    let line =
        wait_event(&env, "halt by vzctl stop", |l| l.contains("\"event\":\"halt\"") && l.contains("after vzctl pid"));
    assert!(line.contains("\"veid\":101"), "{line}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(env.vzctl(&["status", "101"]).stdout.contains("down"), "a stopped VE stays stopped");

    // A halt the daemon reads only after vzctl stop has dropped the VE's records still
    // names the VE (the exit program puts the VEID in the event).
    env.ok(&["start", "101"]);
    let halts = |env: &VzEnv| events(env).iter().filter(|l| l.contains("\"event\":\"halt\"")).count();
    let before = halts(&env);
    let pid = _d.0.id() as i32;
    // SAFETY: signals to our own child, by pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP vzeventd");
    let stopped = env.vzctl(&["stop", "101"]);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0, "SIGCONT vzeventd");
    assert_eq!(stopped.code, 0, "{stopped:?}");
    wait_until("the late-read halt event", || halts(&env) > before);
    std::thread::sleep(Duration::from_secs(1));
    assert!(env.vzctl(&["status", "101"]).stdout.contains("down"), "a stopped VE stays stopped");

    // An init that dies: the event carries what it last wrote to its console, and the VE
    // is cleaned up.
    env.ok(&["start", "101"]);
    env.ok(&["exec", "101", "echo 'kernel panic in my head' > /dev/console"]);
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: SIGKILL to the init of the test's own VE, by pid.
    assert_eq!(unsafe { libc::kill(env.init_pid(101), libc::SIGKILL) }, 0);
    let line = wait_event(&env, "the death", |l| l.contains("\"event\":\"exit\""));
    assert!(line.contains("kernel panic in my head") && line.contains("last_words"), "{line}");
    wait_until("VE 101 cleaned up after its death", || {
        let s = env.vzctl(&["status", "101"]).stdout;
        s.contains("down") && s.contains("unmounted")
    });
}

#[test]
fn limit_hits_are_events_and_limits_hold_while_the_daemon_is_dead() {
    let env = VzEnv::new("evlimits");
    env.ok(&["create", "101"]);
    env.ok(&["set", "101", "--numproc", "12:12", "--numtcpsock", "4:4", "--save"]);
    env.ok(&["start", "101"]);
    let d = Daemon::start(&env, &["--no-metrics"]);
    // numproc: the pids controller refuses; its events file wakes the daemon.
    let _ = env.vzctl(&["exec", "101", "for i in $(seq 30); do sleep 5 & done; wait"]);
    let line = wait_event(&env, "numproc limit", |l| l.contains("\"event\":\"limit\"") && l.contains("numproc"));
    assert!(line.contains("\"limit\":12") && line.contains("\"failcnt\":"), "{line}");
    // The shell gives up at the refused fork; its sleeps live on a while.
    wait_until("the sleeps gone", || vzlist_one(&env, "101", "numproc").parse::<u64>().unwrap() <= 3);
    // numtcpsock: vz_sock_create refuses; the ring buffer names the process.
    let _ = env.vzctl(&["exec", "101", "for i in 1 2 3 4 5 6; do nc -l -p 70$i & done; sleep 1; kill $(jobs -p)"]);
    let line = wait_event(&env, "numtcpsock limit", |l| l.contains("numtcpsock"));
    assert!(line.contains("\"comm\":\"nc\"") && line.contains("\"pid\":"), "{line}");

    // The daemon dies: the programs and limits stay, the kernel still refuses.
    drop(d);
    let before = vzlist_one(&env, "101", "numproc.f").parse::<u64>().unwrap();
    let _ = env.vzctl(&["exec", "101", "for i in $(seq 30); do sleep 3 & done; wait"]);
    let after = vzlist_one(&env, "101", "numproc.f").parse::<u64>().unwrap();
    assert!(after > before, "refused with no daemon: failcnt {before} -> {after}");
    // Back up, it reports new hits (not the old ones again).
    let n_before = events(&env).iter().filter(|l| l.contains("numproc")).count();
    let _d = Daemon::start(&env, &["--no-metrics"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(events(&env).iter().filter(|l| l.contains("numproc")).count(), n_before, "old hits reported again");
    let _ = env.vzctl(&["exec", "101", "for i in $(seq 30); do sleep 3 & done; wait"]);
    wait_until("a new numproc event", || events(&env).iter().filter(|l| l.contains("numproc")).count() > n_before);
}

#[test]
fn vzctl_events_prints_and_follows_and_vzctl_logs_to_logfile() {
    let env = VzEnv::new("evcli");
    env.ok(&["create", "101"]);
    env.ok(&["create", "102"]);
    env.ok(&["start", "101"]);
    env.ok(&["start", "102"]);
    env.ok(&["stop", "101"]);
    let all = env.ok(&["events"]);
    let kinds: Vec<(u64, String)> = all
        .lines()
        .map(|l| {
            let v = l.split("\"veid\":").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
            let e = l.split("\"event\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();
            (v, e)
        })
        .collect();
    assert_eq!(kinds, [(101, "start".into()), (102, "start".into()), (101, "stop".into())], "{all}");
    assert!(all.lines().all(|l| l.starts_with("{\"time\":\"20") && l.ends_with('}')));
    assert_eq!(env.ok(&["events", "-n", "1"]).lines().count(), 1);
    assert_eq!(env.ok(&["events", "102"]).lines().count(), 1);
    // -f: an event made while it follows is printed.
    let follower =
        env.cmd("vzctl", &["events", "-f", "-n", "0", "--seconds", "8", "102"]).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    env.ok(&["stop", "102"]);
    let o = follower.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().count() == 1 && out.contains("\"event\":\"stop\""), "{out}");
    // LOGFILE holds what vzctl said, each line naming vzctl and its pid.
    let log = std::fs::read_to_string(env.dir.join("vzctl.log")).unwrap();
    let line = log.lines().find(|l| l.contains("Starting container")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(" vzctl[") && line.starts_with("20"), "{line}");
    // A bad VEID is refused in one line.
    env.vzctl(&["events", "abc!"]).one_line_error("vzctl", 21, "abc!");
}

#[test]
fn the_shipped_unit_runs_the_daemon_at_its_default_address_and_a_restart_picks_up() {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/systemd/vzeventd.service")).unwrap();
    let exec: Vec<&str> = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap().split_whitespace().collect();
    assert_eq!(
        exec,
        ["/usr/local/sbin/vzeventd"],
        "the unit runs what cargo xtask run installs, with vz.conf's settings"
    );
    assert!(unit.contains("Restart=always") && unit.contains("Requires=vz.service"));
    let env = VzEnv::new("evunit");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    // As systemd runs it: no arguments, METRICS_ADDR's default.
    let d = Daemon::start(&env, &[]);
    assert!(get(&env, "http://127.0.0.1:9765/metrics").contains("vz_ve_running{veid=\"101\""));
    // Killed (systemd restarts it): a reboot while it is down waits in the pinned ring
    // buffer and is acted on when it is back (OpenVZ's lost it).
    drop(d);
    let first = env.init_pid(101);
    let _ = env.vzctl(&["exec", "101", "reboot -f"]);
    wait_until("VE 101's init gone", || env.try_init_pid(101).is_none());
    std::thread::sleep(Duration::from_millis(500));
    assert!(env.vzctl(&["status", "101"]).stdout.contains("down"), "restarted with no daemon");
    let _d = Daemon::start(&env, &[]);
    wait_until("VE 101 rebooted", || {
        env.vzctl(&["status", "101"]).stdout.contains("running") && env.try_init_pid(101).is_some_and(|p| p != first)
    });
    // Its restart finished (no vzctl of the daemon's outlives the test).
    wait_until("the restart's start event", || {
        events(&env).iter().filter(|l| l.contains("\"event\":\"start\"")).count() == 2
    });
    assert!(get(&env, "http://127.0.0.1:9765/metrics").contains("vz_ve_running{veid=\"101\",name=\"\"} 1"));
}
