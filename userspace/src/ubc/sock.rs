//! Socket rows. numtcpsock and numothersock: vzbpf's cgroup socket programs count and
//! refuse (ENOBUFS); their figures are the map's. tcpsndbuf, tcprcvbuf, dgramrcvbuf and
//! othersockbuf: vz_setsockopt cuts SO_SNDBUF/SO_RCVBUF requests above the row's limit, and
//! where the memory cgroup has a socket-memory limit (v1 `memory.kmem.tcp.limit_in_bytes`,
//! set by the `memcg` family) that bounds the charged ones together; held comes from the
//! socket iterators run in the VE's network namespace.
use vz_common::{progs, res, VeUsage};

use super::{Family, Mechanism, Probe};
use crate::{
    bpf::Bpf,
    cgroup::{Cgroups, Memory},
    ns,
};

pub struct Sockets;

const BUFFERS: [u32; 4] = [res::TCPSNDBUF, res::TCPRCVBUF, res::OTHERSOCKBUF, res::DGRAMRCVBUF];

impl Family for Sockets {
    fn keeps_bpf_failcnt(&self) -> bool {
        true
    }
    fn rows(&self) -> &'static [u32] {
        &[res::NUMTCPSOCK, res::NUMOTHERSOCK, res::TCPSNDBUF, res::TCPRCVBUF, res::OTHERSOCKBUF, res::DGRAMRCVBUF]
    }
    fn mechanism(&self, id: u32, cg: &dyn Cgroups, veid: u32) -> Option<Mechanism> {
        Some(match id {
            res::NUMTCPSOCK | res::NUMOTHERSOCK => Mechanism::Bpf,
            res::OTHERSOCKBUF => Mechanism::BpfClamp,
            _ if Memory::of(cg, veid).is_some_and(|m| m.has_socket_limit()) => Mechanism::MemcgSock,
            _ => Mechanism::BpfClamp,
        })
    }
    fn has_figures(&self, id: u32, bpf: Option<&Bpf>) -> bool {
        match id {
            res::NUMTCPSOCK | res::NUMOTHERSOCK => bpf.is_some(),
            _ => bpf.is_some_and(|b| b.pins.link(progs::ITER_TCP).exists()),
        }
    }
    fn walked(&self) -> &'static [u32] {
        &BUFFERS
    }
    fn read(&self, p: &Probe, usage: &mut VeUsage) {
        let (Some(init), Some(bpf)) = (p.init, p.bpf) else { return };
        let root = bpf.pins.root.clone();
        let read = ns::in_ve_net(init, move || Ok(Bpf::socket_buffers(&root)?.map(|b| (b, ns::rcvbuf_drops()))));
        let Ok(Some((bufs, (tcp_drops, udp_errors)))) = read else { return };
        for (r, held) in BUFFERS.into_iter().zip(bufs) {
            let u = &mut usage.res[r as usize];
            u.held = held;
            u.maxheld = held;
        }
        // Refusals of receive buffer the VE met: vz_setsockopt's cuts, plus the packets its
        // namespace dropped for a full receive buffer.
        usage.res[res::TCPRCVBUF as usize].failcnt += tcp_drops;
        // The namespace counter and the open sockets' own drop counts overlap; take the
        // larger (a socket's drops leave with it).
        usage.res[res::DGRAMRCVBUF as usize].failcnt += udp_errors.max(bufs[4]);
    }
}
