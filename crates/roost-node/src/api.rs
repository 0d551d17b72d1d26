//! The node API: the whole surface the control plane asks of a machine. Instances of
//! both drivers, images by digest, volumes by id, the node's network state as one
//! desired-state document, files, exec, logs and stats.
//!
//! Its types carry ids and digests, never host paths: the node owns its on-disk layout
//! (where an image is unpacked, where a volume's file lives, where an instance's
//! writable layer is). That is what lets the control plane drive a node it does not
//! share a filesystem with. Two implementations:
//! - [`crate::local::LocalNode`]: this machine, what `roost server` runs in-process.
//! - [`crate::sim::SimNode`]: a node in memory, for control-plane tests without root.
//!
//! Every call is safe to repeat after a crash (`prepare`, `stop`, `delete`, volume and
//! image removal tolerate what is already done), so a reconciler or a job's undo may
//! call again without checking first.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;
pub use crate::driver::{
    DiskFormat, DnsConfig, ExecProcess, ExecRequest, ExecSession, InstanceState, InstanceStatus, LogLine, LogLines,
    LogQuery, LogStream, MacAddr, NetAttachment, Resizer, Signaller, Stats, TarStream,
};
pub use crate::images::{BuildProgress, ImageSource};
pub use crate::network::dns::{NetworkDns, Zone};
pub use crate::network::firewall::FirewallSpec;
pub use crate::network::host::{HostFacts, HostRoute};
pub use crate::network::{NetRoutes, RouteOwner};

/// What to run, as the control plane says it: the image by digest, volumes by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSpec {
    pub id: String,
    /// The image's digest (64 hex characters); the node has it (see [`NodeApi::image`]).
    pub image: String,
    /// The command; `None` runs the image's default init.
    pub cmd: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    /// CPU time as a number of CPUs; 0 means no limit.
    pub cpus: f64,
    /// Memory limit in bytes; 0 means no limit.
    pub memory_bytes: u64,
    /// Most processes; 0 means no limit.
    pub pids_limit: u32,
    pub hostname: String,
    /// Where it is plugged in, `eth0` first.
    #[serde(default)]
    pub networks: Vec<NetAttachment>,
    #[serde(default)]
    pub dns: Option<DnsConfig>,
    /// Block volumes, attached in this order.
    #[serde(default)]
    pub disks: Vec<DiskAttachment>,
    /// Capabilities on top of the default set (see [`crate::CAP_ADD_ALLOWED`]).
    #[serde(default)]
    pub capabilities_add: Vec<String>,
}

/// A volume attached to an instance: which volume, and where its filesystem appears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskAttachment {
    /// `vol-…`: the node finds the volume's file by it.
    pub volume_id: String,
    pub format: DiskFormat,
    /// The filesystem inside (`ext4`, `xfs`).
    pub filesystem: String,
    /// Absolute mount path inside the instance.
    pub path: String,
    pub read_only: bool,
}

/// The instances of one driver (`container` or `vm`) on a node.
#[async_trait]
pub trait Instances: Send + Sync {
    /// `container` or `vm`.
    fn kind(&self) -> &'static str;
    /// Makes the instance ready to start (or brings a stopped one to `spec`).
    async fn prepare(&self, spec: &InstanceSpec) -> Result<()>;
    async fn start(&self, id: &str) -> Result<()>;
    /// Asks it to stop, killing it after `grace`.
    async fn stop(&self, id: &str, grace: Duration) -> Result<()>;
    async fn kill(&self, id: &str) -> Result<()>;
    /// Removes it and everything the node keeps of it.
    async fn delete(&self, id: &str) -> Result<()>;
    async fn inspect(&self, id: &str) -> Result<InstanceState>;
    /// The ids of every instance this driver knows.
    async fn list(&self) -> Result<Vec<String>>;
    async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecSession>;
    async fn logs(&self, id: &str, query: LogQuery) -> Result<LogLines>;
    async fn stats(&self, id: &str) -> Result<Stats>;
    /// Unpacks a tar stream at `path` inside the instance.
    async fn copy_in(&self, id: &str, path: &str, tar: TarStream) -> Result<()>;
    /// A tar stream of `path` inside the instance.
    async fn copy_out(&self, id: &str, path: &str) -> Result<TarStream>;
    async fn attach_network(&self, id: &str, nic: &NetAttachment) -> Result<()>;
    async fn detach_network(&self, id: &str, nic: &NetAttachment) -> Result<()>;
    async fn attach_volume(&self, id: &str, disk: &DiskAttachment) -> Result<()>;
    async fn detach_volume(&self, id: &str, disk: &DiskAttachment, force: bool) -> Result<()>;
    async fn pause(&self, id: &str) -> Result<()>;
    async fn resume(&self, id: &str) -> Result<()>;
}

/// An image the node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// 64 hex characters.
    pub digest: String,
    /// The name it was first built or imported under.
    pub name: String,
    /// The unpacked size.
    pub size_bytes: u64,
}

/// What a node is and can run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// `container`, and `vm` when it runs microVMs.
    pub instance_types: Vec<String>,
    /// Why it cannot run VMs, when it cannot.
    pub vm_unavailable: Option<String>,
    /// The VM accelerator (`kvm` or `tcg`), why, and the checks behind the verdict.
    pub accelerator: Option<AcceleratorFacts>,
    /// A simulated node: instances are records in memory, nothing runs.
    pub simulated: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AcceleratorFacts {
    pub accelerator: String,
    pub reason: String,
    pub kvm_usable: bool,
    pub tsc_khz: u64,
    /// `(name, passed, detail)` of each check.
    pub checks: Vec<(String, bool, String)>,
}

/// A network's bridge as the node should have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeSpec {
    pub network_id: String,
    pub bridge: String,
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
}

/// The node's whole network state as the control plane wants it: bridges, policy
/// routes, the firewall and instance DNS. Applying it makes the host equal to it
/// (what is ours and not in it goes); applying it twice changes nothing.
#[derive(Debug, Clone)]
pub struct NetworkState {
    pub bridges: Vec<BridgeSpec>,
    pub routes: Vec<NetRoutes>,
    pub firewall: FirewallSpec,
    /// Instance DNS, one zone per network id.
    pub dns: HashMap<String, NetworkDns>,
}

/// What applying a [`NetworkState`] did that the control plane must follow up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkApplied {
    /// Networks whose bridge was missing and was made again: their running instances
    /// must be plugged in again.
    pub remade: Vec<String>,
}

/// A progress callback of a long node call.
pub type Progress = Box<dyn Fn(BuildProgress) + Send + Sync>;

/// The node API (see the module docs).
#[async_trait]
pub trait NodeApi: Send + Sync {
    fn facts(&self) -> NodeFacts;
    /// The marks and rule priority of this node's routing (they name its networks'
    /// routing tables in [`NetworkState::routes`] and the firewall).
    fn route_owner(&self) -> RouteOwner;

    // ---- instances ----

    /// The instances of a driver kind; an error when the node has no such driver.
    fn instances(&self, kind: &str) -> Result<Arc<dyn Instances>>;
    /// Every driver, the container driver first.
    fn all_instances(&self) -> Vec<Arc<dyn Instances>>;
    /// Copies a container's changes to its image (its writable layer) to another
    /// instance that has none yet (a clone). The source should be frozen or stopped.
    async fn copy_instance_changes(&self, from: &str, to: &str) -> Result<()>;
    /// Removes changes copied to an instance that was never prepared (the undo of
    /// [`NodeApi::copy_instance_changes`]); nothing when there are none.
    async fn remove_instance_changes(&self, id: &str) -> Result<()>;
    /// Archives a container's changes as the instance snapshot `snapshot_id`; returns
    /// the archive's size.
    async fn archive_instance_changes(&self, id: &str, snapshot_id: &str) -> Result<u64>;
    /// Removes an instance snapshot's archive (nothing when there is none).
    async fn remove_instance_archive(&self, snapshot_id: &str) -> Result<()>;
    /// Stores a container's root filesystem as it is now as the image `digest`.
    async fn capture_image(&self, id: &str, digest: &str, name: &str, source: ImageSource) -> Result<ImageInfo>;

    // ---- images ----

    async fn image(&self, digest: &str) -> Result<Option<ImageInfo>>;
    /// The builtin busybox image (built on first use).
    async fn busybox_image(&self) -> Result<ImageInfo>;
    /// A Debian image with `packages`, built from the host's apt mirror (or reused).
    async fn build_debian_image(
        &self,
        name: &str,
        suite: &str,
        packages: &[String],
        progress: Progress,
    ) -> Result<ImageInfo>;
    /// Unpacks a root filesystem tarball (`.tar`, `.tar.gz`, `.tar.zst`) of at most
    /// `max_unpacked` bytes unpacked.
    async fn import_image(&self, file_name: &str, archive: TarStream, max_unpacked: u64) -> Result<ImageInfo>;
    /// Whether `cmd` resolves in the image: an absolute path exists, or a bare name is
    /// on the default `PATH`.
    async fn image_has_command(&self, digest: &str, cmd: &str) -> Result<bool>;
    async fn remove_image(&self, digest: &str) -> Result<()>;

    // ---- volumes ----

    /// A new formatted volume of `size` bytes.
    async fn create_volume(&self, id: &str, size: u64, filesystem: &str) -> Result<()>;
    /// A new volume from a snapshot, grown to `size` bytes.
    async fn volume_from_snapshot(&self, snapshot_id: &str, id: &str, size: u64) -> Result<()>;
    /// A new volume with a copy of another's content (taken consistently).
    async fn copy_volume(&self, from: &str, id: &str) -> Result<()>;
    async fn remove_volume(&self, id: &str) -> Result<()>;
    async fn resize_volume(&self, id: &str, size: u64) -> Result<()>;
    /// Bytes its filesystem uses (0 when not known without mounting it).
    fn volume_used_bytes(&self, id: &str) -> u64;
    /// Snapshots a volume; returns the bytes the snapshot stores.
    async fn snapshot_volume(&self, id: &str, snapshot_id: &str) -> Result<u64>;
    /// Bytes a snapshot (volume or instance snapshot) stores on the node.
    fn snapshot_stored_bytes(&self, snapshot_id: &str) -> u64;
    async fn restore_volume(&self, id: &str, snapshot_id: &str) -> Result<()>;
    fn remove_volume_snapshot(&self, snapshot_id: &str) -> Result<()>;
    /// At start: removes what a crash left (temporary files; volume and snapshot files
    /// whose id is not in `known`; mounts no volume in `in_use` needs). Returns what was
    /// cleaned, for the log.
    async fn clean_volumes(&self, known: &[String], in_use: &[String]) -> Vec<String>;

    // ---- network ----

    /// The host's routes and name servers a network's range must keep clear of.
    async fn host_network(&self) -> Result<HostFacts>;
    /// What holds a host port now (a listener), if anything.
    fn port_in_use(&self, port: u16) -> Option<String>;
    /// Makes the node's bridges, routes, firewall and DNS equal to `desired`.
    async fn apply_network(&self, desired: &NetworkState) -> Result<NetworkApplied>;
}
