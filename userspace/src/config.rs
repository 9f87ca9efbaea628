//! OpenVZ configuration files and controller settings.
//!
//! `vz.conf` (global) and `conf/VEID.conf` (per VE) are shell-style `KEY="value"` files.
//! [`ConfFile`] keeps every line it does not change (comments, blank lines, unknown keys)
//! and writes atomically (temp file + rename). Every path can be redirected by an
//! environment variable, so tests run in a temporary root.
use std::{
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
};

pub const DEFAULT_CONF_DIR: &str = "/etc/vz";
pub const DEFAULT_BPF_ROOT: &str = "/sys/fs/bpf/vz";
pub const DEFAULT_CGROUP_PARENT: &str = "vz";
/// The template `create` uses when none is given (built in: `template` makes it).
pub const DEFAULT_TEMPLATE: &str = "busybox";
/// VEIDs up to this are reserved (0 is the host), as in OpenVZ.
pub const MAX_RESERVED_VEID: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid VEID '{0}': VEIDs are integers above {MAX_RESERVED_VEID} (0..{MAX_RESERVED_VEID} are reserved)")]
    BadVeid(String),
    #[error("{path}:{line}: malformed line '{text}' (expected KEY=\"value\")")]
    Malformed { path: PathBuf, line: usize, text: String },
    #[error("invalid value '{value}' for {key}: {why}")]
    BadValue { key: String, value: String, why: &'static str },
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
}

impl ConfigError {
    pub fn kind(&self) -> crate::kind::Kind {
        match self {
            ConfigError::Io { .. } => crate::kind::Kind::System,
            _ => crate::kind::Kind::BadValue,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ConfigError + 'a {
    move |source| ConfigError::Io { op, path: path.to_path_buf(), source }
}

/// Parses a VEID as vzctl does: a decimal integer above the reserved range.
pub fn parse_veid(s: &str) -> Result<u32, ConfigError> {
    match s.parse::<u32>() {
        Ok(v) if v > MAX_RESERVED_VEID && s.bytes().all(|b| b.is_ascii_digit()) => Ok(v),
        _ => Err(ConfigError::BadVeid(s.to_string())),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// `KEY=value`; `raw` is the original text while the value is unchanged.
    Kv { key: String, value: String, raw: Option<String> },
    /// Comment or blank line, kept verbatim.
    Other(String),
}

/// A `KEY="value"` file that round-trips what it does not change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfFile {
    lines: Vec<Line>,
}

fn valid_key(k: &str) -> bool {
    let mut c = k.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Unquotes a shell-style value: "..." (with \" \\ \$ escapes), '...', or bare.
fn unquote(v: &str) -> Option<String> {
    let v = v.trim();
    if let Some(inner) = v.strip_prefix('"') {
        let inner = inner.strip_suffix('"')?;
        let mut out = String::new();
        let mut it = inner.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                out.push(it.next()?);
            } else if c == '"' {
                return None;
            } else {
                out.push(c);
            }
        }
        Some(out)
    } else if let Some(inner) = v.strip_prefix('\'') {
        let inner = inner.strip_suffix('\'')?;
        (!inner.contains('\'')).then(|| inner.to_string())
    } else if v.contains(char::is_whitespace) || v.contains('"') || v.contains('\'') {
        None
    } else {
        Some(v.to_string())
    }
}

fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

impl ConfFile {
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let mut lines = Vec::new();
        for (i, l) in text.lines().enumerate() {
            let t = l.trim();
            if t.is_empty() || t.starts_with('#') {
                lines.push(Line::Other(l.to_string()));
                continue;
            }
            let bad = || ConfigError::Malformed { path: origin.to_path_buf(), line: i + 1, text: l.to_string() };
            let (k, v) = t.split_once('=').ok_or_else(bad)?;
            if !valid_key(k) {
                return Err(bad());
            }
            let value = unquote(v).ok_or_else(bad)?;
            lines.push(Line::Kv { key: k.to_string(), value, raw: Some(l.to_string()) });
        }
        Ok(Self { lines })
    }

    /// Reads a file; a missing file is an empty config.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        Ok(Self::read_existing(path)?.unwrap_or_default())
    }

    /// Like `read`, but None when there is no file (one open, no separate existence check:
    /// listings read thousands of these).
    pub fn read_existing(path: &Path) -> Result<Option<Self>, ConfigError> {
        match fs::read_to_string(path) {
            Ok(t) => Self::parse(&t, path).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", path)(e)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().rev().find_map(|l| match l {
            Line::Kv { key: k, value, .. } if k == key => Some(value.as_str()),
            _ => None,
        })
    }

    pub fn set(&mut self, key: &str, value: &str) {
        for l in self.lines.iter_mut().rev() {
            if let Line::Kv { key: k, value: v, raw } = l {
                if k == key {
                    if v != value {
                        *v = value.to_string();
                        *raw = None;
                    }
                    return;
                }
            }
        }
        self.lines.push(Line::Kv { key: key.to_string(), value: value.to_string(), raw: None });
    }

    pub fn remove(&mut self, key: &str) {
        self.lines.retain(|l| !matches!(l, Line::Kv { key: k, .. } if k == key));
    }

    pub fn keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Kv { key, value, .. } => Some((key.as_str(), value.as_str())),
            Line::Other(_) => None,
        })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            match l {
                Line::Other(t) | Line::Kv { raw: Some(t), .. } => out.push_str(t),
                Line::Kv { key, value, raw: None } => {
                    out.push_str(key);
                    out.push('=');
                    out.push_str(&quote(value));
                }
            }
            out.push('\n');
        }
        out
    }

    /// Writes through a temporary file in the same directory and renames it into place, so
    /// a reader sees the old or the new file, never half of one.
    pub fn write_atomic(&self, path: &Path) -> Result<(), ConfigError> {
        write_atomic(path, self.render().as_bytes())
    }

    /// See `write_runtime`.
    pub fn write_runtime(&self, path: &Path) -> Result<(), ConfigError> {
        write_runtime(path, self.render().as_bytes())
    }
}

pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ConfigError> {
    write_replace(path, data, true)
}

/// Like `write_atomic` without the fsync: for runtime state that matters only until the
/// next boot (intent and live files in LOCKDIR), which must be whole, not durable.
pub fn write_runtime(path: &Path, data: &[u8]) -> Result<(), ConfigError> {
    write_replace(path, data, false)
}

fn write_replace(path: &Path, data: &[u8], durable: bool) -> Result<(), ConfigError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("mkdir", dir))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let r = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.map_err(io_err("write", path))
}

/// Global settings: `vz.conf` plus environment overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Config directory: `vz.conf`, `conf/VEID.conf`, samples (`VZ_CONF_DIR`).
    pub conf_dir: PathBuf,
    /// VE_ROOT pattern with `$VEID` (`VZ_VE_ROOT`).
    pub ve_root: String,
    /// VE_PRIVATE pattern with `$VEID` (`VZ_VE_PRIVATE`).
    pub ve_private: String,
    /// TEMPLATE directory; caches in `cache/` (`VZ_TEMPLATE`).
    pub template: PathBuf,
    /// LOCKDIR: per-VE locks and run state (`VZ_LOCKDIR`).
    pub lock_dir: PathBuf,
    /// bpffs pin root (`VZ_BPF_ROOT`).
    pub bpf_root: PathBuf,
    /// VE parent cgroup, relative to this process's cgroup in each hierarchy
    /// (`VZ_CGROUP_PARENT`).
    pub cgroup_parent: String,
    pub def_ostemplate: String,
    pub configfile: String,
    pub local_uid: u32,
    pub local_gid: u32,
    pub stop_timeout: u32,
    /// LOCK_WAIT: how long a command waits for a VE another vzctl works on before it
    /// gives up with OpenVZ's "locked" (exit 9), in seconds.
    pub lock_wait: u32,
    /// DCACHE_ACCOUNTING: count dcachesize with tracepoints on every slab allocation
    /// (`VZ_DCACHE_ACCOUNTING`); off by default for its cost.
    pub dcache_accounting: bool,
    /// VE_LAYOUT: layout of new VEs, simfs (a directory) or ploop (an image).
    pub ve_layout: String,
    /// DUMPDIR: where `vzctl chkpnt` puts `Dump.VEID` when no --dumpfile is given.
    pub dump_dir: PathBuf,
    /// CRIU: the criu binary (default: the first of PATH, /usr/local/sbin, /usr/sbin that
    /// is 4.1 or newer).
    pub criu: Option<PathBuf>,
    /// NEIGHBOUR_DEVS: which host interfaces answer ARP for VE addresses (detect, none, or
    /// a list of names).
    pub neighbour_devs: String,
    /// LOGFILE (OpenVZ's /var/log/vzctl.log); None with LOGGING=no.
    pub log_file: Option<PathBuf>,
    /// LOG_LEVEL (OpenVZ's): 0 logs what vzctl says and warnings, 1 debug, 2 and up trace.
    pub log_level: u32,
    /// EVENTS_LOG: the node's JSON event lines (`vzctl events`).
    pub events_log: PathBuf,
    /// METRICS_ADDR: where vzeventd serves Prometheus metrics (host:port).
    pub metrics_addr: String,
    /// LXCFS: the LXCFS mount VEs take their /proc view from (None with LXCFS=no).
    pub lxcfs: Option<PathBuf>,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            conf_dir: DEFAULT_CONF_DIR.into(),
            ve_root: "/vz/root/$VEID".into(),
            ve_private: "/vz/private/$VEID".into(),
            template: "/vz/template".into(),
            lock_dir: "/vz/lock".into(),
            bpf_root: DEFAULT_BPF_ROOT.into(),
            cgroup_parent: DEFAULT_CGROUP_PARENT.into(),
            def_ostemplate: DEFAULT_TEMPLATE.into(),
            configfile: "basic".into(),
            local_uid: 100000,
            local_gid: 100000,
            stop_timeout: 10,
            lock_wait: 60,
            dcache_accounting: false,
            ve_layout: "simfs".into(),
            dump_dir: "/vz/dump".into(),
            criu: None,
            neighbour_devs: "detect".into(),
            log_file: Some("/var/log/vzctl.log".into()),
            log_level: 0,
            events_log: "/var/log/vz/events.log".into(),
            metrics_addr: "127.0.0.1:9765".into(),
            lxcfs: Some("/var/lib/lxcfs".into()),
        }
    }
}

fn parse_yes_no(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(ConfigError::BadValue { key: key.into(), value: v.into(), why: "use yes or no" }),
    }
}

fn parse_num(key: &str, v: &str) -> Result<u32, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::BadValue { key: key.into(), value: v.into(), why: "expected a number" })
}

impl Paths {
    /// Reads `$VZ_CONF_DIR/vz.conf` (default /etc/vz), then applies `VZ_*` environment
    /// overrides.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_with(|k| std::env::var(k).ok())
    }

    pub fn load_with(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut p = Paths::default();
        if let Some(d) = env("VZ_CONF_DIR") {
            // A mistyped or removed config directory must not fall back to the host's
            // defaults (/vz, /sys/fs/bpf/vz): whoever set it meant another node.
            if !Path::new(&d).is_dir() {
                return Err(ConfigError::BadValue { key: "VZ_CONF_DIR".into(), value: d, why: "no such directory" });
            }
            p.conf_dir = d.into();
        }
        let conf = ConfFile::read(&p.global_conf())?;
        let (mut logfile, mut logging) = (None, true);
        for (key, value) in conf.keys() {
            match key {
                "VE_ROOT" => p.ve_root = value.into(),
                "VE_PRIVATE" => p.ve_private = value.into(),
                "TEMPLATE" => p.template = value.into(),
                "LOCKDIR" => p.lock_dir = value.into(),
                "BPF_ROOT" => p.bpf_root = value.into(),
                "CGROUP_PARENT" => p.cgroup_parent = value.into(),
                "DEF_OSTEMPLATE" => p.def_ostemplate = value.into(),
                "CONFIGFILE" => p.configfile = value.into(),
                "LOCAL_UID" => p.local_uid = parse_num(key, value)?,
                "LOCAL_GID" => p.local_gid = parse_num(key, value)?,
                "STOP_TIMEOUT" => p.stop_timeout = parse_num(key, value)?,
                "LOCK_WAIT" => p.lock_wait = parse_num(key, value)?,
                "DCACHE_ACCOUNTING" => p.dcache_accounting = parse_yes_no(key, value)?,
                "VE_LAYOUT" => p.ve_layout = value.trim().into(),
                "DUMPDIR" => p.dump_dir = value.trim().into(),
                "CRIU" => p.criu = Some(value.trim().into()),
                "NEIGHBOUR_DEVS" => p.neighbour_devs = value.trim().into(),
                "LOGFILE" => logfile = Some(value.trim().into()),
                "LOGGING" => logging = parse_yes_no(key, value)?,
                "LOG_LEVEL" => p.log_level = parse_num(key, value)?,
                "EVENTS_LOG" => p.events_log = value.trim().into(),
                "METRICS_ADDR" => p.metrics_addr = value.trim().into(),
                "LXCFS" => p.lxcfs = Some(value.trim()).filter(|v| *v != "no").map(PathBuf::from),
                _ => {}
            }
        }
        for (var, field) in [
            ("VZ_VE_ROOT", &mut p.ve_root),
            ("VZ_VE_PRIVATE", &mut p.ve_private),
            ("VZ_CGROUP_PARENT", &mut p.cgroup_parent),
        ] {
            if let Some(v) = env(var) {
                *field = v;
            }
        }
        if let Some(f) = logfile {
            p.log_file = Some(f);
        }
        if !logging {
            p.log_file = None;
        }
        if let Some(v) = env("VZ_DCACHE_ACCOUNTING") {
            p.dcache_accounting = parse_yes_no("VZ_DCACHE_ACCOUNTING", &v)?;
        }
        for (var, field) in
            [("VZ_TEMPLATE", &mut p.template), ("VZ_LOCKDIR", &mut p.lock_dir), ("VZ_BPF_ROOT", &mut p.bpf_root)]
        {
            if let Some(v) = env(var) {
                *field = v.into();
            }
        }
        Ok(p)
    }

    pub fn global_conf(&self) -> PathBuf {
        self.conf_dir.join("vz.conf")
    }
    pub fn ve_conf_dir(&self) -> PathBuf {
        self.conf_dir.join("conf")
    }
    pub fn ve_conf(&self, veid: u32) -> PathBuf {
        self.ve_conf_dir().join(format!("{veid}.conf"))
    }
    pub fn sample(&self, name: &str) -> PathBuf {
        self.ve_conf_dir().join(format!("ve-{name}.conf-sample"))
    }
    pub fn root_of(&self, veid: u32) -> PathBuf {
        expand_veid(&self.ve_root, veid)
    }
    pub fn private_of(&self, veid: u32) -> PathBuf {
        expand_veid(&self.ve_private, veid)
    }
    pub fn cache_dir(&self) -> PathBuf {
        self.template.join("cache")
    }
}

/// Expands `$VEID` / `${VEID}` in a VE_ROOT or VE_PRIVATE pattern.
pub fn expand_veid(pattern: &str, veid: u32) -> PathBuf {
    pattern.replace("${VEID}", &veid.to_string()).replace("$VEID", &veid.to_string()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veids() {
        assert_eq!(parse_veid("101").unwrap(), 101);
        assert_eq!(parse_veid("4294967295").unwrap(), u32::MAX);
        for bad in ["0", "100", "-5", "abc", "", "+101", "101a", "4294967296"] {
            assert!(matches!(parse_veid(bad), Err(ConfigError::BadVeid(b)) if b == bad), "{bad}");
        }
        assert!(parse_veid("7").unwrap_err().to_string().contains("'7'"));
    }

    const SAMPLE: &str = "# a comment\n\nONBOOT=\"yes\"\nNUMTCPSOCK=\"80:80\"\nX_CUSTOM='keep me'\nHOSTNAME=bare\n";

    #[test]
    fn parses_and_round_trips_untouched() {
        let c = ConfFile::parse(SAMPLE, Path::new("t")).unwrap();
        assert_eq!(c.get("ONBOOT"), Some("yes"));
        assert_eq!(c.get("X_CUSTOM"), Some("keep me"));
        assert_eq!(c.get("HOSTNAME"), Some("bare"));
        assert_eq!(c.render(), SAMPLE);
    }

    #[test]
    fn set_rewrites_one_line_and_keeps_the_rest() {
        let mut c = ConfFile::parse(SAMPLE, Path::new("t")).unwrap();
        c.set("NUMTCPSOCK", "10:20");
        c.set("DESCRIPTION", "say \"hi\" $HOME");
        let out = c.render();
        assert!(out.contains("NUMTCPSOCK=\"10:20\"\n"));
        assert!(out.contains("X_CUSTOM='keep me'\n") && out.starts_with("# a comment\n\n"));
        let again = ConfFile::parse(&out, Path::new("t")).unwrap();
        assert_eq!(again.get("DESCRIPTION"), Some("say \"hi\" $HOME"));
        c.remove("ONBOOT");
        assert_eq!(c.get("ONBOOT"), None);
    }

    #[test]
    fn malformed_lines_name_file_line_and_text() {
        for bad in ["JUST TEXT", "1KEY=\"x\"", "KEY=\"unterminated", "KEY=two words", "=x"] {
            let e = ConfFile::parse(&format!("OK=1\n{bad}\n"), Path::new("/c/101.conf")).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("/c/101.conf:2") && msg.contains(bad), "{msg}");
        }
    }

    #[test]
    fn paths_from_conf_and_env() {
        let dir = std::env::temp_dir().join(format!("vzconf-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("vz.conf"),
            "VE_ROOT=\"/r/$VEID\"\nLOCAL_UID=200000\nTEMPLATE=/t\nDCACHE_ACCOUNTING=\"yes\"\nLOGGING=no\nLOGFILE=/x.log\n\
             LOG_LEVEL=2\nEVENTS_LOG=/e.log\nMETRICS_ADDR=\"[::1]:9\"\n",
        )
        .unwrap();
        let d = dir.to_string_lossy().to_string();
        let p = Paths::load_with(|k| match k {
            "VZ_CONF_DIR" => Some(d.clone()),
            "VZ_LOCKDIR" => Some("/l".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(p.root_of(101), Path::new("/r/101"));
        assert_eq!(p.private_of(7), Path::new("/vz/private/7"));
        assert_eq!(p.local_uid, 200000);
        assert_eq!(p.template, Path::new("/t"));
        assert_eq!(p.lock_dir, Path::new("/l"));
        assert_eq!(p.ve_conf(101), dir.join("conf/101.conf"));
        assert!(p.dcache_accounting);
        // LOGGING=no wins over a LOGFILE, wherever it stands.
        assert_eq!(p.log_file, None);
        assert_eq!((p.log_level, p.events_log.as_path(), p.metrics_addr.as_str()), (2, Path::new("/e.log"), "[::1]:9"));
        // The environment wins, and a value other than yes/no is refused by name.
        let env = |v: &'static str| {
            let d = d.clone();
            move |k: &str| match k {
                "VZ_CONF_DIR" => Some(d.clone()),
                "VZ_DCACHE_ACCOUNTING" => Some(v.to_string()),
                _ => None,
            }
        };
        assert!(!Paths::load_with(env("no")).unwrap().dcache_accounting);
        assert!(Paths::load_with(env("yes")).unwrap().dcache_accounting);
        let e = Paths::load_with(env("maybe")).unwrap_err();
        assert!(e.to_string().contains("maybe"), "{e}");
        // A config directory that is not there is refused by name, never replaced by the
        // host's defaults.
        fs::remove_dir_all(&dir).unwrap();
        let e = Paths::load_with(env("no")).unwrap_err();
        assert!(e.to_string().contains(&d) && e.to_string().contains("VZ_CONF_DIR"), "{e}");
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = std::env::temp_dir().join(format!("vzconf-w-{}", std::process::id()));
        let f = dir.join("x.conf");
        write_atomic(&f, b"A=\"1\"\n").unwrap();
        write_atomic(&f, b"B=\"2\"\n").unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "B=\"2\"\n");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "temp file left behind");
        fs::remove_dir_all(&dir).unwrap();
    }
}
