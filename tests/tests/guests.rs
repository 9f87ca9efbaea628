//! Real guests and real OpenVZ configs: systemd distributions (Debian 12, Ubuntu 22.04)
//! boot to multi-user with journald and their services; an init that dies fails the start
//! with its last words and leaves nothing behind; every config sample vzctl ships, and
//! OpenVZ's own stock sample as OpenVZ shipped it, create and start a VE; NETFILTER is
//! OpenVZ's netfilter mode and our firewall rules moved to FIREWALL; scripting (`exec -`,
//! `enter` ending with its input, bare `vzctl`).
use std::{
    io::Write as _,
    process::Stdio,
    time::{Duration, Instant},
};

use vz_tests::{wait_until, VzEnv};

/// systemd's state once it has settled ("running", "degraded", ...), asked from inside as
/// soon as its bus answers (right after a start it may not listen yet).
fn settled_state(env: &VzEnv) -> String {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let o = env.vzctl(&["exec2", "101", "timeout 60 systemctl is-system-running --wait"]);
        if !o.stderr.contains("Failed to connect to bus") || Instant::now() > end {
            return o.stdout.trim().to_string() + &o.stderr;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Boots a systemd guest and checks what systemd's container interface needs.
fn boots_to_multi_user(distro: &vz::template::Distro) {
    let env = VzEnv::new("systemd");
    env.distro_template(distro);
    env.ok(&["create", "101", "--ostemplate", distro.template, "--hostname", "sd.test"]);
    env.ok(&["start", "101"]);
    // systemd itself says when it is up: "running" means every unit started, none failed.
    let state = settled_state(&env);
    let failed = env.vzctl(&["exec2", "101", "systemctl --failed --no-legend --no-pager"]);
    assert_eq!(state, "running", "{}: failed units: {}", distro.template, failed.stdout);
    assert_eq!(env.ok(&["exec2", "101", "readlink -f /proc/1/exe"]).trim(), "/usr/lib/systemd/systemd");
    assert_eq!(
        env.ok(&["exec2", "101", "systemctl is-active multi-user.target dbus systemd-journald"]).trim(),
        "active\nactive\nactive"
    );
    // journald takes what the VE logs.
    env.ok(&["exec2", "101", "logger -t vztest hello-from-the-ve"]);
    wait_until("journald has the line", || {
        env.vzctl(&["exec2", "101", "journalctl -q --no-pager -t vztest"]).stdout.contains("hello-from-the-ve")
    });
    // Its cgroup2 subtree, its /run, its console.
    let mounts = env.ok(&["exec2", "101", "cat /proc/self/mounts"]);
    for (at, fs) in [("/sys/fs/cgroup", "cgroup2"), ("/run", "tmpfs"), ("/run/lock", "tmpfs")] {
        assert!(
            mounts.lines().any(|l| l.split(' ').nth(1) == Some(at) && l.split(' ').nth(2) == Some(fs)),
            "{at} {fs}:\n{mounts}"
        );
    }
    assert_eq!(env.ok(&["exec2", "101", "cat /proc/1/cgroup | grep ^0::"]).trim(), "0::/init.scope");
    assert!(env.ok(&["exec2", "101", "readlink /dev/console"]).starts_with("pts/"));
    // On the host: systemd's cgroups are below the VE's, made by VE root (delegated).
    let dir = env.cg().ve_dir(101);
    let (uid, _) = env.ids(101);
    for sub in ["init.scope", "system.slice"] {
        let m = std::fs::metadata(dir.join(sub)).unwrap_or_else(|e| panic!("{sub}: {e}"));
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&m), uid, "{sub} is not VE root's");
    }
    // Its processes are the VE's for the beancounters, wherever systemd put them.
    let nproc: u64 = env.vzlist(&["-H", "-o", "numproc", "101"]).stdout.trim().parse().expect("numproc");
    let listed = env.cg().procs(101).len() as u64;
    assert!(nproc >= 4 && nproc >= listed, "numproc {nproc}, {listed} processes in its cgroups");
    // The console kept what systemd said while it booted.
    let log = std::fs::read_to_string(env.dir.join("lock/101.console.log")).expect("console log");
    assert!(log.contains("Multi-User System"), "{log}");
    // A stop halts systemd cleanly and leaves nothing; the next start works.
    env.ok(&["stop", "101"]);
    assert_eq!(env.ok(&["status", "101"]).trim(), "VEID 101 exist unmounted down");
    assert!(!dir.exists(), "cgroup left after stop");
    // start --wait returns once systemd says it is up.
    let o = env.ok(&["start", "101", "--wait"]);
    assert!(o.contains("Container has booted"), "{o}");
    let o = env.vzctl(&["exec2", "101", "systemctl is-system-running"]);
    assert_eq!(o.stdout.trim(), "running", "right after start --wait: {o:?}");
    env.ok(&["stop", "101"]);
}

#[test]
fn debian_12_with_systemd_boots_to_multi_user() {
    boots_to_multi_user(&vz::template::DEBIAN_SYSTEMD);
}

#[test]
fn ubuntu_22_04_boots_to_multi_user() {
    boots_to_multi_user(&vz::template::UBUNTU);
}

#[test]
fn an_init_that_dies_fails_the_start_with_its_last_words() {
    let env = VzEnv::new("initdies");
    env.ok(&["create", "101"]);
    let init = env.private(101).join("sbin/init");
    std::fs::remove_file(&init).unwrap();
    std::fs::write(
        &init,
        "#!/bin/sh\necho 'cannot find my disk' > /dev/console\necho 'giving up' > /dev/console\nexit 3\n",
    )
    .unwrap();
    std::os::unix::fs::chown(&init, Some(env.ids(101).0), Some(env.ids(101).1)).unwrap();
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = env.vzctl(&["start", "101"]);
    o.one_line_error("vzctl", vz::exit::ENVCREATE_ERROR, "cannot find my disk | giving up");
    assert!(o.stderr.contains("init of container 101 exited"), "{o:?}");
    // Nothing is left: not mounted, no cgroup, no console files; the next start is clean.
    assert_eq!(env.ok(&["status", "101"]).trim(), "VEID 101 exist unmounted down");
    assert!(!env.cg().ve_dir(101).exists());
    assert!(!env.dir.join("lock/101.console.pty").exists());
    // An init that dies after start returned: start --wait waits for it and says so.
    std::fs::write(&init, "#!/bin/sh\nsleep 0.5\necho 'late death' > /dev/console\nexit 4\n").unwrap();
    let o = env.vzctl(&["start", "101", "--wait"]);
    o.one_line_error("vzctl", vz::exit::ENVCREATE_ERROR, "late death");
    assert_eq!(env.ok(&["status", "101"]).trim(), "VEID 101 exist unmounted down");
    assert!(!env.cg().ve_dir(101).exists());
    std::fs::remove_file(&init).unwrap();
    std::os::unix::fs::symlink("/bin/busybox", &init).unwrap();
    let o = env.ok(&["start", "101", "--wait"]);
    assert!(o.contains("Container has booted"), "{o}");
    env.ok(&["exec2", "101", "true"]);
    env.ok(&["stop", "101"]);
}

/// OpenVZ's stock `ve-vswap-256m.conf-sample`, as vzctl 4.x installed it (its settings;
/// the license header left out).
const OPENVZ_VSWAP_256M: &str = "\
# This config is only valid for decent VSwap-enabled kernel
# (version 042stab042 or later).

# RAM
PHYSPAGES=\"0:256M\"

# Swap
SWAPPAGES=\"0:512M\"

# Disk quota parameters (in form of softlimit:hardlimit)
DISKSPACE=\"2G:2.2G\"
DISKINODES=\"131072:144179\"
QUOTATIME=\"0\"

# CPU fair scheduler parameter
CPUUNITS=\"1000\"

NETFILTER=\"stateless\"
";

#[test]
fn every_shipped_sample_and_openvz_stock_sample_creates_and_starts_a_ve() {
    let env = VzEnv::new("samples");
    env.ok(&["create", "199"]); // installs the samples
    env.ok(&["destroy", "199"]);
    std::fs::write(env.dir.join("conf/conf/ve-openvz-vswap-256m.conf-sample"), OPENVZ_VSWAP_256M).unwrap();
    let mut names: Vec<String> = vz::ve::samples().into_iter().map(|(n, _)| n.to_string()).collect();
    assert!(["basic", "light", "unlimited", "vswap-256m", "vswap-1g", "vswap-4g"]
        .iter()
        .all(|n| names.iter().any(|m| m == n)));
    names.push("openvz-vswap-256m".into());
    for (i, name) in names.iter().enumerate() {
        let veid = (110 + i).to_string();
        env.ok(&["create", &veid, "--config", name]);
        let o = env.vzctl(&["start", &veid]);
        assert_eq!(o.code, 0, "{name}: {o:?}");
        // Each warning once, and none as a log line besides.
        let warnings: Vec<&str> = o.stderr.lines().collect();
        let mut unique = warnings.clone();
        unique.dedup();
        assert_eq!(warnings, unique, "{name}: {}", o.stderr);
        assert!(warnings.iter().all(|l| l.starts_with("Warning: ")), "{name}: {}", o.stderr);
        if name.contains("vswap") {
            assert!(o.stderr.contains("NETFILTER=stateless is not narrowed"), "{name}: {}", o.stderr);
            let ram = env.vzlist(&["-H", "-o", "physpages.l", &veid]).stdout;
            let want = if name.ends_with("256m") {
                65536
            } else if name.ends_with("4g") {
                1048576
            } else {
                0
            };
            if want > 0 {
                assert_eq!(ram.trim(), want.to_string(), "{name}");
            }
        }
        if name == "unlimited" {
            assert!(o.stderr.contains("AVNUMPROC is kept but not used"), "{}", o.stderr);
            assert!(!o.stderr.contains("disk quota"), "DISK_QUOTA=no: {}", o.stderr);
        }
        assert_eq!(env.ok(&["exec2", &veid, "echo up"]), "up\n", "{name}");
        env.ok(&["stop", &veid]);
        env.ok(&["destroy", &veid]);
    }
}

#[test]
fn netfilter_is_openvz_mode_and_old_rules_move_to_firewall() {
    let env = VzEnv::new("nfmode");
    env.ok(&["create", "101"]);
    // A config of ours from before: rules in NETFILTER. The first command that locks the VE
    // moves them, once.
    let conf = env.conf_path(101);
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("{text}NETFILTER=\"deny in tcp 25\"\n")).unwrap();
    let o = env.vzctl(&["start", "101"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("Moved the firewall rules of container 101 from NETFILTER to FIREWALL"), "{o:?}");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("FIREWALL=\"deny in tcp 25\"") && !text.contains("NETFILTER="), "{text}");
    let o = env.vzctl(&["stop", "101"]);
    assert!(!o.stdout.contains("Moved"), "moved twice: {o:?}");
    // The mode: checked, saved, said when it is not what it says.
    let before = std::fs::read_to_string(&conf).unwrap();
    env.vzctl(&["set", "101", "--netfilter", "stateful-ish", "--save"]).one_line_error("vzctl", 21, "stateful-ish");
    std::fs::write(&conf, format!("{before}NETFILTER=\"bogus mode\"\n")).unwrap();
    env.vzctl(&["start", "101"]).one_line_error("vzctl", 21, "bogus mode");
    std::fs::write(&conf, &before).unwrap();
    let o = env.vzctl(&["set", "101", "--netfilter", "stateless", "--save"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("NETFILTER=stateless is not narrowed"), "{o:?}");
    assert!(std::fs::read_to_string(&conf).unwrap().contains("NETFILTER=\"stateless\""));
    env.ok(&["set", "101", "--netfilter", "full", "--save"]);
    let o = env.vzctl(&["start", "101"]);
    assert_eq!((o.code, o.stderr.as_str()), (0, ""), "full is said nowhere: {o:?}");
    // The firewall rules still apply, from FIREWALL.
    let rules = env.vzctl(&["set", "101", "--netfilter-rule", "deny in udp 53", "--save"]);
    assert_eq!(rules.code, 0, "{rules:?}");
    assert!(std::fs::read_to_string(&conf).unwrap().contains("FIREWALL=\"deny in udp 53\""));
    env.ok(&["stop", "101"]);
}

#[test]
fn scripts_feed_exec_and_enter_through_stdin_and_both_end_with_it() {
    let env = VzEnv::new("stdin");
    env.ok(&["create", "101", "--hostname", "in.test"]);
    env.ok(&["start", "101"]);
    let feed = |args: &[&str], input: &[u8]| {
        let mut c =
            env.cmd("vzctl", args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        c.stdin.take().unwrap().write_all(input).unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        while c.try_wait().unwrap().is_none() {
            if Instant::now() > end {
                let _ = c.kill();
                panic!("vzctl {args:?} did not end with its input");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        vz_tests::Out::of(c.wait_with_output().unwrap())
    };
    // exec VEID -: the commands come from stdin.
    let o = feed(&["exec2", "101", "-"], b"echo one\nhostname\nexit 3\n");
    assert_eq!((o.code, o.stdout.as_str()), (3, "one\nin.test\n"), "{o:?}");
    // enter with piped input: the shell runs it and ends at its end.
    let o = feed(&["enter", "101"], b"hostname\n");
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("in.test"), "{o:?}");
    let o = feed(&["enter", "101", "--exec", "echo first"], b"echo unfinished");
    assert!(o.stdout.contains("first\nunfinished"), "{o:?}");
    // With /dev/null as input it ends at once.
    let o = env.vzctl(&["enter", "101"]);
    assert_eq!(o.code, 0, "{o:?}");
    // Bare vzctl, and vzctl -v: its usage, saying what it does; not a success.
    for args in [&[][..], &["-v"][..]] {
        let o = env.vzctl(args);
        assert_eq!(o.code, 20, "{o:?}");
        assert!(
            o.stderr.contains("Manage OpenVZ-style Virtual Environments") && o.stderr.contains("Usage: vzctl"),
            "{o:?}"
        );
        assert!(o.stderr.contains("create") && o.stderr.contains("enter"), "{o:?}");
    }
    // -v says each step it takes, as OpenVZ's vzctl; without it, only the usual lines.
    let quiet = env.ok(&["stop", "101"]);
    assert!(!quiet.contains("Asking init to halt"), "{quiet}");
    let o = env.vzctl(&["-v", "start", "101"]);
    for step in ["Cgroups: ", "Setting beancounters: ", "Setting CPU units: 1000", "Starting init /sbin/init"] {
        assert!(o.stdout.contains(step), "{step}: {o:?}");
    }
    assert!(!o.stderr.contains(" INFO ") && !o.stderr.contains("DEBUG"), "log lines at -v: {o:?}");
    let o = env.ok(&["-v", "stop", "101"]);
    assert!(o.contains("Asking init to halt") && o.contains("Container was stopped"), "{o}");
}

/// Inside VE 101: perl makes a NETLINK_NETFILTER socket, sets an iptables table over a raw
/// socket, and sets up an io_uring; each says "ok" or its error.
fn netfilter_probe(env: &VzEnv) -> String {
    let probe = r#"perl -e '
        print socket(my $n, 16, 3, 12) ? "nfnetlink ok\n" : "nfnetlink $!\n";
        socket(my $r, 2, 3, 255) or die "raw: $!\n";
        print setsockopt($r, 0, 64, "x") ? "iptables ok\n" : "iptables $!\n";
        my $p = "\0" x 120;
        print syscall(425, 4, $p) >= 0 ? "io_uring ok\n" : "io_uring $!\n";'"#;
    env.ok(&["exec2", "101", probe])
}

#[test]
fn netfilter_disabled_keeps_the_whole_ve_from_netfilter() {
    let env = VzEnv::new("nfoff");
    env.debian_template();
    env.ok(&["create", "101", "--ostemplate", vz::template::DEBIAN_TEMPLATE]);
    env.ok(&["start", "101"]);
    // Full: the kernel's own answers (a 1-byte table is refused as malformed).
    let full = netfilter_probe(&env);
    assert!(full.contains("nfnetlink ok") && full.contains("iptables Invalid argument"), "{full}");
    assert!(!full.contains("io_uring Function not implemented"), "{full}");
    let o = env.vzctl(&["set", "101", "--netfilter", "disabled", "--save"]);
    assert!(o.stderr.contains("netfilter mode: changed at its next start"), "{o:?}");
    assert!(!o.stderr.contains("not narrowed"), "disabled is enforced: {o:?}");
    env.ok(&["restart", "101"]);
    // Init and whatever vzctl starts inside carry the filter; their children inherit it.
    assert_eq!(env.ok(&["exec2", "101", "grep ^Seccomp: /proc/1/status /proc/self/status | cut -f2"]), "2\n2\n");
    let off = netfilter_probe(&env);
    assert!(off.contains("nfnetlink Protocol not supported"), "{off}");
    assert!(off.contains("iptables Protocol not available"), "{off}");
    assert!(off.contains("io_uring Function not implemented"), "{off}");
    // Other sockets are untouched.
    assert_eq!(env.ok(&["exec2", "101", r#"perl -e 'print socket(my $s, 16, 3, 0) ? "ok" : "$!"'"#]), "ok");
    env.ok(&["set", "101", "--netfilter", "full", "--save", "--setmode", "restart"]);
    assert!(netfilter_probe(&env).contains("nfnetlink ok"));
    env.ok(&["stop", "101"]);
}

/// CRIU 4.2 cannot dump what systemd makes for its sandboxed services (nested UTS
/// namespaces, ProtectHostname=): a checkpoint of a systemd guest is refused with the
/// reason, and the VE runs on untouched. First its console getty is named.
#[test]
fn a_systemd_guest_checkpoint_is_refused_with_the_reason_and_the_ve_runs_on() {
    let env = VzEnv::new("sdchkpnt");
    env.distro_template(&vz::template::DEBIAN_SYSTEMD);
    env.ok(&["create", "101", "--ostemplate", vz::template::DEBIAN_SYSTEMD_TEMPLATE]);
    env.ok(&["start", "101", "--wait"]);
    env.vzctl(&["chkpnt", "101"]).one_line_error("vzctl", vz::exit::COMMAND_EXECUTION_ERROR, "agetty");
    env.ok(&["exec2", "101", "systemctl stop console-getty"]);
    let o = env.vzctl(&["chkpnt", "101"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("criu dump failed") && o.stderr.contains("nested"), "{o:?}");
    assert_eq!(env.ok(&["status", "101"]).trim(), "VEID 101 exist mounted running");
    assert_eq!(env.ok(&["exec2", "101", "systemctl is-system-running"]).trim(), "running");
    env.ok(&["stop", "101"]);
}
