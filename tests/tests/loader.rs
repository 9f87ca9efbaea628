//! The loader: pins are reused, a newer object replaces the programs with no unenforced
//! moment, and bpffs is mounted when missing.
use std::{process::Command, time::Duration};

use vz::bpf::Bpf;
use vz_common::res::NUMTCPSOCK;
use vz_tests::{bin, Env, Helper};

#[test]
fn pin_layout_is_as_documented() {
    let env = Env::new("layout");
    let root = &env.cfg.pin_root;
    for p in [
        "progs/vz_sock_create",
        "progs/vz_sock_release",
        "links/vz_sock_create",
        "links/vz_sock_release",
        "maps/VZ_UBC_V1",
        "maps/VZ_LIMITS_V1",
        "maps/VZ_SOCKS_V1",
        "maps/VZ_META_V1",
        "maps/VZ_VEIDS_V1",
        // This kernel has everything the block I/O programs need: a refusal is a bug.
        "progs/vz_io_queue",
        "links/vz_io_queue",
        "links/vz_io_done",
        "links/vz_io_rq_done",
        "maps/VZ_IO_CGRPS_V1",
        "maps/VZ_IO_STATS_V1",
        "maps/VZ_IO_FLIGHT_V1",
    ] {
        assert!(root.join(p).exists(), "missing pin {p}");
    }
}

#[test]
fn second_invocation_reuses_the_pins() {
    let mut env = Env::new("reuse");
    assert!(env.bpf().loaded_now);
    let before = env.bpf().attachments().unwrap();
    let again = Bpf::ensure(&env.cfg).unwrap();
    assert!(!again.loaded_now, "pinned programs were loaded again");
    assert_eq!(again.attachments().unwrap(), before);
    for a in &before {
        assert_eq!(a.prog_id, a.link_prog_id, "{a:?}");
    }
}

#[test]
fn newer_object_replaces_programs_without_a_gap_and_keeps_counters() {
    let mut env = Env::new("upgrade");
    env.ve(101);
    env.set(101, NUMTCPSOCK, 2, 2);
    let mut h = env.helper(101);
    let a = h.open("tcp").unwrap();
    let b = h.open("tcp").unwrap();
    let before = env.bpf().attachments().unwrap();

    // While the helper keeps trying to pass the barrier, replace the programs five times.
    h.send("probe 1500");
    std::thread::sleep(Duration::from_millis(100));
    for generation in 1..=5 {
        assert!(env.upgrade(generation).loaded_now);
        std::thread::sleep(Duration::from_millis(50));
    }
    let probe = Helper::nums(&h.recv());
    assert_eq!(probe[0], 0, "a socket passed the barrier during an upgrade");
    assert!(probe[1] > 100, "probe made too few attempts: {probe:?}");

    let after = env.bpf().attachments().unwrap();
    for (b4, af) in before.iter().zip(&after) {
        assert_eq!(b4.link_id, af.link_id, "the link must be kept (updated in place)");
        assert_ne!(b4.prog_id, af.prog_id, "the program was not replaced");
        assert_eq!(af.link_prog_id, af.prog_id, "the link does not run the new program");
    }
    // Counters carried over, and sockets charged by the old programs are uncharged by the
    // new ones.
    let u = env.usage(101, NUMTCPSOCK);
    assert_eq!(u.held, 2);
    assert_eq!(u.failcnt, probe[1]);
    h.close(a);
    h.close(b);
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 0);
    assert!(h.open("tcp").is_ok());
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 1);
}

#[test]
fn a_pin_root_serves_one_parent_only() {
    let env = Env::new("parent");
    let other = Env::bare("parent2");
    let mut cfg = env.cfg.clone();
    cfg.cgroup_parent = other.cfg.cgroup_parent.clone();
    let e = Bpf::ensure(&cfg).unwrap_err();
    assert!(e.to_string().contains("belongs to another cgroup parent"), "{e}");
}

#[test]
fn bpffs_is_mounted_when_missing() {
    // A private mount namespace where /sys/fs/bpf is a plain tmpfs: vzctl must mount bpffs
    // there itself. The namespace (and so that bpffs, its pins and links) dies with the shell.
    let env = vz_tests::VzEnv::new("bpffs");
    env.ok(&["create", "101"]);
    let script = format!(
        "mount -t tmpfs none /sys/fs/bpf && {vzctl} -v start 101 \
         && awk '$5==\"/sys/fs/bpf\" {{print $9}}' /proc/self/mountinfo | tail -n1 \
         && {vzctl} stop --fast 101",
        vzctl = bin("vzctl").display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("VZ_CONF_DIR", env.dir.join("conf"))
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    // -v says the step.
    assert!(stdout.contains("Mounting bpffs at /sys/fs/bpf"), "{stdout}{stderr}");
    assert!(stdout.lines().any(|l| l == "bpf"), "{stdout}");
    // Back on the host: that namespace's pins are gone, so nothing stays attached.
    env.cg().create_ve(101).unwrap();
    let mut ok = false;
    for _ in 0..100 {
        let mut h = Helper::spawn(Some(&env.cg().ve_dir(101)));
        if h.open("tcp").is_ok() && h.open("tcp").is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ok, "programs from the private namespace stayed attached");
    let _ = env.cg().remove_ve(101);
}

/// `bpftool -j map show pinned PATH`, parsed loosely: (map id, whether it carries BTF).
fn map_show(path: &std::path::Path) -> (u64, bool) {
    let o = Command::new("bpftool").args(["-j", "map", "show", "pinned"]).arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "bpftool map show {}: {text}", path.display());
    let id = text.split("\"id\":").nth(1).and_then(|r| r.split([',', '}']).next()).and_then(|v| v.trim().parse().ok());
    (id.unwrap_or_else(|| panic!("no id in {text}")), text.contains("\"btf_id\""))
}

#[test]
fn maps_an_older_build_pinned_without_btf_are_kept_and_new_ones_carry_btf() {
    let mut env = Env::bare("btf");
    // What a build before BTF maps left pinned: the same shapes, made without BTF.
    let maps = env.cfg.pin_root.join("maps");
    std::fs::create_dir_all(&maps).unwrap();
    let old = [
        ("VZ_UBC_V1", std::mem::size_of::<vz_common::VeUsage>()),
        ("VZ_LIMITS_V1", std::mem::size_of::<vz_common::VeLimits>()),
    ];
    let mut ids = Vec::new();
    for (name, value) in old {
        let path = maps.join(name);
        let made = Command::new("bpftool")
            .args(["map", "create"])
            .arg(&path)
            .args(["type", "hash", "key", "8", "value", &value.to_string(), "entries", "65536"])
            .args(["name", &name[..name.len().min(15)], "flags", "1"])
            .status()
            .unwrap();
        assert!(made.success(), "bpftool map create {name}");
        let (id, btf) = map_show(&path);
        assert!(!btf, "{name} was made with BTF");
        ids.push(id);
    }
    env.bpf = Some(Bpf::ensure(&env.cfg).expect("load over the older pins"));
    // Reused, not replaced: counters and limits of running VEs stay where they are.
    for ((name, _), id) in old.iter().zip(&ids) {
        assert_eq!(map_show(&maps.join(name)).0, *id, "{name} was replaced");
    }
    // Maps made now carry BTF.
    assert!(map_show(&maps.join("VZ_STATS_V1")).1, "VZ_STATS_V1 has no BTF");
    assert!(map_show(&maps.join("VZ_VEIDS_V1")).1, "VZ_VEIDS_V1 has no BTF");
    // And the programs count and refuse through the older maps.
    env.ve(101);
    env.set(101, NUMTCPSOCK, 1, 1);
    let mut h = env.helper(101);
    assert!(h.open("tcp").is_ok());
    assert!(h.open("tcp").is_err(), "the barrier of the older map was not enforced");
    let u = env.usage(101, NUMTCPSOCK);
    assert_eq!((u.held, u.failcnt), (1, 1));
}

#[test]
fn maps_an_older_build_pinned_under_long_names_move_to_their_short_names() {
    let mut env = Env::bare("rename");
    let maps = env.cfg.pin_root.join("maps");
    std::fs::create_dir_all(&maps).unwrap();
    // VZ_IO_CGROUPS_V1 as an older build left it: blkio cgroup 7 belongs to VE cgroup 9.
    let old = maps.join("VZ_IO_CGROUPS_V1");
    let bpftool = |args: &[&str]| {
        let o = Command::new("bpftool").args(args).output().unwrap();
        assert!(o.status.success(), "bpftool {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let o = old.to_str().unwrap();
    bpftool(&[
        "map",
        "create",
        o,
        "type",
        "hash",
        "key",
        "8",
        "value",
        "8",
        "entries",
        "65536",
        "name",
        "VZ_IO_CGROUPS_V",
        "flags",
        "1",
    ]);
    let le = |v: u64| v.to_le_bytes().iter().map(|b| b.to_string()).collect::<Vec<_>>();
    let mut update = vec!["map", "update", "pinned", o, "key"];
    let (k, v) = (le(7), le(9));
    update.extend(k.iter().map(String::as_str));
    update.push("value");
    update.extend(v.iter().map(String::as_str));
    bpftool(&update);

    env.bpf = Some(Bpf::ensure(&env.cfg).expect("load over the older pins"));
    assert!(!old.exists(), "the old pin is still there");
    let new = maps.join("VZ_IO_CGRPS_V1");
    let mut lookup = vec!["-j", "map", "lookup", "pinned", new.to_str().unwrap(), "key"];
    lookup.extend(k.iter().map(String::as_str));
    let text = bpftool(&lookup);
    assert!(text.contains(r#""formatted":{"key":7,"value":9}"#), "bpftool: {text}");
}
