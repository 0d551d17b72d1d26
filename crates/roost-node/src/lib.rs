//! The node side of Roost: what runs instances on one machine. The control plane's
//! reconcilers call these; nothing here touches the store.
//!
//! - [`driver`]: the [`Driver`] trait every compute driver implements (runc containers
//!   now, QEMU microVMs later) and the types it speaks.
//! - [`drivers::container`]: OCI containers with runc, no per-container monitor process.
//! - [`network`]: the default network (a bridge, a netns and veth per instance, NAT in
//!   one nftables table owned by Roost) and the pure IPAM helper.
//! - [`api`]: the node API, the whole surface the control plane asks of a node, with
//!   [`local::LocalNode`] (this machine) and [`sim::SimNode`] (in memory, for tests).
//! - [`images`]: the content-addressed image store (builtin busybox, Debian builds,
//!   tarball imports).
//!
//! Everything here needs root and Linux; prerequisites missing on the host are reported
//! as [`Error::Missing`] naming the Debian package that provides them.

pub mod api;
pub mod cgroups;
pub mod driver;
pub mod drivers;
pub mod error;
pub mod images;
pub mod local;
pub mod logs;
pub mod network;
pub mod pty;
pub mod reaper;
pub mod sim;
pub mod storage;

pub use driver::{
    CAP_ADD_ALLOWED, DiskFormat, DnsConfig, Driver, ExecProcess, ExecRequest, ExecSession, InstanceSpec, InstanceState,
    InstanceStatus, LogLine, LogLines, LogQuery, LogStream, MacAddr, Mount, NetAttachment, Resizer, Stats, TarStream,
    VolumeAttachment, normalize_capability,
};
pub use error::{Error, Result};
