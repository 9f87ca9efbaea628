//! Benchmarks run by `cargo xtask bench`: each figure is a ratio from one run, with
//! programs attached vs the same VE cgroup with none.
use std::process::Command;

use aya::{
    programs::{CgroupAttachMode, CgroupSock},
    Ebpf, EbpfLoader,
};
use std::time::{Duration, Instant};
use vz::bpf::{Bpf, Pins, OBJECT};

use vz_tests::{bin, Env, VzEnv};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// ns per operation, measured by the helper inside the VE cgroup.
fn measure(env: &Env, kind: &str, iters: u64) -> f64 {
    let out = Command::new(bin("vzt-helper"))
        .arg("--cgroup")
        .arg(env.ve_dir(101))
        .args(["bench", kind, &iters.to_string()])
        .output()
        .expect("run helper");
    assert!(out.status.success(), "helper failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("ns/op")
}

fn attach(env: &mut Env) {
    // VZ_BENCH_DCACHE=1: measure with the dcachesize tracepoints (vz.conf
    // DCACHE_ACCOUNTING="yes") attached too.
    env.cfg.dcache = std::env::var("VZ_BENCH_DCACHE").is_ok_and(|v| v == "1");
    env.bpf = Some(Bpf::ensure(&env.cfg).expect("load programs"));
    env.ve(101);
}

fn detach(env: &mut Env) {
    env.bpf = None;
    Pins { root: env.cfg.pin_root.clone() }.remove_all().expect("unpin");
}

/// What the three configurations attach to the VE parent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    Vz,
    Noop,
    Nothing,
}

/// Loads the object's allow-everything programs and attaches them (unpinned: they go away
/// when the returned value is dropped). Its maps are pinned under a directory of the bench's
/// own pin root, removed by `detach`.
fn attach_noop(env: &Env) -> Ebpf {
    let dir = env.cfg.pin_root.join("noop");
    std::fs::create_dir_all(&dir).expect("noop pin dir");
    let mut ebpf = EbpfLoader::new().default_map_pin_directory(&dir).load(OBJECT).expect("load object");
    let parent = std::fs::File::open(&env.cfg.cgroup_parent).expect("open parent");
    for name in ["vz_noop_create", "vz_noop_release"] {
        let p: &mut CgroupSock = ebpf.program_mut(name).expect("noop program").try_into().expect("type");
        p.load().expect("load noop");
        p.attach(&parent, CgroupAttachMode::Single).expect("attach noop");
    }
    ebpf
}

mod criu;
mod eventd;
mod guests;
mod peers;
mod startup;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let want = |s: &str| args.is_empty() || args.iter().any(|a| a == s);
    if want("sockets") {
        sockets();
    }
    if want("ve") {
        ve_times();
        startup::start_breakdown();
    }
    if want("peers") {
        peers::peers();
    }
    if want("guests") {
        guests::boot_times();
    }
    if want("net") {
        net_cost();
    }
    if want("cpu") {
        cpu_shares();
    }
    if want("io") {
        io_shares();
    }
    if want("chkpnt") {
        criu::chkpnt_times();
    }
    if want("snapshot") {
        criu::snapshot_times();
    }
    if want("migrate") {
        criu::migrate_times();
    }
    if want("ve500") {
        ve_density(std::env::var("VZ_BENCH_VES").ok().and_then(|s| s.parse().ok()).unwrap_or(500));
    }
}

fn ok(env: &VzEnv, args: &[&str]) {
    let o = env.vzctl(args);
    assert_eq!(o.code, 0, "vzctl {args:?}: {}{}", o.stdout, o.stderr);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `vzctl start` until `vzctl exec VEID true` succeeds, and `create` from the cached
/// default template: medians of 15.
fn ve_times() {
    println!("== VE lifecycle (busybox default template) ==");
    let env = VzEnv::new("bench-ve");
    ok(&env, &["create", "101"]);
    ok(&env, &["destroy", "101"]);
    let (mut creates, mut starts) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let t = Instant::now();
        ok(&env, &["create", "101"]);
        creates.push(ms(t.elapsed()));
        let t = Instant::now();
        ok(&env, &["start", "101"]);
        while env.vzctl(&["exec", "101", "true"]).code != 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        starts.push(ms(t.elapsed()));
        ok(&env, &["stop", "--fast", "101"]);
        ok(&env, &["destroy", "101"]);
    }
    println!("vzctl create (cached template): median {:.1} ms", median(creates));
    println!("vzctl start until exec true succeeds: median {:.1} ms (target < 100 ms)", median(starts));
    // Against an older vzctl (VZ_BENCH_BASELINE_VZCTL=path), rounds interleaved, each
    // binary on a VE it made itself, in a VZ root of its own.
    if let Ok(old) = std::env::var("VZ_BENCH_BASELINE_VZCTL") {
        let old = std::path::PathBuf::from(old);
        let env_old = VzEnv::new("bench-ve-old");
        let run = |bin: Option<&std::path::Path>, args: &[&str]| {
            let mut c = match bin {
                Some(p) => env_old.cmd_at(p, args),
                None => env.cmd("vzctl", args),
            };
            c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().expect("vzctl").success()
        };
        assert!(run(None, &["create", "101"]) && run(Some(&old), &["create", "102"]));
        // Per binary: start until exec succeeds, `vzctl start` alone, one `exec true` on
        // the running VE. The order alternates each round, and each ratio is the median of
        // the rounds' own ratios, so a slow stretch of the machine (or the previous VE's
        // teardown still running in the kernel) weighs on both sides alike.
        let (mut new_t, mut old_t) = ([Vec::new(), Vec::new(), Vec::new()], [Vec::new(), Vec::new(), Vec::new()]);
        for round in 0..31 {
            let mut sides = [(None, "101", &mut new_t), (Some(old.as_path()), "102", &mut old_t)];
            if round % 2 == 1 {
                sides.reverse();
            }
            for (bin, veid, out) in sides {
                let t = Instant::now();
                assert!(run(bin, &["start", veid]), "start {veid} round {round}");
                out[1].push(ms(t.elapsed()));
                while !run(bin, &["exec", veid, "true"]) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                out[0].push(ms(t.elapsed()));
                let t = Instant::now();
                assert!(run(bin, &["exec", veid, "true"]));
                out[2].push(ms(t.elapsed()));
                assert!(run(bin, &["stop", "--fast", veid]));
            }
        }
        println!(
            "this vzctl vs {} (31 rounds, order alternating; medians, median of per-round ratios):",
            old.display()
        );
        for (i, what) in ["start until exec succeeds", "start alone", "exec true, VE running"].iter().enumerate() {
            let ratios = new_t[i].iter().zip(&old_t[i]).map(|(n, o)| n / o).collect();
            let (n, o) = (median(new_t[i].clone()), median(old_t[i].clone()));
            println!("  {what}: {n:.1} ms vs {o:.1} ms, ratio {:.3}", median(ratios));
        }
        run(None, &["destroy", "101"]);
        run(Some(&old), &["destroy", "102"]);
    }
}

/// CPU shares and caps: two busy VEs on one CPU with cpuunits 1000 and 2000; one VE with
/// cpulimit 25.
fn cpu_shares() {
    println!("== CPU: cpuunits and cpulimit (busybox VEs, busy loops) ==");
    let env = VzEnv::new("bench-cpu");
    for v in ["101", "102", "103"] {
        ok(&env, &["create", v]);
    }
    ok(&env, &["set", "101", "--cpuunits", "1000", "--cpumask", "0", "--save"]);
    ok(&env, &["set", "102", "--cpuunits", "2000", "--cpumask", "0", "--save"]);
    ok(&env, &["set", "103", "--cpulimit", "25", "--save"]);
    for v in [101, 102] {
        ok(&env, &["start", &v.to_string()]);
        env.spin(v, 1);
    }
    let u = env.cpu_used(&[101, 102]);
    println!(
        "cpuunits 1000 vs 2000 on CPU 0: {:.3} vs {:.3} CPUs, ratio {:.3} (target 2.0 within 10 %)",
        u[0],
        u[1],
        u[1] / u[0]
    );
    ok(&env, &["stop", "--fast", "101"]);
    ok(&env, &["stop", "--fast", "102"]);
    ok(&env, &["start", "103"]);
    env.spin(103, 1);
    let u = env.cpu_used(&[103]);
    println!("cpulimit 25: {:.3} CPUs, ratio to a quarter CPU {:.3} (target within 10 %)", u[0], u[0] / 0.25);
    ok(&env, &["stop", "--fast", "103"]);
}

/// Block I/O: two VEs on one loop-backed disk of the bench's own (switched to BFQ with
/// `vzctl iosched`), fio's direct I/O in their cgroups.
fn io_shares() {
    println!("== I/O: ioprio, iolimit and BPF block accounting (fio, direct I/O, loop disk) ==");
    let env = VzEnv::with_disk("bench-io", 1536);
    let disk = vz::io::Disk::by_name(&env.disk_name()).expect("disk");
    let file = |v: u32| env.root(v).join("fio.dat");
    let written = |v: u32| {
        let cgid = env.cg().ve_id(v).expect("cgroup");
        let bpf = Bpf::open_existing(&env.bpf_root).expect("pins");
        let stats = bpf.io_stats(cgid).expect("io stats");
        stats.iter().find(|(d, _)| *d == disk.kdev()).map_or((0, 0), |(_, t)| (t.read_bytes, t.write_bytes))
    };
    // BFQ is a module on Debian's kernels; a boot that has none cannot weigh ioprio (the
    // io tests check vzctl says so).
    let bfq = std::fs::read_to_string(format!("/sys/block/{}/queue/scheduler", disk.name))
        .unwrap_or_default()
        .contains("bfq");
    if bfq {
        ok(&env, &["iosched", &disk.name, "bfq"]);
    }
    for (v, prio) in [("101", "0"), ("102", "7")] {
        ok(&env, &["create", v]);
        ok(&env, &["set", v, "--ioprio", prio, "--save"]);
        ok(&env, &["start", v]);
    }
    for v in [101, 102] {
        let (_, w0) = written(v);
        let f = env.fio(v, &file(v), &["--rw=write", "--bs=1M", "--size=256M"]);
        let (_, w1) = written(v);
        println!(
            "VE {v} write 256 MiB: BPF counted {} B, fio {} B, ratio {:.4} (target within 2 %)",
            w1 - w0,
            f.write_bytes,
            (w1 - w0) as f64 / f.write_bytes as f64
        );
    }
    let job = ["--rw=randread", "--bs=4k", "--size=256M", "--ioengine=psync", "--runtime=8", "--time_based"];
    if bfq {
        let (lo, hi) = std::thread::scope(|s| {
            let lo = s.spawn(|| env.fio(101, &file(101), &job));
            let hi = s.spawn(|| env.fio(102, &file(102), &job));
            (lo.join().expect("fio 101"), hi.join().expect("fio 102"))
        });
        println!(
            "ioprio 7 vs 0, 4 KiB random reads at once: {:.1} vs {:.1} MiB/s, ratio {:.2} (target >= 3)",
            hi.read_bw / 1048576.0,
            lo.read_bw / 1048576.0,
            hi.read_bw / lo.read_bw
        );
    } else {
        println!("ioprio: not measured, this kernel offers no BFQ for {} (no module loaded)", disk.name);
    }
    ok(&env, &["set", "101", "--iolimit", "10M"]);
    let f = env.fio(
        101,
        &file(101),
        &["--rw=read", "--bs=256k", "--size=256M", "--ramp_time=1", "--runtime=8", "--time_based"],
    );
    println!(
        "iolimit 10M, sequential reads: {:.0} B/s, ratio to 10485760 {:.3} (target within 10 %)",
        f.read_bw,
        f.read_bw / 10485760.0
    );
    ok(&env, &["set", "101", "--iolimit", "0"]);
    ok(&env, &["stop", "--fast", "102"]);

    // Cost of the two tracepoint programs: one VE's 4 KiB random reads (scheduler none, so
    // the disk path is as short as it gets), links pinned vs removed, alternating.
    ok(&env, &["iosched", &disk.name, "none"]);
    let pins = Pins { root: env.bpf_root.clone() };
    let cg = env.cg();
    let cfg = vz::bpf::BpfConfig::for_cgroups(env.bpf_root.clone(), cg.as_ref());
    let job = ["--rw=randread", "--bs=4k", "--size=256M", "--ioengine=psync", "--runtime=4", "--time_based"];
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let unpin = || {
        for p in [vz_common::progs::IO_QUEUE, vz_common::progs::IO_DONE, vz_common::progs::IO_RQ_DONE] {
            std::fs::remove_file(pins.link(p)).expect("unpin io link");
        }
    };
    let repin = |round: u64| {
        // A different object hash makes the loader attach everything afresh.
        Bpf::ensure_object(&cfg, vz::bpf::Object { bytes: OBJECT, hash: round + 1 }).expect("reload");
        let cgid = env.cg().ve_id(101).expect("cgroup");
        let blkcg = vz::cgroup::cgroup_id(&vz::io::blkio_dir(env.cg().as_ref(), 101).expect("blkio")).expect("id");
        Bpf::open_existing(&env.bpf_root).expect("pins").set_io_cgroup(cgid, blkcg).expect("register");
    };
    let prog_stats = || {
        [vz_common::progs::IO_QUEUE, vz_common::progs::IO_RQ_DONE].map(|p| {
            let i = aya::programs::ProgramInfo::from_pin(pins.prog(p)).expect("program info");
            (i.run_time().as_nanos() as u64, i.run_count())
        })
    };
    let mut per_run = [(0u64, 0u64); 2];
    let mut attached_now = true;
    for round in 0..6u64 {
        // Alternate which goes first, so drift in the disk's speed hits both alike.
        let attached_first = round % 2 == 0;
        for attached in [attached_first, !attached_first] {
            match (attached, attached_now) {
                (true, false) => repin(round),
                (false, true) => unpin(),
                _ => {}
            }
            attached_now = attached;
            if attached {
                with.push(env.fio(101, &file(101), &job).read_iops);
            } else {
                without.push(env.fio(101, &file(101), &job).read_iops);
            }
        }
    }
    if !attached_now {
        repin(6);
    }
    // The programs' own time per run, from the kernel's BPF run-time statistics, in a run
    // of its own (they cost a clock read per run while the returned fd is open; no sysctl
    // is touched).
    let stats_fd = aya::sys::enable_stats(aya::sys::Stats::RunTime).expect("BPF_ENABLE_STATS");
    let s0 = prog_stats();
    env.fio(101, &file(101), &job);
    let s1 = prog_stats();
    for i in 0..2 {
        per_run[i] = (s1[i].0 - s0[i].0, s1[i].1 - s0[i].1);
    }
    drop(stats_fd);
    println!("  rounds with {with:.0?}, without {without:.0?}");
    let (w, n) = (median(with), median(without));
    println!("4 KiB random reads, one VE: {n:.0} IOPS without the programs, {w:.0} with, ratio {:.3}", w / n);
    for (i, p) in [vz_common::progs::IO_QUEUE, vz_common::progs::IO_RQ_DONE].iter().enumerate() {
        let (ns, n) = per_run[i];
        println!("  {p}: {:.0} ns per run over {n} runs", ns as f64 / n.max(1) as f64);
    }
    ok(&env, &["stop", "--fast", "101"]);
}

fn mem_used_kib() -> u64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let get = |k: &str| {
        m.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get("MemTotal:").saturating_sub(get("MemAvailable:"))
}

/// How many default VEs run at once: start `n`, report host memory per VE and how long
/// `vzlist -a` takes.
fn ve_density(n: u32) {
    println!("== {n} VEs at once ==");
    let env = VzEnv::new("bench-500");
    let ids: Vec<String> = (1000..1000 + n).map(|i| i.to_string()).collect();
    for v in &ids {
        ok(&env, &["create", v]);
    }
    let before = mem_used_kib();
    let t = Instant::now();
    let (mut each, mut steps) = (Vec::new(), Vec::new());
    for v in &ids {
        let (wall, s) = startup::timed_start(&env, v);
        each.push(wall);
        steps.push(s);
    }
    let start_all = t.elapsed();
    // Flat or not: the first tenth's starts against the last tenth's, step by step.
    let tenth = (each.len() / 10).max(1);
    println!(
        "vzctl start: median of the first {tenth} {:.1} ms, of the last {tenth} {:.1} ms; by step (vzctl -vv marks), first and last {tenth}:",
        median(each[..tenth].to_vec()),
        median(each[each.len() - tenth..].to_vec())
    );
    startup::compare_steps(&steps[..tenth], &steps[steps.len() - tenth..]);
    std::thread::sleep(Duration::from_secs(2));
    let after = mem_used_kib();
    let running = env.vzlist(&["-H", "-1"]).stdout.lines().count();
    let mut lists = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let o = env.vzlist(&["-a"]);
        lists.push(ms(t.elapsed()));
        assert_eq!(o.stdout.lines().count(), n as usize + 1);
    }
    println!(
        "running {running} of {n}; started in {:.1} s; host memory per running VE {:.0} KiB; vzlist -a median {:.1} ms (target < 200 ms)",
        start_all.as_secs_f64(),
        after.saturating_sub(before) as f64 / f64::from(n.max(1)),
        median(lists)
    );
    eventd::at_scale(&env, n);
    for v in &ids {
        ok(&env, &["stop", "--fast", v]);
    }
}

fn sockets() {
    let rounds: usize = std::env::var("VZ_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(9);
    let iters: u64 = std::env::var("VZ_BENCH_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mut env = Env::new("bench");
    env.ve(101);
    let mut now = Setup::Vz;
    let mut noop: Option<Ebpf> = None;
    println!("== loops in a VE cgroup: vzbpf programs attached vs none, and allow-only programs vs none ==");
    for kind in ["tcp", "udp", "fork", "open", "devnull"] {
        let iters = if kind == "fork" { iters / 10 } else { iters };
        measure(&env, kind, iters / 10); // warm-up
        let mut ns = [Vec::new(), Vec::new(), Vec::new()];
        for round in 0..rounds {
            // Rotate the order so slow drift of the machine favours no configuration.
            let mut order = [Setup::Vz, Setup::Nothing, Setup::Noop];
            order.rotate_left(round % 3);
            for want in order {
                if want != now {
                    if now == Setup::Noop {
                        noop = None;
                        let _ = std::fs::remove_dir_all(env.cfg.pin_root.join("noop"));
                    }
                    match (now, want) {
                        (Setup::Vz, _) => detach(&mut env),
                        (_, Setup::Vz) => attach(&mut env),
                        _ => {}
                    }
                    if want == Setup::Noop {
                        noop = Some(attach_noop(&env));
                    }
                    now = want;
                }
                ns[want as usize].push(measure(&env, kind, iters));
            }
        }
        let [vz, nop, none] = ns.map(median);
        let (what, target) = match kind {
            "fork" => ("fork+exit+wait   ", "1.03"),
            "open" => ("open+close       ", "1.03"),
            "devnull" => ("open+close /dev/null (vz_device)", "1.03"),
            "tcp" => ("socket tcp create+close", "1.02"),
            _ => ("socket udp create+close", "1.02"),
        };
        println!(
            "{what}: vzbpf {vz:>6.0} ns/op, none {none:>6.0} ns/op, ratio {:.3} (target <= {target}); allow-only programs {nop:>6.0} ns/op, ratio {:.3} (the floor); median of {rounds} rounds x {iters} ops",
            vz / none,
            nop / none
        );
    }
    drop(noop);
    let _ = std::fs::remove_dir_all(env.cfg.pin_root.join("noop"));
}

/// Median ns per UDP round trip over `runs` runs of 20,000, test namespace (the "host") to VE 101's echo server.
fn round_trip(env: &VzEnv, runs: usize) -> f64 {
    let helper = bin("vzt-helper");
    let runs: Vec<f64> = (0..runs)
        .map(|_| {
            let o = env
                .in_netns(&[helper.to_str().unwrap(), "udp-pingpong", "10.90.0.1", "7000", "20000"])
                .output()
                .expect("pingpong");
            assert!(o.status.success(), "pingpong: {}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).trim().parse().expect("ns")
        })
        .collect();
    median(runs)
}

/// TCP throughput (bits/s) of an iperf3 run of 2 s between the test namespace (the
/// "host") and VE 101 at 10.90.0.1; `reverse`: the VE sends. The server is the host's
/// iperf3 (Debian package) run as a VE process: in the VE's cgroup (`procs`) and network
/// namespace (that of `init`); its files are the host's, which the tc programs never see.
fn iperf3(env: &VzEnv, init: i32, procs: &std::path::Path, reverse: bool) -> f64 {
    let mut server = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "echo $$ > {} && exec nsenter -t {init} -n iperf3 -s -1 -A 1 -B 10.90.0.1 -p 5201",
                procs.display()
            ),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    std::thread::sleep(Duration::from_millis(300));
    // Client and server each on a CPU of its own: less scheduler noise between runs.
    let mut argv = vec!["iperf3", "-c", "10.90.0.1", "-p", "5201", "-t", "2", "-J", "-A", "0"];
    if reverse {
        argv.push("-R");
    }
    let o = env.in_netns(&argv).output().expect("iperf3 -c");
    let _ = server.wait();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "iperf3: {text}");
    // end.sum_received.bits_per_second of iperf3's JSON.
    let tail = &text[text.rfind("\"sum_received\"").expect("sum_received")..];
    let v = &tail[tail.find("\"bits_per_second\"").expect("bits_per_second") + 18..];
    v.trim_start_matches([':', ' ', '\t']).split([',', '\n', '}']).next().unwrap_or("").trim().parse().expect("bps")
}

/// Runs `f` inside the env's network namespace (tc attach and nft work on the interfaces
/// there).
fn in_env_net<T: Send + 'static>(env: &VzEnv, f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> T {
    vz::ns::in_ve_net(env.netns_pid().expect("netns") as i32, f).expect("in test netns")
}

fn nft(env: &VzEnv, script: &str) {
    use std::io::Write as _;
    let mut c = env.in_netns(&["nft", "-f", "-"]).stdin(std::process::Stdio::piped()).spawn().expect("nft");
    c.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success(), "nft failed");
}

/// Per-packet cost of the venet pair's programs: a UDP request/response loop between the
/// host side and a VE with no programs, with vzbpf's tc programs while 1, 100 and 1,000
/// VEs are configured in their maps, and with the same anti-spoofing done by an nftables
/// ruleset of one rule per VE.
fn net_cost() {
    println!("== per-packet cost on a VE's venet pair: UDP round trips, host side <-> VE ==");
    let env = VzEnv::new("bench-net");
    env.debian_template();
    ok(&env, &["create", "101", "--ostemplate", "debian-12-minbase", "--ipadd", "10.90.0.1"]);
    std::fs::copy(bin("vzt-helper"), env.private(101).join("usr/local/bin/vzt-helper")).expect("helper");
    ok(&env, &["start", "101"]);
    // Rules the packets are checked against (none matches the echo traffic).
    ok(
        &env,
        &[
            "set",
            "101",
            "--netfilter-rule",
            "deny in tcp 25",
            "--netfilter-rule",
            "deny in udp 53",
            "--netfilter-rule",
            "deny out tcp 25",
            "--netfilter-rule",
            "allow in icmp",
        ],
    );
    ok(&env, &["exec", "101", "vzt-helper udp-echo 7000 </dev/null >/dev/null 2>&1 &"]);
    std::thread::sleep(Duration::from_millis(300));
    let cgid = env.cg().ve_id(101).expect("cgroup id");
    let ifname = vz::net::host_ifname(cgid);

    let (init, procs) = (env.cg().procs(101)[0], env.cg().ve_dir(101).join("cgroup.procs"));
    // Takes every program off the host end: the tcx floor's links by their pins; vzbpf's
    // filters and the clsact floor's go with the qdisc ("Invalid handle": none there).
    let noop_pins = env.bpf_root.join("noop");
    let detach = {
        let (ifname, noop_pins) = (ifname.clone(), noop_pins.clone());
        move || {
            for dir in ["ingress", "egress"] {
                let _ = std::fs::remove_file(noop_pins.join(format!("link_{dir}")));
            }
            std::process::Command::new("tc")
                .args(["qdisc", "del", "dev", &ifname, "clsact"])
                .stderr(std::process::Stdio::null())
                .status()
                .map(drop)
        }
    };
    let attach = |env: &VzEnv| {
        let (root, ifname) = (env.bpf_root.clone(), ifname.clone());
        in_env_net(env, move || {
            let mut bpf = Bpf::open_existing(&root).map_err(std::io::Error::other)?;
            let idx = vz::net::host_ifindex(cgid).map_err(std::io::Error::other)?;
            bpf.attach_venet(&ifname, cgid, idx).map_err(std::io::Error::other)
        })
    };
    // The floor: a tc program that passes everything, both ways, attached as vzbpf's are
    // (loaded once, pinned under the env's pin root, attached when its turn comes).
    let noop_prog = noop_pins.join("vz_noop_tc");
    {
        std::fs::create_dir_all(&noop_pins).expect("noop pin dir");
        let mut ebpf = EbpfLoader::new().default_map_pin_directory(&noop_pins).load(OBJECT).expect("load object");
        let p: &mut aya::programs::SchedClassifier =
            ebpf.program_mut("vz_noop_tc").expect("noop tc").try_into().expect("type");
        p.load().expect("load noop tc");
        p.pin(&noop_prog).expect("pin noop tc");
    }
    // `tcx`: as tcx links instead (what vzctl used before: no qdisc on the path, but each
    // attach waits out an RCU grace period), to show what the clsact dispatch costs.
    let attach_floor = |env: &VzEnv, tcx: bool| {
        let (prog, ifname, pins) = (noop_prog.clone(), ifname.clone(), noop_pins.clone());
        in_env_net(env, move || {
            use aya::programs::tc::{NlOptions, SchedClassifier, TcAttachOptions, TcAttachType};
            if !tcx {
                if let Err(e) = aya::programs::tc::qdisc_add_clsact(&ifname) {
                    eprintln!("clsact on {ifname}: {e}");
                }
            }
            let mut p = SchedClassifier::from_pin(&prog).map_err(std::io::Error::other)?;
            for (dir, name) in [(TcAttachType::Ingress, "ingress"), (TcAttachType::Egress, "egress")] {
                let how = match tcx {
                    true => TcAttachOptions::TcxOrder(Default::default()),
                    false => TcAttachOptions::Netlink(NlOptions::default()),
                };
                let id = p.attach_with_options(&ifname, dir, how).map_err(std::io::Error::other)?;
                let link = p.take_link(id).map_err(std::io::Error::other)?;
                match tcx {
                    true => {
                        let link: aya::programs::links::FdLink = link.try_into().map_err(std::io::Error::other)?;
                        link.pin(pins.join(format!("link_{name}"))).map_err(std::io::Error::other)?;
                    }
                    // The filter stays until the bench's detach deletes the qdisc.
                    false => std::mem::forget(link),
                }
            }
            Ok(())
        })
    };
    // Each round measures every configuration once (20,000 round trips; the order rotates
    // so drift on the VM hits all alike), and one iperf3 run per direction for vzbpf and
    // none; the figures are medians over the rounds (single iperf3 runs move by +-20 % on
    // this VM, so the spread is printed too).
    let rounds = 15;
    let iperf = std::env::var_os("VZ_BENCH_NO_IPERF").is_none();
    let (mut rtt, mut tcp): ([Vec<f64>; 4], [[Vec<f64>; 2]; 2]) = Default::default();
    for r in 0..rounds {
        for k in 0..4 {
            let c = (r + k) % 4;
            in_env_net(&env, detach.clone());
            match c {
                0 => attach(&env),
                1 => attach_floor(&env, false),
                2 => attach_floor(&env, true),
                _ => {}
            }
            rtt[c].push(round_trip(&env, 1));
            if iperf && (c == 0 || c == 3) {
                for (d, reverse) in [(0, false), (1, true)] {
                    tcp[c / 3][d].push(iperf3(&env, init, &procs, reverse));
                }
            }
        }
    }
    in_env_net(&env, detach.clone());
    let _ = std::fs::remove_dir_all(&noop_pins);
    let [with_bpf, floor, floor_tcx, none] = rtt.map(median);
    println!("no programs: {none:.0} ns per round trip");
    println!("pass-only tc programs (floor, clsact as vzbpf's): {floor:.0} ns, ratio {:.3}", floor / none);
    println!("pass-only tc programs as tcx links: {floor_tcx:.0} ns, ratio {:.3}", floor_tcx / none);
    println!("vzbpf, 1 VE configured: {with_bpf:.0} ns, ratio {:.3} (target <= 1.02)", with_bpf / none);
    if iperf {
        let spread = |v: &[f64]| {
            let (lo, hi) = v.iter().fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
            format!("{:.1}-{:.1}", lo / 1e9, hi / 1e9)
        };
        let spreads = tcp.clone().map(|c| c.map(|d| spread(&d)));
        let [with_bpf_tcp, none_tcp] = tcp.map(|c| c.map(median));
        for (i, dir) in ["host -> VE", "VE -> host"].iter().enumerate() {
            println!(
                "iperf3 TCP {dir}: no programs {:.2} Gbit/s (runs {}), vzbpf {:.2} Gbit/s (runs {}), ratio {:.3} (target >= 0.98)",
                none_tcp[i] / 1e9,
                spreads[1][i],
                with_bpf_tcp[i] / 1e9,
                spreads[0][i],
                with_bpf_tcp[i] / none_tcp[i]
            );
        }
    }

    // Fake VEs in the maps: addresses, interfaces and rules, as running VEs would have.
    let fake = |n: u32| {
        let mut bpf = Bpf::open_existing(&env.bpf_root).expect("pins");
        let rules =
            vz::netfilter::parse_rules(&["deny in tcp 25; deny in udp 53; deny out tcp 25; allow in icmp"]).unwrap();
        let m =
            aya::maps::MapData::from_pin(Pins { root: env.bpf_root.clone() }.map(vz_common::maps::NET_IFS)).unwrap();
        let mut ifs: aya::maps::HashMap<_, u32, u64> =
            aya::maps::HashMap::try_from(aya::maps::Map::HashMap(m)).unwrap();
        for i in 0..n {
            let ve = (1u64 << 40) + u64::from(i);
            let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0ac8_0000 + i));
            bpf.set_ve_addrs(ve, &[ip], None).unwrap();
            bpf.set_net_rules(ve, &rules).unwrap();
            ifs.insert(1_000_000 + i, ve, 0).unwrap();
        }
    };
    // Each size against none in rounds of its own (alternating), as above.
    let versus_none = |set_up: &dyn Fn(), tear_down: &dyn Fn()| {
        let mut t: [Vec<f64>; 2] = Default::default();
        for r in 0..9 {
            for k in 0..2 {
                let c = (r + k) % 2;
                if c == 0 {
                    set_up();
                }
                t[c].push(round_trip(&env, 1));
                if c == 0 {
                    tear_down();
                }
            }
        }
        let [with, without] = t.map(median);
        (with, without, with / without)
    };
    for n in [100u32, 1000] {
        fake(n - 1);
        let (t, base, ratio) = versus_none(&|| attach(&env), &|| in_env_net(&env, detach.clone()));
        println!("vzbpf, {n} VEs configured: {t:.0} ns (none in these rounds {base:.0}), ratio {ratio:.3}");
    }

    // The same anti-spoofing as an nftables ruleset: one rule per VE.
    for n in [1u32, 100, 1000] {
        let mut script = String::from(
            "table inet vzbench {\n chain pre {\n  type filter hook prerouting priority 0; policy accept;\n",
        );
        for i in 0..n - 1 {
            script.push_str(&format!(
                "  iifname \"vzf{i}\" ip saddr != {} drop\n",
                std::net::Ipv4Addr::from(0x0ac8_0000 + i)
            ));
        }
        script.push_str(&format!("  iifname \"{ifname}\" ip saddr != 10.90.0.1 drop\n }}\n}}\n"));
        let (t, base, ratio) = versus_none(&|| nft(&env, &script), &|| nft(&env, "delete table inet vzbench\n"));
        println!("nftables, {n} rules: {t:.0} ns (none in these rounds {base:.0}), ratio {ratio:.3}");
    }
    ok(&env, &["stop", "--fast", "101"]);
}
