//! The audit log: append-only and hash-chained, written in the same transaction as the
//! change it records.

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, FromRow};

use crate::{Result, Store};

/// What happened, by whom; the chain fields are filled in by [`append`].
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub time: i64,
    /// The user id, or `anonymous` (failed logins).
    pub actor: String,
    /// The API token id, when the actor used one.
    pub actor_token: Option<String>,
    /// The client address.
    pub source: Option<String>,
    /// `<resource>.<verb>`, e.g. `token.create`, `auth.login`.
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// `success`, or `failure: <code>`.
    pub result: String,
    pub request_id: Option<String>,
    /// SHA-256 of the request body with secrets removed.
    pub body_digest: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub time: i64,
    pub actor: String,
    pub actor_token: Option<String>,
    pub source: Option<String>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub result: String,
    pub request_id: Option<String>,
    pub body_digest: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of one entry: SHA-256 over the previous hash and every field, each
/// length-prefixed so no two different entries serialize alike.
pub fn entry_hash(prev_hash: &str, seq: i64, e: &AuditEntry) -> String {
    let mut h = Sha256::new();
    let mut field = |v: &str| {
        h.update((v.len() as u64).to_be_bytes());
        h.update(v.as_bytes());
    };
    field(prev_hash);
    field(&seq.to_string());
    field(&e.time.to_string());
    field(&e.actor);
    field(e.actor_token.as_deref().unwrap_or(""));
    field(e.source.as_deref().unwrap_or(""));
    field(&e.action);
    field(e.resource_type.as_deref().unwrap_or(""));
    field(e.resource_id.as_deref().unwrap_or(""));
    field(&e.result);
    field(e.request_id.as_deref().unwrap_or(""));
    field(e.body_digest.as_deref().unwrap_or(""));
    hex::encode(h.finalize())
}

/// Appends `entry` to the chain inside the caller's transaction; returns its sequence
/// number. Updating the head row first locks it, so concurrent appends queue.
pub async fn append(conn: &mut AnyConnection, entry: &AuditEntry) -> Result<i64> {
    let (seq, prev_hash): (i64, String) =
        sqlx::query_as("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *conn)
            .await?;
    let hash = entry_hash(&prev_hash, seq, entry);
    sqlx::query(
        "INSERT INTO audit_log (seq, time, actor, actor_token, source, action, resource_type, resource_id, result, \
         request_id, body_digest, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(seq)
    .bind(entry.time)
    .bind(&entry.actor)
    .bind(&entry.actor_token)
    .bind(&entry.source)
    .bind(&entry.action)
    .bind(&entry.resource_type)
    .bind(&entry.resource_id)
    .bind(&entry.result)
    .bind(&entry.request_id)
    .bind(&entry.body_digest)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1").bind(&hash).execute(&mut *conn).await?;
    Ok(seq)
}

impl Store {
    /// Audit entries in order, from `after_seq` on.
    pub async fn audit_entries(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditRow>> {
        Ok(sqlx::query_as(
            "SELECT seq, time, actor, actor_token, source, action, resource_type, resource_id, result, request_id, \
             body_digest, prev_hash, hash FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}

impl AuditRow {
    pub fn entry(&self) -> AuditEntry {
        AuditEntry {
            time: self.time,
            actor: self.actor.clone(),
            actor_token: self.actor_token.clone(),
            source: self.source.clone(),
            action: self.action.clone(),
            resource_type: self.resource_type.clone(),
            resource_id: self.resource_id.clone(),
            result: self.result.clone(),
            request_id: self.request_id.clone(),
            body_digest: self.body_digest.clone(),
        }
    }
}
