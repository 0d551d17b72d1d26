//! Entity tags, built once for every resource. A JSON answer to a read carries an `ETag`
//! computed from its body (the digest the services compare `If-Match` with, so the two
//! always agree), and a matching `If-None-Match` turns it into `304 Not Modified`.
//! [`IfMatch`] hands an update's or delete's precondition to its service, which checks it
//! inside its write transaction (`roost_control::kernel::etag`).

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{FromRequestParts, Request};
use axum::http::header::{CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};

/// Bodies larger than this are not tagged (no JSON answer of the API comes close).
const MAX_TAGGED_BYTES: u64 = 8 << 20;

/// Tags JSON answers to GET (and the new state a PATCH or PUT answers with); answers a
/// GET whose `If-None-Match` names the current tag with 304.
pub async fn layer(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let if_none_match = req.headers().get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
    let response = next.run(req).await;
    let taggable = matches!(method, Method::GET | Method::HEAD | Method::PATCH | Method::PUT)
        && response.status() == StatusCode::OK
        && !response.headers().contains_key(ETAG)
        && response.headers().get(CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"application/json"))
        && response.body().size_hint().exact().is_some_and(|n| n <= MAX_TAGGED_BYTES);
    if !taggable {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_TAGGED_BYTES as usize).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let etag = roost_api::etag_of_json(&bytes);
    let Ok(value) = HeaderValue::from_str(&etag) else { return Response::from_parts(parts, Body::from(bytes)) };
    parts.headers.insert(ETAG, value.clone());
    let fresh = matches!(method, Method::GET | Method::HEAD)
        && if_none_match.is_some_and(|v| roost_api::if_none_match_names(&v, &etag));
    if fresh {
        let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
        not_modified.headers_mut().insert(ETAG, value);
        return not_modified;
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The `If-Match` of an update or delete: the change applies only while the resource's
/// `ETag` is one of those named (or `*`); otherwise 412 `precondition_failed`.
#[derive(Debug, Clone, Default)]
pub struct IfMatch(pub Option<String>);

impl IfMatch {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(IfMatch(parts.headers.get(IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string)))
    }
}

/// Documents the header; the OpenAPI modifier adds the 412 answer to every operation
/// that takes it.
impl IntoParams for IfMatch {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("If-Match")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some("Apply only while the resource's ETag is one of these (`*`: any); 412 otherwise"))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        ]
    }
}
