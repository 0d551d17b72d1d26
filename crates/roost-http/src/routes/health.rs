//! Liveness and readiness (anonymous), and Prometheus metrics (admins).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use roost_api::ErrorResponse;
use roost_api::system::Health;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;

/// The process is up and serving.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Health)), security(()))]
pub async fn live() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into(), checks: BTreeMap::new() })
}

/// Ready for traffic: the store answers, its migrations are applied, and the server is
/// not shutting down.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = Health), (status = 503, description = "Not ready", body = Health)), security(()))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let mut checks = BTreeMap::new();
    let store_ok = match state.control.store().check_ready().await {
        Ok(()) => {
            checks.insert("store".to_string(), "ok".to_string());
            checks.insert("migrations".to_string(), "ok".to_string());
            true
        }
        Err(err) => {
            checks.insert("store".to_string(), err.to_string());
            false
        }
    };
    let running = !state.control.shutdown().is_cancelled();
    checks.insert("server".to_string(), if running { "ok" } else { "shutting down" }.to_string());
    let ok = store_ok && running;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(Health { status: if ok { "ok" } else { "unavailable" }.into(), checks }))
}

/// Prometheus metrics (admins).
///
/// Text exposition format. It describes the whole server, so it is for admins; a
/// read-scoped admin token is the right credential for a scraper.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn metrics(State(state): State<AppState>, auth: Auth) -> Result<impl IntoResponse, ApiError> {
    auth.require_admin_read()?;
    // The store counts its statements itself; the scrape publishes the running total.
    metrics::counter!("roost_store_queries_total").absolute(state.control.store().queries_executed());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()))
}
