//! vzctl's beancounter commands as an admin runs them: output, exit codes, and one-line
//! errors for a kernel or privilege level that cannot load BPF.
use std::{os::unix::process::CommandExt as _, process::Command};

use vz_tests::{bin, Helper, Out, VzEnv};

#[test]
fn set_and_ubc_report_and_limits_outlive_the_cli() {
    let env = VzEnv::new("cli");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    let o = env.vzctl(&["set", "101", "--numtcpsock", "2", "--numothersock", "3:5"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "UB limits were set successfully\n");
    // vzctl has exited; the pinned programs enforce on their own.
    let mut h = Helper::spawn(Some(&env.cg().ve_dir(101)));
    h.open("tcp").unwrap();
    h.open("tcp").unwrap();
    assert_eq!(h.open("tcp"), Err(libc::ENOBUFS));
    let o = env.vzctl(&["ubc", "101"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "Version: 2.5");
    assert!(lines[1].starts_with("       uid  resource"));
    // The VE id and colon stand on the VE's first row only.
    assert!(lines[2].starts_with("      101:  "), "{}", o.stdout);
    assert_eq!(lines.iter().filter(|l| l.contains("101:")).count(), 1);
    let find = |name: &str| -> Vec<&str> {
        let l = lines.iter().find(|l| l.split_whitespace().any(|w| w == name)).unwrap_or_else(|| panic!("{name}"));
        l.split_whitespace().skip_while(|w| *w != name).collect()
    };
    assert_eq!(find("numtcpsock"), ["numtcpsock", "2", "2", "2", "2", "1"]);
    let other = find("numothersock");
    // held, barrier, limit (maxheld may count the socket vzctl used to bring up lo).
    assert_eq!([other[0], other[1], other[3], other[4]], ["numothersock", "0", "3", "5"]);
    drop(h);
    env.vzctl(&["set", "101", "--numtcpsock", "10:5"]).one_line_error("vzctl", 21, "'10:5'");
    env.vzctl(&["set", "101", "--numothersock", "lots"]).one_line_error("vzctl", 21, "'lots'");
    env.vzctl(&["ubc", "555"]).one_line_error("vzctl", 31, "555");
    // Refused values changed nothing.
    let again = env.ok(&["ubc", "101"]);
    let tcp = again.lines().find(|l| l.contains("numtcpsock")).unwrap();
    assert_eq!(tcp.split_whitespace().rev().nth(2), Some("2"), "{again}");
    env.ok(&["stop", "--fast", "101"]);
}

#[test]
fn unprivileged_caller_gets_a_clear_error() {
    let env = VzEnv::new("noroot");
    env.ok(&["create", "101"]);
    let mut c = env.cmd_here("vzctl", &["ubc", "101"]);
    c.uid(65534).gid(65534);
    Out::of(c.output().unwrap()).one_line_error("vzctl", 3, "needs root");
    assert!(!env.bpf_root.exists(), "an unprivileged run created pins");
}

/// A config directory that is not there (mistyped, or removed by a script) is refused by
/// name: the host's defaults (/vz, /sys/fs/bpf/vz, the host's cgroups) are never used
/// instead.
#[test]
fn a_missing_config_directory_is_refused_not_replaced_by_the_defaults() {
    let env = VzEnv::new("noconf");
    let missing = env.dir.join("no-such-conf");
    for (prog, args, code) in [("vzctl", &["create", "101"][..], 21), ("vzlist", &["-a"], 1)] {
        let mut c = env.cmd_here(prog, args);
        c.env("VZ_CONF_DIR", &missing);
        // Should the refusal ever break, the run still lands in the test's own tree.
        let d = &env.dir;
        for (var, path) in [
            ("VZ_VE_ROOT", d.join("fallback/root/$VEID")),
            ("VZ_VE_PRIVATE", d.join("fallback/private/$VEID")),
            ("VZ_TEMPLATE", d.join("fallback/template")),
            ("VZ_LOCKDIR", d.join("fallback/lock")),
            ("VZ_BPF_ROOT", env.bpf_root.clone()),
        ] {
            c.env(var, path);
        }
        c.env("VZ_CGROUP_PARENT", &env.name);
        Out::of(c.output().unwrap()).one_line_error(prog, code, &missing.to_string_lossy());
    }
    assert!(!env.dir.join("fallback").exists() && !env.bpf_root.exists(), "a refused run made something");
}

#[test]
fn kernel_without_bpf_is_reported_plainly() {
    let env = VzEnv::new("nobpf");
    env.ok(&["create", "101"]);
    let nobpf = |args: &[&str]| {
        let mut c = Command::new(bin("vzt-helper"));
        c.arg("nobpf").arg(bin("vzctl")).args(args).env("VZ_CONF_DIR", env.dir.join("conf"));
        Out::of(c.output().unwrap())
    };
    nobpf(&["ubc", "101"]).one_line_error("vzctl", 5, "no bpf() system call");
    assert!(!env.bpf_root.exists(), "a failed run created pins");
    // A VE still starts, and vzctl says plainly that its limits are not enforced.
    let o = nobpf(&["start", "101"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("Warning: beancounters are not enforced: this kernel has no bpf() system call"), "{o:?}");
    assert_eq!(env.ok(&["status", "101"]), "VEID 101 exist mounted running\n");
    env.ok(&["stop", "--fast", "101"]);
}

/// A VE another vzctl works on: a command waits LOCK_WAIT seconds, then stops with OpenVZ's
/// "locked" (exit 9) naming the holder, having changed nothing; `--skiplock` goes ahead.
#[test]
fn a_locked_ve_exits_9_after_lock_wait_and_skiplock_goes_ahead() {
    use std::os::fd::AsRawFd as _;
    let env = VzEnv::new("lockwait");
    env.ok(&["create", "101"]);
    let conf = env.dir.join("conf/vz.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("{text}LOCK_WAIT=\"1\"\n")).unwrap();
    let lock = std::fs::OpenOptions::new().read(true).write(true).open(env.dir.join("lock/101.lck")).unwrap();
    // SAFETY: flock on our own open file (the test holds the VE's lock, as a vzctl would).
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    std::fs::write(env.dir.join("lock/101.lck"), format!("{}\n", std::process::id())).unwrap();
    let before = std::fs::read_to_string(env.conf_path(101)).unwrap();
    let o = env.vzctl(&["set", "101", "--cpuunits", "2000", "--save"]);
    o.one_line_error("vzctl", 9, "locked");
    assert!(o.stderr.contains(&format!("pid {}", std::process::id())), "names the holder: {o:?}");
    assert_eq!(std::fs::read_to_string(env.conf_path(101)).unwrap(), before, "changed while locked");
    let o = env.vzctl(&["--skiplock", "set", "101", "--cpuunits", "2000", "--save"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(std::fs::read_to_string(env.conf_path(101)).unwrap().contains("CPUUNITS=\"2000\""));
    // The holder's pid is still written for the next waiter.
    assert_eq!(std::fs::read_to_string(env.dir.join("lock/101.lck")).unwrap().trim(), std::process::id().to_string());
    drop(lock);
    env.ok(&["set", "101", "--cpuunits", "1000", "--save"]);
}

/// Man pages and bash completion come from the commands' own definitions: the pages render
/// with man(1) and name the options, hidden commands have none, and bash completes verbs
/// and this node's VEIDs and names.
#[test]
fn man_pages_render_and_bash_completes_verbs_and_veids() {
    let env = VzEnv::new("docs");
    env.ok(&["create", "101"]);
    env.ok(&["create", "102", "--name", "webby"]);
    let dir = env.dir.join("man");
    let o = Command::new(bin("vzctl")).env("VZ_GENERATE", format!("man:{}", dir.display())).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    for page in ["vzctl.8", "vzctl-set.8", "vzctl-chkpnt.8"] {
        assert!(dir.join(page).is_file(), "{page} not made");
    }
    assert!(!dir.join("vzctl-__migrate-accept.8").exists(), "a page for a hidden command");
    let text = Command::new("man")
        .arg("-l")
        .arg(dir.join("vzctl-set.8"))
        .env("MANPAGER", "cat")
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("--cpuunits") && text.contains("--save"), "rendered page: {text}");
    let o = Command::new(bin("vzctl")).env("VZ_GENERATE", "bash").output().unwrap();
    let script = env.dir.join("vzctl.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    let complete = |words: &str| -> String {
        let sh = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMP_LINE=\"${{COMP_WORDS[*]}}\"; \
             COMP_POINT=${{#COMP_LINE}}; _vzbpf_vzctl vzctl \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let path =
            format!("{}:{}", bin("vzlist").parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
        let o = Command::new("bash")
            .args(["-c", &sh])
            .env("PATH", path)
            .env("VZ_CONF_DIR", env.dir.join("conf"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let verbs = complete("vzctl st");
    assert!(["start", "stop", "status"].iter().all(|v| verbs.lines().any(|l| l == *v)), "{verbs}");
    let ves = complete("vzctl start ''");
    assert!(["101", "102", "webby"].iter().all(|v| ves.lines().any(|l| l == *v)), "{ves}");
    let ves = complete("vzctl start we");
    assert_eq!(ves.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>(), ["webby"], "{ves}");

    // fish runs its completion non-interactively (complete -C): verbs and VEs.
    let path = format!("{}:{}", bin("vzlist").parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let o = Command::new(bin("vzctl")).env("VZ_GENERATE", "fish").output().unwrap();
    let fish = env.dir.join("vzctl.fish");
    std::fs::write(&fish, &o.stdout).unwrap();
    let fish_complete = |line: &str| -> String {
        let o = Command::new("fish")
            .args(["--no-config", "-c", &format!("source {}; complete -C '{line}'", fish.display())])
            .env("PATH", &path)
            .env("VZ_CONF_DIR", env.dir.join("conf"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let words = |out: &str| out.lines().map(|l| l.split('\t').next().unwrap_or("").to_string()).collect::<Vec<_>>();
    let verbs = words(&fish_complete("vzctl st"));
    assert!(["start", "stop", "status"].iter().all(|v| verbs.iter().any(|l| l == v)), "{verbs:?}");
    let ves = words(&fish_complete("vzctl start "));
    assert!(["101", "102", "webby"].iter().all(|v| ves.iter().any(|l| l == v)), "{ves:?}");
    // zsh: the script parses and defines its completion function.
    let o = Command::new(bin("vzctl")).env("VZ_GENERATE", "zsh").output().unwrap();
    let zsh = env.dir.join("_vzctl");
    std::fs::write(&zsh, &o.stdout).unwrap();
    let o = Command::new("zsh").args(["-n"]).arg(&zsh).output().unwrap();
    assert!(o.status.success(), "zsh -n: {o:?}");
    let o = Command::new("zsh")
        .args([
            "-f",
            "-c",
            &format!("autoload -U compinit && compinit -u -D && source {} && whence -w _vzctl", zsh.display()),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("_vzctl: function"), "{o:?}");
}
