//! Snapshot counters by BPF iterator: `iter/task_file` counts each VE's open files
//! (numfile held). Kernel struct offsets come from the loader, read from this kernel's BTF
//! (Rust BPF has no CO-RE).
use aya_ebpf::{helpers::bpf_probe_read_kernel, Global};

use crate::{
    maps::{VZ_FILES, VZ_UBC, VZ_VE_LEVEL, VZ_VMS},
    ubc::atomic,
};

/// `struct bpf_iter__task_file`: meta, task, fd, file (pointers in 8-byte slots).
#[repr(C)]
pub struct IterTaskFile {
    meta: u64,
    task: u64,
    fd: u32,
    _pad: u32,
    file: u64,
}

// Offsets in the running kernel, set by the loader from /sys/kernel/btf/vmlinux.
#[unsafe(no_mangle)]
pub static VZ_OFF_TASK_CGROUPS: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_CSS_DFL_CGRP: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_CGROUP_LEVEL: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_CGROUP_ANCESTORS: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_CGROUP_KN: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_KN_ID: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_TASK_PID: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_TASK_TGID: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_VMA_START: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_VMA_END: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_VMA_FLAGS: Global<u32> = Global::new(0);

/// `struct bpf_iter__task_vma`: meta, task, vma.
#[repr(C)]
pub struct IterTaskVma {
    meta: u64,
    task: u64,
    vma: u64,
}

/// Charged to overcommit accounting: private writable memory (privvmpages).
const VM_ACCOUNT: u64 = 0x0010_0000;
/// mlock()ed (lockedpages).
const VM_LOCKED: u64 = 0x0000_2000;
const PAGE_SHIFT: u64 = 12;

#[inline(always)]
pub(crate) fn read_u64(addr: u64) -> Option<u64> {
    // SAFETY: probe read of kernel memory; a bad address returns an error, not a fault.
    unsafe { bpf_probe_read_kernel(addr as *const u64) }.ok()
}

/// The VE (cgroup2 id at VE level) a task belongs to.
#[inline(always)]
pub(crate) fn task_ve(task: u64) -> Option<u64> {
    let level = VZ_VE_LEVEL.load();
    let cgroups = read_u64(task + u64::from(VZ_OFF_TASK_CGROUPS.load()))?;
    let dfl = read_u64(cgroups + u64::from(VZ_OFF_CSS_DFL_CGRP.load()))?;
    // SAFETY: as in read_u64.
    let l: i32 = unsafe { bpf_probe_read_kernel((dfl + u64::from(VZ_OFF_CGROUP_LEVEL.load())) as *const i32) }.ok()?;
    if l < level as i32 {
        return None;
    }
    let anc = read_u64(dfl + u64::from(VZ_OFF_CGROUP_ANCESTORS.load()) + u64::from(level) * 8)?;
    let kn = read_u64(anc + u64::from(VZ_OFF_CGROUP_KN.load()))?;
    read_u64(kn + u64::from(VZ_OFF_KN_ID.load()))
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task_file")]
pub fn vz_iter_files(ctx: *mut IterTaskFile) -> i32 {
    // SAFETY: the kernel passes a valid iterator context.
    let task = unsafe { (*ctx).task };
    if task == 0 {
        return 0;
    }
    let Some(ve) = task_ve(task) else { return 0 };
    if VZ_UBC.get_ptr(ve).is_none() {
        return 0;
    }
    match VZ_FILES.get_ptr_mut(ve) {
        Some(n) => atomic::add(n, 1),
        None => {
            let _ = VZ_FILES.insert(ve, 1u64, 0);
        }
    }
    0
}

#[inline(always)]
fn read_i32(addr: u64) -> Option<i32> {
    // SAFETY: as in read_u64.
    unsafe { bpf_probe_read_kernel(addr as *const i32) }.ok()
}

/// privvmpages and lockedpages per VE: sizes of each process's VM_ACCOUNT and VM_LOCKED
/// mappings. Threads share their leader's mappings, so only leaders count.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task_vma")]
pub fn vz_iter_vmas(ctx: *mut IterTaskVma) -> i32 {
    // SAFETY: the kernel passes a valid iterator context.
    let (task, vma) = unsafe { ((*ctx).task, (*ctx).vma) };
    if task == 0 || vma == 0 {
        return 0;
    }
    let (Some(pid), Some(tgid)) =
        (read_i32(task + u64::from(VZ_OFF_TASK_PID.load())), read_i32(task + u64::from(VZ_OFF_TASK_TGID.load())))
    else {
        return 0;
    };
    if pid != tgid {
        return 0;
    }
    let Some(ve) = task_ve(task) else { return 0 };
    if VZ_UBC.get_ptr(ve).is_none() {
        return 0;
    }
    let (Some(start), Some(end), Some(flags)) = (
        read_u64(vma + u64::from(VZ_OFF_VMA_START.load())),
        read_u64(vma + u64::from(VZ_OFF_VMA_END.load())),
        read_u64(vma + u64::from(VZ_OFF_VMA_FLAGS.load())),
    ) else {
        return 0;
    };
    let pages = end.wrapping_sub(start) >> PAGE_SHIFT;
    let add = [if flags & VM_ACCOUNT != 0 { pages } else { 0 }, if flags & VM_LOCKED != 0 { pages } else { 0 }];
    match VZ_VMS.get_ptr_mut(ve) {
        Some(v) => {
            // SAFETY: valid map value pointer; index constant.
            unsafe {
                atomic::add(&raw mut (*v)[0], add[0]);
                atomic::add(&raw mut (*v)[1], add[1]);
            }
        }
        None => {
            let _ = VZ_VMS.insert(ve, add, 0);
        }
    }
    0
}
