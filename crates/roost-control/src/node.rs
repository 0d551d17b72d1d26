//! The compute node this control plane drives: a driver, the image store and the
//! host's networking (bridges, the firewall tables, instance DNS). In a single-node
//! server it lives in-process; remote agents will implement the same calls over a link.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ipnet::Ipv4Net;
use roost_node::Driver;
use roost_node::images::ImageStore;
use roost_node::network::dns::DnsServer;

/// The unprivileged ports: the well-known ones below 1024 belong to the host's own
/// services (ssh, DNS, HTTPS), which a tenant must never take over.
pub const DEFAULT_PORT_FORWARD_RANGE: std::ops::RangeInclusive<u16> = 1024..=65535;

pub struct Node {
    /// The container driver: instances of type `container`, and the default.
    pub driver: Arc<dyn Driver>,
    /// The microVM driver (instances of type `vm`), when this node runs VMs.
    pub vm: Option<Arc<dyn Driver>>,
    /// What `node show` reports of the VM driver: the accelerator and why.
    /// (The driver itself: QEMU refusing KVM at a start can move the verdict to TCG.)
    pub vm_facts: Option<roost_node::drivers::vm::VmDriver>,
    /// Why VMs are unavailable, when they are.
    pub vm_unavailable: Option<String>,
    pub images: ImageStore,
    /// Where projects' default networks (and networks created without a CIDR) get
    /// their /24 from.
    pub network_pool: Ipv4Net,
    /// The nftables tables Roost owns (`ip` and `bridge` family) and the label of its
    /// bridges; two installations on one host need two names.
    pub firewall_table: String,
    /// The nft program.
    pub nft: String,
    /// Host ports a port forward may not take, TCP or UDP: Roost's own listeners, each
    /// with its name (`API`, `S3`, `E2B`).
    pub reserved_ports: Vec<(u16, String)>,
    /// The host ports port forwards may take (the `port_forward_range` setting).
    pub port_forward_range: std::ops::RangeInclusive<u16>,
    pub dns: DnsServer,
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
        reserved_ports: Vec<(u16, String)>,
    ) -> Node {
        Node {
            driver,
            vm: None,
            vm_facts: None,
            vm_unavailable: None,
            images,
            network_pool,
            firewall_table,
            nft: "nft".into(),
            reserved_ports,
            port_forward_range: DEFAULT_PORT_FORWARD_RANGE,
            dns: DnsServer::new(),
            firewall_lock: tokio::sync::Mutex::new(()),
            firewall_synced: AtomicBool::new(false),
            firewall_applied: tokio::sync::Mutex::new(String::new()),
        }
    }
}

impl Node {
    /// Adds the microVM driver.
    pub fn with_vm(mut self, vm: roost_node::drivers::vm::VmDriver) -> Node {
        self.vm_facts = Some(vm.clone());
        self.vm = Some(Arc::new(vm));
        self
    }

    /// The driver of an instance type (`container` or `vm`).
    pub fn driver_for(&self, kind: &str) -> crate::Result<Arc<dyn Driver>> {
        match kind {
            "vm" => self.vm.clone().ok_or_else(|| {
                crate::Error::unprocessable(format!(
                    "this node cannot run VMs: {}",
                    self.vm_unavailable.as_deref().unwrap_or("no VM driver")
                ))
            }),
            _ => Ok(self.driver.clone()),
        }
    }

    /// Every driver, the container driver first.
    pub fn drivers(&self) -> Vec<Arc<dyn Driver>> {
        let mut all = vec![self.driver.clone()];
        all.extend(self.vm.clone());
        all
    }
}
