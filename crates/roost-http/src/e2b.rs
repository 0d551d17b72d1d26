//! The E2B-compatible listener (`--e2b-listen`): the E2B control-plane REST API
//! (`X-API-KEY` auth) and, on the same port, the per-sandbox traffic the SDKs send with
//! `E2b-Sandbox-Id` / `E2b-Sandbox-Port` headers. Port 49983 is envd's protocol — Connect
//! RPC `process.Process` and `filesystem.Filesystem` (JSON and binary codecs, messages in
//! [`crate::envd`]; processes with or without a terminal) plus `/files` and
//! `/health` — which Roost serves on the host through the driver's exec and file
//! operations, so nothing runs inside the sandbox for it. Other ports are proxied to the
//! sandbox's address.
//!
//! The routes are matched by hand rather than by an axum router: the same paths
//! (`/health`, `/files`) mean different things with and without the sandbox headers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use roost_api::ErrorCode;
use roost_api::sandboxes::SandboxFileEntry;
use roost_control::sandbox_processes::ProcessSpec;
use roost_control::sandboxes::{NewSandbox, ProcessEvent, SandboxView};
use roost_control::{Control, Error, Principal, RequestContext};
use roost_store::sandboxes::SandboxKeyRow;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::envd::{self, Codec, envelope};

/// The envd version Roost's implementation stands for: process streams with stdin,
/// default user, octet-stream uploads (the SDKs' version gates up to 0.5.7). PTYs and the
/// binary codec are not gated by version in the SDKs. The next gated features — file
/// metadata as xattrs (0.6.2), entry info in watch events (0.6.3), watches on network
/// mounts (0.6.4) — are not implemented, so the SDK must not be told a later version.
pub const ENVD_VERSION: &str = "0.5.7";
pub const ENVD_PORT: u16 = 49983;
/// The code interpreter's port (`/execute`, `/contexts`).
pub const CODE_INTERPRETER_PORT: u16 = 49999;
/// How often a server stream sends a keepalive when the process is quiet.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// The end of the message for traffic to a sandbox that was killed or timed out.
const GONE: &str = "is not running (killed or timed out)";
/// Largest file upload through `/files`.
const MAX_UPLOAD: u64 = 1 << 30;

pub fn router(control: Control) -> Router {
    // Uploads through `/files` are large (multipart reads the limit from this layer).
    Router::new()
        .fallback(dispatch)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD as usize))
        .with_state(control)
}

async fn dispatch(State(control): State<Control>, req: Request) -> Response {
    let ctx = RequestContext { source: Some("e2b".into()), ..Default::default() };
    // `<port>-<sandbox id>.localhost:…`: a sandbox URL (`roost sandbox url`, E2B's get_host).
    if let Some((port, id)) =
        header_str(req.headers(), "host").and_then(roost_control::sandbox_urls::parse_sandbox_host)
    {
        return match host_traffic(&control, &id, port, req).await {
            Ok(r) => r,
            Err(e) if e.message.ends_with(GONE) => {
                (StatusCode::BAD_GATEWAY, Json(json!({"code": 502, "message": e.message}))).into_response()
            }
            Err(e) => api_error(&e),
        };
    }
    if let Some(id) = header_str(req.headers(), "e2b-sandbox-id") {
        let port: u16 = header_str(req.headers(), "e2b-sandbox-port").and_then(|p| p.parse().ok()).unwrap_or(ENVD_PORT);
        return match sandbox_traffic(&control, &ctx, id.to_string(), port, req).await {
            Ok(r) => r,
            // As E2B's edge proxy answers for a sandbox that is gone (the SDKs' `is_running`
            // reads 502 as "not running").
            Err(e) if e.message.ends_with(GONE) => {
                (StatusCode::BAD_GATEWAY, Json(json!({"code": 502, "message": e.message}))).into_response()
            }
            Err(e) => plain_error(&e),
        };
    }
    match control_plane(&control, &ctx, req).await {
        Ok(r) => r,
        Err(e) => api_error(&e),
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The E2B API's error body: `{"code": <status>, "message": ...}`.
fn api_error(e: &Error) -> Response {
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(code = %e.code, message = %e.message, "request failed");
    }
    let mut r = (status, Json(json!({"code": status.as_u16(), "message": e.public_message()}))).into_response();
    if let Some(after) = e.retry_after
        && let Ok(v) = after.as_secs().max(1).to_string().parse()
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn plain_error(e: &Error) -> Response {
    api_error(e)
}

async fn authenticate(control: &Control, headers: &HeaderMap) -> Result<(SandboxKeyRow, Arc<Principal>), Error> {
    let key = header_str(headers, "x-api-key").ok_or_else(|| {
        Error::unauthorized("missing X-API-KEY header (an e2b_… key from `roost sandbox key create`)")
    })?;
    control.authenticate_sandbox_key(key).await
}

fn rfc3339(ms: i64) -> String {
    roost_store::to_time(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The per-sandbox token the SDK sends as `X-Access-Token` is an HMAC under a server
/// secret (`Control::sandbox_envd_token`): only the server and the caller who created
/// the sandbox know it.
fn sandbox_json(control: &Control, view: &SandboxView, key: &SandboxKeyRow) -> Result<Value, Error> {
    let token = control.sandbox_envd_token(&key.key_hash, &view.row.id)?;
    Ok(json!({
        "templateID": view.row.template,
        "sandboxID": view.row.id,
        "clientID": "roost",
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": token,
        // The same token: the code interpreter SDK sends only this one to port 49999.
        "trafficAccessToken": token,
        "domain": null,
    }))
}

fn listed_json(view: &SandboxView) -> Value {
    let metadata: Value = serde_json::from_str(&view.row.metadata).unwrap_or_else(|_| json!({}));
    json!({
        "templateID": view.row.template,
        "sandboxID": view.row.id,
        "clientID": "roost",
        "startedAt": rfc3339(view.row.started_at),
        "endAt": rfc3339(view.row.expires_at),
        "envdVersion": ENVD_VERSION,
        "cpuCount": (view.row.cpus_milli as f64 / 1000.0).ceil() as i64,
        "memoryMB": view.row.memory_bytes >> 20,
        "diskSizeMB": 0,
        "state": if view.paused { "paused" } else { "running" },
        "metadata": metadata,
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NewSandboxBody {
    #[serde(rename = "templateID")]
    template_id: String,
    timeout: Option<u64>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    env_vars: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
struct TimeoutBody {
    timeout: Option<u64>,
}

async fn body_json<T: for<'de> Deserialize<'de> + Default>(req: Request) -> Result<T, Error> {
    let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| Error::new(ErrorCode::InvalidRequest, format!("reading the body: {e}")))?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::new(ErrorCode::InvalidRequest, format!("invalid JSON body: {e}")))
}

async fn control_plane(control: &Control, ctx: &RequestContext, req: Request) -> Result<Response, Error> {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    if path == "/health" {
        return Ok((StatusCode::OK, Json(json!({"status": "ok"}))).into_response());
    }
    let (key, p) = authenticate(control, req.headers()).await?;
    let mut parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // `/v2/sandboxes/{id}/connect` and friends behave as their v1 forms.
    if parts.len() > 2 && parts[0] == "v2" {
        parts.remove(0);
    }
    match (&method, parts.as_slice()) {
        (&Method::POST, ["sandboxes"]) | (&Method::POST, ["v2", "sandboxes"]) => {
            let body: NewSandboxBody = body_json(req).await?;
            if body.template_id.is_empty() {
                return Err(Error::new(ErrorCode::InvalidRequest, "templateID is required"));
            }
            let view = control
                .create_sandbox(
                    ctx,
                    &p,
                    Some(&key),
                    NewSandbox {
                        template: body.template_id,
                        project: None,
                        timeout: body.timeout.map(Duration::from_secs),
                        metadata: body.metadata.unwrap_or_default(),
                        env: body.env_vars.unwrap_or_default(),
                        kind: None,
                    },
                )
                .await?;
            Ok((StatusCode::CREATED, Json(sandbox_json(control, &view, &key)?)).into_response())
        }
        (&Method::GET, ["sandboxes"]) | (&Method::GET, ["v2", "sandboxes"]) => {
            let params: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            let mut all = control.list_sandboxes(&p).await?;
            if let Some(meta) = params.get("metadata") {
                let want: Vec<(String, String)> = url::form_urlencoded::parse(meta.as_bytes()).into_owned().collect();
                all.retain(|v| {
                    let m: BTreeMap<String, String> = serde_json::from_str(&v.row.metadata).unwrap_or_default();
                    want.iter().all(|(k, val)| m.get(k) == Some(val))
                });
            }
            if let Some(states) = params.get("state") {
                let states: Vec<&str> = states.split(',').collect();
                all.retain(|v| states.contains(&if v.paused { "paused" } else { "running" }));
            }
            let v2 = parts.first() == Some(&"v2");
            if !v2 {
                return Ok(Json(Value::Array(all.iter().map(listed_json).collect())).into_response());
            }
            // Keyset pagination on the (started_at, id) order; the token is the last id.
            let limit: usize = params.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100).clamp(1, 1000);
            let start = match params.get("nextToken") {
                Some(t) => all.iter().position(|v| &v.row.id == t).map(|i| i + 1).unwrap_or(all.len()),
                None => 0,
            };
            let page: Vec<&SandboxView> = all.iter().skip(start).take(limit).collect();
            let mut r = Json(Value::Array(page.iter().map(|v| listed_json(v)).collect())).into_response();
            if start + page.len() < all.len()
                && let Some(last) = page.last()
                && let Ok(v) = last.row.id.parse()
            {
                r.headers_mut().insert("x-next-token", v);
            }
            Ok(r)
        }
        (&Method::GET, ["sandboxes", id]) => {
            let view = control.writable_sandbox(&p, id).await?;
            let mut detail = listed_json(&view);
            detail["envdAccessToken"] = json!(control.sandbox_envd_token(&key.key_hash, &view.row.id)?);
            Ok(Json(detail).into_response())
        }
        (&Method::DELETE, ["sandboxes", id]) => {
            control.kill_sandbox(ctx, &p, id, None).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::POST, ["sandboxes", id, "timeout"]) => {
            let body: TimeoutBody = body_json(req).await?;
            let secs = body.timeout.ok_or_else(|| Error::new(ErrorCode::InvalidRequest, "timeout is required"))?;
            control.set_sandbox_timeout(ctx, &p, id, Duration::from_secs(secs)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::POST, ["sandboxes", id, "refreshes"]) => {
            #[derive(Deserialize, Default)]
            struct Refresh {
                duration: Option<u64>,
            }
            let body: Refresh = body_json(req).await?;
            control.set_sandbox_timeout(ctx, &p, id, Duration::from_secs(body.duration.unwrap_or(60))).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::POST, ["sandboxes", id, "pause"]) => {
            let view = control.writable_sandbox(&p, id).await?;
            if view.paused {
                return Err(Error::conflict(format!("sandbox {id} is already paused")));
            }
            control.pause_sandbox(ctx, &p, id, true).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::POST, ["sandboxes", id, "resume"]) | (&Method::POST, ["sandboxes", id, "connect"]) => {
            let body: TimeoutBody = body_json(req).await?;
            let view = control.writable_sandbox(&p, id).await?;
            let resumed = view.paused;
            if view.paused {
                control.pause_sandbox(ctx, &p, id, false).await?;
            } else if parts.last() == Some(&"resume") {
                return Err(Error::conflict(format!("sandbox {id} is not paused")));
            }
            if let Some(secs) = body.timeout {
                control.set_sandbox_timeout(ctx, &p, id, Duration::from_secs(secs)).await?;
            }
            let view = control.writable_sandbox(&p, id).await?;
            let status = if resumed { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, Json(sandbox_json(control, &view, &key)?)).into_response())
        }
        (&Method::GET, ["sandboxes", id, "metrics"]) => {
            let view = control.writable_sandbox(&p, id).await?;
            let m = control.sandbox_metrics(&view).await?;
            let now = chrono::Utc::now();
            Ok(Json(json!([{
                "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "timestampUnix": now.timestamp(),
                "cpuCount": (view.row.cpus_milli as f64 / 1000.0).ceil() as i64,
                "cpuUsedPct": m.cpu_pct,
                "memUsed": m.memory_bytes,
                "memTotal": view.row.memory_bytes,
                "memCache": 0,
                "diskUsed": 0,
                "diskTotal": 0,
            }]))
            .into_response())
        }
        _ => Err(Error::not_found("route", &format!("{method} {path}"))),
    }
}

/// Traffic for one sandbox: envd on its port, anything else proxied.
async fn sandbox_traffic(
    control: &Control,
    ctx: &RequestContext,
    id: String,
    port: u16,
    req: Request,
) -> Result<Response, Error> {
    let mut t = roost_control::timing::Steps::new("envd request");
    let (_, _, view) = sandbox_access(control, req.headers(), &id).await?;
    t.step("sandbox access");
    if port == CODE_INTERPRETER_PORT {
        return code_interpreter(control, &view, req).await;
    }
    if port != ENVD_PORT {
        return proxy(control, &view, port, req).await;
    }
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/health" => Ok(StatusCode::NO_CONTENT.into_response()),
        "/files" => files(control, ctx, &view, req).await,
        _ if path.starts_with("/process.Process/") || path.starts_with("/filesystem.Filesystem/") => {
            let method = path.rsplit('/').next().unwrap_or_default().to_string();
            let service = if path.starts_with("/process.") { "process" } else { "filesystem" };
            rpc(control, ctx, &view, service, &method, req).await
        }
        _ => Err(Error::not_found("route", &path)),
    }
}

/// The query parameter, cookie and header that carry a sandbox URL's token.
const URL_TOKEN_PARAM: &str = "roost_token";
const URL_TOKEN_COOKIE: &str = "roost_sandbox_token";
const URL_TOKEN_HEADER: &str = "x-roost-sandbox-token";

/// Host-routed traffic to one port of a sandbox: the URL's token (query parameter, then
/// cookie, then header) or the SDK's headers authorise it; it is proxied like any port.
/// A token from the query is moved into a cookie for that host, so a browser's later
/// requests (assets, links) carry it, and it is not passed on to the sandbox.
async fn host_traffic(control: &Control, id: &str, port: u16, mut req: Request) -> Result<Response, Error> {
    let mut from_query = None;
    let mut kept = Vec::new();
    if let Some(q) = req.uri().query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if k == URL_TOKEN_PARAM {
                from_query = Some(v.into_owned());
            } else {
                kept.push((k.into_owned(), v.into_owned()));
            }
        }
    }
    let from_cookie = req.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        c.split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == URL_TOKEN_COOKIE)
            .map(|(_, v)| v.to_string())
    });
    let given =
        from_query.clone().or(from_cookie).or_else(|| header_str(req.headers(), URL_TOKEN_HEADER).map(str::to_string));
    let view = match given {
        Some(token) => {
            let row = live_row(control, id).await?;
            control.sandbox_by_url_token(row, port, &token)?
        }
        None if header_str(req.headers(), "x-access-token").is_some()
            || header_str(req.headers(), "e2b-traffic-access-token").is_some()
            || header_str(req.headers(), "x-api-key").is_some() =>
        {
            sandbox_access(control, req.headers(), id).await?.2
        }
        None => {
            return Err(Error::unauthorized(
                "this sandbox URL needs its token: the roost_token query parameter from `roost sandbox url`",
            ));
        }
    };
    if from_query.is_some() {
        let mut pq = req.uri().path().to_string();
        if !kept.is_empty() {
            pq.push('?');
            pq.push_str(&url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&kept).finish());
        }
        *req.uri_mut() = pq.parse().map_err(|_| Error::unprocessable("bad request path"))?;
    }
    req.headers_mut().remove(URL_TOKEN_HEADER);
    strip_cookie(req.headers_mut(), URL_TOKEN_COOKIE);
    let mut resp = proxy(control, &view, port, req).await?;
    if let Some(token) = from_query
        && let Ok(v) = format!("{URL_TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax").parse()
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// Removes one cookie from the request's Cookie headers (the others go to the sandbox).
fn strip_cookie(headers: &mut HeaderMap, name: &str) {
    let cookies: Vec<String> =
        headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
    headers.remove(header::COOKIE);
    let rest: Vec<&str> = cookies
        .iter()
        .flat_map(|c| c.split(';'))
        .map(str::trim)
        .filter(|kv| !kv.is_empty() && kv.split_once('=').map(|(k, _)| k) != Some(name))
        .collect();
    if !rest.is_empty()
        && let Ok(v) = rest.join("; ").parse()
    {
        headers.insert(header::COOKIE, v);
    }
}

/// A live sandbox's row; a killed or expired one is "gone", as E2B words it.
async fn live_row(control: &Control, id: &str) -> Result<roost_store::sandboxes::SandboxRow, Error> {
    control
        .store()
        .sandbox(id)
        .await?
        .filter(|r| r.ended_at.is_none())
        .ok_or_else(|| Error::new(ErrorCode::Unavailable, format!("sandbox {id} {GONE}")))
}

/// The sandbox, when the request carries its access token (or the API key of the key
/// that created it).
async fn sandbox_access(
    control: &Control,
    headers: &HeaderMap,
    id: &str,
) -> Result<(SandboxKeyRow, Arc<Principal>, SandboxView), Error> {
    let row = live_row(control, id).await?;
    let key_id = row.key_id.clone().ok_or_else(|| Error::unauthorized("sandbox has no key"))?;
    let (key, p) = if let Some(api_key) = header_str(headers, "x-api-key") {
        control.authenticate_sandbox_key(api_key).await?
    } else {
        let token = header_str(headers, "x-access-token")
            .or_else(|| header_str(headers, "e2b-traffic-access-token"))
            .ok_or_else(|| Error::unauthorized("missing X-Access-Token (the sandbox's envdAccessToken)"))?;
        let (key, principal) = control.sandbox_key_principal(&key_id).await?;
        if !control.check_sandbox_envd_token(&key.key_hash, id, token)? {
            return Err(Error::unauthorized("invalid X-Access-Token"));
        }
        (key, principal)
    };
    let view = control.writable_sandbox_of(&p, row).await?;
    Ok((key, p, view))
}

/// A relative path is relative to the home of the user commands run as.
fn resolve_path(path: &str) -> String {
    if path.starts_with('/') { path.to_string() } else { format!("/root/{path}") }
}

async fn files(control: &Control, ctx: &RequestContext, view: &SandboxView, req: Request) -> Result<Response, Error> {
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    match *req.method() {
        Method::GET => {
            let path = resolve_path(query.get("path").map(String::as_str).unwrap_or(""));
            let chunks = control.sandbox_read_file(view, &path).await.map_err(|e| {
                if e.code == ErrorCode::Conflict
                    || e.message.contains("No such file")
                    || e.message.contains("not found")
                {
                    Error::not_found("path", &path)
                } else {
                    e
                }
            })?;
            Ok(([(header::CONTENT_TYPE, "application/octet-stream")], file_body(chunks)).into_response())
        }
        Method::POST => {
            let content_type = header_str(req.headers(), "content-type").unwrap_or("").to_string();
            let mut written = Vec::new();
            if content_type.starts_with("multipart/form-data") {
                let single = query.get("path").cloned();
                let mut multipart = axum::extract::Multipart::from_request(req, &())
                    .await
                    .map_err(|e| Error::new(ErrorCode::InvalidRequest, e.body_text()))?;
                while let Some(field) =
                    multipart.next_field().await.map_err(|e| Error::new(ErrorCode::InvalidRequest, e.body_text()))?
                {
                    let name = field.file_name().map(str::to_string);
                    let path = resolve_path(&single.clone().or(name).unwrap_or_default());
                    use futures_util::TryStreamExt;
                    let mut data =
                        tokio_util::io::StreamReader::new(field.map_err(|e| std::io::Error::other(e.body_text())));
                    control.sandbox_write_file(ctx, view, &path, &mut data, MAX_UPLOAD).await?;
                    written.push(write_info(&path));
                }
            } else {
                let path = resolve_path(query.get("path").map(String::as_str).unwrap_or(""));
                let mut data = body_reader(req.into_body());
                control.sandbox_write_file(ctx, view, &path, &mut data, MAX_UPLOAD).await?;
                written.push(write_info(&path));
            }
            Ok(Json(Value::Array(written)).into_response())
        }
        _ => Err(Error::new(ErrorCode::MethodNotAllowed, "GET or POST")),
    }
}

/// A request body as a reader, chunk by chunk as it arrives (uploads stream through).
pub(crate) fn body_reader(body: axum::body::Body) -> impl tokio::io::AsyncRead + Send + Unpin {
    use futures_util::TryStreamExt;
    tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other))
}

/// A response body that streams a sandbox file's chunks; a read that fails half-way
/// ends the body with an error (the client sees a cut-short response, not a wrong one).
pub(crate) fn file_body(mut chunks: roost_control::sandboxes::FileChunks) -> axum::body::Body {
    axum::body::Body::from_stream(async_stream::stream! {
        while let Some(chunk) = chunks.rx.recv().await {
            yield chunk.map(Bytes::from);
        }
    })
}

fn write_info(path: &str) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    json!({"name": name, "type": "file", "path": path})
}

/// Connect's error codes by our error codes.
fn connect_code(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NotFound => "not_found",
        ErrorCode::InvalidRequest | ErrorCode::ValidationFailed => "invalid_argument",
        ErrorCode::Unauthorized => "unauthenticated",
        ErrorCode::Forbidden => "permission_denied",
        ErrorCode::Conflict => "failed_precondition",
        ErrorCode::RateLimited => "resource_exhausted",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Unprocessable => "unimplemented",
        _ => "internal",
    }
}

fn connect_error(code: &str, message: &str) -> Response {
    let status = match code {
        "not_found" => StatusCode::NOT_FOUND,
        "invalid_argument" | "failed_precondition" => StatusCode::BAD_REQUEST,
        "already_exists" => StatusCode::CONFLICT,
        "unauthenticated" => StatusCode::UNAUTHORIZED,
        "permission_denied" => StatusCode::FORBIDDEN,
        "unimplemented" => StatusCode::NOT_IMPLEMENTED,
        "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "resource_exhausted" => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

/// A unary reply in the call's codec; errors are JSON whatever the codec (Connect).
fn reply<T: prost::Message + serde::Serialize>(codec: Codec, result: Result<T, Error>) -> Response {
    match result {
        Ok(m) => ([(header::CONTENT_TYPE, codec.content_type(false))], codec.encode(&m)).into_response(),
        Err(e) => connect_error(connect_code(e.code), e.public_message()),
    }
}

/// A server stream's response: each message in an envelope, then the end-of-stream
/// message (JSON in both codecs, as Connect has it).
fn stream_response(codec: Codec, messages: impl futures_util::Stream<Item = Bytes> + Send + 'static) -> Response {
    use futures_util::StreamExt;
    Response::builder()
        .header(header::CONTENT_TYPE, codec.content_type(true))
        .body(Body::from_stream(messages.map(Ok::<Bytes, std::io::Error>)))
        .expect("response")
}

/// One stream message.
fn frame<T: prost::Message + serde::Serialize>(codec: Codec, msg: &T) -> Bytes {
    envelope(0, &codec.encode(msg))
}

/// The end of a stream: `{}`, or `{"error": …}`.
fn end_of_stream(error: Option<(&str, &str)>) -> Bytes {
    let end = match error {
        Some((code, message)) => json!({"error": {"code": code, "message": message}}),
        None => json!({}),
    };
    envelope(2, &serde_json::to_vec(&end).expect("json"))
}

/// A streaming response that is only an error.
fn stream_error(codec: Codec, code: &str, message: &str) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, codec.content_type(true))
        .body(Body::from(end_of_stream(Some((code, message)))))
        .expect("response")
}

/// A Connect call to envd's `process.Process` or `filesystem.Filesystem`, in the JSON or
/// the binary codec (unary, or a server stream in envelopes).
async fn rpc(
    control: &Control,
    ctx: &RequestContext,
    view: &SandboxView,
    service: &str,
    method: &str,
    req: Request,
) -> Result<Response, Error> {
    let content_type = header_str(req.headers(), "content-type").unwrap_or("").to_string();
    let Some((codec, streaming)) = Codec::from_content_type(&content_type) else {
        return Ok(connect_error(
            "unimplemented",
            &format!("unsupported content type '{content_type}': use application/json or application/proto"),
        ));
    };
    let encoding = if streaming { "connect-content-encoding" } else { "content-encoding" };
    if header_str(req.headers(), encoding).is_some_and(|e| e != "identity") {
        return Ok(connect_error("unimplemented", "compressed requests are not supported"));
    }
    if (service, method) == ("process", "StreamInput") {
        if !streaming {
            return Ok(connect_error("invalid_argument", "StreamInput is a client stream (application/connect+…)"));
        }
        return Ok(stream_input(control, view, codec, req.into_body()).await);
    }
    let body = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .map_err(|e| Error::new(ErrorCode::InvalidRequest, e.to_string()))?;
    let message = if streaming {
        match envd::unenvelope(&body) {
            Ok(m) => Bytes::copy_from_slice(m),
            Err(e) => return Ok(stream_error(codec, "invalid_argument", &e)),
        }
    } else {
        body
    };
    // The request message in the call's codec, or the error reply.
    macro_rules! decode {
        () => {
            match codec.decode(&message) {
                Ok(m) => m,
                Err(e) if streaming => return Ok(stream_error(codec, "invalid_argument", &e)),
                Err(e) => return Ok(connect_error("invalid_argument", &e)),
            }
        };
    }
    Ok(match (service, method) {
        ("process", "Start") => process_start(control, ctx, view, decode!(), codec).await,
        ("process", "Connect") => process_connect(control, view, decode!(), codec),
        ("process", "List") => reply(codec, process_list(control, view)),
        ("process", "Update") => reply(codec, process_update(control, view, decode!())),
        ("process", "SendInput") => reply(codec, process_input(control, view, decode!()).await),
        ("process", "SendSignal") => reply(codec, process_signal(control, ctx, view, decode!()).await),
        ("process", "CloseStdin") => reply(codec, process_close_stdin(control, view, decode!()).await),
        ("filesystem", "WatchDir") => watch_dir(control, view, decode!(), codec).await,
        ("filesystem", "CreateWatcher") => reply(codec, create_watcher(control, view, decode!()).await),
        ("filesystem", "GetWatcherEvents") => {
            let m: envd::WatcherId = decode!();
            reply(
                codec,
                control
                    .sandbox_watcher(&view.row.id, &m.watcher_id)
                    .map(|w| envd::GetWatcherEventsResponse { events: w.take().iter().map(fs_event).collect() }),
            )
        }
        ("filesystem", "RemoveWatcher") => {
            let m: envd::WatcherId = decode!();
            reply(codec, control.remove_sandbox_watcher(&view.row.id, &m.watcher_id).map(|()| envd::Empty {}))
        }
        ("filesystem", "Stat") => {
            let m: envd::PathRequest = decode!();
            reply(
                codec,
                control.sandbox_stat(view, &m.path).await.map(|e| envd::EntryResponse { entry: Some(entry(e)) }),
            )
        }
        ("filesystem", "ListDir") => {
            let m: envd::ListDirRequest = decode!();
            let listed = control.sandbox_entries(view, &m.path, m.depth).await;
            reply(codec, listed.map(|e| envd::ListDirResponse { entries: e.into_iter().map(entry).collect() }))
        }
        ("filesystem", "MakeDir") => {
            let m: envd::PathRequest = decode!();
            match control.sandbox_make_dir(ctx, view, &m.path).await {
                // envd's own answer for a directory that is there: the SDKs return false.
                Err(e) if e.code == ErrorCode::Conflict => connect_error("already_exists", &e.message),
                made => reply(codec, made.map(|e| envd::EntryResponse { entry: Some(entry(e)) })),
            }
        }
        ("filesystem", "Remove") => {
            let m: envd::PathRequest = decode!();
            reply(codec, control.sandbox_remove_path(ctx, view, &m.path).await.map(|()| envd::Empty {}))
        }
        ("filesystem", "Move") => {
            let m: envd::MoveRequest = decode!();
            let moved = control.sandbox_move_path(ctx, view, &m.source, &m.destination).await;
            reply(codec, moved.map(|e| envd::EntryResponse { entry: Some(entry(e)) }))
        }
        _ => connect_error("unimplemented", &format!("{service}.{method} is not implemented")),
    })
}

/// `StreamInput`, a client stream: a `start` naming the process, then `data` messages
/// written to its stdin or terminal as they arrive; one empty reply when the client ends
/// the stream.
async fn stream_input(control: &Control, view: &SandboxView, codec: Codec, body: Body) -> Response {
    use envd::stream_input_request::Event;
    use futures_util::StreamExt;
    let mut chunks = body.into_data_stream();
    let mut reader = envd::EnvelopeReader::default();
    let mut process = None;
    let result: Result<(), (String, String)> = async {
        loop {
            while let Some((_, msg)) = reader.next_message().map_err(|e| ("resource_exhausted".to_string(), e))? {
                let m: envd::StreamInputRequest = codec.decode(&msg).map_err(|e| ("invalid_argument".into(), e))?;
                match m.event {
                    Some(Event::Start(start)) => {
                        let (pid, tag) = selector(&start.process);
                        let p = control
                            .sandbox_process(&view.row.id, pid, tag.as_deref())
                            .map_err(|e| (connect_code(e.code).to_string(), e.public_message().to_string()))?;
                        process = Some(p);
                    }
                    Some(Event::Data(data)) => {
                        let p = process
                            .as_ref()
                            .ok_or_else(|| ("failed_precondition".to_string(), "data before start".to_string()))?;
                        if let Some(envd::process_input::Input::Stdin(d) | envd::process_input::Input::Pty(d)) =
                            data.input.and_then(|i| i.input)
                        {
                            p.write_stdin(&d)
                                .await
                                .map_err(|e| (connect_code(e.code).to_string(), e.public_message().to_string()))?;
                        }
                    }
                    Some(Event::Keepalive(_)) | None => {}
                }
            }
            match chunks.next().await {
                Some(Ok(chunk)) => reader.push(&chunk),
                Some(Err(e)) => return Err(("canceled".into(), e.to_string())),
                None if reader.is_empty() => return Ok(()),
                None => return Err(("invalid_argument".into(), "truncated envelope".into())),
            }
        }
    }
    .await;
    let body = match result {
        Ok(()) => [frame(codec, &envd::Empty {}), end_of_stream(None)].concat(),
        Err((code, message)) => end_of_stream(Some((&code, &message))).to_vec(),
    };
    ([(header::CONTENT_TYPE, codec.content_type(true))], body).into_response()
}

fn selector(process: &Option<envd::ProcessSelector>) -> (Option<u32>, Option<String>) {
    envd::ProcessSelector::parts(process)
}

/// `Start`: the process's stream. With `pty`, the command runs on a terminal of that size
/// and its output arrives as `pty` data.
async fn process_start(
    control: &Control,
    ctx: &RequestContext,
    view: &SandboxView,
    m: envd::StartRequest,
    codec: Codec,
) -> Response {
    let cfg = m.process.unwrap_or_default();
    let pty =
        m.pty.and_then(|p| p.size).map(|s| (s.rows.min(u16::MAX as u32) as u16, s.cols.min(u16::MAX as u32) as u16));
    let spec = ProcessSpec { cmd: cfg.cmd, args: cfg.args, env: cfg.envs, cwd: cfg.cwd, tag: m.tag, pty };
    let started = control.sandbox_process_start(ctx, view, spec).await;
    let (process, rx) = match started {
        Ok(x) => x,
        Err(e) => return stream_error(codec, connect_code(e.code), e.public_message()),
    };
    if m.stdin == Some(false) && !process.pty {
        process.close_stdin().await;
    }
    process_stream(codec, Some(process.pid), process.pty, rx)
}

fn process_connect(control: &Control, view: &SandboxView, m: envd::SelectorRequest, codec: Codec) -> Response {
    let (pid, tag) = selector(&m.process);
    match control.sandbox_process(&view.row.id, pid, tag.as_deref()) {
        Ok(process) => process_stream(codec, Some(process.pid), process.pty, process.subscribe()),
        Err(e) => stream_error(codec, connect_code(e.code), e.public_message()),
    }
}

/// `StartResponse`/`ConnectResponse` messages: start, data, end, keepalives.
fn process_stream(
    codec: Codec,
    pid: Option<u32>,
    pty: bool,
    mut rx: tokio::sync::broadcast::Receiver<ProcessEvent>,
) -> Response {
    use envd::process_event::{Event, Output};
    let msg = move |event: Event| frame(codec, &envd::EventResponse::of(event));
    let data = |output: Output| Event::Data(envd::DataEvent { output: Some(output) });
    let stream = async_stream::stream! {
        if let Some(pid) = pid {
            yield msg(Event::Start(envd::StartEvent { pid }));
        }
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    // A terminal has one stream, which the driver hands out as stdout.
                    Ok(ProcessEvent::Stdout(d)) if pty => yield msg(data(Output::Pty(d))),
                    Ok(ProcessEvent::Stdout(d)) => yield msg(data(Output::Stdout(d))),
                    Ok(ProcessEvent::Stderr(d)) => yield msg(data(Output::Stderr(d))),
                    Ok(ProcessEvent::End(code)) => {
                        let status = if code > 128 { format!("signal: {}", code - 128) } else { format!("exit status {code}") };
                        yield msg(Event::End(envd::EndEvent { exit_code: code, exited: code <= 128, status, error: None }));
                        break;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => {
                        yield end_of_stream(Some(("unavailable", "the sandbox went away")));
                        return;
                    }
                },
                _ = keepalive.tick() => yield msg(Event::Keepalive(envd::Empty {})),
            }
        }
        yield end_of_stream(None);
    };
    stream_response(codec, stream)
}

fn fs_event(e: &roost_control::sandbox_watch::FsEvent) -> envd::FilesystemEvent {
    envd::FilesystemEvent { name: e.name.clone(), r#type: envd::event_type(e.kind), entry: None }
}

/// `CreateWatcher`: a watch polled with `GetWatcherEvents` (the sync SDK's `watch_dir`).
async fn create_watcher(
    control: &Control,
    view: &SandboxView,
    m: envd::WatchRequest,
) -> Result<envd::WatcherId, Error> {
    let path = resolve_path(&m.path);
    let w = control.create_sandbox_watcher(view, &path, m.recursive).await?;
    Ok(envd::WatcherId { watcher_id: w.id.clone() })
}

/// `WatchDir`: a server stream of the watch's events (the async SDKs' `watch_dir`); the
/// watch stops when the client goes away.
async fn watch_dir(control: &Control, view: &SandboxView, m: envd::WatchRequest, codec: Codec) -> Response {
    use envd::watch_dir_response::Event;
    let path = resolve_path(&m.path);
    let w = match control.create_sandbox_watcher(view, &path, m.recursive).await {
        Ok(w) => w,
        Err(e) => return stream_error(codec, connect_code(e.code), e.public_message()),
    };
    let mut rx = w.subscribe();
    w.take();
    // Stops the watch when the stream is dropped (client gone) or ends.
    struct Stop(Control, String, String);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.remove_sandbox_watcher(&self.1, &self.2);
        }
    }
    let stop = Stop(control.clone(), view.row.id.clone(), w.id.clone());
    let msg = move |event: Event| frame(codec, &envd::WatchDirResponse { event: Some(event) });
    let stream = async_stream::stream! {
        let _stop = stop;
        yield msg(Event::Start(envd::Empty {}));
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Ok(Some(e)) => yield msg(Event::Filesystem(fs_event(&e))),
                    Ok(None) | Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                },
                _ = keepalive.tick() => yield msg(Event::Keepalive(envd::Empty {})),
            }
        }
        yield end_of_stream(None);
    };
    stream_response(codec, stream)
}

fn process_list(control: &Control, view: &SandboxView) -> Result<envd::ListResponse, Error> {
    let processes = control
        .sandbox_processes(&view.row.id)
        .iter()
        // Watches run as processes of their own; they are not the caller's commands.
        .filter(|p| !p.tag.as_deref().is_some_and(|t| t.starts_with(roost_control::sandbox_watch::WATCHER_TAG_PREFIX)))
        .map(|p| envd::ProcessInfo {
            pid: p.pid,
            tag: p.tag.clone(),
            config: Some(envd::ProcessConfig {
                cmd: p.cmd.clone(),
                args: p.args.clone(),
                envs: p.envs.clone(),
                cwd: p.cwd.clone(),
            }),
        })
        .collect();
    Ok(envd::ListResponse { processes })
}

/// `Update`: a new terminal size for a process started with a pty.
fn process_update(control: &Control, view: &SandboxView, m: envd::UpdateRequest) -> Result<envd::Empty, Error> {
    let (pid, tag) = selector(&m.process);
    let process = control.sandbox_process(&view.row.id, pid, tag.as_deref())?;
    if let Some(size) = m.pty.and_then(|p| p.size) {
        if size.rows == 0 || size.cols == 0 || size.rows > 1000 || size.cols > 1000 {
            return Err(Error::new(ErrorCode::InvalidRequest, "pty.size: rows and cols must be between 1 and 1000"));
        }
        process.resize(size.rows as u16, size.cols as u16)?;
    }
    Ok(envd::Empty {})
}

async fn process_input(control: &Control, view: &SandboxView, m: envd::SendInputRequest) -> Result<envd::Empty, Error> {
    use envd::process_input::Input;
    let (pid, tag) = selector(&m.process);
    let process = control.sandbox_process(&view.row.id, pid, tag.as_deref())?;
    match m.input.and_then(|i| i.input) {
        Some(Input::Stdin(data) | Input::Pty(data)) => process.write_stdin(&data).await?,
        None => {}
    }
    Ok(envd::Empty {})
}

async fn process_close_stdin(
    control: &Control,
    view: &SandboxView,
    m: envd::SelectorRequest,
) -> Result<envd::Empty, Error> {
    let (pid, tag) = selector(&m.process);
    let process = control.sandbox_process(&view.row.id, pid, tag.as_deref())?;
    process.close_stdin().await;
    Ok(envd::Empty {})
}

async fn process_signal(
    control: &Control,
    ctx: &RequestContext,
    view: &SandboxView,
    m: envd::SendSignalRequest,
) -> Result<envd::Empty, Error> {
    let (pid, tag) = selector(&m.process);
    let process = control.sandbox_process(&view.row.id, pid, tag.as_deref())?;
    let sig = if m.signal == 15 { 15 } else { 9 };
    control.sandbox_process_signal(ctx, view, &process, sig).await?;
    Ok(envd::Empty {})
}

/// An entry as envd reports it.
fn entry(e: SandboxFileEntry) -> envd::EntryInfo {
    let kind = match e.kind.as_str() {
        "dir" => envd::FILE_TYPE_DIRECTORY,
        "symlink" => envd::FILE_TYPE_SYMLINK,
        _ => envd::FILE_TYPE_FILE,
    };
    envd::EntryInfo {
        name: e.name,
        r#type: kind,
        path: e.path,
        size: e.size as i64,
        mode: e.mode,
        permissions: e.permissions,
        owner: e.owner,
        group: e.group,
        modified_time: Some(envd::Timestamp {
            seconds: e.modified_at.timestamp(),
            nanos: e.modified_at.timestamp_subsec_nanos() as i32,
        }),
        is_symlink: e.symlink_target.is_some(),
        symlink_target: e.symlink_target,
        metadata: Default::default(),
    }
}

/// The client of the port proxy: no proxy from the environment, and redirects never
/// followed. A sandbox's `3xx` goes back to the caller as it is; were it followed, a
/// sandbox could point the server at anything the host reaches (its loopback listeners,
/// a metadata service) and read the answer.
fn sandbox_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        // Plain HTTP, but reqwest insists on a TLS provider being chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client")
    })
}

/// The URL of `path_and_query` on the sandbox's own address: the host is the address
/// from the store, never a name or authority taken from the request.
fn sandbox_url(ip: std::net::IpAddr, port: u16, path_and_query: &str) -> Result<reqwest::Url, Error> {
    let mut url = reqwest::Url::parse(&format!("http://{}/", std::net::SocketAddr::new(ip, port)))
        .map_err(|e| Error::internal(format!("the sandbox's URL: {e}")))?;
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    url.set_path(if path.starts_with('/') { path } else { "/" });
    url.set_query(query);
    Ok(url)
}

/// Any other port: an HTTP request to the sandbox's address, its answer passed back as
/// it is (a redirect included).
async fn proxy(control: &Control, view: &SandboxView, port: u16, req: Request) -> Result<Response, Error> {
    let ip: std::net::IpAddr = control
        .store()
        .instance(&view.row.instance_id)
        .await?
        .and_then(|i| i.ip)
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| Error::new(ErrorCode::Unavailable, "the sandbox has no address"))?;
    let path_q = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let url = sandbox_url(ip, port, &path_q)?;
    let method = req.method().clone();
    let mut headers = req.headers().clone();
    for h in [
        "host",
        "x-access-token",
        "e2b-traffic-access-token",
        "x-api-key",
        "e2b-sandbox-id",
        "e2b-sandbox-port",
        "connection",
    ] {
        headers.remove(h);
    }
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .map_err(|e| Error::new(ErrorCode::PayloadTooLarge, e.to_string()))?;
    let resp = sandbox_client()
        .request(method, url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| Error::new(ErrorCode::Unavailable, format!("port {port} of the sandbox: {e}")))?;
    let mut out = Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if k != header::TRANSFER_ENCODING && k != header::CONNECTION {
            out = out.header(k, v);
        }
    }
    Ok(out.body(Body::from_stream(resp.bytes_stream())).expect("response"))
}

#[derive(Deserialize, Default)]
struct ExecuteBody {
    code: String,
    context_id: Option<String>,
    language: Option<String>,
    env_vars: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
struct ContextBody {
    language: Option<String>,
    cwd: Option<String>,
}

fn context_json(k: &roost_control::sandboxes::Kernel) -> Value {
    json!({"id": k.id, "language": k.language, "cwd": k.cwd})
}

/// The code interpreter (port 49999): `/execute` streams JSON lines, `/contexts` manages
/// contexts. Served by Roost's runner inside the sandbox, started through exec.
async fn code_interpreter(control: &Control, view: &SandboxView, req: Request) -> Result<Response, Error> {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let parts: Vec<String> = path.trim_start_matches('/').split('/').map(str::to_string).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match (&method, parts.as_slice()) {
        (&Method::GET, ["health"]) => Ok(StatusCode::OK.into_response()),
        (&Method::POST, ["execute"]) => {
            let body: ExecuteBody = body_json(req).await?;
            if body.language.as_deref().is_some_and(|l| l != "python") {
                return Err(Error::new(ErrorCode::InvalidRequest, "only python is supported"));
            }
            let mut rx = control
                .execute_code(view, body.context_id.as_deref(), &body.code, &body.env_vars.unwrap_or_default())
                .await?;
            let stream = async_stream::stream! {
                while let Some(line) = rx.recv().await {
                    yield Ok::<Bytes, std::io::Error>(Bytes::from(format!("{line}\n")));
                }
            };
            Ok(Response::builder()
                .header(header::CONTENT_TYPE, "application/x-ndjson")
                .body(Body::from_stream(stream))
                .expect("response"))
        }
        (&Method::POST, ["contexts"]) => {
            let body: ContextBody = body_json(req).await?;
            let k = control.create_kernel(view, body.language.as_deref(), body.cwd.as_deref()).await?;
            Ok(Json(context_json(&k)).into_response())
        }
        (&Method::GET, ["contexts"]) => {
            let list: Vec<Value> = control.list_kernels(&view.row.id).iter().map(|k| context_json(k)).collect();
            Ok(Json(Value::Array(list)).into_response())
        }
        (&Method::DELETE, ["contexts", id]) => {
            control.remove_kernel(&view.row.id, id)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::POST, ["contexts", id, "restart"]) => {
            control.restart_kernel(view, id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(Error::not_found("route", &format!("{method} {path}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_entry_info() {
        let out = b"d\t4096\t755\tdrwxr-xr-x\troot\troot\t1700000000.5\t\t/tmp/d\0\
                    f\t8\t644\t-rw-r--r--\troot\troot\t1700000000.0\t\t/tmp/d/a b.txt\0\
                    l\t7\t777\tlrwxrwxrwx\troot\troot\t1700000000.0\t/etc\t/tmp/link\0";
        let entries: Vec<envd::EntryInfo> =
            roost_control::sandbox_processes::parse_entries(out).into_iter().map(entry).collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].r#type, envd::FILE_TYPE_DIRECTORY);
        assert_eq!(entries[0].mode, 0o755);
        assert_eq!(entries[0].modified_time, Some(envd::Timestamp { seconds: 1_700_000_000, nanos: 500_000_000 }));
        assert_eq!(entries[1].name, "a b.txt");
        assert_eq!(entries[1].size, 8);
        assert!(entries[2].is_symlink);
        assert_eq!(entries[2].symlink_target.as_deref(), Some("/etc"));
    }

    #[test]
    fn the_proxy_reaches_only_the_sandbox_address() {
        let ip: std::net::IpAddr = "10.88.0.5".parse().unwrap();
        for path in ["/", "//evil.example/x", "/@127.0.0.1:7700/", "/a?b=c&d=http://169.254.169.254/", "*"] {
            let url = sandbox_url(ip, 8000, path).unwrap();
            assert_eq!((url.host_str(), url.port()), (Some("10.88.0.5"), Some(8000)), "{path}: {url}");
        }
        assert_eq!(sandbox_url(ip, 80, "/a?b=1").unwrap().as_str(), "http://10.88.0.5/a?b=1");
    }

    #[test]
    fn relative_paths_are_in_the_home_of_the_command_user() {
        assert_eq!(resolve_path("a.txt"), "/root/a.txt");
        assert_eq!(resolve_path("/tmp/a"), "/tmp/a");
    }
}
