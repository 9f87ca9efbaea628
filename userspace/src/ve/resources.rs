//! What a VE's config asks of the kernel: beancounter limits in the BPF maps, I/O and disk settings, and the beancounter rows the report shows.
use super::*;

impl Vz {
    pub fn bpf_config(&self) -> BpfConfig {
        let mut cfg = BpfConfig::for_cgroups(self.paths.bpf_root.clone(), self.cg.as_ref());
        cfg.dcache = self.paths.dcache_accounting;
        cfg
    }

    /// I/O weight and caps for the disk under the VE's root, and the VE's blkio cgroup made
    /// known to the block I/O accounting. Settings that cannot act here are said, not fatal.
    pub(crate) fn apply_io(&self, veid: u32, cgid: u64, root: &Path, s: &crate::io::IoSettings) -> Result<(), VeError> {
        let disk = crate::io::disk_of(root);
        for note in crate::io::apply(self.cg.as_ref(), veid, s, disk.as_ref())? {
            crate::report::warning(veid, &note);
        }
        if let Some(dir) = crate::io::blkio_dir(self.cg.as_ref(), veid) {
            if let Ok(mut bpf) = Bpf::open_existing(&self.paths.bpf_root) {
                bpf.set_io_cgroup(cgid, crate::cgroup::cgroup_id(&dir)?)?;
            }
        }
        Ok(())
    }

    /// `set --diskspace/--diskinodes/--quotaugidlimit`: live where the VE's root is mounted
    /// (an image's balloons resized), offline otherwise (the image itself resized).
    pub(crate) fn set_disk(&self, veid: u32, conf: &ConfFile, d: &DiskConf, opts: &SetOpts) -> Result<(), VeError> {
        let ugid_given = opts.quotaugidlimit.is_some();
        use crate::disk::{self, Layout};
        let (root, private) = (self.root_of(veid, conf), self.private_of(veid, conf));
        let mounted = is_mounted(&root);
        match d.layout {
            Layout::Ploop => {
                let image = disk::image_path(&private);
                if let (Some(s), false) = (d.space, mounted) {
                    // Stopped: the image itself is resized (shrinking gives the host its space
                    // back); the balloons are made at the next mount.
                    disk::mount_image(self.sys(), &image, &root)?;
                    let fitted = disk::fit(self.sys(), &image, &root, s.hard);
                    // A plain unmount (not lazy): the image is clean and detached after.
                    let flags = crate::sys::mount::MntFlags::empty();
                    let unmounted = self.sys().umount(&root, flags);
                    fitted?;
                    unmounted.map_err(io_err("umount", &root))?;
                }
                if mounted {
                    let space = d.space.filter(|_| opts.diskspace.is_some());
                    let inodes = d.inodes.filter(|_| opts.diskinodes.is_some());
                    say_disk(veid, disk::change_ploop(&root, space, inodes)?);
                }
                if ugid_given && d.ugid > 0 {
                    say_disk(veid, disk::Applied::NotEnforced(UGID_QUOTA_WHY.into()));
                }
            }
            Layout::Simfs => {
                say_disk(veid, disk::apply_simfs(&private, veid, d.space, d.inodes)?);
                if ugid_given && d.ugid > 0 {
                    say_disk(veid, disk::Applied::NotEnforced(UGID_QUOTA_WHY.into()));
                }
            }
        }
        if let Some(s) = d.space.filter(|_| opts.diskspace.is_some()) {
            crate::report::progress(format!("Setting diskspace: {}:{} KiB", s.soft, s.hard));
        }
        if let Some(i) = d.inodes.filter(|_| opts.diskinodes.is_some()) {
            crate::report::progress(format!("Setting diskinodes: {}:{}", i.soft, i.hard));
        }
        Ok(())
    }

    /// Loads or reuses the programs and applies the VE's beancounters: limits go to the
    /// BPF map (for every row) and to the kernel controllers that enforce some of them. A
    /// kernel that cannot run the programs is reported, and the controller limits still
    /// apply.
    pub(super) fn apply_ubc(&self, veid: u32, cgid: u64, uid: u32, full: &VeLimits) -> Result<(), VeError> {
        crate::ubc::apply_cgroups(&crate::ubc::Target { cg: self.cg.as_ref(), veid, uid }, full)?;
        match Bpf::ensure(&self.bpf_config()) {
            Ok(mut bpf) => Ok(bpf.put_limits(cgid, veid, full)?),
            Err(
                e @ (BpfError::NotPrivileged { .. }
                | BpfError::NoBpfSyscall
                | BpfError::BpfDenied
                | BpfError::ProgramRejected { .. }),
            ) => {
                crate::report::warning(veid, format!("beancounters are not enforced: {e}"));
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A running VE's usage and limits, with the controller-kept rows filled in from the
    /// kernel controllers. `bpf` is an open handle on the pins (None: limits from config).
    pub fn ubc_record(&self, veid: u32, bpf: Option<&Bpf>) -> Option<(VeUsage, VeLimits)> {
        self.ubc_record_with(veid, bpf, true)
    }

    /// `ubc_record`, with the walked rows (`ubc::walked_rows`) read only if `walk`: without,
    /// they hold what the BPF record has, and the cost does not grow with the VE's
    /// processes or sockets.
    pub fn ubc_record_with(&self, veid: u32, bpf: Option<&Bpf>, walk: bool) -> Option<(VeUsage, VeLimits)> {
        let cgid = self.cg.ve_id(veid).ok()?;
        let (mut usage, lim) = match bpf.and_then(|b| Some((b.usage(cgid).ok()?, b.limits(cgid).ok()?))) {
            Some(x) => x,
            None => {
                let mut l = VeLimits::default();
                for (r, v) in self.conf(veid).ok().map(|c| conf_limits(&c)).and_then(Result::ok).unwrap_or_default() {
                    l.res[r.id as usize] = v;
                }
                (VeUsage::default(), l)
            }
        };
        if walk {
            let console = crate::console::pty_number(&self.paths.lock_dir, veid);
            crate::ubc::read(&crate::ubc::Probe::new(self.cg.as_ref(), veid, cgid, bpf, console), &mut usage);
        } else {
            let p = crate::ubc::Probe {
                cg: self.cg.as_ref(),
                veid,
                cgid,
                bpf,
                init: None,
                procs: Vec::new(),
                console: None,
            };
            crate::ubc::read_unwalked(&p, &mut usage);
        }
        Some((usage, lim))
    }

    /// The report rows of a running VE: every beancounter with real figures on this host.
    pub fn ubc_rows(&self, veid: u32, bpf: Option<&Bpf>) -> Result<Vec<Row>, VeError> {
        let record = self.ubc_record(veid, bpf).ok_or(VeError::NotRunning(veid))?;
        Ok(self.rows_of(veid, bpf, record))
    }

    /// The report rows of a record from `ubc_record`: every beancounter with real figures
    /// on this host.
    pub fn rows_of(&self, veid: u32, bpf: Option<&Bpf>, record: (VeUsage, VeLimits)) -> Vec<Row> {
        crate::ubc::rows(self.cg.as_ref(), veid, bpf, record)
    }
}
