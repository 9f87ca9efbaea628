//! OS templates (vzpkg-like): cached root file systems in `TEMPLATE/cache/NAME.tar.{gz,zst}`.
//!
//! Built in: the default, made in seconds from Debian's `busybox-static` with no network,
//! and distributions made with `debootstrap` (`DISTROS`): Debian 12 with systemd, Debian 12
//! with sysvinit, Ubuntu 22.04 with systemd.
use std::{
    fs,
    io::{self, BufRead as _},
    os::unix::fs::{symlink, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::config::Paths;

pub use crate::config::DEFAULT_TEMPLATE;
/// The Debian sysvinit template's name.
pub const DEBIAN_TEMPLATE: &str = "debian-12-minbase";
/// Debian 12 as Debian installs it: systemd as init.
pub const DEBIAN_SYSTEMD_TEMPLATE: &str = "debian-12-systemd";
pub const UBUNTU_TEMPLATE: &str = "ubuntu-22.04-systemd";

/// A distribution debootstrap builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distro {
    /// The template's default name.
    pub template: &'static str,
    pub suite: &'static str,
    pub mirror: &'static str,
    /// Packages on top of minbase: an init of its own and basic tools.
    pub include: &'static str,
    /// Packages whose .debs are left in the template's apt cache, so `apt-get install`
    /// works offline inside a VE.
    pub cached: &'static [&'static str],
    /// The archive's signing keys where the host has none: a package of the archive's own,
    /// fetched and checked against the SHA-256 pinned here before debootstrap trusts it.
    pub keyring: Option<Keyring>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyring {
    pub url: &'static str,
    pub sha256: &'static str,
    /// The keyring's path inside the package.
    pub file: &'static str,
}

const SYSTEMD_INCLUDE: &str = "systemd-sysv,dbus,procps,iproute2,less";

pub const DEBIAN_SYSTEMD: Distro = Distro {
    template: DEBIAN_SYSTEMD_TEMPLATE,
    suite: "bookworm",
    mirror: "http://deb.debian.org/debian",
    include: SYSTEMD_INCLUDE,
    cached: &[],
    keyring: None,
};

pub const DEBIAN_SYSVINIT: Distro = Distro {
    template: DEBIAN_TEMPLATE,
    include: "sysvinit-core,procps,iproute2,less",
    cached: &["stress-ng", "psmisc"],
    ..DEBIAN_SYSTEMD
};

pub const UBUNTU: Distro = Distro {
    template: UBUNTU_TEMPLATE,
    suite: "jammy",
    mirror: "http://archive.ubuntu.com/ubuntu",
    include: SYSTEMD_INCLUDE,
    cached: &[],
    keyring: Some(Keyring {
        url: "http://archive.ubuntu.com/ubuntu/pool/main/u/ubuntu-keyring/ubuntu-keyring_2021.03.26_all.deb",
        sha256: "0d0e7ed6b112f5d03eabf3c7eb01ebdacf9c57714b279e90495cfc58c8c4520f",
        file: "etc/apt/trusted.gpg.d/ubuntu-keyring-2018-archive.gpg",
    }),
};

pub const DISTROS: [Distro; 3] = [DEBIAN_SYSTEMD, DEBIAN_SYSVINIT, UBUNTU];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("OS template '{name}' not found: no {dir}/{name}.tar.gz or .tar.zst ('vzpkg list' shows the cached ones, 'vzpkg create --type debian' builds debian-12-systemd)")]
    Unknown { name: String, dir: PathBuf },
    #[error("invalid template name '{0}': use letters, digits, '.', '_' and '-'")]
    BadName(String),
    #[error("cannot build template '{name}': {why}")]
    Build { name: String, why: String },
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
}

impl TemplateError {
    pub fn kind(&self) -> crate::kind::Kind {
        match self {
            TemplateError::Io { .. } => crate::kind::Kind::System,
            _ => crate::kind::Kind::BadTemplate,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> TemplateError + 'a {
    move |source| TemplateError::Io { op, path: path.to_path_buf(), source }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
}

pub fn check_name(name: &str) -> Result<(), TemplateError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(TemplateError::BadName(name.to_string()))
    }
}

/// Cached templates, sorted by name.
pub fn list(paths: &Paths) -> Vec<Template> {
    let mut out: Vec<Template> = fs::read_dir(paths.cache_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let name = file.strip_suffix(".tar.gz").or_else(|| file.strip_suffix(".tar.zst"))?.to_string();
            Some(Template { name, size: e.metadata().map(|m| m.len()).unwrap_or(0), path: e.path() })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The cache file of a template.
pub fn find(paths: &Paths, name: &str) -> Result<PathBuf, TemplateError> {
    check_name(name)?;
    for ext in ["tar.zst", "tar.gz"] {
        let p = paths.cache_dir().join(format!("{name}.{ext}"));
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(TemplateError::Unknown { name: name.to_string(), dir: paths.cache_dir() })
}

/// The templates vzbpf knows how to build, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// The built-in default, from the host's busybox (seconds).
    Busybox,
    /// A distribution by debootstrap (a minute or so, needs its mirror).
    Distro(Distro),
}

pub fn known(name: &str) -> Option<Known> {
    if name == DEFAULT_TEMPLATE {
        return Some(Known::Busybox);
    }
    DISTROS.into_iter().find(|d| d.template == name).map(Known::Distro)
}

/// Progress lines of a build, handed to the verb's report sink.
struct Said(Vec<u8>);

impl io::Write for Said {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(b);
        while let Some(i) = self.0.iter().position(|c| *c == b'\n' || *c == b'\r') {
            let line: Vec<u8> = self.0.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line).trim().to_string();
            if !text.is_empty() {
                crate::report::progress(text);
            }
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Finds a template, building one vzbpf knows (the built-in default, the `DISTROS`) on
/// first use, as `vzctl create --ostemplate NAME` does.
pub fn find_or_build_default(paths: &Paths, name: &str) -> Result<PathBuf, TemplateError> {
    match (find(paths, name), known(name)) {
        (Err(TemplateError::Unknown { .. }), Some(Known::Busybox)) => create_busybox(paths, name),
        (Err(TemplateError::Unknown { .. }), Some(Known::Distro(d))) => {
            crate::report::progress(format!(
                "OS template {name} is not cached: building it with debootstrap (a few minutes)"
            ));
            create_distro(paths, &d, name, &mut Said(Vec::new()))
        }
        (r, _) => r,
    }
}

pub fn remove(paths: &Paths, name: &str) -> Result<(), TemplateError> {
    let p = find(paths, name)?;
    fs::remove_file(&p).map_err(io_err("remove", &p))
}

/// A scratch directory next to the cache, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn scratch(paths: &Paths, name: &str) -> Result<Scratch, TemplateError> {
    let dir = paths.template.join(format!(".build-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(io_err("mkdir", &dir))?;
    Ok(Scratch(dir))
}

fn run(cmd: &mut Command, name: &str) -> Result<(), TemplateError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TemplateError::Build { name: name.into(), why: format!("{cmd:?}: {e}") })?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(TemplateError::Build {
        name: name.into(),
        why: format!("{:?} failed: {}", cmd.get_program(), err.lines().last().unwrap_or("").trim()),
    })
}

/// Packs a root directory into `cache/NAME.tar.<ext>` (atomically: temp name + rename).
fn pack(paths: &Paths, name: &str, root: &Path, zstd: bool) -> Result<PathBuf, TemplateError> {
    let cache = paths.cache_dir();
    fs::create_dir_all(&cache).map_err(io_err("mkdir", &cache))?;
    let ext = if zstd { "tar.zst" } else { "tar.gz" };
    let dest = cache.join(format!("{name}.{ext}"));
    let tmp = cache.join(format!(".{name}.{ext}.tmp{}", std::process::id()));
    let r = run(
        Command::new("tar")
            .args(["--numeric-owner", "--xattrs", "-c", if zstd { "--zstd" } else { "-z" }, "-f"])
            .arg(&tmp)
            .arg("-C")
            .arg(root)
            .arg("."),
        name,
    )
    .and_then(|()| fs::rename(&tmp, &dest).map_err(io_err("rename", &dest)));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.map(|()| dest)
}

const BUSYBOX: &str = "/bin/busybox";

const INITTAB: &str = "\
# busybox init: no consoles in a VE; vzctl stop runs halt.
::sysinit:/etc/init.d/rcS
::shutdown:/bin/umount -a -r
";

const RCS: &str = "#!/bin/sh\n\
# Boot script of the vzbpf default template.\n\
mount -t tmpfs -o mode=755 tmpfs /run 2>/dev/null\n\
mkdir -p /run/lock /var/log\n\
echo \"booted $(date)\" > /var/log/boot.log\n";

/// Builds the default template from the host's static busybox: no network, a second or
/// two.
pub fn create_busybox(paths: &Paths, name: &str) -> Result<PathBuf, TemplateError> {
    check_name(name)?;
    let bb = Path::new(BUSYBOX);
    if !bb.is_file() {
        return Err(TemplateError::Build {
            name: name.into(),
            why: format!("{BUSYBOX} is missing (install Debian's busybox-static)"),
        });
    }
    let s = scratch(paths, name)?;
    let r = s.0.join("root");
    let w = |rel: &str, data: &str, mode: u32| -> Result<(), TemplateError> {
        let p = r.join(rel);
        fs::write(&p, data).map_err(io_err("write", &p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", &p))
    };
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc/init.d",
        "proc",
        "sys",
        "dev",
        "run",
        "root",
        "home",
        "tmp",
        "var/log",
        "var/tmp",
        "mnt",
    ] {
        let p = r.join(d);
        fs::create_dir_all(&p).map_err(io_err("mkdir", &p))?;
    }
    for t in ["tmp", "var/tmp"] {
        let p = r.join(t);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o1777)).map_err(io_err("chmod", &p))?;
    }
    let dest = r.join("bin/busybox");
    fs::copy(bb, &dest).map_err(io_err("copy", &dest))?;
    let applets = Command::new(bb).arg("--list-full").output().map_err(io_err("run", bb))?;
    for rel in String::from_utf8_lossy(&applets.stdout).lines() {
        let link = r.join(rel);
        if rel == "bin/busybox" || link.exists() {
            continue;
        }
        if let Some(dir) = link.parent() {
            fs::create_dir_all(dir).map_err(io_err("mkdir", dir))?;
        }
        // Symlinks, though each costs an inode (~0.2 ms per create on this host's ext4):
        // with hard links every applet's process shows /bin/busybox's other names in
        // /proc/PID/exe, and after a CRIU restore all of them one name (`pidof init` then
        // finds every busybox process of the VE).
        symlink("/bin/busybox", &link).map_err(io_err("symlink", &link))?;
    }
    w("etc/inittab", INITTAB, 0o644)?;
    w("etc/init.d/rcS", RCS, 0o755)?;
    w("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644)?;
    w("etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n", 0o644)?;
    w("etc/shadow", "root:*:19000:0:99999:7:::\n", 0o600)?;
    w("etc/hostname", "localhost\n", 0o644)?;
    w("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n", 0o644)?;
    w("etc/resolv.conf", "", 0o644)?;
    w("etc/profile", "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1='[\\u@\\h \\W]\\$ '\n", 0o644)?;
    w(
        "etc/os-release",
        "NAME=\"vzbpf busybox\"\nID=busybox\nPRETTY_NAME=\"vzbpf default template (busybox)\"\n",
        0o644,
    )?;
    // zstd unpacks this ~1 MB archive in a third less time than gzip (every create does).
    let zstd = Command::new("zstd").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    pack(paths, name, &r, zstd.is_ok_and(|s| s.success()))
}

/// Builds the Debian bookworm minbase template with debootstrap, showing progress on
/// `progress` (a single updating line on a terminal). Needs Debian's mirror.
/// Builds `distro`'s template as `name` with debootstrap.
pub fn create_distro(
    paths: &Paths,
    distro: &Distro,
    name: &str,
    progress: &mut dyn io::Write,
) -> Result<PathBuf, TemplateError> {
    check_name(name)?;
    let s = scratch(paths, name)?;
    let r = s.0.join("root");
    let mut args = vec!["--variant=minbase".to_string(), format!("--include={}", distro.include)];
    if let Some(k) = &distro.keyring {
        let _ = writeln!(progress, "[keyring] {}", k.url);
        args.push(format!("--keyring={}", fetch_keyring(&s.0, k, name)?.display()));
    }
    let mut child = Command::new("debootstrap")
        .args(&args)
        .arg(distro.suite)
        .arg(&r)
        .arg(distro.mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TemplateError::Build {
            name: name.into(),
            why: format!("debootstrap: {e} (install Debian's debootstrap)"),
        })?;
    let stderr = child.stderr.take();
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = io::Read::read_to_string(&mut e, &mut s);
        }
        s
    });
    if let Some(out) = child.stdout.take() {
        let (mut step, mut n) = (String::new(), 0u32);
        for line in io::BufReader::new(out).lines().map_while(Result::ok) {
            // "I: Retrieving libc6 2.36-9" / "I: Unpacking ..." / "I: Configuring ..."
            let Some(msg) = line.strip_prefix("I: ") else { continue };
            let verb = msg.split_whitespace().next().unwrap_or("").to_string();
            if verb != step {
                step = verb;
                n = 0;
            }
            n += 1;
            let _ =
                write!(progress, "\r\x1b[K[debootstrap] {step} ({n}) {}", msg.split_whitespace().nth(1).unwrap_or(""));
            let _ = progress.flush();
        }
        let _ = writeln!(progress);
    }
    let status = child.wait().map_err(io_err("wait", Path::new("debootstrap")))?;
    let err = errs.join().unwrap_or_default();
    if !status.success() {
        return Err(TemplateError::Build {
            name: name.into(),
            why: format!("debootstrap failed: {}", err.lines().last().unwrap_or("").trim()),
        });
    }
    // A VE has no consoles: drop the gettys so init does not respawn them forever.
    let inittab = r.join("etc/inittab");
    if let Ok(t) = fs::read_to_string(&inittab) {
        let t: String = t
            .lines()
            .map(|l| if l.contains("getty") && !l.starts_with('#') { format!("#{l}\n") } else { format!("{l}\n") })
            .collect();
        fs::write(&inittab, t).map_err(io_err("write", &inittab))?;
    }
    if distro.cached.is_empty() {
        // debootstrap's own .debs: installed already, a VE has no use for them.
        run(Command::new("chroot").arg(&r).args(["apt-get", "clean"]), name)?;
    } else {
        let _ = writeln!(progress, "[apt] fetching package lists and caching {}", distro.cached.join(" "));
        run(Command::new("chroot").arg(&r).args(["apt-get", "update", "-qq"]), name)?;
        run(
            Command::new("chroot")
                .arg(&r)
                .args(["apt-get", "install", "-qq", "-y", "--download-only", "--no-install-recommends"])
                .args(distro.cached)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            name,
        )?;
    }
    let _ = writeln!(progress, "[pack] compressing");
    pack(paths, name, &r, true)
}

/// Fetches an archive's keyring package into `dir`, checks it against its pinned SHA-256
/// and returns the keyring file unpacked from it.
fn fetch_keyring(dir: &Path, k: &Keyring, name: &str) -> Result<PathBuf, TemplateError> {
    let deb = dir.join("keyring.deb");
    run(Command::new("wget").args(["-q", "-O"]).arg(&deb).arg(k.url), name)?;
    let o = Command::new("sha256sum").arg(&deb).output().map_err(io_err("run sha256sum on", &deb))?;
    let got = String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap_or("").to_string();
    if got != k.sha256 {
        return Err(TemplateError::Build {
            name: name.into(),
            why: format!("{} has SHA-256 {got}, not the pinned {}: not trusted", k.url, k.sha256),
        });
    }
    let x = dir.join("keyring");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x), name)?;
    Ok(x.join(k.file))
}

/// Unpacks a template into a VE's private area and shifts ownership into the VE's id
/// range, so VE root (host uid `uid_base`) owns what root owned in the template; an id
/// beyond the range becomes the VE's nobody, never another VE's id.
pub fn extract(archive: &Path, dest: &Path, uid_base: u32, gid_base: u32) -> Result<(), TemplateError> {
    fs::create_dir_all(dest).map_err(io_err("mkdir", dest))?;
    let zstd = archive.to_string_lossy().ends_with(".zst");
    run(
        Command::new("tar")
            .args(["--numeric-owner", "--xattrs", "-x", if zstd { "--zstd" } else { "-z" }, "-f"])
            .arg(archive)
            .arg("-C")
            .arg(dest),
        &archive.to_string_lossy(),
    )?;
    let map = |u: u32, g: u32| (crate::idmap::template_id(u, uid_base), crate::idmap::template_id(g, gid_base));
    crate::idmap::chown_tree(dest, &map).map_err(io_err("chown", dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_names() {
        assert_eq!(known(DEFAULT_TEMPLATE), Some(Known::Busybox));
        assert_eq!(known("debian-12-minbase"), Some(Known::Distro(DEBIAN_SYSVINIT)));
        assert_eq!(known("debian-12-systemd"), Some(Known::Distro(DEBIAN_SYSTEMD)));
        assert_eq!(known("ubuntu-22.04-systemd"), Some(Known::Distro(UBUNTU)));
        assert_eq!(known("centos-7_x86.64"), None);
        for ok in ["busybox", "debian-12-minbase", "centos-7_x86.64"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "sp ace"] {
            assert!(matches!(check_name(bad), Err(TemplateError::BadName(_))), "{bad}");
        }
    }

    #[test]
    fn unknown_template_names_the_template() {
        let p = Paths { template: "/nonexistent-vz".into(), ..Paths::default() };
        let e = find(&p, "nosuch").unwrap_err();
        assert!(e.to_string().contains("'nosuch'"), "{e}");
    }
}
