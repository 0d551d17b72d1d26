//! Login, logout and "who am I".

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::tokens::Scope;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Create, modify and delete resources.
    Operator,
    /// Everything, including users and server settings.
    Admin,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// A new session. The token is also set as the httpOnly `roost_session` cookie; browser
/// clients send `csrf_token` as the `X-CSRF-Token` header on mutations.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
    pub user: User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Session,
    Token,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub user: User,
    /// How this request was authenticated.
    pub auth: AuthMethod,
    /// What the credential may do: `admin` for sessions, the token's scope otherwise.
    pub scope: Scope,
    /// The API token's id and name, when authenticated by one.
    #[serde(default)]
    pub token_id: Option<String>,
    #[serde(default)]
    pub token_name: Option<String>,
    /// When the session or token stops working (absent: never).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The one project a restricted token may act in.
    #[serde(default)]
    pub project_id: Option<String>,
}
