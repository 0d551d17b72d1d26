//! `/v1/sandbox-keys`: keys of the E2B-compatible API (the sandboxes themselves are
//! driven through that API, on `--e2b-listen`).

use axum::extract::State;
use axum::http::StatusCode;
use roost_api::sandboxes::{
    CreateSandboxKeyRequest, CreatedSandboxKey, SandboxKey, SandboxPoolStats, UpdateSandboxKeyRequest,
};
use roost_api::{ErrorResponse, Page, ProjectListParams};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag::IfMatch;
use crate::extract::{Ctx, Json, Path, Query};

/// List the sandbox keys of the projects you can see.
#[utoipa::path(get, path = "/v1/sandbox-keys", tag = "sandboxes", params(ProjectListParams),
    responses((status = 200, body = Page<SandboxKey>)))]
pub async fn list_keys(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<ProjectListParams>,
) -> Result<axum::Json<Page<SandboxKey>>, ApiError> {
    Ok(axum::Json(state.control.list_sandbox_keys(&auth, &q).await?))
}

/// Show a sandbox key (never its secret).
#[utoipa::path(get, path = "/v1/sandbox-keys/{id}", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox key id")),
    responses((status = 200, body = SandboxKey)))]
pub async fn get_key(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<SandboxKey>, ApiError> {
    Ok(axum::Json(state.control.get_sandbox_key(&auth, &id).await?))
}

/// Rename a sandbox key or change its limits (the next create sees them).
#[utoipa::path(patch, path = "/v1/sandbox-keys/{id}", operation_id = "sandbox_key.update", tag = "sandboxes", request_body = UpdateSandboxKeyRequest,
    params(("id" = String, Path, description = "Sandbox key id"), IfMatch),
    responses((status = 200, body = SandboxKey)))]
pub async fn update_key(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
    Json(req): Json<UpdateSandboxKeyRequest>,
) -> Result<axum::Json<SandboxKey>, ApiError> {
    Ok(axum::Json(state.control.update_sandbox_key(&ctx, &auth, &id, req, if_match.as_deref()).await?))
}

/// Create a key for the E2B-compatible API (`E2B_API_KEY`). The response holds its
/// secret: the only time it is shown.
#[utoipa::path(post, path = "/v1/sandbox-keys", operation_id = "sandbox_key.create", tag = "sandboxes", request_body = CreateSandboxKeyRequest,
    responses(
        (status = 201, body = CreatedSandboxKey),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
    ))]
pub async fn create_key(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateSandboxKeyRequest>,
) -> Result<(StatusCode, axum::Json<CreatedSandboxKey>), ApiError> {
    let created = state.control.create_sandbox_key(&ctx, &auth, req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Revoke a sandbox key: E2B requests with it, and with the access tokens of the
/// sandboxes it made, are refused at once (its sandboxes run on until they are killed or
/// time out). Its owner or an admin may revoke it.
#[utoipa::path(delete, path = "/v1/sandbox-keys/{id}", operation_id = "sandbox_key.delete", tag = "sandboxes",
    params(IfMatch, ("id" = String, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
    ))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    state.control.revoke_sandbox_key(&ctx, &auth, &id, if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The warm pools of the projects you can see: frozen sandboxes kept ready per template
/// (`roost server --sandbox-pool N`), with the creates they served and missed.
#[utoipa::path(get, path = "/v1/sandbox-pool", tag = "sandboxes",
    responses((status = 200, body = Vec<SandboxPoolStats>), (status = 401, body = ErrorResponse)))]
pub async fn pool_stats(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<Vec<SandboxPoolStats>>, ApiError> {
    Ok(axum::Json(state.control.sandbox_pool_stats(&auth).await?))
}
