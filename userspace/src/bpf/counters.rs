//! Counts that BPF iterators take when a report asks (open files, VM pages, socket buffers).
use super::*;

impl Bpf {
    /// Open files of one VE (cgroup id), from an iterator run made once per handle; None
    /// when the iterator is not available.
    pub fn files_of(&self, cgroup: u64) -> Option<u64> {
        let counts = self.files.get_or_init(|| self.run_iter(progs::ITER_FILES, maps::FILES));
        counts.as_ref().map(|m| m.get(&cgroup).copied().unwrap_or(0))
    }

    /// [privvmpages, lockedpages] of one VE, like `files_of`.
    pub fn vms_of(&self, cgroup: u64) -> Option<[u64; 2]> {
        let counts = self.vms.get_or_init(|| self.run_iter(progs::ITER_VMAS, maps::VMS));
        counts.as_ref().map(|m| m.get(&cgroup).copied().unwrap_or([0, 0]))
    }

    pub(super) fn run_iter<V: aya::Pod>(&self, prog: &str, map: &str) -> Option<std::collections::HashMap<u64, V>> {
        self.count(prog, map).unwrap_or_else(|e| {
            warn!("running {prog} failed: {e}");
            None
        })
    }

    /// Empties `map`, runs iterator `prog` over every task, returns what it counted.
    pub(super) fn count<V: aya::Pod>(
        &self,
        prog: &str,
        map: &str,
    ) -> Result<Option<std::collections::HashMap<u64, V>>, BpfError> {
        let link_pin = self.pins.link(prog);
        if !link_pin.exists() {
            return Ok(None);
        }
        // One run at a time: runs share the map.
        let _lock = PinLock::take(&self.pins.root)?;
        let mut counts: HashMap<MapData, u64, V> =
            HashMap::try_from(aya::maps::Map::HashMap(MapData::from_pin(self.pins.map(map))?))?;
        let keys: Vec<u64> = counts.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = counts.remove(&k);
        }
        run_iter_link(&link_pin).map_err(io_err("run iterator", &link_pin))?;
        Ok(Some(counts.iter().filter_map(Result::ok).collect()))
    }

    /// Socket buffer bytes of the calling thread's network namespace (run it on a thread
    /// inside the VE's, see `ns::in_ve_net`): [TCP send queued, TCP receive, UDP and UNIX
    /// send in flight, UDP receive, packets the UDP sockets dropped for lack of receive
    /// buffer]. None when the socket iterators are not loaded.
    pub fn socket_buffers(pin_root: &Path) -> io::Result<Option<[u64; 5]>> {
        let pins = Pins { root: pin_root.to_path_buf() };
        let mut out = [0u64; 5];
        for (i, prog) in [progs::ITER_TCP, progs::ITER_UDP, progs::ITER_UNIX].iter().enumerate() {
            let link_pin = pins.link(prog);
            if !link_pin.exists() {
                return Ok(None);
            }
            let recs = run_iter_link(&link_pin)?;
            for rec in recs.chunks_exact(24) {
                let word = |at: usize| rec[at..at + 8].try_into().map(u64::from_ne_bytes).unwrap_or(0);
                let (send, recv, drops) = (word(0), word(8), word(16));
                match i {
                    0 => {
                        out[0] += send;
                        out[1] += recv;
                    }
                    1 => {
                        out[2] += send;
                        out[3] += recv;
                        out[4] += drops;
                    }
                    _ => out[2] += send,
                }
            }
        }
        Ok(Some(out))
    }

    /// Charge records that did not fit their bucket and live in the overflow hash now.
    pub fn sock_overflow(&self) -> Result<u64, BpfError> {
        let arr: Array<MapData, u64> =
            Array::try_from(aya::maps::Map::Array(MapData::from_pin(self.pins.map(maps::STATS))?))?;
        Ok(arr.get(&vz_common::STAT_SOCK_OVERFLOW, 0)?)
    }
}

/// Runs the iterator behind a pinned link once; returns what it wrote.
pub(super) fn run_iter_link(link_pin: &Path) -> io::Result<Vec<u8>> {
    let link = FdLink::from(PinnedLink::from_pin(link_pin).map_err(io::Error::other)?);
    let mut f = aya::programs::iter::IterLink::try_from(link)
        .map_err(io::Error::other)?
        .into_file()
        .map_err(io::Error::other)?;
    let mut out = Vec::new();
    io::Read::read_to_end(&mut f, &mut out)?;
    Ok(out)
}
