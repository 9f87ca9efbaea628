//! vzeventd: the node's event daemon. One thread, woken only by the kernel:
//! - the `VZ_EVENTS_V1` ring buffer: socket refusals (with the refused process) and VE
//!   inits exiting (`vz_exit`: a reboot inside a VE starts it again, see `exits`);
//! - inotify on each running VE's controller event files (cgroup2's pids.events and
//!   memory.events): controller refusals (numproc, physpages) as their failcnt rises. The
//!   v1 pids and memory controllers (hybrid hosts like this one) send no notice: there,
//!   and only there, those VEs' failcnt files are read every `V1_POLL` (one small read
//!   per file, no iterator, no namespace entered);
//! - inotify on the event log, to learn of VEs started and stopped;
//! - the metrics listener: each scrape reads every VE once, as `vzlist -o` would, and also
//!   reports failcnts risen where the kernel gives no notice (memcg v1).
//!
//! On cgroup2 nothing runs on a timer: with no event and no scrape it costs nothing,
//! however many VEs run.
pub mod exits;
pub mod http;
pub mod limiter;
pub mod walks;

use std::{
    collections::HashMap,
    fs,
    io::{self, Read as _, Seek as _},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use tracing::{debug, info, warn};
use vz_common::{maps, UbcEvent, EVENT_VE_EXIT};

use self::exits::Exit;
use crate::{bpf::Bpf, lock::VeLock, ubc::Resource, Vz};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("events ring {path} unreadable (are the programs loaded? `vzctl start` or `vzctl __node start` loads them): {why}")]
    Ring { path: PathBuf, why: String },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// How long a vzctl vzeventd runs (restart, stop) may take before it is killed.
const VZCTL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long an exited init's VE may take to lose its last processes.
const SETTLE_WAIT: Duration = Duration::from_secs(10);
/// How often failcnt files are read where the controller sends no notice (cgroup v1).
const V1_POLL: Duration = Duration::from_secs(5);
/// How long a scraper may take to send its request and to take the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Options {
    /// host:port for metrics; None: no listener.
    pub listen: Option<String>,
    /// Stop after this long.
    pub seconds: Option<u64>,
    /// The vzctl to run for reboots and halts.
    pub vzctl: PathBuf,
    /// How old a scrape's walked rows may be (`walks`).
    pub walk_every: Duration,
}

struct State {
    vz: Vz,
    opts: Options,
    own_level: u32,
    /// Last failcnt seen of each controller-kept row: (veid, resource id).
    seen: HashMap<(u32, u32), u64>,
    /// inotify watch -> VE, and each watched VE's watches.
    watches: HashMap<WatchDescriptor, u32>,
    watched: HashMap<u32, Vec<WatchDescriptor>>,
    /// v1 failcnt files of each running VE, with what they held at the last read.
    polled: HashMap<u32, Vec<(PathBuf, String)>>,
    log_watch: Option<WatchDescriptor>,
    /// Where reading the event log got to: (inode, offset).
    log_pos: (u64, u64),
    /// VE cgroup id -> VEID, as the programs' table gave them.
    ids: HashMap<u64, u32>,
    limiter: limiter::Limiter,
    reboots: exits::RebootGuard,
    walks: walks::Walks,
}

pub fn run(vz: Vz, opts: Options) -> Result<(), DaemonError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    rt.block_on(serve(vz, opts))
}

async fn serve(vz: Vz, opts: Options) -> Result<(), DaemonError> {
    let pin = vz.paths.bpf_root.join("maps").join(maps::EVENTS);
    let ring_err = |why: String| DaemonError::Ring { path: pin.clone(), why };
    let ring = MapData::from_pin(&pin).map_err(|e| ring_err(e.to_string()))?;
    let ring: RingBuf<MapData> =
        RingBuf::try_from(aya::maps::Map::RingBuf(ring)).map_err(|e| ring_err(e.to_string()))?;
    let mut ring = crate::sys::fd::async_fd(ring)?;
    let listener = match &opts.listen {
        Some(addr) => {
            Some(TcpListener::bind(addr).await.map_err(|source| DaemonError::Bind { addr: addr.clone(), source })?)
        }
        None => None,
    };
    let ino = crate::sys::fd::async_fd(
        Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(io::Error::from)?,
    )?;
    // The programs' own aya-log records, too (target vz::kernel).
    let mut bpf = Bpf::open_existing(&vz.paths.bpf_root).ok();
    if let Some(b) = bpf.as_mut() {
        if let Err(e) = b.follow_kernel_log() {
            warn!("kernel log not followed: {e}");
        }
    }
    let own_level = exits::own_level(&fs::read_to_string("/proc/self/status").unwrap_or_default());
    let end = opts.seconds.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut st = State {
        vz,
        own_level,
        seen: HashMap::new(),
        watches: HashMap::new(),
        watched: HashMap::new(),
        polled: HashMap::new(),
        log_watch: None,
        log_pos: (0, 0),
        ids: HashMap::new(),
        limiter: limiter::Limiter::default(),
        reboots: exits::RebootGuard::default(),
        walks: walks::Walks::new(opts.walk_every),
        opts,
    };
    st.watch_log(&ino.get_ref().0);
    st.sync(&ino.get_ref().0);
    match listener.as_ref().and_then(|l| l.local_addr().ok()) {
        Some(a) => eprintln!("vzeventd: following {}, metrics on http://{a}/metrics", pin.display()),
        None => eprintln!("vzeventd: following {}", pin.display()),
    }
    let mut poll = tokio::time::interval(V1_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = poll.tick(), if !st.polled.is_empty() => st.poll_v1(),
            () = async { tokio::time::sleep_until(end.unwrap_or_else(tokio::time::Instant::now)).await }, if end.is_some() => return Ok(()),
            acc = async {
                match listener.as_ref() {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            }, if listener.is_some() => {
                match acc {
                    Ok((sock, _)) => st.answer(sock).await,
                    Err(e) => warn!("accept: {e}"),
                }
            }
            g = ring.readable_mut() => {
                let mut g = g?;
                let mut got = Vec::new();
                while let Some(item) = g.get_inner_mut().0.next() {
                    if let Some(e) = crate::sys::read_pod::<UbcEvent>(&item) {
                        got.push(e);
                    }
                }
                g.clear_ready();
                for e in got {
                    st.on_ring(&e);
                }
            }
            g = ino.readable() => {
                let mut g = g?;
                match g.get_inner().0.read_events() {
                    Ok(evs) => {
                        let inotify = &g.get_inner().0;
                        st.on_inotify(inotify, evs.iter().map(|e| e.wd).collect());
                    }
                    Err(nix::errno::Errno::EAGAIN) => g.clear_ready(),
                    Err(e) => return Err(io::Error::from(e).into()),
                }
            }
        }
    }
}

impl State {
    /// The VE a cgroup id belongs to, by the programs' own table.
    fn veid_of(&mut self, cgid: u64) -> Option<u32> {
        if let Some(v) = self.ids.get(&cgid) {
            return Some(*v);
        }
        let v = Bpf::open_existing(&self.vz.paths.bpf_root).ok()?.veid_of(cgid).ok().flatten()?;
        self.ids.insert(cgid, v);
        Some(v)
    }

    /// Records a limit hit, unless its VE and resource had one this second.
    fn limit_event(&mut self, veid: u32, res: &Resource, mut fields: Vec<(&str, crate::events::Val)>) {
        let Some(folded) = self.limiter.admit(veid, res.id, Instant::now()) else { return };
        fields.insert(0, ("resource", res.name.into()));
        if folded > 0 {
            fields.push(("folded", folded.into()));
        }
        self.vz.event(veid, "limit", &fields);
    }

    fn on_ring(&mut self, e: &UbcEvent) {
        let carried = (e.res == EVENT_VE_EXIT).then(|| exits::exit_veid(e)).flatten();
        let Some(veid) = carried.or_else(|| self.veid_of(e.ve)) else {
            debug!(cgroup = e.ve, "event of a cgroup that is no VE now");
            return;
        };
        let comm = String::from_utf8_lossy(e.comm.split(|b| *b == 0).next().unwrap_or(&[])).into_owned();
        if e.res == EVENT_VE_EXIT {
            if exits::is_ve_init(e, self.own_level) {
                self.on_exit(veid, e, comm);
            }
            return;
        }
        let Some(r) = Resource::by_id(e.res) else { return };
        self.limit_event(
            veid,
            r,
            vec![
                ("held", e.held.into()),
                ("barrier", e.barrier.into()),
                ("limit", e.limit.into()),
                ("pid", u64::from(e.pid).into()),
                ("comm", comm.into()),
            ],
        );
    }

    fn on_exit(&mut self, veid: u32, e: &UbcEvent, comm: String) {
        let exit = Exit::of(e);
        let dir = self.vz.paths.lock_dir.clone();
        let busy = matches!(VeLock::take_within(&dir, veid, Duration::ZERO), Ok(None));
        let looping = exit == Exit::Reboot && !self.reboots.allow(veid, Instant::now());
        // A reboot loop ends stopped: cleaned up as after a halt.
        let verb = if looping { "stop" } else { exit.verb() };
        let mut action = if busy {
            format!("after vzctl{} is done: vzctl {verb} if it left the VE mounted and down", holder(&self.vz, veid))
        } else {
            format!("vzctl {verb}")
        };
        if looping {
            action.push_str(&format!(
                " ({} reboots within {} s: left stopped)",
                exits::MAX_REBOOTS + 1,
                exits::REBOOT_WINDOW.as_secs()
            ));
        }
        let mut fields = vec![
            ("pid", u64::from(e.pid).into()),
            ("code", e.barrier.into()),
            ("comm", comm.into()),
            ("action", action.into()),
        ];
        if exit == Exit::Died {
            // What the init last wrote to its console: why a guest did not boot. (A reboot
            // or halt was asked for: the console is not read for those.)
            fields.push(("last_words", crate::console::last_words(&dir, veid, 4).join(" | ").into()));
        }
        self.vz.event(veid, exit.event(), &fields);
        let vzctl = self.opts.vzctl.clone();
        let wait = Duration::from_secs(self.vz.paths.lock_wait.into());
        std::thread::spawn(move || {
            // A vzctl at work (stop, chkpnt, set...) may have made the exit; what it leaves
            // decides: down and still mounted is a VE nobody finished.
            match VeLock::take_within(&dir, veid, wait) {
                Ok(Some(l)) => drop(l),
                _ => {
                    return warn!(
                        veid,
                        "the container's lock stayed busy {} s: its {} is left as it is",
                        wait.as_secs(),
                        exit.event()
                    )
                }
            }
            let line = settled_status(&vzctl, veid);
            if line.contains(" mounted ") && line.trim_end().ends_with("down") {
                run_bounded(&vzctl, verb, veid);
            } else {
                info!(veid, "{}: left as it is ({})", exit.event(), line.trim());
            }
        });
    }

    fn watch_log(&mut self, ino: &Inotify) {
        let log = self.vz.paths.events_log.clone();
        // The file must exist to be watched; an empty one is what a fresh node has.
        if let Some(d) = log.parent() {
            let _ = fs::create_dir_all(d);
        }
        let _ = fs::OpenOptions::new().create(true).append(true).open(&log);
        match ino.add_watch(&log, AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_MOVE_SELF) {
            Ok(w) => self.log_watch = Some(w),
            Err(e) => warn!("{} not watched: VEs started later are seen at the next scrape: {e}", log.display()),
        }
        self.log_pos = fs::metadata(&log).map_or((0, 0), |m| (m.ino(), m.len()));
    }

    /// New lines of the event log since the last look (across a rotation).
    fn new_log_lines(&mut self, ino: &Inotify) -> Vec<String> {
        let log = self.vz.paths.events_log.clone();
        let Ok(mut f) = fs::File::open(&log) else { return Vec::new() };
        let Ok(m) = f.metadata() else { return Vec::new() };
        if m.ino() != self.log_pos.0 {
            // Rotated: the lines moved with the old file are already read or lost to it.
            if let Some(w) = self.log_watch.take() {
                let _ = ino.rm_watch(w);
            }
            self.watch_log(ino);
            self.log_pos.1 = 0;
        }
        let mut text = String::new();
        if f.seek(io::SeekFrom::Start(self.log_pos.1)).is_ok() && f.read_to_string(&mut text).is_ok() {
            let whole = text.rfind('\n').map_or(0, |i| i + 1);
            self.log_pos.1 += whole as u64;
            text.truncate(whole);
        }
        text.lines().map(str::to_string).collect()
    }

    fn on_inotify(&mut self, ino: &Inotify, wds: Vec<WatchDescriptor>) {
        let mut resync = false;
        let mut check: Vec<u32> = Vec::new();
        for wd in wds {
            if Some(wd) == self.log_watch {
                let lines = self.new_log_lines(ino);
                resync |= lines.iter().any(|l| ["\"start\"", "\"stop\"", "\"restore\""].iter().any(|k| l.contains(k)));
            } else if let Some(v) = self.watches.get(&wd) {
                if !check.contains(v) {
                    check.push(*v);
                }
            }
        }
        for veid in check {
            self.check_failcnts(veid, None, true);
        }
        if resync {
            self.sync(ino);
        }
    }

    /// Reads the v1 failcnt files; a VE whose files changed has its failcnts compared.
    fn poll_v1(&mut self) {
        let mut changed = Vec::new();
        for (veid, files) in &mut self.polled {
            for (path, last) in files.iter_mut() {
                let now = fs::read_to_string(&*path).unwrap_or_default();
                if now != *last {
                    *last = now;
                    if !changed.contains(veid) {
                        changed.push(*veid);
                    }
                }
            }
        }
        for veid in changed {
            self.check_failcnts(veid, None, true);
        }
    }

    /// Watches the controller event files of every running VE, and drops the watches of
    /// VEs that stopped. Runs at start and when the log says a VE started or stopped.
    fn sync(&mut self, ino: &Inotify) {
        let running: Vec<u32> = self.vz.veids().into_iter().filter(|v| self.vz.is_running(*v)).collect();
        let gone: Vec<u32> = self.watched.keys().filter(|v| !running.contains(v)).copied().collect();
        for veid in gone {
            for w in self.watched.remove(&veid).unwrap_or_default() {
                self.watches.remove(&w);
                let _ = ino.rm_watch(w);
            }
            self.seen.retain(|(v, _), _| *v != veid);
        }
        self.polled.retain(|v, _| running.contains(v));
        self.limiter.retain(&running);
        // Cgroup ids of VEs that stopped are dead; a restarted VE has a new one.
        self.ids.retain(|_, v| running.contains(v));
        for veid in running {
            if self.watched.contains_key(&veid) {
                continue;
            }
            let (notify, poll) = controller_files(self.vz.cg.as_ref(), veid);
            if !poll.is_empty() && self.polled.is_empty() {
                info!(
                    "the v1 controllers here send no notice of refusals: failcnts read every {} s",
                    V1_POLL.as_secs()
                );
            }
            if !poll.is_empty() {
                self.polled.insert(
                    veid,
                    poll.into_iter().map(|p| (p.clone(), fs::read_to_string(&p).unwrap_or_default())).collect(),
                );
            }
            let mut ws = Vec::new();
            for f in notify {
                match ino.add_watch(&f, AddWatchFlags::IN_MODIFY) {
                    Ok(w) => {
                        self.watches.insert(w, veid);
                        ws.push(w);
                    }
                    Err(e) => warn!(veid, "{} not watched: {e}", f.display()),
                }
            }
            self.watched.insert(veid, ws);
            // Where the VE stands now is the baseline: only later refusals are events.
            self.check_failcnts(veid, None, false);
        }
    }

    /// Compares the failcnts of the VE's controller-kept rows with the last look and
    /// records a "limit" event for each that rose (when `report`).
    fn check_failcnts(&mut self, veid: u32, rec: Option<(vz_common::VeUsage, vz_common::VeLimits)>, report: bool) {
        // Usage from the controllers alone (no iterator, no namespace entered); limits from
        // the programs' map, which holds what `vzctl set` gave without --save too.
        let Some(rec) = rec.or_else(|| {
            let (usage, conf_lim) = self.vz.ubc_record(veid, None)?;
            let live = self
                .vz
                .cg
                .ve_id(veid)
                .ok()
                .and_then(|id| Bpf::open_existing(&self.vz.paths.bpf_root).ok()?.limits(id).ok());
            Some((usage, live.unwrap_or(conf_lim)))
        }) else {
            return;
        };
        for row in self.vz.rows_of(veid, None, rec) {
            if row.mechanism == crate::ubc::Mechanism::Bpf {
                continue;
            }
            let r = row.row;
            let prev = self.seen.insert((veid, r.resource.id), r.usage.failcnt);
            let risen = prev.map_or(r.usage.failcnt > 0, |p| r.usage.failcnt > p);
            if report && risen {
                self.limit_event(
                    veid,
                    r.resource,
                    vec![
                        ("held", r.usage.held.into()),
                        ("barrier", r.limit.barrier.into()),
                        ("limit", r.limit.limit.into()),
                        ("failcnt", r.usage.failcnt.into()),
                    ],
                );
            }
        }
    }

    async fn answer(&mut self, mut sock: TcpStream) {
        let mut head = Vec::new();
        let req = tokio::time::timeout(CLIENT_TIMEOUT, async {
            let mut buf = [0u8; 1024];
            loop {
                if let Some(r) = http::parse(&head) {
                    return Some(r);
                }
                if head.len() > 16 << 10 {
                    return Some(http::Request::Bad);
                }
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        let resp = match req {
            Ok(Some(http::Request::Metrics)) => {
                let t = Instant::now();
                let body = self.scrape();
                debug!("scrape: {} bytes in {:?}", body.len(), t.elapsed());
                http::response("200 OK", http::TEXT_FORMAT, &body)
            }
            Ok(Some(http::Request::Other(what))) => {
                http::response("404 Not Found", "text/plain", &format!("{what}: only GET /metrics is served\n"))
            }
            Ok(Some(http::Request::Bad)) => http::response("400 Bad Request", "text/plain", "bad request\n"),
            _ => return,
        };
        let _ = tokio::time::timeout(CLIENT_TIMEOUT, sock.write_all(&resp)).await;
    }

    /// Every VE, as vzlist reads it, rendered for Prometheus; the walked rows from a walk
    /// at most `walk_every` old (see `walks`).
    fn scrape(&mut self) -> String {
        let bpf = Bpf::open_existing(&self.vz.paths.bpf_root).ok();
        let mounts = crate::sys::mountinfo::LazyMountTable::default();
        let now = Instant::now();
        let due = self.walks.due(now);
        let (mut samples, mut walked, mut running) = (Vec::new(), Vec::new(), Vec::new());
        for veid in self.vz.veids() {
            let Ok(conf) = self.vz.conf(veid) else { continue };
            let walk = self.walks.walk(due, veid);
            let want = crate::list::collect::Want { walks: walk, ..crate::list::collect::Want::ALL };
            let mut row = crate::list::collect::row(&self.vz, bpf.as_ref(), &mounts, veid, conf, want);
            if let Some((usage, _)) = row.ubc.as_mut() {
                running.push(veid);
                if walk {
                    walked.push((veid, *usage, row.measured));
                } else {
                    self.walks.complete(veid, usage, &mut row.measured);
                }
            }
            if let Some(rec) = row.ubc.filter(|_| self.watched.contains_key(&veid)) {
                self.check_failcnts(veid, Some(rec), true);
            }
            let cpu_ns = row.status.running.then(|| crate::cgroup::cpu_usage_ns(self.vz.cg.as_ref(), veid)).flatten();
            samples.push(crate::metrics::Sample { row, cpu_ns });
        }
        self.walks.done(due, now, walked, &running);
        crate::metrics::render(&samples)
    }
}

fn holder(vz: &Vz, veid: u32) -> String {
    VeLock::holder(&vz.paths.lock_dir, veid).map(|p| format!(" pid {p}")).unwrap_or_default()
}

/// Runs `vzctl VERB VEID`, bounded, its outcome logged.
/// `vzctl status` once the VE's other processes are gone too: the exit is seen as init
/// starts to exit, while the kernel is still killing the rest of its pid namespace.
fn settled_status(vzctl: &Path, veid: u32) -> String {
    let end = Instant::now() + SETTLE_WAIT;
    loop {
        let status = Command::new(vzctl).args(["status", &veid.to_string()]).stdin(Stdio::null()).output();
        let line = status.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        // Still running after the wait: something (a vzctl at work) started it again.
        if !line.trim_end().ends_with("running") || Instant::now() >= end {
            return line;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_bounded(vzctl: &Path, verb: &str, veid: u32) {
    let mut cmd = Command::new(vzctl);
    cmd.args([verb, &veid.to_string()]);
    match crate::ve::run::run_within(cmd, crate::ve::run::Feed::Null, VZCTL_TIMEOUT) {
        Ok(Some(done)) if done.status.success() => info!(veid, "vzctl {verb} {veid}: done"),
        Ok(Some(done)) => info!(veid, "vzctl {verb} {veid}: {}: {}", done.status, done.stderr.trim()),
        Ok(None) => warn!(veid, "vzctl {verb} {veid} killed after {} s", VZCTL_TIMEOUT.as_secs()),
        Err(e) => warn!(veid, "cannot run {} {verb}: {e}", vzctl.display()),
    }
}

/// A VE's controller files that change on a refusal: (watched, read on a timer). cgroup2
/// notifies on pids.events and memory.events; v1 does not.
fn controller_files(cg: &dyn crate::cgroup::Cgroups, veid: u32) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let on_v1 = |c: &str| cg.v1().iter().any(|h| h.controllers.split(',').any(|x| x == c));
    let (mut notify, mut poll) = (Vec::new(), Vec::new());
    if let Some(d) = cg.controller_dir(veid, "pids") {
        if on_v1("pids") { &mut poll } else { &mut notify }.push(d.join("pids.events"));
    }
    if let Some(d) = cg.controller_dir(veid, "memory") {
        if on_v1("memory") {
            poll.extend([d.join("memory.failcnt"), d.join("memory.memsw.failcnt")]);
        } else {
            notify.push(d.join("memory.events"));
        }
    }
    notify.retain(|p| p.exists());
    poll.retain(|p| p.exists());
    (notify, poll)
}

/// The vzctl beside this program, else the one on PATH.
pub fn vzctl_beside(exe: Option<&Path>) -> PathBuf {
    exe.and_then(Path::parent).map(|d| d.join("vzctl")).filter(|p| p.exists()).unwrap_or_else(|| "vzctl".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vzctl_is_found_beside_or_on_path() {
        assert_eq!(vzctl_beside(None), PathBuf::from("vzctl"));
        assert_eq!(vzctl_beside(Some(Path::new("/nonexistent/dir/vzeventd"))), PathBuf::from("vzctl"));
    }
}
