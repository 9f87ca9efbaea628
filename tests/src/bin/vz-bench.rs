//! Benchmarks run by `cargo xtask bench`: each figure is a ratio from one run, with
//! programs attached vs the same VE cgroup with none.
use std::process::Command;

use vz::bpf::{Bpf, Pins};
use vz_tests::{bin, Env};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// ns per socket create+close, measured by the helper inside the VE cgroup.
fn measure(env: &Env, kind: &str, iters: u64) -> f64 {
    let out = Command::new(bin("vzt-helper"))
        .arg("--cgroup")
        .arg(env.ve_dir(101))
        .args(["bench", kind, &iters.to_string()])
        .output()
        .expect("run helper");
    assert!(out.status.success(), "helper failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("ns/op")
}

fn attach(env: &mut Env) {
    env.bpf = Some(Bpf::ensure(&env.cfg).expect("load programs"));
    env.ve(101);
}

fn detach(env: &mut Env) {
    env.bpf = None;
    Pins { root: env.cfg.pin_root.clone() }.remove_all().expect("unpin");
}

fn main() {
    let rounds: usize = std::env::var("VZ_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(9);
    let iters: u64 = std::env::var("VZ_BENCH_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mut env = Env::new("bench");
    env.ve(101);
    let mut attached_now = true;
    println!("== socket beancounters: create+close in a VE cgroup, programs attached vs none ==");
    for kind in ["tcp", "udp"] {
        measure(&env, kind, iters / 10); // warm-up
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // ABBA order so slow drift of the machine does not favour one side.
            let order = if round % 2 == 0 { [true, false] } else { [false, true] };
            for want in order {
                if want != attached_now {
                    if want { attach(&mut env) } else { detach(&mut env) }
                    attached_now = want;
                }
                let ns = measure(&env, kind, iters);
                if want { with.push(ns) } else { without.push(ns) }
            }
        }
        let (w, wo) = (median(with), median(without));
        println!(
            "socket {kind:<3} create+close: attached {w:>7.0} ns/op, none {wo:>7.0} ns/op, ratio {:.3} (median of {rounds} rounds x {iters} ops; target <= 1.02)",
            w / wo
        );
    }
    if !attached_now {
        attach(&mut env);
    }
}
