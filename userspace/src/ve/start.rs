//! `vzctl start`: cgroups, BPF records, PID 1 in new namespaces, venet, names files.
use super::*;

/// How long `start --wait` waits for a VE to boot.
const BOOT_WAIT: Duration = Duration::from_secs(120);

impl Vz {
    /// `vzctl start`: mount, cgroups, beancounters, then the template's init in new
    /// namespaces. Any failure undoes every step made; a vzctl killed half-way leaves an
    /// intent the next command finds, and it stops what was started.
    pub fn start(&self, veid: u32) -> Result<(), VeError> {
        self.start_forced(veid, false)
    }

    /// `vzctl start [--force]`: `force` starts a VE even when it is DISABLED.
    pub fn start_forced(&self, veid: u32, force: bool) -> Result<(), VeError> {
        self.start_waiting(veid, force, false)
    }

    /// `vzctl start [--force] [--wait]`: with `wait`, returns once the VE has booted
    /// (`wait_booted`).
    pub fn start_waiting(&self, veid: u32, force: bool, wait: bool) -> Result<(), VeError> {
        let ve = self.open(veid)?;
        if !force && ve.conf.get("DISABLED").map(str::trim) == Some("yes") {
            return Err(VeError::StartDisabled(veid));
        }
        self.start_held(&ve)?;
        self.event(veid, "start", &[]);
        if wait {
            self.wait_booted(&ve)?;
        }
        Ok(())
    }

    /// `start` of a VE whose lock the caller holds.
    pub(super) fn start_held(&self, ve: &Ve) -> Result<(), VeError> {
        let veid = ve.veid;
        self.mark("start:locked");
        if self.is_running(veid) {
            return Err(VeError::Running(veid));
        }
        // Every setting checked before anything is made.
        let mut cfg = VeConfig::parse(ve.conf.clone())?;
        crate::report::progress("Starting container...");
        let root = ve.root.clone();
        // Leftovers of a start or stop that was killed half-way.
        self.cleanup_runtime(veid, &root)?;
        self.mark("start:cleaned");
        let intent = Intent::begin(&self.paths.lock_dir, veid, "starting", &ConfFile::default())?;
        let mut undo = Undo::new(self);
        self.step("start:mount")?;
        if self.do_mount(veid, &cfg.file)? {
            undo.umount(root.clone());
        }
        crate::report::progress("Container is mounted");
        crate::report::detail(format!("Root: {} (private area {})", root.display(), ve.private.display()));
        let (uid, gid) = self.own_ids(veid, &mut cfg.file, &root)?;
        self.step("start:cgroup")?;
        // A cgroup made now has an id no map entry can carry yet.
        let fresh = !self.cg.ve_dir(veid).exists();
        let created = self.cg.create_ve(veid);
        undo.cgroup(veid);
        let cgid = created?;
        crate::report::detail(format!(
            "Cgroups: {}",
            self.cg.ve_dirs(veid).iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" ")
        ));
        crate::report::detail(format!("Delegating the cgroup2 subtree to the container's root (host uid {uid})"));
        self.cg.delegate(veid, uid, gid)?;
        self.step("start:ubc")?;
        let full = cfg.limits;
        crate::report::detail(format!("Setting beancounters: {}", describe_limits(&full)));
        self.apply_ubc(veid, cgid, uid, &full)?;
        self.mark("start:cpu-io");
        let c = &cfg.cpu;
        crate::report::detail(format!(
            "Setting CPU units: {}{}{}",
            c.units.unwrap_or(crate::cpu::DEFAULT_UNITS),
            c.limit.filter(|l| *l > 0).map_or(String::new(), |l| format!(", CPU limit: {l} %")),
            c.mask.as_ref().map_or(String::new(), |m| format!(", CPU mask: {m}"))
        ));
        crate::cpu::apply(self.cg.as_ref(), veid, &cfg.cpu)?;
        self.apply_io(veid, cgid, &root, &cfg.io)?;
        undo.bpf(cgid, self.paths.bpf_root.clone());
        self.step("start:hostname")?;
        let hostname = self.hostname(veid, &cfg.file, &root);
        crate::report::detail(format!("Setting hostname: {hostname}"));
        if let Err(e) = self.write_resolver(&root, &cfg.file) {
            crate::report::warning(veid, format!("cannot write the container's /etc/resolv.conf: {e}"));
        }
        self.step("start:init")?;
        let mut spec = InitSpec {
            root: root.clone(),
            hostname,
            argv: vec!["/sbin/init".into()],
            uid_base: uid,
            gid_base: gid,
            relay: false,
            pty_max: None,
            shm_bytes: None,
            lxcfs: match crate::lxcfs::ensure(&self.paths) {
                Ok(dir) => dir,
                Err(e) => {
                    crate::report::warning(veid, format!("{e}"));
                    None
                }
            },
            cap_drop: 0,
            console: true,
            netfilter_off: cfg.nf_mode == Some(crate::netfilter::NfMode::Disabled),
        };
        self.mark("start:lxcfs");
        spec.cap_drop = crate::caps::drop_mask(&cfg.caps);
        for w in crate::ubc::init_spec(&full, &mut spec)? {
            crate::report::warning(veid, &w);
        }
        crate::report::detail(format!(
            "Starting init {} in new namespaces{}{}",
            spec.argv.join(" "),
            if spec.cap_drop == 0 { String::new() } else { format!(", capabilities dropped: {:#x}", spec.cap_drop) },
            if spec.netfilter_off { ", kept from netfilter (NETFILTER=disabled)" } else { "" }
        ));
        let started = ns::start_init(&spec, self.cg.as_ref(), veid, &|step| self.mark(step));
        undo.kill(veid);
        let mut started = started?;
        self.mark("start:init-runs");
        let mut keeper = None;
        if let Some(master) = started.console.take() {
            match crate::console::spawn_keeper(&self.paths.lock_dir, veid, started.pid, master) {
                Ok(k) => keeper = Some(k),
                Err(e) => crate::report::warning(
                    veid,
                    format!("the container's console is not kept (vzctl console will not attach): {e}"),
                ),
            }
        }
        // Init may die at any point from here (a guest that cannot boot): a step failing
        // on its namespaces then says so, with what init last wrote to its console.
        let alive = started.pidfd.take();
        let after = (|| -> Result<(), VeError> {
            crate::ubc::after_init(&crate::ubc::Target { cg: self.cg.as_ref(), veid, uid }, started.pid, &full)?;
            if cfg.file.get("IPTABLES").is_some_and(|v| !v.trim().is_empty()) {
                crate::report::warning(veid, format!("IPTABLES is not used: {}", super::opts::IPTABLES_WHY));
            }
            crate::netfilter::say_shortfall(veid, cfg.nf_mode);
            for w in super::conf::unused_keys(&cfg.file) {
                crate::report::warning(veid, w);
            }
            self.mark("start:devices");
            let devices = super::devices::DevSet::at_start(veid, &cfg);
            let none = Default::default();
            self.apply_devices(veid, started.pid, cgid, &cfg.file, if fresh { None } else { Some(&none) }, &devices)?;
            self.step("start:net")?;
            let ips = &cfg.ips;
            if !ips.is_empty() {
                crate::net::warn_if_not_forwarding(veid, ips);
            }
            // The pair, then the programs on its host end (with the VE's addresses, rules and
            // rate in their maps), then up: nothing passes unchecked or uncounted.
            let made = crate::net::create_pair(started.pid, cgid).map_err(VeError::from).and_then(|ifindex| {
                self.mark("start:pair");
                self.attach_net(veid, &cfg, cgid, ifindex, fresh)?;
                self.mark("start:net-programs");
                Ok(crate::net::bring_up(started.pid, cgid, ips)?)
            });
            self.mark("start:net-up");
            if let Err(e) = made {
                // A pair or shaper made before the failure would outlive the VE on the host.
                let _ = crate::net::teardown(cgid);
                return Err(e);
            }
            if !ips.is_empty() {
                crate::report::detail(format!(
                    "Adding IP address(es): {}",
                    ips.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ")
                ));
            }
            self.announce(veid, ips);
            self.mark("start:netifs");
            let netifs = &cfg.netifs;
            for (i, n) in netifs.iter().enumerate() {
                if let Err(e) = crate::net::add_netif(started.pid, n) {
                    let _ = crate::net::teardown(cgid);
                    for m in &netifs[..i] {
                        let _ = crate::net::del_netif(&m.host_ifname);
                    }
                    return Err(e.into());
                }
            }
            if let Err(e) = self.move_netdevs(veid, started.pid, &[], &cfg.netdevs) {
                let _ = crate::net::teardown(cgid);
                for m in netifs {
                    let _ = crate::net::del_netif(&m.host_ifname);
                }
                return Err(e);
            }
            Ok(())
        })();
        let died = self.init_died(veid, alive.as_ref(), keeper.as_ref());
        if let Some(e) = died {
            return Err(e);
        }
        after?;
        // What runs now, for `set` to change and roll back from.
        cfg.file.write_runtime(&self.live_path(veid))?;
        self.step("start:done")?;
        undo.commit();
        intent.done();
        info!(veid, init = started.pid, "container started");
        crate::report::progress("Container start in progress...");
        self.ve_action(veid, super::actions::Action::Start);
        Ok(())
    }

    /// Waits until a started VE has booted: a systemd init until `systemctl
    /// is-system-running` (asked inside, its answer read at most 64 bytes) says running or
    /// degraded; any other init until it has run a second. An init that dies meanwhile is
    /// a failed start, with its last words, and what it left is removed; a boot still going
    /// after `BOOT_WAIT` is an error that leaves the VE running.
    fn wait_booted(&self, ve: &Ve) -> Result<(), VeError> {
        let veid = ve.veid;
        let died = |alive: Option<&std::os::fd::OwnedFd>| -> Result<(), VeError> {
            let e = self.init_died(veid, alive, None).unwrap_or(VeError::InitDied { veid, words: String::new() });
            self.cleanup_runtime(veid, &ve.root)?;
            Err(e)
        };
        let Some(init) = ns::find_init(self.cg.as_ref(), veid) else { return died(None) };
        let alive = crate::sys::proc::pidfd_open(init).ok();
        let systemd = fs::read_link(format!("/proc/{init}/exe")).is_ok_and(|p| p.ends_with("systemd"));
        crate::report::progress("Waiting for the container to boot...");
        let (t0, mut said) = (Instant::now(), String::new());
        loop {
            if alive.as_ref().is_none_or(|a| super::exec::wait_fd(a, Duration::ZERO)) {
                return died(alive.as_ref());
            }
            if t0.elapsed() > BOOT_WAIT {
                return Err(VeError::Exec(format!(
                    "container {veid} did not finish booting within {} s (it is left running; systemd said {said:?})",
                    BOOT_WAIT.as_secs()
                )));
            }
            if !systemd && t0.elapsed() >= Duration::from_secs(1) {
                break;
            }
            if systemd {
                said = self.systemd_state(veid, init).unwrap_or_default();
                if said == "running" || said == "degraded" {
                    if said == "degraded" {
                        crate::report::warning(
                            veid,
                            "systemd in the container says it is degraded (systemctl --failed inside shows why)",
                        );
                    }
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        crate::report::progress("Container has booted");
        Ok(())
    }

    /// What `systemctl is-system-running` inside the VE prints (its first line, at most 64
    /// bytes, within 5 s; it is killed after that).
    fn systemd_state(&self, veid: u32, init: i32) -> Option<String> {
        let argv = ["systemctl".to_string(), "is-system-running".into()];
        let mut cmd = ns::command_in_ve(self.cg.as_ref(), veid, init, &argv, false).ok()?;
        // Pipes only: no host file reaches the VE's process. Input: at its end at once;
        // errors: nowhere (a write gets EPIPE).
        let (in_r, in_w) = crate::sys::fd::pipe().ok()?;
        let (out_r, out_w) = crate::sys::fd::pipe().ok()?;
        let (err_r, err_w) = crate::sys::fd::pipe().ok()?;
        drop((in_w, err_r));
        cmd.stdin(Stdio::from(in_r)).stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
        let mut child = cmd.spawn().ok()?;
        drop(cmd);
        let end = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 64 {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || !crate::sys::fd::wait_readable(out_r.as_fd(), left).unwrap_or(false) {
                break;
            }
            match crate::sys::fd::read(out_r.as_fd(), &mut buf[..64 - got.len()]) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        drop(out_r);
        let _ = child.kill();
        let _ = child.wait();
        Some(String::from_utf8_lossy(&got).lines().next().unwrap_or("").trim().to_string())
    }

    /// `Some` (the error to give) when the VE's init, whose pidfd is `alive`, has exited:
    /// with the last lines it wrote to its console, once its console keeper has read them.
    pub(super) fn init_died(
        &self,
        veid: u32,
        alive: Option<&std::os::fd::OwnedFd>,
        keeper: Option<&std::os::fd::OwnedFd>,
    ) -> Option<VeError> {
        let alive = alive?;
        if !super::exec::wait_fd(alive, Duration::ZERO) {
            return None;
        }
        // The keeper reads the console dry when init ends, then exits (and removes its
        // socket, which is what tells a later command, with no pidfd of it, that it has).
        let within = Duration::from_millis(500);
        match keeper {
            Some(k) => {
                super::exec::wait_fd(k, within);
            }
            None => {
                let (sock, end) = (crate::console::socket_path(&self.paths.lock_dir, veid), Instant::now() + within);
                while sock.exists() && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        let words = crate::console::last_words(&self.paths.lock_dir, veid, 4);
        info!(veid, "init exited while starting: {}", words.join(" | "));
        Some(VeError::InitDied { veid, words: words.join(" | ") })
    }

    /// Gives the venet programs a starting VE: its addresses (bind and anti-spoofing), rules
    /// and rate in their maps, and the programs on the pair's host end. Skipped where BPF
    /// is unavailable (reported with the beancounters; a rate limit is reported here).
    /// `fresh`: the VE's cgroup was just made (its id is in no map yet).
    pub(super) fn attach_net(
        &self,
        veid: u32,
        cfg: &VeConfig,
        cgid: u64,
        ifindex: u32,
        fresh: bool,
    ) -> Result<(), VeError> {
        let rate = cfg.rate;
        let Ok(mut bpf) = Bpf::open_existing(&self.paths.bpf_root) else {
            if rate.is_some() {
                crate::report::warning(
                    veid,
                    format!("BPF is unavailable: the rate limit of container {veid} is not enforced"),
                );
            }
            return Ok(());
        };
        // Its venet0's link-local address too: the one link-local source it may send from
        // beyond neighbour discovery.
        let mut own = cfg.ips.clone();
        own.push(crate::net::link_local(crate::net::ve_mac(cgid)));
        bpf.set_ve_addrs(cgid, &own, if fresh { Some(&[]) } else { None })?;
        bpf.set_net_rules(cgid, &cfg.rules)?;
        set_rate(&mut bpf, cgid, rate)?;
        Ok(bpf.attach_venet(&crate::net::host_ifname(cgid), cgid, ifindex)?)
    }

    /// Writes the VE's /etc/hostname and its /etc/hosts line for `hostname`, as the VE's
    /// root's files (see `inroot`: nothing the VE planted is followed or opened).
    pub(crate) fn write_names(&self, root: &Path, conf: &ConfFile, hostname: &str) -> io::Result<()> {
        let (uid, gid) = self.ve_ids(conf);
        let dir = inroot::host_dir(root)?;
        let previous = inroot::read_small(&dir, "etc/hostname", VE_FILE_MAX).ok().map(|s| s.trim().to_string());
        inroot::replace_file(&dir, "etc/hostname", format!("{hostname}\n").as_bytes(), 0o644, uid, gid)?;
        let old = inroot::read_small(&dir, "etc/hosts", VE_FILE_MAX).unwrap_or_default();
        let ip = conf_ips(conf).ok().and_then(|v| v.first().copied());
        let text = hosts_file(&old, previous.as_deref(), hostname, ip);
        inroot::replace_file(&dir, "etc/hosts", text.as_bytes(), 0o644, uid, gid)
    }

    /// Writes the VE's /etc/resolv.conf from NAMESERVER and SEARCHDOMAIN (when set).
    pub(crate) fn write_resolver(&self, root: &Path, conf: &ConfFile) -> io::Result<()> {
        let servers: Vec<&str> = conf.get("NAMESERVER").unwrap_or("").split_whitespace().collect();
        let search: Vec<&str> = conf.get("SEARCHDOMAIN").unwrap_or("").split_whitespace().collect();
        if servers.is_empty() && search.is_empty() {
            return Ok(());
        }
        let (uid, gid) = self.ve_ids(conf);
        let dir = inroot::host_dir(root)?;
        let old = inroot::read_small(&dir, "etc/resolv.conf", VE_FILE_MAX).unwrap_or_default();
        inroot::replace_file(&dir, "etc/resolv.conf", resolv_conf(&old, &search, &servers).as_bytes(), 0o644, uid, gid)
    }

    /// The VE's hostname: HOSTNAME from its config, else its /etc/hostname, else localhost.
    /// A configured name is also written to the VE's /etc/hostname.
    pub(super) fn hostname(&self, veid: u32, conf: &ConfFile, root: &Path) -> String {
        match conf.get("HOSTNAME") {
            Some(h) if valid_hostname(h) => {
                if let Err(e) = self.write_names(root, conf, h) {
                    crate::report::warning(
                        veid,
                        format!("cannot write the container's /etc/hostname or /etc/hosts: {e}"),
                    );
                }
                h.to_string()
            }
            _ => inroot::host_dir(root)
                .and_then(|d| inroot::read_small(&d, "etc/hostname", VE_FILE_MAX))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|h| valid_hostname(h))
                .unwrap_or_else(|| "localhost".into()),
        }
    }
}

/// The beancounters a VE is given, as `name barrier:limit` for each that is limited.
fn describe_limits(l: &VeLimits) -> String {
    let set: Vec<String> = crate::ubc::ALL
        .iter()
        .filter_map(|r| {
            let x = l.res[r.id as usize];
            (x.barrier != vz_common::UB_UNLIMITED || x.limit != vz_common::UB_UNLIMITED)
                .then(|| format!("{} {}:{}", r.name, x.barrier, x.limit))
        })
        .collect();
    if set.is_empty() {
        "none limited".into()
    } else {
        set.join(", ")
    }
}

/// /etc/hosts with the VE's own line: `IP fqdn short` (IP: its first address, else
/// 127.0.1.1), replacing any line that named the previous or the new host name; a
/// localhost line is kept or added.
pub fn hosts_file(old: &str, previous: Option<&str>, hostname: &str, ip: Option<std::net::IpAddr>) -> String {
    let short = hostname.split('.').next().unwrap_or(hostname);
    let named = |n: &str| {
        n == hostname || (n == short && short != "localhost") || Some(n) == previous.filter(|p| *p != "localhost")
    };
    let mut out = String::new();
    let mut localhost = false;
    for line in old.lines() {
        let names: Vec<&str> = line.split('#').next().unwrap_or("").split_whitespace().skip(1).collect();
        if names.iter().any(|n| named(n)) {
            continue;
        }
        localhost |= names.contains(&"localhost");
        out.push_str(line);
        out.push('\n');
    }
    if !localhost {
        out.insert_str(0, "127.0.0.1\tlocalhost\n");
    }
    let ip = ip.map_or_else(|| "127.0.1.1".to_string(), |i| i.to_string());
    if short == hostname {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    } else {
        out.push_str(&format!("{ip}\t{hostname} {short}\n"));
    }
    out
}

/// /etc/resolv.conf with the given search domains and name servers, other lines kept.
pub fn resolv_conf(old: &str, search: &[&str], servers: &[&str]) -> String {
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for l in old.lines() {
        let key = l.split_whitespace().next().unwrap_or("");
        let drop = (key == "nameserver" && !servers.is_empty())
            || ((key == "search" || key == "domain") && !search.is_empty());
        if !drop {
            out.push_str(l);
            out.push('\n');
        }
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out
}

#[cfg(test)]
mod name_file_tests {
    use super::{hosts_file, resolv_conf};

    #[test]
    fn hosts_gets_one_line_for_the_ve_and_keeps_the_rest() {
        let old = "127.0.0.1\tlocalhost\n10.0.0.5\told.example.com old\n::1 ip6-localhost\n";
        let ip = "10.77.0.1".parse().ok();
        assert_eq!(
            hosts_file(old, Some("old.example.com"), "ve1.example.com", ip),
            "127.0.0.1\tlocalhost\n::1 ip6-localhost\n10.77.0.1\tve1.example.com ve1\n"
        );
        // The previous name's line goes (also under a new name); no localhost line gets one.
        let again = hosts_file(&hosts_file("", None, "ve1.example.com", ip), Some("ve1.example.com"), "ve2", None);
        assert_eq!(again, "127.0.0.1\tlocalhost\n127.0.1.1\tve2\n");
    }

    #[test]
    fn resolv_conf_replaces_servers_and_search_only() {
        let old = "nameserver 8.8.8.8\noptions ndots:2\nsearch old.example\n";
        assert_eq!(
            resolv_conf(old, &["example.com"], &["10.0.0.1", "10.0.0.2"]),
            "search example.com\noptions ndots:2\nnameserver 10.0.0.1\nnameserver 10.0.0.2\n"
        );
        // Only servers given: the search line stays.
        assert_eq!(resolv_conf(old, &[], &["1.1.1.1"]), "options ndots:2\nsearch old.example\nnameserver 1.1.1.1\n");
    }
}
