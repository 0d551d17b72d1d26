//! Instances: containers (and, later, microVMs) with a desired state the control plane
//! drives toward.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What an instance is doing, as last observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    Pending,
    Provisioning,
    Running,
    Stopping,
    Stopped,
    Rebooting,
    Error,
    Terminating,
    Terminated,
    /// Frozen by a pause: its processes and memory are kept, nothing runs.
    Paused,
}

impl InstanceStatus {
    pub const ALL: [InstanceStatus; 10] = [
        InstanceStatus::Pending,
        InstanceStatus::Provisioning,
        InstanceStatus::Running,
        InstanceStatus::Stopping,
        InstanceStatus::Stopped,
        InstanceStatus::Rebooting,
        InstanceStatus::Error,
        InstanceStatus::Terminating,
        InstanceStatus::Terminated,
        InstanceStatus::Paused,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Pending => "pending",
            InstanceStatus::Provisioning => "provisioning",
            InstanceStatus::Running => "running",
            InstanceStatus::Stopping => "stopping",
            InstanceStatus::Stopped => "stopped",
            InstanceStatus::Rebooting => "rebooting",
            InstanceStatus::Error => "error",
            InstanceStatus::Terminating => "terminating",
            InstanceStatus::Terminated => "terminated",
            InstanceStatus::Paused => "paused",
        }
    }

    pub fn parse(s: &str) -> Option<InstanceStatus> {
        InstanceStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What the owner wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Desired {
    Running,
    Stopped,
    Terminated,
}

impl Desired {
    pub const fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
            Desired::Terminated => "terminated",
        }
    }

    pub fn parse(s: &str) -> Option<Desired> {
        [Desired::Running, Desired::Stopped, Desired::Terminated].into_iter().find(|v| v.as_str() == s)
    }
}

/// What happens when the instance's main process ends on its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Start it again whatever the exit code.
    Always,
    /// Start it again after a non-zero exit.
    OnFailure,
    /// Leave it stopped.
    #[default]
    Never,
}

impl RestartPolicy {
    pub const fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }

    pub fn parse(s: &str) -> Option<RestartPolicy> {
        [RestartPolicy::Always, RestartPolicy::OnFailure, RestartPolicy::Never].into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub project_id: String,
    /// `container` or `vm`.
    #[serde(rename = "type")]
    pub kind: String,
    pub image_id: String,
    pub image: String,
    pub status: InstanceStatus,
    /// Why it is in `error`, or how it stopped (`exited with code 1`, `OOM-killed`).
    #[serde(default)]
    pub status_reason: Option<String>,
    pub desired: Desired,
    pub cpus: f64,
    pub memory_bytes: u64,
    /// Absent: the image's default init.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub restart: RestartPolicy,
    /// Address of the first NIC (`eth0`).
    #[serde(default)]
    pub ip: Option<String>,
    /// One NIC per network, `eth0` first.
    #[serde(default)]
    pub nics: Vec<crate::networks::InstanceNic>,
    /// Names of the instance's security groups.
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    pub restart_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// The instance this one was cloned from.
    #[serde(default)]
    pub cloned_from: Option<String>,
    /// Block volumes attached (name, path).
    #[serde(default)]
    pub volumes: Vec<InstanceVolume>,
    /// Capabilities added to the default set (containers), e.g. `NET_RAW`.
    #[serde(default)]
    pub capabilities_add: Vec<String>,
}

/// A volume as an instance shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct InstanceVolume {
    pub volume_id: String,
    pub volume: String,
    pub path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateInstanceRequest {
    pub name: String,
    /// Image name or id.
    pub image: String,
    /// Project name or id; default: `default`.
    #[serde(default)]
    pub project: Option<String>,
    /// Default 1; 0.5 is half a CPU.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Default 512 MiB; at least 4 MiB.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
    /// Create it stopped instead of running.
    #[serde(default)]
    pub start: Option<bool>,
    /// One NIC per entry, `eth0` first; default: the project's `default` network.
    #[serde(default)]
    pub networks: Vec<crate::networks::NicRequest>,
    /// Group names or ids; default: the project's `default` group.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Block volumes to attach (each not attached elsewhere).
    #[serde(default)]
    pub volumes: Vec<crate::volumes::VolumeMountRequest>,
    /// `container` (default) or `vm` (a QEMU microVM booting the same image).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// SSH keys (names or ids, the caller's) installed for the image's default user
    /// (`root`) at first boot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
    /// A shell script run once at first boot; its output goes to the instance's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// Capabilities on top of a container's default set: `NET_RAW` (raw sockets, e.g.
    /// busybox's `ping`), `MKNOD`, `SYS_PTRACE` (debuggers); nothing else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities_add: Vec<String>,
}

/// `PATCH /v1/instances/{id}`: a merge patch. `labels` merges into the labels (a `null`
/// value removes that label; `"labels": null` removes them all); `restart` replaces the
/// restart policy, which the reconciler applies the next time the command exits.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateInstanceRequest {
    #[serde(default, with = "crate::patch::double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, Option<String>>>)]
    pub labels: Option<Option<BTreeMap<String, Option<String>>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
}

/// `POST /v1/instances/{id}/stop` and `/restart`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct StopRequest {
    /// Seconds between SIGTERM and SIGKILL (default 10).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstanceListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// `created_at` (default, newest first), `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Name glob, e.g. `web*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only this project (name or id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Only instances in this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `key=value`: only instances with this label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitStatusParams {
    /// The status to wait for, e.g. `running`.
    pub status: String,
    /// How long to wait, e.g. `30s` (at most `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// Resource use of a running instance.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct InstanceStats {
    pub instance_id: String,
    pub time: Option<DateTime<Utc>>,
    /// Percent of one CPU over the last sampling interval (200 = two CPUs busy).
    pub cpu_percent: f64,
    pub cpu_usage_ns: u64,
    pub memory_bytes: u64,
    #[serde(default)]
    pub memory_limit: Option<u64>,
    pub pids: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

/// A point of an instance's metric series.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricPoint {
    pub time: DateTime<Utc>,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub pids: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricSeries {
    pub instance_id: String,
    /// `5m`, `1h`, `1d`, `30d`.
    pub period: String,
    /// Seconds between points: 10 up to a day, 300 beyond.
    pub resolution_secs: u64,
    pub points: Vec<MetricPoint>,
}

/// A create's result: the instance as recorded, and the operation that completes when
/// it runs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedInstance {
    pub instance: Instance,
    pub operation: crate::operations::Operation,
}

/// One line of output, as a JSON line of the log stream.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogEntry {
    pub time: DateTime<Utc>,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub line: String,
}

/// The first message of an exec WebSocket.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ExecStart {
    pub cmd: Vec<String>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub rows: Option<u16>,
    #[serde(default)]
    pub cols: Option<u16>,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
    /// With `tty`: attach the instance's console instead when it has one of its own (a
    /// VM's serial console, a root shell; `cmd` is then not run). Containers run `cmd`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub console: bool,
}

/// Control messages of the exec WebSocket (text frames).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecControl {
    /// Client → server: the terminal's new size.
    Resize { rows: u16, cols: u16 },
    /// Client → server: no more input.
    Eof,
    /// Server → client: the command ended.
    Exit { code: i32 },
    /// Server → client: it could not run.
    Error { code: String, message: String },
}
