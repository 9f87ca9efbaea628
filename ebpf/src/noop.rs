//! Programs that allow everything and touch nothing. Never attached by the controller: the
//! benchmark attaches them to measure what cgroup BPF dispatch alone costs (the floor any
//! accounting program sits on).
use aya_ebpf::{macros::cgroup_sock, programs::SockContext};

#[cgroup_sock(sock_create)]
pub fn vz_noop_create(_ctx: SockContext) -> i32 {
    1
}

#[cgroup_sock(sock_release)]
pub fn vz_noop_release(_ctx: SockContext) -> i32 {
    1
}

/// tc: passes every packet (the floor under the venet programs).
#[aya_ebpf::macros::classifier]
pub fn vz_noop_tc(_ctx: aya_ebpf::programs::TcContext) -> i32 {
    0
}
