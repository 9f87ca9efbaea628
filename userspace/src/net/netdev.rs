//! OpenVZ's `--netdev_add IF` / `--netdev_del IF` (config NETDEV): a host interface the
//! admin made or owns (a dummy, a macvlan, a NIC) moved into a VE's network namespace,
//! keeping its name, and back to the namespace vzctl runs in at `--netdev_del` and at stop.
//! While a VE holds such interfaces its namespace is pinned (a bind mount of its nsfs file
//! under LOCKDIR), so a VE whose init dies on its own does not take them with it: virtual
//! interfaces would be destroyed with the namespace, physical ones would fall back to the
//! machine's first namespace. The stop that cleans up brings them back, then unpins.
use std::{
    fs,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use rtnetlink::LinkUnspec;

use super::{link_index, with_netlink, NetError};

fn io(op: &str) -> impl FnOnce(std::io::Error) -> NetError + '_ {
    move |source| NetError::Io { op: op.to_string(), source }
}

/// Whether host interface `name` may be given to a VE: it exists here and is not one vzctl
/// made (a venet host end or a bridged interface) or the loopback.
pub fn netdev_movable(name: &str) -> Result<(), NetError> {
    use rtnetlink::packet_route::link::LinkFlags;
    with_netlink(async |h| {
        let link = super::link_by_name(&h, name).await?.ok_or_else(|| NetError::NoLink(name.to_string()))?;
        if super::is_ours(&link) || link.header.flags.contains(LinkFlags::Loopback) {
            return Err(NetError::NotOurs(name.to_string()));
        }
        Ok(())
    })
}

/// Moves host interface `name` into the network namespace of `init`. Returns its index
/// there when the kernel kept it (it does unless the VE holds that index): how it is found
/// again whatever the VE renames it to.
pub fn netdev_in(init: i32, name: &str) -> Result<Option<u32>, NetError> {
    let idx = with_netlink(async |h| {
        let idx = link_index(&h, name).await?;
        h.link().set(LinkUnspec::new_with_index(idx).setns_by_pid(init as u32).build()).execute().await?;
        Ok(idx)
    })?;
    let want = name.to_string();
    super::with_ve_netlink(init, async move |h| {
        Ok(match link_name(&h, idx).await? {
            Some(n) if n == want => Some(idx),
            _ => None,
        })
    })
}

/// The name of link `idx` of the handle's namespace, if there is one.
async fn link_name(h: &rtnetlink::Handle, idx: u32) -> Result<Option<String>, NetError> {
    use futures::stream::TryStreamExt as _;
    use rtnetlink::packet_route::link::LinkAttribute;
    let mut links = h.link().get().match_index(idx).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(l.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })),
        Ok(None) | Err(rtnetlink::Error::NetlinkError(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Moves the interface given as `name` (found by `index` when known, else by name) from the
/// namespace pinned at `pin` back to the calling thread's, down and under its own name
/// again. One that is not there (the VE deleted it, or it is back already) is fine.
pub fn netdev_out(pin: &Path, name: &str, index: Option<u32>) -> Result<(), NetError> {
    let here = fs::File::open("/proc/thread-self/ns/net").map_err(io("open this network namespace"))?;
    let ve = fs::File::open(pin).map_err(io("open the container's network namespace"))?;
    let name = name.to_string();
    std::thread::spawn(move || -> Result<(), NetError> {
        // This thread only.
        nix::sched::setns(&ve, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetError::Io { op: "join the container's network namespace".into(), source: e.into() })?;
        with_netlink(async |h| {
            let idx = match index {
                Some(i) if link_name(&h, i).await?.is_some() => i,
                Some(_) => return Ok(()),
                None => match link_index(&h, &name).await {
                    Ok(i) => i,
                    Err(NetError::NoLink(_)) => return Ok(()),
                    Err(e) => return Err(e),
                },
            };
            // Down, and its own name again (the VE may have renamed it; a name of the
            // VE's own taken meanwhile leaves the VE's one).
            h.link().set(LinkUnspec::new_with_index(idx).down().build()).execute().await?;
            if link_name(&h, idx).await?.as_deref() != Some(name.as_str()) {
                h.link().set(LinkUnspec::new_with_index(idx).name(name.clone()).build()).execute().await?;
            }
            Ok(h.link().set(LinkUnspec::new_with_index(idx).setns_by_fd(here.as_raw_fd()).build()).execute().await?)
        })
    })
    .join()
    .map_err(|_| NetError::Io { op: "netdev thread".into(), source: std::io::Error::other("panicked") })?
}

/// Where a VE's network namespace is pinned while it holds host interfaces.
pub fn netns_pin(lock_dir: &Path, veid: u32) -> PathBuf {
    lock_dir.join(format!("{veid}.netns"))
}

/// Pins the network namespace of `init` at `pin` (kept if already pinned).
pub fn pin_netns(init: i32, pin: &Path) -> Result<(), NetError> {
    if is_pinned(pin) {
        return Ok(());
    }
    fs::File::create(pin).map_err(io("create the namespace pin"))?;
    let src = format!("/proc/{init}/ns/net");
    nix::mount::mount(Some(src.as_str()), pin, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| NetError::Io { op: format!("bind {src} to {}", pin.display()), source: e.into() })
}

/// Whether `pin` holds a namespace (an nsfs bind mount).
pub fn is_pinned(pin: &Path) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    nix::sys::statfs::statfs(pin).is_ok_and(|s| s.filesystem_type().0 == NSFS_MAGIC)
}

/// Drops the pin: the namespace goes with its last process.
pub fn unpin_netns(pin: &Path) {
    if is_pinned(pin) {
        let _ = nix::mount::umount2(pin, nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = fs::remove_file(pin);
}
