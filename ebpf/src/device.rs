//! Device access per VE: one global `cgroup_device` program on the VE parent, asked by the
//! kernel at every open and mknod of a device node by a task below it. A VE gets its
//! /dev's nodes (`vz_common::DEV_DEFAULTS`) and what the admin granted (`--devnodes`,
//! `--devices`, kept in `VZ_DEVICES`); everything else is refused with EPERM. Tasks that
//! are no registered VE's are not this program's business.
use aya_ebpf::{helpers::bpf_get_current_ancestor_cgroup_id, macros::cgroup_device, programs::DeviceContext};
use vz_common::{dev_default, DevKey, DEV_ACC_READ, DEV_ACC_WRITE, DEV_ANY_MINOR};

use crate::maps::{VZ_DEVICES, VZ_UBC, VZ_VE_LEVEL};

const ALLOW: i32 = 1;
const DENY: i32 = 0;

#[cgroup_device]
pub fn vz_device(ctx: DeviceContext) -> i32 {
    // SAFETY: helper with a constant argument; 0 when the task is above VE level.
    let ve = unsafe { bpf_get_current_ancestor_cgroup_id(VZ_VE_LEVEL.load() as i32) };
    if ve == 0 || VZ_UBC.get_ptr(ve).is_none() {
        return ALLOW;
    }
    // SAFETY: the kernel passes a valid context.
    let (access_type, major, minor) = unsafe { ((*ctx.device).access_type, (*ctx.device).major, (*ctx.device).minor) };
    let (kind, access) = (access_type & 0xffff, access_type >> 16);
    let exact = DevKey { ve, kind, major, minor, _pad: 0 };
    let any = DevKey { minor: DEV_ANY_MINOR, ..exact };
    // SAFETY: map lookups with stack keys.
    let granted = match unsafe { VZ_DEVICES.get(exact) } {
        Some(g) => *g,
        None => match unsafe { VZ_DEVICES.get(any) } {
            Some(g) => *g,
            // The VE's own /dev: read and write; no mknod (its root could not anyway).
            None if dev_default(kind, major, minor) => DEV_ACC_READ | DEV_ACC_WRITE,
            None => 0,
        },
    };
    if access & !granted == 0 {
        ALLOW
    } else {
        DENY
    }
}
