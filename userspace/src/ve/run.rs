//! The helper programs verbs run (tar, criu, ssh, rsync): each to its end within a time,
//! its output read while it runs, so a chatty one never stalls on a full pipe.
use super::*;

pub(super) struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` with `input` on its stdin (else /dev/null). None: it ran past `wait` and
/// was killed.
pub(super) fn run_within(
    mut cmd: std::process::Command,
    input: Option<&[u8]>,
    wait: Duration,
) -> io::Result<Option<Finished>> {
    let mut child = cmd
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let drain = |pipe: Option<Box<dyn io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn io::Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn io::Read + Send>));
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        io::Write::write_all(&mut stdin, text)?;
    }
    let end = Instant::now() + wait;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Some(Finished { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }))
}
