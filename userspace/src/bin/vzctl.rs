//! vzctl: the admin's command for VEs.
use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use vz::{
    config::{self, Paths},
    exit, Bpf, Error, Vz,
};

#[derive(Parser, Debug)]
#[command(name = "vzctl", version, about = "Manage OpenVZ-style Virtual Environments on a stock kernel")]
struct Cli {
    /// Say each step vzctl takes (-v), or log everything it does (-vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Do not take the VE's lock (OpenVZ's; for a lock a stuck vzctl holds: nothing then
    /// keeps two commands on the VE apart).
    #[arg(long, global = true)]
    skiplock: bool,
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
    /// Run a program in a running VE with these arguments, no shell between; exit with its
    /// exit code.
    Exec3(ExecCmd),
    /// An interactive shell in a running VE, on a terminal of the VE's own.
    Enter(EnterCmd),
    /// Attach to a running VE's console (its /dev/console and tty1); Esc then . detaches.
    Console(ConsoleCmd),
    /// Run a host script inside a VE (a stopped VE is mounted, not started).
    Runscript(RunscriptCmd),
    /// Change VE parameters: live on a running VE; --save also writes the config.
    Set(Box<SetCmd>),
    /// Checkpoint a running VE: freeze it, dump its whole state to one file (CRIU), stop it.
    #[command(alias = "suspend")]
    Chkpnt(ChkpntCmd),
    /// Restore a VE from its checkpoint: same processes and PIDs, files, addresses, TCP
    /// connections, limits and beancounters.
    #[command(alias = "resume")]
    Restore(RestoreCmd),
    /// Snapshot a ploop VE: its disk (copied while frozen), its config and, if it runs, its
    /// running state (a checkpoint; not with --skip-suspend).
    Snapshot(SnapshotCmd),
    /// Switch a VE to a snapshot: its disk and config become the snapshot's (what it had
    /// since is lost); it runs again only from the snapshot's running state.
    SnapshotSwitch(SnapshotSwitchCmd),
    /// Delete a snapshot (its children hang from its parent).
    SnapshotDelete(SnapshotIdCmd),
    /// Mount a snapshot's file system read-only at a directory.
    SnapshotMount(SnapshotMountCmd),
    /// Unmount a snapshot mounted with snapshot-mount.
    SnapshotUmount(SnapshotIdCmd),
    /// List a VE's snapshots.
    SnapshotList(SnapshotListCmd),
    /// Show a VE's beancounters in /proc/user_beancounters format.
    Ubc(UbcCmd),
    /// The node's events as JSON lines: VE start, stop, reboot, halt, beancounter limit
    /// hits (the last ones kept, EVENTS_LOG in vz.conf).
    Events(EventsCmd),
    /// Show or switch a disk's I/O scheduler. --ioprio needs bfq on the VE's disk; vzctl
    /// never switches a device unless told to here.
    Iosched(IoschedCmd),
    /// Internal (vzmigrate's destination side): check that a VE can come here and take
    /// its config from stdin.
    #[command(name = "__migrate-accept", hide = true)]
    MigrateAccept {
        veid: u32,
        #[arg(long)]
        online: bool,
    },
    /// Internal (vzmigrate's destination side): finish, undo or report a migration here.
    #[command(name = "__migrate-settle", hide = true)]
    MigrateSettle {
        veid: u32,
        #[arg(value_parser = ["finish", "abort", "status"])]
        how: String,
        #[arg(long)]
        keep_dst: bool,
    },
    /// Internal (vzmigrate's destination side): restore a VE from the dump on stdin.
    #[command(name = "__migrate-restore", hide = true)]
    MigrateRestore { veid: u32 },
    /// Internal (the vz.service unit): at boot load the programs and start ONBOOT VEs in
    /// BOOTORDER; at shutdown stop every running VE in reverse.
    #[command(name = "__node", hide = true)]
    Node {
        #[arg(value_parser = ["start", "stop"])]
        how: String,
    },
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
    veid: vz::ve::VeRef,
}

#[derive(Args, Debug)]
struct EventsCmd {
    /// Keep printing events as they come (until interrupted).
    #[arg(short = 'f', long)]
    follow: bool,
    /// How many of the last events to print first.
    #[arg(short = 'n', long, default_value_t = 20)]
    lines: usize,
    /// Stop following after this many seconds.
    #[arg(long, requires = "follow")]
    seconds: Option<u64>,
    /// Only these VEs' events.
    veids: Vec<vz::ve::VeRef>,
}

#[derive(Args, Debug)]
struct CreateCmd {
    /// VE id (an integer above 100).
    #[arg(value_parser = config::parse_veid)]
    veid: u32,
    #[command(flatten)]
    opts: vz::ve::CreateOpts,
}

#[derive(Args, Debug)]
struct StartCmd {
    veid: vz::ve::VeRef,
    /// Return once the VE has booted (systemd: `systemctl is-system-running` says running
    /// or degraded; other inits: after a second alive), at most 120 s; an init that dies
    /// meanwhile fails the start with its last words. Without it start returns once init
    /// runs.
    #[arg(long)]
    wait: bool,
    /// Start even a VE set --disabled yes.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct StopCmd {
    veid: vz::ve::VeRef,
    /// Kill at once, without asking init to halt.
    #[arg(long)]
    fast: bool,
}

#[derive(Args, Debug)]
struct ExecCmd {
    veid: vz::ve::VeRef,
    /// The command line; `-` alone: the commands are read from standard input.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
struct ChkpntCmd {
    veid: vz::ve::VeRef,
    /// The dump file (default: DUMPDIR/Dump.VEID, DUMPDIR from vz.conf, /vz/dump).
    #[arg(long, value_parser = vz::ve::arg::path("dumpfile"))]
    dumpfile: Option<PathBuf>,
    /// Step: only freeze the VE (its network cut).
    #[arg(long, group = "step")]
    suspend: bool,
    /// Step: dump a suspended VE; it stays suspended.
    #[arg(long, group = "step")]
    dump: bool,
    /// Step: kill a suspended, dumped VE.
    #[arg(long, group = "step")]
    kill: bool,
    /// Step: resume a suspended VE (the checkpoint is called off).
    #[arg(long, group = "step")]
    resume: bool,
}

#[derive(Args, Debug)]
struct RestoreCmd {
    veid: vz::ve::VeRef,
    /// The dump file (default: DUMPDIR/Dump.VEID).
    #[arg(long, value_parser = vz::ve::arg::path("dumpfile"))]
    dumpfile: Option<PathBuf>,
    /// Step: bring the processes back, suspended.
    #[arg(long, group = "step")]
    undump: bool,
    /// Step: let a VE restored with --undump run.
    #[arg(long, group = "step")]
    resume: bool,
}

#[derive(Args, Debug)]
struct SnapshotCmd {
    veid: vz::ve::VeRef,
    /// The snapshot's id (a UUID; made up if not given).
    #[arg(long)]
    id: Option<String>,
    /// A name, shown by snapshot-list.
    #[arg(long, default_value = "")]
    name: String,
    /// A description.
    #[arg(long, default_value = "")]
    description: String,
    /// Do not checkpoint a running VE: disk and config only (it is frozen while copied).
    #[arg(long)]
    skip_suspend: bool,
    /// Do not keep the VE's config with the snapshot.
    #[arg(long)]
    skip_config: bool,
}

#[derive(Args, Debug)]
struct SnapshotSwitchCmd {
    veid: vz::ve::VeRef,
    /// The snapshot's id.
    #[arg(long, required = true)]
    id: String,
    /// Leave the VE stopped even if the snapshot has its running state.
    #[arg(long, conflicts_with = "must_resume")]
    skip_resume: bool,
    /// Fail unless the snapshot has the VE's running state.
    #[arg(long)]
    must_resume: bool,
    /// Keep the VE's present config.
    #[arg(long)]
    skip_config: bool,
}

#[derive(Args, Debug)]
struct SnapshotIdCmd {
    veid: vz::ve::VeRef,
    /// The snapshot's id.
    #[arg(long, required = true)]
    id: String,
}

#[derive(Args, Debug)]
struct SnapshotMountCmd {
    veid: vz::ve::VeRef,
    /// The snapshot's id.
    #[arg(long, required = true)]
    id: String,
    /// An existing directory to mount it at.
    #[arg(long, required = true)]
    target: PathBuf,
}

#[derive(Args, Debug)]
struct SnapshotListCmd {
    veid: vz::ve::VeRef,
    /// No header line.
    #[arg(short = 'H', long = "no-header")]
    no_header: bool,
    /// Fields to print, comma-separated (-L lists them).
    #[arg(short = 'o', long = "output")]
    output: Option<String>,
    /// Only this snapshot and its ancestors.
    #[arg(long, alias = "uuid")]
    id: Option<String>,
    /// List the field names.
    #[arg(short = 'L', long)]
    list: bool,
}

#[derive(Args, Debug)]
struct EnterCmd {
    veid: vz::ve::VeRef,
    /// A command typed into the shell on entering.
    #[arg(long)]
    exec: Option<String>,
}

#[derive(Args, Debug)]
struct ConsoleCmd {
    veid: vz::ve::VeRef,
    /// The tty (1, the console, is the one kept).
    tty: Option<String>,
}

#[derive(Args, Debug)]
struct RunscriptCmd {
    veid: vz::ve::VeRef,
    script: PathBuf,
}

#[derive(Args, Debug)]
struct SetCmd {
    veid: vz::ve::VeRef,
    #[command(flatten)]
    opts: vz::ve::SetOpts,
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
    veids: Vec<vz::ve::VeRef>,
    /// Quiet: only rows that failed or are within 10 % of their barrier (as vzubc -q).
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Color: rows that failed in red, rows within 10 % of their barrier in yellow.
    #[arg(short = 'c', long = "color")]
    color: bool,
    /// Add a column naming what counts and refuses each row.
    #[arg(short = 'm', long)]
    mechanism: bool,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("__ve-init") {
        vz::ns::stage1_main(&argv[2..]);
    }
    if argv.get(1).map(String::as_str) == Some("__console") {
        vz::console::keeper_main(&argv[2..]);
    }
    if argv.get(1).map(String::as_str) == Some("__ve-restore") {
        vz::ns::restore_stage_main(&argv[2..]);
    }
    let cli: Cli = match vz::cli::parse("vzctl") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let level = match cli.verbose {
        // What the verbs say reaches the admin on their own lines (`report`), not twice;
        // -v adds the steps they take, -vv the log.
        0 | 1 => "warn,vz::kernel=info,vz::report=off",
        _ => "debug",
    };
    vz::report::set_verbose(cli.verbose == 1);
    vz::log::init("vzctl", level);
    let euid = vz::sys::proc::euid();
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
    let mut vz = Vz::new(Paths::load()?)?;
    vz.skip_lock = cli.skiplock;
    let vz = vz;
    let id = |r: &vz::ve::VeRef| vz.resolve(r);
    match &cli.cmd {
        Command::VeInit { .. } => Ok(exit::INVALID_PARAMETER_SYNTAX),
        Command::MigrateAccept { veid, online } => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::Read::take(std::io::stdin(), 1 << 20), &mut text)
                .map_err(|source| vz::config::ConfigError::Io { op: "read", path: "<stdin>".into(), source })?;
            print!("{}", vz.migrate_accept(*veid, *online, &text)?);
            Ok(0)
        }
        Command::Node { how } => {
            if how == "start" {
                vz.node_start()?;
            } else {
                vz.node_stop()?;
            }
            Ok(0)
        }
        Command::MigrateRestore { veid } => {
            vz.migrate_restore(*veid)?;
            Ok(0)
        }
        Command::MigrateSettle { veid, how, keep_dst } => {
            use vz::ve::Settle;
            let how = match how.as_str() {
                "finish" => Settle::Finish,
                "abort" => Settle::Abort { keep: *keep_dst },
                _ => Settle::Status,
            };
            print!("{}", vz.migrate_settle(*veid, how)?);
            Ok(0)
        }
        Command::Create(c) => {
            vz.create(c.veid, &c.opts)?;
            Ok(0)
        }
        Command::Destroy(v) => vz.destroy(id(&v.veid)?).map(|()| 0).map_err(Into::into),
        Command::Mount(v) => vz.mount(id(&v.veid)?).map(|()| 0).map_err(Into::into),
        Command::Umount(v) => vz.umount(id(&v.veid)?).map(|()| 0).map_err(Into::into),
        Command::Start(c) => vz.start_waiting(id(&c.veid)?, c.force, c.wait).map(|()| 0).map_err(Into::into),
        Command::Stop(c) => vz.stop(id(&c.veid)?, c.fast).map(|()| 0).map_err(Into::into),
        Command::Restart(v) => vz.restart(id(&v.veid)?).map(|()| 0).map_err(Into::into),
        Command::Events(e) => {
            // A VE destroyed since keeps its events: a number is taken as it is.
            let veids: Vec<u32> = e
                .veids
                .iter()
                .map(|r| match r {
                    vz::ve::VeRef::Id(n) => Ok(*n),
                    named => vz.resolve(named),
                })
                .collect::<Result<_, _>>()?;
            let log = &vz.paths.events_log;
            let io = |source| vz::config::ConfigError::Io { op: "read", path: log.clone(), source };
            for l in vz::events::tail(log, e.lines, &veids).map_err(io)? {
                println!("{l}");
            }
            if e.follow {
                let until = e.seconds.map(|s| std::time::Instant::now() + std::time::Duration::from_secs(s));
                vz::events::follow(log, &veids, until, |l| {
                    use std::io::Write as _;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{l}").and_then(|()| out.flush()).is_ok()
                })
                .map_err(io)?;
            }
            Ok(0)
        }
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
        Command::Exec3(c) => Ok(vz.exec3(id(&c.veid)?, &c.command)?),
        Command::Enter(c) => Ok(vz.enter(id(&c.veid)?, c.exec.as_deref())?),
        Command::Console(c) => {
            let veid = id(&c.veid)?;
            if !vz.is_running(veid) {
                return Err(vz::VeError::NotRunning(veid).into());
            }
            vz::console::attach(&vz.paths.lock_dir, veid, c.tty.as_deref()).map_err(vz::VeError::from)?;
            Ok(0)
        }
        Command::Runscript(c) => Ok(vz.runscript(id(&c.veid)?, &c.script)?),
        Command::Chkpnt(c) => {
            use vz::ve::ChkpntStep as S;
            let step = match (c.suspend, c.dump, c.kill, c.resume) {
                (true, ..) => S::Suspend,
                (_, true, ..) => S::Dump,
                (_, _, true, _) => S::Kill,
                (.., true) => S::Resume,
                _ => S::All,
            };
            vz.chkpnt(id(&c.veid)?, c.dumpfile.as_deref(), step).map(|_| 0).map_err(Into::into)
        }
        Command::Restore(c) => {
            use vz::ve::RestoreStep as S;
            let step = if c.undump {
                S::Undump
            } else if c.resume {
                S::Resume
            } else {
                S::All
            };
            vz.restore(id(&c.veid)?, c.dumpfile.as_deref(), step).map(|()| 0).map_err(Into::into)
        }
        Command::Snapshot(c) => {
            let o = vz::ve::SnapshotOpts {
                id: c.id.clone(),
                name: c.name.clone(),
                desc: c.description.clone(),
                skip_suspend: c.skip_suspend,
                skip_config: c.skip_config,
            };
            vz.snapshot(id(&c.veid)?, &o).map(|_| 0).map_err(Into::into)
        }
        Command::SnapshotSwitch(c) => {
            use vz::ve::Resume;
            let resume = match (c.skip_resume, c.must_resume) {
                (true, _) => Resume::Skip,
                (_, true) => Resume::Must,
                _ => Resume::IfAny,
            };
            vz.snapshot_switch(id(&c.veid)?, &c.id, resume, c.skip_config).map(|()| 0).map_err(Into::into)
        }
        Command::SnapshotDelete(c) => vz.snapshot_delete(id(&c.veid)?, &c.id).map(|()| 0).map_err(Into::into),
        Command::SnapshotMount(c) => vz.snapshot_mount(id(&c.veid)?, &c.id, &c.target).map(|()| 0).map_err(Into::into),
        Command::SnapshotUmount(c) => vz.snapshot_umount(id(&c.veid)?, &c.id).map(|()| 0).map_err(Into::into),
        Command::SnapshotList(c) => {
            if c.list {
                print!("{}", vz::ve::snapshot_field_names());
                return Ok(0);
            }
            print!("{}", vz.snapshot_list(id(&c.veid)?, c.id.as_deref(), c.output.as_deref(), c.no_header)?);
            Ok(0)
        }
        Command::Set(c) => {
            let veid = id(&c.veid)?;
            let opts = &c.opts;
            if opts.is_empty() {
                return Err(
                    vz::VeError::BadValue { key: "set", value: String::new(), why: "no parameter given" }.into()
                );
            }
            vz.set(veid, opts, c.save)?;
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
            let veids = c.veids.iter().map(id).collect::<Result<Vec<_>, _>>()?;
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
            vz::cli::print_ubc(&report, vz::cli::UbcView { quiet: c.quiet, color: c.color, mechanism: c.mechanism });
            Ok(0)
        }
    }
}
