//! Beancounters kept by kernel controllers, under hostile workloads inside real VEs.
use std::time::{Duration, Instant};

use vz_tests::VzEnv;

/// The numbers of one `vzctl ubc` row: held, maxheld, barrier, limit, failcnt.
fn row(env: &VzEnv, veid: &str, name: &str) -> [u64; 5] {
    let out = env.ok(&["ubc", veid]);
    let line = out
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == name))
        .unwrap_or_else(|| panic!("no {name} row in:\n{out}"));
    let n: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    [n[0], n[1], n[2], n[3], n[4]]
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn fork_bomb_is_contained_by_numproc() {
    let env = VzEnv::new("bomb");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    env.ok(&["set", "101", "--numproc", "40"]);
    let base = row(&env, "101", "numproc")[0];
    // A real fork bomb (every process forks two more) that stops forking after 4 s.
    let bomb = env.cmd("vzctl", &["exec", "101", "END=$(( $(cut -d. -f1 /proc/uptime) + 4 )); b() { while [ $(cut -d. -f1 /proc/uptime) -lt $END ]; do b & b & wait; done; }; b >/dev/null 2>&1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // The host stays responsive while the bomb runs.
    let t = Instant::now();
    assert!(std::process::Command::new("true").status().unwrap().success());
    assert!(t.elapsed() < Duration::from_secs(1), "host slow during the bomb: {:?}", t.elapsed());
    let [held, maxheld, barrier, _, failcnt] = row(&env, "101", "numproc");
    assert!(held <= 40 && maxheld == 40 && barrier == 40, "held {held} maxheld {maxheld}");
    assert!(failcnt > 0, "no refusal counted");
    let mut bomb = bomb;
    let _ = bomb.wait();
    // When the bomb ends the VE recovers: held back to what it was, and it can fork.
    wait_until("numproc held back to base", || row(&env, "101", "numproc")[0] <= base + 1);
    assert_eq!(env.ok(&["exec2", "101", "echo alive"]), "alive\n");
    // vzubc -c lists the row that failed.
    let c = vz_tests::Out::of(env.cmd("vzubc", &["-c", "101"]).output().unwrap());
    assert!(c.stdout.lines().any(|l| l.contains("numproc")) && !c.stdout.contains("numtcpsock"), "{}", c.stdout);
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn memory_hog_is_held_at_physpages() {
    let env = VzEnv::new("memhog");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    env.ok(&["set", "101", "--ram", "48M", "--swap", "0"]);
    let [_, _, b, l, _] = row(&env, "101", "physpages");
    assert_eq!((b, l), (0, 12288));
    // tail buffers /dev/zero (no newline) until the VE's memory limit stops it.
    let o = env.vzctl(&["exec2", "101", "tail /dev/zero"]);
    assert_ne!(o.code, 0, "the hog was not stopped: {o:?}");
    let [held, maxheld, _, _, failcnt] = row(&env, "101", "physpages");
    assert!(maxheld <= 12288 && maxheld > 8000, "maxheld {maxheld}");
    assert!(failcnt > 0, "no failure counted");
    assert!(held < 4096, "memory not given back: {held}");
    // The VE itself survives.
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist mounted running\n");
    assert_eq!(env.ok(&["exec2", "101", "echo alive"]), "alive\n");
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn set_accepts_every_parameter_and_vswap() {
    let env = VzEnv::new("setall");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    let mut args = vec!["set", "101"];
    let names = [
        "kmemsize",
        "lockedpages",
        "privvmpages",
        "shmpages",
        "numproc",
        "physpages",
        "vmguarpages",
        "oomguarpages",
        "numtcpsock",
        "numflock",
        "numpty",
        "numsiginfo",
        "tcpsndbuf",
        "tcprcvbuf",
        "othersockbuf",
        "dgramrcvbuf",
        "numothersock",
        "dcachesize",
        "numfile",
        "numiptent",
        "swappages",
    ];
    let flags: Vec<String> = names.iter().map(|n| format!("--{n}")).collect();
    for f in &flags {
        args.push(f);
        args.push("1000:2000");
    }
    args.push("--save");
    let o = env.vzctl(&args);
    assert_eq!(o.code, 0, "{o:?}");
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    for n in names {
        assert!(conf.contains(&format!("{}=\"1000:2000\"", n.to_ascii_uppercase())), "{n} not saved");
    }
    // Rows the kernel cannot refuse are announced.
    assert!(o.stderr.contains("kmemsize is only accounted"), "{}", o.stderr);
    env.ok(&["set", "101", "--ram", "1G", "--swap", "512M", "--vm_overcommit", "2", "--save"]);
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    for want in
        ["PHYSPAGES=\"0:262144\"", "SWAPPAGES=\"0:131072\"", "PRIVVMPAGES=\"786432:786432\"", "VM_OVERCOMMIT=\"2\""]
    {
        assert!(conf.contains(want), "{want} missing:\n{conf}");
    }
    env.vzctl(&["set", "101", "--numfile", "5:4"]).one_line_error("vzctl", 21, "'5:4'");
    env.vzctl(&["set", "101", "--kmemsize", "-3"]).one_line_error("vzctl", 21, "'-3'");
    env.vzctl(&["set", "101", "--ram", "lots"]).one_line_error("vzctl", 21, "'lots'");
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn pty_exhaustion_stops_at_numpty() {
    let env = VzEnv::new("pty");
    env.ok(&["create", "101"]);
    env.ok(&["set", "101", "--numpty", "3", "--save"]);
    env.ok(&["start", "101"]);
    let ptmx = format!("/proc/{}/root/dev/pts/ptmx", env.init_pid(101));
    let open = || std::fs::OpenOptions::new().read(true).write(true).open(&ptmx);
    // Terminals of the VE's own devpts instance, as its processes would get them.
    let held: Vec<_> = (0..3).map(|_| open().expect("pty within numpty")).collect();
    let e = open().expect_err("a pty past numpty");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    assert_eq!(row(&env, "101", "numpty")[..3], [3, 3, 3]);
    // Inside the VE the same limit holds: an interactive enter cannot get a terminal.
    let o = env.vzctl(&["enter", "101"]);
    assert_ne!(o.code, 0, "{o:?}");
    // Raised live, without restart.
    env.ok(&["set", "101", "--numpty", "5"]);
    let more: Vec<_> = (0..2).map(|_| open().expect("pty after raising numpty")).collect();
    assert!(open().is_err());
    drop(held);
    drop(more);
    assert_eq!(row(&env, "101", "numpty")[0], 0);
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn limit_hits_stream_to_the_event_log() {
    use std::io::BufRead as _;
    let env = VzEnv::new("events");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    env.ok(&["set", "101", "--numtcpsock", "1", "--numproc", "12"]);
    let mut d = env.cmd("vzeventd", &["--seconds", "30"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (l2, err) = (lines.clone(), d.stderr.take().unwrap());
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            l2.lock().unwrap().push(l);
        }
    });
    let seen = |needle: &[&str]| lines.lock().unwrap().iter().any(|l| needle.iter().all(|n| l.contains(n)));
    wait_until("vzeventd ready", || seen(&["following"]));
    // A socket refusal: the refused process is named.
    env.vzctl(&[
        "exec",
        "101",
        "nc -l -p 7000 </dev/null >/dev/null 2>&1 & sleep 0.2; nc -l -p 7001 </dev/null; kill %1",
    ]);
    wait_until("socket event", || {
        seen(&["limit hit", "veid=101", "resource=\"numtcpsock\"", "held=1", "barrier=1", "comm=\"nc\""])
    });
    // The program's own aya-log line arrives through the same daemon.
    wait_until("kernel log line", || seen(&["vz::kernel", "refused socket res 9 barrier 1"]));
    // A fork refusal by the pids controller.
    env.vzctl(&["exec", "101", "for i in $(seq 30); do sleep 1 & done 2>/dev/null; wait"]);
    wait_until("numproc event", || seen(&["limit hit", "veid=101", "resource=\"numproc\"", "barrier=12"]));
    let _ = d.kill();
    let _ = d.wait();
    env.ok(&["stop", "--fast", "101"]);
}

/// Open files of the VE's processes, counted on the host from /proc (one count per
/// process: threads share their file table).
fn proc_fd_count(env: &VzEnv, veid: u32) -> u64 {
    env.cg()
        .procs(veid)
        .iter()
        .map(|p| std::fs::read_dir(format!("/proc/{p}/fd")).map(|d| d.count() as u64).unwrap_or(0))
        .sum()
}

#[test]
fn numfile_counts_open_files_exactly() {
    let env = VzEnv::new("files");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    // An open-file flood in the background: 150 descriptors held for a while.
    env.ok(&["exec", "101", "(i=3; while [ $i -lt 153 ]; do eval \"exec $i</etc/passwd\"; i=$((i+1)); done; sleep 4) </dev/null >/dev/null 2>&1 &"]);
    std::thread::sleep(Duration::from_millis(500));
    let held = row(&env, "101", "numfile")[0];
    let truth = proc_fd_count(&env, 101);
    assert_eq!(held, truth, "numfile {held} vs /proc {truth}");
    assert!(held >= 150, "{held}");
    // When the flood ends, held comes back down to the truth.
    wait_until("files released", || row(&env, "101", "numfile")[0] < 50);
    assert_eq!(row(&env, "101", "numfile")[0], proc_fd_count(&env, 101));
    env.ok(&["stop", "--fast", "101"]);
}

/// Pages of the VE's mappings whose smaps VmFlags carry `flag` ("ac": accounted private
/// memory, "lo": mlocked), summed on the host over its processes.
fn smaps_pages(env: &VzEnv, veid: u32, flag: &str) -> u64 {
    let mut total = 0;
    for p in env.cg().procs(veid) {
        let Ok(smaps) = std::fs::read_to_string(format!("/proc/{p}/smaps")) else { continue };
        let mut size = 0;
        for l in smaps.lines() {
            if let Some(kb) = l.strip_prefix("Size:") {
                size = kb.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0) / 4;
            }
            if let Some(flags) = l.strip_prefix("VmFlags:") {
                if flags.split_whitespace().any(|f| f == flag) {
                    total += size;
                }
            }
        }
    }
    total
}

#[test]
fn privvmpages_and_lockedpages_match_the_kernels_mappings() {
    let env = VzEnv::new("vmas");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    env.ok(&["exec", "101", "sleep 30 </dev/null >/dev/null 2>&1 &"]);
    std::thread::sleep(Duration::from_millis(300));
    let privvm = row(&env, "101", "privvmpages")[0];
    assert_eq!(privvm, smaps_pages(&env, 101, "ac"));
    assert!(privvm > 0);
    assert_eq!(row(&env, "101", "lockedpages")[0], smaps_pages(&env, 101, "lo"));
    // A second process adds its own mappings.
    env.ok(&["exec", "101", "sleep 30 </dev/null >/dev/null 2>&1 &"]);
    std::thread::sleep(Duration::from_millis(300));
    let more = row(&env, "101", "privvmpages")[0];
    assert!(more > privvm, "{more} <= {privvm}");
    assert_eq!(more, smaps_pages(&env, 101, "ac"));
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn shmpages_bounds_shm_and_ve_root_cannot_raise_it() {
    let env = VzEnv::new("shm");
    env.ok(&["create", "101"]);
    env.ok(&["set", "101", "--shmpages", "100", "--save"]);
    env.ok(&["start", "101"]);
    // SysV: the VE's IPC namespace gets kernel.shmall = 100, and VE root may not raise it
    // (refused in the kernel by the vz_sysctl program).
    assert_eq!(env.ok(&["exec2", "101", "cat /proc/sys/kernel/shmall"]), "100\n");
    let w = env.vzctl(&["exec2", "101", "echo 999999 > /proc/sys/kernel/shmall"]);
    assert_ne!(w.code, 0);
    assert!(w.stderr.contains("Operation not permitted"), "{w:?}");
    assert_eq!(env.ok(&["exec2", "101", "cat /proc/sys/kernel/shmall"]), "100\n");
    // Other sysctls of its own namespaces stay writable.
    assert_eq!(env.vzctl(&["exec2", "101", "echo 1 > /proc/sys/net/ipv4/ip_forward"]).code, 0);
    // POSIX shm: /dev/shm holds at most 100 pages.
    let dd = env.vzctl(&["exec2", "101", "dd if=/dev/zero of=/dev/shm/x bs=4096 count=200"]);
    assert_ne!(dd.code, 0);
    assert!(dd.stderr.contains("100+0 records out"), "{dd:?}");
    assert_eq!(row(&env, "101", "shmpages")[..4], [100, 100, 100, 100]);
    // Raised live.
    env.ok(&["set", "101", "--shmpages", "300"]);
    assert_eq!(env.ok(&["exec2", "101", "cat /proc/sys/kernel/shmall"]), "300\n");
    assert_eq!(env.vzctl(&["exec2", "101", "dd if=/dev/zero of=/dev/shm/y bs=4096 count=150"]).code, 0);
    assert_eq!(row(&env, "101", "shmpages")[0], 250);
    env.ok(&["exec2", "101", "rm /dev/shm/x /dev/shm/y"]);
    assert_eq!(row(&env, "101", "shmpages")[0], 0);
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn stress_ng_socket_flood_in_a_debian_ve() {
    let env = VzEnv::new("sflood");
    env.debian_template();
    env.ok(&["create", "101", "--ostemplate", "debian-12-minbase"]);
    env.ok(&["start", "101"]);
    // stress-ng comes from the template's apt cache: no network.
    let o = env.vzctl(&["exec2", "101", "apt-get install -y -qq --no-download stress-ng"]);
    assert_eq!(o.code, 0, "{o:?}");
    env.ok(&["set", "101", "--numtcpsock", "6", "--numothersock", "6"]);
    // 8 TCP client/server pairs and 6 UDP pairs against barriers of 6.
    env.vzctl(&["exec2", "101", "stress-ng --sock 8 --udp 6 --timeout 4s"]);
    for name in ["numtcpsock", "numothersock"] {
        let [held, maxheld, barrier, _, failcnt] = row(&env, "101", name);
        assert_eq!((maxheld, barrier), (6, 6), "{name}: the barrier was passed or never met");
        assert!(failcnt > 0, "{name}: no refusal counted");
        assert_eq!(held, 0, "{name}: drift after the flood");
    }
    env.ok(&["stop", "--fast", "101"]);
}
