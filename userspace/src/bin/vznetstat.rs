//! vznetstat: traffic of running VEs as their venet pairs count it in the kernel.
use std::process::ExitCode;

use clap::Parser;
use vz::{config::Paths, Bpf, Vz};

#[derive(Parser, Debug)]
#[command(name = "vznetstat", version, about = "Show network traffic of running VEs")]
struct Cli {
    /// Only this VE (repeatable; default: every running VE).
    #[arg(short = 'v', long = "veid")]
    veids: Vec<vz::ve::VeRef>,
}

fn main() -> ExitCode {
    let cli: Cli = match vz::cli::parse("vznetstat") {
        Ok(c) => c,
        Err(code) => return code,
    };
    vz::cli::finish("vznetstat", run(&cli))
}

fn run(cli: &Cli) -> Result<(), vz::Error> {
    let vz = Vz::new(Paths::load()?)?;
    let veids = vz.named_or_running(&cli.veids)?;
    let bpf = Bpf::open_existing(&vz.paths.bpf_root)?;
    let mut rows = Vec::new();
    for veid in veids {
        let cgid = vz.cg.ve_id(veid)?;
        rows.push((veid, bpf.net_stats(cgid)?.unwrap_or_default()));
    }
    print!("{}", vz::list::netstat_table(&rows));
    Ok(())
}
