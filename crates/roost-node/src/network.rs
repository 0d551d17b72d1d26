//! Networks on the host: a Linux bridge per network with the gateway address, and per
//! instance a network namespace joined to each of its networks' bridges by a veth pair.
//! The rules (isolation, security groups, NAT, port forwards) are in [`firewall`].
//!
//! Links, addresses and routes go through netlink (`rtnetlink`), not `ip` processes:
//! attaching an instance is a handful of messages, which keeps instance start fast.
//! Inside an instance's namespace we talk through a netlink socket opened from a thread
//! that entered it (a socket stays in the namespace it was created in).
//!
//! Every step tolerates what is already there, so a repeated `ensure`/`attach` after a
//! crash converges, and every removal tolerates what is already gone.

pub mod dns;
pub mod firewall;
pub mod host;
pub mod ipam;
pub mod netns;

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::packet_route::route::{RouteProtocol, RouteScope};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};
use sha2::Digest;

use crate::driver::NetAttachment;
use crate::error::IoContext;
use crate::{Error, Result};

/// A network on this node: its bridge and its address range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub bridge: String,
    /// The bridge's own address, the instances' default gateway.
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
}

impl Network {
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

    /// Creates or repairs the bridge, its address and the kernel settings the firewall
    /// relies on. Idempotent. `alias` marks the bridge as ours (see [`owned_bridges`]).
    pub async fn ensure(&self, alias: Option<&str>) -> Result<()> {
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
        if let Some(alias) = alias {
            handle
                .link()
                .set(LinkUnspec::new_with_index(index).alias(alias).build())
                .execute()
                .await
                .map_err(|e| netlink("labelling", &self.bridge, e))?;
        }
        set_up(&handle, index, &self.bridge).await?;
        // The gateway address without the prefix route the kernel would add to the main
        // table: a tenant's range must never shadow a route of the host's. The range is
        // routed from the network's own table instead (see [`sync_policy_routing`]).
        let mut add = handle.address().add(index, self.gateway.into(), self.prefix_len).replace();
        add.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Noprefixroute));
        add.execute()
            .await
            .map_err(|e| netlink(&format!("adding {}/{} to", self.gateway, self.prefix_len), &self.bridge, e))?;
        // Bridges of earlier versions have that route already.
        let cidr = self.cidr()?;
        let main = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(cidr.network(), cidr.prefix_len())
            .output_interface(index)
            .scope(RouteScope::Link)
            .protocol(RouteProtocol::Kernel)
            .build();
        match handle.route().del(main).execute().await {
            Ok(()) => {}
            Err(e) if matches!(errno(&e), Some(libc::ESRCH) | Some(libc::ENOENT)) => {}
            Err(e) => return Err(netlink("removing the main-table route of", &self.bridge, e)),
        }
        enable_forwarding()?;
        // Never route 127.0.0.0/8 from or to an instance (earlier versions turned this on
        // for port forwards used through 127.0.0.1; it let instances reach everything the
        // host binds to loopback).
        // And a source check (rp_filter) that looks the source up the way the packet's
        // network marks it, so a strict host setting still takes traffic from a network
        // whose range another project uses too.
        for (setting, value) in [("route_localnet", "0"), ("src_valid_mark", "1")] {
            let path = format!("/proc/sys/net/ipv4/conf/{}/{setting}", self.bridge);
            if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() != value) {
                std::fs::write(&path, value).at("setting", Path::new(&path))?;
            }
        }
        Ok(())
    }

    /// Removes the bridge. Idempotent. Instances still attached lose their uplink.
    pub async fn remove(&self) -> Result<()> {
        validate_ifname(&self.bridge)?;
        let handle = connect()?;
        delete_link(&handle, &self.bridge).await
    }
}

/// Bridges whose alias starts with `prefix` (Roost labels the bridges it creates, so
/// it removes only those).
pub fn owned_bridges(prefix: &str) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.path().join("bridge").exists())
        .filter_map(|e| {
            let alias = std::fs::read_to_string(e.path().join("ifalias")).ok()?;
            let alias = alias.trim();
            alias.starts_with(prefix).then(|| (e.file_name().to_string_lossy().into_owned(), alias.to_string()))
        })
        .collect()
}

/// Policy routing: a network's routes live in a table of its own, never in the host's
/// main table. Two reasons. Ranges may overlap across projects (two may both use
/// 10.0.0.0/24): the firewall marks each network's connections, and a rule per network
/// sends marked packets to its table, which routes its range (and its peers') to the
/// right bridges, so a reply or a port-forwarded packet reaches the right bridge
/// whatever else the host has. And a tenant's range must not shadow the host's routes:
/// the host's own traffic to an instance takes a rule that comes after the main table's
/// specific routes (`lookup main suppress_prefixlength 0` first: the main table, its
/// default route aside), so a host route always wins, also one added later.
///
/// Rules are found again by their priority and mark prefix, which derive from the
/// installation's name, so two installations never remove each other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteOwner {
    /// Of the mark rules; the main-table rule is one after it, the host's rules two.
    pub priority: u32,
    /// The top byte of every mark (and table id) of this installation.
    pub mark_prefix: u32,
}

impl RouteOwner {
    pub fn for_table(table: &str) -> RouteOwner {
        let h = sha2::Sha256::digest(table.as_bytes());
        let priority = 20000 + (u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 10000);
        // 0x10-0x7f: clear of the bits others commonly use (0x4000, 0x8000, 0xff00_0000).
        let mark_prefix = (0x10 + (h[4] as u32 % 0x70)) << 24;
        RouteOwner { priority, mark_prefix }
    }

    /// The mark (and routing table id) of a network.
    pub fn mark(&self, network_id: &str) -> u32 {
        let h = sha2::Sha256::digest(network_id.as_bytes());
        self.mark_prefix | (u32::from_be_bytes([0, h[0], h[1], h[2]]) | 1)
    }

    fn ours(&self, table: u32) -> bool {
        table & 0xff00_0000 == self.mark_prefix
    }
}

/// What one network needs routed: its range to its bridge, and its peers' ranges to
/// theirs, in table `mark`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRoutes {
    pub bridge: String,
    pub cidr: Ipv4Net,
    pub mark: u32,
    /// Whether the host's own traffic to `cidr` goes to this bridge. Where ranges
    /// overlap only one network can have it (the control plane gives it to the oldest).
    pub host_route: bool,
    /// Peered networks: their bridge and range.
    pub peers: Vec<(String, Ipv4Net)>,
}

/// Makes this installation's routing tables and rules exactly `nets` (an empty list
/// removes them all). One dump each of links, routes and rules, then only the changes.
pub async fn sync_policy_routing(owner: RouteOwner, nets: &[NetRoutes]) -> Result<()> {
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
    use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute};
    let handle = connect()?;
    let mut index_of = std::collections::HashMap::new();
    for net in nets {
        for bridge in std::iter::once(&net.bridge).chain(net.peers.iter().map(|(b, _)| b)) {
            if !index_of.contains_key(bridge) {
                let index = link_index(&handle, bridge)
                    .await?
                    .ok_or_else(|| Error::Invalid(format!("bridge {bridge} does not exist")))?;
                index_of.insert(bridge.clone(), index);
            }
        }
    }
    // Routes: (table, destination, interface). Only tables of networks we keep are
    // pruned; a removed network's routes went with its bridge.
    let mut want_routes = std::collections::BTreeSet::new();
    for net in nets {
        want_routes.insert((net.mark, net.cidr.trunc(), index_of[&net.bridge]));
        for (bridge, cidr) in &net.peers {
            want_routes.insert((net.mark, cidr.trunc(), index_of[bridge]));
        }
    }
    let kept_tables: std::collections::BTreeSet<u32> = nets.iter().map(|n| n.mark).collect();
    let mut have_routes = std::collections::BTreeSet::new();
    let mut stale_routes = Vec::new();
    let mut routes = handle.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute();
    while let Some(route) = routes.try_next().await.map_err(|e| netlink("listing", "routes", e))? {
        let mut table = route.header.table as u32;
        let (mut dst, mut oif) = (Ipv4Addr::UNSPECIFIED, 0);
        for attr in &route.attributes {
            match attr {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
                RouteAttribute::Oif(i) => oif = *i,
                _ => {}
            }
        }
        if !kept_tables.contains(&table) {
            continue;
        }
        let Ok(cidr) = Ipv4Net::new(dst, route.header.destination_prefix_length) else { continue };
        let key = (table, cidr, oif);
        if want_routes.contains(&key) {
            have_routes.insert(key);
        } else {
            stale_routes.push(route);
        }
    }
    for (table, cidr, oif) in want_routes.difference(&have_routes) {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(cidr.network(), cidr.prefix_len())
            .output_interface(*oif)
            .table_id(*table)
            .build();
        match handle.route().add(route).execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(libc::EEXIST) => {}
            Err(e) => return Err(netlink(&format!("adding the route to {cidr} in table"), &table.to_string(), e)),
        }
    }
    for route in stale_routes {
        // Gone already is fine: a route goes with its bridge.
        let _ = handle.route().del(route).execute().await;
    }

    // Rules: a mark rule per network, a host rule per network that has the host's
    // route, and the main-table rule before the host rules when there are any.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Rule {
        Mark(u32),
        Host(u32, Ipv4Net),
        MainFirst,
    }
    let mut want_rules: std::collections::BTreeSet<Rule> = nets.iter().map(|n| Rule::Mark(n.mark)).collect();
    for net in nets.iter().filter(|n| n.host_route) {
        want_rules.insert(Rule::Host(net.mark, net.cidr.trunc()));
        want_rules.insert(Rule::MainFirst);
    }
    let mut have_rules = std::collections::BTreeSet::new();
    let mut stale_rules = Vec::new();
    let mut rules = handle.rule().get(rtnetlink::IpVersion::V4).execute();
    while let Some(rule) = rules.try_next().await.map_err(|e| netlink("listing", "policy rules", e))? {
        let (mut priority, mut mark, mut dst, mut suppress) = (0, None, None, None);
        let mut table = rule.header.table as u32;
        for attr in &rule.attributes {
            match attr {
                RuleAttribute::Priority(p) => priority = *p,
                RuleAttribute::FwMark(m) => mark = Some(*m),
                RuleAttribute::Table(t) => table = *t,
                RuleAttribute::Destination(std::net::IpAddr::V4(a)) => dst = Some(*a),
                RuleAttribute::SuppressPrefixLen(n) => suppress = Some(*n),
                _ => {}
            }
        }
        let found = if priority == owner.priority && mark.is_some_and(|m| owner.ours(m)) {
            mark.map(Rule::Mark)
        } else if priority == owner.priority + 2 && owner.ours(table) {
            dst.and_then(|d| Ipv4Net::new(d, rule.header.dst_len).ok()).map(|cidr| Rule::Host(table, cidr))
        } else if priority == owner.priority + 1 && table == 254 && suppress == Some(0) {
            Some(Rule::MainFirst)
        } else {
            None
        };
        match found {
            Some(r) if want_rules.contains(&r) => {
                have_rules.insert(r);
            }
            Some(_) => stale_rules.push(rule),
            None => {}
        }
    }
    for rule in want_rules.difference(&have_rules) {
        let add = handle.rule().add().v4().action(RuleAction::ToTable);
        let mut add = match *rule {
            // Both the action and the mask matter: without the action a matching packet
            // gets EINVAL, and without the mask every packet (marked or not) matches.
            Rule::Mark(mark) => {
                let mut add = add.fw_mark(mark).table_id(mark).priority(owner.priority);
                add.message_mut().attributes.push(RuleAttribute::FwMask(u32::MAX));
                add
            }
            Rule::Host(table, cidr) => {
                add.destination_prefix(cidr.network(), cidr.prefix_len()).table_id(table).priority(owner.priority + 2)
            }
            Rule::MainFirst => add.table_id(254).priority(owner.priority + 1),
        };
        if *rule == Rule::MainFirst {
            add.message_mut().attributes.push(RuleAttribute::SuppressPrefixLen(0));
        }
        match add.execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(libc::EEXIST) => {}
            Err(e) => return Err(netlink("adding", &format!("the policy rule {rule:?}"), e)),
        }
    }
    for rule in stale_rules {
        match handle.rule().del(rule).execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(libc::ENOENT) => {}
            Err(e) => return Err(netlink("removing", "a policy rule", e)),
        }
    }
    Ok(())
}

/// Removes a bridge by name (missing is fine).
pub async fn remove_bridge(bridge: &str) -> Result<()> {
    validate_ifname(bridge)?;
    let handle = connect()?;
    delete_link(&handle, bridge).await
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

/// The host end of NIC `index`: [`host_ifname`] for the first, with the index appended
/// for the others (`rv<12>1`, 15 bytes).
pub fn nic_ifname(instance_id: &str, index: u8) -> String {
    let base = host_ifname(instance_id);
    if index == 0 { base } else { format!("{base}{}", index.min(9)) }
}

/// Most NICs an instance may have (the host names have room for one digit).
pub const MAX_NICS: usize = 8;

/// Plugs the namespace at `netns_path` into the bridge: a veth pair whose inner end is
/// created directly in the namespace as `eth<index>` with the instance's MAC, and then
/// gets its address (and, for `eth0`, the default route). Idempotent: a complete pair
/// is kept and its settings reapplied; half of one (a crash between steps) is replaced.
pub async fn attach(instance_id: &str, netns_path: &Path, attachment: &NetAttachment) -> Result<()> {
    validate_ifname(&attachment.bridge)?;
    let host_if = nic_ifname(instance_id, attachment.index);
    let guest_if = format!("eth{}", attachment.index);
    let handle = connect()?;
    let bridge = link_index(&handle, &attachment.bridge).await?.ok_or_else(|| {
        Error::Invalid(format!("bridge {} does not exist (ensure the network first)", attachment.bridge))
    })?;
    let inner = connect_in(netns_path)?;

    let host_index = link_index(&handle, &host_if).await?;
    let guest_index = link_index(&inner, &guest_if).await?;
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
            // Half a pair: the host end's peer is elsewhere, or an eth without its host end.
            delete_link(&handle, &host_if).await?;
            delete_link(&inner, &guest_if).await?;
            let ns = std::fs::File::open(netns_path).at("opening network namespace", netns_path)?;
            let peer = LinkMessageBuilder::<LinkUnspec>::new()
                .name(guest_if.clone())
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
    let eth = link_index(&inner, &guest_if)
        .await?
        .ok_or_else(|| Error::Netlink(format!("{guest_if} did not appear in {}", netns_path.display())))?;
    set_up(&inner, eth, &guest_if).await?;
    add_address(&inner, eth, attachment.ip, attachment.prefix_len, &guest_if).await?;
    if attachment.index != 0 {
        return Ok(());
    }
    let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(attachment.gateway).output_interface(eth).build();
    match inner.route().add(route).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(netlink("adding the default route in", &netns_path.display().to_string(), e)),
    }
}

/// Removes one NIC's veth pair (deleting one end deletes both). Missing is fine.
pub async fn detach_nic(instance_id: &str, index: u8) -> Result<()> {
    let handle = connect()?;
    delete_link(&handle, &nic_ifname(instance_id, index)).await
}

/// Removes every veth pair of the instance. Missing is fine.
pub async fn detach(instance_id: &str) -> Result<()> {
    let handle = connect()?;
    for index in 0..MAX_NICS as u8 {
        delete_link(&handle, &nic_ifname(instance_id, index)).await?;
    }
    Ok(())
}

/// Bytes through the instance's veths, as the instance sees them: (received, sent).
pub fn traffic(instance_id: &str) -> Option<(u64, u64)> {
    let mut total: Option<(u64, u64)> = None;
    for index in 0..MAX_NICS as u8 {
        let dir = Path::new("/sys/class/net").join(nic_ifname(instance_id, index)).join("statistics");
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok()?.trim().parse::<u64>().ok();
        // The host end receives what the instance sends.
        if let (Some(rx), Some(tx)) = (read("tx_bytes"), read("rx_bytes")) {
            let t = total.get_or_insert((0, 0));
            t.0 += rx;
            t.1 += tx;
        }
    }
    total
}

fn validate_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok { Ok(()) } else { Err(Error::Invalid(format!("invalid interface name '{name}'"))) }
}

fn enable_forwarding() -> Result<()> {
    // Routing between networks and to the outside, and (the firewall's premise) bridged
    // IPv4 traffic through the `ip` hooks so security groups see it.
    for (path, what) in [
        ("/proc/sys/net/ipv4/ip_forward", "enabling forwarding in"),
        ("/proc/sys/net/bridge/bridge-nf-call-iptables", "passing bridged traffic through the firewall in"),
    ] {
        let path = Path::new(path);
        if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
            continue;
        }
        if !path.exists() && path.starts_with("/proc/sys/net/bridge") {
            // A modular kernel (Debian's) loads br_netfilter on demand.
            let loaded = std::process::Command::new("modprobe")
                .arg("br_netfilter")
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !loaded && !path.exists() {
                return Err(Error::missing(
                    "the br_netfilter kernel module (security groups filter bridged traffic through it)".to_string(),
                    "kmod",
                ));
            }
        }
        std::fs::write(path, "1").at(what, path)?;
    }
    Ok(())
}

/// A netlink connection in our own namespace, driven by a task that ends with the handle.
pub(crate) fn connect() -> Result<Handle> {
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

pub(crate) fn netlink(doing: &str, what: &str, e: rtnetlink::Error) -> Error {
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
        let net = Network { bridge: "roost0".into(), gateway: Ipv4Addr::new(10, 88, 0, 1), prefix_len: 16 };
        assert_eq!(net.cidr().unwrap().to_string(), "10.88.0.0/16");
        assert!(Network { prefix_len: 33, ..net.clone() }.cidr().is_err());
        assert!(Network { bridge: "way-too-long-bridge".into(), ..net }.validate().is_err());
    }
}
