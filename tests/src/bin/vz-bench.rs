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
    v[v.len() / 2]
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let want = |s: &str| args.is_empty() || args.iter().any(|a| a == s);
    if want("sockets") {
        sockets();
    }
    if want("ve") {
        ve_times();
    }
    if want("net") {
        net_cost();
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
    for v in &ids {
        ok(&env, &["start", v]);
    }
    let start_all = t.elapsed();
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
    for kind in ["tcp", "udp", "fork", "open"] {
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

/// Median ns per UDP round trip, test namespace (the "host") to VE 101's echo server.
fn round_trip(env: &VzEnv) -> f64 {
    let helper = bin("vzt-helper");
    let runs: Vec<f64> = (0..7)
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

    let with_bpf = round_trip(&env);
    let detach = {
        let ifname = ifname.clone();
        move || std::process::Command::new("tc").args(["qdisc", "del", "dev", &ifname, "clsact"]).status().map(drop)
    };
    let attach = |env: &VzEnv| {
        let (root, ifname) = (env.bpf_root.clone(), ifname.clone());
        in_env_net(env, move || {
            let mut bpf = Bpf::open_existing(&root).map_err(std::io::Error::other)?;
            let idx = vz::net::host_ifindex(cgid).map_err(std::io::Error::other)?;
            bpf.attach_venet(&ifname, cgid, idx).map_err(std::io::Error::other)
        })
    };
    in_env_net(&env, detach.clone());
    let none = round_trip(&env);
    println!("no programs: {none:.0} ns per round trip");
    println!("vzbpf, 1 VE configured: {with_bpf:.0} ns, ratio {:.3} (target <= 1.02)", with_bpf / none);

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
    attach(&env);
    for n in [100u32, 1000] {
        fake(n - 1);
        let t = round_trip(&env);
        println!("vzbpf, {n} VEs configured: {t:.0} ns, ratio {:.3}", t / none);
    }
    in_env_net(&env, detach);

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
        nft(&env, &script);
        let t = round_trip(&env);
        println!("nftables, {n} rules: {t:.0} ns, ratio {:.3}", t / none);
        nft(&env, "delete table inet vzbench\n");
    }
    ok(&env, &["stop", "--fast", "101"]);
}
