//! The default network: a Linux bridge with the gateway address, egress NAT, and per
//! instance a network namespace joined to the bridge by a veth pair.
//!
//! Links, addresses and routes go through netlink (`rtnetlink`), not `ip` processes:
//! attaching an instance is a handful of messages, which keeps instance start fast.
//! Inside an instance's namespace we talk through a netlink socket opened from a thread
//! that entered it (a socket stays in the namespace it was created in).
//!
//! Every step tolerates what is already there, so a repeated `ensure`/`attach` after a
//! crash converges, and every removal tolerates what is already gone.

pub mod ipam;
pub mod nat;
pub mod netns;

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};
use sha2::Digest;

use crate::driver::NetAttachment;
use crate::error::IoContext;
use crate::{Error, Result};

/// The interface name inside every instance.
pub const GUEST_IF: &str = "eth0";

/// A network on this node: its bridge and its address range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub bridge: String,
    /// The bridge's own address, the instances' default gateway.
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
}

impl Network {
    /// The default network: `roost0`, 10.88.0.1/16.
    pub fn default_network() -> Network {
        Network { bridge: "roost0".into(), gateway: Ipv4Addr::new(10, 88, 0, 1), prefix_len: 16 }
    }

    pub fn of(attachment: &NetAttachment) -> Network {
        Network { bridge: attachment.bridge.clone(), gateway: attachment.gateway, prefix_len: attachment.prefix_len }
    }

    pub fn cidr(&self) -> Result<Ipv4Net> {
        Ipv4Net::new(self.gateway, self.prefix_len)
            .map(|n| n.trunc())
            .map_err(|_| Error::Invalid(format!("invalid prefix length {}", self.prefix_len)))
    }

    fn validate(&self) -> Result<()> {
        validate_ifname(&self.bridge)?;
        self.cidr()?;
        Ok(())
    }

    /// Creates or repairs the bridge, its address, forwarding and NAT. Idempotent.
    /// `nft` is the nft program (`"nft"` from PATH).
    pub async fn ensure(&self, nft: &str) -> Result<()> {
        self.validate()?;
        let handle = connect()?;
        let index = match link_index(&handle, &self.bridge).await? {
            Some(index) => index,
            None => {
                match handle.link().add(LinkBridge::new(&self.bridge).build()).execute().await {
                    Ok(()) => {}
                    // Created concurrently by another caller: fine.
                    Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                    Err(e) => return Err(netlink("creating bridge", &self.bridge, e)),
                }
                link_index(&handle, &self.bridge)
                    .await?
                    .ok_or_else(|| Error::Netlink(format!("bridge {} vanished after creation", self.bridge)))?
            }
        };
        set_up(&handle, index, &self.bridge).await?;
        add_address(&handle, index, self.gateway, self.prefix_len, &self.bridge).await?;
        enable_forwarding()?;
        let (nft, batch) = (nft.to_string(), nat::ensure_batch(&self.bridge, self.cidr()?));
        tokio::task::spawn_blocking(move || nat::apply(&nft, &batch))
            .await
            .map_err(|e| Error::io("running nft", std::io::Error::other(e)))?
    }

    /// Removes the NAT chain and the bridge. Idempotent. Instances still attached lose
    /// their uplink (their veths are detached from the deleted bridge).
    pub async fn remove(&self, nft: &str) -> Result<()> {
        validate_ifname(&self.bridge)?;
        let (nft, batch) = (nft.to_string(), nat::remove_batch(&self.bridge));
        tokio::task::spawn_blocking(move || nat::apply(&nft, &batch))
            .await
            .map_err(|e| Error::io("running nft", std::io::Error::other(e)))??;
        let handle = connect()?;
        delete_link(&handle, &self.bridge).await
    }
}

/// The host end of an instance's veth: `rv` and 12 characters naming the instance (the
/// id's own when it is `i-` + 12, else a hash; interface names stop at 15 bytes).
pub fn host_ifname(instance_id: &str) -> String {
    let suffix =
        instance_id.strip_prefix("i-").filter(|s| s.len() <= 12 && s.bytes().all(|b| b.is_ascii_alphanumeric()));
    match suffix {
        Some(s) => format!("rv{s}"),
        None => format!("rv{}", &hex::encode(sha2::Sha256::digest(instance_id.as_bytes()))[..12]),
    }
}

/// Plugs the namespace at `netns_path` into the bridge: a veth pair whose inner end is
/// created directly in the namespace as `eth0` with the instance's MAC, and then gets
/// its address and default route. Idempotent: a complete pair is kept and its settings
/// reapplied; half of one (a crash between steps) is replaced.
pub async fn attach(instance_id: &str, netns_path: &Path, attachment: &NetAttachment) -> Result<()> {
    validate_ifname(&attachment.bridge)?;
    let host_if = host_ifname(instance_id);
    let handle = connect()?;
    let bridge = link_index(&handle, &attachment.bridge).await?.ok_or_else(|| {
        Error::Invalid(format!("bridge {} does not exist (ensure the network first)", attachment.bridge))
    })?;
    let inner = connect_in(netns_path)?;

    let host_index = link_index(&handle, &host_if).await?;
    let guest_index = link_index(&inner, GUEST_IF).await?;
    match (host_index, guest_index) {
        (Some(index), Some(_)) => {
            handle
                .link()
                .set(LinkUnspec::new_with_index(index).controller(bridge).up().build())
                .execute()
                .await
                .map_err(|e| netlink("plugging into the bridge", &host_if, e))?;
        }
        _ => {
            // Half a pair: the host end's peer is elsewhere, or an eth0 without its host end.
            delete_link(&handle, &host_if).await?;
            delete_link(&inner, GUEST_IF).await?;
            let ns = std::fs::File::open(netns_path).at("opening network namespace", netns_path)?;
            let peer = LinkMessageBuilder::<LinkUnspec>::new()
                .name(GUEST_IF)
                .address(attachment.mac.0.to_vec())
                .setns_by_fd(ns.as_raw_fd())
                .build();
            let veth = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
                .name(host_if.clone())
                .controller(bridge)
                .alias(instance_id)
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                .up()
                .build();
            handle.link().add(veth).execute().await.map_err(|e| netlink("creating veth", &host_if, e))?;
        }
    }
    drop(handle);

    let lo = link_index(&inner, "lo").await?.ok_or_else(|| Error::Netlink("no loopback in the namespace".into()))?;
    set_up(&inner, lo, "lo").await?;
    let eth0 = link_index(&inner, GUEST_IF)
        .await?
        .ok_or_else(|| Error::Netlink(format!("{GUEST_IF} did not appear in {}", netns_path.display())))?;
    set_up(&inner, eth0, GUEST_IF).await?;
    add_address(&inner, eth0, attachment.ip, attachment.prefix_len, GUEST_IF).await?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(attachment.gateway).output_interface(eth0).build();
    match inner.route().add(route).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(netlink("adding the default route in", &netns_path.display().to_string(), e)),
    }
}

/// Removes the instance's veth pair (deleting one end deletes both). Missing is fine.
pub async fn detach(instance_id: &str) -> Result<()> {
    let handle = connect()?;
    delete_link(&handle, &host_ifname(instance_id)).await
}

/// Bytes through the instance's veth, as the instance sees them: (received, sent).
pub fn traffic(instance_id: &str) -> Option<(u64, u64)> {
    let dir = Path::new("/sys/class/net").join(host_ifname(instance_id)).join("statistics");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok()?.trim().parse::<u64>().ok();
    // The host end receives what the instance sends.
    Some((read("tx_bytes")?, read("rx_bytes")?))
}

fn validate_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok { Ok(()) } else { Err(Error::Invalid(format!("invalid interface name '{name}'"))) }
}

fn enable_forwarding() -> Result<()> {
    let path = Path::new("/proc/sys/net/ipv4/ip_forward");
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").at("enabling forwarding in", path)
}

/// A netlink connection in our own namespace, driven by a task that ends with the handle.
fn connect() -> Result<Handle> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| Error::io("opening a netlink socket", e))?;
    tokio::spawn(connection);
    Ok(handle)
}

/// A netlink connection inside the namespace at `path`.
fn connect_in(path: &Path) -> Result<Handle> {
    let runtime = tokio::runtime::Handle::current();
    let (connection, handle, _) = netns::run_in(path, move || {
        let _entered = runtime.enter();
        rtnetlink::new_connection()
    })?;
    tokio::spawn(connection);
    Ok(handle)
}

async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(Some(link.header.index)),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(netlink("looking up", name, e)),
    }
}

async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<()> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| netlink("bringing up", name, e))
}

async fn add_address(handle: &Handle, index: u32, ip: Ipv4Addr, prefix_len: u8, name: &str) -> Result<()> {
    match handle.address().add(index, ip.into(), prefix_len).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(netlink(&format!("adding {ip}/{prefix_len} to"), name, e)),
    }
}

async fn delete_link(handle: &Handle, name: &str) -> Result<()> {
    let Some(index) = link_index(handle, name).await? else { return Ok(()) };
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(netlink("deleting", name, e)),
    }
}

/// The kernel's errno in a netlink error, positive.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

fn netlink(doing: &str, what: &str, e: rtnetlink::Error) -> Error {
    match e {
        rtnetlink::Error::NetlinkError(msg) => Error::Netlink(format!("{doing} {what}: {}", msg.to_io())),
        other => Error::Netlink(format!("{doing} {what}: {other}")),
    }
}

/// Whether a link exists in our namespace (for tests and cleanup checks).
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ifnames_fit_and_differ() {
        assert_eq!(host_ifname("i-abcdefghijkl"), "rvabcdefghijkl");
        let long = host_ifname("some-other-instance-name");
        assert_eq!(long.len(), 14);
        assert_ne!(long, host_ifname("some-other-instance-namf"));
    }

    #[test]
    fn network_cidr() {
        let net = Network::default_network();
        assert_eq!(net.cidr().unwrap().to_string(), "10.88.0.0/16");
        assert!(Network { prefix_len: 33, ..net.clone() }.cidr().is_err());
        assert!(Network { bridge: "way-too-long-bridge".into(), ..net }.validate().is_err());
    }
}
