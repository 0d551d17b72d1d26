//! Extractors whose rejections are the API's JSON errors: malformed JSON names the
//! problem, and the request context carries id and client address to the services.

use std::net::SocketAddr;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use roost_api::ErrorCode;
use roost_control::RequestContext;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::middleware::current_request_id;

/// A JSON body; rejections become 400 (syntax, types, an array where an object belongs),
/// 413 (size) or 415 (content type).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with 'Content-Type: application/json'",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|_| too_large())?;
        parse(&bytes).map(Json)
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("request body is larger than {} bytes", crate::middleware::MAX_BODY_BYTES),
    )
}

/// `application/json` or `application/<something>+json`, parameters allowed.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body as `T`: malformed JSON is `invalid_request`, JSON of the wrong shape
/// `validation_failed`; both 400.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    crate::strict_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::new(ErrorCode::ValidationFailed, format!("invalid request body: {e}"))
        }
        _ => ApiError::new(ErrorCode::InvalidRequest, format!("malformed JSON: {e}")),
    })
}

/// An optional JSON body: absent or empty is `None`.
impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|_| too_large())?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse(&bytes).map(|v| Some(Json(v)))
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

/// Path parameters; one that does not parse (a pid or port out of range) is a 400 that
/// names it, in the API's JSON error shape.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    match rejection {
        PathRejection::FailedToDeserializePathParams(e) => {
            ApiError::new(ErrorCode::InvalidRequest, format!("invalid path parameter: {}", e.body_text()))
        }
        // No parameters where the route has some: our bug, not the caller's.
        other => ApiError::new(ErrorCode::Internal, other.body_text()),
    }
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
    // The client's address as `client_info` settled it (a trusted proxy's word), else the peer.
    let source = match parts.extensions.get::<crate::middleware::ClientInfo>() {
        Some(info) => info.addr.map(|a| a.to_string()),
        None => parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()),
    };
    RequestContext {
        request_id: current_request_id(),
        source,
        by_server: false,
        audited: parts
            .extensions
            .get::<crate::audit_trail::RequestAudit>()
            .map(|a| a.audited.clone())
            .unwrap_or_default(),
    }
}

/// Whether the request reached us over HTTPS (see [`crate::middleware::ClientInfo`]):
/// cookies are `Secure` then.
pub struct Https(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Https {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Https(parts.extensions.get::<crate::middleware::ClientInfo>().is_some_and(|c| c.https)))
    }
}
