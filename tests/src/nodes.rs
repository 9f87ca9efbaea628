//! Two vzbpf nodes on this machine for migration tests and benchmarks: each its own VZ
//! root, config, bpffs pins, cgroup parent and network namespace, joined by a bridge in a
//! third namespace (the "LAN", where a client lives); the real OpenSSH: sshd (Debian's,
//! unpacked by setup) in the destination's namespace, key authentication.
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{bin_dir, VzEnv};

const SSHD: &str = "/var/cache/vzbpf/openssh/usr/sbin/sshd";
const SSHD_LIBS: &str = "/var/cache/vzbpf/openssh/usr/lib/x86_64-linux-gnu";
/// The migrated VE's address, on the nodes' LAN.
pub const VE_IP: &str = "10.79.0.100";

/// A process of ours, killed (by pid) and reaped when dropped.
pub struct Owned(pub Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A network namespace held by a sleeping process; commands enter it with nsenter.
pub fn netns() -> Owned {
    let holder = Owned(Command::new("unshare").args(["-n", "--", "sleep", "3600"]).spawn().expect("unshare -n"));
    let own = std::fs::read_link("/proc/self/ns/net").expect("own netns");
    let end = Instant::now() + Duration::from_secs(5);
    while std::fs::read_link(format!("/proc/{}/ns/net", holder.0.id())).is_ok_and(|n| n == own) {
        assert!(Instant::now() < end, "unshare -n did not take");
        std::thread::sleep(Duration::from_millis(10));
    }
    holder
}

pub fn in_ns(pid: u32, argv: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.args(["-t", &pid.to_string(), "-n", "--"]).args(argv);
    c
}

fn sh_in(pid: u32, script: &str) {
    let o = in_ns(pid, &["sh", "-ec", script]).output().expect("nsenter");
    assert!(o.status.success(), "{script}: {}", String::from_utf8_lossy(&o.stderr));
}

/// Two nodes on a LAN (10.79.0.0/24: node i at .i, the client at .50), sshd on the second.
pub struct TwoNodes {
    pub src: VzEnv,
    pub dst: VzEnv,
    key: PathBuf,
    // Dropped in this order: sshd, then the LAN.
    _sshd: Owned,
    pub lan: Owned,
}

impl TwoNodes {
    pub fn new(tag: &str) -> Self {
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
        // Root's shell is sh on this node: sshd runs each command through it, and this
        // machine's root bashrc (pyenv init) would add ~100 ms to every remote command, a
        // cost of this build machine's profile, not of a node.
        let mut users: String = std::fs::read_to_string("/etc/passwd")
            .expect("/etc/passwd")
            .lines()
            .map(|l| match l.strip_prefix("root:") {
                Some(rest) => format!("root:{}:/bin/sh\n", rest.rsplit_once(':').map_or(rest, |r| r.0)),
                None => format!("{l}\n"),
            })
            .collect();
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

    pub fn ssh_opts(&self) -> String {
        format!(
            "-p 2222 -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            self.key.display()
        )
    }

    /// A command on the destination, over ssh from the source's namespace.
    pub fn ssh_cmd(&self, argv: &[&str]) -> Command {
        let opts = self.ssh_opts();
        let mut words: Vec<&str> = vec!["ssh", "-o", "BatchMode=yes"];
        words.extend(opts.split(' '));
        words.push("root@10.79.0.2");
        words.extend(argv);
        self.src.in_netns(&words)
    }

    pub fn vzmigrate(&self, extra: &[&str], step_env: Option<(&str, &str)>) -> crate::Out {
        let ssh = format!("--ssh={}", self.ssh_opts());
        let mut args: Vec<&str> = vec![&ssh];
        args.extend(extra);
        args.extend(["root@10.79.0.2", "101"]);
        let mut cmd = self.src.cmd("vzmigrate", &args);
        if let Some((k, v)) = step_env {
            cmd.env(k, v);
        }
        crate::Out::of(cmd.stdin(Stdio::null()).output().expect("vzmigrate"))
    }

    /// The ends of the logs criu left on the destination (for a failure's message).
    pub fn dst_logs(&self) -> String {
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

    pub fn running(&self) -> (bool, bool) {
        let up = |env: &VzEnv| env.ok(&["status", "101"]).contains("running");
        (up(&self.src), up(&self.dst))
    }
}

impl Drop for TwoNodes {
    /// What sshd forked for each connection outlives the listener: every process left in a
    /// node's namespace (ours: nothing else enters it) but its holder goes first.
    fn drop(&mut self) {
        for node in [&self.src, &self.dst] {
            let Some(holder) = node.netns_pid() else { continue };
            let Ok(ns) = std::fs::read_link(format!("/proc/{holder}/ns/net")) else { continue };
            for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
                if pid as u32 != holder && std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|n| n == ns) {
                    // SAFETY: kill(2) of a pid in a namespace only this test uses.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }
}
