//! Snapshots of ploop-layout VEs against the real kernel: taken of a running VE while a
//! process writes (the copy is a clean file system), mounted read-only, switched to (disk
//! and config back as they were), deleted; with the VE's running state (CRIU) a switch
//! brings its processes back; every bad value refused with one line, nothing changed.
use std::process::Command;

use vz_tests::{wait_until, VzEnv};

const A: &str = "{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}";
const B: &str = "{11111111-2222-3333-4444-555555555555}";

fn image(env: &VzEnv, uuid: &str) -> std::path::PathBuf {
    env.private(101).join(format!("root.hdd/root.hds.{uuid}"))
}

#[test]
fn a_snapshot_keeps_disk_and_config_mounts_read_only_and_switches_back() {
    let env = VzEnv::new("snap");
    env.ok(&["create", "101", "--layout", "ploop", "--diskspace", "60M:64M", "--hostname", "before.example"]);
    env.ok(&["start", "101"]);
    env.ok(&["exec2", "101", "echo one > /a"]);
    // A writer busy all along: the copy must still be a clean file system.
    env.ok(&["exec2", "101", "setsid sh -c 'while :; do echo x >> /busy; done' </dev/null >/dev/null 2>&1 &"]);
    wait_until("the writer", || env.vzctl(&["exec2", "101", "test -s /busy"]).code == 0);
    let o =
        env.vzctl(&["snapshot", "101", "--id", A, "--name", "first", "--description", "before b", "--skip-suspend"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains(&format!("Snapshot {A} has been successfully created")), "{}", o.stdout);
    let fsck = Command::new("e2fsck").arg("-fn").arg(image(&env, A)).output().unwrap();
    assert!(
        fsck.status.success(),
        "the snapshot is not a clean file system: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    assert!(env.vzctl(&["status", "101"]).stdout.contains("running"), "the VE runs on");
    let grows = || env.ok(&["exec2", "101", "wc -c < /busy"]).trim().parse::<u64>().unwrap();
    let first = grows();
    wait_until("the writer going on after the snapshot", || grows() > first);

    // Changed since: a file, a new one, the config.
    env.ok(&["exec2", "101", "echo two > /a; touch /b"]);
    env.ok(&["set", "101", "--hostname", "after.example", "--save"]);

    // Listed as OpenVZ lists it: the first has no parent and is current.
    let list = env.ok(&["snapshot-list", "101"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with("PARENT_UUID") && lines[0].contains("C UUID"), "{list}");
    assert!(lines[1].trim_start().starts_with(&format!("* {A}")) && lines[1].ends_with("first"), "{list}");
    assert_eq!(env.ok(&["snapshot-list", "101", "-H", "-o", "name,desc"]), format!("{:<32} before b\n", "first"));

    // Mounted read-only where the admin says: the disk as it was.
    let target = env.dir.join("snapmnt");
    std::fs::create_dir(&target).unwrap();
    env.ok(&["snapshot-mount", "101", "--id", A, "--target", target.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "one\n");
    assert!(!target.join("b").exists());
    let w = std::fs::write(target.join("new"), "x").unwrap_err();
    assert_eq!(w.raw_os_error(), Some(libc::EROFS), "{w}");
    let shown = env.ok(&["snapshot-list", "101", "-H", "-o", "device,target"]);
    assert!(shown.starts_with("/dev/loop") && shown.trim_end().ends_with(target.to_str().unwrap()), "{shown}");
    env.vzctl(&["snapshot-delete", "101", "--id", A]).one_line_error("vzctl", 21, "mounted");
    env.vzctl(&["snapshot-mount", "101", "--id", A, "--target", target.to_str().unwrap()]).one_line_error(
        "vzctl",
        8,
        "mounted already",
    );
    env.ok(&["stop", "101"]);
    env.vzctl(&["destroy", "101"]).one_line_error("vzctl", 21, "snapshot-umount");
    env.ok(&["snapshot-umount", "101", "--id", A]);
    assert!(!env.mounts().iter().any(|m| m.contains("snapmnt")), "still mounted");

    // Switched: stopped (no running state kept with --skip-suspend, and a running VE is
    // stopped first), disk and config back.
    env.ok(&["start", "101"]);
    let o = env.vzctl(&["snapshot-switch", "101", "--id", A]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(env.vzctl(&["status", "101"]).stdout.contains("down"));
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    assert!(conf.contains("before.example") && !conf.contains("after.example"), "{conf}");
    env.ok(&["start", "101"]);
    assert_eq!(env.ok(&["exec2", "101", "cat /a"]), "one\n");
    assert_ne!(env.vzctl(&["exec2", "101", "test -e /b"]).code, 0, "/b came back");

    // A second one hangs from the first; deleting the first leaves it an orphan-free root.
    env.ok(&["snapshot", "101", "--id", B, "--skip-suspend", "--skip-config"]);
    let tree = env.ok(&["snapshot-list", "101", "-H", "-o", "uuid,parent_uuid", "--id", B]);
    assert_eq!(tree, format!("{B:<38} {A}\n{A:<38} \n"));
    env.ok(&["snapshot-delete", "101", "--id", A]);
    assert!(!image(&env, A).exists(), "the image stays");
    assert_eq!(env.ok(&["snapshot-list", "101", "-H", "-o", "current,uuid,parent_uuid"]), format!("* {B:<38} \n"));
    env.ok(&["stop", "101"]);
}

#[test]
fn bad_snapshot_values_are_refused_in_one_line_and_change_nothing() {
    let env = VzEnv::new("snapbad");
    env.ok(&["create", "101", "--layout", "ploop", "--diskspace", "60M:64M"]);
    env.ok(&["create", "102"]);
    let before = env.ok(&["snapshot-list", "101"]);
    let target = env.dir.join("t");
    std::fs::create_dir(&target).unwrap();
    let t = target.to_str().unwrap();
    for (args, code, needle) in [
        (vec!["snapshot", "101", "--id", "not-a-uuid"], 21, "'not-a-uuid'"),
        (vec!["snapshot", "101", "--name", "a\nb"], 21, "a\\nb"),
        (vec!["snapshot", "102"], 21, "simfs"),
        (vec!["snapshot-switch", "101", "--id", A], 21, "no such snapshot"),
        (vec!["snapshot-delete", "101", "--id", A], 21, "no such snapshot"),
        (vec!["snapshot-mount", "101", "--id", A, "--target", "rel"], 21, "'rel'"),
        (vec!["snapshot-mount", "101", "--id", A, "--target", t], 21, "no such snapshot"),
        (vec!["snapshot-umount", "101", "--id", A], 21, "no such snapshot"),
        (vec!["snapshot-list", "101", "-o", "uuid,size"], 21, "'size'"),
        (vec!["snapshot", "199"], 14, "199"),
    ] {
        env.vzctl(&args).one_line_error("vzctl", code, needle);
    }
    env.ok(&["snapshot", "101", "--id", A]);
    env.vzctl(&["snapshot", "101", "--id", &A.to_uppercase()]).one_line_error("vzctl", 21, "exists");
    env.vzctl(&["snapshot-switch", "101", "--id", A, "--must-resume"]).one_line_error("vzctl", 21, "no running state");
    env.vzctl(&["snapshot-umount", "101", "--id", A]).one_line_error("vzctl", 21, "not mounted");
    assert_eq!(env.ok(&["snapshot-list", "101", "-H", "-o", "uuid"]), format!("{A}\n"));
    assert!(before.lines().count() == 1, "an empty list is its header: {before}");
}

#[test]
fn a_snapshot_with_running_state_brings_the_processes_back_at_switch() {
    let env = VzEnv::new("snapcriu");
    env.ok(&["create", "101", "--layout", "ploop", "--diskspace", "60M:64M"]);
    env.ok(&["start", "101"]);
    env.ok(&["exec2", "101", "echo kept > /a; setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > /pid"]);
    let pid = env.ok(&["exec2", "101", "cat /pid"]);
    let o = env.vzctl(&["snapshot", "101", "--id", A]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(env.private(101).join(format!("dump/{A}")).is_file(), "no running state kept");
    // It ran on through the snapshot, same process.
    assert_eq!(env.ok(&["exec2", "101", "test -d /proc/$(cat /pid) && echo $(cat /pid)"]), pid);
    env.ok(&["exec2", "101", "echo lost > /a; kill $(cat /pid)"]);
    let o = env.vzctl(&["snapshot-switch", "101", "--id", A]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(env.vzctl(&["status", "101"]).stdout.contains("running"), "not restored running");
    assert_eq!(env.ok(&["exec2", "101", "cat /a"]), "kept\n");
    let back = env.ok(&["exec2", "101", &format!("cat /proc/{}/cmdline | tr '\\0' ' '", pid.trim())]);
    assert_eq!(back.trim(), "sleep 1000", "the process of the snapshot is not back with its pid");
    // --skip-resume: the same snapshot, left stopped.
    env.ok(&["snapshot-switch", "101", "--id", A, "--skip-resume"]);
    assert!(env.vzctl(&["status", "101"]).stdout.contains("down"));
}
