//! The control plane's error: a code from the API, a message for people, and what the
//! HTTP layer needs to render it (field details, Retry-After).

use std::time::Duration;

use roost_api::{ErrorCode, FieldError};
use roost_store::StoreError;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub details: Vec<FieldError>,
    pub retry_after: Option<Duration>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a 500 says: the details are in the log line with the request id.
pub const INTERNAL_MESSAGE: &str = "internal error; the request id finds it in the server log";

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error { code, message: message.into(), details: Vec::new(), retry_after: None }
    }

    pub fn not_found(kind: &str, key: &str) -> Error {
        Error::new(ErrorCode::NotFound, format!("{kind} '{key}' not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Conflict, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Forbidden, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Unauthorized, message)
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::InvalidRequest, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Unprocessable, message)
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Internal, message)
    }

    /// A validation failure listing every bad field.
    pub fn validation(details: Vec<FieldError>) -> Error {
        let message = match details.as_slice() {
            [one] => format!("invalid {}: {}", one.field, one.message),
            many => format!("invalid fields: {}", many.iter().map(|d| d.field.as_str()).collect::<Vec<_>>().join(", ")),
        };
        Error { details, ..Error::new(ErrorCode::ValidationFailed, message) }
    }

    /// What a client may read: an internal error's message names internals (host paths,
    /// the store's errors), so it stays in the log and clients get this sentence.
    pub fn public_message(&self) -> &str {
        if self.code.status() == 500 { INTERNAL_MESSAGE } else { &self.message }
    }

    pub fn rate_limited(retry_after: Duration) -> Error {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        Error {
            retry_after: Some(Duration::from_secs(secs)),
            ..Error::new(ErrorCode::RateLimited, format!("too many requests; retry in {secs}s"))
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Error {
        match err {
            StoreError::NotFound => Error::new(ErrorCode::NotFound, "not found"),
            StoreError::Conflict(msg) => Error::conflict(msg),
            StoreError::InvalidCursor => {
                Error::invalid("invalid cursor: pass the next_cursor of the previous page, with the same sort")
            }
            err if err.is_unavailable() => {
                tracing::error!(error = %err, "store unavailable");
                Error::new(ErrorCode::Unavailable, "the store is unavailable; try again")
            }
            err => {
                tracing::error!(error = %err, "store error");
                Error::internal("internal error in the store")
            }
        }
    }
}

/// Collects field errors during validation.
#[derive(Debug, Default)]
pub struct Validator {
    details: Vec<FieldError>,
}

impl Validator {
    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) -> &mut Self {
        if !ok {
            self.details.push(FieldError { field: field.to_string(), message: message.into() });
        }
        self
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.details.push(FieldError { field: field.to_string(), message: message.into() });
    }

    pub fn finish(self) -> Result<()> {
        if self.details.is_empty() { Ok(()) } else { Err(Error::validation(self.details)) }
    }
}

/// Text that becomes a command line, an environment or a path on a node: the kernel
/// passes those as C strings, which cannot hold a NUL byte.
pub fn check_no_nul(v: &mut Validator, field: &str, value: &str) {
    v.check(!value.contains('\0'), field, "must not contain a NUL byte");
}

/// Resource names: 1-63 characters of `a-z 0-9 - _ .`, starting with a letter or digit.
pub fn check_name(v: &mut Validator, field: &str, name: &str) {
    let valid_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    let starts_ok = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    v.check(
        !name.is_empty() && name.len() <= 63 && valid_chars && starts_ok,
        field,
        "must be 1-63 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["ci", "web-1", "a.b_c", "0day"] {
            let mut v = Validator::default();
            check_name(&mut v, "name", ok);
            assert!(v.finish().is_ok(), "{ok}");
        }
        for bad in ["", "-x", "Web", "a b", "x/y", &"a".repeat(64)] {
            let mut v = Validator::default();
            check_name(&mut v, "name", bad);
            assert!(v.finish().is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_message_names_the_field() {
        let err = Error::validation(vec![FieldError { field: "scope".into(), message: "unknown".into() }]);
        assert_eq!(err.message, "invalid scope: unknown");
        assert_eq!(err.code.status(), 400);
    }
}
