//! Kernel-side aya-log records reach the controller's tracing output.
use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use vz_common::res::NUMTCPSOCK;
use vz_tests::Env;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn refusals_are_logged_from_the_kernel() {
    let buf = Buf::default();
    let w = buf.clone();
    tracing_subscriber::fmt().with_ansi(false).with_writer(move || w.clone()).init();

    let mut env = Env::new("klog");
    assert!(env.bpf().klog.is_some(), "loader did not start kernel log forwarding");
    let id = env.ve(101);
    env.set(101, NUMTCPSOCK, 0, 0);
    let mut h = env.helper(101);
    assert!(h.open("tcp").is_err());
    let want = format!("ve {id} refused socket res {NUMTCPSOCK} barrier 0");
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).to_string();
        if text.contains(&want) {
            assert!(text.lines().any(|l| l.contains("vz::kernel") && l.contains(&want)), "{text}");
            break;
        }
        assert!(Instant::now() < end, "kernel log line {want:?} not seen in:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
