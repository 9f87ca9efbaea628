//! `vzmigrate`: a VE moved to another node running vzbpf, over OpenSSH (key auth, the
//! admin's own ssh and sshd) with rsync for the private area, as OpenVZ's vzmigrate.
//!
//! The destination's part is done by its own vzctl, run over ssh: `__migrate-accept` checks
//! (VEID, addresses, host ids, criu) and takes the VE's config, `restore` or `start` brings
//! it up, `__migrate-settle` finishes, undoes or reports. The source holds the VE's lock
//! throughout and records where it is in an intent (`VEID.migrating`), so a vzmigrate
//! killed half-way is settled by the next command on the VE: the VE ends running on exactly
//! one node.
//!
//! Online (a running VE): the private area is copied while it runs; then it is frozen,
//! dumped by CRIU, the private area copied again, the dump sent, restored on the
//! destination (whose end of its network stays down until the restore returns), and only
//! then killed here. If anything before that fails, it is thawed and runs on here.
use super::*;
use crate::criu::Criu;

/// What `vzmigrate` was asked.
#[derive(Debug, Clone)]
pub struct MigrateOpts {
    /// `[user@]host` as ssh takes it.
    pub dest: String,
    /// Checkpoint and restore a running VE (else it is stopped here and started there).
    pub online: bool,
    /// On failure, keep what was copied to the destination (a retry copies less).
    pub keep_dst: bool,
    /// Remove the VE here once it runs there (OpenVZ's `-r yes`, the default).
    pub remove_area: bool,
    /// More ssh options (OpenVZ's `--ssh`), one word each.
    pub ssh: Vec<String>,
    /// More rsync options (OpenVZ's `--rsync`).
    pub rsync: Vec<String>,
}

/// What the destination's `__migrate-settle` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The VE runs here now: it is no longer "being migrated"; its dump goes.
    Finish,
    /// The migration was called off: what it copied goes (kept with `keep`), never a
    /// running VE.
    Abort { keep: bool },
    /// Prints running, stopped or absent, once no other command holds the VE.
    Status,
}

/// The key a VE's config carries on the destination until its migration is finished.
const MIGRATING: &str = "MIGRATING";
/// How long a remote command that only checks or settles may take.
const SHORT: Duration = Duration::from_secs(60);
/// Copies and restores.
const LONG: Duration = Duration::from_secs(1800);

/// The destination node, reached with ssh. Every ssh of one migration goes through one
/// connection (OpenSSH's ControlMaster, OpenVZ's `--ssh-mux`): the key exchange is paid
/// once, not by each step while the VE is frozen. The master is vzmigrate's child and
/// dies with it, even when vzmigrate is killed; it goes when this is dropped.
struct Remote<'a> {
    dest: &'a str,
    ssh: &'a [String],
    mux: PathBuf,
    master: Option<std::process::Child>,
}

impl<'a> Remote<'a> {
    fn new(dest: &'a str, ssh: &'a [String], lock_dir: &Path, veid: u32) -> Self {
        let mux = lock_dir.join(format!(".ssh-mux-{veid}-{}", std::process::id()));
        Self { dest, ssh, mux, master: None }
    }

    /// Opens the shared connection; a DEST that cannot be reached is said here, in one line.
    fn connect(&mut self) -> Result<(), VeError> {
        let _ = fs::remove_file(&self.mux);
        let mut cmd = std::process::Command::new("ssh");
        cmd.args(["-M", "-N", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ControlPersist=no"])
            .arg("-o")
            .arg(format!("ControlPath={}", self.mux.display()))
            .args(self.ssh)
            .arg(self.dest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::sys::spawn::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| self.err(format!("cannot run ssh: {e}"), -1))?;
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if self.mux.exists() {
                self.master = Some(child);
                return Ok(());
            }
            if let Ok(Some(_)) = child.try_wait() {
                let mut text = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = io::Read::read_to_string(&mut e, &mut text);
                }
                let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
                return Err(self.err(format!("cannot reach it over ssh: {line}"), -1));
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                return Err(self.err("cannot reach it over ssh: timed out".into(), -1));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Remote<'_> {
    fn drop(&mut self) {
        if let Some(mut m) = self.master.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
        let _ = fs::remove_file(&self.mux);
    }
}

/// A word for the remote shell, quoted.
fn quote(w: &str) -> String {
    if !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b)) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

impl Remote<'_> {
    fn ssh_words(&self) -> Vec<String> {
        let mut w: Vec<String> = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"].map(String::from).into();
        // No master of their own: through ours while it lives, else straight.
        w.extend(["-o".into(), "ControlMaster=no".into()]);
        w.extend(["-o".into(), format!("ControlPath={}", self.mux.display())]);
        w.extend(self.ssh.iter().cloned());
        w
    }

    fn err(&self, why: String, code: i32) -> VeError {
        VeError::Remote { dest: self.dest.to_string(), why, code }
    }

    /// Runs a command to its end within `wait`, feeding it `input`; its stdout, or its
    /// error's first line.
    fn run(&self, mut cmd: std::process::Command, input: Option<&[u8]>, wait: Duration) -> Result<String, VeError> {
        let name = format!("{:?}", cmd.get_program());
        let mut child = cmd
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.err(format!("cannot run {name}: {e}"), -1))?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            io::Write::write_all(&mut stdin, text).map_err(|e| self.err(format!("{name}: {e}"), -1))?;
        }
        let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
        // Read on threads: a chatty command must not block on a full pipe while we wait.
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(o) = out.as_mut() {
                let _ = io::Read::read_to_string(o, &mut s);
            }
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(e) = err.as_mut() {
                let _ = io::Read::read_to_string(e, &mut s);
            }
            s
        });
        let end = Instant::now() + wait;
        let status = loop {
            if let Some(st) = child.try_wait().map_err(|e| self.err(format!("{name}: {e}"), -1))? {
                break st;
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                return Err(self.err(format!("{name} timed out after {} s", wait.as_secs()), -1));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let (out, err) = (out_t.join().unwrap_or_default(), err_t.join().unwrap_or_default());
        if status.success() {
            if !err.trim().is_empty() {
                tracing::debug!(dest = self.dest, "{name} said: {}", err.trim());
            }
            return Ok(out);
        }
        let code = status.code().unwrap_or(-1);
        // The remote vzctl's error is its last line; ssh's own (255) is about the link.
        let line = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        let why = if code == 255 {
            format!("cannot reach it over ssh: {line}")
        } else if line.is_empty() {
            format!("{name} exited with {code}")
        } else {
            line
        };
        Err(self.err(why, code))
    }

    /// `vzctl ARGS` on the destination.
    fn vzctl(&self, args: &[String], input: Option<&[u8]>, wait: Duration) -> Result<String, VeError> {
        let words = self.ssh_words();
        let mut cmd = std::process::Command::new(&words[0]);
        let remote: Vec<String> = std::iter::once("vzctl".to_string()).chain(args.iter().map(|a| quote(a))).collect();
        cmd.args(&words[1..]).arg(self.dest).arg("--").arg(remote.join(" "));
        self.run(cmd, input, wait)
    }

    /// rsync of `src` (a directory's contents, or a file) to `dst` on the destination:
    /// hard links, sparse files, xattrs and numeric ids kept, what is gone there deleted.
    fn rsync(&self, src: &Path, dst: &Path, extra: &[String]) -> Result<(), VeError> {
        let mut cmd = std::process::Command::new("rsync");
        let ssh = self.ssh_words().iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        cmd.args(["-aHSX", "--numeric-ids", "--delete", "-e", &ssh]).args(extra);
        let (mut from, mut to) = (src.as_os_str().to_os_string(), dst.as_os_str().to_os_string());
        if src.is_dir() {
            from.push("/");
            to.push("/");
        }
        let mut target = std::ffi::OsString::from(format!("{}:", self.dest));
        target.push(quote(&to.to_string_lossy()));
        cmd.arg(from).arg(target);
        self.run(cmd, None, LONG).map(|_| ())
    }
}

fn value_of<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

impl Vz {
    /// `vzmigrate [--online] [--keep-dst] [-r yes|no] DEST VEID`.
    pub fn migrate(&self, veid: u32, o: &MigrateOpts) -> Result<(), VeError> {
        let ve = self.open(veid)?;
        if self.cg.is_frozen(veid) {
            return Err(VeError::Suspended(veid));
        }
        let running = self.is_running(veid);
        let online = o.online && running;
        // Checked before anything is touched here or there.
        let criu = if online { Some(Criu::find(self.paths.criu.as_deref())?) } else { None };
        let mut remote = Remote::new(&o.dest, &o.ssh, &self.paths.lock_dir, veid);
        remote.connect()?;
        crate::report::progress(format!(
            "Starting {} migration of container {veid} to {}",
            kind(running, online),
            o.dest
        ));
        let mut accept = vec!["__migrate-accept".to_string(), veid.to_string()];
        if online {
            accept.push("--online".into());
        }
        let out = remote.vzctl(&accept, Some(ve.conf.render().as_bytes()), SHORT)?;
        let (Some(dst_private), Some(dst_dumpdir)) = (value_of(&out, "PRIVATE"), value_of(&out, "DUMPDIR")) else {
            return Err(remote.err(format!("vzctl there answered '{}'", out.trim()), -1));
        };
        let (dst_private, dst_dump) =
            (PathBuf::from(dst_private), PathBuf::from(dst_dumpdir).join(format!("Dump.{veid}")));
        let mut facts = ConfFile::default();
        facts.set("DEST", &o.dest);
        facts.set("SSH", &o.ssh.join(" "));
        facts.set("KEEP_DST", if o.keep_dst { "yes" } else { "no" });
        facts.set("PHASE", "copy");
        let intent = Intent::begin(&self.paths.lock_dir, veid, "migrating", &facts)?;
        let abort = |why: VeError| {
            let mut a = vec!["__migrate-settle".to_string(), veid.to_string(), "abort".into()];
            if o.keep_dst {
                a.push("--keep-dst".into());
            }
            if let Err(e) = remote.vzctl(&a, None, SHORT) {
                warn!(veid, "cannot undo the copy on {}: {e}", o.dest);
                crate::report::notice(format!("Warning: what was copied to {} is left there: {e}", o.dest));
            }
            why
        };
        let phase = |p: &str, facts: &mut ConfFile| {
            facts.set("PHASE", p);
            intent.update(facts)
        };
        self.step("migrate:accepted").map_err(abort)?;
        crate::report::progress(format!("Copying the private area to {}:{}", o.dest, dst_private.display()));
        remote.rsync(&ve.private, &dst_private, &o.rsync).map_err(abort)?;
        self.step("migrate:copied").map_err(abort)?;
        if let Some(criu) = &criu {
            self.migrate_online(&ve, o, &remote, criu, (&dst_private, &dst_dump), &mut facts, &phase, &abort)?;
        } else if running {
            crate::report::progress("Stopping container ...");
            self.halt_and_wait(veid);
            self.cleanup_runtime(veid, &ve.root).map_err(abort)?;
            phase("stopped", &mut facts)?;
            let started = self
                .step("migrate:stopped")
                .and_then(|()| remote.rsync(&ve.private, &dst_private, &o.rsync))
                .and_then(|()| remote.vzctl(&["start".into(), veid.to_string()], None, LONG).map(|_| ()));
            if let Err(e) = started {
                crate::report::progress(format!("Starting container {veid} here again"));
                if let Err(s) = self.start_held(&ve) {
                    warn!(veid, "cannot start it here again: {s}");
                }
                return Err(abort(e));
            }
        }
        phase("done", &mut facts)?;
        self.step("migrate:moved")?;
        let finish = vec!["__migrate-settle".to_string(), veid.to_string(), "finish".into()];
        if let Err(e) = remote.vzctl(&finish, None, SHORT) {
            warn!(veid, "{e}");
        }
        if o.remove_area {
            self.destroy_held(&ve)?;
        }
        intent.done();
        crate::report::progress(format!("Container {veid} migrated to {}", o.dest));
        Ok(())
    }

    /// The online part: freeze, dump, last copy, restore there; thawed here on failure.
    #[allow(clippy::too_many_arguments)]
    fn migrate_online(
        &self,
        ve: &Ve,
        o: &MigrateOpts,
        remote: &Remote<'_>,
        criu: &Criu,
        (dst_private, dst_dump): (&Path, &Path),
        facts: &mut ConfFile,
        phase: &dyn Fn(&str, &mut ConfFile) -> Result<(), ConfigError>,
        abort: &dyn Fn(VeError) -> VeError,
    ) -> Result<(), VeError> {
        let veid = ve.veid;
        let cgid = self.cg.ve_id(veid).map_err(|e| abort(e.into()))?;
        self.suspend(veid, cgid).map_err(abort)?;
        let resume = |e: VeError| {
            if let Err(r) = self.unsuspend(veid, cgid) {
                warn!(veid, "cannot resume the container here: {r}");
            }
            abort(e)
        };
        phase("frozen", facts).map_err(|e| resume(e.into()))?;
        let dump = self.paths.dump_dir.join(format!("Migrate.{veid}"));
        let sent = (|| {
            self.step("migrate:suspended")?;
            self.dump_suspended(veid, ve, Some(&dump), criu)?;
            self.step("migrate:dumped")?;
            // What the frozen VE wrote is on disk before the last copy.
            crate::sys::syncfs(&ve.root).map_err(io_err("sync", &ve.root))?;
            // Both copies at once: each pays an ssh session and rsync's start.
            let (files, image) = std::thread::scope(|sc| {
                let files = sc.spawn(|| remote.rsync(&ve.private, dst_private, &o.rsync));
                let image = remote.rsync(&dump, dst_dump, &[]);
                (files.join(), image)
            });
            files.map_err(|_| VeError::Exec("the private area copy panicked".into()))??;
            image?;
            self.step("migrate:sent")?;
            phase("restoring", facts)?;
            crate::report::progress(format!("Restoring container {veid} on {}", o.dest));
            let args = ["restore".to_string(), veid.to_string(), "--dumpfile".into(), dst_dump.display().to_string()];
            remote.vzctl(&args, None, LONG)
        })();
        let _ = fs::remove_file(&dump);
        sent.map_err(resume)?;
        // It runs there: from here on it must not run here again, whatever fails.
        let noted = phase("restored", facts).map_err(VeError::from).and_then(|()| self.step("migrate:restored"));
        self.kill_dumped(veid, &ve.root)?;
        noted
    }

    /// `vzctl __migrate-accept VEID [--online]` on the destination, the source's config
    /// on stdin: checks that the VE can come here (VEID free, its addresses and host ids
    /// unused, criu usable for an online migration), then takes its config, with VE_ROOT
    /// and VE_PRIVATE this node's. Prints where its private area and dump go.
    pub fn migrate_accept(&self, veid: u32, online: bool, text: &str) -> Result<String, VeError> {
        let _lock = self.lock(veid)?;
        let path = self.paths.ve_conf(veid);
        let mut conf = ConfFile::parse(text, Path::new("<source config>"))?;
        if path.exists() {
            // Only the copy a failed migration kept (--keep-dst) may be taken over.
            let here = self.conf(veid)?;
            if here.get(MIGRATING) != Some("yes") || self.is_running(veid) {
                return Err(VeError::Exists(veid));
            }
        }
        for ip in conf_ips(&conf)? {
            if let Some(other) = self.ip_owner(ip, veid) {
                return Err(VeError::IpInUse { ip: ip.to_string(), veid: other });
            }
        }
        if let Some(name) = conf.get("NAME").filter(|n| !n.is_empty()) {
            self.check_name_free(name, veid)?;
        }
        let (uid, gid) = self.ve_ids(&conf);
        let near = |a: u32, b: u32| u64::from(a.max(b)) < u64::from(a.min(b)) + u64::from(crate::idmap::RANGE);
        if self.ranges_in_use(veid).iter().any(|(u, g)| near(*u, uid) || near(*g, gid)) {
            return Err(VeError::BadValue {
                key: "LOCAL_UID",
                value: uid.to_string(),
                why: "the container's host ids are another container's on this node",
            });
        }
        if online {
            Criu::find(self.paths.criu.as_deref())?;
            // Loaded now rather than while the VE is frozen (the first VE of a node loads
            // and pins the programs: a quarter of a second). A failure is the restore's to say.
            if let Err(e) =
                self.cg.create_parent().map_err(VeError::from).and_then(|()| Ok(Bpf::ensure(&self.bpf_config())?))
            {
                warn!(veid, "programs not loaded ahead of the restore: {e}");
            }
        }
        conf.remove("VE_ROOT");
        conf.remove("VE_PRIVATE");
        conf.set(MIGRATING, "yes");
        let private = self.private_of(veid, &conf);
        for dir in [private.as_path(), self.paths.dump_dir.as_path()] {
            fs::create_dir_all(dir).map_err(io_err("mkdir", dir))?;
        }
        conf.write_atomic(&path)?;
        Ok(format!("PRIVATE={}\nDUMPDIR={}\n", private.display(), self.paths.dump_dir.display()))
    }

    /// `vzctl __migrate-settle VEID finish|abort|status` on the destination.
    pub fn migrate_settle(&self, veid: u32, how: Settle) -> Result<String, VeError> {
        let _lock = self.lock(veid)?;
        let path = self.paths.ve_conf(veid);
        let dump = self.paths.dump_dir.join(format!("Dump.{veid}"));
        let conf = if path.exists() { Some(self.conf(veid)?) } else { None };
        let migrating = conf.as_ref().is_some_and(|c| c.get(MIGRATING) == Some("yes"));
        match how {
            Settle::Status => Ok(match (&conf, self.is_running(veid)) {
                (_, true) => "running\n",
                (Some(_), false) => "stopped\n",
                (None, false) => "absent\n",
            }
            .to_string()),
            Settle::Finish => {
                if let Some(mut c) = conf.filter(|_| migrating) {
                    c.remove(MIGRATING);
                    c.write_atomic(&path)?;
                }
                let _ = fs::remove_file(&dump);
                Ok(String::new())
            }
            Settle::Abort { keep } => {
                if self.is_running(veid) {
                    return Err(VeError::Running(veid));
                }
                let _ = fs::remove_file(&dump);
                if let Some(c) = conf.filter(|_| migrating && !keep) {
                    let (root, private) = (self.root_of(veid, &c), self.private_of(veid, &c));
                    self.cleanup_runtime(veid, &root)?;
                    if private.exists() {
                        fs::remove_dir_all(&private).map_err(io_err("remove", &private))?;
                    }
                    let _ = fs::remove_dir(&root);
                    fs::remove_file(&path).map_err(io_err("remove", &path))?;
                }
                Ok(String::new())
            }
        }
    }

    /// Settles a migration whose vzmigrate was killed (we hold the VE's lock): before the
    /// restore there began, the VE is thawed here; after it, the destination says whether
    /// it runs there, and it is killed here if so (else thawed here). A destination that
    /// cannot be asked leaves the VE frozen here, and says so: running it on both nodes is
    /// worse than a pause.
    pub(super) fn repair_migration(&self, veid: u32, facts: &ConfFile) {
        let dir = &self.paths.lock_dir;
        let dest = facts.get("DEST").unwrap_or("").to_string();
        let ssh: Vec<String> = facts.get("SSH").unwrap_or("").split_whitespace().map(String::from).collect();
        let mut remote = Remote::new(&dest, &ssh, &self.paths.lock_dir, veid);
        // Without the shared connection each ssh connects itself.
        let _ = remote.connect();
        let keep = facts.get("KEEP_DST") == Some("yes");
        let phase = facts.get("PHASE").unwrap_or("copy");
        warn!(veid, phase, dest, "settling a migration that was interrupted");
        crate::report::notice(format!("Settling an interrupted migration of container {veid} to {dest}"));
        let there = match phase {
            "copy" | "frozen" => Ok(false),
            "done" => Ok(true),
            _ => remote
                .vzctl(&["__migrate-settle".into(), veid.to_string(), "status".into()], None, SHORT)
                .map(|s| s.trim() == "running"),
        };
        let abort = || {
            let mut a = vec!["__migrate-settle".to_string(), veid.to_string(), "abort".into()];
            if keep {
                a.push("--keep-dst".into());
            }
            if let Err(e) = remote.vzctl(&a, None, SHORT) {
                warn!(veid, "cannot undo the copy on {dest}: {e}");
            }
        };
        let cgid = self.cg.ve_id(veid).ok();
        match there {
            Ok(true) => {
                if let Ok(ve) = self.held(veid) {
                    if self.is_running(veid) {
                        if let Err(e) = self.kill_dumped(veid, &ve.root) {
                            warn!(veid, "repair: {e}");
                        }
                    }
                }
                let _ = remote.vzctl(&["__migrate-settle".into(), veid.to_string(), "finish".into()], None, SHORT);
                crate::report::notice(format!(
                    "Container {veid} runs on {dest}; here it is stopped (vzctl destroy {veid} removes it)"
                ));
            }
            Ok(false) => {
                if self.is_running(veid) && self.cg.is_frozen(veid) {
                    if let Some(id) = cgid {
                        if let Err(e) = self.unsuspend(veid, id) {
                            warn!(veid, "repair: cannot resume: {e}");
                        }
                    }
                } else if phase == "stopped" && !self.is_running(veid) {
                    if let Ok(ve) = self.held(veid) {
                        if let Err(e) = self.start_held(&ve) {
                            warn!(veid, "repair: cannot start it again: {e}");
                        }
                    }
                }
                abort();
            }
            Err(e) => {
                warn!(veid, "repair: cannot ask {dest}: {e}");
                crate::report::notice(format!(
                    "Warning: cannot ask {dest} whether container {veid} runs there ({e}); it stays suspended here until it can"
                ));
                return;
            }
        }
        let _ = fs::remove_file(self.paths.dump_dir.join(format!("Migrate.{veid}")));
        Intent::forget(dir, veid, "migrating");
    }
}

fn kind(running: bool, online: bool) -> &'static str {
    match (running, online) {
        (false, _) => "offline",
        (true, false) => "offline (stop, copy, start)",
        (true, true) => "online",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_words_are_quoted_for_the_remote_shell() {
        assert_eq!(quote("101"), "101");
        assert_eq!(quote("/vz/dump/Dump.101"), "/vz/dump/Dump.101");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's;rm"), r"'it'\''s;rm'");
        assert_eq!(quote(""), "''");
        assert_eq!(value_of("PRIVATE=/x/101\nDUMPDIR=/d\n", "DUMPDIR"), Some("/d"));
        assert_eq!(value_of("PRIVATEX=/x\n", "PRIVATE"), None);
    }
}
