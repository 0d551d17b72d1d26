//! `s3s::S3` over the object service (`roost_control::objects`): this is the S3 door.
//! Each operation resolves its caller (an S3 key, or anonymous for public-read buckets),
//! has the control plane check the bucket access, maps S3's DTOs to the service's
//! types and the service's errors to S3's codes. Rows, files, quotas, versioning and the
//! audit trail are the service's, shared with the REST object routes.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use roost_control::buckets::S3Identity;
use roost_control::objects::{
    ByteRange, CompletedPart, EtagCondition, ObjectError, PutObject, ReadConditions, Readable, StoredHeaders, Writable,
};
use roost_control::{Control, RequestContext};
use roost_store::buckets::{BucketDoc, ObjectRow};
use roost_store::now_ms;
use s3s::auth::Credentials;
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

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

/// An object service error as S3 reports it.
fn from_object(e: ObjectError) -> S3Error {
    let code = match &e {
        ObjectError::Control(_) => {
            let ObjectError::Control(e) = e else { unreachable!() };
            return from_control(e);
        }
        ObjectError::NotModified => return S3Error::new(S3ErrorCode::NotModified),
        ObjectError::NoSuchBucket(_) => S3ErrorCode::NoSuchBucket,
        ObjectError::NoSuchKey => S3ErrorCode::NoSuchKey,
        ObjectError::NoSuchVersion => S3ErrorCode::NoSuchVersion,
        ObjectError::DeleteMarker => S3ErrorCode::MethodNotAllowed,
        ObjectError::NoSuchUpload => S3ErrorCode::NoSuchUpload,
        ObjectError::PreconditionFailed(_) => S3ErrorCode::PreconditionFailed,
        ObjectError::InvalidRange(_) => S3ErrorCode::InvalidRange,
        ObjectError::BadDigest => S3ErrorCode::BadDigest,
        ObjectError::IncompleteBody(_) => S3ErrorCode::IncompleteBody,
        ObjectError::KeyTooLong => S3ErrorCode::KeyTooLongError,
        ObjectError::InvalidPart(_) => S3ErrorCode::InvalidPart,
        ObjectError::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
        ObjectError::EntityTooSmall(_) => S3ErrorCode::EntityTooSmall,
        ObjectError::InvalidRequest(_) => S3ErrorCode::InvalidRequest,
        ObjectError::Malformed(_) => S3ErrorCode::MalformedXML,
        ObjectError::QuotaExceeded(_) => S3ErrorCode::AccessDenied,
    };
    S3Error::with_message(code, e.message())
}

fn condition(c: &ETagCondition) -> EtagCondition {
    match c {
        ETagCondition::Any => EtagCondition::Any,
        ETagCondition::ETag(t) => EtagCondition::Tag(t.value().to_string()),
    }
}

fn conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> ReadConditions {
    ReadConditions {
        if_match: if_match.map(condition),
        if_none_match: if_none_match.map(condition),
        if_modified_since: if_modified_since.map(ts_secs),
        if_unmodified_since: if_unmodified_since.map(ts_secs),
    }
}

fn byte_range(r: &Range) -> ByteRange {
    match *r {
        Range::Int { first, last } => ByteRange::Int { first, last },
        Range::Suffix { length } => ByteRange::Suffix { length },
    }
}

fn metadata_of(h: &StoredHeaders) -> Option<Metadata> {
    (!h.metadata.is_empty()).then(|| h.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn url_encode(s: &str) -> String {
    roost_control::presign::uri_encode(s, true)
}

fn check_part_number(part: i32) -> S3Result<()> {
    if !(1..=roost_control::objects::MAX_PARTS).contains(&part) {
        return Err(s3_error!(InvalidArgument, "part numbers are 1-10000"));
    }
    Ok(())
}

/// A body s3s may not have (an empty PUT) as the stream the service reads.
fn body_of(body: Option<StreamingBlob>) -> StreamingBlob {
    body.unwrap_or_else(|| StreamingBlob::wrap(futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>()))
}

#[derive(Clone)]
pub struct RoostS3 {
    pub(crate) control: Control,
    pub(crate) region: String,
}

impl RoostS3 {
    pub fn new(control: Control, region: String) -> RoostS3 {
        RoostS3 { control, region }
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

    /// The bucket, once the caller may read it.
    async fn bucket(&self, creds: &Option<Credentials>, name: &str) -> S3Result<Readable> {
        let who = self.caller(creds).await?;
        self.control.s3_readable_bucket(who.as_deref(), name).await.map_err(from_object)
    }

    /// The bucket, once the caller may change it (every write through S3 is a change of
    /// the kernel: row, audit entry, event). A refusal is audited as a failed `action`,
    /// as the REST door audits its refusals.
    async fn writable_bucket(&self, creds: &Option<Credentials>, name: &str, action: &str) -> S3Result<Writable> {
        let ctx = self.ctx();
        let who = match self.identity(creds).await {
            Ok(who) => who,
            Err(e) => {
                self.control.audit_failure(&ctx, "anonymous", None, action, None, "failure: unauthorized", None).await;
                return Err(e);
            }
        };
        self.control.s3_writable_bucket(&ctx, &who, name, action).await.map_err(from_object)
    }

    /// Sets (or clears) one of the bucket's settings documents.
    async fn set_doc(
        &self,
        bucket: &Writable,
        doc: BucketDoc,
        value: Option<&str>,
        public_read: Option<bool>,
        action: &str,
        body: serde_json::Value,
    ) -> S3Result<()> {
        self.control.set_bucket_doc(bucket, doc, value, public_read, action, body).await.map_err(from_object)
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

    /// The source of a copy: its bucket (readable by the caller) and object, once the
    /// copy-source conditions hold.
    async fn copy_source(
        &self,
        creds: &Option<Credentials>,
        src: &CopySource,
        conditions: ReadConditions,
    ) -> S3Result<(Readable, ObjectRow)> {
        let CopySource::Bucket { bucket, key, version_id } = src else {
            return Err(s3_error!(NotImplemented, "copy sources are bucket/key"));
        };
        let b = self.bucket(creds, bucket).await?;
        let o = self.control.copy_source(&b, key, version_id.as_deref(), &conditions).await.map_err(from_object)?;
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
                let mine = self.control.s3_readable_bucket(Some(&who), &name).await.is_ok();
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
        // The key's own limits (read-only, other buckets) apply as for any write.
        let bucket = self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.delete").await?;
        let who = self.identity(&req.credentials).await?;
        match self.control.delete_bucket(&self.ctx(), &who.principal, &bucket.row().id, false, None).await {
            Ok(()) => Ok(S3Response::new(DeleteBucketOutput {})),
            Err(e) if e.code == roost_api::ErrorCode::Conflict => {
                Err(S3Error::with_message(S3ErrorCode::BucketNotEmpty, e.message))
            }
            Err(e) => Err(from_control(e)),
        }
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket(&req.credentials, &req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(self.region.clone()), ..Default::default() }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.bucket(&req.credentials, &req.input.bucket).await?;
        // us-east-1 is reported as no constraint, as S3 does.
        let location = (self.region != "us-east-1").then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint: location }))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let bucket = self.bucket(&req.credentials, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketVersioningOutput {
            status: bucket.row().versioning.clone().map(BucketVersioningStatus::from),
            mfa_delete: None,
        }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let bucket = self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.versioning.set").await?;
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
        if bucket.row().versioning.is_none() && status == BucketVersioningStatus::SUSPENDED {
            return Ok(S3Response::new(PutBucketVersioningOutput {}));
        }
        let body = serde_json::json!({ "status": status });
        self.set_doc(&bucket, BucketDoc::Versioning, Some(status), None, "bucket.versioning.set", body).await?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let bucket = self.bucket(&req.credentials, &input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_keys.unwrap_or(1000).clamp(0, 1000);
        let encode = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: &str| if encode { url_encode(s) } else { s.to_string() };
        let listing = self
            .control
            .list_versions(
                &bucket,
                &prefix,
                input.delimiter.as_deref(),
                input.key_marker.as_deref(),
                input.version_id_marker.as_deref(),
                max,
            )
            .await
            .map_err(from_object)?;
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        for (row, latest) in &listing.versions {
            if row.is_delete_marker() {
                markers.push(DeleteMarkerEntry {
                    is_latest: Some(*latest),
                    key: Some(enc(&row.key)),
                    last_modified: Some(timestamp(row.modified_at)),
                    version_id: Some(row.version_id.clone()),
                    owner: None,
                });
            } else {
                versions.push(ObjectVersion {
                    e_tag: Some(ETag::Strong(row.etag.clone())),
                    is_latest: Some(*latest),
                    key: Some(enc(&row.key)),
                    last_modified: Some(timestamp(row.modified_at)),
                    size: Some(row.size),
                    version_id: Some(row.version_id.clone()),
                    storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                    ..Default::default()
                });
            }
        }
        let truncated = listing.truncated;
        let last = listing.last;
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(bucket.row().name.clone()),
            prefix: Some(enc(&prefix)),
            delimiter: input.delimiter.as_deref().map(enc),
            key_marker: input.key_marker.as_deref().map(enc),
            version_id_marker: input.version_id_marker,
            max_keys: Some(max),
            is_truncated: Some(truncated),
            next_key_marker: last.as_ref().filter(|_| truncated).map(|l| enc(&l.0)),
            next_version_id_marker: last.as_ref().filter(|_| truncated).map(|l| l.1.clone()),
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(listing.prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect()),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        roost_control::objects::check_key(&input.key).map_err(from_object)?;
        let bucket = self.writable_bucket(&req.credentials, &input.bucket, "bucket.object.put").await?;
        let put = PutObject {
            key: input.key,
            headers: headers_from(
                input.content_type,
                input.cache_control,
                input.content_disposition,
                input.content_encoding,
                input.content_language,
                input.expires.as_ref(),
                input.metadata,
            ),
            content_length: input.content_length,
            content_md5: input.content_md5,
            if_match: input.if_match.as_ref().map(condition),
            if_none_match: input.if_none_match.as_ref().map(condition),
        };
        let row = self.control.put_object(&bucket, put, body_of(input.body)).await.map_err(from_object)?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(row.etag.clone())),
            size: Some(row.size),
            version_id: bucket.readable().version_header(&row.version_id),
            ..Default::default()
        }))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let bucket = self.bucket(&req.credentials, &input.bucket).await?;
        let conditions = conditions(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        );
        let range = input.range.as_ref().map(byte_range);
        let read = self
            .control
            .get_object(&bucket, &input.key, input.version_id.as_deref(), &conditions, range.as_ref())
            .await
            .map_err(from_object)?;
        let (obj, h, bytes) = (&read.object, &read.headers, &read.bytes);
        let size = obj.size as u64;
        let content_range =
            read.ranged.then(|| format!("bytes {}-{}/{}", bytes.start, bytes.end.saturating_sub(1), size));
        let body = read.body.map(StreamingBlob::wrap);
        Ok(S3Response::new(GetObjectOutput {
            body,
            content_length: Some((bytes.end - bytes.start) as i64),
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
            metadata: metadata_of(h),
            parts_count: obj.parts.map(|p| p as i32),
            version_id: bucket.version_header(&obj.version_id),
            ..Default::default()
        }))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let bucket = self.bucket(&req.credentials, &input.bucket).await?;
        let conditions = conditions(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        );
        let range = input.range.as_ref().map(byte_range);
        let read = self
            .control
            .head_object(&bucket, &input.key, input.version_id.as_deref(), &conditions, range.as_ref())
            .await
            .map_err(from_object)?;
        let (obj, h, bytes) = (&read.object, &read.headers, &read.bytes);
        let size = obj.size as u64;
        let content_range =
            read.ranged.then(|| format!("bytes {}-{}/{}", bytes.start, bytes.end.saturating_sub(1), size));
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some((bytes.end - bytes.start) as i64),
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
            metadata: metadata_of(h),
            parts_count: obj.parts.map(|p| p as i32),
            version_id: bucket.version_header(&obj.version_id),
            ..Default::default()
        }))
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let bucket = self.writable_bucket(&req.credentials, &input.bucket, "bucket.object.delete").await?;
        let if_match = input.if_match.as_ref().map(condition);
        // S3 answers 204 whether or not the key existed.
        let deleted = self
            .control
            .delete_object(&bucket, &input.key, input.version_id.as_deref(), if_match.as_ref())
            .await
            .map_err(from_object)?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: deleted.delete_marker.then_some(true),
            version_id: deleted.version_id.and_then(|v| bucket.readable().version_header(&v)),
            ..Default::default()
        }))
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let bucket = self.writable_bucket(&req.credentials, &input.bucket, "bucket.object.delete").await?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 keys per request"));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in input.delete.objects {
            let result = self.control.delete_object(&bucket, &o.key, o.version_id.as_deref(), None).await;
            match result.map_err(from_object) {
                Ok(_) if quiet => {}
                Ok(d) => deleted.push(DeletedObject {
                    key: Some(o.key),
                    version_id: o.version_id.clone(),
                    delete_marker: d.delete_marker.then_some(true),
                    delete_marker_version_id: if d.delete_marker && o.version_id.is_none() {
                        d.version_id.and_then(|v| bucket.readable().version_header(&v))
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
        roost_control::objects::check_key(&input.key).map_err(from_object)?;
        let conditions = conditions(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        let (src_bucket, src) = self.copy_source(&req.credentials, &input.copy_source, conditions).await?;
        let bucket = self.writable_bucket(&req.credentials, &input.bucket, "bucket.object.copy").await?;
        let replace = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let headers = replace.then(|| {
            headers_from(
                input.content_type,
                input.cache_control,
                input.content_disposition,
                input.content_encoding,
                input.content_language,
                input.expires.as_ref(),
                input.metadata,
            )
        });
        let row =
            self.control.copy_object(&src_bucket, &src, &bucket, &input.key, headers).await.map_err(from_object)?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(row.etag.clone())),
                last_modified: Some(timestamp(row.modified_at)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let bucket = self.bucket(&req.credentials, &input.bucket).await?;
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
        let listing = self
            .control
            .list_objects(&bucket, &prefix, input.delimiter.as_deref(), after.as_deref(), max_keys)
            .await
            .map_err(from_object)?;
        let encode = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: &str| if encode { url_encode(s) } else { s.to_string() };
        let contents: Vec<Object> = listing.objects.iter().map(|o| self.to_object(o, encode)).collect();
        let prefixes: Vec<CommonPrefix> =
            listing.prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect();
        let key_count = (contents.len() + prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(bucket.row().name.clone()),
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
        let bucket = self.bucket(&req.credentials, &input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max_keys = input.max_keys.unwrap_or(1000);
        let listing = self
            .control
            .list_objects(&bucket, &prefix, input.delimiter.as_deref(), input.marker.as_deref(), max_keys)
            .await
            .map_err(from_object)?;
        let encode = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: &str| if encode { url_encode(s) } else { s.to_string() };
        let contents: Vec<Object> = listing.objects.iter().map(|o| self.to_object(o, encode)).collect();
        let prefixes: Vec<CommonPrefix> =
            listing.prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect();
        // NextMarker is returned when a delimiter is used; without one clients use the last key.
        let next_marker =
            (listing.truncated && input.delimiter.is_some()).then(|| listing.last.as_deref().map(enc)).flatten();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(bucket.row().name.clone()),
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
        roost_control::objects::check_key(&input.key).map_err(from_object)?;
        let bucket = self.writable_bucket(&req.credentials, &input.bucket, "bucket.upload.create").await?;
        let headers = headers_from(
            input.content_type,
            input.cache_control,
            input.content_disposition,
            input.content_encoding,
            input.content_language,
            input.expires.as_ref(),
            input.metadata,
        );
        let upload = self.control.create_upload(&bucket, &input.key, &headers).await.map_err(from_object)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(bucket.row().name.clone()),
            key: Some(input.key),
            upload_id: Some(upload.id),
            ..Default::default()
        }))
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        check_part_number(input.part_number)?;
        let bucket = self.writable_bucket(&req.credentials, &input.bucket, "bucket.upload.part").await?;
        let etag = self
            .control
            .upload_part(
                &bucket,
                &input.key,
                &input.upload_id,
                input.part_number,
                input.content_length,
                input.content_md5.as_deref(),
                body_of(input.body),
            )
            .await
            .map_err(from_object)?;
        Ok(S3Response::new(UploadPartOutput { e_tag: Some(ETag::Strong(etag)), ..Default::default() }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        check_part_number(input.part_number)?;
        let conditions = conditions(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        let (src_bucket, src) = self.copy_source(&req.credentials, &input.copy_source, conditions).await?;
        let bucket = self.writable_bucket(&req.credentials, &input.bucket, "bucket.upload.part").await?;
        let etag = self
            .control
            .upload_part_copy(
                &src_bucket,
                &src,
                input.copy_source_range.as_deref(),
                &bucket,
                &input.key,
                &input.upload_id,
                input.part_number,
            )
            .await
            .map_err(from_object)?;
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
        let bucket = self.bucket(&req.credentials, &input.bucket).await?;
        let (upload, all) =
            self.control.list_parts(&bucket, &input.key, &input.upload_id).await.map_err(from_object)?;
        let marker = input.part_number_marker.unwrap_or(0);
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let after: Vec<_> = all.iter().filter(|p| p.part_number > marker as i64).collect();
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
            bucket: Some(bucket.row().name.clone()),
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
        let bucket = self.bucket(&req.credentials, &input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let all = self.control.list_uploads(&bucket).await.map_err(from_object)?;
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
            bucket: Some(bucket.row().name.clone()),
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
        let bucket = self.writable_bucket(&req.credentials, &input.bucket, "bucket.object.put").await?;
        let wanted: Vec<CompletedPart> = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| CompletedPart { number: p.part_number, etag: p.e_tag.map(|t| t.value().to_string()) })
            .collect();
        let row =
            self.control.complete_upload(&bucket, &input.key, &input.upload_id, &wanted).await.map_err(from_object)?;
        let name = &bucket.row().name;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(name.clone()),
            key: Some(row.key.clone()),
            e_tag: Some(ETag::Strong(row.etag.clone())),
            location: Some(format!("/{name}/{}", url_encode(&row.key))),
            version_id: bucket.readable().version_header(&row.version_id),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let bucket = self.writable_bucket(&req.credentials, &input.bucket, "bucket.upload.abort").await?;
        self.control.abort_upload(&bucket, &input.key, &input.upload_id).await.map_err(from_object)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let bucket = self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.policy.set").await?;
        let public = roost_control::buckets::policy_is_public_read(&req.input.policy)
            .map_err(|e| S3Error::with_message(S3ErrorCode::MalformedPolicy, e.message))?;
        // The policy is recorded whole: whoever reads the audit sees what was granted.
        let body = serde_json::json!({ "policy": req.input.policy, "public_read": public });
        let policy = Some(req.input.policy.as_str());
        self.set_doc(&bucket, BucketDoc::Policy, policy, Some(public), "bucket.policy.set", body).await?;
        Ok(S3Response::new(PutBucketPolicyOutput {}))
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let bucket = self.bucket(&req.credentials, &req.input.bucket).await?;
        match bucket.row().policy.clone() {
            Some(p) => Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(p) })),
            None => Err(s3_error!(NoSuchBucketPolicy, "the bucket has no policy")),
        }
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let bucket = self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.policy.delete").await?;
        let body = serde_json::json!({ "public_read": false });
        self.set_doc(&bucket, BucketDoc::Policy, None, Some(false), "bucket.policy.delete", body).await?;
        Ok(S3Response::new(DeleteBucketPolicyOutput {}))
    }

    async fn put_bucket_cors(&self, req: S3Request<PutBucketCorsInput>) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let bucket = self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.cors.set").await?;
        let rules: Vec<crate::cors::CorsRule> =
            req.input.cors_configuration.cors_rules.into_iter().map(crate::cors::CorsRule::from_dto).collect();
        let json = serde_json::to_string(&rules).map_err(internal)?;
        let body = serde_json::json!({ "cors": rules });
        self.set_doc(&bucket, BucketDoc::Cors, Some(&json), None, "bucket.cors.set", body).await?;
        Ok(S3Response::new(PutBucketCorsOutput {}))
    }

    async fn get_bucket_cors(&self, req: S3Request<GetBucketCorsInput>) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let bucket = self.bucket(&req.credentials, &req.input.bucket).await?;
        let rules = crate::cors::rules_of(bucket.row());
        if rules.is_empty() {
            return Err(s3_error!(NoSuchCORSConfiguration, "the bucket has no CORS configuration"));
        }
        Ok(S3Response::new(GetBucketCorsOutput { cors_rules: Some(rules.into_iter().map(|r| r.to_dto()).collect()) }))
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        let bucket = self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.cors.delete").await?;
        let body = serde_json::json!({});
        self.set_doc(&bucket, BucketDoc::Cors, None, None, "bucket.cors.delete", body).await?;
        Ok(S3Response::new(DeleteBucketCorsOutput {}))
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let bucket = self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.lifecycle.set").await?;
        let rules = req.input.lifecycle_configuration.map(|c| c.rules).unwrap_or_default();
        let rules: Vec<roost_control::objects::lifecycle::Rule> =
            rules.into_iter().map(crate::lifecycle::from_dto).collect::<S3Result<_>>()?;
        let json = serde_json::to_string(&rules).map_err(internal)?;
        let body = serde_json::json!({ "rules": rules });
        self.set_doc(&bucket, BucketDoc::Lifecycle, Some(&json), None, "bucket.lifecycle.set", body).await?;
        Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let bucket = self.bucket(&req.credentials, &req.input.bucket).await?;
        let rules = roost_control::objects::lifecycle::rules_of(bucket.row());
        if rules.is_empty() {
            return Err(s3_error!(NoSuchLifecycleConfiguration, "the bucket has no lifecycle configuration"));
        }
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(rules.iter().map(crate::lifecycle::to_dto).collect()),
            ..Default::default()
        }))
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        let bucket = self.writable_bucket(&req.credentials, &req.input.bucket, "bucket.lifecycle.delete").await?;
        let body = serde_json::json!({});
        self.set_doc(&bucket, BucketDoc::Lifecycle, None, None, "bucket.lifecycle.delete", body).await?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput {}))
    }
}
