//! shmpages: a VE's SysV shared memory is bounded by its IPC namespace's kernel.shmall,
//! which VE root could otherwise raise. This `cgroup/sysctl` program refuses writes to
//! kernel/shm* from every registered VE (EPERM); reads stay allowed.
use aya_ebpf::{
    helpers::{bpf_get_current_ancestor_cgroup_id, bpf_sysctl_get_name},
    macros::cgroup_sysctl,
    programs::SysctlContext,
};

use crate::maps::{VZ_UBC, VZ_VE_LEVEL};

const PREFIX: &[u8; 10] = b"kernel/shm";

#[cgroup_sysctl]
pub fn vz_sysctl(ctx: SysctlContext) -> i32 {
    // SAFETY: the kernel passes a valid context.
    if unsafe { (*ctx.sysctl).write } == 0 {
        return 1;
    }
    // SAFETY: helper with a constant argument.
    let ve = unsafe { bpf_get_current_ancestor_cgroup_id(VZ_VE_LEVEL.load() as i32) };
    if ve == 0 || VZ_UBC.get_ptr(ve).is_none() {
        return 1;
    }
    let mut name = [0u8; 16];
    // SAFETY: buffer and length match; a longer name is truncated, which is enough here.
    unsafe { bpf_sysctl_get_name(ctx.sysctl, name.as_mut_ptr().cast(), name.len() as u64, 0) };
    for i in 0..PREFIX.len() {
        if name[i] != PREFIX[i] {
            return 1;
        }
    }
    0
}
