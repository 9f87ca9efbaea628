//! Logging of every vzbpf binary: the console (standard error, the verbosity asked for)
//! and OpenVZ's LOGFILE at its LOG_LEVEL, each line naming the program and its pid. Under
//! systemd the daemon's console is the journal.
use std::{fmt, fs, io::IsTerminal as _, sync::Mutex};

use tracing::{Event, Subscriber};
use tracing_subscriber::{
    fmt::{format::Writer, time::FormatTime as _, FmtContext, FormatEvent, FormatFields},
    layer::SubscriberExt as _,
    registry::LookupSpan,
    util::SubscriberInitExt as _,
    EnvFilter, Layer as _,
};

use crate::config::Paths;

/// The file's filter for a LOG_LEVEL: level 0 holds what the verbs say (their progress
/// lines and warnings) and the daemons' info.
pub fn file_filter(level: u32) -> &'static str {
    match level {
        0 => "info,vz::report=debug",
        1 => "debug",
        _ => "trace",
    }
}

/// `2026-12-04T13:50:45.007Z vzctl[1234]: INFO message key=value`.
struct FileFormat {
    prog: &'static str,
}

impl<S, N> FormatEvent<S, N> for FileFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let _ = tracing_subscriber::fmt::time::SystemTime.format_time(&mut w);
        write!(w, " {}[{}]: {} ", self.prog, std::process::id(), event.metadata().level())?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Installs the process's logger. `console` is the console's filter unless VZ_LOG gives
/// one. A log file that cannot be opened is said once on the console, and the run goes on.
pub fn init(prog: &'static str, console: &str) {
    // Only root writes the node's log (the others are refused before they do anything).
    let paths = Paths::load().ok().filter(|_| crate::sys::proc::euid() == 0);
    let console_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(EnvFilter::try_from_env("VZ_LOG").unwrap_or_else(|_| console.into()));
    let mut unopened = None;
    let file_layer = paths.as_ref().and_then(|p| {
        let path = p.log_file.as_ref()?;
        let open = || {
            if let Some(d) = path.parent() {
                fs::create_dir_all(d)?;
            }
            fs::OpenOptions::new().create(true).append(true).open(path)
        };
        match open() {
            Ok(f) => Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .event_format(FileFormat { prog })
                    .with_writer(Mutex::new(f))
                    .with_filter(EnvFilter::new(file_filter(p.log_level))),
            ),
            Err(e) => {
                unopened = Some(format!("{}: {e}", path.display()));
                None
            }
        }
    });
    tracing_subscriber::registry().with(console_layer).with(file_layer).init();
    if let Some(why) = unopened {
        tracing::warn!("log file not written: {why}");
    }
}
