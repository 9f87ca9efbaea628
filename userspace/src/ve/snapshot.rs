//! `vzctl snapshot`, `snapshot-switch`, `-delete`, `-mount`, `-umount`, `-list` on a
//! ploop-layout VE (see `disk::snapshot` for what a snapshot is on this kernel). A running
//! VE's snapshot is consistent: the VE is frozen (every process stopped, its network cut)
//! and its file system frozen while the image is copied; unless `--skip-suspend`, its
//! running state is checkpointed (CRIU) then too, so `snapshot-switch` brings it back
//! running as it was.
use super::*;
use crate::disk::{self, Tree};

/// `vzctl snapshot`'s options.
#[derive(Debug, Default, Clone)]
pub struct SnapshotOpts {
    pub id: Option<String>,
    pub name: String,
    pub desc: String,
    /// Disk and config only, no running state.
    pub skip_suspend: bool,
    /// Do not keep the config with it.
    pub skip_config: bool,
}

/// What `snapshot-switch` does with a snapshot's running state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Restore it if the snapshot has one (else the VE ends stopped).
    IfAny,
    /// Leave the VE stopped.
    Skip,
    /// Fail unless the snapshot has one.
    Must,
}

/// snapshot-list's columns: (name, header, width; 0 = as long as it is).
const FIELDS: [(&str, &str, usize); 8] = [
    ("uuid", "UUID", 38),
    ("parent_uuid", "PARENT_UUID", 38),
    ("current", "C", 1),
    ("date", "DATE", 19),
    ("name", "NAME", 32),
    ("desc", "DESC", 32),
    ("device", "DEVICE", 16),
    ("target", "TARGET", 32),
];
const DEFAULT_FIELDS: &str = "parent_uuid,current,uuid,date,name";

const FREEZE_WAIT: Duration = Duration::from_secs(10);

impl Vz {
    /// The VE's private area, if it has the ploop layout (snapshots are of its image).
    fn ploop_private(&self, ve: &Ve) -> Result<PathBuf, VeError> {
        if conf_disk(&ve.conf)?.layout != disk::Layout::Ploop {
            return Err(VeError::BadValue {
                key: "snapshot",
                value: ve.veid.to_string(),
                why: "snapshots are of a ploop-layout container's image; this one is simfs (VE_LAYOUT)",
            });
        }
        Ok(ve.private.clone())
    }

    /// `vzctl snapshot`: returns the new snapshot's id.
    pub fn snapshot(&self, veid: u32, o: &SnapshotOpts) -> Result<String, VeError> {
        disk::check_text("name", &o.name)?;
        disk::check_text("description", &o.desc)?;
        let uuid = match &o.id {
            Some(id) => disk::normalize_uuid(id)?,
            None => disk::new_uuid()?,
        };
        let ve = self.open(veid)?;
        let private = self.ploop_private(&ve)?;
        let mut tree = Tree::read(&private)?;
        if tree.find(&uuid).is_some() || disk::snapshot_image(&private, &uuid).exists() {
            return Err(VeError::BadValue { key: "id", value: uuid, why: "a snapshot with this id exists" });
        }
        let running = self.is_running(veid);
        if running && self.cg.is_frozen(veid) {
            return Err(VeError::Suspended(veid));
        }
        let dumps = private.join("dump");
        fs::create_dir_all(&dumps).map_err(io_err("mkdir", &dumps))?;
        crate::report::progress(format!("Creating snapshot {uuid}"));
        let made = if running {
            self.snapshot_running(&ve, &private, &uuid, !o.skip_suspend)
        } else {
            copy_image(&ve.root, &private, &uuid)
        };
        let finish = made.and_then(|()| {
            if !o.skip_config {
                self.live_conf(veid)?.write_atomic(&disk::snapshot_conf(&private, &uuid))?;
            }
            tree.add(uuid.clone(), snapshot_date(), o.name.clone(), o.desc.clone());
            Ok(tree.write(&private)?)
        });
        if let Err(e) = finish {
            for f in [
                disk::snapshot_image(&private, &uuid),
                disk::snapshot_conf(&private, &uuid),
                disk::snapshot_dump(&private, &uuid),
            ] {
                let _ = fs::remove_file(f);
            }
            return Err(e);
        }
        crate::report::progress(format!("Snapshot {uuid} has been successfully created"));
        Ok(uuid)
    }

    /// A running VE's snapshot: frozen (and checkpointed, with `dump`) while its image is
    /// copied, then running on as before, also when the copy failed.
    fn snapshot_running(&self, ve: &Ve, private: &Path, uuid: &str, dump: bool) -> Result<(), VeError> {
        let veid = ve.veid;
        let cgid = self.cg.ve_id(veid)?;
        // Checked before the VE is touched.
        let criu = if dump {
            Some(crate::criu::Criu::find(self.paths.criu.as_deref()).map_err(|e| {
                VeError::Exec(format!("{e} (or take the snapshot with --skip-suspend: disk and config only)"))
            })?)
        } else {
            None
        };
        if dump && !super::netdev::conf_netdevs(&self.live_conf(veid)?)?.is_empty() {
            let why = "the container holds host interfaces (--netdev_add), which a checkpoint cannot carry: use --skip-suspend";
            return Err(VeError::BadValue { key: "snapshot", value: veid.to_string(), why });
        }
        if dump {
            self.check_console_free(veid)?;
            self.suspend(veid, cgid)?;
        } else {
            self.cg.freeze(veid, true, FREEZE_WAIT)?;
        }
        let made = criu
            .as_ref()
            .map_or(Ok(()), |c| self.dump_suspended(veid, ve, Some(&disk::snapshot_dump(private, uuid)), c).map(drop))
            .and_then(|()| copy_image(&ve.root, private, uuid));
        let thawed = if dump { self.unsuspend(veid, cgid) } else { Ok(self.cg.freeze(veid, false, FREEZE_WAIT)?) };
        made.and(thawed)
    }

    /// `vzctl snapshot-switch`: the VE's disk (and config, unless `skip_config`) become the
    /// snapshot's; what the VE had since is lost. A running VE is stopped first; it runs
    /// again only from the snapshot's running state.
    pub fn snapshot_switch(&self, veid: u32, id: &str, resume: Resume, skip_config: bool) -> Result<(), VeError> {
        let uuid = disk::normalize_uuid(id)?;
        let dump = {
            let ve = self.open(veid)?;
            let private = self.ploop_private(&ve)?;
            snapshot_of(&Tree::read(&private)?, &uuid)?;
            let dump = disk::snapshot_dump(&private, &uuid);
            if resume == Resume::Must && !dump.is_file() {
                return Err(VeError::BadValue {
                    key: "must-resume",
                    value: uuid,
                    why:
                        "the snapshot has no running state (it was taken of a stopped container or with --skip-suspend)",
                });
            }
            dump
        };
        if self.is_running(veid) {
            self.stop(veid, false)?;
        }
        let ve = self.open(veid)?;
        if self.is_running(veid) {
            return Err(VeError::Running(veid));
        }
        let private = self.ploop_private(&ve)?;
        let mut tree = Tree::read(&private)?;
        snapshot_of(&tree, &uuid)?;
        crate::report::progress(format!("Switching to snapshot {uuid}"));
        if is_mounted(&ve.root) {
            umount(self.sys(), &ve.root)?;
        }
        // The copy is made beside the image and renamed over it: a failure keeps the old one.
        let image = disk::image_path(&private);
        let tmp = image.with_extension("hds.switching");
        let _ = fs::remove_file(&tmp);
        disk::sparse_copy(&disk::snapshot_image(&private, &uuid), &tmp)?;
        fs::rename(&tmp, &image).map_err(io_err("rename", &image))?;
        let conf = disk::snapshot_conf(&private, &uuid);
        if !skip_config && conf.is_file() {
            ConfFile::read(&conf)?.write_atomic(&self.paths.ve_conf(veid))?;
        }
        tree.current = uuid.clone();
        tree.write(&private)?;
        drop(ve);
        if resume != Resume::Skip && dump.is_file() {
            // Restored from a copy in DUMPDIR: criu works beside the dump file as the VE's
            // root, which may not enter the private area.
            let copy = self.paths.dump_dir.join(format!("Snapshot.{veid}.{uuid}"));
            fs::create_dir_all(&self.paths.dump_dir).map_err(io_err("mkdir", &self.paths.dump_dir))?;
            let _ = fs::remove_file(&copy);
            disk::sparse_copy(&dump, &copy)?;
            let restored = self.restore(veid, Some(&copy), RestoreStep::All);
            let _ = fs::remove_file(&copy);
            restored?;
        }
        crate::report::progress(format!("Container has been switched to snapshot {uuid}"));
        Ok(())
    }

    /// `vzctl snapshot-delete`: the snapshot's files go; its children hang from its parent.
    pub fn snapshot_delete(&self, veid: u32, id: &str) -> Result<(), VeError> {
        let uuid = disk::normalize_uuid(id)?;
        let ve = self.open(veid)?;
        let private = self.ploop_private(&ve)?;
        let mut tree = Tree::read(&private)?;
        snapshot_of(&tree, &uuid)?;
        let image = disk::snapshot_image(&private, &uuid);
        if disk::snapshot_mounted(&image).is_some() {
            return Err(VeError::BadValue {
                key: "id",
                value: uuid,
                why: "the snapshot is mounted: snapshot-umount it first",
            });
        }
        crate::report::progress(format!("Deleting snapshot {uuid}"));
        tree.remove(&uuid);
        // The tree first: a failure after it leaves files, never an entry without them.
        tree.write(&private)?;
        for f in [image, disk::snapshot_conf(&private, &uuid), disk::snapshot_dump(&private, &uuid)] {
            match fs::remove_file(&f) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("remove", &f)(e)),
                _ => {}
            }
        }
        crate::report::progress(format!("Snapshot {uuid} has been successfully deleted"));
        Ok(())
    }

    /// `vzctl snapshot-mount`: the snapshot's file system at `target`, read-only.
    pub fn snapshot_mount(&self, veid: u32, id: &str, target: &Path) -> Result<(), VeError> {
        let uuid = disk::normalize_uuid(id)?;
        let bad_target = |why| VeError::BadValue { key: "target", value: target.display().to_string(), why };
        if !target.is_absolute() {
            return Err(bad_target("not an absolute path"));
        }
        if !fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
            return Err(bad_target("not a directory"));
        }
        let ve = self.open(veid)?;
        let private = self.ploop_private(&ve)?;
        snapshot_of(&Tree::read(&private)?, &uuid)?;
        let image = disk::snapshot_image(&private, &uuid);
        if let Some((dev, at)) = disk::snapshot_mounted(&image) {
            let at: Vec<String> = at.iter().map(|p| p.display().to_string()).collect();
            return Err(VeError::Exec(format!(
                "snapshot {uuid} is mounted already ({} at {})",
                dev.display(),
                at.join(", ")
            )));
        }
        disk::mount_snapshot(self.sys(), &image, target)?;
        crate::report::progress(format!("Snapshot {uuid} is mounted at {} (read-only)", target.display()));
        Ok(())
    }

    /// `vzctl snapshot-umount`.
    pub fn snapshot_umount(&self, veid: u32, id: &str) -> Result<(), VeError> {
        let uuid = disk::normalize_uuid(id)?;
        let ve = self.open(veid)?;
        let private = self.ploop_private(&ve)?;
        snapshot_of(&Tree::read(&private)?, &uuid)?;
        let image = disk::snapshot_image(&private, &uuid);
        let at = disk::snapshot_mounted(&image).map(|(_, at)| at).unwrap_or_default();
        if at.is_empty() {
            return Err(VeError::BadValue { key: "id", value: uuid, why: "the snapshot is not mounted" });
        }
        for p in at.iter().rev() {
            self.sys().umount(p, crate::sys::mount::MntFlags::empty()).map_err(io_err("umount", p))?;
        }
        crate::report::progress(format!("Snapshot {uuid} is unmounted"));
        Ok(())
    }

    /// `vzctl snapshot-list`: every snapshot, or `id` and its ancestors.
    pub fn snapshot_list(
        &self,
        veid: u32,
        id: Option<&str>,
        fields: Option<&str>,
        no_header: bool,
    ) -> Result<String, VeError> {
        let cols = list_fields(fields.unwrap_or(DEFAULT_FIELDS))?;
        let uuid = id.map(disk::normalize_uuid).transpose()?;
        let conf = self.conf(veid)?;
        let private = self.private_of(veid, &conf);
        let tree = Tree::read(&private)?;
        let rows: Vec<&disk::Snapshot> = match &uuid {
            Some(u) => {
                snapshot_of(&tree, u)?;
                tree.chain(u)
            }
            None => tree.snaps.iter().collect(),
        };
        let mut out = String::new();
        if !no_header {
            out.push_str(&render_row(&cols, |f| FIELDS[f].1.to_string()));
        }
        for s in rows {
            let mounted = || disk::snapshot_mounted(&disk::snapshot_image(&private, &s.uuid));
            out.push_str(&render_row(&cols, |f| match FIELDS[f].0 {
                "uuid" => s.uuid.clone(),
                "parent_uuid" => s.parent.clone(),
                "current" => {
                    if tree.current == s.uuid {
                        "*".into()
                    } else {
                        String::new()
                    }
                }
                "date" => s.date.clone(),
                "name" => s.name.clone(),
                "desc" => s.desc.clone(),
                "device" => mounted().map(|(d, _)| d.display().to_string()).unwrap_or_default(),
                _ => mounted().and_then(|(_, at)| at.first().map(|p| p.display().to_string())).unwrap_or_default(),
            }));
        }
        Ok(out)
    }
}

/// The names snapshot-list -L prints.
pub fn snapshot_field_names() -> String {
    FIELDS.iter().map(|(n, h, _)| format!("{n:<15} {h:<15}\n")).collect()
}

fn snapshot_of<'a>(tree: &'a Tree, uuid: &str) -> Result<&'a disk::Snapshot, VeError> {
    tree.find(uuid).ok_or_else(|| VeError::BadValue { key: "id", value: uuid.to_string(), why: "no such snapshot" })
}

/// Copies the VE's image to the snapshot's; the file system frozen meanwhile if mounted.
fn copy_image(root: &Path, private: &Path, uuid: &str) -> Result<(), VeError> {
    let _frozen = if is_mounted(root) { Some(disk::Frozen::freeze(root)?) } else { None };
    Ok(disk::sparse_copy(&disk::image_path(private), &disk::snapshot_image(private, uuid))?)
}

fn snapshot_date() -> String {
    crate::events::rfc3339(crate::events::now_ms()).get(..19).unwrap_or_default().replace('T', " ")
}

/// `-o a,b,c` as indexes into FIELDS.
fn list_fields(spec: &str) -> Result<Vec<usize>, VeError> {
    spec.split(',')
        .map(|n| {
            FIELDS.iter().position(|f| f.0.eq_ignore_ascii_case(n)).ok_or_else(|| VeError::BadValue {
                key: "output",
                value: n.to_string(),
                why: "unknown field (snapshot-list -L lists them)",
            })
        })
        .collect()
}

/// One line as vzctl prints it: each column padded to its width and a space, the last as
/// it is.
fn render_row(cols: &[usize], value: impl Fn(usize) -> String) -> String {
    let mut line = String::new();
    for (i, &f) in cols.iter().enumerate() {
        let v = value(f);
        if i + 1 == cols.len() {
            line.push_str(&v);
        } else {
            line.push_str(&format!("{v:<w$} ", w = FIELDS[f].2));
        }
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_rows_are_padded_as_vzctl_pads_them_and_fields_are_checked() {
        let cols = list_fields("parent_uuid,current,uuid").unwrap();
        let row = render_row(&cols, |f| if FIELDS[f].0 == "current" { "*".into() } else { FIELDS[f].0.into() });
        assert_eq!(row, format!("{:<38} * uuid\n", "parent_uuid"));
        assert_eq!(list_fields(DEFAULT_FIELDS).unwrap().len(), 5);
        let e = list_fields("uuid,size").unwrap_err().to_string();
        assert!(e.contains("'size'") && e.contains("--output"), "{e}");
        assert!(snapshot_field_names().lines().any(|l| l.starts_with("parent_uuid")));
    }
}
