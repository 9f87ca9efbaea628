//! A dump's files: the work directories a dump is made in and unpacked into, the images
//! handed to the VE's root for criu, and the bounded runs of criu and tar on them.
use super::run::Feed;
use super::*;
use crate::criu::CriuError;

/// How long criu may take to dump or restore a VE (and tar to pack or unpack it).
pub(super) const CRIU_WAIT: Duration = Duration::from_secs(300);

/// A work directory removed when dropped.
pub(super) struct WorkDir(pub(super) PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl WorkDir {
    /// Where the work directory of `what` ("dumping", "restoring") for `file` is.
    pub(super) fn place(file: &Path, what: &str) -> PathBuf {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        file.with_file_name(format!(".{name}.{what}"))
    }

    pub(super) fn beside(file: &Path, what: &str) -> Result<Self, VeError> {
        let dir = Self::place(file, what);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(io_err("mkdir", &dir))?;
        // Traversable (not listable) by others: criu binds the staged mounts from inside the
        // VE's user namespace. What is in it is for root alone.
        chmod(&dir, 0o711)?;
        Ok(Self(dir))
    }
}

/// Runs a criu (or tar) command to its end within CRIU_WAIT. On failure, criu's own log
/// (`criu_log`, in the work directory) is kept as `log` and its first error quoted.
pub(super) fn run_bounded(
    cmd: std::process::Command,
    feed: Feed<'_>,
    what: &'static str,
    criu_log: Option<&Path>,
    log: PathBuf,
) -> Result<(), VeError> {
    let name = format!("{cmd:?}");
    let t = std::time::Instant::now();
    let done = super::run::run_within(cmd, feed, CRIU_WAIT).map_err(|source| CriuError::Spawn { cmd: name, source })?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "{what} done");
    let keep_log = || {
        criu_log.map(|l| {
            let _ = fs::copy(l, &log);
            crate::criu::first_error(&fs::read_to_string(l).unwrap_or_default())
        })
    };
    let Some(done) = done else {
        keep_log();
        return Err(CriuError::Failed { op: what, code: -1, why: " (timed out)".into(), log }.into());
    };
    if done.status.success() {
        return Ok(());
    }
    let text = done.stderr.trim();
    if !text.is_empty() {
        warn!("{what}: {text}");
    }
    let mut why = keep_log().unwrap_or_default();
    if why.is_empty() {
        why = text.lines().find(|l| !l.trim().is_empty()).map(|l| format!(": {}", l.trim())).unwrap_or_default();
    }
    Err(CriuError::Failed { op: what, code: done.status.code().unwrap_or(-1), why, log }.into())
}

pub(super) fn chmod(p: &Path, mode: u32) -> Result<(), VeError> {
    fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).map_err(io_err("chmod", p))
}

/// criu reads its images from inside the VE's user namespace, as VE root: theirs, for VE
/// root alone (0600). Its first task may look up an image before the VE's id map is written
/// (a race inside criu), when only the "other" bits count: so the directory may be searched
/// by anyone (0711; an image it may not have must be "no such file", not "permission
/// denied"), and the time namespace's image, which holds two clock offsets and nothing of
/// the VE's, may be read by anyone (0644).
pub(super) fn hand_images_to_ve(images: &Path, (uid, gid): (u32, u32)) -> Result<(), VeError> {
    std::os::unix::fs::chown(images, Some(uid), Some(gid)).map_err(io_err("chown", images))?;
    chmod(images, 0o711)?;
    for e in fs::read_dir(images).map_err(io_err("list", images))?.flatten() {
        let f = e.path();
        if e.file_type().is_ok_and(|t| t.is_file()) {
            std::os::unix::fs::lchown(&f, Some(uid), Some(gid)).map_err(io_err("chown", &f))?;
            let timens = e.file_name().to_string_lossy().starts_with("timens-");
            chmod(&f, if timens { 0o644 } else { 0o600 })?;
        }
    }
    Ok(())
}

/// `FILE.what`, next to FILE.
pub(super) fn beside(file: &Path, what: &str) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{what}"));
    file.with_file_name(name)
}
