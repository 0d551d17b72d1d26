//! Extractors whose rejections are the API's JSON errors: malformed JSON names the
//! problem, and the request context carries id and client address to the services.

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use roost_api::ErrorCode;
use roost_control::RequestContext;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::middleware::current_request_id;

/// A JSON body; rejections become 400 (syntax, types), 413 (size) or 415 (content type).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// An optional JSON body: absent or empty is `None`.
impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("request body is larger than {} bytes", crate::middleware::MAX_BODY_BYTES),
            )
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(|v| Some(Json(v)))
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("malformed JSON: {e}")))
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than {} bytes", crate::middleware::MAX_BODY_BYTES),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with 'Content-Type: application/json'",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => {
            ApiError::new(ErrorCode::ValidationFailed, clean(&text, "invalid request body"))
        }
        _ => ApiError::new(ErrorCode::InvalidRequest, clean(&text, "malformed JSON")),
    }
}

/// axum's messages start with a generic sentence; keep the part that names the problem.
fn clean(text: &str, what: &str) -> String {
    let detail = text.split_once(": ").map(|(_, rest)| rest).unwrap_or(text);
    format!("{what}: {detail}")
}

/// Query parameters; a bad one is a 400 that names it.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, clean(&rejection.body_text(), "invalid query string"))
}

/// The request id and client address, for audit entries.
pub struct Ctx(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Ctx(context(parts)))
    }
}

pub fn context(parts: &Parts) -> RequestContext {
    RequestContext {
        request_id: current_request_id(),
        source: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()),
        by_server: false,
        audited: parts
            .extensions
            .get::<crate::audit_trail::RequestAudit>()
            .map(|a| a.audited.clone())
            .unwrap_or_default(),
    }
}
