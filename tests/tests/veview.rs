//! The VE's own view of /proc and /sys (LXCFS): in a Debian VE with `--ram 256M --swap
//! 512M --cpus 1`, procps' `free` shows ~256 MB, `nproc` 1, /proc/uptime the VE's own,
//! /proc/cpuinfo and the online CPU list one CPU; the view survives a checkpoint and
//! restore; with LXCFS=no the VE sees the host's figures.
use vz_tests::VzEnv;

fn host_mem_kib() -> u64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap();
    m.lines().next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn ve_mem_kib(env: &VzEnv) -> u64 {
    let m = env.ok(&["exec", "101", "head -1 /proc/meminfo"]);
    m.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn free_nproc_uptime_in_a_ve_show_its_own_limits_and_life() {
    let env = VzEnv::new("veview");
    env.debian_template();
    env.ok(&["create", "101", "--ostemplate", "debian-12-minbase"]);
    env.ok(&["set", "101", "--ram", "256M", "--swap", "512M", "--cpus", "1", "--save"]);
    env.ok(&["start", "101"]);
    // procps' free reads /proc/meminfo: total in MiB.
    let free = env.ok(&["exec", "101", "free -m"]);
    let total: u64 =
        free.lines().find(|l| l.starts_with("Mem:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!((250..=256).contains(&total), "free says {total} MiB total:\n{free}");
    assert_eq!(env.ok(&["exec", "101", "nproc"]).trim(), "1");
    let cpus = env.ok(&["exec", "101", "grep -c ^processor /proc/cpuinfo"]);
    assert_eq!(cpus.trim(), "1");
    let online = env.ok(&["exec", "101", "cat /sys/devices/system/cpu/online"]);
    assert!(online.trim().parse::<u32>().is_ok(), "one CPU online: {online}");
    let ve_up: f64 = env.ok(&["exec", "101", "cat /proc/uptime"]).split_whitespace().next().unwrap().parse().unwrap();
    let host_up: f64 =
        std::fs::read_to_string("/proc/uptime").unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(ve_up < 120.0 && ve_up < host_up, "VE uptime {ve_up} s, host {host_up} s");
    let up = env.ok(&["exec", "101", "uptime"]);
    assert!(
        up.contains("up 0 min") || up.contains("up 1 min") || up.contains("up  0:0") || up.contains("up 0:0"),
        "{up}"
    );
    assert!(env.ok(&["exec", "101", "cat /proc/loadavg"]).split_whitespace().count() == 5);

    env.ok(&["stop", "101"]);

    // A checkpoint carries the view: the restored VE binds this node's LXCFS again. (A
    // busybox VE: criu cannot dump the unlinked /run/initctl FIFO Debian's sysvinit keeps.)
    env.ok(&["create", "102"]);
    env.ok(&["set", "102", "--ram", "128M", "--swap", "0", "--save"]);
    env.ok(&["start", "102"]);
    let mem = |veid: &str| -> u64 {
        let m = env.ok(&["exec", veid, "head -1 /proc/meminfo"]);
        m.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(mem("102"), 128 * 1024);
    env.ok(&["chkpnt", "102"]);
    env.ok(&["restore", "102"]);
    assert_eq!(mem("102"), 128 * 1024);
    env.ok(&["stop", "--fast", "102"]);

    // LXCFS=no: the host's figures, as the kernel gives them.
    let conf = env.dir.join("conf/vz.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("{text}LXCFS=no\n")).unwrap();
    env.ok(&["start", "101"]);
    assert_eq!(ve_mem_kib(&env), host_mem_kib());
    env.ok(&["stop", "--fast", "101"]);
}
