//! `vzctl set --userpasswd USER:PASSWORD` (see `crate::passwd`): the VE's account files
//! edited through its root by fd, in the running VE's view or on its mounted private area.
use super::*;
use crate::sys::inroot::{self, Follow};

impl Vz {
    pub(super) fn userpasswd(&self, veid: u32, up: &UserPass) -> Result<(), VeError> {
        let ve = self.open(veid)?;
        let hash = crate::passwd::hash(&up.password)?;
        let (root, mounted_here) = match ns::find_init(self.cg.as_ref(), veid) {
            Some(init) => (inroot::ve_root(init).map_err(io_err("open the root of", Path::new("/")))?, false),
            None => {
                let m = self.do_mount(veid, &ve.conf)?;
                (inroot::host_dir(&ve.root).map_err(io_err("open", &ve.root))?, m)
            }
        };
        let r = self.write_account(&root, &ve.conf, veid, &up.user, &hash);
        if mounted_here {
            if let Err(e) = self.host_action(veid, &ve.conf, super::actions::Action::Umount) {
                crate::report::notice(format!("Warning: {e}"));
            }
            umount(self.sys(), &ve.root)?;
        }
        r?;
        crate::report::progress(format!("Password for {} was set in container {veid}", up.user));
        Ok(())
    }

    fn write_account(&self, root: &OwnedFd, conf: &ConfFile, veid: u32, user: &str, hash: &str) -> Result<(), VeError> {
        let fail = |why: &'static str| VeError::ChangePass { veid, user: user.to_string(), why };
        let (vuid, vgid) = self.ve_ids(conf);
        // Mode and owner of a file as it is (kept when replaced), or the defaults.
        let meta = |rel: &str, mode: u32| {
            inroot::path_fd(root, rel, Follow::InRoot)
                .and_then(|f| inroot::fstat(&f))
                .map_or((mode, vuid, vgid), |st| (st.st_mode & 0o7777, st.st_uid, st.st_gid))
        };
        let write = |rel: &str, text: &str, mode: u32| {
            let (mode, uid, gid) = meta(rel, mode);
            inroot::replace_file(root, rel, text.as_bytes(), mode, uid, gid)
                .map_err(|_| fail("its account files cannot be written"))
        };
        const MAX: u64 = 4 << 20;
        let mut passwd = inroot::read_small(root, "etc/passwd", MAX).map_err(|_| fail("no readable /etc/passwd"))?;
        if crate::passwd::uid_of(&passwd, user).is_none() {
            let group = inroot::read_small(root, "etc/group", MAX).unwrap_or_default();
            let (p, g, id) = crate::passwd::add_user(&passwd, &group, user);
            write("etc/group", &g, 0o644)?;
            passwd = p;
            let home = format!("home/{user}");
            inroot::ensure_dir(root, &home, vuid + id, vgid + id)
                .map_err(|_| fail("its home directory cannot be made"))?;
        }
        write("etc/passwd", &crate::passwd::shadowed(&passwd, user), 0o644)?;
        let shadow = inroot::read_small(root, "etc/shadow", MAX).unwrap_or_default();
        let days =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86400);
        write("etc/shadow", &crate::passwd::set_shadow(&shadow, user, hash, days), 0o600)
    }
}
