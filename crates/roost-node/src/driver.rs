//! The driver contract: what the control plane asks of a compute driver, whatever runs
//! the instance (runc today, a QEMU microVM later). Object safe, so the node holds an
//! `Arc<dyn Driver>` per kind.
//!
//! Every call is idempotent where the name allows it (`prepare`, `stop`, `kill`,
//! `delete`), so a reconciler may repeat a step after a crash without checking first.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::{Error, Result};

/// A byte stream handed across the trait: an exec's stdout, a tar archive, ...
pub type TarStream = Box<dyn AsyncRead + Send + Unpin>;
/// Lines of an instance's output, oldest first.
pub type LogLines = Pin<Box<dyn Stream<Item = Result<LogLine>> + Send>>;

/// What to run. The control plane builds it from the instance row and the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// `i-` and 12 lowercase base32 characters; any `[a-z0-9-]{1,40}` works.
    pub id: String,
    /// The image's unpacked root filesystem, shared read-only by every instance of it.
    pub rootfs: PathBuf,
    /// The command; `None` runs the image's default init, which for every image Roost
    /// makes is a PID-1 shell that waits forever and exits 0 on SIGTERM
    /// ([`DEFAULT_INIT`]), so the instance stays up like a small server.
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` pairs on top of the default `PATH`, `TERM` and `HOSTNAME`.
    pub env: Vec<(String, String)>,
    /// CPU time as a number of CPUs (0.5 = half of one); 0 means no limit.
    pub cpus: f64,
    /// Memory limit in bytes (swap included, so it is a hard limit); 0 means no limit.
    pub memory_bytes: u64,
    /// Most processes the instance may have; 0 means no limit.
    pub pids_limit: u32,
    pub hostname: String,
    /// Where it is plugged in, `eth0` first (it carries the default route); none gives
    /// it a network namespace with loopback only.
    #[serde(default)]
    pub networks: Vec<NetAttachment>,
    /// The name server and search domain for `/etc/resolv.conf` (a network with
    /// instance DNS); `None`: the host's name servers.
    #[serde(default)]
    pub dns: Option<DnsConfig>,
    /// Host directories bind-mounted into the instance.
    pub volumes: Vec<Mount>,
    /// Block volumes: disk images the driver attaches (a container driver mounts the
    /// filesystem on the host and binds it in; a VM driver adds a virtio-blk disk).
    #[serde(default)]
    pub disks: Vec<VolumeAttachment>,
    /// Capabilities on top of the default set, from [`CAP_ADD_ALLOWED`] (`NET_RAW`...).
    #[serde(default)]
    pub capabilities_add: Vec<String>,
}

/// The capabilities an instance may ask for beyond the default set: those Docker gives
/// by default and Roost does not (raw sockets, device nodes), and ptrace for debuggers.
/// Nothing here reaches beyond the instance (SYS_ADMIN, NET_ADMIN, SYS_MODULE... never).
pub const CAP_ADD_ALLOWED: &[&str] = &["NET_RAW", "MKNOD", "SYS_PTRACE"];

/// `net_raw`, `CAP_NET_RAW` → `NET_RAW` when the capability may be added.
pub fn normalize_capability(name: &str) -> std::result::Result<String, String> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if CAP_ADD_ALLOWED.contains(&bare) {
        Ok(bare.to_string())
    } else {
        Err(format!("capability '{name}' cannot be added (allowed: {})", CAP_ADD_ALLOWED.join(", ")))
    }
}

/// The on-disk format of a volume's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

/// A block volume attached to an instance: which image file, and where its filesystem
/// appears inside the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    /// `vol-…`; drivers name their per-attachment state by it.
    pub volume_id: String,
    /// The image file on the host (absolute).
    pub image: PathBuf,
    pub format: DiskFormat,
    /// The filesystem inside the image (`ext4`, `xfs`).
    pub filesystem: String,
    /// Absolute mount path inside the instance.
    pub path: String,
    pub read_only: bool,
}

/// The long-running default command (see [`InstanceSpec::cmd`]). `sleep` runs in the
/// background so the shell can take the TERM trap at once rather than after it.
pub const DEFAULT_INIT: [&str; 3] =
    ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 2147483647 & wait $!; done"];

/// An instance's place on a network: the bridge it joins and its address there. The
/// control plane's IPAM chose `ip` (see [`crate::network::ipam`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetAttachment {
    pub bridge: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac: MacAddr,
    /// The NIC's position: `eth<index>` inside, and the host end's name.
    #[serde(default)]
    pub index: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    pub nameserver: Ipv4Addr,
    /// e.g. `prod.internal`, so single-label names resolve in the network.
    pub search: String,
}

/// A bind mount of a host path into the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub source: PathBuf,
    /// Absolute path inside the instance.
    pub destination: String,
    pub read_only: bool,
}

/// An Ethernet address, written `02:00:0a:58:00:02`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A locally administered unicast address derived from an IPv4 address, so the same
    /// lease always gets the same MAC (neighbour caches stay right across restarts).
    pub fn for_ip(ip: Ipv4Addr) -> MacAddr {
        let [a, b, c, d] = ip.octets();
        MacAddr([0x02, 0x52, a, b, c, d])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<MacAddr, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(|| format!("invalid MAC address '{s}'"))?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| format!("invalid MAC address '{s}'"))?;
        }
        if parts.next().is_some() {
            return Err(format!("invalid MAC address '{s}'"));
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    Running,
    /// Running but frozen (cgroup freezer, or a VM's vCPUs stopped): no process runs
    /// until it is resumed; memory and process state are kept.
    Paused,
    /// Prepared and not started, or exited, or stopped.
    Stopped,
    /// The driver knows nothing of it (never prepared, or deleted).
    Missing,
}

/// What a driver observes of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceState {
    pub status: InstanceStatus,
    /// The init process on the host, while running.
    pub pid: Option<u32>,
    /// How the last run ended: the exit code, or 128 + signal when killed by one.
    /// `None` while running, before the first start, or when the exit was not
    /// observed (see `exit_unknown`).
    pub exit_code: Option<i32>,
    /// The signal that ended the last run, if one did.
    pub exit_signal: Option<i32>,
    /// The instance stopped but its exit status is lost: it exited while no process
    /// of this server was its parent (it was adopted after a server restart, and the
    /// kernel hands an exit status only to the parent).
    pub exit_unknown: bool,
    /// The kernel's OOM killer killed a process of the instance during its last run.
    /// With `status == Stopped` and `exit_signal == Some(9)` the instance was OOM-killed.
    pub oom_killed: bool,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
}

impl InstanceState {
    pub fn missing() -> InstanceState {
        InstanceState {
            status: InstanceStatus::Missing,
            pid: None,
            exit_code: None,
            exit_signal: None,
            exit_unknown: false,
            oom_killed: false,
            started_at: None,
            finished_at: None,
        }
    }
}

/// A command to run inside a running instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Working directory; `/` when `None`.
    pub cwd: Option<String>,
    /// Allocate a terminal: output arrives on `stdout` only, and `resize` works.
    pub tty: bool,
    pub rows: u16,
    pub cols: u16,
    /// With `tty`: the instance's own console where it has one (a VM's serial console)
    /// instead of running `cmd`.
    pub console: bool,
}

/// The running side of an exec, implemented by each driver.
#[async_trait]
pub trait ExecProcess: Send + Sync {
    /// Sets the terminal's size; an error without a terminal.
    fn resize(&self, rows: u16, cols: u16) -> Result<()>;
    /// Waits for the command to end: its exit code, or 128 + signal.
    async fn wait(&mut self) -> Result<i32>;

    /// The process on the host, when the driver can signal it there (a container's
    /// exec is a host process; a VM's is not).
    fn host_pid(&self) -> Option<u32> {
        None
    }

    /// A handle that resizes the terminal while another task waits for the command
    /// (`wait` holds the session); `None` where the size cannot change after the start.
    fn resizer(&self) -> Option<Resizer> {
        None
    }
}

/// Sets an exec's terminal size (rows, cols) from anywhere.
pub type Resizer = std::sync::Arc<dyn Fn(u16, u16) -> Result<()> + Send + Sync>;
/// Sends a signal (a number) to an exec's process from anywhere.
pub type Signaller = std::sync::Arc<dyn Fn(i32) -> Result<()> + Send + Sync>;

/// A started exec. Take the streams out (`session.stdout.take()`), pump them, then
/// `wait()`. Dropping `stdin` closes the command's input (without a terminal).
pub struct ExecSession {
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// The command's stdout; with a terminal, everything the terminal shows.
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// The command's stderr; `None` with a terminal.
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    process: Box<dyn ExecProcess>,
}

impl ExecSession {
    pub fn new(
        stdin: Box<dyn AsyncWrite + Send + Unpin>,
        stdout: Box<dyn AsyncRead + Send + Unpin>,
        stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
        process: Box<dyn ExecProcess>,
    ) -> ExecSession {
        ExecSession { stdin: Some(stdin), stdout: Some(stdout), stderr, process }
    }

    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        self.process.resize(rows, cols)
    }

    pub async fn wait(&mut self) -> Result<i32> {
        self.process.wait().await
    }

    pub fn host_pid(&self) -> Option<u32> {
        self.process.host_pid()
    }

    pub fn resizer(&self) -> Option<Resizer> {
        self.process.resizer()
    }

    /// A handle that signals the command's process while another task waits for it;
    /// `None` where the driver cannot signal it.
    pub fn signaller(&self) -> Option<Signaller> {
        let pid = self.process.host_pid()?;
        Some(std::sync::Arc::new(move |sig| {
            crate::reaper::signal(pid, sig).map_err(|e| Error::Conflict(format!("signal: {e}")))
        }))
    }
}

impl fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecSession").field("tty", &self.stderr.is_none()).finish_non_exhaustive()
    }
}

/// Which lines of the output to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only lines written at or after this time.
    pub since: Option<SystemTime>,
    /// Only the last N lines (of those `since` lets through).
    pub tail: Option<usize>,
    /// Keep the stream open and send new lines until the instance stops.
    pub follow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One line of output. `time` is when the node first saw it (see [`crate::logs`] for
/// the precision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub stream: LogStream,
    pub time: SystemTime,
    pub line: String,
}

/// Resource usage, cumulative counters since the instance started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu_usage_ns: u64,
    /// Memory in use, page cache that can be dropped excluded.
    pub memory_bytes: u64,
    /// `None` without a limit.
    pub memory_limit: Option<u64>,
    pub pids: u64,
    /// Bytes the instance received and sent on its network interface.
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

/// A compute driver. Instances are named by their id; the driver keeps what it needs
/// on disk under its data directory, so a new driver (after a server restart) adopts
/// what an old one started.
#[async_trait]
pub trait Driver: Send + Sync {
    /// `container` or `vm`.
    fn kind(&self) -> &'static str;

    /// Creates everything the instance needs short of running it: root filesystem,
    /// network, configuration. Idempotent; preparing again with a changed spec updates it.
    async fn prepare(&self, spec: &InstanceSpec) -> Result<()>;

    /// Runs a prepared instance; returns once its init runs. Running already is fine.
    async fn start(&self, id: &str) -> Result<()>;

    /// SIGTERM, then SIGKILL once `grace` has passed; returns once it has stopped.
    async fn stop(&self, id: &str, grace: Duration) -> Result<()>;

    /// SIGKILL; returns once it has stopped.
    async fn kill(&self, id: &str) -> Result<()>;

    /// Removes every trace: process, mounts, network, files. Idempotent, also after a
    /// crash half way through `prepare` or `delete`.
    async fn delete(&self, id: &str) -> Result<()>;

    async fn inspect(&self, id: &str) -> Result<InstanceState>;

    /// Every instance this driver has anything of, running or not, for adoption after a
    /// restart and for cleaning up orphans.
    async fn list(&self) -> Result<Vec<String>>;

    async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecSession>;

    async fn logs(&self, id: &str, query: LogQuery) -> Result<LogLines>;

    async fn stats(&self, id: &str) -> Result<Stats>;

    /// Unpacks a tar stream into the directory `path` of the instance (it must exist).
    async fn copy_in(&self, id: &str, path: &str, tar: TarStream) -> Result<()>;

    /// A tar stream of `path` (a file or a directory) in the instance.
    async fn copy_out(&self, id: &str, path: &str) -> Result<TarStream>;

    /// Plugs a running (or prepared) instance into one more network. Idempotent.
    async fn attach_network(&self, id: &str, nic: &NetAttachment) -> Result<()>;

    /// Unplugs one NIC. Missing is fine.
    async fn detach_network(&self, id: &str, nic: &NetAttachment) -> Result<()>;

    /// Attaches a block volume to a running instance (hot) so it appears at
    /// `disk.path`. Idempotent. A stopped instance gets its disks from the spec at start.
    async fn attach_volume(&self, id: &str, disk: &VolumeAttachment) -> Result<()> {
        let _ = (id, disk);
        Err(Error::Unsupported(format!("the {} driver cannot attach volumes to a running instance", self.kind())))
    }

    /// Detaches a volume from a running instance. Without `force` it refuses while
    /// files on it are open. Missing is fine.
    async fn detach_volume(&self, id: &str, disk: &VolumeAttachment, force: bool) -> Result<()> {
        let _ = (id, disk, force);
        Err(Error::Unsupported(format!("the {} driver cannot detach volumes from a running instance", self.kind())))
    }

    /// Freezes every process of a running instance, keeping its state in memory.
    async fn pause(&self, id: &str) -> Result<()> {
        let _ = id;
        Err(Error::Unsupported(format!("the {} driver cannot pause instances", self.kind())))
    }

    /// Thaws a paused instance. Running already is fine.
    async fn resume(&self, id: &str) -> Result<()> {
        let _ = id;
        Err(Error::Unsupported(format!("the {} driver cannot resume instances", self.kind())))
    }
}

/// The exit status of a process as shells report it.
pub fn exit_code_of(code: Option<i32>, signal: Option<i32>) -> i32 {
    match (code, signal) {
        (_, Some(sig)) => 128 + sig,
        (Some(code), None) => code,
        (None, None) => -1,
    }
}

/// How long a stop waits after SIGKILL before it gives up (a process stuck in the
/// kernel, in D state, cannot die sooner).
pub const KILL_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let mac = MacAddr::for_ip(Ipv4Addr::new(10, 88, 0, 2));
        assert_eq!(mac.to_string(), "02:52:0a:58:00:02");
        assert_eq!("02:52:0a:58:00:02".parse::<MacAddr>().unwrap(), mac);
        assert!("02:52:0a:58:00".parse::<MacAddr>().is_err());
        assert!("02:52:0a:58:00:02:03".parse::<MacAddr>().is_err());
        let json = serde_json::to_string(&mac).unwrap();
        assert_eq!(json, "\"02:52:0a:58:00:02\"");
    }
}
