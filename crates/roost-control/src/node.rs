//! The compute node this control plane drives: a driver, the image store and the default
//! network. In a single-node server it lives in-process; remote agents will implement the
//! same calls over a link.

use std::sync::Arc;

use ipnet::Ipv4Net;
use roost_node::Driver;
use roost_node::images::ImageStore;
use roost_node::network::Network;

pub struct Node {
    pub driver: Arc<dyn Driver>,
    pub images: ImageStore,
    /// The default network every instance joins.
    pub network: Network,
    /// The nft program.
    pub nft: String,
}

/// The store's name of the default network's lease space.
pub const DEFAULT_NETWORK: &str = "default";

impl Node {
    pub fn cidr(&self) -> Ipv4Net {
        self.network.cidr().expect("the default network's CIDR was validated at startup")
    }
}
