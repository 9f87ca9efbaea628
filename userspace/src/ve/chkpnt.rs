//! `vzctl chkpnt` / `restore` (OpenVZ's `suspend` / `resume` are the same pair): a running
//! VE frozen, dumped by CRIU into one file and stopped; brought back from it with the same
//! processes and PIDs, files, tmpfs contents, hostname, addresses and TCP connections.
//!
//! The dump file is a tar archive compressed with zstd: `criu/` (CRIU's images), `shm/`
//! (the VE's /dev/shm files, which live on a mount the host makes), `ve.conf` (the VE's
//! config when it was dumped) and `meta.conf` (VEID, kernel, criu version, cgroup layout,
//! id range, and each beancounter's held, maxheld and failcnt).
use super::dumpfiles::{beside, chmod, hand_images_to_ve, run_bounded, WorkDir};
use super::run::Feed;
use super::*;
use crate::criu::Criu;

/// What `vzctl chkpnt` does: all of it, or one of OpenVZ's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChkpntStep {
    All,
    /// Freeze the VE (its network cut at the host end).
    Suspend,
    /// Dump a suspended VE; it stays suspended.
    Dump,
    /// Kill a suspended (dumped) VE.
    Kill,
    /// Resume a suspended VE: the checkpoint is called off.
    Resume,
}

/// What `vzctl restore` does: all of it, or one of OpenVZ's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreStep {
    All,
    /// Bring the processes back, suspended.
    Undump,
    /// Resume a VE restored with --undump.
    Resume,
}

const META: &str = "meta.conf";
const CONF: &str = "ve.conf";
const IMAGES: &str = "criu";
const SHM: &str = "shm";
/// How long a VE may take to freeze.
const FREEZE_WAIT: Duration = Duration::from_secs(10);

impl Vz {
    /// Where a VE's dump goes: the given file, else DUMPDIR/Dump.VEID.
    pub fn dump_file(&self, veid: u32, given: Option<&Path>) -> PathBuf {
        given.map_or_else(|| self.paths.dump_dir.join(format!("Dump.{veid}")), Path::to_path_buf)
    }

    /// `vzctl chkpnt`, whole or one step (OpenVZ's `--suspend`, `--dump`, `--kill`,
    /// `--resume`). The whole of it: suspend, dump, kill; if the dump fails, the VE is
    /// resumed and runs on. It is killed only once its dump is written: it ends running
    /// here, or dumped, never neither.
    pub fn chkpnt(&self, veid: u32, dumpfile: Option<&Path>, step: ChkpntStep) -> Result<Option<PathBuf>, VeError> {
        let ve = self.open(veid)?;
        ns::find_init(self.cg.as_ref(), veid).ok_or(VeError::NotRunning(veid))?;
        let cgid = self.cg.ve_id(veid)?;
        // A host interface is the host's, not part of the VE's state: criu cannot carry it.
        let live = self.live_conf(veid).unwrap_or_else(|_| ve.conf.clone());
        if !super::netdev::conf_netdevs(&live)?.is_empty() {
            let why = "the container holds host interfaces (--netdev_add): move them out with --netdev_del first";
            return Err(VeError::BadValue { key: "chkpnt", value: veid.to_string(), why });
        }
        let frozen = self.cg.is_frozen(veid);
        let need = |want: bool, why: &'static str| {
            if frozen == want {
                Ok(())
            } else {
                Err(VeError::BadValue { key: "chkpnt", value: veid.to_string(), why })
            }
        };
        match step {
            ChkpntStep::Suspend => {
                need(false, "the container is suspended already")?;
                self.check_console_free(veid)?;
                self.suspend(veid, cgid)?;
                crate::report::progress("Container is suspended");
                Ok(None)
            }
            ChkpntStep::Resume => {
                need(true, "the container is not suspended")?;
                self.unsuspend(veid, cgid)?;
                crate::report::progress("Container is resumed");
                Ok(None)
            }
            ChkpntStep::Kill => {
                need(true, "the container is not suspended (chkpnt --suspend and --dump first)")?;
                self.kill_dumped(veid, &ve.root)?;
                Ok(None)
            }
            ChkpntStep::Dump => {
                need(true, "the container is not suspended (chkpnt --suspend first)")?;
                let criu = Criu::find(self.paths.criu.as_deref())?;
                Ok(Some(self.dump_suspended(veid, &ve, dumpfile, &criu)?))
            }
            ChkpntStep::All => {
                need(false, "the container is suspended: use chkpnt --dump, --kill or --resume")?;
                self.check_console_free(veid)?;
                // Checked before the VE is touched.
                let criu = Criu::find(self.paths.criu.as_deref())?;
                self.suspend(veid, cgid)?;
                let file = match self.dump_suspended(veid, &ve, dumpfile, &criu) {
                    Ok(f) => f,
                    Err(e) => {
                        if let Err(r) = self.unsuspend(veid, cgid) {
                            warn!(veid, "cannot resume after a failed dump: {r}");
                        }
                        return Err(e);
                    }
                };
                self.kill_dumped(veid, &ve.root)?;
                Ok(Some(file))
            }
        }
    }

    /// Refuses a checkpoint of a VE whose processes hold its console (criu cannot dump a
    /// pty whose master is outside the VE).
    pub(super) fn check_console_free(&self, veid: u32) -> Result<(), VeError> {
        let held = crate::console::holders(&self.paths.lock_dir, veid, &self.cg.procs(veid));
        if held.is_empty() {
            return Ok(());
        }
        let who: Vec<String> = held.iter().map(|(p, c)| format!("{c} (pid {p})")).collect();
        Err(crate::console::ConsoleError::Held { veid, who: who.join(", ") }.into())
    }

    /// Freezes the VE and stops its traffic at the host end: its firewall rules become
    /// "deny everything", so nothing reaches its sockets while they are dumped (a peer's
    /// data acknowledged then would be missing from the dump) and nothing they say when
    /// killed reaches a peer. The link stays up: a down link would mark the VE's routes
    /// "linkdown" in the dump, which no restore takes back.
    pub(super) fn suspend(&self, veid: u32, cgid: u64) -> Result<(), VeError> {
        crate::report::progress("Setting up checkpoint...");
        self.cg.freeze(veid, true, FREEZE_WAIT)?;
        let cut = crate::netfilter::parse_rules(&["deny in any; deny out any"])
            .map_err(VeError::from)
            .and_then(|deny| self.set_rules(cgid, &deny))
            .and_then(|()| self.step("chkpnt:suspended"));
        if let Err(e) = cut {
            let _ = self.unsuspend(veid, cgid);
            return Err(e);
        }
        Ok(())
    }

    /// The VE's own firewall rules again, then thawed.
    pub(super) fn unsuspend(&self, veid: u32, cgid: u64) -> Result<(), VeError> {
        let cfg = VeConfig::parse(self.live_conf(veid)?)?;
        self.set_rules(cgid, &cfg.rules)?;
        Ok(self.cg.freeze(veid, false, FREEZE_WAIT)?)
    }

    fn set_rules(&self, cgid: u64, rules: &vz_common::NetRules) -> Result<(), VeError> {
        Ok(Bpf::open_existing(&self.paths.bpf_root)?.set_net_rules(cgid, rules)?)
    }

    /// A suspended VE goes: its network end first, so no socket it closes says so to
    /// its peer (the dump keeps the connections).
    pub(super) fn kill_dumped(&self, veid: u32, root: &Path) -> Result<(), VeError> {
        self.step("chkpnt:kill")?;
        if let Ok(id) = self.cg.ve_id(veid) {
            let _ = crate::net::teardown(id);
        }
        self.cg.kill_all(veid);
        self.cleanup_runtime(veid, root)?;
        crate::report::progress("Container is stopped (its state is in the dump)");
        Ok(())
    }

    /// Dumps a suspended VE into its dump file; it stays suspended.
    pub(super) fn dump_suspended(
        &self,
        veid: u32,
        ve: &Ve,
        dumpfile: Option<&Path>,
        criu: &Criu,
    ) -> Result<PathBuf, VeError> {
        let file = self.dump_file(veid, dumpfile);
        check_text("dumpfile", &file.to_string_lossy())?;
        let work = self.dump_to_work(veid, ve, &file, criu, None)?;
        self.step("chkpnt:archive")?;
        let tmp = beside(&file, "partial");
        let mut tar = std::process::Command::new("tar");
        tar.arg("--zstd").arg("-cf").arg(&tmp).arg("-C").arg(&work.0).arg(".");
        if let Err(e) = run_bounded(tar, Feed::Null, "archive", None, tmp.clone()) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // The VE's memory is in it: root's alone.
        chmod(&tmp, 0o600)?;
        fs::rename(&tmp, &file).map_err(io_err("rename", &file))?;
        crate::report::progress(format!("Checkpointing completed successfully: {}", file.display()));
        Ok(file)
    }

    /// Dumps a suspended VE into a work directory beside `file` (criu's images, its
    /// /dev/shm, its config and the dump's metadata): what a dump file holds. `precopy`:
    /// the last pre-copy round (a directory of `FILE.pre`), whose pages unchanged since
    /// are not saved again; a restore finds it beside its own dump file.
    pub(super) fn dump_to_work(
        &self,
        veid: u32,
        ve: &Ve,
        file: &Path,
        criu: &Criu,
        precopy: Option<&Path>,
    ) -> Result<WorkDir, VeError> {
        let init = ns::find_init(self.cg.as_ref(), veid).ok_or(VeError::NotRunning(veid))?;
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir).map_err(io_err("mkdir", dir))?;
        }
        let work = WorkDir::beside(file, "dumping")?;
        let images = work.0.join(IMAGES);
        fs::create_dir_all(&images).map_err(io_err("mkdir", &images))?;
        let bpf = Bpf::open_existing(&self.paths.bpf_root).ok();
        let rows = self.ubc_rows(veid, bpf.as_ref())?;
        ns::copy_shm_out(init, &work.0.join(SHM)).map_err(io_err("copy /dev/shm of", &ve.root))?;
        // Read while frozen, before criu seizes them: which stay stopped after a restore.
        let stopped = ns::stopped_ve_pids(self.cg.as_ref(), veid);
        self.step("chkpnt:dump")?;
        crate::report::progress("Checkpointing...");
        let criu_log = images.join("dump.log");
        let dump = criu.dump(init, &images, &self.cg.ve_dir(veid), precopy);
        run_bounded(dump, Feed::Null, "dump", Some(&criu_log), beside(file, "dump.log"))?;
        let mut meta = ConfFile::default();
        meta.set("VEID", &veid.to_string());
        if let Some(round) = precopy.and_then(Path::file_name) {
            meta.set("PRECOPY", &round.to_string_lossy());
        }
        meta.set("KERNEL", fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim());
        meta.set("CRIU", &format!("{}.{}", criu.version.0, criu.version.1));
        meta.set("CGROUP_LAYOUT", &format!("{:?}", self.cg.layout()));
        // Where its cgroups were: a restore on a node with another VE parent moves them.
        let cgroups = fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap_or_default();
        meta.set("CGROUPS", &cgroups.lines().collect::<Vec<_>>().join(";"));
        let (uid, gid) = self.ve_ids(&ve.conf);
        meta.set("STOPPED", &stopped.iter().map(u32::to_string).collect::<Vec<_>>().join(" "));
        meta.set("LOCAL_UID", &uid.to_string());
        meta.set("LOCAL_GID", &gid.to_string());
        for r in &rows {
            let u = r.row.usage;
            meta.set(
                &format!("UBC_{}", r.row.resource.name.to_ascii_uppercase()),
                &format!("{} {} {}", u.held, u.maxheld, u.failcnt),
            );
        }
        meta.write_atomic(&work.0.join(META))?;
        ve.conf.write_atomic(&work.0.join(CONF))?;
        Ok(work)
    }

    /// `vzctl restore`: the VE made as start makes it (mount, cgroups, limits, BPF records,
    /// the host end of its network), then criu brings its processes back inside. Anything
    /// that fails undoes every step; the dump file is kept.
    pub fn restore(&self, veid: u32, dumpfile: Option<&Path>, step: RestoreStep) -> Result<(), VeError> {
        if step == RestoreStep::Resume {
            let _ve = self.open(veid)?;
            if !self.is_running(veid) || !self.cg.is_frozen(veid) {
                return Err(VeError::BadValue {
                    key: "restore",
                    value: veid.to_string(),
                    why: "the container is not restored and suspended (restore --undump first)",
                });
            }
            let cfg = VeConfig::parse(self.live_conf(veid)?)?;
            self.resume_restored(veid, self.cg.ve_id(veid)?, &cfg)?;
            crate::report::progress("Container is resumed");
            return Ok(());
        }
        self.restore_from(veid, &self.dump_file(veid, dumpfile), false, step)
    }

    /// Restores the dump `file`, or with `streamed` the dump arriving on stdin as a tar
    /// stream (vzmigrate's), then named `file` (its pre-copy rounds and logs are beside
    /// that name).
    pub(super) fn restore_from(
        &self,
        veid: u32,
        file: &Path,
        streamed: bool,
        step: RestoreStep,
    ) -> Result<(), VeError> {
        let ve = self.open(veid)?;
        if self.is_running(veid) {
            return Err(VeError::Running(veid));
        }
        if !streamed && !file.is_file() {
            return Err(VeError::BadValue {
                key: "dumpfile",
                value: file.display().to_string(),
                why: "no such dump file",
            });
        }
        let file = file.to_path_buf();
        let criu = Criu::find(self.paths.criu.as_deref())?;
        let mut cfg = VeConfig::parse(ve.conf.clone())?;
        let work = WorkDir::beside(&file, "restoring")?;
        let mut tar = std::process::Command::new("tar");
        // --no-overwrite-dir: the work directory keeps its own mode.
        tar.args(["--no-overwrite-dir", "--zstd", "-C"]).arg(&work.0).arg("-xf");
        let feed = if streamed { Feed::Inherit } else { Feed::Null };
        tar.arg(if streamed { Path::new("-") } else { file.as_path() });
        run_bounded(tar, feed, "unpack", None, file.clone())?;
        let ids = self.ve_ids(&ve.conf);
        let shm = work.0.join(SHM);
        if shm.exists() {
            chmod(&shm, 0o700)?;
        }
        let images = work.0.join(IMAGES);
        hand_images_to_ve(&images, ids)?;
        let meta = ConfFile::read(&work.0.join(META))?;
        let bad = |why: &'static str| VeError::BadValue { key: "dumpfile", value: file.display().to_string(), why };
        if meta.get("VEID") != Some(veid.to_string().as_str()) {
            return Err(bad("it is the dump of another container"));
        }
        if let Some(round) = meta.get("PRECOPY") {
            // The pages saved by the pre-copy rounds (sent ahead by vzmigrate) are beside
            // the dump file; criu finds them through the images' parent link.
            let rounds = beside(&file, "pre");
            let last = rounds.join(round);
            if round.is_empty() || !round.bytes().all(|b| b.is_ascii_digit()) || !last.is_dir() {
                return Err(bad("its pre-copy images (FILE.pre) are missing"));
            }
            chmod(&rounds, 0o711)?;
            for e in fs::read_dir(&rounds).map_err(io_err("list", &rounds))?.flatten() {
                hand_images_to_ve(&e.path(), ids)?;
            }
            // Relative (the work directory and the rounds are both beside the dump file):
            // criu opens it after entering the VE's root, where an absolute one is not.
            let link = images.join("parent");
            let target = Path::new("../..").join(rounds.file_name().unwrap_or_default()).join(round);
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(&target, &link).map_err(io_err("symlink", &link))?;
        }
        if meta.get("CGROUP_LAYOUT") != Some(format!("{:?}", self.cg.layout()).as_str()) {
            return Err(bad("it was made on a host with another cgroup layout"));
        }
        crate::report::progress("Restoring container ...");
        let root = ve.root.clone();
        self.cleanup_runtime(veid, &root)?;
        let intent = Intent::begin(&self.paths.lock_dir, veid, "starting", &ConfFile::default())?;
        let mut undo = Undo::new(self);
        if self.do_mount(veid, &cfg.file)? {
            undo.umount(root.clone());
        }
        let (uid, gid) = self.own_ids(veid, &mut cfg.file, &root)?;
        if meta.get("LOCAL_UID") != Some(uid.to_string().as_str()) {
            return Err(bad("the container's host ids changed since it was dumped"));
        }
        let created = self.cg.create_ve(veid);
        undo.cgroup(veid);
        let cgid = created?;
        let full = cfg.limits;
        self.apply_ubc(veid, cgid, uid, &full)?;
        crate::cpu::apply(self.cg.as_ref(), veid, &cfg.cpu)?;
        self.apply_io(veid, cgid, &root, &cfg.io)?;
        undo.bpf(cgid, self.paths.bpf_root.clone());
        if let Ok(mut bpf) = Bpf::open_existing(&self.paths.bpf_root) {
            bpf.carry_usage(cgid, &carried_usage(&meta))?;
        }
        self.step("restore:net")?;
        let (ifindex, peer) = crate::net::create_parked_pair(cgid)?;
        let log = beside(&file, "restore.log");
        let job = RestoreJob {
            veid,
            cgid,
            ids: (uid, gid),
            cfg: &cfg,
            criu: &criu,
            work: &work.0,
            full: &full,
            log,
            dumped_cgroups: meta.get("CGROUPS").unwrap_or(""),
        };
        let restored = self.restore_processes(&job, ifindex, &peer);
        let init = match restored {
            Ok(init) => init,
            Err(e) => {
                let _ = crate::net::teardown(cgid);
                return Err(e);
            }
        };
        undo.kill(veid);
        let settled = (|| {
            // criu left every task stopped: frozen before they run again, then let go of
            // the stop (they go on where they were when the VE is thawed).
            self.cg.freeze(veid, true, FREEZE_WAIT)?;
            // Those the VE had stopped itself stay stopped, as they were when dumped.
            let stopped: Vec<u32> =
                meta.get("STOPPED").unwrap_or("").split_whitespace().filter_map(|p| p.parse().ok()).collect();
            for pid in self.cg.procs(veid) {
                if ns::innermost_pid(pid).is_some_and(|p| stopped.contains(&p)) {
                    continue;
                }
                let _ = crate::sys::proc::kill(pid, nix::sys::signal::Signal::SIGCONT);
            }
            crate::ubc::after_init(&crate::ubc::Target { cg: self.cg.as_ref(), veid, uid }, init, &full)?;
            // Its grants under its new cgroup id (the nodes came back with its /dev).
            self.apply_devices(
                veid,
                init,
                cgid,
                &cfg.file,
                Some(&Default::default()),
                &super::devices::DevSet::at_start(veid, &cfg),
            )?;
            if let Err(e) = crate::console::renew(&self.paths.lock_dir, veid, init, uid, gid) {
                crate::report::notice(format!("Warning: the restored container has no console (vzctl console): {e}"));
            }
            cfg.file.write_runtime(&self.live_path(veid))?;
            self.step("restore:resume")?;
            if step == RestoreStep::All {
                self.resume_restored(veid, cgid, &cfg)?;
            }
            Ok::<(), VeError>(())
        })();
        if let Err(e) = settled {
            // The pair would outlive the processes Undo kills (their namespace goes late).
            let _ = crate::net::teardown(cgid);
            return Err(e);
        }
        undo.commit();
        intent.done();
        info!(veid, init, "container restored");
        crate::report::progress(if step == RestoreStep::All {
            "Container restore completed"
        } else {
            "Container is restored, suspended (restore --resume lets it run)"
        });
        Ok(())
    }

    /// A restored, suspended VE runs: its host end up with its routes, then thawed.
    fn resume_restored(&self, veid: u32, cgid: u64, cfg: &VeConfig) -> Result<(), VeError> {
        crate::net::bring_up_host(cgid, &cfg.ips)?;
        self.cg.freeze(veid, false, FREEZE_WAIT)?;
        self.announce(veid, &cfg.ips);
        Ok(())
    }

    /// The host end's programs, then criu in `__ve-restore`; returns the restored init's
    /// host pid.
    fn restore_processes(&self, job: &RestoreJob<'_>, ifindex: u32, peer: &str) -> Result<i32, VeError> {
        let RestoreJob { veid, cgid, ids: (uid, gid), cfg, criu, work, full, .. } = *job;
        self.attach_net(veid, cfg, cgid, ifindex, false)?;
        let mut spec = InitSpec {
            root: PathBuf::new(),
            hostname: String::new(),
            argv: Vec::new(),
            uid_base: uid,
            gid_base: gid,
            relay: false,
            pty_max: None,
            shm_bytes: None,
            lxcfs: None,
            cap_drop: 0,
            console: false,
            netfilter_off: false,
        };
        for w in crate::ubc::init_spec(full, &mut spec)? {
            warn!(veid, "{w}");
        }
        let stage = work.join("stage");
        // A dump with LXCFS files takes them from this node's LXCFS.
        let lxcfs = crate::lxcfs::ensure(&self.paths).unwrap_or_else(|e| {
            warn!(veid, "{e}");
            None
        });
        let ext: Vec<(String, PathBuf)> = crate::criu::external_mounts()
            .into_iter()
            .map(|(mnt, key)| {
                let host = match mnt.as_str() {
                    "/dev" => stage.join(ns::STAGE_DEV),
                    "/dev/pts" => stage.join(ns::STAGE_PTS),
                    "/dev/shm" => stage.join(ns::STAGE_SHM),
                    f if crate::lxcfs::FILES.contains(&&f[1..]) => {
                        lxcfs.as_ref().map_or_else(|| PathBuf::from(f), |d| d.join(&f[1..]))
                    }
                    node => PathBuf::from(node),
                };
                (key, host)
            })
            .collect();
        let pidfile = work.join("init.pid");
        let root = self.root_of(veid, &cfg.file);
        let roots = self.cg.restore_roots(veid, &job.dumped_cgroups.replace(';', "\n"));
        let criu_cmd = criu.restore(&work.join(IMAGES), &root, &ext, peer, &pidfile, &roots);
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        let exe = std::env::current_exe().map_err(io_err("find", Path::new("/proc/self/exe")))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("__ve-restore")
            .arg(&root)
            .arg(uid.to_string())
            .arg(gid.to_string())
            .arg(opt(spec.pty_max))
            .arg(opt(spec.shm_bytes))
            .arg(&stage)
            .arg(work.join(SHM))
            .arg(criu_cmd.get_program())
            .args(criu_cmd.get_args());
        crate::report::progress("Restoring processes...");
        run_bounded(cmd, Feed::Null, "restore", Some(&work.join(IMAGES).join("restore.log")), job.log.clone())?;
        let text = fs::read_to_string(&pidfile).map_err(io_err("read", &pidfile))?;
        let init: i32 = text.trim().parse().map_err(|_| VeError::Exec(format!("criu wrote pid '{}'", text.trim())))?;
        if !self.cg.procs(veid).contains(&init) {
            return Err(VeError::Exec(format!("restored init {init} is not in container {veid}'s cgroup")));
        }
        Ok(init)
    }
}

/// What the restore of a VE's processes works from.
struct RestoreJob<'a> {
    veid: u32,
    cgid: u64,
    /// The VE's host uid and gid bases.
    ids: (u32, u32),
    cfg: &'a VeConfig,
    criu: &'a Criu,
    /// The unpacked dump.
    work: &'a Path,
    full: &'a VeLimits,
    /// Where criu's log is kept if it fails.
    log: PathBuf,
    /// The VE init's /proc/PID/cgroup at the dump, lines joined by ';'.
    dumped_cgroups: &'a str,
}

/// (resource, maxheld, failcnt) of each `UBC_NAME="held maxheld failcnt"` line of a dump's
/// metadata.
fn carried_usage(meta: &ConfFile) -> Vec<(u32, u64, u64)> {
    meta.keys()
        .filter_map(|(k, v)| {
            let r = Resource::by_name(k.strip_prefix("UBC_")?).ok()?;
            let n: Vec<u64> = v.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (n.len() == 3).then(|| (r.id, n[1], n[2]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxheld_and_failcnt_are_carried_from_the_metadata() {
        let mut m = ConfFile::default();
        m.set("UBC_NUMTCPSOCK", "3 7 2");
        m.set("UBC_NUMPROC", "bad");
        m.set("VEID", "101");
        let id = Resource::by_name("numtcpsock").unwrap().id;
        assert_eq!(carried_usage(&m), vec![(id, 7, 2)]);
    }
}
