//! Makes "every mutating request appends an audit entry" hold: services write the entry
//! of a change in its own transaction; this layer writes one for every mutating request
//! that ended without one (refused, invalid, failed), with the actor when known.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

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

/// The audit action and resource type of each mutating route.
const ACTIONS: &[(&str, &str, &str, &str)] = &[
    ("POST", "/v1/auth/login", "auth.login", "session"),
    ("POST", "/v1/auth/logout", "auth.logout", "session"),
    ("POST", "/v1/auth/password", "user.password.change", "user"),
    ("POST", "/v1/tokens", "token.create", "token"),
    ("PATCH", "/v1/tokens/{id}", "token.update", "token"),
    ("DELETE", "/v1/tokens/{id}", "token.delete", "token"),
    ("POST", "/v1/system/backups", "system.backup", "operation"),
    ("POST", "/v1/system/tasks/{name}/run", "system.task.run", "task"),
    ("POST", "/v1/users", "user.create", "user"),
    ("PATCH", "/v1/users/{id}", "user.update", "user"),
    ("DELETE", "/v1/users/{id}", "user.delete", "user"),
    ("POST", "/v1/users/{id}/disable", "user.disable", "user"),
    ("POST", "/v1/users/{id}/enable", "user.enable", "user"),
    ("POST", "/v1/users/{id}/password", "user.password.reset", "user"),
    ("POST", "/v1/projects", "project.create", "project"),
    ("PATCH", "/v1/projects/{id}", "project.update", "project"),
    ("DELETE", "/v1/projects/{id}", "project.delete", "project"),
    ("PUT", "/v1/projects/{id}/members/{user}", "project.member.set", "project"),
    ("DELETE", "/v1/projects/{id}/members/{user}", "project.member.remove", "project"),
    ("PUT", "/v1/projects/{id}/quota", "project.quota.set", "project"),
    ("POST", "/v1/images", "image.build", "image"),
    ("POST", "/v1/images/import", "image.import", "image"),
    ("PATCH", "/v1/images/{id}", "image.update", "image"),
    ("DELETE", "/v1/images/{id}", "image.delete", "image"),
    ("POST", "/v1/instances", "instance.create", "instance"),
    ("PATCH", "/v1/instances/{id}", "instance.update", "instance"),
    ("DELETE", "/v1/instances/{id}", "instance.delete", "instance"),
    ("POST", "/v1/instances/{id}/start", "instance.start", "instance"),
    ("POST", "/v1/instances/{id}/stop", "instance.stop", "instance"),
    ("POST", "/v1/instances/{id}/restart", "instance.restart", "instance"),
    ("PUT", "/v1/instances/{id}/files", "instance.files.write", "instance"),
    ("POST", "/v1/instances/{id}/networks", "instance.network_attach", "instance"),
    ("DELETE", "/v1/instances/{id}/networks/{network}", "instance.network_detach", "instance"),
    ("PUT", "/v1/instances/{id}/security-groups", "instance.security_groups", "instance"),
    ("POST", "/v1/instances/{id}/ports", "port_forward.create", "port_forward"),
    ("DELETE", "/v1/instances/{id}/ports/{port}", "port_forward.delete", "port_forward"),
    // Documented as `{key}`, mounted as `{*key}`.
    ("PUT", "/v1/buckets/{id}/objects/{key}", "bucket.object.put", "bucket"),
    ("PUT", "/v1/buckets/{id}/objects/{*key}", "bucket.object.put", "bucket"),
    ("DELETE", "/v1/buckets/{id}/objects/{key}", "bucket.object.delete", "bucket"),
    ("DELETE", "/v1/buckets/{id}/objects/{*key}", "bucket.object.delete", "bucket"),
    ("POST", "/v1/networks", "network.create", "network"),
    ("PATCH", "/v1/networks/{id}", "network.update", "network"),
    ("DELETE", "/v1/networks/{id}", "network.delete", "network"),
    ("POST", "/v1/networks/{id}/peers", "network.peer", "network"),
    ("DELETE", "/v1/networks/{id}/peers/{peer}", "network.unpeer", "network"),
    ("POST", "/v1/security-groups", "security_group.create", "security_group"),
    ("PATCH", "/v1/security-groups/{id}", "security_group.update", "security_group"),
    ("DELETE", "/v1/security-groups/{id}", "security_group.delete", "security_group"),
    ("POST", "/v1/security-groups/{id}/rules", "security_group.rule_add", "security_group"),
    ("DELETE", "/v1/security-groups/{id}/rules/{rule}", "security_group.rule_delete", "security_group"),
    ("POST", "/v1/buckets", "bucket.create", "bucket"),
    ("PATCH", "/v1/buckets/{id}", "bucket.update", "bucket"),
    ("DELETE", "/v1/buckets/{id}", "bucket.delete", "bucket"),
    ("POST", "/v1/buckets/{id}/presign", "bucket.presign", "bucket"),
    ("POST", "/v1/s3-keys", "s3_key.create", "s3_key"),
    ("PATCH", "/v1/s3-keys/{id}", "s3_key.update", "s3_key"),
    ("DELETE", "/v1/s3-keys/{id}", "s3_key.delete", "s3_key"),
    ("POST", "/v1/volumes", "volume.create", "volume"),
    ("PATCH", "/v1/volumes/{id}", "volume.update", "volume"),
    ("DELETE", "/v1/volumes/{id}", "volume.delete", "volume"),
    ("POST", "/v1/volumes/{id}/resize", "volume.resize", "volume"),
    ("POST", "/v1/volumes/{id}/attach", "volume.attach", "volume"),
    ("POST", "/v1/volumes/{id}/detach", "volume.detach", "volume"),
    ("POST", "/v1/volumes/{id}/restore", "volume.restore", "volume"),
    ("POST", "/v1/snapshots", "snapshot.create", "snapshot"),
    ("PATCH", "/v1/snapshots/{id}", "snapshot.update", "snapshot"),
    ("DELETE", "/v1/snapshots/{id}", "snapshot.delete", "snapshot"),
    ("POST", "/v1/backup-policies", "backup_policy.create", "backup_policy"),
    ("PATCH", "/v1/backup-policies/{id}", "backup_policy.update", "backup_policy"),
    ("DELETE", "/v1/backup-policies/{id}", "backup_policy.delete", "backup_policy"),
    ("POST", "/v1/backup-policies/{id}/run", "backup_policy.run", "backup_policy"),
    ("POST", "/v1/instances/{id}/snapshot", "instance.snapshot", "instance"),
    ("POST", "/v1/instances/{id}/clone", "instance.clone", "instance"),
    ("POST", "/v1/ssh-keys", "ssh_key.create", "ssh_key"),
    ("PATCH", "/v1/ssh-keys/{id}", "ssh_key.update", "ssh_key"),
    ("DELETE", "/v1/ssh-keys/{id}", "ssh_key.delete", "ssh_key"),
    ("POST", "/v1/sandbox-keys", "sandbox_key.create", "sandbox_key"),
    ("PATCH", "/v1/sandbox-keys/{id}", "sandbox_key.update", "sandbox_key"),
    ("DELETE", "/v1/sandbox-keys/{id}", "sandbox_key.delete", "sandbox_key"),
    ("POST", "/v1/sandboxes", "sandbox.create", "sandbox"),
    ("DELETE", "/v1/sandboxes/{id}", "sandbox.kill", "sandbox"),
    ("POST", "/v1/sandboxes/{id}/pause", "sandbox.pause", "sandbox"),
    ("POST", "/v1/sandboxes/{id}/resume", "sandbox.resume", "sandbox"),
    ("POST", "/v1/sandboxes/{id}/timeout", "sandbox.timeout", "sandbox"),
    ("POST", "/v1/sandboxes/{id}/processes", "sandbox.process.start", "sandbox"),
    ("POST", "/v1/sandboxes/{id}/processes/{pid}/signal", "sandbox.process.signal", "sandbox"),
    ("POST", "/v1/sandboxes/{id}/dirs", "sandbox.files.mkdir", "sandbox"),
    ("PUT", "/v1/sandboxes/{id}/files", "sandbox.files.write", "sandbox"),
    ("DELETE", "/v1/sandboxes/{id}/files", "sandbox.files.remove", "sandbox"),
    ("POST", "/v1/sandboxes/{id}/files/move", "sandbox.files.move", "sandbox"),
    ("POST", "/v1/sandbox-templates", "sandbox_template.build", "sandbox_template"),
    ("DELETE", "/v1/sandbox-templates/{id}", "sandbox_template.delete", "sandbox_template"),
];

/// Routes whose bodies are uploads (tarballs): streamed, never buffered here, and not
/// bound by the JSON size limit.
pub fn is_upload(method: &str, path: &str) -> bool {
    (method == "POST" && path == "/v1/images/import")
        || (method == "PUT" && path.starts_with("/v1/instances/") && path.ends_with("/files"))
        || (method == "PUT" && path.starts_with("/v1/buckets/") && path.contains("/objects/"))
        || (method == "PUT" && path.starts_with("/v1/sandboxes/") && path.ends_with("/files"))
}

/// The action name and resource type of a mutating route, if it is one.
pub fn action_for(method: &str, route: &str) -> Option<(&'static str, &'static str)> {
    ACTIONS.iter().find(|(m, r, _, _)| *m == method && *r == route).map(|(_, _, a, t)| (*a, *t))
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
    fn every_mutating_route_has_an_audit_action() {
        let doc = serde_json::to_value(crate::openapi::document()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let method = method.to_uppercase();
                if is_mutation(&method.parse().unwrap()) {
                    assert!(action_for(&method, path).is_some(), "{method} {path} has no audit action in ACTIONS");
                }
            }
        }
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
