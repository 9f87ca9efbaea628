//! Real guests: how long a systemd distribution takes from `vzctl start --wait` until
//! systemd says "running" (multi-user, every unit started), how long `start` alone takes
//! with it (returns once init runs), and how long `stop` takes to halt it cleanly; with
//! the memory its cgroup holds once booted. Medians of 5.
use std::time::Instant;

use vz_tests::VzEnv;

use super::{median, ms, ok};

pub fn boot_times() {
    println!("== systemd guests: start, boot to running, stop (5 rounds each, medians) ==");
    for distro in [vz::template::DEBIAN_SYSTEMD, vz::template::UBUNTU] {
        let env = VzEnv::new("bench-guest");
        env.distro_template(&distro);
        ok(&env, &["create", "101", "--ostemplate", distro.template]);
        let (mut starts, mut boots, mut stops, mut mem) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..6 {
            let t = Instant::now();
            ok(&env, &["start", "101"]);
            let start = ms(t.elapsed());
            ok(&env, &["stop", "101"]);
            let t = Instant::now();
            let o = env.vzctl(&["start", "101", "--wait"]);
            let boot = ms(t.elapsed());
            assert!(o.code == 0 && o.stdout.contains("Container has booted"), "{o:?}");
            let state = env.vzctl(&["exec2", "101", "systemctl is-system-running"]).stdout;
            assert_eq!(state.trim(), "running", "{}", distro.template);
            let rss = env.cg().controller_dir(101, "memory").and_then(|d| {
                vz::cgroup::read_num(&d.join("memory.usage_in_bytes"))
                    .or_else(|| vz::cgroup::read_num(&d.join("memory.current")))
            });
            let t = Instant::now();
            ok(&env, &["stop", "101"]);
            let stop = ms(t.elapsed());
            // The first round fills caches (the template's files, the programs).
            if round > 0 {
                starts.push(start);
                boots.push(boot);
                stops.push(stop);
                mem.extend(rss.map(|b| b as f64 / 1048576.0));
            }
        }
        println!(
            "{:<22} start {:6.1} ms   start --wait until running {:7.1} ms   stop {:6.1} ms   memory once booted {:5.1} MiB",
            distro.template,
            median(starts),
            median(boots),
            median(stops),
            if mem.is_empty() { f64::NAN } else { median(mem) }
        );
    }
}
