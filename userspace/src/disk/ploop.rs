//! The ploop-like layout: a VE's private area is an ext4 image on a loop device, made, attached and mounted here.
use super::*;
use crate::sys::{mountinfo::MountTable, syscall::Syscall};

/// The image of a ploop-layout VE inside its private area.
pub fn image_path(private: &Path) -> PathBuf {
    private.join("root.hdd/root.hds")
}

/// Smallest image ext4 makes comfortably (journal, group tables).
pub(super) const MIN_IMAGE_KB: u64 = 32 << 10;

/// How far above its target an image's file system may be left (resize2fs works in whole
/// blocks, and a new block group brings its own tables).
const FIT_SLACK_KB: u64 = 512;

/// Makes a sparse image for `space.hard` KiB with an ext4 file system (sized by [`fit`]
/// once mounted), with inodes for twice `inodes.hard` (room to raise the limit live) or
/// ext4's default if more.
pub fn create_image(image: &Path, space: Limit, inodes: Option<Limit>) -> Result<(), DiskError> {
    if space.hard < MIN_IMAGE_KB {
        return Err(bad("diskspace", &format!("{}:{}", space.soft, space.hard), "an image needs at least 32M"));
    }
    let dir = image.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("mkdir", dir))?;
    let f = fs::File::create(image).map_err(io_err("create", image))?;
    // A first guess at ext4's own share (journal, tables); fit() corrects it.
    let size = space.hard + space.hard / 16 + 4096;
    f.set_len(size * 1024).map_err(io_err("truncate", image))?;
    drop(f);
    let mut mkfs = Command::new("mkfs.ext4");
    // No blocks reserved for root: the space limit is the VE's, for every user.
    mkfs.args(["-q", "-F", "-m", "0"]);
    if let Some(i) = inodes {
        let default = size / 16; // ext4's default: an inode per 16 KiB
        mkfs.args(["-N", &(i.hard * 2).max(default).to_string()]);
    }
    run(mkfs.arg(image))
}

/// The file system size (KiB, what `df` shows as Size) a hard limit asks for: the limit
/// plus what ext4 holds back from every writer (2 % up to 4096 blocks), so that the VE can
/// write exactly `hard` and `df` shows about the limit, not more.
pub(super) fn fs_target_kb(hard: u64, st: &Vfs) -> u64 {
    hard + (st.f_bfree - st.f_bavail) * st.f_frsize / 1024
}

/// What to do about a mounted image's size for a hard limit: Some(new image size in KiB)
/// when its file system is below the target or more than the slack above it.
pub(super) fn refit_kb(image_kb: u64, fs_kb: u64, target_kb: u64) -> Option<u64> {
    if (target_kb..=target_kb + FIT_SLACK_KB).contains(&fs_kb) {
        return None;
    }
    // The file system's own share (image less file system) stays about the same.
    Some((image_kb + target_kb).saturating_sub(fs_kb).max(MIN_IMAGE_KB))
}

/// Sizes the image mounted at `root` so that its file system is the hard limit (what `df`
/// shows inside the VE), resizing it offline (unmounted, resize2fs) when it is not, and
/// leaves it mounted. Only while the VE is not running: its balloons go (the next limits
/// make them anew).
pub fn fit(sys: &dyn Syscall, image: &Path, root: &Path, hard: u64) -> Result<(), DiskError> {
    // A new block group brings tables of its own: a few rounds at most.
    for _ in 0..4 {
        let st = statvfs(root)?;
        let fs = st.f_blocks * st.f_frsize / 1024;
        let Some(size) = refit_kb(image_kb(image)?, fs, fs_target_kb(hard, &st)) else {
            return Ok(());
        };
        if size < image_kb(image)? && used_kb(root)? > hard {
            // The VE holds more than the limit (set by hand while stopped): the limits say so next.
            return Ok(());
        }
        remove_balloons(root)?;
        sys.umount(root, crate::sys::mount::MntFlags::empty()).map_err(io_err("umount", root))?;
        resize_offline(image, size)?;
        mount_image(sys, image, root)?;
    }
    Ok(())
}

/// Attaches `image` to a free loop device, with direct I/O (no second page cache) and
/// autoclear (the device goes when its last user, the mount, goes). Returns the device
/// path and an open handle (keep it until mounted). `ro`: a read-only device on a file
/// opened read-only (a snapshot shown to the admin).
pub(super) fn attach(image: &Path, ro: bool) -> Result<(PathBuf, OwnedFd), DiskError> {
    // One file system per image: a second loop device on the same file (an old mount still
    // being released) would let two ext4 instances write it.
    if let Some(dev) = attached_to(image) {
        return Err(io_err("attach", image)(io::Error::other(format!(
            "the image is still attached to {}",
            dev.display()
        ))));
    }
    let file = fs::OpenOptions::new().read(true).write(!ro).open(image).map_err(io_err("open", image))?;
    let ctl = fs::File::open("/dev/loop-control").map_err(io_err("open", Path::new("/dev/loop-control")))?;
    for _ in 0..8 {
        use crate::sys::disk::{
            loop_configure, loop_get_free, LO_FLAGS_AUTOCLEAR, LO_FLAGS_DIRECT_IO, LO_FLAGS_READ_ONLY,
        };
        let flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO | if ro { LO_FLAGS_READ_ONLY } else { 0 };
        let n = loop_get_free(&ctl).map_err(io_err("LOOP_CTL_GET_FREE", Path::new("/dev/loop-control")))?;
        let dev = PathBuf::from(format!("/dev/loop{n}"));
        let Ok(d) = fs::OpenOptions::new().read(true).write(!ro).open(&dev) else { continue };
        match loop_configure(&d, &file, image.as_os_str().as_encoded_bytes(), flags) {
            Ok(()) => return Ok((dev, d.into())),
            // Taken by someone else meanwhile: ask for another.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(io_err("LOOP_CONFIGURE", &dev)(e)),
        }
    }
    Err(io_err("find a free loop device", Path::new("/dev/loop-control"))(io::Error::from_raw_os_error(libc::EBUSY)))
}

/// The loop device that has `image` as its backing file, if any.
pub(super) fn attached_to(image: &Path) -> Option<PathBuf> {
    let want = fs::canonicalize(image).ok()?;
    fs::read_dir("/sys/block").ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let backing = fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
        (Path::new(backing.trim()) == want).then(|| PathBuf::from("/dev").join(name))
    })
}

/// Mounts a ploop-layout image at `root`.
pub fn mount_image(sys: &dyn Syscall, image: &Path, root: &Path) -> Result<PathBuf, DiskError> {
    let (dev, _hold) = attach(image, false)?;
    // discard: blocks the VE frees are punched out of the sparse image.
    let opts = "discard,errors=remount-ro";
    use crate::sys::mount::MsFlags;
    // nosuid,nodev: what the host sees of a VE is never a way to its setuid files or
    // device nodes (the VE's own mount of its root clears them inside).
    let flags = MsFlags::MS_NOATIME | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    // Dropping the handle on failure detaches the device (autoclear).
    sys.mount(Some(&dev), root, Some("ext4"), flags, Some(opts)).map_err(io_err("mount", root))?;
    // Private, so the VE's mounts never propagate back to the host.
    let _ = sys.remount(root, MsFlags::MS_PRIVATE);
    Ok(dev)
}

/// The block device mounted at `mnt`.
pub fn mounted_device(mnt: &Path) -> Option<PathBuf> {
    Some(MountTable::read().ok()?.top_at(mnt)?.source.clone())
}

/// The block device of the file system holding `path` and its mount point.
pub(super) fn fs_device(path: &Path) -> Option<(PathBuf, PathBuf)> {
    device_in(path, &MountTable::read().ok()?)
}

/// `fs_device` in a mount table already read.
pub(super) fn device_in(path: &Path, table: &MountTable) -> Option<(PathBuf, PathBuf)> {
    let dev = fs::metadata(path).ok()?.dev();
    let want = format!("{}:{}", libc::major(dev), libc::minor(dev));
    let of_dev = || table.entries.iter().filter(|m| m.dev == want && m.source.starts_with("/dev/"));
    // The mount the path is under, not some other mount of the same file system (a VE's
    // root is one, once mounted): the longest mount point above the path.
    let m = of_dev()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
        .or_else(|| of_dev().next_back())?;
    Some((m.source.clone(), m.mount_point.clone()))
}

/// Applies a mounted ploop VE's limits (at mount: None lifts a limit): the file system
/// grown when the hard limit is above it (online, where the host may), then the balloons
/// sized to hold the rest.
pub fn apply_ploop(root: &Path, space: Option<Limit>, inodes: Option<Limit>) -> Result<Applied, DiskError> {
    // Made now, while nothing runs in the VE, even when empty: a balloon made later (a
    // limit lowered live) would find whatever the VE had put in its place.
    drop(Balloon::open(root, true)?);
    let note = match space {
        Some(s) => grow_for(root, s.hard)?,
        None => None,
    };
    set_space_limit(root, space.map(|l| l.hard))?;
    // Always: a grown file system brings new inodes, which the balloon must take.
    let inode_note = set_inode_limit(root, inodes.map(|l| l.hard))?;
    Ok(note.map_or(inode_note, Applied::NotEnforced))
}

/// Changes a running VE's limits: only those given; the other keeps its present value
/// (which may be one set live and not saved).
pub fn change_ploop(root: &Path, space: Option<Limit>, inodes: Option<Limit>) -> Result<Applied, DiskError> {
    // The VE's present inode limit: what it uses and what it may still make.
    let cur_inodes = match Balloon::open(root, false)? {
        Some(_) => Some(image_inodes_used(root)? + statvfs(root)?.f_ffree),
        None => None,
    };
    let mut note = None;
    if let Some(s) = space {
        note = grow_for(root, s.hard)?;
        set_space_limit(root, Some(s.hard))?;
    }
    let inode_note = set_inode_limit(root, inodes.map(|l| l.hard).or(cur_inodes))?;
    Ok(note.map_or(inode_note, Applied::NotEnforced))
}

/// Grows the file system when `hard` is above it: online where the host may (ext4's resize
/// ioctl needs CAP_SYS_RESOURCE), else says when it will happen.
pub(super) fn grow_for(root: &Path, hard: u64) -> Result<Option<String>, DiskError> {
    let target = fs_target_kb(hard, &statvfs(root)?);
    if fs_kb(root)? >= target {
        return Ok(None);
    }
    let dev = mounted_device(root).ok_or_else(|| io_err("find device of", root)(io::ErrorKind::NotFound.into()))?;
    match grow_live(root, &dev, target) {
        Err(DiskError::Io { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => Ok(Some(format!(
            "the image's file system holds {} KiB; a bigger diskspace takes effect at the next start (an online ext4 resize needs CAP_SYS_RESOURCE, which this host's root lacks)",
            fs_kb(root)?
        ))),
        r => r.map(|()| None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_of_a_path_is_the_mount_it_is_under_not_a_later_bind_of_it() {
        // /tmp/p/101 is on / ; the VE's root, mounted later, is a mount of the same device.
        let dev = fs::metadata("/").expect("stat /").dev();
        let (ma, mi) = (libc::major(dev), libc::minor(dev));
        let table = MountTable::parse(&format!(
            "22 1 {ma}:{mi} / / rw - ext4 /dev/vda rw\n\
             90 22 {ma}:{mi} /tmp/p/101 /vz/root/101 rw - ext4 /dev/vda rw\n"
        ));
        let (src, at) = device_in(Path::new("/"), &table).expect("found");
        assert_eq!((src.as_path(), at.as_path()), (Path::new("/dev/vda"), Path::new("/")));
    }
}
