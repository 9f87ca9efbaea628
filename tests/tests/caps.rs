//! `--capability NAME:on|off` against the real kernel: a capability turned off is gone
//! from the bounding set of the VE's init and of what `vzctl exec` starts, and what needs
//! it fails inside; turned on again, it works after the next start; bad names change
//! nothing.
use vz_tests::VzEnv;

/// CapBnd of a process in the VE (`self` or `1`).
fn bounding(env: &VzEnv, pid: &str) -> u64 {
    let out = env.ok(&["exec2", "101", &format!("grep CapBnd /proc/{pid}/status")]);
    u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn capabilities_turned_off_are_gone_for_init_and_exec() {
    let env = VzEnv::new("caps");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    let full = bounding(&env, "1");
    assert_ne!(full & (1 << 12), 0, "net_admin is on by default");
    let o = env.vzctl(&["set", "101", "--capability", "net_admin:off", "--capability", "CHOWN:off", "--save"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("next start"), "{}", o.stderr);
    assert!(std::fs::read_to_string(env.conf_path(101)).unwrap().contains("CAPABILITY=\"NET_ADMIN:off CHOWN:off\""));
    env.ok(&["restart", "101"]);
    for pid in ["1", "self"] {
        let b = bounding(&env, pid);
        assert_eq!(b & (1 << 12 | 1), 0, "pid {pid}: CapBnd {b:x}");
        assert_eq!(b | (1 << 12 | 1), full, "pid {pid}: only those two went ({b:x})");
    }
    let (code, out) = {
        let o = env.vzctl(&["exec2", "101", "ip link add vzc0 type veth peer name vzc1 2>&1"]);
        (o.code, o.stdout + &o.stderr)
    };
    assert_ne!(code, 0, "made a link without net_admin: {out}");
    assert!(out.contains("not permitted"), "{out}");
    let o = env.vzctl(&["exec2", "101", "touch /tmp/f && chown 1 /tmp/f"]);
    assert_ne!(o.code, 0, "chown without CAP_CHOWN");
    assert!(o.stderr.contains("not permitted"), "{}", o.stderr);
    // On again: works after the next start.
    env.ok(&["set", "101", "--capability", "net_admin:on", "--save"]);
    env.ok(&["restart", "101"]);
    env.ok(&["exec2", "101", "ip link add vzc0 type veth peer name vzc1 && ip link del vzc0"]);
    let o = env.vzctl(&["exec2", "101", "touch /tmp/g && chown 1 /tmp/g"]);
    assert!(o.code != 0 && o.stderr.contains("not permitted"), "chown is still off: {}", o.stderr);

    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    for bad in ["foo:on", "net_admin:maybe", "net_admin"] {
        env.vzctl(&["set", "101", "--capability", bad, "--save"]).one_line_error("vzctl", 21, &format!("'{bad}'"));
    }
    assert_eq!(std::fs::read_to_string(env.conf_path(101)).unwrap(), conf);
    env.ok(&["stop", "--fast", "101"]);
}
