//! Block I/O accounting: a VE's blkio cgroup and its per-disk totals.
use super::*;

impl Bpf {
    /// Tells the block I/O programs which blkio cgroup is the VE's (`blkcg`: the id of the
    /// VE's directory in the hierarchy that carries blkio/io).
    pub fn set_io_cgroup(&mut self, cgroup: u64, blkcg: u64) -> Result<(), BpfError> {
        let Some(mut map) = self.pinned_hash::<u64, u64>(maps::IO_CGROUPS)? else { return Ok(()) };
        Ok(map.insert(blkcg, cgroup, 0)?)
    }

    pub(super) fn io_stats_map(
        &self,
    ) -> Result<Option<aya::maps::PerCpuHashMap<MapData, vz_common::IoKey, vz_common::IoStats>>, BpfError> {
        let Ok(m) = MapData::from_pin(self.pins.map(maps::IO_STATS)) else { return Ok(None) };
        Ok(Some(aya::maps::PerCpuHashMap::try_from(aya::maps::Map::PerCpuHashMap(m))?))
    }

    /// Every VE's block I/O per device (kernel `dev_t`, ascending), summed over CPUs, by
    /// VE cgroup id: one pass over the map.
    pub fn io_stats_all(&self) -> Result<std::collections::HashMap<u64, Vec<(u32, crate::io::IoTotals)>>, BpfError> {
        let mut out: std::collections::HashMap<u64, Vec<(u32, crate::io::IoTotals)>> = Default::default();
        let Some(map) = self.io_stats_map()? else { return Ok(out) };
        for item in map.iter() {
            let (k, per_cpu) = item?;
            let mut t = crate::io::IoTotals::default();
            for s in per_cpu.iter() {
                t.add(s);
            }
            out.entry(k.ve).or_default().push((k.dev, t));
        }
        for per_dev in out.values_mut() {
            per_dev.sort_by_key(|(d, _)| *d);
        }
        Ok(out)
    }

    /// A VE's block I/O per device, from one `io_stats_all` pass made once per handle (a
    /// listing of N VEs reads the map once, not N times); `io_stats_all` for fresh figures.
    pub fn io_stats(&self, cgroup: u64) -> Result<Vec<(u32, crate::io::IoTotals)>, BpfError> {
        if self.io.get().is_none() {
            let all = self.io_stats_all()?;
            let _ = self.io.set(all);
        }
        Ok(self.io.get().and_then(|m| m.get(&cgroup).cloned()).unwrap_or_default())
    }

    /// Whether the block I/O programs are attached (kernels without the offsets they need,
    /// or without BTF, leave them out).
    pub fn io_accounting(&self) -> bool {
        self.pins.link(progs::IO_QUEUE).exists()
    }
}
