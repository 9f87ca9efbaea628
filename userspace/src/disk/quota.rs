//! The simfs layout: ext4 project quota on the host's file system, one project per VE, marked on its private area.
use super::*;

use crate::sys::disk::{q, quotactl, Dqblk as QDqblk, FS_XFLAG_PROJINHERIT};

/// Does the file system on `dev` enforce project quota?
pub(super) fn has_project_quota(dev: &Path) -> bool {
    // struct if_dqinfo is 24 bytes; a Dqblk has room for it.
    let mut info = QDqblk::default();
    quotactl(dev, q::Q_GETINFO, q::PRJQUOTA, 0, &mut info).is_ok()
}

/// Sets project `id`'s limits on `dev`: blocks in KiB (None: no block limit from quota),
/// inodes.
pub(super) fn set_project_limits(
    dev: &Path,
    id: u32,
    space: Option<Limit>,
    inodes: Option<Limit>,
) -> Result<(), DiskError> {
    let mut b = QDqblk {
        bsoftlimit: space.map_or(0, |l| l.soft),
        bhardlimit: space.map_or(0, |l| l.hard),
        isoftlimit: inodes.map_or(0, |l| l.soft),
        ihardlimit: inodes.map_or(0, |l| l.hard),
        valid: q::QIF_BLIMITS | q::QIF_ILIMITS,
        ..Default::default()
    };
    quotactl(dev, q::Q_SETQUOTA, q::PRJQUOTA, id, &mut b).map_err(io_err("quotactl Q_SETQUOTA", dev))
}

/// A project's usage: KiB and inodes.
pub(super) fn project_usage(dev: &Path, id: u32) -> io::Result<(u64, u64)> {
    let mut b = QDqblk::default();
    quotactl(dev, q::Q_GETQUOTA, q::PRJQUOTA, id, &mut b)?;
    Ok((b.curspace.div_ceil(1024), b.curinodes))
}

pub(super) fn get_xattr(f: &fs::File) -> io::Result<crate::sys::disk::FsXattr> {
    crate::sys::disk::get_fsxattr(f)
}

/// Whether the directory `dir` is in project `id` and passes it on.
pub(super) fn is_project_dir(dir: &Path, id: u32) -> bool {
    fs::File::open(dir)
        .and_then(|f| get_xattr(&f))
        .is_ok_and(|x| x.projid == id && x.xflags & FS_XFLAG_PROJINHERIT != 0)
}

/// Puts an open file into project `id` (directories also pass it on to what is made in
/// them).
pub(super) fn set_project(f: &fs::File, id: u32, dir: bool) -> io::Result<()> {
    let mut x = get_xattr(f)?;
    x.projid = id;
    if dir {
        x.xflags |= FS_XFLAG_PROJINHERIT;
    }
    crate::sys::disk::set_fsxattr(f, &x)
}

/// Every file and directory below `dir` into project `id`. The tree is the VE's (it may
/// be running): walked by fd, never following a symlink, and only directories and
/// regular files are opened (a FIFO or device node is never opened for I/O).
pub(super) fn set_project_tree(dir: &Path, id: u32) -> io::Result<()> {
    fn walk(d: &OwnedFd, id: u32) -> io::Result<()> {
        use crate::sys::inroot;
        let real = fs::File::from(inroot::reopen(d, libc::O_RDONLY | libc::O_DIRECTORY)?);
        set_project(&real, id, true)?;
        for e in fs::read_dir(format!("/proc/self/fd/{}", real.as_raw_fd()))? {
            let name = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(e?.file_name().as_os_str()))
                .map_err(io::Error::other)?;
            // O_PATH opens nothing.
            let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let Ok(p) = nix::fcntl::openat(real.as_fd(), name.as_c_str(), flags, nix::sys::stat::Mode::empty()) else {
                continue;
            };
            match inroot::fstat(&p)?.st_mode & libc::S_IFMT {
                libc::S_IFDIR => walk(&p, id)?,
                libc::S_IFREG => set_project(&fs::File::from(inroot::reopen(&p, libc::O_RDONLY)?), id, false)?,
                _ => {}
            }
        }
        Ok(())
    }
    walk(&crate::sys::inroot::host_dir(dir)?, id)
}

/// Applies a simfs VE's limits with the host file system's project quota, if it has one.
pub fn apply_simfs(private: &Path, id: u32, space: Option<Limit>, inodes: Option<Limit>) -> Result<Applied, DiskError> {
    if space.is_none() && inodes.is_none() {
        return Ok(Applied::Enforced);
    }
    let Some((dev, mnt)) = fs_device(private) else {
        return Ok(Applied::NotEnforced(format!(
            "{} is on a file system without a block device: no disk quota there",
            private.display()
        )));
    };
    if !has_project_quota(&dev) {
        return Ok(Applied::NotEnforced(format!(
            "the file system of {} ({} on {}) has no project quota enabled (ext4: tune2fs -O quota,project and mount with prjquota; or use --layout ploop)",
            private.display(),
            dev.display(),
            mnt.display()
        )));
    }
    // Once: later files inherit the project, so a start does not walk the whole tree again.
    if !is_project_dir(private, id) {
        set_project_tree(private, id).map_err(io_err("set project", private))?;
    }
    set_project_limits(&dev, id, space, inodes)?;
    Ok(Applied::Enforced)
}
