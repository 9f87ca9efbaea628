//! What stands behind a beancounter row: the kernel mechanism that counts it, and whether
//! it can refuse. `vzubc -m` shows the label; `vzctl set` warns for rows it cannot enforce.
/// What stands behind a beancounter row on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// vzbpf's cgroup socket programs count and refuse (ENOBUFS).
    Bpf,
    /// The pids controller counts and refuses forks (EAGAIN).
    Pids,
    /// The memory controller counts and reclaims / OOM-kills at the limit.
    Memcg,
    /// Counted by the memory controller; this kernel has no way to refuse it.
    MemcgAccounted,
    /// The VE's own devpts instance refuses past `max=` (ENOSPC; its superblock is the
    /// host's, so VE root cannot remount it); held is every pty the VE's processes hold, on
    /// any devpts instance.
    Devpts,
    /// Counted by a BPF iterator snapshot; nothing on this kernel can refuse it.
    IterAccounted,
    /// The VE's IPC namespace kernel.shmall and its /dev/shm size (a host-owned tmpfs);
    /// vz_sysctl keeps VE root from raising shmall. Held is the memory controller's shmem
    /// count: every instance and namespace the VE makes.
    Shm,
    /// The memory cgroup's socket-memory limit (v1 `memory.kmem.tcp.limit_in_bytes`) bounds
    /// the VE's TCP buffers and datagram receive queues together; vz_setsockopt cuts
    /// SO_SNDBUF/SO_RCVBUF requests above the row's limit. Held by socket iterators.
    MemcgSock,
    /// vz_setsockopt cuts SO_SNDBUF/SO_RCVBUF requests above the row's limit (per socket);
    /// held by socket iterators.
    BpfClamp,
    /// RLIMIT_SIGPENDING of every VE process (per user of the VE); refusals counted by
    /// the tp_btf/signal_generate program.
    Rlimit,
    /// A guarantee: the memory cgroup's soft limit (v1) or memory.low (v2), so a VE within
    /// it is reclaimed last; held is RAM + swap in use, failcnt the VE's OOM kills.
    MemcgGuarantee,
    /// Counted from /proc/locks; nothing on this kernel can refuse it.
    LocksAccounted,
    /// Counted over netlink in the VE's network namespace; nothing can refuse it.
    NetfilterAccounted,
    /// Charged and uncharged by vzbpf tracepoint programs as objects come and go; nothing
    /// on this kernel can refuse it.
    BpfAccounted,
}

impl Mechanism {
    /// Short name for report columns and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Mechanism::Bpf => "bpf",
            Mechanism::Pids => "pids",
            Mechanism::Memcg => "memcg",
            Mechanism::MemcgAccounted => "memcg-acct",
            Mechanism::Devpts => "devpts",
            Mechanism::IterAccounted => "iter-acct",
            Mechanism::Shm => "ipc+tmpfs",
            Mechanism::MemcgSock => "memcg-sock+bpf",
            Mechanism::BpfClamp => "bpf-clamp",
            Mechanism::Rlimit => "rlimit+tp",
            Mechanism::MemcgGuarantee => "memcg-guar",
            Mechanism::LocksAccounted => "locks-acct",
            Mechanism::NetfilterAccounted => "nl-acct",
            Mechanism::BpfAccounted => "bpf-acct",
        }
    }

    pub fn enforces(&self) -> bool {
        !matches!(
            self,
            Mechanism::MemcgAccounted
                | Mechanism::IterAccounted
                | Mechanism::LocksAccounted
                | Mechanism::NetfilterAccounted
                | Mechanism::BpfAccounted
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(Mechanism::Pids.label(), "pids");
        assert!(!Mechanism::MemcgAccounted.enforces());
        assert!(Mechanism::Bpf.enforces());
    }
}
