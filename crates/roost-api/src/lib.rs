//! Roost's public API: the request and response types shared by the server, the typed
//! client, the CLI and the generated OpenAPI document. Modules are named by resource.

pub mod auth;
pub mod error;
pub mod events;
pub mod ids;
pub mod list;
pub mod operations;
pub mod system;
pub mod tokens;

pub use error::{ErrorBody, ErrorCode, ErrorResponse, FieldError};
pub use list::{ListParams, Page};

/// Timestamps on the wire are RFC 3339 in UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
