//! The web console, embedded at build time and served at `/` with a single-page-app
//! fallback. API-looking paths never fall through to it: they get JSON 404s.

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error;

#[derive(RustEmbed)]
#[folder = "$ROOST_CONSOLE_DIR"]
struct Assets;

/// Paths that belong to the API and must never be answered with the console.
pub(crate) fn is_api_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/") || path == "/metrics" || path == "/health" || path.starts_with("/health/")
}

const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub async fn fallback(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if is_api_path(path) {
        return error::not_found(method, uri).await.into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return error::method_not_allowed(method, uri).await.into_response();
    }
    let file = path.trim_start_matches('/');
    match Assets::get(file).filter(|_| !file.is_empty()) {
        Some(content) => {
            let mime = content.metadata.mimetype();
            // Vite's assets carry content hashes in their names: cache them for good.
            let cache = if file.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
            asset_response(content.data.into_owned(), mime, cache)
        }
        None if file.starts_with("assets/") => (StatusCode::NOT_FOUND, "not found").into_response(),
        None => match Assets::get("index.html") {
            Some(index) => asset_response(index.data.into_owned(), "text/html; charset=utf-8", "no-cache"),
            None => (StatusCode::NOT_FOUND, "console not built").into_response(),
        },
    }
}

fn asset_response(body: Vec<u8>, mime: &str, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(path: &str) -> (StatusCode, String, String) {
        let response = fallback(Method::GET, path.parse().unwrap()).await;
        let status = response.status();
        let mime =
            response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap();
        (status, mime, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn deep_links_serve_the_app() {
        let (_, _, index) = get("/").await;
        for path in
            ["/instances/web", "/instances/web.1?tab=logs", "/projects/default", "/login?next=%2Finstances", "/audit"]
        {
            let (status, mime, body) = get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(mime.starts_with("text/html"), "{path}: {mime}");
            assert_eq!(body, index, "{path} is not index.html");
            assert!(body.to_ascii_lowercase().starts_with("<!doctype html"), "{path}");
        }
    }

    #[test]
    fn source_maps_are_not_embedded() {
        // web/dist has them (vite's hidden source maps); the binary must not.
        let maps: Vec<_> = Assets::iter().filter(|f| f.ends_with(".map")).collect();
        assert!(maps.is_empty(), "embedded source maps: {maps:?}");
        assert!(Assets::get("index.html").is_some());
    }

    #[tokio::test]
    async fn missing_assets_and_api_paths_do_not_fall_back() {
        let (status, _, _) = get("/assets/nope-123.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        for path in ["/v1/nope", "/v1", "/health/nope"] {
            let (status, mime, _) = get(path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(mime.contains("json"), "{path}: {mime}");
        }
        let response = fallback(Method::POST, "/instances/web".parse().unwrap()).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
