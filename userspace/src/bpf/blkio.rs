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

    /// A VE's block I/O per device (kernel `dev_t`), summed over CPUs.
    pub fn io_stats(&self, cgroup: u64) -> Result<Vec<(u32, crate::io::IoTotals)>, BpfError> {
        let Some(map) = self.io_stats_map()? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for item in map.iter() {
            let (k, per_cpu) = item?;
            if k.ve != cgroup {
                continue;
            }
            let mut t = crate::io::IoTotals::default();
            for s in per_cpu.iter() {
                t.add(s);
            }
            out.push((k.dev, t));
        }
        out.sort_by_key(|(d, _)| *d);
        Ok(out)
    }

    /// Whether the block I/O programs are attached (kernels without the offsets they need,
    /// or without BTF, leave them out).
    pub fn io_accounting(&self) -> bool {
        self.pins.link(progs::IO_QUEUE).exists()
    }
}
