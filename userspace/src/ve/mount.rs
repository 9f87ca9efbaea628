//! `vzctl mount` / `umount`: VE_ROOT as a nosuid,nodev bind mount of the private area.
use super::*;
use crate::sys::{
    mount::{MntFlags, MsFlags},
    syscall::Syscall,
};

impl Vz {
    pub(super) fn do_mount(&self, veid: u32, conf: &ConfFile) -> Result<bool, VeError> {
        let (root, private) = (self.root_of(veid, conf), self.private_of(veid, conf));
        self.secure_parent("private", &private, veid)?;
        self.secure_parent("root", &root, veid)?;
        if is_mounted(&root) {
            return Ok(false);
        }
        if !private.is_dir() {
            return Err(VeError::Io {
                op: "private area",
                path: private,
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        }
        fs::create_dir_all(&root).map_err(io_err("mkdir", &root))?;
        let d = conf_disk(conf)?;
        match d.layout {
            crate::disk::Layout::Ploop => {
                let image = crate::disk::image_path(&private);
                crate::disk::mount_image(self.sys(), &image, &root)?;
                // The config may have changed while stopped (or by hand), or a limit live
                // (balloon, deferred growth): the file system made the limit again (what `df`
                // shows), then the limits as the config says.
                let fitted = d.space.map_or(Ok(()), |s| crate::disk::fit(self.sys(), &image, &root, s.hard));
                match fitted.and_then(|()| crate::disk::apply_ploop(&root, d.space, d.inodes)) {
                    Ok(a) => say_disk(veid, a),
                    Err(e) => {
                        let _ = umount(self.sys(), &root);
                        return Err(e.into());
                    }
                }
                if d.ugid > 0 {
                    say_disk(veid, crate::disk::Applied::NotEnforced(UGID_QUOTA_WHY.into()));
                }
            }
            crate::disk::Layout::Simfs => {
                bind_mount(self.sys(), &private, &root)?;
                if let Err(e) = crate::disk::apply_simfs(&private, veid, d.space, d.inodes).map(|a| say_disk(veid, a)) {
                    let _ = umount(self.sys(), &root);
                    return Err(e.into());
                }
            }
        }
        // The admin's vps.mount and VEID.mount: a failure leaves it unmounted.
        if let Err(e) = self.host_action(veid, conf, super::actions::Action::Mount) {
            let _ = umount(self.sys(), &root);
            return Err(e);
        }
        Ok(true)
    }

    /// `vzctl mount`: the private area appears at VE_ROOT (simfs layout: a bind mount).
    pub fn mount(&self, veid: u32) -> Result<(), VeError> {
        let ve = self.open(veid)?;
        self.do_mount(veid, &ve.conf)?;
        crate::report::progress("Container is mounted");
        Ok(())
    }

    /// `vzctl umount`: only a stopped VE.
    pub fn umount(&self, veid: u32) -> Result<(), VeError> {
        let ve = self.open(veid)?;
        if self.is_running(veid) {
            return Err(VeError::Running(veid));
        }
        if !is_mounted(&ve.root) {
            return Err(VeError::NotMounted(veid));
        }
        self.host_action(veid, &ve.conf, super::actions::Action::Umount)?;
        umount(self.sys(), &ve.root)?;
        crate::report::progress("Container is unmounted");
        Ok(())
    }
}

/// Is `path` a mount point (in this process's mount namespace)? statx where the kernel
/// tells; the mount table (read whole, thousands of lines on a full host) otherwise.
pub fn is_mounted(path: &Path) -> bool {
    match crate::sys::mount::is_mount_root(path) {
        Some(root) => root,
        None => crate::sys::mountinfo::MountTable::read().is_ok_and(|t| t.is_mount_point(path)),
    }
}

/// VE_ROOT of a simfs VE: its private area, as the host sees it nosuid,nodev (a VE's
/// setuid files are never the host's; the VE's own mount of its root clears both inside).
pub(super) fn bind_mount(sys: &dyn Syscall, src: &Path, dst: &Path) -> Result<(), VeError> {
    sys.mount(Some(src), dst, None, MsFlags::MS_BIND, None).map_err(io_err("bind-mount", dst))?;
    if let Err(e) = sys.remount(dst, MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NODEV) {
        // Undo the bind just made.
        let _ = sys.umount(dst, MntFlags::MNT_DETACH);
        return Err(io_err("remount nosuid,nodev", dst)(e));
    }
    // Private, so the VE's mounts never propagate back to the host.
    let _ = sys.remount(dst, MsFlags::MS_PRIVATE);
    Ok(())
}

pub(super) fn umount(sys: &dyn Syscall, dst: &Path) -> Result<(), VeError> {
    sys.umount(dst, MntFlags::MNT_DETACH).map_err(io_err("umount", dst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::syscall::{Call, TestHelperSyscall};

    fn mounts(calls: &[Call]) -> Vec<(Option<PathBuf>, MsFlags)> {
        calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount { src, flags, .. } => Some((src.clone(), *flags)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_simfs_root_is_bound_nosuid_nodev_and_private() {
        let sys = TestHelperSyscall::default();
        bind_mount(&sys, Path::new("/vz/private/101"), Path::new("/vz/root/101")).unwrap();
        let calls = sys.calls();
        assert_eq!(
            mounts(&calls),
            vec![
                (Some(PathBuf::from("/vz/private/101")), MsFlags::MS_BIND),
                (None, MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NODEV),
                (None, MsFlags::MS_PRIVATE),
            ]
        );
        assert!(calls.iter().all(|c| !matches!(c, Call::Umount { .. })), "{calls:?}");
    }

    #[test]
    fn a_bind_that_cannot_be_made_nosuid_is_undone() {
        let sys = TestHelperSyscall::default();
        sys.fail_when(|c| matches!(c, Call::Mount { flags, .. } if flags.contains(MsFlags::MS_NOSUID)));
        let e = bind_mount(&sys, Path::new("/p"), Path::new("/r")).unwrap_err();
        assert!(e.to_string().contains("remount nosuid,nodev /r"), "{e}");
        let calls = sys.calls();
        assert_eq!(
            calls.last(),
            Some(&Call::Umount { target: PathBuf::from("/r"), flags: MntFlags::MNT_DETACH }),
            "{calls:?}"
        );
        // Never left shared with the host either way: no propagation change after the undo.
        assert_eq!(mounts(&calls).len(), 2, "{calls:?}");
    }
}
