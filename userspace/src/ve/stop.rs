//! `vzctl stop` / `restart`: halt within STOP_TIMEOUT, or kill; then everything start made goes.
use super::*;

impl Vz {
    /// Removes what a stopped (or half-started, or killed) VE left: its processes, cgroups,
    /// BPF records and the VE_ROOT mount.
    pub(super) fn cleanup_runtime(&self, veid: u32, root: &Path) -> Result<(), VeError> {
        // First, while the pinned namespace holds them: host interfaces it was given.
        self.netdevs_home(veid);
        if !self.cg.procs(veid).is_empty() {
            self.cg.kill_all(veid);
            self.wait_empty(veid, Duration::from_secs(10));
        }
        self.mark("stop:empty");
        if let Ok(id) = self.cg.ve_id(veid) {
            if let Err(e) = crate::net::retire(id) {
                warn!(veid, "cannot take the VE's network pair down: {e}");
            }
            self.mark("stop:pair");
            self.withdraw(veid);
            // Bridged interfaces the VE runs with (live) or is configured with; each is
            // removed only if it is one vzctl made for this VE.
            let mut netifs = Vec::new();
            for c in [self.live_conf(veid).ok(), self.conf(veid).ok()].into_iter().flatten() {
                for n in crate::net::parse_netifs(c.get("NETIF").unwrap_or("")).unwrap_or_default() {
                    if !netifs.iter().any(|m: &crate::net::NetIf| m.host_ifname == n.host_ifname) {
                        netifs.push(n);
                    }
                }
            }
            for n in netifs {
                if let Err(e) = crate::net::del_netif(&n.host_ifname) {
                    warn!(veid, "cannot remove interface {}: {e}", n.host_ifname);
                }
            }
            if let Ok(mut bpf) = Bpf::open_existing(&self.paths.bpf_root) {
                // Cleanup goes on regardless: a stale record only costs map space.
                bpf.detach_venet(&crate::net::host_ifname(id));
                if let Err(e) = bpf.unregister_ve(id) {
                    warn!(veid, "cannot drop beancounter records: {e}");
                }
            }
            self.mark("stop:bpf");
        }
        self.cg.remove_ve(veid)?;
        self.mark("stop:cgroups");
        if is_mounted(root) {
            // The admin's umount scripts; the VE is stopped either way.
            if let Err(e) = self.conf(veid).and_then(|c| self.host_action(veid, &c, super::actions::Action::Umount)) {
                crate::report::warning(veid, format!("{e}"));
            }
            umount(self.sys(), root)?;
        }
        let _ = fs::remove_file(self.live_path(veid));
        // The socket is its keeper's, which removes it as the VE's init ends.
        let [_, pty] = crate::console::runtime_files(&self.paths.lock_dir, veid);
        let _ = fs::remove_file(pty);
        Ok(())
    }

    pub(super) fn wait_empty(&self, veid: u32, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        // Killed processes are gone within a millisecond or two; a halting init takes
        // longer: short naps first, then 5 ms ones.
        let mut nap = Duration::from_micros(250);
        while Instant::now() < end {
            if self.cg.procs(veid).is_empty() {
                return true;
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(5));
        }
        self.cg.procs(veid).is_empty()
    }

    /// `vzctl stop`: ask init to halt, wait STOP_TIMEOUT, then kill whatever is left; then
    /// remove cgroups, BPF records and the mount. `fast` kills at once, and does so even
    /// while another vzctl holds the VE's lock: the VE always stops; the cleanup then
    /// waits for the lock a bounded time (else the next command does it).
    pub fn stop(&self, veid: u32, fast: bool) -> Result<(), VeError> {
        let killed_first = fast && {
            self.conf(veid)?;
            self.is_running(veid)
        };
        if killed_first {
            crate::report::progress("Stopping container ...");
            self.cg.kill_all(veid);
            self.wait_empty(veid, KILL_WAIT);
            self.mark("stop:killed");
        }
        let _lock = if fast {
            match VeLock::take_within(&self.paths.lock_dir, veid, FAST_LOCK_WAIT)? {
                Some(l) => {
                    self.repair(veid);
                    l
                }
                None if killed_first => {
                    let who =
                        VeLock::holder(&self.paths.lock_dir, veid).map(|p| format!(" (pid {p})")).unwrap_or_default();
                    crate::report::progress("Container was stopped");
                    crate::report::warning(veid, format!("another vzctl{who} holds container {veid}'s lock: its mount and cgroups are removed by the next command"));
                    self.event(veid, "stop", &[("fast", 1u64.into())]);
                    return Ok(());
                }
                None => {
                    return Err(LockError::Busy {
                        veid,
                        holder: VeLock::holder(&self.paths.lock_dir, veid),
                        secs: FAST_LOCK_WAIT.as_secs(),
                    }
                    .into())
                }
            }
        } else {
            self.lock(veid)?
        };
        let conf = self.conf(veid)?;
        let root = self.root_of(veid, &conf);
        let running = killed_first || self.is_running(veid);
        if running && !killed_first {
            crate::report::progress("Stopping container ...");
            if !fast {
                self.ve_action(veid, super::actions::Action::Stop);
                self.halt_and_wait(veid);
            }
        }
        self.cleanup_runtime(veid, &root)?;
        crate::report::detail("Removed the container's processes, cgroups, BPF records and network pair");
        if running {
            crate::report::progress("Container was stopped");
            crate::report::progress("Container is unmounted");
            self.event(veid, "stop", &[("fast", u64::from(fast).into())]);
            Ok(())
        } else {
            Err(VeError::NotRunning(veid))
        }
    }

    /// Halts the VE, killing what is left after STOP_TIMEOUT.
    pub(super) fn halt_and_wait(&self, veid: u32) {
        // The VE's own STOP_TIMEOUT (`--stop-timeout`), else vz.conf's.
        let secs = self.conf(veid).ok().and_then(|c| c.get("STOP_TIMEOUT").and_then(|v| v.trim().parse::<u32>().ok()));
        let timeout = Duration::from_secs(u64::from(secs.unwrap_or(self.paths.stop_timeout)));
        crate::report::detail(format!("Asking init to halt (waiting at most {} s)", timeout.as_secs()));
        self.halt(veid, timeout);
        if !self.wait_empty(veid, timeout) {
            warn!(veid, "init did not halt within {} s; killing", timeout.as_secs());
            crate::report::progress("Killing container ...");
        }
    }

    /// Asks the VE's init to halt: runs the VE's own `halt` (for at most `timeout`: the
    /// VE's /bin/sh may never return), else signals init (SIGPWR for sysvinit and busybox
    /// alike).
    pub(super) fn halt(&self, veid: u32, timeout: Duration) {
        let Some(init) = ns::find_init(self.cg.as_ref(), veid) else { return };
        let argv = vec!["/bin/sh".to_string(), "-c".into(), "exec halt".into()];
        let ran = (|| {
            let p = relay::pipes().ok()?;
            let [cin, cout, cerr] = p.child;
            let mut cmd = ns::command_in_ve(self.cg.as_ref(), veid, init, &argv, false).ok()?;
            cmd.stdin(Stdio::from(cin)).stdout(Stdio::from(cout)).stderr(Stdio::from(cerr));
            let mut child = cmd.spawn().ok()?;
            drop((cmd, p.ours));
            let done = relay::pidfd(child.id() as i32).ok().is_some_and(|fd| wait_fd(&fd, timeout));
            if !done {
                warn!(veid, "the container's halt did not return within {} s", timeout.as_secs());
                let _ = child.kill();
            }
            child.wait().ok().filter(|_| done)
        })();
        if !ran.is_some_and(|s| s.success()) {
            let _ = crate::sys::proc::kill(init, nix::sys::signal::Signal::SIGPWR);
        }
    }

    pub fn restart(&self, veid: u32) -> Result<(), VeError> {
        crate::report::progress("Restarting container");
        match self.stop(veid, false) {
            Ok(()) | Err(VeError::NotRunning(_)) => {}
            Err(e) => return Err(e),
        }
        self.start(veid)
    }
}
