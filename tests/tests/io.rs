//! Disk I/O against the real kernel: two VEs whose private areas share a loop-backed disk
//! of the test's own (switched to BFQ by `vzctl iosched`, the admin's explicit step) do
//! direct I/O with fio in their cgroups. ioprio splits the disk, iolimit and iopslimit cap
//! a VE, and the BPF block-layer accounting matches what fio did. One test, so no other
//! I/O of this binary competes.
use vz::{
    bpf::Bpf,
    io::{Disk, IoTotals},
};
use vz_tests::VzEnv;

/// A VE's block I/O on `disk`, from the pinned BPF maps.
fn bpf_io(env: &VzEnv, veid: u32, disk: &Disk) -> IoTotals {
    let cgid = env.cg().ve_id(veid).expect("VE cgroup");
    let bpf = Bpf::open_existing(&env.bpf_root).expect("pins");
    let stats = bpf.io_stats(cgid).expect("io stats");
    stats.iter().find(|(d, _)| *d == disk.kdev()).map(|(_, t)| *t).unwrap_or_default()
}

/// A VE's bytes (read, write) on `disk`.
fn bpf_bytes(env: &VzEnv, veid: u32, disk: &Disk) -> (u64, u64) {
    let t = bpf_io(env, veid, disk);
    (t.read_bytes, t.write_bytes)
}

fn within(got: f64, want: f64, pct: f64) -> bool {
    (got - want).abs() <= want * pct / 100.0
}

#[test]
fn ioprio_shares_the_disk_limits_cap_it_and_bpf_counts_it() {
    let env = VzEnv::with_disk("io", 1536);
    let disk = Disk::by_name(&env.disk_name()).unwrap();
    for v in ["101", "102"] {
        env.ok(&["create", v]);
    }
    // BFQ is what --ioprio acts through; a kernel without it (this host's kernel has been
    // built both ways) is told so plainly, and the VM lane's stock kernel tests the weights.
    let bfq = std::fs::read_to_string(format!("/sys/block/{}/queue/scheduler", disk.name)).unwrap().contains("bfq");
    eprintln!("BFQ offered for {}: {bfq}", disk.name);
    // Loop devices keep their scheduler from one use to the next: start from none.
    assert!(env.ok(&["iosched", &disk.name, "none"]).contains("[none]"));
    let o = env.vzctl(&["set", "101", "--ioprio", "0", "--save"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("Setting I/O priority: 0 (BFQ weight 25)"), "{}", o.stdout);
    env.ok(&["start", "101"]);
    let o = env.vzctl(&["set", "101", "--ioprio", "0"]);
    if bfq {
        // Before the admin switches the disk to BFQ, a priority is said to do nothing.
        assert!(
            o.stderr.contains(&format!("no effect on /dev/{}", disk.name)) && o.stderr.contains("vzctl iosched"),
            "{}",
            o.stderr
        );
        let out = env.ok(&["iosched", &disk.name, "bfq"]);
        assert!(out.contains("[bfq] (low_latency 0, strict_guarantees 1)"), "{out}");
    } else {
        assert!(
            o.stderr.contains("no BFQ group scheduling") && o.stderr.contains("ioprio not applied"),
            "{}",
            o.stderr
        );
        let o = env.vzctl(&["iosched", &disk.name, "bfq"]);
        assert_ne!(o.code, 0);
        assert!(o.stderr.lines().count() == 1 && o.stderr.contains("bfq"), "{}", o.stderr);
    }
    env.ok(&["set", "102", "--ioprio", "7", "--save"]);
    env.ok(&["start", "102"]);
    let o = env.vzctl(&["set", "102", "--ioprio", "7"]);
    assert!(!o.stderr.contains("no effect"), "{}", o.stderr);

    // Each VE writes its own file; BPF counts exactly what fio wrote on the VE's disk.
    let file = |v: u32| env.root(v).join("fio.dat");
    for v in [101, 102] {
        let (_, w0) = bpf_bytes(&env, v, &disk);
        let f = env.fio(v, &file(v), &["--rw=write", "--bs=1M", "--size=256M"]);
        let (_, w1) = bpf_bytes(&env, v, &disk);
        let counted = (w1 - w0) as f64;
        eprintln!("VE {v}: fio wrote {} B, BPF counted {counted} B", f.write_bytes);
        assert!(within(counted, f.write_bytes as f64, 2.0), "VE {v}: BPF {counted} vs fio {}", f.write_bytes);
    }

    // The same random reads at once: ioprio 7 against 0.
    let job = ["--rw=randread", "--bs=4k", "--size=256M", "--ioengine=psync", "--runtime=8", "--time_based"];
    let t0 = bpf_io(&env, 102, &disk);
    let hi = if bfq {
        let (lo, hi) = std::thread::scope(|s| {
            let lo = s.spawn(|| env.fio(101, &file(101), &job));
            let hi = s.spawn(|| env.fio(102, &file(102), &job));
            (lo.join().unwrap(), hi.join().unwrap())
        });
        let ratio = hi.read_bw / lo.read_bw;
        eprintln!("ioprio 7 vs 0: {:.0} vs {:.0} B/s, ratio {ratio:.2}", hi.read_bw, lo.read_bw);
        assert!(ratio >= 3.0, "ioprio 7 vs 0: ratio {ratio:.2}, want at least 3");
        hi
    } else {
        // No weights to compare: the reads of one VE, counted.
        env.fio(102, &file(102), &job)
    };
    let t = bpf_io(&env, 102, &disk).since(&t0);
    assert!(
        within(t.read_bytes as f64, hi.read_bytes as f64, 2.0),
        "reads: BPF {} vs fio {}",
        t.read_bytes,
        hi.read_bytes
    );
    // Latency: one completed request per 4 KiB read, each in the histogram.
    assert!(within(t.done as f64, t.read_ops as f64, 2.0), "completions {} vs reads {}", t.done, t.read_ops);
    assert_eq!(t.hist.iter().sum::<u64>(), t.done);
    let (avg, p99) = (t.avg_us(), t.quantile_us(990));
    eprintln!("VE 102 latency: mean {avg} us, p99 <= {p99} us");
    assert!(avg > 0 && p99 >= avg && p99 < 1_000_000, "mean {avg} us, p99 {p99} us");

    // iolimit 10 MiB/s, set live: a VE that could do far more is held to it.
    let out = env.ok(&["set", "101", "--iolimit", "10M"]);
    assert!(out.contains("Setting I/O limit: 10485760 bytes/s"), "{out}");
    let f = env.fio(
        101,
        &file(101),
        &["--rw=read", "--bs=256k", "--size=256M", "--ramp_time=1", "--runtime=6", "--time_based"],
    );
    eprintln!("iolimit 10M: {:.0} B/s", f.read_bw);
    assert!(within(f.read_bw, 10485760.0, 10.0), "iolimit 10M: {:.0} B/s", f.read_bw);
    // iopslimit 200 with the bandwidth cap lifted.
    env.ok(&["set", "101", "--iolimit", "0", "--iopslimit", "200"]);
    let f = env.fio(
        101,
        &file(101),
        &["--rw=randread", "--bs=4k", "--size=256M", "--ramp_time=1", "--runtime=5", "--time_based"],
    );
    eprintln!("iopslimit 200: {:.0} IOPS", f.read_iops);
    assert!(within(f.read_iops, 200.0, 10.0), "iopslimit 200: {:.0} IOPS", f.read_iops);
    // Throttled bios are dispatched later by a kernel worker: still the VE's, exactly.
    env.ok(&["set", "101", "--iopslimit", "0", "--iolimit", "20M"]);
    let (_, w0) = bpf_bytes(&env, 101, &disk);
    let f = env.fio(101, &file(101), &["--rw=write", "--bs=64k", "--size=32M"]);
    let (_, w1) = bpf_bytes(&env, 101, &disk);
    assert!(within((w1 - w0) as f64, f.write_bytes as f64, 2.0), "throttled: BPF {} vs fio {}", w1 - w0, f.write_bytes);
    assert!(f.write_bw < 22.0 * 1048576.0, "iolimit 20M: {:.0} B/s", f.write_bw);
    env.ok(&["set", "101", "--iolimit", "0"]);

    // The VE cannot raise its own priority: no real-time I/O class for its root, and its
    // cgroup's weight stays what the admin set.
    let o = env.vzctl(&["exec2", "101", "ionice -c 1 -n 0 -p 1"]);
    assert_ne!(o.code, 0, "real-time I/O class allowed inside the VE: {}", o.stdout);
    // Its user namespace may mount the blkio hierarchy (it sees its own cgroup as the root),
    // but the files belong to the host's root: the weight cannot be written.
    let o = env.vzctl(&[
        "exec2",
        "101",
        "mkdir -p /tmp/cg && mount -t cgroup -o blkio none /tmp/cg; echo 1000 > /tmp/cg/blkio.bfq.weight",
    ]);
    assert_ne!(o.code, 0, "the VE wrote its own blkio weight");
    let _ = env.vzctl(&["exec", "101", "umount /tmp/cg"]);
    if bfq {
        let blkio = vz::io::blkio_dir(env.cg().as_ref(), 101).expect("blkio dir");
        let weight = std::fs::read_to_string(blkio.join("blkio.bfq.weight"))
            .or_else(|_| std::fs::read_to_string(blkio.join("io.bfq.weight")))
            .unwrap();
        assert!(weight.trim().ends_with("25"), "weight {weight}");
    }

    // vzlist: settings and what the VE did on its own disk.
    let l = env.vzlist(&["-H", "-o", "ctid,ioprio,iolimit,iopslimit,iowrite", "101", "102"]).stdout;
    let rows: Vec<Vec<u64>> = l.lines().map(|r| r.split_whitespace().map(|c| c.parse().unwrap()).collect()).collect();
    assert_eq!(rows[0][..4], [101, 0, 0, 0]);
    assert_eq!(rows[1][..4], [102, 7, 0, 0]);
    assert!(rows[0][4] >= 256 << 20 && rows[1][4] >= 256 << 20, "{l}");
    // vzstat: the VE's disk row.
    let o = env.cmd("vzstat", &["-v", "102"]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.lines().any(|r| r.split_whitespace().take(2).eq(["102", disk.name.as_str()])), "{text}");

    // Bad values: one line naming the value, exit 21, nothing changed.
    let conf = std::fs::read_to_string(env.conf_path(101)).unwrap();
    for (flag, bad) in [("--ioprio", "8"), ("--iolimit", "10X"), ("--iopslimit", "lots")] {
        env.vzctl(&["set", "101", flag, bad, "--save"]).one_line_error("vzctl", 21, &format!("'{bad}'"));
    }
    env.vzctl(&["iosched", "nosuchdisk", "bfq"]).one_line_error("vzctl", 21, "'nosuchdisk'");
    assert_eq!(std::fs::read_to_string(env.conf_path(101)).unwrap(), conf);
    for v in ["101", "102"] {
        env.ok(&["stop", "--fast", v]);
    }
}
