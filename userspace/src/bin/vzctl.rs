//! vzctl: the admin's command for VEs.
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use vz::{
    bpf::{Bpf, BpfConfig},
    cgroup,
    config::{self, Paths},
    ubc::{self, Resource, UbcRow},
    Error,
};

#[derive(Parser, Debug)]
#[command(name = "vzctl", version, about = "Manage OpenVZ-style Virtual Environments on a stock kernel")]
struct Cli {
    /// bpffs directory holding the pinned programs and maps.
    #[arg(long, global = true, env = "VZ_BPF_ROOT", default_value = config::DEFAULT_BPF_ROOT)]
    bpf_root: std::path::PathBuf,
    /// VE parent cgroup, relative to each cgroup hierarchy root.
    #[arg(long, global = true, env = "VZ_CGROUP_PARENT", default_value = config::DEFAULT_CGROUP_PARENT)]
    cgroup_parent: String,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Change a running VE's parameters; beancounter limits apply at once.
    Set(SetCmd),
    /// Show a VE's beancounters in /proc/user_beancounters format.
    Ubc(UbcCmd),
}

#[derive(Args, Debug)]
struct SetCmd {
    /// VE id (an integer above 100).
    veid: String,
    /// TCP sockets: barrier[:limit].
    #[arg(long, value_name = "B[:L]")]
    numtcpsock: Option<String>,
    /// Other (UDP, raw, ...) sockets: barrier[:limit].
    #[arg(long, value_name = "B[:L]")]
    numothersock: Option<String>,
}

#[derive(Args, Debug)]
struct UbcCmd {
    /// VE ids.
    #[arg(required = true)]
    veids: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn,vz::kernel=info",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VZ_LOG").unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vzctl: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn open_bpf(paths: &Paths, cg: &dyn cgroup::Cgroups) -> Result<Bpf, Error> {
    cg.create_parent()?;
    Ok(Bpf::ensure(&BpfConfig::new(paths.bpf_root.clone(), cg.parent_dir(), cg.ve_level()))?)
}

fn run(cli: &Cli) -> Result<(), Error> {
    let paths = Paths { bpf_root: cli.bpf_root.clone(), cgroup_parent: cli.cgroup_parent.clone() };
    match &cli.cmd {
        Command::Set(c) => {
            let veid = config::parse_veid(&c.veid)?;
            // Parse everything before touching anything: bad input changes nothing.
            let mut changes = Vec::new();
            for (name, val) in [("numtcpsock", &c.numtcpsock), ("numothersock", &c.numothersock)] {
                if let Some(v) = val {
                    let r = Resource::by_name(name)?;
                    changes.push((r.id, r.parse_limit(v)?));
                }
            }
            vz::bpf::check_can_load()?;
            let cg = cgroup::detect(&paths.cgroup_parent)?;
            let id = cg.ve_id(veid)?;
            let mut bpf = open_bpf(&paths, cg.as_ref())?;
            bpf.register_ve(id)?;
            bpf.set_limits(id, &changes)?;
            println!("UB limits were set successfully");
            Ok(())
        }
        Command::Ubc(c) => {
            let veids = c.veids.iter().map(|v| config::parse_veid(v)).collect::<Result<Vec<_>, _>>()?;
            let cg = cgroup::detect(&paths.cgroup_parent)?;
            let bpf = open_bpf(&paths, cg.as_ref())?;
            let mut report = Vec::new();
            for veid in veids {
                let id = cg.ve_id(veid)?;
                let (usage, limits) = (bpf.usage(id)?, bpf.limits(id)?);
                let rows = ubc::ALL
                    .iter()
                    .filter(|r| r.is_active())
                    .map(|r| UbcRow { resource: r, usage: usage.res[r.id as usize], limit: limits.res[r.id as usize] })
                    .collect();
                report.push((veid, rows));
            }
            print!("{}", ubc::format_report(&report));
            Ok(())
        }
    }
}
