//! `vzctl console` against real VEs: what the VE writes to /dev/console reaches the
//! attached admin, keys reach the VE's console readers, Esc . or the end of the input
//! detaches, a second attach is refused, a VE flooding its console with nobody attached
//! is not held up, and the keeper goes with the VE; a restored VE has a console again, and
//! one a VE process holds open refuses a checkpoint plainly.
use std::{
    io::Write as _,
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use vz_tests::{wait_until, VzEnv};

/// An attached `vzctl console`, its output collected as it comes.
struct Attached {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

/// Collects what `r` gives into a shared buffer, in a thread.
fn collect(mut r: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

impl Attached {
    fn new(env: &VzEnv, veid: &str) -> Self {
        let mut child = env
            .cmd("vzctl", &["console", veid])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        let a = Attached { child, out, err };
        wait_until("vzctl console attached", || a.said().contains("Attached to CT"));
        a
    }

    fn said(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    fn seen(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    fn type_in(&mut self, keys: &[u8]) {
        let i = self.child.stdin.as_mut().unwrap();
        i.write_all(keys).unwrap();
        i.flush().unwrap();
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_console_relays_both_ways_and_detaches_at_esc_dot() {
    let env = VzEnv::new("console");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    let links =
        env.ok(&["exec2", "101", "readlink /dev/console; readlink /dev/tty1; test -c /dev/console && echo chr"]);
    let pts: Vec<&str> = links.lines().collect();
    assert!(pts.len() == 3 && pts[0].starts_with("pts/") && pts[0] == pts[1] && pts[2] == "chr", "{links}");
    // Something of the VE's on its console, as a getty would be.
    env.ok(&[
        "exec2",
        "101",
        "setsid sh -c 'while read l; do echo \"got:$l\"; done </dev/console >/dev/console 2>&1' </dev/null >/dev/null 2>&1 &",
    ]);
    let mut c = Attached::new(&env, "101");
    // A second one is refused meanwhile.
    env.vzctl(&["console", "101"]).one_line_error("vzctl", 8, "another vzctl console");
    c.type_in(b"hello\n");
    wait_until("the VE's answer on the console", || c.seen().contains("got:hello"));
    env.ok(&["exec2", "101", "echo from-exec > /dev/console"]);
    wait_until("what the VE wrote to /dev/console", || c.seen().contains("from-exec"));
    // Esc then . detaches (and is not passed on).
    c.type_in(b"\x1b.");
    let mut status = None;
    wait_until("vzctl console exiting at Esc .", || {
        status = c.child.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success());
    wait_until("the detach said", || c.said().contains("Detached from CT 101"));

    // The end of the input detaches too (a script's console run ends).
    let o = env.cmd("vzctl", &["console", "101"]).stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Nobody attached: a VE writing its console full is never held up by the host.
    let t = std::time::Instant::now();
    let out = env.ok(&["exec2", "101", "dd if=/dev/zero of=/dev/console bs=64k count=160 2>/dev/null; echo written"]);
    assert_eq!(out, "written\n");
    assert!(t.elapsed() < Duration::from_secs(20), "10 MB to the console took {:?}", t.elapsed());

    env.vzctl(&["console", "101", "2"]).one_line_error("vzctl", 21, "tty2");
    let sock = env.dir.join("lock/101.console");
    assert!(sock.exists());
    env.ok(&["stop", "101"]);
    wait_until("the keeper gone with the VE", || !sock.exists());
    env.vzctl(&["console", "101"]).one_line_error("vzctl", 31, "not running");
}

#[test]
fn a_restored_ve_has_a_console_again() {
    let env = VzEnv::new("consolecr");
    env.ok(&["create", "101"]);
    env.ok(&["start", "101"]);
    env.ok(&["chkpnt", "101"]);
    env.ok(&["restore", "101"]);
    let c = Attached::new(&env, "101");
    env.ok(&["exec2", "101", "echo after-restore > /dev/console"]);
    wait_until("the restored VE's console output", || c.seen().contains("after-restore"));
    // A VE process holding its console: a checkpoint cannot carry it, and says so before
    // anything is touched.
    env.ok(&["exec2", "101", "setsid sh -c 'exec cat </dev/console >/dev/null' </dev/null >/dev/null 2>&1 &"]);
    wait_until("the console reader", || env.vzctl(&["exec2", "101", "pidof cat"]).code == 0);
    env.vzctl(&["chkpnt", "101"]).one_line_error("vzctl", 8, "cat (pid");
    assert!(env.vzctl(&["status", "101"]).stdout.contains("running"));
    assert!(env.ok(&["exec2", "101", "echo alive"]).contains("alive"), "left frozen");
}
