//! The one error shape every endpoint returns:
//! `{"error": {"code": "not_found", "message": "...", "request_id": "..."}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// A sentence for people; do not parse it, match on `code`.
    pub message: String,
    /// The request id (also in the `X-Request-Id` response header and the server's logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Per-field problems of a `validation_failed` error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The request field, e.g. `name` or `expires_in`.
    pub field: String,
    pub message: String,
}

/// Machine-readable error codes, each with one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request could not be read (malformed JSON, bad query string).
    InvalidRequest,
    /// 400: the request was read but fields are invalid; see `details`.
    ValidationFailed,
    /// 401: no credentials, or expired or unknown ones.
    Unauthorized,
    /// 403: authenticated, but the role, scope or CSRF check forbids this.
    Forbidden,
    /// 404: no such resource or route (or one the caller may not see).
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 409: a name is taken or the resource's state forbids the action.
    Conflict,
    /// 412: `If-Match` names a version that is no longer current.
    PreconditionFailed,
    /// 413
    PayloadTooLarge,
    /// 415
    UnsupportedMediaType,
    /// 422: well-formed, but cannot be done in this situation.
    Unprocessable,
    /// 429: see the `Retry-After` header.
    RateLimited,
    /// 500: a bug or an unexpected failure; the request id finds it in the logs.
    Internal,
    /// 503: a dependency (the store) is unavailable or the server is shutting down.
    Unavailable,
    /// A code this client version does not know yet.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::ValidationFailed => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::PreconditionFailed => 412,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::Unprocessable => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal | ErrorCode::Unknown => 500,
            ErrorCode::Unavailable => 503,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PreconditionFailed => "precondition_failed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Unprocessable => "unprocessable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
