//! Users: accounts of people, managed by admins; everyone edits their own profile.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Role, User};

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    /// Unique: 1-63 characters of `a-z 0-9 - _ .`.
    pub name: String,
    /// Defaults to `viewer`.
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// The initial password (at least 8 characters); absent: one is generated and
    /// returned once.
    #[serde(default)]
    pub password: Option<String>,
    /// Projects to add the user to (ids or names), with the user's role; defaults to
    /// `["default"]`. An empty list adds none.
    #[serde(default)]
    pub projects: Option<Vec<String>>,
}

/// A new user, with the generated password when none was given (shown this once).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedUser {
    pub user: User,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `PATCH /v1/users/{id}`: absent fields stay; `null` clears `email`/`display_name`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateUserRequest {
    #[serde(default, with = "crate::patch::double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, with = "crate::patch::double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    /// Admins only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// A user as admins see it: with status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserDetails {
    #[serde(flatten)]
    pub user: User,
    pub disabled: bool,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// `POST /v1/users/{id}/password` (admins): set the given password, or generate one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResetPasswordResponse {
    /// The generated password, when none was given (shown this once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `POST /v1/auth/password`: change your own password; your other sessions end.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}
