//! `vzmigrate` between two vzbpf nodes on this machine: each its own VZ root, config, bpffs
//! pins, cgroup parent and network namespace, joined by a bridge in a third namespace (the
//! "LAN", where the client lives); the real OpenSSH: sshd (Debian's, unpacked by setup) in
//! the destination's namespace, key authentication, rsync over it.
use std::process::{Command, Stdio};

use vz_tests::{
    nodes::{in_ns, TwoNodes, VE_IP},
    shm_counter, wait_until, EchoClient, VzEnv,
};

/// One at a time: each makes two nodes and runs criu.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// VE 101 on the source with a counter and a TCP echo server.
fn start_workload(env: &VzEnv) {
    env.ok(&["start", "101"]);
    env.ok(&[
        "exec2",
        "101",
        "setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /dev/shm/count.t; mv /dev/shm/count.t /dev/shm/count; sleep 0.1; done' \
         </dev/null >/dev/null 2>&1 & setsid nc -ll -p 7000 -e cat </dev/null >/dev/null 2>&1 &",
    ]);
    wait_until("the counter", || env.vzctl(&["exec2", "101", "test -s /dev/shm/count"]).code == 0);
}

/// Two nodes, VE 101 (created with `extra`) running the workload on the source.
fn nodes_with_ve(tag: &str, extra: &[&str]) -> TwoNodes {
    let nodes = TwoNodes::new(tag);
    let mut args = vec!["create", "101", "--ipadd", VE_IP];
    args.extend(extra);
    nodes.src.ok(&args);
    start_workload(&nodes.src);
    nodes
}

#[test]
fn online_migration_keeps_processes_and_a_tcp_connection() {
    let _serial = serial();
    let nodes = nodes_with_ve("mig", &["--hostname", "moved.example"]);
    nodes.src.ok(&["exec2", "101", "echo on-disk > /root/file"]);
    let mut client = EchoClient::spawn(in_ns(nodes.lan.0.id(), &["busybox", "nc", VE_IP, "7000"]));
    assert_eq!(client.echo("before"), "before");
    let pids = nodes.src.ok(&["exec2", "101", "pidof nc"]);
    let before = shm_counter(&nodes.src);

    let o = nodes.vzmigrate(&["--online"], None);
    assert_eq!(o.code, 0, "vzmigrate: {}{}\n{}", o.stdout, o.stderr, nodes.dst_logs());
    assert_eq!(nodes.running(), (false, true), "the VE runs on the destination only");
    // Iterative pre-copy where the kernel tracks written pages (the VM lane), else said.
    let out = format!("{}{}", o.stdout, o.stderr);
    let soft_dirty = Command::new("criu").args(["check", "--feature", "mem_dirty_track"]).output();
    if soft_dirty.expect("criu check").status.success() {
        assert!(out.contains("Pre-copy round 1"), "{out}");
    } else {
        assert!(out.contains("Iterative pre-copy is not available") && !out.contains("Pre-copy round"), "{out}");
    }
    // The source's area and config are gone (-r yes); the destination's config is final.
    assert!(nodes.src.ok(&["status", "101"]).contains("deleted"));
    assert!(!nodes.src.private(101).exists(), "source private area left");
    let conf = std::fs::read_to_string(nodes.dst.conf_path(101)).expect("destination config");
    assert!(!conf.contains("MIGRATING"), "{conf}");
    // Same processes, its counter goes on, its files and name came along.
    assert_eq!(nodes.dst.ok(&["exec2", "101", "pidof nc"]), pids);
    let after = shm_counter(&nodes.dst);
    assert!(after >= before, "counter went back: {before} -> {after}");
    wait_until("the counter to go on", || shm_counter(&nodes.dst) > after);
    assert_eq!(nodes.dst.ok(&["exec2", "101", "cat /root/file"]).trim(), "on-disk");
    assert_eq!(nodes.dst.ok(&["exec2", "101", "hostname"]).trim(), "moved.example");
    // The client's connection, made to the source, answers from the destination: the
    // destination answers ARP for the VE's address now, the source no longer does.
    assert_eq!(client.echo("after"), "after");
    let proxies = |env: &VzEnv| {
        String::from_utf8_lossy(&env.in_netns(&["ip", "neigh", "show", "proxy"]).output().expect("ip").stdout)
            .to_string()
    };
    assert!(proxies(&nodes.dst).contains(VE_IP), "destination proxy ARP: {}", proxies(&nodes.dst));
    assert!(!proxies(&nodes.src).contains(VE_IP), "source still answers: {}", proxies(&nodes.src));
    drop(client);
    nodes.dst.ok(&["stop", "101", "--fast"]);
}

#[test]
fn offline_migration_of_a_stopped_and_of_a_running_ve() {
    let _serial = serial();
    let nodes = TwoNodes::new("migoff");
    nodes.src.ok(&["create", "101", "--ipadd", VE_IP]);
    nodes.src.ok(&["start", "101"]);
    nodes.src.ok(&["exec2", "101", "echo one > /root/file"]);
    // Running, without --online: stopped here, copied, started there; -r no keeps it here.
    let o = nodes.vzmigrate(&["-r", "no"], None);
    assert_eq!(o.code, 0, "vzmigrate: {}{}", o.stdout, o.stderr);
    assert_eq!(nodes.running(), (false, true));
    assert!(nodes.src.ok(&["status", "101"]).contains("exist"), "-r no keeps the source");
    assert_eq!(nodes.dst.ok(&["exec2", "101", "cat /root/file"]).trim(), "one");
    nodes.dst.ok(&["stop", "101"]);
    nodes.dst.ok(&["destroy", "101"]);
    // Stopped: only its files and config move.
    let o = nodes.vzmigrate(&[], None);
    assert_eq!(o.code, 0, "vzmigrate: {}{}", o.stdout, o.stderr);
    assert!(nodes.src.ok(&["status", "101"]).contains("deleted"));
    assert_eq!(nodes.dst.ok(&["status", "101"]).trim(), "VEID 101 exist unmounted down");
    nodes.dst.ok(&["start", "101"]);
    assert_eq!(nodes.dst.ok(&["exec2", "101", "cat /root/file"]).trim(), "one");
    nodes.dst.ok(&["stop", "101", "--fast"]);
}

#[test]
fn bad_migrations_say_why_in_one_line_and_change_nothing() {
    let _serial = serial();
    let nodes = TwoNodes::new("migbad");
    nodes.src.ok(&["create", "101", "--ipadd", VE_IP]);
    nodes.src.ok(&["start", "101"]);
    let dst_state = |n: &TwoNodes| {
        let mut l: Vec<String> = std::fs::read_dir(n.dst.dir.join("conf/conf"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        l.sort();
        (l, n.dst.private(101).exists())
    };
    let unchanged = |n: &TwoNodes, before: &(Vec<String>, bool)| {
        assert_eq!(&dst_state(n), before, "the destination changed");
        assert!(n.running().0, "the source VE must run on");
        assert!(!n.src.cg().is_frozen(101), "the source VE must not stay frozen");
    };
    // An unknown VE.
    let o = nodes.src.vzctl(&["status", "101"]);
    assert_eq!(o.code, 0);
    let ssh = format!("--ssh={}", nodes.ssh_opts());
    let unknown = vz_tests::Out::of(
        nodes.src.cmd("vzmigrate", &[&ssh, "root@10.79.0.2", "555"]).stdin(Stdio::null()).output().expect("run"),
    );
    unknown.one_line_error("vzmigrate", 14, "555");
    // The destination cannot be reached (nothing listens on that port).
    let before = dst_state(&nodes);
    let o = vz_tests::Out::of(
        nodes
            .src
            .cmd("vzmigrate", &["--ssh=-p 2299 -o ConnectTimeout=2", "--online", "root@10.79.0.2", "101"])
            .stdin(Stdio::null())
            .output()
            .expect("run"),
    );
    assert_ne!(o.code, 0);
    assert_eq!(o.stderr.trim().lines().count(), 1, "one line: {}", o.stderr);
    assert!(o.stderr.contains("root@10.79.0.2") && o.stderr.contains("ssh"), "{}", o.stderr);
    unchanged(&nodes, &before);
    // The VEID is taken there.
    nodes.dst.ok(&["create", "101"]);
    let before = dst_state(&nodes);
    nodes.vzmigrate(&["--online"], None).one_line_error("vzmigrate", 44, "101");
    unchanged(&nodes, &before);
    nodes.dst.ok(&["destroy", "101"]);
    // Its address is another VE's there.
    nodes.dst.ok(&["create", "102", "--ipadd", VE_IP]);
    let before = dst_state(&nodes);
    nodes.vzmigrate(&["--online"], None).one_line_error("vzmigrate", 78, VE_IP);
    unchanged(&nodes, &before);
    nodes.dst.ok(&["destroy", "102"]);
    // No usable criu there.
    let vzconf = nodes.dst.dir.join("conf/vz.conf");
    let text = std::fs::read_to_string(&vzconf).expect("vz.conf");
    std::fs::write(&vzconf, format!("{text}CRIU=\"/nonexistent/criu\"\n")).expect("vz.conf");
    let before = dst_state(&nodes);
    nodes.vzmigrate(&["--online"], None).one_line_error("vzmigrate", 5, "criu");
    unchanged(&nodes, &before);
    std::fs::write(&vzconf, text).expect("vz.conf");
    nodes.src.ok(&["stop", "101", "--fast"]);
}

/// vzmigrate fails, or is killed, at each step: the next command on the VE settles it,
/// and the VE runs on exactly one node, its counter going on.
#[test]
fn a_migration_failed_or_killed_at_any_step_leaves_the_ve_running_on_one_node() {
    let _serial = serial();
    let nodes = nodes_with_ve("migfail", &[]);
    let steps = [
        "migrate:accepted",
        "migrate:copied",
        "migrate:suspended",
        "migrate:dumped",
        "migrate:sent",
        "migrate:restored",
        "migrate:moved",
    ];
    for how in ["VZ_FAIL_AT", "VZ_KILL_AT"] {
        for step in steps {
            let o = nodes.vzmigrate(&["--online"], Some((how, step)));
            assert_ne!(o.code, 0, "{how}={step} must stop vzmigrate");
            // Any command settles what a killed vzmigrate left (status takes the lock when free).
            let _ = nodes.src.vzctl(&["status", "101"]);
            let (here, there) = nodes.running();
            assert!(here != there, "{how}={step}: running here {here}, there {there}");
            // Once restored there it stays there; before that it is thawed here.
            let moved = matches!(step, "migrate:restored" | "migrate:moved");
            assert_eq!(there, moved, "{how}={step}: on the destination");
            let node = if here { &nodes.src } else { &nodes.dst };
            assert!(!node.cg().is_frozen(101), "{how}={step}: left frozen");
            let c = shm_counter(node);
            wait_until(&format!("{how}={step}: counter"), || shm_counter(node) > c);
            if there {
                // Moved after all: back to the start for the next round.
                nodes.dst.ok(&["stop", "101", "--fast"]);
                nodes.dst.ok(&["destroy", "101"]);
                if nodes.src.vzctl(&["status", "101"]).stdout.contains("deleted") {
                    panic!("{how}={step}: the source config went with the VE stopped there");
                }
                start_workload(&nodes.src);
            } else {
                let destroyed = nodes.dst.conf_path(101).with_extension("conf.destroyed");
                assert!(
                    !nodes.dst.conf_path(101).exists() && !destroyed.exists(),
                    "{how}={step}: the destination kept a copy (or its config) without --keep-dst"
                );
            }
            // No dump, work directory or pre-copy round left on either node (logs may stay).
            for node in [&nodes.src, &nodes.dst] {
                let left: Vec<String> = std::fs::read_dir(node.dir.join("dump"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.ends_with(".log"))
                    .collect();
                assert!(left.is_empty(), "{how}={step}: left in {}: {left:?}", node.dir.display());
            }
        }
    }
    nodes.src.ok(&["stop", "101", "--fast"]);
}

/// `--keep-dst`: a migration that fails keeps what it copied to the destination (the VE
/// runs on here), and the next attempt takes that copy over and finishes.
#[test]
fn keep_dst_keeps_the_copy_and_a_retry_takes_it_over() {
    let _serial = serial();
    let nodes = nodes_with_ve("migkeep", &[]);
    let o = nodes.vzmigrate(&["--online", "--keep-dst"], Some(("VZ_FAIL_AT", "migrate:sent")));
    assert_ne!(o.code, 0, "the injected failure must stop vzmigrate");
    assert_eq!(nodes.running(), (true, false));
    let conf = std::fs::read_to_string(nodes.dst.conf_path(101)).expect("the kept config");
    assert!(conf.contains("MIGRATING=\"yes\""), "{conf}");
    assert!(nodes.dst.private(101).join("bin").exists(), "the kept private area");
    assert_eq!(nodes.dst.ok(&["status", "101"]).trim(), "VEID 101 exist unmounted down");
    let o = nodes.vzmigrate(&["--online"], None);
    assert_eq!(o.code, 0, "retry: {}{}\n{}", o.stdout, o.stderr, nodes.dst_logs());
    assert_eq!(nodes.running(), (false, true));
    let conf = std::fs::read_to_string(nodes.dst.conf_path(101)).expect("config");
    assert!(!conf.contains("MIGRATING"), "{conf}");
    let c = shm_counter(&nodes.dst);
    wait_until("the counter there", || shm_counter(&nodes.dst) > c);
    nodes.dst.ok(&["stop", "101", "--fast"]);
}

/// A ploop-layout VE (an ext4 image on a loop device): its image is copied while it runs
/// and again once frozen and synced; the destination mounts it and restores the VE there.
#[test]
fn online_migration_of_a_ploop_ve() {
    let _serial = serial();
    let nodes = nodes_with_ve("migploop", &["--layout", "ploop", "--diskspace", "200M:220M"]);
    nodes.src.ok(&["exec2", "101", "echo written-while-running > /root/file"]);
    let o = nodes.vzmigrate(&["--online", "--noiter"], None);
    assert_eq!(o.code, 0, "vzmigrate: {}{}\n{}", o.stdout, o.stderr, nodes.dst_logs());
    let out = format!("{}{}", o.stdout, o.stderr);
    assert!(!out.to_lowercase().contains("pre-copy"), "--noiter: no pre-copy and nothing said of it: {out}");
    assert_eq!(nodes.running(), (false, true));
    assert_eq!(nodes.dst.ok(&["exec2", "101", "cat /root/file"]).trim(), "written-while-running");
    let c = shm_counter(&nodes.dst);
    wait_until("the counter there", || shm_counter(&nodes.dst) > c);
    assert!(nodes.dst.ok(&["exec2", "101", "df -k /"]).contains("/"), "df in the VE");
    nodes.dst.ok(&["stop", "101", "--fast"]);
}
