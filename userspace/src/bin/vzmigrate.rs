//! vzmigrate: move a VE to another node running vzbpf, over ssh (OpenVZ's vzmigrate).
use std::process::ExitCode;

use clap::Parser;
use vz::{config::Paths, ve::MigrateOpts, Vz};

#[derive(Parser, Debug)]
#[command(
    name = "vzmigrate",
    version,
    about = "Migrate a VE to another node running vzbpf, over ssh (key authentication) with rsync",
    long_about = "Migrate a VE to another node running vzbpf, over ssh (key authentication) with rsync.\n\n\
        A stopped VE: its private area and config are copied. A running VE: stopped here and \
        started there, or with --online checkpointed here and restored there (CRIU), its \
        processes and TCP connections kept. The destination runs its own vzctl (in its PATH, \
        with its own /etc/vz); if anything fails, the VE runs on here."
)]
struct Cli {
    /// Remove the VE here once it runs on the destination.
    #[arg(short = 'r', long = "remove-area", default_value = "yes", value_parser = ["yes", "no"])]
    remove_area: String,
    /// More ssh options, split as a shell would, e.g. "-p 2222 -i /root/.ssh/id_migrate".
    #[arg(long, allow_hyphen_values = true, value_parser = words)]
    ssh: Option<Words>,
    /// More rsync options, e.g. "-z" on a slow link.
    #[arg(long, allow_hyphen_values = true, value_parser = words)]
    rsync: Option<Words>,
    /// On failure, keep the private area copied to the destination (a retry copies less).
    #[arg(long)]
    keep_dst: bool,
    /// Move a running VE without stopping it: checkpoint here, restore there.
    #[arg(long, alias = "live")]
    online: bool,
    /// Online: no iterative pre-copy (memory copied in rounds while the VE runs, where the
    /// kernel tracks written pages); all of it is then copied while the VE is frozen.
    #[arg(long)]
    noiter: bool,
    /// Say more (repeat for debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// The destination node, as ssh takes it ([user@]host).
    destination: String,
    /// VE id or name.
    veid: vz::ve::VeRef,
}

#[derive(Debug, Clone)]
struct Words(Vec<String>);

fn words(s: &str) -> Result<Words, String> {
    vz::ve::shell_words(s).map(Words).map_err(str::to_string)
}

fn list(w: &Option<Words>) -> Vec<String> {
    w.as_ref().map(|w| w.0.clone()).unwrap_or_default()
}

fn main() -> ExitCode {
    let cli: Cli = match vz::cli::parse("vzmigrate") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let level = ["warn,vz::report=off", "info,vz::report=off", "debug"][usize::from(cli.verbose.min(2))];
    vz::log::init("vzmigrate", level);
    let euid = vz::sys::proc::euid();
    if euid != 0 {
        eprintln!("vzmigrate: vzmigrate needs root: run it as root (this is uid {euid})");
        return ExitCode::from(vz::exit::SYSTEM_ERROR as u8);
    }
    vz::cli::finish("vzmigrate", run(&cli))
}

fn run(cli: &Cli) -> Result<(), vz::Error> {
    let vz = Vz::new(Paths::load()?)?;
    let veid = vz.resolve(&cli.veid)?;
    let opts = MigrateOpts {
        dest: cli.destination.clone(),
        online: cli.online,
        keep_dst: cli.keep_dst,
        iterative: !cli.noiter,
        remove_area: cli.remove_area == "yes",
        ssh: list(&cli.ssh),
        rsync: list(&cli.rsync),
    };
    Ok(vz.migrate(veid, &opts)?)
}
