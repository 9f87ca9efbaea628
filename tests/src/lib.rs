//! Fixtures for the root integration tests: each test gets its own cgroup parent and bpffs
//! pin root (never the real /sys/fs/bpf/vz), and every guard undoes what it made on drop,
//! also when the test fails.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use vz::{
    bpf::{Bpf, BpfConfig, Object, Pins},
    cgroup::{self, Cgroups},
};
use vz_common::{UbcLimit, UbcUsage};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call, used for the cgroup parent and pin root.
pub fn unique_name(tag: &str) -> String {
    format!("vzt-{tag}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Directory of the workspace's built binaries (target/debug or target/release).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.is_file(), "{} is missing: build the workspace binaries first (cargo xtask test does)", p.display());
    p
}

/// One test's private world: cgroup parent, pin root, loaded programs and VEs.
pub struct Env {
    pub name: String,
    pub cg: Box<dyn Cgroups>,
    pub cfg: BpfConfig,
    pub bpf: Option<Bpf>,
    ves: Vec<u32>,
}

impl Env {
    /// Makes the cgroup parent and loads the programs into a private pin root.
    pub fn new(tag: &str) -> Self {
        let mut env = Self::bare(tag);
        env.bpf = Some(Bpf::ensure(&env.cfg).expect("load BPF programs"));
        env
    }

    /// Like `new`, without loading anything.
    pub fn bare(tag: &str) -> Self {
        let name = unique_name(tag);
        let cg = cgroup::detect(&name).expect("cgroup layout");
        cg.create_parent().expect("create cgroup parent");
        let mut cfg = BpfConfig::new(PathBuf::from("/sys/fs/bpf").join(&name), cg.parent_dir(), cg.ve_level());
        // Tests run side by side: a small table each (64 KiB).
        cfg.sock_buckets = 1 << 8;
        Self { name, cg, cfg, bpf: None, ves: Vec::new() }
    }

    pub fn bpf(&mut self) -> &mut Bpf {
        self.bpf.as_mut().expect("programs loaded")
    }

    /// Makes a bare-cgroup VE and registers its beancounters; returns its cgroup id.
    pub fn ve(&mut self, veid: u32) -> u64 {
        let id = self.cg.create_ve(veid).expect("create VE cgroup");
        self.ves.push(veid);
        self.bpf().register_ve(id).expect("register VE");
        id
    }

    pub fn ve_dir(&self, veid: u32) -> PathBuf {
        self.cg.ve_dir(veid)
    }

    pub fn id(&self, veid: u32) -> u64 {
        self.cg.ve_id(veid).expect("VE cgroup id")
    }

    pub fn set(&mut self, veid: u32, res: u32, barrier: u64, limit: u64) {
        let id = self.id(veid);
        self.bpf().set_limits(id, &[(res, UbcLimit { barrier, limit })]).expect("set limits");
    }

    pub fn usage(&self, veid: u32, res: u32) -> UbcUsage {
        let id = self.id(veid);
        self.bpf.as_ref().expect("loaded").usage(id).expect("usage").res[res as usize]
    }

    /// Waits until `held` reaches `want` (socket release after a kill is asynchronous to
    /// the killer); returns the last value seen.
    pub fn wait_held(&self, veid: u32, res: u32, want: u64) -> u64 {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let h = self.usage(veid, res).held;
            if h == want || Instant::now() > end {
                return h;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the test helper inside a VE's cgroup.
    pub fn helper(&self, veid: u32) -> Helper {
        Helper::spawn(Some(&self.ve_dir(veid)))
    }

    /// Reloads with a different object identity: what an upgrade does.
    pub fn upgrade(&mut self, generation: u64) -> &mut Bpf {
        let obj = Object::embedded();
        let obj = Object { bytes: obj.bytes, hash: obj.hash ^ generation };
        self.bpf = Some(Bpf::ensure_object(&self.cfg, obj).expect("upgrade"));
        self.bpf()
    }

    /// Removes a VE's cgroup, killing what the test left in it.
    pub fn remove_ve(&mut self, veid: u32) {
        kill_cgroup(&self.ve_dir(veid));
        let _ = self.cg.remove_ve(veid);
        self.ves.retain(|v| *v != veid);
    }
}

/// Kills every process in a cgroup this test made (only processes the test started can be
/// there) and waits until it is empty.
pub fn kill_cgroup(dir: &Path) {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.is_empty() || Instant::now() > end {
            return;
        }
        for pid in pids {
            // SAFETY: signalling a pid in our own test cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for veid in std::mem::take(&mut self.ves) {
            kill_cgroup(&self.cg.ve_dir(veid));
            let _ = self.cg.remove_ve(veid);
        }
        self.bpf = None;
        let _ = Pins { root: self.cfg.pin_root.clone() }.remove_all();
        kill_cgroup(&self.cfg.cgroup_parent);
        let _ = std::fs::remove_dir(&self.cfg.cgroup_parent);
    }
}

/// The `vzt-helper serve` process, driven line by line; killed on drop with any child it
/// forked.
pub struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    forked: Vec<i32>,
}

impl Helper {
    pub fn spawn(cgroup: Option<&Path>) -> Self {
        let mut cmd = Command::new(bin("vzt-helper"));
        if let Some(dir) = cgroup {
            cmd.arg("--cgroup").arg(dir);
        }
        let mut child = cmd
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn vzt-helper");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut h = Self { child, stdin, stdout, forked: Vec::new() };
        assert_eq!(h.cmd("count"), "ok 0", "helper did not start cleanly");
        h
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").and_then(|()| self.stdin.flush()).expect("write to helper");
    }

    pub fn recv(&mut self) -> String {
        let mut s = String::new();
        self.stdout.read_line(&mut s).expect("read from helper");
        s.trim().to_string()
    }

    pub fn cmd(&mut self, line: &str) -> String {
        self.send(line);
        self.recv()
    }

    /// `open KIND`: Ok(fd) or Err(errno).
    pub fn open(&mut self, kind: &str) -> Result<i32, i32> {
        let r = self.cmd(&format!("open {kind}"));
        let (word, n) = r.split_once(' ').unwrap_or((&r, ""));
        let n: i32 = n.trim().parse().unwrap_or_else(|_| panic!("bad reply {r:?}"));
        if word == "ok" { Ok(n) } else { Err(n) }
    }

    pub fn close(&mut self, fd: i32) {
        assert_eq!(self.cmd(&format!("close {fd}")), "ok");
    }

    /// Forks a child that keeps every fd; returns its pid.
    pub fn fork(&mut self) -> i32 {
        let r = self.cmd("fork");
        let pid: i32 = r.strip_prefix("ok ").and_then(|p| p.parse().ok()).expect("fork reply");
        self.forked.push(pid);
        pid
    }

    /// Numbers of a reply `ok A B ...`.
    pub fn nums(reply: &str) -> Vec<u64> {
        reply.split_whitespace().skip(1).map(|n| n.parse().expect("number")).collect()
    }

    /// Kills a forked child and reaps it (it is our grandchild: reaped by init, so poll).
    pub fn kill_forked(&mut self, pid: i32) {
        // SAFETY: a pid this helper forked for the test.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        self.forked.retain(|p| *p != pid);
    }

    /// Kills the helper itself (SIGKILL) and reaps it.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        for pid in self.forked.drain(..) {
            // SAFETY: pids this helper forked for the test.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill_now();
    }
}
