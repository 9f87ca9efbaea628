//! vzstat: block I/O of running VEs, as the kernel's block layer reports it to the BPF
//! programs (bytes and operations at submission, latency at completion), per device.
use std::process::ExitCode;

use clap::Parser;
use vz::{config::Paths, io, Bpf, Vz};

#[derive(Parser, Debug)]
#[command(name = "vzstat", version, about = "Show block I/O of running VEs: bytes, operations and latency per device")]
struct Cli {
    /// Only this VE (repeatable; default: every running VE).
    #[arg(short = 'v', long = "veid")]
    veids: Vec<vz::ve::VeRef>,
    /// Show what happened during this many seconds instead of the totals since start.
    #[arg(short = 'i', long = "interval")]
    interval: Option<u64>,
    /// Also print each row's latency histogram.
    #[arg(long)]
    hist: bool,
}

fn main() -> ExitCode {
    let cli: Cli = match vz::cli::parse("vzstat") {
        Ok(c) => c,
        Err(code) => return code,
    };
    vz::cli::finish("vzstat", run(&cli))
}

fn snapshot(vz: &Vz, bpf: &Bpf, veids: &[u32]) -> Result<Vec<(u32, u32, io::IoTotals)>, vz::Error> {
    let mut rows = Vec::new();
    let all = bpf.io_stats_all()?;
    for &veid in veids {
        let cgid = vz.cg.ve_id(veid)?;
        for (dev, t) in all.get(&cgid).into_iter().flatten() {
            rows.push((veid, *dev, *t));
        }
    }
    Ok(rows)
}

fn run(cli: &Cli) -> Result<(), vz::Error> {
    let vz = Vz::new(Paths::load()?)?;
    let veids = vz.named_or_running(&cli.veids)?;
    let bpf = Bpf::open_existing(&vz.paths.bpf_root)?;
    if !bpf.io_accounting() {
        eprintln!("vzstat: block I/O accounting is not attached on this host (see vzctl's log for why)");
    }
    let mut rows = snapshot(&vz, &bpf, &veids)?;
    if let Some(secs) = cli.interval {
        let before = rows;
        std::thread::sleep(std::time::Duration::from_secs(secs));
        rows = snapshot(&vz, &bpf, &veids)?
            .into_iter()
            .map(|(veid, dev, now)| {
                let old = before.iter().find(|(v, d, _)| *v == veid && *d == dev).map(|r| r.2).unwrap_or_default();
                (veid, dev, now.since(&old))
            })
            .collect();
    }
    let named: Vec<(u32, String, io::IoTotals)> =
        rows.into_iter().map(|(veid, dev, t)| (veid, io::kdev_name(dev), t)).collect();
    print!("{}", io::stat_table(&named));
    if cli.hist {
        for (veid, dev, t) in &named {
            println!("{veid} {dev} latency:");
            print!("{}", io::hist_lines(t));
        }
    }
    Ok(())
}
