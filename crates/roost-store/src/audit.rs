//! The audit log: append-only and hash-chained, written in the same transaction as the
//! change it records.

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

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

/// Filters of an audit listing; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// Exact action, or a prefix ending in `.` / `*` (`token.` or `token*`).
    pub action: Option<String>,
    /// A resource id, or a resource type.
    pub resource: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

const AUDIT_COLUMNS: &str = "seq, time, actor, actor_token, source, action, resource_type, resource_id, result, \
                             request_id, body_digest, prev_hash, hash";

/// A recorded cut of the chain: entries up to `last_seq` were archived to `path`.
#[derive(Debug, Clone, FromRow)]
pub struct ArchiveRow {
    pub id: String,
    pub created_at: i64,
    pub path: String,
    pub first_seq: i64,
    pub last_seq: i64,
    pub head_hash: String,
}

/// Records an archive and removes the archived entries, in the caller's transaction.
pub async fn archive(conn: &mut AnyConnection, row: &ArchiveRow) -> Result<u64> {
    sqlx::query(
        "INSERT INTO audit_archives (id, created_at, path, first_seq, last_seq, head_hash) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&row.id)
    .bind(row.created_at)
    .bind(&row.path)
    .bind(row.first_seq)
    .bind(row.last_seq)
    .bind(&row.head_hash)
    .execute(&mut *conn)
    .await?;
    let done = sqlx::query("DELETE FROM audit_log WHERE seq <= $1").bind(row.last_seq).execute(conn).await?;
    Ok(done.rows_affected())
}

impl Store {
    /// A page of entries, newest first, before `before_seq` when given.
    pub async fn list_audit(&self, filter: &AuditFilter, before_seq: Option<i64>, limit: u32) -> Result<Vec<AuditRow>> {
        use crate::list::{Bind, bind_all};
        let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1");
        let mut binds: Vec<Bind> = Vec::new();
        let mut push = |sql: &mut String, clause: &str, bind: Bind| {
            binds.push(bind);
            sql.push_str(&clause.replace("$?", &format!("${}", binds.len())));
        };
        if let Some(actor) = &filter.actor {
            push(&mut sql, " AND (actor = $? OR actor_token = $?)", Bind::Text(actor.clone()));
        }
        if let Some(action) = &filter.action {
            match action.strip_suffix('*') {
                Some(prefix) => push(
                    &mut sql,
                    " AND action LIKE $? ESCAPE '\\'",
                    Bind::Text(format!("{}%", crate::list::glob_to_like(prefix))),
                ),
                None if action.ends_with('.') => push(
                    &mut sql,
                    " AND action LIKE $? ESCAPE '\\'",
                    Bind::Text(format!("{}%", crate::list::glob_to_like(action))),
                ),
                None => push(&mut sql, " AND action = $?", Bind::Text(action.clone())),
            }
        }
        if let Some(resource) = &filter.resource {
            push(&mut sql, " AND (resource_id = $? OR resource_type = $?)", Bind::Text(resource.clone()));
        }
        if let Some(since) = filter.since {
            push(&mut sql, " AND time >= $?", Bind::Int(since));
        }
        if let Some(until) = filter.until {
            push(&mut sql, " AND time < $?", Bind::Int(until));
        }
        if let Some(before) = before_seq {
            push(&mut sql, " AND seq < $?", Bind::Int(before));
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", limit));
        Ok(bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?)
    }

    /// The latest archive cut, from which the chain in the store continues.
    pub async fn latest_audit_archive(&self) -> Result<Option<ArchiveRow>> {
        Ok(sqlx::query_as(
            "SELECT id, created_at, path, first_seq, last_seq, head_hash FROM audit_archives ORDER BY last_seq DESC LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?)
    }

    /// The chain head as recorded (sequence and hash of the last entry appended).
    pub async fn audit_head(&self) -> Result<(i64, String)> {
        Ok(sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(self.pool()).await?)
    }
}
