//! `Ve`: one VE held by a command that changes it: its lock (for as long as the value
//! lives), its config as read once, and where its root and private area are.
use super::*;

pub struct Ve {
    pub veid: u32,
    /// The config file as read under the lock.
    pub conf: ConfFile,
    /// VE_ROOT and VE_PRIVATE with `$VEID` expanded.
    pub root: PathBuf,
    pub private: PathBuf,
    /// None: the caller holds the lock (a repair run under it).
    _lock: Option<VeLock>,
}

impl Vz {
    /// Locks VE `veid` (repairing what a killed command left) and reads its config; a VE
    /// with no config is `NotExist`.
    pub fn open(&self, veid: u32) -> Result<Ve, VeError> {
        let lock = self.lock(veid)?;
        let mut conf = self.conf(veid)?;
        if super::conf::move_legacy_rules(&mut conf) {
            conf.write_atomic(&self.paths.ve_conf(veid))?;
            crate::report::progress(format!(
                "Moved the firewall rules of container {veid} from NETFILTER to FIREWALL (NETFILTER is OpenVZ's netfilter mode)"
            ));
        }
        let (root, private) = (self.root_of(veid, &conf), self.private_of(veid, &conf));
        Ok(Ve { veid, conf, root, private, _lock: Some(lock) })
    }
}

impl Vz {
    /// A VE whose lock this process holds already (repairs run under `lock`).
    pub(super) fn held(&self, veid: u32) -> Result<Ve, VeError> {
        let conf = self.conf(veid)?;
        let (root, private) = (self.root_of(veid, &conf), self.private_of(veid, &conf));
        Ok(Ve { veid, conf, root, private, _lock: None })
    }
}
