//! vzbpf beside the runtimes admins compare it with, in the same rounds: from nothing to
//! a running container whose first `exec true` has returned, on the same busybox root
//! file system (the default template, unpacked and shifted to host ids 100000+ for the
//! peers), each in a user namespace mapping 0 to 100000 and six more namespaces (mount,
//! pid, uts, ipc, net, cgroup). The peers are Debian's crun, LXC and systemd-nspawn
//! (`cargo xtask bench` installs them); each one's container runs `sleep`, and each
//! one's cgroups are made in a subtree of the bench's own, removed at the end.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use vz_tests::VzEnv;

use super::{median, ms, ok};

const SHIFT: u32 = 100_000;
const ROUNDS: usize = 21;
const CYCLE_ROUNDS: usize = 11;
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

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
    // systemd-nspawn refuses a tree without /usr.
    std::fs::create_dir_all(to.join("usr")).expect("mkdir usr");
    shift(to);
}

fn shift(p: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::symlink_metadata(p).expect("stat");
    let (uid, gid) = (m.uid() % SHIFT + SHIFT, m.gid() % SHIFT + SHIFT);
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).expect("lchown");
    if m.is_dir() {
        for e in std::fs::read_dir(p).expect("readdir").flatten() {
            shift(&e.path());
        }
    }
}

/// A crun bundle for `rootfs`: sleep as PID 1, seven namespaces, ids mapped.
fn crun_bundle(dir: &Path, rootfs: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir bundle");
    let ns = ["user", "pid", "mount", "uts", "ipc", "network", "cgroup"]
        .iter()
        .map(|t| format!("{{\"type\":\"{t}\"}}"))
        .collect::<Vec<_>>()
        .join(",");
    let map = format!("[{{\"containerID\":0,\"hostID\":{SHIFT},\"size\":65536}}]");
    let config = format!(
        r#"{{"ociVersion":"1.0.0","process":{{"terminal":false,"user":{{"uid":0,"gid":0}},"args":["/bin/sleep","100000"],"env":["PATH=/bin:/sbin:/usr/bin"],"cwd":"/"}},"root":{{"path":"{}"}},"hostname":"peer","mounts":[{{"destination":"/proc","type":"proc","source":"proc"}},{{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755","size=1m"]}}],"linux":{{"namespaces":[{ns}],"uidMappings":{map},"gidMappings":{map}}}}}"#,
        rootfs.display()
    );
    std::fs::write(dir.join("config.json"), config).expect("write config.json");
}

/// A process holding a mount namespace of its own in which /sys/fs/cgroup is the host's
/// cgroup2 hierarchy alone: crun refuses this host's hybrid layout, and sees a pure
/// cgroup2 host there (it makes no cgroups: `--cgroup-manager=disabled`). Nothing of the
/// host's mounts changes. Killed when dropped.
struct CrunView(Child);

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
        BufReader::new(out).read_line(&mut line).expect("holder");
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

/// crun through the holder's mount namespace, with the bench's state directory.
fn crun(view: &CrunView, state: &str, args: &[&str]) -> bool {
    let holder = view.0.id().to_string();
    let mut argv = vec!["nsenter", "-t", &holder, "-m", "crun", "--root", state, "--cgroup-manager=disabled"];
    argv.extend_from_slice(args);
    run(&argv)
}

/// run detached, exec true.
fn crun_start(view: &CrunView, state: &str, bundle: &str, id: &str) {
    assert!(crun(view, state, &["run", "--detach", "--bundle", bundle, id]), "crun run");
    assert!(crun(view, state, &["exec", id, "/bin/true"]), "crun exec");
}

/// kill and delete.
fn crun_stop(view: &CrunView, state: &str, id: &str) {
    crun(view, state, &["kill", id, "KILL"]);
    let end = Instant::now() + Duration::from_secs(10);
    while !crun(view, state, &["delete", "--force", id]) {
        assert!(Instant::now() < end, "crun delete {id}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A cgroup directory of the bench's own in every hierarchy of the host (`name` below each
/// hierarchy's root); everything below it is removed, deepest first, when dropped. The
/// peers' processes are gone by then (each round stops its container).
struct BenchCgroups(String);

impl BenchCgroups {
    fn hierarchies() -> Vec<PathBuf> {
        std::fs::read_dir(CGROUP_ROOT)
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.join("cgroup.procs").exists()).collect())
            .unwrap_or_default()
    }
}

impl Drop for BenchCgroups {
    fn drop(&mut self) {
        for h in Self::hierarchies() {
            vz_tests::remove_cgroup_tree(&h.join(&self.0));
        }
    }
}

/// An LXC container `name` under `lxcpath`: sleep as init, no network devices (an empty
/// network namespace, like crun's), its monitor's and payload's cgroups below the bench's
/// own `cgroups` directory (LXC would make them beside the caller's otherwise: the root of
/// the host's hierarchies here).
fn lxc_config(lxcpath: &Path, name: &str, rootfs: &Path, cgroups: &str) {
    let dir = lxcpath.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir lxc container dir");
    let config = format!(
        "lxc.uts.name = peer\n\
         lxc.rootfs.path = dir:{}\n\
         lxc.idmap = u 0 {SHIFT} 65536\n\
         lxc.idmap = g 0 {SHIFT} 65536\n\
         lxc.net.0.type = empty\n\
         lxc.apparmor.profile = unconfined\n\
         lxc.init.cmd = /bin/sleep 100000\n\
         lxc.mount.auto = proc:rw\n\
         lxc.autodev = 1\n\
         lxc.tty.max = 0\n\
         lxc.pty.max = 0\n\
         lxc.console.path = none\n\
         lxc.cgroup.dir.monitor = {cgroups}/monitor\n\
         lxc.cgroup.dir.monitor.pivot = {cgroups}/pivot\n\
         lxc.cgroup.dir.container = {cgroups}/payload\n",
        rootfs.display()
    );
    std::fs::write(dir.join("config"), config).expect("write lxc config");
}

/// lxc-start -d, lxc-attach true.
fn lxc_start(lxcpath: &str, name: &str) {
    assert!(run(&["lxc-start", "-P", lxcpath, "-n", name, "-d"]), "lxc-start");
    assert!(run(&["lxc-attach", "-P", lxcpath, "-n", name, "--", "/bin/true"]), "lxc-attach");
}

fn lxc_stop(lxcpath: &str, name: &str) {
    assert!(run(&["lxc-stop", "-P", lxcpath, "-n", name, "-k"]), "lxc-stop");
}

/// A shell in the bench's own cgroup (the unified and name=systemd hierarchies, where
/// systemd-nspawn --keep-unit makes its `supervisor` and `payload` cgroups beside the
/// caller's) that starts systemd-nspawn when asked and stops it again. A long-lived
/// process, so no round pays for moving a process into that cgroup.
struct NspawnHolder {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl NspawnHolder {
    fn new(rootfs: &Path, machine: &str, cgroups: &str, log: &Path) -> Self {
        let mut join = String::new();
        for h in ["unified", "systemd"] {
            let dir = Path::new(CGROUP_ROOT).join(h).join(cgroups);
            std::fs::create_dir_all(&dir).expect("mkdir nspawn cgroup");
            join.push_str(&format!("echo $$ > {}/cgroup.procs && ", dir.display()));
        }
        let script = format!(
            "{join} echo ready && while read -r cmd; do case $cmd in \
             start) systemd-nspawn -q -D {} --keep-unit --register=no --private-users={SHIFT}:65536 \
               --private-network -M {machine} --kill-signal=SIGKILL /bin/sleep 100000 \
               </dev/null >/dev/null 2>>{} & echo $! ;; \
             stop) kill -TERM $! && wait $!; echo stopped ;; esac; done",
            rootfs.display(),
            log.display()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh");
        let input = child.stdin.take().expect("stdin");
        let output = BufReader::new(child.stdout.take().expect("stdout"));
        let mut h = NspawnHolder { child, input, output };
        assert_eq!(h.line(), "ready", "the nspawn holder in its cgroup");
        h
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.output.read_line(&mut l).expect("holder output");
        l.trim().to_string()
    }

    fn ask(&mut self, what: &str) -> String {
        writeln!(self.input, "{what}").expect("holder input");
        self.line()
    }
}

impl Drop for NspawnHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The container's PID 1 once it has exec'd `sleep`: the child of systemd-nspawn (the
/// outer child that made it has gone by then).
fn nspawn_payload(nspawn: u32, deadline: Instant) -> u32 {
    let children = format!("/proc/{nspawn}/task/{nspawn}/children");
    loop {
        let found = std::fs::read_to_string(&children).unwrap_or_default().split_whitespace().find_map(|c| {
            let comm = std::fs::read_to_string(format!("/proc/{c}/comm")).unwrap_or_default();
            (comm.trim() == "sleep").then(|| c.parse::<u32>().ok()).flatten()
        });
        if let Some(pid) = found {
            return pid;
        }
        assert!(Instant::now() < deadline, "systemd-nspawn's container did not come up (see its log)");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// systemd-nspawn started in the background, then `nsenter --all` into its PID 1 runs
/// true (nspawn has no exec verb without machined).
fn nspawn_start(holder: &mut NspawnHolder) {
    let nspawn: u32 = holder.ask("start").parse().expect("nspawn pid");
    let pid = nspawn_payload(nspawn, Instant::now() + Duration::from_secs(10)).to_string();
    assert!(run(&["nsenter", "-t", &pid, "-a", "/bin/true"]), "nsenter into the nspawn container");
}

fn nspawn_stop(holder: &mut NspawnHolder) {
    assert_eq!(holder.ask("stop"), "stopped");
}

/// The runtimes measured, in their order in the output; vzbpf first.
const CYCLE_NAMES: [&str; 4] = [
    "vzbpf (vzctl create, start, exec, stop --fast, destroy)",
    "crun (cp -a, run -d, exec, kill, delete, rm -rf)",
    "LXC (cp -a, lxc-start -d, lxc-attach, lxc-stop -k, rm -rf)",
    "systemd-nspawn (cp -a, nspawn, nsenter -a, SIGTERM, rm -rf)",
];
const NAMES: [&str; 4] = [
    "vzbpf (vzctl start + exec)",
    "crun (run -d + exec, no cgroups made)",
    "LXC (lxc-start -d + lxc-attach)",
    "systemd-nspawn (+ nsenter -a)",
];

/// Everything a round of any runtime needs.
struct Peers<'a> {
    env: &'a VzEnv,
    present: [bool; 4],
    /// The peers' shared template copy, and where their containers find their root.
    rootfs: PathBuf,
    run_root: PathBuf,
    view: Option<CrunView>,
    state: String,
    bundle: String,
    lxcpath: String,
    holder: Option<NspawnHolder>,
    tag: String,
}

impl Peers<'_> {
    /// Runtime `i` from nothing to its first `exec true` returned; with `cycle`, also
    /// its root made first (`vzctl create`; `cp -a` of the template copy for the peers)
    /// and, timed too, stopped and its root removed (`vzctl destroy`; `rm -rf`). Without
    /// `cycle` the stop is not timed.
    fn round(&mut self, i: usize, cycle: bool) -> f64 {
        let t = Instant::now();
        let veid = if cycle { "102" } else { "101" };
        if cycle {
            if i == 0 {
                ok(self.env, &["create", veid]);
            } else {
                copy_tree(&self.rootfs, &self.run_root);
            }
        }
        match i {
            0 => {
                ok(self.env, &["start", veid]);
                ok(self.env, &["exec", veid, "true"]);
            }
            1 => crun_start(self.view.as_ref().expect("crun"), &self.state, &self.bundle, &self.tag),
            2 => lxc_start(&self.lxcpath, &self.tag),
            _ => nspawn_start(self.holder.as_mut().expect("nspawn")),
        }
        let started = ms(t.elapsed());
        match i {
            0 => ok(self.env, &["stop", "--fast", veid]),
            1 => crun_stop(self.view.as_ref().expect("crun"), &self.state, &self.tag),
            2 => lxc_stop(&self.lxcpath, &self.tag),
            _ => nspawn_stop(self.holder.as_mut().expect("nspawn")),
        }
        if !cycle {
            return started;
        }
        if i == 0 {
            ok(self.env, &["destroy", veid]);
        } else {
            std::fs::remove_dir_all(&self.run_root).expect("rm -rf the container's root");
        }
        ms(t.elapsed())
    }

    /// `rounds` rounds of every runtime present, the order rotating each round so drift
    /// on the VM hits all alike; per runtime the median time and the median of its
    /// per-round ratios to vzbpf.
    fn measure(&mut self, rounds: usize, cycle: bool) -> Vec<(usize, f64, f64)> {
        let mut took: [Vec<f64>; 4] = Default::default();
        let mut ratios: [Vec<f64>; 4] = Default::default();
        for round in 0..rounds {
            let mut this = [0.0; 4];
            for k in 0..4 {
                let i = (round + k) % 4;
                if self.present[i] {
                    this[i] = self.round(i, cycle);
                }
            }
            for i in (0..4).filter(|&i| self.present[i]) {
                took[i].push(this[i]);
                ratios[i].push(this[i] / this[0]);
            }
        }
        (0..4).filter(|&i| self.present[i]).map(|i| (i, median(took[i].clone()), median(ratios[i].clone()))).collect()
    }
}

/// `cp -a from to`: what a peer's admin does to give a container a root of its own.
fn copy_tree(from: &Path, to: &Path) {
    let done = Command::new("cp").arg("-a").arg(from).arg(to).status().expect("cp");
    assert!(done.success(), "cp -a {}", from.display());
}

fn print(results: &[(usize, f64, f64)], rounds: usize, names: &[&str; 4]) {
    for &(i, took, ratio) in results {
        if i == 0 {
            println!("  {}: {took:.1} ms", names[0]);
        } else {
            println!(
                "  {}: {took:.1} ms; its time / vzbpf's {ratio:.2} (median of {rounds} per-round ratios; < 1: faster than vzbpf)",
                names[i]
            );
        }
    }
}

pub fn peers() {
    println!("== peers: the same busybox rootfs, userns 0->100000, 7 namespaces ==");
    let have = |argv: &[&str], name: &str| {
        let there = Command::new(argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !there {
            println!("{name} is not installed (cargo xtask bench installs it): not measured");
        }
        there
    };
    let present = [
        true,
        have(&["crun", "--version"], "crun"),
        have(&["lxc-start", "--version"], "LXC"),
        have(&["systemd-nspawn", "--version"], "systemd-nspawn"),
    ];
    let env = VzEnv::new("bench-peers");
    ok(&env, &["create", "101"]);
    let rootfs = env.dir.join("peer-rootfs");
    peer_rootfs(&env, &rootfs);
    let run_root = env.dir.join("peer-run");
    copy_tree(&rootfs, &run_root);
    let tag = format!("vzbench-peers-{}", std::process::id());
    let cgroups = BenchCgroups(tag.clone());

    let bundle = env.dir.join("crun-bundle");
    crun_bundle(&bundle, &run_root);
    let lxcpath = env.dir.join("lxc");
    lxc_config(&lxcpath, &tag, &run_root, &format!("{tag}/lxc"));
    let mut p = Peers {
        env: &env,
        present,
        view: present[1].then(CrunView::new),
        state: env.dir.join("crun-state").to_string_lossy().into_owned(),
        bundle: bundle.to_string_lossy().into_owned(),
        lxcpath: lxcpath.to_string_lossy().into_owned(),
        holder: present[3]
            .then(|| NspawnHolder::new(&run_root, &tag, &format!("{tag}/nspawn"), &env.dir.join("nspawn.log"))),
        rootfs,
        run_root,
        tag,
    };
    // Warm every one (templates, programs, page cache) once, untimed.
    for i in (0..4).filter(|&i| present[i]) {
        p.round(i, false);
    }
    println!("start to first exec returned ({ROUNDS} rounds):");
    print(&p.measure(ROUNDS, false), ROUNDS, &NAMES);
    // The root the start rounds used goes; each cycle round makes and removes its own.
    std::fs::remove_dir_all(&p.run_root).expect("rm -rf peer-run");
    println!("the whole cycle, from no root to none again ({CYCLE_ROUNDS} rounds):");
    print(&p.measure(CYCLE_ROUNDS, true), CYCLE_ROUNDS, &CYCLE_NAMES);
    drop(p);
    drop(cgroups);
}
