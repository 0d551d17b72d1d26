//! Object storage: buckets (served over S3), S3 access keys and presigned URLs.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use chrono::{DateTime, Utc};

/// A bucket: a flat namespace of objects, reached over the S3 endpoint by its name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Bucket {
    /// `bkt-` followed by 12 characters.
    pub id: String,
    /// Globally unique (S3 semantics): 3-63 characters of `a-z 0-9 - .`, starting and
    /// ending with a letter or digit, not shaped like an IP address.
    pub name: String,
    pub project_id: String,
    /// Number of objects stored.
    pub objects: i64,
    /// Bytes stored (sum of object sizes).
    pub size_bytes: i64,
    /// Anyone may GET and HEAD objects without a signature (a public-read bucket policy).
    pub public_read: bool,
    /// `Enabled` or `Suspended` (set over S3); absent when versioning was never enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub created_by: Option<String>,
}

/// `PATCH /v1/buckets/{id}`: make it public-read or private (a public-read bucket policy
/// is set or removed), or turn versioning `Enabled` or `Suspended` (once enabled it can
/// only be suspended, as in S3).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateBucketRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_read: Option<bool>,
    /// `Enabled` or `Suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<String>,
}

/// `PATCH /v1/s3-keys/{id}`: the description (`null` clears it). What a key may reach
/// does not change: make a new key for that.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateS3KeyRequest {
    #[serde(default, with = "crate::patch::double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateBucketRequest {
    pub name: String,
    /// Project id or name; defaults to `default`.
    #[serde(default)]
    pub project: Option<String>,
    /// Allow anonymous GET/HEAD of objects (static hosting). Defaults to false.
    #[serde(default)]
    pub public_read: Option<bool>,
}

/// An S3 access key. It acts with its owner's rights, narrowed by its own limits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct S3Key {
    /// The access key id: `RK` and 18 uppercase letters or digits (20 characters, the shape
    /// of an AWS access key id).
    pub id: String,
    /// Free text to recognise the key by; `presign` for the key `roost bucket presign` signs with.
    #[serde(default)]
    pub description: Option<String>,
    /// The owner's user id.
    pub user_id: String,
    /// When not empty, the key can reach only these buckets: their names when it was made.
    #[serde(default)]
    pub buckets: Vec<String>,
    /// The ids of those buckets: what the limit is by (a bucket deleted and made again
    /// under the same name is another bucket, out of the key's reach).
    #[serde(default)]
    pub bucket_ids: Vec<String>,
    /// The key may only read (GET, HEAD, list).
    pub read_only: bool,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the key stops working: set for a key made with an expiring API token (it
    /// ends with the token).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The one project whose buckets the key reaches: set for a key made with a token
    /// restricted to a project.
    #[serde(default)]
    pub project_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateS3KeyRequest {
    #[serde(default)]
    pub description: Option<String>,
    /// Limit the key to these buckets (names or ids; the limit is kept by id); empty: every
    /// bucket its owner may reach.
    #[serde(default)]
    pub buckets: Vec<String>,
    #[serde(default)]
    pub read_only: bool,
}

/// A new key with its secret: shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedS3Key {
    #[serde(flatten)]
    pub key: S3Key,
    /// The secret access key (40 characters).
    pub secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum PresignMethod {
    Get,
    Put,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PresignRequest {
    /// The object key.
    pub key: String,
    /// `GET` (default) or `PUT`.
    #[serde(default)]
    pub method: Option<PresignMethod>,
    /// Lifetime such as `1h`, `15m`, `7d` (1 second to 7 days); defaults to `1h`.
    #[serde(default)]
    pub expires: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PresignedUrl {
    pub url: String,
    pub method: PresignMethod,
    pub expires_at: DateTime<Utc>,
}

/// `GET /v1/buckets/{id}/objects`: one level of a bucket, S3's ListObjectsV2 as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ObjectListParams {
    /// Only keys starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Group keys by this (usually `/`): what lies below comes back as `prefixes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// At most this many keys and prefixes (1-1000, default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ObjectList {
    /// The "folders" under the prefix (with `delimiter`).
    pub prefixes: Vec<String>,
    pub objects: Vec<ObjectEntry>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// What `PUT /v1/buckets/{id}/objects/{key}` stored.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PutObjectResult {
    pub key: String,
    pub size: u64,
    pub etag: String,
}
