//! Fair CPU against the real kernel: busy VEs share a CPU by their cpuunits, and cpulimit
//! and cpus cap what one VE gets. One test, so no other busy VE of this binary competes.
use vz_tests::VzEnv;

#[test]
fn cpuunits_share_a_cpu_and_cpulimit_and_cpus_cap_it() {
    let env = VzEnv::new("cpu");
    for v in ["101", "102", "103"] {
        env.ok(&["create", v]);
    }
    // Two VEs on CPU 0 only, weighted 1000 : 2000.
    env.ok(&["set", "101", "--cpuunits", "1000", "--cpumask", "0", "--save"]);
    let out = env.ok(&["set", "102", "--cpuunits", "2000", "--cpumask", "0", "--save"]);
    assert!(out.contains("Setting CPU units: 2000") && out.contains("Setting CPU mask: 0"), "{out}");
    for v in ["101", "102"] {
        env.ok(&["start", v]);
        env.spin(v.parse().unwrap(), 1);
    }
    let used = env.cpu_used(&[101, 102]);
    let ratio = used[1] / used[0];
    eprintln!("cpuunits 1000 vs 2000 on one CPU: {:.3} vs {:.3} CPUs, ratio {ratio:.3}", used[0], used[1]);
    assert!((1.8..=2.2).contains(&ratio), "ratio {ratio:.3}, want 2.0 within 10 %");
    assert!(used[0] + used[1] > 0.8, "the CPU was not busy: {used:?}");
    // Equal units, changed live: equal shares.
    env.ok(&["set", "102", "--cpuunits", "1000"]);
    let used = env.cpu_used(&[101, 102]);
    let ratio = used[1] / used[0];
    assert!((0.9..=1.1).contains(&ratio), "equal units: ratio {ratio:.3}");
    env.ok(&["stop", "--fast", "101"]);
    env.ok(&["stop", "--fast", "102"]);

    // cpulimit 25: a quarter of one CPU for a VE that would take a whole one.
    let out = env.ok(&["set", "103", "--cpulimit", "25", "--save"]);
    assert!(out.contains("Effective CPU limit: 25%"), "{out}");
    env.ok(&["start", "103"]);
    env.spin(103, 1);
    let used = env.cpu_used(&[103])[0];
    eprintln!("cpulimit 25: {used:.3} CPUs");
    assert!((0.225..=0.275).contains(&used), "cpulimit 25: {used:.3} CPUs, want 0.25 within 10 %");
    // --cpus 1 with the limit lifted: two busy loops get one CPU's worth, not two.
    let out = env.ok(&["set", "103", "--cpulimit", "0", "--cpus", "1"]);
    assert!(out.contains("Effective CPU limit: 100%"), "{out}");
    env.spin(103, 1);
    let used = env.cpu_used(&[103])[0];
    eprintln!("cpus 1, two loops: {used:.3} CPUs");
    assert!((0.9..=1.1).contains(&used), "cpus 1: {used:.3} CPUs");
    // vzlist shows the saved values.
    let l = env.vzlist(&["-H", "-o", "ctid,cpuunits,cpulimit", "101", "102", "103"]).stdout;
    let rows: Vec<Vec<String>> = l.lines().map(|r| r.split_whitespace().map(String::from).collect()).collect();
    assert_eq!(rows, [["101", "1000", "0"], ["102", "2000", "0"], ["103", "1000", "25"]]);

    // Bad values: one line naming the value, exit 21, nothing changed.
    let conf = std::fs::read_to_string(env.conf_path(103)).unwrap();
    for (flag, bad) in [("--cpuunits", "5"), ("--cpulimit", "1000"), ("--cpumask", "0-64"), ("--cpus", "x")] {
        env.vzctl(&["set", "103", flag, bad, "--save"]).one_line_error("vzctl", 21, &format!("'{bad}'"));
    }
    assert_eq!(std::fs::read_to_string(env.conf_path(103)).unwrap(), conf);
    env.ok(&["stop", "--fast", "103"]);
}
