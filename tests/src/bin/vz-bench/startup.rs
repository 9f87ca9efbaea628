//! Where `vzctl start` spends its time: the verb's own step marks (`vzctl -vv`,
//! `vz::timing`), medians over starts of one busybox VE.
use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use vz_tests::VzEnv;

use super::{median, ms, ok};

/// The (step, ms since the verb began) marks of a `vzctl -vv` run's stderr.
pub fn marks(stderr: &str) -> Vec<(String, f64)> {
    let field = |l: &str, key: &str| -> Option<String> {
        let at = l.find(key)? + key.len();
        Some(l[at..].split('"').next()?.to_string())
    };
    stderr
        .lines()
        .filter(|l| l.contains("vz::timing"))
        .filter_map(|l| Some((field(l, "step=\"")?, field(l, "ms=\"")?.parse().ok()?)))
        .collect()
}

/// 16 starts (the first, which loads the programs, left out): each step's share, the
/// process around the verb (exec, config, cgroup detection, exit; nsenter into the
/// test's network namespace included) and the first `vzctl exec` after it.
pub fn start_breakdown() {
    println!("== where vzctl start goes (vzctl -vv step marks; 15 starts, medians) ==");
    let env = VzEnv::new("bench-steps");
    ok(&env, &["create", "101"]);
    let mut steps: Vec<(String, Vec<f64>)> = Vec::new();
    let (mut outside, mut execs, mut walls) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..16 {
        let t = Instant::now();
        let o = env.cmd("vzctl", &["-vv", "start", "101"]).stdin(Stdio::null()).output().expect("vzctl");
        let wall = ms(t.elapsed());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let t = Instant::now();
        ok(&env, &["exec", "101", "true"]);
        let exec = ms(t.elapsed());
        ok(&env, &["stop", "--fast", "101"]);
        std::thread::sleep(Duration::from_millis(100));
        if round == 0 {
            continue;
        }
        let m = marks(&String::from_utf8_lossy(&o.stderr));
        let mut prev = 0.0;
        for (name, at) in &m {
            match steps.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => v.push(at - prev),
                None => steps.push((name.clone(), vec![at - prev])),
            }
            prev = *at;
        }
        outside.push(wall - prev);
        walls.push(wall);
        execs.push(exec);
    }
    for (name, v) in steps {
        println!("  up to {name:<22} {:6.1} ms", median(v));
    }
    println!("  the process around the verb  {:6.1} ms", median(outside));
    println!("  vzctl start in all           {:6.1} ms", median(walls));
    println!("  then vzctl exec true         {:6.1} ms", median(execs));
}

/// `vzctl -vv start VEID`: its wall time and each step's share (ms), in step order.
pub fn timed_start(env: &VzEnv, veid: &str) -> (f64, Vec<(String, f64)>) {
    let t = Instant::now();
    let o = env.cmd("vzctl", &["-vv", "start", veid]).stdin(Stdio::null()).output().expect("vzctl");
    let wall = ms(t.elapsed());
    assert!(o.status.success(), "start {veid}: {}", String::from_utf8_lossy(&o.stderr));
    let mut prev = 0.0;
    let steps = marks(&String::from_utf8_lossy(&o.stderr))
        .into_iter()
        .map(|(name, at)| {
            let d = at - prev;
            prev = at;
            (name, d)
        })
        .collect();
    (wall, steps)
}

/// Prints each step's median over `first` beside its median over `last` (the steps of
/// starts as `timed_start` returns them): which steps grow with the number of VEs.
pub fn compare_steps(first: &[Vec<(String, f64)>], last: &[Vec<(String, f64)>]) {
    let per_step = |runs: &[Vec<(String, f64)>], name: &str| {
        median(runs.iter().flat_map(|r| r.iter().filter(|(n, _)| n == name).map(|(_, d)| *d)).collect())
    };
    let Some(names) = first.first() else { return };
    for (name, _) in names {
        println!("  up to {name:<22} {:6.1} ms  {:6.1} ms", per_step(first, name), per_step(last, name));
    }
}
