//! `/v1/s3-keys`: the caller's S3 access keys.

use axum::extract::State;
use axum::http::StatusCode;
use roost_api::buckets::{CreateS3KeyRequest, CreatedS3Key, S3Key, UpdateS3KeyRequest};
use roost_api::{ErrorResponse, ListParams, Page};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag::IfMatch;
use crate::extract::{Ctx, Json, Path, Query};

/// List your S3 access keys (never their secrets); `name` and `sort=name` use the
/// access key id.
#[utoipa::path(get, path = "/v1/s3-keys", tag = "s3-keys", params(ListParams),
    responses((status = 200, body = Page<S3Key>)))]
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<ListParams>,
) -> Result<axum::Json<Page<S3Key>>, ApiError> {
    Ok(axum::Json(s.control.list_s3_keys(&auth, &q).await?))
}

/// Create an S3 access key. The response holds the secret: the only time it is shown.
#[utoipa::path(post, path = "/v1/s3-keys", operation_id = "s3_key.create", tag = "s3-keys", request_body = CreateS3KeyRequest,
    responses((status = 201, body = CreatedS3Key), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn create(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateS3KeyRequest>,
) -> Result<(StatusCode, axum::Json<CreatedS3Key>), ApiError> {
    let created = s.control.create_s3_key(&ctx, &auth, req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Show one of your S3 keys by its access key id.
#[utoipa::path(get, path = "/v1/s3-keys/{id}", tag = "s3-keys", params(("id" = String, Path, description = "Access key id")),
    responses((status = 200, body = S3Key), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(State(s): State<AppState>, auth: Auth, Path(id): Path<String>) -> Result<axum::Json<S3Key>, ApiError> {
    Ok(axum::Json(s.control.get_s3_key(&auth, &id).await?))
}

/// Change the description of one of your S3 keys (`null` clears it).
#[utoipa::path(patch, path = "/v1/s3-keys/{id}", operation_id = "s3_key.update", tag = "s3-keys", request_body = UpdateS3KeyRequest,
    params(("id" = String, Path, description = "Access key id"), IfMatch),
    responses((status = 200, body = S3Key)))]
pub async fn update(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
    Json(req): Json<UpdateS3KeyRequest>,
) -> Result<axum::Json<S3Key>, ApiError> {
    Ok(axum::Json(s.control.update_s3_key(&ctx, &auth, &id, req, if_match.as_deref()).await?))
}

/// Delete (revoke) one of your S3 keys. It stops working at once.
#[utoipa::path(delete, path = "/v1/s3-keys/{id}", operation_id = "s3_key.delete", tag = "s3-keys", params(IfMatch, ("id" = String, Path, description = "Access key id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn delete(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    s.control.delete_s3_key(&ctx, &auth, &id, if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
