//! The seam between the verbs and the host, as youki's `Syscall`: the mounts a verb makes
//! on the host, and the named points between its steps, go through a [`Syscall`]. Unit
//! tests put [`TestHelperSyscall`] there to see every call and to fail any of them without
//! root. In a debug build (what `cargo xtask test` runs) the real one also reads
//! `VZ_FAIL_AT` / `VZ_KILL_AT` once, so the integration tests can break a real vzctl at
//! any step; a release build has no injection compiled in.
use std::{any::Any, io, path::Path};

use super::mount::{MntFlags, MsFlags};

pub trait Syscall: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    /// mount(2).
    fn mount(
        &self,
        src: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// umount2(2).
    fn umount(&self, target: &Path, flags: MntFlags) -> io::Result<()>;
    /// A named point between two steps of a verb (`create:private`, `start:net`...): where
    /// a test makes the verb fail or die, to prove what it rolls back or repairs.
    fn step(&self, name: &str) -> io::Result<()>;

    /// Changes the propagation or flags of the mount at `target`.
    fn remount(&self, target: &Path, flags: MsFlags) -> io::Result<()> {
        self.mount(None, target, None, flags, None)
    }
}

/// The host's kernel. In a debug build it also fails a verb at one named step
/// (`VZ_FAIL_AT=<step>`) or SIGKILLs it there (`VZ_KILL_AT=<step>`), as read once by
/// [`create_syscall`].
#[derive(Default)]
pub struct LinuxSyscall {
    #[cfg(debug_assertions)]
    fail_at: Option<String>,
    #[cfg(debug_assertions)]
    kill_at: Option<String>,
}

impl Syscall for LinuxSyscall {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn mount(
        &self,
        src: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        super::mount::mount(src, target, fstype, flags, data)
    }
    fn umount(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        super::mount::umount(target, flags)
    }
    fn step(&self, name: &str) -> io::Result<()> {
        tracing::trace!(step = name, "step");
        #[cfg(debug_assertions)]
        {
            if self.kill_at.as_deref() == Some(name) {
                let _ = super::proc::kill(std::process::id() as i32, nix::sys::signal::Signal::SIGKILL);
            }
            if self.fail_at.as_deref() == Some(name) {
                return Err(io::Error::other("injected failure (VZ_FAIL_AT)"));
            }
        }
        Ok(())
    }
}

/// The `Syscall` a controller uses: the kernel's (with a debug build's fault injection
/// when one is asked for).
pub fn create_syscall() -> Box<dyn Syscall> {
    Box::new(LinuxSyscall {
        #[cfg(debug_assertions)]
        fail_at: std::env::var("VZ_FAIL_AT").ok(),
        #[cfg(debug_assertions)]
        kill_at: std::env::var("VZ_KILL_AT").ok(),
    })
}

/// One call a [`TestHelperSyscall`] saw.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        src: Option<std::path::PathBuf>,
        target: std::path::PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount {
        target: std::path::PathBuf,
        flags: MntFlags,
    },
    Step(String),
}

/// Which calls a [`TestHelperSyscall`] fails.
#[cfg(test)]
type Picker = Box<dyn Fn(&Call) -> bool + Send>;

/// Records every call and succeeds, except the calls `fail_when` picks (youki's
/// TestHelperSyscall).
#[cfg(test)]
#[derive(Default)]
pub struct TestHelperSyscall {
    calls: std::sync::Mutex<Vec<Call>>,
    fail: std::sync::Mutex<Option<Picker>>,
}

#[cfg(test)]
impl TestHelperSyscall {
    /// Every later call `pick` chooses fails with EPERM.
    pub fn fail_when(&self, pick: impl Fn(&Call) -> bool + Send + 'static) {
        *self.fail.lock().expect("lock") = Some(Box::new(pick));
    }
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }
    fn record(&self, c: Call) -> io::Result<()> {
        let fails = self.fail.lock().expect("lock").as_ref().is_some_and(|f| f(&c));
        self.calls.lock().expect("lock").push(c);
        if fails {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        Ok(())
    }
}

#[cfg(test)]
impl Syscall for TestHelperSyscall {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn mount(
        &self,
        src: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.record(Call::Mount {
            src: src.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        })
    }
    fn umount(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        self.record(Call::Umount { target: target.to_path_buf(), flags })
    }
    fn step(&self, name: &str) -> io::Result<()> {
        self.record(Call::Step(name.to_string()))
    }
}
