//! The few bpf(2) commands aya 0.14 does not expose: probing, BPF_OBJ_GET on any pin and
//! BPF_LINK_UPDATE (atomic program replacement inside an attached link).
use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_LINK_CREATE: libc::c_long = 28;
/// `enum bpf_attach_type` value of cgroup/sysctl programs.
pub const BPF_CGROUP_SYSCTL: u32 = 18;
pub const BPF_CGROUP_DEVICE: u32 = 6;
pub const BPF_CGROUP_SETSOCKOPT: u32 = 22;
pub const BPF_CGROUP_INET4_BIND: u32 = 8;
pub const BPF_CGROUP_INET6_BIND: u32 = 9;

/// `union bpf_attr` is at most this big for the commands used here; the kernel accepts a
/// longer, zero-filled buffer.
type Attr = [u64; 16];

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, initialised buffer of the size passed.
    super::check(unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), std::mem::size_of::<Attr>()) })
}

/// Issues a harmless, invalid BPF_MAP_CREATE: ENOSYS means no bpf() syscall, EPERM means not
/// allowed; anything else (EINVAL) means bpf() is there and we may call it.
pub fn probe() -> io::Result<()> {
    let mut attr: Attr = [0; 16];
    match bpf(BPF_MAP_CREATE, &mut attr) {
        Ok(fd) => {
            // SAFETY: the kernel just returned this fd to us.
            drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            Ok(())
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => Err(e),
        Err(_) => Ok(()),
    }
}

/// Opens any pinned BPF object (program, map or link).
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut attr: Attr = [0; 16];
    attr[0] = c.as_ptr() as u64;
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Swaps the program of an attached link in one step: there is no moment where neither the
/// old nor the new program runs, nor one where both do.
pub fn link_update(link: BorrowedFd<'_>, new_prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr: Attr = [0; 16];
    // struct { u32 link_fd; u32 new_prog_fd; u32 flags; u32 old_prog_fd; }
    attr[0] = (link.as_raw_fd() as u32 as u64) | ((new_prog.as_raw_fd() as u32 as u64) << 32);
    bpf(BPF_LINK_UPDATE, &mut attr).map(drop)
}

/// Effective capabilities of this process (CAP_* bit set), from /proc/self/status.
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_BPF: u32 = 39;

/// BPF_FS_MAGIC from statfs(2).
pub fn is_bpffs(path: &Path) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe4a11;
    nix::sys::statfs::statfs(path).is_ok_and(|st| st.filesystem_type().0 == BPF_FS_MAGIC)
}

pub fn mount_bpffs(target: &Path) -> io::Result<()> {
    super::mount::mount(Some(Path::new("bpf")), target, Some("bpf"), super::mount::MsFlags::empty(), Some("mode=0700"))
}

/// A BPF link from a program to a cgroup (for program types aya cannot turn into an
/// `FdLink`).
pub fn link_create_cgroup(prog: BorrowedFd<'_>, cgroup: BorrowedFd<'_>, attach_type: u32) -> io::Result<OwnedFd> {
    let mut attr: Attr = [0; 16];
    // struct { u32 prog_fd; u32 target_fd; u32 attach_type; u32 flags; }
    attr[0] = (prog.as_raw_fd() as u32 as u64) | ((cgroup.as_raw_fd() as u32 as u64) << 32);
    attr[1] = u64::from(attach_type);
    let fd = bpf(BPF_LINK_CREATE, &mut attr)?;
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Pins any BPF object fd at `path` on bpffs.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut attr: Attr = [0; 16];
    attr[0] = c.as_ptr() as u64;
    attr[1] = fd.as_raw_fd() as u32 as u64;
    bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}
