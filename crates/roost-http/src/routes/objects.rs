//! `/v1/buckets/{id}/objects`: a bucket's objects over the REST API (the console's bucket
//! browser uses them). They call the control plane's object service directly, the one
//! the S3 endpoint is a door of, so versioning, quotas and ETags are S3's whether or not
//! the S3 listener is on (`--s3-listen off`), and each change is audited once, as the
//! caller, in the object row's transaction.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roost_api::ErrorResponse;
use roost_api::buckets::{ObjectEntry, ObjectList, ObjectListParams, PutObjectResult};
use roost_control::objects::{
    ByteRange, EtagCondition, ObjectError, ObjectRead, PutObject, ReadConditions, StoredHeaders,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Ctx, Path, Query};

/// Keys are 1-1024 bytes, as in S3.
fn check_key_length(key: &str) -> Result<(), ApiError> {
    if key.len() > 1024 {
        return Err(roost_control::Error::invalid("object keys are at most 1024 bytes").into());
    }
    Ok(())
}

/// An ETag as HTTP (and S3's listings) quote it.
fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// Milliseconds since the epoch as S3's listings write times (`2026-01-01T00:00:00.000Z`).
fn listing_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Milliseconds since the epoch as an HTTP date (`Last-Modified`).
fn http_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// List one level of a bucket: keys under `prefix`, and the "folders" below it when
/// `delimiter` is given.
#[utoipa::path(get, path = "/v1/buckets/{id}/objects", tag = "buckets",
    params(("id" = String, Path, description = "Bucket id or name"), ObjectListParams),
    responses((status = 200, body = ObjectList), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ObjectListParams>,
) -> Result<axum::Json<ObjectList>, ApiError> {
    let bucket = s.control.readable_bucket(&auth, &id).await?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 1000) as i32;
    let prefix = q.prefix.unwrap_or_default();
    // The cursor is the last key or prefix returned, hex-encoded (S3's continuation token).
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(
            hex::decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| roost_control::Error::invalid("the cursor is not valid"))?,
        ),
        None => None,
    };
    let listing = s
        .control
        .list_objects(&bucket, &prefix, q.delimiter.as_deref(), after.as_deref(), limit)
        .await
        .map_err(roost_control::Error::from)?;
    let objects = listing
        .objects
        .iter()
        .map(|o| ObjectEntry {
            key: o.key.clone(),
            size: o.size.max(0) as u64,
            etag: quoted(&o.etag),
            last_modified: listing_time(o.modified_at),
        })
        .collect();
    let next_cursor = if listing.truncated { listing.last.map(|l| hex::encode(l.as_bytes())) } else { None };
    Ok(axum::Json(ObjectList { prefixes: listing.prefixes, objects, next_cursor }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ObjectGetParams {
    /// Accepted for compatibility: every object body is served as a download
    /// (`Content-Disposition: attachment`), whatever this says.
    #[serde(default)]
    pub download: Option<String>,
}

/// The conditions of a GET or HEAD: `If-Match`, `If-None-Match`, `If-Modified-Since`.
fn read_conditions(headers: &HeaderMap) -> ReadConditions {
    let text = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    ReadConditions {
        if_match: text(header::IF_MATCH).map(EtagCondition::parse),
        if_none_match: text(header::IF_NONE_MATCH).map(EtagCondition::parse),
        // An unreadable date is ignored, as RFC 9110 says.
        if_modified_since: text(header::IF_MODIFIED_SINCE)
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.timestamp()),
        if_unmodified_since: None,
    }
}

/// The headers that describe an object: type, size, ETag, dates, metadata, version.
fn object_headers(read: &ObjectRead, versioned: bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    let mut set = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    let (obj, h) = (&read.object, &read.headers);
    let StoredHeaders { content_type, cache_control, content_encoding, metadata, .. } = h;
    if let Some(t) = content_type {
        set(header::CONTENT_TYPE, t);
    }
    set(header::CONTENT_LENGTH, &(read.bytes.end - read.bytes.start).to_string());
    set(header::ETAG, &quoted(&obj.etag));
    set(header::LAST_MODIFIED, &http_date(obj.modified_at));
    if let Some(c) = cache_control {
        set(header::CACHE_CONTROL, c);
    }
    if let Some(e) = content_encoding {
        set(header::CONTENT_ENCODING, e);
    }
    if read.ranged {
        let range = format!("bytes {}-{}/{}", read.bytes.start, read.bytes.end.saturating_sub(1), obj.size);
        set(header::CONTENT_RANGE, &range);
    }
    set(header::ACCEPT_RANGES, "bytes");
    for (name, value) in metadata {
        if let Ok(name) = HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes()) {
            set(name, value);
        }
    }
    if versioned {
        set(HeaderName::from_static("x-amz-version-id"), &obj.version_id);
    }
    out
}

/// Download an object (or, with `HEAD`, just its headers: type, size, ETag, metadata).
/// `Range` is honoured. The body comes from the console's origin but is the uploader's
/// choice, so it is always a download (`Content-Disposition: attachment` with the name
/// in RFC 6266/5987 form), never sniffed (`nosniff`), and sandboxed should a browser
/// render it (`Content-Security-Policy: sandbox`); the stored `Content-Type` is reported.
#[utoipa::path(get, path = "/v1/buckets/{id}/objects/{key}", tag = "buckets",
    params(("id" = String, Path, description = "Bucket id or name"), ("key" = String, Path, description = "Object key"), ObjectGetParams),
    responses((status = 200, description = "The object's bytes, as an attachment"), (status = 206, description = "A range"),
        (status = 304, description = "Not modified (`If-None-Match`, `If-Modified-Since`)"),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 412, description = "`If-Match` does not name the object's ETag", body = ErrorResponse)))]
pub async fn get(
    State(s): State<AppState>,
    auth: Auth,
    method: Method,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
    Query(_q): Query<ObjectGetParams>,
) -> Result<Response, ApiError> {
    let head = method == Method::HEAD;
    let read = async {
        if key.len() > 1024 {
            return Err(ObjectError::KeyTooLong);
        }
        let bucket = s.control.readable_bucket(&auth, &id).await?;
        let range =
            match headers.get(header::RANGE) {
                Some(v) => Some(v.to_str().ok().and_then(ByteRange::parse).ok_or_else(|| {
                    roost_control::Error::invalid("the Range header must be one bytes=first-last range")
                })?),
                None => None,
            };
        let conditions = read_conditions(&headers);
        let read = if head {
            s.control.head_object(&bucket, &key, None, &conditions, range.as_ref()).await
        } else {
            s.control.get_object(&bucket, &key, None, &conditions, range.as_ref()).await
        };
        Ok((read?, bucket.row().versioning.is_some()))
    };
    let (mut read, versioned) = match read.await {
        Ok(found) => found,
        Err(ObjectError::NotModified) => return Ok(StatusCode::NOT_MODIFIED.into_response()),
        Err(e) => {
            let e = ApiError::from(roost_control::Error::from(e));
            // A HEAD answers with the status alone.
            return if head { Ok(e.into_response().status().into_response()) } else { Err(e) };
        }
    };
    let mut out_headers = object_headers(&read, versioned);
    if let Ok(v) = HeaderValue::from_str(&attachment(&key)) {
        out_headers.insert(header::CONTENT_DISPOSITION, v);
    }
    out_headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out_headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(crate::middleware::API_CSP));
    let status = if read.ranged { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let body = match read.body.take() {
        Some(body) => Body::from_stream(body),
        None => Body::empty(),
    };
    Ok((status, out_headers, body).into_response())
}

/// `attachment` with the key's last segment as the file name: an ASCII fallback (quotes,
/// backslashes and other characters replaced by `_`) and the exact name in RFC 5987 form.
fn attachment(key: &str) -> String {
    let name = key.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("download");
    let ascii: String = name
        .chars()
        .map(|c| if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' { c } else { '_' })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", roost_control::presign::uri_encode(name, false))
}

/// Upload an object: the request body, stored as is, with its `Content-Type`,
/// `Cache-Control`, `Content-Disposition` and `x-amz-meta-*` headers.
#[utoipa::path(put, path = "/v1/buckets/{id}/objects/{key}", operation_id = "bucket.object.put", tag = "buckets",
    params(("id" = String, Path, description = "Bucket id or name"), ("key" = String, Path, description = "Object key")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The object's bytes"),
    responses((status = 201, body = PutObjectResult), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn put(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
    body: Body,
) -> Result<(StatusCode, axum::Json<PutObjectResult>), ApiError> {
    if key.is_empty() || key.ends_with('/') && headers.get(header::CONTENT_LENGTH).is_some_and(|l| l != "0") {
        return Err(roost_control::Error::invalid("an object key must not be empty or end with '/'").into());
    }
    check_key_length(&key)?;
    let bucket = s.control.writable_bucket(&ctx, &auth, &id).await?;
    let text = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
    let metadata = headers
        .iter()
        .filter_map(|(name, value)| {
            let name = name.as_str().strip_prefix("x-amz-meta-")?;
            Some((name.to_string(), value.to_str().ok()?.to_string()))
        })
        .collect();
    let put = PutObject {
        key: key.clone(),
        headers: StoredHeaders {
            content_type: text(header::CONTENT_TYPE),
            cache_control: text(header::CACHE_CONTROL),
            content_disposition: text(header::CONTENT_DISPOSITION),
            metadata,
            ..Default::default()
        },
        content_length: text(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        ..Default::default()
    };
    let row = s.control.put_object(&bucket, put, body.into_data_stream()).await.map_err(roost_control::Error::from)?;
    let stored = PutObjectResult { key, size: row.size.max(0) as u64, etag: quoted(&row.etag) };
    Ok((StatusCode::CREATED, axum::Json(stored)))
}

/// Delete an object (in a versioned bucket: a delete marker).
#[utoipa::path(delete, path = "/v1/buckets/{id}/objects/{key}", operation_id = "bucket.object.delete", tag = "buckets",
    params(("id" = String, Path, description = "Bucket id or name"), ("key" = String, Path, description = "Object key")),
    responses((status = 204, description = "Deleted (also when it did not exist, as in S3)"), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn delete(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_key_length(&key)?;
    let bucket = s.control.writable_bucket(&ctx, &auth, &id).await?;
    s.control.delete_object(&bucket, &key, None, None).await.map_err(roost_control::Error::from)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_s3_and_http_write_them() {
        assert_eq!(listing_time(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        assert_eq!(http_date(1_767_225_600_123), "Thu, 01 Jan 2026 00:00:00 GMT");
    }

    #[test]
    fn attachments_name_the_file_safely() {
        assert_eq!(
            attachment("site/é \"x\";.html"),
            "attachment; filename=\"_ _x_;.html\"; filename*=UTF-8''%C3%A9%20%22x%22%3B.html"
        );
        assert_eq!(attachment("a\\b"), "attachment; filename=\"a_b\"; filename*=UTF-8''a%5Cb");
        assert_eq!(attachment("dir/"), "attachment; filename=\"download\"; filename*=UTF-8''download");
    }
}
