//! Each VE's own range of host user and group ids.
//!
//! A VE's root is host uid `LOCAL_UID` of its config, its other users the 65,535 ids after
//! it. Ranges are allocated at create (as Incus' isolated idmaps are), recorded in the VE's
//! config and never handed to another VE while the VE exists, so no two VEs share a host
//! id: a file or process of one VE is a stranger's to every other. Allocation starts at
//! vz.conf's `LOCAL_UID`/`LOCAL_GID` and skips host users and groups and the subordinate
//! ranges of `/etc/subuid` and `/etc/subgid` (whose owners could otherwise map themselves
//! onto a VE's ids).
use std::{
    fs, io,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
};

/// Ids per VE: 0..65535 inside.
pub const RANGE: u32 = 65536;

/// Ids taken on the host: single ids (users, groups) and ranges (subordinate ids), as
/// half-open `[start, end)` intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taken(pub Vec<(u64, u64)>);

impl Taken {
    pub fn add(&mut self, start: u64, len: u64) {
        if len > 0 {
            self.0.push((start, start.saturating_add(len)));
        }
    }

    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.0.iter().any(|&(s, e)| s < end && start < e)
    }

    /// Ids of `/etc/passwd` (field 3) or `/etc/group` (field 3) text.
    pub fn add_db(&mut self, text: &str) {
        for id in text.lines().filter_map(|l| l.split(':').nth(2)?.trim().parse::<u64>().ok()) {
            self.add(id, 1);
        }
    }

    /// Ranges of `/etc/subuid` or `/etc/subgid` text (`name:start:count`).
    pub fn add_subids(&mut self, text: &str) {
        for l in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let f: Vec<&str> = l.split(':').collect();
            if let (Some(s), Some(n)) = (f.get(1).and_then(|s| s.parse().ok()), f.get(2).and_then(|n| n.parse().ok())) {
                self.add(s, n);
            }
        }
    }

    /// What this host's files say is taken, for uids (`passwd`, `subuid`) or gids.
    pub fn host(uids: bool) -> Self {
        let mut t = Taken::default();
        let (db, sub) = if uids { ("/etc/passwd", "/etc/subuid") } else { ("/etc/group", "/etc/subgid") };
        t.add_db(&fs::read_to_string(db).unwrap_or_default());
        t.add_subids(&fs::read_to_string(sub).unwrap_or_default());
        t
    }
}

/// The lowest range base `start + k * RANGE` free in both id spaces: not used by a VE
/// (`used`: bases of existing VEs' ranges) and not overlapping anything the host has.
/// None when ids run out below 2^31.
pub fn allocate(start: (u32, u32), used: &[(u32, u32)], uids: &Taken, gids: &Taken) -> Option<(u32, u32)> {
    let (us, gs) = (u64::from(start.0), u64::from(start.1));
    let clash = |base: u64, taken: &Taken, pick: fn(&(u32, u32)) -> u32| {
        taken.overlaps(base, base + u64::from(RANGE))
            || used.iter().any(|u| {
                let b = u64::from(pick(u));
                b < base + u64::from(RANGE) && base < b + u64::from(RANGE)
            })
    };
    // Ranges end below 2^31: past it, tools that keep ids in a signed int (ps, among
    // others) show them as negative numbers.
    let limit = u64::from(i32::MAX as u32) + 1;
    (0u64..)
        .map(|k| (us + k * u64::from(RANGE), gs + k * u64::from(RANGE)))
        .take_while(|(u, g)| u + u64::from(RANGE) <= limit && g + u64::from(RANGE) <= limit)
        .find(|&(u, g)| !clash(u, uids, |x| x.0) && !clash(g, gids, |x| x.1))
        .map(|(u, g)| (u as u32, g as u32))
}

/// Where a template's id lands in a VE: ids 0..65535 into the VE's range; anything else
/// (a template made elsewhere) becomes the VE's nobody (65534), never another VE's id.
pub fn template_id(id: u32, base: u32) -> u32 {
    if id < RANGE {
        base + id
    } else {
        base + 65534
    }
}

/// Where an id of a VE moved from range `from` to range `to` lands; ids outside `from`
/// are not the VE's and stay.
pub fn moved_id(id: u32, from: u32, to: u32) -> u32 {
    if id >= from && u64::from(id) < u64::from(from) + u64::from(RANGE) {
        to + (id - from)
    } else {
        id
    }
}

/// Rewrites the owner of every entry below `dir` with `map` (uid, gid), never following a
/// symlink and never leaving `dir`'s file system. Only for trees no process is using (a
/// template just unpacked, a stopped VE's private area).
pub fn chown_tree(dir: &Path, map: &dyn Fn(u32, u32) -> (u32, u32)) -> io::Result<()> {
    let dev = fs::symlink_metadata(dir)?.dev();
    let mut stack = vec![dir.to_path_buf()];
    // A file with several names (hard links: the default template's applets) is mapped
    // once; a second pass would map its already-mapped ids again.
    let mut linked = std::collections::HashSet::new();
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p)?;
        if md.dev() != dev {
            continue;
        }
        if !md.is_dir() && md.nlink() > 1 && !linked.insert(md.ino()) {
            continue;
        }
        let (uid, gid) = (md.uid(), md.gid());
        let (nu, ng) = map(uid, gid);
        if (nu, ng) != (uid, gid) {
            std::os::unix::fs::lchown(&p, Some(nu), Some(ng))?;
            // chown clears set-id bits of files; they are the VE's own to keep.
            if md.file_type().is_file() && md.mode() & 0o6000 != 0 {
                fs::set_permissions(&p, fs::Permissions::from_mode(md.mode() & 0o7777))?;
            }
        }
        if md.is_dir() {
            for e in fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_skip_ves_host_users_and_subordinate_ids() {
        let none = Taken::default();
        assert_eq!(allocate((100000, 100000), &[], &none, &none), Some((100000, 100000)));
        // Taken by a VE: the next range.
        assert_eq!(allocate((100000, 100000), &[(100000, 100000)], &none, &none), Some((165536, 165536)));
        // A VE placed off the grid still blocks every range it overlaps.
        assert_eq!(allocate((100000, 100000), &[(150000, 150000)], &none, &none), Some((231072, 231072)));
        // A host user inside the first range, a subordinate range over the second.
        let mut u = Taken::default();
        u.add_db("root:x:0:0::/root:/bin/sh\nweird:x:120000:120000::/:/bin/sh\n");
        u.add_subids("alice:165536:65536\n# comment\n");
        assert_eq!(allocate((100000, 100000), &[], &u, &none), Some((231072, 231072)));
        // Group ids decide too.
        let mut g = Taken::default();
        g.add_db("staff:x:100005:\n");
        assert_eq!(allocate((100000, 100000), &[], &none, &g), Some((165536, 165536)));
        // Ids run out below 2^31.
        assert_eq!(allocate((i32::MAX as u32 - 1000, 100000), &[], &none, &none), None);
        let last = (i32::MAX as u32) + 1 - RANGE;
        assert_eq!(allocate((last, last), &[], &none, &none), Some((last, last)));
        assert_eq!(allocate((last + 1, last), &[], &none, &none), None);
    }

    #[test]
    fn a_file_with_several_names_is_mapped_once() {
        let dir = std::env::temp_dir().join(format!("vz-chown-tree-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::write(dir.join("bin/busybox"), b"x").unwrap();
        for name in ["sh", "ls", "cat"] {
            fs::hard_link(dir.join("bin/busybox"), dir.join("bin").join(name)).unwrap();
        }
        fs::write(dir.join("single"), b"y").unwrap();
        let asked = std::cell::Cell::new(0);
        let r = chown_tree(&dir, &|u, g| {
            asked.set(asked.get() + 1);
            (u, g)
        });
        fs::remove_dir_all(&dir).unwrap();
        r.unwrap();
        // The directory, bin, busybox (four names) and single: four files, not seven names.
        assert_eq!(asked.get(), 4);
    }

    #[test]
    fn ids_map_into_the_range_only() {
        assert_eq!(template_id(0, 200000), 200000);
        assert_eq!(template_id(65535, 200000), 265535);
        // A template id beyond the range is the VE's nobody, not the next VE's root.
        assert_eq!(template_id(65536, 200000), 265534);
        assert_eq!(template_id(100000, 200000), 265534);
        assert_eq!(moved_id(100005, 100000, 300000), 300005);
        assert_eq!(moved_id(0, 100000, 300000), 0);
        assert_eq!(moved_id(165536, 100000, 300000), 165536);
    }
}
