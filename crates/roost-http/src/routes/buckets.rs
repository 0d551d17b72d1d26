//! `/v1/buckets`: object storage buckets (their objects are served by the S3 endpoint),
//! and presigned URLs for one object.

use axum::extract::State;
use axum::http::StatusCode;
use roost_api::buckets::{Bucket, CreateBucketRequest, PresignRequest, PresignedUrl, UpdateBucketRequest};
use roost_api::{ErrorResponse, Page, ProjectListParams};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag::IfMatch;
use crate::extract::{Ctx, Json, Path, Query};

/// List the buckets of your projects, with their object counts and sizes, by name unless
/// `sort` says otherwise.
#[utoipa::path(get, path = "/v1/buckets", tag = "buckets", params(ProjectListParams),
    responses((status = 200, body = Page<Bucket>)))]
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<ProjectListParams>,
) -> Result<axum::Json<Page<Bucket>>, ApiError> {
    Ok(axum::Json(s.control.list_buckets_page(&auth, &q).await?))
}

/// Create a bucket in a project (default: `default`). Names are global, as in S3.
#[utoipa::path(post, path = "/v1/buckets", operation_id = "bucket.create", tag = "buckets", request_body = CreateBucketRequest,
    responses((status = 201, body = Bucket), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 409, description = "The name is taken", body = ErrorResponse)))]
pub async fn create(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateBucketRequest>,
) -> Result<(StatusCode, axum::Json<Bucket>), ApiError> {
    let bucket = s.control.create_bucket(&ctx, &auth, req).await?;
    Ok((StatusCode::CREATED, axum::Json(bucket)))
}

/// Show a bucket by id or name.
#[utoipa::path(get, path = "/v1/buckets/{id}", tag = "buckets", params(("id" = String, Path, description = "Bucket id or name")),
    responses((status = 200, body = Bucket), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Bucket>, ApiError> {
    Ok(axum::Json(s.control.get_bucket(&auth, &id).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteBucketParams {
    /// Delete the objects too; without it a bucket that holds objects is refused (409).
    #[serde(default)]
    pub force: bool,
}

/// Make a bucket public-read or private, or turn versioning `Enabled` or `Suspended`.
#[utoipa::path(patch, path = "/v1/buckets/{id}", operation_id = "bucket.update", tag = "buckets", request_body = UpdateBucketRequest,
    params(("id" = String, Path, description = "Bucket id or name"), IfMatch),
    responses((status = 200, body = Bucket)))]
pub async fn update(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
    Json(req): Json<UpdateBucketRequest>,
) -> Result<axum::Json<Bucket>, ApiError> {
    Ok(axum::Json(s.control.update_bucket(&ctx, &auth, &id, req, if_match.as_deref()).await?))
}

/// Delete a bucket: refused while it holds objects, unless `force`.
#[utoipa::path(delete, path = "/v1/buckets/{id}", operation_id = "bucket.delete", tag = "buckets",
    params(IfMatch, ("id" = String, Path, description = "Bucket id or name"), DeleteBucketParams),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, description = "Not empty", body = ErrorResponse)))]
pub async fn delete(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<DeleteBucketParams>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    s.control.delete_bucket(&ctx, &auth, &id, q.force, if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A presigned URL for one object (GET or PUT), usable by anyone who has it until it
/// expires. It is signed with your presign S3 key for this bucket and method
/// (`presign:<bucket>:read`, read-only, for GET; `presign:<bucket>:write` for PUT; both
/// limited to the bucket; created on first use; delete it to revoke every URL it signed).
#[utoipa::path(post, path = "/v1/buckets/{id}/presign", operation_id = "bucket.presign", tag = "buckets",
    params(("id" = String, Path, description = "Bucket id or name")), request_body = PresignRequest,
    responses((status = 200, body = PresignedUrl), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn presign(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Json(req): Json<PresignRequest>,
) -> Result<axum::Json<PresignedUrl>, ApiError> {
    Ok(axum::Json(s.control.presign(&ctx, &auth, &id, req).await?))
}
