//! The simfs layout: ext4 project quota on the host's file system, one project per VE, marked on its private area.
use super::*;

/// quotactl(2) for ext4/xfs quota (linux/quota.h).
pub(super) mod q {
    pub const PRJQUOTA: i32 = 2;
    pub const Q_GETINFO: i32 = 0x800005;
    pub const Q_GETQUOTA: i32 = 0x800007;
    pub const Q_SETQUOTA: i32 = 0x800008;
    pub const QIF_BLIMITS: u32 = 1;
    pub const QIF_ILIMITS: u32 = 4;

    #[repr(C)]
    #[derive(Default, Debug, Clone, Copy)]
    pub struct Dqblk {
        pub bhardlimit: u64,
        pub bsoftlimit: u64,
        pub curspace: u64,
        pub ihardlimit: u64,
        pub isoftlimit: u64,
        pub curinodes: u64,
        pub btime: u64,
        pub itime: u64,
        pub valid: u32,
    }

    pub fn cmd(c: i32, t: i32) -> i32 {
        (c << 8) | (t & 0xff)
    }
}

pub(super) fn quotactl(dev: &Path, cmd: i32, kind: i32, id: u32, blk: *mut q::Dqblk) -> io::Result<()> {
    let d = std::ffi::CString::new(dev.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: NUL-terminated device path; `blk` points to a live Dqblk (or info struct of
    // at least its size) when the command reads or writes one.
    if unsafe { libc::quotactl(q::cmd(cmd, kind), d.as_ptr(), id as i32, blk.cast()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Does the file system on `dev` enforce project quota?
pub(super) fn has_project_quota(dev: &Path) -> bool {
    // struct if_dqinfo is 24 bytes; a Dqblk has room for it.
    let mut info = q::Dqblk::default();
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
    let mut b = q::Dqblk {
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
    let mut b = q::Dqblk::default();
    quotactl(dev, q::Q_GETQUOTA, q::PRJQUOTA, id, &mut b)?;
    Ok((b.curspace.div_ceil(1024), b.curinodes))
}

pub(super) const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801C_581F;
pub(super) const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401C_5820;
pub(super) const FS_XFLAG_PROJINHERIT: u32 = 0x200;

#[repr(C)]
#[derive(Default)]
pub(super) struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

pub(super) fn get_xattr(f: &fs::File) -> io::Result<FsXattr> {
    let mut x = FsXattr::default();
    // SAFETY: ioctl with a pointer to a live struct of the kernel's layout.
    if unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FSGETXATTR, &mut x) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(x)
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
    // SAFETY: ioctl with a pointer to a live struct of the kernel's layout.
    if unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FSSETXATTR, &x) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
            // SAFETY: openat of one name in our own directory fd; O_PATH opens nothing.
            let fd = unsafe {
                libc::openat(real.as_raw_fd(), name.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            };
            if fd < 0 {
                continue;
            }
            // SAFETY: the kernel just returned this fd.
            let p = unsafe { OwnedFd::from_raw_fd(fd) };
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
