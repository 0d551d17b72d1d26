//! Volumes, snapshots, backup policies, instance snapshots and clones.

use roost_api::instances::CreatedInstance;
use roost_api::volumes::{
    AttachVolumeRequest, AttachVolumeResponse, BackupPolicy, CloneInstanceRequest, CreateBackupPolicyRequest,
    CreateInstanceSnapshotRequest, CreateSnapshotRequest, CreateVolumeRequest, DetachVolumeRequest, InstanceSnapshot,
    ResizeVolumeRequest, RestoreVolumeRequest, Snapshot, Volume, VolumeListParams,
};

use crate::{Client, Result};

impl Client {
    pub async fn create_volume(&self, req: &CreateVolumeRequest) -> Result<Volume> {
        self.post("/v1/volumes", req).await
    }

    /// Every volume you can see (or of one project).
    pub async fn list_volumes(&self, project: Option<&str>) -> Result<Vec<Volume>> {
        let params = VolumeListParams { project: project.map(str::to_string), ..Default::default() };
        self.all("/v1/volumes", params).await
    }

    pub async fn get_volume(&self, key: &str, project: Option<&str>) -> Result<Volume> {
        self.get(&Self::scoped_path("/v1/volumes", key, "", project)).await
    }

    pub async fn delete_volume(&self, key: &str, project: Option<&str>) -> Result<()> {
        self.delete(&Self::scoped_path("/v1/volumes", key, "", project)).await
    }

    pub async fn resize_volume(&self, key: &str, size_bytes: u64, project: Option<&str>) -> Result<Volume> {
        self.post(&Self::scoped_path("/v1/volumes", key, "/resize", project), &ResizeVolumeRequest { size_bytes }).await
    }

    pub async fn attach_volume(
        &self,
        key: &str,
        req: &AttachVolumeRequest,
        project: Option<&str>,
    ) -> Result<AttachVolumeResponse> {
        self.post(&Self::scoped_path("/v1/volumes", key, "/attach", project), req).await
    }

    pub async fn detach_volume(&self, key: &str, force: bool, project: Option<&str>) -> Result<Volume> {
        let body = DetachVolumeRequest { force: Some(force) };
        self.post(&Self::scoped_path("/v1/volumes", key, "/detach", project), &body).await
    }

    pub async fn restore_volume(&self, key: &str, snapshot: &str, project: Option<&str>) -> Result<Volume> {
        let body = RestoreVolumeRequest { snapshot: snapshot.to_string() };
        self.post(&Self::scoped_path("/v1/volumes", key, "/restore", project), &body).await
    }

    pub async fn create_snapshot(&self, req: &CreateSnapshotRequest) -> Result<Snapshot> {
        self.post("/v1/snapshots", req).await
    }

    /// Every snapshot you can see (or of one volume, or one project).
    pub async fn list_snapshots(&self, volume: Option<&str>, project: Option<&str>) -> Result<Vec<Snapshot>> {
        let params = VolumeListParams {
            project: project.map(str::to_string),
            volume: volume.map(str::to_string),
            ..Default::default()
        };
        self.all("/v1/snapshots", params).await
    }

    pub async fn get_snapshot(&self, key: &str, project: Option<&str>) -> Result<Snapshot> {
        self.get(&Self::scoped_path("/v1/snapshots", key, "", project)).await
    }

    pub async fn delete_snapshot(&self, key: &str, project: Option<&str>) -> Result<()> {
        self.delete(&Self::scoped_path("/v1/snapshots", key, "", project)).await
    }

    pub async fn create_backup_policy(&self, req: &CreateBackupPolicyRequest) -> Result<BackupPolicy> {
        self.post("/v1/backup-policies", req).await
    }

    /// Every backup policy you can see (or of one project).
    pub async fn list_backup_policies(&self, project: Option<&str>) -> Result<Vec<BackupPolicy>> {
        let params = VolumeListParams { project: project.map(str::to_string), ..Default::default() };
        self.all("/v1/backup-policies", params).await
    }

    pub async fn get_backup_policy(&self, key: &str, project: Option<&str>) -> Result<BackupPolicy> {
        self.get(&Self::scoped_path("/v1/backup-policies", key, "", project)).await
    }

    pub async fn delete_backup_policy(&self, key: &str, project: Option<&str>) -> Result<()> {
        self.delete(&Self::scoped_path("/v1/backup-policies", key, "", project)).await
    }

    pub async fn run_backup_policy(&self, key: &str, project: Option<&str>) -> Result<BackupPolicy> {
        self.post(&Self::scoped_path("/v1/backup-policies", key, "/run", project), &serde_json::json!({})).await
    }

    pub async fn snapshot_instance(
        &self,
        key: &str,
        req: &CreateInstanceSnapshotRequest,
        project: Option<&str>,
    ) -> Result<InstanceSnapshot> {
        self.post(&Self::instance_path(key, "/snapshot", project), req).await
    }

    pub async fn clone_instance(
        &self,
        key: &str,
        req: &CloneInstanceRequest,
        project: Option<&str>,
    ) -> Result<CreatedInstance> {
        self.post(&Self::instance_path(key, "/clone", project), req).await
    }
}
