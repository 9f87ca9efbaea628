//! vzeventd: follows beancounter limit hits and writes them to the log.
//!
//! Socket refusals stream from the kernel through the pinned `VZ_EVENTS_V1` ring buffer
//! (with the refused process); refusals by kernel controllers (numproc, physpages) are
//! seen as their failcnt rising. The programs' aya-log records are forwarded as well.
use std::{
    collections::HashMap,
    os::fd::AsFd as _,
    process::ExitCode,
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use clap::Parser;
use tracing::warn;
use vz::{config::Paths, ubc::Resource, Bpf, Vz};
use vz_common::{maps, UbcEvent};

#[derive(Parser, Debug)]
#[command(name = "vzeventd", version, about = "Log beancounter limit hits of running VEs")]
struct Cli {
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    seconds: Option<u64>,
}

fn main() -> ExitCode {
    let cli: Cli = match vz::cli::parse("vzeventd") {
        Ok(c) => c,
        Err(code) => return code,
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VZ_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vzeventd: {e}");
            ExitCode::from(1)
        }
    }
}

fn log_hit(veid: u32, r: &Resource, held: u64, barrier: u64, limit: u64, pid: Option<u32>, comm: &str) {
    tracing::warn!(
        target: "vz::ubc",
        veid,
        resource = r.name,
        held,
        barrier,
        limit,
        pid = pid.map_or("-".to_string(), |p| p.to_string()),
        comm,
        "limit hit"
    );
}

fn run(cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    let vz = Vz::new(Paths::load()?)?;
    let pin = vz.paths.bpf_root.join("maps").join(maps::EVENTS);
    let mut ring: RingBuf<MapData> = RingBuf::try_from(aya::maps::Map::RingBuf(MapData::from_pin(&pin)?))?;
    let mut bpf = Bpf::open_existing(&vz.paths.bpf_root).ok();
    // The programs' own aya-log records, too (target vz::kernel).
    if let Some(b) = bpf.as_mut() {
        if let Err(e) = b.follow_kernel_log() {
            warn!("kernel log not followed: {e}");
        }
    }
    eprintln!("vzeventd: following {}", pin.display());
    let end = cli.seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let mut ids: HashMap<u64, u32> = HashMap::new();
    let mut seen: HashMap<(u32, u32), u64> = HashMap::new();
    let mut last_scan = Instant::now() - Duration::from_secs(1);
    loop {
        if end.is_some_and(|e| Instant::now() > e) {
            return Ok(());
        }
        let _ = vz::sys::fd::wait_readable(ring.as_fd(), Duration::from_millis(200));
        if last_scan.elapsed() >= Duration::from_millis(200) {
            last_scan = Instant::now();
            ids.clear();
            for veid in vz.veids() {
                if let Ok(id) = vz.cg.ve_id(veid) {
                    ids.insert(id, veid);
                    // Controller refusals: failcnt rising since the last look.
                    if let Ok(rows) = vz.ubc_rows(veid, bpf.as_ref()) {
                        for row in rows.iter().filter(|r| r.mechanism != vz::ubc::Mechanism::Bpf) {
                            let r = row.row;
                            let prev = seen.insert((veid, r.resource.id), r.usage.failcnt).unwrap_or(0);
                            if r.usage.failcnt > prev {
                                log_hit(veid, r.resource, r.usage.held, r.limit.barrier, r.limit.limit, None, "-");
                            }
                        }
                    }
                }
            }
        }
        while let Some(item) = ring.next() {
            let Some(e) = vz::sys::read_pod::<UbcEvent>(&item) else { continue };
            let Some(r) = Resource::by_id(e.res) else { continue };
            let comm = String::from_utf8_lossy(e.comm.split(|b| *b == 0).next().unwrap_or(&[])).into_owned();
            match ids.get(&e.ve) {
                Some(veid) => log_hit(*veid, r, e.held, e.barrier, e.limit, Some(e.pid), &comm),
                None => warn!(target: "vz::ubc", cgroup = e.ve, resource = r.name, "limit hit in an unknown cgroup"),
            }
        }
    }
}
