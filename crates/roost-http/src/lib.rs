//! Roost's HTTP surface: the `/v1` REST API, the event stream, health and metrics
//! endpoints, the OpenAPI document and the embedded web console.

pub mod audit_trail;
pub mod auth;
pub mod console;
pub mod e2b;
pub mod envd;
pub mod error;
pub mod etag;
pub mod extract;
pub mod idempotency;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod strict_json;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use roost_control::Control;

pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub control: Control,
    pub metrics: PrometheusHandle,
}

/// The whole application: API, health, metrics, console, with the middleware stack.
pub fn app(state: AppState) -> Router {
    let (api, _) = openapi::api_router().split_for_parts();
    // Object keys contain slashes: documented as `{key}` (OpenAPI has no catch-all
    // parameters), mounted as a catch-all.
    let api = api.route(
        "/v1/buckets/{id}/objects/{*key}",
        axum::routing::get(routes::objects::get).put(routes::objects::put).delete(routes::objects::delete),
    );
    api.route_layer(axum::middleware::from_fn_with_state(state.clone(), audit_trail::layer))
        // Outside the audit layer: a replay changes nothing and is not audited again.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::layer))
        .fallback(console::fallback)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(etag::layer))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn(middleware::metrics))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::client_info))
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(middleware::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(middleware::reject_oversized))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(error::panic_response))
        .layer(axum::middleware::from_fn(middleware::request_id))
        .with_state(state)
}
