//! DISKSPACE and DISKINODES on a ploop image: a live file system is grown in place, a smaller limit is held by an immutable balloon file the VE cannot move or replace, offline images are resized.
use super::*;

/// The balloon of a ploop VE's image (see the module's comment).
pub const BALLOON: &str = ".vz-balloon";
pub(super) const SPACE_BALLOON: &str = "space";

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
                nix::sys::stat::mkdirat(rootfd.as_fd(), BALLOON, Mode::from_bits_retain(0o700))
                    .map_err(|e| io_err("mkdir balloon in", root)(e.into()))?;
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
        // Host root's only.
        let _ = nix::sys::stat::fchmod(b.dir.as_fd(), Mode::from_bits_retain(0o700));
        b.set_immutable(false).map_err(io_err("unlock balloon in", root))?;
        Ok(Some(b))
    }

    pub(super) fn set_immutable(&self, on: bool) -> io::Result<()> {
        crate::sys::disk::set_immutable(&self.dir, on)
    }

    /// A file in the balloon (no symlink: nothing but vzctl can be in there).
    pub(super) fn file(&self, n: &str, create: bool) -> io::Result<fs::File> {
        let mut flags = OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        flags.set(OFlag::O_CREAT, create);
        Ok(fs::File::from(nix::fcntl::openat(self.dir.as_fd(), n, flags, Mode::from_bits_retain(0o600))?))
    }

    /// KiB the space file holds.
    pub(super) fn space_kb(&self) -> u64 {
        nix::sys::stat::fstatat(self.dir.as_fd(), SPACE_BALLOON, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_or(0, |st| st.st_blocks as u64 / 2)
    }

    pub(super) fn has_space(&self) -> bool {
        nix::unistd::faccessat(
            self.dir.as_fd(),
            SPACE_BALLOON,
            nix::unistd::AccessFlags::F_OK,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok()
    }

    /// Inode files (every entry but the space file).
    pub(super) fn inode_files(&self) -> u64 {
        fs::read_dir(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
            .map_or(0, |rd| rd.filter(|e| e.as_ref().is_ok_and(|e| e.file_name() != SPACE_BALLOON)).count() as u64)
    }

    pub(super) fn remove(&self, n: &str) -> io::Result<()> {
        match nix::unistd::unlinkat(self.dir.as_fd(), n, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
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
        let len = i64::try_from(want * 1024).unwrap_or(i64::MAX);
        if let Err(e) = nix::fcntl::fallocate(f.as_fd(), nix::fcntl::FallocateFlags::empty(), 0, len) {
            let e = io::Error::from(e);
            // What was allocated before the failure goes back.
            let _ = f.set_len(have * 1024);
            return Err(io_err("fill balloon (does the container use more than the new limit?)", &path)(e));
        }
    }
    Ok(())
}

/// What statvfs(2) says of a file system (the fields used here, named as in C).
pub(super) struct Vfs {
    pub f_blocks: u64,
    pub f_bfree: u64,
    pub f_bavail: u64,
    pub f_frsize: u64,
    pub f_bsize: u64,
    pub f_files: u64,
    pub f_ffree: u64,
}

pub(super) fn statvfs(p: &Path) -> Result<Vfs, DiskError> {
    let st = nix::sys::statvfs::statvfs(p).map_err(|e| io_err("statvfs", p)(e.into()))?;
    Ok(Vfs {
        f_blocks: st.blocks(),
        f_bfree: st.blocks_free(),
        f_bavail: st.blocks_available(),
        f_frsize: st.fragment_size(),
        f_bsize: st.block_size(),
        f_files: st.files(),
        f_ffree: st.files_free(),
    })
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
        crate::sys::disk::loop_set_capacity(&loopdev).map_err(io_err("LOOP_SET_CAPACITY", dev))?;
        // ext4 online resize, to whole blocks of the new size.
        let blocks: u64 = target * 1024 / st.f_bsize;
        let dir = fs::File::open(root).map_err(io_err("open", root))?;
        crate::sys::disk::ext4_resize(&dir, blocks).map_err(io_err("EXT4_IOC_RESIZE_FS", root))?;
    }
    Ok(())
}

/// Removes the balloons of a mounted image whose VE is not running: an offline resize must
/// not move their blocks and inodes; the next limits make them anew.
pub(super) fn remove_balloons(root: &Path) -> Result<(), DiskError> {
    // Opened (checked, made mutable) first; nothing runs in the VE meanwhile.
    match Balloon::open(root, false)? {
        Some(_unlocked) => match fs::remove_dir_all(root.join(BALLOON)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove balloon in", root)(e)),
            _ => Ok(()),
        },
        None => Ok(()),
    }
}

/// KiB the VE holds on a mounted image (its balloon not counted).
pub fn used_kb(root: &Path) -> Result<u64, DiskError> {
    let st = statvfs(root)?;
    let balloon = Balloon::open(root, false)?.map_or(0, |b| b.space_kb());
    Ok(((st.f_blocks - st.f_bfree) * st.f_frsize / 1024).saturating_sub(balloon))
}

/// Shrinks (or grows) an unmounted image to `hard_kb`: checked and resized offline, then
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
