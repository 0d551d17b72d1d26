//! Building audit entries: actor, source, request id and a digest of the request body
//! with secrets removed.

use roost_store::audit::{self, AuditEntry};
use roost_store::now_ms;
use sha2::{Digest, Sha256};

use crate::{Control, RequestContext};

/// Field names whose values never enter a digest (they are replaced first).
const SECRET_FIELDS: &[&str] = &["password", "secret", "token", "key", "csrf"];

/// An entry for a successful action, to append in the action's own transaction.
pub fn entry(
    ctx: &RequestContext,
    (actor, actor_token): (String, Option<String>),
    action: &str,
    resource: Option<(&str, &str)>,
    body: Option<&serde_json::Value>,
) -> AuditEntry {
    AuditEntry {
        time: now_ms(),
        actor,
        actor_token,
        source: ctx.source.clone(),
        action: action.to_string(),
        resource_type: resource.map(|(t, _)| t.to_string()),
        resource_id: resource.map(|(_, id)| id.to_string()),
        result: "success".to_string(),
        request_id: ctx.request_id.clone(),
        body_digest: body.map(body_digest),
    }
}

/// SHA-256 of the body's JSON after every secret-looking field is redacted.
pub fn body_digest(body: &serde_json::Value) -> String {
    let mut clean = body.clone();
    redact(&mut clean);
    hex::encode(Sha256::digest(clean.to_string().as_bytes()))
}

fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let lower = k.to_ascii_lowercase();
                if SECRET_FIELDS.iter().any(|s| lower.contains(s)) {
                    *v = serde_json::Value::String("[redacted]".into());
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

impl Control {
    /// Appends an entry outside any other transaction (failed logins). Failure to audit
    /// is logged, never shown to the client.
    pub(crate) async fn audit_standalone(
        &self,
        ctx: &RequestContext,
        actor: &str,
        actor_token: Option<String>,
        action: &str,
        resource: Option<(&str, &str)>,
        result: &str,
    ) {
        let mut e = entry(ctx, (actor.to_string(), actor_token), action, resource, None);
        e.result = result.to_string();
        let write = async {
            let mut tx = self.store().write().await?;
            audit::append(tx.conn(), &e).await?;
            tx.commit().await
        };
        if let Err(err) = write.await {
            tracing::error!(error = %err, action, "could not append to the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_ignore_secret_values() {
        let a = serde_json::json!({"username": "admin", "password": "one"});
        let b = serde_json::json!({"username": "admin", "password": "two"});
        let c = serde_json::json!({"username": "other", "password": "one"});
        assert_eq!(body_digest(&a), body_digest(&b));
        assert_ne!(body_digest(&a), body_digest(&c));
        let nested = serde_json::json!({"items": [{"api_key": "x"}]});
        let mut n = nested.clone();
        redact(&mut n);
        assert_eq!(n["items"][0]["api_key"], "[redacted]");
    }
}
