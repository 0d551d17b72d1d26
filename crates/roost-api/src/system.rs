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
