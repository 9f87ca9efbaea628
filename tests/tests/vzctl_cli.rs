//! vzctl as an admin runs it: output, exit codes, and one-line errors that change nothing.
use std::{os::unix::process::CommandExt as _, process::Command};

use vz_common::res::NUMTCPSOCK;
use vz_tests::{bin, Env, Helper};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn vzctl(env: &Env, args: &[&str]) -> Command {
    let mut c = Command::new(bin("vzctl"));
    c.args(args).env("VZ_BPF_ROOT", &env.cfg.pin_root).env("VZ_CGROUP_PARENT", &env.name).env_remove("VZ_LOG");
    c
}

fn run(mut c: Command) -> Out {
    let o = c.output().expect("run vzctl");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

fn one_line_error(o: &Out, code: i32, needle: &str) {
    assert_eq!(o.code, code, "stdout: {} stderr: {}", o.stdout, o.stderr);
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "error must be one line: {:?}", o.stderr);
    assert!(lines[0].starts_with("vzctl: ") && lines[0].contains(needle), "{:?}", lines[0]);
}

#[test]
fn set_and_ubc_report() {
    let mut env = Env::bare("cli");
    env.cg.create_ve(101).unwrap();
    let o = run(vzctl(&env, &["set", "101", "--numtcpsock", "2", "--numothersock", "3:5"]));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "UB limits were set successfully\n");
    let mut h = Helper::spawn(Some(&env.ve_dir(101)));
    h.open("tcp").unwrap();
    h.open("tcp").unwrap();
    assert!(h.open("tcp").is_err());
    let o = run(vzctl(&env, &["ubc", "101"]));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "Version: 2.5");
    assert!(lines[1].starts_with("       uid  resource"));
    let tcp: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(tcp, ["101:", "numtcpsock", "2", "2", "2", "2", "1"]);
    let other: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(other, ["numothersock", "0", "0", "3", "5", "0"]);
    drop(h);
    env.remove_ve(101);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let mut env = Env::bare("badin");
    env.cg.create_ve(101).unwrap();
    assert_eq!(run(vzctl(&env, &["set", "101", "--numtcpsock", "3"])).code, 0);

    one_line_error(&run(vzctl(&env, &["set", "50", "--numtcpsock", "3"])), 21, "invalid VEID '50'");
    one_line_error(&run(vzctl(&env, &["set", "abc", "--numtcpsock", "3"])), 21, "invalid VEID 'abc'");
    one_line_error(
        &run(vzctl(&env, &["set", "101", "--numtcpsock", "10:5"])),
        21,
        "'10:5'",
    );
    one_line_error(&run(vzctl(&env, &["set", "101", "--numothersock", "lots"])), 21, "'lots'");
    one_line_error(&run(vzctl(&env, &["set", "555", "--numtcpsock", "3"])), 31, "VE 555 is not running");

    // The earlier value is still in force.
    let o = run(vzctl(&env, &["ubc", "101"]));
    let tcp: Vec<&str> = o.stdout.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(&tcp[4..6], ["3", "3"], "{}", o.stdout);
    env.remove_ve(101);
}

#[test]
fn unprivileged_caller_gets_a_clear_error() {
    let env = Env::bare("noroot");
    let mut c = vzctl(&env, &["set", "101", "--numtcpsock", "3"]);
    c.uid(65534).gid(65534);
    let o = run(c);
    one_line_error(&o, 5, "needs root");
    assert!(!env.cfg.pin_root.exists(), "an unprivileged run created pins");
}

#[test]
fn kernel_without_bpf_gets_a_clear_error() {
    let mut env = Env::bare("nobpf");
    env.cg.create_ve(101).unwrap();
    let mut c = Command::new(bin("vzt-helper"));
    c.arg("nobpf").arg(bin("vzctl")).args(["set", "101", "--numtcpsock", "3"]);
    c.env("VZ_BPF_ROOT", &env.cfg.pin_root).env("VZ_CGROUP_PARENT", &env.name);
    let o = run(c);
    one_line_error(&o, 5, "no bpf() system call");
    assert!(!env.cfg.pin_root.exists(), "a failed run created pins");
    env.remove_ve(101);
}

#[test]
fn limits_outlive_the_cli() {
    // After vzctl exits, the pinned programs keep enforcing.
    let mut env = Env::bare("outlive");
    env.cg.create_ve(101).unwrap();
    assert_eq!(run(vzctl(&env, &["set", "101", "--numtcpsock", "1"])).code, 0);
    let mut h = Helper::spawn(Some(&env.ve_dir(101)));
    assert!(h.open("tcp").is_ok());
    assert_eq!(h.open("tcp"), Err(libc::ENOBUFS));
    let _ = NUMTCPSOCK;
    drop(h);
    env.remove_ve(101);
}
