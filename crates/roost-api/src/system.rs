//! Health and server-wide administration.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Per-check results, e.g. `{"store": "ok", "migrations": "ok"}`.
    #[serde(default)]
    pub checks: std::collections::BTreeMap<String, String>,
}

/// The `result` of a `system.backup` operation (`POST /v1/system/backups`): a consistent
/// copy of the embedded SQLite store in the data directory's `backups/` folder.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackupResult {
    pub path: String,
    pub bytes: u64,
}

/// `GET /v1/node`: what this server's compute node can run, and how.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct NodeInfo {
    /// Whether this server runs instances at all.
    pub compute: bool,
    /// The instance types it can run: `container`, `vm`.
    pub instance_types: Vec<String>,
    /// The microVM accelerator: `kvm` or `tcg` (absent without VMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    /// Why that accelerator: the KVM probe's verdict, or a forced `--accel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator_reason: Option<String>,
    /// Whether the KVM probe passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvm_usable: Option<bool>,
    /// The host TSC frequency a TCG guest is given (kHz).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsc_khz: Option<u64>,
    /// The KVM probe's steps in order (`open`, `api_version`, `real_mode`,
    /// `protected_mode`, `long_mode`, `speed`, and `qemu` when QEMU refused KVM); a step
    /// after a failed one is not run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kvm_checks: Vec<KvmCheck>,
    /// Why microVMs are unavailable, when they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_unavailable: Option<String>,
}

/// One step of the KVM probe.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KvmCheck {
    pub name: String,
    pub passed: bool,
    /// What was seen: a time, the exit, the error.
    pub detail: String,
}

/// A background task of the control plane (`GET /v1/system/tasks`): periodic work such
/// as the instance reconciler or S3 housekeeping. It runs every `period_ms` and whenever
/// it is woken (by a change, or `POST /v1/system/tasks/{name}/run`), never twice at
/// once, on the one server that holds its lease.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackgroundTask {
    /// Stable, snake_case: `instance_reconciler`, `housekeeping`, ...
    pub name: String,
    pub description: String,
    /// Time between activations, in milliseconds.
    pub period_ms: u64,
    /// The server that runs it now (its id, `srv-…`, new at each start); absent when no
    /// server holds its lease (none runs it, or the last holder stopped).
    #[serde(default)]
    pub holder: Option<String>,
    /// Activations so far, on any server.
    pub runs: u64,
    /// The last activation that finished.
    #[serde(default)]
    pub last_run: Option<TaskRun>,
    /// When the holder runs it next (earlier when woken); absent without a holder.
    #[serde(default)]
    pub next_run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A run asked for that has not started yet.
    #[serde(default)]
    pub run_requested_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One finished activation of a background task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskRun {
    /// The server that ran it.
    pub server: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// How long it took, in milliseconds.
    pub elapsed_ms: u64,
    pub outcome: TaskOutcome,
    /// What it did, task-specific (e.g. `{"expired": 2}`); absent on error.
    #[serde(default)]
    pub details: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutcome {
    Ok,
    Error,
}

impl TaskOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskOutcome::Ok => "ok",
            TaskOutcome::Error => "error",
        }
    }
}
