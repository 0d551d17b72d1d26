//! Images: root filesystems instances start from.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageStatus {
    Building,
    Ready,
    Failed,
}

impl ImageStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Building => "building",
            ImageStatus::Ready => "ready",
            ImageStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ImageStatus> {
        [ImageStatus::Building, ImageStatus::Ready, ImageStatus::Failed].into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Image {
    pub id: String,
    pub name: String,
    /// Absent for builtin images, which every project sees.
    #[serde(default)]
    pub project_id: Option<String>,
    /// `builtin`, `debian` or `import`.
    pub source: String,
    /// What it was made from, e.g. `debian:bookworm +curl,python3`.
    #[serde(default)]
    pub description: Option<String>,
    pub status: ImageStatus,
    #[serde(default)]
    pub status_reason: Option<String>,
    /// SHA-256 of what made it: the same inputs give the same image.
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub size_bytes: Option<u64>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct BuildImageRequest {
    pub name: String,
    /// `debian:bookworm` (the suite of Debian to install).
    pub from: String,
    /// Extra Debian packages.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Project name or id; default: `default`.
    #[serde(default)]
    pub project: Option<String>,
}

/// `PATCH /v1/images/{id}`: the description (`null` clears it); a project's images only.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateImageRequest {
    #[serde(default, with = "crate::patch::double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}
