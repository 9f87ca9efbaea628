//! VE networking against the real kernel: routed addresses between two VEs and the host.
//! Each VzEnv runs its vzctl in a network namespace of its own, so the host's network is
//! never touched.
use vz_tests::VzEnv;

/// Whether `ping` from the VE (busybox) reaches `ip` with one packet.
fn ve_pings(env: &VzEnv, veid: &str, ip: &str) -> bool {
    env.vzctl(&["exec2", veid, &format!("ping -c1 -W1 {ip} >/dev/null")]).code == 0
}

/// Whether the test's "host" namespace reaches `ip` (busybox-static's ping).
fn host_pings(env: &VzEnv, ip: &str) -> bool {
    env.in_netns(&["busybox", "ping", "-c1", "-W1", ip]).output().expect("ping").status.success()
}

fn host_links(env: &VzEnv) -> String {
    String::from_utf8_lossy(&env.in_netns(&["ip", "-br", "link"]).output().expect("ip link").stdout).to_string()
}

#[test]
fn routed_addresses_between_two_ves_and_the_host() {
    let env = VzEnv::new("net");
    env.ok(&["create", "101", "--ipadd", "10.77.0.1", "--ipadd", "fd00::1"]);
    env.ok(&["create", "102"]);
    env.ok(&["set", "102", "--ipadd", "10.77.0.2", "--ipadd", "fd00::2", "--save"]);
    // create refuses an address another VE holds, and makes nothing.
    env.vzctl(&["create", "103", "--ipadd", "10.77.0.2"]).one_line_error("vzctl", 78, "10.77.0.2");
    assert!(!env.conf_path(103).exists() && !env.private(103).exists());
    for veid in ["101", "102"] {
        env.ok(&["start", veid]);
    }
    // The VE side is venet0 with its addresses and a default route to the host end.
    let inside = env.ok(&["exec2", "101", "ip addr show venet0; ip route; ip -6 route"]);
    for want in ["inet 10.77.0.1/32", "inet6 fd00::1/128", "default via 169.254.0.1", "default via fe80::1"] {
        assert!(inside.contains(want), "{want} missing:\n{inside}");
    }
    // VE to VE both ways and families, VE to host, host to VE.
    assert!(ve_pings(&env, "101", "10.77.0.2"));
    assert!(ve_pings(&env, "102", "10.77.0.1"));
    assert!(ve_pings(&env, "101", "fd00::2"));
    assert!(ve_pings(&env, "101", "169.254.0.1"));
    assert!(host_pings(&env, "10.77.0.1"));
    assert!(host_pings(&env, "fd00::2"));
    assert_eq!(
        env.vzlist(&["-H", "-o", "ctid,ip", "101"]).stdout.split_whitespace().collect::<Vec<_>>(),
        ["101", "10.77.0.1", "fd00::1"]
    );

    // An address belongs to one VE only: refused with OpenVZ's code, nothing changed.
    let conf = std::fs::read_to_string(env.conf_path(102)).unwrap();
    env.vzctl(&["set", "102", "--ipadd", "10.77.0.1", "--save"]).one_line_error("vzctl", 78, "10.77.0.1");
    env.vzctl(&["set", "102", "--ipadd", "10.77.0.300"]).one_line_error("vzctl", 21, "10.77.0.300");
    assert_eq!(std::fs::read_to_string(env.conf_path(102)).unwrap(), conf);

    // ipdel cuts traffic at once; the config keeps the address unless saved.
    env.ok(&["set", "102", "--ipdel", "all"]);
    assert!(!ve_pings(&env, "101", "10.77.0.2"));
    assert!(!host_pings(&env, "10.77.0.2"));
    assert!(std::fs::read_to_string(env.conf_path(102)).unwrap().contains("10.77.0.2"));
    // Added back live (after its last IPv4 address went, the VE's routes come back too).
    env.ok(&["set", "102", "--ipadd", "10.77.0.2"]);
    assert!(ve_pings(&env, "101", "10.77.0.2"));
    env.ok(&["set", "102", "--ipdel", "fd00::2", "--save"]);
    assert!(!ve_pings(&env, "101", "fd00::2"));
    assert!(!std::fs::read_to_string(env.conf_path(102)).unwrap().contains("fd00::2"));

    // A host that does not forward gets told so (vzctl never changes the sysctl itself).
    assert!(env.in_netns(&["sysctl", "-qw", "net.ipv4.ip_forward=0"]).status().unwrap().success());
    let o = env.vzctl(&["set", "101", "--ipadd", "10.77.0.9"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("net.ipv4.ip_forward is 0"), "{o:?}");
    let fwd = env.in_netns(&["cat", "/proc/sys/net/ipv4/ip_forward"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&fwd.stdout).trim(), "0");
    assert!(!ve_pings(&env, "101", "10.77.0.2"), "forwarded with forwarding off");
    assert!(host_pings(&env, "10.77.0.9"));

    // Stopping a VE takes its routes away at once (its addresses are free for another
    // VE), and its pair with its network namespace, which the kernel tears down in the
    // background.
    assert_eq!(host_links(&env).matches("vz").count(), 2, "{}", host_links(&env));
    env.ok(&["stop", "--fast", "102"]);
    vz_links_settle(&env, 1);
    env.ok(&["stop", "--fast", "101"]);
    let routes = |args: &[&str]| String::from_utf8_lossy(&env.in_netns(args).output().unwrap().stdout).to_string();
    assert_eq!(routes(&["ip", "route", "show", "10.77.0.1"]), "", "a route to the stopped VE");
    assert_eq!(routes(&["ip", "-6", "route", "show", "fd00::1"]), "", "a route to the stopped VE");
    vz_links_settle(&env, 0);
}

/// Waits (at most 10 s) until the test's host namespace has `n` VE pairs.
fn vz_links_settle(env: &VzEnv, n: usize) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while host_links(env).matches("vz").count() != n {
        assert!(std::time::Instant::now() < end, "{n} pairs expected: {}", host_links(env));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn hostname_resolver_and_hosts_are_written_inside_the_ve_only() {
    let env = VzEnv::new("names");
    env.ok(&["create", "101"]);
    env.ok(&["set", "101", "--ipadd", "10.78.0.1", "--save"]);
    env.ok(&["start", "101"]);
    env.ok(&[
        "set",
        "101",
        "--hostname",
        "ve1.example.com",
        "--nameserver",
        "10.78.0.254",
        "--searchdomain",
        "example.com",
        "--save",
    ]);
    assert_eq!(env.ok(&["exec2", "101", "hostname"]), "ve1.example.com\n");
    let resolv = env.ok(&["exec2", "101", "cat /etc/resolv.conf"]);
    assert!(resolv.contains("search example.com\n") && resolv.contains("nameserver 10.78.0.254\n"), "{resolv}");
    let hosts = env.ok(&["exec2", "101", "cat /etc/hosts"]);
    assert!(hosts.contains("10.78.0.1\tve1.example.com ve1\n") && hosts.contains("localhost"), "{hosts}");
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    for want in ["NAMESERVER=\"10.78.0.254\"", "SEARCHDOMAIN=\"example.com\"", "HOSTNAME=\"ve1.example.com\""] {
        assert!(conf.contains(want), "{want}:\n{conf}");
    }
    env.vzctl(&["set", "101", "--nameserver", "not-an-ip"]).one_line_error("vzctl", 21, "not-an-ip");

    // A VE root that plants symlinks to host paths cannot make vzctl write the host's
    // files: paths resolve inside the VE's root.
    let host_file = env.dir.join("host-file");
    std::fs::write(&host_file, "host data\n").unwrap();
    let target = host_file.display().to_string();
    env.ok(&["exec2", "101", &format!("rm /etc/resolv.conf; ln -s {target} /etc/resolv.conf")]);
    env.ok(&["set", "101", "--nameserver", "10.78.0.253"]);
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host data\n");
    assert!(env.ok(&["exec2", "101", "cat /etc/resolv.conf"]).contains("nameserver 10.78.0.253"));
    // The same with the whole /etc swapped for a link to the host's directory.
    let host_dir = env.dir.join("host-etc");
    std::fs::create_dir_all(&host_dir).unwrap();
    env.ok(&["exec2", "101", &format!("mv /etc /etc.real; ln -s {} /etc", host_dir.display())]);
    let o = env.vzctl(&["set", "101", "--hostname", "evil"]);
    assert_ne!(o.code, 0, "{o:?}");
    // The files come first: their failure leaves the live name as it was.
    assert_eq!(env.ok(&["exec2", "101", "hostname"]), "ve1.example.com\n");
    assert_eq!(std::fs::read_dir(&host_dir).unwrap().count(), 0, "vzctl wrote into a host directory");
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn a_ve_binds_only_to_its_own_addresses() {
    let env = VzEnv::new("bind");
    env.debian_template();
    env.ok(&["create", "101", "--ostemplate", "debian-12-minbase"]);
    std::fs::copy(vz_tests::bin("vzt-helper"), env.private(101).join("usr/local/bin/vzt-helper")).unwrap();
    env.ok(&["set", "101", "--ipadd", "10.79.0.1", "--ipadd", "fd79::1", "--save"]);
    env.ok(&["create", "102"]);
    env.ok(&["set", "102", "--ipadd", "10.79.0.2", "--ipadd", "fd79::2", "--save"]);
    env.ok(&["start", "101"]);
    env.ok(&["start", "102"]);
    // VE root may let its own namespace bind to foreign addresses; the kernel still says no.
    env.ok(&[
        "exec2",
        "101",
        "echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind; echo 1 > /proc/sys/net/ipv6/ip_nonlocal_bind",
    ]);
    let bind = |addr: &str| env.ok(&["exec2", "101", &format!("vzt-helper bind {addr} 7000")]).trim().to_string();
    let refused = format!("err {}", libc::EADDRNOTAVAIL);
    for own in ["10.79.0.1", "0.0.0.0", "127.0.0.1", "fd79::1", "::", "::1"] {
        assert_eq!(bind(own), "ok", "{own}");
    }
    for foreign in ["10.79.0.2", "169.254.0.1", "192.0.2.1", "fd79::2", "::ffff:10.79.0.2"] {
        assert_eq!(bind(foreign), refused, "{foreign}");
    }
    // Addresses given and taken live change what may be bound at once.
    env.ok(&["set", "101", "--ipadd", "10.79.0.9"]);
    assert_eq!(bind("10.79.0.9"), "ok");
    env.ok(&["set", "101", "--ipdel", "10.79.0.9"]);
    assert_eq!(bind("10.79.0.9"), refused);
    env.ok(&["stop", "--fast", "102"]);
    env.ok(&["stop", "--fast", "101"]);
}

/// Two running VEs: 101 from the Debian template with the test helper, 102 busybox.
fn debian_and_busybox(tag: &str, ip101: &str, ip102: &str) -> VzEnv {
    let env = VzEnv::new(tag);
    env.debian_template();
    env.ok(&["create", "101", "--ostemplate", "debian-12-minbase", "--ipadd", ip101]);
    std::fs::copy(vz_tests::bin("vzt-helper"), env.private(101).join("usr/local/bin/vzt-helper")).unwrap();
    env.ok(&["create", "102", "--ipadd", ip102]);
    env.ok(&["start", "101"]);
    env.ok(&["start", "102"]);
    env
}

/// (in bytes, in packets, out bytes, out packets, dropped, filtered) of a VE, from
/// vznetstat.
fn netstat(env: &VzEnv, veid: &str) -> [u64; 6] {
    let o = env.cmd("vznetstat", &["-v", veid]).output().expect("vznetstat");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let line =
        text.lines().nth(1).unwrap_or_else(|| panic!("no row in {text:?} {:?}", String::from_utf8_lossy(&o.stderr)));
    let n: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(n[0], veid.parse::<u64>().unwrap());
    [n[2], n[3], n[4], n[5], n[6], n[7]]
}

#[test]
fn spoofed_packets_are_dropped_and_traffic_is_counted_exactly() {
    let env = debian_and_busybox("spoof", "10.80.0.1", "10.80.0.2");
    // IPv4 only from here: IPv6 neighbour and multicast chatter would add packets the test
    // did not send (all of it in the test's own namespaces).
    assert!(env.in_netns(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]).status().unwrap().success());
    for veid in ["101", "102"] {
        env.ok(&["exec2", veid, "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6"]);
    }
    // A listener in VE 102, so the datagrams draw no ICMP replies; a first datagram fills
    // the neighbour caches.
    env.ok(&["exec", "102", "nc -l -u -p 9000 >/dev/null </dev/null 2>&1 &"]);
    assert_eq!(env.ok(&["exec2", "101", "vzt-helper udp 10.80.0.2 9000 1 10"]).trim(), "ok");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (a0, b0) = (netstat(&env, "101"), netstat(&env, "102"));
    // 20 datagrams of 100 bytes: each 142 bytes on the wire (Ethernet, IPv4, UDP).
    assert_eq!(env.ok(&["exec2", "101", "vzt-helper udp 10.80.0.2 9000 20 100"]).trim(), "ok");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (a1, b1) = (netstat(&env, "101"), netstat(&env, "102"));
    assert_eq!((a1[2] - a0[2], a1[3] - a0[3]), (20 * 142, 20), "VE 101 out: {a0:?} -> {a1:?}");
    assert_eq!((b1[0] - b0[0], b1[1] - b0[1]), (20 * 142, 20), "VE 102 in: {b0:?} -> {b1:?}");
    assert_eq!(a1[4], a0[4], "a genuine packet was dropped");
    // A raw socket and a packet socket (VE root has CAP_NET_RAW in its namespace) with
    // another VE's and a made-up source: dropped at the host end, counted, never delivered.
    for (cmd, src) in [
        ("spoof-raw 10.80.0.2 10.80.0.2 9000", "raw"),
        ("spoof-raw 10.80.0.99 10.80.0.2 9000", "raw"),
        ("spoof-packet venet0 10.80.0.2 10.80.0.2 9000", "packet"),
        ("spoof-packet venet0 192.0.2.7 10.80.0.2 9000", "packet"),
    ] {
        assert_eq!(env.ok(&["exec2", "101", &format!("vzt-helper {cmd}")]).trim(), "ok", "{src} socket send");
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (a2, b2) = (netstat(&env, "101"), netstat(&env, "102"));
    assert_eq!(a2[4] - a1[4], 4, "spoofed packets not all dropped: {a1:?} -> {a2:?}");
    assert_eq!((b2[0], b2[1]), (b1[0], b1[1]), "a spoofed packet reached VE 102");
    // The same packet with its own source goes through (the check is the source, not the
    // socket type).
    assert_eq!(env.ok(&["exec2", "101", "vzt-helper spoof-raw 10.80.0.1 10.80.0.2 9000"]).trim(), "ok");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(netstat(&env, "102")[1], b2[1] + 1);
    // vzlist shows the same counters.
    let n = netstat(&env, "101");
    let l = env.vzlist(&["-H", "-o", "ctid,netin,netin.p,netout,netout.p,netdrop,netfiltered", "101"]).stdout;
    let l: Vec<u64> = l.split_whitespace().map(|w| w.parse().unwrap()).collect();
    assert_eq!(l, [101, n[0], n[1], n[2], n[3], n[4], n[5]]);
    env.ok(&["stop", "--fast", "102"]);
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn ipv6_extension_headers_do_not_hide_ports_from_rules() {
    let env = debian_and_busybox("v6ext", "fd85::1", "fd85::2");
    env.ok(&["set", "102", "--netfilter-rule", "deny in udp 7001"]);
    env.ok(&["set", "101", "--netfilter-rule", "deny out udp 7003"]);
    let send = |mode: &str, port: u16, size: usize| {
        let line = format!("vzt-helper {mode} fd85::2 {port} 5 {size}");
        assert_eq!(env.ok(&["exec2", "101", &line]).trim(), "ok", "{line}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // (filtered at 101, filtered at 102, packets into 102)
    let now = || (netstat(&env, "101")[5], netstat(&env, "102")[5], netstat(&env, "102")[1]);
    // Plain, behind a destination options header, and as fragments (the first behind a
    // fragment header, 3000 bytes over an MTU of 1500): the denied port is denied every
    // time, 5 datagrams each; the later fragments carry no port and pass, to be thrown
    // away by reassembly.
    for (mode, size) in [("udp6", 100), ("udp6-dstopts", 100), ("udp6", 3000), ("udp6-dstopts", 3000)] {
        let (a0, b0, _) = now();
        send(mode, 7001, size);
        let (a1, b1, _) = now();
        assert_eq!((a1 - a0, b1 - b0), (0, 5), "{mode} {size} bytes to a port VE 102 denies");
        send(mode, 7003, size);
        let (a2, b2, _) = now();
        assert_eq!((a2 - a1, b2 - b1), (5, 0), "{mode} {size} bytes to a port VE 101 may not send to");
        let p2 = now().2;
        send(mode, 7002, size);
        let (a3, b3, p3) = now();
        assert_eq!((a3 - a2, b3 - b2), (0, 0), "{mode} {size} bytes to an allowed port");
        assert!(p3 - p2 >= 5, "{mode} {size} bytes to an allowed port: {} packets reached VE 102", p3 - p2);
    }
    env.ok(&["stop", "--fast", "102"]);
    env.ok(&["stop", "--fast", "101"]);
}

/// Whether a TCP connection from VE `from` to `ip:port` gets through (busybox nc).
fn ve_connects(env: &VzEnv, from: &str, ip: &str, port: u16) -> bool {
    env.vzctl(&["exec2", from, &format!("echo x | nc -w 1 {ip} {port} >/dev/null 2>&1")]).code == 0
}

#[test]
fn firewall_rules_deny_and_allow_live() {
    let env = VzEnv::new("fw");
    env.ok(&["create", "101", "--ipadd", "10.81.0.1"]);
    env.ok(&["create", "102", "--ipadd", "10.81.0.2"]);
    env.ok(&["start", "101"]);
    env.ok(&["start", "102"]);
    // Listeners on 25 and 26 in VE 102 (-ll: keep listening).
    env.ok(&["exec", "102", "for p in 25 26; do nc -ll -p $p -e /bin/true </dev/null >/dev/null 2>&1 & done"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(ve_connects(&env, "101", "10.81.0.2", 25));
    // "deny in tcp 25" on VE 102: port 25 is closed to it, 26 still open; set live.
    env.ok(&["set", "102", "--netfilter-rule", "deny in tcp 25", "--save"]);
    let f0 = netstat(&env, "102")[5];
    assert!(!ve_connects(&env, "101", "10.81.0.2", 25));
    assert!(ve_connects(&env, "101", "10.81.0.2", 26));
    assert!(netstat(&env, "102")[5] > f0, "denied packets not counted");
    assert!(std::fs::read_to_string(env.conf_path(102)).unwrap().contains("FIREWALL=\"deny in tcp 25\""));
    // An allow rule before a broader deny: only 10.81.0.1 may reach any TCP port.
    env.ok(&["set", "102", "--netfilter-rule", "allow in tcp from 10.81.0.1", "--netfilter-rule", "deny in tcp"]);
    assert!(ve_connects(&env, "101", "10.81.0.2", 25));
    assert!(ve_connects(&env, "101", "10.81.0.2", 26));
    env.ok(&["set", "102", "--netfilter-rule", "allow in tcp from 10.81.0.99", "--netfilter-rule", "deny in tcp"]);
    assert!(!ve_connects(&env, "101", "10.81.0.2", 26));
    // Outbound: VE 101 may not open connections to port 26 anywhere.
    env.ok(&["set", "102", "--netfilter-rule", "none"]);
    env.ok(&["set", "101", "--netfilter-rule", "deny out tcp to 10.81.0.0/24"]);
    assert!(!ve_connects(&env, "101", "10.81.0.2", 26));
    env.ok(&["set", "101", "--netfilter-rule", "none"]);
    assert!(ve_connects(&env, "101", "10.81.0.2", 26));
    // A bad rule changes nothing and says which.
    env.vzctl(&["set", "102", "--netfilter-rule", "deny in tcp 99999", "--save"]).one_line_error("vzctl", 21, "99999");
    // Saved rules apply at the next start.
    env.ok(&["stop", "--fast", "102"]);
    env.ok(&["start", "102"]);
    env.ok(&["exec", "102", "for p in 25 26; do nc -ll -p $p -e /bin/true </dev/null >/dev/null 2>&1 & done"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!ve_connects(&env, "101", "10.81.0.2", 25));
    assert!(ve_connects(&env, "101", "10.81.0.2", 26));
    env.ok(&["stop", "--fast", "102"]);
    env.ok(&["stop", "--fast", "101"]);
}

/// (rx bytes, rx packets, tx bytes, tx packets) of an interface in the test's namespace,
/// as the kernel counts it.
fn if_stats(env: &VzEnv, ifname: &str) -> [u64; 4] {
    let o = env.in_netns(&["ip", "-s", "-o", "link", "show", "dev", ifname]).output().expect("ip -s link");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    // One line: "... RX: bytes packets ... \    N N ... TX: ... \    N N ..."
    let nums = |after: &str| -> Vec<u64> {
        let part = text.split(after).nth(1).unwrap_or("");
        let line = part.split('\\').nth(1).unwrap_or("");
        line.split_whitespace().filter_map(|w| w.parse().ok()).collect()
    };
    let (rx, tx) = (nums("RX:"), nums("TX:"));
    [rx[0], rx[1], tx[0], tx[1]]
}

#[test]
fn tcp_over_ipv4_and_ipv6_is_counted_as_the_kernel_counts_it() {
    let env = VzEnv::new("tcpcount");
    env.ok(&["create", "101", "--ipadd", "10.84.0.1", "--ipadd", "fd84::1"]);
    env.ok(&["create", "102", "--ipadd", "10.84.0.2", "--ipadd", "fd84::2"]);
    env.ok(&["start", "101"]);
    env.ok(&["start", "102"]);
    for (port, dst) in [(5000, "10.84.0.2"), (5001, "fd84::2")] {
        // (The listener's stdin stays open, or busybox nc would hang up at once.)
        env.ok(&["exec", "102", &format!("(sleep 30 | nc -l -p {port}) >/dev/null 2>&1 </dev/null &")]);
        std::thread::sleep(std::time::Duration::from_millis(300));
        // 1000 KiB over TCP.
        env.ok(&["exec2", "101", &format!("dd if=/dev/zero bs=1k count=1000 2>/dev/null | nc -w 2 {dst} {port}")]);
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let cg = env.cg();
    for (veid, sent) in [("101", true), ("102", false)] {
        let ifname = vz::net::host_ifname(cg.ve_id(veid.parse().unwrap()).unwrap());
        let [in_b, in_p, out_b, out_p, drops, filtered] = netstat(&env, veid);
        let [rx_b, rx_p, tx_b, tx_p] = if_stats(&env, &ifname);
        // What the VE sent is what its pair's host end received, to the byte and packet;
        // what it received is what the host end sent.
        assert_eq!((out_b, out_p), (rx_b, rx_p), "VE {veid} out vs {ifname} rx");
        assert_eq!((in_b, in_p), (tx_b, tx_p), "VE {veid} in vs {ifname} tx");
        assert_eq!((drops, filtered), (0, 0));
        let data = if sent { out_b } else { in_b };
        assert!(data > 2 * 1000 * 1024, "VE {veid}: only {data} bytes of two 1000 KiB transfers");
    }
    env.ok(&["stop", "--fast", "102"]);
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn bridged_interfaces_join_a_host_bridge_live_and_at_start() {
    let env = VzEnv::new("bridge");
    // A bridge with an address in the test's "host" namespace.
    for argv in [
        &["ip", "link", "add", "vzbr0", "type", "bridge"][..],
        &["ip", "addr", "add", "10.86.0.254/24", "dev", "vzbr0"],
        &["ip", "link", "set", "vzbr0", "up"],
    ] {
        assert!(env.in_netns(argv).status().unwrap().success(), "{argv:?}");
    }
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    env.ok(&["set", "101", "--netif_add", "eth0,02:00:00:00:86:01,,,vzbr0", "--save"]);
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    assert!(
        conf.contains("NETIF=\"ifname=eth0,mac=02:00:00:00:86:01,host_ifname=veth101.0,host_mac=00:18:51:"),
        "{conf}"
    );
    assert!(conf.contains(",bridge=vzbr0\""), "{conf}");
    // The VE configures its own address on it, as with OpenVZ's veth.
    let link = env.ok(&["exec2", "101", "ip link show eth0"]);
    assert!(link.contains("02:00:00:00:86:01"), "{link}");
    env.ok(&["exec2", "101", "ip addr add 10.86.0.1/24 dev eth0"]);
    assert!(ve_pings(&env, "101", "10.86.0.254"));
    assert!(host_pings(&env, "10.86.0.1"));
    let master = String::from_utf8_lossy(&env.in_netns(&["ip", "link", "show", "veth101.0"]).output().unwrap().stdout)
        .to_string();
    assert!(master.contains("master vzbr0"), "{master}");
    // Bad specs and a name already taken change nothing.
    env.vzctl(&["set", "101", "--netif_add", "eth1,zz:00:00:00:00:01"]).one_line_error(
        "vzctl",
        21,
        "zz:00:00:00:00:01",
    );
    env.vzctl(&["set", "101", "--netif_add", "eth0"]).one_line_error("vzctl", 21, "eth0");
    // Back after a restart (the VE sets its address again).
    env.ok(&["stop", "--fast", "101"]);
    assert!(!host_links(&env).contains("veth101.0"), "{}", host_links(&env));
    env.ok(&["start", "101"]);
    env.ok(&["exec2", "101", "ip addr add 10.86.0.1/24 dev eth0"]);
    assert!(ve_pings(&env, "101", "10.86.0.254"));
    // Removed live: gone on both sides.
    env.ok(&["set", "101", "--netif_del", "eth0", "--save"]);
    assert_ne!(env.vzctl(&["exec2", "101", "ip link show eth0"]).code, 0);
    assert!(!host_links(&env).contains("veth101.0"));
    assert!(!std::fs::read_to_string(env.conf_path(101)).unwrap().contains("NETIF=\"ifname"));
    env.ok(&["stop", "--fast", "101"]);
}

/// Bytes per second VE 102 receives while VE 101 (Debian, with the helper) streams to it
/// for 5 s (`kind` tcp or udp): from VE 102's counters, sampled 1 s after the start (past
/// any initial burst) and 3 s later.
fn received_rate(env: &VzEnv, kind: &str, port: u16) -> f64 {
    if kind == "tcp" {
        env.ok(&["exec", "102", &format!("(nc -l -p {port} >/dev/null 2>&1 </dev/null &); true")]);
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let sender = env
        .cmd("vzctl", &["exec2", "101", &format!("vzt-helper stream {kind} 10.87.0.2 {port} 5")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("vzctl exec2");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (b0, t0) = (netstat(env, "102")[0], std::time::Instant::now());
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (b1, t1) = (netstat(env, "102")[0], std::time::Instant::now());
    let out = sender.wait_with_output().expect("sender");
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(said.parse::<u64>().is_ok(), "{kind} sender: {said}");
    (b1 - b0) as f64 / (t1 - t0).as_secs_f64()
}

#[test]
fn rate_limit_holds_within_ten_percent_for_tcp_and_a_udp_flood() {
    let env = debian_and_busybox("rate", "10.87.0.1", "10.87.0.2");
    let free = received_rate(&env, "tcp", 6000);
    // 8000 kbit/s = 1,000,000 bytes/s.
    env.ok(&["set", "101", "--rate", "8000", "--save"]);
    assert!(std::fs::read_to_string(env.conf_path(101)).unwrap().contains("RATE=\"8000\""));
    let limited = received_rate(&env, "tcp", 6001);
    eprintln!("TCP: unlimited {free:.0} bytes/s, limited {limited:.0} bytes/s");
    assert!((900_000.0..=1_100_000.0).contains(&limited), "TCP at {limited:.0} bytes/s, limit 1,000,000");
    assert!(free > 3.0 * limited, "the limit made no difference: {free:.0} vs {limited:.0}");
    // A flood that ignores congestion: UDP as fast as the VE can write it.
    let udp = received_rate(&env, "udp", 6002);
    eprintln!("UDP flood: {udp:.0} bytes/s received");
    assert!((900_000.0..=1_100_000.0).contains(&udp), "UDP flood at {udp:.0} bytes/s, limit 1,000,000");
    // Retuned live (OpenVZ's dev:class:kbit form), and held after a restart from the saved
    // config.
    env.ok(&["set", "101", "--rate", "venet0:1:4000"]);
    let half = received_rate(&env, "tcp", 6003);
    eprintln!("TCP at 4000 kbit/s: {half:.0} bytes/s");
    assert!((450_000.0..=550_000.0).contains(&half), "TCP at {half:.0} bytes/s, limit 500,000");
    env.ok(&["restart", "101"]);
    let saved = received_rate(&env, "tcp", 6004);
    assert!((900_000.0..=1_100_000.0).contains(&saved), "after restart: {saved:.0} bytes/s, limit 1,000,000");
    // Lifted live: the shaper goes.
    env.ok(&["set", "101", "--rate", "0", "--save"]);
    assert!(!host_links(&env).contains("vzr"), "shaper left: {}", host_links(&env));
    assert!(received_rate(&env, "tcp", 6005) > 3.0 * limited);
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    assert!(!conf.contains("RATE="));
    env.vzctl(&["set", "101", "--rate", "fast"]).one_line_error("vzctl", 21, "fast");
    assert_eq!(std::fs::read_to_string(env.conf_path(101)).unwrap(), conf);
    env.ok(&["set", "101", "--rate", "8000"]);
    assert!(host_links(&env).contains("vzr"));
    env.ok(&["stop", "--fast", "102"]);
    env.ok(&["stop", "--fast", "101"]);
    assert!(!host_links(&env).contains("vzr"), "stop left the shaper: {}", host_links(&env));
}
