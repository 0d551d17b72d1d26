//! API tokens: long-lived bearer credentials for scripts and CI.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use chrono::{DateTime, Utc};

/// What a token may do. Ordered: `read` < `write` < `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// GET requests only.
    Read,
    /// Read and mutate resources, but not manage users or server settings.
    Write,
    /// Everything the owner may do.
    Admin,
}

impl Scope {
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: String,
    pub name: String,
    /// The first characters of the secret, to recognise it (`rst_ab12cd34`).
    pub prefix: String,
    pub scope: Scope,
    /// The owner's user id.
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    /// Absent: never expires.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Updated at most once a minute.
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When set, the token acts only in this project (id).
    #[serde(default)]
    pub project_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateTokenRequest {
    /// Unique among the owner's tokens: 1-63 characters of `a-z 0-9 - _ .`, starting
    /// with a letter or digit.
    pub name: String,
    /// Defaults to `read`. Never more than the caller's own credential allows.
    #[serde(default)]
    pub scope: Option<Scope>,
    /// Lifetime such as `30d`, `12h`, `90m`. Absent (and no `expires_at`): never expires.
    #[serde(default)]
    pub expires_in: Option<String>,
    /// An absolute expiry instead of `expires_in`.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Restrict the token to one project (id or name) you belong to.
    #[serde(default)]
    pub project: Option<String>,
}

/// A new token, with its secret: shown this once and never again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: Token,
    /// Send as `Authorization: Bearer <secret>` or `ROOST_TOKEN=<secret>`.
    pub secret: String,
}

/// `PATCH /v1/tokens/{id}`: rename (scope and expiry never change: make a new token).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateTokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
