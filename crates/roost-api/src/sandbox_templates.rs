//! Sandbox templates: the builtin ones (`base`, `code-interpreter-v1`) and those a
//! project builds from a base template plus setup commands. A built template's image is
//! content-addressed by its cache key, the SHA-256 of the base image's digest and the
//! ordered commands, so building the same inputs again is a cache hit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::images::ImageStatus;

/// The template `roost sandbox template build` starts from unless `--from` says otherwise.
pub const DEFAULT_BASE: &str = "base";
/// At most this many commands per build, each at most [`MAX_COMMAND_LEN`] bytes.
pub const MAX_COMMANDS: usize = 64;
pub const MAX_COMMAND_LEN: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SandboxTemplate {
    /// The id of the template's image (`img-…`).
    pub id: String,
    pub name: String,
    /// Absent for a builtin template.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Shipped with Roost (built from Debian packages on first use).
    pub builtin: bool,
    /// The template it was built from.
    #[serde(default)]
    pub base: Option<String>,
    /// SHA-256 of the base image's digest and the commands: equal inputs, equal key.
    #[serde(default)]
    pub cache_key: Option<String>,
    /// The digest of the image in the node's image store.
    #[serde(default)]
    pub digest: Option<String>,
    /// The setup commands, run in order with `sh -c`.
    #[serde(default)]
    pub commands: Vec<String>,
    /// The unpacked size (absent until built).
    #[serde(default)]
    pub size_bytes: Option<u64>,
    pub status: ImageStatus,
    #[serde(default)]
    pub description: Option<String>,
    /// Builds answered from the cache.
    pub hits: u64,
    /// Builds that ran the commands.
    pub misses: u64,
    /// The last build or sandbox create that used it.
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// How long the last real build took (its commands and the snapshot).
    #[serde(default)]
    pub build_seconds: Option<f64>,
    pub created_at: DateTime<Utc>,
}

/// `POST /v1/sandbox-templates`: `roost sandbox template build NAME --from BASE --run CMD…`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct BuildSandboxTemplateRequest {
    pub name: String,
    /// The base template (default `base`): a builtin one or one of the project's.
    #[serde(default)]
    pub from: Option<String>,
    /// Commands run in order with `sh -c` as root in `/`, with network access.
    pub run: Vec<String>,
    /// The project (default `default`).
    #[serde(default)]
    pub project: Option<String>,
}

/// What a finished build operation's `result` holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SandboxTemplateBuild {
    /// `hit` (an image with this cache key was there: nothing ran) or `miss`.
    pub cache: String,
    pub template: SandboxTemplate,
    /// The commands' output (the last 64 KiB), empty on a hit.
    #[serde(default)]
    pub log: String,
    /// How many of the first commands were not run because the project had built them
    /// already (a template whose commands are a prefix of these): all of them on a hit.
    #[serde(default)]
    pub cached_steps: u32,
}

/// One template's detail: the template and its last build's output.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SandboxTemplateDetail {
    #[serde(flatten)]
    pub template: SandboxTemplate,
    /// The last real build's output (the last 64 KiB).
    #[serde(default)]
    pub build_log: String,
}
