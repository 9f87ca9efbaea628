//! shmpages: a VE's SysV shared memory is bounded by its IPC namespace's kernel.shmall,
//! which VE root could otherwise raise. This `cgroup/sysctl` program refuses writes to
//! kernel/shm* from every registered VE (EPERM) that would raise a value; reads, and
//! writes that keep or lower it, stay allowed (CRIU restoring a VE's IPC namespace writes
//! the values the VE had, from inside its cgroup).
use aya_ebpf::{
    helpers::{
        bpf_get_current_ancestor_cgroup_id, bpf_strtoul, bpf_sysctl_get_current_value, bpf_sysctl_get_name,
        bpf_sysctl_get_new_value,
    },
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
    if keeps_or_lowers(&ctx) {
        1
    } else {
        0
    }
}

/// Room for any of these values as text (ULONG_MAX is 20 digits) and a newline.
const VALUE_LEN: usize = 24;

/// Does this write leave the value as it is (the same text) or lower it (both numbers)?
/// Anything it cannot tell (a value too long, not a number) counts as a raise.
#[inline(always)]
fn keeps_or_lowers(ctx: &SysctlContext) -> bool {
    let (mut cur, mut new) = ([0u8; VALUE_LEN], [0u8; VALUE_LEN]);
    // SAFETY: buffers and lengths match; the helpers NUL-terminate what they copy and
    // return a negative error (E2BIG) when it did not fit.
    let (nc, nn) = unsafe {
        (
            bpf_sysctl_get_current_value(ctx.sysctl, cur.as_mut_ptr().cast(), VALUE_LEN as u64),
            bpf_sysctl_get_new_value(ctx.sysctl, new.as_mut_ptr().cast(), VALUE_LEN as u64),
        )
    };
    if nc < 0 || nn < 0 {
        return false;
    }
    let mut same = true;
    for i in 0..VALUE_LEN {
        // A trailing newline in either is no difference.
        let (a, b) = (cur[i], new[i]);
        if a != b && !((a == 0 || a == b'\n') && (b == 0 || b == b'\n')) {
            same = false;
        }
    }
    if same {
        return true;
    }
    let (mut a, mut b) = (0u64, 0u64);
    // SAFETY: buffers of VALUE_LEN bytes; results written to the locals.
    let (ra, rb) = unsafe {
        (
            bpf_strtoul(cur.as_ptr().cast(), VALUE_LEN as u64, 10, &mut a),
            bpf_strtoul(new.as_ptr().cast(), VALUE_LEN as u64, 10, &mut b),
        )
    };
    ra > 0 && rb > 0 && b <= a
}
