//! `vzctl create`: a private area from a template, a config, ids of its own.
use super::*;

impl Vz {
    /// Checks a VE's private area and root paths before anything is made: absolute, not
    /// each other (or inside each other), and not used by any other VE, so one VE can
    /// never be given another's files or mount point.
    pub(super) fn check_paths(&self, veid: u32, private: &Path, root: &Path) -> Result<(), VeError> {
        let bad = |key: &'static str, p: &Path, why: &'static str| VeError::BadValue {
            key,
            value: p.display().to_string(),
            why,
        };
        for (key, p) in [("private", private), ("root", root)] {
            if !p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(bad(key, p, "use an absolute path without '..'"));
            }
            if p.parent().is_none() {
                return Err(bad(key, p, "not the host's root directory"));
            }
        }
        let norm = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let (pv, rt) = (norm(private), norm(root));
        if pv.starts_with(&rt) || rt.starts_with(&pv) {
            return Err(bad("root", root, "the root and the private area must be apart"));
        }
        for other in self.veids().into_iter().filter(|v| *v != veid) {
            let Ok(c) = self.conf(other) else { continue };
            for theirs in [norm(&self.private_of(other, &c)), norm(&self.root_of(other, &c))] {
                for (key, mine, orig) in [("private", &pv, private), ("root", &rt, root)] {
                    if mine.starts_with(&theirs) || theirs.starts_with(mine) {
                        return Err(VeError::BadValue {
                            key,
                            value: orig.display().to_string(),
                            why: "overlaps the files of another container",
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The directory holding a VE's private area or root must keep other host users out
    /// (a VE's setuid files, its users' ids): root-owned, mode 0700. Made so when missing;
    /// the directory of vz.conf's own pattern is tightened; any other is refused.
    pub(super) fn secure_parent(&self, key: &'static str, path: &Path, veid: u32) -> Result<(), VeError> {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let Some(parent) = path.parent() else { return Ok(()) };
        if !parent.exists() {
            fs::create_dir_all(parent).map_err(io_err("mkdir", parent))?;
            fs::set_permissions(parent, fs::Permissions::from_mode(0o700)).map_err(io_err("chmod", parent))?;
            return Ok(());
        }
        let md = fs::metadata(parent).map_err(io_err("stat", parent))?;
        if md.uid() == 0 && md.mode() & 0o077 == 0 {
            return Ok(());
        }
        let ours = [self.paths.private_of(veid), self.paths.root_of(veid)].iter().any(|p| p.parent() == Some(parent));
        if !ours {
            return Err(VeError::BadValue {
                key,
                value: path.display().to_string(),
                why: "its directory lets other host users in: make it root-owned with mode 0700",
            });
        }
        info!(dir = %parent.display(), "made 0700 root-owned: other host users must not reach containers' files");
        std::os::unix::fs::chown(parent, Some(0), Some(0)).map_err(io_err("chown", parent))?;
        fs::set_permissions(parent, fs::Permissions::from_mode(0o700)).map_err(io_err("chmod", parent))
    }

    /// `vzctl create`: config from a sample, private area from a template, a range of host
    /// ids of its own. Everything made is removed again if a later step fails, or by the
    /// next command if this one is killed.
    pub fn create(&self, veid: u32, opts: &CreateOpts) -> Result<(), VeError> {
        let _lock = self.lock(veid)?;
        self.ensure_installed()?;
        let conf_path = self.paths.ve_conf(veid);
        if conf_path.exists() {
            return Err(VeError::Exists(veid));
        }
        if let Some(n) = &opts.name {
            self.check_name_free(n, veid)?;
        }
        let ips = self.addable_ips(veid, &opts.ipadd)?;
        let sample_name = opts.config.clone().unwrap_or_else(|| self.paths.configfile.clone());
        if template::check_name(&sample_name).is_err() {
            return Err(VeError::NoSample { name: sample_name.clone(), path: self.paths.sample(&sample_name) });
        }
        let sample = self.paths.sample(&sample_name);
        if !sample.is_file() {
            return Err(VeError::NoSample { name: sample_name, path: sample });
        }
        let ostemplate = opts.ostemplate.clone().unwrap_or_else(|| self.paths.def_ostemplate.clone());
        template::check_name(&ostemplate)?;
        let archive = template::find_or_build_default(&self.paths, &ostemplate)?;
        let mut conf = ConfFile::read(&sample)?;
        for (k, _) in conf.keys().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>() {
            // Validate sample beancounters now: a bad sample must not make a bad VE.
            if let Ok(r) = Resource::by_name(&k) {
                if let Some(v) = conf.get(&k) {
                    r.parse_limit(v)?;
                }
            }
        }
        conf.set("OSTEMPLATE", &ostemplate);
        conf.set("ORIGIN_SAMPLE", &sample_name);
        conf.set("VE_ROOT", &opts.root.as_ref().map_or(self.paths.ve_root.clone(), |p| p.to_string_lossy().into()));
        conf.set(
            "VE_PRIVATE",
            &opts.private.as_ref().map_or(self.paths.ve_private.clone(), |p| p.to_string_lossy().into()),
        );
        if !ips.is_empty() {
            conf.set("IP_ADDRESS", &ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(" "));
        }
        if let Some(h) = &opts.hostname {
            conf.set("HOSTNAME", h);
        }
        if let Some(n) = &opts.name {
            conf.set("NAME", n);
        }
        let layout = match opts.layout {
            Some(l) => l,
            None => crate::disk::Layout::parse(&self.paths.ve_layout)?,
        };
        conf.set("VE_LAYOUT", layout.name());
        if let Some(v) = &opts.diskspace {
            conf.set("DISKSPACE", &v.text);
        }
        if let Some(v) = &opts.diskinodes {
            conf.set("DISKINODES", &v.text);
        }
        if layout == crate::disk::Layout::Ploop && conf.get("DISKSPACE").is_none() {
            // The image needs a size: OpenVZ's basic sample gives 2G.
            conf.set("DISKSPACE", DEFAULT_PLOOP_DISKSPACE);
        }
        let dconf = conf_disk(&conf)?;
        let private = self.private_of(veid, &conf);
        let root = self.root_of(veid, &conf);
        self.check_paths(veid, &private, &root)?;
        if private.exists() {
            return Err(VeError::Io {
                op: "create private area",
                path: private,
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        self.secure_parent("private", &private, veid)?;
        self.secure_parent("root", &root, veid)?;

        // The id range is recorded (in the intent, then the config) before the allocation
        // lock goes, so parallel creates never pick the same one.
        let idmap_lock = VeLock::global(&self.paths.lock_dir, "idmap")?;
        let (uid, gid) = self.allocate_ids(veid)?;
        conf.set("LOCAL_UID", &uid.to_string());
        conf.set("LOCAL_GID", &gid.to_string());
        let mut facts = ConfFile::default();
        facts.set("PRIVATE", &private.to_string_lossy());
        facts.set("ROOT", &root.to_string_lossy());
        facts.set("ROOT_MADE", if root.exists() { "no" } else { "yes" });
        facts.set("LOCAL_UID", &uid.to_string());
        facts.set("LOCAL_GID", &gid.to_string());
        let intent = Intent::begin(&self.paths.lock_dir, veid, "creating", &facts)?;
        drop(idmap_lock);

        let mut undo = Undo::new(self);
        crate::report::progress(format!("Creating container private area ({ostemplate})"));
        self.step("create:private")?;
        undo.dir(private.clone());
        if !root.exists() {
            fs::create_dir_all(&root).map_err(io_err("mkdir", &root))?;
            undo.dir(root.clone());
        }
        match (dconf.layout, dconf.space) {
            (crate::disk::Layout::Ploop, Some(space)) => {
                let image = crate::disk::image_path(&private);
                crate::disk::create_image(&image, space, dconf.inodes)?;
                crate::disk::mount_image(self.sys(), &image, &root)?;
                undo.umount(root.clone());
                crate::disk::fit(self.sys(), &image, &root, space.hard)?;
                self.step("create:extract")?;
                template::extract(&archive, &root, uid, gid)?;
                say_disk(veid, crate::disk::apply_ploop(&root, Some(space), dconf.inodes)?);
                umount(self.sys(), &root)?;
            }
            _ => {
                self.step("create:extract")?;
                template::extract(&archive, &private, uid, gid)?;
                say_disk(veid, crate::disk::apply_simfs(&private, veid, dconf.space, dconf.inodes)?);
            }
        }
        self.step("create:root")?;
        self.step("create:config")?;
        conf.write_atomic(&conf_path)?;
        undo.file(conf_path);
        self.step("create:done")?;
        undo.commit();
        intent.done();
        crate::report::progress("Container private area was created");
        Ok(())
    }
}
