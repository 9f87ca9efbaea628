//! What a VE uses that the kernel counts outside BPF: firewall entries, queued signals, file locks, SysV shm, ptys; and the limits set on them.
use super::*;

/// numiptent: netfilter rules in the VE's network namespace — nftables rules (iptables-nft
/// rules are nftables rules) plus the entries of legacy iptables tables.
pub fn netfilter_entries(init: i32) -> Option<u64> {
    in_ve_net(init, || Ok(nft_rules()? + legacy_ipt_entries())).ok()
}

/// Counts the NFT_MSG_NEWRULE replies of an NFT_MSG_GETRULE dump over netlink.
pub(super) fn nft_rules() -> io::Result<u64> {
    const NETLINK_NETFILTER: libc::c_int = 12;
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_NEWRULE: u16 = 6;
    const NFT_MSG_GETRULE: u16 = 7;
    use crate::sys::net;
    let sock = net::netlink(NETLINK_NETFILTER)?;
    let mut req = Vec::with_capacity(20);
    req.extend_from_slice(&20u32.to_ne_bytes());
    req.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE).to_ne_bytes());
    req.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    req.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]); // nfgenmsg: every family, v0
    net::send(sock.as_fd(), &req)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut rules = 0u64;
    loop {
        let n = net::recv(sock.as_fd(), &mut buf)?;
        let mut off = 0usize;
        while off + 16 <= n {
            let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
            let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            match ty as libc::c_int {
                libc::NLMSG_DONE => return Ok(rules),
                libc::NLMSG_ERROR => {
                    let errno = i32::from_ne_bytes([buf[off + 16], buf[off + 17], buf[off + 18], buf[off + 19]]);
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                _ if ty == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE => rules += 1,
                _ => {}
            }
            if len < 16 {
                break;
            }
            off += (len + 3) & !3;
        }
    }
}

/// Entries of the legacy iptables tables this namespace has loaded (IPT_SO_GET_INFO); each
/// table's built-in chain policies count, as OpenVZ counted them.
pub(super) fn legacy_ipt_entries() -> u64 {
    const IPT_SO_GET_INFO: libc::c_int = 64;
    let Ok(names) = fs::read_to_string("/proc/thread-self/net/ip_tables_names") else {
        return 0;
    };
    let Ok(sock) = crate::sys::net::raw_ipv4() else { return 0 };
    names
        .lines()
        .filter_map(|table| {
            // struct ipt_getinfo: name[32], valid_hooks, hook_entry[5], underflow[5],
            // num_entries, size.
            let mut info = [0u8; 84];
            let name = table.trim().as_bytes();
            info[..name.len().min(31)].copy_from_slice(&name[..name.len().min(31)]);
            crate::sys::net::getsockopt(sock.as_fd(), libc::IPPROTO_IP, IPT_SO_GET_INFO, &mut info)
                .ok()
                .map(|_| u64::from(u32::from_ne_bytes([info[76], info[77], info[78], info[79]])))
        })
        .sum()
}

/// Receive-buffer refusals the calling thread's network namespace counted (run it inside
/// the VE's): TCP segments dropped for a full receive queue (TcpExt TCPRcvQDrop) and UDP
/// datagrams dropped for lack of receive buffer (Udp and Udp6 RcvbufErrors).
pub fn rcvbuf_drops() -> (u64, u64) {
    let table = |file: &str, prefix: &str, key: &str| -> u64 {
        let text = fs::read_to_string(format!("/proc/thread-self/net/{file}")).unwrap_or_default();
        let mut lines = text.lines().filter(|l| l.starts_with(prefix));
        let (Some(h), Some(v)) = (lines.next(), lines.next()) else {
            return 0;
        };
        h.split_whitespace()
            .zip(v.split_whitespace())
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    let udp6 = fs::read_to_string("/proc/thread-self/net/snmp6")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Udp6RcvbufErrors").and_then(|v| v.trim().parse::<u64>().ok()))
        .unwrap_or(0);
    (table("netstat", "TcpExt:", "TCPRcvQDrop"), table("snmp", "Udp:", "RcvbufErrors") + udp6)
}

/// numsiginfo held: signals queued for the VE's users. The kernel counts them per user of
/// the VE's user namespace (what `SigQ` in /proc/PID/status shows), so each user is read
/// once, from any of its processes.
pub fn queued_signals(pids: &[i32]) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for pid in pids {
        let Ok(st) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let uid = status_field(&st, "Uid").and_then(|u| u.split_whitespace().next()).unwrap_or("");
        if !seen.insert(uid.to_string()) {
            continue;
        }
        total += status_field(&st, "SigQ").and_then(|q| q.split('/').next()?.parse::<u64>().ok()).unwrap_or(0);
    }
    total
}

/// numflock held: lines of /proc/locks (read in the host's pid namespace) whose owner is
/// one of `pids`. Waiters ("->" lines) hold nothing; OFD locks have no owning process
/// (pid -1) and cannot be attributed.
pub fn file_locks(locks: &str, pids: &[i32]) -> u64 {
    let set: std::collections::HashSet<i32> = pids.iter().copied().collect();
    locks
        .lines()
        .filter(|l| !l.contains("->"))
        .filter_map(|l| l.split_whitespace().nth(4)?.parse::<i32>().ok())
        .filter(|pid| set.contains(pid))
        .count() as u64
}

/// Sets RLIMIT_SIGPENDING (numsiginfo: soft = barrier, hard = limit) of one process (0:
/// this one); None is unlimited.
pub fn set_sigpending(pid: i32, lim: Option<(u64, u64)>) -> io::Result<()> {
    crate::sys::proc::set_sigpending(pid, lim)
}

/// Sets a VE process's RLIMIT_SIGPENDING. Host root may do that with CAP_SYS_RESOURCE; a
/// root without it (some hosts drop it) may still change a process whose ids it takes on,
/// so this retries from a thread that takes the process's uid and gid (raw syscalls: this
/// thread only). Raising a hard limit needs CAP_SYS_RESOURCE whatever the ids.
pub fn set_sigpending_of(pid: i32, lim: Option<(u64, u64)>) -> io::Result<()> {
    match set_sigpending(pid, lim) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        other => return other,
    }
    let st = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let id = |k: &str| -> io::Result<u32> {
        status_field(&st, k)
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no {k} in /proc/{pid}/status")))
    };
    let (uid, gid) = (id("Uid")?, id("Gid")?);
    std::thread::spawn(move || {
        // This thread's credentials only; the saved ids stay 0, and the thread ends right
        // after.
        crate::sys::proc::thread_setresid(Some([gid, gid, 0]), Some([uid, uid, 0]))?;
        set_sigpending(pid, lim)
    })
    .join()
    .map_err(|_| io::Error::other("prlimit thread panicked"))?
}

/// RLIMIT_SIGPENDING of a process, to hand to a process that joins its VE. Read from
/// /proc/PID/limits: prlimit(2) on a VE process needs CAP_SYS_RESOURCE over its user
/// namespace, which host root has only as the namespace's owner (it is the VE's own uid).
pub fn sigpending_of(pid: i32) -> Option<libc::rlimit> {
    parse_sigpending(&fs::read_to_string(format!("/proc/{pid}/limits")).ok()?)
}

/// The "Max pending signals" line of a /proc/PID/limits text.
pub fn parse_sigpending(limits: &str) -> Option<libc::rlimit> {
    let rest = limits.lines().find_map(|l| l.strip_prefix("Max pending signals"))?;
    let mut it = rest.split_whitespace();
    let v = |s: Option<&str>| match s? {
        "unlimited" => Some(libc::RLIM_INFINITY),
        n => n.parse().ok(),
    };
    Some(libc::rlimit { rlim_cur: v(it.next())?, rlim_max: v(it.next())? })
}

/// Sets the VE's kernel.shmall (pages of SysV shared memory). Done from the host, outside
/// the VE's cgroup: the VE itself may not write kernel/shm* (the vz_sysctl program refuses
/// it). The IPC namespace lets only its root's uid write, so this thread takes the VE
/// root's host uid (a raw setresuid: this thread only, not the whole process).
pub fn set_shmall(init: i32, pages: u64, uid_base: u32) -> Result<(), NsError> {
    in_ve_ipc(init, move || {
        // This thread's effective uid only.
        crate::sys::proc::thread_setresid(None, Some([u32::MAX, uid_base, u32::MAX]))?;
        fs::write("/proc/sys/kernel/shmall", pages.to_string())
    })
}

/// Pages of SysV shared memory in the VE's own IPC namespace plus pages used in its own
/// /dev/shm (found inside its root, no symlink followed). Only what those two instances
/// hold: the memory controller's shmem count, which sees every instance, is preferred.
pub fn own_shm_pages(init: i32) -> Option<u64> {
    use crate::sys::inroot;
    let sysv = in_ve_ipc(init, || fs::read_to_string("/proc/sysvipc/shm")).ok()?;
    let segs: u64 = sysv
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
        .map(|b| b.div_ceil(4096))
        .sum();
    let tmpfs = (|| {
        let root = inroot::ve_root(init).ok()?;
        let d = inroot::dir_fd(&root, "dev/shm", inroot::Follow::Never).ok()?;
        // fstatfs works on an O_PATH fd.
        let st = nix::sys::statfs::fstatfs(&d).ok()?;
        (st.filesystem_type().0 as i64 == inroot::TMPFS_MAGIC)
            .then(|| (st.blocks() - st.blocks_free()) * st.block_size() as u64 / 4096)
    })()
    .unwrap_or(0);
    Some(segs + tmpfs)
}

/// Pseudo-terminals of a VE: the pairs of its own devpts instance (`init`'s /dev/pts,
/// found with no symlink followed), and those its processes hold on any other (one VE
/// root mounted itself), each once, by (instance, index). Masters are known by
/// `tty-index` in their fdinfo, slaves by their minor. Only stat(2) on the fd links and
/// reads of fdinfo: nothing a VE holds is opened.
pub fn pty_count(init: Option<i32>, pids: &[i32], console: Option<u64>) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    const UNIX98_PTY_SLAVE_MAJOR: u64 = 136;
    let mut seen = std::collections::HashSet::new();
    // The pairs of the VE's own instance, whoever holds them (vzctl enter holds the
    // master of the VE's shell): its numbered entries.
    if let Some(root) = init.and_then(|i| crate::sys::inroot::ve_root(i).ok()) {
        use crate::sys::inroot;
        if let Ok(d) = inroot::dir_fd(&root, "dev/pts", inroot::Follow::Never) {
            if inroot::fstatfs_type(&d).ok() == Some(inroot::DEVPTS_MAGIC) {
                let dev = inroot::fstat(&d).map(|st| st.st_dev).unwrap_or(0);
                for e in fs::read_dir(inroot::fd_path(&d)).into_iter().flatten().flatten() {
                    // The console is the host's keeper's: counted only if the VE holds it.
                    let i = e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()).filter(|i| Some(*i) != console);
                    if let Some(i) = i {
                        seen.insert((dev, i));
                    }
                }
            }
        }
    }
    for pid in pids {
        let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for e in rd.flatten() {
            let Ok(md) = fs::metadata(e.path()) else { continue };
            if md.mode() & libc::S_IFMT != libc::S_IFCHR {
                continue;
            }
            let (major, minor) = (libc::major(md.rdev()) as u64, libc::minor(md.rdev()) as u64);
            let index = match major {
                5 if minor == 2 => {
                    let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", e.file_name().to_string_lossy()));
                    match info.ok().and_then(|t| status_field(&t, "tty-index").and_then(|v| v.parse::<u64>().ok())) {
                        Some(i) => i,
                        None => continue,
                    }
                }
                m if (UNIX98_PTY_SLAVE_MAJOR..UNIX98_PTY_SLAVE_MAJOR + 8).contains(&m) => {
                    (m - UNIX98_PTY_SLAVE_MAJOR) * 256 + minor
                }
                _ => continue,
            };
            seen.insert((md.dev(), index));
        }
    }
    seen.len() as u64
}

#[cfg(test)]
mod locks_tests {
    use super::{file_locks, parse_sigpending};

    #[test]
    fn sigpending_comes_from_the_limits_table() {
        let t = "Limit                     Soft Limit           Hard Limit           Units     \n\
                 Max processes             96362                96362                processes \n\
                 Max pending signals       50                   80                   signals   \n";
        let l = parse_sigpending(t).unwrap();
        assert_eq!((l.rlim_cur, l.rlim_max), (50, 80));
        let u =
            parse_sigpending("Max pending signals       unlimited            unlimited            signals\n").unwrap();
        assert_eq!((u.rlim_cur, u.rlim_max), (libc::RLIM_INFINITY, libc::RLIM_INFINITY));
        assert!(parse_sigpending("Max processes 5 5 processes\n").is_none());
    }

    #[test]
    fn file_locks_counts_held_locks_of_the_given_pids_only() {
        let locks = "1: POSIX  ADVISORY  WRITE 4242 00:2b:1234 0 EOF\n\
                     1: -> POSIX  ADVISORY  WRITE 4243 00:2b:1234 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4243 00:2b:1235 0 EOF\n\
                     3: OFDLCK ADVISORY  READ -1 00:2b:1236 0 EOF\n\
                     4: FLOCK  ADVISORY  WRITE 99 00:2b:1237 0 EOF\n";
        // The waiter ("->") holds nothing; OFD locks have no pid; 99 is not the VE's.
        assert_eq!(file_locks(locks, &[4242, 4243]), 2);
        assert_eq!(file_locks(locks, &[]), 0);
    }
}
