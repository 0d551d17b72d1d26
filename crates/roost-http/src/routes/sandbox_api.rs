//! `/v1/sandboxes`: Roost's own API for sandboxes (the E2B-compatible one is on
//! `--e2b-listen`). Exec and files go through the sandbox's instance
//! (`/v1/instances/{instance_id}/exec`, `/files`).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use roost_api::sandboxes::{
    CreateSandboxRequest, Sandbox, SandboxTimeoutRequest, SandboxUrl, SandboxUsage, SandboxUsageParams,
};
use roost_api::{ErrorResponse, Page, ProjectListParams};
use roost_control::sandboxes::NewSandbox;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag::IfMatch;
use crate::extract::{Ctx, Json, Path, Query};

/// List live sandboxes (`created_at` is when one started; `name` and `sort=name` use its
/// template).
#[utoipa::path(get, path = "/v1/sandboxes", tag = "sandboxes", params(ProjectListParams),
    responses((status = 200, body = Page<Sandbox>)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<ProjectListParams>,
) -> Result<axum::Json<Page<Sandbox>>, ApiError> {
    let page = state.control.list_sandboxes_page(&auth, &q).await?;
    Ok(axum::Json(Page { items: page.items.iter().map(|v| v.to_api()).collect(), next_cursor: page.next_cursor }))
}

/// Create a sandbox; returns once it runs.
#[utoipa::path(post, path = "/v1/sandboxes", operation_id = "sandbox.create", tag = "sandboxes", request_body = CreateSandboxRequest,
    responses(
        (status = 201, body = Sandbox),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 503, body = ErrorResponse),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateSandboxRequest>,
) -> Result<(StatusCode, axum::Json<Sandbox>), ApiError> {
    let new = NewSandbox {
        template: req.template.unwrap_or_else(|| "base".into()),
        project: req.project,
        timeout: req.ttl_secs.map(Duration::from_secs),
        metadata: req.metadata,
        env: req.env,
        kind: req.kind,
    };
    let view = state.control.create_sandbox(&ctx, &auth, None, new).await?;
    Ok((StatusCode::CREATED, axum::Json(view.to_api())))
}

/// Show a live sandbox.
#[utoipa::path(get, path = "/v1/sandboxes/{id}", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id")),
    responses((status = 200, body = Sandbox), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Sandbox>, ApiError> {
    Ok(axum::Json(state.control.sandbox(&auth, &id).await?.to_api()))
}

/// Kill a sandbox: its processes, its instance, everything it had.
#[utoipa::path(delete, path = "/v1/sandboxes/{id}", operation_id = "sandbox.kill", tag = "sandboxes",
    params(IfMatch, ("id" = String, Path, description = "Sandbox id")),
    responses((status = 204), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn kill(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    auth.require_scope(roost_api::tokens::Scope::Write)?;
    state.control.kill_sandbox(&ctx, &auth, &id, if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Freeze a sandbox (cgroup freezer): processes and memory are kept.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/pause", operation_id = "sandbox.pause", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id")),
    responses((status = 204), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn pause(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require_scope(roost_api::tokens::Scope::Write)?;
    state.control.pause_sandbox(&ctx, &auth, &id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Thaw a paused sandbox.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/resume", operation_id = "sandbox.resume", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id")),
    responses((status = 204), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn resume(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require_scope(roost_api::tokens::Scope::Write)?;
    state.control.pause_sandbox(&ctx, &auth, &id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set the time left.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/timeout", operation_id = "sandbox.timeout", tag = "sandboxes", request_body = SandboxTimeoutRequest,
    params(("id" = String, Path, description = "Sandbox id")),
    responses((status = 204), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn timeout(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Json(req): Json<SandboxTimeoutRequest>,
) -> Result<StatusCode, ApiError> {
    auth.require_scope(roost_api::tokens::Scope::Write)?;
    state.control.set_sandbox_timeout(&ctx, &auth, &id, Duration::from_secs(req.ttl_secs)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Usage per key: sandboxes, sandbox-seconds, vCPU-seconds, commands run.
#[utoipa::path(get, path = "/v1/sandbox-usage", tag = "sandboxes", params(SandboxUsageParams),
    responses((status = 200, body = Vec<SandboxUsage>), (status = 401, body = ErrorResponse)))]
pub async fn usage(
    State(state): State<AppState>,
    auth: Auth,
    Query(params): Query<SandboxUsageParams>,
) -> Result<axum::Json<Vec<SandboxUsage>>, ApiError> {
    let since = Duration::from_secs(params.since_secs.unwrap_or(86_400));
    Ok(axum::Json(state.control.sandbox_usage(&auth, params.key.as_deref(), since).await?))
}

/// A URL reaching one port of a sandbox through Roost's proxy (the E2B listener), for
/// a browser or curl: `http://<port>-<id>.localhost:<e2b port>/?roost_token=…`. It
/// grants access to that port, so it needs write access to the sandbox.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/urls/{port}", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id"), ("port" = u16, Path, description = "Port in the sandbox")),
    responses((status = 200, body = SandboxUrl), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn url(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, port)): Path<(String, u16)>,
) -> Result<axum::Json<SandboxUrl>, ApiError> {
    auth.require_scope(roost_api::tokens::Scope::Write)?;
    state.control.writable_sandbox(&auth, &id).await?;
    Ok(axum::Json(state.control.sandbox_url(&auth, &id, port).await?))
}
