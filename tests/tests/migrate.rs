//! `vzmigrate` between two vzbpf nodes on this machine: each its own VZ root, config, bpffs
//! pins, cgroup parent and network namespace, joined by a bridge in a third namespace (the
//! "LAN", where the client lives); the real OpenSSH: sshd (Debian's, unpacked by setup) in
//! the destination's namespace, key authentication, rsync over it.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::PathBuf,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use vz_tests::{bin_dir, VzEnv};

const SSHD: &str = "/var/cache/vzbpf/openssh/usr/sbin/sshd";
const SSHD_LIBS: &str = "/var/cache/vzbpf/openssh/usr/lib/x86_64-linux-gnu";
const VE_IP: &str = "10.79.0.100";

/// One at a time: each makes two nodes and runs criu.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A process of ours, killed (by pid) and reaped when dropped.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A network namespace held by a sleeping process; commands enter it with nsenter.
fn netns() -> Owned {
    let holder = Owned(Command::new("unshare").args(["-n", "--", "sleep", "3600"]).spawn().expect("unshare -n"));
    let own = std::fs::read_link("/proc/self/ns/net").expect("own netns");
    let end = Instant::now() + Duration::from_secs(5);
    while std::fs::read_link(format!("/proc/{}/ns/net", holder.0.id())).is_ok_and(|n| n == own) {
        assert!(Instant::now() < end, "unshare -n did not take");
        std::thread::sleep(Duration::from_millis(10));
    }
    holder
}

fn in_ns(pid: u32, argv: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.args(["-t", &pid.to_string(), "-n", "--"]).args(argv);
    c
}

fn sh_in(pid: u32, script: &str) {
    let o = in_ns(pid, &["sh", "-ec", script]).output().expect("nsenter");
    assert!(o.status.success(), "{script}: {}", String::from_utf8_lossy(&o.stderr));
}

/// Two nodes on a LAN (10.79.0.0/24: node i at .i, the client at .50), sshd on the second.
struct TwoNodes {
    src: VzEnv,
    dst: VzEnv,
    key: PathBuf,
    // Dropped in this order: sshd, then the LAN.
    _sshd: Owned,
    lan: Owned,
}

impl TwoNodes {
    fn new(tag: &str) -> Self {
        let src = VzEnv::new(&format!("{tag}-a"));
        let dst = VzEnv::new(&format!("{tag}-b"));
        let lan = netns();
        let lp = lan.0.id();
        sh_in(
            lp,
            "ip link set lo up; ip link add br0 type bridge; ip addr add 10.79.0.50/24 dev br0; ip link set br0 up",
        );
        for (i, node) in [(1, &src), (2, &dst)] {
            let np = node.netns_pid().expect("node netns");
            sh_in(
                lp,
                &format!("ip link add lan{i} type veth peer name eth0 netns {np}; ip link set lan{i} master br0 up"),
            );
            sh_in(np, &format!("ip addr add 10.79.0.{i}/24 dev eth0; ip link set eth0 up"));
        }
        let ssh = dst.dir.join("ssh");
        std::fs::create_dir_all(&ssh).expect("mkdir ssh");
        let key = ssh.join("id");
        for (file, comment) in [(&key, "client"), (&ssh.join("host"), "host")] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(file)
                .status()
                .expect("ssh-keygen")
                .success();
            assert!(ok, "ssh-keygen");
        }
        std::fs::copy(key.with_extension("pub"), ssh.join("authorized_keys")).expect("authorized_keys");
        let path = format!("{}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir().display());
        let conf = ssh.join("sshd_config");
        std::fs::write(
            &conf,
            format!(
                "Port 2222\nListenAddress 10.79.0.2\nHostKey {h}\nAuthorizedKeysFile {a}\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\nPidFile none\n\
                 LogLevel ERROR\nSetEnv PATH={path} VZ_CONF_DIR={c}\n\
                 ForceCommand nsenter --mount=/proc/{me}/ns/mnt -- /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n",
                h = ssh.join("host").display(),
                a = ssh.join("authorized_keys").display(),
                c = dst.dir.join("conf").display(),
                me = std::process::id(),
            ),
        )
        .expect("sshd_config");
        // sshd wants its privilege separation user and /run/sshd, which this machine has
        // not (openssh-server is unpacked, not installed): it runs in a mount namespace of
        // its own with both, and the sessions it starts go back to ours (ForceCommand), so
        // the destination's vzctl works on the same mounts as everything else here.
        let passwd = ssh.join("passwd");
        let mut users = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
        users.push_str("sshd:x:64999:65534::/run/sshd:/usr/sbin/nologin\n");
        std::fs::write(&passwd, users).expect("passwd");
        let np = dst.netns_pid().expect("node netns");
        let script = format!(
            "mount -t tmpfs -o mode=755 tmpfs /run && mkdir /run/sshd && mount --bind {p} /etc/passwd && \
             exec nsenter -t {np} -n -- {SSHD} -D -e -f {c}",
            p = passwd.display(),
            c = conf.display()
        );
        let sshd = Owned(
            Command::new("unshare")
                .args(["-m", "--propagation", "private", "--", "sh", "-ec", &script])
                .env("LD_LIBRARY_PATH", SSHD_LIBS)
                .stdin(Stdio::null())
                .spawn()
                .expect("sshd (xtask setup unpacks it)"),
        );
        let nodes = Self { src, dst, key, _sshd: sshd, lan };
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let o = nodes.ssh_cmd(&["vzctl", "status", "999"]).output().expect("ssh");
            if o.status.success() {
                assert!(String::from_utf8_lossy(&o.stdout).contains("VEID 999 deleted"), "remote vzctl");
                break;
            }
            assert!(Instant::now() < end, "sshd did not answer: {}", String::from_utf8_lossy(&o.stderr));
            std::thread::sleep(Duration::from_millis(100));
        }
        nodes
    }

    fn ssh_opts(&self) -> String {
        format!(
            "-p 2222 -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            self.key.display()
        )
    }

    /// A command on the destination, over ssh from the source's namespace.
    fn ssh_cmd(&self, argv: &[&str]) -> Command {
        let opts = self.ssh_opts();
        let mut words: Vec<&str> = vec!["ssh", "-o", "BatchMode=yes"];
        words.extend(opts.split(' '));
        words.push("root@10.79.0.2");
        words.extend(argv);
        self.src.in_netns(&words)
    }

    fn vzmigrate(&self, extra: &[&str], step_env: Option<(&str, &str)>) -> vz_tests::Out {
        let ssh = format!("--ssh={}", self.ssh_opts());
        let mut args: Vec<&str> = vec![&ssh];
        args.extend(extra);
        args.extend(["root@10.79.0.2", "101"]);
        let mut cmd = self.src.cmd("vzmigrate", &args);
        if let Some((k, v)) = step_env {
            cmd.env(k, v);
        }
        vz_tests::Out::of(cmd.stdin(Stdio::null()).output().expect("vzmigrate"))
    }

    /// The ends of the logs criu left on the destination (for a failure's message).
    fn dst_logs(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(self.dst.dir.join("dump")).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().ends_with(".log") {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(25).collect();
                out.push_str(&format!("--- {}\n", e.path().display()));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    fn running(&self) -> (bool, bool) {
        let up = |env: &VzEnv| env.ok(&["status", "101"]).contains("running");
        (up(&self.src), up(&self.dst))
    }
}

/// A TCP client on the LAN (busybox nc), held open across the migration.
struct Client {
    _nc: Owned,
    tx: ChildStdin,
    rx: BufReader<ChildStdout>,
}

impl Client {
    fn connect(lan: u32) -> Self {
        let mut nc = in_ns(lan, &["busybox", "nc", VE_IP, "7000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("nc");
        let tx = nc.stdin.take().expect("stdin");
        let rx = BufReader::new(nc.stdout.take().expect("stdout"));
        Self { _nc: Owned(nc), tx, rx }
    }

    fn echo(&mut self, line: &str) -> String {
        writeln!(self.tx, "{line}").expect("send");
        self.tx.flush().expect("flush");
        let mut back = String::new();
        self.rx.read_line(&mut back).expect("read echo");
        back.trim().to_string()
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn counter(env: &VzEnv) -> u64 {
    env.ok(&["exec2", "101", "cat /dev/shm/count"]).trim().parse().expect("count")
}

/// VE 101 on the source with a counter and a TCP echo server.
fn start_workload(env: &VzEnv) {
    env.ok(&["start", "101"]);
    env.ok(&[
        "exec2",
        "101",
        "setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /dev/shm/count; sleep 0.1; done' \
         </dev/null >/dev/null 2>&1 & setsid nc -ll -p 7000 -e cat </dev/null >/dev/null 2>&1 &",
    ]);
    wait_until("the counter", || env.vzctl(&["exec2", "101", "test -s /dev/shm/count"]).code == 0);
}

#[test]
fn online_migration_keeps_processes_and_a_tcp_connection() {
    let _serial = serial();
    let nodes = TwoNodes::new("mig");
    nodes.src.ok(&["create", "101", "--ipadd", VE_IP, "--hostname", "moved.example"]);
    start_workload(&nodes.src);
    nodes.src.ok(&["exec2", "101", "echo on-disk > /root/file"]);
    let mut client = Client::connect(nodes.lan.0.id());
    assert_eq!(client.echo("before"), "before");
    let pids = nodes.src.ok(&["exec2", "101", "pidof nc"]);
    let before = counter(&nodes.src);

    let o = nodes.vzmigrate(&["--online"], None);
    assert_eq!(o.code, 0, "vzmigrate: {}{}\n{}", o.stdout, o.stderr, nodes.dst_logs());
    assert_eq!(nodes.running(), (false, true), "the VE runs on the destination only");
    // The source's area and config are gone (-r yes); the destination's config is final.
    assert!(nodes.src.ok(&["status", "101"]).contains("deleted"));
    assert!(!nodes.src.private(101).exists(), "source private area left");
    let conf = std::fs::read_to_string(nodes.dst.conf_path(101)).expect("destination config");
    assert!(!conf.contains("MIGRATING"), "{conf}");
    // Same processes, its counter goes on, its files and name came along.
    assert_eq!(nodes.dst.ok(&["exec2", "101", "pidof nc"]), pids);
    let after = counter(&nodes.dst);
    assert!(after >= before, "counter went back: {before} -> {after}");
    wait_until("the counter to go on", || counter(&nodes.dst) > after);
    assert_eq!(nodes.dst.ok(&["exec2", "101", "cat /root/file"]).trim(), "on-disk");
    assert_eq!(nodes.dst.ok(&["exec2", "101", "hostname"]).trim(), "moved.example");
    // The client's connection, made to the source, answers from the destination: the
    // destination answers ARP for the VE's address now, the source no longer does.
    assert_eq!(client.echo("after"), "after");
    let proxies = |env: &VzEnv| {
        String::from_utf8_lossy(&env.in_netns(&["ip", "neigh", "show", "proxy"]).output().expect("ip").stdout)
            .to_string()
    };
    assert!(proxies(&nodes.dst).contains(VE_IP), "destination proxy ARP: {}", proxies(&nodes.dst));
    assert!(!proxies(&nodes.src).contains(VE_IP), "source still answers: {}", proxies(&nodes.src));
    drop(client);
    nodes.dst.ok(&["stop", "101", "--fast"]);
}

#[test]
fn offline_migration_of_a_stopped_and_of_a_running_ve() {
    let _serial = serial();
    let nodes = TwoNodes::new("migoff");
    nodes.src.ok(&["create", "101", "--ipadd", VE_IP]);
    nodes.src.ok(&["start", "101"]);
    nodes.src.ok(&["exec2", "101", "echo one > /root/file"]);
    // Running, without --online: stopped here, copied, started there; -r no keeps it here.
    let o = nodes.vzmigrate(&["-r", "no"], None);
    assert_eq!(o.code, 0, "vzmigrate: {}{}", o.stdout, o.stderr);
    assert_eq!(nodes.running(), (false, true));
    assert!(nodes.src.ok(&["status", "101"]).contains("exist"), "-r no keeps the source");
    assert_eq!(nodes.dst.ok(&["exec2", "101", "cat /root/file"]).trim(), "one");
    nodes.dst.ok(&["stop", "101"]);
    nodes.dst.ok(&["destroy", "101"]);
    // Stopped: only its files and config move.
    let o = nodes.vzmigrate(&[], None);
    assert_eq!(o.code, 0, "vzmigrate: {}{}", o.stdout, o.stderr);
    assert!(nodes.src.ok(&["status", "101"]).contains("deleted"));
    assert_eq!(nodes.dst.ok(&["status", "101"]).trim(), "VEID 101 exist unmounted down");
    nodes.dst.ok(&["start", "101"]);
    assert_eq!(nodes.dst.ok(&["exec2", "101", "cat /root/file"]).trim(), "one");
    nodes.dst.ok(&["stop", "101", "--fast"]);
}

#[test]
fn bad_migrations_say_why_in_one_line_and_change_nothing() {
    let _serial = serial();
    let nodes = TwoNodes::new("migbad");
    nodes.src.ok(&["create", "101", "--ipadd", VE_IP]);
    nodes.src.ok(&["start", "101"]);
    let dst_state = |n: &TwoNodes| {
        let mut l: Vec<String> = std::fs::read_dir(n.dst.dir.join("conf/conf"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        l.sort();
        (l, n.dst.private(101).exists())
    };
    let unchanged = |n: &TwoNodes, before: &(Vec<String>, bool)| {
        assert_eq!(&dst_state(n), before, "the destination changed");
        assert!(n.running().0, "the source VE must run on");
        assert!(!n.src.cg().is_frozen(101), "the source VE must not stay frozen");
    };
    // An unknown VE.
    let o = nodes.src.vzctl(&["status", "101"]);
    assert_eq!(o.code, 0);
    let ssh = format!("--ssh={}", nodes.ssh_opts());
    let unknown = vz_tests::Out::of(
        nodes.src.cmd("vzmigrate", &[&ssh, "root@10.79.0.2", "555"]).stdin(Stdio::null()).output().expect("run"),
    );
    unknown.one_line_error("vzmigrate", 14, "555");
    // The destination cannot be reached (nothing listens on that port).
    let before = dst_state(&nodes);
    let o = vz_tests::Out::of(
        nodes
            .src
            .cmd("vzmigrate", &["--ssh=-p 2299 -o ConnectTimeout=2", "--online", "root@10.79.0.2", "101"])
            .stdin(Stdio::null())
            .output()
            .expect("run"),
    );
    assert_ne!(o.code, 0);
    assert_eq!(o.stderr.trim().lines().count(), 1, "one line: {}", o.stderr);
    assert!(o.stderr.contains("root@10.79.0.2") && o.stderr.contains("ssh"), "{}", o.stderr);
    unchanged(&nodes, &before);
    // The VEID is taken there.
    nodes.dst.ok(&["create", "101"]);
    let before = dst_state(&nodes);
    nodes.vzmigrate(&["--online"], None).one_line_error("vzmigrate", 44, "101");
    unchanged(&nodes, &before);
    nodes.dst.ok(&["destroy", "101"]);
    // Its address is another VE's there.
    nodes.dst.ok(&["create", "102", "--ipadd", VE_IP]);
    let before = dst_state(&nodes);
    nodes.vzmigrate(&["--online"], None).one_line_error("vzmigrate", 78, VE_IP);
    unchanged(&nodes, &before);
    nodes.dst.ok(&["destroy", "102"]);
    // No usable criu there.
    let vzconf = nodes.dst.dir.join("conf/vz.conf");
    let text = std::fs::read_to_string(&vzconf).expect("vz.conf");
    std::fs::write(&vzconf, format!("{text}CRIU=\"/nonexistent/criu\"\n")).expect("vz.conf");
    let before = dst_state(&nodes);
    nodes.vzmigrate(&["--online"], None).one_line_error("vzmigrate", 5, "criu");
    unchanged(&nodes, &before);
    std::fs::write(&vzconf, text).expect("vz.conf");
    nodes.src.ok(&["stop", "101", "--fast"]);
}

/// vzmigrate fails, or is killed, at each step: the next command on the VE settles it,
/// and the VE runs on exactly one node, its counter going on.
#[test]
fn a_migration_failed_or_killed_at_any_step_leaves_the_ve_running_on_one_node() {
    let _serial = serial();
    let nodes = TwoNodes::new("migfail");
    nodes.src.ok(&["create", "101", "--ipadd", VE_IP]);
    start_workload(&nodes.src);
    let steps = [
        "migrate:accepted",
        "migrate:copied",
        "migrate:suspended",
        "migrate:dumped",
        "migrate:sent",
        "migrate:restored",
        "migrate:moved",
    ];
    for how in ["VZ_FAIL_AT", "VZ_KILL_AT"] {
        for step in steps {
            let o = nodes.vzmigrate(&["--online"], Some((how, step)));
            assert_ne!(o.code, 0, "{how}={step} must stop vzmigrate");
            // Any command settles what a killed vzmigrate left (status takes the lock when free).
            let _ = nodes.src.vzctl(&["status", "101"]);
            let (here, there) = nodes.running();
            assert!(here != there, "{how}={step}: running here {here}, there {there}");
            // Once restored there it stays there; before that it is thawed here.
            let moved = matches!(step, "migrate:restored" | "migrate:moved");
            assert_eq!(there, moved, "{how}={step}: on the destination");
            let node = if here { &nodes.src } else { &nodes.dst };
            assert!(!node.cg().is_frozen(101), "{how}={step}: left frozen");
            let c = counter(node);
            wait_until(&format!("{how}={step}: counter"), || counter(node) > c);
            if there {
                // Moved after all: back to the start for the next round.
                nodes.dst.ok(&["stop", "101", "--fast"]);
                nodes.dst.ok(&["destroy", "101"]);
                if nodes.src.vzctl(&["status", "101"]).stdout.contains("deleted") {
                    panic!("{how}={step}: the source config went with the VE stopped there");
                }
                start_workload(&nodes.src);
            } else {
                assert!(
                    !nodes.dst.conf_path(101).exists(),
                    "{how}={step}: the destination kept a copy without --keep-dst"
                );
            }
        }
    }
    nodes.src.ok(&["stop", "101", "--fast"]);
}
