//! vzeventd: the node's event daemon (see `vz::daemon`): limit hits and VE reboots as
//! events, a `reboot` inside a VE starts it again, Prometheus metrics on METRICS_ADDR.
use std::process::ExitCode;

use clap::Parser;
use vz::{config::Paths, Vz};

#[derive(Parser, Debug)]
#[command(name = "vzeventd", version, about = "Node event daemon: limit hits, VE reboots, Prometheus metrics")]
struct Cli {
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    seconds: Option<u64>,
    /// Serve metrics on this host:port (default: METRICS_ADDR of vz.conf, 127.0.0.1:9765).
    #[arg(long, conflicts_with = "no_metrics")]
    listen: Option<String>,
    /// Serve no metrics.
    #[arg(long)]
    no_metrics: bool,
    /// Seconds a scrape may serve the rows found by walking processes and sockets (open
    /// files, VM pages, socket buffers, ptys, signals, locks, netfilter entries) from the
    /// last walk, so that scrapes cost what the VEs' maps and cgroups cost.
    #[arg(long, default_value_t = vz::daemon::walks::EVERY.as_secs())]
    walk_every: u64,
}

fn main() -> ExitCode {
    let cli: Cli = match vz::cli::parse("vzeventd") {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Warnings the library says reach stderr once, through the report sink.
    vz::log::init("vzeventd", "info,vz::report=off");
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let vz = Vz::new(Paths::load()?)?;
        let listen = if cli.no_metrics {
            None
        } else {
            Some(cli.listen.clone().unwrap_or_else(|| vz.paths.metrics_addr.clone()))
        };
        let vzctl = vz::daemon::vzctl_beside(std::env::current_exe().ok().as_deref());
        let walk_every = std::time::Duration::from_secs(cli.walk_every);
        Ok(vz::daemon::run(vz, vz::daemon::Options { listen, seconds: cli.seconds, vzctl, walk_every })?)
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vzeventd: {e}");
            ExitCode::from(1)
        }
    }
}
