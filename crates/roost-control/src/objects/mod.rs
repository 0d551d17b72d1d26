//! The object service: a bucket's objects for every door. The S3 endpoint (`roost-s3`,
//! SigV4 and XML) and the REST routes `/v1/buckets/{id}/objects…` (the console's bucket
//! browser) both call these functions, so versioning, quotas, conditional requests,
//! ETags and the audit trail are the same whichever way an object arrives.
//!
//! Access is checked once, when a door turns its caller into a [`Readable`] or
//! [`Writable`] bucket (an S3 key, an anonymous reader of a public-read bucket, or a
//! REST principal); only this module makes those values, and every write opens its
//! change with the proof a [`Writable`] carries, so the row and its audit entry commit
//! together, as the caller. Metadata lives in the store, data in [`disk`].

pub mod disk;
mod housekeeping;
pub mod lifecycle;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::pin::Pin;

use base64::Engine;
use bytes::Bytes;
use futures_util::Stream;
use roost_api::ErrorCode;
use roost_api::tokens::Scope;
use roost_store::buckets::{BucketDoc, BucketRow, ObjectRow, PartRow, UploadRow, Versioning};
use roost_store::now_ms;
use serde::{Deserialize, Serialize};

use self::disk::{Disk, WriteError, Written, new_file_id};
pub use self::housekeeping::{Report, UPLOAD_MAX_AGE_DAYS, day_ms};
use crate::buckets::S3Identity;
use crate::kernel::Change;
use crate::policy::ProjectWrite;
use crate::{Control, Error, Principal, RequestContext};

/// The smallest part but the last one of a multipart upload (S3's rule).
const MIN_PART_SIZE: i64 = 5 << 20;
/// Part numbers are 1 to this (S3's rule).
pub const MAX_PARTS: i32 = 10_000;
const LIST_BATCH: i64 = 1000;

/// Why an object operation was refused: the cases S3 names by their own codes, or a
/// control-plane error (access, internal) as it is.
#[derive(Debug)]
pub enum ObjectError {
    NoSuchBucket(String),
    NoSuchKey,
    NoSuchVersion,
    /// The version asked for by id is a delete marker (S3: MethodNotAllowed).
    DeleteMarker,
    NoSuchUpload,
    PreconditionFailed(&'static str),
    NotModified,
    InvalidRange(&'static str),
    BadDigest,
    IncompleteBody(String),
    KeyTooLong,
    InvalidPart(String),
    InvalidPartOrder,
    EntityTooSmall(String),
    /// A request S3 refuses as `InvalidRequest` (a copy onto itself without a change).
    InvalidRequest(&'static str),
    /// A request S3 refuses as `MalformedXML` (a completion naming no parts).
    Malformed(&'static str),
    /// The project's `bucket_gib` quota (S3: AccessDenied).
    QuotaExceeded(String),
    Control(Error),
}

impl From<Error> for ObjectError {
    fn from(e: Error) -> Self {
        ObjectError::Control(e)
    }
}

impl From<roost_store::StoreError> for ObjectError {
    fn from(e: roost_store::StoreError) -> Self {
        ObjectError::Control(e.into())
    }
}

impl ObjectError {
    fn internal(e: impl std::fmt::Display) -> ObjectError {
        ObjectError::Control(Error::internal(e.to_string()))
    }

    /// The message a client is shown.
    pub fn message(&self) -> String {
        match self {
            ObjectError::NoSuchBucket(m) | ObjectError::IncompleteBody(m) => m.clone(),
            ObjectError::NoSuchKey => "the key does not exist".into(),
            ObjectError::NoSuchVersion => "the version does not exist".into(),
            ObjectError::DeleteMarker => "the version is a delete marker".into(),
            ObjectError::NoSuchUpload => "the upload does not exist (completed or aborted?)".into(),
            ObjectError::PreconditionFailed(m)
            | ObjectError::InvalidRange(m)
            | ObjectError::InvalidRequest(m)
            | ObjectError::Malformed(m) => m.to_string(),
            ObjectError::NotModified => "not modified".into(),
            ObjectError::BadDigest => "the Content-MD5 you specified did not match what was received".into(),
            ObjectError::KeyTooLong => "object keys are 1-1024 bytes".into(),
            ObjectError::InvalidPart(m) | ObjectError::EntityTooSmall(m) | ObjectError::QuotaExceeded(m) => m.clone(),
            ObjectError::InvalidPartOrder => "parts must be listed in ascending order".into(),
            ObjectError::Control(e) => e.message.clone(),
        }
    }
}

/// The REST API's view of an object error.
impl From<ObjectError> for Error {
    fn from(e: ObjectError) -> Error {
        let code = match &e {
            ObjectError::Control(_) => {
                let ObjectError::Control(e) = e else { unreachable!() };
                return e;
            }
            ObjectError::NoSuchBucket(_)
            | ObjectError::NoSuchKey
            | ObjectError::NoSuchVersion
            | ObjectError::DeleteMarker
            | ObjectError::NoSuchUpload => ErrorCode::NotFound,
            ObjectError::PreconditionFailed(_) | ObjectError::NotModified => ErrorCode::PreconditionFailed,
            ObjectError::QuotaExceeded(_) => ErrorCode::Forbidden,
            _ => ErrorCode::InvalidRequest,
        };
        Error::new(code, e.message())
    }
}

pub type ObjectResult<T> = std::result::Result<T, ObjectError>;

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
    /// `x-amz-meta-*` without the prefix, names in lower case.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl StoredHeaders {
    pub fn parse(s: Option<&str>) -> StoredHeaders {
        s.and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default()
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `If-Match` / `If-None-Match`: any version (`*`) or one ETag (without quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagCondition {
    Any,
    Tag(String),
}

impl EtagCondition {
    /// A header's value: `*`, `"etag"`, `W/"etag"` or a bare ETag.
    pub fn parse(header: &str) -> EtagCondition {
        match header.trim() {
            "*" => EtagCondition::Any,
            t => EtagCondition::Tag(t.trim_start_matches("W/").trim_matches('"').to_string()),
        }
    }

    fn matches(&self, etag: &str) -> bool {
        match self {
            EtagCondition::Any => true,
            EtagCondition::Tag(t) => t == etag,
        }
    }
}

/// The conditions of a read (GET, HEAD, the source of a copy). Times are seconds since
/// the epoch.
#[derive(Debug, Clone, Default)]
pub struct ReadConditions {
    pub if_match: Option<EtagCondition>,
    pub if_none_match: Option<EtagCondition>,
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

impl ReadConditions {
    /// `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`, in the
    /// order RFC 9110 and S3 evaluate them.
    fn check(&self, obj: &ObjectRow) -> ObjectResult<()> {
        let modified = obj.modified_at / 1000;
        if let Some(c) = &self.if_match {
            if !c.matches(&obj.etag) {
                return Err(ObjectError::PreconditionFailed("If-Match does not match the object's ETag"));
            }
        } else if let Some(t) = self.if_unmodified_since
            && modified > t
        {
            return Err(ObjectError::PreconditionFailed("the object was modified since If-Unmodified-Since"));
        }
        if let Some(c) = &self.if_none_match {
            if c.matches(&obj.etag) {
                return Err(ObjectError::NotModified);
            }
        } else if let Some(t) = self.if_modified_since
            && modified <= t
        {
            return Err(ObjectError::NotModified);
        }
        Ok(())
    }
}

/// One byte range of a `Range` header (RFC 9110).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last` (inclusive) or `first-`.
    Int { first: u64, last: Option<u64> },
    /// The last `length` bytes.
    Suffix { length: u64 },
}

impl ByteRange {
    /// `bytes=a-b`, `bytes=a-` or `bytes=-n`; `None` for anything else.
    pub fn parse(header: &str) -> Option<ByteRange> {
        let spec = header.trim().strip_prefix("bytes=")?;
        let (a, b) = spec.split_once('-')?;
        let num = |s: &str| (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse::<u64>().ok())?;
        if a.is_empty() {
            return Some(ByteRange::Suffix { length: num(b)? });
        }
        let first = num(a).filter(|f| *f <= i64::MAX as u64)?;
        if b.is_empty() {
            return Some(ByteRange::Int { first, last: None });
        }
        let last = num(b).filter(|l| *l <= i64::MAX as u64 && *l >= first)?;
        Some(ByteRange::Int { first, last: Some(last) })
    }

    /// The bytes of an object of `size` this range selects, unless it selects none.
    pub fn check(&self, size: u64) -> Option<Range<u64>> {
        match *self {
            ByteRange::Int { first, last } => {
                if first >= size {
                    return None;
                }
                match last {
                    Some(last) => {
                        let last = last.min(size - 1);
                        (first <= last).then_some(first..last + 1)
                    }
                    None => Some(first..size),
                }
            }
            ByteRange::Suffix { length } => {
                if length == 0 {
                    return None;
                }
                let length = length.min(size);
                Some(size - length..size)
            }
        }
    }
}

/// An object's bytes as they are read from disk.
pub type ObjectBody = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static>>;

/// What a GET or HEAD found.
pub struct ObjectRead {
    pub object: ObjectRow,
    pub headers: StoredHeaders,
    /// The bytes answered: the whole object, or the range asked for.
    pub bytes: Range<u64>,
    /// Whether a range was asked for (the answer is partial, with `Content-Range`).
    pub ranged: bool,
    /// The bytes (GET only).
    pub body: Option<ObjectBody>,
}

/// An object to write.
#[derive(Debug, Clone, Default)]
pub struct PutObject {
    pub key: String,
    pub headers: StoredHeaders,
    /// The size the client announced, for the quota check before any byte is stored.
    pub content_length: Option<i64>,
    /// `Content-MD5` (base64), checked against what arrived.
    pub content_md5: Option<String>,
    pub if_match: Option<EtagCondition>,
    pub if_none_match: Option<EtagCondition>,
}

/// What a delete did: whether it made (or removed) a delete marker, and the version.
#[derive(Debug, Clone, Default)]
pub struct Deleted {
    pub delete_marker: bool,
    pub version_id: Option<String>,
}

/// One part named by a completion: its number and, optionally, the ETag it must have.
#[derive(Debug, Clone)]
pub struct CompletedPart {
    pub number: Option<i32>,
    pub etag: Option<String>,
}

/// Keys (and common prefixes) of a listing.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<ObjectRow>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned (the next marker).
    pub last: Option<String>,
}

/// Versions (and delete markers) of a listing, in key then newest-first order, each
/// with whether it is the current one.
#[derive(Debug, Default)]
pub struct VersionListing {
    pub versions: Vec<(ObjectRow, bool)>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    /// The key and version id of the last version returned.
    pub last: Option<(String, String)>,
}

/// A bucket its caller may read. Made only by this module's access checks.
#[derive(Debug, Clone)]
pub struct Readable {
    bucket: BucketRow,
}

impl Readable {
    pub fn row(&self) -> &BucketRow {
        &self.bucket
    }

    /// The version id to report (`x-amz-version-id`): buckets that have (had)
    /// versioning report it.
    pub fn version_header(&self, version_id: &str) -> Option<String> {
        self.bucket.versioning.is_some().then(|| version_id.to_string())
    }
}

/// A bucket its caller may change: the proof and request its changes open with.
pub struct Writable {
    readable: Readable,
    proof: ProjectWrite,
    ctx: RequestContext,
}

impl Writable {
    pub fn row(&self) -> &BucketRow {
        &self.readable.bucket
    }

    pub fn readable(&self) -> &Readable {
        &self.readable
    }

    async fn open<'c>(&self, control: &'c Control) -> ObjectResult<Change<'c>> {
        Ok(control.change(&self.ctx, &self.proof).await?)
    }
}

/// Keys are strings, never paths: anything valid UTF-8 of 1-1024 bytes goes.
pub fn check_key(key: &str) -> ObjectResult<()> {
    if key.is_empty() || key.len() > 1024 {
        return Err(ObjectError::KeyTooLong);
    }
    Ok(())
}

fn etag_of(md5: &[u8; 16]) -> String {
    hex::encode(md5)
}

/// The version id a new write gets in this bucket.
fn new_version_id(bucket: &BucketRow) -> String {
    match Versioning::of(bucket) {
        Versioning::Enabled => new_file_id(),
        _ => "null".to_string(),
    }
}

fn write_error(e: WriteError) -> ObjectError {
    match e {
        WriteError::Body(m) => ObjectError::IncompleteBody(format!("the request body could not be read: {m}")),
        WriteError::Io(e) => ObjectError::internal(e),
    }
}

fn no_such_bucket(name: &str) -> ObjectError {
    ObjectError::NoSuchBucket(format!("the bucket '{name}' does not exist"))
}

impl Control {
    fn disk(&self) -> Disk {
        Disk::new(self.objects_dir())
    }

    // ---- access: the doors turn their callers into readable or writable buckets ----

    /// A bucket by name for an S3 caller: a key within its owner's rights and its own
    /// limits, or anonymous (`None`) for a public-read bucket.
    pub async fn s3_readable_bucket(&self, who: Option<&S3Identity>, name: &str) -> ObjectResult<Readable> {
        let bucket = self.store().bucket_by_name(name).await?.ok_or_else(|| no_such_bucket(name))?;
        match who {
            Some(who) => {
                self.s3_bucket_access(who, &bucket, false).await?;
            }
            None if bucket.public_read != 0 => {}
            None => return Err(Error::forbidden("access denied").into()),
        }
        Ok(Readable { bucket })
    }

    /// A bucket by name an S3 key may change. A refusal is audited as a failed
    /// `action` (as the REST door audits its refusals), with the key's owner and key id.
    pub async fn s3_writable_bucket(
        &self,
        ctx: &RequestContext,
        who: &S3Identity,
        name: &str,
        action: &str,
    ) -> ObjectResult<Writable> {
        let (user, token) = (who.principal.user_id.as_str(), Some(who.key.id.clone()));
        let Some(bucket) = self.store().bucket_by_name(name).await? else {
            self.audit_failure(ctx, user, token, action, None, "failure: not_found", None).await;
            return Err(no_such_bucket(name));
        };
        match self.s3_bucket_access(who, &bucket, true).await {
            Ok(Some(proof)) => Ok(Writable { readable: Readable { bucket }, proof, ctx: ctx.clone() }),
            Ok(None) => Err(Error::forbidden("access denied").into()),
            Err(e) => {
                let resource = Some(("bucket", bucket.id.as_str()));
                self.audit_failure(ctx, user, token, action, resource, "failure: forbidden", None).await;
                Err(e.into())
            }
        }
    }

    /// A bucket (by id or name) a principal may read: one of their projects' (any
    /// other is "not found").
    pub async fn readable_bucket(&self, p: &Principal, key: &str) -> crate::Result<Readable> {
        let row = self.bucket_row(p, key).await?;
        self.project_access(p, &row.bucket.project_id).await?;
        Ok(Readable { bucket: row.bucket })
    }

    /// A bucket (by id or name) a principal may change: a write scope and a role that
    /// writes in its project.
    pub async fn writable_bucket(&self, ctx: &RequestContext, p: &Principal, key: &str) -> crate::Result<Writable> {
        p.require_scope(Scope::Write)?;
        let row = self.bucket_row(p, key).await?;
        let proof = self.project_access(p, &row.bucket.project_id).await?.require_write()?;
        Ok(Writable { readable: Readable { bucket: row.bucket }, proof, ctx: ctx.clone() })
    }

    /// A bucket by name with no access check, for what is public by design: the CORS
    /// rules a browser's preflight is answered with.
    pub async fn bucket_for_cors(&self, name: &str) -> crate::Result<Option<BucketRow>> {
        Ok(self.store().bucket_by_name(name).await?)
    }

    // ---- reads ----

    /// The current version of a key, or the given version. A delete marker is "no such
    /// key" when current and [`ObjectError::DeleteMarker`] when asked for by id, as in S3.
    pub async fn object_at(&self, bucket: &Readable, key: &str, version: Option<&str>) -> ObjectResult<ObjectRow> {
        let store = self.store();
        let id = &bucket.bucket.id;
        let row = match version {
            None => store.object(id, key).await?,
            Some(v) => store.object_version(id, key, v).await?,
        };
        match row {
            Some(o) if !o.is_delete_marker() => Ok(o),
            Some(_) if version.is_some() => Err(ObjectError::DeleteMarker),
            _ if version.is_some() => Err(ObjectError::NoSuchVersion),
            _ => Err(ObjectError::NoSuchKey),
        }
    }

    /// GET: the object (or version), its stored headers and its bytes (or a range).
    pub async fn get_object(
        &self,
        bucket: &Readable,
        key: &str,
        version: Option<&str>,
        conditions: &ReadConditions,
        range: Option<&ByteRange>,
    ) -> ObjectResult<ObjectRead> {
        let disk = self.disk();
        // Open the file before answering: if a concurrent write replaced the object (and
        // removed its file) in between, look again.
        let mut attempts = 0;
        let (obj, file) = loop {
            let obj = self.object_at(bucket, key, version).await?;
            match disk.open(disk.object_path(&bucket.bucket.id, &obj.file_id)).await {
                Ok(file) => break (obj, file),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
                Err(e) => return Err(ObjectError::internal(e)),
            }
        };
        conditions.check(&obj)?;
        let bytes = bytes_of(&obj, range)?;
        let body: ObjectBody = Box::pin(disk.read_range(file, bytes.start, bytes.end - bytes.start));
        let headers = StoredHeaders::parse(obj.headers.as_deref());
        Ok(ObjectRead { object: obj, headers, bytes, ranged: range.is_some(), body: Some(body) })
    }

    /// HEAD: as GET, without the bytes.
    pub async fn head_object(
        &self,
        bucket: &Readable,
        key: &str,
        version: Option<&str>,
        conditions: &ReadConditions,
        range: Option<&ByteRange>,
    ) -> ObjectResult<ObjectRead> {
        let obj = self.object_at(bucket, key, version).await?;
        conditions.check(&obj)?;
        let headers = StoredHeaders::parse(obj.headers.as_deref());
        let bytes = bytes_of(&obj, range)?;
        Ok(ObjectRead { object: obj, headers, bytes, ranged: range.is_some(), body: None })
    }

    /// Keys (and common prefixes, with a delimiter) after `after`, starting with `prefix`,
    /// at most `max_keys` (up to 1000) of them.
    pub async fn list_objects(
        &self,
        bucket: &Readable,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max_keys: i32,
    ) -> ObjectResult<Listing> {
        let max = max_keys.clamp(0, 1000) as usize;
        let mut out = Listing::default();
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
            let rows = self.store().objects_from(&bucket.bucket.id, &from, exclusive, LIST_BATCH).await?;
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

    /// Versions and delete markers under `prefix`, after the key (and version id) marker.
    pub async fn list_versions(
        &self,
        bucket: &Readable,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        id_marker: Option<&str>,
        max_keys: i32,
    ) -> ObjectResult<VersionListing> {
        let max = max_keys.clamp(0, 1000) as usize;
        let key_marker = key_marker.filter(|k| !k.is_empty());
        let id_marker = id_marker.filter(|v| !v.is_empty());
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let from = match key_marker {
            Some(k) if k > prefix => k,
            _ => prefix,
        };
        let rows = self.store().versions_from(&bucket.bucket.id, from, 10_000).await?;
        let mut out = VersionListing::default();
        // With a version-id marker, skip up to and including that version of the marker key.
        let mut skipping = id_marker.is_some();
        for (row, latest) in rows {
            if !row.key.starts_with(prefix) {
                if row.key.as_str() > prefix {
                    break;
                }
                continue;
            }
            if let Some(k) = key_marker {
                if row.key.as_str() < k {
                    continue;
                }
                if row.key == k {
                    match id_marker {
                        None => continue,
                        Some(v) if skipping => {
                            if row.version_id == v {
                                skipping = false;
                            }
                            continue;
                        }
                        Some(_) => {}
                    }
                }
            }
            if let Some(d) = delimiter
                && let Some(i) = row.key[prefix.len()..].find(d)
            {
                let cp = format!("{prefix}{}", &row.key[prefix.len()..prefix.len() + i + d.len()]);
                if out.prefixes.last() != Some(&cp) {
                    if out.versions.len() + out.prefixes.len() >= max {
                        out.truncated = true;
                        break;
                    }
                    out.prefixes.push(cp);
                }
                continue;
            }
            if out.versions.len() + out.prefixes.len() >= max {
                out.truncated = true;
                break;
            }
            out.last = Some((row.key.clone(), row.version_id.clone()));
            out.versions.push((row, latest));
        }
        Ok(out)
    }

    // ---- writes ----

    /// PUT: streams `body` to disk, checks `Content-MD5` and the conditions, and records
    /// the object (a new version in a versioned bucket) as one audited change.
    pub async fn put_object<S, E>(&self, bucket: &Writable, put: PutObject, body: S) -> ObjectResult<ObjectRow>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        check_key(&put.key)?;
        self.check_object_bytes(bucket.row(), put.content_length.unwrap_or(0)).await?;
        let disk = self.disk();
        let written = disk.write_stream(&bucket.row().id, body).await.map_err(write_error)?;
        if let Err(e) = check_md5(put.content_md5.as_deref(), &written) {
            disk.remove(written.tmp.clone()).await;
            return Err(e);
        }
        // Conditions are checked once the body is in (a client that sent
        // `Expect: 100-continue` is never left with half a request on the connection).
        if let Err(e) = self.put_conditions(bucket, &put.key, put.if_none_match.as_ref(), put.if_match.as_ref()).await {
            disk.remove(written.tmp.clone()).await;
            return Err(e);
        }
        let etag = etag_of(&written.md5);
        self.commit_object(bucket, "bucket.object.put", &put.key, &written, etag, &put.headers).await
    }

    /// The source of a copy, once its conditions hold (a "not modified" is a failed
    /// precondition here, as in S3).
    pub async fn copy_source(
        &self,
        bucket: &Readable,
        key: &str,
        version: Option<&str>,
        conditions: &ReadConditions,
    ) -> ObjectResult<ObjectRow> {
        let src = self.object_at(bucket, key, version).await?;
        conditions.check(&src).map_err(|e| match e {
            ObjectError::NotModified => ObjectError::PreconditionFailed("copy source condition failed"),
            e => e,
        })?;
        Ok(src)
    }

    /// Copies `source` (of `src`) to `key` of `bucket`, with its headers or, given
    /// `replace`, with those.
    pub async fn copy_object(
        &self,
        src: &Readable,
        source: &ObjectRow,
        bucket: &Writable,
        key: &str,
        replace: Option<StoredHeaders>,
    ) -> ObjectResult<ObjectRow> {
        check_key(key)?;
        if replace.is_none() && src.bucket.id == bucket.row().id && source.key == key {
            return Err(ObjectError::InvalidRequest(
                "copying an object to itself needs a change: use the REPLACE metadata directive",
            ));
        }
        self.check_object_bytes(bucket.row(), source.size).await?;
        let headers = replace.unwrap_or_else(|| StoredHeaders::parse(source.headers.as_deref()));
        let disk = self.disk();
        let file = disk.open(disk.object_path(&src.bucket.id, &source.file_id)).await.map_err(ObjectError::internal)?;
        let written =
            disk.copy_range(&bucket.row().id, file, 0, source.size as u64).await.map_err(ObjectError::internal)?;
        // A copy is one simple object: its ETag is the MD5 of its bytes.
        let etag = etag_of(&written.md5);
        self.commit_object(bucket, "bucket.object.copy", key, &written, etag, &headers).await
    }

    /// DELETE of a key (in a versioned bucket: a new delete marker) or of one version.
    /// S3 answers alike whether or not the key existed.
    pub async fn delete_object(
        &self,
        bucket: &Writable,
        key: &str,
        version_id: Option<&str>,
        if_match: Option<&EtagCondition>,
    ) -> ObjectResult<Deleted> {
        if let Some(cond) = if_match {
            let obj = self.object_at(bucket.readable(), key, None).await?;
            if !cond.matches(&obj.etag) {
                return Err(ObjectError::PreconditionFailed("If-Match does not match"));
            }
        }
        match version_id {
            Some(v) => self.delete_version(bucket, key, v).await,
            None => self.delete_key(bucket.open(self).await?, "bucket.object.delete", bucket.row(), key).await,
        }
    }

    /// Sets (or clears) one of the bucket's settings documents (versioning, policy, CORS,
    /// lifecycle) as an audited change that announces the bucket (`bucket.updated`).
    pub async fn set_bucket_doc(
        &self,
        bucket: &Writable,
        doc: BucketDoc,
        value: Option<&str>,
        public_read: Option<bool>,
        action: &str,
        body: serde_json::Value,
    ) -> ObjectResult<()> {
        let id = &bucket.row().id;
        let mut tx = bucket.open(self).await?;
        roost_store::buckets::set_bucket_doc(tx.conn(), id, doc, value, public_read).await?;
        tx.audit(action, Some(("bucket", id)), Some(&body)).await?;
        let audience = crate::events::Audience::Project(bucket.row().project_id.clone());
        tx.bare_event("bucket.updated", "bucket", id, audience);
        tx.commit().await?;
        Ok(())
    }

    // ---- multipart uploads ----

    pub async fn create_upload(
        &self,
        bucket: &Writable,
        key: &str,
        headers: &StoredHeaders,
    ) -> ObjectResult<UploadRow> {
        check_key(key)?;
        let upload = UploadRow {
            id: new_file_id(),
            bucket_id: bucket.row().id.clone(),
            key: key.to_string(),
            headers: Some(headers.to_json()),
            created_at: now_ms(),
        };
        let mut tx = bucket.open(self).await?;
        roost_store::buckets::insert_upload(tx.conn(), &upload).await?;
        let body = serde_json::json!({"key": upload.key, "upload_id": upload.id});
        tx.audit("bucket.upload.create", Some(("bucket", &upload.bucket_id)), Some(&body)).await?;
        tx.commit().await?;
        Ok(upload)
    }

    /// An upload in progress of this bucket and key.
    pub async fn upload(&self, bucket: &Readable, key: &str, upload_id: &str) -> ObjectResult<UploadRow> {
        match self.store().upload(upload_id).await? {
            Some(u) if u.bucket_id == bucket.bucket.id && u.key == key => Ok(u),
            _ => Err(ObjectError::NoSuchUpload),
        }
    }

    /// The uploads in progress of a bucket.
    pub async fn list_uploads(&self, bucket: &Readable) -> ObjectResult<Vec<UploadRow>> {
        Ok(self.store().uploads(&bucket.bucket.id).await?)
    }

    /// An upload and its parts so far.
    pub async fn list_parts(
        &self,
        bucket: &Readable,
        key: &str,
        upload_id: &str,
    ) -> ObjectResult<(UploadRow, Vec<PartRow>)> {
        let upload = self.upload(bucket, key, upload_id).await?;
        let parts = self.store().parts(&upload.id).await?;
        Ok((upload, parts))
    }

    /// Stores one part; its ETag.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part<S, E>(
        &self,
        bucket: &Writable,
        key: &str,
        upload_id: &str,
        part: i32,
        content_length: Option<i64>,
        content_md5: Option<&str>,
        body: S,
    ) -> ObjectResult<String>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        check_part_number(part)?;
        let upload = self.upload(bucket.readable(), key, upload_id).await?;
        self.check_object_bytes(bucket.row(), content_length.unwrap_or(0)).await?;
        let disk = self.disk();
        let written = disk.write_stream(&bucket.row().id, body).await.map_err(write_error)?;
        if let Err(e) = check_md5(content_md5, &written) {
            disk.remove(written.tmp.clone()).await;
            return Err(e);
        }
        self.record_part(bucket, &upload, part, &written).await
    }

    /// Stores one part copied from (a range of) `source`; its ETag. `range` is
    /// `x-amz-copy-source-range`: `bytes=first-last` within the source.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part_copy(
        &self,
        src: &Readable,
        source: &ObjectRow,
        range: Option<&str>,
        bucket: &Writable,
        key: &str,
        upload_id: &str,
        part: i32,
    ) -> ObjectResult<String> {
        check_part_number(part)?;
        let upload = self.upload(bucket.readable(), key, upload_id).await?;
        let size = source.size as u64;
        let (offset, len) = match range {
            Some(r) => {
                let range = r
                    .strip_prefix("bytes=")
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                    .filter(|(a, b)| a <= b && *b < size)
                    .ok_or(ObjectError::InvalidRange(
                        "x-amz-copy-source-range must be bytes=first-last within the source",
                    ))?;
                (range.0, range.1 - range.0 + 1)
            }
            None => (0, size),
        };
        let disk = self.disk();
        let file = disk.open(disk.object_path(&src.bucket.id, &source.file_id)).await.map_err(ObjectError::internal)?;
        let written = disk.copy_range(&bucket.row().id, file, offset, len).await.map_err(ObjectError::internal)?;
        self.record_part(bucket, &upload, part, &written).await
    }

    /// Completes an upload: the object is the listed parts (no byte moves, see [`disk`]),
    /// recorded and the upload removed in one audited change.
    pub async fn complete_upload(
        &self,
        bucket: &Writable,
        key: &str,
        upload_id: &str,
        wanted: &[CompletedPart],
    ) -> ObjectResult<ObjectRow> {
        let upload = self.upload(bucket.readable(), key, upload_id).await?;
        if wanted.is_empty() {
            return Err(ObjectError::Malformed("the upload names no parts"));
        }
        let stored: HashMap<i64, PartRow> =
            self.store().parts(&upload.id).await?.into_iter().map(|p| (p.part_number, p)).collect();
        if wanted.windows(2).any(|w| matches!((w[0].number, w[1].number), (Some(a), Some(b)) if a >= b)) {
            return Err(ObjectError::InvalidPartOrder);
        }
        let disk = self.disk();
        let bucket_id = bucket.row().id.clone();
        let mut previous = 0;
        let mut files = Vec::new();
        let mut md5s = Vec::new();
        let count = wanted.len();
        for (i, part) in wanted.iter().enumerate() {
            let number = part.number.ok_or_else(|| ObjectError::InvalidPart("a part has no number".into()))?;
            if number <= previous {
                return Err(ObjectError::InvalidPartOrder);
            }
            previous = number;
            let Some(row) = stored.get(&(number as i64)) else {
                return Err(ObjectError::InvalidPart(format!("part {number} was not uploaded")));
            };
            if let Some(etag) = &part.etag
                && etag.trim_matches('"') != row.etag
            {
                return Err(ObjectError::InvalidPart(format!("part {number} has another ETag")));
            }
            if i + 1 < count && row.size < MIN_PART_SIZE {
                return Err(ObjectError::EntityTooSmall(format!(
                    "part {number} is smaller than 5 MiB and not the last"
                )));
            }
            files.push(disk.part_path(&bucket_id, &upload.id, number));
            md5s.extend(hex::decode(&row.etag).map_err(ObjectError::internal)?);
        }
        // No bytes move: the object becomes a directory of hard links to its parts (see
        // `disk`); the upload's directory, with any parts not listed, goes after the commit.
        let written = disk.assemble(&bucket_id, files).await.map_err(ObjectError::internal)?;
        let etag = format!("{}-{count}", hex::encode(<md5::Md5 as md5::Digest>::digest(&md5s)));
        let headers = StoredHeaders::parse(upload.headers.as_deref());
        let file_id = new_file_id();
        disk.install(&written, disk.object_path(&bucket_id, &file_id)).await.map_err(ObjectError::internal)?;
        let row = ObjectRow {
            bucket_id: bucket_id.clone(),
            key: upload.key.clone(),
            file_id: file_id.clone(),
            size: written.size as i64,
            etag,
            headers: Some(headers.to_json()),
            parts: Some(count as i64),
            modified_at: now_ms(),
            version_id: new_version_id(bucket.row()),
            delete_marker: 0,
        };
        // The object appears and the upload disappears in one transaction.
        let result = async {
            let mut tx = bucket.open(self).await?;
            let old = roost_store::buckets::put_object(tx.conn(), &row, Versioning::of(bucket.row())).await?;
            roost_store::buckets::delete_upload(tx.conn(), &upload.id).await?;
            let body = serde_json::json!({
                "key": row.key, "size": row.size, "version_id": row.version_id, "upload_id": upload.id, "parts": count
            });
            tx.audit("bucket.object.put", Some(("bucket", &bucket_id)), Some(&body)).await?;
            tx.commit().await?;
            Ok::<_, ObjectError>(old)
        }
        .await;
        match result {
            Ok(gone) => {
                for old in gone {
                    disk.remove(disk.object_path(&bucket_id, &old)).await;
                }
                disk.remove_dir(disk.upload_dir(&bucket_id, &upload.id)).await;
            }
            Err(e) => {
                disk.remove(disk.object_path(&bucket_id, &file_id)).await;
                return Err(e);
            }
        }
        Ok(row)
    }

    pub async fn abort_upload(&self, bucket: &Writable, key: &str, upload_id: &str) -> ObjectResult<()> {
        let upload = self.upload(bucket.readable(), key, upload_id).await?;
        let mut tx = bucket.open(self).await?;
        roost_store::buckets::delete_upload(tx.conn(), &upload.id).await?;
        let body = serde_json::json!({"key": upload.key, "upload_id": upload.id});
        tx.audit("bucket.upload.abort", Some(("bucket", &bucket.row().id)), Some(&body)).await?;
        tx.commit().await?;
        let disk = self.disk();
        disk.remove_dir(disk.upload_dir(&bucket.row().id, &upload.id)).await;
        Ok(())
    }

    // ---- the pieces ----

    /// Fails when `adding` bytes would exceed the project's `bucket_gib` quota.
    async fn check_object_bytes(&self, bucket: &BucketRow, adding: i64) -> ObjectResult<()> {
        self.check_bucket_bytes(&bucket.project_id, adding)
            .await
            .map_err(|e| if e.code == ErrorCode::Forbidden { ObjectError::QuotaExceeded(e.message) } else { e.into() })
    }

    /// `If-None-Match` / `If-Match` of a PUT, against the key's current version.
    async fn put_conditions(
        &self,
        bucket: &Writable,
        key: &str,
        if_none_match: Option<&EtagCondition>,
        if_match: Option<&EtagCondition>,
    ) -> ObjectResult<()> {
        if if_none_match.is_none() && if_match.is_none() {
            return Ok(());
        }
        let exists = self.store().object(&bucket.row().id, key).await?.filter(|o| !o.is_delete_marker());
        if let Some(cond) = if_none_match {
            let hit = match (&exists, cond) {
                (Some(_), EtagCondition::Any) => true,
                (Some(o), c) => c.matches(&o.etag),
                (None, _) => false,
            };
            if hit {
                return Err(ObjectError::PreconditionFailed("the key exists (If-None-Match)"));
            }
        }
        if let Some(cond) = if_match
            && !exists.as_ref().is_some_and(|o| cond.matches(&o.etag))
        {
            return Err(ObjectError::PreconditionFailed("If-Match does not match"));
        }
        Ok(())
    }

    /// Puts a written temp file in place and records the object as one audited change;
    /// the replaced file (if any) is removed after the commit.
    async fn commit_object(
        &self,
        bucket: &Writable,
        action: &str,
        key: &str,
        written: &Written,
        etag: String,
        headers: &StoredHeaders,
    ) -> ObjectResult<ObjectRow> {
        let disk = self.disk();
        let bucket_id = &bucket.row().id;
        let file_id = new_file_id();
        disk.install(written, disk.object_path(bucket_id, &file_id)).await.map_err(ObjectError::internal)?;
        let row = ObjectRow {
            bucket_id: bucket_id.clone(),
            key: key.to_string(),
            file_id: file_id.clone(),
            size: written.size as i64,
            etag,
            headers: Some(headers.to_json()),
            parts: None,
            modified_at: now_ms(),
            version_id: new_version_id(bucket.row()),
            delete_marker: 0,
        };
        let result = async {
            let mut tx = bucket.open(self).await?;
            let old = roost_store::buckets::put_object(tx.conn(), &row, Versioning::of(bucket.row())).await?;
            let body = serde_json::json!({"key": key, "size": row.size, "version_id": row.version_id});
            tx.audit(action, Some(("bucket", bucket_id)), Some(&body)).await?;
            tx.commit().await?;
            Ok::<_, ObjectError>(old)
        }
        .await;
        match result {
            Ok(gone) => {
                for old in gone {
                    disk.remove(disk.object_path(bucket_id, &old)).await;
                }
                Ok(row)
            }
            Err(e) => {
                disk.remove(disk.object_path(bucket_id, &file_id)).await;
                Err(e)
            }
        }
    }

    async fn record_part(
        &self,
        bucket: &Writable,
        upload: &UploadRow,
        part: i32,
        written: &Written,
    ) -> ObjectResult<String> {
        let etag = etag_of(&written.md5);
        let disk = self.disk();
        let bucket_id = &bucket.row().id;
        disk.install(written, disk.part_path(bucket_id, &upload.id, part)).await.map_err(ObjectError::internal)?;
        let mut tx = bucket.open(self).await?;
        let row = PartRow {
            upload_id: upload.id.clone(),
            part_number: part as i64,
            size: written.size as i64,
            etag: etag.clone(),
            modified_at: now_ms(),
        };
        roost_store::buckets::put_part(tx.conn(), &row).await?;
        let body = serde_json::json!({"key": upload.key, "upload_id": upload.id, "part": part, "size": written.size});
        tx.audit("bucket.upload.part", Some(("bucket", bucket_id)), Some(&body)).await?;
        tx.commit().await?;
        Ok(etag)
    }

    /// Deletes a key's current version: gone (unversioned bucket) or hidden behind a new
    /// delete marker (versioned). `tx` is the change it is part of (the caller's, or the
    /// server's for the lifecycle rules), audited as `action`.
    async fn delete_key(
        &self,
        mut tx: Change<'_>,
        action: &str,
        bucket: &BucketRow,
        key: &str,
    ) -> ObjectResult<Deleted> {
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
            version_id: new_version_id(bucket),
            delete_marker: 1,
        });
        let gone = roost_store::buckets::delete_object(tx.conn(), &bucket.id, key, mode, marker.as_ref()).await?;
        let body = serde_json::json!({"key": key, "delete_marker": marker.as_ref().map(|m| &m.version_id)});
        tx.audit(action, Some(("bucket", &bucket.id)), Some(&body)).await?;
        tx.commit().await?;
        let disk = self.disk();
        for file in gone {
            disk.remove(disk.object_path(&bucket.id, &file)).await;
        }
        Ok(Deleted { delete_marker: marker.is_some(), version_id: marker.map(|m| m.version_id) })
    }

    /// Permanently deletes one version (or delete marker).
    async fn delete_version(&self, bucket: &Writable, key: &str, version_id: &str) -> ObjectResult<Deleted> {
        let bucket_id = &bucket.row().id;
        let mut tx = bucket.open(self).await?;
        let old = roost_store::buckets::delete_version(tx.conn(), bucket_id, key, version_id).await?;
        let body = serde_json::json!({"key": key, "version_id": version_id});
        tx.audit("bucket.object.delete_version", Some(("bucket", bucket_id)), Some(&body)).await?;
        tx.commit().await?;
        match old {
            Some(o) => {
                if !o.is_delete_marker() && !o.file_id.is_empty() {
                    let disk = self.disk();
                    disk.remove(disk.object_path(bucket_id, &o.file_id)).await;
                }
                Ok(Deleted { delete_marker: o.is_delete_marker(), version_id: Some(o.version_id) })
            }
            None => Ok(Deleted { delete_marker: false, version_id: Some(version_id.to_string()) }),
        }
    }
}

fn check_part_number(part: i32) -> ObjectResult<()> {
    if !(1..=MAX_PARTS).contains(&part) {
        return Err(ObjectError::Control(Error::invalid("part numbers are 1-10000")));
    }
    Ok(())
}

fn check_md5(content_md5: Option<&str>, written: &Written) -> ObjectResult<()> {
    if let Some(md5) = content_md5 {
        let expected = base64::engine::general_purpose::STANDARD.decode(md5.trim()).ok();
        if expected.as_deref() != Some(&written.md5[..]) {
            return Err(ObjectError::BadDigest);
        }
    }
    Ok(())
}

/// The bytes a read answers: the range asked for, or the whole object.
fn bytes_of(obj: &ObjectRow, range: Option<&ByteRange>) -> ObjectResult<Range<u64>> {
    let size = obj.size as u64;
    match range {
        Some(r) => r.check(size).ok_or(ObjectError::InvalidRange("the range is not satisfiable")),
        None => Ok(0..size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_select_as_rfc_9110_says() {
        assert_eq!(ByteRange::parse("bytes=1-2"), Some(ByteRange::Int { first: 1, last: Some(2) }));
        assert_eq!(ByteRange::parse("bytes=5-"), Some(ByteRange::Int { first: 5, last: None }));
        assert_eq!(ByteRange::parse("bytes=-3"), Some(ByteRange::Suffix { length: 3 }));
        for bad in ["bytes=2-1", "bytes=a-b", "items=1-2", "bytes=-", "bytes=1-2,4-5", "bytes=+1-2"] {
            assert_eq!(ByteRange::parse(bad), None, "{bad}");
        }
        assert_eq!(ByteRange::Int { first: 1, last: Some(100) }.check(5), Some(1..5));
        assert_eq!(ByteRange::Int { first: 5, last: None }.check(5), None);
        assert_eq!(ByteRange::Suffix { length: 10 }.check(5), Some(0..5));
        assert_eq!(ByteRange::Suffix { length: 0 }.check(5), None);
    }

    #[test]
    fn etag_conditions_read_quoted_weak_and_any() {
        assert_eq!(EtagCondition::parse("*"), EtagCondition::Any);
        assert_eq!(EtagCondition::parse("\"abc\""), EtagCondition::Tag("abc".into()));
        assert_eq!(EtagCondition::parse("W/\"abc\""), EtagCondition::Tag("abc".into()));
    }
}
