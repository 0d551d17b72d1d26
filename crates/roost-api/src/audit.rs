//! The audit log: append-only, hash-chained, readable by admins.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub time: DateTime<Utc>,
    /// User id (`anonymous` for failed logins, `system` for the server itself).
    pub actor: String,
    /// The actor's user name, when the actor is a user that still exists.
    #[serde(default)]
    pub actor_name: Option<String>,
    /// The API token used, if any.
    #[serde(default)]
    pub actor_token: Option<String>,
    /// Client address.
    #[serde(default)]
    pub source: Option<String>,
    /// `<resource>.<verb>`, e.g. `token.create`, `auth.login`.
    pub action: String,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub resource_id: Option<String>,
    /// `success` or `failure: <code>`.
    pub result: String,
    #[serde(default)]
    pub request_id: Option<String>,
    /// SHA-256 of the request body with secrets removed.
    #[serde(default)]
    pub body_digest: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// User id, user name or token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// An action (`token.create`) or a prefix (`token.` or `token*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// A resource id or type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// RFC 3339 time or a duration ago (`24h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// RFC 3339 time or a duration ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The result of checking the chain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditVerification {
    pub ok: bool,
    /// Entries checked in the store.
    pub checked: u64,
    /// The chain starts after this archived sequence number (0: from the beginning).
    pub starts_after: i64,
    /// The first sequence number whose link is broken.
    #[serde(default)]
    pub first_broken_seq: Option<i64>,
    #[serde(default)]
    pub reason: Option<String>,
}
