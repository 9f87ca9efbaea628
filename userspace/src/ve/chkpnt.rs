//! `vzctl chkpnt` / `restore` (OpenVZ's `suspend` / `resume` are the same pair): a running
//! VE frozen, dumped by CRIU into one file and stopped; brought back from it with the same
//! processes and PIDs, files, tmpfs contents, hostname, addresses and TCP connections.
//!
//! The dump file is a tar archive compressed with zstd: `criu/` (CRIU's images), `shm/`
//! (the VE's /dev/shm files, which live on a mount the host makes), `ve.conf` (the VE's
//! config when it was dumped) and `meta.conf` (VEID, kernel, criu version, cgroup layout,
//! id range, and each beancounter's held, maxheld and failcnt).
use super::*;
use crate::criu::{Criu, CriuError};

const META: &str = "meta.conf";
const CONF: &str = "ve.conf";
const IMAGES: &str = "criu";
const SHM: &str = "shm";
/// How long a VE may take to freeze, and criu to dump or restore it.
const FREEZE_WAIT: Duration = Duration::from_secs(10);
const CRIU_WAIT: Duration = Duration::from_secs(300);

/// A work directory removed when dropped.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl WorkDir {
    fn beside(file: &Path, what: &str) -> Result<Self, VeError> {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dir = file.with_file_name(format!(".{name}.{what}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(io_err("mkdir", &dir))?;
        // Traversable (not listable) by others: criu binds the staged mounts from inside the
        // VE's user namespace. What is in it is for root alone.
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .map_err(io_err("chmod", &dir))?;
        Ok(Self(dir))
    }
}

/// Runs a criu (or tar) command to its end within `limit`, its output in its log.
fn run_bounded(mut cmd: std::process::Command, what: &'static str, log: PathBuf) -> Result<(), VeError> {
    let name = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CriuError::Spawn { cmd: name, source })?;
    let end = Instant::now() + CRIU_WAIT;
    loop {
        if let Some(st) = child.try_wait().map_err(io_err("wait for", &log))? {
            if st.success() {
                return Ok(());
            }
            let mut text = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = io::Read::read_to_string(&mut e, &mut text);
            }
            if !text.trim().is_empty() {
                warn!("{what}: {}", text.trim());
            }
            return Err(CriuError::Failed { op: what, code: st.code().unwrap_or(-1), log }.into());
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CriuError::Failed { op: what, code: -1, log }.into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Vz {
    /// Where a VE's dump goes: the given file, else DUMPDIR/Dump.VEID.
    pub fn dump_file(&self, veid: u32, given: Option<&Path>) -> PathBuf {
        given.map_or_else(|| self.paths.dump_dir.join(format!("Dump.{veid}")), Path::to_path_buf)
    }

    /// `vzctl chkpnt`: freeze, dump, stop. On any failure before criu took the VE down,
    /// it is thawed and runs on as before.
    pub fn chkpnt(&self, veid: u32, dumpfile: Option<&Path>) -> Result<PathBuf, VeError> {
        let ve = self.open(veid)?;
        let init = ns::find_init(self.cg.as_ref(), veid).ok_or(VeError::NotRunning(veid))?;
        let criu = Criu::find(self.paths.criu.as_deref())?;
        let file = self.dump_file(veid, dumpfile);
        check_text("dumpfile", &file.to_string_lossy())?;
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir).map_err(io_err("mkdir", dir))?;
        }
        let work = WorkDir::beside(&file, "dumping")?;
        let images = work.0.join(IMAGES);
        fs::create_dir_all(&images).map_err(io_err("mkdir", &images))?;
        crate::report::progress("Setting up checkpoint...");
        let bpf = Bpf::open_existing(&self.paths.bpf_root).ok();
        let rows = self.ubc_rows(veid, bpf.as_ref())?;
        self.cg.freeze(veid, true, FREEZE_WAIT)?;
        let dumped = (|| {
            ns::copy_shm_out(init, &work.0.join(SHM)).map_err(io_err("copy /dev/shm of", &ve.root))?;
            self.step("chkpnt:dump")?;
            crate::report::progress("Checkpointing...");
            run_bounded(criu.dump(init, &images, &self.cg.ve_dir(veid)), "dump", beside(&file, "dump.log"))
        })();
        if let Err(e) = dumped {
            // criu resumes what it froze when it fails; the VE runs on.
            let _ = self.cg.freeze(veid, false, FREEZE_WAIT);
            let kept = beside(&file, "dump.log");
            let _ = fs::copy(images.join("dump.log"), &kept);
            return Err(e);
        }
        let mut meta = ConfFile::default();
        meta.set("VEID", &veid.to_string());
        meta.set("KERNEL", fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim());
        meta.set("CRIU", &format!("{}.{}", criu.version.0, criu.version.1));
        meta.set("CGROUP_LAYOUT", &format!("{:?}", self.cg.layout()));
        let (uid, gid) = self.ve_ids(&ve.conf);
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
        let tmp = beside(&file, "partial");
        let mut tar = std::process::Command::new("tar");
        tar.arg("--zstd").arg("-cf").arg(&tmp).arg("-C").arg(&work.0).arg(".");
        if let Err(e) = run_bounded(tar, "archive", tmp.clone()) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &file).map_err(io_err("rename", &file))?;
        // The VE's processes are gone: what start made goes too.
        self.cleanup_runtime(veid, &ve.root)?;
        crate::report::progress(format!("Checkpointing completed successfully: {}", file.display()));
        Ok(file)
    }

    /// `vzctl restore`: the VE made as start makes it (mount, cgroups, limits, BPF records,
    /// the host end of its network), then criu brings its processes back inside. Anything
    /// that fails undoes every step; the dump file is kept.
    pub fn restore(&self, veid: u32, dumpfile: Option<&Path>) -> Result<(), VeError> {
        let ve = self.open(veid)?;
        if self.is_running(veid) {
            return Err(VeError::Running(veid));
        }
        let file = self.dump_file(veid, dumpfile);
        if !file.is_file() {
            return Err(VeError::BadValue {
                key: "dumpfile",
                value: file.display().to_string(),
                why: "no such dump file",
            });
        }
        let criu = Criu::find(self.paths.criu.as_deref())?;
        let mut cfg = VeConfig::parse(ve.conf.clone())?;
        let work = WorkDir::beside(&file, "restoring")?;
        let mut tar = std::process::Command::new("tar");
        // --no-overwrite-dir: the work directory keeps its own mode.
        tar.arg("--zstd").arg("--no-overwrite-dir").arg("-xf").arg(&file).arg("-C").arg(&work.0);
        run_bounded(tar, "unpack", file.clone())?;
        let (ve_uid, ve_gid) = self.ve_ids(&ve.conf);
        for (private, owner) in [(IMAGES, Some((ve_uid, ve_gid))), (SHM, None)] {
            let p = work.0.join(private);
            if p.exists() {
                fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                    .map_err(io_err("chmod", &p))?;
                // criu reads its images from inside the VE's user namespace: as VE root.
                if let Some((u, g)) = owner {
                    std::os::unix::fs::chown(&p, Some(u), Some(g)).map_err(io_err("chown", &p))?;
                }
            }
        }
        let meta = ConfFile::read(&work.0.join(META))?;
        let bad = |why: &'static str| VeError::BadValue { key: "dumpfile", value: file.display().to_string(), why };
        if meta.get("VEID") != Some(veid.to_string().as_str()) {
            return Err(bad("it is the dump of another container"));
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
        let restored =
            self.restore_processes(veid, cgid, ifindex, &peer, &cfg, &criu, &work.0, uid, gid, &full, log.clone());
        let init = match restored {
            Ok(init) => init,
            Err(e) => {
                let _ = crate::net::teardown(cgid);
                let _ = fs::copy(work.0.join(IMAGES).join("restore.log"), &log);
                return Err(e);
            }
        };
        undo.kill(veid);
        crate::ubc::after_init(&crate::ubc::Target { cg: self.cg.as_ref(), veid, uid }, init, &full)?;
        if let Err(e) = crate::net::bring_up_host(cgid, &cfg.ips) {
            let _ = crate::net::teardown(cgid);
            return Err(e.into());
        }
        cfg.file.write_runtime(&self.live_path(veid))?;
        self.step("restore:done")?;
        undo.commit();
        intent.done();
        info!(veid, init, "container restored");
        crate::report::progress("Container restore completed");
        Ok(())
    }

    /// The host end's programs, then criu in `__ve-restore`; returns the restored init's
    /// host pid.
    #[allow(clippy::too_many_arguments)]
    fn restore_processes(
        &self,
        veid: u32,
        cgid: u64,
        ifindex: u32,
        peer: &str,
        cfg: &VeConfig,
        criu: &Criu,
        work: &Path,
        uid: u32,
        gid: u32,
        full: &VeLimits,
        log: PathBuf,
    ) -> Result<i32, VeError> {
        self.attach_net(veid, cfg, cgid, ifindex)?;
        let mut spec = InitSpec {
            root: PathBuf::new(),
            hostname: String::new(),
            argv: Vec::new(),
            uid_base: uid,
            gid_base: gid,
            relay: false,
            pty_max: None,
            shm_bytes: None,
        };
        for w in crate::ubc::init_spec(full, &mut spec)? {
            warn!(veid, "{w}");
        }
        let stage = work.join("stage");
        let ext: Vec<(String, PathBuf)> = crate::criu::external_mounts()
            .into_iter()
            .map(|(mnt, key)| {
                let host = match mnt.as_str() {
                    "/dev" => stage.join(ns::STAGE_DEV),
                    "/dev/pts" => stage.join(ns::STAGE_PTS),
                    "/dev/shm" => stage.join(ns::STAGE_SHM),
                    node => PathBuf::from(node),
                };
                (key, host)
            })
            .collect();
        let pidfile = work.join("init.pid");
        let root = self.root_of(veid, &cfg.file);
        let criu_cmd = criu.restore(&work.join(IMAGES), &root, &ext, peer, &pidfile);
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
        run_bounded(cmd, "restore", log)?;
        let text = fs::read_to_string(&pidfile).map_err(io_err("read", &pidfile))?;
        let init: i32 = text.trim().parse().map_err(|_| VeError::Exec(format!("criu wrote pid '{}'", text.trim())))?;
        if !self.cg.procs(veid).contains(&init) {
            return Err(VeError::Exec(format!("restored init {init} is not in container {veid}'s cgroup")));
        }
        Ok(init)
    }
}

/// `FILE.what`, next to FILE.
fn beside(file: &Path, what: &str) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{what}"));
    file.with_file_name(name)
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
