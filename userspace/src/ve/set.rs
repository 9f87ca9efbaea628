//! `vzctl set`: every value checked before anything changes; on a running VE every change
//! applied with its way back, so a step that fails leaves the VE exactly as it was; then
//! the settings it runs with, and with `--save` its config, written in one piece each.
//!
//! A running VE's current settings are its live file (its config plus what earlier `set`s
//! without --save changed), so a live `--swap` builds on a live `--ram`, not on the config.
use std::net::IpAddr;

use tracing::warn;
use vz_common::{UbcLimit, VeLimits};

use crate::{
    bpf::Bpf,
    config::ConfFile,
    cpu::CpuSettings,
    io::IoSettings,
    net::NetIf,
    ns,
    ubc::Resource,
    ve::{DiskConf, Sel, SetOpts, VeConfig, VeError, Vz},
};

/// One undo step: what it restores, and how.
type Undo<'a> = (&'static str, Box<dyn FnOnce() -> Result<(), VeError> + 'a>);

/// Undo steps of the changes made so far, run newest first unless the set succeeds.
struct Rollback<'a> {
    steps: Vec<Undo<'a>>,
}

impl<'a> Rollback<'a> {
    fn push(&mut self, what: &'static str, f: impl FnOnce() -> Result<(), VeError> + 'a) {
        self.steps.push((what, Box::new(f)));
    }
    fn commit(mut self) {
        self.steps.clear();
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        for (what, f) in self.steps.drain(..).rev() {
            if let Err(e) = f() {
                crate::report::notice(format!("Warning: could not roll back {what}: {e}"));
            }
        }
    }
}

/// Beancounter changes: the full records before and after, and the rows given.
struct UbcPlan {
    old: VeLimits,
    new: VeLimits,
    /// (row, new limit, the admin's own spelling if given).
    rows: Vec<(&'static Resource, UbcLimit, Option<String>)>,
}

/// What a set changes, worked out and checked before anything is touched.
struct Plan {
    /// Config keys to write (None: remove), in the live file and, with --save, the config.
    keys: Vec<(String, Option<String>)>,
    cpu: Option<(CpuSettings, CpuSettings)>,
    io: Option<(IoSettings, IoSettings)>,
    disk: Option<(DiskConf, DiskConf)>,
    ubc: Option<UbcPlan>,
    add_ips: Vec<IpAddr>,
    del_ips: Vec<IpAddr>,
    hostname: Option<String>,
    resolver: bool,
    rules: Option<(vz_common::NetRules, vz_common::NetRules)>,
    rate: Option<(Option<u64>, Option<u64>)>,
    netif_new: Vec<NetIf>,
    netif_gone: Vec<NetIf>,
    devices: Option<(super::devices::DevSet, super::devices::DevSet)>,
    netdevs: Option<(Vec<String>, Vec<String>)>,
    /// The capabilities or NETFILTER a VE starts with change (said for a running VE: next start).
    caps_changed: bool,
    nf_changed: bool,
}

impl Plan {
    fn key(&mut self, k: &str, v: Option<String>) {
        self.keys.retain(|(x, _)| x != k);
        self.keys.push((k.to_string(), v));
    }
}

fn apply_keys(conf: &mut ConfFile, keys: &[(String, Option<String>)]) {
    for (k, v) in keys {
        match v {
            Some(v) => conf.set(k, v),
            None => conf.remove(k),
        }
    }
}

fn bad(key: &'static str, value: &str, why: &'static str) -> VeError {
    VeError::BadValue { key, value: value.to_string(), why }
}

impl Vz {
    /// `vzctl set`: changes apply to a running VE at once; `save` also writes the config.
    pub fn set(&self, veid: u32, opts: &SetOpts, save: bool) -> Result<(), VeError> {
        if opts.applyconfig.is_some() || opts.reset_ub {
            // The sample's settings first, then what the command line gave besides.
            if let Some(derived) = self.derived_opts(veid, opts)? {
                self.set(veid, &derived, save)?;
            }
            let rest = SetOpts { applyconfig: None, reset_ub: false, ..opts.clone() };
            return if rest.is_empty() { Ok(()) } else { self.set(veid, &rest, save) };
        }
        if let Some(up) = &opts.userpasswd {
            self.userpasswd(veid, up)?;
            let rest = SetOpts { userpasswd: None, ..opts.clone() };
            if rest.is_empty() {
                return Ok(());
            }
            return self.set(veid, &rest, save);
        }
        let ve = self.open(veid)?;
        let conf = ve.conf.clone();
        // Values this set replaces are not checked in the old settings: a bad one can be
        // mended with vzctl.
        let mut replaced = Vec::new();
        if opts.rate.is_some() {
            replaced.push("RATE");
        }
        if !opts.netfilter.is_empty() {
            replaced.push(crate::netfilter::FIREWALL_KEY);
        }
        let running = ns::find_init(self.cg.as_ref(), veid).and_then(|i| Some((i, self.cg.ve_id(veid).ok()?)));
        if running.is_none() && !save {
            // Checked first: nothing else to say about a VE this set cannot change.
            self.plan(veid, opts, &VeConfig::parse_except(conf, &replaced)?)?;
            return Err(VeError::NotRunning(veid));
        }
        let base = if running.is_some() { self.live_conf(veid)? } else { conf.clone() };
        let base = VeConfig::parse_except(base, &replaced)?;
        let plan = self.plan(veid, opts, &base)?;
        let mut rb = Rollback { steps: Vec::new() };
        if let Some((init, cgid)) = running {
            self.apply_live(veid, init, cgid, &base, &plan, opts, &mut rb)?;
            let mut live = base.file.clone();
            apply_keys(&mut live, &plan.keys);
            live.write_runtime(&self.live_path(veid))?;
            let old = base.file.clone();
            rb.push("the live settings file", move || Ok(old.write_runtime(&self.live_path(veid))?));
        } else if let Some((old, new)) = &plan.disk {
            // A stopped VE: only its image changes now.
            self.set_disk(veid, &base.file, new, opts)?;
            let (old, b) = (*old, base.file.clone());
            rb.push("disk limits", move || self.set_disk(veid, &b, &old, opts));
        }
        if let Some((_, new)) = &plan.cpu {
            crate::ve::print_cpu(new, opts);
        }
        if let Some((_, new)) = &plan.io {
            crate::ve::print_io(new, opts);
        }
        if save {
            let mut c = conf;
            apply_keys(&mut c, &plan.keys);
            c.write_atomic(&self.paths.ve_conf(veid))?;
            crate::report::progress(format!("Saved parameters for Container {veid}"));
        }
        rb.commit();
        crate::netfilter::say_shortfall(veid, opts.nf_mode);
        if (plan.caps_changed || plan.nf_changed) && running.is_some() && opts.setmode.as_deref() == Some("restart") {
            // Its lock is ours until `ve` goes.
            drop(ve);
            self.restart(veid)?;
        }
        Ok(())
    }

    /// Checks every value of `opts` against `base` (the VE's live settings, or its
    /// config) and works out what changes. Changes nothing.
    fn plan(&self, veid: u32, opts: &SetOpts, base: &VeConfig) -> Result<Plan, VeError> {
        let mut p = Plan {
            keys: Vec::new(),
            cpu: None,
            io: None,
            disk: None,
            ubc: None,
            add_ips: Vec::new(),
            del_ips: Vec::new(),
            hostname: None,
            resolver: false,
            rules: None,
            rate: None,
            netif_new: Vec::new(),
            netif_gone: Vec::new(),
            devices: None,
            netdevs: None,
            caps_changed: false,
            nf_changed: false,
        };
        if let Some(h) = &opts.hostname {
            p.hostname = Some(h.clone());
            p.key("HOSTNAME", Some(h.clone()));
        }
        if let Some(n) = &opts.name {
            self.check_name_free(n, veid)?;
            p.key("NAME", Some(n.clone()));
        }
        if let Some(d) = &opts.description {
            p.key("DESCRIPTION", Some(d.clone()));
        }
        if let Some(o) = opts.onboot {
            p.key("ONBOOT", Some(if o { "yes" } else { "no" }.into()));
        }
        if let Some(b) = opts.bootorder {
            p.key("BOOTORDER", Some(b.to_string()));
        }
        if let Some(d) = opts.disabled {
            p.key("DISABLED", Some(if d { "yes" } else { "no" }.into()));
        }
        if let Some(t) = opts.stop_timeout {
            p.key("STOP_TIMEOUT", Some(t.to_string()));
        }
        if !opts.nameserver.is_empty() {
            p.key("NAMESERVER", Some(opts.nameserver.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ")));
            p.resolver = true;
        }
        if !opts.searchdomain.is_empty() {
            p.key("SEARCHDOMAIN", Some(opts.searchdomain.join(" ")));
            p.resolver = true;
        }
        if let Some(r) = &opts.rate {
            p.rate = Some((base.rate, r.value));
            // Kept in the admin's own form (kbit or OpenVZ's dev:class:kbit).
            p.key("RATE", r.value.map(|_| r.text.clone()));
        }
        // CPU, I/O and disk: the settings after this set, from the current ones.
        if opts.cpuunits.is_some() || opts.cpulimit.is_some() || opts.cpus.is_some() || opts.cpumask.is_some() {
            let old = base.cpu.clone();
            let mut cpu = old.clone();
            if let Some(v) = opts.cpuunits {
                cpu.units = Some(v);
                p.key("CPUUNITS", cpu.units.map(|u| u.to_string()));
            }
            if let Some(v) = opts.cpulimit {
                cpu.limit = Some(v);
                p.key("CPULIMIT", cpu.limit.map(|u| u.to_string()));
            }
            if let Some(v) = opts.cpus {
                cpu.cpus = Some(v);
                p.key("CPUS", cpu.cpus.map(|u| u.to_string()));
            }
            if let Some(v) = &opts.cpumask {
                cpu.mask = v.0.clone();
                p.key("CPUMASK", Some(cpu.mask.clone().unwrap_or_else(|| "all".into())));
            }
            p.cpu = Some((old, cpu));
        }
        if opts.ioprio.is_some() || opts.iolimit.is_some() || opts.iopslimit.is_some() {
            let old = base.io;
            let mut ios = old;
            if let Some(v) = opts.ioprio {
                ios.prio = Some(v);
                p.key("IOPRIO", ios.prio.map(|v| v.to_string()));
            }
            if let Some(v) = opts.iolimit {
                ios.limit = Some(v);
                p.key("IOLIMIT", ios.limit.map(|v| v.to_string()));
            }
            if let Some(v) = opts.iopslimit {
                ios.iops = Some(v);
                p.key("IOPSLIMIT", ios.iops.map(|v| v.to_string()));
            }
            p.io = Some((old, ios));
        }
        if opts.diskspace.is_some() || opts.diskinodes.is_some() || opts.quotaugidlimit.is_some() {
            let old = base.disk;
            let mut d = old;
            if let Some(v) = &opts.diskspace {
                let l = v.value;
                d.space = Some(l);
                p.key("DISKSPACE", Some(format!("{}:{}", l.soft, l.hard)));
            }
            if let Some(v) = &opts.diskinodes {
                let l = v.value;
                d.inodes = Some(l);
                p.key("DISKINODES", Some(format!("{}:{}", l.soft, l.hard)));
            }
            if let Some(v) = opts.quotaugidlimit {
                d.ugid = v;
                p.key("QUOTAUGIDLIMIT", Some(d.ugid.to_string()));
            }
            p.disk = Some((old, d));
        }
        // Bridged interfaces: the list after this set; a new host-side name must be free on
        // the host and in every config.
        if !opts.netif_add.is_empty() || !opts.netif_del.is_empty() {
            let old = &base.netifs;
            let gone = |n: &NetIf| {
                opts.netif_del.iter().any(|d| match d {
                    Sel::All => true,
                    Sel::One(d) => *d == n.ifname,
                })
            };
            let mut list: Vec<NetIf> = old.iter().filter(|n| !gone(n)).cloned().collect();
            for d in &opts.netif_del {
                if let Sel::One(d) = d {
                    if !old.iter().any(|n| n.ifname == *d) {
                        return Err(bad("netif_del", d, "the container has no such interface"));
                    }
                }
            }
            for s in &opts.netif_add {
                let (n, spec) = (s.resolve(veid, list.len()), &s.text);
                let taken = list.iter().any(|o| o.ifname == n.ifname || o.host_ifname == n.host_ifname)
                    || self.netif_owner(&n.host_ifname, veid).is_some();
                if taken {
                    return Err(bad("netif_add", spec, "interface name already in use"));
                }
                if crate::net::link_exists(&n.host_ifname)? {
                    return Err(bad("netif_add", spec, "an interface of that host name exists on the host"));
                }
                if let Some(b) = &n.bridge {
                    if !crate::net::link_exists(b)? {
                        return Err(bad("netif_add", spec, "no such bridge on the host"));
                    }
                }
                list.push(n.clone());
                p.netif_new.push(n);
            }
            p.netif_gone = old.iter().filter(|o| !list.iter().any(|n| n.ifname == o.ifname)).cloned().collect();
            p.key("NETIF", Some(crate::net::format_netifs(&list)));
        }
        if !opts.netfilter.is_empty() {
            let all: Vec<vz_common::NetRule> = opts.netfilter.iter().flat_map(|l| l.0.iter().copied()).collect();
            let new = crate::netfilter::collect(&all)?;
            let old = base.rules;
            p.key(crate::netfilter::FIREWALL_KEY, Some(crate::netfilter::format_rules(&new)));
            p.rules = Some((old, new));
        }
        // Addresses: every one a VE may own and held by no other VE.
        let old_ips = &base.ips;
        p.add_ips = self.addable_ips(veid, &opts.ipadd)?;
        for a in &opts.ipdel {
            match a {
                Sel::All => p.del_ips.extend(old_ips.iter().copied()),
                Sel::One(ip) => p.del_ips.push(*ip),
            }
        }
        if !p.add_ips.is_empty() || !p.del_ips.is_empty() {
            let mut ips: Vec<IpAddr> = old_ips.iter().copied().filter(|ip| !p.del_ips.contains(ip)).collect();
            for ip in &p.add_ips {
                if !ips.contains(ip) {
                    ips.push(*ip);
                }
            }
            p.key("IP_ADDRESS", Some(ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(" ")));
        }
        if let Some((new, keys)) = self.plan_devices(opts, base)? {
            for (k, v) in keys {
                p.key(&k, v);
            }
            p.devices = Some((super::devices::DevSet::of(base), new));
        }
        if let Some(m) = opts.nf_mode {
            p.key("NETFILTER", Some(m.name().to_string()));
            p.nf_changed = base.nf_mode.unwrap_or(crate::netfilter::NfMode::Full) != m;
        }
        if !opts.capability.is_empty() {
            let caps = crate::caps::merge(&base.caps, &opts.capability);
            p.key("CAPABILITY", (!caps.is_empty()).then(|| crate::caps::format_caps(&caps)));
            p.caps_changed = crate::caps::drop_mask(&caps) != crate::caps::drop_mask(&base.caps);
        }
        if let Some(list) = self.plan_netdevs(veid, opts, &base.netdevs)? {
            p.key("NETDEV", (!list.is_empty()).then(|| list.join(" ")));
            p.netdevs = Some((base.netdevs.clone(), list));
        }
        self.plan_ubc(opts, base, &mut p)?;
        Ok(p)
    }

    /// Beancounters: rows given, VSwap derived from the current RAM and swap, and the full
    /// records before and after.
    fn plan_ubc(&self, opts: &SetOpts, base: &VeConfig, p: &mut Plan) -> Result<(), VeError> {
        let mut rows: Vec<(&'static Resource, UbcLimit, Option<String>)> = Vec::new();
        for (r, v) in &opts.ubc.0 {
            rows.retain(|(x, _, _)| x.id != r.id);
            rows.push((r, v.value, Some(v.text.clone())));
        }
        let old = base.limits;
        if opts.ram.is_some() || opts.swap.is_some() || opts.vm_overcommit.is_some() {
            use vz_common::res::{PHYSPAGES, SWAPPAGES};
            let ram = opts.ram.unwrap_or(old.res[PHYSPAGES as usize].limit);
            let swap = match opts.swap {
                Some(v) => v,
                None => {
                    let s = old.res[SWAPPAGES as usize].limit;
                    // No swap row at all (unlimited by default) is no swap in VSwap terms.
                    if base.file.get("SWAPPAGES").is_none() {
                        0
                    } else {
                        s
                    }
                }
            };
            let oc = match (&opts.vm_overcommit, base.file.get("VM_OVERCOMMIT")) {
                (Some(v), _) => v.value,
                (None, Some(v)) => crate::ubc::parse_overcommit(v)?,
                (None, None) => 0.0,
            };
            if let Some(v) = &opts.vm_overcommit {
                p.key("VM_OVERCOMMIT", Some(v.text.clone()));
            }
            for (id, l) in crate::ubc::vswap(ram, swap, oc) {
                let r = Resource::by_id(id).ok_or(VeError::Exec("vswap".into()))?;
                rows.retain(|(x, _, _)| x.id != id);
                rows.push((r, l, None));
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let mut new = old;
        for (r, l, raw) in &rows {
            new.res[r.id as usize] = *l;
            p.key(
                &r.name.to_ascii_uppercase(),
                Some(raw.clone().unwrap_or_else(|| format!("{}:{}", l.barrier, l.limit))),
            );
        }
        for (r, _, _) in &rows {
            if r.id == vz_common::res::DCACHESIZE && !self.paths.dcache_accounting {
                crate::report::notice("Warning: dcachesize is stored but not accounted: set DCACHE_ACCOUNTING=\"yes\" in vz.conf (its tracepoints cost every slab allocation on the host)");
                continue;
            }
        }
        p.ubc = Some(UbcPlan { old, new, rows });
        Ok(())
    }

    /// Applies a plan to a running VE, each step with its inverse in `rb`.
    #[allow(clippy::too_many_arguments)]
    fn apply_live<'a>(
        &'a self,
        veid: u32,
        init: i32,
        cgid: u64,
        cfg: &VeConfig,
        p: &Plan,
        opts: &'a SetOpts,
        rb: &mut Rollback<'a>,
    ) -> Result<(), VeError> {
        let base = &cfg.file;
        let root = self.root_of(veid, base);
        let (uid, _) = self.ve_ids(base);
        // Beancounters first: the memory controller is the step most likely to refuse (a
        // limit below what the VE uses).
        if let Some(u) = &p.ubc {
            for (r, _, _) in &u.rows {
                match crate::ubc::mechanism(r, self.cg.as_ref(), veid) {
                    Some(m) if m.enforces() => {}
                    Some(m) => crate::report::warning(
                        veid,
                        format!("{} is only accounted on this kernel ({}), not enforced", r.name, m.label()),
                    ),
                    None => crate::report::warning(
                        veid,
                        format!("{} is stored but neither accounted nor enforced on this kernel", r.name),
                    ),
                }
            }
            let changed: Vec<u32> = u.rows.iter().map(|(r, _, _)| r.id).collect();
            let old = u.old;
            let ch = changed.clone();
            rb.push("beancounters", move || self.apply_limits(veid, init, cgid, uid, &old, &ch));
            self.apply_limits(veid, init, cgid, uid, &u.new, &changed)?;
            crate::report::progress("UB limits were set successfully");
        }
        if let Some((old, new)) = &p.cpu {
            let old = old.clone();
            rb.push("CPU settings", move || Ok(crate::cpu::apply(self.cg.as_ref(), veid, &old)?));
            crate::cpu::apply(self.cg.as_ref(), veid, new)?;
        }
        if let Some((old, new)) = &p.io {
            let (old, r) = (*old, root.clone());
            rb.push("I/O settings", move || self.apply_io(veid, cgid, &r, &old));
            self.apply_io(veid, cgid, &root, new)?;
        }
        if let Some((old, new)) = &p.disk {
            let (old, b) = (*old, base.clone());
            rb.push("disk limits", move || self.set_disk(veid, &b, &old, opts));
            self.set_disk(veid, base, new, opts)?;
        }
        if let Some((old, new)) = &p.devices {
            let (o, n, b) = (old.clone(), new.clone(), base.clone());
            rb.push("devices", move || self.apply_devices(veid, init, cgid, &b, Some(&n), &o));
            self.apply_devices(veid, init, cgid, base, Some(old), new)?;
        }
        let later =
            [(p.nf_changed, "netfilter mode"), (p.caps_changed, "capabilities (a running process's set only shrinks)")];
        for (_, what) in later.iter().filter(|(c, _)| *c && opts.setmode.as_deref() != Some("restart")) {
            crate::report::warning(veid, format!("container {veid}'s {what}: changed at its next start"));
        }
        if let Some((old, new)) = &p.netdevs {
            let (o, n) = (old.clone(), new.clone());
            rb.push("host interfaces", move || self.move_netdevs(veid, init, &n, &o));
            self.move_netdevs(veid, init, old, new)?;
        }
        if !p.add_ips.is_empty() || !p.del_ips.is_empty() {
            crate::net::warn_if_not_forwarding(veid, &p.add_ips);
            let old = &cfg.ips;
            let (add, del): (Vec<IpAddr>, Vec<IpAddr>) = (
                p.add_ips.iter().copied().filter(|ip| !old.contains(ip)).collect(),
                p.del_ips.iter().copied().filter(|ip| old.contains(ip)).collect(),
            );
            let (a2, d2) = (add.clone(), del.clone());
            rb.push("addresses", move || self.change_ips(init, cgid, &d2, &a2));
            self.change_ips(init, cgid, &add, &del)?;
        }
        // The VE's name and resolver files, from what it runs with after this set; the
        // files first, so a failed write leaves the live host name as it was.
        let mut next = base.clone();
        apply_keys(&mut next, &p.keys);
        let name_changed = p.hostname.is_some() || !p.add_ips.is_empty() || !p.del_ips.is_empty();
        if let Some(h) = next.get("HOSTNAME").filter(|_| name_changed).map(str::to_string) {
            let (b, r) = (base.clone(), root.clone());
            let old_name = b.get("HOSTNAME").map(str::to_string);
            rb.push("the host name", move || {
                if let Some(o) = old_name {
                    self.write_names(&r, &b, &o).map_err(|e| VeError::Exec(e.to_string()))?;
                    ns::set_hostname(init, &o)?;
                }
                Ok(())
            });
            self.write_names(&root, &next, &h).map_err(crate::ve::io_err("write /etc/hostname, /etc/hosts", &root))?;
            if p.hostname.is_some() {
                ns::set_hostname(init, &h)?;
            }
        }
        if p.resolver {
            let (b, r) = (base.clone(), root.clone());
            rb.push("/etc/resolv.conf", move || self.write_resolver(&r, &b).map_err(|e| VeError::Exec(e.to_string())));
            self.write_resolver(&root, &next).map_err(crate::ve::io_err("write /etc/resolv.conf", &root))?;
        }
        if let Some((old, new)) = &p.rules {
            let old = *old;
            rb.push("firewall rules", move || Ok(Bpf::open_existing(&self.paths.bpf_root)?.set_net_rules(cgid, &old)?));
            Bpf::open_existing(&self.paths.bpf_root)?.set_net_rules(cgid, new)?;
        }
        if let Some((old, new)) = p.rate {
            rb.push("the rate limit", move || {
                crate::ve::set_rate(&mut Bpf::open_existing(&self.paths.bpf_root)?, cgid, old)
            });
            crate::ve::set_rate(&mut Bpf::open_existing(&self.paths.bpf_root)?, cgid, new)?;
        }
        for n in &p.netif_gone {
            let n2 = n.clone();
            rb.push("a bridged interface", move || Ok(crate::net::add_netif(init, &n2)?));
            crate::net::del_netif(&n.host_ifname)?;
        }
        for n in &p.netif_new {
            let h = n.host_ifname.clone();
            rb.push("a bridged interface", move || Ok(crate::net::del_netif(&h)?));
            crate::net::add_netif(init, n)?;
        }
        Ok(())
    }

    /// A running VE's addresses: `del` go, `add` come (interface, host routes, and the
    /// bind and anti-spoofing map).
    fn change_ips(&self, init: i32, cgid: u64, add: &[IpAddr], del: &[IpAddr]) -> Result<(), VeError> {
        crate::net::del_ips(init, cgid, del)?;
        if let Err(e) = crate::net::withdraw(del) {
            warn!("proxy ARP for removed addresses: {e}");
        }
        crate::net::add_ips(init, cgid, add)?;
        self.announce(0, add);
        if let Ok(mut bpf) = Bpf::open_existing(&self.paths.bpf_root) {
            bpf.set_ve_addrs(cgid, add, Some(del))?;
        }
        Ok(())
    }

    /// Puts a full limit record in force on a running VE: the BPF map (every row) and the
    /// kernel mechanisms of the rows in `changed`.
    fn apply_limits(
        &self,
        veid: u32,
        init: i32,
        cgid: u64,
        uid: u32,
        full: &VeLimits,
        changed: &[u32],
    ) -> Result<(), VeError> {
        Bpf::ensure(&self.bpf_config())?.put_limits(cgid, veid, full)?;
        let target = crate::ubc::Target { cg: self.cg.as_ref(), veid, uid };
        for w in crate::ubc::apply_live(&target, init, full, changed)? {
            crate::report::warning(veid, &w);
        }
        Ok(())
    }
}
