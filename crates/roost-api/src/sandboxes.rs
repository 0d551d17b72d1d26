//! Sandboxes: ephemeral instances with a TTL, used through the E2B-compatible API with
//! keys of their own (`e2b_` and 40 hex characters).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Default limits of a new key.
pub const DEFAULT_MAX_SANDBOXES: u32 = 20;
pub const DEFAULT_CREATES_PER_MINUTE: u32 = 60;

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateSandboxKeyRequest {
    /// A label for the key.
    pub name: String,
    /// The project its sandboxes run in (default: `default`).
    #[serde(default)]
    pub project: Option<String>,
    /// Most sandboxes alive at once (default 20).
    #[serde(default)]
    pub max_sandboxes: Option<u32>,
    /// Most creations per minute (default 60); more get 429 with Retry-After.
    #[serde(default)]
    pub creates_per_minute: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SandboxKey {
    pub id: String,
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub project_id: String,
    pub max_sandboxes: u32,
    pub creates_per_minute: u32,
    pub created_at: DateTime<Utc>,
}

/// The key with its secret, shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedSandboxKey {
    pub key: SandboxKey,
    /// `e2b_` and 40 hex characters: set it as `E2B_API_KEY`.
    pub secret: String,
}
