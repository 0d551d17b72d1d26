//! Block storage: volumes (ext4 in a sparse raw image), their attachments to instances,
//! snapshots (full, sparse copies of a volume's image), clones, and backup policies
//! that take snapshots on a cron schedule and keep the newest few.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VolumeStatus {
    /// Not attached to any instance.
    Available,
    /// Attached to an instance (in use while it runs).
    Attached,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Volume {
    pub id: String,
    pub name: String,
    pub project_id: String,
    /// Capacity in bytes.
    pub size_bytes: u64,
    /// Bytes in use: the filesystem's use while it is mounted, else the image's
    /// allocated blocks.
    pub used_bytes: u64,
    /// The filesystem inside (`ext4`).
    pub filesystem: String,
    /// The image format (`raw`).
    pub format: String,
    pub status: VolumeStatus,
    /// The instance it is attached to (id), and its name.
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub instance: Option<String>,
    /// Where it appears inside the instance.
    #[serde(default)]
    pub mount_path: Option<String>,
    #[serde(default)]
    pub read_only: bool,
    /// The snapshot this volume was cloned from.
    #[serde(default)]
    pub cloned_from: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateVolumeRequest {
    pub name: String,
    /// Capacity in bytes (the CLI takes `10g`). Required unless `from_snapshot` is given
    /// (then at least the snapshot's size; default: the same).
    #[serde(default)]
    pub size_bytes: Option<u64>,
    /// The filesystem: `ext4` (default).
    #[serde(default)]
    pub format: Option<String>,
    /// Clone: start from this snapshot (name or id) instead of an empty filesystem.
    #[serde(default)]
    pub from_snapshot: Option<String>,
    /// Project name or id; default: `default`.
    #[serde(default)]
    pub project: Option<String>,
}

/// `POST /v1/volumes/{id}/resize`: grow the image and the filesystem (online while attached).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResizeVolumeRequest {
    pub size_bytes: u64,
}

/// `POST /v1/volumes/{id}/attach`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AttachVolumeRequest {
    /// Instance name or id (same project).
    pub instance: String,
    /// Absolute path inside the instance.
    pub path: String,
    #[serde(default)]
    pub read_only: Option<bool>,
}

/// When an attach or detach takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effective {
    /// Done in the running instance (or it is stopped and sees it when it starts).
    Now,
    /// Recorded; the instance's driver cannot plug it live, so it applies at the next start.
    NextStart,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttachVolumeResponse {
    pub volume: Volume,
    pub effective: Effective,
}

/// `POST /v1/volumes/{id}/detach`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct DetachVolumeRequest {
    /// Detach even while files on it are open (processes holding them keep a lazily
    /// unmounted filesystem until they close them).
    #[serde(default)]
    pub force: Option<bool>,
}

/// `POST /v1/volumes/{id}/restore`: the volume's content becomes the snapshot's.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RestoreVolumeRequest {
    /// Snapshot name or id (of this volume).
    pub snapshot: String,
}

/// A volume in an instance's create request: `data:/data` on the CLI.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct VolumeMountRequest {
    /// Volume name or id (same project, not attached elsewhere).
    pub volume: String,
    pub path: String,
    #[serde(default)]
    pub read_only: Option<bool>,
}

/// Parses `data:/data[:ro]`.
pub fn parse_volume_mount(s: &str) -> Result<VolumeMountRequest, String> {
    let mut parts = s.splitn(3, ':');
    let (Some(volume), Some(path)) = (parts.next(), parts.next()) else {
        return Err(format!("'{s}' is not VOLUME:PATH[:ro], e.g. data:/data"));
    };
    let read_only = match parts.next() {
        None => None,
        Some("ro") => Some(true),
        Some("rw") => Some(false),
        Some(o) => return Err(format!("'{o}' is not ro or rw")),
    };
    if volume.is_empty() || !path.starts_with('/') {
        return Err(format!("'{s}' is not VOLUME:/absolute/path"));
    }
    Ok(VolumeMountRequest { volume: volume.into(), path: path.into(), read_only })
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    pub id: String,
    pub name: String,
    pub project_id: String,
    /// The volume it was taken of (it may since have been removed).
    pub volume_id: String,
    #[serde(default)]
    pub volume: Option<String>,
    /// The volume's capacity when it was taken.
    pub size_bytes: u64,
    /// Bytes the snapshot's file takes on disk.
    pub stored_bytes: u64,
    #[serde(default)]
    pub description: Option<String>,
    /// The backup policy that took it, if any.
    #[serde(default)]
    pub policy_id: Option<String>,
    /// The instance snapshot it is part of, if any.
    #[serde(default)]
    pub instance_snapshot_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateSnapshotRequest {
    /// Volume name or id.
    pub volume: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Project name or id; default: `default`.
    #[serde(default)]
    pub project: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackupPolicy {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub volume_id: String,
    pub volume: String,
    /// Five-field cron expression, in UTC (`0 2 * * *`).
    pub cron: String,
    /// Snapshots of this policy kept; older ones are removed after each run.
    pub keep: u32,
    #[serde(default)]
    pub last_run_at: Option<DateTime<Utc>>,
    /// `success` or `failed`.
    #[serde(default)]
    pub last_result: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub next_run_at: Option<DateTime<Utc>>,
    /// Snapshots of this policy that exist now.
    pub snapshot_count: u32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateBackupPolicyRequest {
    pub name: String,
    /// Volume name or id.
    pub volume: String,
    pub cron: String,
    pub keep: u32,
    #[serde(default)]
    pub project: Option<String>,
}

/// `POST /v1/instances/{id}/clone`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CloneInstanceRequest {
    /// The new instance's name.
    pub name: String,
    /// Start the clone (default true).
    #[serde(default)]
    pub start: Option<bool>,
}

/// `POST /v1/instances/{id}/snapshot`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateInstanceSnapshotRequest {
    /// Default: `<instance>-<UTC time>`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// An instance's root filesystem changes and a snapshot of each attached volume, taken
/// together.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceSnapshot {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub instance_id: String,
    /// Bytes of the root filesystem's changes (the archive).
    pub rootfs_bytes: u64,
    pub volumes: Vec<Snapshot>,
    #[serde(default)]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VolumeListParams {
    /// Page size, 1 to 1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// `created_at` (default, newest first) or `name`; `-` in front for descending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Name filter; `*` matches any run of characters (`web*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only this project (name or id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Snapshots only: of this volume (name or id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
}

impl VolumeListParams {
    /// The paging part.
    pub fn paging(&self) -> crate::ListParams {
        crate::ListParams {
            limit: self.limit,
            cursor: self.cursor.clone(),
            sort: self.sort.clone(),
            name: self.name.clone(),
        }
    }
}

/// `PATCH /v1/volumes/{id}`: rename (the size changes with `resize`, which may need the
/// instance stopped).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateVolumeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `PATCH /v1/snapshots/{id}`: rename, or change the description (`null` clears it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateSnapshotRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, with = "crate::patch::double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// `PATCH /v1/backup-policies/{id}`: rename, change the schedule or how many snapshots
/// it keeps (fewer prune at the next run).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateBackupPolicyRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_mounts() {
        let m = parse_volume_mount("data:/data").unwrap();
        assert_eq!((m.volume.as_str(), m.path.as_str(), m.read_only), ("data", "/data", None));
        assert_eq!(parse_volume_mount("data:/srv/x:ro").unwrap().read_only, Some(true));
        assert!(parse_volume_mount("data").is_err());
        assert!(parse_volume_mount("data:rel").is_err());
        assert!(parse_volume_mount("data:/x:maybe").is_err());
    }
}
