//! `vzctl set --userpasswd USER:PASSWORD`: the VE's /etc/passwd, /etc/group and
//! /etc/shadow edited by the host through `sys::inroot` (no program of the VE runs, as
//! host root or otherwise: a busybox VE has no chpasswd), the password hashed here with
//! SHA-512 crypt by the host's openssl, fed on a pipe (never on a command line).
use std::{
    io::Write as _,
    process::{Command, Stdio},
};

#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("hash the password: {0}")]
    Hash(String),
}

impl PasswdError {
    pub fn kind(&self) -> crate::kind::Kind {
        crate::kind::Kind::ChangePass
    }
}

/// SHA-512 crypt of `password` with a random salt (`$6$...`).
pub fn hash(password: &str) -> Result<String, PasswdError> {
    let mut child = Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| PasswdError::Hash(format!("openssl: {e}")))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(password.as_bytes())
            .and_then(|()| i.write_all(b"\n"))
            .map_err(|e| PasswdError::Hash(e.to_string()))?;
    }
    let o = child.wait_with_output().map_err(|e| PasswdError::Hash(e.to_string()))?;
    let h = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if !o.status.success() || !h.starts_with("$6$") {
        return Err(PasswdError::Hash(String::from_utf8_lossy(&o.stderr).trim().to_string()));
    }
    Ok(h)
}

/// The uid of `user` in a passwd file.
pub fn uid_of(passwd: &str, user: &str) -> Option<u32> {
    passwd.lines().find(|l| l.split(':').next() == Some(user)).and_then(|l| l.split(':').nth(2)?.parse().ok())
}

/// `passwd` and `group` with `user` added: the first free id from 1000 (same for its own
/// group), home /home/USER, shell /bin/sh. Returns them and the id.
pub fn add_user(passwd: &str, group: &str, user: &str) -> (String, String, u32) {
    let used = |text: &str| -> Vec<u32> { text.lines().filter_map(|l| l.split(':').nth(2)?.parse().ok()).collect() };
    let (u, g) = (used(passwd), used(group));
    let id = (1000..60000).find(|i| !u.contains(i) && !g.contains(i)).unwrap_or(60000);
    let nl = |t: &str| if t.is_empty() || t.ends_with('\n') { String::new() } else { "\n".into() };
    (
        format!("{passwd}{}{user}:x:{id}:{id}::/home/{user}:/bin/sh\n", nl(passwd)),
        format!("{group}{}{user}:x:{id}:\n", nl(group)),
        id,
    )
}

/// `shadow` with `user`'s password hash set (a line added if it has none); `days` is the
/// day of the change (days since 1970).
pub fn set_shadow(shadow: &str, user: &str, hash: &str, days: u64) -> String {
    let mut found = false;
    let mut out: Vec<String> = shadow
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(':').collect();
            if f.first() == Some(&user) && f.len() >= 2 {
                found = true;
                f[1] = hash;
                let d = days.to_string();
                if f.len() >= 3 {
                    f[2] = &d;
                    return f.join(":");
                }
                return f.join(":");
            }
            l.to_string()
        })
        .collect();
    if !found {
        out.push(format!("{user}:{hash}:{days}:0:99999:7:::"));
    }
    out.join("\n") + "\n"
}

/// passwd with `user`'s password field pointing at shadow (`x`), for VEs whose passwd
/// held a hash or nothing there.
pub fn shadowed(passwd: &str, user: &str) -> String {
    let out: Vec<String> = passwd
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(':').collect();
            if f.first() == Some(&user) && f.len() >= 2 {
                f[1] = "x";
                return f.join(":");
            }
            l.to_string()
        })
        .collect();
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_added_and_hashes_set_in_place() {
        let passwd =
            "root:x:0:0:root:/root:/bin/sh\nbin:x:1:1::/bin:/bin/false\nuser:x:1000:1000::/home/user:/bin/sh\n";
        let group = "root:x:0:\nuser:x:1000:\n";
        let (p, g, id) = add_user(passwd, group, "alice");
        assert_eq!(id, 1001);
        assert!(p.ends_with("alice:x:1001:1001::/home/alice:/bin/sh\n") && p.starts_with(passwd));
        assert!(g.ends_with("alice:x:1001:\n"));
        assert_eq!(uid_of(&p, "alice"), Some(1001));
        assert_eq!(uid_of(&p, "nobody"), None);
        let shadow = "root:*:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n";
        let s = set_shadow(shadow, "root", "$6$salt$hash", 20000);
        assert_eq!(s, "root:$6$salt$hash:20000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n");
        let s = set_shadow(&s, "alice", "$6$x$y", 20000);
        assert!(s.ends_with("alice:$6$x$y:20000:0:99999:7:::\n"));
        assert_eq!(shadowed("root::0:0::/root:/bin/sh\n", "root"), "root:x:0:0::/root:/bin/sh\n");
    }
}
