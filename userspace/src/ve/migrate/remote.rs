//! The destination node as vzmigrate reaches it: one ssh connection (a ControlMaster that
//! dies with vzmigrate), remote vzctl runs and rsync copies over it, bounded in time.
use super::*;
pub(super) use crate::ve::run::Feed;

/// The destination node, reached with ssh. Every ssh of one migration goes through one
/// connection (OpenSSH's ControlMaster, OpenVZ's `--ssh-mux`): the key exchange is paid
/// once, not by each step while the VE is frozen. The master is vzmigrate's child and
/// dies with it, even when vzmigrate is killed; it goes when this is dropped.
pub(super) struct Remote<'a> {
    dest: &'a str,
    ssh: &'a [String],
    mux: PathBuf,
    master: Option<std::process::Child>,
}

impl<'a> Remote<'a> {
    pub(super) fn new(dest: &'a str, ssh: &'a [String], lock_dir: &Path, veid: u32) -> Self {
        Self { dest, ssh, mux: mux_path(lock_dir, veid, std::process::id()), master: None }
    }

    /// Opens the shared connection; a DEST that cannot be reached is said here, in one line.
    pub(super) fn connect(&mut self) -> Result<(), VeError> {
        let _ = fs::remove_file(&self.mux);
        let mut cmd = std::process::Command::new("ssh");
        cmd.args(["-M", "-N", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ControlPersist=no"])
            .arg("-o")
            .arg(format!("ControlPath={}", self.mux.display()))
            .args(self.ssh)
            .arg(self.dest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::sys::spawn::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| self.err(format!("cannot run ssh: {e}"), -1))?;
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if self.mux.exists() {
                self.master = Some(child);
                return Ok(());
            }
            if let Ok(Some(_)) = child.try_wait() {
                let mut text = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = io::Read::read_to_string(&mut e, &mut text);
                }
                let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
                return Err(self.err(format!("cannot reach it over ssh: {line}"), -1));
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                return Err(self.err("cannot reach it over ssh: timed out".into(), -1));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The master's socket: in LOCKDIR (root's), unless that path is too long for a unix
/// socket (108 bytes with its NUL), then in /run.
fn mux_path(lock_dir: &Path, veid: u32, pid: u32) -> PathBuf {
    let name = format!(".ssh-mux-{veid}-{pid}");
    let there = lock_dir.join(&name);
    if there.as_os_str().len() < 100 {
        there
    } else {
        Path::new("/run").join(format!("vzmigrate{name}"))
    }
}

impl Drop for Remote<'_> {
    fn drop(&mut self) {
        if let Some(mut m) = self.master.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
        let _ = fs::remove_file(&self.mux);
    }
}

/// Options as a shell splits them (what OpenVZ's vzmigrate did with `--ssh` and `--rsync`):
/// words split on blanks, '…' and "…" quoting, backslash escapes. An open quote is an error.
pub fn shell_words(s: &str) -> Result<Vec<String>, &'static str> {
    let (mut words, mut cur, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("a ' is not closed"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => cur.push(chars.next().ok_or("a \" is not closed")?),
                        Some(c) => cur.push(c),
                        None => return Err("a \" is not closed"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next().ok_or("it ends in a backslash")?);
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// A word for the remote shell, quoted.
pub(super) fn quote(w: &str) -> String {
    if !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b)) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

impl Remote<'_> {
    fn ssh_words(&self) -> Vec<String> {
        let mut w: Vec<String> = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"].map(String::from).into();
        // No master of their own: through ours while it lives, else straight.
        w.extend(["-o".into(), "ControlMaster=no".into()]);
        w.extend(["-o".into(), format!("ControlPath={}", self.mux.display())]);
        w.extend(self.ssh.iter().cloned());
        w
    }

    pub(super) fn err(&self, why: String, code: i32) -> VeError {
        VeError::Remote { dest: self.dest.to_string(), why, code }
    }

    /// Runs a command to its end within `wait`, feeding it `input`; its stdout, or its
    /// error's first line.
    fn run(&self, cmd: std::process::Command, input: Feed<'_>, wait: Duration) -> Result<String, VeError> {
        let name = format!("{:?}", cmd.get_program());
        let mut cmd = cmd;
        // A killed vzmigrate leaves no copy running on (its repair then settles the
        // destination without a racing rsync).
        crate::sys::spawn::die_with_parent(&mut cmd);
        let t = Instant::now();
        let done = super::super::run::run_within(cmd, input, wait)
            .map_err(|e| self.err(format!("cannot run {name}: {e}"), -1))?
            .ok_or_else(|| self.err(format!("{name} timed out after {} s", wait.as_secs()), -1))?;
        tracing::debug!(dest = self.dest, ms = t.elapsed().as_millis() as u64, "{name} done");
        let (status, err) = (done.status, done.stderr);
        if status.success() {
            if !err.trim().is_empty() {
                tracing::debug!(dest = self.dest, "{name} said: {}", err.trim());
            }
            return Ok(done.stdout);
        }
        let code = status.code().unwrap_or(-1);
        // The remote vzctl's error is its last line; ssh's own (255) is about the link.
        let line = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        let why = if code == 255 {
            format!("cannot reach it over ssh: {line}")
        } else if line.is_empty() {
            format!("{name} exited with {code}")
        } else {
            line
        };
        Err(self.err(why, code))
    }

    /// `vzctl ARGS` on the destination.
    pub(super) fn vzctl(&self, args: &[String], input: Feed<'_>, wait: Duration) -> Result<String, VeError> {
        let words = self.ssh_words();
        let mut cmd = std::process::Command::new(&words[0]);
        let remote: Vec<String> = std::iter::once("vzctl".to_string()).chain(args.iter().map(|a| quote(a))).collect();
        cmd.args(&words[1..]).arg(self.dest).arg("--").arg(remote.join(" "));
        self.run(cmd, input, wait)
    }

    /// `vzctl __migrate-settle VEID HOW [--keep-dst]` there.
    pub(super) fn settle(&self, veid: u32, how: &str, keep: bool) -> Result<String, VeError> {
        let mut args = vec!["__migrate-settle".to_string(), veid.to_string(), how.to_string()];
        if keep {
            args.push("--keep-dst".into());
        }
        self.vzctl(&args, Feed::Null, SHORT)
    }

    /// Undoes what was copied there (kept with `keep`). A failure is said, not returned:
    /// the VE runs here whatever is left there.
    pub(super) fn abort_copy(&self, veid: u32, keep: bool) {
        if let Err(e) = self.settle(veid, "abort", keep) {
            crate::report::notice(format!("Warning: what was copied to {} is left there: {e}", self.dest));
        }
    }

    /// rsync of `src` (a directory's contents, or a file) to `dst` on the destination:
    /// hard links, sparse files, xattrs and numeric ids kept, what is gone there deleted.
    pub(super) fn rsync(&self, src: &Path, dst: &Path, extra: &[String]) -> Result<(), VeError> {
        let mut cmd = std::process::Command::new("rsync");
        let ssh = self.ssh_words().iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        cmd.args(["-aHSX", "--numeric-ids", "--delete", "-e", &ssh]).args(extra);
        let (mut from, mut to) = (src.as_os_str().to_os_string(), dst.as_os_str().to_os_string());
        if src.is_dir() {
            from.push("/");
            to.push("/");
        }
        let mut target = std::ffi::OsString::from(format!("{}:", self.dest));
        target.push(quote(&to.to_string_lossy()));
        cmd.arg(from).arg(target);
        self.run(cmd, Feed::Null, LONG).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mux_socket_path_fits_a_unix_socket() {
        assert_eq!(mux_path(Path::new("/vz/lock"), 101, 7), Path::new("/vz/lock/.ssh-mux-101-7"));
        let long = Path::new("/srv").join("x".repeat(120));
        let p = mux_path(&long, 4294967295, 4194304);
        assert_eq!(p, Path::new("/run/vzmigrate.ssh-mux-4294967295-4194304"));
        assert!(p.as_os_str().len() < 108);
    }
}
