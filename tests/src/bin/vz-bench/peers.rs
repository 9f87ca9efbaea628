//! vzbpf beside the runtimes admins compare it with, in the same rounds: from nothing to
//! a running container whose first `exec true` has returned, on the same busybox root
//! file system (the default template, unpacked and shifted to host ids 100000+ for the
//! peers), each in a user namespace mapping 0 to 100000 and six more namespaces (mount,
//! pid, uts, ipc, net, cgroup). crun (Debian's) only so far.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use vz_tests::VzEnv;

use super::{median, ms, ok};

const SHIFT: u32 = 100_000;
const ROUNDS: usize = 21;

/// Runs `argv`, quietly; whether it succeeded (what it said on failure is printed). Its
/// stderr goes to a file, not a pipe: a detached container inherits it and would keep a
/// pipe open.
fn run(argv: &[&str]) -> bool {
    let log = std::env::temp_dir().join(format!("vz-bench-peer-{}.err", std::process::id()));
    let Ok(err) = std::fs::File::create(&log) else { return false };
    let st = Command::new(argv[0]).args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(err).status();
    let ok = st.is_ok_and(|s| s.success());
    if !ok {
        eprintln!("{argv:?}: {}", std::fs::read_to_string(&log).unwrap_or_default().trim());
    }
    let _ = std::fs::remove_file(&log);
    ok
}

/// The default template unpacked at `to`, every file's owner moved up by SHIFT.
fn peer_rootfs(env: &VzEnv, to: &Path) {
    let cache = env.dir.join("template/cache");
    let tarball = std::fs::read_dir(&cache)
        .expect("template cache")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains(".tar."))
        .expect("a cached template");
    std::fs::create_dir_all(to).expect("mkdir rootfs");
    let unpacked =
        Command::new("tar").arg("--numeric-owner").arg("-C").arg(to).arg("-xf").arg(&tarball).status().expect("tar");
    assert!(unpacked.success());
    shift(to);
}

fn shift(p: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::symlink_metadata(p).expect("stat");
    std::os::unix::fs::lchown(p, Some(m.uid() + SHIFT), Some(m.gid() + SHIFT)).expect("lchown");
    if m.is_dir() {
        for e in std::fs::read_dir(p).expect("readdir").flatten() {
            shift(&e.path());
        }
    }
}

/// A crun bundle for `rootfs`: busybox sh waiting, seven namespaces, ids mapped.
fn crun_bundle(dir: &Path, rootfs: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir bundle");
    let ns = ["user", "pid", "mount", "uts", "ipc", "network", "cgroup"]
        .iter()
        .map(|t| format!("{{\"type\":\"{t}\"}}"))
        .collect::<Vec<_>>()
        .join(",");
    let map = format!("[{{\"containerID\":0,\"hostID\":{SHIFT},\"size\":65536}}]");
    let config = format!(
        r#"{{"ociVersion":"1.0.0","process":{{"terminal":false,"user":{{"uid":0,"gid":0}},"args":["/bin/sh","-c","exec sleep 100000"],"env":["PATH=/bin:/sbin:/usr/bin"],"cwd":"/"}},"root":{{"path":"{}"}},"hostname":"peer","mounts":[{{"destination":"/proc","type":"proc","source":"proc"}},{{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755","size=1m"]}}],"linux":{{"namespaces":[{ns}],"uidMappings":{map},"gidMappings":{map}}}}}"#,
        rootfs.display()
    );
    std::fs::write(dir.join("config.json"), config).expect("write config.json");
}

/// A process holding a mount namespace of its own in which /sys/fs/cgroup is the host's
/// cgroup2 hierarchy alone: crun refuses this host's hybrid layout, and sees a pure
/// cgroup2 host there (it makes no cgroups: `--cgroup-manager=disabled`). Nothing of the
/// host's mounts changes. Killed when dropped.
struct CrunView(std::process::Child);

impl CrunView {
    fn new() -> Self {
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind /sys/fs/cgroup/unified /sys/fs/cgroup && echo ready && exec sleep 100000")
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare");
        let mut v = CrunView(child);
        let mut line = String::new();
        let out = v.0.stdout.as_mut().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("holder");
        assert_eq!(line.trim(), "ready", "the holder's mount namespace");
        v
    }
}

impl Drop for CrunView {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One crun round: run detached, exec true, then kill and delete (not timed).
fn crun_round(view: &CrunView, state: &str, bundle: &str, id: &str) -> f64 {
    let holder = view.0.id().to_string();
    let crun = |args: &[&str]| {
        let mut argv = vec!["nsenter", "-t", &holder, "-m", "crun", "--root", state, "--cgroup-manager=disabled"];
        argv.extend_from_slice(args);
        run(&argv)
    };
    let t = Instant::now();
    assert!(crun(&["run", "--detach", "--bundle", bundle, id]), "crun run");
    assert!(crun(&["exec", id, "/bin/true"]), "crun exec");
    let took = ms(t.elapsed());
    crun(&["kill", id, "KILL"]);
    let end = Instant::now() + std::time::Duration::from_secs(10);
    while !crun(&["delete", "--force", id]) {
        assert!(Instant::now() < end, "crun delete {id}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    took
}

/// vzctl start until its first `exec true` has returned, then stop (not timed).
fn vzbpf_round(env: &VzEnv) -> f64 {
    let t = Instant::now();
    ok(env, &["start", "101"]);
    ok(env, &["exec", "101", "true"]);
    let took = ms(t.elapsed());
    ok(env, &["stop", "--fast", "101"]);
    took
}

pub fn peers() {
    println!("== peers: start to first exec returned (same busybox rootfs, userns 0->100000, 7 namespaces) ==");
    if !run(&["crun", "--version"]) {
        println!("crun is not installed (cargo xtask bench installs it): skipped");
        return;
    }
    let env = VzEnv::new("bench-peers");
    ok(&env, &["create", "101"]);
    let rootfs = env.dir.join("peer-rootfs");
    peer_rootfs(&env, &rootfs);
    let bundle: PathBuf = env.dir.join("crun-bundle");
    crun_bundle(&bundle, &rootfs);
    let state = env.dir.join("crun-state");
    let (state, bundle) = (state.to_string_lossy().into_owned(), bundle.to_string_lossy().into_owned());
    let id = format!("vzbench-{}", std::process::id());
    // Warm both (templates, programs, page cache), then rounds in alternating order.
    vzbpf_round(&env);
    let view = CrunView::new();
    crun_round(&view, &state, &bundle, &id);
    let (mut vz, mut crun, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (v, c) = if round % 2 == 0 {
            let v = vzbpf_round(&env);
            (v, crun_round(&view, &state, &bundle, &id))
        } else {
            let c = crun_round(&view, &state, &bundle, &id);
            (vzbpf_round(&env), c)
        };
        vz.push(v);
        crun.push(c);
        ratios.push(c / v);
    }
    let (v, c) = (median(vz), median(crun));
    println!("vzbpf (vzctl start + exec): {v:.1} ms; crun (run -d + exec, no cgroups made): {c:.1} ms");
    println!("ratio crun/vzbpf (median of {ROUNDS} per-round ratios): {:.2}", median(ratios));
}
