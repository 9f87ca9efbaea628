//! The smaller per-VE settings of vzctl set and commands, against real VEs: `--disabled`
//! (start refused with OpenVZ's exit 105 unless `--force`), `--stop-timeout` (the VE's own
//! wait for its halt), `exec3` (the program and its arguments, no shell between).
use std::time::{Duration, Instant};

use vz_tests::VzEnv;

#[test]
fn disabled_ves_start_only_when_forced() {
    let env = VzEnv::new("disabled");
    env.ok(&["create", "101"]);
    env.ok(&["set", "101", "--disabled", "yes", "--save"]);
    env.vzctl(&["start", "101"]).one_line_error("vzctl", 105, "Container start disabled");
    assert!(env.vzctl(&["status", "101"]).stdout.contains("down"));
    env.ok(&["start", "101", "--force"]);
    assert!(env.vzctl(&["status", "101"]).stdout.contains("running"));
    env.ok(&["stop", "101"]);
    env.ok(&["set", "101", "--disabled", "no", "--save"]);
    env.ok(&["start", "101"]);
    env.vzctl(&["set", "101", "--disabled", "maybe", "--save"]).one_line_error("vzctl", 21, "maybe");
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn the_ves_own_stop_timeout_bounds_its_halt() {
    let env = VzEnv::new("stoptmo");
    env.ok(&["create", "101"]);
    env.ok(&["set", "101", "--stop-timeout", "1", "--save"]);
    assert!(std::fs::read_to_string(env.conf_path(101)).unwrap().contains("STOP_TIMEOUT=\"1\""));
    env.ok(&["start", "101"]);
    // A VE whose halt never returns and whose init ignores the signals of a halt.
    env.ok(&[
        "exec2",
        "101",
        "rm -f /sbin/halt && printf '#!/bin/sh\\nexec sleep 100\\n' > /sbin/halt && chmod 755 /sbin/halt",
    ]);
    let t = Instant::now();
    env.ok(&["stop", "101"]);
    let took = t.elapsed();
    // vz.conf of the test env says 10 s; the VE's own 1 s wins (halt, then the kill).
    assert!(took < Duration::from_secs(7), "stop took {took:?} with STOP_TIMEOUT 1");
    assert!(env.vzctl(&["status", "101"]).stdout.contains("down"));
    for bad in ["abc", "100000"] {
        env.vzctl(&["set", "101", "--stop-timeout", bad, "--save"]).one_line_error("vzctl", 21, bad);
    }
}

#[test]
fn exec3_runs_the_program_with_its_arguments_as_given() {
    let env = VzEnv::new("exec3");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    let o = env.vzctl(&["exec3", "101", "printf", "%s|", "a", "b c", "$HOME;"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "a|b c|$HOME;|"), "{}", o.stderr);
    assert_eq!(env.vzctl(&["exec3", "101", "false"]).code, 1);
    assert_ne!(env.vzctl(&["exec3", "101", "/no/such/program"]).code, 0);
    env.ok(&["stop", "--fast", "101"]);
}
