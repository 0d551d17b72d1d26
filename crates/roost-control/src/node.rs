//! The compute node this control plane drives: a driver, the image store and the
//! host's networking (bridges, the firewall tables, instance DNS). In a single-node
//! server it lives in-process; remote agents will implement the same calls over a link.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ipnet::Ipv4Net;
use roost_node::Driver;
use roost_node::images::ImageStore;
use roost_node::network::dns::DnsServer;

pub struct Node {
    pub driver: Arc<dyn Driver>,
    pub images: ImageStore,
    /// Where projects' default networks (and networks created without a CIDR) get
    /// their /24 from.
    pub network_pool: Ipv4Net,
    /// The nftables tables Roost owns (`ip` and `bridge` family) and the label of its
    /// bridges; two installations on one host need two names.
    pub firewall_table: String,
    /// The nft program.
    pub nft: String,
    /// Host TCP ports a port forward may not take (Roost's own listeners).
    pub reserved_ports: Vec<u16>,
    pub dns: DnsServer,
    pub firewall_dirty: tokio::sync::Notify,
    pub firewall_lock: tokio::sync::Mutex<()>,
    pub firewall_synced: AtomicBool,
    /// The script applied last, to skip applying an unchanged one.
    pub firewall_applied: tokio::sync::Mutex<String>,
}

impl Node {
    pub fn new(
        driver: Arc<dyn Driver>,
        images: ImageStore,
        network_pool: Ipv4Net,
        firewall_table: String,
        reserved_ports: Vec<u16>,
    ) -> Node {
        Node {
            driver,
            images,
            network_pool,
            firewall_table,
            nft: "nft".into(),
            reserved_ports,
            dns: DnsServer::new(),
            firewall_dirty: tokio::sync::Notify::new(),
            firewall_lock: tokio::sync::Mutex::new(()),
            firewall_synced: AtomicBool::new(false),
            firewall_applied: tokio::sync::Mutex::new(String::new()),
        }
    }
}
