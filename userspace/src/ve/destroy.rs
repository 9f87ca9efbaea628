//! `vzctl destroy`.
use super::*;

impl Vz {
    /// `vzctl destroy`: only a stopped VE; removes private area, mount point and config.
    pub fn destroy(&self, veid: u32) -> Result<(), VeError> {
        let ve = self.open(veid)?;
        self.destroy_held(&ve)
    }

    /// `destroy` of a VE whose lock the caller holds.
    pub(super) fn destroy_held(&self, ve: &Ve) -> Result<(), VeError> {
        let veid = ve.veid;
        if self.is_running(veid) {
            return Err(VeError::Running(veid));
        }
        let (root, private) = (ve.root.clone(), ve.private.clone());
        // A mounted snapshot would outlive its image's directory, mounted where the admin put it.
        if let Ok(tree) = crate::disk::Tree::read(&private) {
            if let Some(s) = tree
                .snaps
                .iter()
                .find(|s| crate::disk::snapshot_mounted(&crate::disk::snapshot_image(&private, &s.uuid)).is_some())
            {
                return Err(VeError::BadValue {
                    key: "destroy",
                    value: s.uuid.clone(),
                    why: "a snapshot of the container is mounted: snapshot-umount it first",
                });
            }
        }
        self.cleanup_runtime(veid, &root)?;
        crate::report::progress(format!("Destroying container private area: {}", private.display()));
        if private.exists() {
            fs::remove_dir_all(&private).map_err(io_err("remove", &private))?;
        }
        let _ = fs::remove_dir(&root);
        let conf_path = self.paths.ve_conf(veid);
        fs::rename(&conf_path, conf_path.with_extension("conf.destroyed")).map_err(io_err("rename", &conf_path))?;
        crate::report::progress("Container private area was destroyed");
        Ok(())
    }
}
