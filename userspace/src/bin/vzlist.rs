//! vzlist: list VEs with their status, addresses and beancounters.
use std::process::ExitCode;

use clap::Parser;
use vz::{
    config::Paths,
    list::{self, Filter},
    Bpf, Vz,
};

#[derive(Parser, Debug)]
#[command(name = "vzlist", version, about = "List Virtual Environments", disable_help_flag = true)]
struct Cli {
    /// Print help (-h is OpenVZ's hostname filter).
    #[arg(long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// List the fields -o and -s take, one per line.
    #[arg(short = 'L', long = "list")]
    list: bool,
    /// Only VEs whose hostname matches this shell pattern (e.g. 'web*').
    #[arg(short = 'h', long = "hostname")]
    hostname: Option<String>,
    /// Only VEs whose name matches this shell pattern.
    #[arg(short = 'N', long = "name_filter")]
    name_filter: Option<String>,
    /// Only VEs whose description matches this shell pattern.
    #[arg(short = 'd', long = "description")]
    description: Option<String>,
    /// All VEs, running or not.
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Stopped VEs only.
    #[arg(short = 'S', long = "stopped")]
    stopped: bool,
    /// No header line.
    #[arg(short = 'H', long = "no-header")]
    no_header: bool,
    /// Do not cut values wider than their column (the last column never is).
    #[arg(short = 't', long = "no-trim")]
    no_trim: bool,
    /// Fields to show, comma-separated (ctid, nproc, status, ip, hostname, name, ostemplate,
    /// onboot, description, private, root, and every beancounter with .m .b .l .f).
    #[arg(short = 'o', long = "output")]
    output: Option<list::Fields>,
    /// Sort by a field; -field sorts in reverse.
    #[arg(short = 's', long = "sort", allow_hyphen_values = true)]
    sort: Option<list::SortKey>,
    /// JSON output.
    #[arg(short = 'j', long = "json")]
    json: bool,
    /// VEIDs only, one per line.
    #[arg(short = '1')]
    ids_only: bool,
    /// Show names instead of hostnames.
    #[arg(short = 'n', long = "name")]
    name: bool,
    /// Only these VEs.
    veids: Vec<vz::ve::VeRef>,
}

fn main() -> ExitCode {
    // OpenVZ's vzlist exits 1 on any error (a bad option, field or VE too).
    let cli: Cli = match vz::cli::parse("vzlist") {
        Ok(c) => c,
        Err(code) if code == ExitCode::SUCCESS => return code,
        Err(_) => return ExitCode::from(1),
    };
    match run(&cli) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vzlist: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> Result<String, Box<dyn std::error::Error>> {
    if cli.list {
        return Ok(list::field_names().iter().map(|f| format!("{f}\n")).collect());
    }
    let fields = match &cli.output {
        Some(o) => o.0.clone(),
        // OpenVZ's -j without -o: every field.
        None if cli.json => list::field_names().iter().filter_map(|n| list::Field::parse(n).ok()).collect(),
        None => list::default_fields(cli.name),
    };
    let vz = Vz::new(Paths::load()?)?;
    let wanted: Vec<u32> = cli.veids.iter().map(|v| vz.resolve(v)).collect::<Result<_, _>>()?;
    if let Some(missing) = wanted.iter().find(|v| !vz.paths.ve_conf(**v).exists()) {
        return Err(vz::ve::VeError::NotExist(*missing).into());
    }
    let bpf = Bpf::open_existing(&vz.paths.bpf_root).ok();
    let want_ubc = fields.iter().any(|f| matches!(f, list::Field::Ubc(..))) || cli.sort.is_some();
    let want_net = fields.iter().any(|f| f.name().starts_with("net")) || cli.sort.is_some();
    let want_io = fields.iter().any(|f| matches!(f.name().as_str(), "ioread" | "iowrite" | "ioreadops" | "iowriteops"))
        || cli.sort.is_some();
    let want_disk = fields.iter().any(|f| matches!(f.name().as_str(), "diskspace" | "diskinodes"));
    let mounts = vz::sys::mountinfo::LazyMountTable::default();
    let mut rows = Vec::new();
    for veid in vz.veids() {
        if !wanted.is_empty() && !wanted.contains(&veid) {
            continue;
        }
        let Ok(conf) = vz.conf(veid) else { continue };
        // -h, -N, -d before anything is read for the VE.
        let patterns = [("HOSTNAME", &cli.hostname), ("NAME", &cli.name_filter), ("DESCRIPTION", &cli.description)];
        if !patterns.iter().all(|(key, p)| p.as_ref().is_none_or(|p| list::matches(&conf, key, p))) {
            continue;
        }
        let want = list::collect::Want { ubc: want_ubc, net: want_net, io: want_io, disk: want_disk, walks: true };
        rows.push(list::collect::row(&vz, bpf.as_ref(), &mounts, veid, conf, want));
    }
    // -S narrows the VEs named on the command line too (`vzlist -S 101 102`: those of them
    // that are stopped), as OpenVZ's vzlist does.
    let filter = if cli.stopped {
        Filter::Stopped
    } else if cli.all || !cli.veids.is_empty() {
        Filter::All
    } else {
        Filter::Running
    };
    let mut rows = list::filter(rows, filter);
    if let Some(key) = &cli.sort {
        list::sort(&mut rows, key);
    }
    Ok(if cli.ids_only {
        list::ids(&rows)
    } else if cli.json {
        list::json(&rows, &fields)
    } else {
        list::table(&rows, &fields, !cli.no_header, !cli.no_trim)
    })
}
