//! Disk quota: OpenVZ's `--diskspace` and `--diskinodes` (soft:hard) on two layouts.
//!
//! - `ploop` (the image layout): the VE's private area holds `root.hdd/root.hds`, a sparse
//!   file with an ext4 file system of its own, attached to a loop device (direct I/O,
//!   discard, freed when unmounted) and mounted as the VE's root. The file system is made
//!   twice the size of the diskspace hard limit; what is above the limit is held by a
//!   balloon, as OpenVZ's ploop does: `/.vz-balloon/space`, a file preallocated to the
//!   excess (unwritten extents: the sparse image does not grow for it), in a directory owned
//!   by the host's root with mode 0700, which the VE's root (root of its user namespace
//!   only) can neither enter nor empty. Inodes likewise: the file system has room for twice
//!   the inode limit and the balloon holds the excess as empty files. So a write or a file
//!   past the hard limit gets ENOSPC inside the VE, as on any full file system, and the
//!   host's file system only ever sees the image file. Changing either limit while the VE
//!   runs resizes the balloon (lowering it below what the VE uses fails and changes
//!   nothing). Above the file system's size the image is grown: online when the host has
//!   CAP_SYS_RESOURCE (ext4's resize ioctl needs it), else while stopped (resize2fs on the
//!   image). Soft limits are kept and shown; nothing refuses at them (as on OpenVZ's
//!   ploop).
//! - `simfs` (a directory): the host file system's project quota, where it has one
//!   (project id = VEID on every file of the private area); otherwise the limits are stored
//!   and vzctl says plainly that they are not enforced.
use std::{
    fs,
    io::{self},
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::fs::MetadataExt as _,
    },
    path::{Path, PathBuf},
    process::Command,
};

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("invalid value '{value}' for --{key}: {why}")]
    Bad { key: &'static str, value: String, why: String },
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("{cmd} failed: {why}")]
    Tool { cmd: String, why: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DiskError + 'a {
    move |source| DiskError::Io { op, path: path.to_path_buf(), source }
}

fn bad(key: &'static str, value: &str, why: impl Into<String>) -> DiskError {
    DiskError::Bad { key, value: value.to_string(), why: why.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Simfs,
    Ploop,
}

impl Layout {
    pub fn parse(s: &str) -> Result<Self, DiskError> {
        match s.trim() {
            "simfs" => Ok(Layout::Simfs),
            "ploop" => Ok(Layout::Ploop),
            _ => Err(bad("layout", s, "use simfs or ploop")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Layout::Simfs => "simfs",
            Layout::Ploop => "ploop",
        }
    }
}

/// A soft:hard pair (diskspace in 1 KiB blocks, as OpenVZ counts it; diskinodes in inodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: u64,
    pub hard: u64,
}

/// One size in 1 KiB blocks: a number of blocks, or with K, M, G or T.
fn parse_kb(key: &'static str, whole: &str, s: &str) -> Result<u64, DiskError> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mul = match c.to_ascii_uppercase() {
                'K' => 1,
                'M' => 1 << 10,
                'G' => 1 << 20,
                'T' => 1 << 30,
                _ => return Err(bad(key, whole, "use 1 KiB blocks, or sizes with K, M, G or T, as soft:hard")),
            };
            (&t[..i], mul)
        }
        _ => (t, 1u64),
    };
    // Fractions as OpenVZ writes them ("2.2G").
    let v: f64 =
        num.parse().map_err(|_| bad(key, whole, "use 1 KiB blocks, or sizes with K, M, G or T, as soft:hard"))?;
    if !(v.is_finite() && v >= 0.0) || v * mul as f64 > u64::MAX as f64 / 2.0 {
        return Err(bad(key, whole, "out of range"));
    }
    Ok((v * mul as f64).round() as u64)
}

/// `--diskspace soft[:hard]` (one value: both).
pub fn parse_diskspace(s: &str) -> Result<Limit, DiskError> {
    let (a, b) = s.split_once(':').unwrap_or((s, s));
    let l = Limit { soft: parse_kb("diskspace", s, a)?, hard: parse_kb("diskspace", s, b)? };
    check(l, "diskspace", s)
}

/// `--diskinodes soft[:hard]`.
pub fn parse_diskinodes(s: &str) -> Result<Limit, DiskError> {
    let (a, b) = s.split_once(':').unwrap_or((s, s));
    let n = |v: &str| v.trim().parse::<u64>().map_err(|_| bad("diskinodes", s, "use inode counts as soft:hard"));
    check(Limit { soft: n(a)?, hard: n(b)? }, "diskinodes", s)
}

fn check(l: Limit, key: &'static str, s: &str) -> Result<Limit, DiskError> {
    if l.soft > l.hard {
        return Err(bad(key, s, "the soft limit is above the hard limit"));
    }
    if l.hard == 0 {
        return Err(bad(key, s, "the hard limit must be above 0"));
    }
    Ok(l)
}

/// The image of a ploop-layout VE inside its private area.
pub fn image_path(private: &Path) -> PathBuf {
    private.join("root.hdd/root.hds")
}

/// Smallest image ext4 makes comfortably (journal, group tables).
const MIN_IMAGE_KB: u64 = 32 << 10;

fn run(cmd: &mut Command) -> Result<(), DiskError> {
    let name = format!("{cmd:?}");
    let o = cmd.output().map_err(|e| DiskError::Tool { cmd: name.clone(), why: e.to_string() })?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let why = err.lines().next().unwrap_or("").to_string();
        return Err(DiskError::Tool { cmd: name, why: format!("{} ({why})", o.status) });
    }
    Ok(())
}

/// Image size for a hard limit: room to raise the limit live.
pub fn capacity_kb(hard_kb: u64) -> u64 {
    2 * hard_kb
}

/// Makes a sparse image for `space.hard` KiB with an ext4 file system, with inodes for
/// twice `inodes.hard` (room to raise the limit live) or ext4's default if more.
pub fn create_image(image: &Path, space: Limit, inodes: Option<Limit>) -> Result<(), DiskError> {
    if space.hard < MIN_IMAGE_KB {
        return Err(bad("diskspace", &format!("{}:{}", space.soft, space.hard), "an image needs at least 32M"));
    }
    let dir = image.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("mkdir", dir))?;
    let f = fs::File::create(image).map_err(io_err("create", image))?;
    f.set_len(capacity_kb(space.hard) * 1024).map_err(io_err("truncate", image))?;
    drop(f);
    let mut mkfs = Command::new("mkfs.ext4");
    // No blocks reserved for root: the space limit is the image, for every user.
    mkfs.args(["-q", "-F", "-m", "0"]);
    if let Some(i) = inodes {
        let default = capacity_kb(space.hard) / 16; // ext4's default: an inode per 16 KiB
        mkfs.args(["-N", &(i.hard * 2).max(default).to_string()]);
    }
    run(mkfs.arg(image))
}

/// Kernel loop device interface (linux/loop.h).
mod loopdev {
    pub const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
    pub const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
    pub const LOOP_SET_CAPACITY: libc::c_ulong = 0x4C07;
    pub const LO_FLAGS_AUTOCLEAR: u32 = 4;
    pub const LO_FLAGS_DIRECT_IO: u32 = 16;

    #[repr(C)]
    pub struct LoopInfo64 {
        pub lo_device: u64,
        pub lo_inode: u64,
        pub lo_rdevice: u64,
        pub lo_offset: u64,
        pub lo_sizelimit: u64,
        pub lo_number: u32,
        pub lo_encrypt_type: u32,
        pub lo_encrypt_key_size: u32,
        pub lo_flags: u32,
        pub lo_file_name: [u8; 64],
        pub lo_crypt_name: [u8; 64],
        pub lo_encrypt_key: [u8; 32],
        pub lo_init: [u64; 2],
    }

    #[repr(C)]
    pub struct LoopConfig {
        pub fd: u32,
        pub block_size: u32,
        pub info: LoopInfo64,
        pub reserved: [u64; 8],
    }
}

/// Attaches `image` to a free loop device, with direct I/O (no second page cache) and
/// autoclear (the device goes when its last user, the mount, goes). Returns the device
/// path and an open handle (keep it until mounted).
fn attach(image: &Path) -> Result<(PathBuf, OwnedFd), DiskError> {
    // One file system per image: a second loop device on the same file (an old mount still
    // being released) would let two ext4 instances write it.
    if let Some(dev) = attached_to(image) {
        return Err(io_err("attach", image)(io::Error::other(format!(
            "the image is still attached to {}",
            dev.display()
        ))));
    }
    let file = fs::OpenOptions::new().read(true).write(true).open(image).map_err(io_err("open", image))?;
    let ctl = fs::File::open("/dev/loop-control").map_err(io_err("open", Path::new("/dev/loop-control")))?;
    for _ in 0..8 {
        // SAFETY: ioctl without argument.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), loopdev::LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(io_err("LOOP_CTL_GET_FREE", Path::new("/dev/loop-control"))(io::Error::last_os_error()));
        }
        let dev = PathBuf::from(format!("/dev/loop{n}"));
        let Ok(d) = fs::OpenOptions::new().read(true).write(true).open(&dev) else { continue };
        // SAFETY: zeroed plain-old-data struct.
        let mut cfg: loopdev::LoopConfig = unsafe { std::mem::zeroed() };
        cfg.fd = file.as_raw_fd() as u32;
        cfg.info.lo_flags = loopdev::LO_FLAGS_AUTOCLEAR | loopdev::LO_FLAGS_DIRECT_IO;
        let name = image.as_os_str().as_encoded_bytes();
        let len = name.len().min(63);
        cfg.info.lo_file_name[..len].copy_from_slice(&name[..len]);
        // SAFETY: ioctl with a pointer to a live, correctly laid out struct.
        if unsafe { libc::ioctl(d.as_raw_fd(), loopdev::LOOP_CONFIGURE, &cfg) } == 0 {
            return Ok((dev, d.into()));
        }
        // Taken by someone else meanwhile (EBUSY): ask for another.
        if io::Error::last_os_error().raw_os_error() != Some(libc::EBUSY) {
            return Err(io_err("LOOP_CONFIGURE", &dev)(io::Error::last_os_error()));
        }
    }
    Err(io_err("find a free loop device", Path::new("/dev/loop-control"))(io::Error::from_raw_os_error(libc::EBUSY)))
}

/// The loop device that has `image` as its backing file, if any.
fn attached_to(image: &Path) -> Option<PathBuf> {
    let want = fs::canonicalize(image).ok()?;
    fs::read_dir("/sys/block").ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let backing = fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
        (Path::new(backing.trim()) == want).then(|| PathBuf::from("/dev").join(name))
    })
}

fn cstr(p: &Path) -> Result<std::ffi::CString, DiskError> {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(|e| DiskError::Io {
        op: "path",
        path: p.into(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })
}

/// Mounts a ploop-layout image at `root`.
pub fn mount_image(image: &Path, root: &Path) -> Result<PathBuf, DiskError> {
    let (dev, _hold) = attach(image)?;
    // discard: blocks the VE frees are punched out of the sparse image.
    let opts = "discard,errors=remount-ro";
    let (d, r, t, o) = (cstr(&dev)?, cstr(root)?, cstr(Path::new("ext4"))?, cstr(Path::new(opts))?);
    // SAFETY: NUL-terminated strings.
    // nosuid,nodev: what the host sees of a VE is never a way to its setuid files or
    // device nodes (the VE's own mount of its root clears them inside).
    let flags = libc::MS_NOATIME | libc::MS_NOSUID | libc::MS_NODEV;
    if unsafe { libc::mount(d.as_ptr(), r.as_ptr(), t.as_ptr(), flags, o.as_ptr().cast()) } != 0 {
        // Dropping the handle detaches the device (autoclear).
        return Err(io_err("mount", root)(io::Error::last_os_error()));
    }
    // SAFETY: as above; private, so the VE's mounts never propagate back to the host.
    unsafe { libc::mount(std::ptr::null(), r.as_ptr(), std::ptr::null(), libc::MS_PRIVATE, std::ptr::null()) };
    Ok(dev)
}

/// The first line of this process's mount table (newest first) that `pick` takes, given
/// the line's `MAJ:MIN`, mount point and source.
fn find_mount<T>(pick: impl Fn(&str, &Path, &Path) -> Option<T>) -> Option<T> {
    let mi = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-")?;
        pick(f.get(2)?, Path::new(f.get(4)?), Path::new(f.get(sep + 2)?))
    })
}

/// The block device mounted at `mnt`.
pub fn mounted_device(mnt: &Path) -> Option<PathBuf> {
    let want = fs::canonicalize(mnt).ok()?;
    find_mount(|_, m, source| (m == want).then(|| source.to_path_buf()))
}

/// The block device of the file system holding `path` and its mount point.
fn fs_device(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let dev = fs::metadata(path).ok()?.dev();
    let want = format!("{}:{}", libc::major(dev), libc::minor(dev));
    find_mount(|d, m, source| {
        (d == want && source.starts_with("/dev/")).then(|| (source.to_path_buf(), m.to_path_buf()))
    })
}

/// quotactl(2) for ext4/xfs quota (linux/quota.h).
mod q {
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

fn quotactl(dev: &Path, cmd: i32, kind: i32, id: u32, blk: *mut q::Dqblk) -> io::Result<()> {
    let d = std::ffi::CString::new(dev.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: NUL-terminated device path; `blk` points to a live Dqblk (or info struct of
    // at least its size) when the command reads or writes one.
    if unsafe { libc::quotactl(q::cmd(cmd, kind), d.as_ptr(), id as i32, blk.cast()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Does the file system on `dev` enforce project quota?
fn has_project_quota(dev: &Path) -> bool {
    // struct if_dqinfo is 24 bytes; a Dqblk has room for it.
    let mut info = q::Dqblk::default();
    quotactl(dev, q::Q_GETINFO, q::PRJQUOTA, 0, &mut info).is_ok()
}

/// Sets project `id`'s limits on `dev`: blocks in KiB (None: no block limit from quota),
/// inodes.
fn set_project_limits(dev: &Path, id: u32, space: Option<Limit>, inodes: Option<Limit>) -> Result<(), DiskError> {
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
fn project_usage(dev: &Path, id: u32) -> io::Result<(u64, u64)> {
    let mut b = q::Dqblk::default();
    quotactl(dev, q::Q_GETQUOTA, q::PRJQUOTA, id, &mut b)?;
    Ok((b.curspace.div_ceil(1024), b.curinodes))
}

const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801C_581F;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401C_5820;
const FS_XFLAG_PROJINHERIT: u32 = 0x200;

#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

fn get_xattr(f: &fs::File) -> io::Result<FsXattr> {
    let mut x = FsXattr::default();
    // SAFETY: ioctl with a pointer to a live struct of the kernel's layout.
    if unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FSGETXATTR, &mut x) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(x)
}

/// Whether the directory `dir` is in project `id` and passes it on.
fn is_project_dir(dir: &Path, id: u32) -> bool {
    fs::File::open(dir)
        .and_then(|f| get_xattr(&f))
        .is_ok_and(|x| x.projid == id && x.xflags & FS_XFLAG_PROJINHERIT != 0)
}

/// Puts an open file into project `id` (directories also pass it on to what is made in
/// them).
fn set_project(f: &fs::File, id: u32, dir: bool) -> io::Result<()> {
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
fn set_project_tree(dir: &Path, id: u32) -> io::Result<()> {
    fn walk(d: &OwnedFd, id: u32) -> io::Result<()> {
        use crate::inroot;
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
    walk(&crate::inroot::host_dir(dir)?, id)
}

/// What applying limits did, for the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Enforced,
    /// Stored but not enforced, and why.
    NotEnforced(String),
}

/// Applies a mounted ploop VE's limits (at mount: None lifts a limit): the file system
/// grown when the hard limit is above it (online, where the host may), then the balloons
/// sized to hold the rest.
pub fn apply_ploop(root: &Path, space: Option<Limit>, inodes: Option<Limit>) -> Result<Applied, DiskError> {
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
fn grow_for(root: &Path, hard: u64) -> Result<Option<String>, DiskError> {
    if fs_kb(root)? >= hard {
        return Ok(None);
    }
    let dev = mounted_device(root).ok_or_else(|| io_err("find device of", root)(io::ErrorKind::NotFound.into()))?;
    match grow_live(root, &dev, capacity_kb(hard)) {
        Err(DiskError::Io { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => Ok(Some(format!(
            "the image's file system holds {} KiB; a bigger diskspace takes effect at the next start (an online ext4 resize needs CAP_SYS_RESOURCE, which this host's root lacks)",
            fs_kb(root)?
        ))),
        r => r.map(|()| None),
    }
}

/// The balloon of a ploop VE's image (see the module's comment).
pub const BALLOON: &str = ".vz-balloon";
const SPACE_BALLOON: &str = "space";

/// `FS_IOC_GETFLAGS` / `FS_IOC_SETFLAGS` and the immutable flag.
const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;
const FS_IMMUTABLE_FL: libc::c_long = 0x10;

/// A mounted image's balloon directory, opened by fd: a real directory of host root, mode
/// 0700 and immutable, so VE root can neither enter it, rename it away nor put a symlink
/// in its place (its root directory is the VE's). While the value lives, the directory is
/// mutable for vzctl; dropping it makes it immutable again.
struct Balloon {
    dir: fs::File,
}

fn tampered(root: &Path) -> DiskError {
    io_err("use the balloon of", root)(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("/{BALLOON} is not vzctl's own directory (replaced from inside the container?)"),
    ))
}

impl Balloon {
    /// The balloon of the image mounted at `root`; made when missing and `create`.
    fn open(root: &Path, create: bool) -> Result<Option<Self>, DiskError> {
        use crate::inroot::{self, Follow};
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

    fn set_immutable(&self, on: bool) -> io::Result<()> {
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

    fn name(n: &str) -> io::Result<std::ffi::CString> {
        std::ffi::CString::new(n).map_err(io::Error::other)
    }

    /// A file in the balloon (no symlink: nothing but vzctl can be in there).
    fn file(&self, n: &str, create: bool) -> io::Result<fs::File> {
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
    fn space_kb(&self) -> u64 {
        let Ok(c) = Self::name(SPACE_BALLOON) else { return 0 };
        // SAFETY: zeroed plain struct, fstatat relative to our own directory fd.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstatat(self.dir.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            return 0;
        }
        st.st_blocks as u64 / 2
    }

    fn has_space(&self) -> bool {
        Self::name(SPACE_BALLOON).is_ok_and(|c| {
            // SAFETY: faccessat relative to our own directory fd.
            unsafe { libc::faccessat(self.dir.as_raw_fd(), c.as_ptr(), libc::F_OK, libc::AT_SYMLINK_NOFOLLOW) == 0 }
        })
    }

    /// Inode files (every entry but the space file).
    fn inode_files(&self) -> u64 {
        fs::read_dir(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
            .map_or(0, |rd| rd.filter(|e| e.as_ref().is_ok_and(|e| e.file_name() != SPACE_BALLOON)).count() as u64)
    }

    fn remove(&self, n: &str) -> io::Result<()> {
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
fn set_space_limit(root: &Path, hard: Option<u64>) -> Result<(), DiskError> {
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

fn statvfs(p: &Path) -> Result<libc::statvfs, DiskError> {
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
fn set_inode_limit(root: &Path, hard: Option<u64>) -> Result<Applied, DiskError> {
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
fn grow_live(root: &Path, dev: &Path, hard_kb: u64) -> Result<(), DiskError> {
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

/// A VE's disk usage in KiB and inodes: its image's file system (ploop, mounted), or its
/// project's quota (simfs with project quota).
pub fn usage(private: &Path, root: &Path, layout: Layout, id: u32) -> Option<(u64, u64)> {
    match layout {
        Layout::Ploop => {
            let st = statvfs(root).ok()?;
            mounted_device(root)?;
            let used = (st.f_blocks - st.f_bfree) * st.f_frsize / 1024;
            let balloon = Balloon::open(root, false).ok().flatten().map_or(0, |b| b.space_kb());
            Some((used.saturating_sub(balloon), image_inodes_used(root).ok()?))
        }
        Layout::Simfs => project_usage(&fs_device(private)?.0, id).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diskspace_takes_blocks_and_suffixes() {
        assert_eq!(parse_diskspace("1000:2000").unwrap(), Limit { soft: 1000, hard: 2000 });
        assert_eq!(parse_diskspace("2G:2.2G").unwrap(), Limit { soft: 2 << 20, hard: 2306867 });
        assert_eq!(parse_diskspace("512M").unwrap(), Limit { soft: 512 << 10, hard: 512 << 10 });
        for b in ["2G:1G", "x", "1Q:2Q", "0:0", ":", "-1:5"] {
            assert!(parse_diskspace(b).unwrap_err().to_string().contains(&format!("'{b}'")), "{b}");
        }
        assert!(parse_diskspace("2G:1G").unwrap_err().to_string().contains("soft limit is above"));
    }

    #[test]
    fn diskinodes_are_counts() {
        assert_eq!(parse_diskinodes("200000:220000").unwrap(), Limit { soft: 200000, hard: 220000 });
        assert_eq!(parse_diskinodes("5000").unwrap(), Limit { soft: 5000, hard: 5000 });
        for b in ["1k", "9:8", "a:b"] {
            assert!(parse_diskinodes(b).is_err(), "{b}");
        }
        assert_eq!(Layout::parse("ploop").unwrap(), Layout::Ploop);
        assert!(Layout::parse("zfs").unwrap_err().to_string().contains("'zfs'"));
    }

    #[test]
    fn quota_commands_encode_like_the_c_macro() {
        // QCMD(Q_SETQUOTA, PRJQUOTA) from <sys/quota.h>.
        assert_eq!(q::cmd(q::Q_SETQUOTA, q::PRJQUOTA), 0x8000_0802u32 as i32);
        assert_eq!(std::mem::size_of::<q::Dqblk>(), 72);
        assert_eq!(std::mem::size_of::<FsXattr>(), 28);
        assert_eq!(std::mem::size_of::<loopdev::LoopConfig>(), 304);
    }
}
