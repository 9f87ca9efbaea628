//! A VE's init exiting, and why: `reboot` inside the VE (the kernel kills the pid
//! namespace's init and keeps SIGHUP in `pid_namespace.reboot`), `halt` (SIGINT there), or
//! anything else (0). Streamed to the events ring so vzeventd restarts a rebooted VE, as
//! OpenVZ's vzevent-reboot did. Process exits are rare next to syscalls; threads and tasks
//! that are no namespace's init leave after two loads.
use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
    Global,
};
use vz_common::{UbcEvent, EVENT_VE_EXIT};

use crate::{
    iter::{read_u64, task_ve},
    maps::{VZ_EVENTS, VZ_UBC, VZ_VEIDS},
};

#[unsafe(no_mangle)]
pub static VZ_OFF_TASK_THREAD_PID: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_TASK_EXIT_CODE: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_PID_LEVEL: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_PID_NUMBERS: Global<u32> = Global::new(0);
/// `struct upid { int nr; struct pid_namespace *ns; }`: the offset of `ns`; an entry of
/// `numbers[]` is that plus a pointer long.
#[unsafe(no_mangle)]
pub static VZ_OFF_UPID_NS: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static VZ_OFF_PIDNS_REBOOT: Global<u32> = Global::new(0);

/// Nesting deeper than this is no VE's init.
const MAX_LEVEL: u32 = 32;

#[inline(always)]
fn read_i32(addr: u64) -> Option<i32> {
    // SAFETY: probe read of kernel memory; a bad address returns an error, not a fault.
    unsafe { bpf_probe_read_kernel(addr as *const i32) }.ok()
}

#[btf_tracepoint(function = "sched_process_exit")]
pub fn vz_exit(ctx: BtfTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid != pid_tgid as u32 {
        return 0;
    }
    let task: u64 = ctx.arg(0);
    let Some(pid) = read_u64(task + u64::from(VZ_OFF_TASK_THREAD_PID.load())) else { return 0 };
    let Some(level) = read_i32(pid + u64::from(VZ_OFF_PID_LEVEL.load())) else { return 0 };
    let level = level as u32;
    if level == 0 || level > MAX_LEVEL {
        return 0;
    }
    let ns_off = u64::from(VZ_OFF_UPID_NS.load());
    let upid = pid + u64::from(VZ_OFF_PID_NUMBERS.load()) + u64::from(level) * (ns_off + 8);
    if read_i32(upid) != Some(1) {
        return 0;
    }
    let Some(ve) = task_ve(task) else { return 0 };
    if VZ_UBC.get_ptr(ve).is_none() {
        return 0;
    }
    let Some(ns) = read_u64(upid + ns_off) else { return 0 };
    let reboot = read_i32(ns + u64::from(VZ_OFF_PIDNS_REBOOT.load())).unwrap_or(0);
    let code = read_i32(task + u64::from(VZ_OFF_TASK_EXIT_CODE.load())).unwrap_or(0);
    // The VEID travels with the event: vzctl stop may drop the VE's records before
    // vzeventd reads it.
    // SAFETY: the value is copied out at once.
    let veid = unsafe { VZ_VEIDS.get(ve) }.copied().unwrap_or(0);
    if let Some(mut e) = VZ_EVENTS.reserve(0) {
        let comm = bpf_get_current_comm().unwrap_or([0; 16]);
        e.write(UbcEvent {
            ve,
            held: reboot as u32 as u64,
            barrier: code as u32 as u64,
            limit: u64::from(level) | u64::from(veid) << 32,
            res: EVENT_VE_EXIT,
            pid: tgid,
            comm: comm.map(|c| c),
        });
        e.submit(0);
    }
    0
}
