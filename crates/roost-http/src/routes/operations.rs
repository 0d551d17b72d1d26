//! `/v1/operations`: long work and waiting for it.

use std::time::Duration;

use axum::extract::State;
use roost_api::operations::{Operation, WaitParams};
use roost_api::{ErrorResponse, ListParams, Page};
use roost_control::Error;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Path, Query};

/// List operations you started (admins: all).
#[utoipa::path(get, path = "/v1/operations", tag = "operations", params(ListParams),
    responses((status = 200, body = Page<Operation>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Page<Operation>>, ApiError> {
    Ok(axum::Json(state.control.list_operations(&auth, &params).await?))
}

/// Show an operation; with `?wait=30s`, first block (server-side, up to 60 s) until it
/// has succeeded or failed.
#[utoipa::path(get, path = "/v1/operations/{id}", tag = "operations",
    params(("id" = String, Path, description = "Operation id"), WaitParams),
    responses((status = 200, body = Operation), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(params): Query<WaitParams>,
) -> Result<axum::Json<Operation>, ApiError> {
    let op = match params.wait.as_deref() {
        None | Some("") => state.control.get_operation(&auth, &id).await?,
        Some(text) => {
            let wait = parse_wait(text)?;
            state.control.wait_operation(&auth, &id, wait).await?
        }
    };
    Ok(axum::Json(op))
}

/// `30s`, `2m` or plain seconds (`30`).
pub fn parse_wait(text: &str) -> Result<Duration, Error> {
    let parsed = match text.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(text),
    };
    parsed.map_err(|_| Error::invalid(format!("wait: '{text}' is not a duration like 30s (at most 60s)")))
}
