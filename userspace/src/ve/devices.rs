//! A VE's devices beyond its own /dev (`--devnodes`, `--devices`, see `crate::devices`): the
//! grants in the map `vz_device` reads, and the nodes in the VE's /dev, at start and live.
use super::*;
use crate::devices::{DevNode, DevRule};

/// DEVNODES and DEVICES of a VE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DevSet {
    pub nodes: Vec<DevNode>,
    pub rules: Vec<DevRule>,
}

impl DevSet {
    pub(crate) fn of(cfg: &VeConfig) -> Self {
        Self::build(&cfg.devnodes, &cfg.devices, &cfg.features)
    }

    /// DEVNODES, DEVICES and the nodes FEATURES grant (a node named in DEVNODES keeps the
    /// access given there).
    pub(crate) fn build(nodes: &[DevNode], rules: &[DevRule], features: &[crate::features::Feature]) -> Self {
        let mut all = nodes.to_vec();
        for n in crate::features::nodes(features) {
            if !all.iter().any(|m| m.name == n.name) {
                all.push(n);
            }
        }
        Self { nodes: all, rules: rules.to_vec() }
    }

    /// What a starting (or restored) VE gets: its config's set, less the features this
    /// host cannot give (a config from another host, or edited), each said.
    pub(crate) fn at_start(veid: u32, cfg: &VeConfig) -> Self {
        let mut features = cfg.features.clone();
        features.retain(|f| match crate::features::check_host(f) {
            Ok(()) => true,
            Err(e) => {
                crate::report::warning(veid, format!("{e}"));
                false
            }
        });
        Self::build(&cfg.devnodes, &cfg.devices, &features)
    }

    fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.rules.is_empty()
    }
}

impl Vz {
    /// The devices after `set --devnodes/--devices`, and the config keys for them. A node
    /// granted must exist on the host.
    pub(super) fn plan_devices(&self, opts: &SetOpts, base: &VeConfig) -> Result<Option<(DevSet, Keys)>, VeError> {
        if opts.devnodes.is_empty() && opts.devices.is_empty() && opts.features.is_empty() {
            return Ok(None);
        }
        for n in opts.devnodes.iter().filter(|n| n.perm != 0) {
            crate::devices::host_node(&n.name)?;
        }
        for f in &opts.features {
            crate::features::check_host(f)?;
        }
        let nodes = crate::devices::merge_devnodes(&base.devnodes, &opts.devnodes);
        let rules = crate::devices::merge_devices(&base.devices, &opts.devices);
        let features = crate::features::merge(&base.features, &opts.features);
        let mut keys = Vec::new();
        if !opts.devnodes.is_empty() || !opts.devices.is_empty() {
            keys.push(("DEVNODES".to_string(), (!nodes.is_empty()).then(|| crate::devices::format_devnodes(&nodes))));
            keys.push(("DEVICES".to_string(), (!rules.is_empty()).then(|| crate::devices::format_devices(&rules))));
        }
        if !opts.features.is_empty() {
            keys.push((
                "FEATURES".to_string(),
                (!features.is_empty()).then(|| crate::features::format_features(&features)),
            ));
        }
        Ok(Some((DevSet::build(&nodes, &rules, &features), keys)))
    }

    /// Puts `new` in force for a running VE that had `old`: the grants first (a revoked
    /// device is refused from this moment), then the nodes in its /dev made or removed.
    /// Already open descriptors keep working, as after a chmod. `old` None: the VE's
    /// cgroup was just made, so nothing of it is in force anywhere (no search for stale
    /// grants among every VE's).
    pub(crate) fn apply_devices(
        &self,
        veid: u32,
        init: i32,
        cgid: u64,
        conf: &ConfFile,
        old: Option<&DevSet>,
        new: &DevSet,
    ) -> Result<(), VeError> {
        let fresh_cgroup = old.is_none();
        let none = DevSet::default();
        let old = old.unwrap_or(&none);
        if old.is_empty() && new.is_empty() {
            return Ok(());
        }
        let grants = crate::devices::grants(&new.nodes, &new.rules);
        match Bpf::open_existing(&self.paths.bpf_root) {
            Ok(mut bpf) => bpf.set_devices(cgid, &grants, fresh_cgroup)?,
            Err(e) => {
                crate::report::warning(
                    veid,
                    format!("BPF is unavailable: device access of container {veid} is not enforced: {e}"),
                );
            }
        }
        let root = crate::sys::inroot::ve_root(init).map_err(io_err("open the root of", Path::new("/")))?;
        let dev = crate::sys::inroot::dir_fd(&root, "dev", crate::sys::inroot::Follow::Never)
            .map_err(io_err("open the container's /dev", Path::new("/dev")))?;
        for gone in old.nodes.iter().filter(|o| !new.nodes.iter().any(|n| n.name == o.name)) {
            if let Ok((_, major, minor, _)) = crate::devices::host_node(&gone.name) {
                crate::sys::inroot::remove_node(&dev, &gone.name, libc::makedev(major, minor))
                    .map_err(io_err("remove", &Path::new("/dev").join(&gone.name)))?;
            }
        }
        let ids = self.ve_ids(conf);
        for n in &new.nodes {
            let (kind, major, minor, mode) = crate::devices::host_node(&n.name)?;
            let block = kind == vz_common::DEV_BLOCK;
            crate::sys::inroot::make_node(&dev, &n.name, block, libc::makedev(major, minor), mode, ids)
                .map_err(io_err("make", &Path::new("/dev").join(&n.name)))?;
        }
        Ok(())
    }
}

/// Config keys a set writes (None: remove).
pub(super) type Keys = Vec<(String, Option<String>)>;
