//! `s3s::S3` over the store (metadata) and [`Disk`] (data). Every operation resolves its
//! caller (an S3 key, or anonymous for public-read buckets) and checks the bucket access
//! through the control plane before touching anything.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use roost_control::buckets::S3Identity;
use roost_control::kernel::Change;
use roost_control::policy::ProjectWrite;
use roost_control::{Control, RequestContext};
use roost_store::buckets::{BucketDoc, BucketRow, ObjectRow, PartRow, UploadRow, Versioning};
use roost_store::now_ms;
use s3s::auth::Credentials;
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use crate::disk::{Disk, WriteError, Written, new_file_id};

/// The smallest part but the last one of a multipart upload (S3's rule).
const MIN_PART_SIZE: i64 = 5 << 20;
const MAX_PARTS: i32 = 10_000;
const LIST_BATCH: i64 = 1000;

/// The headers stored with an object and returned on GET/HEAD.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredHeaders {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl StoredHeaders {
    fn parse(s: Option<&str>) -> StoredHeaders {
        s.and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default()
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn metadata(&self) -> Option<Metadata> {
        (!self.metadata.is_empty()).then(|| self.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

fn ts_secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

fn internal(e: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %e, "S3 request failed");
    s3_error!(InternalError, "internal error")
}

/// A control-plane error as S3 reports it.
fn from_control(e: roost_control::Error) -> S3Error {
    use roost_api::ErrorCode as C;
    let code = match e.code {
        C::Forbidden | C::Unauthorized => S3ErrorCode::AccessDenied,
        C::NotFound => S3ErrorCode::NoSuchBucket,
        C::Conflict => S3ErrorCode::BucketAlreadyExists,
        C::ValidationFailed | C::InvalidRequest | C::Unprocessable => S3ErrorCode::InvalidArgument,
        C::RateLimited => S3ErrorCode::SlowDown,
        C::Unavailable => S3ErrorCode::ServiceUnavailable,
        _ => return internal(e.message),
    };
    S3Error::with_message(code, e.message)
}

fn write_error(e: WriteError) -> S3Error {
    match e {
        WriteError::Body(m) => s3_error!(IncompleteBody, "the request body could not be read: {m}"),
        WriteError::Io(e) => internal(e),
    }
}

fn etag_of(md5: &[u8; 16]) -> String {
    hex::encode(md5)
}

fn etag_matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(t) => t.value() == etag,
    }
}

/// `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since` for GET/HEAD, in
/// the order RFC 9110 and S3 evaluate them.
fn check_conditions(
    obj: &ObjectRow,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let modified = obj.modified_at / 1000;
    if let Some(c) = if_match {
        if !etag_matches(c, &obj.etag) {
            return Err(s3_error!(PreconditionFailed, "If-Match does not match the object's ETag"));
        }
    } else if let Some(t) = if_unmodified_since
        && modified > ts_secs(t)
    {
        return Err(s3_error!(PreconditionFailed, "the object was modified since If-Unmodified-Since"));
    }
    if let Some(c) = if_none_match {
        if etag_matches(c, &obj.etag) {
            return Err(S3Error::new(S3ErrorCode::NotModified));
        }
    } else if let Some(t) = if_modified_since
        && modified <= ts_secs(t)
    {
        return Err(S3Error::new(S3ErrorCode::NotModified));
    }
    Ok(())
}

/// Keys are strings, never paths: anything valid UTF-8 of 1-1024 bytes goes.
fn check_key(key: &str) -> S3Result<()> {
    if key.is_empty() || key.len() > 1024 {
        return Err(s3_error!(KeyTooLongError, "object keys are 1-1024 bytes"));
    }
    Ok(())
}

fn url_encode(s: &str) -> String {
    roost_control::presign::uri_encode(s, true)
}

#[derive(Clone)]
pub struct RoostS3 {
    pub(crate) control: Control,
    pub(crate) disk: Disk,
    pub(crate) region: String,
}

struct Listing {
    objects: Vec<ObjectRow>,
    prefixes: Vec<String>,
    truncated: bool,
    /// The last key or common prefix returned (the next marker).
    last: Option<String>,
}

impl RoostS3 {
    pub fn new(control: Control, region: String) -> RoostS3 {
        let disk = Disk::new(control.objects_dir());
        RoostS3 { control, disk, region }
    }

    fn ctx(&self) -> RequestContext {
        RequestContext { source: Some("s3".into()), ..Default::default() }
    }

    async fn caller(&self, creds: &Option<Credentials>) -> S3Result<Option<Arc<S3Identity>>> {
        let Some(c) = creds else { return Ok(None) };
        match self.control.s3_identity(&c.access_key).await.map_err(from_control)? {
            Some(identity) => Ok(Some(identity)),
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }

    async fn identity(&self, creds: &Option<Credentials>) -> S3Result<Arc<S3Identity>> {
        self.caller(creds).await?.ok_or_else(|| s3_error!(AccessDenied, "a signature is required"))
    }

    /// The bucket, once the caller may read it (or change it, with `write`).
    async fn bucket(&self, creds: &Option<Credentials>, name: &str, write: bool) -> S3Result<BucketRow> {
        let who = self.caller(creds).await?;
        let bucket = self.control.store().bucket_by_name(name).await.map_err(internal)?.ok_or_else(|| {
            S3Error::with_message(S3ErrorCode::NoSuchBucket, format!("the bucket '{name}' does not exist"))
        })?;
        match who {
            Some(who) => {
                self.control.s3_bucket_access(&who, &bucket, write).await.map_err(from_control)?;
            }
            None if !write && bucket.public_read != 0 => {}
            None => return Err(s3_error!(AccessDenied, "access denied")),
        }
        Ok(bucket)
    }

    /// The bucket, once the caller may change it, with the proof its changes open with
    /// (every write through S3 is a change of the kernel: row, audit entry, event). A
    /// refusal is audited as a failed `action`, as the REST door audits its refusals.
    async fn writable_bucket(
        &self,
        creds: &Option<Credentials>,
        name: &str,
        action: &str,
    ) -> S3Result<(BucketRow, ProjectWrite)> {
        let refused = |actor: &str, token: Option<String>, bucket: Option<&str>, code: &str| {
            let result = format!("failure: {code}");
            let bucket = bucket.map(str::to_string);
            let ctx = self.ctx();
            let (actor, action) = (actor.to_string(), action.to_string());
            async move {
                let resource = bucket.as_deref().map(|id| ("bucket", id));
                self.control.audit_failure(&ctx, &actor, token, &action, resource, &result, None).await
            }
        };
        let who = match self.identity(creds).await {
            Ok(who) => who,
            Err(e) => {
                refused("anonymous", None, None, "unauthorized").await;
                return Err(e);
            }
        };
        let (user, token) = (who.principal.user_id.as_str(), Some(who.key.id.clone()));
        let Some(bucket) = self.control.store().bucket_by_name(name).await.map_err(internal)? else {
            refused(user, token, None, "not_found").await;
            return Err(S3Error::with_message(
                S3ErrorCode::NoSuchBucket,
                format!("the bucket '{name}' does not exist"),
            ));
        };
        match self.control.s3_bucket_access(&who, &bucket, true).await {
            Ok(Some(proof)) => Ok((bucket, proof)),
            Ok(None) => Err(s3_error!(AccessDenied, "access denied")),
            Err(e) => {
                refused(user, token, Some(&bucket.id), "forbidden").await;
                Err(from_control(e))
            }
        }
    }

    /// Opens a change made with `proof` from the S3 door.
    async fn open(&self, proof: &ProjectWrite) -> S3Result<Change<'_>> {
        self.control.change(&self.ctx(), proof).await.map_err(from_control)
    }

    /// Sets (or clears) one of the bucket's settings documents as an audited change
    /// that announces the bucket (`bucket.updated`).
    #[allow(clippy::too_many_arguments)]
    async fn set_doc(
        &self,
        proof: &ProjectWrite,
        bucket: &BucketRow,
        doc: BucketDoc,
        value: Option<&str>,
        public_read: Option<bool>,
        action: &str,
        body: serde_json::Value,
    ) -> S3Result<()> {
        let done = async {
            let mut tx = self.control.change(&self.ctx(), proof).await?;
            roost_store::buckets::set_bucket_doc(tx.conn(), &bucket.id, doc, value, public_read).await?;
            tx.audit(action, Some(("bucket", &bucket.id)), Some(&body)).await?;
            tx.bare_event(
                "bucket.updated",
                "bucket",
                &bucket.id,
                roost_control::events::Audience::Project(bucket.project_id.clone()),
            );
            tx.commit().await
        };
        done.await.map_err(internal)
    }

    async fn object(&self, bucket: &BucketRow, key: &str) -> S3Result<ObjectRow> {
        self.object_at(bucket, key, None).await
    }

    /// The current version of a key, or the given version. A delete marker is "no such
    /// key" when current and "method not allowed" when asked for by id, as in S3.
    async fn object_at(&self, bucket: &BucketRow, key: &str, version: Option<&str>) -> S3Result<ObjectRow> {
        let store = self.control.store();
        let row = match version {
            None => store.object(&bucket.id, key).await.map_err(internal)?,
            Some(v) => store.object_version(&bucket.id, key, v).await.map_err(internal)?,
        };
        match row {
            Some(o) if !o.is_delete_marker() => Ok(o),
            Some(_) if version.is_some() => Err(s3_error!(MethodNotAllowed, "the version is a delete marker")),
            _ if version.is_some() => Err(s3_error!(NoSuchVersion, "the version does not exist")),
            _ => Err(s3_error!(NoSuchKey, "the key does not exist")),
        }
    }

    /// The version id a new write gets in this bucket.
    fn new_version_id(bucket: &BucketRow) -> String {
        match Versioning::of(bucket) {
            Versioning::Enabled => new_file_id(),
            _ => "null".to_string(),
        }
    }

    /// `x-amz-version-id` is answered by buckets that have (had) versioning.
    fn version_header(bucket: &BucketRow, version_id: &str) -> Option<String> {
        bucket.versioning.is_some().then(|| version_id.to_string())
    }

    /// Puts a written temp file in place and records the object; the replaced file (if
    /// any) is removed after the commit.
    #[allow(clippy::too_many_arguments)]
    async fn commit_object(
        &self,
        proof: &ProjectWrite,
        action: &str,
        bucket: &BucketRow,
        key: &str,
        written: &Written,
        etag: String,
        headers: &StoredHeaders,
        parts: Option<i64>,
    ) -> S3Result<ObjectRow> {
        let file_id = new_file_id();
        self.disk.install(written, self.disk.object_path(&bucket.id, &file_id)).await.map_err(internal)?;
        let row = ObjectRow {
            bucket_id: bucket.id.clone(),
            key: key.to_string(),
            file_id: file_id.clone(),
            size: written.size as i64,
            etag,
            headers: Some(headers.to_json()),
            parts,
            modified_at: now_ms(),
            version_id: Self::new_version_id(bucket),
            delete_marker: 0,
        };
        let result = async {
            let mut tx = self.control.change(&self.ctx(), proof).await?;
            let old = roost_store::buckets::put_object(tx.conn(), &row, Versioning::of(bucket)).await?;
            let body = serde_json::json!({"key": key, "size": row.size, "version_id": row.version_id});
            tx.audit(action, Some(("bucket", &bucket.id)), Some(&body)).await?;
            tx.commit().await?;
            Ok::<_, roost_control::Error>(old)
        }
        .await;
        match result {
            Ok(gone) => {
                for old in gone {
                    self.disk.remove(self.disk.object_path(&bucket.id, &old)).await;
                }
            }
            Err(e) => {
                self.disk.remove(self.disk.object_path(&bucket.id, &file_id)).await;
                return Err(internal(e));
            }
        }
        Ok(row)
    }

    async fn check_bytes(&self, bucket: &BucketRow, adding: i64) -> S3Result<()> {
        self.control.check_bucket_bytes(&bucket.project_id, adding).await.map_err(|e| {
            if e.code == roost_api::ErrorCode::Forbidden {
                S3Error::with_message(S3ErrorCode::AccessDenied, e.message)
            } else {
                from_control(e)
            }
        })
    }

    /// Keys (and common prefixes, with a delimiter) after `after`, starting with `prefix`.
    async fn list(
        &self,
        bucket: &BucketRow,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max_keys: i32,
    ) -> S3Result<Listing> {
        let max = max_keys.clamp(0, 1000) as usize;
        let mut out = Listing { objects: Vec::new(), prefixes: Vec::new(), truncated: false, last: None };
        // Where the next query starts: after the marker, or at the prefix.
        let (mut from, mut exclusive) = match after {
            Some(a) if a >= prefix => (a.to_string(), true),
            _ => (prefix.to_string(), false),
        };
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let common_prefix = |key: &str| -> Option<String> {
            let d = delimiter?;
            let rest = key.strip_prefix(prefix)?;
            rest.find(d).map(|i| format!("{prefix}{}", &rest[..i + d.len()]))
        };
        // A marker inside a rolled-up prefix (a continuation after a common prefix) skips
        // the rest of that prefix.
        let mut last_prefix = after.and_then(&common_prefix);
        if let Some(cp) = &last_prefix {
            from = format!("{cp}\u{10FFFF}");
            exclusive = true;
        }
        'outer: loop {
            let rows =
                self.control.store().objects_from(&bucket.id, &from, exclusive, LIST_BATCH).await.map_err(internal)?;
            let full = rows.len() as i64 == LIST_BATCH;
            let mut restart = None;
            for row in rows {
                if !row.key.starts_with(prefix) {
                    break 'outer;
                }
                let common = common_prefix(&row.key);
                if common.is_some() && common == last_prefix {
                    continue;
                }
                if out.objects.len() + out.prefixes.len() >= max {
                    out.truncated = true;
                    break 'outer;
                }
                match common {
                    Some(cp) => {
                        out.last = Some(cp.clone());
                        // Skip the rest of this prefix's keys in one query.
                        restart = Some(format!("{cp}\u{10FFFF}"));
                        last_prefix = Some(cp.clone());
                        out.prefixes.push(cp);
                        break;
                    }
                    None => {
                        out.last = Some(row.key.clone());
                        from = row.key.clone();
                        exclusive = true;
                        out.objects.push(row);
                    }
                }
            }
            match restart {
                Some(r) => {
                    from = r;
                    exclusive = true;
                }
                None if !full => break,
                None => {}
            }
        }
        Ok(out)
    }

    fn to_object(&self, row: &ObjectRow, encode: bool) -> Object {
        Object {
            key: Some(if encode { url_encode(&row.key) } else { row.key.clone() }),
            size: Some(row.size),
            e_tag: Some(ETag::Strong(row.etag.clone())),
            last_modified: Some(timestamp(row.modified_at)),
            storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
            ..Default::default()
        }
    }

    async fn upload(&self, bucket: &BucketRow, key: &str, upload_id: &str) -> S3Result<UploadRow> {
        match self.control.store().upload(upload_id).await.map_err(internal)? {
            Some(u) if u.bucket_id == bucket.id && u.key == key => Ok(u),
            _ => Err(s3_error!(NoSuchUpload, "the upload does not exist (completed or aborted?)")),
        }
    }

    async fn record_part(
        &self,
        proof: &ProjectWrite,
        bucket: &BucketRow,
        upload: &UploadRow,
        part: i32,
        written: &Written,
    ) -> S3Result<String> {
        let etag = etag_of(&written.md5);
        self.disk.install(written, self.disk.part_path(&bucket.id, &upload.id, part)).await.map_err(internal)?;
        let mut tx = self.control.change(&self.ctx(), proof).await.map_err(from_control)?;
        roost_store::buckets::put_part(
            tx.conn(),
            &PartRow {
                upload_id: upload.id.clone(),
                part_number: part as i64,
                size: written.size as i64,
                etag: etag.clone(),
                modified_at: now_ms(),
            },
        )
        .await
        .map_err(internal)?;
        let body = serde_json::json!({"key": upload.key, "upload_id": upload.id, "part": part, "size": written.size});
        tx.audit("bucket.upload.part", Some(("bucket", &bucket.id)), Some(&body)).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(etag)
    }

    /// The source of a copy: its bucket (readable by the caller) and object.
    async fn copy_source(&self, creds: &Option<Credentials>, src: &CopySource) -> S3Result<(BucketRow, ObjectRow)> {
        let CopySource::Bucket { bucket, key, version_id } = src else {
            return Err(s3_error!(NotImplemented, "copy sources are bucket/key"));
        };
        let b = self.bucket(creds, bucket, false).await?;
        let o = self.object_at(&b, key, version_id.as_deref()).await?;
        Ok((b, o))
    }
}

fn headers_from(
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<&Timestamp>,
    metadata: Option<Metadata>,
) -> StoredHeaders {
    StoredHeaders {
        content_type,
        cache_control,
        content_disposition,
        content_encoding,
        content_language,
        expires: expires.map(ts_secs),
        metadata: metadata.unwrap_or_default().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
    }
}

#[async_trait::async_trait]
impl S3 for RoostS3 {
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        let who = self.identity(&req.credentials).await?;
        let buckets = self.control.list_buckets(&who.principal, None).await.map_err(from_control)?;
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let list = buckets
            .into_iter()
            .filter(|b| who.may_reach(&b.id, &b.project_id) && b.name.starts_with(&prefix))
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_at.timestamp_millis())),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(list),
            owner: Some(Owner {
                id: Some(who.principal.user_id.clone()),
                display_name: Some(who.principal.user_name.clone()),
            }),
            prefix: req.input.prefix,
            ..Default::default()
        }))
    }

    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        let who = self.identity(&req.credentials).await?;
        let name = req.input.bucket;
        if !who.may_create_buckets() {
            return Err(s3_error!(AccessDenied, "this key may not create the bucket '{name}'"));
        }
        // A key made with a project-restricted token makes its buckets in that project.
        let project = who.key.project_id.clone();
        let request = roost_api::buckets::CreateBucketRequest { name: name.clone(), project, public_read: None };
        match self.control.create_bucket(&self.ctx(), &who.principal, request).await {
            Ok(_) => {}
            Err(e) if e.code == roost_api::ErrorCode::Conflict => {
                let mine = match self.control.store().bucket_by_name(&name).await.map_err(internal)? {
                    Some(b) => self.control.s3_bucket_access(&who, &b, false).await.is_ok(),
                    None => false,
                };
                let code = if mine { S3ErrorCode::BucketAlreadyOwnedByYou } else { S3ErrorCode::BucketAlreadyExists };
                return Err(S3Error::with_message(code, e.message));
            }
            Err(e) if e.code == roost_api::ErrorCode::ValidationFailed => {
                return Err(S3Error::with_message(S3ErrorCode::InvalidBucketName, e.message));
            }
            Err(e) if e.code == roost_api::ErrorCode::NotFound => {
                return Err(S3Error::with_message(
                    S3ErrorCode::AccessDenied,
                    "S3 CreateBucket makes buckets in the 'default' project, which this key's owner is not a member \
                     of: use `roost bucket create NAME --project PROJECT`",
                ));
            }
            Err(e) => return Err(from_control(e)),
        }
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }))
    }

    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = self.bucket(&req.credentials, &req.input.bucket, true).await?;
        let who = self.identity(&req.credentials).await?;
        match self.control.delete_bucket(&self.ctx(), &who.principal, &bucket.id, false, None).await {
            Ok(()) => Ok(S3Response::new(DeleteBucketOutput {})),
            Err(e) if e.code == roost_api::ErrorCode::Conflict => {
                Err(S3Error::with_message(S3ErrorCode::BucketNotEmpty, e.message))
            }
            Err(e) => Err(from_control(e)),
        }
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket(&req.credentials, &req.input.bucket, false).await?;
        Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(self.region.clone()), ..Default::default() }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.bucket(&req.credentials, &req.input.bucket, false).await?;
        // us-east-1 is reported as no constraint, as S3 does.
        let location = (self.region != "us-east-1").then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint: location }))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let bucket = self.bucket(&req.credentials, &req.input.bucket, false).await?;
        Ok(S3Response::new(GetBucketVersioningOutput {
            status: bucket.versioning.map(BucketVersioningStatus::from),
            mfa_delete: None,
        }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let (bucket, proof) =
            self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.versioning.set").await?;
        let config = req.input.versioning_configuration;
        if config.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        let status = match config.status.as_ref().map(|s| s.as_str()) {
            Some(BucketVersioningStatus::ENABLED) => BucketVersioningStatus::ENABLED,
            Some(BucketVersioningStatus::SUSPENDED) => BucketVersioningStatus::SUSPENDED,
            _ => return Err(s3_error!(MalformedXML, "Status must be Enabled or Suspended")),
        };
        // Once enabled, a bucket can be suspended but never unversioned again (as in S3).
        if bucket.versioning.is_none() && status == BucketVersioningStatus::SUSPENDED {
            return Ok(S3Response::new(PutBucketVersioningOutput {}));
        }
        let body = serde_json::json!({ "status": status });
        self.set_doc(&proof, &bucket, BucketDoc::Versioning, Some(status), None, "bucket.versioning.set", body).await?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let bucket = self.bucket(&req.credentials, &input.bucket, false).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let key_marker = input.key_marker.clone().filter(|k| !k.is_empty());
        let id_marker = input.version_id_marker.clone().filter(|v| !v.is_empty());
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let encode = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: &str| if encode { url_encode(s) } else { s.to_string() };
        let from = match &key_marker {
            Some(k) if k.as_str() > prefix.as_str() => k.clone(),
            _ => prefix.clone(),
        };
        let rows = self.control.store().versions_from(&bucket.id, &from, 10_000).await.map_err(internal)?;
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut truncated = false;
        let mut last: Option<(String, String)> = None;
        // With a version-id marker, skip up to and including that version of the marker key.
        let mut skipping = id_marker.is_some();
        for (row, latest) in rows {
            if !row.key.starts_with(&prefix) {
                if row.key.as_str() > prefix.as_str() {
                    break;
                }
                continue;
            }
            if let Some(k) = &key_marker {
                if row.key < *k {
                    continue;
                }
                if row.key == *k {
                    match &id_marker {
                        None => continue,
                        Some(v) if skipping => {
                            if row.version_id == *v {
                                skipping = false;
                            }
                            continue;
                        }
                        Some(_) => {}
                    }
                }
            }
            if let Some(d) = delimiter.as_deref()
                && let Some(i) = row.key[prefix.len()..].find(d)
            {
                let cp = format!("{prefix}{}", &row.key[prefix.len()..prefix.len() + i + d.len()]);
                if prefixes.last() != Some(&cp) {
                    if versions.len() + markers.len() + prefixes.len() >= max {
                        truncated = true;
                        break;
                    }
                    prefixes.push(cp);
                }
                continue;
            }
            if versions.len() + markers.len() + prefixes.len() >= max {
                truncated = true;
                break;
            }
            last = Some((row.key.clone(), row.version_id.clone()));
            if row.is_delete_marker() {
                markers.push(DeleteMarkerEntry {
                    is_latest: Some(latest),
                    key: Some(enc(&row.key)),
                    last_modified: Some(timestamp(row.modified_at)),
                    version_id: Some(row.version_id.clone()),
                    owner: None,
                });
            } else {
                versions.push(ObjectVersion {
                    e_tag: Some(ETag::Strong(row.etag.clone())),
                    is_latest: Some(latest),
                    key: Some(enc(&row.key)),
                    last_modified: Some(timestamp(row.modified_at)),
                    size: Some(row.size),
                    version_id: Some(row.version_id.clone()),
                    storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                    ..Default::default()
                });
            }
        }
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(bucket.name.clone()),
            prefix: Some(enc(&prefix)),
            delimiter: input.delimiter.as_deref().map(enc),
            key_marker: input.key_marker.as_deref().map(enc),
            version_id_marker: input.version_id_marker,
            max_keys: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: last.as_ref().filter(|_| truncated).map(|l| enc(&l.0)),
            next_version_id_marker: last.as_ref().filter(|_| truncated).map(|l| l.1.clone()),
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect()),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        check_key(&input.key)?;
        let (bucket, proof) = self.writable_bucket(&req.credentials, &input.bucket, "bucket.object.put").await?;
        self.check_bytes(&bucket, input.content_length.unwrap_or(0)).await?;
        let written = match input.body {
            Some(body) => self.disk.write_stream(&bucket.id, body).await.map_err(write_error)?,
            None => self
                .disk
                .write_stream(&bucket.id, futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
                .await
                .map_err(write_error)?,
        };
        if let Some(md5) = &input.content_md5 {
            let expected = base64::engine::general_purpose::STANDARD.decode(md5.trim()).ok();
            if expected.as_deref() != Some(&written.md5[..]) {
                self.disk.remove(written.tmp.clone()).await;
                return Err(s3_error!(BadDigest, "the Content-MD5 you specified did not match what was received"));
            }
        }
        // Conditions are checked once the body is in (a client that sent
        // `Expect: 100-continue` is never left with half a request on the connection).
        if let Err(e) =
            self.put_conditions(&bucket, &input.key, input.if_none_match.as_ref(), input.if_match.as_ref()).await
        {
            self.disk.remove(written.tmp.clone()).await;
            return Err(e);
        }
        let headers = headers_from(
            input.content_type,
            input.cache_control,
            input.content_disposition,
            input.content_encoding,
            input.content_language,
            input.expires.as_ref(),
            input.metadata,
        );
        let etag = etag_of(&written.md5);
        let row = self
            .commit_object(&proof, "bucket.object.put", &bucket, &input.key, &written, etag.clone(), &headers, None)
            .await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            size: Some(row.size),
            version_id: Self::version_header(&bucket, &row.version_id),
            ..Default::default()
        }))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let bucket = self.bucket(&req.credentials, &input.bucket, false).await?;
        // Open the file before answering: if a concurrent write replaced the object (and
        // removed its file) in between, look again.
        let mut attempts = 0;
        let (obj, file) = loop {
            let obj = self.object_at(&bucket, &input.key, input.version_id.as_deref()).await?;
            match self.disk.open(self.disk.object_path(&bucket.id, &obj.file_id)).await {
                Ok(file) => break (obj, file),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
                Err(e) => return Err(internal(e)),
            }
        };
        check_conditions(
            &obj,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let size = obj.size as u64;
        let (start, len, content_range) = match &input.range {
            Some(range) => {
                let r = range.check(size).map_err(|_| s3_error!(InvalidRange, "the range is not satisfiable"))?;
                let cr = format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), size);
                (r.start, r.end - r.start, Some(cr))
            }
            None => (0, size, None),
        };
        let h = StoredHeaders::parse(obj.headers.as_deref());
        let body = s3s::dto::StreamingBlob::wrap(self.disk.read_range(file, start, len));
        Ok(S3Response::new(GetObjectOutput {
            body: Some(body),
            content_length: Some(len as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(ETag::Strong(obj.etag.clone())),
            last_modified: Some(timestamp(obj.modified_at)),
            content_type: input.response_content_type.or(h.content_type.clone()),
            cache_control: input.response_cache_control.or(h.cache_control.clone()),
            content_disposition: input.response_content_disposition.or(h.content_disposition.clone()),
            content_encoding: input.response_content_encoding.or(h.content_encoding.clone()),
            content_language: input.response_content_language.or(h.content_language.clone()),
            expires: h.expires.map(|s| timestamp(s * 1000)),
            metadata: h.metadata(),
            parts_count: obj.parts.map(|p| p as i32),
            version_id: Self::version_header(&bucket, &obj.version_id),
            ..Default::default()
        }))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let bucket = self.bucket(&req.credentials, &input.bucket, false).await?;
        let obj = self.object_at(&bucket, &input.key, input.version_id.as_deref()).await?;
        check_conditions(
            &obj,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let h = StoredHeaders::parse(obj.headers.as_deref());
        let size = obj.size as u64;
        let (len, content_range) = match &input.range {
            Some(range) => {
                let r = range.check(size).map_err(|_| s3_error!(InvalidRange, "the range is not satisfiable"))?;
                (r.end - r.start, Some(format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), size)))
            }
            None => (size, None),
        };
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(len as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(ETag::Strong(obj.etag.clone())),
            last_modified: Some(timestamp(obj.modified_at)),
            content_type: input.response_content_type.or(h.content_type.clone()),
            cache_control: input.response_cache_control.or(h.cache_control.clone()),
            content_disposition: input.response_content_disposition.or(h.content_disposition.clone()),
            content_encoding: input.response_content_encoding.or(h.content_encoding.clone()),
            content_language: input.response_content_language.or(h.content_language.clone()),
            expires: h.expires.map(|s| timestamp(s * 1000)),
            metadata: h.metadata(),
            parts_count: obj.parts.map(|p| p as i32),
            version_id: Self::version_header(&bucket, &obj.version_id),
            ..Default::default()
        }))
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let (bucket, proof) = self.writable_bucket(&req.credentials, &input.bucket, "bucket.object.delete").await?;
        if let Some(cond) = &input.if_match {
            let obj = self.object(&bucket, &input.key).await?;
            if !etag_matches(cond, &obj.etag) {
                return Err(s3_error!(PreconditionFailed, "If-Match does not match"));
            }
        }
        // S3 answers 204 whether or not the key existed.
        let (marker, version_id) = match input.version_id.as_deref() {
            Some(v) => self.delete_version(&proof, &bucket, &input.key, v).await?,
            None => self.delete_key(self.open(&proof).await?, "bucket.object.delete", &bucket, &input.key).await?,
        };
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: marker.then_some(true),
            version_id: version_id.and_then(|v| Self::version_header(&bucket, &v)),
            ..Default::default()
        }))
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let (bucket, proof) = self.writable_bucket(&req.credentials, &input.bucket, "bucket.object.delete").await?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 keys per request"));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in input.delete.objects {
            let result = match o.version_id.as_deref() {
                Some(v) => self.delete_version(&proof, &bucket, &o.key, v).await,
                None => match self.open(&proof).await {
                    Ok(tx) => self.delete_key(tx, "bucket.object.delete", &bucket, &o.key).await,
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(_) if quiet => {}
                Ok((marker, version)) => deleted.push(DeletedObject {
                    key: Some(o.key),
                    version_id: o.version_id.clone(),
                    delete_marker: marker.then_some(true),
                    delete_marker_version_id: if marker && o.version_id.is_none() {
                        version.and_then(|v| Self::version_header(&bucket, &v))
                    } else {
                        None
                    },
                }),
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    key: Some(o.key),
                    message: e.message().map(str::to_string),
                    version_id: o.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        check_key(&input.key)?;
        let (src_bucket, src) = self.copy_source(&req.credentials, &input.copy_source).await?;
        check_conditions(
            &src,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        )
        .map_err(|e| {
            if *e.code() == S3ErrorCode::NotModified {
                s3_error!(PreconditionFailed, "copy source condition failed")
            } else {
                e
            }
        })?;
        let (bucket, proof) = self.writable_bucket(&req.credentials, &input.bucket, "bucket.object.copy").await?;
        let replace = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if !replace && src_bucket.id == bucket.id && src.key == input.key {
            return Err(s3_error!(
                InvalidRequest,
                "copying an object to itself needs a change: use the REPLACE metadata directive"
            ));
        }
        self.check_bytes(&bucket, src.size).await?;
        let headers = if replace {
            headers_from(
                input.content_type,
                input.cache_control,
                input.content_disposition,
                input.content_encoding,
                input.content_language,
                input.expires.as_ref(),
                input.metadata,
            )
        } else {
            StoredHeaders::parse(src.headers.as_deref())
        };
        let file = self.disk.open(self.disk.object_path(&src_bucket.id, &src.file_id)).await.map_err(internal)?;
        let written = self.disk.copy_range(&bucket.id, file, 0, src.size as u64).await.map_err(internal)?;
        // A copy is one simple object: its ETag is the MD5 of its bytes.
        let etag = etag_of(&written.md5);
        let row = self
            .commit_object(&proof, "bucket.object.copy", &bucket, &input.key, &written, etag.clone(), &headers, None)
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(etag)),
                last_modified: Some(timestamp(row.modified_at)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let bucket = self.bucket(&req.credentials, &input.bucket, false).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let token = match &input.continuation_token {
            Some(t) => Some(
                hex::decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| s3_error!(InvalidArgument, "the continuation token is not valid"))?,
            ),
            None => None,
        };
        let after = token.clone().or(input.start_after.clone());
        let max_keys = input.max_keys.unwrap_or(1000);
        let listing = self.list(&bucket, &prefix, input.delimiter.as_deref(), after.as_deref(), max_keys).await?;
        let encode = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: &str| if encode { url_encode(s) } else { s.to_string() };
        let contents: Vec<Object> = listing.objects.iter().map(|o| self.to_object(o, encode)).collect();
        let prefixes: Vec<CommonPrefix> =
            listing.prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect();
        let key_count = (contents.len() + prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(bucket.name.clone()),
            prefix: Some(enc(&prefix)),
            delimiter: input.delimiter.as_deref().map(enc),
            max_keys: Some(max_keys),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            start_after: input.start_after.as_deref().map(enc),
            is_truncated: Some(listing.truncated),
            next_continuation_token: if listing.truncated {
                listing.last.map(|l| hex::encode(l.as_bytes()))
            } else {
                None
            },
            contents: Some(contents),
            common_prefixes: Some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let bucket = self.bucket(&req.credentials, &input.bucket, false).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max_keys = input.max_keys.unwrap_or(1000);
        let listing =
            self.list(&bucket, &prefix, input.delimiter.as_deref(), input.marker.as_deref(), max_keys).await?;
        let encode = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: &str| if encode { url_encode(s) } else { s.to_string() };
        let contents: Vec<Object> = listing.objects.iter().map(|o| self.to_object(o, encode)).collect();
        let prefixes: Vec<CommonPrefix> =
            listing.prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect();
        // NextMarker is returned when a delimiter is used; without one clients use the last key.
        let next_marker =
            (listing.truncated && input.delimiter.is_some()).then(|| listing.last.as_deref().map(enc)).flatten();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(bucket.name.clone()),
            prefix: Some(enc(&prefix)),
            delimiter: input.delimiter.as_deref().map(enc),
            marker: Some(input.marker.as_deref().map(enc).unwrap_or_default()),
            max_keys: Some(max_keys),
            is_truncated: Some(listing.truncated),
            next_marker,
            contents: Some(contents),
            common_prefixes: Some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        check_key(&input.key)?;
        let (bucket, proof) = self.writable_bucket(&req.credentials, &input.bucket, "bucket.upload.create").await?;
        let headers = headers_from(
            input.content_type,
            input.cache_control,
            input.content_disposition,
            input.content_encoding,
            input.content_language,
            input.expires.as_ref(),
            input.metadata,
        );
        let upload = UploadRow {
            id: new_file_id(),
            bucket_id: bucket.id.clone(),
            key: input.key.clone(),
            headers: Some(headers.to_json()),
            created_at: now_ms(),
        };
        let mut tx = self.control.change(&self.ctx(), &proof).await.map_err(from_control)?;
        roost_store::buckets::insert_upload(tx.conn(), &upload).await.map_err(internal)?;
        let body = serde_json::json!({"key": upload.key, "upload_id": upload.id});
        tx.audit("bucket.upload.create", Some(("bucket", &bucket.id)), Some(&body)).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(bucket.name),
            key: Some(input.key),
            upload_id: Some(upload.id),
            ..Default::default()
        }))
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        if !(1..=MAX_PARTS).contains(&input.part_number) {
            return Err(s3_error!(InvalidArgument, "part numbers are 1-10000"));
        }
        let (bucket, proof) = self.writable_bucket(&req.credentials, &input.bucket, "bucket.upload.part").await?;
        let upload = self.upload(&bucket, &input.key, &input.upload_id).await?;
        self.check_bytes(&bucket, input.content_length.unwrap_or(0)).await?;
        let written = match input.body {
            Some(body) => self.disk.write_stream(&bucket.id, body).await.map_err(write_error)?,
            None => self
                .disk
                .write_stream(&bucket.id, futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
                .await
                .map_err(write_error)?,
        };
        if let Some(md5) = &input.content_md5 {
            let expected = base64::engine::general_purpose::STANDARD.decode(md5.trim()).ok();
            if expected.as_deref() != Some(&written.md5[..]) {
                self.disk.remove(written.tmp.clone()).await;
                return Err(s3_error!(BadDigest, "the Content-MD5 you specified did not match what was received"));
            }
        }
        let etag = self.record_part(&proof, &bucket, &upload, input.part_number, &written).await?;
        Ok(S3Response::new(UploadPartOutput { e_tag: Some(ETag::Strong(etag)), ..Default::default() }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        if !(1..=MAX_PARTS).contains(&input.part_number) {
            return Err(s3_error!(InvalidArgument, "part numbers are 1-10000"));
        }
        let (src_bucket, src) = self.copy_source(&req.credentials, &input.copy_source).await?;
        check_conditions(
            &src,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        )
        .map_err(|e| {
            if *e.code() == S3ErrorCode::NotModified {
                s3_error!(PreconditionFailed, "copy source condition failed")
            } else {
                e
            }
        })?;
        let (bucket, proof) = self.writable_bucket(&req.credentials, &input.bucket, "bucket.upload.part").await?;
        let upload = self.upload(&bucket, &input.key, &input.upload_id).await?;
        let size = src.size as u64;
        let (offset, len) = match &input.copy_source_range {
            Some(r) => {
                let range = r
                    .strip_prefix("bytes=")
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                    .filter(|(a, b)| a <= b && *b < size)
                    .ok_or_else(|| {
                        s3_error!(InvalidRange, "x-amz-copy-source-range must be bytes=first-last within the source")
                    })?;
                (range.0, range.1 - range.0 + 1)
            }
            None => (0, size),
        };
        let file = self.disk.open(self.disk.object_path(&src_bucket.id, &src.file_id)).await.map_err(internal)?;
        let written = self.disk.copy_range(&bucket.id, file, offset, len).await.map_err(internal)?;
        let etag = self.record_part(&proof, &bucket, &upload, input.part_number, &written).await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(etag)),
                last_modified: Some(timestamp(now_ms())),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let bucket = self.bucket(&req.credentials, &input.bucket, false).await?;
        let upload = self.upload(&bucket, &input.key, &input.upload_id).await?;
        let marker = input.part_number_marker.unwrap_or(0);
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let all = self.control.store().parts(&upload.id).await.map_err(internal)?;
        let after: Vec<&PartRow> = all.iter().filter(|p| p.part_number > marker as i64).collect();
        let truncated = after.len() > max;
        let page: Vec<Part> = after
            .iter()
            .take(max)
            .map(|p| Part {
                part_number: Some(p.part_number as i32),
                size: Some(p.size),
                e_tag: Some(ETag::Strong(p.etag.clone())),
                last_modified: Some(timestamp(p.modified_at)),
                ..Default::default()
            })
            .collect();
        let next = page.last().and_then(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(bucket.name),
            key: Some(upload.key),
            upload_id: Some(upload.id),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: if truncated { next } else { None },
            max_parts: Some(max as i32),
            is_truncated: Some(truncated),
            parts: Some(page),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let bucket = self.bucket(&req.credentials, &input.bucket, false).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let all = self.control.store().uploads(&bucket.id).await.map_err(internal)?;
        let mut uploads = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut truncated = false;
        let mut last: Option<(String, String)> = None;
        for u in all.iter().filter(|u| u.key.starts_with(&prefix)) {
            let before_marker = !key_marker.is_empty()
                && (u.key < key_marker || (u.key == key_marker && (id_marker.is_empty() || u.id <= id_marker)));
            if before_marker {
                continue;
            }
            if let Some(d) = input.delimiter.as_deref().filter(|d| !d.is_empty())
                && let Some(i) = u.key[prefix.len()..].find(d)
            {
                let cp = format!("{prefix}{}", &u.key[prefix.len()..prefix.len() + i + d.len()]);
                if !prefixes.contains(&cp) {
                    if uploads.len() + prefixes.len() >= max {
                        truncated = true;
                        break;
                    }
                    prefixes.push(cp);
                }
                continue;
            }
            if uploads.len() + prefixes.len() >= max {
                truncated = true;
                break;
            }
            last = Some((u.key.clone(), u.id.clone()));
            uploads.push(MultipartUpload {
                key: Some(u.key.clone()),
                upload_id: Some(u.id.clone()),
                initiated: Some(timestamp(u.created_at)),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            });
        }
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(bucket.name),
            prefix: input.prefix,
            delimiter: input.delimiter,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: last.as_ref().filter(|_| truncated).map(|l| l.0.clone()),
            next_upload_id_marker: last.as_ref().filter(|_| truncated).map(|l| l.1.clone()),
            uploads: Some(uploads),
            common_prefixes: Some(prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(p) }).collect()),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let (bucket, proof) = self.writable_bucket(&req.credentials, &input.bucket, "bucket.object.put").await?;
        let upload = self.upload(&bucket, &input.key, &input.upload_id).await?;
        let wanted = input.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        if wanted.is_empty() {
            return Err(s3_error!(MalformedXML, "the upload names no parts"));
        }
        let stored: HashMap<i64, PartRow> = self
            .control
            .store()
            .parts(&upload.id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|p| (p.part_number, p))
            .collect();
        let numbers: Vec<Option<i32>> = wanted.iter().map(|p| p.part_number).collect();
        if numbers.windows(2).any(|w| matches!(w, [Some(a), Some(b)] if a >= b)) {
            return Err(s3_error!(InvalidPartOrder, "parts must be listed in ascending order"));
        }
        let mut previous = 0;
        let mut files = Vec::new();
        let mut md5s = Vec::new();
        let count = wanted.len();
        for (i, part) in wanted.iter().enumerate() {
            let number = part.part_number.ok_or_else(|| s3_error!(InvalidPart, "a part has no number"))?;
            if number <= previous {
                return Err(s3_error!(InvalidPartOrder, "parts must be listed in ascending order"));
            }
            previous = number;
            let Some(row) = stored.get(&(number as i64)) else {
                return Err(s3_error!(InvalidPart, "part {number} was not uploaded"));
            };
            if let Some(etag) = &part.e_tag
                && etag.value().trim_matches('"') != row.etag
            {
                return Err(s3_error!(InvalidPart, "part {number} has another ETag"));
            }
            if i + 1 < count && row.size < MIN_PART_SIZE {
                return Err(s3_error!(EntityTooSmall, "part {number} is smaller than 5 MiB and not the last"));
            }
            files.push(self.disk.part_path(&bucket.id, &upload.id, number));
            md5s.extend(hex::decode(&row.etag).map_err(internal)?);
        }
        // No bytes move: the object becomes a directory of hard links to its parts (see
        // `disk`); the upload's directory, with any parts not listed, goes after the commit.
        let written = self.disk.assemble(&bucket.id, files).await.map_err(internal)?;
        let etag = format!("{}-{count}", hex::encode(<md5::Md5 as md5::Digest>::digest(&md5s)));
        let headers = StoredHeaders::parse(upload.headers.as_deref());
        let file_id = new_file_id();
        self.disk.install(&written, self.disk.object_path(&bucket.id, &file_id)).await.map_err(internal)?;
        let row = ObjectRow {
            bucket_id: bucket.id.clone(),
            key: upload.key.clone(),
            file_id: file_id.clone(),
            size: written.size as i64,
            etag: etag.clone(),
            headers: Some(headers.to_json()),
            parts: Some(count as i64),
            modified_at: now_ms(),
            version_id: Self::new_version_id(&bucket),
            delete_marker: 0,
        };
        // The object appears and the upload disappears in one transaction.
        let result = async {
            let mut tx = self.control.change(&self.ctx(), &proof).await?;
            let old = roost_store::buckets::put_object(tx.conn(), &row, Versioning::of(&bucket)).await?;
            roost_store::buckets::delete_upload(tx.conn(), &upload.id).await?;
            let body = serde_json::json!({
                "key": row.key, "size": row.size, "version_id": row.version_id, "upload_id": upload.id, "parts": count
            });
            tx.audit("bucket.object.put", Some(("bucket", &bucket.id)), Some(&body)).await?;
            tx.commit().await?;
            Ok::<_, roost_control::Error>(old)
        }
        .await;
        match result {
            Ok(gone) => {
                for old in gone {
                    self.disk.remove(self.disk.object_path(&bucket.id, &old)).await;
                }
                self.disk.remove_dir(self.disk.upload_dir(&bucket.id, &upload.id)).await;
            }
            Err(e) => {
                self.disk.remove(self.disk.object_path(&bucket.id, &file_id)).await;
                return Err(internal(e));
            }
        }
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(bucket.name.clone()),
            key: Some(upload.key.clone()),
            e_tag: Some(ETag::Strong(etag)),
            location: Some(format!("/{}/{}", bucket.name, url_encode(&upload.key))),
            version_id: Self::version_header(&bucket, &row.version_id),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let (bucket, proof) = self.writable_bucket(&req.credentials, &input.bucket, "bucket.upload.abort").await?;
        let upload = self.upload(&bucket, &input.key, &input.upload_id).await?;
        let mut tx = self.control.change(&self.ctx(), &proof).await.map_err(from_control)?;
        roost_store::buckets::delete_upload(tx.conn(), &upload.id).await.map_err(internal)?;
        let body = serde_json::json!({"key": upload.key, "upload_id": upload.id});
        tx.audit("bucket.upload.abort", Some(("bucket", &bucket.id)), Some(&body)).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        self.disk.remove_dir(self.disk.upload_dir(&bucket.id, &upload.id)).await;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let (bucket, proof) = self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.policy.set").await?;
        let public = roost_control::buckets::policy_is_public_read(&req.input.policy)
            .map_err(|e| S3Error::with_message(S3ErrorCode::MalformedPolicy, e.message))?;
        // The policy is recorded whole: whoever reads the audit sees what was granted.
        let body = serde_json::json!({ "policy": req.input.policy, "public_read": public });
        let policy = Some(req.input.policy.as_str());
        self.set_doc(&proof, &bucket, BucketDoc::Policy, policy, Some(public), "bucket.policy.set", body).await?;
        Ok(S3Response::new(PutBucketPolicyOutput {}))
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let bucket = self.bucket(&req.credentials, &req.input.bucket, false).await?;
        match bucket.policy {
            Some(p) => Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(p) })),
            None => Err(s3_error!(NoSuchBucketPolicy, "the bucket has no policy")),
        }
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let (bucket, proof) = self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.policy.delete").await?;
        let body = serde_json::json!({ "public_read": false });
        self.set_doc(&proof, &bucket, BucketDoc::Policy, None, Some(false), "bucket.policy.delete", body).await?;
        Ok(S3Response::new(DeleteBucketPolicyOutput {}))
    }

    async fn put_bucket_cors(&self, req: S3Request<PutBucketCorsInput>) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let (bucket, proof) = self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.cors.set").await?;
        let rules: Vec<crate::cors::CorsRule> =
            req.input.cors_configuration.cors_rules.into_iter().map(crate::cors::CorsRule::from_dto).collect();
        let json = serde_json::to_string(&rules).map_err(internal)?;
        let body = serde_json::json!({ "cors": rules });
        self.set_doc(&proof, &bucket, BucketDoc::Cors, Some(&json), None, "bucket.cors.set", body).await?;
        Ok(S3Response::new(PutBucketCorsOutput {}))
    }

    async fn get_bucket_cors(&self, req: S3Request<GetBucketCorsInput>) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let bucket = self.bucket(&req.credentials, &req.input.bucket, false).await?;
        let rules = crate::cors::rules_of(&bucket);
        if rules.is_empty() {
            return Err(s3_error!(NoSuchCORSConfiguration, "the bucket has no CORS configuration"));
        }
        Ok(S3Response::new(GetBucketCorsOutput { cors_rules: Some(rules.into_iter().map(|r| r.to_dto()).collect()) }))
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        let (bucket, proof) = self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.cors.delete").await?;
        let body = serde_json::json!({});
        self.set_doc(&proof, &bucket, BucketDoc::Cors, None, None, "bucket.cors.delete", body).await?;
        Ok(S3Response::new(DeleteBucketCorsOutput {}))
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let (bucket, proof) = self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.lifecycle.set").await?;
        let rules = req.input.lifecycle_configuration.map(|c| c.rules).unwrap_or_default();
        let rules: Vec<crate::lifecycle::Rule> =
            rules.into_iter().map(crate::lifecycle::Rule::from_dto).collect::<S3Result<_>>()?;
        let json = serde_json::to_string(&rules).map_err(internal)?;
        let body = serde_json::json!({ "rules": rules });
        self.set_doc(&proof, &bucket, BucketDoc::Lifecycle, Some(&json), None, "bucket.lifecycle.set", body).await?;
        Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let bucket = self.bucket(&req.credentials, &req.input.bucket, false).await?;
        let rules = crate::lifecycle::rules_of(&bucket);
        if rules.is_empty() {
            return Err(s3_error!(NoSuchLifecycleConfiguration, "the bucket has no lifecycle configuration"));
        }
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(rules.iter().map(crate::lifecycle::Rule::to_dto).collect()),
            ..Default::default()
        }))
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        let (bucket, proof) =
            self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.lifecycle.delete").await?;
        let body = serde_json::json!({});
        self.set_doc(&proof, &bucket, BucketDoc::Lifecycle, None, None, "bucket.lifecycle.delete", body).await?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput {}))
    }
}

impl RoostS3 {
    async fn put_conditions(
        &self,
        bucket: &BucketRow,
        key: &str,
        if_none_match: Option<&ETagCondition>,
        if_match: Option<&ETagCondition>,
    ) -> S3Result<()> {
        if if_none_match.is_none() && if_match.is_none() {
            return Ok(());
        }
        let exists =
            self.control.store().object(&bucket.id, key).await.map_err(internal)?.filter(|o| !o.is_delete_marker());
        if let Some(cond) = if_none_match {
            let hit = match (&exists, cond) {
                (Some(_), ETagCondition::Any) => true,
                (Some(o), c) => etag_matches(c, &o.etag),
                (None, _) => false,
            };
            if hit {
                return Err(s3_error!(PreconditionFailed, "the key exists (If-None-Match)"));
            }
        }
        if let Some(cond) = if_match
            && !exists.as_ref().is_some_and(|o| etag_matches(cond, &o.etag))
        {
            return Err(s3_error!(PreconditionFailed, "If-Match does not match"));
        }
        Ok(())
    }

    /// Deletes a key's current version: gone (unversioned bucket) or hidden behind a new
    /// delete marker (versioned). Returns whether a marker was made, and its version id.
    /// `tx` is the change it is part of (opened for the caller, or the server's for the
    /// lifecycle rules), audited as `action`.
    pub(crate) async fn delete_key(
        &self,
        mut tx: Change<'_>,
        action: &str,
        bucket: &BucketRow,
        key: &str,
    ) -> S3Result<(bool, Option<String>)> {
        let mode = Versioning::of(bucket);
        let marker = (mode != Versioning::Off).then(|| ObjectRow {
            bucket_id: bucket.id.clone(),
            key: key.to_string(),
            file_id: String::new(),
            size: 0,
            etag: String::new(),
            headers: None,
            parts: None,
            modified_at: now_ms(),
            version_id: Self::new_version_id(bucket),
            delete_marker: 1,
        });
        let gone = roost_store::buckets::delete_object(tx.conn(), &bucket.id, key, mode, marker.as_ref())
            .await
            .map_err(internal)?;
        let body = serde_json::json!({"key": key, "delete_marker": marker.as_ref().map(|m| &m.version_id)});
        tx.audit(action, Some(("bucket", &bucket.id)), Some(&body)).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        for file in gone {
            self.disk.remove(self.disk.object_path(&bucket.id, &file)).await;
        }
        Ok((marker.is_some(), marker.map(|m| m.version_id)))
    }

    /// Permanently deletes one version (or delete marker). Returns whether it was a delete
    /// marker, and the version id.
    async fn delete_version(
        &self,
        proof: &ProjectWrite,
        bucket: &BucketRow,
        key: &str,
        version_id: &str,
    ) -> S3Result<(bool, Option<String>)> {
        let mut tx = self.control.change(&self.ctx(), proof).await.map_err(from_control)?;
        let old =
            roost_store::buckets::delete_version(tx.conn(), &bucket.id, key, version_id).await.map_err(internal)?;
        let body = serde_json::json!({"key": key, "version_id": version_id});
        tx.audit("bucket.object.delete_version", Some(("bucket", &bucket.id)), Some(&body)).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        match old {
            Some(o) => {
                if !o.is_delete_marker() && !o.file_id.is_empty() {
                    self.disk.remove(self.disk.object_path(&bucket.id, &o.file_id)).await;
                }
                Ok((o.is_delete_marker(), Some(o.version_id)))
            }
            None => Ok((false, Some(version_id.to_string()))),
        }
    }
}
