//! Makes "every mutating request appends an audit entry" hold: services write the entry
//! of a change in its own transaction; this layer writes one for every mutating request
//! that ended without one (refused, invalid, failed), with the actor when known.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use roost_api::ErrorCode;

use crate::AppState;
use crate::error::ApiError;
use crate::middleware::MAX_BODY_BYTES;

/// The user id and, when one was used, the API token id.
pub type Actor = (String, Option<String>);

/// Shared between this layer, the `Auth` extractor and the services of one request.
#[derive(Clone, Default)]
pub struct RequestAudit {
    pub audited: Arc<std::sync::atomic::AtomicBool>,
    /// (user id, token id) once the request is authenticated.
    pub actor: Arc<Mutex<Option<Actor>>>,
}

/// The audit action of each mutating route is its OpenAPI operation id, declared with the
/// route (`operation_id = "token.create"` on its `#[utoipa::path]`): read once from the
/// document, keyed by method and route template.
fn actions() -> &'static HashMap<(String, String), String> {
    static ACTIONS: OnceLock<HashMap<(String, String), String>> = OnceLock::new();
    ACTIONS.get_or_init(|| {
        let doc = crate::openapi::document();
        let mut actions = HashMap::new();
        for (path, item) in &doc.paths.paths {
            let operations =
                [("POST", &item.post), ("PUT", &item.put), ("PATCH", &item.patch), ("DELETE", &item.delete)];
            for (method, operation) in operations {
                if let Some(id) = operation.as_ref().and_then(|o| o.operation_id.clone()) {
                    actions.insert((method.to_string(), path.clone()), id);
                }
            }
        }
        actions
    })
}

/// Routes whose bodies are uploads (tarballs): streamed, never buffered here, and not
/// bound by the JSON size limit.
pub fn is_upload(method: &str, path: &str) -> bool {
    (method == "POST" && path == "/v1/images/import")
        || (method == "PUT" && path.starts_with("/v1/instances/") && path.ends_with("/files"))
        || (method == "PUT" && path.starts_with("/v1/buckets/") && path.contains("/objects/"))
        || (method == "PUT" && path.starts_with("/v1/sandboxes/") && path.ends_with("/files"))
}

/// The action name and resource type (the action's first word) of a mutating route, if
/// it is one. A route mounted with a catch-all (`{*key}`) is documented as `{key}`.
pub fn action_for(method: &str, route: &str) -> Option<(&'static str, &'static str)> {
    let route = route.replace("{*", "{");
    let action = actions().get(&(method.to_string(), route))?.as_str();
    // As the services name them in their entries: the action's first word, but for the
    // few actions named after an area rather than a resource.
    let resource_type = match action {
        "auth.login" | "auth.logout" => "session",
        "system.backup" => "operation",
        "system.task.run" => "task",
        _ => action.split('.').next().unwrap_or(action),
    };
    Some((action, resource_type))
}

fn is_mutation(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The value of the route's `{id}` (or, for resources known by name, `{name}`) segment
/// in the actual path.
fn resource_id(route: &str, path: &str) -> Option<String> {
    route.split('/').zip(path.split('/')).find(|(r, _)| matches!(*r, "{id}" | "{name}")).map(|(_, p)| p.to_string())
}

pub async fn layer(State(state): State<AppState>, matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    if !is_mutation(req.method()) {
        return next.run(req).await;
    }
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let route = matched.map(|m| m.as_str().to_string()).unwrap_or_else(|| path.clone());
    let (mut parts, body) = req.into_parts();
    let (body, digest) = if is_upload(&method, &path) {
        (body, None)
    } else {
        // JSON bodies are small (the limit is checked before); read it once for the digest.
        match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => {
                let digest = roost_control::audit::raw_body_digest(&bytes);
                (Body::from(bytes), digest)
            }
            Err(_) => {
                let message = format!("request body is larger than {MAX_BODY_BYTES} bytes");
                return ApiError::new(ErrorCode::PayloadTooLarge, message).into_response();
            }
        }
    };
    let audit = RequestAudit::default();
    parts.extensions.insert(audit.clone());
    let ctx = crate::extract::context(&parts);
    let response = next.run(Request::from_parts(parts, body)).await;
    if audit.audited.load(Ordering::Relaxed) {
        return response;
    }
    let (action, resource_type) = match action_for(&method, &route) {
        Some(found) => found,
        None => {
            tracing::warn!(%method, %route, "mutating route without an audit action name");
            ("unknown", "unknown")
        }
    };
    let status = response.status();
    let result =
        if status.is_success() { "success".to_string() } else { format!("failure: {}", code_for(status.as_u16())) };
    let actor = audit.actor.lock().expect("audit actor").clone();
    let (actor, token) = actor.unwrap_or_else(|| ("anonymous".to_string(), None));
    let id = resource_id(&route, &path);
    let resource = id.as_deref().map(|id| (resource_type, id));
    state.control.audit_failure(&ctx, &actor, token, action, resource, &result, digest).await;
    response
}

fn code_for(status: u16) -> &'static str {
    match status {
        400 => "invalid_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        412 => "precondition_failed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "rate_limited",
        503 => "unavailable",
        _ => "internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutating_route_declares_its_audit_action() {
        let doc = serde_json::to_value(crate::openapi::document()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let method = method.to_uppercase();
                if is_mutation(&method.parse().unwrap()) {
                    let (action, _) = action_for(&method, path)
                        .unwrap_or_else(|| panic!("{method} {path} declares no operation_id (its audit action)"));
                    assert!(
                        action.contains('.')
                            && action
                                .bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._".contains(&b)),
                        "{method} {path}: '{action}' is not an action name like 'token.create'"
                    );
                    assert!(seen.insert((action.to_string(), method.clone())), "{action} names two {method} routes");
                }
            }
        }
        assert_eq!(action_for("PUT", "/v1/buckets/{id}/objects/{*key}"), Some(("bucket.object.put", "bucket")));
    }

    #[test]
    fn resource_ids_come_from_the_id_segment() {
        assert_eq!(resource_id("/v1/tokens/{id}", "/v1/tokens/ci"), Some("ci".into()));
        assert_eq!(resource_id("/v1/projects/{id}/members/{user}", "/v1/projects/a/members/b"), Some("a".into()));
        assert_eq!(resource_id("/v1/tokens", "/v1/tokens"), None);
        assert_eq!(
            resource_id("/v1/system/tasks/{name}/run", "/v1/system/tasks/housekeeping/run"),
            Some("housekeeping".into())
        );
    }
}
