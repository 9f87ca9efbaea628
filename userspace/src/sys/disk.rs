//! Disk ioctls and quotactl: loop devices (linux/loop.h), ext4 online resize, inode flags,
//! project ids (FS_IOC_FS[GS]ETXATTR) and quota (linux/quota.h). Every struct here has the
//! kernel's layout (sizes checked in the tests).
use std::{
    fs, io,
    os::fd::{AsFd, AsRawFd as _},
    path::Path,
};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_SET_CAPACITY: libc::c_ulong = 0x4C07;
pub const LO_FLAGS_READ_ONLY: u32 = 1;
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;
pub const LO_FLAGS_DIRECT_IO: u32 = 16;
const FIFREEZE: libc::c_ulong = 0xC004_5877;
const FITHAW: libc::c_ulong = 0xC004_5878;
const EXT4_IOC_RESIZE_FS: libc::c_ulong = 0x4008_6610;
const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;
pub const FS_IMMUTABLE_FL: libc::c_long = 0x10;
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801C_581F;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401C_5820;
pub const FS_XFLAG_PROJINHERIT: u32 = 0x200;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    super::check(i64::from(r)).map(|v| v as libc::c_int)
}

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// The number of a free loop device (LOOP_CTL_GET_FREE on /dev/loop-control).
pub fn loop_get_free(ctl: &fs::File) -> io::Result<u32> {
    // SAFETY: LOOP_CTL_GET_FREE takes no argument.
    Ok(check(unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) })? as u32)
}

/// Binds loop device `dev` to `backing` in one step (LOOP_CONFIGURE) with `flags`;
/// `name` (cut to 63 bytes) is what the device reports as its file.
pub fn loop_configure(dev: &fs::File, backing: &fs::File, name: &[u8], flags: u32) -> io::Result<()> {
    let mut info = LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: flags,
        lo_file_name: [0; 64],
        lo_crypt_name: [0; 64],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    };
    let len = name.len().min(63);
    info.lo_file_name[..len].copy_from_slice(&name[..len]);
    let cfg = LoopConfig { fd: backing.as_raw_fd() as u32, block_size: 0, info, reserved: [0; 8] };
    // SAFETY: LOOP_CONFIGURE reads one LoopConfig that lives across the call.
    check(unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &cfg) }).map(drop)
}

/// Makes loop device `dev` see its backing file's new size.
pub fn loop_set_capacity(dev: &impl AsFd) -> io::Result<()> {
    // SAFETY: LOOP_SET_CAPACITY takes no argument.
    check(unsafe { libc::ioctl(dev.as_fd().as_raw_fd(), LOOP_SET_CAPACITY, 0) }).map(drop)
}

/// Grows the mounted ext4 file system `dir` is on to `blocks` blocks.
pub fn ext4_resize(dir: &fs::File, blocks: u64) -> io::Result<()> {
    // SAFETY: EXT4_IOC_RESIZE_FS reads one u64 that lives across the call.
    check(unsafe { libc::ioctl(dir.as_raw_fd(), EXT4_IOC_RESIZE_FS, &blocks) }).map(drop)
}

/// Freezes (`on`) or thaws the mounted file system `dir` is the root of: a frozen one has
/// written everything out, is consistent on its device and blocks every writer.
pub fn fs_freeze(dir: &fs::File, on: bool) -> io::Result<()> {
    let arg: libc::c_int = 0;
    // SAFETY: FIFREEZE and FITHAW take an int argument they do not read through.
    check(unsafe { libc::ioctl(dir.as_raw_fd(), if on { FIFREEZE } else { FITHAW }, arg) }).map(drop)
}

/// Sets or clears the immutable flag of an inode (FS_IOC_GETFLAGS / SETFLAGS).
pub fn set_immutable(fd: &impl AsFd, on: bool) -> io::Result<()> {
    let fd = fd.as_fd().as_raw_fd();
    let mut flags: libc::c_long = 0;
    // SAFETY: both ioctls take a pointer to one long that lives across the call.
    unsafe {
        check(libc::ioctl(fd, FS_IOC_GETFLAGS, &mut flags))?;
        let want = if on { flags | FS_IMMUTABLE_FL } else { flags & !FS_IMMUTABLE_FL };
        if want != flags {
            check(libc::ioctl(fd, FS_IOC_SETFLAGS, &want))?;
        }
    }
    Ok(())
}

/// An inode's extended attributes (struct fsxattr): its project id and flags.
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub struct FsXattr {
    pub xflags: u32,
    pub extsize: u32,
    pub nextents: u32,
    pub projid: u32,
    pub cowextsize: u32,
    pub pad: [u8; 8],
}

pub fn get_fsxattr(f: &fs::File) -> io::Result<FsXattr> {
    let mut x = FsXattr::default();
    // SAFETY: FS_IOC_FSGETXATTR fills one FsXattr that lives across the call.
    check(unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FSGETXATTR, &mut x) })?;
    Ok(x)
}

pub fn set_fsxattr(f: &fs::File, x: &FsXattr) -> io::Result<()> {
    // SAFETY: FS_IOC_FSSETXATTR reads one FsXattr that lives across the call.
    check(unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FSSETXATTR, x) }).map(drop)
}

/// quotactl(2) constants.
pub mod q {
    pub const PRJQUOTA: i32 = 2;
    pub const Q_GETINFO: i32 = 0x800005;
    pub const Q_GETQUOTA: i32 = 0x800007;
    pub const Q_SETQUOTA: i32 = 0x800008;
    pub const QIF_BLIMITS: u32 = 1;
    pub const QIF_ILIMITS: u32 = 4;

    pub fn cmd(c: i32, t: i32) -> i32 {
        (c << 8) | (t & 0xff)
    }
}

/// struct if_dqblk; also big enough for Q_GETINFO's struct if_dqinfo (24 bytes).
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

/// quotactl(2) command `cmd` for quota type `kind` on the file system of block device
/// `dev`, reading or filling `blk`.
pub fn quotactl(dev: &Path, cmd: i32, kind: i32, id: u32, blk: &mut Dqblk) -> io::Result<()> {
    let d = std::ffi::CString::new(dev.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated device path and a pointer to a live Dqblk, which is at least
    // as large as every structure these commands read or write.
    check(unsafe { libc::quotactl(q::cmd(cmd, kind), d.as_ptr(), id as i32, (blk as *mut Dqblk).cast()) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_have_the_kernels_layout() {
        assert_eq!(q::cmd(q::Q_SETQUOTA, q::PRJQUOTA), 0x8000_0802u32 as i32);
        assert_eq!(std::mem::size_of::<Dqblk>(), 72);
        assert_eq!(std::mem::size_of::<FsXattr>(), 28);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }
}
