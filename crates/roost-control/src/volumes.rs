//! Block storage: volumes, their attachment to instances (hot on a running container),
//! snapshots, restore, clones, backup policies on a cron schedule, and instance
//! snapshots and clones. The images themselves are the node's, reached by volume id through the node API.
//!
//! Ordering for crash safety: an image is made before its row is inserted and removed
//! after its row is deleted, so a crash leaves at most a file without a row, which the
//! cleanup at start removes (with `.tmp-*` files of interrupted copies and mounts no
//! running instance needs).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use roost_api::ids::IdKind;
use roost_api::instances::{Desired, InstanceStatus, InstanceVolume};
use roost_api::operations::Operation;
use roost_api::projects::DEFAULT_PROJECT;
use roost_api::volumes::{
    AttachVolumeRequest, AttachVolumeResponse, BackupPolicy, CloneInstanceRequest, CreateBackupPolicyRequest,
    CreateInstanceSnapshotRequest, CreateSnapshotRequest, CreateVolumeRequest, Effective, InstanceSnapshot, Snapshot,
    UpdateBackupPolicyRequest, UpdateSnapshotRequest, UpdateVolumeRequest, Volume, VolumeListParams, VolumeStatus,
};
use roost_api::{FieldError, Page};
use roost_node::DiskFormat;
use roost_node::api::DiskAttachment;
use roost_store::instances::InstanceRow;
use roost_store::list::CREATED_OR_NAME;
use roost_store::volumes::{self as repo, InstanceSnapshotRow, PolicyRow, SnapshotRow, VolumeRow};
use roost_store::{StoreError, now_ms, to_time};

use crate::error::{Validator, check_name};
use crate::events::Audience;
use crate::images::node_error;
use crate::jobs::clone_instance::CloneInstance;
use crate::jobs::instance_snapshot::{InstanceSnapshotJob, InstanceSnapshotParams, VolumeSnapshotPlan};
use crate::jobs::volume_resize::{VolumeResize, VolumeResizeParams};
use crate::jobs::volume_restore::{VolumeRestore, VolumeRestoreParams};
use crate::kernel::{Authorized, Change, SystemProof};
use crate::list::list_query;
use crate::tasks::{BackgroundTask, TaskSpec};
use crate::{Control, Error, Principal, RequestContext, Result};
use roost_store::sqlx::AnyConnection;

const MIN_SIZE: u64 = 16 << 20;
const MAX_SIZE: u64 = 16 << 40;
/// Backup policies run on their cron; every 10 s the task looks for the due ones.
pub(crate) const BACKUP_POLICIES: TaskSpec = TaskSpec {
    name: "backup_policies",
    description: "Takes the snapshots of the backup policies that are due (on their cron) and removes those past \
                  each policy's keep count",
    period: Duration::from_secs(10),
};

pub(crate) struct BackupPolicies(pub(crate) Control);

impl BackgroundTask for BackupPolicies {
    async fn activate(&mut self) -> Result<serde_json::Value> {
        self.0.run_due_policies().await
    }
}

/// One change at a time per volume (snapshot, restore, resize, attach, ...).
static VOLUME_LOCKS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = LazyLock::new(Default::default);

async fn lock_volume(id: &str) -> tokio::sync::OwnedMutexGuard<()> {
    let lock = VOLUME_LOCKS.lock().expect("volume locks").entry(id.to_string()).or_default().clone();
    lock.lock_owned().await
}

fn field(name: &str, message: impl Into<String>) -> Error {
    Error::validation(vec![FieldError { field: name.into(), message: message.into() }])
}

fn check_path(v: &mut Validator, path: &str) {
    let ok = path.starts_with('/')
        && path != "/"
        && path.len() <= 255
        && !path.split('/').any(|c| c == ".." || c == ".")
        && !path.contains(['\0', ',', ':']);
    v.check(ok, "path", "must be an absolute path other than / (without '..', ',' or ':')");
    for reserved in ["/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"] {
        if path == reserved || path.starts_with(&format!("{reserved}/")) {
            v.add("path", format!("{reserved} is managed by Roost"));
        }
    }
}

/// A quota amount: `volume_gib` is counted in bytes and limited in GiB (its scale).
fn quota_bytes(bytes: u64) -> i64 {
    bytes as i64
}

fn unique_name(e: StoreError, what: &str, name: &str) -> Error {
    match e {
        StoreError::Conflict(_) => Error::conflict(format!("a {what} named '{name}' already exists in the project")),
        e => e.into(),
    }
}

fn one_by_key<T>(rows: Vec<T>, key: &str, what: &str, id_name: impl Fn(&T) -> (&String, &String)) -> Result<T> {
    let hits: Vec<T> = rows
        .into_iter()
        .filter(|r| {
            let (id, name) = id_name(r);
            id == key || name == key
        })
        .collect();
    if hits.len() > 1 && id_name(&hits[0]).0 != key {
        return Err(Error::conflict(format!(
            "more than one of your projects has a {what} named '{key}': pass the project or the id"
        )));
    }
    hits.into_iter().next().ok_or_else(|| Error::not_found(what, key))
}

impl Control {
    async fn narrowed(&self, p: &Principal, project: Option<&str>) -> Result<Option<String>> {
        Ok(match project {
            Some(k) => Some(self.project_access(p, k).await?.project.id),
            None => None,
        })
    }

    pub(crate) async fn volume_row(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<VolumeRow> {
        let project_id = self.narrowed(p, project).await?;
        let rows = self.store().volumes_in(&self.project_scope(p), project_id.as_deref()).await?;
        one_by_key(rows, key, "volume", |r| (&r.id, &r.name))
    }

    async fn snapshot_row(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<SnapshotRow> {
        let project_id = self.narrowed(p, project).await?;
        let rows = self.store().snapshots_in(&self.project_scope(p), project_id.as_deref(), None).await?;
        one_by_key(rows, key, "snapshot", |r| (&r.id, &r.name))
    }

    async fn policy_row(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<PolicyRow> {
        let project_id = self.narrowed(p, project).await?;
        let rows = self.store().policies_in(&self.project_scope(p), project_id.as_deref()).await?;
        one_by_key(rows, key, "backup policy", |r| (&r.id, &r.name))
    }

    async fn volume_api(&self, row: &VolumeRow) -> Volume {
        let instance = match &row.instance_id {
            Some(id) => self.store().instance(id).await.ok().flatten().map(|i| i.name),
            None => None,
        };
        self.volume_api_named(row, instance)
    }

    /// A volume with its instance's name already looked up (a listing looks them all up
    /// in one query).
    fn volume_api_named(&self, row: &VolumeRow, instance: Option<String>) -> Volume {
        Volume {
            id: row.id.clone(),
            name: row.name.clone(),
            project_id: row.project_id.clone(),
            size_bytes: row.size_bytes as u64,
            used_bytes: self.node().map_or(0, |n| n.volume_used_bytes(&row.id)),
            filesystem: row.filesystem.clone(),
            format: row.format.clone(),
            status: if row.instance_id.is_some() { VolumeStatus::Attached } else { VolumeStatus::Available },
            instance_id: row.instance_id.clone(),
            instance,
            mount_path: row.mount_path.clone(),
            read_only: row.read_only != 0,
            cloned_from: row.cloned_from.clone(),
            created_at: to_time(row.created_at),
        }
    }

    async fn snapshot_api(&self, row: &SnapshotRow) -> Snapshot {
        let volume = self.store().volume_by_id(&row.volume_id).await.ok().flatten().map(|v| v.name);
        self.snapshot_api_named(row, volume)
    }

    /// A snapshot with its volume's name already looked up (a listing looks each volume
    /// up once, not once per snapshot: backup policies make many per volume).
    fn snapshot_api_named(&self, row: &SnapshotRow, volume: Option<String>) -> Snapshot {
        Snapshot {
            id: row.id.clone(),
            name: row.name.clone(),
            project_id: row.project_id.clone(),
            volume_id: row.volume_id.clone(),
            volume,
            size_bytes: row.size_bytes as u64,
            stored_bytes: self.node().map_or(0, |n| n.snapshot_stored_bytes(&row.id)),
            description: row.description.clone(),
            policy_id: row.policy_id.clone(),
            instance_snapshot_id: row.instance_snapshot_id.clone(),
            created_at: to_time(row.created_at),
        }
    }

    async fn policy_api(&self, row: &PolicyRow) -> Result<BackupPolicy> {
        Ok(self.policy_apis(std::slice::from_ref(row)).await?.remove(0))
    }

    /// The API view of backup policies, with volume names and snapshot counts read in
    /// two queries for all.
    async fn policy_apis(&self, rows: &[PolicyRow]) -> Result<Vec<BackupPolicy>> {
        let volumes: Vec<String> = rows.iter().map(|r| r.volume_id.clone()).collect();
        let names = self.store().volume_names(&volumes).await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let counts = self.store().policy_snapshot_counts(&ids).await?;
        Ok(rows
            .iter()
            .map(|row| {
                let volume = names.get(&row.volume_id).cloned().unwrap_or_default();
                policy_from(row, volume, counts.get(&row.id).copied().unwrap_or(0) as u32)
            })
            .collect())
    }

    /// Raises `kind` about a volume with the volume as `change` leaves it.
    async fn volume_event(&self, change: &mut Change<'_>, kind: &str, id: &str) -> Result<Option<Volume>> {
        let Some(row) = repo::volume(change.conn(), id).await? else { return Ok(None) };
        let instance = match &row.instance_id {
            Some(i) => roost_store::instances::get_in(change.conn(), i).await?.map(|i| i.name),
            None => None,
        };
        let api = self.volume_api_named(&row, instance);
        change.event(kind, "volume", id, &api, Audience::Project(row.project_id.clone()));
        Ok(Some(api))
    }

    /// Raises `kind` about a snapshot with the snapshot as `change` leaves it.
    async fn snapshot_event(&self, change: &mut Change<'_>, kind: &str, id: &str) -> Result<Option<Snapshot>> {
        let Some(row) = repo::snapshot(change.conn(), id).await? else { return Ok(None) };
        let volume = repo::volume(change.conn(), &row.volume_id).await?.map(|v| v.name);
        let api = self.snapshot_api_named(&row, volume);
        change.event(kind, "snapshot", id, &api, Audience::Project(row.project_id.clone()));
        Ok(Some(api))
    }

    /// Raises `kind` about a backup policy with the policy as `change` leaves it.
    async fn policy_event(&self, change: &mut Change<'_>, kind: &str, id: &str) -> Result<Option<BackupPolicy>> {
        let Some(row) = repo::policy(change.conn(), id).await? else { return Ok(None) };
        let api = policy_view(change.conn(), &row).await?;
        change.event(kind, "backup_policy", id, &api, Audience::Project(row.project_id.clone()));
        Ok(Some(api))
    }
}

/// A backup policy as the API shows it, read on `conn`.
async fn policy_view(conn: &mut AnyConnection, row: &PolicyRow) -> Result<BackupPolicy> {
    let volume = repo::volume(conn, &row.volume_id).await?.map(|v| v.name).unwrap_or_default();
    let count = repo::snapshots_of_policy(conn, &row.id).await?.len();
    Ok(policy_from(row, volume, count as u32))
}

/// The API view of a backup policy, given its volume's name and its snapshot count.
fn policy_from(row: &PolicyRow, volume: String, snapshot_count: u32) -> BackupPolicy {
    BackupPolicy {
        id: row.id.clone(),
        name: row.name.clone(),
        project_id: row.project_id.clone(),
        volume_id: row.volume_id.clone(),
        volume,
        cron: row.cron.clone(),
        keep: row.keep as u32,
        last_run_at: row.last_run_at.map(to_time),
        last_result: row.last_result.clone(),
        last_error: row.last_error.clone(),
        next_run_at: row.next_run_at.map(to_time),
        snapshot_count,
        created_at: to_time(row.created_at),
    }
}

impl Control {
    /// The disks of an instance's spec, from its attachments.
    pub(crate) async fn disks_of(&self, instance_id: &str) -> Result<Vec<DiskAttachment>> {
        Ok(self.store().attached_volumes(instance_id).await?.iter().map(disk_of).collect())
    }

    /// The volumes of these instances, in one query.
    pub(crate) async fn instances_volumes(&self, instance_ids: &[String]) -> HashMap<String, Vec<InstanceVolume>> {
        let mut out: HashMap<String, Vec<InstanceVolume>> = HashMap::new();
        for v in self.store().volumes_of_instances(instance_ids).await.unwrap_or_default() {
            let Some(instance) = v.instance_id.clone() else { continue };
            out.entry(instance).or_default().push(instance_volume(v));
        }
        out
    }

    async fn instance_runs(&self, instance_id: &str) -> Result<bool> {
        let driver = self.driver_of(instance_id).await?;
        Ok(driver.inspect(instance_id).await.map_err(node_error)?.status == roost_node::InstanceStatus::Running)
    }

    // ---- volumes ----

    pub async fn create_volume(&self, ctx: &RequestContext, p: &Principal, req: CreateVolumeRequest) -> Result<Volume> {
        let access = self.project_access(p, req.project.as_deref().unwrap_or(DEFAULT_PROJECT)).await?;
        let proof = access.require_write()?;
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        let filesystem = req.format.clone().unwrap_or_else(|| "ext4".into());
        v.check(
            roost_node::storage::FILESYSTEMS.contains(&filesystem.as_str()),
            "format",
            format!("'{filesystem}' is not a supported filesystem (ext4)"),
        );
        if req.from_snapshot.is_none() {
            v.check(req.size_bytes.is_some(), "size_bytes", "is required (or give from_snapshot)");
        }
        if let Some(size) = req.size_bytes {
            v.check((MIN_SIZE..=MAX_SIZE).contains(&size), "size_bytes", "must be between 16 MiB and 16 TiB");
        }
        v.finish()?;
        self.node()?;
        let source = match &req.from_snapshot {
            Some(s) => Some(
                self.snapshot_row(p, s, Some(&access.project.id))
                    .await
                    .map_err(|_| field("from_snapshot", format!("no snapshot '{s}' in the project")))?,
            ),
            None => None,
        };
        let size = match (&source, req.size_bytes) {
            (Some(s), Some(size)) if (size as i64) < s.size_bytes => {
                return Err(field("size_bytes", "must be at least the snapshot's size"));
            }
            (Some(s), None) => s.size_bytes as u64,
            (_, Some(size)) => size,
            (None, None) => unreachable!("validated"),
        };
        // Quota first (without holding the write lock over the copy), again at insert.
        let mut tx = self.change(ctx, &proof).await?;
        self.check_quota(tx.conn(), &access.project, &[("volume_gib", quota_bytes(size))]).await?;
        drop(tx);
        let id = IdKind::Volume.generate();
        let store = self.node()?;
        match &source {
            Some(s) => store.volume_from_snapshot(&s.id, &id, size).await.map_err(node_error)?,
            None => store.create_volume(&id, size, &filesystem).await.map_err(node_error)?,
        }
        let now = now_ms();
        let row = VolumeRow {
            id: id.clone(),
            project_id: access.project.id.clone(),
            name: req.name.clone(),
            size_bytes: size as i64,
            filesystem,
            format: "raw".into(),
            instance_id: None,
            mount_path: None,
            read_only: 0,
            cloned_from: source.as_ref().map(|s| s.id.clone()),
            created_by: Some(p.user_id.clone()),
            created_at: now,
            updated_at: now,
        };
        let body = serde_json::to_value(&req).ok();
        let inserted = async {
            let mut tx = self.change(ctx, &proof).await?;
            self.check_quota(tx.conn(), &access.project, &[("volume_gib", quota_bytes(size))]).await?;
            repo::insert_volume(tx.conn(), &row).await.map_err(|e| unique_name(e, "volume", &req.name))?;
            tx.audit("volume.create", Some(("volume", &id)), body.as_ref()).await?;
            let api = self.volume_event(&mut tx, "volume.created", &id).await?;
            tx.commit().await?;
            Ok::<_, Error>(api)
        }
        .await;
        match inserted {
            Ok(Some(api)) => Ok(api),
            Ok(None) => Err(Error::internal("the new volume's row vanished")),
            Err(e) => {
                let _ = store.remove_volume(&id).await;
                Err(e)
            }
        }
    }

    pub async fn list_volumes(&self, p: &Principal, params: &VolumeListParams) -> Result<Page<Volume>> {
        let query = list_query(&params.paging(), CREATED_OR_NAME)?;
        let project = self.narrowed(p, params.project.as_deref()).await?;
        let (rows, next_cursor) = self.store().volumes_page(&self.project_scope(p), project.as_deref(), &query).await?;
        let attached: Vec<String> = rows.iter().filter_map(|r| r.instance_id.clone()).collect();
        let names = self.store().instance_names(&attached).await?;
        let items = rows
            .iter()
            .map(|row| self.volume_api_named(row, row.instance_id.as_ref().and_then(|id| names.get(id).cloned())))
            .collect();
        Ok(Page { items, next_cursor })
    }

    pub async fn get_volume(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<Volume> {
        let row = self.volume_row(p, key, project).await?;
        Ok(self.volume_api(&row).await)
    }

    /// Renames a volume.
    pub async fn update_volume(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        req: UpdateVolumeRequest,
        if_match: Option<&str>,
    ) -> Result<Volume> {
        let row = self.volume_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let mut v = Validator::default();
        if let Some(name) = &req.name {
            check_name(&mut v, "name", name);
        }
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("volumes", &row.id, if_match, self.get_volume(p, &row.id, None)).await?;
        if let Some(name) = &req.name {
            repo::rename_volume(tx.conn(), &row.id, name, now_ms())
                .await
                .map_err(|e| unique_name(e, "volume", name))?;
        }
        tx.audit("volume.update", Some(("volume", &row.id)), body.as_ref()).await?;
        self.volume_event(&mut tx, "volume.updated", &row.id).await?;
        tx.commit().await?;
        self.get_volume(p, &row.id, None).await
    }

    pub async fn delete_volume(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        if_match: Option<&str>,
    ) -> Result<()> {
        let row = self.volume_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let _lock = lock_volume(&row.id).await;
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("volumes", &row.id, if_match, self.get_volume(p, &row.id, None)).await?;
        let Some(fresh) = repo::volume(tx.conn(), &row.id).await? else { return Err(Error::not_found("volume", key)) };
        if let Some(instance) = &fresh.instance_id {
            let name = self.store().instance(instance).await?.map(|i| i.name).unwrap_or_else(|| instance.clone());
            return Err(Error::conflict(format!("volume '{}' is attached to '{name}'; detach it first", row.name)));
        }
        if repo::policies_of_volume(tx.conn(), &row.id).await? > 0 {
            return Err(Error::conflict(format!(
                "volume '{}' has backup policies; remove them first (its snapshots are kept)",
                row.name
            )));
        }
        repo::delete_volume(tx.conn(), &row.id).await?;
        tx.audit("volume.delete", Some(("volume", &row.id)), None).await?;
        tx.bare_event("volume.deleted", "volume", &row.id, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        self.node()?.remove_volume(&row.id).await.map_err(node_error)?;
        Ok(())
    }

    /// Grows a volume. A job ([`crate::jobs::volume_resize`]) run in the request: a copy
    /// of the volume kept (when it is not in use), the growth, the new size recorded; a
    /// failure at any step puts the volume back as it was.
    pub async fn resize_volume(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        size: u64,
    ) -> Result<Volume> {
        let row = self.volume_row(p, key, project).await?;
        let access = self.project_access(p, &row.project_id).await?;
        let proof = access.require_write()?;
        if size > MAX_SIZE {
            return Err(field("size_bytes", "must be at most 16 TiB"));
        }
        if size < row.size_bytes as u64 {
            return Err(field("size_bytes", "volumes only grow (the new size is smaller than the current one)"));
        }
        self.node()?;
        let _lock = lock_volume(&row.id).await;
        let instance_lock = match &row.instance_id {
            Some(i) => Some(self.lock_for(i).lock_owned().await),
            None => None,
        };
        // A volume in use grows online, and nothing can put a smaller copy back under a
        // running instance; one not in use is copied first, so a failure can restore it.
        let in_use = match &row.instance_id {
            Some(i) => self.instance_runs(i).await?,
            None => false,
        };
        let params = VolumeResizeParams {
            volume_id: row.id.clone(),
            from_size: row.size_bytes,
            size: size as i64,
            backup_id: (!in_use && size > row.size_bytes as u64).then(|| IdKind::Snapshot.generate()),
        };
        let mut tx = self.change(ctx, &proof).await?;
        self.check_quota(tx.conn(), &access.project, &[("volume_gib", quota_bytes(size) - row.size_bytes)]).await?;
        let job = self.new_job::<VolumeResize>(&mut tx, p, Some(("volume", &row.id)), params).await?;
        let body = serde_json::json!({ "size_bytes": size });
        tx.audit("volume.resize", Some(("volume", &row.id)), Some(&body)).await?;
        tx.commit().await?;
        job.run_inline().await?;
        drop(instance_lock);
        let fresh = self.store().volume_by_id(&row.id).await?.ok_or_else(|| Error::not_found("volume", key))?;
        Ok(self.volume_api(&fresh).await)
    }

    /// Keeps a copy of a volume as the hidden snapshot `backup_id` (no row: the copy lives
    /// only as long as the job that restores from it on failure).
    pub(crate) async fn keep_volume_copy(&self, volume_id: &str, backup_id: Option<&str>) -> Result<()> {
        let Some(backup) = backup_id else { return Ok(()) };
        self.node()?.snapshot_volume(volume_id, backup).await.map_err(node_error)?;
        Ok(())
    }

    /// Removes the copy [`Control::keep_volume_copy`] made (nothing when there is none).
    pub(crate) async fn drop_volume_copy(&self, backup_id: Option<&str>) -> Result<()> {
        let Some(backup) = backup_id else { return Ok(()) };
        self.node()?.remove_volume_snapshot(backup).map_err(node_error)
    }

    /// Puts the copy [`Control::keep_volume_copy`] made back as the volume's content
    /// and size (the undo of a growth or a restore). Without a copy (a volume grown
    /// online) the image stays as it is.
    pub(crate) async fn put_volume_copy_back(&self, volume_id: &str, backup_id: Option<&str>) -> Result<()> {
        let Some(backup) = backup_id else {
            tracing::warn!(volume = volume_id, "a volume grown online stays grown: filesystems do not shrink online");
            return Ok(());
        };
        // This undo runs only once the copy's step is done (the engine undoes a step
        // only when the ones before it completed).
        self.node()?.restore_volume(volume_id, backup).await.map_err(node_error)
    }

    /// Grows the volume's image and filesystem to `size` (again is harmless).
    pub(crate) async fn grow_volume(&self, volume_id: &str, from: i64, size: i64) -> Result<()> {
        if size > from {
            self.node()?.resize_volume(volume_id, size as u64).await.map_err(node_error)?;
        }
        Ok(())
    }

    /// Records a volume's size (the last step of a resize or a restore, and its undo).
    pub(crate) async fn record_volume_size(&self, volume_id: &str, size: i64) -> Result<()> {
        let mut tx = self.system_change().await?;
        let Some(current) = repo::volume(tx.conn(), volume_id).await? else {
            return Err(Error::conflict(format!("volume '{volume_id}' was deleted meanwhile")));
        };
        if current.size_bytes != size {
            repo::set_size(tx.conn(), volume_id, size, now_ms()).await?;
            self.volume_event(&mut tx, "volume.updated", volume_id).await?;
        }
        tx.commit().await
    }

    pub async fn attach_volume(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        req: AttachVolumeRequest,
    ) -> Result<AttachVolumeResponse> {
        let row = self.volume_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let mut v = Validator::default();
        check_path(&mut v, &req.path);
        v.finish()?;
        // The instance must be in the volume's project, however it is named (an id of
        // another project's instance, even one the caller sees, is not found here), and
        // the caller must be able to change that project.
        let instance = self
            .store()
            .instance_in_project(&req.instance, &row.project_id)
            .await?
            .ok_or_else(|| field("instance", format!("no instance '{}' in the volume's project", req.instance)))?;
        self.project_access(p, &instance.project_id).await?.require_write()?;
        if instance.desired() == Desired::Terminated {
            return Err(Error::conflict(format!("instance '{}' is being deleted", instance.name)));
        }
        let read_only = req.read_only.unwrap_or(false);
        let _lock = lock_volume(&row.id).await;
        let _instance_lock = self.lock_for(&instance.id).lock_owned().await;
        let mut tx = self.change(ctx, &proof).await?;
        let others = repo::volumes_of_instance(tx.conn(), &instance.id).await?;
        if let Some(other) = others.iter().find(|o| o.mount_path.as_deref() == Some(req.path.as_str())) {
            return Err(Error::conflict(format!(
                "volume '{}' is already at {} in '{}'",
                other.name, req.path, instance.name
            )));
        }
        if !repo::set_attachment(tx.conn(), &row.id, Some((&instance.id, &req.path, read_only)), now_ms()).await? {
            let current = repo::volume(tx.conn(), &row.id).await?.and_then(|v| v.instance_id).unwrap_or_default();
            let name = self.store().instance(&current).await?.map(|i| i.name).unwrap_or(current);
            return Err(Error::conflict(format!("volume '{}' is attached to '{name}'; detach it first", row.name)));
        }
        let body = serde_json::to_value(&req).ok();
        tx.audit("volume.attach", Some(("volume", &row.id)), body.as_ref()).await?;
        let api = self.volume_event(&mut tx, "volume.updated", &row.id).await?;
        tx.instance_event("instance.updated", &instance.id).await?;
        tx.commit().await?;
        let fresh = self.store().volume_by_id(&row.id).await?.unwrap_or(row.clone());
        let effective = if self.instance_runs(&instance.id).await? {
            let driver = self.driver_of(&instance.id).await?;
            match driver.attach_volume(&instance.id, &disk_of(&fresh)).await {
                Ok(()) => Effective::Now,
                Err(roost_node::Error::Unsupported(_)) => Effective::NextStart,
                Err(e) => {
                    // Undone: it was never attached.
                    let mut tx = self.change(ctx, &proof).await?;
                    repo::set_attachment(tx.conn(), &row.id, None, now_ms()).await?;
                    self.volume_event(&mut tx, "volume.updated", &row.id).await?;
                    tx.instance_event("instance.updated", &instance.id).await?;
                    tx.commit().await?;
                    return Err(node_error(e));
                }
            }
        } else {
            Effective::NextStart
        };
        let api = api.ok_or_else(|| Error::not_found("volume", key))?;
        Ok(AttachVolumeResponse { volume: api, effective })
    }

    pub async fn detach_volume(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        force: bool,
    ) -> Result<Volume> {
        let row = self.volume_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let Some(instance_id) = row.instance_id.clone() else {
            return Err(Error::conflict(format!("volume '{}' is not attached", row.name)));
        };
        let _lock = lock_volume(&row.id).await;
        let _instance_lock = self.lock_for(&instance_id).lock_owned().await;
        let driver = self.driver_of(&instance_id).await?;
        let disk = disk_of(&row);
        let runs = self.instance_runs(&instance_id).await?;
        match driver.detach_volume(&instance_id, &disk, force).await {
            Ok(()) => {}
            Err(roost_node::Error::Unsupported(m)) if runs => {
                return Err(Error::conflict(format!("{m}; stop the instance to detach the volume")));
            }
            Err(roost_node::Error::NotFound(_) | roost_node::Error::Unsupported(_)) => {}
            Err(e) => return Err(node_error(e)),
        }
        let mut tx = self.change(ctx, &proof).await?;
        repo::set_attachment(tx.conn(), &row.id, None, now_ms()).await?;
        let body = serde_json::json!({ "instance": instance_id, "force": force });
        tx.audit("volume.detach", Some(("volume", &row.id)), Some(&body)).await?;
        let api = self.volume_event(&mut tx, "volume.updated", &row.id).await?;
        tx.instance_event("instance.updated", &instance_id).await?;
        tx.commit().await?;
        api.ok_or_else(|| Error::not_found("volume", key))
    }

    /// Replaces a volume's content with a snapshot's. A job
    /// ([`crate::jobs::volume_restore`]) run in the request: a copy of the volume kept,
    /// the restore, the snapshot's size recorded; a failure puts the volume back.
    pub async fn restore_volume(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        snapshot: &str,
    ) -> Result<Volume> {
        let row = self.volume_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let snap = self
            .snapshot_row(p, snapshot, Some(&row.project_id))
            .await
            .map_err(|_| field("snapshot", format!("no snapshot '{snapshot}' in the volume's project")))?;
        if snap.volume_id != row.id {
            return Err(field(
                "snapshot",
                format!("snapshot '{}' is of another volume; clone it with create --from-snapshot", snap.name),
            ));
        }
        self.node()?;
        let _lock = lock_volume(&row.id).await;
        let _instance_lock = match &row.instance_id {
            Some(i) => Some(self.lock_for(i).lock_owned().await),
            None => None,
        };
        if let Some(i) = &row.instance_id
            && self.instance_runs(i).await?
        {
            let name = self.store().instance(i).await?.map(|r| r.name).unwrap_or_else(|| i.clone());
            return Err(Error::conflict(format!(
                "volume '{}' is in use by running instance '{name}': stop the instance first \
                 (roost instance stop {name}), restore, then start it again (roost instance start {name}); \
                 or detach the volume",
                row.name
            )));
        }
        let params = VolumeRestoreParams {
            volume_id: row.id.clone(),
            snapshot_id: snap.id.clone(),
            from_size: row.size_bytes,
            size: snap.size_bytes,
            backup_id: IdKind::Snapshot.generate(),
        };
        let mut tx = self.change(ctx, &proof).await?;
        let job = self.new_job::<VolumeRestore>(&mut tx, p, Some(("volume", &row.id)), params).await?;
        let body = serde_json::json!({ "snapshot": snap.id });
        tx.audit("volume.restore", Some(("volume", &row.id)), Some(&body)).await?;
        tx.commit().await?;
        job.run_inline().await?;
        let fresh = self.store().volume_by_id(&row.id).await?.ok_or_else(|| Error::not_found("volume", key))?;
        Ok(self.volume_api(&fresh).await)
    }

    /// Copies a snapshot's content over its volume's.
    pub(crate) async fn restore_volume_content(&self, volume_id: &str, snapshot_id: &str) -> Result<()> {
        self.node()?.restore_volume(volume_id, snapshot_id).await.map_err(node_error)
    }

    // ---- snapshots ----

    /// Takes a snapshot of a volume (no permission check: callers have done it and hold
    /// `proof`): the copy first, then its row, the audit entry `audit` names (if any) and
    /// its event in one change.
    #[allow(clippy::too_many_arguments)]
    async fn take_snapshot(
        &self,
        ctx: &RequestContext,
        proof: &(impl Authorized + ?Sized),
        audit: Option<(&str, Option<serde_json::Value>)>,
        volume: &VolumeRow,
        name: &str,
        description: Option<String>,
        policy_id: Option<String>,
        instance_snapshot_id: Option<String>,
        created_by: Option<String>,
        id: Option<String>,
    ) -> Result<(SnapshotRow, Snapshot)> {
        // A container's volume is frozen on the host for the copy; a running VM writes its
        // disk image directly, and nothing here can freeze the guest's filesystem.
        if let Some(i) = &volume.instance_id
            && let Some(instance) = self.store().instance(i).await?
            && instance.kind != "container"
            && self.instance_runs(i).await?
        {
            return Err(Error::conflict(format!(
                "volume '{}' is in use by running VM '{}'; stop it (or detach the volume) to snapshot it consistently",
                volume.name, instance.name
            )));
        }
        let id = id.unwrap_or_else(|| IdKind::Snapshot.generate());
        let _lock = lock_volume(&volume.id).await;
        let store = self.node()?;
        store.snapshot_volume(&volume.id, &id).await.map_err(node_error)?;
        let row = SnapshotRow {
            id: id.clone(),
            project_id: volume.project_id.clone(),
            name: name.to_string(),
            volume_id: volume.id.clone(),
            size_bytes: volume.size_bytes,
            description,
            policy_id,
            instance_snapshot_id,
            created_by,
            created_at: now_ms(),
        };
        let inserted = async {
            let mut tx = self.change(ctx, proof).await?;
            repo::insert_snapshot(tx.conn(), &row).await.map_err(|e| unique_name(e, "snapshot", name))?;
            if let Some((action, body)) = &audit {
                tx.audit(action, Some(("snapshot", &id)), body.as_ref()).await?;
            }
            let api = self.snapshot_event(&mut tx, "snapshot.created", &id).await?;
            tx.commit().await?;
            api.ok_or_else(|| Error::internal("the new snapshot's row vanished"))
        }
        .await;
        match inserted {
            Ok(api) => Ok((row, api)),
            Err(e) => {
                let _ = store.remove_volume_snapshot(&id);
                Err(e)
            }
        }
    }

    pub async fn create_snapshot(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        req: CreateSnapshotRequest,
    ) -> Result<Snapshot> {
        let project = req.project.as_deref();
        if let Some(k) = project {
            self.project_access(p, k).await?;
        }
        let volume = self.volume_row(p, &req.volume, project).await.map_err(|e| match e.code {
            roost_api::ErrorCode::NotFound => field("volume", format!("no volume '{}'", req.volume)),
            _ => e,
        })?;
        let proof = self.project_access(p, &volume.project_id).await?.require_write()?;
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        if let Some(d) = &req.description {
            v.check(d.len() <= 1024, "description", "must be at most 1024 characters");
        }
        v.finish()?;
        self.node()?;
        let audit = ("snapshot.create", serde_json::to_value(&req).ok());
        let creator = Some(p.user_id.clone());
        let (_, api) = self
            .take_snapshot(
                ctx,
                &proof,
                Some(audit),
                &volume,
                &req.name,
                req.description.clone(),
                None,
                None,
                creator,
                None,
            )
            .await?;
        Ok(api)
    }

    pub async fn list_snapshots(&self, p: &Principal, params: &VolumeListParams) -> Result<Page<Snapshot>> {
        let query = list_query(&params.paging(), CREATED_OR_NAME)?;
        let project = self.narrowed(p, params.project.as_deref()).await?;
        let volume = match &params.volume {
            Some(v) => Some(self.volume_row(p, v, project.as_deref()).await?.id),
            None => None,
        };
        let (rows, next_cursor) =
            self.store().snapshots_page(&self.project_scope(p), project.as_deref(), volume.as_deref(), &query).await?;
        let volumes: Vec<String> = rows.iter().map(|r| r.volume_id.clone()).collect();
        let names = self.store().volume_names(&volumes).await?;
        let items = rows.iter().map(|row| self.snapshot_api_named(row, names.get(&row.volume_id).cloned())).collect();
        Ok(Page { items, next_cursor })
    }

    pub async fn get_snapshot(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<Snapshot> {
        let row = self.snapshot_row(p, key, project).await?;
        Ok(self.snapshot_api(&row).await)
    }

    /// Renames a snapshot or changes its description.
    pub async fn update_snapshot(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        req: UpdateSnapshotRequest,
        if_match: Option<&str>,
    ) -> Result<Snapshot> {
        let row = self.snapshot_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let mut v = Validator::default();
        if let Some(name) = &req.name {
            check_name(&mut v, "name", name);
        }
        if let Some(Some(d)) = &req.description {
            v.check(d.len() <= 1024, "description", "must be at most 1024 characters");
        }
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("snapshots", &row.id, if_match, self.get_snapshot(p, &row.id, None)).await?;
        let name = req.name.as_deref().unwrap_or(&row.name);
        let description = match &req.description {
            Some(d) => d.as_deref(),
            None => row.description.as_deref(),
        };
        repo::update_snapshot(tx.conn(), &row.id, name, description)
            .await
            .map_err(|e| unique_name(e, "snapshot", name))?;
        tx.audit("snapshot.update", Some(("snapshot", &row.id)), body.as_ref()).await?;
        self.snapshot_event(&mut tx, "snapshot.updated", &row.id).await?;
        tx.commit().await?;
        self.get_snapshot(p, &row.id, None).await
    }

    pub async fn delete_snapshot(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        if_match: Option<&str>,
    ) -> Result<()> {
        let row = self.snapshot_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("snapshots", &row.id, if_match, self.get_snapshot(p, &row.id, None)).await?;
        repo::delete_snapshot(tx.conn(), &row.id).await?;
        tx.audit("snapshot.delete", Some(("snapshot", &row.id)), None).await?;
        tx.bare_event("snapshot.deleted", "snapshot", &row.id, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        self.node()?.remove_volume_snapshot(&row.id).map_err(node_error)?;
        Ok(())
    }

    // ---- backup policies ----

    pub async fn create_backup_policy(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        req: CreateBackupPolicyRequest,
    ) -> Result<BackupPolicy> {
        if let Some(k) = req.project.as_deref() {
            self.project_access(p, k).await?;
        }
        let volume = self.volume_row(p, &req.volume, req.project.as_deref()).await.map_err(|e| match e.code {
            roost_api::ErrorCode::NotFound => field("volume", format!("no volume '{}'", req.volume)),
            _ => e,
        })?;
        let proof = self.project_access(p, &volume.project_id).await?.require_write()?;
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        let next = match next_run(&req.cron, now_ms()) {
            Ok(n) => Some(n),
            Err(m) => {
                v.add("cron", m);
                None
            }
        };
        v.check((1..=1000).contains(&req.keep), "keep", "must be between 1 and 1000");
        v.finish()?;
        let now = now_ms();
        let row = PolicyRow {
            id: IdKind::BackupPolicy.generate(),
            project_id: volume.project_id.clone(),
            name: req.name.clone(),
            volume_id: volume.id.clone(),
            cron: req.cron.trim().to_string(),
            keep: req.keep as i64,
            last_run_at: None,
            last_result: None,
            last_error: None,
            next_run_at: next,
            created_by: Some(p.user_id.clone()),
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.change(ctx, &proof).await?;
        repo::insert_policy(tx.conn(), &row).await.map_err(|e| unique_name(e, "backup policy", &req.name))?;
        let body = serde_json::to_value(&req).ok();
        tx.audit("backup_policy.create", Some(("backup_policy", &row.id)), body.as_ref()).await?;
        let api = self.policy_event(&mut tx, "backup_policy.created", &row.id).await?;
        tx.commit().await?;
        api.ok_or_else(|| Error::internal("the new backup policy's row vanished"))
    }

    pub async fn list_backup_policies(&self, p: &Principal, params: &VolumeListParams) -> Result<Page<BackupPolicy>> {
        let query = list_query(&params.paging(), CREATED_OR_NAME)?;
        let project = self.narrowed(p, params.project.as_deref()).await?;
        let (rows, next_cursor) =
            self.store().policies_page(&self.project_scope(p), project.as_deref(), &query).await?;
        Ok(Page { items: self.policy_apis(&rows).await?, next_cursor })
    }

    pub async fn get_backup_policy(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<BackupPolicy> {
        let row = self.policy_row(p, key, project).await?;
        self.policy_api(&row).await
    }

    /// Renames a policy, or changes its schedule or how many snapshots it keeps.
    pub async fn update_backup_policy(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        req: UpdateBackupPolicyRequest,
        if_match: Option<&str>,
    ) -> Result<BackupPolicy> {
        let row = self.policy_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let mut v = Validator::default();
        if let Some(name) = &req.name {
            check_name(&mut v, "name", name);
        }
        let next = match &req.cron {
            Some(cron) => match next_run(cron, now_ms()) {
                Ok(n) => Some(n),
                Err(m) => {
                    v.add("cron", m);
                    None
                }
            },
            None => row.next_run_at,
        };
        if let Some(keep) = req.keep {
            v.check((1..=1000).contains(&keep), "keep", "must be between 1 and 1000");
        }
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("backup_policies", &row.id, if_match, self.get_backup_policy(p, &row.id, None)).await?;
        let name = req.name.as_deref().unwrap_or(&row.name);
        let cron = req.cron.as_deref().map(str::trim).unwrap_or(&row.cron);
        let keep = req.keep.map(i64::from).unwrap_or(row.keep);
        repo::update_policy(tx.conn(), &row.id, name, cron, keep, next, now_ms())
            .await
            .map_err(|e| unique_name(e, "backup policy", name))?;
        tx.audit("backup_policy.update", Some(("backup_policy", &row.id)), body.as_ref()).await?;
        self.policy_event(&mut tx, "backup_policy.updated", &row.id).await?;
        tx.commit().await?;
        self.get_backup_policy(p, &row.id, None).await
    }

    pub async fn delete_backup_policy(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        if_match: Option<&str>,
    ) -> Result<()> {
        let row = self.policy_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("backup_policies", &row.id, if_match, self.get_backup_policy(p, &row.id, None)).await?;
        repo::delete_policy(tx.conn(), &row.id).await?;
        tx.audit("backup_policy.delete", Some(("backup_policy", &row.id)), None).await?;
        tx.bare_event("backup_policy.deleted", "backup_policy", &row.id, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        Ok(())
    }

    /// Runs a policy now (its schedule is unchanged); the result is recorded either way.
    pub async fn run_backup_policy(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
    ) -> Result<BackupPolicy> {
        let row = self.policy_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let mut tx = self.change(ctx, &proof).await?;
        tx.audit("backup_policy.run", Some(("backup_policy", &row.id)), None).await?;
        tx.commit().await?;
        self.run_policy(&row).await;
        let fresh = self.store().policy_by_id(&row.id).await?.unwrap_or(row);
        self.policy_api(&fresh).await
    }

    /// One run: a snapshot, then the oldest beyond `keep` removed. Failures are recorded
    /// on the policy and published as `backup_policy.failed`.
    /// Takes a policy's snapshot and prunes old ones; whether it worked.
    async fn run_policy(&self, policy: &PolicyRow) -> bool {
        let started = now_ms();
        let result: Result<()> = async {
            let volume = self
                .store()
                .volume_by_id(&policy.volume_id)
                .await?
                .ok_or_else(|| Error::unprocessable("the policy's volume is gone"))?;
            let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S-%3f");
            let name = format!("{}-{stamp}", policy.name);
            let description = Some(format!("backup policy {}", policy.name));
            let system = SystemProof::new();
            let ctx = RequestContext::default();
            let policy_id = Some(policy.id.clone());
            self.take_snapshot(&ctx, &system, None, &volume, &name, description, policy_id, None, None, None).await?;
            let mut conn = self.store().pool().acquire().await.map_err(StoreError::from)?;
            let all = repo::snapshots_of_policy(&mut conn, &policy.id).await?;
            drop(conn);
            for old in all.iter().skip(policy.keep.max(1) as usize) {
                let mut tx = self.system_change().await?;
                repo::delete_snapshot(tx.conn(), &old.id).await?;
                tx.bare_event("snapshot.deleted", "snapshot", &old.id, Audience::Project(old.project_id.clone()));
                tx.commit().await?;
                self.node()?.remove_volume_snapshot(&old.id).map_err(node_error)?;
            }
            Ok(())
        }
        .await;
        let next = next_run(&policy.cron, now_ms()).ok();
        let (status, error) = match &result {
            Ok(()) => ("success", None),
            Err(e) => ("failed", Some(e.message.clone())),
        };
        if let Err(e) = &result {
            tracing::warn!(policy = %policy.id, error = %e.message, "backup policy run failed");
        }
        let recorded = async {
            let mut tx = self.system_change().await?;
            repo::record_run(tx.conn(), &policy.id, started, status, error.as_deref(), next).await?;
            let kind = if result.is_ok() { "backup_policy.succeeded" } else { "backup_policy.failed" };
            self.policy_event(&mut tx, kind, &policy.id).await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = recorded {
            tracing::warn!(policy = %policy.id, error = %e.message, "cannot record a backup run");
        }
        result.is_ok()
    }

    /// Runs the backup policies that are due.
    async fn run_due_policies(&self) -> Result<serde_json::Value> {
        let policies = self.store().all_policies().await?;
        let now = now_ms();
        let (mut ran, mut failed) = (0, 0);
        for policy in policies.into_iter().filter(|p| p.next_run_at.is_some_and(|n| n <= now)) {
            ran += 1;
            if !self.run_policy(&policy).await {
                failed += 1;
            }
        }
        Ok(serde_json::json!({ "ran": ran, "failed": failed }))
    }

    /// At start, before the reconciler: what a crash left (temporary files, image files
    /// without a record, mounts and loop devices no running instance needs).
    pub(crate) async fn clean_volume_leftovers(&self) {
        let Ok(node) = self.node() else { return };
        let (Ok(volumes), Ok(snapshots)) = (self.store().all_volumes().await, self.store().all_snapshot_ids().await)
        else {
            return;
        };
        let mut known: Vec<String> = volumes.iter().map(|v| v.id.clone()).collect();
        known.extend(snapshots);
        match self.store().instance_snapshots_in(&roost_store::list::ProjectScope::All, None).await {
            Ok(isnaps) => known.extend(isnaps.into_iter().map(|s| s.id)),
            // Without the whole list nothing may be called unknown.
            Err(_) => return,
        }
        // The copies unfinished resizes and restores keep (a restart resumes or unwinds them).
        match self.store().unfinished_jobs().await {
            Ok(jobs) => known.extend(jobs.iter().filter_map(job_volume_copy)),
            Err(_) => return,
        }
        let mut in_use = Vec::new();
        for v in &volumes {
            if let Some(i) = &v.instance_id
                && self.instance_runs(i).await.unwrap_or(true)
            {
                in_use.push(v.id.clone());
            }
        }
        for what in node.clean_volumes(&known, &in_use).await {
            tracing::info!(%what, "cleaned what an interrupted volume operation left");
        }
    }

    // ---- instances ----

    /// Resolves `volumes` of an instance create and attaches them in `conn`'s transaction.
    pub(crate) async fn attach_on_create(
        &self,
        p: &Principal,
        conn: &mut roost_store::sqlx::AnyConnection,
        project_id: &str,
        instance_id: &str,
        volumes: &[roost_api::volumes::VolumeMountRequest],
    ) -> Result<()> {
        for (i, req) in volumes.iter().enumerate() {
            let mut v = Validator::default();
            check_path(&mut v, &req.path);
            v.finish()?;
            if volumes[..i].iter().any(|o| o.path == req.path) {
                return Err(field("volumes", format!("two volumes at {}", req.path)));
            }
            let row = self
                .volume_row(p, &req.volume, Some(project_id))
                .await
                .map_err(|_| field("volumes", format!("no volume '{}' in the project", req.volume)))?;
            if !repo::set_attachment(
                conn,
                &row.id,
                Some((instance_id, &req.path, req.read_only.unwrap_or(false))),
                now_ms(),
            )
            .await?
            {
                return Err(Error::conflict(format!("volume '{}' is attached to another instance", row.name)));
            }
        }
        Ok(())
    }

    /// Root filesystem changes (a tar of the container's upper layer) and a snapshot of
    /// each attached volume. A job ([`crate::jobs::instance_snapshot`]) run in the
    /// request: a failure at any step removes the archive, the rows and the snapshots.
    pub async fn snapshot_instance(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        req: CreateInstanceSnapshotRequest,
    ) -> Result<InstanceSnapshot> {
        let instance = self.instance_row(p, key, project).await?;
        let proof = self.project_access(p, &instance.project_id).await?.require_write()?;
        if instance.kind != "container" {
            return Err(Error::unprocessable("instance snapshots capture container root filesystems only"));
        }
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
        let name = req.name.clone().unwrap_or_else(|| format!("{}-{stamp}", instance.name));
        let mut v = Validator::default();
        check_name(&mut v, "name", &name);
        v.finish()?;
        self.node()?;
        // Every id is chosen now, so an undo finds what a crash cut short.
        let id = IdKind::InstanceSnapshot.generate();
        let volumes = (self.store().attached_volumes(&instance.id).await?)
            .into_iter()
            .map(|v| VolumeSnapshotPlan {
                name: format!("{name}-{}", v.name),
                volume_id: v.id,
                snapshot_id: IdKind::Snapshot.generate(),
            })
            .collect();
        let params = InstanceSnapshotParams {
            id: id.clone(),
            instance_id: instance.id.clone(),
            project_id: instance.project_id.clone(),
            name,
            description: req.description.clone(),
            user_id: p.user_id.clone(),
            volumes,
        };
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        let job = self.new_job::<InstanceSnapshotJob>(&mut tx, p, Some(("instance", &instance.id)), params).await?;
        tx.audit("instance.snapshot", Some(("instance", &instance.id)), body.as_ref()).await?;
        tx.commit().await?;
        job.run_inline().await?;
        let row =
            self.store().instance_snapshot(&id).await?.ok_or_else(|| Error::not_found("instance snapshot", &id))?;
        let mut conn = self.store().pool().acquire().await.map_err(StoreError::from)?;
        let snapshots = repo::snapshots_of_instance_snapshot(&mut conn, &id).await?;
        drop(conn);
        let mut volumes = Vec::new();
        for snap in &snapshots {
            volumes.push(self.snapshot_api(snap).await);
        }
        Ok(InstanceSnapshot {
            id,
            name: row.name,
            project_id: row.project_id,
            instance_id: row.instance_id,
            rootfs_bytes: row.rootfs_bytes as u64,
            volumes,
            description: row.description,
            created_at: to_time(row.created_at),
        })
    }

    /// An instance snapshot's first step: the archive of the container's changes (the
    /// container frozen meanwhile); returns its size.
    pub(crate) async fn archive_instance(&self, instance_id: &str, snapshot_id: &str) -> Result<u64> {
        let node = self.node()?;
        let archived = async { node.archive_instance_changes(instance_id, snapshot_id).await.map_err(node_error) };
        self.while_frozen(instance_id, archived).await
    }

    /// Removes what [`Control::archive_instance`] archived, whole or in part.
    pub(crate) async fn remove_instance_archive(&self, snapshot_id: &str) -> Result<()> {
        self.node()?.remove_instance_archive(snapshot_id).await.map_err(node_error)
    }

    /// An instance snapshot's row (a taken name is a conflict).
    pub(crate) async fn record_instance_snapshot(
        &self,
        params: &InstanceSnapshotParams,
        rootfs_bytes: u64,
    ) -> Result<()> {
        let row = InstanceSnapshotRow {
            id: params.id.clone(),
            project_id: params.project_id.clone(),
            name: params.name.clone(),
            instance_id: params.instance_id.clone(),
            rootfs_bytes: rootfs_bytes as i64,
            description: params.description.clone(),
            created_by: Some(params.user_id.clone()),
            created_at: now_ms(),
        };
        let mut tx = self.system_change().await?;
        if repo::instance_snapshot(tx.conn(), &row.id).await?.is_some() {
            return Ok(());
        }
        repo::insert_instance_snapshot(tx.conn(), &row).await.map_err(|e| unique_name(e, "snapshot", &row.name))?;
        tx.commit().await
    }

    /// Removes an instance snapshot's row (nothing when there is none).
    pub(crate) async fn unrecord_instance_snapshot(&self, id: &str) -> Result<()> {
        let mut tx = self.system_change().await?;
        repo::delete_instance_snapshot(tx.conn(), id).await?;
        tx.commit().await
    }

    /// Snapshots each volume the instance had when the snapshot was asked for (ids
    /// chosen in `params`); one already recorded (a step run again) is kept.
    pub(crate) async fn snapshot_instance_volumes(&self, params: &InstanceSnapshotParams) -> Result<()> {
        let system = SystemProof::new();
        let ctx = RequestContext::default();
        for plan in &params.volumes {
            if self.store().snapshot_by_id(&plan.snapshot_id).await?.is_some() {
                continue;
            }
            let Some(volume) = self.store().volume_by_id(&plan.volume_id).await? else {
                return Err(Error::conflict(format!("volume '{}' was deleted during the snapshot", plan.volume_id)));
            };
            self.take_snapshot(
                &ctx,
                &system,
                None,
                &volume,
                &plan.name,
                params.description.clone(),
                None,
                Some(params.id.clone()),
                Some(params.user_id.clone()),
                Some(plan.snapshot_id.clone()),
            )
            .await?;
        }
        Ok(())
    }

    /// Removes the volume snapshots of [`Control::snapshot_instance_volumes`], rows and
    /// copies, whichever were made.
    pub(crate) async fn remove_instance_volume_snapshots(&self, params: &InstanceSnapshotParams) -> Result<()> {
        let node = self.node()?;
        for plan in &params.volumes {
            let _lock = lock_volume(&plan.volume_id).await;
            if let Some(row) = self.store().snapshot_by_id(&plan.snapshot_id).await? {
                let mut tx = self.system_change().await?;
                repo::delete_snapshot(tx.conn(), &row.id).await?;
                tx.bare_event("snapshot.deleted", "snapshot", &row.id, Audience::Project(row.project_id.clone()));
                tx.commit().await?;
            }
            node.remove_volume_snapshot(&plan.snapshot_id).map_err(node_error)?;
        }
        Ok(())
    }

    /// A new, independent instance: same image, size, command, networks and groups, a
    /// copy of the root filesystem's changes and a copy of each attached volume
    /// (attached to the clone at the same paths). A job ([`crate::jobs::clone_instance`]):
    /// its first step (the clone's rows) runs before the answer, the copies and the start
    /// after it; a failure at any step undoes them all.
    pub async fn clone_instance(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        req: CloneInstanceRequest,
    ) -> Result<(roost_api::instances::Instance, Operation)> {
        let source = self.instance_row(p, key, project).await?;
        let proof = self.project_access(p, &source.project_id).await?.require_write()?;
        if source.kind != "container" {
            return Err(Error::unprocessable("clones copy container root filesystems only"));
        }
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        v.finish()?;
        self.node()?;
        // Every id is chosen now, so an undo finds what a crash cut short.
        let params = CloneParams {
            source_id: source.id.clone(),
            clone_id: IdKind::Instance.generate(),
            name: req.name.clone(),
            start: req.start.unwrap_or(true),
            user_id: p.user_id.clone(),
            volumes: (self.store().attached_volumes(&source.id).await?)
                .into_iter()
                .map(|v| (v.id, IdKind::Volume.generate()))
                .collect(),
        };
        let clone_id = params.clone_id.clone();
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        let mut job = self.new_job::<CloneInstance>(&mut tx, p, Some(("instance", &clone_id)), params).await?;
        tx.audit("instance.clone", Some(("instance", &source.id)), body.as_ref()).await?;
        tx.commit().await?;
        // The clone's rows exist before the answer shows it (and a taken name or an
        // exceeded quota is the answer).
        job.run_until(1).await?;
        let snapshot = job.operation();
        job.spawn();
        let row = self.store().instance(&clone_id).await?.ok_or_else(|| Error::not_found("instance", &req.name))?;
        Ok((self.instance_api(&row).await, snapshot))
    }

    /// A clone's first step: its row, NICs on the source's networks, the source's
    /// security groups and its lineage, checked against the project's quota.
    pub(crate) async fn insert_clone(&self, p: &Principal, params: &CloneParams) -> Result<()> {
        let source = self
            .store()
            .instance(&params.source_id)
            .await?
            .ok_or_else(|| Error::not_found("instance", &params.source_id))?;
        let access = self.project_access(p, &source.project_id).await?;
        access.require_write()?;
        let nics = roost_store::networks::nics_of(
            &mut *self.store().pool().acquire().await.map_err(StoreError::from)?,
            &source.id,
        )
        .await?;
        let mut nic_requests = Vec::new();
        for nic in &nics {
            if let Some(net) = self.store().network_by_id(&nic.network_id).await? {
                nic_requests.push(roost_api::networks::NicRequest { network: net.id, ip: None });
            }
        }
        let resolved = self.resolve_networks(p, &source.project_id, &nic_requests).await?;
        let groups: Vec<String> = roost_store::networks::groups_of_instance(
            &mut *self.store().pool().acquire().await.map_err(StoreError::from)?,
            &source.id,
        )
        .await?
        .into_iter()
        .map(|g| g.id)
        .collect();
        let mut total = 0;
        for (volume, _) in &params.volumes {
            total += self.store().volume_by_id(volume).await?.map_or(0, |v| v.size_bytes);
        }
        let now = now_ms();
        let mut row = InstanceRow {
            id: params.clone_id.clone(),
            name: params.name.clone(),
            desired: Desired::Stopped.as_str().into(),
            status: InstanceStatus::Stopped.as_str().into(),
            status_reason: None,
            ip: None,
            exit_code: None,
            restart_count: 0,
            created_by: Some(params.user_id.clone()),
            created_at: now,
            updated_at: now,
            started_at: None,
            ..source.clone()
        };
        // Recorded as the server's: the request that asked for the clone was audited.
        let mut tx = self.system_change().await?;
        let requested =
            [("instances", 1), ("vcpus", row.cpus_milli), ("memory_bytes", row.memory_bytes), ("volume_gib", total)];
        self.check_quota(tx.conn(), &access.project, &requested).await?;
        roost_store::instances::insert(tx.conn(), &row).await.map_err(|e| unique_name(e, "instance", &params.name))?;
        for (idx, (net, ip)) in resolved.iter().enumerate() {
            let nic = Self::allocate_nic(tx.conn(), net, &row.id, idx as i64, *ip).await?;
            if idx == 0 {
                row.ip = Some(nic.ip);
            }
        }
        roost_store::networks::set_instance_groups(tx.conn(), &row.id, &groups).await?;
        repo::set_lineage(tx.conn(), &row.id, &source.id, now).await?;
        tx.instance_event("instance.created", &row.id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Copies the source's root filesystem changes to the clone (the source frozen meanwhile).
    pub(crate) async fn copy_clone_rootfs(&self, source_id: &str, clone_id: &str) -> Result<()> {
        let node = self.node()?;
        let copied = async { node.copy_instance_changes(source_id, clone_id).await.map_err(node_error) };
        self.while_frozen(source_id, copied).await
    }

    /// Removes what [`Control::copy_clone_rootfs`] copied, whole or in part.
    pub(crate) async fn remove_clone_rootfs(&self, clone_id: &str) -> Result<()> {
        self.node()?.remove_instance_changes(clone_id).await.map_err(node_error)
    }

    /// Copies each volume of the source (chosen in `params`) as a new volume attached to
    /// the clone at the same path. A copy already recorded (a resumed step) is kept.
    pub(crate) async fn copy_clone_volumes(&self, params: &CloneParams) -> Result<()> {
        let store = self.node()?;
        for (source_id, id) in &params.volumes {
            if self.store().volume_by_id(id).await?.is_some() {
                continue;
            }
            let Some(volume) = self.store().volume_by_id(source_id).await? else {
                return Err(Error::conflict(format!("volume '{source_id}' was deleted during the clone")));
            };
            {
                let _lock = lock_volume(&volume.id).await;
                store.copy_volume(&volume.id, id).await.map_err(node_error)?;
            }
            let copy = VolumeRow {
                id: id.clone(),
                name: format!("{}-{}", volume.name, params.name),
                instance_id: Some(params.clone_id.clone()),
                cloned_from: Some(volume.id.clone()),
                created_by: Some(params.user_id.clone()),
                created_at: now_ms(),
                updated_at: now_ms(),
                ..volume.clone()
            };
            let mut tx = self.system_change().await?;
            repo::insert_volume(tx.conn(), &copy).await.map_err(|e| unique_name(e, "volume", &copy.name))?;
            self.volume_event(&mut tx, "volume.created", id).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Removes the clone's volume copies (rows and images), whichever were made.
    pub(crate) async fn remove_clone_volumes(&self, params: &CloneParams) -> Result<()> {
        let store = self.node()?;
        for (_, id) in &params.volumes {
            let _lock = lock_volume(id).await;
            if let Some(row) = self.store().volume_by_id(id).await? {
                let mut tx = self.system_change().await?;
                repo::delete_volume(tx.conn(), id).await?;
                tx.bare_event("volume.deleted", "volume", id, Audience::Project(row.project_id.clone()));
                tx.commit().await?;
            }
            store.remove_volume(id).await.map_err(node_error)?;
        }
        Ok(())
    }
}

/// What a clone job is given (every id chosen before any step runs).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct CloneParams {
    pub source_id: String,
    pub clone_id: String,
    pub name: String,
    pub start: bool,
    pub user_id: String,
    /// Each attached volume of the source and the id of its copy.
    pub volumes: Vec<(String, String)>,
}

/// The copy of a volume an unfinished resize or restore keeps, from its parameters.
fn job_volume_copy(job: &roost_store::operations::OperationRow) -> Option<String> {
    if !matches!(job.kind.as_str(), "volume.resize" | "volume.restore") {
        return None;
    }
    let params: serde_json::Value = serde_json::from_str(job.job_params.as_deref()?).ok()?;
    params.get("backup_id")?.as_str().map(str::to_string)
}

/// The driver's view of a volume attachment.
fn disk_of(v: &VolumeRow) -> DiskAttachment {
    DiskAttachment {
        volume_id: v.id.clone(),
        format: if v.format == "qcow2" { DiskFormat::Qcow2 } else { DiskFormat::Raw },
        filesystem: v.filesystem.clone(),
        path: v.mount_path.clone().unwrap_or_default(),
        read_only: v.read_only != 0,
    }
}

impl Control {
    /// Runs `work` with a running container frozen (the cgroup freezer, as pause does),
    /// so the files of its upper layer hold still while they are copied: no file changes
    /// half-way, and no directory is swapped for a symlink between the copy's look and its
    /// open. An instance that is paused already stays paused; one that does not run needs
    /// nothing.
    async fn while_frozen<T>(
        &self,
        instance_id: &str,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        // The reconciler's lock: it would otherwise see the freeze and call it paused.
        let _instance_lock = self.lock_for(instance_id).lock_owned().await;
        let driver = self.driver_of(instance_id).await?;
        let running =
            matches!(driver.inspect(instance_id).await.map(|s| s.status), Ok(roost_node::InstanceStatus::Running));
        if running {
            driver.pause(instance_id).await.map_err(node_error)?;
        }
        let result = work.await;
        if running && let Err(e) = driver.resume(instance_id).await {
            tracing::error!(instance = instance_id, error = %e, "could not thaw the instance after a copy");
        }
        result
    }
}

/// The next time a five-field cron expression (UTC) fires after `after_ms`.
pub fn next_run(cron: &str, after_ms: i64) -> std::result::Result<i64, String> {
    let fields = cron.split_whitespace().count();
    if fields != 5 {
        return Err(format!("'{cron}' is not a five-field cron expression (minute hour day month weekday)"));
    }
    let parsed = croner::Cron::from_str(cron.trim()).map_err(|e| format!("'{cron}': {e}"))?;
    let after = chrono::DateTime::from_timestamp_millis(after_ms).unwrap_or_default();
    parsed
        .find_next_occurrence(&after, false)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("'{cron}' never fires: {e}"))
}

/// An attached volume as the instance API shows it.
pub(crate) fn instance_volume(v: VolumeRow) -> InstanceVolume {
    InstanceVolume {
        volume_id: v.id,
        volume: v.name,
        path: v.mount_path.unwrap_or_default(),
        read_only: v.read_only != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_schedules() {
        // 2026-01-01T00:00:00Z
        let t0 = 1_767_225_600_000;
        assert_eq!(next_run("0 2 * * *", t0).unwrap(), t0 + 2 * 3600 * 1000);
        assert_eq!(next_run("*/5 * * * *", t0).unwrap(), t0 + 5 * 60 * 1000);
        assert!(next_run("0 2 * *", t0).is_err());
        assert!(next_run("61 * * * *", t0).is_err());
        assert!(next_run("* * * * * *", t0).is_err());
    }
}
