//! PID 1 of a VE: stage 1 (host-owned /dev mounts, the VE's uid, every namespace), then PID 1's own mounts, pivot_root and exec.
use super::*;

pub(super) const SYNC_IN: RawFd = 3;
pub(super) const SYNC_OUT: RawFd = 4;
/// How long a VE's init may take to get from fork to its exec (mounts, pivot_root).
pub(super) const INIT_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    crate::sys::fd::pipe()
}

/// Opens `cgroup.procs` of each of the VE's cgroups, for a child to join before anything
/// else (so BPF accounting applies from the VE's first instruction).
pub(super) fn cgroup_fds(cg: &dyn Cgroups, veid: u32) -> Result<Vec<OwnedFd>, NsError> {
    cg.ve_dirs(veid)
        .iter()
        .rev()
        .map(|d| {
            let p = crate::cgroup::joinable(d).join("cgroup.procs");
            fs::OpenOptions::new().write(true).open(&p).map(OwnedFd::from).map_err(sys(format!("open {}", p.display())))
        })
        .collect()
}

/// A started VE init.
#[derive(Debug)]
pub struct Started {
    /// Host pid of the VE's PID 1.
    pub pid: i32,
    /// With `relay`: our ends of PID 1's stdin, stdout and stderr.
    pub stdio: Option<[OwnedFd; 3]>,
    /// With `console`: the master of the VE's console pty.
    pub console: Option<OwnedFd>,
    /// A pidfd of PID 1, taken while stage 1 (its parent) still waited: so it refers to
    /// this init even if it died at once.
    pub pidfd: Option<OwnedFd>,
}

/// Reads one line from `r` within `deadline`.
pub(super) fn read_line_by(r: &mut BufReader<fs::File>, deadline: Instant) -> io::Result<String> {
    let mut line = String::new();
    loop {
        if !r.buffer().is_empty() {
            let n = r.read_line(&mut line)?;
            if n == 0 || line.ends_with('\n') {
                return Ok(line);
            }
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        if crate::sys::fd::wait_readable(r.get_ref().as_fd(), left)? {
            let n = r.read_line(&mut line)?;
            if n == 0 || line.ends_with('\n') {
                return Ok(line);
            }
        }
    }
}

/// Starts PID 1 of a VE in new namespaces and in the VE's cgroups. Returns once init has
/// been exec'd (or with the reason it could not be).
/// `mark` names each step as it ends (`vzctl -vv` timing).
pub fn start_init(spec: &InitSpec, cg: &dyn Cgroups, veid: u32, mark: &dyn Fn(&str)) -> Result<Started, NsError> {
    let (to_child_r, to_child_w) = pipe().map_err(sys("pipe"))?;
    let (from_child_r, from_child_w) = pipe().map_err(sys("pipe"))?;
    let cgfds = cgroup_fds(cg, veid)?;

    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("__ve-init")
        .arg(&spec.root)
        .arg(&spec.hostname)
        .arg(if spec.relay {
            "relay"
        } else if spec.console {
            "console"
        } else {
            "null"
        })
        .arg(spec.pty_max.map_or_else(|| "-".to_string(), |m| m.to_string()))
        .arg(spec.shm_bytes.map_or_else(|| "-".to_string(), |m| m.to_string()))
        .arg(spec.uid_base.to_string())
        .arg(spec.gid_base.to_string())
        .arg(spec.lxcfs.as_ref().map_or_else(|| "-".into(), |p| p.as_os_str().to_owned()))
        .arg(format!("{:x}", spec.cap_drop))
        .arg(if spec.netfilter_off { "nf-off" } else { "-" })
        .args(&spec.argv)
        .env_clear();
    let pipes = if spec.relay { Some(crate::relay::pipes().map_err(sys("pipe"))?) } else { None };
    match &pipes {
        Some(p) => {
            let dup = |f: &OwnedFd| f.try_clone().map(Stdio::from).map_err(sys("dup pipe"));
            cmd.stdin(dup(&p.child[0])?).stdout(dup(&p.child[1])?).stderr(dup(&p.child[2])?);
        }
        // PID 1 puts the VE's own /dev/null there before its exec.
        None => {
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    crate::sys::spawn::stage1_on_exec(&mut cmd, [(to_child_r, SYNC_IN), (from_child_w, SYNC_OUT)]);
    let spawned = cmd.spawn();
    // Our copies of the child's pipe ends go with `cmd`: EOF then means the child's are gone.
    drop(cmd);
    let mut child = spawned.map_err(sys("spawn VE init"))?;
    let stage1 = child.id() as i32;
    mark("init:spawned");
    // Stage 1 joins the VE's cgroups from here, while it execs and builds its host mounts:
    // a move between cgroups waits out an RCU grace period (about 10 ms here, the largest
    // part of making PID 1). Stage 1 makes nothing of the VE's before "M", which follows
    // the join: the VE's network and cgroup namespaces and PID 1 come after it.
    let mut joining = Some(std::thread::spawn(move || crate::sys::spawn::join_cgroups_of(&cgfds, stage1)));
    let join =
        |j: std::thread::JoinHandle<io::Result<()>>| j.join().unwrap_or_else(|_| Err(io::Error::other("panicked")));
    let mut reader = BufReader::new(fs::File::from(from_child_r));
    let mut writer = fs::File::from(to_child_w);
    let deadline = Instant::now() + INIT_TIMEOUT;

    let result = (|| {
        let line = read_line_by(&mut reader, deadline).map_err(sys("wait for VE init"))?;
        match line.trim() {
            "U" => {}
            l => return Err(NsError::Init(l.strip_prefix("E ").unwrap_or("stage 1 exited").to_string())),
        }
        mark("init:unshared");
        for (file, base) in [("uid_map", spec.uid_base), ("gid_map", spec.gid_base)] {
            let p = format!("/proc/{stage1}/{file}");
            fs::write(&p, format!("0 {base} {}\n", crate::idmap::RANGE)).map_err(sys(format!("write {p}")))?;
        }
        joining.take().map_or(Ok(()), join).map_err(sys("join the VE's cgroups"))?;
        mark("init:cgroups-joined");
        writer.write_all(b"M\n").map_err(sys("write to VE init"))?;
        let mut pid = None;
        let mut err = None;
        let mut console = None;
        let mut pidfd = None;
        loop {
            let l = read_line_by(&mut reader, deadline).map_err(sys("wait for VE init"))?;
            if l.is_empty() {
                break;
            }
            if let Some(p) = l.trim().strip_prefix("P ") {
                mark("init:forked");
                pid = p.trim().parse::<i32>().ok();
                // Only with the console: then stage 1 waits for "K" and cannot have reaped it.
                pidfd = pid.filter(|_| spec.console).and_then(|p| crate::sys::proc::pidfd_open(p).ok());
            } else if let Some(fd) = l.trim().strip_prefix("C ") {
                let pidfd = crate::sys::proc::pidfd_open(stage1).map_err(sys("pidfd of stage 1"))?;
                let fd = fd.parse::<i32>().map_err(|_| NsError::Init(format!("bad console fd line {l:?}")))?;
                console = Some(crate::sys::proc::pidfd_getfd(&pidfd, fd).map_err(sys("take the console's pty"))?);
                writer.write_all(b"K\n").map_err(sys("write to VE init"))?;
                mark("init:console");
            } else if let Some(e) = l.trim().strip_prefix("E ") {
                err.get_or_insert_with(|| e.to_string());
            }
        }
        match (err, pid) {
            (Some(e), _) => Err(NsError::Init(e)),
            (None, Some(_)) if spec.console && console.is_none() => {
                Err(NsError::Init("stage 1 did not hand over the console".into()))
            }
            (None, Some(pid)) => Ok((pid, console, pidfd)),
            (None, None) => Err(NsError::Init("stage 1 exited without starting init".into())),
        }
    })();
    mark("init:execd");
    if result.is_err() {
        // Stage 1 (and so the half-made namespaces) must not outlive the failure.
        let _ = child.kill();
    }
    // Its pid stays stage 1's until it is reaped: no write may come after.
    if let Some(j) = joining.take() {
        let _ = join(j);
    }
    let _ = child.wait();
    mark("init:reaped");
    let (pid, console, pidfd) = result?;
    Ok(Started { pid, stdio: pipes.map(|p| p.ours), console, pidfd })
}

/// Entry of `vzctl __ve-init ROOT HOSTNAME relay|null PTYMAX|- SHMBYTES|- UID GID LXCFS|- CAPDROP nf-off|- ARGV...`
/// (stage 1). Never returns.
///
/// Stage 1 first builds, as host root in a mount namespace of its own, the mounts that
/// carry the VE's limits (/dev, its devpts instance with numpty's `max`, /dev/shm with
/// shmpages' size): their superblocks belong to the host's user namespace, so VE root can
/// neither remount them with other options nor unmount them (they are locked into the
/// VE's namespace). Then it becomes the VE's host uid and unshares the user, mount, UTS,
/// IPC and pid namespaces: the VE's user namespace is owned by the VE's own host uid, so
/// the kernel's per-user counts (inotify instances, user namespaces, queued signals) land
/// on that uid, not on host root. Meanwhile vzctl moves it into the VE's cgroups; after
/// "M" (id maps written, cgroups joined) it unshares the network and cgroup namespaces and
/// forks PID 1.
pub fn stage1_main(args: &[String]) -> ! {
    // Fds 3 and 4 were set up by `start_init` for this process.
    let Some(out) = crate::sys::spawn::take_inherited(SYNC_OUT) else { std::process::exit(1) };
    let mut out = fs::File::from(out);
    let fail = |out: &mut fs::File, msg: String| -> ! {
        let _ = writeln!(out, "E {msg}");
        std::process::exit(1)
    };
    let [root, hostname, stdio, pty_max, shm, uid, gid, lxcfs, caps, nf, argv @ ..] = args else {
        fail(&mut out, "bad __ve-init arguments".into())
    };
    let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else {
        fail(&mut out, "bad __ve-init ids".into())
    };
    if argv.is_empty() {
        fail(&mut out, "no init given".into());
    }
    let root = Path::new(root);
    let limits = (pty_max.parse::<u64>().ok(), shm.parse::<u64>().ok());
    if let Err(e) = host_mounts(root, uid, gid, limits) {
        fail(&mut out, e);
    }
    // Made in the fresh /dev, before anything of the VE runs; vzctl takes the master.
    let console = match stdio.as_str() {
        "console" => match console_pty(root, uid, gid) {
            Ok(m) => Some(m),
            Err(e) => fail(&mut out, e),
        },
        _ => None,
    };
    // The VE's root as the working directory: unshare carries it into the new mount
    // namespace, and PID 1 starts from it (its path's directories are 0700, for host root
    // only).
    if let Err(e) = std::env::set_current_dir(root) {
        fail(&mut out, format!("chdir {}: {e}", root.display()));
    }
    // This process is single-threaded (fresh exec). From here on it holds no capability
    // in the host's user namespace.
    let dropped = become_ids(uid, gid);
    if let Err(e) = dropped {
        fail(&mut out, format!("become the VE's host uid {uid}: {e}"));
    }
    // The network and cgroup namespaces wait for "M": by then vzctl has moved this process
    // into the VE's cgroups, so the network namespace is charged to the VE and the cgroup
    // namespace is rooted at the VE's cgroup.
    let flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWPID;
    if let Err(e) = nix::sched::unshare(flags) {
        fail(&mut out, format!("unshare namespaces: {e}"));
    }
    let _ = writeln!(out, "U");
    let Some(input) = crate::sys::spawn::take_inherited(SYNC_IN) else {
        fail(&mut out, "no sync pipe from the parent".into())
    };
    let mut input = BufReader::new(fs::File::from(input));
    let mut line = String::new();
    if input.read_line(&mut line).is_err() || line.trim() != "M" {
        fail(&mut out, "parent did not write the id maps".into());
    }
    // The maps give this process uid/gid 0 in the new namespace.
    let ids = become_ids(0, 0);
    if let Err(e) = ids {
        fail(&mut out, format!("become VE root: {e}"));
    }
    // Owned by the VE's user namespace (this process's now), as the others.
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWCGROUP) {
        fail(&mut out, format!("unshare network and cgroup namespaces: {e}"));
    }
    match crate::sys::spawn::fork_single_threaded() {
        Err(e) => fail(&mut out, format!("fork: {e}")),
        Ok(ForkResult::Child) => {
            drop(input);
            // The report pipe closes on exec: EOF then means "init runs".
            let _ = nix::fcntl::fcntl(&out, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
            let lxcfs = Some(lxcfs.as_str()).filter(|l| *l != "-");
            let cap_drop = u64::from_str_radix(caps, 16).unwrap_or(0);
            let e = pid1(hostname, stdio == "relay", argv, lxcfs, (cap_drop, nf == "nf-off"));
            fail(&mut out, e)
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = writeln!(out, "P {child}");
            if let Some(m) = &console {
                // vzctl copies the fd out of this process (pidfd_getfd), then says so.
                let _ = writeln!(out, "C {}", std::os::fd::AsRawFd::as_raw_fd(m));
                line.clear();
                let _ = input.read_line(&mut line);
            }
            std::process::exit(0)
        }
    }
}

/// The VE's console: a pty of its own devpts instance (fresh: nothing of the VE's is in
/// it yet), its slave given to VE root (group tty) and linked as /dev/console and
/// /dev/tty1. Returns the master, which only vzctl's console keeper holds.
fn console_pty(root: &Path, uid: u32, gid: u32) -> Result<OwnedFd, String> {
    use crate::sys::inroot;
    use nix::{fcntl::OFlag, sys::stat::Mode};
    let rootfd = inroot::host_dir(root).map_err(|e| format!("open {}: {e}", root.display()))?;
    let dev = inroot::dir_fd(&rootfd, "dev", inroot::Follow::Never).map_err(|e| format!("the VE's /dev: {e}"))?;
    let pts = inroot::dir_fd(&dev, "pts", inroot::Follow::Never).map_err(|e| format!("the VE's /dev/pts: {e}"))?;
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master =
        nix::fcntl::openat(&pts, "ptmx", flags, Mode::empty()).map_err(|e| format!("open /dev/pts/ptmx: {e}"))?;
    wire_console(&dev, &master, uid, gid).map_err(|e| format!("the VE's console: {e}"))?;
    Ok(master)
}

/// Makes `master`'s pty the console of a VE whose /dev is `dev`: its slave given to VE
/// root (group tty, 0620, as devpts gives the VE's own ptys), /dev/console and /dev/tty1
/// linked to it (a link the VE made something other than a symlink is left as it is).
/// Used by stage 1 on the fresh /dev of a start, and on a restored, frozen VE's.
pub fn wire_console(dev: &OwnedFd, master: &OwnedFd, uid: u32, gid: u32) -> io::Result<()> {
    use nix::unistd::{Gid, Uid};
    let slave = crate::sys::tty::pty_peer(master)?;
    let n = crate::sys::tty::pty_number(master)?;
    nix::unistd::fchown(&slave, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid + 5)))?;
    nix::sys::stat::fchmod(&slave, nix::sys::stat::Mode::from_bits_retain(0o620))?;
    for link in ["console", "tty1"] {
        match nix::sys::stat::fstatat(dev, link, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                nix::unistd::unlinkat(dev, link, nix::unistd::UnlinkatFlags::NoRemoveDir)?;
            }
            Ok(_) => continue,
            Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
        nix::unistd::symlinkat(format!("pts/{n}").as_str(), dev, link)?;
        let (u, g) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        let _ = nix::unistd::fchownat(dev, link, u, g, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
    }
    Ok(())
}

/// No supplementary groups, then gid and uid (real, effective, saved), in a
/// single-threaded process. The groups go first: after the uid changes, this process may
/// no longer have the capability to drop them.
fn become_ids(uid: u32, gid: u32) -> nix::Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let (u, g) = (Uid::from_raw(uid), Gid::from_raw(gid));
    setgroups(&[])?;
    setresgid(g, g, g)?;
    setresuid(u, u, u)
}

/// PID 1 of the VE, before exec: its own /proc and /sys, pivot_root, hostname, loopback,
/// stdio, then init. Returns only on failure, with the reason.
/// `(cap_drop, netfilter_off)`: capabilities to drop; whether the VE is kept from netfilter.
pub(super) fn pid1(
    hostname: &str,
    relay: bool,
    argv: &[String],
    lxcfs: Option<&str>,
    (cap_drop, netfilter_off): (u64, bool),
) -> String {
    if let Err(e) = ve_mounts(lxcfs) {
        return e;
    }
    if let Err(e) = nix::unistd::sethostname(hostname) {
        return format!("sethostname {hostname}: {e}");
    }
    if let Err(e) = crate::sys::net::loopback_up() {
        return format!("bring up lo: {e}");
    }
    if !relay {
        // The VE's own /dev/null (not a host fd: CRIU and the VE see only VE files).
        match fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open("/dev/null") {
            Ok(null) => {
                let _ = nix::unistd::dup2_stdin(&null);
                let _ = nix::unistd::dup2_stdout(&null);
                let _ = nix::unistd::dup2_stderr(&null);
            }
            Err(e) => return format!("open /dev/null: {e}"),
        }
    }
    // A new session: init has no controlling terminal of the host.
    let _ = nix::unistd::setsid();
    crate::sys::proc::cloexec_from(3);
    let _ = std::env::set_current_dir("/");
    // In the VE's user namespace now (entering it filled the bounding set): the
    // capabilities turned off go, for init and all it starts.
    if let Err(e) = crate::sys::proc::capbset_drop(cap_drop) {
        return format!("drop capabilities {cap_drop:#x}: {e}");
    }
    // Last, as VE root with every capability of its namespace still effective.
    if netfilter_off {
        if let Err(e) = crate::sys::seccomp::deny_netfilter() {
            return format!("keep the container from netfilter (seccomp): {e}");
        }
    }
    let err = Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/root")
        .env("TERM", "linux")
        .env("container", "vzbpf")
        .exec();
    format!("exec {}: {err}", argv[0])
}

pub(super) fn mount(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
    what: &str,
) -> Result<(), String> {
    nix::mount::mount(src, target, fstype, MsFlags::from_bits_retain(flags), data)
        .map_err(|e| format!("mount {what}: {e}"))?;
    Ok(())
}

/// The host's device nodes a VE's /dev gets (bind mounts).
pub const DEV_NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Stage 1, as host root in a private mount namespace: a mount of the VE's root without
/// the nosuid/nodev the host sees on VE_ROOT, and on it the mounts that carry limits —
/// a small tmpfs /dev owned by VE root with the few host device nodes a VE gets, the VE's
/// devpts instance (numpty as `max`) and /dev/shm (shmpages as its size). Every name in
/// the VE's tree is resolved inside it with no symlink, and mounted on by fd.
pub(super) fn host_mounts(
    root: &Path,
    uid: u32,
    gid: u32,
    (pty_max, shm_bytes): (Option<u64>, Option<u64>),
) -> Result<(), String> {
    use crate::sys::inroot;
    let r = private_ve_root(root)?;
    let rootfd = inroot::host_dir(root).map_err(|e| format!("open {r}: {e}"))?;
    let dev = inroot::ensure_dir(&rootfd, "dev", uid, gid).map_err(|e| format!("the VE's /dev: {e}"))?;
    mount_dev_tmpfs(&inroot::fd_path(&dev), uid, gid)?;
    // The fresh tmpfs: nothing in it is the VE's yet.
    let dev = inroot::dir_fd(&rootfd, "dev", inroot::Follow::Never).map_err(|e| format!("the VE's /dev: {e}"))?;
    use nix::{
        fcntl::{AtFlags, OFlag},
        sys::stat::Mode,
        unistd::{Gid, Uid},
    };
    let owner = |name: &str| {
        let _ = nix::unistd::fchownat(
            &dev,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        );
    };
    for node in DEV_NODES {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
        let f = nix::fcntl::openat(&dev, node, flags, Mode::from_bits_retain(0o644))
            .map_err(|e| format!("create /dev/{node}: {e}"))?;
        mount(Some(&format!("/dev/{node}")), &inroot::fd_path(&f), None, libc::MS_BIND, None, &format!("/dev/{node}"))?;
    }
    for (name, fstype, flags, options) in [
        ("pts", "devpts", libc::MS_NOSUID | libc::MS_NOEXEC, devpts_options(pty_max, gid + 5)),
        ("shm", "tmpfs", libc::MS_NOSUID | libc::MS_NODEV, shm_options(shm_bytes, uid, gid)),
    ] {
        let _ = nix::sys::stat::mkdirat(&dev, name, Mode::from_bits_retain(0o755));
        owner(name);
        let d = inroot::dir_fd(&dev, name, inroot::Follow::Never).map_err(|e| format!("/dev/{name}: {e}"))?;
        mount(
            Some(fstype),
            &inroot::fd_path(&d),
            Some(fstype),
            flags,
            Some(&options),
            &format!("{fstype} on /dev/{name}"),
        )?;
    }
    dev_links(&dev, uid, gid)
}

/// A private mount namespace for this process, and in it the VE's root bound on itself
/// without the nosuid,nodev the host sees (inside, the VE's own setuid programs work).
/// Returns the root as a string.
pub(super) fn private_ve_root(root: &Path) -> Result<&str, String> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare mount namespace: {e}"))?;
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None, "/ private")?;
    let r = root.to_str().ok_or("VE root is not UTF-8")?;
    mount(Some(r), r, None, libc::MS_BIND, None, "VE root")?;
    mount(None, r, None, libc::MS_REMOUNT | libc::MS_BIND, None, "VE root flags")?;
    Ok(r)
}

/// A VE's /dev: a small tmpfs owned by VE root, mounted at `at` by host root.
pub(super) fn mount_dev_tmpfs(at: &str, uid: u32, gid: u32) -> Result<(), String> {
    let options = format!("mode=755,size=1m,nr_inodes=4096,uid={uid},gid={gid}");
    mount(Some("tmpfs"), at, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NOEXEC, Some(&options), "tmpfs on /dev")
}

/// The links of a VE's /dev (ptmx into its devpts, fd and stdio into /proc), VE root's.
pub(super) fn dev_links(dev: &OwnedFd, uid: u32, gid: u32) -> Result<(), String> {
    use nix::unistd::{Gid, Uid};
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        nix::unistd::symlinkat(to, dev, link).map_err(|e| format!("symlink /dev/{link}: {e}"))?;
        let (u, g) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        let _ = nix::unistd::fchownat(dev, link, u, g, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
    }
    Ok(())
}

/// LXCFS's files over the VE's own /proc and /sys ones (the host's tree is still in
/// reach). A file LXCFS does not serve, or that this kernel has not, is left as it is: the
/// view is a courtesy, not a limit.
fn lxcfs_binds(root: &OwnedFd, dir: &str) {
    use crate::sys::inroot;
    for f in crate::lxcfs::FILES {
        let src = format!("{dir}/{f}");
        let Ok(target) = inroot::path_fd(root, f, inroot::Follow::Never) else { continue };
        if std::fs::metadata(&src).is_err() {
            continue;
        }
        let _ = mount(Some(&src), &inroot::fd_path(&target), None, libc::MS_BIND, None, f);
    }
}

/// PID 1, as VE root in the VE's namespaces, in the VE's root (its working directory): a
/// mount of that tree of its own (pivot_root refuses the locked copy of stage 1's), cloned
/// and attached by fd, its /proc and /sys, then pivot_root so the host's tree is gone.
pub(super) fn ve_mounts(lxcfs: Option<&str>) -> Result<(), String> {
    use crate::sys::inroot;
    let root = crate::sys::mount::clone_cwd_tree().map_err(|e| format!("clone and enter the VE's root: {e}"))?;
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let proc_ = inroot::ensure_dir(&root, "proc", 0, 0).map_err(|e| format!("the VE's /proc: {e}"))?;
    mount(Some("proc"), &inroot::fd_path(&proc_), Some("proc"), nosuid, None, "proc")?;
    let sys = inroot::ensure_dir(&root, "sys", 0, 0).map_err(|e| format!("the VE's /sys: {e}"))?;
    let sysp = inroot::fd_path(&sys);
    if mount(Some("sysfs"), &sysp, Some("sysfs"), nosuid | libc::MS_RDONLY, None, "sysfs").is_err() {
        mount(Some("/sys"), &sysp, None, libc::MS_BIND | libc::MS_REC, None, "/sys")?;
        mount(None, &sysp, None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | nosuid, None, "/sys read-only")?;
    }
    // The VE's own cgroup2 subtree (its cgroup namespace is rooted at the VE's cgroup,
    // which vzctl delegated to VE root): systemd runs its units in cgroups below it.
    let cgroup = inroot::path_fd(&root, "sys/fs/cgroup", inroot::Follow::Never)
        .map_err(|e| format!("the VE's /sys/fs/cgroup: {e}"))?;
    mount(Some("cgroup2"), &inroot::fd_path(&cgroup), Some("cgroup2"), nosuid, None, "cgroup2 on /sys/fs/cgroup")?;
    drop(cgroup);
    // /run and /run/lock as tmpfs, as systemd's container interface asks (and sysvinit's
    // initscripts make them): a guest without /run (busybox) is left as it is. Their pages
    // are charged to the VE's memory like any it writes.
    if let Ok(run) = inroot::dir_fd(&root, "run", inroot::Follow::Never) {
        mount(
            Some("tmpfs"),
            &inroot::fd_path(&run),
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some("mode=755,size=20%"),
            "tmpfs on /run",
        )?;
        drop(run);
        let run = inroot::dir_fd(&root, "run", inroot::Follow::Never).map_err(|e| format!("the VE's /run: {e}"))?;
        let lock = inroot::ensure_dir(&run, "lock", 0, 0).map_err(|e| format!("the VE's /run/lock: {e}"))?;
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        mount(
            Some("tmpfs"),
            &inroot::fd_path(&lock),
            Some("tmpfs"),
            flags,
            Some("mode=1777,size=5m"),
            "tmpfs on /run/lock",
        )?;
    }
    if let Some(dir) = lxcfs {
        lxcfs_binds(&root, dir);
    }
    drop((proc_, sys, root));
    // pivot_root(".", "."): the old root ends up on top of the new one and is detached.
    crate::sys::mount::pivot_to_cwd().map_err(|e| format!("pivot_root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))
}
