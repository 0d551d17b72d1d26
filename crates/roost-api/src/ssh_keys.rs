//! SSH keys: public keys a user keeps to install into instances. The private half of a
//! generated key is returned once and never stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SshKey {
    pub id: String,
    pub name: String,
    /// `ssh-ed25519 AAAA… name`, as it goes into `authorized_keys`.
    pub public_key: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    /// Set when the key was made with a token restricted to one project: only that
    /// project's instances may get it.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Set when the key was made with an expiring token: after this it goes into no new
    /// instance (instances that have it keep it).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST /v1/ssh-keys`: import `public_key`, or without it generate an Ed25519 pair.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateSshKeyRequest {
    pub name: String,
    /// An OpenSSH public key line (`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedSshKey {
    pub key: SshKey,
    /// The generated private key (OpenSSH format), shown this once; absent on import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

/// `PATCH /v1/ssh-keys/{id}`: rename (the key itself never changes).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateSshKeyRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
