//! Namespaces: starting a VE's init in new namespaces, and running commands inside a
//! running VE.
//!
//! Starting uses a re-exec of this binary (`vzctl __ve-init`), so the namespace work runs in
//! a fresh single-threaded process (as runc/youki do): stage 1 unshares every namespace at
//! once (the user namespace first, owning the rest), waits for the parent to write its id
//! maps, then forks the VE's PID 1, which builds the VE's mounts, pivots into the VE root
//! and execs the template's init. Errors travel back on a close-on-exec pipe: EOF without an
//! error line means init is running.
//!
//! `init` starts PID 1, `enter` runs things in a running VE, `usage` reads and limits
//! what the kernel counts per VE outside BPF.
use std::{
    fs,
    io::{self, BufRead as _, BufReader, Write as _},
    os::{
        fd::{AsFd as _, OwnedFd, RawFd},
        unix::process::CommandExt as _,
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use nix::{mount::MsFlags, sched::CloneFlags, unistd::ForkResult};

use crate::cgroup::Cgroups;
use std::os::unix::fs::OpenOptionsExt as _;

mod enter;
mod init;
mod restore;
mod usage;

pub use self::{enter::*, init::*, restore::*, usage::*};

#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("VE init did not start: {0}")]
    Init(String),
    #[error("{op}: {source}")]
    Sys { op: String, source: io::Error },
}

impl NsError {
    pub fn kind(&self) -> crate::kind::Kind {
        crate::kind::Kind::EnvCreate
    }
}

fn sys(op: impl Into<String>) -> impl FnOnce(io::Error) -> NsError {
    let op = op.into();
    move |source| NsError::Sys { op, source }
}

/// Size of each VE's id range (VE ids 0..65535).
pub const ID_RANGE: u32 = 65536;

/// What to start as a VE's PID 1.
#[derive(Debug, Clone)]
pub struct InitSpec {
    /// VE_ROOT, already mounted.
    pub root: PathBuf,
    pub hostname: String,
    /// argv of PID 1 (the template's /sbin/init, or a shell for runscript).
    pub argv: Vec<String>,
    /// The VE's host id ranges (its root is host uid `uid_base`).
    pub uid_base: u32,
    pub gid_base: u32,
    /// PID 1's stdio: pipes relayed by vzctl (runscript), else the VE's own /dev/null.
    pub relay: bool,
    /// numpty: most pseudo-terminals the VE's devpts instance hands out (None: no limit).
    pub pty_max: Option<u64>,
    /// shmpages: size of the VE's /dev/shm in bytes (None: tmpfs's default, half of RAM).
    pub shm_bytes: Option<u64>,
    /// The LXCFS mount whose files init binds over its own /proc and /sys ones.
    pub lxcfs: Option<PathBuf>,
    /// Capabilities (bits) dropped from init's bounding set (CAPABILITY ...:off).
    pub cap_drop: u64,
    /// A console pty (/dev/console, /dev/tty1) whose master vzctl takes (`vzctl console`).
    pub console: bool,
    /// NETFILTER=disabled: init (so the whole VE) runs under `seccomp::deny_netfilter`.
    pub netfilter_off: bool,
}

/// Mount options of a VE's /dev/shm; `bytes` is its shmpages limit. It is always mounted
/// with a size: tmpfs cannot be given one later if it had none.
pub fn shm_options(bytes: Option<u64>, uid: u32, gid: u32) -> String {
    format!("mode=1777,uid={uid},gid={gid},{}", shm_size(bytes))
}

fn shm_size(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!("size={}", b.max(4096)),
        None => "size=50%".into(),
    }
}

/// devpts' own ceiling (NR_UNIX98_PTY_MAX): "no numpty limit".
const PTY_MAX_UNLIMITED: u64 = 1 << 20;

/// Mount options of a VE's devpts instance; `max` is its numpty limit; `gid` is the host
/// gid of the VE's tty group (5 inside).
pub fn devpts_options(max: Option<u64>, gid: u32) -> String {
    format!(
        "newinstance,ptmxmode=0666,mode=0620,gid={gid},max={}",
        max.unwrap_or(PTY_MAX_UNLIMITED).min(PTY_MAX_UNLIMITED)
    )
}

/// The value of one `Key:` line of a /proc/PID/status text.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')).map(str::trim)
}

/// The VE's own pids (innermost NSpid) of its processes stopped by a signal (job control):
/// what a restore must leave stopped when it lets the rest go on.
pub fn stopped_ve_pids(cg: &dyn Cgroups, veid: u32) -> Vec<u32> {
    cg.procs(veid)
        .into_iter()
        .filter_map(|pid| {
            let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status_field(&s, "State")?.starts_with('T').then_some(())?;
            innermost_of(&s)
        })
        .collect()
}

/// A process's pid in its innermost pid namespace.
pub fn innermost_pid(pid: i32) -> Option<u32> {
    innermost_of(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The last pid of a /proc/PID/status text's NSpid line.
fn innermost_of(status: &str) -> Option<u32> {
    status_field(status, "NSpid")?.split_whitespace().last()?.parse().ok()
}

/// Host pid of a running VE's PID 1: the process of its cgroup whose innermost pid is 1.
pub fn find_init(cg: &dyn Cgroups, veid: u32) -> Option<i32> {
    cg.procs(veid).into_iter().find(|pid| {
        fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            status_field(&s, "NSpid").is_some_and(|v| {
                let f: Vec<&str> = v.split_whitespace().collect();
                f.len() >= 2 && f.last() == Some(&"1")
            })
        })
    })
}
