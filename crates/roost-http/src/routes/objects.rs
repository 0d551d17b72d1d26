//! `/v1/buckets/{id}/objects`: a bucket's objects over the REST API (the console's bucket
//! browser uses them). Each request is passed to this server's own S3 listener, signed
//! for one minute with the caller's presign key for the bucket (read-only for reads), so
//! it runs with the caller's rights and the S3 semantics (versioning, quotas, policies,
//! ETags) apply unchanged.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use roost_api::ErrorResponse;
use roost_api::buckets::{ObjectEntry, ObjectList, ObjectListParams, PutObjectResult};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Ctx, Path, Query};

/// The client the object routes reach this server's S3 listener with: plain HTTP, no
/// proxy, and no redirects followed (an answer is passed on as it is, never fetched
/// from wherever it points).
pub(crate) fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        // Plain HTTP on loopback, but reqwest still wants a TLS provider chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client")
    })
}

fn unavailable(e: reqwest::Error) -> ApiError {
    roost_control::Error::new(roost_api::ErrorCode::Unavailable, format!("the S3 endpoint did not answer: {e}")).into()
}

/// An S3 error document (`<Error><Code>…</Code><Message>…</Message>`) as the API's error.
async fn s3_error(resp: reqwest::Response) -> ApiError {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let code = tag(&text, "Code").unwrap_or_default();
    let message = tag(&text, "Message").unwrap_or_else(|| format!("the S3 endpoint answered {status}"));
    let api = match (status.as_u16(), code.as_str()) {
        (404, _) => roost_api::ErrorCode::NotFound,
        (403, _) => roost_api::ErrorCode::Forbidden,
        (409, _) => roost_api::ErrorCode::Conflict,
        (412, _) => roost_api::ErrorCode::PreconditionFailed,
        (400, _) | (411, _) | (413, _) => roost_api::ErrorCode::InvalidRequest,
        _ => roost_api::ErrorCode::Unavailable,
    };
    roost_control::Error::new(api, if code.is_empty() { message } else { format!("{message} ({code})") }).into()
}

/// The text of the first `<name>` element, unescaped.
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(unescape(&xml[start..end]))
}

/// Every `<name>…</name>` block, raw.
fn blocks<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// List one level of a bucket: keys under `prefix`, and the "folders" below it when
/// `delimiter` is given.
#[utoipa::path(get, path = "/v1/buckets/{id}/objects", tag = "buckets",
    params(("id" = String, Path, description = "Bucket id or name"), ObjectListParams),
    responses((status = 200, body = ObjectList), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn list(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ObjectListParams>,
) -> Result<axum::Json<ObjectList>, ApiError> {
    let limit = q.limit.unwrap_or(1000).clamp(1, 1000).to_string();
    let mut query: Vec<(&str, &str)> = vec![("list-type", "2"), ("max-keys", limit.as_str())];
    if let Some(p) = q.prefix.as_deref().filter(|p| !p.is_empty()) {
        query.push(("prefix", p));
    }
    if let Some(d) = q.delimiter.as_deref().filter(|d| !d.is_empty()) {
        query.push(("delimiter", d));
    }
    if let Some(c) = q.cursor.as_deref().filter(|c| !c.is_empty()) {
        query.push(("continuation-token", c));
    }
    let url = s.control.object_url(&ctx, &auth, &id, "GET", "", &query).await?;
    let resp = client().get(url).send().await.map_err(unavailable)?;
    if !resp.status().is_success() {
        return Err(s3_error(resp).await);
    }
    let xml = resp.text().await.map_err(unavailable)?;
    let objects = blocks(&xml, "Contents")
        .into_iter()
        .map(|c| ObjectEntry {
            key: tag(c, "Key").unwrap_or_default(),
            size: tag(c, "Size").and_then(|s| s.parse().ok()).unwrap_or(0),
            etag: tag(c, "ETag").unwrap_or_default(),
            last_modified: tag(c, "LastModified").unwrap_or_default(),
        })
        .collect();
    let prefixes = blocks(&xml, "CommonPrefixes").into_iter().filter_map(|c| tag(c, "Prefix")).collect();
    let next_cursor =
        (tag(&xml, "IsTruncated").as_deref() == Some("true")).then(|| tag(&xml, "NextContinuationToken")).flatten();
    Ok(axum::Json(ObjectList { prefixes, objects, next_cursor }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ObjectGetParams {
    /// Accepted for compatibility: every object body is served as a download
    /// (`Content-Disposition: attachment`), whatever this says.
    #[serde(default)]
    pub download: Option<String>,
}

/// Headers of an object that describe it (passed through from S3).
const PASSED: &[header::HeaderName] = &[
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::ETAG,
    header::LAST_MODIFIED,
    header::CACHE_CONTROL,
    header::CONTENT_ENCODING,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
];

fn passed_headers(from: &reqwest::header::HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in from {
        if PASSED.contains(name) || name.as_str().starts_with("x-amz-meta-") || name.as_str() == "x-amz-version-id" {
            out.insert(name.clone(), value.clone());
        }
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
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    method: Method,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
    Query(_q): Query<ObjectGetParams>,
) -> Result<Response, ApiError> {
    let verb = if method == Method::HEAD { "HEAD" } else { "GET" };
    let url = s.control.object_url(&ctx, &auth, &id, verb, &key, &[]).await?;
    let mut req = client().request(if verb == "HEAD" { reqwest::Method::HEAD } else { reqwest::Method::GET }, url);
    for h in [header::RANGE, header::IF_NONE_MATCH, header::IF_MATCH, header::IF_MODIFIED_SINCE] {
        if let Some(v) = headers.get(&h) {
            req = req.header(h, v.clone());
        }
    }
    let resp = req.send().await.map_err(unavailable)?;
    let status = resp.status();
    if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
        if verb == "HEAD" {
            return Ok(status.into_response());
        }
        return Err(s3_error(resp).await);
    }
    let mut out_headers = passed_headers(resp.headers());
    if let Ok(v) = HeaderValue::from_str(&attachment(&key)) {
        out_headers.insert(header::CONTENT_DISPOSITION, v);
    }
    out_headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out_headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(crate::middleware::API_CSP));
    let body = Body::from_stream(resp.bytes_stream().map_err(std::io::Error::other));
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
    let url = s.control.object_url(&ctx, &auth, &id, "PUT", &key, &[]).await?;
    let mut req = client().put(url);
    for (name, value) in &headers {
        let keep = [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::CACHE_CONTROL, header::CONTENT_DISPOSITION]
            .contains(name)
            || name.as_str().starts_with("x-amz-meta-");
        if keep {
            req = req.header(name.clone(), value.clone());
        }
    }
    let size = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let stream = body.into_data_stream();
    let resp = req.body(reqwest::Body::wrap_stream(stream)).send().await.map_err(unavailable)?;
    if !resp.status().is_success() {
        return Err(s3_error(resp).await);
    }
    // The S3 door wrote the change's audit entry; the trail needs no second one.
    ctx.audited.store(true, std::sync::atomic::Ordering::Relaxed);
    let etag = resp.headers().get(header::ETAG).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    Ok((StatusCode::CREATED, axum::Json(PutObjectResult { key, size: size.unwrap_or(0), etag })))
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
    let url = s.control.object_url(&ctx, &auth, &id, "DELETE", &key, &[]).await?;
    let resp = client().delete(url).send().await.map_err(unavailable)?;
    if !resp.status().is_success() {
        return Err(s3_error(resp).await);
    }
    // The S3 door wrote the change's audit entry; the trail needs no second one.
    ctx.audited.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_list_results() {
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a &amp; b/&#x4e2d;.txt</Key>\
                   <Size>5</Size><ETag>&quot;abc&quot;</ETag><LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents>\
                   <CommonPrefixes><Prefix>dir/</Prefix></CommonPrefixes><NextContinuationToken>t1</NextContinuationToken>\
                   </ListBucketResult>";
        let contents = blocks(xml, "Contents");
        assert_eq!(contents.len(), 1);
        assert_eq!(tag(contents[0], "Key").unwrap(), "a & b/中.txt");
        assert_eq!(tag(contents[0], "ETag").unwrap(), "\"abc\"");
        assert_eq!(blocks(xml, "CommonPrefixes").iter().filter_map(|c| tag(c, "Prefix")).collect::<Vec<_>>(), ["dir/"]);
        assert_eq!(tag(xml, "NextContinuationToken").as_deref(), Some("t1"));
        assert_eq!(unescape("&bogus; &lt;x&gt;"), "&bogus; <x>");
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
