//! `/v1/system`: server-wide administration: store backups, background tasks.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use roost_api::operations::Operation;
use roost_api::system::BackgroundTask;
use roost_api::{ErrorResponse, Page};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Ctx, Path};

/// Back up the embedded SQLite store (admins). Returns 202 and the operation to wait on;
/// its `result` holds the backup's path and size.
#[utoipa::path(post, path = "/v1/system/backups", operation_id = "system.backup", tag = "system",
    responses(
        (status = 202, body = Operation, headers(("Location" = String, description = "The operation's URL"))),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 422, description = "The store is PostgreSQL", body = ErrorResponse),
    ))]
pub async fn create_backup(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
) -> Result<(StatusCode, HeaderMap, axum::Json<Operation>), ApiError> {
    let op = state.control.start_backup(&ctx, &auth).await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/operations/{}", op.id)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::ACCEPTED, headers, axum::Json(op)))
}

/// What this server's compute node runs: instance types, and for microVMs the
/// accelerator (KVM or TCG) and why.
#[utoipa::path(get, path = "/v1/node", tag = "system",
    responses(
        (status = 200, body = roost_api::system::NodeInfo),
        (status = 401, body = ErrorResponse),
    ))]
pub async fn node_info(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<roost_api::system::NodeInfo>, ApiError> {
    Ok(axum::Json(state.control.node_info(&auth).await?))
}

/// The background tasks (admins): periodic work such as the instance reconciler, with
/// the server that runs each (its lease holder) and its last activation. Every server
/// sharing the store lists the same.
#[utoipa::path(get, path = "/v1/system/tasks", tag = "system",
    responses(
        (status = 200, body = Page<BackgroundTask>),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
    ))]
pub async fn list_tasks(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<Page<BackgroundTask>>, ApiError> {
    let items = state.control.list_tasks(&auth).await?;
    Ok(axum::Json(Page { items, next_cursor: None }))
}

/// One background task (admins).
#[utoipa::path(get, path = "/v1/system/tasks/{name}", tag = "system",
    params(("name" = String, Path, description = "Task name, e.g. housekeeping")),
    responses(
        (status = 200, body = BackgroundTask),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
    ))]
pub async fn get_task(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<axum::Json<BackgroundTask>, ApiError> {
    Ok(axum::Json(state.control.get_task(&auth, &name).await?))
}

/// Run a background task now (admins). Returns 202 and the task at once, with
/// `run_requested_at` set until the run starts; the server that holds the task's lease
/// runs it (another server passes the request on).
#[utoipa::path(post, path = "/v1/system/tasks/{name}/run", operation_id = "system.task.run", tag = "system",
    params(("name" = String, Path, description = "Task name, e.g. housekeeping")),
    responses(
        (status = 202, body = BackgroundTask),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
    ))]
pub async fn run_task(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<(StatusCode, axum::Json<BackgroundTask>), ApiError> {
    let task = state.control.run_task(&ctx, &auth, &name).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(task)))
}
