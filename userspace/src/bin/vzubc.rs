//! vzubc: beancounters of running VEs in /proc/user_beancounters format.
use std::process::ExitCode;

use clap::Parser;
use vz::{config::Paths, Bpf, Vz};

#[derive(Parser, Debug)]
#[command(name = "vzubc", version, about = "Show user beancounters of running VEs")]
struct Cli {
    /// Quiet: only rows that failed or are within 10 % of their barrier.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Color: rows that failed in red, rows within 10 % of their barrier in yellow.
    #[arg(short = 'c', long = "color")]
    color: bool,
    /// Add a column naming what counts and refuses each row.
    #[arg(short = 'm', long)]
    mechanism: bool,
    /// VEs to show (default: every running VE).
    veids: Vec<vz::ve::VeRef>,
}

fn main() -> ExitCode {
    let cli: Cli = match vz::cli::parse("vzubc") {
        Ok(c) => c,
        Err(code) => return code,
    };
    vz::cli::finish("vzubc", run(&cli))
}

fn run(cli: &Cli) -> Result<(), vz::Error> {
    let vz = Vz::new(Paths::load()?)?;
    let veids = vz.named_or_running(&cli.veids)?;
    let bpf = Bpf::open_existing(&vz.paths.bpf_root).ok();
    let mut report = Vec::new();
    for veid in veids {
        report.push((veid, vz.ubc_rows(veid, bpf.as_ref())?));
    }
    vz::cli::print_ubc(&report, vz::cli::UbcView { quiet: cli.quiet, color: cli.color, mechanism: cli.mechanism });
    Ok(())
}
