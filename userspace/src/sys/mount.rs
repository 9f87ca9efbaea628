//! Mounts: the classic calls through nix, and reconfiguring a mounted file system by fd
//! (fspick + fsconfig), which nix does not cover.
use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, BorrowedFd, OwnedFd},
    path::Path,
};

pub use nix::mount::{MntFlags, MsFlags};

/// mount(2).
pub fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> io::Result<()> {
    Ok(nix::mount::mount(src, target, fstype, flags, data)?)
}

/// Changes the propagation or flags of the mount at `target` (no source, no type).
pub fn remount(target: &Path, flags: MsFlags) -> io::Result<()> {
    mount(None, target, None, flags, None)
}

/// umount2(2): `MNT_DETACH` for a lazy one.
pub fn umount(target: &Path, flags: MntFlags) -> io::Result<()> {
    Ok(nix::mount::umount2(target, flags)?)
}

/// Sets `key` to `value` on the file system mounted at `dir` and reconfigures it (fspick
/// by fd with FSPICK_EMPTY_PATH: no path is looked up).
pub fn reconfigure(dir: BorrowedFd<'_>, key: &str, value: &str) -> io::Result<()> {
    const FSPICK_CLOEXEC: libc::c_uint = 1;
    const FSPICK_NO_AUTOMOUNT: libc::c_uint = 4;
    const FSPICK_EMPTY_PATH: libc::c_uint = 8;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_RECONFIGURE: libc::c_uint = 7;
    let (k, v) = (CString::new(key).map_err(io::Error::other)?, CString::new(value).map_err(io::Error::other)?);
    // SAFETY: fspick takes a valid fd and a NUL-terminated (empty) path; it returns a new fd.
    let fc = unsafe {
        libc::syscall(
            libc::SYS_fspick,
            dir.as_raw_fd(),
            c"".as_ptr(),
            FSPICK_CLOEXEC | FSPICK_NO_AUTOMOUNT | FSPICK_EMPTY_PATH,
        )
    };
    // SAFETY: fspick just returned this (fd or -1).
    let fc = unsafe { super::new_fd(fc) }?;
    // SAFETY: fsconfig on our fs context fd with NUL-terminated strings (or none).
    let failed = unsafe {
        libc::syscall(libc::SYS_fsconfig, fc.as_raw_fd(), FSCONFIG_SET_STRING, k.as_ptr(), v.as_ptr(), 0) < 0
            || libc::syscall(
                libc::SYS_fsconfig,
                fc.as_raw_fd(),
                FSCONFIG_CMD_RECONFIGURE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            ) < 0
    };
    if failed {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// PID 1's own copy of the tree at its working directory: cloned (open_tree, recursive),
/// attached over it (move_mount) and entered (fchdir). pivot_root refuses a locked copy
/// made in another user namespace; this one is the caller's.
pub fn clone_cwd_tree() -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    // SAFETY: open_tree with AT_FDCWD and a NUL-terminated path; it returns a new fd.
    let t = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c".".as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
        )
    };
    // SAFETY: open_tree just returned this (fd or -1).
    let t = unsafe { super::new_fd(t) }?;
    // SAFETY: move_mount of our tree fd onto ".", NUL-terminated paths.
    let moved = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            t.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c".".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    super::check(moved)?;
    nix::unistd::fchdir(&t)?;
    Ok(t)
}

/// pivot_root(".", "."), then the old root (now stacked on ".") detached.
pub fn pivot_to_cwd() -> io::Result<()> {
    nix::unistd::pivot_root(".", ".")?;
    Ok(nix::mount::umount2(".", MntFlags::MNT_DETACH)?)
}

/// Whether `path` (symlinks followed) is the root of a mount, from statx's
/// STATX_ATTR_MOUNT_ROOT (Linux 5.8+): one call, where the mount table grows with every
/// VE. None when the kernel does not report the attribute.
pub fn is_mount_root(path: &Path) -> Option<bool> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a zeroed statx is a valid buffer for the kernel to fill.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: c is a NUL-terminated path, st a buffer of the right type, both live across the call.
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_BASIC_STATS, &mut st) };
    // A path that is not there is nobody's mount point (a stopped VE without its VE_ROOT).
    if r != 0 && matches!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) {
        return Some(false);
    }
    if r != 0 || st.stx_attributes_mask & libc::STATX_ATTR_MOUNT_ROOT as u64 == 0 {
        return None;
    }
    Some(st.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0)
}
