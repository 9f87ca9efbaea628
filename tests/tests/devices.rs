//! Devices granted to a VE, against the real kernel: `--devnodes` puts a host device node
//! in the VE's /dev and the global `vz_device` program decides every open by the VE's
//! grants (read granted: reads work, writes EPERM; revoked live: refused at once); a char
//! device under a subdirectory survives a restart and a checkpoint when saved; a symlink the VE planted in
//! /dev is never followed; bad values change nothing.
use std::process::Command;

use vz_tests::VzEnv;

/// A loop device on a file of the test's, detached when dropped.
struct Loop(String);

impl Loop {
    fn attach(file: &std::path::Path) -> Self {
        let o = Command::new("losetup").args(["-f", "--show"]).arg(file).output().expect("losetup");
        assert!(o.status.success(), "losetup: {}", String::from_utf8_lossy(&o.stderr));
        Loop(String::from_utf8_lossy(&o.stdout).trim().trim_start_matches("/dev/").to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &format!("/dev/{}", self.0)]).status();
    }
}

/// Runs a shell line in the VE: (exit code, stdout + stderr).
fn sh(env: &VzEnv, line: &str) -> (i32, String) {
    let o = env.vzctl(&["exec2", "101", line]);
    (o.code, format!("{}{}", o.stdout, o.stderr))
}

#[test]
fn granted_devices_work_as_granted_and_revoking_refuses_at_once() {
    let env = VzEnv::new("devices");
    let img = env.dir.join("dev.img");
    let mut data = b"VZDEVTEST".to_vec();
    data.resize(1 << 20, 0);
    std::fs::write(&img, &data).unwrap();
    let lo = Loop::attach(&img);
    let node = format!("/dev/{}", lo.0);
    let minor = std::fs::read_to_string(format!("/sys/block/{}/dev", lo.0)).unwrap();
    let minor = minor.trim().split(':').nth(1).unwrap().to_string();
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    assert_ne!(sh(&env, &format!("test -e {node}")).0, 0, "the VE has the node before any grant");

    // Read only: the node appears, reads work, writes are refused by the kernel.
    env.ok(&["set", "101", "--devnodes", &format!("{}:r", lo.0)]);
    let (code, out) = sh(&env, &format!("test -b {node} && head -c 9 {node}"));
    assert_eq!((code, out.as_str()), (0, "VZDEVTEST"), "read through the granted node");
    let (code, out) = sh(&env, &format!("echo x | dd of={node} conv=fsync 2>&1"));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    // Its root cannot make nodes of its own, granted or not.
    assert_ne!(sh(&env, &format!("mknod /dev/mine b 7 {minor}")).0, 0);

    // rw: the write reaches the host's file.
    env.ok(&["set", "101", "--devnodes", &format!("{}:rw", lo.0)]);
    let (code, out) = sh(&env, &format!("printf WRITTEN | dd of={node} conv=fsync 2>&1"));
    assert_eq!(code, 0, "{out}");
    let _ = Command::new("blockdev").args(["--flushbufs", &node]).status();
    assert_eq!(&std::fs::read(&img).unwrap()[..7], b"WRITTEN");

    // Revoked by number while the node stays: refused at once.
    env.ok(&["set", "101", "--devices", &format!("b:7:{minor}:none")]);
    let (code, out) = sh(&env, &format!("head -c 1 {node}"));
    assert_ne!(code, 0, "read after revoking: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    // Taken away: the node goes too.
    env.ok(&["set", "101", "--devnodes", &format!("{}:none", lo.0)]);
    assert_ne!(sh(&env, &format!("test -e {node}")).0, 0, "the node stayed");
    // The VE's own /dev still works; the host is not concerned by any of it.
    assert_eq!(sh(&env, "head -c 1 /dev/zero | od -An -tx1").1.trim(), "00");
    assert_eq!(&std::fs::read(&node).unwrap()[..7], b"WRITTEN");
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn a_saved_char_device_comes_back_at_start_and_a_planted_symlink_is_not_followed() {
    let env = VzEnv::new("devtun");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    // The VE puts a symlink where the node's directory would go.
    env.ok(&["exec2", "101", "mkdir -p /tmp/trap && ln -s /tmp/trap /dev/net"]);
    let o = env.vzctl(&["set", "101", "--devnodes", "net/tun:rw", "--save"]);
    assert_ne!(o.code, 0, "made a node through the VE's symlink");
    assert_eq!(o.stderr.lines().filter(|l| !l.contains(" WARN ")).count(), 1, "{}", o.stderr);
    assert_eq!(sh(&env, "ls /tmp/trap | wc -l").1.trim(), "0", "something was made in the symlink's target");
    assert!(!std::fs::read_to_string(env.conf_path(101)).unwrap().contains("DEVNODES"), "a failed set saved");

    env.ok(&["exec2", "101", "rm /dev/net"]);
    env.ok(&["set", "101", "--devnodes", "net/tun:rw", "--save"]);
    assert!(std::fs::read_to_string(env.conf_path(101)).unwrap().contains("DEVNODES=\"net/tun:rw\""));
    let open = "test -c /dev/net/tun && exec 3<>/dev/net/tun && echo opened";
    assert_eq!(sh(&env, open).1.trim(), "opened");
    env.ok(&["restart", "101"]);
    assert_eq!(sh(&env, open).1.trim(), "opened", "the saved node after a restart");
    // Checkpointed and restored: the node is back and granted under the new cgroup id.
    let dump = env.dir.join("dev.dump");
    env.ok(&["chkpnt", "101", "--dumpfile", &dump.to_string_lossy()]);
    env.ok(&["restore", "101", "--dumpfile", &dump.to_string_lossy()]);
    assert_eq!(sh(&env, open).1.trim(), "opened", "the node after a restore");
    // Read only: opening for writing is refused.
    env.ok(&["set", "101", "--devnodes", "net/tun:r"]);
    let (code, out) = sh(&env, "exec 3<>/dev/net/tun");
    assert_ne!(code, 0);
    assert!(out.contains("Operation not permitted") || out.contains("can't open"), "{out}");

    // Bad values: one line naming the value, exit 21, nothing changed.
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    for (args, bad) in [
        (&["set", "101", "--devnodes", "no-such-node:rw", "--save"][..], "no-such-node"),
        (&["set", "101", "--devnodes", "../etc/passwd:rw", "--save"], "'../etc/passwd:rw'"),
        (&["set", "101", "--devices", "z:1:2:r", "--save"], "'z:1:2:r'"),
        (&["set", "101", "--devices", "c:1:2:rwx", "--save"], "'c:1:2:rwx'"),
    ] {
        env.vzctl(args).one_line_error("vzctl", 21, bad);
    }
    assert_eq!(std::fs::read_to_string(env.conf_path(101)).unwrap(), conf);
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn features_give_their_devices_or_are_refused_with_the_reason() {
    let env = VzEnv::new("features");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    env.ok(&["set", "101", "--features", "tun:on", "--features", "fuse:on", "--save"]);
    assert!(std::fs::read_to_string(env.conf_path(101)).unwrap().contains("FEATURES=\"tun:on fuse:on\""));
    let open = |node: &str| sh(&env, &format!("exec 3<>{node} && echo opened")).1;
    assert_eq!(open("/dev/net/tun").trim(), "opened");
    assert_eq!(open("/dev/fuse").trim(), "opened");
    // Off: the node goes and the device is refused again.
    env.ok(&["set", "101", "--features", "fuse:off", "--save"]);
    assert_ne!(sh(&env, "test -e /dev/fuse").0, 0, "the node stayed");
    // What this host or any kernel cannot give: one line with the reason, nothing changed.
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    for (bad, why) in [("nfs:on", "NFS"), ("sysfs:off", "/sys"), ("ipip:on", "ipip"), ("zfs:on", "'zfs:on'")] {
        let o = env.vzctl(&["set", "101", "--features", bad, "--save"]);
        o.one_line_error("vzctl", 21, why);
    }
    assert_eq!(std::fs::read_to_string(env.conf_path(101)).unwrap(), conf);
    env.ok(&["restart", "101"]);
    assert_eq!(open("/dev/net/tun").trim(), "opened", "a saved feature after a restart");
    env.ok(&["stop", "--fast", "101"]);
}
