//! DISKSPACE and DISKINODES on a ploop image: a live file system is grown in place, a smaller limit is held by an immutable balloon file the VE cannot move or replace, offline images are resized.
use super::*;

/// The balloon of a ploop VE's image (see the module's comment).
pub const BALLOON: &str = ".vz-balloon";
pub(super) const SPACE_BALLOON: &str = "space";

/// `FS_IOC_GETFLAGS` / `FS_IOC_SETFLAGS` and the immutable flag.
pub(super) const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
pub(super) const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;
pub(super) const FS_IMMUTABLE_FL: libc::c_long = 0x10;

/// A mounted image's balloon directory, opened by fd: a real directory of host root, mode
/// 0700 and immutable, so VE root can neither enter it, rename it away nor put a symlink
/// in its place (its root directory is the VE's). While the value lives, the directory is
/// mutable for vzctl; dropping it makes it immutable again.
pub(super) struct Balloon {
    dir: fs::File,
}

pub(super) fn tampered(root: &Path) -> DiskError {
    io_err("use the balloon of", root)(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("/{BALLOON} is not vzctl's own directory (replaced from inside the container?)"),
    ))
}

impl Balloon {
    /// The balloon of the image mounted at `root`; made when missing and `create`.
    pub(super) fn open(root: &Path, create: bool) -> Result<Option<Self>, DiskError> {
        use crate::sys::inroot::{self, Follow};
        let rootfd = inroot::host_dir(root).map_err(io_err("open", root))?;
        let p = match inroot::dir_fd(&rootfd, BALLOON, Follow::Never) {
            Ok(p) => p,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                if !create {
                    return Ok(None);
                }
                let name = std::ffi::CString::new(BALLOON).map_err(|e| io_err("mkdir", root)(io::Error::other(e)))?;
                // SAFETY: mkdirat of one name in a directory fd we hold.
                if unsafe { libc::mkdirat(rootfd.as_raw_fd(), name.as_ptr(), 0o700) } != 0 {
                    return Err(io_err("mkdir balloon in", root)(io::Error::last_os_error()));
                }
                inroot::dir_fd(&rootfd, BALLOON, Follow::Never).map_err(io_err("open balloon in", root))?
            }
            Err(_) => return Err(tampered(root)),
        };
        let st = inroot::fstat(&p).map_err(io_err("stat balloon in", root))?;
        if st.st_uid != 0 || st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(tampered(root));
        }
        let dir = fs::File::from(
            inroot::reopen(&p, libc::O_RDONLY | libc::O_DIRECTORY).map_err(io_err("open balloon in", root))?,
        );
        let b = Self { dir };
        // SAFETY: fchmod on our own fd: host root's only.
        unsafe { libc::fchmod(b.dir.as_raw_fd(), 0o700) };
        b.set_immutable(false).map_err(io_err("unlock balloon in", root))?;
        Ok(Some(b))
    }

    pub(super) fn set_immutable(&self, on: bool) -> io::Result<()> {
        let mut flags: libc::c_long = 0;
        // SAFETY: ioctls on our own directory fd with a pointer to a long.
        unsafe {
            if libc::ioctl(self.dir.as_raw_fd(), FS_IOC_GETFLAGS, &mut flags) != 0 {
                return Err(io::Error::last_os_error());
            }
            let want = if on { flags | FS_IMMUTABLE_FL } else { flags & !FS_IMMUTABLE_FL };
            if want != flags && libc::ioctl(self.dir.as_raw_fd(), FS_IOC_SETFLAGS, &want) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    pub(super) fn name(n: &str) -> io::Result<std::ffi::CString> {
        std::ffi::CString::new(n).map_err(io::Error::other)
    }

    /// A file in the balloon (no symlink: nothing but vzctl can be in there).
    pub(super) fn file(&self, n: &str, create: bool) -> io::Result<fs::File> {
        let c = Self::name(n)?;
        let flags = libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | if create { libc::O_CREAT } else { 0 };
        // SAFETY: openat relative to our own directory fd.
        let fd = unsafe { libc::openat(self.dir.as_raw_fd(), c.as_ptr(), flags, 0o600) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd.
        Ok(fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// KiB the space file holds.
    pub(super) fn space_kb(&self) -> u64 {
        let Ok(c) = Self::name(SPACE_BALLOON) else { return 0 };
        // SAFETY: zeroed plain struct, fstatat relative to our own directory fd.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstatat(self.dir.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            return 0;
        }
        st.st_blocks as u64 / 2
    }

    pub(super) fn has_space(&self) -> bool {
        Self::name(SPACE_BALLOON).is_ok_and(|c| {
            // SAFETY: faccessat relative to our own directory fd.
            unsafe { libc::faccessat(self.dir.as_raw_fd(), c.as_ptr(), libc::F_OK, libc::AT_SYMLINK_NOFOLLOW) == 0 }
        })
    }

    /// Inode files (every entry but the space file).
    pub(super) fn inode_files(&self) -> u64 {
        fs::read_dir(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
            .map_or(0, |rd| rd.filter(|e| e.as_ref().is_ok_and(|e| e.file_name() != SPACE_BALLOON)).count() as u64)
    }

    pub(super) fn remove(&self, n: &str) -> io::Result<()> {
        let c = Self::name(n)?;
        // SAFETY: unlinkat relative to our own directory fd.
        if unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::NotFound {
                return Err(e);
            }
        }
        Ok(())
    }
}

impl Drop for Balloon {
    fn drop(&mut self) {
        let _ = self.set_immutable(true);
    }
}

/// Sizes the space balloon so that the VE can use `hard` KiB (None: all of the file
/// system). Raising the balloon fails with ENOSPC, changing nothing, when the VE already
/// uses more than the new limit.
pub(super) fn set_space_limit(root: &Path, hard: Option<u64>) -> Result<(), DiskError> {
    let existing = Balloon::open(root, false)?;
    let have = existing.as_ref().map_or(0, Balloon::space_kb);
    // What the VE could have with no balloon: available now (ext4 keeps some clusters
    // back for itself) plus the balloon plus what the VE uses; the balloon takes the rest.
    let st = statvfs(root)?;
    let kb = |blocks: u64| blocks * st.f_frsize / 1024;
    let avail = kb(st.f_bavail);
    let used = kb(st.f_blocks - st.f_bfree).saturating_sub(have);
    if let Some(h) = hard.filter(|h| used > *h) {
        return Err(bad("diskspace", &h.to_string(), format!("the container uses {used} KiB, more than that")));
    }
    let want = hard.map_or(0, |h| (avail + have + used).saturating_sub(h));
    if want == 0 && !existing.as_ref().is_some_and(Balloon::has_space) {
        return Ok(());
    }
    let b = match existing {
        Some(b) => b,
        None => Balloon::open(root, true)?.ok_or_else(|| tampered(root))?,
    };
    let path = root.join(BALLOON).join(SPACE_BALLOON);
    let f = b.file(SPACE_BALLOON, true).map_err(io_err("open", &path))?;
    if want < have {
        f.set_len(want * 1024).map_err(io_err("shrink balloon", &path))?;
    } else if want > have {
        // SAFETY: fallocate(2) on an open file.
        if unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, (want * 1024) as libc::off_t) } != 0 {
            let e = io::Error::last_os_error();
            // What was allocated before the failure goes back.
            let _ = f.set_len(have * 1024);
            return Err(io_err("fill balloon (does the container use more than the new limit?)", &path)(e));
        }
    }
    Ok(())
}

pub(super) fn statvfs(p: &Path) -> Result<libc::statvfs, DiskError> {
    let c = cstr(p)?;
    // SAFETY: zeroed plain struct, NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io_err("statvfs", p)(io::Error::last_os_error()));
    }
    Ok(st)
}

/// Inodes the VE uses on a mounted image (the balloon's not counted).
pub fn image_inodes_used(root: &Path) -> Result<u64, DiskError> {
    let st = statvfs(root)?;
    let ballast = match Balloon::open(root, false)? {
        Some(b) => b.inode_files() + 1 + u64::from(b.has_space()),
        None => 0,
    };
    Ok((st.f_files - st.f_ffree).saturating_sub(ballast))
}

/// Sizes the balloon so that `hard` inodes (None: all) are the VE's in all.
pub(super) fn set_inode_limit(root: &Path, hard: Option<u64>) -> Result<Applied, DiskError> {
    if hard.is_none() && Balloon::open(root, false)?.is_none() {
        return Ok(Applied::Enforced);
    }
    let used = image_inodes_used(root)?;
    if let Some(h) = hard.filter(|h| used > *h) {
        return Err(bad("diskinodes", &h.to_string(), format!("the container uses {used} inodes, more than that")));
    }
    let b = Balloon::open(root, true)?.ok_or_else(|| tampered(root))?;
    let n = b.inode_files();
    let free = statvfs(root)?.f_ffree;
    let (want, note) = match hard {
        // The VE's free inodes: the limit less what it uses; the rest is ballast.
        Some(h) => {
            let ve_free = h.saturating_sub(used);
            let pool = free + n;
            if ve_free > pool {
                (
                    0,
                    Some(format!(
                        "the image has room for {} inodes in all; diskinodes above that needs a bigger diskspace",
                        used + pool
                    )),
                )
            } else {
                (pool - ve_free, None)
            }
        }
        None => (0, None),
    };
    let dir = root.join(BALLOON);
    if want > n {
        for i in n..want {
            b.file(&i.to_string(), true).map_err(io_err("create", &dir.join(i.to_string())))?;
        }
    } else {
        for i in want..n {
            b.remove(&i.to_string()).map_err(io_err("remove", &dir.join(i.to_string())))?;
        }
    }
    Ok(note.map_or(Applied::Enforced, Applied::NotEnforced))
}

/// Size of a mounted file system in KiB (what `df` shows).
pub fn fs_kb(root: &Path) -> Result<u64, DiskError> {
    let st = statvfs(root)?;
    Ok(st.f_blocks * st.f_frsize / 1024)
}

/// Size of an image in KiB.
pub fn image_kb(image: &Path) -> Result<u64, DiskError> {
    Ok(fs::metadata(image).map_err(io_err("stat", image))?.len() / 1024)
}

/// Grows a mounted image until its file system offers `hard_kb` (what `df` shows the VE as
/// its size): the image is that plus the file system's own overhead (journal, inode tables,
/// group descriptors). Never shrinks.
pub(super) fn grow_live(root: &Path, dev: &Path, hard_kb: u64) -> Result<(), DiskError> {
    let loopdev = fs::OpenOptions::new().read(true).write(true).open(dev).map_err(io_err("open", dev))?;
    let backing = fs::read_to_string(format!(
        "/sys/block/{}/loop/backing_file",
        dev.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ))
    .map_err(io_err("backing file of", dev))?;
    let image = PathBuf::from(backing.trim());
    // Each step adds block groups, which bring overhead of their own: a few rounds.
    for _ in 0..4 {
        let st = statvfs(root)?;
        let fs_kb = st.f_blocks * st.f_frsize / 1024;
        if fs_kb >= hard_kb {
            break;
        }
        let target = image_kb(&image)? + (hard_kb - fs_kb);
        let f = fs::OpenOptions::new().write(true).open(&image).map_err(io_err("open", &image))?;
        f.set_len(target * 1024).map_err(io_err("grow", &image))?;
        // SAFETY: ioctl without argument.
        if unsafe { libc::ioctl(loopdev.as_raw_fd(), loopdev::LOOP_SET_CAPACITY, 0) } != 0 {
            return Err(io_err("LOOP_SET_CAPACITY", dev)(io::Error::last_os_error()));
        }
        // ext4 online resize, to whole blocks of the new size.
        const EXT4_IOC_RESIZE_FS: libc::c_ulong = 0x4008_6610;
        let blocks: u64 = target * 1024 / st.f_bsize;
        let dir = fs::File::open(root).map_err(io_err("open", root))?;
        // SAFETY: ioctl with a pointer to a u64.
        if unsafe { libc::ioctl(dir.as_raw_fd(), EXT4_IOC_RESIZE_FS, &blocks) } != 0 {
            return Err(io_err("EXT4_IOC_RESIZE_FS", root)(io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Empties a stopped VE's balloons (mounting the image at `mnt` for a moment): an offline
/// resize must not move their blocks and inodes; the next mount makes them anew.
pub fn drop_balloons(image: &Path, mnt: &Path) -> Result<(), DiskError> {
    mount_image(image, mnt)?;
    // Opened (checked, made mutable) first; nothing runs in the VE meanwhile.
    let r = Balloon::open(mnt, false).map_err(|e| io::Error::other(e.to_string())).and_then(|b| match b {
        Some(_unlocked) => fs::remove_dir_all(mnt.join(BALLOON)),
        None => Ok(()),
    });
    let m = cstr(mnt)?;
    // SAFETY: NUL-terminated path; a plain unmount (not lazy), so the image is clean after.
    let u = unsafe { libc::umount(m.as_ptr()) };
    match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("remove balloon in", mnt)(e)),
        _ => {}
    }
    if u != 0 {
        return Err(io_err("umount", mnt)(io::Error::last_os_error()));
    }
    Ok(())
}

/// Shrinks (or grows) a stopped VE's image to `hard_kb`: checked and resized offline, then
/// the file cut.
pub fn resize_offline(image: &Path, hard_kb: u64) -> Result<(), DiskError> {
    let cur = image_kb(image)?;
    if cur == hard_kb {
        return Ok(());
    }
    if hard_kb < MIN_IMAGE_KB {
        return Err(bad("diskspace", &hard_kb.to_string(), "an image needs at least 32M"));
    }
    if hard_kb > cur {
        let f = fs::OpenOptions::new().write(true).open(image).map_err(io_err("open", image))?;
        f.set_len(hard_kb * 1024).map_err(io_err("grow", image))?;
    }
    // e2fsck exits 1 when it fixed something; resize2fs refuses an unchecked file system.
    let st = Command::new("e2fsck").args(["-f", "-p"]).arg(image).output();
    match st {
        Ok(o) if o.status.code().is_some_and(|c| c <= 1) => {}
        Ok(o) => {
            return Err(DiskError::Tool {
                cmd: "e2fsck".into(),
                why: String::from_utf8_lossy(&o.stdout).lines().last().unwrap_or("").to_string(),
            })
        }
        Err(e) => return Err(DiskError::Tool { cmd: "e2fsck".into(), why: e.to_string() }),
    }
    run(Command::new("resize2fs").arg("-f").arg(image).arg(format!("{hard_kb}K")))?;
    if hard_kb < cur {
        let f = fs::OpenOptions::new().write(true).open(image).map_err(io_err("open", image))?;
        f.set_len(hard_kb * 1024).map_err(io_err("shrink", image))?;
    }
    Ok(())
}
