//! What a verb tells the admin while it works ("Container is mounted", warnings). The
//! library never prints: it hands each line to the sink the binary installed (the console,
//! for every vzbpf binary, through `cli::parse`); with none installed (tests, other
//! programs using the library) lines go to the log only. Every line is also logged at
//! debug level (target `vz::report`), so `vzctl -vv` shows them in order among the log.
use std::sync::OnceLock;

/// Where the lines go.
pub trait Sink: Send + Sync {
    /// Progress, on standard output in vzctl.
    fn progress(&self, line: &str);
    /// Warnings and notes, on standard error in vzctl.
    fn notice(&self, line: &str);
}

/// Standard output and standard error, as OpenVZ's vzctl prints them.
pub struct Console;

impl Sink for Console {
    fn progress(&self, line: &str) {
        println!("{line}");
    }
    fn notice(&self, line: &str) {
        eprintln!("{line}");
    }
}

static SINK: OnceLock<Box<dyn Sink>> = OnceLock::new();

/// `vzctl -v`: the steps a verb takes (`detail`) are said too.
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// A step of a verb ("Setting CPU units: 1000"), said to the admin with `vzctl -v` (as
/// OpenVZ's vzctl says them), logged at debug level always.
pub fn detail(line: impl AsRef<str>) {
    let line = line.as_ref();
    tracing::debug!(target: "vz::report", "{line}");
    if VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some(s) = SINK.get() {
            s.progress(line);
        }
    }
}

/// Installs the process's sink (the first call wins).
pub fn install(sink: Box<dyn Sink>) {
    let _ = SINK.set(sink);
}

pub fn progress(line: impl AsRef<str>) {
    let line = line.as_ref();
    tracing::debug!(target: "vz::report", "{line}");
    if let Some(s) = SINK.get() {
        s.progress(line);
    }
}

/// A "Warning: ..." line is logged as a warning, under `vz::report` like every line here:
/// the console's log filter leaves that target out, so the admin reads each warning once.
pub fn notice(line: impl AsRef<str>) {
    let line = line.as_ref();
    if line.starts_with("Warning: ") {
        tracing::warn!(target: "vz::report", "{line}");
    } else {
        tracing::debug!(target: "vz::report", "{line}");
    }
    if let Some(s) = SINK.get() {
        s.notice(line);
    }
}

/// `notice("Warning: {what}")` about one VE, whose id the log file's line carries.
pub fn warning(veid: u32, what: impl AsRef<str>) {
    let line = format!("Warning: {}", what.as_ref());
    tracing::warn!(target: "vz::report", veid, "{line}");
    if let Some(s) = SINK.get() {
        s.notice(&line);
    }
}
