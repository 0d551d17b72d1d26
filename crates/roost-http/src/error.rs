//! Rendering errors: every failure, ours or axum's, becomes the documented JSON shape
//! with the request id, and never leaks internals.

use std::any::Any;

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use roost_api::{ErrorBody, ErrorCode, ErrorResponse};
use roost_control::Error;

use crate::middleware::current_request_id;

pub use roost_control::error::INTERNAL_MESSAGE;

/// A control-plane error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        ApiError(err)
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError(Error::new(code, message))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = self.0;
        let status = StatusCode::from_u16(err.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(code = %err.code, message = %err.message, "request failed");
        }
        // An internal error's message is for the log only (it may name host paths or the
        // store's innards); the request id in the body leads there.
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            err.message = INTERNAL_MESSAGE.to_string();
            err.details.clear();
        }
        let body = ErrorResponse {
            error: ErrorBody {
                code: err.code,
                message: err.message,
                request_id: current_request_id(),
                details: err.details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(wait) = err.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs()));
        }
        if err.code == ErrorCode::Unauthorized {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"roost\""));
        }
        // A body refused for its size is often answered before it is read: the rest of
        // it may still be on the wire, so the connection ends here rather than being
        // offered to the client's next request, which would fail on it.
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The code of an error status, for errors that were not ours to begin with.
pub fn code_for_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        400 => ErrorCode::InvalidRequest,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        409 => ErrorCode::Conflict,
        412 => ErrorCode::PreconditionFailed,
        413 => ErrorCode::PayloadTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        422 => ErrorCode::Unprocessable,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::Unavailable,
        s if s >= 500 => ErrorCode::Internal,
        _ => ErrorCode::InvalidRequest,
    }
}

/// Makes every error of the API the JSON shape, including the plain-text rejections of
/// axum's own extractors and layers (a WebSocket request without its upgrade headers, a
/// body over a limit): clients parse one error format. Headers such as `Allow` and
/// `Retry-After` stay.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = {
        let path = req.uri().path();
        path.starts_with("/v1/") || path.starts_with("/health/") || path == "/metrics"
    };
    let response = next.run(req).await;
    let status = response.status();
    let json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !api || json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_string();
    let message = if message.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { message };
    let mut converted = ApiError::new(code_for_status(status), message).into_response();
    *converted.status_mut() = status;
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            converted.headers_mut().insert(name.clone(), value.clone());
        }
    }
    converted
}

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no route for {method} {}", uri.path()))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {}", uri.path()))
}

/// A panic in a handler is a bug: log it, answer 500 with the request id only.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "handler panicked");
    ApiError::new(ErrorCode::Internal, INTERNAL_MESSAGE).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn a_refused_body_ends_its_connection() {
        let too_large = ApiError::new(roost_api::ErrorCode::PayloadTooLarge, "too large").into_response();
        assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(too_large.headers()[header::CONNECTION], "close");
        let conflict = ApiError::new(roost_api::ErrorCode::Conflict, "taken").into_response();
        assert!(conflict.headers().get(header::CONNECTION).is_none(), "other errors keep the connection");
    }

    #[tokio::test]
    async fn plain_text_errors_become_the_json_shape() {
        let app = axum::Router::new()
            .route(
                "/v1/plain",
                axum::routing::get(|| async {
                    (StatusCode::BAD_REQUEST, [(header::ALLOW, "GET")], "Connection header did not include 'upgrade'")
                }),
            )
            .route(
                "/v1/boom",
                axum::routing::get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "/var/lib/roost: EIO") }),
            )
            .route("/v1/fine", axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(json_errors));
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let r = app.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
                let status = r.status();
                let allow = r.headers().get(header::ALLOW).cloned();
                let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
                (status, allow, bytes)
            }
        };
        let (status, allow, body) = call("/v1/plain").await;
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (400, Some("invalid_request")));
        assert!(body["error"]["message"].as_str().unwrap().contains("upgrade"));
        assert_eq!(allow.unwrap(), "GET", "headers stay");
        let (status, _, body) = call("/v1/boom").await;
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status.as_u16(), body["error"]["message"].as_str()), (500, Some(INTERNAL_MESSAGE)));
        let (status, _, body) = call("/v1/fine").await;
        assert_eq!((status.as_u16(), &body[..]), (200, &b"ok"[..]), "successes pass untouched");
    }
}
