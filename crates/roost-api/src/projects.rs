//! Projects: the unit of tenancy. Every resource belongs to exactly one.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Role;

/// The name of the project that exists from the first start.
pub const DEFAULT_PROJECT: &str = "default";

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateProjectRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateProjectRequest {
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub user_id: String,
    pub user_name: String,
    /// `operator` or `viewer` in this project (an admin user is admin everywhere).
    pub role: Role,
    pub added_at: DateTime<Utc>,
}

/// `PUT /v1/projects/{id}/members/{user}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetMemberRequest {
    /// `operator` or `viewer`.
    pub role: Role,
}

/// The resources a project's quota can limit.
pub const QUOTA_RESOURCES: &[(&str, &str)] = &[
    ("instances", "instances"),
    ("vcpus", "virtual CPUs of instances"),
    ("memory_bytes", "memory of instances, in bytes"),
    ("volume_gib", "size of volumes, in GiB"),
    ("buckets", "buckets"),
    ("bucket_gib", "bytes stored in buckets, in GiB"),
];

/// Limits by resource; a missing resource is unlimited. In `PUT .../quota` a `null`
/// value removes that limit and absent resources stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Quota {
    #[serde(flatten)]
    pub limits: BTreeMap<String, Option<i64>>,
}

/// What a project uses, against its limits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub project_id: String,
    pub resources: BTreeMap<String, UsageLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageLine {
    pub used: i64,
    /// Absent: unlimited.
    #[serde(default)]
    pub limit: Option<i64>,
}
