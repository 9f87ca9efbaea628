//! Fixtures for the root integration tests: each test gets its own cgroup parent and bpffs
//! pin root (never the real /sys/fs/bpf/vz), and every guard undoes what it made on drop,
//! also when the test fails.
pub mod nodes;

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
        let mut cfg = BpfConfig::for_cgroups(PathBuf::from("/sys/fs/bpf").join(&name), cg.as_ref());
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
        self.bpf().register_ve(id, veid).expect("register VE");
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

/// A pseudo-terminal pair of the test's own (the "admin's terminal"), raw mode.
pub fn openpty() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd as _;
    let (mut m, mut s) = (0, 0);
    // SAFETY: openpty fills two fds; termios is plain data.
    unsafe {
        assert_eq!(libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()), 0);
        let mut t: libc::termios = std::mem::zeroed();
        libc::tcgetattr(s, &mut t);
        libc::cfmakeraw(&mut t);
        libc::tcsetattr(s, libc::TCSANOW, &t);
        (std::os::fd::OwnedFd::from_raw_fd(m), std::os::fd::OwnedFd::from_raw_fd(s))
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
        // create_parent made the parent in every v1 hierarchy too.
        for h in self.cg.v1() {
            let _ = std::fs::remove_dir(h.tree.parent_dir());
        }
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
        let mut child =
            cmd.arg("serve").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn vzt-helper");
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
        if word == "ok" {
            Ok(n)
        } else {
            Err(n)
        }
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

/// Output of a finished command.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn of(o: std::process::Output) -> Self {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        }
    }

    /// Asserts a one-line error on stderr, starting with `prog: ` and naming `needle`.
    pub fn one_line_error(&self, prog: &str, code: i32, needle: &str) {
        assert_eq!(self.code, code, "stdout: {} stderr: {}", self.stdout, self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "error must be one line: {:?}", self.stderr);
        assert!(lines[0].starts_with(&format!("{prog}: ")) && lines[0].contains(needle), "{:?}", lines[0]);
    }
}

/// Environment variables that would redirect vzctl away from a test's own root.
const VZ_VARS: &[&str] = &[
    "VZ_VE_ROOT",
    "VZ_VE_PRIVATE",
    "VZ_TEMPLATE",
    "VZ_LOCKDIR",
    "VZ_BPF_ROOT",
    "VZ_CGROUP_PARENT",
    "VZ_FAIL_AT",
    "VZ_LOG",
];

/// A private VZ installation for one test: its own config dir, VE_ROOT, VE_PRIVATE,
/// TEMPLATE, LOCKDIR, bpffs pin root and cgroup parent. On drop it kills its VEs'
/// processes, unmounts, removes cgroups, pins and files, also after a failed test.
pub struct VzEnv {
    pub name: String,
    pub dir: PathBuf,
    pub bpf_root: PathBuf,
    /// A network namespace of the test's own, held by a sleeping process: with it, every
    /// command runs there, so VE networking never touches the host's network.
    netns: Option<std::process::Child>,
    /// A loop device of the test's own (see `with_disk`) and the I/O scheduler it came
    /// with (loop devices outlive their files: it is restored before the device is detached).
    disk: Option<(String, String)>,
}

impl VzEnv {
    pub fn new(tag: &str) -> Self {
        let name = unique_name(tag);
        let dir = PathBuf::from("/tmp").join(&name);
        let bpf_root = PathBuf::from("/sys/fs/bpf").join(&name);
        std::fs::create_dir_all(dir.join("conf/conf")).expect("mkdir conf");
        let d = dir.display();
        // Host ids of its own (room for 64 VEs, below 2^31), so per-user kernel counts of one test's
        // VEs (inotify instances, keys) never meet another's.
        let ids = 1_000_000 + ((std::process::id() * 64 + SEQ.load(Ordering::Relaxed)) % 480) * 64 * 65536;
        std::fs::write(
            dir.join("conf/vz.conf"),
            format!(
                "VE_ROOT=\"{d}/root/$VEID\"\nVE_PRIVATE=\"{d}/private/$VEID\"\nTEMPLATE=\"{d}/template\"\n\
                 LOCKDIR=\"{d}/lock\"\nDUMPDIR=\"{d}/dump\"\nBPF_ROOT=\"{}\"\nCGROUP_PARENT=\"{name}\"\nSTOP_TIMEOUT=\"10\"\n\
                 LOCAL_UID=\"{ids}\"\nLOCAL_GID=\"{ids}\"\nLOGFILE=\"{d}/vzctl.log\"\nEVENTS_LOG=\"{d}/events.log\"\nLXCFS=\"{d}/lxcfs\"\n",
                bpf_root.display()
            ),
        )
        .expect("write vz.conf");
        let mut env = Self { name, dir, bpf_root, netns: None, disk: None };
        env.make_netns();
        env
    }

    /// Every command of the env runs in a network namespace made for this test, with
    /// loopback up and forwarding on: the "host" side of its VEs (their venet pairs, host
    /// routes), so no test touches the host's own network.
    fn make_netns(&mut self) {
        let env = self;
        let holder = Command::new("unshare").args(["-n", "--", "sleep", "3600"]).spawn().expect("unshare -n");
        env.netns = Some(holder);
        // Wait until the holder is in its new namespace.
        let pid = env.netns_pid().expect("holder pid");
        let own = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|n| n == own) {
            assert!(std::time::Instant::now() < deadline, "unshare -n did not take");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for argv in [
            &["ip", "link", "set", "lo", "up"][..],
            &["sysctl", "-qw", "net.ipv4.ip_forward=1"],
            &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
        ] {
            let ok = env.in_netns(argv).status().expect("configure test netns").success();
            assert!(ok, "{argv:?}");
        }
    }

    /// An env whose private areas live on a disk of their own: an ext4 file system on a
    /// loop device (direct I/O to a sparse file in the test directory), mounted at
    /// `<dir>/private`. Tests may switch its scheduler; the host's disks are never touched.
    pub fn with_disk(tag: &str, mb: u64) -> Self {
        let mut env = Self::new(tag);
        let img = env.dir.join("disk.img");
        std::fs::File::create(&img).and_then(|f| f.set_len(mb << 20)).expect("disk image");
        let o = Command::new("losetup").args(["--direct-io=on", "-f", "--show"]).arg(&img).output().expect("losetup");
        assert!(o.status.success(), "losetup: {}", String::from_utf8_lossy(&o.stderr));
        let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let sched = vz::io::Disk::by_name(&dev).expect("loop device").scheduler().0;
        env.disk = Some((dev.clone(), sched));
        let private = env.dir.join("private");
        std::fs::create_dir_all(&private).expect("mkdir private");
        for argv in [&["mkfs.ext4", "-q", "-F", &dev][..], &["mount", &dev, &private.to_string_lossy()]] {
            let o = Command::new(argv[0]).args(&argv[1..]).output().expect("disk setup");
            assert!(o.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&o.stderr));
        }
        env
    }

    /// The env's own disk, as /sys/block names it (`loop3`).
    pub fn disk_name(&self) -> String {
        self.disk.as_ref().expect("env made with_disk").0.trim_start_matches("/dev/").to_string()
    }

    /// A host program run in a running VE's cgroups (not its namespaces): I/O and CPU it
    /// does are the VE's, while it reads and writes the VE's files through their host path.
    pub fn in_ve_cgroups(&self, veid: u32, prog: &str, args: &[&str]) -> Command {
        use std::os::unix::process::CommandExt as _;
        let procs: Vec<std::ffi::CString> = self
            .cg()
            .ve_dirs(veid)
            .iter()
            .rev()
            .map(|d| std::ffi::CString::new(d.join("cgroup.procs").to_string_lossy().as_bytes()).expect("path"))
            .collect();
        let mut c = Command::new(prog);
        c.args(args);
        // SAFETY: only open/write/close between fork and exec.
        unsafe {
            c.pre_exec(move || {
                for p in &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                    libc::close(fd);
                    if !ok {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        c
    }

    /// Runs fio (Debian's) in a running VE's cgroups on `file` (a host path inside the
    /// VE's root) and returns what it reports.
    pub fn fio(&self, veid: u32, file: &Path, job: &[&str]) -> Fio {
        let name = format!("--name=ve{veid}");
        let filename = format!("--filename={}", file.display());
        let mut args =
            vec![name.as_str(), filename.as_str(), "--direct=1", "--output-format=terse", "--terse-version=3"];
        args.extend_from_slice(job);
        let o = self.in_ve_cgroups(veid, "fio", &args).output().expect("run fio");
        assert!(o.status.success(), "fio {job:?}: {}", String::from_utf8_lossy(&o.stderr));
        Fio::parse(&String::from_utf8_lossy(&o.stdout))
    }

    /// The process holding this env's network namespace.
    pub fn netns_pid(&self) -> Option<u32> {
        self.netns.as_ref().map(std::process::Child::id)
    }

    /// A command run in this env's network namespace (or here, without one).
    pub fn in_netns(&self, argv: &[&str]) -> Command {
        match self.netns_pid() {
            Some(pid) => {
                let mut c = Command::new("nsenter");
                c.args(["-t", &pid.to_string(), "-n", "--"]).args(argv);
                c
            }
            None => {
                let mut c = Command::new(argv[0]);
                c.args(&argv[1..]);
                c
            }
        }
    }

    /// Like `cmd`, for a binary at `path` (e.g. an older vzctl the bench compares with).
    pub fn cmd_at(&self, path: &Path, args: &[&str]) -> Command {
        self.with_env(self.in_netns(&[path.to_str().expect("utf-8 path")]), args)
    }

    pub fn cmd(&self, prog: &str, args: &[&str]) -> Command {
        let path = bin(prog);
        self.with_env(self.in_netns(&[path.to_str().expect("utf-8 path")]), args)
    }

    /// Like `cmd`, but in the caller's own network namespace: for runs that must not pass
    /// through nsenter (an unprivileged caller could not enter the test's namespace).
    pub fn cmd_here(&self, prog: &str, args: &[&str]) -> Command {
        self.with_env(Command::new(bin(prog)), args)
    }

    fn with_env(&self, mut c: Command, args: &[&str]) -> Command {
        c.args(args).env("VZ_CONF_DIR", self.dir.join("conf"));
        for v in VZ_VARS {
            c.env_remove(v);
        }
        c
    }

    pub fn vzctl(&self, args: &[&str]) -> Out {
        Out::of(self.cmd("vzctl", args).stdin(Stdio::null()).output().expect("run vzctl"))
    }

    /// Runs vzctl with a terminal (a fresh pty's slave) as its standard input, as an admin
    /// at a terminal runs `vzctl enter`; stdout and stderr are read as `vzctl` reads them.
    pub fn vzctl_on_tty(&self, args: &[&str]) -> Out {
        let (_master, slave) = openpty();
        Out::of(self.cmd("vzctl", args).stdin(slave).output().expect("run vzctl"))
    }

    /// Runs vzctl and asserts it succeeded; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.vzctl(args);
        assert_eq!(o.code, 0, "vzctl {args:?} failed: {}{}", o.stdout, o.stderr);
        o.stdout
    }

    pub fn vzlist(&self, args: &[&str]) -> Out {
        Out::of(self.cmd("vzlist", args).output().expect("run vzlist"))
    }

    /// The env's cgroups, found as vzctl finds them (anchored where the first vzctl ran).
    pub fn cg(&self) -> Box<dyn Cgroups> {
        cgroup::detect_anchored(&self.name, &self.dir.join("lock/cgroup-anchor")).expect("cgroups")
    }

    /// A VE's host id range (its root's host uid and gid), from its config.
    pub fn ids(&self, veid: u32) -> (u32, u32) {
        let conf = std::fs::read_to_string(self.conf_path(veid)).expect("VE config");
        let get = |k: &str| -> u32 {
            conf.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.trim_matches('"').parse().ok())
                .unwrap_or_else(|| panic!("{k} missing in {conf}"))
        };
        (get("LOCAL_UID"), get("LOCAL_GID"))
    }

    pub fn conf_path(&self, veid: u32) -> PathBuf {
        self.dir.join(format!("conf/conf/{veid}.conf"))
    }

    pub fn private(&self, veid: u32) -> PathBuf {
        self.dir.join(format!("private/{veid}"))
    }

    pub fn root(&self, veid: u32) -> PathBuf {
        self.dir.join(format!("root/{veid}"))
    }

    /// Host pid of a running VE's init.
    pub fn init_pid(&self, veid: u32) -> i32 {
        self.try_init_pid(veid).expect("VE init")
    }

    /// Host pid of the VE's init, if it has one now.
    pub fn try_init_pid(&self, veid: u32) -> Option<i32> {
        vz::ns::find_init(self.cg().as_ref(), veid)
    }

    /// Every cgroup directory below this env's parents, in every hierarchy.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let cg = self.cg();
        let mut parents = vec![cg.parent_dir()];
        parents.extend(cg.v1().iter().map(|h| h.tree.parent_dir()));
        let mut out = Vec::new();
        for p in parents {
            if let Ok(rd) = std::fs::read_dir(&p) {
                out.extend(rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
            }
        }
        out
    }

    /// Mounts below this env's directory.
    pub fn mounts(&self) -> Vec<String> {
        let mut all = self.all_mounts();
        // The node's LXCFS (started by the env's first VE start) serves every VE and stays.
        let lxcfs = self.dir.join("lxcfs").to_string_lossy().to_string();
        all.retain(|m| *m != lxcfs);
        all
    }

    /// Every mount below the env's directory, the node's LXCFS included (for cleanup).
    fn all_mounts(&self) -> Vec<String> {
        let prefix = self.dir.to_string_lossy().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(String::from))
            .filter(|m| m.starts_with(&prefix))
            .collect()
    }

    /// Entries in the pinned per-VE usage map.
    pub fn ubc_entries(&self) -> usize {
        match Bpf::open_existing(&self.bpf_root) {
            Ok(b) => b.ve_count().unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Starts `loops` busy loops in a running VE (they end with it).
    pub fn spin(&self, veid: u32, loops: u32) {
        for _ in 0..loops {
            let o = self.vzctl(&["exec", &veid.to_string(), "(while :; do :; done) >/dev/null 2>&1 </dev/null &"]);
            assert_eq!(o.code, 0, "busy loop in {veid}: {}", o.stderr);
        }
    }

    /// CPUs' worth of time each VE used over 4 s (after 1 s to settle), from its cgroup.
    pub fn cpu_used(&self, veids: &[u32]) -> Vec<f64> {
        let cg = self.cg();
        std::thread::sleep(std::time::Duration::from_secs(1));
        let t0 = std::time::Instant::now();
        let u0: Vec<u64> = veids.iter().map(|v| vz::cgroup::cpu_usage_ns(cg.as_ref(), *v).expect("usage")).collect();
        std::thread::sleep(std::time::Duration::from_secs(4));
        let u1: Vec<u64> = veids.iter().map(|v| vz::cgroup::cpu_usage_ns(cg.as_ref(), *v).expect("usage")).collect();
        let wall = t0.elapsed().as_secs_f64();
        u0.iter().zip(&u1).map(|(a, b)| (b - a) as f64 / 1e9 / wall).collect()
    }

    /// Makes the Debian (sysvinit) template available, building it once into a cache shared
    /// by all test runs on this machine (`target/vz-cache`); debootstrap takes a minute.
    pub fn debian_template(&self) {
        self.distro_template(&vz::template::DEBIAN_SYSVINIT);
    }

    /// A debootstrap template in this test's cache, built once for every test run (kept in
    /// target/vz-cache) and linked in.
    pub fn distro_template(&self, distro: &vz::template::Distro) {
        let shared = bin_dir().join("../vz-cache");
        let name = distro.template;
        let file = shared.join(format!("cache/{name}.tar.zst"));
        if !file.exists() {
            let lock = std::fs::File::create(bin_dir().join("../vz-cache.lock")).expect("lock file");
            // SAFETY: flock on an open file; serialises test binaries building the cache.
            unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
            if !file.exists() {
                let kind = match name {
                    vz::template::DEBIAN_SYSTEMD_TEMPLATE => "debian",
                    vz::template::UBUNTU_TEMPLATE => "ubuntu",
                    _ => "debian-sysvinit",
                };
                let o = Command::new(bin("vzpkg"))
                    .args(["create", "--type", kind])
                    .env("VZ_TEMPLATE", &shared)
                    .env("VZ_CONF_DIR", self.dir.join("conf"))
                    .output()
                    .expect("run vzpkg");
                assert!(o.status.success(), "{name} template: {}", String::from_utf8_lossy(&o.stderr));
            }
        }
        let dest = self.dir.join("template/cache");
        std::fs::create_dir_all(&dest).expect("mkdir template cache");
        let target = dest.join(format!("{name}.tar.zst"));
        // Already there (a hard link to the cache): copying would truncate the cache itself.
        if !target.exists() && std::fs::hard_link(&file, &target).is_err() {
            std::fs::copy(&file, &target).expect("copy template");
        }
    }
}

impl Drop for VzEnv {
    fn drop(&mut self) {
        let cg = self.cg();
        // Processes first (only ours can be in our cgroups), then mounts, cgroups, pins.
        for d in self.cgroup_dirs() {
            kill_cgroup(&d);
        }
        let mut mounts = self.all_mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            if let Ok(c) = std::ffi::CString::new(m) {
                // SAFETY: detach a mount below our own test directory.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        if let Some((dev, sched)) = self.disk.take() {
            if let Ok(d) = vz::io::Disk::by_name(&dev) {
                let _ = d.set_scheduler(&sched);
            }
            // Its mount is detached above; the device goes when that is released.
            let _ = Command::new("losetup").args(["-d", &dev]).status();
        }
        for d in self.cgroup_dirs() {
            remove_cgroup_tree(&d);
        }
        let _ = std::fs::remove_dir(cg.parent_dir());
        for h in cg.v1() {
            let _ = std::fs::remove_dir(h.tree.parent_dir());
        }
        let _ = Pins { root: self.bpf_root.clone() }.remove_all();
        // The LXCFS our vzctl started for this env (its mount is detached above), by the pid
        // it wrote, if that pid is still an lxcfs.
        if let Some(pid) =
            std::fs::read_to_string(self.dir.join("lock/lxcfs.pid")).ok().and_then(|p| p.trim().parse::<i32>().ok())
        {
            if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "lxcfs") {
                // SAFETY: a plain kill of a process this env's vzctl started.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // Last: the namespace goes with its holder (and with it any veth end left in it).
        if let Some(mut holder) = self.netns.take() {
            let _ = holder.kill();
            let _ = holder.wait();
        }
    }
}

/// Removes a cgroup directory of the test's own and every cgroup below it, deepest first.
pub fn remove_cgroup_tree(d: &Path) {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(d);
}

/// What one fio job reported (terse format version 3).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fio {
    pub read_bytes: u64,
    pub write_bytes: u64,
    /// Bytes per second.
    pub read_bw: f64,
    pub write_bw: f64,
    pub read_iops: f64,
    pub write_iops: f64,
}

impl Fio {
    pub fn parse(terse: &str) -> Self {
        let line = terse.lines().find(|l| l.starts_with("3;")).unwrap_or_else(|| panic!("no fio result in {terse:?}"));
        let f: Vec<&str> = line.split(';').collect();
        let n = |i: usize| f.get(i - 1).and_then(|v| v.parse::<f64>().ok()).unwrap_or_else(|| panic!("fio field {i}"));
        Self {
            read_bytes: n(6) as u64 * 1024,
            read_bw: n(7) * 1024.0,
            read_iops: n(8),
            write_bytes: n(47) as u64 * 1024,
            write_bw: n(48) * 1024.0,
            write_iops: n(49),
        }
    }
}

/// A child the test started (a daemon), killed by pid and reaped when dropped, also when the
/// test fails: before the env it works in is removed, if declared after it.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` until it holds; fails the test after 20 s naming `what`.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP client (busybox nc, as `cmd` starts it) to an echo server, held open across a
/// checkpoint or a migration; killed when dropped.
pub struct EchoClient {
    nc: Child,
    tx: ChildStdin,
    rx: BufReader<ChildStdout>,
}

impl EchoClient {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut nc = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("nc");
        let tx = nc.stdin.take().expect("stdin");
        let rx = BufReader::new(nc.stdout.take().expect("stdout"));
        Self { nc, tx, rx }
    }

    /// Sends a line and reads the echo (a lost connection ends nc, which ends the read).
    pub fn echo(&mut self, line: &str) -> String {
        writeln!(self.tx, "{line}").expect("send");
        self.tx.flush().expect("flush");
        let mut back = String::new();
        self.rx.read_line(&mut back).expect("read echo");
        back.trim().to_string()
    }
}

impl Drop for EchoClient {
    fn drop(&mut self) {
        let _ = self.nc.kill();
        let _ = self.nc.wait();
    }
}

/// The counter a test's VE 101 keeps in /dev/shm/count.
pub fn shm_counter(env: &VzEnv) -> u64 {
    env.ok(&["exec2", "101", "cat /dev/shm/count"]).trim().parse().expect("count")
}
