//! The compute node this control plane drives, reached only through the node API
//! ([`roost_node::api::NodeApi`]): in a single-node server the in-process
//! [`roost_node::local::LocalNode`]; in tests of the control plane the in-memory
//! [`roost_node::sim::SimNode`]. What stays here is the control plane's policy for the
//! node: the address pool networks come from and the host ports forwards may take.

use std::sync::Arc;

use ipnet::Ipv4Net;
use roost_node::api::{Instances, NodeApi};

/// The unprivileged ports: the well-known ones below 1024 belong to the host's own
/// services (ssh, DNS, HTTPS), which a tenant must never take over.
pub const DEFAULT_PORT_FORWARD_RANGE: std::ops::RangeInclusive<u16> = 1024..=65535;

pub struct Node {
    pub api: Arc<dyn NodeApi>,
    /// Where projects' default networks (and networks created without a CIDR) get
    /// their /24 from.
    pub network_pool: Ipv4Net,
    /// Host ports a port forward may not take, TCP or UDP: Roost's own listeners, each
    /// with its name (`API`, `S3`, `E2B`).
    pub reserved_ports: Vec<(u16, String)>,
    /// The host ports port forwards may take (the `port_forward_range` setting).
    pub port_forward_range: std::ops::RangeInclusive<u16>,
}

impl Node {
    pub fn new(api: Arc<dyn NodeApi>, network_pool: Ipv4Net, reserved_ports: Vec<(u16, String)>) -> Node {
        Node { api, network_pool, reserved_ports, port_forward_range: DEFAULT_PORT_FORWARD_RANGE }
    }

    /// The driver of an instance type (`container` or `vm`).
    pub fn driver_for(&self, kind: &str) -> crate::Result<Arc<dyn Instances>> {
        self.api.instances(kind).map_err(|e| crate::Error::unprocessable(e.to_string()))
    }

    /// Every driver, the container driver first.
    pub fn drivers(&self) -> Vec<Arc<dyn Instances>> {
        self.api.all_instances()
    }
}

impl std::ops::Deref for Node {
    type Target = dyn NodeApi;

    fn deref(&self) -> &Self::Target {
        &*self.api
    }
}
