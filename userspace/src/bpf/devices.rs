//! The device grants of each VE (`VZ_DEVICES_V1`), read by `vz_device`.
use super::*;

impl Bpf {
    /// Makes `grants` the VE's whole set of entries: others of its go, these are written
    /// (a grant of 0 access refuses a device every VE has).
    /// `fresh`: the cgroup was just made, so no entry of it can exist (cgroup ids are never
    /// reused): no pass over every VE's entries to find stale ones.
    pub fn set_devices(
        &mut self,
        cgroup: u64,
        grants: &[crate::devices::DevRule],
        fresh: bool,
    ) -> Result<(), BpfError> {
        let Some(mut map) = self.pinned_hash::<vz_common::DevKey, u32>(maps::DEVICES)? else { return Ok(()) };
        let key = |g: &crate::devices::DevRule| vz_common::DevKey {
            ve: cgroup,
            kind: g.kind,
            major: g.major,
            minor: g.minor,
            _pad: 0,
        };
        let want: Vec<vz_common::DevKey> = grants.iter().map(key).collect();
        let stale: Vec<vz_common::DevKey> = match fresh {
            true => Vec::new(),
            false => map.keys().filter_map(Result::ok).filter(|k| k.ve == cgroup && !want.contains(k)).collect(),
        };
        // New ones first: a device kept across the change is never refused meanwhile.
        for g in grants {
            map.insert(key(g), g.perm, 0)?;
        }
        for k in stale {
            removed(map.remove(&k))?;
        }
        Ok(())
    }

    /// A VE's entries: (kind, major, minor, access).
    pub fn devices_of(&self, cgroup: u64) -> Result<Vec<(u32, u32, u32, u32)>, BpfError> {
        let Some(map) = self.pinned_hash::<vz_common::DevKey, u32>(maps::DEVICES)? else { return Ok(Vec::new()) };
        Ok(map
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, _)| k.ve == cgroup)
            .map(|(k, v)| (k.kind, k.major, k.minor, v))
            .collect())
    }
}
