//! numtcpsock / numothersock enforced by the real kernel: programs loaded, cgroups made,
//! sockets opened by a process inside the VE's cgroup.
use vz_common::res::{NUMOTHERSOCK, NUMTCPSOCK};
use vz_tests::{Env, Helper};

const ENOBUFS: i32 = libc::ENOBUFS;

#[test]
fn barrier_refuses_with_enobufs_and_counts_failures() {
    let mut env = Env::new("barrier");
    env.ve(101);
    env.set(101, NUMTCPSOCK, 3, 3);
    env.set(101, NUMOTHERSOCK, 2, 4);
    let mut h = env.helper(101);

    let tcp: Vec<_> = (0..5).map(|_| h.open("tcp")).collect();
    assert_eq!(tcp.iter().filter(|r| r.is_ok()).count(), 3, "{tcp:?}");
    assert!(tcp[3..].iter().all(|r| *r == Err(ENOBUFS)), "{tcp:?}");
    // IPv6 TCP counts against the same barrier.
    assert_eq!(h.open("tcp6"), Err(ENOBUFS));

    let other: Vec<_> = ["udp", "udp6", "raw", "udp"].iter().map(|k| h.open(k)).collect();
    assert_eq!(other.iter().filter(|r| r.is_ok()).count(), 2, "{other:?}");
    assert_eq!(other[2], Err(ENOBUFS));

    let t = env.usage(101, NUMTCPSOCK);
    assert_eq!((t.held, t.maxheld, t.failcnt), (3, 3, 3));
    let o = env.usage(101, NUMOTHERSOCK);
    assert_eq!((o.held, o.maxheld, o.failcnt), (2, 2, 2));
    assert_eq!(h.cmd("count"), "ok 5");

    for fd in tcp.into_iter().chain(other).flatten() {
        h.close(fd);
    }
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 0);
    assert_eq!(env.usage(101, NUMOTHERSOCK).held, 0);
    // maxheld and failcnt keep their history.
    assert_eq!(env.usage(101, NUMTCPSOCK).maxheld, 3);
    assert_eq!(env.usage(101, NUMOTHERSOCK).failcnt, 2);
}

#[test]
fn unix_sockets_are_not_seen_by_the_inet_hook() {
    // The cgroup sock_create hook only runs for AF_INET/AF_INET6 (inet_create). Pin that
    // fact so the README's statement stays true.
    let mut env = Env::new("unix");
    env.ve(101);
    env.set(101, NUMOTHERSOCK, 0, 0);
    let mut h = env.helper(101);
    assert!(h.open("unix").is_ok());
    assert_eq!(h.open("udp"), Err(ENOBUFS));
    assert_eq!(env.usage(101, NUMOTHERSOCK).held, 0);
}

#[test]
fn limit_changes_apply_at_once_to_running_processes() {
    let mut env = Env::new("live");
    env.ve(101);
    env.set(101, NUMTCPSOCK, 5, 5);
    let mut h = env.helper(101);
    let a = h.open("tcp").unwrap();
    let _b = h.open("tcp").unwrap();

    env.set(101, NUMTCPSOCK, 2, 2);
    assert_eq!(h.open("tcp"), Err(ENOBUFS));
    // Lowering below held does not take sockets away, it refuses new ones.
    env.set(101, NUMTCPSOCK, 1, 1);
    h.close(a);
    assert_eq!(h.open("tcp"), Err(ENOBUFS));
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 1);

    env.set(101, NUMTCPSOCK, 10, 10);
    assert!(h.open("tcp").is_ok());
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 2);
}

#[test]
fn fork_inherited_sockets_count_once_and_release_on_kill() {
    let mut env = Env::new("fork");
    env.ve(101);
    env.set(101, NUMTCPSOCK, 10, 10);
    let mut h = env.helper(101);
    let fds: Vec<i32> = (0..3).map(|_| h.open("tcp").unwrap()).collect();
    let child = h.fork();
    // The child shares the same sockets: no new charge.
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 3);
    for fd in fds {
        h.close(fd);
    }
    // Still open in the child.
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 3);
    h.kill_forked(child);
    assert_eq!(env.wait_held(101, NUMTCPSOCK, 0), 0);

    // A process killed while holding sockets releases them all.
    for _ in 0..4 {
        h.open("udp").unwrap();
    }
    assert_eq!(env.usage(101, NUMOTHERSOCK).held, 4);
    h.kill();
    assert_eq!(env.wait_held(101, NUMOTHERSOCK, 0), 0);
}

#[test]
fn socket_closed_outside_the_ve_still_uncharges_the_ve() {
    let mut env = Env::new("moved");
    env.ve(101);
    env.set(101, NUMTCPSOCK, 10, 10);
    let mut h = env.helper(101);
    let fd = h.open("tcp").unwrap();
    let child = h.fork();
    // Move the child (holding the socket) out of the VE, to the parent cgroup.
    std::fs::write(env.cfg.cgroup_parent.join("cgroup.procs"), child.to_string()).unwrap();
    h.close(fd);
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 1);
    // The last close happens in a task outside the VE: the charge record, not the closing
    // task's cgroup, decides whom to uncharge.
    h.kill_forked(child);
    assert_eq!(env.wait_held(101, NUMTCPSOCK, 0), 0);
}

#[test]
fn accepted_connections_do_not_drift() {
    let mut env = Env::new("accept");
    env.ve(101);
    env.set(101, NUMTCPSOCK, 10, 10);
    let mut h = env.helper(101);
    let r = h.cmd("listen");
    let n = Helper::nums(&r);
    let (lfd, port) = (n[0], n[1] as u16);
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 1);
    let conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let r = h.cmd(&format!("accept {lfd}"));
    let afd: i32 = r.strip_prefix("ok ").unwrap().parse().unwrap();
    // Accepted sockets are not created through socket(2), so they are not charged; closing
    // them must not uncharge anything either.
    h.close(afd);
    drop(conn);
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 1);
    h.close(lfd as i32);
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 0);
}

#[test]
fn concurrent_flood_never_passes_the_barrier_and_ends_at_zero() {
    let mut env = Env::new("flood");
    env.ve(101);
    env.set(101, NUMTCPSOCK, 8, 8);
    env.set(101, NUMOTHERSOCK, 8, 8);
    // Two processes, 8 threads each, racing on the same counters. Each thread alone wants
    // 12 of each kind at once, so the barrier is met whatever the scheduling.
    let mut a = env.helper(101);
    let mut b = env.helper(101);
    a.send("flood 8 3000 24");
    b.send("flood 8 3000 24");
    let (ra, rb) = (Helper::nums(&a.recv()), Helper::nums(&b.recv()));
    let (granted, refused) = (ra[0] + rb[0], ra[1] + rb[1]);
    assert_eq!(granted + refused, 2 * 8 * 3000);
    assert!(refused > 0, "the barrier was never reached: {granted} granted");
    let (t, o) = (env.usage(101, NUMTCPSOCK), env.usage(101, NUMOTHERSOCK));
    assert!(t.maxheld == 8 && o.maxheld == 8, "barrier passed or never met: {t:?} {o:?}");
    assert_eq!(t.failcnt + o.failcnt, refused, "failcnt must count every refusal");
    assert_eq!((t.held, o.held), (0, 0), "drift after flood: {t:?} {o:?}");
    // Killing the floods mid-run leaves no drift either.
    a.send("flood 8 100000 24");
    b.send("flood 8 100000 24");
    std::thread::sleep(std::time::Duration::from_millis(300));
    a.kill();
    b.kill();
    assert_eq!(env.wait_held(101, NUMTCPSOCK, 0), 0);
    assert_eq!(env.wait_held(101, NUMOTHERSOCK, 0), 0);
}

#[test]
fn ves_are_counted_apart_and_host_sockets_are_free() {
    let mut env = Env::new("apart");
    env.ve(101);
    env.ve(102);
    env.set(101, NUMTCPSOCK, 1, 1);
    env.set(102, NUMTCPSOCK, 2, 2);
    let mut h1 = env.helper(101);
    let mut h2 = env.helper(102);
    assert!(h1.open("tcp").is_ok());
    assert_eq!(h1.open("tcp"), Err(ENOBUFS));
    assert!(h2.open("tcp").is_ok());
    assert!(h2.open("tcp").is_ok());
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 1);
    assert_eq!(env.usage(102, NUMTCPSOCK).held, 2);
    // A process in the parent cgroup (not a VE) and one in an unregistered child are free.
    let mut host = Helper::spawn(Some(&env.cfg.cgroup_parent.clone()));
    assert!((0..5).all(|_| host.open("tcp").is_ok()));
    std::fs::create_dir(env.cfg.cgroup_parent.join("999")).unwrap();
    let mut unreg = Helper::spawn(Some(&env.cfg.cgroup_parent.join("999")));
    assert!((0..5).all(|_| unreg.open("tcp").is_ok()));
    drop(unreg);
    vz_tests::kill_cgroup(&env.cfg.cgroup_parent.join("999"));
    std::fs::remove_dir(env.cfg.cgroup_parent.join("999")).unwrap();
}

#[test]
fn nested_cgroups_inside_a_ve_count_for_the_ve() {
    let mut env = Env::new("nested");
    env.ve(101);
    env.set(101, NUMTCPSOCK, 2, 2);
    let sub = env.ve_dir(101).join("init.scope/inner");
    std::fs::create_dir_all(&sub).unwrap();
    let mut h = Helper::spawn(Some(&sub));
    assert!(h.open("tcp").is_ok());
    assert!(h.open("tcp").is_ok());
    assert_eq!(h.open("tcp"), Err(ENOBUFS));
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 2);
    drop(h);
    vz_tests::kill_cgroup(&sub);
    std::fs::remove_dir(&sub).unwrap();
    std::fs::remove_dir(sub.parent().unwrap()).unwrap();
}

#[test]
fn full_buckets_spill_to_the_overflow_table_without_drift() {
    // One bucket of 8 entries for the whole table: every ninth socket must go to the
    // overflow hash and still be charged and uncharged exactly once.
    let mut env = vz_tests::Env::bare("ovf");
    env.cfg.sock_buckets = 1;
    env.bpf = Some(vz::bpf::Bpf::ensure(&env.cfg).unwrap());
    env.ve(101);
    let mut h = env.helper(101);
    let fds: Vec<i32> = (0..20).map(|i| h.open(if i % 2 == 0 { "tcp" } else { "udp" }).unwrap()).collect();
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 10);
    assert_eq!(env.usage(101, NUMOTHERSOCK).held, 10);
    assert_eq!(env.bpf().sock_overflow().unwrap(), 12);
    for fd in fds {
        h.close(fd);
    }
    assert_eq!(env.usage(101, NUMTCPSOCK).held, 0);
    assert_eq!(env.usage(101, NUMOTHERSOCK).held, 0);
    assert_eq!(env.bpf().sock_overflow().unwrap(), 0);
}
