//! OpenVZ's `NETFILTER=disabled` on a stock kernel: a seccomp filter, put on a VE's init
//! before its exec (so every process of the VE inherits it, and none can take it off) and
//! on every process vzctl starts inside (`exec`, `enter`), that keeps the VE from the
//! kernel's netfilter interfaces:
//! - `socket(AF_NETLINK, *, NETLINK_NETFILTER)` (nftables, iptables-nft, conntrack tools)
//!   fails with EPROTONOSUPPORT, as on a kernel without nfnetlink;
//! - `setsockopt(SOL_IP|SOL_IPV6, IPT/IP6T/ARPT/EBT_SO_SET_*)` (legacy iptables,
//!   ip6tables, arptables, ebtables) fails with ENOPROTOOPT, as without x_tables;
//! - `io_uring_setup` fails with ENOSYS: io_uring can make sockets and set socket options
//!   without passing through the system calls above;
//! - on 32-bit x86 (int 0x80), the same on its socket and setsockopt calls, and
//!   `socketcall`'s SOCKET and SETSOCKOPT (whose arguments seccomp cannot read) with ENOSYS
//!   (a C library falls back to the direct calls); x32 system calls are refused.
//!
//! Reading tables (getsockopt) and everything else is untouched: there is nothing in them.
use std::io;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_BIT: u32 = 0x4000_0000;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

// struct seccomp_data: nr, arch, instruction_pointer, args[6] (each 64 bits; the low half
// first on x86).
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg(i: u32) -> u32 {
    16 + 8 * i
}

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

const fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}
const fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: JEQ_K, jt, jf, k }
}
const fn ret_errno(e: i32) -> libc::sock_filter {
    stmt(RET_K, RET_ERRNO | e as u32)
}

const AF_NETLINK: u32 = 16;
const NETLINK_NETFILTER: u32 = 12;
const SOL_IP: u32 = 0;
const SOL_IPV6: u32 = 41;

/// The system call numbers the filter looks at, per ABI.
struct Nrs {
    socket: u32,
    setsockopt: u32,
    io_uring_setup: u32,
}
const X86_64: Nrs = Nrs { socket: 41, setsockopt: 54, io_uring_setup: 425 };
const I386: Nrs = Nrs { socket: 359, setsockopt: 366, io_uring_setup: 425 };
const I386_SOCKETCALL: u32 = 102;
const SYS_SOCKET: u32 = 1;
const SYS_SETSOCKOPT: u32 = 14;

/// The checks of one ABI, entered with the syscall number loaded; falls through to the
/// Every path ends in a return: allow when nothing matched.
const fn abi_block(n: &Nrs) -> [libc::sock_filter; BLOCK] {
    [
        // 0
        jeq(n.io_uring_setup, 0, 1),
        ret_errno(libc::ENOSYS),
        // 2: socket(AF_NETLINK, _, NETLINK_NETFILTER)
        jeq(n.socket, 0, 6),
        stmt(LD_W_ABS, arg(0)),
        jeq(AF_NETLINK, 0, 3),
        stmt(LD_W_ABS, arg(2)),
        jeq(NETLINK_NETFILTER, 0, 1),
        ret_errno(libc::EPROTONOSUPPORT),
        // 8: not ours: reload nr for what follows (jumps land on 9 with A = arg).
        stmt(LD_W_ABS, NR),
        // 9: setsockopt(SOL_IP|SOL_IPV6, one of the SET options)
        jeq(n.setsockopt, 0, 10),
        stmt(LD_W_ABS, arg(1)),
        jeq(SOL_IP, 1, 0),
        jeq(SOL_IPV6, 0, 7),
        stmt(LD_W_ABS, arg(2)),
        // 14: IPT_SO_SET_REPLACE/ADD_COUNTERS (= IP6T_), ARPT_ the same, EBT_SO_SET_*;
        // no match (and 9's and 12's) lands on 20.
        jeq(64, 6, 0),
        jeq(65, 5, 0),
        jeq(96, 4, 0),
        jeq(97, 3, 0),
        jeq(128, 2, 0),
        jeq(129, 1, 0),
        // 20
        stmt(RET_K, RET_ALLOW),
        ret_errno(libc::ENOPROTOOPT),
    ]
}

const BLOCK: usize = 22;
const LEN: usize = 3 + BLOCK + 2 + 7 + BLOCK + 1;

/// The whole program.
const fn program() -> [libc::sock_filter; LEN] {
    let mut p = [stmt(RET_K, RET_ALLOW); LEN];
    let x86_64 = abi_block(&X86_64);
    let i386 = abi_block(&I386);
    // 0: arch
    p[0] = stmt(LD_W_ABS, ARCH);
    // 1: x86_64 -> 2, else skip the x86_64 part (3 + BLOCK + 2 - 2 instructions ahead).
    p[1] = jeq(AUDIT_ARCH_X86_64, 0, (1 + BLOCK + 2) as u8);
    p[2] = stmt(LD_W_ABS, NR);
    // x32 system calls (the same arch, numbers with X32_BIT): refused.
    p[3] = libc::sock_filter { code: JGE_K, jt: 0, jf: 1, k: X32_BIT };
    p[4] = ret_errno(libc::ENOSYS);
    let mut i = 0;
    while i < BLOCK {
        p[5 + i] = x86_64[i];
        i += 1;
    }
    let b = 3 + BLOCK + 2;
    // i386 part: arch check, socketcall, then the common block.
    // Neither arch: the last instruction (allow).
    p[b] = jeq(AUDIT_ARCH_I386, 0, (6 + BLOCK) as u8);
    p[b + 1] = stmt(LD_W_ABS, NR);
    p[b + 2] = jeq(I386_SOCKETCALL, 0, 4);
    p[b + 3] = stmt(LD_W_ABS, arg(0));
    p[b + 4] = jeq(SYS_SOCKET, 1, 0);
    p[b + 5] = jeq(SYS_SETSOCKOPT, 0, 1);
    p[b + 6] = ret_errno(libc::ENOSYS);
    // b + 2's skip lands here with the number loaded; b + 5's with a socketcall's subcall
    // number, which never equals one the block looks for (it allows).
    let c = b + 7;
    let mut j = 0;
    while j < BLOCK {
        p[c + j] = i386[j];
        j += 1;
    }
    p
}

static FILTER: [libc::sock_filter; LEN] = program();
// A classic BPF jump reaches at most 255 instructions ahead, and sock_fprog's length is 16 bits.
const _: () = assert!(LEN < 256);

/// Puts the filter on this process (and so on all it starts). Needs CAP_SYS_ADMIN in its
/// user namespace (a VE's root before it drops any) or no_new_privs. Async-signal-safe.
pub fn deny_netfilter() -> io::Result<()> {
    let prog = libc::sock_fprog { len: LEN as u16, filter: FILTER.as_ptr().cast_mut() };
    // SAFETY: prctl with a pointer to a valid, 'static filter program.
    let r = unsafe {
        libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER as libc::c_ulong, &prog as *const libc::sock_fprog)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether process `pid` runs under a seccomp filter (`Seccomp: 2` in its status): a VE's
/// init with one is a VE kept from netfilter, and whoever enters it gets the filter too.
pub fn filtered(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| s.lines().any(|l| l.strip_prefix("Seccomp:").is_some_and(|v| v.trim() == "2")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every jump lands inside the program, and every path ends in a return.
    #[test]
    fn the_program_is_well_formed() {
        for (i, ins) in FILTER.iter().enumerate() {
            if ins.code == JEQ_K || ins.code == JGE_K {
                assert!(i + 1 + (ins.jt as usize) < LEN && i + 1 + (ins.jf as usize) < LEN, "jump at {i}");
            }
        }
        assert_eq!(FILTER[LEN - 1].code, RET_K);
        // The x86_64 part's skip lands on the i386 part's arch check.
        assert_eq!(2 + FILTER[1].jf as usize, 3 + BLOCK + 2);
        assert_eq!(FILTER[3 + BLOCK + 2].k, AUDIT_ARCH_I386);
        // ...and its skip on the program's last instruction, an allow.
        assert_eq!(3 + BLOCK + 2 + 1 + FILTER[3 + BLOCK + 2].jf as usize, LEN - 1);
        assert_eq!(FILTER[LEN - 1].k, RET_ALLOW);
    }
}
