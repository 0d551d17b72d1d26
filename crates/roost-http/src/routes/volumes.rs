//! `/v1/volumes`, `/v1/snapshots`, `/v1/backup-policies`, and the instance snapshot and
//! clone actions.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roost_api::instances::CreatedInstance;
use roost_api::volumes::{
    AttachVolumeRequest, AttachVolumeResponse, BackupPolicy, CloneInstanceRequest, CreateBackupPolicyRequest,
    CreateInstanceSnapshotRequest, CreateSnapshotRequest, CreateVolumeRequest, DetachVolumeRequest, InstanceSnapshot,
    ResizeVolumeRequest, RestoreVolumeRequest, Snapshot, UpdateBackupPolicyRequest, UpdateSnapshotRequest,
    UpdateVolumeRequest, Volume, VolumeListParams,
};
use roost_api::{ErrorResponse, Page};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag::IfMatch;
use crate::extract::{Ctx, Json, Path, Query};
use crate::routes::instances::ProjectParam;

type ApiResult<T> = Result<axum::Json<T>, ApiError>;

/// List volumes (name, size, use, status, attachment).
#[utoipa::path(get, path = "/v1/volumes", tag = "volumes", params(VolumeListParams),
    responses((status = 200, body = Page<Volume>), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn list(State(s): State<AppState>, auth: Auth, Query(q): Query<VolumeListParams>) -> ApiResult<Page<Volume>> {
    Ok(axum::Json(s.control.list_volumes(&auth, &q).await?))
}

/// Create a volume: an empty ext4 filesystem in a sparse raw image, or a clone of a
/// snapshot (`from_snapshot`).
#[utoipa::path(post, path = "/v1/volumes", operation_id = "volume.create", tag = "volumes", request_body = CreateVolumeRequest,
    responses((status = 201, body = Volume), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, description = "Role or quota", body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn create(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateVolumeRequest>,
) -> Result<(StatusCode, axum::Json<Volume>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(s.control.create_volume(&ctx, &auth, req).await?)))
}

/// Show a volume, by id or name.
#[utoipa::path(get, path = "/v1/volumes/{id}", tag = "volumes",
    params(("id" = String, Path, description = "Volume id or name"), ProjectParam),
    responses((status = 200, body = Volume), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
) -> ApiResult<Volume> {
    Ok(axum::Json(s.control.get_volume(&auth, &id, q.project.as_deref()).await?))
}

/// Rename a volume.
#[utoipa::path(patch, path = "/v1/volumes/{id}", operation_id = "volume.update", tag = "volumes", request_body = UpdateVolumeRequest,
    params(("id" = String, Path, description = "Volume id or name"), ProjectParam, IfMatch),
    responses((status = 200, body = Volume)))]
pub async fn update(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    if_match: IfMatch,
    Json(req): Json<UpdateVolumeRequest>,
) -> ApiResult<Volume> {
    Ok(axum::Json(s.control.update_volume(&ctx, &auth, &id, q.project.as_deref(), req, if_match.as_deref()).await?))
}

/// Remove a volume and its data; refused while attached or used by a backup policy.
#[utoipa::path(delete, path = "/v1/volumes/{id}", operation_id = "volume.delete", tag = "volumes",
    params(IfMatch, ("id" = String, Path, description = "Volume id or name"), ProjectParam),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, description = "Attached", body = ErrorResponse)))]
pub async fn delete(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    s.control.delete_volume(&ctx, &auth, &id, q.project.as_deref(), if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Grow a volume and its filesystem (online while attached to a running instance).
#[utoipa::path(post, path = "/v1/volumes/{id}/resize", operation_id = "volume.resize", tag = "volumes", request_body = ResizeVolumeRequest,
    params(("id" = String, Path, description = "Volume id or name"), ProjectParam),
    responses((status = 200, body = Volume), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn resize(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    Json(req): Json<ResizeVolumeRequest>,
) -> ApiResult<Volume> {
    Ok(axum::Json(s.control.resize_volume(&ctx, &auth, &id, q.project.as_deref(), req.size_bytes).await?))
}

/// Attach a volume to an instance at a path. `effective` says whether the instance sees
/// it now or at its next start (stopped, or its driver cannot plug it live).
#[utoipa::path(post, path = "/v1/volumes/{id}/attach", operation_id = "volume.attach", tag = "volumes", request_body = AttachVolumeRequest,
    params(("id" = String, Path, description = "Volume id or name"), ProjectParam),
    responses((status = 200, body = AttachVolumeResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, description = "Attached elsewhere, or the path is taken", body = ErrorResponse),
        (status = 422, body = ErrorResponse)))]
pub async fn attach(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    Json(req): Json<AttachVolumeRequest>,
) -> ApiResult<AttachVolumeResponse> {
    Ok(axum::Json(s.control.attach_volume(&ctx, &auth, &id, q.project.as_deref(), req).await?))
}

/// Detach a volume. Refused (409, naming the processes) while files on it are open,
/// unless `force`.
#[utoipa::path(post, path = "/v1/volumes/{id}/detach", operation_id = "volume.detach", tag = "volumes", request_body = DetachVolumeRequest,
    params(("id" = String, Path, description = "Volume id or name"), ProjectParam),
    responses((status = 200, body = Volume), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, description = "Files open, or not attached", body = ErrorResponse)))]
pub async fn detach(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    Json(req): Json<DetachVolumeRequest>,
) -> ApiResult<Volume> {
    let force = req.force.unwrap_or(false);
    Ok(axum::Json(s.control.detach_volume(&ctx, &auth, &id, q.project.as_deref(), force).await?))
}

/// Replace a volume's content with one of its snapshots (detached, or its instance stopped).
#[utoipa::path(post, path = "/v1/volumes/{id}/restore", operation_id = "volume.restore", tag = "volumes", request_body = RestoreVolumeRequest,
    params(("id" = String, Path, description = "Volume id or name"), ProjectParam),
    responses((status = 200, body = Volume), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, description = "In use by a running instance", body = ErrorResponse)))]
pub async fn restore(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    Json(req): Json<RestoreVolumeRequest>,
) -> ApiResult<Volume> {
    Ok(axum::Json(s.control.restore_volume(&ctx, &auth, &id, q.project.as_deref(), &req.snapshot).await?))
}

/// List snapshots (`?volume=` for one volume's).
#[utoipa::path(get, path = "/v1/snapshots", tag = "volumes", params(VolumeListParams),
    responses((status = 200, body = Page<Snapshot>), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn list_snapshots(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<VolumeListParams>,
) -> ApiResult<Page<Snapshot>> {
    Ok(axum::Json(s.control.list_snapshots(&auth, &q).await?))
}

/// Snapshot a volume (crash-consistent: an attached volume's filesystem is frozen for it).
#[utoipa::path(post, path = "/v1/snapshots", operation_id = "snapshot.create", tag = "volumes", request_body = CreateSnapshotRequest,
    responses((status = 201, body = Snapshot), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn create_snapshot(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateSnapshotRequest>,
) -> Result<(StatusCode, axum::Json<Snapshot>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(s.control.create_snapshot(&ctx, &auth, req).await?)))
}

/// Show a snapshot.
#[utoipa::path(get, path = "/v1/snapshots/{id}", tag = "volumes",
    params(("id" = String, Path, description = "Snapshot id or name"), ProjectParam),
    responses((status = 200, body = Snapshot), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get_snapshot(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
) -> ApiResult<Snapshot> {
    Ok(axum::Json(s.control.get_snapshot(&auth, &id, q.project.as_deref()).await?))
}

/// Rename a snapshot or change its description (`null` clears it).
#[utoipa::path(patch, path = "/v1/snapshots/{id}", operation_id = "snapshot.update", tag = "volumes", request_body = UpdateSnapshotRequest,
    params(("id" = String, Path, description = "Snapshot id or name"), ProjectParam, IfMatch),
    responses((status = 200, body = Snapshot)))]
pub async fn update_snapshot(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    if_match: IfMatch,
    Json(req): Json<UpdateSnapshotRequest>,
) -> ApiResult<Snapshot> {
    Ok(axum::Json(s.control.update_snapshot(&ctx, &auth, &id, q.project.as_deref(), req, if_match.as_deref()).await?))
}

/// Remove a snapshot.
#[utoipa::path(delete, path = "/v1/snapshots/{id}", operation_id = "snapshot.delete", tag = "volumes",
    params(IfMatch, ("id" = String, Path, description = "Snapshot id or name"), ProjectParam),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn delete_snapshot(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    s.control.delete_snapshot(&ctx, &auth, &id, q.project.as_deref(), if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List backup policies with their last run, result and next run.
#[utoipa::path(get, path = "/v1/backup-policies", tag = "volumes", params(VolumeListParams),
    responses((status = 200, body = Page<BackupPolicy>), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn list_policies(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<VolumeListParams>,
) -> ApiResult<Page<BackupPolicy>> {
    Ok(axum::Json(s.control.list_backup_policies(&auth, &q).await?))
}

/// Create a backup policy: snapshots of a volume on a cron schedule (UTC), the newest
/// `keep` kept.
#[utoipa::path(post, path = "/v1/backup-policies", operation_id = "backup_policy.create", tag = "volumes", request_body = CreateBackupPolicyRequest,
    responses((status = 201, body = BackupPolicy), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn create_policy(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateBackupPolicyRequest>,
) -> Result<(StatusCode, axum::Json<BackupPolicy>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(s.control.create_backup_policy(&ctx, &auth, req).await?)))
}

/// Show a backup policy.
#[utoipa::path(get, path = "/v1/backup-policies/{id}", tag = "volumes",
    params(("id" = String, Path, description = "Policy id or name"), ProjectParam),
    responses((status = 200, body = BackupPolicy), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get_policy(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
) -> ApiResult<BackupPolicy> {
    Ok(axum::Json(s.control.get_backup_policy(&auth, &id, q.project.as_deref()).await?))
}

/// Rename a backup policy, or change its schedule or how many snapshots it keeps.
#[utoipa::path(patch, path = "/v1/backup-policies/{id}", operation_id = "backup_policy.update", tag = "volumes", request_body = UpdateBackupPolicyRequest,
    params(("id" = String, Path, description = "Policy id or name"), ProjectParam, IfMatch),
    responses((status = 200, body = BackupPolicy)))]
pub async fn update_policy(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    if_match: IfMatch,
    Json(req): Json<UpdateBackupPolicyRequest>,
) -> ApiResult<BackupPolicy> {
    let policy =
        s.control.update_backup_policy(&ctx, &auth, &id, q.project.as_deref(), req, if_match.as_deref()).await?;
    Ok(axum::Json(policy))
}

/// Remove a backup policy (its snapshots stay).
#[utoipa::path(delete, path = "/v1/backup-policies/{id}", operation_id = "backup_policy.delete", tag = "volumes",
    params(IfMatch, ("id" = String, Path, description = "Policy id or name"), ProjectParam),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn delete_policy(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    s.control.delete_backup_policy(&ctx, &auth, &id, q.project.as_deref(), if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Run a backup policy now; the response shows the run's result.
#[utoipa::path(post, path = "/v1/backup-policies/{id}/run", operation_id = "backup_policy.run", tag = "volumes",
    params(("id" = String, Path, description = "Policy id or name"), ProjectParam),
    responses((status = 200, body = BackupPolicy), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn run_policy(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
) -> ApiResult<BackupPolicy> {
    Ok(axum::Json(s.control.run_backup_policy(&ctx, &auth, &id, q.project.as_deref()).await?))
}

/// Snapshot an instance: its root filesystem changes and each attached volume.
#[utoipa::path(post, path = "/v1/instances/{id}/snapshot", operation_id = "instance.snapshot", tag = "instances", request_body = CreateInstanceSnapshotRequest,
    params(("id" = String, Path, description = "Instance id or name"), ProjectParam),
    responses((status = 201, body = InstanceSnapshot), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn snapshot_instance(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    Json(req): Json<CreateInstanceSnapshotRequest>,
) -> Result<(StatusCode, axum::Json<InstanceSnapshot>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.control.snapshot_instance(&ctx, &auth, &id, q.project.as_deref(), req).await?),
    ))
}

/// Clone an instance: a new, independent instance with copies of its root filesystem
/// changes and attached volumes (records `cloned_from`). 202 with the operation.
#[utoipa::path(post, path = "/v1/instances/{id}/clone", operation_id = "instance.clone", tag = "instances", request_body = CloneInstanceRequest,
    params(("id" = String, Path, description = "Instance id or name"), ProjectParam),
    responses((status = 202, body = CreatedInstance), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, description = "Role or quota", body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn clone_instance(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    Json(req): Json<CloneInstanceRequest>,
) -> Result<Response, ApiError> {
    let (instance, operation) = s.control.clone_instance(&ctx, &auth, &id, q.project.as_deref(), req).await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/operations/{}", operation.id)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::ACCEPTED, headers, axum::Json(CreatedInstance { instance, operation })).into_response())
}
