//! OpenVZ's action scripts, files the admin puts in the config directory (`conf/`):
//! `vps.mount` and `VEID.mount` run on the host after a VE's private area is mounted (a
//! failure unmounts it and fails the command, exit 79), `VEID.umount` and `vps.umount` on
//! the host before it is unmounted; `VEID.start` runs inside the VE, as its root, once it
//! has started, and `VEID.stop` inside it before it is halted (failures of those two are
//! said, not fatal). Host scripts get VEID, VE_CONFFILE, VE_ROOT and VE_PRIVATE in their
//! environment; every script runs within ACTION_TIMEOUT.
use super::*;

/// How long an action script may run before it is killed.
const ACTION_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Mount,
    Umount,
    Start,
    Stop,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Mount => "mount",
            Action::Umount => "umount",
            Action::Start => "start",
            Action::Stop => "stop",
        }
    }
}

impl Vz {
    /// The scripts of `action` for a VE, in the order they run: the global one first at
    /// mount, last at umount.
    fn action_scripts(&self, veid: u32, action: Action) -> Vec<PathBuf> {
        let dir = self.paths.ve_conf_dir();
        let own = dir.join(format!("{veid}.{}", action.name()));
        let global = dir.join(format!("vps.{}", action.name()));
        let list = match action {
            Action::Mount => vec![global, own],
            Action::Umount => vec![own, global],
            Action::Start | Action::Stop => vec![own],
        };
        list.into_iter().filter(|p| p.is_file()).collect()
    }

    /// Runs the host scripts of `action` (mount, umount).
    pub(crate) fn host_action(&self, veid: u32, conf: &ConfFile, action: Action) -> Result<(), VeError> {
        for script in self.action_scripts(veid, action) {
            let mut cmd = std::process::Command::new("/bin/sh");
            cmd.arg(&script)
                .env("VEID", veid.to_string())
                .env("VE_CONFFILE", self.paths.ve_conf(veid))
                .env("VE_ROOT", self.root_of(veid, conf))
                .env("VE_PRIVATE", self.private_of(veid, conf));
            let done = run::run_within(cmd, run::Feed::Null, ACTION_TIMEOUT).map_err(io_err("run", &script))?;
            let why = match done {
                Some(d) if d.status.success() => continue,
                Some(d) => format!("{}: {}", d.status, d.stderr.lines().last().unwrap_or("").trim()),
                None => format!("killed after {} s", ACTION_TIMEOUT.as_secs()),
            };
            return Err(VeError::ActionScript { script, why });
        }
        Ok(())
    }

    /// Runs the VE-side script of `action` (start, stop) inside the running VE; a failure
    /// is said.
    pub(crate) fn ve_action(&self, veid: u32, action: Action) {
        for script in self.action_scripts(veid, action) {
            let r = fs::read(&script)
                .map_err(io_err("read", &script))
                .and_then(|text| self.exec_argv(veid, &["/bin/sh".into(), "-s".into()], relay::Input::Bytes(text)));
            match r {
                Ok(0) => {}
                Ok(code) => say_action(veid, &script, &format!("exit status {code}")),
                Err(e) => say_action(veid, &script, &e.to_string()),
            }
        }
    }
}

fn say_action(veid: u32, script: &Path, why: &str) {
    crate::report::warning(veid, format!("action script {} failed: {why}", script.display()));
}
