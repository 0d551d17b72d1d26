//! Roost's S3 endpoint, a front door of the object service: the S3 wire protocol (SigV4
//! headers and presigned URLs, aws-chunked bodies, XML) is `s3s`'s; this crate maps
//! S3's operations onto `roost_control::objects`, authenticates S3 keys through the
//! control plane and serves CORS. Objects, their files, lifecycle and garbage collection
//! are the control plane's.

pub mod cors;
pub mod lifecycle;
pub mod service;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use roost_control::Control;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{Body, S3Result, s3_error};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use service::RoostS3;

/// What the endpoint is configured with.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// The base domain for virtual-host-style requests (`bucket.<domain>`); path-style
    /// always works.
    pub domain: Option<String>,
    pub region: String,
}

struct Auth(Control);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.s3_identity(access_key).await {
            Ok(Some(identity)) => Ok(SecretKey::from(identity.secret.as_str())),
            Ok(None) => Err(s3_error!(InvalidAccessKeyId, "the access key id does not exist")),
            Err(e) => {
                tracing::error!(error = %e.message, "cannot resolve an S3 key");
                Err(s3_error!(InternalError))
            }
        }
    }
}

/// Signed requests go on to the operation, which checks the bucket. Unsigned ones may
/// only read objects (public-read buckets decide in the operation).
struct Access;

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        match cx.s3_op().name() {
            "GetObject" | "HeadObject" => Ok(()),
            _ => Err(s3_error!(AccessDenied, "a signature is required")),
        }
    }
}

/// Virtual-host-style addressing under one domain: `<bucket>.<domain>[:port]` names the
/// bucket; any other host (the domain itself, an IP address, `localhost`) is path-style.
struct Domain(String);

impl s3s::host::S3Host for Domain {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<s3s::host::VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let lower = name.to_ascii_lowercase();
        match lower.strip_suffix(self.0.as_str()).and_then(|b| b.strip_suffix('.')) {
            Some(bucket) if !bucket.is_empty() => {
                Ok(s3s::host::VirtualHost::new(self.0.as_str()).with_bucket(bucket.to_string()))
            }
            _ => Ok(s3s::host::VirtualHost::new(self.0.as_str())),
        }
    }
}

/// The S3 front: CORS around the s3s service.
#[derive(Clone)]
pub struct Endpoint {
    service: Arc<S3Service>,
    s3: RoostS3,
    domain: Option<String>,
}

impl Endpoint {
    pub fn new(control: Control, settings: &S3Settings) -> Result<Endpoint, String> {
        let s3 = RoostS3::new(control.clone(), settings.region.clone());
        let mut builder = S3ServiceBuilder::new(s3.clone());
        builder.set_auth(Auth(control));
        builder.set_access(Access);
        if let Some(domain) = &settings.domain {
            builder.set_host(Domain(domain.to_ascii_lowercase()));
        }
        Ok(Endpoint { service: Arc::new(builder.build()), s3, domain: settings.domain.clone() })
    }

    pub fn s3(&self) -> &RoostS3 {
        &self.s3
    }

    async fn handle(&self, req: http::Request<hyper::body::Incoming>) -> Result<http::Response<Body>, Infallible> {
        // An error answered before a `Expect: 100-continue` body was read leaves the client
        // unsure whether to send it: close the connection so the next request starts clean.
        let expects_continue = req.headers().get(http::header::EXPECT).is_some();
        let mut resp = self.handle_inner(req).await;
        if expects_continue && (resp.status().is_client_error() || resp.status().is_server_error()) {
            resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        Ok(resp)
    }

    async fn handle_inner(&self, req: http::Request<hyper::body::Incoming>) -> http::Response<Body> {
        let origin = req.headers().get(http::header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_string);
        let Some(origin) = origin else { return self.call(req.map(Body::from)).await };
        let bucket_name = cors::bucket_of(req.method(), req.uri(), req.headers(), self.domain.as_deref());
        let bucket = match &bucket_name {
            Some(name) => self.s3.control.bucket_for_cors(name).await.ok().flatten(),
            None => None,
        };
        if req.method() == Method::OPTIONS {
            let method = req
                .headers()
                .get("access-control-request-method")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let headers: Vec<String> = req
                .headers()
                .get("access-control-request-headers")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(',').map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect())
                .unwrap_or_default();
            let rule = bucket.as_ref().and_then(|b| cors::matching(b, &origin, &method, &headers));
            let mut resp = http::Response::new(Body::empty());
            match rule {
                Some(rule) => cors::apply(&rule, &origin, Some((&method, &headers)), resp.headers_mut()),
                None => *resp.status_mut() = StatusCode::FORBIDDEN,
            }
            return resp;
        }
        let method = req.method().as_str().to_string();
        let mut resp = self.call(req.map(Body::from)).await;
        if let Some(rule) = bucket.as_ref().and_then(|b| cors::matching(b, &origin, &method, &[])) {
            cors::apply(&rule, &origin, None, resp.headers_mut());
        }
        resp
    }

    async fn call(&self, req: http::Request<Body>) -> http::Response<Body> {
        match self.service.call(req).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(error = ?e, "S3 request failed");
                let mut resp = http::Response::new(Body::empty());
                *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                resp
            }
        }
    }

    /// Serves connections until `shutdown`; requests in flight finish on their own.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) {
        loop {
            let (stream, _peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "S3 listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let endpoint = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let endpoint = endpoint.clone();
                    async move { endpoint.handle(req).await }
                });
                let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use s3s::host::S3Host;

    use super::Domain;

    #[test]
    fn virtual_hosts_name_buckets_under_the_domain_only() {
        let d = Domain("s3.example.com".into());
        assert_eq!(d.parse_host_header("photos.s3.example.com:7701").unwrap().bucket(), Some("photos"));
        assert_eq!(d.parse_host_header("Photos.S3.Example.com").unwrap().bucket(), Some("photos"));
        assert_eq!(d.parse_host_header("a.b.s3.example.com").unwrap().bucket(), Some("a.b"));
        for path_style in ["s3.example.com", "s3.example.com:7701", "127.0.0.1:7701", "localhost:7701", "[::1]:7701"] {
            assert_eq!(d.parse_host_header(path_style).unwrap().bucket(), None, "{path_style}");
        }
    }
}
