//! Sockets nix cannot make here (its socket feature needs a crate this host lacks):
//! netlink and raw sockets, getsockopt into a buffer, interface addresses and flags.
use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd as _, BorrowedFd, OwnedFd},
};

fn socket(domain: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers and returns a new fd.
    unsafe { super::new_fd(i64::from(libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol))) }
}

/// A netlink socket of `protocol` (e.g. NETLINK_NETFILTER).
pub fn netlink(protocol: libc::c_int) -> io::Result<OwnedFd> {
    socket(libc::AF_NETLINK, libc::SOCK_RAW, protocol)
}

/// A raw IPv4 socket (for the iptables getsockopt interface).
pub fn raw_ipv4() -> io::Result<OwnedFd> {
    socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW)
}

pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: send reads `buf`, alive and of the length given.
    Ok(super::check(unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) } as i64)? as usize)
}

pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: recv writes at most `buf.len()` bytes into `buf`.
    Ok(super::check(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) } as i64)? as usize)
}

/// getsockopt(2) into `buf` (which also carries the request in); the length returned.
pub fn getsockopt(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `buf` and the new length to `len`.
    super::check(i64::from(unsafe {
        libc::getsockopt(fd.as_raw_fd(), level, name, buf.as_mut_ptr().cast(), &mut len)
    }))?;
    Ok(len as usize)
}

/// The addresses of this network namespace's interfaces.
pub fn interface_addrs() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list that is only read here and freed at the end; each
    // address is read as the type its family says.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut p = head;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

/// `ip link set lo up` by ioctl, in this thread's network namespace.
pub fn loopback_up() -> io::Result<()> {
    let s = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: ifreq is plain data; both ioctls read or write one ifreq that lives across
    // the call.
    unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        super::check(i64::from(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr)))?;
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        super::check(i64::from(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr)))?;
    }
    Ok(())
}

/// Broadcasts one gratuitous ARP request for `ip` from interface `ifindex` (hardware
/// address `mac`): "who has ip, tell ip", which makes the neighbours on that link point
/// `ip` at this interface at once (what OpenVZ's arpsend -U did after a start or a
/// migration).
pub fn send_gratuitous_arp(ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> io::Result<()> {
    const ETH_P_ARP: u16 = 0x0806;
    let fd = socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(ETH_P_ARP.to_be()))?;
    let mut arp = Vec::with_capacity(28);
    arp.extend_from_slice(&1u16.to_be_bytes()); // Ethernet
    arp.extend_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    arp.extend_from_slice(&[6, 4]);
    arp.extend_from_slice(&1u16.to_be_bytes()); // request
    arp.extend_from_slice(&mac);
    arp.extend_from_slice(&ip.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&ip.octets());
    // SAFETY: an all-zero sockaddr_ll is valid; the fields set below are plain integers.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ETH_P_ARP.to_be();
    to.sll_ifindex = ifindex as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: sendto reads `arp` and `to`, both alive and of the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            arp.as_ptr().cast(),
            arp.len(),
            0,
            std::ptr::from_ref(&to).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    super::check(n as i64).map(|_| ())
}
