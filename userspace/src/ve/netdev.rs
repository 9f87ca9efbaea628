//! A VE's host interfaces (`--netdev_add`, `--netdev_del`, NETDEV; see `crate::net::netdev`):
//! checked against the host and the other VEs, moved in at start and live, moved back at
//! `--netdev_del` and at every cleanup of the VE, whatever ended it.
use super::*;

impl Vz {
    /// The NETDEV list after a set, each interface added checked: one of this host's that
    /// vzctl did not make (not a venet end, bridged interface or loopback) and no other
    /// VE's. Changes nothing.
    pub(super) fn plan_netdevs(
        &self,
        veid: u32,
        opts: &SetOpts,
        old: &[String],
    ) -> Result<Option<Vec<String>>, VeError> {
        if opts.netdev_add.is_empty() && opts.netdev_del.is_empty() {
            return Ok(None);
        }
        let bad = |key: &'static str, v: &str, why: &'static str| VeError::BadValue { key, value: v.into(), why };
        for d in &opts.netdev_del {
            if !old.contains(d) {
                return Err(bad("netdev_del", d, "the container has no such interface"));
            }
        }
        let mut list: Vec<String> = old.iter().filter(|n| !opts.netdev_del.contains(n)).cloned().collect();
        for a in &opts.netdev_add {
            if list.contains(a) {
                continue;
            }
            if self.other_ve(veid, |c| c.get("NETDEV").unwrap_or("").split_whitespace().any(|n| n == a)).is_some() {
                return Err(bad("netdev_add", a, "another container has that interface"));
            }
            match crate::net::netdev_movable(a) {
                Ok(()) => {}
                Err(crate::net::NetError::NoLink(_)) => {
                    return Err(bad("netdev_add", a, "no such interface on the host"))
                }
                Err(crate::net::NetError::NotOurs(_)) => {
                    return Err(bad("netdev_add", a, "the loopback or an interface vzctl made for a container"))
                }
                Err(e) => return Err(e.into()),
            }
            list.push(a.clone());
        }
        Ok(Some(list))
    }

    /// Moves `new` into the running VE and what `old` had but `new` has not back out;
    /// the namespace is pinned while it holds any.
    pub(super) fn move_netdevs(&self, veid: u32, init: i32, old: &[String], new: &[String]) -> Result<(), VeError> {
        let pin = crate::net::netns_pin(&self.paths.lock_dir, veid);
        if !new.is_empty() {
            crate::net::pin_netns(init, &pin)?;
        }
        let mut held = self.netdev_record(veid);
        for gone in old.iter().filter(|o| !new.contains(o)) {
            crate::net::netdev_out(&pin, gone, held.get(gone).copied().flatten())?;
            held.remove(gone);
            self.write_netdev_record(veid, &held)?;
        }
        for (i, n) in new.iter().enumerate().filter(|(_, n)| !old.contains(n)) {
            match crate::net::netdev_in(init, n) {
                Ok(index) => {
                    held.insert(n.clone(), index);
                    self.write_netdev_record(veid, &held)?;
                }
                Err(e) => {
                    for m in new[..i].iter().filter(|m| !old.contains(m)) {
                        let _ = crate::net::netdev_out(&pin, m, held.get(m).copied().flatten());
                    }
                    return Err(e.into());
                }
            }
        }
        if new.is_empty() {
            crate::net::unpin_netns(&pin);
            let _ = fs::remove_file(self.netdev_record_path(veid));
        }
        Ok(())
    }

    /// Where the interfaces a running VE holds are noted with their index in its
    /// namespace (`-`: unknown, found by name).
    fn netdev_record_path(&self, veid: u32) -> PathBuf {
        self.paths.lock_dir.join(format!("{veid}.netdevs"))
    }

    fn netdev_record(&self, veid: u32) -> std::collections::BTreeMap<String, Option<u32>> {
        fs::read_to_string(self.netdev_record_path(veid))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, i)| (n.to_string(), i.parse().ok()))
            .collect()
    }

    fn write_netdev_record(
        &self,
        veid: u32,
        held: &std::collections::BTreeMap<String, Option<u32>>,
    ) -> Result<(), VeError> {
        let text: String = held
            .iter()
            .map(|(n, i)| format!("{n} {}\n", i.map_or_else(|| "-".to_string(), |i| i.to_string())))
            .collect();
        let path = self.netdev_record_path(veid);
        let tmp = path.with_extension("netdevs.tmp");
        fs::write(&tmp, text).and_then(|()| fs::rename(&tmp, &path)).map_err(io_err("write", &path))
    }

    /// Cleanup of a stopped (or dead, or half-started) VE: every interface of its live
    /// settings and config back to this namespace, then the pin dropped.
    pub(super) fn netdevs_home(&self, veid: u32) {
        let pin = crate::net::netns_pin(&self.paths.lock_dir, veid);
        if !crate::net::is_pinned(&pin) {
            return;
        }
        let mut names: Vec<String> = Vec::new();
        for c in [self.live_conf(veid).ok(), self.conf(veid).ok()].into_iter().flatten() {
            for n in c.get("NETDEV").unwrap_or("").split_whitespace() {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_string());
                }
            }
        }
        let held = self.netdev_record(veid);
        for n in names {
            if let Err(e) = crate::net::netdev_out(&pin, &n, held.get(&n).copied().flatten()) {
                crate::report::warning(veid, format!("cannot bring interface {n} back from container {veid}: {e}"));
            }
        }
        crate::net::unpin_netns(&pin);
        let _ = fs::remove_file(self.netdev_record_path(veid));
    }
}

/// NETDEV of a config: interface names.
pub(crate) fn conf_netdevs(conf: &ConfFile) -> Result<Vec<String>, VeError> {
    conf.get("NETDEV")
        .unwrap_or("")
        .split_whitespace()
        .map(|n| {
            if crate::net::valid_ifname(n) {
                Ok(n.to_string())
            } else {
                Err(VeError::BadValue {
                    key: "NETDEV",
                    value: n.escape_default().to_string(),
                    why: "not an interface name",
                })
            }
        })
        .collect()
}
