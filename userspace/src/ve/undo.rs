//! Rollback of a command that fails half-way: what it made, undone in reverse on drop.
use super::*;

/// Steps to undo if a command fails before `commit`, run in reverse order on drop.
pub(super) struct Undo<'a> {
    vz: &'a Vz,
    actions: Vec<UndoStep>,
    committed: bool,
}

pub(super) enum UndoStep {
    Dir(PathBuf),
    File(PathBuf),
    Umount(PathBuf),
    Cgroup(u32),
    Bpf(u64, PathBuf),
    Kill(u32),
}

impl<'a> Undo<'a> {
    pub(super) fn new(vz: &'a Vz) -> Self {
        Self { vz, actions: Vec::new(), committed: false }
    }
    pub(super) fn dir(&mut self, p: PathBuf) {
        self.actions.push(UndoStep::Dir(p));
    }
    pub(super) fn file(&mut self, p: PathBuf) {
        self.actions.push(UndoStep::File(p));
    }
    pub(super) fn umount(&mut self, p: PathBuf) {
        self.actions.push(UndoStep::Umount(p));
    }
    pub(super) fn cgroup(&mut self, veid: u32) {
        self.actions.push(UndoStep::Cgroup(veid));
    }
    pub(super) fn bpf(&mut self, cgid: u64, pins: PathBuf) {
        self.actions.push(UndoStep::Bpf(cgid, pins));
    }
    pub(super) fn kill(&mut self, veid: u32) {
        self.actions.push(UndoStep::Kill(veid));
    }
    pub(super) fn commit(&mut self) {
        self.committed = true;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let cg = Some(&self.vz.cg);
        for a in self.actions.drain(..).rev() {
            match a {
                UndoStep::Dir(p) => {
                    let _ = fs::remove_dir_all(p);
                }
                UndoStep::File(p) => {
                    let _ = fs::remove_file(p);
                }
                UndoStep::Umount(p) => {
                    let _ = umount(self.vz.sys(), &p);
                }
                UndoStep::Cgroup(v) => {
                    if let Some(cg) = &cg {
                        let _ = cg.remove_ve(v);
                    }
                }
                UndoStep::Bpf(id, pins) => {
                    if let Ok(mut b) = Bpf::open_existing(&pins) {
                        b.detach_venet(&crate::net::host_ifname(id));
                        let _ = b.unregister_ve(id);
                    }
                }
                UndoStep::Kill(v) => {
                    if let Some(cg) = &cg {
                        cg.kill_all(v);
                        let end = Instant::now() + Duration::from_secs(5);
                        while !cg.procs(v).is_empty() && Instant::now() < end {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    // The console's pty number (its log stays: it says why the start failed).
                    let [_, pty] = crate::console::runtime_files(&self.vz.paths.lock_dir, v);
                    let _ = fs::remove_file(pty);
                }
            }
        }
    }
}
