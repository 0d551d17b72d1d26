//! The object store's background task: applies lifecycle rules and collects garbage left
//! by crashes (temp files, files no row names, uploads nobody completes, directories of
//! deleted buckets). Every step is idempotent; a run after a crash converges.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use roost_store::now_ms;

use super::lifecycle::rules_of;
use crate::Control;
use crate::tasks::{BackgroundTask, TaskSpec};

/// The job fails only when the store does.
type JobResult<T> = crate::Result<T>;

/// Files younger than this are left alone: a write in progress has not committed its row yet.
const GRACE: Duration = Duration::from_secs(3600);
/// Multipart uploads with no lifecycle rule are aborted after this long.
pub const UPLOAD_MAX_AGE_DAYS: i64 = 7;

/// Seconds in a lifecycle "day": 86400, or `ROOST_S3_DAY_SECONDS` (for tests only).
pub fn day_ms() -> i64 {
    std::env::var("ROOST_S3_DAY_SECONDS").ok().and_then(|v| v.parse::<i64>().ok()).filter(|v| *v > 0).unwrap_or(86_400)
        * 1000
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub expired_objects: u64,
    pub aborted_uploads: u64,
    pub removed_files: u64,
}

impl Control {
    /// One pass of lifecycle and garbage collection over every bucket.
    pub async fn object_housekeeping(&self, grace: Duration) -> JobResult<Report> {
        let mut report = Report::default();
        let store = self.store();
        let day = day_ms();
        let now = now_ms();
        let buckets = store.all_buckets().await?;
        for bucket in &buckets {
            for rule in rules_of(bucket).iter().filter(|r| r.enabled) {
                if let Some(days) = rule.expiration_days {
                    let before = now - days as i64 * day;
                    loop {
                        let old = store.objects_modified_before(&bucket.id, before, 1000).await?;
                        let matching: Vec<_> = old.into_iter().filter(|o| o.key.starts_with(&rule.prefix)).collect();
                        if matching.is_empty() {
                            break;
                        }
                        for o in &matching {
                            let tx = self.system_change().await?;
                            let _ = self.delete_key(tx, "bucket.object.expire", bucket, &o.key).await;
                            report.expired_objects += 1;
                        }
                        if matching.len() < 1000 {
                            break;
                        }
                    }
                }
            }
        }
        // Uploads: a bucket's rule, else the default age.
        for upload in store.uploads_started_before(now).await? {
            let Some(bucket) = buckets.iter().find(|b| b.id == upload.bucket_id) else { continue };
            let days = rules_of(bucket)
                .iter()
                .filter(|r| r.enabled && upload.key.starts_with(&r.prefix))
                .filter_map(|r| r.abort_incomplete_days)
                .min()
                .map(i64::from)
                .unwrap_or(UPLOAD_MAX_AGE_DAYS);
            if upload.created_at < now - days * day {
                let mut tx = self.system_change().await?;
                roost_store::buckets::delete_upload(tx.conn(), &upload.id).await?;
                let body = serde_json::json!({"key": upload.key, "upload_id": upload.id, "reason": "lifecycle"});
                tx.audit("bucket.upload.abort", Some(("bucket", &bucket.id)), Some(&body)).await?;
                tx.commit().await?;
                let disk = self.disk();
                disk.remove_dir(disk.upload_dir(&bucket.id, &upload.id)).await;
                report.aborted_uploads += 1;
            }
        }
        report.removed_files += self.collect_files(&buckets, grace).await?;
        Ok(report)
    }

    /// Removes files no row names (older than `grace`), and directories of deleted buckets.
    async fn collect_files(&self, buckets: &[roost_store::buckets::BucketRow], grace: Duration) -> JobResult<u64> {
        let disk = self.disk();
        let root = disk.root().to_path_buf();
        let Ok(entries) = std::fs::read_dir(&root) else { return Ok(0) };
        let known: HashSet<&str> = buckets.iter().map(|b| b.id.as_str()).collect();
        let old = |path: &std::path::Path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .map(|t| SystemTime::now().duration_since(t).unwrap_or_default() >= grace)
                .unwrap_or(false)
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let dir = entry.path();
            if !known.contains(name.as_str()) {
                if old(&dir) {
                    disk.remove_dir(dir).await;
                    removed += 1;
                }
                continue;
            }
            let files: HashSet<String> = self.store().object_file_ids(&name).await?.into_iter().collect();
            let uploads: HashSet<String> = self.store().uploads(&name).await?.into_iter().map(|u| u.id).collect();
            for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let fname = f.file_name().to_string_lossy().to_string();
                let path = f.path();
                match fname.as_str() {
                    "tmp" => {
                        for t in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                            if old(&t.path()) {
                                disk.remove(t.path()).await;
                                removed += 1;
                            }
                        }
                    }
                    "uploads" => {
                        for u in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                            let id = u.file_name().to_string_lossy().to_string();
                            if !uploads.contains(&id) && old(&u.path()) {
                                disk.remove_dir(u.path()).await;
                                removed += 1;
                            }
                        }
                    }
                    _ if !files.contains(&fname) && old(&path) => {
                        disk.remove(path).await;
                        removed += 1;
                    }
                    _ => {}
                }
            }
        }
        Ok(removed)
    }

    /// Registers the `s3_housekeeping` background task (whether or not the S3 listener
    /// is on: the REST routes write objects too): a pass at start, then every `every`
    /// (`--s3-housekeeping-interval`).
    pub fn register_object_housekeeping(&self, every: Duration) {
        let spec = TaskSpec {
            name: "s3_housekeeping",
            description: "Applies buckets' lifecycle rules (expiring objects, aborting old multipart uploads) and \
                          removes object files no row names (--s3-housekeeping-interval)",
            period: every,
        };
        self.tasks().register(spec, Housekeeping(self.clone()));
    }
}

struct Housekeeping(Control);

impl BackgroundTask for Housekeeping {
    async fn activate(&mut self) -> crate::Result<serde_json::Value> {
        let r = self.0.object_housekeeping(GRACE).await?;
        if r != Report::default() {
            tracing::info!(
                expired = r.expired_objects,
                aborted_uploads = r.aborted_uploads,
                removed_files = r.removed_files,
                "object store housekeeping"
            );
        }
        Ok(serde_json::json!({
            "expired_objects": r.expired_objects,
            "aborted_uploads": r.aborted_uploads,
            "removed_files": r.removed_files,
        }))
    }
}
