//! Each VE's own range of host uids and gids: allocation, and the move of VEs made before ranges.
use super::*;

impl Vz {
    /// The VE's host id ranges: LOCAL_UID/LOCAL_GID of its config, else (a VE made before
    /// ranges were per VE) vz.conf's.
    pub fn ve_ids(&self, conf: &ConfFile) -> (u32, u32) {
        let get = |k: &str, d: u32| conf.get(k).and_then(|v| v.trim().parse().ok()).unwrap_or(d);
        (get("LOCAL_UID", self.paths.local_uid), get("LOCAL_GID", self.paths.local_gid))
    }

    /// The id ranges of every VE but `except`, and of creates in progress.
    pub(super) fn ranges_in_use(&self, except: u32) -> Vec<(u32, u32)> {
        let mut used: Vec<(u32, u32)> = self
            .veids()
            .into_iter()
            .filter(|v| *v != except)
            .filter_map(|v| Some(self.ve_ids(&self.conf(v).ok()?)))
            .collect();
        if let Ok(rd) = fs::read_dir(&self.paths.lock_dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".creating") && n != format!("{except}.creating") {
                    if let Ok(c) = ConfFile::read(&e.path()) {
                        used.push(self.ve_ids(&c));
                    }
                }
            }
        }
        used
    }

    /// Whether another VE's id range (or a create's in progress) overlaps `ids`.
    pub(super) fn range_taken(&self, veid: u32, (uid, gid): (u32, u32)) -> bool {
        let near = |a: u32, b: u32| u64::from(a.max(b)) < u64::from(a.min(b)) + u64::from(crate::idmap::RANGE);
        self.ranges_in_use(veid).iter().any(|(u, g)| near(*u, uid) || near(*g, gid))
    }

    /// A fresh id range for `veid`; call with the "idmap" lock held until it is recorded.
    pub(super) fn allocate_ids(&self, veid: u32) -> Result<(u32, u32), VeError> {
        crate::idmap::allocate(
            (self.paths.local_uid, self.paths.local_gid),
            &self.ranges_in_use(veid),
            &crate::idmap::Taken::host(true),
            &crate::idmap::Taken::host(false),
        )
        .ok_or(VeError::NoIds(veid))
    }

    /// The VE's id range. A VE made before ranges were per VE shares vz.conf's with every
    /// other such VE: the first to start keeps it, any other gets a fresh one and its files
    /// move to it (the VE is stopped and its root mounted). Recorded in its config.
    pub(super) fn own_ids(&self, veid: u32, conf: &mut ConfFile, root: &Path) -> Result<(u32, u32), VeError> {
        const MOVING: &str = "LOCAL_IDS_MOVED_FROM";
        let ids = self.ve_ids(conf);
        let moving = conf.get(MOVING).and_then(|v| {
            let (u, g) = v.split_once(':')?;
            Some((u.parse::<u32>().ok()?, g.parse::<u32>().ok()?))
        });
        if conf.get("LOCAL_UID").is_some() && conf.get("LOCAL_GID").is_some() && moving.is_none() {
            return Ok(ids);
        }
        let (old, new) = match moving {
            // A move that was interrupted: finished (only ids still in the old range move).
            Some(old) => (old, ids),
            None => {
                let _idmap = VeLock::global(&self.paths.lock_dir, "idmap")?;
                let shared = self.range_taken(veid, ids);
                let new = if shared { self.allocate_ids(veid)? } else { ids };
                conf.set("LOCAL_UID", &new.0.to_string());
                conf.set("LOCAL_GID", &new.1.to_string());
                if new != ids {
                    conf.set(MOVING, &format!("{}:{}", ids.0, ids.1));
                }
                conf.write_atomic(&self.paths.ve_conf(veid))?;
                (ids, new)
            }
        };
        if new != old {
            crate::report::progress(format!(
                "Moving container {veid} to host ids {}-{} of its own",
                new.0,
                new.0 + (crate::idmap::RANGE - 1)
            ));
            let map =
                |u: u32, g: u32| (crate::idmap::moved_id(u, old.0, new.0), crate::idmap::moved_id(g, old.1, new.1));
            crate::idmap::chown_tree(root, &map).map_err(io_err("move ids of", root))?;
            conf.remove(MOVING);
            conf.write_atomic(&self.paths.ve_conf(veid))?;
        }
        Ok(new)
    }
}
