//! The node service (`dist/systemd/vz.service`, OpenVZ's `vz`): no systemd is PID 1 on this
//! machine, so its ExecStart and ExecStop run in order as systemd would run them, with the
//! test's own VZ paths: programs pinned, ONBOOT VEs started in BOOTORDER (one that cannot
//! start said, the others still started), then every running VE stopped in reverse.
use vz_tests::{Out, VzEnv};

/// ExecStart= and ExecStop= of the shipped unit, as argv.
fn unit_commands() -> (Vec<String>, Vec<String>) {
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/systemd/vz.service");
    let text = std::fs::read_to_string(unit).expect("the unit file");
    let argv = |key: &str| -> Vec<String> {
        let line = text.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("no {key}"));
        line.split_whitespace().map(String::from).collect()
    };
    (argv("ExecStart="), argv("ExecStop="))
}

fn run(env: &VzEnv, argv: &[String]) -> Out {
    // The unit names the installed vzctl; the test runs the one just built.
    assert_eq!(argv[0], "/usr/local/sbin/vzctl", "the unit runs what cargo xtask run installs");
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    Out::of(env.cmd("vzctl", &args).output().expect("vzctl"))
}

fn said(out: &Out, verb: &str) -> Vec<String> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{verb} container ")))
        .map(|r| r.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn boot_starts_onboot_ves_in_bootorder_and_shutdown_stops_every_ve_in_reverse() {
    let env = VzEnv::new("node");
    let (start, stop) = unit_commands();
    for (veid, onboot, order) in [
        ("101", "yes", Some("1")),
        ("102", "yes", Some("5")),
        ("103", "no", None),
        ("104", "yes", None),
        ("105", "yes", Some("3")),
    ] {
        env.ok(&["create", veid]);
        let mut args = vec!["set", veid, "--onboot", onboot, "--save"];
        if let Some(o) = order {
            args.extend(["--bootorder", o]);
        }
        env.ok(&args);
    }
    assert_eq!(
        env.vzlist(&["-a", "-H", "-o", "ctid,onboot,bootorder", "102"]).stdout.split_whitespace().collect::<Vec<_>>(),
        ["102", "yes", "5"]
    );
    // 105 cannot start: its private area is gone.
    std::fs::remove_dir_all(env.private(105)).unwrap();
    assert!(!env.bpf_root.join("progs").exists(), "pinned before boot");

    let o = run(&env, &start);
    assert_ne!(o.code, 0, "a VE that did not start fails the unit: {o:?}");
    assert!(o.stderr.contains("105"), "names the VE that did not start: {o:?}");
    assert_eq!(said(&o, "Starting"), ["102", "105", "101", "104"], "{}", o.stdout);
    assert!(std::fs::read_dir(env.bpf_root.join("progs")).unwrap().next().is_some(), "programs pinned");
    let running = |v: &str| env.ok(&["status", v]).contains("running");
    assert!(running("101") && running("102") && running("104"));
    assert!(!running("103") && !running("105"));
    // Run again (systemd restarted it): the running ones are left alone.
    let again = run(&env, &start);
    assert_eq!(said(&again, "Starting"), ["105"], "{}", again.stdout);

    let o = run(&env, &stop);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(said(&o, "Shutting down"), ["104", "101", "102"], "{}", o.stdout);
    assert!(["101", "102", "103", "104"].iter().all(|v| !running(v)));
}
