//! VEs as admins run them: real namespaces, cgroups, mounts and init, through vzctl.
use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use vz_tests::{bin, VzEnv};

#[test]
fn lifecycle_from_the_default_template() {
    let env = VzEnv::new("life");
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 deleted unmounted down\n");
    let out = env.ok(&["create", "101", "--hostname", "ve101.test", "--name", "web"]);
    assert!(out.contains("Container private area was created"), "{out}");
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist unmounted down\n");
    // The template's files belong to VE root, which is the VE's own LOCAL_UID on the host.
    let (uid, gid) = env.ids(101);
    let md = std::fs::metadata(env.private(101).join("bin/busybox")).unwrap();
    assert_eq!((std::os::unix::fs::MetadataExt::uid(&md), std::os::unix::fs::MetadataExt::gid(&md)), (uid, gid));

    env.ok(&["start", "101"]);
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist mounted running\n");
    assert_eq!(env.ok(&["exec2", "101", "hostname"]), "ve101.test\n");
    // The maps are keyed by cgroup id; VZ_VEIDS_V1 says which VE that is, for bpftool too.
    let cgid = env.cg().ve_id(101).unwrap();
    let bpf = vz::Bpf::open_existing(&env.bpf_root).unwrap();
    assert_eq!(bpf.veid_of(cgid).unwrap(), Some(101));
    let dump = Command::new("bpftool")
        .args(["-j", "map", "lookup", "pinned"])
        .arg(env.bpf_root.join("maps/VZ_VEIDS_V1"))
        .arg("key")
        .args(cgid.to_le_bytes().iter().map(|b| b.to_string()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains(r#""value":["0x65","0x00","0x00","0x00"]"#), "bpftool: {text}");
    // The maps carry BTF: bpftool prints their values with field names.
    let f = Command::new("bpftool")
        .args(["map", "dump", "pinned"])
        .arg(env.bpf_root.join("maps/VZ_LIMITS_V1"))
        .output()
        .unwrap();
    let formatted = String::from_utf8_lossy(&f.stdout);
    assert!(formatted.contains("\"barrier\"") || formatted.contains(".barrier = "), "bpftool: {formatted}");
    assert!(text.contains(r#""formatted":{"key":"#) && text.contains(r#""value":101"#), "bpftool: {text}");
    // The VE's init is the template's /sbin/init, PID 1 inside.
    assert_eq!(env.ok(&["exec2", "web", "cat /proc/1/comm"]), "init\n");
    assert_eq!(env.vzctl(&["exec2", "101", "exit 7"]).code, 7);
    assert_eq!(env.vzctl(&["exec", "101", "exit 7"]).code, 8);
    assert_eq!(env.vzctl(&["exec", "101", "true"]).code, 0);
    // stdin reaches the command.
    let o = env.cmd("vzctl", &["exec2", "101", "cat"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut o = o;
    std::io::Write::write_all(o.stdin.as_mut().unwrap(), b"piped\n").unwrap();
    drop(o.stdin.take());
    assert_eq!(String::from_utf8(o.wait_with_output().unwrap().stdout).unwrap(), "piped\n");

    let out = env.ok(&["stop", "101"]);
    assert!(out.contains("Container was stopped"), "{out}");
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist unmounted down\n");
    // Nothing of the VE survives a stop.
    assert!(env.cgroup_dirs().is_empty(), "{:?}", env.cgroup_dirs());
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
    assert_eq!(env.ubc_entries(), 0);
    assert_eq!(bpf.veid_of(cgid).unwrap(), None);

    env.ok(&["destroy", "101"]);
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 deleted unmounted down\n");
    assert!(!env.private(101).exists());
}

#[test]
fn isolation() {
    let env = VzEnv::new("iso");
    env.ok(&["create", "101", "--hostname", "inside"]);
    env.ok(&["start", "101"]);
    let x = |c: &str| env.vzctl(&["exec2", "101", c]);

    // A host process the VE must neither see nor signal.
    let mut host = Command::new("sleep").arg("60").spawn().unwrap();
    let hp = host.id();
    let ps = x("ps -o pid,comm").stdout;
    // Only the VE's own: init, perhaps its boot script, this shell and ps.
    assert!(ps.lines().count() < 8 && !ps.contains("sleep"), "VE sees foreign processes:\n{ps}");
    assert!(!x("ls /proc").stdout.split_whitespace().any(|p| p == hp.to_string()));
    let k = x(&format!("kill -9 {hp}"));
    assert_ne!(k.code, 0);
    assert!(host.try_wait().unwrap().is_none(), "VE root killed a host process");
    let _ = host.kill();
    let _ = host.wait();

    // Hostname, mounts, IPC, users are its own.
    assert_eq!(x("hostname").stdout, "inside\n");
    let mounts = x("cat /proc/mounts").stdout;
    assert!(!mounts.contains(&env.dir.to_string_lossy().to_string()), "{mounts}");
    // Of cgroups it sees only its own cgroup2 subtree (its cgroup namespace's root), no
    // host hierarchy.
    let cg: Vec<&str> = mounts.lines().filter(|l| l.contains("/sys/fs/cgroup")).collect();
    assert!(cg.len() == 1 && cg[0].starts_with("cgroup2 /sys/fs/cgroup cgroup2 "), "{mounts}");
    assert_eq!(x("cat /proc/self/cgroup | grep ^0::").stdout, "0::/\n");
    assert!(!x("ls /sys/fs/cgroup").stdout.contains(&env.name), "the host's cgroups are visible");
    let ipc = Command::new("ipcmk").args(["-Q"]).output().unwrap();
    let qid = String::from_utf8_lossy(&ipc.stdout).split_whitespace().last().unwrap_or("").to_string();
    assert!(!x("cat /proc/sysvipc/msg").stdout.lines().skip(1).any(|l| !l.trim().is_empty()), "host queue visible");
    let _ = Command::new("ipcrm").args(["-q", &qid]).status();
    assert_eq!(x("id -u").stdout, "0\n");
    assert!(x("cat /etc/passwd").stdout.starts_with("root:x:0:0:root:/root:/bin/sh"));

    // VE root is the VE's own LOCAL_UID on the host.
    let status = std::fs::read_to_string(format!("/proc/{}/status", env.init_pid(101))).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(uid.split_whitespace().nth(1), Some(env.ids(101).0.to_string().as_str()), "{uid}");

    // No host disks, no device nodes, no kernel modules, no host sysctls.
    let m = x("mount -t ext4 /dev/vda /mnt");
    assert_ne!(m.code, 0);
    let mk = x("mknod /tmp/sda b 8 0");
    assert!(mk.stderr.contains("Operation not permitted"), "{mk:?}");
    // Module loading needs CAP_SYS_MODULE in the host's user namespace, which VE root
    // lacks. A kernel built without modules (no /proc/modules, like this project's CI
    // kernel) refuses everyone with ENOSYS; then the VE must at least be refused too.
    let ins = x("insmod /bin/busybox");
    assert_ne!(ins.code, 0);
    if std::path::Path::new("/proc/modules").exists() {
        assert!(ins.stderr.contains("Operation not permitted"), "{ins:?}");
    }
    assert_ne!(
        std::fs::read_link(format!("/proc/{}/ns/user", env.init_pid(101))).unwrap(),
        std::fs::read_link("/proc/self/ns/user").unwrap(),
        "VE runs in the host's user namespace"
    );
    let sc = x("echo 1 > /proc/sys/kernel/panic_on_oops");
    assert_ne!(sc.code, 0, "VE root changed a host sysctl");
    // Its own loopback, up.
    assert!(x("ip -o link show lo").stdout.contains("UP"));
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn vzlist_formats() {
    let env = VzEnv::new("list");
    for (v, h) in [("101", "b.test"), ("102", "a.test"), ("103", "c.test")] {
        env.ok(&["create", v, "--hostname", h]);
    }
    env.ok(&["set", "103", "--name", "third", "--save"]);
    env.ok(&["start", "101"]);
    env.ok(&["start", "102"]);
    let o = env.vzlist(&[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "      CTID      NPROC STATUS    IP_ADDR         HOSTNAME");
    assert_eq!(lines.len(), 3, "{}", o.stdout);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!((row[0], row[2], row[3], row[4]), ("101", "running", "-", "b.test"));
    assert!(row[1].parse::<u32>().unwrap() >= 1);
    // NPROC is the VE's task count: every process of its cgroup (busybox makes no
    // threads), and one more for a process started in it.
    let nproc = || env.vzlist(&["-H", "-o", "nproc", "101"]).stdout.trim().parse::<usize>().unwrap();
    let procs = || env.cg().procs(101).len();
    assert_eq!(nproc(), procs());
    let before = nproc();
    env.ok(&["exec", "101", "sleep 1000 </dev/null >/dev/null 2>&1 &"]);
    assert_eq!(nproc(), before + 1);
    assert_eq!(nproc(), procs());
    assert_eq!(env.vzlist(&["-H", "-1"]).stdout, "101\n102\n");
    // -S narrows the VEs named too; private and root are the VE's own paths.
    assert_eq!(env.vzlist(&["-S", "-H", "-1", "101", "103"]).stdout, "103\n");
    assert_eq!(
        env.vzlist(&["-H", "-t", "-o", "private,root", "101"]).stdout.split_whitespace().collect::<Vec<_>>(),
        [env.private(101).to_string_lossy(), env.root(101).to_string_lossy()]
    );
    assert_eq!(env.vzlist(&["-a", "-1"]).stdout, "101\n102\n103\n");
    assert_eq!(
        env.vzlist(&["-S", "-H", "-o", "ctid,name,status"]).stdout.split_whitespace().collect::<Vec<_>>(),
        ["103", "third", "stopped"]
    );
    assert_eq!(env.vzlist(&["-a", "-H", "-1", "-s", "hostname"]).stdout, "102\n101\n103\n");
    assert_eq!(env.vzlist(&["-a", "-H", "-1", "-s", "-ctid"]).stdout, "103\n102\n101\n");
    let j = env.vzlist(&["-j", "-o", "ctid,hostname,numtcpsock"]).stdout;
    assert!(j.starts_with("[\n  {\"ctid\": 101, \"hostname\": \"b.test\", \"numtcpsock\": {\"held\": "), "{j}");
    let t = env.vzlist(&["-H", "-o", "ctid,numtcpsock.b,numothersock.l"]).stdout;
    assert_eq!(t.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(), ["101", "360", "360"], "{t}");
    env.vzlist(&["-o", "bogus"]).one_line_error("vzlist", 1, "'bogus'");
    // OpenVZ's vzlist: 1 for any error, a bad option or an unknown VE too.
    env.vzlist(&["--bogus"]).one_line_error("vzlist", 1, "--bogus");
    env.vzlist(&["4242"]).one_line_error("vzlist", 1, "4242");
    // OpenVZ's filters: shell patterns on hostname (-h), name (-N) and description (-d).
    env.ok(&["set", "101", "--description", "web server", "--save"]);
    assert_eq!(env.vzlist(&["-a", "-1", "-h", "a*"]).stdout, "102\n");
    assert_eq!(env.vzlist(&["-a", "-1", "-h", "[bc].test"]).stdout, "101\n103\n");
    assert_eq!(env.vzlist(&["-1", "-h", "[bc].test"]).stdout, "101\n", "running ones only without -a");
    assert_eq!(env.vzlist(&["-a", "-1", "-N", "*"]).stdout, "103\n", "only 103 has a name");
    assert_eq!(env.vzlist(&["-a", "-1", "-d", "web *"]).stdout, "101\n");
    assert_eq!(env.vzlist(&["-a", "-1", "-h", "*", "-d", "db*"]).stdout, "");
    // -j without -o: every field, addresses as a list, yes/no as booleans.
    env.ok(&["set", "101", "--ipadd", "10.77.0.1", "--ipadd", "10.77.0.2", "--onboot", "yes", "--save"]);
    let j = env.vzlist(&["-j", "101"]).stdout;
    for want in [
        "\"ip\": [\"10.77.0.1\", \"10.77.0.2\"]",
        "\"onboot\": true",
        "\"hostname\": \"b.test\"",
        "\"numproc\": {\"held\": ",
        "\"diskspace.h\": ",
        "\"layout\": \"simfs\"",
    ] {
        assert!(j.contains(want), "{want} not in {j}");
    }
    assert!(env.vzlist(&["-j", "-o", "ctid,ip", "103"]).stdout.contains("\"ip\": []"));
    // -L lists every field -o takes.
    let fields = env.vzlist(&["-L"]).stdout;
    for f in ["ctid", "hostname", "numproc", "numproc.b", "privvmpages.f", "diskspace.h"] {
        assert!(fields.lines().any(|l| l == f), "{f} not in -L: {fields}");
    }
    let all = fields.lines().collect::<Vec<_>>().join(",");
    let o = env.vzlist(&["-a", "-H", "-o", &all]);
    assert_eq!(o.code, 0, "every -L field is taken by -o: {}", o.stderr);
    assert!(env.vzlist(&["--help"]).stdout.contains("--hostname"), "--help (-h is the hostname filter)");
    // The admin's loop over running VEs.
    let o = Command::new("sh")
        .args([
            "-c",
            &format!(
                "for i in $({} -H -1); do {} exec2 $i hostname; done",
                bin("vzlist").display(),
                bin("vzctl").display()
            ),
        ])
        .env("VZ_CONF_DIR", env.dir.join("conf"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "b.test\na.test\n");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let env = VzEnv::new("badve");
    env.vzctl(&["create", "100"]).one_line_error("vzctl", 21, "invalid VEID '100'");
    env.vzctl(&["create", "abc"]).one_line_error("vzctl", 21, "invalid VEID 'abc'");
    let o = env.vzctl(&["create", "101", "--ostemplate", "nosuch"]);
    o.one_line_error("vzctl", 47, "'nosuch'");
    assert!(o.stderr.contains("'vzpkg list'"), "names a command that exists: {o:?}");
    assert!(!env.conf_path(101).exists() && !env.private(101).exists(), "a failed create left files");
    env.vzctl(&["create", "101", "--config", "nosample"]).one_line_error("vzctl", 21, "'nosample'");
    env.vzctl(&["start", "101"]).one_line_error("vzctl", 14, "Container 101 does not exist");
    env.ok(&["create", "101"]);
    env.vzctl(&["create", "101"]).one_line_error("vzctl", 44, "Container 101 already exists");
    env.vzctl(&["set", "101", "--bogus", "1", "--save"]).one_line_error("vzctl", 20, "'--bogus'");
    env.vzctl(&["set", "101", "--numtcpsock", "9:3", "--save"]).one_line_error("vzctl", 21, "'9:3'");
    env.vzctl(&["set", "101", "--onboot", "maybe", "--save"]).one_line_error("vzctl", 21, "'maybe'");
    env.vzctl(&["set", "101", "--hostname", "x"]).one_line_error("vzctl", 31, "Container 101 is not running");
    let before = std::fs::read_to_string(env.conf_path(101)).unwrap();
    // A malformed config line: start names file, line and text, and changes nothing.
    std::fs::write(env.conf_path(101), format!("{before}THIS IS BROKEN\n")).unwrap();
    env.vzctl(&["start", "101"]).one_line_error("vzctl", 21, "THIS IS BROKEN");
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist unmounted down\n");
    std::fs::write(env.conf_path(101), &before).unwrap();
    env.ok(&["start", "101"]);
    env.vzctl(&["destroy", "101"]).one_line_error("vzctl", 32, "Container 101 is running");
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist mounted running\n");
    env.vzctl(&["start", "101"]).one_line_error("vzctl", 32, "is running");
    env.ok(&["stop", "--fast", "101"]);
    assert_eq!(std::fs::read_to_string(env.conf_path(101)).unwrap(), before, "config changed by refused commands");
}

#[test]
fn failure_at_any_step_rolls_back() {
    let env = VzEnv::new("rollback");
    for step in ["create:private", "create:root", "create:config", "create:done"] {
        let o = Out2::of(env.cmd("vzctl", &["create", "101"]).env("VZ_FAIL_AT", step).output().unwrap());
        assert_ne!(o.0, 0, "{step}");
        assert!(
            !env.conf_path(101).exists() && !env.private(101).exists() && !env.root(101).exists(),
            "{step} left files"
        );
    }
    env.ok(&["create", "101"]);
    for step in ["start:mount", "start:cgroup", "start:ubc", "start:hostname", "start:init", "start:done"] {
        let o = Out2::of(env.cmd("vzctl", &["start", "101"]).env("VZ_FAIL_AT", step).output().unwrap());
        assert_ne!(o.0, 0, "{step}");
        assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist unmounted down\n", "{step}");
        assert!(env.cgroup_dirs().is_empty(), "{step}: {:?}", env.cgroup_dirs());
        assert!(env.mounts().is_empty(), "{step}: {:?}", env.mounts());
        assert_eq!(env.ubc_entries(), 0, "{step}");
    }
    env.ok(&["start", "101"]);
    env.ok(&["stop", "--fast", "101"]);
}

struct Out2(i32);
impl Out2 {
    fn of(o: std::process::Output) -> Self {
        Out2(o.status.code().unwrap_or(-1))
    }
}

#[test]
fn runs_on_one_veid_are_serialised_and_different_veids_run_in_parallel() {
    let env = VzEnv::new("lock");
    env.ok(&["create", "101"]);
    env.ok(&["create", "102"]);
    let script = env.dir.join("slow.sh");
    std::fs::write(&script, "cut -d' ' -f1 /proc/uptime >> /tmp/t; sleep 0.5; cut -d' ' -f1 /proc/uptime >> /tmp/t\n")
        .unwrap();
    let s = script.to_string_lossy().to_string();
    // runscript on stopped VEs: each run mounts, runs and cleans up under the lock.
    let spans = |veids: &[&str]| -> Vec<(u128, u128)> {
        let kids: Vec<_> = veids
            .iter()
            .map(|v| env.cmd("vzctl", &["runscript", v, &s]).stdout(Stdio::null()).spawn().unwrap())
            .collect();
        for mut k in kids {
            assert!(k.wait().unwrap().success());
        }
        let mut out = Vec::new();
        for v in ["101", "102"] {
            let t = std::fs::read_to_string(env.private(v.parse().unwrap()).join("tmp/t")).unwrap_or_default();
            let n: Vec<u128> = t.lines().map(|l| (l.trim().parse::<f64>().unwrap() * 100.0) as u128).collect();
            out.extend(n.chunks(2).map(|c| (c[0], c[1])));
            let _ = std::fs::remove_file(env.private(v.parse().unwrap()).join("tmp/t"));
        }
        out.sort();
        out
    };
    let same = spans(&["101", "101"]);
    assert_eq!(same.len(), 2);
    assert!(same[0].1 <= same[1].0, "two runs on one VEID overlapped: {same:?}");
    let diff = spans(&["101", "102"]);
    assert_eq!(diff.len(), 2);
    assert!(diff[1].0 < diff[0].1, "runs on different VEIDs did not overlap: {diff:?}");
}

#[test]
fn sigkill_at_any_point_of_start_or_stop_is_recoverable() {
    let env = VzEnv::new("kill9");
    env.ok(&["create", "101"]);
    for delay_ms in [0u64, 5, 10, 20, 40, 80] {
        let mut c = env.cmd("vzctl", &["start", "101"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = c.kill();
        let _ = c.wait();
        let st = env.ok(&["status", "101"]);
        assert!(st.starts_with("VEID 101 exist "), "{st}");
        if st.ends_with("running\n") {
            let mut c = env.cmd("vzctl", &["stop", "101"]).stdout(Stdio::null()).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            let _ = c.kill();
            let _ = c.wait();
        }
        // Whatever was left, the next commands cope.
        let stop = env.vzctl(&["stop", "--fast", "101"]);
        assert_eq!(
            env.ok(&["status", "101"]),
            "VEID 101 exist unmounted down\n",
            "after kill at {delay_ms} ms; stop said {stop:?}; mounts {:?}",
            std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .filter(|l| l.contains(&env.name))
                .collect::<Vec<_>>()
        );
        assert!(env.cgroup_dirs().is_empty() && env.mounts().is_empty(), "leftovers after kill at {delay_ms} ms");
        env.ok(&["start", "101"]);
        env.ok(&["stop", "--fast", "101"]);
    }
    env.ok(&["destroy", "101"]);
}

#[test]
fn host_sees_ve_processes() {
    let env = VzEnv::new("hostps");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    let init = env.init_pid(101);
    let ps = Command::new("ps").args(["-o", "pid=,uid=,comm=", "-p", &init.to_string()]).output().unwrap();
    let line = String::from_utf8_lossy(&ps.stdout);
    assert!(line.contains("init") && line.contains(&env.ids(101).0.to_string()), "{line}");
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn set_applies_live_and_save_persists_keeping_unknown_keys() {
    let env = VzEnv::new("set");
    env.ok(&["create", "101", "--config", "light", "--hostname", "one"]);
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    assert!(conf.contains("NUMTCPSOCK=\"64:64\"") && conf.contains("OSTEMPLATE=\"busybox\""), "{conf}");
    std::fs::write(env.conf_path(101), format!("{conf}# admin note\nMY_KEY=\"keep\"\n")).unwrap();
    env.ok(&["start", "101"]);
    // Sample beancounters are applied at start.
    let ubc = env.ok(&["ubc", "101"]);
    assert!(
        ubc.lines().any(
            |l| l.split_whitespace().rev().take(6).collect::<Vec<_>>() == ["0", "64", "64", "0", "0", "numtcpsock"]
        ),
        "{ubc}"
    );
    env.ok(&["set", "101", "--hostname", "two"]);
    assert_eq!(env.ok(&["exec2", "101", "hostname"]), "two\n");
    assert!(
        std::fs::read_to_string(env.conf_path(101)).unwrap().contains("HOSTNAME=\"one\""),
        "set without --save wrote the config"
    );
    env.ok(&["set", "101", "--numtcpsock", "2", "--description", "a web VE", "--onboot", "yes", "--save"]);
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    for want in ["NUMTCPSOCK=\"2\"", "DESCRIPTION=\"a web VE\"", "ONBOOT=\"yes\"", "# admin note\n", "MY_KEY=\"keep\""]
    {
        assert!(conf.contains(want), "{want} missing:\n{conf}");
    }
    // The new limit is live: a third TCP socket is refused inside the VE.
    let o = env.vzctl(&[
        "exec2",
        "101",
        "for p in 7000 7001; do nc -l -p $p >/dev/null 2>&1 </dev/null & done; sleep 0.3; nc -l -p 7002 </dev/null; echo rc=$?; kill %1 %2",
    ]);
    assert!(o.stdout.contains("rc=1") && o.stderr.contains("No buffer space"), "{o:?}");
    env.ok(&["stop", "--fast", "101"]);
    env.ok(&["start", "101"]);
    assert_eq!(env.ok(&["exec2", "101", "hostname"]), "one\n");
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn runscript_on_running_and_stopped_ves() {
    let env = VzEnv::new("rs");
    env.ok(&["create", "101", "--hostname", "rs.test"]);
    let script = env.dir.join("s.sh");
    std::fs::write(&script, "hostname\necho $$\nexit 3\n").unwrap();
    let s = script.to_string_lossy().to_string();
    let o = env.vzctl(&["runscript", "101", &s]);
    assert_eq!((o.code, o.stdout.as_str()), (3, "rs.test\n1\n"), "{o:?}");
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist unmounted down\n");
    assert!(env.cgroup_dirs().is_empty() && env.mounts().is_empty());
    env.ok(&["start", "101"]);
    let o = env.vzctl(&["runscript", "101", &s]);
    assert_eq!(o.code, 3);
    assert!(o.stdout.starts_with("rs.test\n"), "{o:?}");
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn mount_and_umount() {
    let env = VzEnv::new("mnt");
    env.ok(&["create", "101"]);
    env.ok(&["mount", "101"]);
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist mounted down\n");
    assert!(env.root(101).join("bin/busybox").exists());
    env.ok(&["umount", "101"]);
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist unmounted down\n");
    env.vzctl(&["umount", "101"]).one_line_error("vzctl", 40, "not mounted");
}

#[test]
fn fifty_ves_start_and_stop_without_leaks() {
    let env = VzEnv::new("fifty");
    let ids: Vec<String> = (201..251).map(|i| i.to_string()).collect();
    for v in &ids {
        env.ok(&["create", v]);
    }
    let t = Instant::now();
    for round in 0..2 {
        for v in &ids {
            env.ok(&["start", v]);
        }
        assert_eq!(env.vzlist(&["-H", "-1"]).stdout.lines().count(), 50, "round {round}");
        assert_eq!(env.ubc_entries(), 50);
        for v in &ids {
            env.ok(&["stop", "--fast", v]);
        }
        assert_eq!(env.vzlist(&["-H", "-1"]).stdout, "");
        assert!(env.cgroup_dirs().is_empty(), "cgroups leaked: {:?}", env.cgroup_dirs());
        assert!(env.mounts().is_empty(), "mounts leaked: {:?}", env.mounts());
        assert_eq!(env.ubc_entries(), 0, "BPF records leaked");
    }
    eprintln!("100 starts and stops in {:?}", t.elapsed());
}

/// Reads a pty master into a shared buffer until EOF.
fn pty_reader(master: std::fs::File) -> std::sync::Arc<std::sync::Mutex<String>> {
    let buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut m = master;
        let mut chunk = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut m, &mut chunk) {
            if n == 0 {
                break;
            }
            b.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

fn wait_for(buf: &std::sync::Mutex<String>, needle: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    while !buf.lock().unwrap().contains(needle) {
        assert!(Instant::now() < end, "{needle:?} never appeared in:\n{}", buf.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn enter_gives_a_terminal_with_job_control() {
    use std::{io::Write as _, os::fd::FromRawFd as _, os::unix::process::CommandExt as _};
    let env = VzEnv::new("enter");
    env.ok(&["create", "101", "--hostname", "tty.test"]);
    env.ok(&["start", "101"]);
    // The test is the admin's terminal: a pty whose slave is vzctl's controlling tty.
    let (mut mfd, mut sfd) = (0, 0);
    // SAFETY: openpty fills two fds.
    assert_eq!(
        unsafe { libc::openpty(&mut mfd, &mut sfd, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) },
        0
    );
    // SAFETY: fresh fds from openpty.
    let (master, slave) = unsafe { (std::fs::File::from_raw_fd(mfd), std::fs::File::from_raw_fd(sfd)) };
    let mut cmd = env.cmd("vzctl", &["enter", "101"]);
    cmd.stdin(slave.try_clone().unwrap()).stdout(slave.try_clone().unwrap()).stderr(slave.try_clone().unwrap());
    // SAFETY: setsid and TIOCSCTTY are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    drop(slave);
    let mut w = master.try_clone().unwrap();
    let out = pty_reader(master);
    wait_for(&out, "entered into container 101");
    w.write_all(b"hostname; tty\n").unwrap();
    wait_for(&out, "tty.test");
    // Its terminal comes from the VE's own devpts instance (pts/0 is the VE's console).
    wait_for(&out, "/dev/pts/1");
    w.write_all(b"sleep 300 &\n").unwrap();
    w.write_all(b"jobs\n").unwrap();
    wait_for(&out, "Running");
    w.write_all(b"sleep 301\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    w.write_all(b"\x1a").unwrap(); // ^Z stops the foreground job
    wait_for(&out, "Stopped");
    w.write_all(b"kill -9 %1 %2\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    w.write_all(b"exit\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // ash may first say "You have stopped jobs."; a second exit leaves anyway.
    let _ = w.write_all(b"exit\n");
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "vzctl enter did not exit:\n{}", out.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}\n{}", out.lock().unwrap());
    wait_for(&out, "exited from container 101");
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn debian_template_boots_its_own_init_and_apt_works_offline() {
    let env = VzEnv::new("debian");
    env.debian_template();
    env.ok(&["create", "101", "--ostemplate", "debian-12-minbase", "--hostname", "deb.test"]);
    env.ok(&["start", "101"]);
    // sysvinit is PID 1 and reaches its runlevel.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let o = env.vzctl(&["exec2", "101", "runlevel"]);
        if o.stdout.trim() == "N 2" {
            break;
        }
        assert!(Instant::now() < end, "sysvinit did not reach runlevel 2: {o:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(env.ok(&["exec2", "101", "readlink -f /proc/1/exe"]), "/usr/sbin/init\n");
    assert_eq!(env.ok(&["exec2", "101", "hostname"]), "deb.test\n");
    // No network in the VE: apt installs from the template's cache.
    assert!(env.vzctl(&["exec2", "101", "command -v pstree"]).code != 0);
    let o = env.vzctl(&["exec2", "101", "apt-get install -y --no-download -qq psmisc"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(env.ok(&["exec2", "101", "pstree"]).starts_with("init"));
    // A graceful stop: sysvinit's own halt.
    let out = env.ok(&["stop", "101"]);
    assert!(out.contains("Container was stopped") && !out.contains("Killing"), "{out}");
    env.ok(&["destroy", "101"]);
}

#[test]
fn template_cache_commands() {
    let env = VzEnv::new("pkg");
    let pkg = |args: &[&str]| vz_tests::Out::of(env.cmd("vzpkg", args).output().unwrap());
    assert_eq!(pkg(&["list"]).stdout, "");
    let o = pkg(&["create", "mybox"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(pkg(&["list"]).stdout.starts_with("mybox "));
    env.ok(&["create", "101", "--ostemplate", "mybox"]);
    assert_eq!(pkg(&["remove", "mybox"]).code, 0);
    assert_eq!(pkg(&["list"]).stdout, "");
    env.vzctl(&["create", "102", "--ostemplate", "mybox"]).one_line_error("vzctl", 47, "'mybox'");
    pkg(&["remove", "mybox"]).one_line_error("vzpkg", 47, "'mybox'");
    pkg(&["create", "../evil"]).one_line_error("vzpkg", 47, "'../evil'");
}
