//! `/v1/ssh-keys`: the caller's SSH keys.

use axum::extract::State;
use axum::http::StatusCode;
use roost_api::ssh_keys::{CreateSshKeyRequest, CreatedSshKey, SshKey, UpdateSshKeyRequest};
use roost_api::{ErrorResponse, ListParams, Page};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag::IfMatch;
use crate::extract::{Ctx, Json, Path, Query};

/// List your SSH keys.
#[utoipa::path(get, path = "/v1/ssh-keys", tag = "ssh-keys", params(ListParams),
    responses((status = 200, body = Page<SshKey>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Page<SshKey>>, ApiError> {
    Ok(axum::Json(state.control.list_ssh_keys(&auth, &params).await?))
}

/// Import a public key, or (without one) generate an Ed25519 key pair: the response then holds the private key, the only time it is shown (it is not stored).
#[utoipa::path(post, path = "/v1/ssh-keys", operation_id = "ssh_key.create", tag = "ssh-keys", request_body = CreateSshKeyRequest,
    responses(
        (status = 201, body = CreatedSshKey),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 409, description = "A key with this name exists", body = ErrorResponse),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateSshKeyRequest>,
) -> Result<(StatusCode, axum::Json<CreatedSshKey>), ApiError> {
    let created = state.control.create_ssh_key(&ctx, &auth, req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Show one of your SSH keys, by id or name.
#[utoipa::path(get, path = "/v1/ssh-keys/{id}", tag = "ssh-keys",
    params(("id" = String, Path, description = "SSH key id or name")),
    responses((status = 200, body = SshKey), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<SshKey>, ApiError> {
    Ok(axum::Json(state.control.get_ssh_key(&auth, &id).await?))
}

/// Rename one of your SSH keys.
#[utoipa::path(patch, path = "/v1/ssh-keys/{id}", operation_id = "ssh_key.update", tag = "ssh-keys", request_body = UpdateSshKeyRequest,
    params(("id" = String, Path, description = "SSH key id or name"), IfMatch),
    responses((status = 200, body = SshKey)))]
pub async fn update(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
    Json(req): Json<UpdateSshKeyRequest>,
) -> Result<axum::Json<SshKey>, ApiError> {
    Ok(axum::Json(state.control.update_ssh_key(&ctx, &auth, &id, req, if_match.as_deref()).await?))
}

/// Delete one of your SSH keys, by id or name (instances that got it keep it).
#[utoipa::path(delete, path = "/v1/ssh-keys/{id}", operation_id = "ssh_key.delete", tag = "ssh-keys",
    params(IfMatch, ("id" = String, Path, description = "SSH key id or name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn delete(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    state.control.delete_ssh_key(&ctx, &auth, &id, if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
