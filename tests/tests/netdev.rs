//! Host interfaces given to a VE (`--netdev_add`, `--netdev_del`, NETDEV), against the
//! real kernel, in the test's own network namespace: a veth end moves into the VE
//! keeping its name, back at `--netdev_del`, at stop (under its own name even if the VE
//! renamed it), and when the VE's init dies on its
//! own (its namespace pinned meanwhile, so the interface is never destroyed with it);
//! saved, it moves in again at start; bad values change nothing.
use vz_tests::VzEnv;

fn host_has(env: &VzEnv, name: &str) -> bool {
    env.in_netns(&["ip", "link", "show", name]).output().expect("ip").status.success()
}

fn ve_has(env: &VzEnv, name: &str) -> bool {
    env.vzctl(&["exec2", "101", &format!("ip link show {name}")]).code == 0
}

#[test]
fn a_host_interface_moves_in_and_always_comes_back() {
    let env = VzEnv::new("netdev");
    for n in ["vzdm0", "vzdm1"] {
        // A veth end (this kernel has no dummy driver): one a namespace's end destroys.
        let peer = format!("{n}p");
        let ok = env.in_netns(&["ip", "link", "add", n, "type", "veth", "peer", "name", &peer]).status().expect("ip");
        assert!(ok.success(), "veth {n}");
    }
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    env.ok(&["set", "101", "--netdev_add", "vzdm0"]);
    assert!(ve_has(&env, "vzdm0") && !host_has(&env, "vzdm0"), "vzdm0 not moved in");
    // The VE may use it as its own.
    env.ok(&["exec2", "101", "ip link set vzdm0 up && ip addr add 10.77.0.1/24 dev vzdm0"]);
    env.ok(&["set", "101", "--netdev_del", "vzdm0"]);
    assert!(host_has(&env, "vzdm0") && !ve_has(&env, "vzdm0"), "vzdm0 not back");

    // Saved: back at stop, in again at start.
    env.ok(&["set", "101", "--netdev_add", "vzdm0", "--netdev_add", "vzdm1", "--save"]);
    assert!(std::fs::read_to_string(env.conf_path(101)).unwrap().contains("NETDEV=\"vzdm0 vzdm1\""));
    env.ok(&["stop", "101"]);
    assert!(host_has(&env, "vzdm0") && host_has(&env, "vzdm1"), "not back after stop");
    env.ok(&["start", "101"]);
    assert!(ve_has(&env, "vzdm0") && ve_has(&env, "vzdm1"), "not moved in at start");

    // Renamed inside (its right while it has it): found by its index and back under its name.
    env.ok(&["exec2", "101", "ip link set vzdm1 name evil0"]);
    env.ok(&["stop", "101"]);
    assert!(host_has(&env, "vzdm1") && !host_has(&env, "evil0"), "a renamed interface did not come back as itself");
    env.ok(&["start", "101"]);
    // Its init killed from the host: the namespace is pinned, the interfaces survive it,
    // and the cleanup brings them back.
    let init = env.init_pid(101);
    // SAFETY: kill(2) of the VE's init, a process this test started, by pid.
    assert_eq!(unsafe { libc::kill(init, libc::SIGKILL) }, 0);
    vz_tests::wait_until("init gone", || env.try_init_pid(101).is_none());
    assert!(!host_has(&env, "vzdm0"), "came back with no vzctl");
    // As vzeventd runs it for a VE whose init died: cleans up, says it was not running.
    assert_eq!(env.vzctl(&["stop", "101"]).code, 31);
    assert!(host_has(&env, "vzdm0") && host_has(&env, "vzdm1"), "lost with the VE's init");
    let pins: Vec<_> = std::fs::read_dir(env.dir.join("lock"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".netns"))
        .collect();
    assert!(pins.is_empty(), "the namespace pin stayed");

    // Bad values: one line naming the value, exit 21, nothing changed.
    env.ok(&["start", "101"]);
    env.ok(&["create", "102"]);
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    for (args, bad) in [
        (&["set", "101", "--netdev_add", "nosuchif", "--save"][..], "nosuchif"),
        (&["set", "101", "--netdev_add", "lo", "--save"], "'lo'"),
        (&["set", "101", "--netdev_del", "vzdm9", "--save"], "vzdm9"),
        (&["set", "101", "--netdev_add", "bad name", "--save"], "bad name"),
        (&["set", "102", "--netdev_add", "vzdm0", "--save"], "vzdm0"),
    ] {
        env.vzctl(args).one_line_error("vzctl", 21, bad);
    }
    assert_eq!(std::fs::read_to_string(env.conf_path(101)).unwrap(), conf);
    assert!(ve_has(&env, "vzdm0"), "a failed set moved the interface");
    // criu cannot carry a host interface: chkpnt says so and changes nothing.
    env.vzctl(&["chkpnt", "101"]).one_line_error("vzctl", 21, "--netdev_del");
    assert!(ve_has(&env, "vzdm0") && env.vzctl(&["status", "101"]).stdout.contains("running"));
    env.ok(&["stop", "--fast", "101"]);
    assert!(host_has(&env, "vzdm0"));
    for n in ["vzdm0", "vzdm1"] {
        let _ = env.in_netns(&["ip", "link", "del", n]).status();
    }
}
