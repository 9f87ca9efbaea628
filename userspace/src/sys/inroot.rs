//! Host root touching files a VE controls.
//!
//! Everything below a VE's root belongs to a stranger: any name may be a symlink to a host
//! path, a FIFO that blocks an open forever, a device node whose open has side effects, or
//! a file of many gigabytes. Every access here therefore:
//! - resolves inside the VE's root (`openat2` with `RESOLVE_IN_ROOT`, never a magic link),
//!   from a directory fd for that root, so no absolute symlink or `..` leads to the host;
//! - opens with `O_PATH` first and checks the file type on that handle, and only then
//!   reopens it for reading or writing (through `/proc/self/fd`, the same inode), so a FIFO
//!   or device is never opened for I/O;
//! - uses `O_NONBLOCK` and `O_NOFOLLOW` on every real open and bounds what it reads;
//! - replaces files by writing a new one next to them and renaming it over the old one,
//!   so a planted symlink is replaced, never followed.
use std::{
    fs, io,
    os::fd::{AsFd as _, AsRawFd as _, OwnedFd},
    path::Path,
};

use nix::{
    errno::Errno,
    fcntl::{self, AtFlags, OFlag, OpenHow, ResolveFlag},
    sys::stat::{self, Mode},
    unistd::{self, Gid, Uid, UnlinkatFlags},
};

/// `DEVPTS_SUPER_MAGIC`.
pub const DEVPTS_MAGIC: i64 = 0x1cd1;
/// `TMPFS_MAGIC`.
pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// How far a lookup may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Symlinks are followed, inside the root only (a VE's /etc/resolv.conf may be one).
    InRoot,
    /// No symlink at all, in any component.
    Never,
}

/// A directory fd for a host path the host controls (VE_ROOT, a private area): opened
/// `O_PATH`, not following a final symlink.
pub fn host_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(fcntl::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())?)
}

/// The root directory of a running VE as its processes see it (its mount namespace), from
/// its init's `/proc/PID/root` (following that magic link is the point here).
pub fn ve_root(init: i32) -> io::Result<OwnedFd> {
    let p = format!("/proc/{init}/root");
    Ok(fcntl::open(p.as_str(), OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?)
}

/// `openat2` relative to `dir`, resolved inside it.
pub fn openat2(dir: &OwnedFd, rel: &str, flags: libc::c_int, follow: Follow) -> io::Result<OwnedFd> {
    let rel = rel.trim_start_matches('/');
    let mut resolve = ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS;
    if follow == Follow::Never {
        resolve |= ResolveFlag::RESOLVE_NO_SYMLINKS;
    }
    let how = OpenHow::new().flags(OFlag::from_bits_retain(flags) | OFlag::O_CLOEXEC).resolve(resolve);
    Ok(fcntl::openat2(dir.as_fd(), if rel.is_empty() { "." } else { rel }, how)?)
}

fn nofollow(follow: Follow) -> libc::c_int {
    if follow == Follow::Never {
        libc::O_NOFOLLOW
    } else {
        0
    }
}

/// An `O_PATH` handle on `rel` (no I/O possible through it; type checks are).
pub fn path_fd(dir: &OwnedFd, rel: &str, follow: Follow) -> io::Result<OwnedFd> {
    openat2(dir, rel, libc::O_PATH | nofollow(follow), follow)
}

/// A directory inside the root, as an `O_PATH` handle.
pub fn dir_fd(dir: &OwnedFd, rel: &str, follow: Follow) -> io::Result<OwnedFd> {
    openat2(dir, rel, libc::O_PATH | libc::O_DIRECTORY | nofollow(follow), follow)
}

/// The file an fd (also an `O_PATH` handle) stands for.
pub fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    Ok(stat::fstatat(fd.as_fd(), "", AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW)?)
}

/// The file system type (`f_type`) an fd (also an `O_PATH` handle) is on.
pub fn fstatfs_type(fd: &OwnedFd) -> io::Result<i64> {
    Ok(nix::sys::statfs::fstatfs(fd.as_fd())?.filesystem_type().0 as i64)
}

fn kind_err(what: &str, rel: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{rel} is not {what} (planted by the container?)"))
}

/// Reopens an `O_PATH` handle for I/O: the same inode, checked already.
pub fn reopen(fd: &OwnedFd, flags: libc::c_int) -> io::Result<OwnedFd> {
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    Ok(fcntl::open(fd_path(fd).as_str(), flags, Mode::empty())?)
}

/// Opens a regular file inside the root for reading, refusing anything else.
pub fn open_regular(dir: &OwnedFd, rel: &str, follow: Follow) -> io::Result<fs::File> {
    let p = path_fd(dir, rel, follow)?;
    let st = fstat(&p)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(kind_err("a regular file", rel));
    }
    Ok(fs::File::from(reopen(&p, libc::O_RDONLY)?))
}

/// Reads a small regular file inside the root (at most `max` bytes; a larger one is an
/// error, not a truncated read).
pub fn read_small(dir: &OwnedFd, rel: &str, max: u64) -> io::Result<String> {
    use io::Read as _;
    let f = open_regular(dir, rel, Follow::InRoot)?;
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{rel} is larger than {max} bytes")));
    }
    String::from_utf8(buf).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{rel} is not UTF-8")))
}

/// Writes `rel` inside the root as a new file owned by `uid:gid`, renamed over what was
/// there (a symlink or FIFO in its place is replaced, never opened). Its directory is
/// resolved inside the root.
pub fn replace_file(dir: &OwnedFd, rel: &str, data: &[u8], mode: u32, uid: u32, gid: u32) -> io::Result<()> {
    let (parent, name) = rel.trim_start_matches('/').rsplit_once('/').unwrap_or(("", rel));
    let pdir = dir_fd(dir, parent, Follow::InRoot)?;
    let tmp = format!(".{name}.vztmp{}", std::process::id());
    // A leftover (or planted) name of ours goes first; unlinkat never follows anything.
    let _ = unistd::unlinkat(pdir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let mut f = fs::File::from(fcntl::openat(pdir.as_fd(), tmp.as_str(), flags, Mode::from_bits_retain(mode))?);
    let r = (|| {
        io::Write::write_all(&mut f, data)?;
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        // umask may have cut the mode.
        stat::fchmod(f.as_fd(), Mode::from_bits_retain(mode))?;
        drop(f);
        fcntl::renameat(pdir.as_fd(), tmp.as_str(), pdir.as_fd(), name)?;
        Ok(())
    })();
    if r.is_err() {
        let _ = unistd::unlinkat(pdir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    }
    r
}

/// A directory inside the root, made (mode 0755, owned by `uid:gid`) when missing. No
/// symlink is followed: a name that is not a real directory is an error.
pub fn ensure_dir(dir: &OwnedFd, rel: &str, uid: u32, gid: u32) -> io::Result<OwnedFd> {
    match dir_fd(dir, rel, Follow::Never) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
        Err(_) => {}
    }
    let (parent, name) = rel.trim_start_matches('/').rsplit_once('/').unwrap_or(("", rel));
    let pdir = if parent.is_empty() { dir_fd(dir, "", Follow::Never)? } else { ensure_dir(dir, parent, uid, gid)? };
    // Neither call follows a link.
    match stat::mkdirat(pdir.as_fd(), name, Mode::from_bits_retain(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let _ = unistd::fchownat(
        pdir.as_fd(),
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    );
    dir_fd(dir, rel, Follow::Never)
}

/// A device node `rel` inside the root (parents made as by [`ensure_dir`]), block or char
/// per `block`, owned by `uid:gid` with `mode`. An existing node of that device is kept;
/// anything else in its place is an error (the VE's own file is never replaced).
pub fn make_node(
    dir: &OwnedFd,
    rel: &str,
    block: bool,
    rdev: libc::dev_t,
    mode: u32,
    ids: (u32, u32),
) -> io::Result<()> {
    let rel = rel.trim_start_matches('/');
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let pdir = if parent.is_empty() { dir_fd(dir, "", Follow::Never)? } else { ensure_dir(dir, parent, ids.0, ids.1)? };
    let kind = if block { stat::SFlag::S_IFBLK } else { stat::SFlag::S_IFCHR };
    match stat::mknodat(pdir.as_fd(), name, kind, Mode::from_bits_truncate(mode & 0o777), rdev) {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            let st = stat::fstatat(pdir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
            if st.st_mode & libc::S_IFMT != kind.bits() || st.st_rdev != rdev {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "the container has a file of its own there"));
            }
        }
        Err(e) => return Err(e.into()),
    }
    unistd::fchownat(
        pdir.as_fd(),
        name,
        Some(Uid::from_raw(ids.0)),
        Some(Gid::from_raw(ids.1)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    Ok(stat::fchmodat(pdir.as_fd(), name, Mode::from_bits_truncate(mode & 0o777), stat::FchmodatFlags::NoFollowSymlink)
        .or_else(|e| if e == Errno::EOPNOTSUPP { Ok(()) } else { Err(e) })?)
}

/// Removes the device node `rel` if it is one of device `rdev` (whatever else the VE put
/// there stays).
pub fn remove_node(dir: &OwnedFd, rel: &str, rdev: libc::dev_t) -> io::Result<()> {
    let rel = rel.trim_start_matches('/');
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let pdir = match dir_fd(dir, parent, Follow::Never) {
        Ok(d) => d,
        // Gone, or the VE's own link or file there: no node of ours to remove.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)) => return Ok(()),
        Err(e) => return Err(e),
    };
    match stat::fstatat(pdir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if matches!(st.st_mode & libc::S_IFMT, libc::S_IFBLK | libc::S_IFCHR) && st.st_rdev == rdev => {
            Ok(unistd::unlinkat(pdir.as_fd(), name, UnlinkatFlags::NoRemoveDir)?)
        }
        Ok(_) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The path a mount call can take for an fd (`/proc/self/fd/N`): the kernel resolves it
/// to exactly that inode, whatever its name has become.
pub fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tmp(std::path::PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn tmp(tag: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("vz-inroot-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("root/etc")).unwrap();
        Tmp(d)
    }

    #[test]
    fn absolute_symlinks_resolve_inside_the_root() {
        let t = tmp("abs");
        let outside = t.0.join("secret");
        fs::write(&outside, "host file\n").unwrap();
        fs::write(t.0.join("root/secret"), "ve file\n").unwrap();
        std::os::unix::fs::symlink(&outside, t.0.join("root/etc/link")).unwrap();
        std::os::unix::fs::symlink("/secret", t.0.join("root/etc/abs")).unwrap();
        std::os::unix::fs::symlink("../../../secret", t.0.join("root/etc/up")).unwrap();
        let root = host_dir(&t.0.join("root")).unwrap();
        // The host path does not exist inside the root: not found, never the host file.
        assert!(read_small(&root, "etc/link", 100).is_err());
        assert_eq!(read_small(&root, "etc/abs", 100).unwrap(), "ve file\n");
        assert_eq!(read_small(&root, "etc/up", 100).unwrap(), "ve file\n");
        // With Never, any symlink is refused.
        assert!(open_regular(&root, "etc/abs", Follow::Never).is_err());
    }

    #[test]
    fn fifos_are_refused_without_blocking_and_big_files_are_errors() {
        let t = tmp("fifo");
        let f = t.0.join("root/etc/hostname");
        nix::unistd::mkfifo(&f, Mode::from_bits_retain(0o644)).unwrap();
        let root = host_dir(&t.0.join("root")).unwrap();
        let e = read_small(&root, "etc/hostname", 100).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        fs::write(t.0.join("root/etc/big"), vec![b'x'; 200]).unwrap();
        assert!(read_small(&root, "etc/big", 100).unwrap_err().to_string().contains("larger"));
        assert_eq!(read_small(&root, "etc/big", 200).unwrap().len(), 200);
    }

    #[test]
    fn replace_never_writes_through_a_symlink_or_fifo() {
        let t = tmp("replace");
        let outside = t.0.join("victim");
        fs::write(&outside, "untouched").unwrap();
        std::os::unix::fs::symlink(&outside, t.0.join("root/etc/hosts")).unwrap();
        // The temporary name vzctl will use, planted as a FIFO.
        let f = t.0.join(format!("root/etc/.hosts.vztmp{}", std::process::id()));
        nix::unistd::mkfifo(&f, Mode::from_bits_retain(0o644)).unwrap();
        let root = host_dir(&t.0.join("root")).unwrap();
        replace_file(&root, "etc/hosts", b"127.0.0.1 x\n", 0o644, 0, 0).unwrap();
        assert_eq!(fs::read_to_string(&outside).unwrap(), "untouched");
        assert_eq!(fs::read_to_string(t.0.join("root/etc/hosts")).unwrap(), "127.0.0.1 x\n");
        assert!(!fs::symlink_metadata(t.0.join("root/etc/hosts")).unwrap().file_type().is_symlink());
        // A directory that is a symlink out of the root resolves inside it instead.
        std::os::unix::fs::symlink(&t.0, t.0.join("root/out")).unwrap();
        assert!(replace_file(&root, "out/victim", b"x", 0o644, 0, 0).is_err());
        assert_eq!(fs::read_to_string(&outside).unwrap(), "untouched");
    }

    #[test]
    fn ensure_dir_refuses_symlinks() {
        let t = tmp("ensure");
        std::os::unix::fs::symlink(&t.0, t.0.join("root/dev")).unwrap();
        let root = host_dir(&t.0.join("root")).unwrap();
        assert!(ensure_dir(&root, "dev", 0, 0).is_err());
        let made = ensure_dir(&root, "a/b/c", 0, 0).unwrap();
        assert_eq!(fstat(&made).unwrap().st_mode & libc::S_IFMT, libc::S_IFDIR);
        assert!(t.0.join("root/a/b/c").is_dir());
    }
}
