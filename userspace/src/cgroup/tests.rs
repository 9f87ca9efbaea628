//! Layout detection and path arithmetic, from mount tables (no root needed).
use super::*;

const HYBRID: &str = "\
25 1 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct
";
const UNIFIED: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

#[test]
fn parses_hybrid() {
    let m = Mounts::parse(HYBRID);
    assert_eq!(m.cgroup2.as_ref().unwrap().path, Path::new("/sys/fs/cgroup/unified"));
    let names: Vec<_> = m.v1.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(names, ["memory", "cpu,cpuacct"]);
    let own = parse_proc_cgroup("4:memory:/sup/job7\n1:cpuacct,cpu:/\n0::/\n");
    let cg = from_mounts(m, &own, "vz").unwrap();
    assert_eq!(cg.layout(), Layout::Hybrid);
    assert_eq!(cg.ve_dir(101), Path::new("/sys/fs/cgroup/unified/vz/101"));
    assert_eq!(cg.ve_level(), 2);
    // No blkio hierarchy in this table: block I/O is found on cgroup2.
    assert_eq!(cg.io_level(), 2);
    // Nested below this process's own memory cgroup; co-mounted controllers matched
    // whatever their order.
    assert_eq!(
        cg.ve_dirs(101),
        [
            PathBuf::from("/sys/fs/cgroup/unified/vz/101"),
            PathBuf::from("/sys/fs/cgroup/memory/sup/job7/vz/101"),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/vz/101"),
        ]
    );
}

#[test]
fn a_dumped_ves_cgroups_move_to_this_hosts_parent_and_nothing_else_moves() {
    let own = parse_proc_cgroup("4:memory:/sup/job7\n1:cpuacct,cpu:/\n0::/\n");
    let cg = from_mounts(Mounts::parse(HYBRID), &own, "vz-b").unwrap();
    // Dumped on a node whose VE parent was vz-a, below another memory cgroup; the
    // freezer hierarchy (no VE cgroup there) held it at its root.
    let dumped = "4:memory:/other/vz-a/101\n3:freezer:/\n1:cpu,cpuacct:/vz-a/101\n0::/vz-a/101";
    assert_eq!(
        cg.restore_roots(101, dumped),
        [
            (Some("memory".to_string()), PathBuf::from("/sup/job7/vz-b/101")),
            (Some("freezer".to_string()), PathBuf::from("/")),
            (Some("cpu".to_string()), PathBuf::from("/vz-b/101")),
            (None, PathBuf::from("/vz-b/101")),
        ]
    );
}

#[test]
fn parses_unified_and_nested_parent() {
    let own = parse_proc_cgroup("0::/user.slice\n");
    let cg = from_mounts(Mounts::parse(UNIFIED), &own, "a/b").unwrap();
    assert_eq!(cg.layout(), Layout::Unified);
    assert_eq!(cg.parent_dir(), Path::new("/sys/fs/cgroup/user.slice/a/b"));
    assert_eq!(cg.ve_level(), 4);
    assert_eq!(cg.ve_dirs(5).len(), 1);
}

#[test]
fn mount_root_inside_a_namespace_counts() {
    let mi = "30 25 0:26 /machine/x /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    assert_eq!(from_mounts(Mounts::parse(mi), &[], "vz").unwrap().ve_level(), 4);
}

#[test]
fn no_cgroup2_is_an_error() {
    let m = Mounts::parse("33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
    assert!(matches!(from_mounts(m, &[], "vz"), Err(CgroupError::NoCgroup2)));
}

#[test]
fn bad_parents_are_refused() {
    for p in ["", "/abs", "../up", "a/../b", "./x"] {
        assert!(matches!(from_mounts(Mounts::parse(UNIFIED), &[], p), Err(CgroupError::BadParent(_))), "{p}");
    }
}

#[test]
fn unescapes_mount_points() {
    let m = Mounts::parse("33 30 0:29 / /sys/fs/cgroup/my\\040memory rw - cgroup cgroup rw,memory\n");
    assert_eq!(m.v1[0].1.path, Path::new("/sys/fs/cgroup/my memory"));
}

#[test]
fn a_ve_cgroup_with_controllers_below_is_joined_in_a_leaf() {
    let d = std::env::temp_dir().join(format!("vz-joinable-{}", std::process::id()));
    fs::create_dir_all(&d).unwrap();
    // Hybrid and fresh cgroup2 VEs: the directory itself.
    fs::write(d.join("cgroup.subtree_control"), "\n").unwrap();
    assert_eq!(joinable(&d), d);
    assert!(!d.join(".vz-exec").exists());
    // The VE's systemd turned controllers on: a fresh leaf of vzctl's; an empty one of an
    // earlier command goes.
    fs::write(d.join("cgroup.subtree_control"), "memory pids\n").unwrap();
    fs::create_dir(d.join(".vz-exec-1-0")).unwrap();
    // A name taken (here: a file, as a VE's busy cgroup would stay) is passed over.
    let pid = std::process::id();
    fs::write(d.join(format!(".vz-exec-{pid}-0")), "").unwrap();
    let leaf = d.join(format!(".vz-exec-{pid}-1"));
    assert_eq!(joinable(&d), leaf);
    assert!(leaf.is_dir() && !d.join(".vz-exec-1-0").exists());
    fs::remove_dir_all(&d).unwrap();
}
