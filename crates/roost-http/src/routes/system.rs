//! `/v1/system`: server-wide administration.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use roost_api::ErrorResponse;
use roost_api::operations::Operation;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::Ctx;

/// Back up the embedded SQLite store (admins). Returns 202 and the operation to wait on;
/// its `result` holds the backup's path and size.
#[utoipa::path(post, path = "/v1/system/backups", tag = "system",
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
