//! `vzctl exec` / `exec2` / `enter` / `runscript`: commands in a running VE, stdio relayed, never the admin's terminal.
use super::*;

impl Vz {
    /// Runs `argv` inside a running VE with its stdio relayed through pipes (see
    /// `relay`); returns its exit code.
    pub fn exec_argv(&self, veid: u32, argv: &[String], input: relay::Input) -> Result<i32, VeError> {
        let init = self.running_init(veid)?;
        let p = relay::pipes().map_err(io_err("pipe", Path::new("exec")))?;
        let [cin, cout, cerr] = p.child;
        let mut cmd = ns::command_in_ve(self.cg.as_ref(), veid, init, argv, false)?;
        cmd.stdin(Stdio::from(cin)).stdout(Stdio::from(cout)).stderr(Stdio::from(cerr));
        let mut child = cmd.spawn().map_err(|e| VeError::Exec(format!("{}: {e}", argv[0])))?;
        // Our copies of the command's ends must go, or its pipes never reach end of file.
        drop(cmd);
        let pidfd = relay::pidfd(child.id() as i32).map_err(|e| VeError::Exec(format!("pidfd: {e}")))?;
        let [win, rout, rerr] = p.ours;
        relay::relay(&pidfd, Some(win), rout, rerr, input);
        let status = child.wait().map_err(|e| VeError::Exec(format!("{}: {e}", argv[0])))?;
        Ok(status.code().unwrap_or(255))
    }

    /// `vzctl exec` / `exec2`: the command line runs through the VE's /bin/sh; `-` alone
    /// (OpenVZ's) has the shell read its commands from our standard input.
    pub fn exec(&self, veid: u32, command: &[String]) -> Result<i32, VeError> {
        if command == ["-"] {
            return self.exec_argv(veid, &["/bin/sh".to_string(), "-s".into()], relay::Input::Stdin);
        }
        let line = command.join(" ");
        let argv = vec!["/bin/sh".to_string(), "-c".into(), line];
        self.exec_argv(veid, &argv, relay::Input::Stdin)
    }

    /// `vzctl exec3`: the program and its arguments as given, no shell between (a path, or
    /// a name found in the VE's PATH).
    pub fn exec3(&self, veid: u32, argv: &[String]) -> Result<i32, VeError> {
        if argv.is_empty() {
            return Err(VeError::BadValue { key: "exec3", value: String::new(), why: "no program given" });
        }
        self.exec_argv(veid, argv, relay::Input::Stdin)
    }

    /// `vzctl enter`: an interactive shell on a pseudo-terminal of the VE's own devpts,
    /// relayed to this terminal. `exec` is typed into the shell first.
    pub fn enter(&self, veid: u32, exec: Option<&str>) -> Result<i32, VeError> {
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            // Piped or /dev/null input: no terminal to relay, and the shell must end when
            // the input does (a pty would keep it waiting for a user's Ctrl-D).
            crate::report::notice(format!("entered into container {veid}"));
            let first = exec.map(|c| format!("{c}\n").into_bytes()).unwrap_or_default();
            let argv = vec!["/bin/sh".to_string(), "-l".into(), "-s".into()];
            let code = self.exec_argv(veid, &argv, relay::Input::BytesThenStdin(first))?;
            crate::report::notice(format!("exited from container {veid}"));
            return Ok(code);
        }
        let init = self.running_init(veid)?;
        let (master, slave) = ns::ve_pty(init)?;
        let argv = vec!["/bin/sh".to_string(), "-l".into()];
        let mut cmd = ns::command_in_ve(self.cg.as_ref(), veid, init, &argv, true)?;
        let dup = |f: &std::os::fd::OwnedFd| f.try_clone().map(Stdio::from).map_err(io_err("dup", Path::new("pty")));
        cmd.stdin(dup(&slave)?).stdout(dup(&slave)?).stderr(Stdio::from(slave));
        crate::report::notice(format!("entered into container {veid}"));
        let child = cmd.spawn().map_err(|e| VeError::Exec(format!("/bin/sh: {e}")))?;
        // Our copies of the terminal's slave side must go, or the relay never sees EOF.
        drop(cmd);
        let code = crate::pty::relay(master, child, exec).map_err(|e| VeError::Exec(e.to_string()))?;
        crate::report::notice(format!("exited from container {veid}"));
        Ok(code)
    }

    /// `vzctl runscript`: a host script run by the VE's /bin/sh, fed through a pipe (the
    /// VE never gets the host file). A stopped VE is not started: the script runs as PID 1
    /// of a temporary VE on its mounted root.
    pub fn runscript(&self, veid: u32, script: &Path) -> Result<i32, VeError> {
        let text = fs::read(script).map_err(io_err("read", script))?;
        self.run_text(veid, text)
    }

    /// `text` run by the VE's /bin/sh: in the running VE, or as PID 1 of a stopped one.
    pub(super) fn run_text(&self, veid: u32, text: Vec<u8>) -> Result<i32, VeError> {
        let ve = self.open(veid)?;
        let conf = ve.conf.clone();
        if ns::find_init(self.cg.as_ref(), veid).is_some() {
            let argv = vec!["/bin/sh".to_string(), "-s".into()];
            return self.exec_argv(veid, &argv, relay::Input::Bytes(text));
        }
        let root = ve.root.clone();
        self.cleanup_runtime(veid, &root)?;
        let mut undo = Undo::new(self);
        if self.do_mount(veid, &conf)? {
            undo.umount(root.clone());
        }
        let created = self.cg.create_ve(veid);
        undo.cgroup(veid);
        created?;
        undo.kill(veid);
        let hostname = self.hostname(veid, &conf, &root);
        let (uid, gid) = self.ve_ids(&conf);
        let r = run_script_as_init(self, veid, &root, hostname, (uid, gid), text);
        drop(undo);
        r
    }
}

/// Runs a script as PID 1 of a temporary VE (namespaces on the VE's root, no init),
/// relaying its output, and waits for it; used by runscript on a stopped VE.
pub(super) fn run_script_as_init(
    vz: &Vz,
    veid: u32,
    root: &Path,
    hostname: String,
    (uid, gid): (u32, u32),
    script: Vec<u8>,
) -> Result<i32, VeError> {
    // The script's shell is our grandchild: be its subreaper so we can wait for it.
    crate::sys::proc::set_child_subreaper().map_err(|e| VeError::Exec(format!("prctl: {e}")))?;
    let spec = InitSpec {
        root: root.to_path_buf(),
        hostname,
        argv: vec!["/bin/sh".into(), "-s".into()],
        uid_base: uid,
        gid_base: gid,
        relay: true,
        pty_max: None,
        shm_bytes: None,
        lxcfs: None,
        cap_drop: 0,
        console: false,
        netfilter_off: false,
    };
    let started = ns::start_init(&spec, vz.cg.as_ref(), veid, &|step| vz.mark(step))?;
    let pidfd = relay::pidfd(started.pid).map_err(|e| VeError::Exec(format!("pidfd: {e}")))?;
    if let Some([win, rout, rerr]) = started.stdio {
        relay::relay(&pidfd, Some(win), rout, rerr, relay::Input::Bytes(script));
    }
    // The script shell, reparented to us.
    let st = crate::sys::proc::wait_child(started.pid).map_err(|e| VeError::Exec(format!("wait: {e}")))?;
    Ok(crate::sys::proc::exit_code(st))
}

/// Waits until `fd` (a pidfd) is readable, at most `timeout`.
pub(super) fn wait_fd(fd: &OwnedFd, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match crate::sys::fd::wait_readable(fd.as_fd(), left) {
            Ok(true) => return true,
            // EINTR: poll again for what is left.
            Ok(false) if Instant::now() < end => continue,
            _ => return false,
        }
    }
}
