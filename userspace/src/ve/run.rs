//! The helper programs verbs run (tar, criu, ssh, rsync): each to its end within a time,
//! its output read while it runs, so a chatty one never stalls on a full pipe.
use super::*;

pub(crate) struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// What a helper reads on its stdin.
#[derive(Clone, Copy)]
pub(crate) enum Feed<'a> {
    Null,
    Bytes(&'a [u8]),
    /// Ours (vzctl's own stdin, e.g. the stream vzmigrate sends).
    Inherit,
    /// A directory as a tar stream compressed by zstd at its fastest level on every core (a
    /// dump's work directory: mostly memory pages, which ssh would carry far slower than
    /// zstd shrinks them), made by a tar of its own: nothing written on the way, no write
    /// of ours that could block.
    Tar(&'a Path),
}

/// A tar writing a directory to its stdout, ended (killed, reaped) when dropped.
struct TarOut(std::process::Child);

impl Drop for TarOut {
    fn drop(&mut self) {
        // It has ended unless its reader went away early (then it is stuck on a pipe).
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` with `feed` on its stdin. None: it ran past `wait` and was killed.
pub(crate) fn run_within(
    mut cmd: std::process::Command,
    feed: Feed<'_>,
    wait: Duration,
) -> io::Result<Option<Finished>> {
    let mut _tar = None;
    let (stdin, input) = match feed {
        Feed::Null => (Stdio::null(), None),
        Feed::Bytes(b) => (Stdio::piped(), Some(b)),
        Feed::Inherit => (Stdio::inherit(), None),
        Feed::Tar(dir) => {
            let mut tar = std::process::Command::new("tar")
                .args(["--use-compress-program", "zstd -1 -T0", "-C"])
                .arg(dir)
                .args(["-cf", "-", "."])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            let out = tar.stdout.take().ok_or_else(|| io::Error::other("tar has no stdout"))?;
            _tar = Some(TarOut(tar));
            (Stdio::from(out), None)
        }
    };
    let mut child = cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
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
