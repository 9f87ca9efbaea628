//! vzctl: the admin's command for VEs.
use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use vz::{
    config::{self, Paths},
    exit,
    ve::{CreateOpts, SetOpts},
    Bpf, Error, Vz,
};

#[derive(Parser, Debug)]
#[command(name = "vzctl", version, about = "Manage OpenVZ-style Virtual Environments on a stock kernel")]
struct Cli {
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a VE from an OS template and a config sample.
    Create(Box<CreateCmd>),
    /// Remove a stopped VE: private area, mount point and config.
    #[command(alias = "delete")]
    Destroy(Veid),
    /// Mount the VE's private area at VE_ROOT.
    Mount(Veid),
    /// Unmount a stopped VE's root.
    Umount(Veid),
    /// Start a VE: its init runs in new namespaces and its own cgroups.
    Start(StartCmd),
    /// Stop a VE: init is asked to halt, then what is left is killed.
    Stop(StopCmd),
    /// Stop and start a VE.
    Restart(Veid),
    /// Print "VEID <id> exist|deleted mounted|unmounted running|down".
    Status(Veid),
    /// Run a command line in a running VE through its /bin/sh (exit 0, or 8 if it failed).
    Exec(ExecCmd),
    /// Like exec, but exit with the command's own exit code.
    Exec2(ExecCmd),
    /// An interactive shell in a running VE, on a terminal of the VE's own.
    Enter(EnterCmd),
    /// Run a host script inside a VE (a stopped VE is mounted, not started).
    Runscript(RunscriptCmd),
    /// Change VE parameters: live on a running VE; --save also writes the config.
    Set(Box<SetCmd>),
    /// Show a VE's beancounters in /proc/user_beancounters format.
    Ubc(UbcCmd),
    /// Show or switch a disk's I/O scheduler. --ioprio needs bfq on the VE's disk; vzctl
    /// never switches a device unless told to here.
    Iosched(IoschedCmd),
    /// Internal: stage 1 of a VE's init.
    #[command(name = "__ve-init", hide = true)]
    VeInit {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Args, Debug)]
struct Veid {
    /// VE id (an integer above 100) or name.
    veid: String,
}

#[derive(Args, Debug)]
struct CreateCmd {
    /// VE id (an integer above 100).
    veid: String,
    /// OS template (a cache in TEMPLATE/cache); default DEF_OSTEMPLATE.
    #[arg(long)]
    ostemplate: Option<String>,
    /// Config sample (conf/ve-NAME.conf-sample); default CONFIGFILE.
    #[arg(long)]
    config: Option<String>,
    #[arg(long)]
    hostname: Option<String>,
    /// An IPv4 or IPv6 address for the VE (repeatable).
    #[arg(long)]
    ipadd: Vec<String>,
    /// A name to use in place of the VEID.
    #[arg(long)]
    name: Option<String>,
    /// Private area (default VE_PRIVATE).
    #[arg(long)]
    private: Option<PathBuf>,
    /// Mount point (default VE_ROOT).
    #[arg(long)]
    root: Option<PathBuf>,
    /// simfs (a directory) or ploop (an image file with its own file system); default
    /// VE_LAYOUT.
    #[arg(long)]
    layout: Option<String>,
    /// Disk space soft:hard, in 1 KiB blocks or with K M G T (ploop: the image size is the
    /// hard limit; default 2G).
    #[arg(long)]
    diskspace: Option<String>,
    /// Inodes soft:hard.
    #[arg(long)]
    diskinodes: Option<String>,
}

#[derive(Args, Debug)]
struct StartCmd {
    veid: String,
    /// Accepted for compatibility: start returns once init runs.
    #[arg(long)]
    wait: bool,
    /// Accepted for compatibility.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct StopCmd {
    veid: String,
    /// Kill at once, without asking init to halt.
    #[arg(long)]
    fast: bool,
}

#[derive(Args, Debug)]
struct ExecCmd {
    veid: String,
    /// The command line.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
struct EnterCmd {
    veid: String,
    /// A command typed into the shell on entering.
    #[arg(long)]
    exec: Option<String>,
}

#[derive(Args, Debug)]
struct RunscriptCmd {
    veid: String,
    script: PathBuf,
}

#[derive(Args, Debug)]
struct SetCmd {
    veid: String,
    /// Add an IPv4 or IPv6 address (repeatable); live on a running VE.
    #[arg(long)]
    ipadd: Vec<String>,
    /// Remove an address, or `all`.
    #[arg(long)]
    ipdel: Vec<String>,
    /// DNS server for the VE's /etc/resolv.conf (repeatable).
    #[arg(long)]
    nameserver: Vec<String>,
    /// DNS search domain for the VE's /etc/resolv.conf (repeatable).
    #[arg(long)]
    searchdomain: Vec<String>,
    /// Firewall rule, e.g. "deny in tcp 25" or "allow in tcp 22 from 10.0.0.0/8"
    /// (repeatable; together they replace the VE's rules; "none" clears them).
    #[arg(long = "netfilter-rule")]
    netfilter: Vec<String>,
    /// Bridged interface: ifname[,mac,host_ifname,host_mac,bridge] (repeatable).
    #[arg(long = "netif_add")]
    netif_add: Vec<String>,
    /// Remove a bridged interface by its name in the VE, or `all`.
    #[arg(long = "netif_del")]
    netif_del: Vec<String>,
    /// Egress rate limit in kbit/s (or dev:class:kbit); 0 or none lifts it.
    #[arg(long)]
    rate: Option<String>,
    /// CPU share weight, 8..500000 (default 1000): VEs get busy CPUs in proportion.
    #[arg(long)]
    cpuunits: Option<String>,
    /// CPU time limit in percent of one CPU (100 = one CPU); 0 lifts it.
    #[arg(long)]
    cpulimit: Option<String>,
    /// Number of CPUs' worth of time the VE may use; 0 or unlimited lifts it.
    #[arg(long)]
    cpus: Option<String>,
    /// CPUs the VE may run on: a list like 0-1,3, or all.
    #[arg(long)]
    cpumask: Option<String>,
    /// Disk time share, 0 (lowest) to 7 (highest), default 4 (BFQ group weight; the VE's
    /// disk must use the bfq scheduler, see `vzctl iosched`).
    #[arg(long)]
    ioprio: Option<String>,
    /// Disk bandwidth cap in bytes/s (K, M, G suffixes), reads and writes each; 0 lifts it.
    #[arg(long)]
    iolimit: Option<String>,
    /// Disk operations cap per second, reads and writes each; 0 lifts it.
    #[arg(long)]
    iopslimit: Option<String>,
    /// Disk space soft:hard, in 1 KiB blocks or with K M G T. ploop: grows live, shrinks
    /// only while stopped.
    #[arg(long)]
    diskspace: Option<String>,
    /// Inodes soft:hard.
    #[arg(long)]
    diskinodes: Option<String>,
    /// Per-user and per-group quota inside the VE (ploop): number of ids; 0 turns it off.
    #[arg(long)]
    quotaugidlimit: Option<String>,
    #[arg(long)]
    hostname: Option<String>,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// yes or no.
    #[arg(long)]
    onboot: Option<String>,
    #[command(flatten)]
    ubc: vz::cli::UbcArgs,
    /// VSwap: RAM size (bytes with K M G T, or pages with P); derives physpages and more.
    #[arg(long)]
    ram: Option<String>,
    /// VSwap: swap size.
    #[arg(long)]
    swap: Option<String>,
    /// VSwap: privvmpages = (ram + swap) x this (0: unlimited).
    #[arg(long = "vm_overcommit")]
    vm_overcommit: Option<String>,
    /// Also write the change to the VE's config.
    #[arg(long)]
    save: bool,
}

#[derive(Args, Debug)]
struct IoschedCmd {
    /// Whole disk, as in /sys/block (vda, loop3, /dev/sdb).
    device: String,
    /// Scheduler to switch to (bfq, mq-deadline, kyber, none); without it, show them.
    scheduler: Option<String>,
}

#[derive(Args, Debug)]
struct UbcCmd {
    #[arg(required = true)]
    veids: Vec<String>,
    /// Only rows that failed or are within 10 % of their barrier.
    #[arg(short = 'c')]
    problems: bool,
    /// Add a column naming what counts and refuses each row.
    #[arg(short = 'm', long)]
    mechanism: bool,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("__ve-init") {
        vz::ns::stage1_main(&argv[2..]);
    }
    let cli: Cli = match vz::cli::parse("vzctl") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let level = match cli.verbose {
        0 => "warn,vz::kernel=info",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VZ_LOG").unwrap_or_else(|_| level.into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // SAFETY: plain getter.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        eprintln!("vzctl: vzctl needs root: run it as root (this is uid {euid})");
        return ExitCode::from(vz::exit::SYSTEM_ERROR as u8);
    }
    match run(&cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            eprintln!("vzctl: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn run(cli: &Cli) -> Result<i32, Error> {
    let vz = Vz::new(Paths::load()?)?;
    let id = |s: &str| vz.resolve(s);
    match &cli.cmd {
        Command::VeInit { .. } => Ok(exit::INVALID_PARAMETER_SYNTAX),
        Command::Create(c) => {
            let veid = config::parse_veid(&c.veid)?;
            let opts = CreateOpts {
                ostemplate: c.ostemplate.clone(),
                config: c.config.clone(),
                hostname: c.hostname.clone(),
                name: c.name.clone(),
                private: c.private.clone(),
                root: c.root.clone(),
                ipadd: c.ipadd.clone(),
                layout: c.layout.clone(),
                diskspace: c.diskspace.clone(),
                diskinodes: c.diskinodes.clone(),
            };
            vz.create(veid, &opts)?;
            Ok(0)
        }
        Command::Destroy(v) => vz.destroy(id(&v.veid)?).map(|()| 0).map_err(Into::into),
        Command::Mount(v) => vz.mount(id(&v.veid)?).map(|()| 0).map_err(Into::into),
        Command::Umount(v) => vz.umount(id(&v.veid)?).map(|()| 0).map_err(Into::into),
        Command::Start(c) => vz.start(id(&c.veid)?).map(|()| 0).map_err(Into::into),
        Command::Stop(c) => vz.stop(id(&c.veid)?, c.fast).map(|()| 0).map_err(Into::into),
        Command::Restart(v) => vz.restart(id(&v.veid)?).map(|()| 0).map_err(Into::into),
        Command::Status(v) => {
            let veid = id(&v.veid)?;
            vz.repair_if_idle(veid);
            println!("{}", vz.status(veid).line(veid));
            Ok(0)
        }
        Command::Exec(c) => {
            let code = vz.exec(id(&c.veid)?, &c.command)?;
            Ok(if code == 0 { 0 } else { exit::COMMAND_EXECUTION_ERROR })
        }
        Command::Exec2(c) => Ok(vz.exec(id(&c.veid)?, &c.command)?),
        Command::Enter(c) => Ok(vz.enter(id(&c.veid)?, c.exec.as_deref())?),
        Command::Runscript(c) => Ok(vz.runscript(id(&c.veid)?, &c.script)?),
        Command::Set(c) => {
            let veid = id(&c.veid)?;
            let opts = SetOpts {
                hostname: c.hostname.clone(),
                name: c.name.clone(),
                description: c.description.clone(),
                onboot: c.onboot.clone(),
                ubc: c.ubc.0.clone(),
                ram: c.ram.clone(),
                swap: c.swap.clone(),
                vm_overcommit: c.vm_overcommit.clone(),
                ipadd: c.ipadd.clone(),
                ipdel: c.ipdel.clone(),
                nameserver: c.nameserver.clone(),
                searchdomain: c.searchdomain.clone(),
                netfilter: c.netfilter.clone(),
                netif_add: c.netif_add.clone(),
                netif_del: c.netif_del.clone(),
                rate: c.rate.clone(),
                cpuunits: c.cpuunits.clone(),
                cpulimit: c.cpulimit.clone(),
                cpus: c.cpus.clone(),
                cpumask: c.cpumask.clone(),
                ioprio: c.ioprio.clone(),
                iolimit: c.iolimit.clone(),
                iopslimit: c.iopslimit.clone(),
                diskspace: c.diskspace.clone(),
                diskinodes: c.diskinodes.clone(),
                quotaugidlimit: c.quotaugidlimit.clone(),
            };
            if opts.is_empty() {
                return Err(
                    vz::VeError::BadValue { key: "set", value: String::new(), why: "no parameter given" }.into()
                );
            }
            vz.set(veid, &opts, c.save)?;
            Ok(0)
        }
        Command::Iosched(c) => {
            let disk = vz::io::Disk::by_name(&c.device).map_err(vz::VeError::from)?;
            if let Some(s) = &c.scheduler {
                disk.set_scheduler(s).map_err(vz::VeError::from)?;
                tracing::info!(device = %disk.name, scheduler = %s, "I/O scheduler switched");
            }
            let (cur, offered) = disk.scheduler();
            let list: Vec<String> =
                offered.iter().map(|o| if *o == cur { format!("[{o}]") } else { o.clone() }).collect();
            let tuning: Vec<String> = disk.bfq_tuning().iter().map(|(k, v)| format!("{k} {v}")).collect();
            if cur == "bfq" && !tuning.is_empty() {
                println!("{} ({}): {} ({})", disk.name, disk.dev(), list.join(" "), tuning.join(", "));
            } else {
                println!("{} ({}): {}", disk.name, disk.dev(), list.join(" "));
            }
            Ok(0)
        }
        Command::Ubc(c) => {
            let veids = c.veids.iter().map(|v| id(v)).collect::<Result<Vec<_>, _>>()?;
            vz::bpf::check_can_load()?;
            let cg = vz.cg.as_ref();
            cg.create_parent()?;
            let bpf = Bpf::ensure(&vz.bpf_config())?;
            let mut report = Vec::new();
            for veid in veids {
                vz.repair_if_idle(veid);
                cg.ve_id(veid)?;
                report.push((veid, vz.ubc_rows(veid, Some(&bpf))?));
            }
            vz::cli::print_ubc(&report, c.problems, c.mechanism);
            Ok(0)
        }
    }
}
