//! Request ids (in every log line and error body), access logs and request metrics.

use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// JSON request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Accepts a client's `X-Request-Id` when it is short and plain, else makes one; echoes it
/// in the response and puts it on the tracing span of everything the request does.
pub async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let client = req.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let span = tracing::info_span!("request", request_id = %id, %method, path = %path);
    let started = Instant::now();
    let mut response = REQUEST_ID.scope(id.clone(), next.run(req).instrument(span.clone())).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let client = client.map(|c| c.to_string()).unwrap_or_default();
    // Reads that succeed are noise at info level; changes and failures are not.
    let _enter = span.enter();
    if method == Method::GET || method == Method::HEAD {
        if status < 400 {
            tracing::debug!(status, ms, client, "request");
        } else {
            tracing::info!(status, ms, client, "request");
        }
    } else {
        tracing::info!(status, ms, client, "request");
    }
    response
}

fn new_request_id() -> String {
    let mut id = String::from("req-");
    roost_api::ids::push_random(&mut id, 16);
    id
}

/// Counts requests, their latency and their store statements by method, route template
/// and status.
pub async fn metrics(req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| {
            if req.uri().path().starts_with("/v1/") { "unmatched".into() } else { "console".into() }
        });
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let (response, statements) = roost_store::counted::count_statements(next.run(req)).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("roost_http_requests_total", &labels).increment(1);
    metrics::histogram!("roost_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    // Per route, so a listing that costs a query per row shows (and a test can tell);
    // authentication is counted apart (its cost depends on its cache, not the request).
    metrics::counter!("roost_http_request_queries_total", &labels).increment(statements);
    response
}

/// Where a request came from, as this server believes it: the peer's address, or with
/// `trust_proxy` what the reverse proxy says (`X-Forwarded-For`, the address it appended
/// last); and whether it reached us over HTTPS (`public_url` is https, or a trusted
/// proxy says `X-Forwarded-Proto: https`). Set on every request by [`client_info`].
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    pub addr: Option<std::net::IpAddr>,
    pub https: bool,
}

pub async fn client_info(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let info = client_of(state.control.settings(), &req);
    req.extensions_mut().insert(info);
    next.run(req).await
}

fn client_of(settings: &roost_control::ControlSettings, req: &Request) -> ClientInfo {
    let peer = req.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let (addr, forwarded_https) = if settings.trust_proxy {
        let forwarded_for =
            header("x-forwarded-for").and_then(|v| v.rsplit(',').next().and_then(|a| a.trim().parse().ok()));
        // The first value is the scheme the client used (each proxy appends its own).
        let https = header("x-forwarded-proto")
            .is_some_and(|v| v.split(',').next().unwrap_or_default().trim().eq_ignore_ascii_case("https"));
        (forwarded_for.or(peer), https)
    } else {
        (peer, false)
    };
    let https = forwarded_https || settings.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    ClientInfo { addr, https }
}

/// Headers that keep a browser from sniffing, framing or leaking what the server sends.
/// API responses (`/v1`, health, metrics) are data, never pages: they also get a policy
/// that sandboxes them (no script, no plugins, no same-origin) should a browser render
/// one, which matters for bodies a tenant chose (objects, files). The console sets its
/// own policy, which lets it run.
pub async fn security_headers(req: Request, next: Next) -> Response {
    use axum::http::header;
    let api = crate::console::is_api_path(req.uri().path());
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.entry(header::X_FRAME_OPTIONS).or_insert(HeaderValue::from_static("DENY"));
    if api {
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(API_CSP));
    }
    response
}

/// The policy of API responses: nothing loads, nothing frames it, and a rendered body
/// runs sandboxed (an opaque origin without scripts).
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// Refuses a request whose `Content-Length` exceeds the limit before reading any of it
/// (bodies without a length are cut off by the extractors' limit instead).
pub async fn reject_oversized(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let upload = crate::audit_trail::is_upload(req.method().as_str(), req.uri().path());
    if !upload && declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        let err = crate::ApiError::new(
            roost_api::ErrorCode::PayloadTooLarge,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        );
        return axum::response::IntoResponse::into_response(err);
    }
    next.run(req).await
}
