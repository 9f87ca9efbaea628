//! The host side of a VE's restore: what criu cannot make from inside the VE's user
//! namespace is made here, in a fresh single-threaded process (`vzctl __ve-restore`) with a
//! private mount namespace, and then this process becomes `criu restore`.
//!
//! The mounts are the ones `init::host_mounts` gives a starting VE, with the same limits,
//! but each on a staging directory of its own (criu binds each external mount alone, and
//! a mount with children cannot be bound so from inside the VE's namespaces).
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use super::*;
use crate::sys::inroot;

/// Staging directories under STAGE: /dev, its devpts and its /dev/shm.
pub const STAGE_DEV: &str = "dev";
pub const STAGE_PTS: &str = "pts";
pub const STAGE_SHM: &str = "shm";

/// Entry of `vzctl __ve-restore ROOT UID GID PTYMAX|- SHMBYTES|- STAGE SHMSRC CRIU ARGS...`.
/// Never returns: it execs criu, or prints one line and exits 1.
pub fn restore_stage_main(args: &[String]) -> ! {
    let fail = |msg: String| -> ! {
        eprintln!("vzctl: restore: {msg}");
        std::process::exit(1)
    };
    let [root, uid, gid, pty_max, shm, stage, shm_src, criu @ ..] = args else {
        fail("bad __ve-restore arguments".into())
    };
    let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else { fail("bad __ve-restore ids".into()) };
    if criu.is_empty() {
        fail("no criu command".into());
    }
    let limits = (pty_max.parse::<u64>().ok(), shm.parse::<u64>().ok());
    if let Err(e) = stage_mounts(Path::new(root), Path::new(stage), uid, gid, limits) {
        fail(e);
    }
    if let Err(e) = copy_files_in(Path::new(shm_src), &Path::new(stage).join(STAGE_SHM)) {
        fail(format!("carry /dev/shm back: {e}"));
    }
    let err = Command::new(&criu[0]).args(&criu[1..]).exec();
    fail(format!("exec {}: {err}", criu[0]))
}

fn stage_mounts(
    root: &Path,
    stage: &Path,
    uid: u32,
    gid: u32,
    (pty_max, shm_bytes): (Option<u64>, Option<u64>),
) -> Result<(), String> {
    // As at start (this namespace is criu's alone).
    init::private_ve_root(root)?;
    let st = stage.to_str().ok_or("stage is not UTF-8")?;
    for d in [STAGE_DEV, STAGE_PTS, STAGE_SHM] {
        fs::create_dir_all(stage.join(d)).map_err(|e| format!("mkdir {st}/{d}: {e}"))?;
    }
    // criu binds these from inside the VE's user namespace: it must get through.
    fs::set_permissions(stage, fs::Permissions::from_mode(0o711)).map_err(|e| format!("chmod {st}: {e}"))?;
    let dev = format!("{st}/{STAGE_DEV}");
    init::mount_dev_tmpfs(&dev, uid, gid)?;
    let devfd = inroot::host_dir(Path::new(&dev)).map_err(|e| format!("open {dev}: {e}"))?;
    use nix::{
        fcntl::{AtFlags, OFlag},
        sys::stat::Mode,
        unistd::{Gid, Uid},
    };
    let owner = |name: &str| {
        let (u, g) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        let _ = nix::unistd::fchownat(&devfd, name, u, g, AtFlags::AT_SYMLINK_NOFOLLOW);
    };
    for node in DEV_NODES {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
        nix::fcntl::openat(&devfd, node, flags, Mode::from_bits_retain(0o644))
            .map_err(|e| format!("create /dev/{node}: {e}"))?;
    }
    for name in ["pts", "shm"] {
        let _ = nix::sys::stat::mkdirat(&devfd, name, Mode::from_bits_retain(0o755));
        owner(name);
    }
    init::dev_links(&devfd, uid, gid)?;
    init::mount(
        Some("devpts"),
        &format!("{st}/{STAGE_PTS}"),
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(&devpts_options(pty_max, gid + 5)),
        "devpts",
    )?;
    init::mount(
        Some("tmpfs"),
        &format!("{st}/{STAGE_SHM}"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&shm_options(shm_bytes, uid, gid)),
        "tmpfs on /dev/shm",
    )
}

/// Copies the regular files of a running VE's /dev/shm (POSIX shared memory, what its
/// processes put there) into `dest`, with their modes and owners. The VE must be frozen,
/// so they are the ones its dump refers to. Nothing else there (links, FIFOs, devices,
/// directories) is followed or opened.
pub fn copy_shm_out(init: i32, dest: &Path) -> io::Result<u64> {
    let root = inroot::ve_root(init)?;
    let shm = inroot::dir_fd(&root, "dev/shm", inroot::Follow::Never)?;
    fs::create_dir_all(dest)?;
    let mut total = 0;
    for e in fs::read_dir(inroot::fd_path(&shm))? {
        let e = e?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
        let Ok(mut f) = inroot::open_regular(&shm, &name, inroot::Follow::Never) else { continue };
        let meta = f.metadata()?;
        let out_path = dest.join(&name);
        let mut out = fs::OpenOptions::new().write(true).create_new(true).open(&out_path)?;
        total += io::copy(&mut f, &mut out)?;
        std::os::unix::fs::fchown(&out, Some(meta.uid()), Some(meta.gid()))?;
        out.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    Ok(total)
}

/// Copies what `copy_shm_out` saved into the new /dev/shm.
fn copy_files_in(src: &Path, dest: &Path) -> io::Result<()> {
    let Ok(list) = fs::read_dir(src) else { return Ok(()) };
    for e in list {
        let e = e?;
        if !e.file_type()?.is_file() {
            continue;
        }
        let meta = e.metadata()?;
        let to = dest.join(e.file_name());
        fs::copy(e.path(), &to)?;
        std::os::unix::fs::chown(&to, Some(meta.uid()), Some(meta.gid()))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    Ok(())
}
