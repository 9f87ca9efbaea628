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
use crate::{criu::Criu, ve::dumpfiles::WorkDir};

mod precopy;
mod remote;
pub use remote::shell_words;
use remote::{quote, Feed, Remote};

/// What `vzmigrate` was asked.
#[derive(Debug, Clone)]
pub struct MigrateOpts {
    /// `[user@]host` as ssh takes it.
    pub dest: String,
    /// Checkpoint and restore a running VE (else it is stopped here and started there).
    pub online: bool,
    /// On failure, keep what was copied to the destination (a retry copies less).
    pub keep_dst: bool,
    /// Online: copy the memory in rounds while the VE runs (`criu pre-dump`), where the
    /// kernel can tell what was written since; the pause then copies only that.
    pub iterative: bool,
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

/// What a migration left of its dump on the destination (a restore there that was killed
/// leaves its work directory).
fn forget_dump(dump: &Path) {
    let _ = fs::remove_dir_all(WorkDir::place(dump, "restoring"));
    let _ = fs::remove_dir_all(precopy::remote_rounds(dump));
}

/// Where a migration's dump is kept on the destination (its rounds beside it).
fn dst_dump(dump_dir: &Path, veid: u32) -> PathBuf {
    dump_dir.join(format!("Dump.{veid}"))
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
        if online {
            self.check_console_free(veid)?;
        }
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
        let out = remote.vzctl(&accept, Feed::Bytes(ve.conf.render().as_bytes()), SHORT)?;
        let (Some(dst_private), Some(dst_dumpdir)) = (value_of(&out, "PRIVATE"), value_of(&out, "DUMPDIR")) else {
            return Err(remote.err(format!("vzctl there answered '{}'", out.trim()), -1));
        };
        let (dst_private, dst_dumpdir) = (PathBuf::from(dst_private), PathBuf::from(dst_dumpdir));
        let mut facts = ConfFile::default();
        facts.set("DEST", &o.dest);
        facts.set("SSH", &o.ssh.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" "));
        facts.set("KEEP_DST", if o.keep_dst { "yes" } else { "no" });
        facts.set("PHASE", "copy");
        let intent = Intent::begin(&self.paths.lock_dir, veid, "migrating", &facts)?;
        let abort = |why: VeError| {
            remote.abort_copy(veid, o.keep_dst);
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
            self.migrate_online(&ve, o, &remote, criu, (&dst_private, &dst_dumpdir), &mut facts, &phase, &abort)?;
        } else if running {
            crate::report::progress("Stopping container ...");
            self.halt_and_wait(veid);
            self.cleanup_runtime(veid, &ve.root).map_err(abort)?;
            phase("stopped", &mut facts)?;
            let started = self
                .step("migrate:stopped")
                .and_then(|()| remote.rsync(&ve.private, &dst_private, &o.rsync))
                .and_then(|()| remote.vzctl(&["start".into(), veid.to_string()], Feed::Null, LONG).map(|_| ()));
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
        if let Err(e) = remote.settle(veid, "finish", false) {
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
        (dst_private, dst_dumpdir): (&Path, &Path),
        facts: &mut ConfFile,
        phase: &dyn Fn(&str, &mut ConfFile) -> Result<(), ConfigError>,
        abort: &dyn Fn(VeError) -> VeError,
    ) -> Result<(), VeError> {
        let veid = ve.veid;
        let cgid = self.cg.ve_id(veid).map_err(|e| abort(e.into()))?;
        let rounds = if o.iterative {
            let got = self.precopy(ve, criu, remote, &precopy::remote_rounds(&dst_dump(dst_dumpdir, veid)));
            got.map_err(|e| {
                let _ = fs::remove_dir_all(precopy::local_rounds(&self.paths.dump_dir, veid));
                abort(e)
            })?
        } else {
            None
        };
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
            // The last copy of the private area runs beside the dump: the frozen VE writes
            // nothing, and criu reads only its memory and state.
            let (files, dumped) = std::thread::scope(|sc| {
                let files = sc.spawn(|| {
                    // What the frozen VE wrote is on disk (in a ploop image) before the copy.
                    crate::sys::syncfs(&ve.root).map_err(io_err("sync", &ve.root))?;
                    remote.rsync(&ve.private, dst_private, &o.rsync)
                });
                let dumped = self.dump_to_work(veid, ve, &dump, criu, rounds.as_deref());
                (files.join(), dumped.and_then(|w| self.step("migrate:dumped").map(|()| w)))
            });
            let work = dumped?;
            crate::report::progress("Checkpointing completed successfully");
            files.map_err(|_| VeError::Exec("the private area copy panicked".into()))??;
            self.step("migrate:sent")?;
            phase("restoring", facts)?;
            crate::report::progress(format!("Restoring container {veid} on {}", o.dest));
            // The dump goes as a tar stream on the restore's own ssh session: no archive
            // written here or there, no copy step of its own.
            remote.vzctl(&["__migrate-restore".into(), veid.to_string()], Feed::Tar(&work.0), LONG)
        })();
        let _ = fs::remove_dir_all(precopy::local_rounds(&self.paths.dump_dir, veid));
        sent.map_err(resume)?;
        crate::report::progress(format!("Container {veid} is running on {}", o.dest));
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
        // Held until the config is written: a create here must not take the same range.
        let _idmap = VeLock::global(&self.paths.lock_dir, "idmap")?;
        let (uid, gid) = self.ve_ids(&conf);
        if self.range_taken(veid, (uid, gid)) {
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

    /// `vzctl __migrate-restore VEID` on the destination: the dump arrives on stdin (the
    /// ssh session that runs this) as a tar stream, unpacked as it comes and restored; its
    /// pre-copy rounds are beside DUMPDIR/Dump.VEID.
    pub fn migrate_restore(&self, veid: u32) -> Result<(), VeError> {
        if self.conf(veid)?.get(MIGRATING) != Some("yes") {
            return Err(VeError::BadValue {
                key: "veid",
                value: veid.to_string(),
                why: "no migration of this container to here is under way",
            });
        }
        self.restore_from(veid, &dst_dump(&self.paths.dump_dir, veid), true, crate::ve::RestoreStep::All)
    }

    /// `vzctl __migrate-settle VEID finish|abort|status` on the destination.
    pub fn migrate_settle(&self, veid: u32, how: Settle) -> Result<String, VeError> {
        let _lock = self.lock(veid)?;
        let path = self.paths.ve_conf(veid);
        let dump = dst_dump(&self.paths.dump_dir, veid);
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
                forget_dump(&dump);
                Ok(String::new())
            }
            Settle::Abort { keep } => {
                if self.is_running(veid) {
                    return Err(VeError::Running(veid));
                }
                forget_dump(&dump);
                if migrating && !keep {
                    self.destroy_held(&self.held(veid)?)?;
                    // Never this node's container: no destroyed config kept for the admin.
                    let _ = fs::remove_file(path.with_extension("conf.destroyed"));
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
        let ssh: Vec<String> = shell_words(facts.get("SSH").unwrap_or("")).unwrap_or_default();
        let mut remote = Remote::new(&dest, &ssh, &self.paths.lock_dir, veid);
        // Without the shared connection each ssh connects itself.
        let _ = remote.connect();
        let keep = facts.get("KEEP_DST") == Some("yes");
        let phase = facts.get("PHASE").unwrap_or("copy");
        info!(veid, phase, dest, "settling a migration that was interrupted");
        crate::report::notice(format!("Settling an interrupted migration of container {veid} to {dest}"));
        let there = match phase {
            "copy" | "frozen" => Ok(false),
            "done" => Ok(true),
            _ => remote.settle(veid, "status", false).map(|s| s.trim() == "running"),
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
                let _ = remote.settle(veid, "finish", false);
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
                remote.abort_copy(veid, keep);
            }
            Err(e) => {
                crate::report::notice(format!(
                    "Warning: cannot ask {dest} whether container {veid} runs there ({e}); it stays suspended here until it can"
                ));
                return;
            }
        }
        let _ = fs::remove_dir_all(WorkDir::place(&self.paths.dump_dir.join(format!("Migrate.{veid}")), "dumping"));
        let _ = fs::remove_dir_all(precopy::local_rounds(&self.paths.dump_dir, veid));
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

    #[test]
    fn ssh_options_split_as_a_shell_would_and_survive_the_intent() {
        let w = shell_words(r#"-p 2222 -o "ProxyCommand ssh -W %h:%p jump" -i '/k ey' a\ b"#).unwrap();
        assert_eq!(w, ["-p", "2222", "-o", "ProxyCommand ssh -W %h:%p jump", "-i", "/k ey", "a b"]);
        let stored = w.iter().map(|x| quote(x)).collect::<Vec<_>>().join(" ");
        assert_eq!(shell_words(&stored).unwrap(), w);
        assert_eq!(shell_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(shell_words("''").unwrap(), [""]);
        for bad in ["-o 'x", "-o \"x", "x\\"] {
            assert!(shell_words(bad).is_err(), "{bad}");
        }
    }
}
