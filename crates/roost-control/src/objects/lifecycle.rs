//! Lifecycle rules: expiration of current objects by age (and prefix), and aborting
//! multipart uploads that were not completed after N days. Stored as JSON on the bucket
//! (the S3 door reads and writes them as S3's XML) and applied by the housekeeping task.

use roost_store::buckets::BucketRow;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub enabled: bool,
    #[serde(default)]
    pub prefix: String,
    /// Current objects older than this many days are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_days: Option<i32>,
    /// Multipart uploads started more than this many days ago are aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_incomplete_days: Option<i32>,
}

pub fn rules_of(bucket: &BucketRow) -> Vec<Rule> {
    bucket.lifecycle.as_deref().and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default()
}
