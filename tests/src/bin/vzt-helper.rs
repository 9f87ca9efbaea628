//! Test helper: a process the integration tests place inside a VE's cgroup and drive over
//! stdin/stdout, one command per line. It exists so the test harness itself never moves
//! into a VE cgroup (that would move every test thread with it).
//!
//! Commands (reply `ok ...` or `err <errno>`):
//!   open tcp|tcp6|udp|udp6|raw|unix     create a socket, reply its fd
//!   close FD
//!   listen                              TCP listener on 127.0.0.1, reply `ok FD PORT`
//!   accept FD                           reply the accepted fd
//!   fork                                child that keeps every fd and sleeps; reply its pid
//!   flood THREADS ITERS HOLD            threads open sockets (TCP and UDP in turn), closing
//!                                       all each time HOLD are open;
//!                                       reply `ok GRANTED REFUSED`
//!   probe MILLIS                        try opening TCP sockets for MILLIS ms (closing
//!                                       any granted one); reply `ok GRANTED REFUSED`
//!   count                               open socket fds of this process
//!
//! One-shot workloads run inside a (Debian) VE, each printing one `ok ...` line to stdout and
//! then holding what it made for HOLD seconds:
//!   sockbuf CONNS BYTES HOLD   CONNS loopback TCP connections whose peer never reads,
//!                              each written (non-blocking) up to BYTES; a UDP socket
//!                              that never reads gets 1 KiB datagrams; then one socket asks
//!                              for a 64 MiB SO_SNDBUF. Reply `ok WRITTEN SNDBUF`.
//!   sigq N HOLD                queue up to N SIGRTMIN to itself with sigqueue (blocked);
//!                              reply `ok QUEUED ERRNO` (ERRNO of the first refusal, or 0)
//!   locks N HOLD               N flock()s and N fcntl() record locks on files in /tmp
//!   bind ADDR PORT             bind a TCP socket to ADDR (IPv4 or IPv6): `ok` or `err ERRNO`
//!   udp DST PORT N SIZE        send N UDP datagrams of SIZE bytes to DST:PORT (IPv4)
//!   spoof-raw SRC DST PORT     one UDP datagram with source SRC, through a raw socket
//!   spoof-packet IF SRC DST PORT   the same through a packet socket on interface IF
//!   udp-echo PORT              answer every UDP datagram on PORT (IPv4), forever
//!   udp-pingpong DST PORT N    N request/response round trips of 64 bytes; prints ns each
//!
//! Other modes: `bench KIND ITERS` prints ns per socket create+close (KIND tcp, udp, ...),
//! per fork+exit+wait (fork) or per open+close (open); `nobpf CMD...` runs
//! CMD with bpf(2) failing as ENOSYS (a kernel without BPF, as seen from userspace).
use std::{
    io::{BufRead as _, Write as _},
    time::{Duration, Instant},
};

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn open(kind: &str) -> Result<i32, i32> {
    let (domain, ty, proto) = match kind {
        "tcp" => (libc::AF_INET, libc::SOCK_STREAM, 0),
        "tcp6" => (libc::AF_INET6, libc::SOCK_STREAM, 0),
        "udp" => (libc::AF_INET, libc::SOCK_DGRAM, 0),
        "udp6" => (libc::AF_INET6, libc::SOCK_DGRAM, 0),
        "raw" => (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        "unix" => (libc::AF_UNIX, libc::SOCK_STREAM, 0),
        _ => return Err(libc::EINVAL),
    };
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd)
    }
}

fn close(fd: i32) {
    // SAFETY: closing an fd this process opened.
    unsafe { libc::close(fd) };
}

fn listen() -> Result<(i32, u16), i32> {
    let fd = open("tcp")?;
    // SAFETY: sockaddr_in is plain data; lengths match.
    unsafe {
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        if libc::bind(fd, (&raw const sa).cast(), len) != 0 || libc::listen(fd, 16) != 0 {
            return Err(errno());
        }
        let mut len = len;
        libc::getsockname(fd, (&raw mut sa).cast(), &mut len);
        Ok((fd, u16::from_be(sa.sin_port)))
    }
}

fn count_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path()).map(|l| l.to_string_lossy().starts_with("socket:")).unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

fn flood(threads: usize, iters: usize, hold: usize) -> (u64, u64) {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let (mut ok, mut refused) = (0u64, 0u64);
                let mut held = Vec::new();
                for i in 0..iters {
                    let kind = if (i + t) % 2 == 0 { "tcp" } else { "udp" };
                    match open(kind) {
                        Ok(fd) => {
                            ok += 1;
                            held.push(fd);
                        }
                        Err(_) => refused += 1,
                    }
                    if held.len() >= hold {
                        for fd in held.drain(..) {
                            close(fd);
                        }
                    }
                }
                for fd in held {
                    close(fd);
                }
                (ok, refused)
            })
        })
        .collect();
    handles.into_iter().fold((0, 0), |(a, b), h| {
        let (x, y) = h.join().unwrap_or((0, 0));
        (a + x, b + y)
    })
}

fn probe(ms: u64) -> (u64, u64) {
    let end = Instant::now() + Duration::from_millis(ms);
    let (mut ok, mut refused) = (0, 0);
    while Instant::now() < end {
        match open("tcp") {
            Ok(fd) => {
                ok += 1;
                close(fd);
            }
            Err(_) => refused += 1,
        }
    }
    (ok, refused)
}

fn serve() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let w: Vec<&str> = line.split_whitespace().collect();
        let arg = |i: usize| w.get(i).and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
        let reply = match w.first().copied() {
            Some("open") => match open(w.get(1).copied().unwrap_or("")) {
                Ok(fd) => format!("ok {fd}"),
                Err(e) => format!("err {e}"),
            },
            Some("close") => {
                close(arg(1) as i32);
                "ok".into()
            }
            Some("listen") => match listen() {
                Ok((fd, port)) => format!("ok {fd} {port}"),
                Err(e) => format!("err {e}"),
            },
            Some("accept") => {
                // SAFETY: accept on an fd the test gave us.
                let fd = unsafe {
                    libc::accept4(arg(1) as i32, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
                };
                if fd < 0 {
                    format!("err {}", errno())
                } else {
                    format!("ok {fd}")
                }
            }
            Some("fork") => {
                // SAFETY: this process is single-threaded here (flood threads are joined).
                match unsafe { libc::fork() } {
                    0 => loop {
                        // SAFETY: child keeps the inherited fds until killed.
                        unsafe { libc::pause() };
                    },
                    -1 => format!("err {}", errno()),
                    pid => format!("ok {pid}"),
                }
            }
            Some("flood") => {
                let (ok, refused) = flood(arg(1) as usize, arg(2) as usize, arg(3).max(1) as usize);
                format!("ok {ok} {refused}")
            }
            Some("probe") => {
                let (ok, refused) = probe(arg(1) as u64);
                format!("ok {ok} {refused}")
            }
            Some("count") => format!("ok {}", count_sockets()),
            Some("exit") | None => break,
            Some(other) => format!("err unknown command {other}"),
        };
        if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
}

fn bench(kind: &str, iters: u64) {
    let start = Instant::now();
    if kind == "fork" {
        for _ in 0..iters {
            // SAFETY: the child exits at once; the parent reaps it.
            match unsafe { libc::fork() } {
                0 => unsafe { libc::_exit(0) },
                -1 => {
                    eprintln!("fork: errno {}", errno());
                    std::process::exit(1);
                }
                pid => unsafe {
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                },
            }
        }
        println!("{}", start.elapsed().as_nanos() as u64 / iters.max(1));
        return;
    }
    if kind == "open" || kind == "devnull" {
        // devnull: a device node, which the kernel asks the cgroup_device programs about.
        let path = if kind == "open" { c"/proc/self/stat" } else { c"/dev/null" };
        for _ in 0..iters {
            // SAFETY: open and close of a file every process may read.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                eprintln!("open: errno {}", errno());
                std::process::exit(1);
            }
            close(fd);
        }
        println!("{}", start.elapsed().as_nanos() as u64 / iters.max(1));
        return;
    }
    for _ in 0..iters {
        match open(kind) {
            Ok(fd) => close(fd),
            Err(e) => {
                eprintln!("socket: errno {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{}", start.elapsed().as_nanos() as u64 / iters.max(1));
}

/// Classic-BPF seccomp filter: bpf(2) fails with ENOSYS, everything else is allowed.
fn deny_bpf_syscall() -> Result<(), i32> {
    const RET_ERRNO: u32 = 0x0005_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    let nr = libc::SYS_bpf as u32;
    let filter = [
        libc::sock_filter { code: 0x20, jt: 0, jf: 0, k: 0 },  // ld [nr]
        libc::sock_filter { code: 0x15, jt: 0, jf: 1, k: nr }, // jeq nr
        libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: RET_ERRNO | libc::ENOSYS as u32 },
        libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: RET_ALLOW },
    ];
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
    // SAFETY: prctl with a valid filter program that outlives the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog) != 0
        {
            return Err(errno());
        }
    }
    Ok(())
}

fn loopback(port: u16) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_port = port.to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    sa
}

const SA_LEN: u32 = std::mem::size_of::<libc::sockaddr_in>() as u32;

fn sockbuf(conns: usize, bytes: usize) -> Result<String, i32> {
    let (lfd, port) = listen()?;
    let mut written = 0usize;
    let chunk = vec![7u8; 64 * 1024];
    let mut keep = vec![lfd];
    for _ in 0..conns {
        let c = open("tcp")?;
        let sa = loopback(port);
        // SAFETY: valid address and length.
        if unsafe { libc::connect(c, (&raw const sa).cast(), SA_LEN) } != 0 {
            return Err(errno());
        }
        // SAFETY: accept on our listener.
        let a = unsafe { libc::accept(lfd, std::ptr::null_mut(), std::ptr::null_mut()) };
        if a < 0 {
            return Err(errno());
        }
        // SAFETY: plain fcntl.
        unsafe { libc::fcntl(c, libc::F_SETFL, libc::O_NONBLOCK) };
        let mut mine = 0;
        let mut stalls = 0;
        while mine < bytes && stalls < 20 {
            // SAFETY: writing from a valid buffer.
            let n = unsafe { libc::send(c, chunk.as_ptr().cast(), chunk.len().min(bytes - mine), libc::MSG_NOSIGNAL) };
            if n > 0 {
                mine += n as usize;
                stalls = 0;
            } else {
                // Loopback moves data on at once; a few short waits tell a full buffer
                // from a momentary one.
                stalls += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        written += mine;
        keep.extend([c, a]);
    }
    // Datagrams to a socket that never reads: they stay in its receive queue.
    let r = open("udp")?;
    let rs = loopback(0);
    // SAFETY: valid address and length.
    if unsafe { libc::bind(r, (&raw const rs).cast(), SA_LEN) } != 0 {
        return Err(errno());
    }
    let mut got: libc::sockaddr_in = loopback(0);
    let mut len = SA_LEN;
    // SAFETY: getsockname into a sockaddr_in.
    unsafe { libc::getsockname(r, (&raw mut got).cast(), &mut len) };
    let u = open("udp")?;
    for _ in 0..2048 {
        // SAFETY: sending from a valid buffer to a valid address.
        unsafe { libc::sendto(u, chunk.as_ptr().cast(), 1024, 0, (&raw const got).cast(), SA_LEN) };
    }
    keep.extend([r, u]);
    let big: libc::c_int = 64 << 20;
    let mut now: libc::c_int = 0;
    let mut l = 4u32;
    // SAFETY: set/getsockopt with int-sized values.
    unsafe {
        libc::setsockopt(u, libc::SOL_SOCKET, libc::SO_SNDBUF, (&raw const big).cast(), 4);
        libc::getsockopt(u, libc::SOL_SOCKET, libc::SO_SNDBUF, (&raw mut now).cast(), &mut l);
    }
    std::mem::forget(keep);
    Ok(format!("ok {written} {now}"))
}

fn sigq(n: usize) -> Result<String, i32> {
    let sig = libc::SIGRTMIN();
    // SAFETY: sigset manipulation on a local set; blocking keeps the signals queued.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    for i in 0..n {
        // SAFETY: rt_sigqueueinfo to ourselves with a filled siginfo (si_code SI_QUEUE, so
        // the queue limit applies as for sigqueue(3)).
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            info.si_signo = sig;
            info.si_code = -1;
            libc::syscall(libc::SYS_rt_sigqueueinfo, me, sig, &info)
        };
        if r != 0 {
            return Ok(format!("ok {i} {}", errno()));
        }
    }
    Ok(format!("ok {n} 0"))
}

fn locks(n: usize) -> Result<String, i32> {
    let mut fds = Vec::new();
    for i in 0..2 * n {
        let path = std::ffi::CString::new(format!("/tmp/vzt-lock-{i}")).map_err(|_| libc::EINVAL)?;
        // SAFETY: open with a valid path.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600) };
        if fd < 0 {
            return Err(errno());
        }
        let r = if i < n {
            // SAFETY: flock on our fd.
            unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) }
        } else {
            // SAFETY: a whole-file POSIX write lock on our fd.
            unsafe {
                let mut fl: libc::flock = std::mem::zeroed();
                fl.l_type = libc::F_WRLCK as i16;
                fl.l_whence = libc::SEEK_SET as i16;
                libc::fcntl(fd, libc::F_SETLK, &fl)
            }
        };
        if r != 0 {
            return Err(errno());
        }
        fds.push(fd);
    }
    std::mem::forget(fds);
    Ok(format!("ok {}", 2 * n))
}

fn bind_to(addr: &str, port: u16) -> Result<String, i32> {
    let ip: std::net::IpAddr = addr.parse().map_err(|_| libc::EINVAL)?;
    let fd = open(if ip.is_ipv4() { "tcp" } else { "tcp6" })?;
    // SAFETY: sockaddr structs are plain data; lengths match the family.
    let r = unsafe {
        match ip {
            std::net::IpAddr::V4(a) => {
                let mut sa = loopback(port);
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
                libc::bind(fd, (&raw const sa).cast(), SA_LEN)
            }
            std::net::IpAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as u16;
                sa.sin6_port = port.to_be();
                sa.sin6_addr.s6_addr = a.octets();
                libc::bind(fd, (&raw const sa).cast(), std::mem::size_of::<libc::sockaddr_in6>() as u32)
            }
        }
    };
    let e = errno();
    close(fd);
    if r == 0 {
        Ok("ok".into())
    } else {
        Err(e)
    }
}

fn ipv4(s: &str) -> Result<[u8; 4], i32> {
    s.parse::<std::net::Ipv4Addr>().map(|a| a.octets()).map_err(|_| libc::EINVAL)
}

fn udp_send(dst: &str, port: u16, n: usize, size: usize) -> Result<String, i32> {
    let fd = open("udp")?;
    let mut sa = loopback(port);
    sa.sin_addr.s_addr = u32::from_ne_bytes(ipv4(dst)?);
    send_datagrams(fd, (&raw const sa).cast(), SA_LEN, n, size)
}

/// Sends `n` datagrams of `size` bytes from `fd` to the address `sa` (of `len` bytes),
/// then closes `fd`.
fn send_datagrams(
    fd: i32,
    sa: *const libc::sockaddr,
    len: libc::socklen_t,
    n: usize,
    size: usize,
) -> Result<String, i32> {
    let buf = vec![0x5au8; size];
    for _ in 0..n {
        // SAFETY: sendto from a valid buffer to the caller's valid address.
        if unsafe { libc::sendto(fd, buf.as_ptr().cast(), size, 0, sa, len) } < 0 {
            let e = errno();
            close(fd);
            return Err(e);
        }
    }
    close(fd);
    Ok("ok".into())
}

/// Sends `n` UDP datagrams of `size` bytes to `[dst]:port` over IPv6; `dstopts`: each
/// with a destination options extension header (8 bytes of padding) between the IPv6 and
/// UDP headers (needs CAP_NET_RAW in the socket's namespace). Datagrams above the MTU go
/// out as fragments, the first behind a fragment header.
fn udp6_send(dst: &str, port: u16, n: usize, size: usize, dstopts: bool) -> Result<String, i32> {
    let addr: std::net::Ipv6Addr = dst.parse().map_err(|_| libc::EINVAL)?;
    let fd = open("udp6")?;
    // SAFETY: sockaddr_in6 is plain data.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as u16;
    sa.sin6_port = port.to_be();
    sa.sin6_addr.s6_addr = addr.octets();
    if dstopts {
        // Next header (set by the kernel), length 0 (= 8 bytes), PadN of 4 bytes.
        let opts: [u8; 8] = [0, 0, 1, 4, 0, 0, 0, 0];
        // SAFETY: setsockopt with a valid buffer and its length.
        if unsafe { libc::setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_DSTOPTS, opts.as_ptr().cast(), 8) } != 0 {
            let e = errno();
            close(fd);
            return Err(e);
        }
    }
    let len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    send_datagrams(fd, (&raw const sa).cast(), len, n, size)
}

/// Sends to `dst:port` as fast as it can for `secs` seconds: one TCP connection, or UDP
/// datagrams of 1400 bytes (errors such as a full queue are ignored: a flood does not
/// care). Replies with the bytes it handed to the kernel.
fn stream(kind: &str, dst: &str, port: u16, secs: u64) -> Result<String, i32> {
    use std::io::Write as _;
    let addr = (ipv4(dst).map(std::net::Ipv4Addr::from)?, port);
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    let buf = [0x5au8; 64 * 1024];
    let mut sent: u64 = 0;
    let io = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    match kind {
        "tcp" => {
            let mut c = std::net::TcpStream::connect(addr).map_err(io)?;
            c.set_write_timeout(Some(Duration::from_millis(200))).map_err(io)?;
            while std::time::Instant::now() < end {
                match c.write(&buf) {
                    Ok(n) => sent += n as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(io(e)),
                }
            }
        }
        "udp" => {
            let u = std::net::UdpSocket::bind(("0.0.0.0", 0)).map_err(io)?;
            while std::time::Instant::now() < end {
                if let Ok(n) = u.send_to(&buf[..1400], addr) {
                    sent += n as u64;
                }
            }
        }
        _ => return Err(libc::EINVAL),
    }
    Ok(sent.to_string())
}

/// An IPv4 + UDP packet (checksummed header, UDP checksum 0) with 32 bytes of payload.
fn udp_packet(src: [u8; 4], dst: [u8; 4], port: u16) -> Vec<u8> {
    let total = 20 + 8 + 32;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = libc::IPPROTO_UDP as u8;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let mut sum: u32 = (0..10).map(|i| u32::from(u16::from_be_bytes([p[2 * i], p[2 * i + 1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&port.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + 32) as u16).to_be_bytes());
    p
}

/// Sends `pkt` once on a fresh socket `fd` (closed after) to the address `to` of `len`
/// bytes.
///
/// # Safety
/// `to` must point at a socket address of `len` bytes.
unsafe fn send_once(fd: i32, pkt: &[u8], to: *const libc::sockaddr, len: u32) -> Result<String, i32> {
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: valid buffer; the caller vouches for the address.
    let r = unsafe { libc::sendto(fd, pkt.as_ptr().cast(), pkt.len(), 0, to, len) };
    let e = errno();
    close(fd);
    if r < 0 {
        Err(e)
    } else {
        Ok("ok".into())
    }
}

fn spoof_raw(src: &str, dst: &str, port: u16) -> Result<String, i32> {
    let pkt = udp_packet(ipv4(src)?, ipv4(dst)?, port);
    // SAFETY: plain syscalls on our own socket; buffers and lengths match.
    unsafe {
        let mut sa = loopback(0);
        sa.sin_addr.s_addr = u32::from_ne_bytes(ipv4(dst)?);
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW);
        send_once(fd, &pkt, (&raw const sa).cast(), SA_LEN)
    }
}

fn spoof_packet(ifname: &str, src: &str, dst: &str, port: u16) -> Result<String, i32> {
    send_packet(ifname, libc::ETH_P_IP, &udp_packet(ipv4(src)?, ipv4(dst)?, port))
}

/// Sends one packet of `ethertype` on `ifname` through a packet socket (VE root has
/// CAP_NET_RAW in its namespace), to the broadcast MAC: whatever source it carries.
fn send_packet(ifname: &str, ethertype: i32, pkt: &[u8]) -> Result<String, i32> {
    let name = std::ffi::CString::new(ifname).map_err(|_| libc::EINVAL)?;
    // SAFETY: plain syscalls on our own socket; sockaddr_ll is plain data.
    unsafe {
        let index = libc::if_nametoindex(name.as_ptr());
        if index == 0 {
            return Err(errno());
        }
        let proto = (ethertype as u16).to_be();
        let mut ll: libc::sockaddr_ll = std::mem::zeroed();
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = proto;
        ll.sll_ifindex = index as i32;
        ll.sll_halen = 6;
        ll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, i32::from(proto));
        send_once(fd, pkt, (&raw const ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32)
    }
}

/// What a hostile VE root's /bin/sh does when vzctl runs it (`vzctl exec`): reports every
/// fd it got and what TIOCSTI (typing into a terminal) does on them and on /dev/tty, to
/// /root/evil.report; then leaves a process in a session of its own that reads its stdin
/// for 3 s into /root/evil.typed (what the admin types after exec returned would land
/// there, if it could).
fn evil_sh() -> ! {
    use std::io::Write as _;
    let mut rep = String::new();
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        for e in rd.flatten() {
            let target = std::fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default();
            rep.push_str(&format!("fd {} {target}\n", e.file_name().to_string_lossy()));
        }
    }
    let c: u8 = b'Z';
    for fd in 0..3 {
        // SAFETY: ioctl with a pointer to one byte.
        let r = unsafe { libc::ioctl(fd, libc::TIOCSTI, &c) };
        rep.push_str(&format!("sti {fd} {}\n", if r == 0 { 0 } else { errno() }));
    }
    // SAFETY: open with a NUL-terminated path.
    let tty = unsafe { libc::open(c"/dev/tty".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK) };
    if tty < 0 {
        rep.push_str(&format!("tty {}\n", errno()));
    } else {
        // SAFETY: as above.
        let r = unsafe { libc::ioctl(tty, libc::TIOCSTI, &c) };
        rep.push_str(&format!("tty 0\nsti tty {}\n", if r == 0 { 0 } else { errno() }));
    }
    let _ = std::fs::write("/root/evil.report", rep);
    // SAFETY: fork of a single-threaded process; the child only reads, writes files, exits.
    if unsafe { libc::fork() } == 0 {
        // SAFETY: plain syscall.
        unsafe { libc::setsid() };
        let mut typed = std::fs::File::create("/root/evil.typed").ok();
        let end = std::time::Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 256];
        while std::time::Instant::now() < end {
            let mut p = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut p, 1, 100) } > 0 {
                // SAFETY: valid buffer.
                let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                if let Some(f) = typed.as_mut() {
                    let _ = f.write_all(&buf[..n as usize]);
                }
            }
        }
        std::process::exit(0);
    }
    std::process::exit(0)
}

/// Makes inotify instances until the kernel refuses (at most `n`); replies `ok COUNT ERRNO`.
fn inotify(n: usize) -> Result<String, i32> {
    for i in 0..n {
        // SAFETY: plain syscall; the fd is kept open on purpose.
        if unsafe { libc::inotify_init1(libc::IN_CLOEXEC) } < 0 {
            return Ok(format!("ok {i} {}", errno()));
        }
    }
    Ok(format!("ok {n} 0"))
}

/// Adds keys to this process's keyring until the kernel refuses (at most `n`); replies
/// `ok COUNT ERRNO`.
fn keys(n: usize) -> Result<String, i32> {
    const KEY_SPEC_PROCESS_KEYRING: i32 = -2;
    for i in 0..n {
        let desc = std::ffi::CString::new(format!("vzt-{i}")).map_err(|_| libc::EINVAL)?;
        // SAFETY: add_key(2) with NUL-terminated strings and a valid payload buffer.
        let r = unsafe {
            libc::syscall(
                libc::SYS_add_key,
                c"user".as_ptr(),
                desc.as_ptr(),
                b"x".as_ptr(),
                1usize,
                KEY_SPEC_PROCESS_KEYRING,
            )
        };
        if r < 0 {
            return Ok(format!("ok {i} {}", errno()));
        }
    }
    Ok(format!("ok {n} 0"))
}

/// Opens `ptmx` (a devpts instance's) `n` times, keeping each; replies `ok COUNT ERRNO`.
fn ptys(ptmx: &str, n: usize) -> Result<String, i32> {
    let p = std::ffi::CString::new(ptmx).map_err(|_| libc::EINVAL)?;
    for i in 0..n {
        // SAFETY: open with a NUL-terminated path; the fd is kept open on purpose.
        if unsafe { libc::open(p.as_ptr(), libc::O_RDWR | libc::O_NOCTTY) } < 0 {
            return Ok(format!("ok {i} {}", errno()));
        }
    }
    Ok(format!("ok {n} 0"))
}

/// A SysV shared memory segment of `mb` MiB in this process's IPC namespace, every page
/// touched; replies `ok ID`.
fn shm(mb: usize) -> Result<String, i32> {
    let size = mb << 20;
    // SAFETY: shmget/shmat of our own segment; we write only within its size.
    unsafe {
        let id = libc::shmget(libc::IPC_PRIVATE, size, libc::IPC_CREAT | 0o600);
        if id < 0 {
            return Err(errno());
        }
        let p = libc::shmat(id, std::ptr::null(), 0);
        if p as isize == -1 {
            return Err(errno());
        }
        std::ptr::write_bytes(p.cast::<u8>(), 0x5a, size);
        Ok(format!("ok {id}"))
    }
}

fn ipv6(s: &str) -> Result<[u8; 16], i32> {
    s.parse::<std::net::Ipv6Addr>().map(|a| a.octets()).map_err(|_| libc::EINVAL)
}

/// The ones' complement sum of the IPv6 pseudo-header and `body` (next header `nh`).
fn csum6(src: &[u8; 16], dst: &[u8; 16], nh: u8, body: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(src);
    add(dst);
    add(&(body.len() as u32).to_be_bytes());
    add(&[0, 0, 0, nh]);
    add(body);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv6 packet from `src` to `dst`: `kind` udp (to `port`, 32 bytes), or an ICMPv6
/// message: ns (neighbour solicitation), ra (router advertisement), echo.
fn ipv6_packet(src: [u8; 16], dst: [u8; 16], kind: &str, port: u16) -> Result<Vec<u8>, i32> {
    let (nh, mut body) = match kind {
        "udp" => {
            let mut b = vec![0u8; 8 + 32];
            b[0..2].copy_from_slice(&40001u16.to_be_bytes());
            b[2..4].copy_from_slice(&port.to_be_bytes());
            b[4..6].copy_from_slice(&40u16.to_be_bytes());
            (17u8, b)
        }
        "ns" | "ra" | "echo" => {
            let t = match kind {
                "ns" => 135,
                "ra" => 134,
                _ => 128,
            };
            let mut b = vec![0u8; 24];
            b[0] = t;
            b[8..24].copy_from_slice(&dst);
            (58u8, b)
        }
        _ => return Err(libc::EINVAL),
    };
    let ck = csum6(&src, &dst, nh, &body);
    let at = if nh == 17 { 6 } else { 2 };
    body[at..at + 2].copy_from_slice(&ck.to_be_bytes());
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
    p[6] = nh;
    p[7] = 255;
    p[8..24].copy_from_slice(&src);
    p[24..40].copy_from_slice(&dst);
    p.extend_from_slice(&body);
    Ok(p)
}

/// Sends one IPv6 packet with any source on `ifname` (see `send_packet`).
fn spoof6(ifname: &str, src: &str, dst: &str, kind: &str, port: u16) -> Result<String, i32> {
    send_packet(ifname, libc::ETH_P_IPV6, &ipv6_packet(ipv6(src)?, ipv6(dst)?, kind, port)?)
}

fn udp_echo(port: u16) -> ! {
    let Ok(fd) = open("udp") else { std::process::exit(1) };
    let mut sa = loopback(port);
    sa.sin_addr.s_addr = 0;
    // SAFETY: bind and a receive/send loop on our own socket with valid buffers.
    unsafe {
        if libc::bind(fd, (&raw const sa).cast(), SA_LEN) != 0 {
            std::process::exit(1);
        }
        let mut buf = [0u8; 2048];
        loop {
            let mut from: libc::sockaddr_in = std::mem::zeroed();
            let mut len = SA_LEN;
            let n = libc::recvfrom(fd, buf.as_mut_ptr().cast(), buf.len(), 0, (&raw mut from).cast(), &mut len);
            if n > 0 {
                libc::sendto(fd, buf.as_ptr().cast(), n as usize, 0, (&raw const from).cast(), len);
            }
        }
    }
}

fn udp_pingpong(dst: &str, port: u16, n: u64) -> Result<String, i32> {
    let fd = open("udp")?;
    let mut sa = loopback(port);
    sa.sin_addr.s_addr = u32::from_ne_bytes(ipv4(dst)?);
    let tv = libc::timeval { tv_sec: 1, tv_usec: 0 };
    let buf = [7u8; 64];
    let mut back = [0u8; 2048];
    // SAFETY: plain socket calls on our own socket with valid buffers.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of_val(&tv) as u32,
        );
        if libc::connect(fd, (&raw const sa).cast(), SA_LEN) != 0 {
            return Err(errno());
        }
        let start = Instant::now();
        for _ in 0..n {
            if libc::send(fd, buf.as_ptr().cast(), buf.len(), 0) < 0
                || libc::recv(fd, back.as_mut_ptr().cast(), back.len(), 0) < 0
            {
                let e = errno();
                close(fd);
                return Err(e);
            }
        }
        close(fd);
        Ok(format!("{}", start.elapsed().as_nanos() as u64 / n.max(1)))
    }
}

/// Runs a one-shot workload, prints its reply, then holds its objects for HOLD seconds.
/// Types `text` into the terminal at `path` with TIOCSTI, as a hostile VE root would try
/// on its console: "ok N" (bytes typed) or "err ERRNO".
fn sti(path: &str, text: &str) -> Result<String, i32> {
    let c = std::ffi::CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: open with a NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK) };
    if fd < 0 {
        return Err(errno());
    }
    for b in text.bytes() {
        // SAFETY: ioctl with a pointer to one byte that lives across the call.
        if unsafe { libc::ioctl(fd, libc::TIOCSTI, &b) } != 0 {
            return Err(errno());
        }
    }
    Ok(format!("ok {}", text.len()))
}

fn oneshot(reply: Result<String, i32>, hold: u64) {
    match reply {
        Ok(line) => println!("{line}"),
        Err(e) => println!("err {e}"),
    }
    let _ = std::io::stdout().flush();
    std::thread::sleep(Duration::from_secs(hold));
}

fn main() {
    // Installed as a VE's /bin/sh by the escape tests: the hostile shell for `sh -c evil`,
    // the real one (kept as /bin/sh.real) for everything else the VE runs.
    let argv: Vec<String> = std::env::args().collect();
    if argv.first().is_some_and(|a0| a0 == "sh" || a0.ends_with("/sh")) {
        if argv.get(1).map(String::as_str) == Some("-c") && argv.get(2).map(String::as_str) == Some("evil") {
            evil_sh();
        }
        let e = std::os::unix::process::CommandExt::exec(std::process::Command::new("/bin/sh.real").args(&argv[1..]));
        eprintln!("sh: {e}");
        std::process::exit(127);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Optional leading `--cgroup PATH`: move this process into a VE cgroup first.
    let mut rest = &args[..];
    if rest.first().map(String::as_str) == Some("--cgroup") {
        let Some(dir) = rest.get(1) else { std::process::exit(2) };
        if let Err(e) = std::fs::write(format!("{dir}/cgroup.procs"), "0") {
            eprintln!("vzt-helper: join cgroup {dir}: {e}");
            std::process::exit(2);
        }
        rest = &rest[2..];
    }
    match rest.first().map(String::as_str) {
        Some("serve") => serve(),
        Some("sti") => oneshot(sti(rest.get(1).map_or("", String::as_str), rest.get(2).map_or("", String::as_str)), 0),
        Some("bench") => bench(
            rest.get(1).map_or("tcp", String::as_str),
            rest.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000),
        ),
        Some("udp") => {
            let n = |i: usize| rest.get(i).and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
            oneshot(udp_send(rest.get(1).map_or("", String::as_str), n(2) as u16, n(3), n(4)), 0);
        }
        Some("spoof-raw") => {
            let port = rest.get(3).and_then(|p| p.parse().ok()).unwrap_or(9);
            oneshot(spoof_raw(rest.get(1).map_or("", String::as_str), rest.get(2).map_or("", String::as_str), port), 0);
        }
        Some("spoof-packet") => {
            let a = |i: usize| rest.get(i).map_or("", String::as_str);
            let port = rest.get(4).and_then(|p| p.parse().ok()).unwrap_or(9);
            oneshot(spoof_packet(a(1), a(2), a(3), port), 0);
        }
        Some("udp6") | Some("udp6-dstopts") => {
            let a = |i: usize| rest.get(i).map_or("", String::as_str);
            let n = |i: usize| a(i).parse::<usize>().unwrap_or(0);
            let opts = rest[0] == "udp6-dstopts";
            oneshot(udp6_send(a(1), n(2) as u16, n(3), n(4), opts), 0);
        }
        Some("stream") => {
            let a = |i: usize| rest.get(i).map_or("", String::as_str);
            oneshot(stream(a(1), a(2), a(3).parse().unwrap_or(9), a(4).parse().unwrap_or(1)), 0);
        }
        Some("udp-echo") => udp_echo(rest.get(1).and_then(|p| p.parse().ok()).unwrap_or(7000)),
        Some("udp-pingpong") => {
            let a = |i: usize| rest.get(i).map_or("", String::as_str);
            match udp_pingpong(a(1), a(2).parse().unwrap_or(7000), a(3).parse().unwrap_or(10_000)) {
                Ok(ns) => println!("{ns}"),
                Err(e) => {
                    eprintln!("udp-pingpong: errno {e}");
                    std::process::exit(1);
                }
            }
        }
        Some("bind") => {
            let port = rest.get(2).and_then(|p| p.parse().ok()).unwrap_or(0);
            oneshot(bind_to(rest.get(1).map_or("", String::as_str), port), 0);
        }
        Some(mode @ ("inotify" | "keys" | "shm")) => {
            let n = |i: usize| rest.get(i).and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
            let r = match mode {
                "inotify" => inotify(n(1)),
                "keys" => keys(n(1)),
                _ => shm(n(1)),
            };
            oneshot(r, n(2) as u64);
        }
        Some("ptys") => {
            let n = |i: usize| rest.get(i).and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
            oneshot(ptys(rest.get(1).map_or("", String::as_str), n(2)), n(3) as u64);
        }
        Some("spoof6") => {
            let a = |i: usize| rest.get(i).map_or("", String::as_str);
            oneshot(spoof6(a(1), a(2), a(3), a(4), a(5).parse().unwrap_or(9)), 0);
        }
        Some(mode @ ("sockbuf" | "sigq" | "locks")) => {
            let n = |i: usize| rest.get(i).and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
            match mode {
                "sockbuf" => oneshot(sockbuf(n(1), n(2)), n(3) as u64),
                "sigq" => oneshot(sigq(n(1)), n(2) as u64),
                _ => oneshot(locks(n(1)), n(2) as u64),
            }
        }
        Some("nobpf") => {
            if let Err(e) = deny_bpf_syscall() {
                eprintln!("vzt-helper: seccomp: errno {e}");
                std::process::exit(2);
            }
            let Some(cmd) = rest.get(1) else { std::process::exit(2) };
            let e = std::os::unix::process::CommandExt::exec(std::process::Command::new(cmd).args(&rest[2..]));
            eprintln!("vzt-helper: exec {cmd}: {e}");
            std::process::exit(127);
        }
        _ => {
            eprintln!("usage: vzt-helper [--cgroup DIR] serve|bench KIND ITERS|nobpf CMD...");
            std::process::exit(2);
        }
    }
}
