//! numsiginfo refusals. The VE's RLIMIT_SIGPENDING refuses queued signals (per user inside
//! the VE); this `tp_btf/signal_generate` program counts each refusal the kernel reports
//! (an RT signal not queued, or a signal delivered without its info) in the failcnt of the
//! VE the target task belongs to, and streams it to the events ring buffer.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use vz_common::res;

use crate::{
    iter::task_ve,
    maps::{VZ_LIMITS, VZ_UBC},
    sock::report,
    ubc::atomic,
};

/// `enum trace_signal_ret`: the sigqueue allocation failed.
const TRACE_SIGNAL_OVERFLOW_FAIL: i32 = 3;
const TRACE_SIGNAL_LOSE_INFO: i32 = 4;

#[btf_tracepoint(function = "signal_generate")]
pub fn vz_signal(ctx: BtfTracePointContext) -> i32 {
    // signal_generate(int sig, struct kernel_siginfo *info, struct task_struct *task,
    //                 int group, int result)
    let result: i32 = ctx.arg(4);
    if result != TRACE_SIGNAL_OVERFLOW_FAIL && result != TRACE_SIGNAL_LOSE_INFO {
        return 0;
    }
    let task: u64 = ctx.arg(2);
    let Some(ve) = task_ve(task) else { return 0 };
    let Some(usage) = VZ_UBC.get_ptr_mut(ve) else {
        return 0;
    };
    // SAFETY: valid map value pointer, constant index.
    atomic::add(unsafe { &raw mut (*usage).res[res::NUMSIGINFO as usize].failcnt }, 1);
    if let Some(l) = VZ_LIMITS.get_ptr(ve) {
        // SAFETY: valid map value pointer, constant index.
        let l = unsafe { (*l).res[res::NUMSIGINFO as usize] };
        // A refusal means the target's queue was at its limit.
        report(ve, res::NUMSIGINFO, l.barrier, l.barrier, l.limit);
    }
    0
}
