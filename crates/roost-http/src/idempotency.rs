//! `Idempotency-Key` on creates: a retry of the same request with the same key (and the
//! same credential) gets the first response again instead of creating twice.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use roost_api::ErrorCode;
use roost_store::idempotency::Claim;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;
use crate::middleware::MAX_BODY_BYTES;

pub const HEADER: &str = "idempotency-key";
/// Set on a response that is a replay.
pub const REPLAYED: &str = "idempotent-replayed";

/// Routes that accept a key: creates and actions whose responses hold no secret (a
/// token's secret or a generated password is shown once and never stored).
const ROUTES: &[&str] = &[
    "/v1/instances",
    "/v1/instances/{id}/start",
    "/v1/instances/{id}/stop",
    "/v1/instances/{id}/restart",
    "/v1/images",
    "/v1/buckets",
    "/v1/projects",
    "/v1/networks",
    "/v1/security-groups",
    "/v1/system/backups",
    "/v1/volumes",
    "/v1/snapshots",
    "/v1/backup-policies",
    "/v1/instances/{id}/clone",
    "/v1/sandbox-templates",
];

fn credential(req: &Request) -> Option<String> {
    let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let cookie = req.headers().get(header::COOKIE).and_then(|v| v.to_str().ok()).map(str::to_string);
    auth.or(cookie).map(|c| hex::encode(Sha256::digest(c.as_bytes())))
}

pub async fn layer(State(state): State<AppState>, matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let Some(key) = req.headers().get(HEADER).map(|v| v.to_str().unwrap_or("\u{0}").to_string()) else {
        return next.run(req).await;
    };
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let route = matched.as_ref().map(|m| m.as_str().to_string()).unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return ApiError::new(ErrorCode::InvalidRequest, "Idempotency-Key must be 1-255 visible ASCII characters")
            .into_response();
    }
    if !ROUTES.contains(&route.as_str()) {
        let message = format!(
            "Idempotency-Key is not accepted on POST {route} (it is for creates whose response holds no secret)"
        );
        return ApiError::new(ErrorCode::InvalidRequest, message).into_response();
    }
    // Unauthenticated: let the handler refuse it.
    let Some(credential) = credential(&req) else { return next.run(req).await };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response();
    };
    let mut h = Sha256::new();
    h.update(parts.method.as_str());
    h.update(parts.uri.to_string());
    h.update(&bytes);
    let request_hash = hex::encode(h.finalize());
    let store = state.control.store().clone();
    match store.claim_idempotency_key(&credential, &key, &request_hash, roost_store::now_ms()).await {
        Ok(Claim::Claimed) => {}
        Ok(Claim::Existing(row)) if row.request_hash != request_hash => {
            return ApiError::new(ErrorCode::Unprocessable, "this Idempotency-Key was used with a different request")
                .into_response();
        }
        Ok(Claim::Existing(row)) => {
            let (Some(status), Some(body)) = (row.status, row.body) else {
                return ApiError::new(ErrorCode::Conflict, "a request with this Idempotency-Key is still in progress")
                    .into_response();
            };
            let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(REPLAYED, HeaderValue::from_static("true"));
            return response;
        }
        Err(e) => return ApiError(e.into()).into_response(),
    }
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    if !response.status().is_success() {
        // Failures are not remembered: fixing the cause and retrying runs again.
        if let Err(e) = store.release_idempotency_key(&credential, &key).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * MAX_BODY_BYTES).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if let Err(e) = store.complete_idempotency_key(&credential, &key, parts.status.as_u16() as i64, &text).await {
        tracing::warn!(error = %e, "could not record an idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}
