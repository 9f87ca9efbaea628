//! Iterative pre-copy for an online migration: while the VE runs, `criu pre-dump` saves its
//! memory in rounds, each only what was written since the round before (the kernel's
//! soft-dirty bits), and each round is sent to the destination at once. The final dump in
//! the pause then holds only the pages written since the last round. Rounds stop when one
//! is small or no longer shrinks.
//!
//! The rounds are `DUMPDIR/Migrate.VEID.pre/N` here and `DUMPDIR/Dump.VEID.pre/N` there,
//! each chained to `../N-1` by criu's parent link; `vzctl restore` there links the final
//! images to the last round (the dump's metadata names it).
use super::*;
use crate::ve::dumpfiles::{beside, run_bounded};

/// At most this many rounds: a VE that writes faster than the link carries never converges.
const MAX_ROUNDS: u32 = 5;
/// A round that saved less than this is the last: the pause copies as much at most.
const SMALL_ROUND: u64 = 4 << 20;

/// Where the rounds are kept on this node.
pub(super) fn local_rounds(dump_dir: &Path, veid: u32) -> PathBuf {
    dump_dir.join(format!("Migrate.{veid}.pre"))
}

/// Where the destination's restore looks for them, beside its dump file.
pub(super) fn remote_rounds(dst_dump: &Path) -> PathBuf {
    beside(dst_dump, "pre")
}

/// Bytes of memory a round saved (its page images).
fn round_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pages-"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Whether a round of `bytes` after one of `prev` is the last.
pub(super) fn last_round(round: u32, bytes: u64, prev: Option<u64>) -> bool {
    round >= MAX_ROUNDS || bytes < SMALL_ROUND || prev.is_some_and(|p| bytes * 2 > p)
}

impl Vz {
    /// Runs the pre-copy rounds of a running VE, each sent to `dst` there. Returns the last
    /// round, or None where this kernel cannot tell what was written (said plainly: the
    /// whole memory is then copied in the pause) or a round failed (said, and the pause
    /// copies everything: the migration does not depend on it).
    pub(super) fn precopy(
        &self,
        ve: &Ve,
        criu: &Criu,
        remote: &remote::Remote<'_>,
        dst: &Path,
    ) -> Result<Option<PathBuf>, VeError> {
        let veid = ve.veid;
        if !criu.tracks_memory() {
            // Said once on the console (the notice) and once in the log (info).
            tracing::info!(veid, "no iterative pre-copy: the kernel does not track written pages (soft-dirty)");
            crate::report::notice(format!(
                "Iterative pre-copy is not available: this kernel ({}) does not track written pages \
                 (CONFIG_MEM_SOFT_DIRTY); the whole memory is copied while the container is frozen",
                fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim()
            ));
            return Ok(None);
        }
        let local = local_rounds(&self.paths.dump_dir, veid);
        let _ = fs::remove_dir_all(&local);
        fs::create_dir_all(&local).map_err(io_err("mkdir", &local))?;
        let mut last: Option<(PathBuf, u64)> = None;
        for round in 1..=MAX_ROUNDS {
            let dir = local.join(round.to_string());
            fs::create_dir(&dir).map_err(io_err("mkdir", &dir))?;
            let init = ns::find_init(self.cg.as_ref(), veid).ok_or(VeError::NotRunning(veid))?;
            let parent = last.as_ref().map(|_| PathBuf::from(format!("../{}", round - 1)));
            let cmd = criu.pre_dump(init, &dir, parent.as_deref(), &self.cg.ve_dir(veid));
            let log = beside(&self.paths.dump_dir.join(format!("Migrate.{veid}")), "pre-dump.log");
            let sent = run_bounded(cmd, crate::ve::run::Feed::Null, "pre-dump", Some(&dir.join("dump.log")), log)
                .and_then(|()| remote.rsync(&local, dst, &[]));
            if let Err(e) = sent {
                tracing::info!(veid, round, "pre-copy round failed: {e}");
                crate::report::notice(format!(
                    "Warning: pre-copy round {round} failed ({e}); the memory is copied while the container is frozen"
                ));
                return Ok(None);
            }
            let bytes = round_bytes(&dir);
            crate::report::progress(format!("Pre-copy round {round}: {} KiB of memory sent", bytes >> 10));
            self.step("migrate:precopy")?;
            let prev = last.as_ref().map(|l| l.1);
            last = Some((dir, bytes));
            if last_round(round, bytes, prev) {
                break;
            }
        }
        Ok(last.map(|l| l.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_stop_when_small_when_not_shrinking_or_after_the_last() {
        let mb = 1 << 20;
        assert!(!last_round(1, 256 * mb, None));
        assert!(!last_round(2, 100 * mb, Some(256 * mb)), "less than half: another round");
        assert!(last_round(2, 200 * mb, Some(256 * mb)), "more than half: converging no more");
        assert!(last_round(1, mb, None), "a small round is the last");
        assert!(last_round(MAX_ROUNDS, 100 * mb, Some(256 * mb)));
    }

    #[test]
    fn rounds_are_kept_beside_the_dump_on_both_nodes() {
        assert_eq!(local_rounds(Path::new("/vz/dump"), 101), Path::new("/vz/dump/Migrate.101.pre"));
        assert_eq!(remote_rounds(Path::new("/d/Dump.101")), Path::new("/d/Dump.101.pre"));
    }
}
