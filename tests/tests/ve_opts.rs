//! The smaller per-VE settings of vzctl set and commands, against real VEs: `--disabled`
//! (start refused with OpenVZ's exit 105 unless `--force`), `--stop-timeout` (the VE's own
//! wait for its halt), `exec3` (the program and its arguments, no shell between),
//! `--userpasswd`, `--applyconfig`/`--reset_ub`/`--setmode`, and the admin's action scripts.
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

/// The crypt(3) hash of `password` with the salt and method of `hash` (openssl's passwd).
fn crypt_like(hash: &str, password: &str) -> String {
    let parts: Vec<&str> = hash.split('$').collect();
    let (method, salt) = (parts[1], parts[2]);
    let flag = match method {
        "1" => "-1",
        "5" => "-5",
        "6" => "-6",
        m => panic!("hash method {m}: {hash}"),
    };
    let o = std::process::Command::new("openssl").args(["passwd", flag, "-salt", salt, password]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn shadow_hash(env: &VzEnv, user: &str) -> String {
    let shadow = std::fs::read_to_string(env.private(101).join("etc/shadow")).unwrap();
    let line = shadow.lines().find(|l| l.starts_with(&format!("{user}:"))).unwrap_or_else(|| panic!("{shadow}"));
    line.split(':').nth(1).unwrap().to_string()
}

#[test]
fn userpasswd_sets_passwords_inside_running_and_stopped_ves() {
    let env = VzEnv::new("userpw");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    env.ok(&["set", "101", "--userpasswd", "root:s3cret:with-colon"]);
    let h = shadow_hash(&env, "root");
    assert!(h.starts_with('$'), "{h}");
    assert_eq!(crypt_like(&h, "s3cret:with-colon"), h, "the password set is not the one given");
    // Stopped: a new user is made, the VE stays stopped and unmounted.
    env.ok(&["stop", "101"]);
    env.ok(&["set", "101", "--userpasswd", "alice:wonder land"]);
    let h = shadow_hash(&env, "alice");
    assert_eq!(crypt_like(&h, "wonder land"), h);
    assert!(env.vzctl(&["status", "101"]).stdout.contains("unmounted down"));
    // Never kept on the host: not in the config, the log or the events.
    for f in [env.conf_path(101), env.dir.join("vzctl.log"), env.dir.join("events.log")] {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        assert!(!text.contains("wonder land") && !text.contains("s3cret"), "{} holds a password", f.display());
    }
    // Bad values name the user, never the password.
    for (bad, name) in [("nopassword", "nopassword"), ("Bad User:pw-leak-1", "Bad User"), ("bob:", "bob")] {
        let o = env.vzctl(&["set", "101", "--userpasswd", bad]);
        o.one_line_error("vzctl", 21, name);
        assert!(!o.stderr.contains("pw-leak"), "{}", o.stderr);
    }
}

#[test]
fn applyconfig_takes_a_samples_settings_live_and_reset_ub_restores_the_saved_ones() {
    let env = VzEnv::new("applycfg");
    env.ok(&["create", "101", "--hostname", "own.example"]);
    env.ok(&["start", "101"]);
    let dir = env.conf_path(101).parent().unwrap().to_path_buf();
    std::fs::write(
        dir.join("ve-big.conf-sample"),
        "NUMPROC=\"300:300\"\nCPUUNITS=\"2000\"\nCAPABILITY=\"SYS_TIME:off\"\nHOSTNAME=\"from-sample\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("ve-broken.conf-sample"), "NUMPROC=\"lots\"\n").unwrap();
    let nums = |f: &str| env.vzlist(&["-H", "-o", f, "101"]).stdout.trim().to_string();
    env.ok(&["set", "101", "--applyconfig", "big", "--save"]);
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    assert!(conf.contains("NUMPROC=\"300:300\"") && conf.contains("CPUUNITS=\"2000\""), "{conf}");
    assert!(conf.contains("CAPABILITY=\"SYS_TIME:off\"") && conf.contains("own.example"), "{conf}");
    assert!(!conf.contains("from-sample"), "the sample's hostname was taken");
    assert_eq!(nums("numproc.l"), "300", "not in force live");
    // A capability change with --setmode restart: the VE is restarted and has it.
    let init = env.init_pid(101);
    env.ok(&["set", "101", "--capability", "sys_time:on", "--setmode", "restart", "--save"]);
    assert_ne!(env.init_pid(101), init, "not restarted");
    let bnd = env.ok(&["exec2", "101", "grep CapBnd /proc/1/status"]);
    let bnd = u64::from_str_radix(bnd.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_ne!(bnd & (1 << 25), 0, "sys_time still off after the restart");
    // --reset_ub: the saved beancounters back in force.
    env.ok(&["set", "101", "--numproc", "50:50"]);
    assert_eq!(nums("numproc.l"), "50");
    env.ok(&["set", "101", "--reset_ub"]);
    assert_eq!(nums("numproc.l"), "300");
    // A missing sample, a sample with a bad value: one line, exit 21, nothing changed.
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    env.vzctl(&["set", "101", "--applyconfig", "nosuch", "--save"]).one_line_error("vzctl", 21, "nosuch");
    env.vzctl(&["set", "101", "--applyconfig", "broken", "--save"]).one_line_error("vzctl", 21, "broken");
    assert_eq!(std::fs::read_to_string(env.conf_path(101)).unwrap(), conf);
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn action_scripts_run_on_the_host_and_inside_as_openvz_runs_them() {
    let env = VzEnv::new("actions");
    env.ok(&["create", "101"]);
    let dir = env.conf_path(101).parent().unwrap().to_path_buf();
    let log = env.dir.join("actions.log");
    let host = |what: &str| format!("echo \"{what} $VEID $VE_ROOT\" >> {}\n", log.display());
    std::fs::write(dir.join("vps.mount"), host("vps.mount")).unwrap();
    std::fs::write(dir.join("101.mount"), host("101.mount")).unwrap();
    std::fs::write(dir.join("101.umount"), host("101.umount")).unwrap();
    // Inside: the VE's own files, as its root.
    std::fs::write(dir.join("101.start"), "echo started > /start-script-ran; id -u >> /start-script-ran\n").unwrap();
    std::fs::write(dir.join("101.stop"), "echo stopping > /stop-script-ran\n").unwrap();
    env.ok(&["start", "101"]);
    let root = env.dir.join("root/101");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [format!("vps.mount 101 {}", root.display()), format!("101.mount 101 {}", root.display())],
        "{text}"
    );
    assert_eq!(env.ok(&["exec2", "101", "cat /start-script-ran"]), "started\n0\n");
    env.ok(&["stop", "101"]);
    assert!(std::fs::read_to_string(&log).unwrap().ends_with(&format!("101.umount 101 {}\n", root.display())));
    let private = env.private(101);
    assert_eq!(std::fs::read_to_string(private.join("stop-script-ran")).unwrap(), "stopping\n");
    // A failing mount script fails the start (OpenVZ's 79) and leaves nothing mounted.
    std::fs::write(dir.join("101.mount"), "echo no way >&2; exit 3\n").unwrap();
    let o = env.vzctl(&["start", "101"]);
    o.one_line_error("vzctl", 79, "101.mount");
    assert!(env.vzctl(&["status", "101"]).stdout.contains("unmounted down"), "left mounted or running");
}

#[test]
fn an_iptables_module_list_is_refused_plainly() {
    let env = VzEnv::new("iptables");
    env.ok(&["create", "101"]);
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    let o = env.vzctl(&["set", "101", "--iptables", "iptable_filter ipt_REJECT", "--save"]);
    o.one_line_error("vzctl", 21, "cannot be honoured");
    assert_eq!(std::fs::read_to_string(env.conf_path(101)).unwrap(), conf);
    // An OpenVZ config that has one: the VE starts, and vzctl says the list is not used.
    std::fs::write(env.conf_path(101), format!("{conf}IPTABLES=\"iptable_filter\"\n")).unwrap();
    let o = env.vzctl(&["start", "101"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.lines().any(|l| l.starts_with("Warning: IPTABLES is not used")), "{}", o.stderr);
    env.ok(&["stop", "--fast", "101"]);
}
