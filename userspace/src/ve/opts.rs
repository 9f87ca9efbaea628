//! What `vzctl create` and `vzctl set` take, as clap arguments the CLI flattens.
use super::*;

/// Options of `vzctl create`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CreateOpts {
    /// OS template (a cache in TEMPLATE/cache); default DEF_OSTEMPLATE.
    #[arg(long)]
    pub ostemplate: Option<String>,
    /// Config sample (conf/ve-NAME.conf-sample); default CONFIGFILE.
    #[arg(long)]
    pub config: Option<String>,
    #[arg(long)]
    pub hostname: Option<String>,
    /// An IPv4 or IPv6 address for the VE (repeatable).
    #[arg(long)]
    pub ipadd: Vec<String>,
    /// A name to use in place of the VEID.
    #[arg(long)]
    pub name: Option<String>,
    /// Private area (default VE_PRIVATE).
    #[arg(long)]
    pub private: Option<PathBuf>,
    /// Mount point (default VE_ROOT).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// simfs (a directory) or ploop (an image file with its own file system); default
    /// VE_LAYOUT.
    #[arg(long)]
    pub layout: Option<String>,
    /// Disk space soft:hard, in 1 KiB blocks or with K M G T (ploop: the image size is the
    /// hard limit; default 2G).
    #[arg(long)]
    pub diskspace: Option<String>,
    /// Inodes soft:hard.
    #[arg(long)]
    pub diskinodes: Option<String>,
}

/// Parameters of `vzctl set`, as its command line takes them (the CLI flattens this).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SetOpts {
    /// Add an IPv4 or IPv6 address (repeatable); live on a running VE.
    #[arg(long)]
    pub ipadd: Vec<String>,
    /// Remove an address, or `all`.
    #[arg(long)]
    pub ipdel: Vec<String>,
    /// DNS server for the VE's /etc/resolv.conf (repeatable).
    #[arg(long)]
    pub nameserver: Vec<String>,
    /// DNS search domain for the VE's /etc/resolv.conf (repeatable).
    #[arg(long)]
    pub searchdomain: Vec<String>,
    /// Firewall rule, e.g. "deny in tcp 25" or "allow in tcp 22 from 10.0.0.0/8"
    /// (repeatable; together they replace the VE's rules; "none" clears them).
    #[arg(long = "netfilter-rule")]
    pub netfilter: Vec<String>,
    /// Bridged interface: ifname[,mac,host_ifname,host_mac,bridge] (repeatable).
    #[arg(long = "netif_add")]
    pub netif_add: Vec<String>,
    /// Remove a bridged interface by its name in the VE, or `all`.
    #[arg(long = "netif_del")]
    pub netif_del: Vec<String>,
    /// Egress rate limit in kbit/s (or dev:class:kbit); 0 or none lifts it.
    #[arg(long)]
    pub rate: Option<String>,
    /// CPU share weight, 8..500000 (default 1000): VEs get busy CPUs in proportion.
    #[arg(long)]
    pub cpuunits: Option<String>,
    /// CPU time limit in percent of one CPU (100 = one CPU); 0 lifts it.
    #[arg(long)]
    pub cpulimit: Option<String>,
    /// Number of CPUs' worth of time the VE may use; 0 or unlimited lifts it.
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPUs the VE may run on: a list like 0-1,3, or all.
    #[arg(long)]
    pub cpumask: Option<String>,
    /// Disk time share, 0 (lowest) to 7 (highest), default 4 (BFQ group weight; the VE's
    /// disk must use the bfq scheduler, see `vzctl iosched`).
    #[arg(long)]
    pub ioprio: Option<String>,
    /// Disk bandwidth cap in bytes/s (K, M, G suffixes), reads and writes each; 0 lifts it.
    #[arg(long)]
    pub iolimit: Option<String>,
    /// Disk operations cap per second, reads and writes each; 0 lifts it.
    #[arg(long)]
    pub iopslimit: Option<String>,
    /// Disk space soft:hard, in 1 KiB blocks or with K M G T. ploop: grows live, shrinks
    /// only while stopped.
    #[arg(long)]
    pub diskspace: Option<String>,
    /// Inodes soft:hard.
    #[arg(long)]
    pub diskinodes: Option<String>,
    /// Per-user and per-group quota inside the VE (ploop): number of ids; 0 turns it off.
    #[arg(long)]
    pub quotaugidlimit: Option<String>,
    #[arg(long)]
    pub hostname: Option<String>,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// yes or no.
    #[arg(long)]
    pub onboot: Option<String>,
    #[command(flatten)]
    pub ubc: crate::ubc::UbcArgs,
    /// VSwap: RAM size (bytes with K M G T, or pages with P); derives physpages and more.
    #[arg(long)]
    pub ram: Option<String>,
    /// VSwap: swap size.
    #[arg(long)]
    pub swap: Option<String>,
    /// VSwap: privvmpages = (ram + swap) x this (0: unlimited).
    #[arg(long = "vm_overcommit")]
    pub vm_overcommit: Option<String>,
}

impl SetOpts {
    pub fn is_empty(&self) -> bool {
        self.ipadd.is_empty()
            && self.ipdel.is_empty()
            && self.nameserver.is_empty()
            && self.netfilter.is_empty()
            && self.netif_add.is_empty()
            && self.netif_del.is_empty()
            && self.rate.is_none()
            && self.cpuunits.is_none()
            && self.cpulimit.is_none()
            && self.cpus.is_none()
            && self.cpumask.is_none()
            && self.ioprio.is_none()
            && self.iolimit.is_none()
            && self.iopslimit.is_none()
            && self.diskspace.is_none()
            && self.diskinodes.is_none()
            && self.quotaugidlimit.is_none()
            && self.searchdomain.is_empty()
            && self.hostname.is_none()
            && self.name.is_none()
            && self.description.is_none()
            && self.onboot.is_none()
            && self.ubc.0.is_empty()
            && self.ram.is_none()
            && self.swap.is_none()
            && self.vm_overcommit.is_none()
    }
}
