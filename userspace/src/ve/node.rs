//! The node's boot and shutdown, as OpenVZ's `vz` service did (`vzctl __node start|stop`,
//! run by the shipped `vz.service` unit): at boot the programs are loaded and pinned before
//! any VE starts (bpffs pins do not outlive a reboot, and limits must hold from a VE's
//! first process), then the ONBOOT VEs start, higher BOOTORDER first; at shutdown every
//! running VE stops, in the reverse order.
use super::*;

/// The order VEs start in: BOOTORDER descending (a VE without one after every numbered
/// one), then VEID.
pub fn boot_order(ves: &[(u32, Option<u32>)]) -> Vec<u32> {
    let mut v = ves.to_vec();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter().map(|(veid, _)| veid).collect()
}

fn bootorder(conf: &ConfFile) -> Option<u32> {
    conf.get("BOOTORDER").and_then(|b| b.trim().parse().ok())
}

impl Vz {
    /// `vzctl __node start`: programs pinned, then each ONBOOT VE started (a VE that does
    /// not start is said, and the others still start; the command then fails).
    pub fn node_start(&self) -> Result<(), VeError> {
        self.cg.create_parent()?;
        Bpf::ensure(&self.bpf_config())?;
        crate::report::progress(format!("Programs loaded and pinned in {}", self.paths.bpf_root.display()));
        let onboot: Vec<(u32, Option<u32>)> = self
            .veids()
            .into_iter()
            .filter_map(|v| self.conf(v).ok().map(|c| (v, c)))
            .filter(|(v, c)| {
                c.get("ONBOOT").map(str::trim) == Some("yes")
                    && c.get("DISABLED").map(str::trim) != Some("yes")
                    && !self.is_running(*v)
            })
            .map(|(v, c)| (v, bootorder(&c)))
            .collect();
        self.each(boot_order(&onboot), "Starting container {} (onboot)", "did not start at boot", |v| self.start(v))
    }

    /// `vzctl __node stop`: every running VE stopped, the last to boot first.
    pub fn node_stop(&self) -> Result<(), VeError> {
        let running: Vec<(u32, Option<u32>)> = self
            .veids()
            .into_iter()
            .filter(|v| self.is_running(*v))
            .map(|v| (v, self.conf(v).ok().as_ref().and_then(bootorder)))
            .collect();
        let order = boot_order(&running).into_iter().rev().collect();
        self.each(order, "Shutting down container {}", "did not stop", |v| self.stop(v, false))
    }

    /// Acts on each VE in `order`, saying `say` (its `{}` the VEID) first; one that fails
    /// is said and the rest still go; the failures are the error.
    fn each(
        &self,
        order: Vec<u32>,
        say: &str,
        failed_to: &str,
        act: impl Fn(u32) -> Result<(), VeError>,
    ) -> Result<(), VeError> {
        let mut failed = Vec::new();
        for veid in order {
            crate::report::progress(say.replace("{}", &veid.to_string()));
            if let Err(e) = act(veid) {
                crate::report::notice(format!("Container {veid} {failed_to}: {e}"));
                failed.push(veid.to_string());
            }
        }
        match failed.is_empty() {
            true => Ok(()),
            false => Err(VeError::Exec(format!("containers that {failed_to}: {}", failed.join(" ")))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::boot_order;

    #[test]
    fn higher_bootorder_first_then_veid_and_unnumbered_last() {
        let ves = [(104, None), (101, Some(1)), (103, None), (102, Some(5)), (105, Some(1))];
        assert_eq!(boot_order(&ves), [102, 101, 105, 103, 104]);
        assert_eq!(boot_order(&[]), Vec::<u32>::new());
    }
}
