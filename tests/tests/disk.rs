//! Disk quota against the real kernel: a ploop-layout VE (an ext4 image on a loop device)
//! sees its limit as its disk's size in `df`, fills its disk and its inodes up to the hard
//! limits and gets ENOSPC, the limits grow and shrink while it runs (growth online where
//! the host may resize ext4, else at the next start, said so), the image shrinks while it
//! is stopped; a simfs VE on a host file system without project quota is told so.
use std::os::unix::fs::MetadataExt as _;

use vz_tests::VzEnv;

/// vzlist's numbers for one VE.
fn nums(env: &VzEnv, veid: &str, fields: &str) -> Vec<Option<u64>> {
    let o = env.vzlist(&["-H", "-o", fields, veid]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    o.stdout.split_whitespace().map(|c| c.parse().ok()).collect()
}

/// `df -k /` inside the VE: (size, used) in KiB.
fn df(env: &VzEnv, veid: &str) -> (u64, u64) {
    let out = env.ok(&["exec2", veid, "df -k / | tail -n 1"]);
    let f: Vec<u64> = out.split_whitespace().skip(1).take(2).map(|n| n.parse().unwrap()).collect();
    (f[0], f[1])
}

/// `df` shows the limit: ext4 holds back 2 % from every writer, the rest is the VE's.
fn assert_df_is(env: &VzEnv, veid: &str, hard: u64) {
    let (size, _) = df(env, veid);
    assert!((hard..=hard + hard / 40 + 512).contains(&size), "df shows {size} KiB for a {hard} KiB limit");
}

/// Whether this process may resize ext4 online (CAP_SYS_RESOURCE, bit 24).
fn can_resize_online() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap();
    u64::from_str_radix(eff.trim(), 16).unwrap() & (1 << 24) != 0
}

/// Runs a shell line in the VE; returns (exit code, stdout + stderr).
fn sh(env: &VzEnv, veid: &str, line: &str) -> (i32, String) {
    let o = env.vzctl(&["exec2", veid, line]);
    (o.code, format!("{}{}", o.stdout, o.stderr))
}

#[test]
fn ploop_limits_hold_at_enospc_and_change_live() {
    let env = VzEnv::new("disk");
    env.ok(&["create", "102", "--layout", "ploop", "--diskspace", "60M:64M", "--diskinodes", "1500:1600"]);
    let image = env.private(102).join("root.hdd/root.hds");
    let img = std::fs::metadata(&image).unwrap();
    assert!(img.len() < 80 << 20, "image of {} bytes for a 64M limit", img.len());
    assert!(img.blocks() * 512 < 32 << 20, "image is sparse: {} bytes allocated", img.blocks() * 512);
    env.ok(&["start", "102"]);
    assert_df_is(&env, "102", 65536);
    assert_eq!(
        nums(&env, "102", "diskspace.s,diskspace.h,diskinodes.s,diskinodes.h"),
        [Some(61440), Some(65536), Some(1500), Some(1600)]
    );

    // Space: a write past the hard limit gets ENOSPC; what the VE holds is the limit.
    let (code, out) = sh(&env, "102", "dd if=/dev/zero of=/fill bs=1M count=100");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("No space left on device"), "{out}");
    let used = nums(&env, "102", "diskspace")[0].unwrap();
    eprintln!("diskspace 64M: the VE holds {used} KiB at ENOSPC");
    assert!((65536 - 1024..=65536).contains(&used), "used {used} KiB at ENOSPC, hard limit 65536");
    // The host is untouched: its own file system still takes writes, and the image file
    // holds no more than what the VE wrote.
    let probe = env.dir.join("host-probe");
    std::fs::write(&probe, vec![1u8; 1 << 20]).unwrap();
    let allocated = std::fs::metadata(&image).unwrap().blocks() * 512;
    assert!(allocated < 80 << 20, "image allocated {allocated} bytes for a 64M limit");

    // Growing the limit lets the VE go on: at once where the host may resize ext4 online,
    // else from the next start (and vzctl says so).
    let o = env.vzctl(&["set", "102", "--diskspace", "60M:96M", "--save"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("Setting diskspace: 61440:98304 KiB"), "{}", o.stdout);
    if !can_resize_online() {
        assert!(o.stderr.contains("takes effect at the next start"), "{}", o.stderr);
        let said = o.stderr.lines().filter(|l| l.starts_with("Warning:") && l.contains("next start")).count();
        assert_eq!(said, 1, "said once: {}", o.stderr);
        env.ok(&["restart", "102"]);
    }
    assert_df_is(&env, "102", 98304);
    let (code, out) = sh(&env, "102", "dd if=/dev/zero of=/fill2 bs=1M count=20");
    assert_eq!(code, 0, "after growing: {out}");
    // Lowering it below what the VE holds is refused and changes nothing.
    let conf = std::fs::read_to_string(env.conf_path(102)).unwrap();
    env.vzctl(&["set", "102", "--diskspace", "40M:40M", "--save"]).one_line_error("vzctl", 21, "'40960'");
    assert_eq!(std::fs::read_to_string(env.conf_path(102)).unwrap(), conf);
    let (code, _) = sh(&env, "102", "dd if=/dev/zero of=/fill3 bs=1M count=4");
    assert_eq!(code, 0, "the limit must still be 96M");

    // Inodes: files past the hard limit get ENOSPC too.
    let before = nums(&env, "102", "diskinodes")[0].unwrap();
    let (_, out) =
        sh(&env, "102", "mkdir /many; i=0; while touch /many/f$i 2>/dev/null; do i=$((i+1)); done; echo made $i");
    let made: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("made ").and_then(|n| n.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{out}"));
    eprintln!("diskinodes 1600: {before} in use, {made} more made before ENOSPC");
    // In use before, the directory, the files: the hard limit exactly.
    assert_eq!(before + 1 + made, 1600, "inode limit");
    let (code, out) = sh(&env, "102", "touch /one-more");
    assert_ne!(code, 0);
    assert!(out.contains("No space left on device"), "{out}");
    // The VE cannot free the balloons that hold the limits.
    let (code, _) = sh(&env, "102", "rm -rf /.vz-balloon");
    assert_ne!(code, 0, "the VE removed its balloon");
    assert_eq!(nums(&env, "102", "diskinodes")[0], Some(1600));
    // Growing the inode limit live.
    env.ok(&["set", "102", "--diskinodes", "1600:2000"]);
    let (code, out) = sh(&env, "102", "i=0; while [ $i -lt 300 ]; do touch /many/g$i || exit 1; i=$((i+1)); done");
    assert_eq!(code, 0, "after growing inodes: {out}");

    // Stopped, the image shrinks: the host gets its space back, the VE its new limit.
    sh(&env, "102", "rm -rf /fill /fill2 /fill3 /many");
    env.ok(&["stop", "102"]);
    let before = std::fs::metadata(&image).unwrap().len();
    env.ok(&["set", "102", "--diskspace", "40M:48M", "--save"]);
    let after = std::fs::metadata(&image).unwrap().len();
    assert!(after < before && after < 60 << 20, "image {before} -> {after} bytes for 48M");
    env.ok(&["start", "102"]);
    assert_df_is(&env, "102", 49152);
    let (code, out) = sh(&env, "102", "dd if=/dev/zero of=/fill bs=1M count=60");
    assert_ne!(code, 0, "{out}");
    let used = nums(&env, "102", "diskspace")[0].unwrap();
    assert!((49152 - 1024..=49152).contains(&used), "after shrinking: {used} KiB at ENOSPC");
    assert_eq!(nums(&env, "102", "diskspace.h")[0], Some(49152));

    // Per-user quota inside: said plainly that it is not available, value stored.
    let o = env.vzctl(&["set", "102", "--quotaugidlimit", "100", "--save"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("per-user and per-group quota inside a VE is not available"), "{}", o.stderr);
    env.ok(&["stop", "--fast", "102"]);
}

#[test]
fn simfs_without_project_quota_is_said_and_bad_values_change_nothing() {
    let env = VzEnv::new("simfs-disk");
    let o = env.vzctl(&["create", "101", "--diskspace", "1G:1.2G", "--diskinodes", "100000:110000"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // /tmp here is ext4 without project quota (the test checks that it is).
    assert!(o.stderr.contains("has no project quota enabled"), "{}", o.stderr);
    assert_eq!(nums(&env, "101", "diskspace.s,diskspace.h,diskinodes.h"), [Some(1 << 20), Some(1258291), Some(110000)]);
    env.ok(&["start", "101"]);
    // No usage source on such a file system: shown as "-".
    assert_eq!(nums(&env, "101", "diskspace"), [None]);
    env.ok(&["stop", "--fast", "101"]);

    // Bad values: one line naming the value, exit 21, nothing made or changed.
    for (args, bad) in [
        (&["create", "103", "--layout", "zfs"][..], "'zfs'"),
        (&["create", "103", "--layout", "ploop", "--diskspace", "2G:1G"], "'2G:1G'"),
        (&["create", "103", "--layout", "ploop", "--diskinodes", "x"], "'x'"),
        (&["create", "103", "--layout", "ploop", "--diskspace", "1M"], "at least 32M"),
    ] {
        env.vzctl(args).one_line_error("vzctl", 21, bad);
        assert!(!env.conf_path(103).exists() && !env.private(103).exists(), "{args:?} left a VE behind");
    }
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    env.vzctl(&["set", "101", "--diskspace", "5:4", "--save"]).one_line_error("vzctl", 21, "'5:4'");
    env.vzctl(&["set", "101", "--quotaugidlimit", "many", "--save"]).one_line_error("vzctl", 21, "'many'");
    assert_eq!(std::fs::read_to_string(env.conf_path(101)).unwrap(), conf);
}
