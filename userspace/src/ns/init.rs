//! PID 1 of a VE: stage 1 (host-owned /dev mounts, the VE's uid, every namespace), then PID 1's own mounts, pivot_root and exec.
use super::*;

pub(super) const SYNC_IN: RawFd = 3;
pub(super) const SYNC_OUT: RawFd = 4;
/// How long a VE's init may take to get from fork to its exec (mounts, pivot_root).
pub(super) const INIT_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid out-array of two fds.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: the kernel just returned these fds.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Opens `cgroup.procs` of each of the VE's cgroups, for a child to join before anything
/// else (so BPF accounting applies from the VE's first instruction).
pub(super) fn cgroup_fds(cg: &dyn Cgroups, veid: u32) -> Result<Vec<OwnedFd>, NsError> {
    cg.ve_dirs(veid)
        .iter()
        .rev()
        .map(|d| {
            let p = d.join("cgroup.procs");
            fs::OpenOptions::new().write(true).open(&p).map(OwnedFd::from).map_err(sys(format!("open {}", p.display())))
        })
        .collect()
}

/// Async-signal-safe: moves the calling process into the cgroups behind `fds`.
pub(super) fn join_cgroups(fds: &[RawFd]) -> io::Result<()> {
    for &fd in fds {
        // SAFETY: write of a 1-byte buffer to an open fd.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A started VE init.
#[derive(Debug)]
pub struct Started {
    /// Host pid of the VE's PID 1.
    pub pid: i32,
    /// With `relay`: our ends of PID 1's stdin, stdout and stderr.
    pub stdio: Option<[OwnedFd; 3]>,
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
        let mut pfd = libc::pollfd { fd: r.get_ref().as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(io::Error::last_os_error());
        }
        if n > 0 {
            let n = r.read_line(&mut line)?;
            if n == 0 || line.ends_with('\n') {
                return Ok(line);
            }
        }
    }
}

/// Starts PID 1 of a VE in new namespaces and in the VE's cgroups. Returns once init has
/// been exec'd (or with the reason it could not be).
pub fn start_init(spec: &InitSpec, cg: &dyn Cgroups, veid: u32) -> Result<Started, NsError> {
    let (to_child_r, to_child_w) = pipe().map_err(sys("pipe"))?;
    let (from_child_r, from_child_w) = pipe().map_err(sys("pipe"))?;
    let cgfds = cgroup_fds(cg, veid)?;
    let raw_cg: Vec<RawFd> = cgfds.iter().map(|f| f.as_raw_fd()).collect();
    let (cin, cout) = (to_child_r.as_raw_fd(), from_child_w.as_raw_fd());

    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("__ve-init")
        .arg(&spec.root)
        .arg(&spec.hostname)
        .arg(if spec.relay { "relay" } else { "null" })
        .arg(spec.pty_max.map_or_else(|| "-".to_string(), |m| m.to_string()))
        .arg(spec.shm_bytes.map_or_else(|| "-".to_string(), |m| m.to_string()))
        .arg(spec.uid_base.to_string())
        .arg(spec.gid_base.to_string())
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
    // SAFETY: only async-signal-safe calls (write, dup2, close_range) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            join_cgroups(&raw_cg)?;
            check(libc::dup2(cin, SYNC_IN))?;
            check(libc::dup2(cout, SYNC_OUT))?;
            cloexec_from(SYNC_OUT as u32 + 1);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(sys("spawn VE init"))?;
    drop((to_child_r, from_child_w, cgfds));
    let stage1 = child.id() as i32;
    let mut reader = BufReader::new(fs::File::from(from_child_r));
    let mut writer = fs::File::from(to_child_w);
    let deadline = Instant::now() + INIT_TIMEOUT;

    let result = (|| {
        let line = read_line_by(&mut reader, deadline).map_err(sys("wait for VE init"))?;
        match line.trim() {
            "U" => {}
            l => return Err(NsError::Init(l.strip_prefix("E ").unwrap_or("stage 1 exited").to_string())),
        }
        for (file, base) in [("uid_map", spec.uid_base), ("gid_map", spec.gid_base)] {
            let p = format!("/proc/{stage1}/{file}");
            fs::write(&p, format!("0 {base} {}\n", crate::idmap::RANGE)).map_err(sys(format!("write {p}")))?;
        }
        writer.write_all(b"M\n").map_err(sys("write to VE init"))?;
        let mut pid = None;
        let mut err = None;
        loop {
            let l = read_line_by(&mut reader, deadline).map_err(sys("wait for VE init"))?;
            if l.is_empty() {
                break;
            }
            if let Some(p) = l.trim().strip_prefix("P ") {
                pid = p.trim().parse::<i32>().ok();
            } else if let Some(e) = l.trim().strip_prefix("E ") {
                err.get_or_insert_with(|| e.to_string());
            }
        }
        match (err, pid) {
            (Some(e), _) => Err(NsError::Init(e)),
            (None, Some(pid)) => Ok(pid),
            (None, None) => Err(NsError::Init("stage 1 exited without starting init".into())),
        }
    })();
    if result.is_err() {
        // Stage 1 (and so the half-made namespaces) must not outlive the failure.
        let _ = child.kill();
    }
    let _ = child.wait();
    let pid = result?;
    Ok(Started { pid, stdio: pipes.map(|p| p.ours) })
}

/// Entry of `vzctl __ve-init ROOT HOSTNAME relay|null PTYMAX|- SHMBYTES|- UID GID ARGV...`
/// (stage 1). Never returns.
///
/// Stage 1 first builds, as host root in a mount namespace of its own, the mounts that
/// carry the VE's limits (/dev, its devpts instance with numpty's `max`, /dev/shm with
/// shmpages' size): their superblocks belong to the host's user namespace, so VE root can
/// neither remount them with other options nor unmount them (they are locked into the
/// VE's namespace). Then it becomes the VE's host uid and unshares every namespace: the
/// VE's user namespace is owned by the VE's own host uid, so the kernel's per-user counts
/// (inotify instances, user namespaces, queued signals) land on that uid, not on host root.
pub fn stage1_main(args: &[String]) -> ! {
    // SAFETY: fds 3 and 4 were set up by `start_init` for this process.
    let mut out = unsafe { fs::File::from_raw_fd(SYNC_OUT) };
    let fail = |out: &mut fs::File, msg: String| -> ! {
        let _ = writeln!(out, "E {msg}");
        std::process::exit(1)
    };
    let [root, hostname, stdio, pty_max, shm, uid, gid, argv @ ..] = args else {
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
    // The VE's root as the working directory: unshare carries it into the new mount
    // namespace, and PID 1 starts from it (its path's directories are 0700, for host root
    // only).
    if let Err(e) = std::env::set_current_dir(root) {
        fail(&mut out, format!("chdir {}: {e}", root.display()));
    }
    // SAFETY: plain syscalls; this process is single-threaded (fresh exec). From here on
    // it holds no capability in the host's user namespace.
    let dropped = unsafe {
        check(libc::setgroups(0, std::ptr::null()))
            .and_then(|_| check(libc::setresgid(gid, gid, gid)))
            .and_then(|_| check(libc::setresuid(uid, uid, uid)))
    };
    if let Err(e) = dropped {
        fail(&mut out, format!("become the VE's host uid {uid}: {e}"));
    }
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_NEWPID;
    // SAFETY: plain syscall.
    if let Err(e) = check(unsafe { libc::unshare(flags) }) {
        fail(&mut out, format!("unshare namespaces: {e}"));
    }
    let _ = writeln!(out, "U");
    // SAFETY: fd 3 set up by the parent.
    let mut input = BufReader::new(unsafe { fs::File::from_raw_fd(SYNC_IN) });
    let mut line = String::new();
    if input.read_line(&mut line).is_err() || line.trim() != "M" {
        fail(&mut out, "parent did not write the id maps".into());
    }
    // SAFETY: plain syscalls; the maps give this process uid/gid 0 in the new namespace.
    let ids = unsafe {
        check(libc::setresgid(0, 0, 0))
            .and_then(|_| check(libc::setresuid(0, 0, 0)))
            .and_then(|_| check(libc::setgroups(0, std::ptr::null())))
    };
    if let Err(e) = ids {
        fail(&mut out, format!("become VE root: {e}"));
    }
    // SAFETY: single-threaded process.
    match unsafe { libc::fork() } {
        -1 => fail(&mut out, format!("fork: {}", io::Error::last_os_error())),
        0 => {
            drop(input);
            // SAFETY: make the report pipe close on exec: EOF then means "init runs".
            unsafe { libc::fcntl(SYNC_OUT, libc::F_SETFD, libc::FD_CLOEXEC) };
            let e = pid1(hostname, stdio == "relay", argv);
            fail(&mut out, e)
        }
        pid => {
            let _ = writeln!(out, "P {pid}");
            std::process::exit(0)
        }
    }
}

/// PID 1 of the VE, before exec: its own /proc and /sys, pivot_root, hostname, loopback,
/// stdio, then init. Returns only on failure, with the reason.
pub(super) fn pid1(hostname: &str, relay: bool, argv: &[String]) -> String {
    if let Err(e) = ve_mounts() {
        return e;
    }
    // SAFETY: plain syscall in the VE's own UTS namespace.
    if unsafe { libc::sethostname(hostname.as_ptr().cast(), hostname.len()) } != 0 {
        return format!("sethostname {hostname}: {}", io::Error::last_os_error());
    }
    if let Err(e) = loopback_up() {
        return format!("bring up lo: {e}");
    }
    if !relay {
        // The VE's own /dev/null (not a host fd: CRIU and the VE see only VE files).
        match fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open("/dev/null") {
            Ok(null) => {
                for fd in 0..3 {
                    // SAFETY: dup2 onto the standard fds.
                    unsafe { libc::dup2(null.as_raw_fd(), fd) };
                }
            }
            Err(e) => return format!("open /dev/null: {e}"),
        }
    }
    // SAFETY: a new session: init has no controlling terminal of the host.
    unsafe { libc::setsid() };
    cloexec_from(3);
    let _ = std::env::set_current_dir("/");
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
    let c = |s: Option<&str>| s.map(|s| CString::new(s).unwrap_or_default());
    let (src_c, fs_c, data_c) = (c(src), c(fstype), c(data));
    let target_c = CString::new(target).map_err(|e| e.to_string())?;
    let p = |o: &Option<CString>| o.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: all pointers are NUL-terminated strings or null, alive across the call.
    let r = unsafe { libc::mount(p(&src_c), target_c.as_ptr(), p(&fs_c), flags, p(&data_c).cast()) };
    if r != 0 {
        return Err(format!("mount {what}: {}", io::Error::last_os_error()));
    }
    Ok(())
}

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
    // SAFETY: plain syscall; this process is single-threaded.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) }).map_err(|e| format!("unshare mount namespace: {e}"))?;
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None, "/ private")?;
    let r = root.to_str().ok_or("VE root is not UTF-8")?;
    mount(Some(r), r, None, libc::MS_BIND, None, "VE root")?;
    // Inside, the VE's own setuid programs work; the host's view stays nosuid,nodev.
    mount(None, r, None, libc::MS_REMOUNT | libc::MS_BIND, None, "VE root flags")?;
    let rootfd = inroot::host_dir(root).map_err(|e| format!("open {r}: {e}"))?;
    let dev = inroot::ensure_dir(&rootfd, "dev", uid, gid).map_err(|e| format!("the VE's /dev: {e}"))?;
    mount(
        Some("tmpfs"),
        &inroot::fd_path(&dev),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(&format!("mode=755,size=1m,nr_inodes=4096,uid={uid},gid={gid}")),
        "tmpfs on /dev",
    )?;
    // The fresh tmpfs: nothing in it is the VE's yet.
    let dev = inroot::dir_fd(&rootfd, "dev", inroot::Follow::Never).map_err(|e| format!("the VE's /dev: {e}"))?;
    let at = |name: &str| CString::new(name).unwrap_or_default();
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let n = at(node);
        // SAFETY: openat of a new file in our own directory fd.
        let fd = unsafe {
            libc::openat(
                dev.as_raw_fd(),
                n.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                0o644,
            )
        };
        if fd < 0 {
            return Err(format!("create /dev/{node}: {}", io::Error::last_os_error()));
        }
        // SAFETY: the kernel just returned this fd.
        let f = unsafe { OwnedFd::from_raw_fd(fd) };
        mount(Some(&format!("/dev/{node}")), &inroot::fd_path(&f), None, libc::MS_BIND, None, &format!("/dev/{node}"))?;
    }
    for (name, fstype, flags, options) in [
        ("pts", "devpts", libc::MS_NOSUID | libc::MS_NOEXEC, devpts_options(pty_max, gid + 5)),
        ("shm", "tmpfs", libc::MS_NOSUID | libc::MS_NODEV, shm_options(shm_bytes, uid, gid)),
    ] {
        let n = at(name);
        // SAFETY: mkdirat/fchownat of a new name in our own directory fd.
        unsafe {
            libc::mkdirat(dev.as_raw_fd(), n.as_ptr(), 0o755);
            libc::fchownat(dev.as_raw_fd(), n.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW);
        }
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
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let (l, t) = (at(link), at(to));
        // SAFETY: symlinkat/fchownat of a new name in our own directory fd.
        unsafe {
            if libc::symlinkat(t.as_ptr(), dev.as_raw_fd(), l.as_ptr()) != 0 {
                return Err(format!("symlink /dev/{link}: {}", io::Error::last_os_error()));
            }
            libc::fchownat(dev.as_raw_fd(), l.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW);
        }
    }
    Ok(())
}

/// PID 1, as VE root in the VE's namespaces, in the VE's root (its working directory): a
/// mount of that tree of its own (pivot_root refuses the locked copy of stage 1's), cloned
/// and attached by fd, its /proc and /sys, then pivot_root so the host's tree is gone.
pub(super) fn ve_mounts() -> Result<(), String> {
    use crate::sys::inroot;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    // SAFETY: open_tree/move_mount with valid fds and NUL-terminated paths; the new fd is ours.
    let root = unsafe {
        let t = libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c".".as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
        );
        if t < 0 {
            return Err(format!("clone the VE's root: {}", io::Error::last_os_error()));
        }
        let t = OwnedFd::from_raw_fd(t as RawFd);
        if libc::syscall(
            libc::SYS_move_mount,
            t.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c".".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        ) != 0
        {
            return Err(format!("attach the VE's root: {}", io::Error::last_os_error()));
        }
        if libc::fchdir(t.as_raw_fd()) != 0 {
            return Err(format!("enter the VE's root: {}", io::Error::last_os_error()));
        }
        t
    };
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let proc_ = inroot::ensure_dir(&root, "proc", 0, 0).map_err(|e| format!("the VE's /proc: {e}"))?;
    mount(Some("proc"), &inroot::fd_path(&proc_), Some("proc"), nosuid, None, "proc")?;
    let sys = inroot::ensure_dir(&root, "sys", 0, 0).map_err(|e| format!("the VE's /sys: {e}"))?;
    let sysp = inroot::fd_path(&sys);
    if mount(Some("sysfs"), &sysp, Some("sysfs"), nosuid | libc::MS_RDONLY, None, "sysfs").is_err() {
        mount(Some("/sys"), &sysp, None, libc::MS_BIND | libc::MS_REC, None, "/sys")?;
        mount(None, &sysp, None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | nosuid, None, "/sys read-only")?;
    }
    drop((proc_, sys, root));
    // pivot_root(".", "."): the old root ends up on top of the new one and is detached.
    let dot = c".";
    // SAFETY: NUL-terminated paths; raw syscall as libc has no wrapper.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        return Err(format!("pivot_root: {}", io::Error::last_os_error()));
    }
    // SAFETY: detach the old root stacked on ".".
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(format!("detach old root: {}", io::Error::last_os_error()));
    }
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))
}

/// `ip link set lo up` by ioctl, in the VE's own network namespace.
pub(super) fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket; closed below.
    let s = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: the kernel returned this fd.
    let s = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: ifreq is plain data; ioctls read and write it.
    unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        check(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr))?;
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr))?;
    }
    Ok(())
}
