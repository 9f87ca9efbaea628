//! CRIU, the engine of `vzctl chkpnt` / `restore`: finding a usable criu (4.1 or newer:
//! older ones cannot start on Linux >= 6.13) and the options a VE's tree needs.
//!
//! What a VE needs from criu, and why:
//! - The VE's /dev tmpfs, its device nodes, devpts and /dev/shm are mounts host root made
//!   before the VE's user namespace existed (so VE root cannot change their limits). CRIU
//!   cannot rebuild them from inside that namespace, and /dev cannot even be copied (it has
//!   locked children), so they are declared external: on restore the host makes them
//!   afresh, with the VE's limits, and /dev/shm's files are carried by vzctl (`shm/` in the
//!   dump).
//! - The LXCFS files over the VE's /proc and /sys ones are FUSE files of the host's: external
//!   too, bound again from the restoring node's LXCFS.
//! - The VE's venet pair is made by the host too: its host end carries the tc programs;
//!   the VE end is handed to criu (`netdev[venet0]`), which moves it in and names it.
//! - `--manage-cgroups=soft`: criu puts the tasks back in the VE's cgroups (made by
//!   vzctl with their limits) and restores the VE's cgroup namespace.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    #[error("no usable criu: {0} (checkpoint and restore need criu 4.1 or newer; set CRIU in vz.conf)")]
    Unusable(String),
    #[error("criu {op} failed (exit {code}){why}; its log: {log}")]
    Failed { op: &'static str, code: i32, why: String, log: PathBuf },
    #[error("run {cmd}: {source}")]
    Spawn { cmd: String, source: std::io::Error },
}

impl CriuError {
    pub fn kind(&self) -> crate::kind::Kind {
        match self {
            CriuError::Unusable(_) => crate::kind::Kind::BadKernel,
            CriuError::Failed { .. } | CriuError::Spawn { .. } => crate::kind::Kind::System,
        }
    }
}

/// The first error line of a criu log that says something (every log here has the
/// harmless RLIMIT_NOFILE one), as ": <text>", or nothing.
pub fn first_error(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains("Error (") && !l.contains("RLIMIT_NOFILE"))
        .find_map(|l| l.split_once("): ").map(|(_, t)| format!(": {}", t.trim())))
        .unwrap_or_default()
}

/// The oldest criu that starts on this kernel line.
pub const MIN_VERSION: (u32, u32) = (4, 1);

/// A criu binary that is new enough.
#[derive(Debug, Clone)]
pub struct Criu {
    pub bin: PathBuf,
    pub version: (u32, u32),
}

/// `Version: 4.2` (criu --version's first line) as (4, 2).
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.lines().find_map(|l| l.trim().strip_prefix("Version:"))?.trim();
    let mut it = v.split(['.', '-']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

impl Criu {
    /// The configured criu, else the first new enough one on PATH, in /usr/local/sbin or
    /// /usr/sbin. Says plainly what was found and why it does not do.
    pub fn find(configured: Option<&Path>) -> Result<Self, CriuError> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        match configured {
            Some(p) => candidates.push(p.to_path_buf()),
            None => {
                let path = std::env::var_os("PATH").unwrap_or_default();
                candidates.extend(std::env::split_paths(&path).map(|d| d.join("criu")));
                candidates.extend(["/usr/local/sbin/criu", "/usr/sbin/criu"].map(PathBuf::from));
            }
        }
        let mut seen = Vec::new();
        for bin in candidates.into_iter().filter(|b| b.is_file()) {
            let out = Command::new(&bin).arg("--version").output();
            let text = out.as_ref().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            match parse_version(&text) {
                Some(v) if v >= MIN_VERSION => return Ok(Self { bin, version: v }),
                Some((a, b)) => seen.push(format!("{} is criu {a}.{b}", bin.display())),
                None => seen.push(format!("{} does not say its version", bin.display())),
            }
        }
        Err(CriuError::Unusable(if seen.is_empty() { "criu is not installed".into() } else { seen.join(", ") }))
    }

    /// Whether this kernel tracks pages written since a pre-dump (soft-dirty bits,
    /// CONFIG_MEM_SOFT_DIRTY), which iterative pre-copy needs.
    pub fn tracks_memory(&self) -> bool {
        Command::new(&self.bin)
            .args(["check", "--feature", "mem_dirty_track"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// `criu pre-dump` of the running tree under `init` into `dir`: its memory, while it
    /// runs on (frozen only while its pages are collected); `parent`, the round before, so
    /// only pages written since are saved.
    pub fn pre_dump(&self, init: i32, dir: &Path, parent: Option<&Path>, freezer: &Path) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("pre-dump").arg("-t").arg(init.to_string()).arg("-D").arg(dir).args(["-o", "dump.log", "-v4"]);
        c.args(["--track-mem", "--manage-cgroups=soft"]).arg("--freeze-cgroup").arg(freezer);
        if let Some(p) = parent {
            c.arg("--prev-images-dir").arg(p);
        }
        with_external_mounts(c)
    }

    /// `criu dump` of the (frozen) tree under `init` into `dir`; the VE is left frozen.
    /// `parent`: the last pre-dump, whose pages unchanged since are not saved again.
    pub fn dump(&self, init: i32, dir: &Path, freezer: &Path, parent: Option<&Path>) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("dump").arg("-t").arg(init.to_string()).arg("-D").arg(dir).args(["-o", "dump.log", "-v4"]);
        if let Some(p) = parent {
            c.arg("--track-mem").arg("--prev-images-dir").arg(p);
        }
        // --leave-running: the VE stays as it was (frozen: criu freezes it back), so vzctl
        // kills it only once the dump is safely written.
        c.args(["--tcp-established", "--file-locks", "--manage-cgroups=soft", "--leave-running"]);
        // vzctl cuts the VE's traffic itself (deny rules at the host end before the dump, the
        // host end down until a restore returns): criu's own iptables lock inside the VE
        // would only add ~90 ms of iptables runs to the pause.
        c.args(["--network-lock", "skip"]);
        c.arg("--freeze-cgroup").arg(freezer);
        with_external_mounts(c)
    }

    /// `criu restore` of `dir` onto `root`, the external mounts at `ext` (key -> host
    /// path), the VE's network end `peer`; detached, its init's host pid in `pidfile`.
    pub fn restore(
        &self,
        dir: &Path,
        root: &Path,
        ext: &[(String, PathBuf)],
        peer: &str,
        pidfile: &Path,
        cgroup_roots: &[(Option<String>, PathBuf)],
    ) -> Command {
        let mut c = Command::new(&self.bin);
        for (ctrl, to) in cgroup_roots {
            let v = match ctrl {
                Some(ctrl) => format!("{ctrl}:{}", to.display()),
                None => to.display().to_string(),
            };
            c.arg("--cgroup-root").arg(v);
        }
        // --leave-stopped: vzctl freezes the VE before anything in it runs again.
        c.arg("restore").arg("-D").arg(dir).args(["-o", "restore.log", "-v4", "--leave-stopped"]);
        c.args(["--tcp-established", "--file-locks", "--manage-cgroups=soft", "--restore-detached"]);
        c.args(["--network-lock", "skip"]);
        c.arg("--root").arg(root).arg("--pidfile").arg(pidfile);
        c.arg("--external").arg(format!("netdev[{}]:{peer}", crate::net::VE_IFNAME));
        for (key, path) in ext {
            c.arg("--external").arg(format!("mnt[{key}]:{}", path.display()));
        }
        c
    }
}

/// The VE's mounts made by the host, as (mount point in the VE, external key).
fn with_external_mounts(mut c: Command) -> Command {
    for (mnt, key) in external_mounts() {
        c.arg("--external").arg(format!("mnt[{mnt}]:{key}"));
    }
    c
}

pub fn external_mounts() -> Vec<(String, String)> {
    let mut v = vec![
        ("/dev".to_string(), "dev".to_string()),
        ("/dev/pts".into(), "dev_pts".into()),
        ("/dev/shm".into(), "dev_shm".into()),
    ];
    v.extend(crate::ns::DEV_NODES.iter().map(|n| (format!("/dev/{n}"), format!("dev_{n}"))));
    v.extend(crate::lxcfs::FILES.iter().map(|f| (format!("/{f}"), lxcfs_key(f))));
    v
}

/// The external key of an LXCFS file bound into the VE: restored from this node's LXCFS.
pub fn lxcfs_key(file: &str) -> String {
    format!("lxcfs_{}", file.replace('/', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_telling_error_of_a_log_is_quoted() {
        let log = "(00.04) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self\n\
                   (00.05) 1: Error (criu/image.c:635): Unable to open timens-0.img: Permission denied\n\
                   (00.06) Error (criu/cr-restore.c:2324): Restoring FAILED.\n";
        assert_eq!(first_error(log), ": Unable to open timens-0.img: Permission denied");
        assert_eq!(first_error("all good\n"), "");
    }

    #[test]
    fn versions_are_read_from_criu_output() {
        assert_eq!(parse_version("Version: 4.2\n"), Some((4, 2)));
        assert_eq!(parse_version("Version: 3.17.1\nGitID: v3.17.1\n"), Some((3, 17)));
        assert_eq!(parse_version("criu: command not found"), None);
        assert!(parse_version("Version: 3.17.1").unwrap() < MIN_VERSION);
    }

    #[test]
    fn every_host_made_mount_is_external_on_dump_and_restore() {
        let c = Criu { bin: "/x/criu".into(), version: (4, 2) };
        let dump = c.dump(7, Path::new("/d"), Path::new("/cg"), None);
        let args: Vec<String> = dump.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        for want in ["mnt[/dev]:dev", "mnt[/dev/shm]:dev_shm", "mnt[/dev/tty]:dev_tty", "--tcp-established"] {
            assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
        }
        let ext = vec![("dev".to_string(), PathBuf::from("/s/dev"))];
        let roots = vec![(None, PathBuf::from("/vz/101")), (Some("memory".to_string()), PathBuf::from("/m/vz/101"))];
        let r = c.restore(Path::new("/d"), Path::new("/r"), &ext, "vzp1", Path::new("/p"), &roots);
        let args: Vec<String> = r.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let at = args.iter().position(|a| a == "/vz/101").expect("default cgroup root");
        assert_eq!(args[at - 1], "--cgroup-root");
        assert!(args.iter().any(|a| a == "memory:/m/vz/101"), "{args:?}");
        assert!(args.iter().any(|a| a == "netdev[venet0]:vzp1"), "{args:?}");
        assert!(args.iter().any(|a| a == "mnt[dev]:/s/dev"), "{args:?}");
    }

    #[test]
    fn pre_copy_rounds_chain_to_the_round_before() {
        let c = Criu { bin: "/x/criu".into(), version: (4, 2) };
        let args = |cmd: Command| -> Vec<String> { cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect() };
        let after = |a: &[String], flag: &str| a.iter().position(|x| x == flag).map(|i| a[i + 1].clone());
        let first = args(c.pre_dump(7, Path::new("/p/1"), None, Path::new("/cg")));
        assert_eq!(first[0], "pre-dump");
        assert!(first.iter().any(|a| a == "--track-mem") && first.iter().any(|a| a == "mnt[/dev]:dev"), "{first:?}");
        assert_eq!(after(&first, "--prev-images-dir"), None);
        assert_eq!(after(&first, "--freeze-cgroup").as_deref(), Some("/cg"));
        let second = args(c.pre_dump(7, Path::new("/p/2"), Some(Path::new("../1")), Path::new("/cg")));
        assert_eq!(after(&second, "--prev-images-dir").as_deref(), Some("../1"));
        let last = args(c.dump(7, Path::new("/d"), Path::new("/cg"), Some(Path::new("/p/2"))));
        assert_eq!(after(&last, "--prev-images-dir").as_deref(), Some("/p/2"));
        assert!(last.iter().any(|a| a == "--track-mem"), "{last:?}");
        let whole = args(c.dump(7, Path::new("/d"), Path::new("/cg"), None));
        assert!(!whole.iter().any(|a| a == "--track-mem" || a == "--prev-images-dir"), "{whole:?}");
    }
}
