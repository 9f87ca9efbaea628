//! `/proc/self/mountinfo`, parsed once for every reader.
use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
};

/// One line: `id parent maj:min root mountpoint opts [optional...] - fstype source superopts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `MAJ:MIN` of the mounted file system.
    pub dev: String,
    /// The path inside the file system that is mounted (`/` for a whole one).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: PathBuf,
    pub super_opts: String,
}

/// The mount table in kernel order (oldest first), indexed by mount point: a listing asks
/// for every VE's root, and a host with thousands of VEs has thousands of mounts (a scan
/// per VE made `vzlist` quadratic in the number of VEs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountTable {
    pub entries: Vec<MountEntry>,
    /// The newest entry at each mount point.
    newest: HashMap<PathBuf, usize>,
}

/// The mount table, read the first time a listing needs it: a plain `vzlist` never does
/// (statx answers its mount checks), and at 2,000 VEs the table is 2,000 lines the kernel
/// formats for every read.
#[derive(Debug, Default)]
pub struct LazyMountTable(std::cell::OnceCell<MountTable>);

impl LazyMountTable {
    pub fn get(&self) -> &MountTable {
        self.0.get_or_init(|| MountTable::read().unwrap_or_default())
    }
}

impl MountTable {
    pub fn parse(text: &str) -> Self {
        let entries: Vec<MountEntry> = text.lines().filter_map(parse_line).collect();
        let newest = entries.iter().enumerate().map(|(i, m)| (m.mount_point.clone(), i)).collect();
        Self { entries, newest }
    }

    /// This process's mount table.
    pub fn read() -> io::Result<Self> {
        Ok(Self::parse(&fs::read_to_string("/proc/self/mountinfo")?))
    }

    /// Is `path` a mount point? `path` is compared as the kernel shows it, after
    /// resolving symlinks where it exists.
    pub fn is_mount_point(&self, path: &Path) -> bool {
        let want = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.newest.contains_key(&want)
    }

    /// The newest mount on `path` (the one a lookup sees).
    pub fn top_at(&self, path: &Path) -> Option<&MountEntry> {
        let want = fs::canonicalize(path).ok()?;
        self.newest.get(&want).and_then(|&i| self.entries.get(i))
    }
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (pre, post) = line.split_once(" - ")?;
    let pre: Vec<&str> = pre.split(' ').collect();
    let post: Vec<&str> = post.split(' ').collect();
    if pre.len() < 5 || post.len() < 3 {
        return None;
    }
    Some(MountEntry {
        dev: pre[2].to_string(),
        root: PathBuf::from(unescape(pre[3])),
        mount_point: PathBuf::from(unescape(pre[4])),
        fstype: post[0].to_string(),
        source: PathBuf::from(unescape(post[1])),
        super_opts: post[2].to_string(),
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
40 27 7:3 / /vz/root/my\\040ve rw,nosuid shared:5 - ext4 /dev/loop3 rw
41 27 254:0 /vz/private/101 /vz/root/101 rw,nosuid,nodev - ext4 /dev/vda rw
broken line
";

    #[test]
    fn fields_come_from_both_sides_of_the_separator_and_are_unescaped() {
        let t = MountTable::parse(MI);
        assert_eq!(t.entries.len(), 3);
        assert_eq!(t.entries[1].mount_point, Path::new("/vz/root/my ve"));
        assert_eq!(t.entries[1].dev, "7:3");
        assert_eq!(t.entries[1].fstype, "ext4");
        assert_eq!(t.entries[1].source, Path::new("/dev/loop3"));
        assert_eq!(t.entries[2].root, Path::new("/vz/private/101"));
    }

    #[test]
    fn lookups_by_mount_point_see_the_newest_mount() {
        let t = MountTable::parse(
            "22 27 0:21 / / rw - ext4 /dev/vda rw\n\
             40 22 7:3 / /nonexistent/vzt/root/1 rw - ext4 /dev/loop3 rw\n\
             41 40 0:50 / /nonexistent/vzt/root/1 rw - tmpfs none rw\n",
        );
        assert!(t.is_mount_point(Path::new("/nonexistent/vzt/root/1")));
        assert!(!t.is_mount_point(Path::new("/nonexistent/vzt/root/2")));
        // top_at resolves the path first: a path that does not exist has no top.
        assert!(t.top_at(Path::new("/nonexistent/vzt/root/1")).is_none());
        assert_eq!(t.top_at(Path::new("/")).map(|m| m.fstype.as_str()), Some("ext4"));
    }

    #[test]
    fn unescape_decodes_octal_only() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/a\\9x"), "/a\\9x");
    }
}
