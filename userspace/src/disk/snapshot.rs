//! Snapshots of a ploop-layout VE (OpenVZ's `vzctl snapshot*`). This kernel has no ploop
//! driver, no device-mapper and no nbd, so there is no block-level delta chain to stack;
//! a snapshot is a copy of the VE's image file made while its file system is frozen
//! (FIFREEZE: written out, consistent on disk, every writer blocked), taken with
//! `copy_file_range` over the image's data extents only (SEEK_DATA / SEEK_HOLE). On a host
//! file system with reflinks (xfs, btrfs) the kernel shares the extents instead of copying
//! them, as ploop's deltas would; on ext4 it copies the data in the kernel, holes stay holes.
//!
//! Layout in the private area, as OpenVZ names things: `root.hdd/root.hds.{UUID}` (the
//! snapshot's image), `dump/{UUID}.ve.conf` (the VE's config then), `dump/{UUID}` (its
//! running state, a checkpoint, when it was taken of a running VE) and `Snapshots.conf`
//! (the tree: each snapshot's parent, date, name and description, and which one is
//! current: the one the disk was last taken from or switched to).
use super::*;
use crate::sys::syscall::Syscall;

const TREE_FILE: &str = "Snapshots.conf";
/// The longest name or description kept.
const TEXT_MAX: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `{8-4-4-4-12}` lower-case hex, as vzctl prints it.
    pub uuid: String,
    /// Empty for the first.
    pub parent: String,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub date: String,
    pub name: String,
    pub desc: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// The snapshot the VE's disk comes from (empty: none).
    pub current: String,
    pub snaps: Vec<Snapshot>,
}

impl Tree {
    pub fn path(private: &Path) -> PathBuf {
        private.join(TREE_FILE)
    }

    /// The VE's snapshots (none if it never had any).
    pub fn read(private: &Path) -> Result<Tree, DiskError> {
        let path = Self::path(private);
        match fs::read_to_string(&path) {
            Ok(text) => {
                Self::parse(&text).map_err(|why| io_err("read", &path)(io::Error::new(io::ErrorKind::InvalidData, why)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Tree::default()),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    pub fn parse(text: &str) -> Result<Tree, String> {
        let mut tree = Tree::default();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty() && !l.starts_with('#')) {
            let f: Vec<&str> = line.split('\t').collect();
            let bad = || format!("line {}: not a snapshot: {line:?}", n + 1);
            match f.as_slice() {
                ["CURRENT", u] => tree.current = normalize_uuid(u).map_err(|_| bad())?,
                [u, p, date, name, desc] => tree.snaps.push(Snapshot {
                    uuid: normalize_uuid(u).map_err(|_| bad())?,
                    parent: if p.is_empty() { String::new() } else { normalize_uuid(p).map_err(|_| bad())? },
                    date: date.to_string(),
                    name: name.to_string(),
                    desc: desc.to_string(),
                }),
                _ => return Err(bad()),
            }
        }
        Ok(tree)
    }

    pub fn render(&self) -> String {
        let mut s = String::from(
            "# vzctl's snapshots of this container: UUID PARENT DATE NAME DESCRIPTION, tab-separated.\n\
             # CURRENT: the one the container's disk was last taken from or switched to.\n",
        );
        if !self.current.is_empty() {
            s.push_str(&format!("CURRENT\t{}\n", self.current));
        }
        for p in &self.snaps {
            s.push_str(&format!("{}\t{}\t{}\t{}\t{}\n", p.uuid, p.parent, p.date, p.name, p.desc));
        }
        s
    }

    pub fn write(&self, private: &Path) -> Result<(), DiskError> {
        let path = Self::path(private);
        crate::config::write_atomic(&path, self.render().as_bytes())
            .map_err(|e| io_err("write", &path)(io::Error::other(e.to_string())))
    }

    pub fn find(&self, uuid: &str) -> Option<&Snapshot> {
        self.snaps.iter().find(|s| s.uuid == uuid)
    }

    /// A new snapshot of the disk as it is: its parent is the current one, and it becomes
    /// current.
    pub fn add(&mut self, uuid: String, date: String, name: String, desc: String) {
        let parent = std::mem::take(&mut self.current);
        self.current = uuid.clone();
        self.snaps.push(Snapshot { uuid, parent, date, name, desc });
    }

    /// Takes `uuid` out: its children hang from its parent (as a merged ploop delta's
    /// would), and so does the disk if it came from it.
    pub fn remove(&mut self, uuid: &str) {
        let Some(gone) = self.find(uuid).cloned() else { return };
        self.snaps.retain(|s| s.uuid != uuid);
        for s in &mut self.snaps {
            if s.parent == uuid {
                s.parent = gone.parent.clone();
            }
        }
        if self.current == uuid {
            self.current = gone.parent;
        }
    }

    /// `uuid` and its ancestors, nearest first (`snapshot-list --id`).
    pub fn chain(&self, uuid: &str) -> Vec<&Snapshot> {
        let mut out: Vec<&Snapshot> = Vec::new();
        let mut at = self.find(uuid);
        while let Some(s) = at {
            // A hand-edited file could loop.
            if out.iter().any(|o| o.uuid == s.uuid) {
                break;
            }
            out.push(s);
            at = if s.parent.is_empty() { None } else { self.find(&s.parent) };
        }
        out
    }
}

/// A snapshot id as vzctl takes it (with or without braces, any case) in the form it
/// prints: `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`.
pub fn normalize_uuid(s: &str) -> Result<String, DiskError> {
    let inner = s.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(s);
    let ok = inner.len() == 36
        && inner
            .char_indices()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() });
    if !ok {
        return Err(bad("id", s, "not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"));
    }
    Ok(format!("{{{}}}", inner.to_ascii_lowercase()))
}

/// A new random snapshot id (the kernel's).
pub fn new_uuid() -> Result<String, DiskError> {
    let p = Path::new("/proc/sys/kernel/random/uuid");
    let s = fs::read_to_string(p).map_err(io_err("read", p))?;
    normalize_uuid(s.trim())
}

/// A snapshot's name or description: one line of printable text.
pub fn check_text(key: &'static str, s: &str) -> Result<(), DiskError> {
    if s.chars().any(char::is_control) {
        return Err(bad(key, &s.escape_debug().to_string(), "control characters (tab, newline...) are not allowed"));
    }
    if s.len() > TEXT_MAX {
        return Err(bad(key, s, format!("longer than {TEXT_MAX} bytes")));
    }
    Ok(())
}

/// The image a snapshot keeps.
pub fn snapshot_image(private: &Path, uuid: &str) -> PathBuf {
    private.join(format!("root.hdd/root.hds.{uuid}"))
}

/// The VE's config as it was when the snapshot was taken.
pub fn snapshot_conf(private: &Path, uuid: &str) -> PathBuf {
    private.join(format!("dump/{uuid}.ve.conf"))
}

/// The VE's running state when the snapshot was taken (a checkpoint), if it ran.
pub fn snapshot_dump(private: &Path, uuid: &str) -> PathBuf {
    private.join(format!("dump/{uuid}"))
}

/// Copies `src` to a new file `dst` (mode 0600) extent by extent: holes stay holes, and a
/// host file system with reflinks shares the data instead of copying it. A failed copy
/// leaves no `dst`.
pub fn sparse_copy(src: &Path, dst: &Path) -> Result<(), DiskError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let from = fs::File::open(src).map_err(io_err("open", src))?;
    let len = from.metadata().map_err(io_err("stat", src))?.len();
    let to =
        fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(dst).map_err(io_err("create", dst))?;
    let copied = copy_extents(&from, &to, len).and_then(|()| to.set_len(len)).and_then(|()| to.sync_all());
    copied.map_err(|e| {
        let _ = fs::remove_file(dst);
        io_err("copy to", dst)(e)
    })
}

fn copy_extents(from: &fs::File, to: &fs::File, len: u64) -> io::Result<()> {
    use nix::unistd::{lseek, Whence};
    let mut pos: i64 = 0;
    while (pos as u64) < len {
        let start = match lseek(from, pos, Whence::SeekData) {
            Ok(o) => o,
            // No data after pos: the rest is a hole.
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let end = lseek(from, start, Whence::SeekHole)?;
        let (mut off_in, mut off_out) = (start, start);
        while off_in < end {
            let want = (end - off_in) as usize;
            let n = nix::fcntl::copy_file_range(from, Some(&mut off_in), to, Some(&mut off_out), want)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the image shrank while copied"));
            }
        }
        pos = end;
    }
    Ok(())
}

/// A mounted file system held frozen; thawed when dropped.
pub struct Frozen {
    dir: fs::File,
    path: PathBuf,
}

impl Frozen {
    pub fn freeze(root: &Path) -> Result<Frozen, DiskError> {
        let dir = fs::File::open(root).map_err(io_err("open", root))?;
        crate::sys::disk::fs_freeze(&dir, true).map_err(io_err("freeze (FIFREEZE)", root))?;
        Ok(Frozen { dir, path: root.to_path_buf() })
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Err(e) = crate::sys::disk::fs_freeze(&self.dir, false) {
            tracing::warn!("cannot thaw {} (fsfreeze -u it): {e}", self.path.display());
        }
    }
}

/// Mounts a snapshot's image at `target` read-only (read-only loop device, no journal
/// replay, nothing in it executable, setuid or a device node to the host).
pub fn mount_snapshot(sys: &dyn Syscall, image: &Path, target: &Path) -> Result<(), DiskError> {
    use crate::sys::mount::MsFlags;
    let (dev, _hold) = attach(image, true)?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME;
    sys.mount(Some(&dev), target, Some("ext4"), flags, Some("noload")).map_err(io_err("mount", target))?;
    let _ = sys.remount(target, MsFlags::MS_PRIVATE);
    Ok(())
}

/// Where a snapshot's image is attached and mounted, if it is: (device, mount points).
pub fn snapshot_mounted(image: &Path) -> Option<(PathBuf, Vec<PathBuf>)> {
    let dev = attached_to(image)?;
    let table = MountTable::read().ok();
    let at = table.map_or_else(Vec::new, |t| {
        t.entries.iter().filter(|m| m.source == dev).map(|m| m.mount_point.clone()).collect()
    });
    Some((dev, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}";
    const B: &str = "{11111111-2222-3333-4444-555555555555}";
    const C: &str = "{aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee}";

    #[test]
    fn uuids_are_taken_with_or_without_braces_and_printed_with() {
        assert_eq!(normalize_uuid("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0").unwrap(), A);
        assert_eq!(normalize_uuid(A).unwrap(), A);
        for bad in [
            "",
            "{}",
            "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg",
            "{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        ] {
            let e = normalize_uuid(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
    }

    #[test]
    fn the_tree_keeps_parents_and_current_through_add_remove_and_a_round_trip() {
        let mut t = Tree::default();
        t.add(A.into(), "2026-12-04 10:00:00".into(), "first".into(), "".into());
        t.add(B.into(), "2026-12-04 11:00:00".into(), "".into(), "with spaces".into());
        assert_eq!((t.current.as_str(), t.find(B).unwrap().parent.as_str()), (B, A));
        // Switched back to A and taken again: C is a second child of A.
        t.current = A.into();
        t.add(C.into(), "2026-12-04 12:00:00".into(), "c".into(), "".into());
        assert_eq!(t.find(C).unwrap().parent, A);
        assert_eq!(Tree::parse(&t.render()).unwrap(), t);
        assert_eq!(t.chain(C).iter().map(|s| s.uuid.as_str()).collect::<Vec<_>>(), [C, A]);
        // A removed: its children hang from its parent (none).
        t.remove(A);
        assert!(t.find(B).unwrap().parent.is_empty() && t.find(C).unwrap().parent.is_empty());
        assert_eq!(t.current, C);
        t.remove(C);
        assert_eq!(t.current, "", "the disk came from C, which came from nothing");
        assert!(Tree::parse("CURRENT\tnope\n").unwrap_err().contains("line 1"));
        assert!(Tree::parse(&format!("{A}\tx\n")).unwrap_err().contains("line 1"));
    }

    #[test]
    fn names_are_one_printable_line() {
        assert!(check_text("name", "before the upgrade").is_ok());
        assert!(check_text("name", "a\tb").unwrap_err().to_string().contains("a\\tb"));
        assert!(check_text("description", "a\nb").is_err());
        assert!(check_text("name", &"x".repeat(300)).is_err());
    }

    #[test]
    fn a_sparse_copy_keeps_data_and_holes() {
        let dir = std::env::temp_dir().join(format!("vz-sparse-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (src, dst) = (dir.join("src"), dir.join("dst"));
        let f = fs::File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        use std::os::unix::fs::FileExt as _;
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"middle", 20 << 20).unwrap();
        drop(f);
        sparse_copy(&src, &dst).unwrap();
        assert_eq!(fs::read(&src).unwrap(), fs::read(&dst).unwrap());
        let m = fs::metadata(&dst).unwrap();
        assert_eq!(m.len(), 64 << 20);
        assert!(m.blocks() * 512 < 4 << 20, "holes copied as data: {} blocks", m.blocks());
        assert!(sparse_copy(&src, &dst).is_err(), "an existing file is never overwritten");
        fs::remove_dir_all(&dir).unwrap();
    }
}
