//! Health and server-wide administration.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Per-check results, e.g. `{"store": "ok", "migrations": "ok"}`.
    #[serde(default)]
    pub checks: std::collections::BTreeMap<String, String>,
}

/// The `result` of a `system.backup` operation (`POST /v1/system/backups`): a consistent
/// copy of the embedded SQLite store in the data directory's `backups/` folder.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackupResult {
    pub path: String,
    pub bytes: u64,
}
