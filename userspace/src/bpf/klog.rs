//! Kernel-side `aya-log` records, forwarded into `tracing` (target `vz::kernel`).
use std::{
    os::fd::AsFd as _,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
};

use aya::Ebpf;
use aya_log::EbpfLogger;

/// `log::Log` that re-emits aya-log records as tracing events.
struct ToTracing;

impl log::Log for ToTracing {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        let msg = r.args();
        match r.level() {
            log::Level::Error => tracing::error!(target: "vz::kernel", "{msg}"),
            log::Level::Warn => tracing::warn!(target: "vz::kernel", "{msg}"),
            log::Level::Info => tracing::info!(target: "vz::kernel", "{msg}"),
            log::Level::Debug => tracing::debug!(target: "vz::kernel", "{msg}"),
            log::Level::Trace => tracing::trace!(target: "vz::kernel", "{msg}"),
        }
    }
    fn flush(&self) {}
}

/// Drains the kernel log ring buffer on a thread until dropped.
pub struct KernelLog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KernelLog {
    /// Takes the log map out of `ebpf`; call only after every program is loaded (the
    /// programs reference the map by fd while they load).
    pub fn from_loaded(ebpf: &mut Ebpf) -> Result<Self, aya_log::Error> {
        Ok(Self::spawn(EbpfLogger::init_with_logger(ebpf, ToTracing)?))
    }

    /// Attaches to the log map of an already pinned program.
    pub fn from_program_id(id: u32) -> Result<Self, aya_log::Error> {
        Ok(Self::spawn(EbpfLogger::init_from_id_with_logger(id, ToTracing)?))
    }

    fn spawn(mut logger: EbpfLogger<ToTracing>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("vz-klog".into())
            .spawn(move || {
                loop {
                    // A short timeout lets the stop flag be seen.
                    let _ = crate::sys::fd::wait_readable(logger.as_fd(), std::time::Duration::from_millis(50));
                    logger.flush();
                    if flag.load(Ordering::Relaxed) {
                        logger.flush();
                        break;
                    }
                }
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for KernelLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
