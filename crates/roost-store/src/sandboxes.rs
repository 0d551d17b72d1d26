//! Sandboxes and the keys of the E2B-compatible API. Keys are stored as the SHA-256 of
//! their secret, like API tokens.

use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::list::{Bind, CursorValue, ListQuery, ProjectScope, bind_all, key_by_created_or_name};
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, FromRow)]
pub struct SandboxKeyRow {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub max_sandboxes: i64,
    pub creates_per_minute: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// When the key stops working (a key made with an expiring token ends with it).
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, FromRow)]
pub struct SandboxRow {
    pub id: String,
    pub project_id: String,
    pub key_id: Option<String>,
    pub instance_id: String,
    pub template: String,
    /// JSON object of strings.
    pub metadata: String,
    pub cpus_milli: i64,
    pub memory_bytes: i64,
    pub started_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    pub commands: i64,
}

/// A live sandbox with its instance's status and kind (none if the instance is gone).
#[derive(Debug, Clone, FromRow)]
pub struct LiveSandbox {
    #[sqlx(flatten)]
    pub row: SandboxRow,
    pub instance_status: Option<String>,
    pub instance_kind: Option<String>,
}

const KEY_COLUMNS: &str = "id, project_id, user_id, name, prefix, key_hash, max_sandboxes, creates_per_minute, \
                           created_at, revoked_at, expires_at";
const COLUMNS: &str = "id, project_id, key_id, instance_id, template, metadata, cpus_milli, memory_bytes, \
                       started_at, expires_at, ended_at, commands";

/// Renames a key or changes its limits.
pub async fn update_key(
    conn: &mut AnyConnection,
    id: &str,
    name: &str,
    max_sandboxes: i64,
    creates_per_minute: i64,
) -> Result<()> {
    sqlx::query("UPDATE sandbox_keys SET name = $2, max_sandboxes = $3, creates_per_minute = $4 WHERE id = $1")
        .bind(id)
        .bind(name)
        .bind(max_sandboxes)
        .bind(creates_per_minute)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn insert_key(conn: &mut AnyConnection, k: &SandboxKeyRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO sandbox_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    )))
    .bind(&k.id)
    .bind(&k.project_id)
    .bind(&k.user_id)
    .bind(&k.name)
    .bind(&k.prefix)
    .bind(&k.key_hash)
    .bind(k.max_sandboxes)
    .bind(k.creates_per_minute)
    .bind(k.created_at)
    .bind(k.revoked_at)
    .bind(k.expires_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Revokes a live key; false when there was none (unknown or revoked already).
pub async fn revoke_key(conn: &mut AnyConnection, id: &str, at: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE sandbox_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(at)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn insert(conn: &mut AnyConnection, s: &SandboxRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO sandboxes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    )))
    .bind(&s.id)
    .bind(&s.project_id)
    .bind(&s.key_id)
    .bind(&s.instance_id)
    .bind(&s.template)
    .bind(&s.metadata)
    .bind(s.cpus_milli)
    .bind(s.memory_bytes)
    .bind(s.started_at)
    .bind(s.expires_at)
    .bind(s.ended_at)
    .bind(s.commands)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn set_expiry(conn: &mut AnyConnection, id: &str, expires_at: i64) -> Result<()> {
    sqlx::query("UPDATE sandboxes SET expires_at = $1 WHERE id = $2 AND ended_at IS NULL")
        .bind(expires_at)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a sandbox ended; false when it had ended already.
pub async fn end(conn: &mut AnyConnection, id: &str, at: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE sandboxes SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
        .bind(at)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

impl Store {
    /// A live key by the hash of its secret.
    pub async fn sandbox_key_by_hash(&self, key_hash: &str) -> Result<Option<SandboxKeyRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM sandbox_keys WHERE key_hash = $1 AND revoked_at IS NULL"
        )))
        .bind(key_hash)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The live keys of the projects in `scope`.
    pub async fn list_sandbox_keys(&self, scope: &ProjectScope) -> Result<Vec<SandboxKeyRow>> {
        let mut sql = format!("SELECT {KEY_COLUMNS} FROM sandbox_keys WHERE revoked_at IS NULL");
        let mut binds = Vec::new();
        scope.apply(&mut sql, &mut binds, "project_id");
        sql.push_str(" ORDER BY created_at, id");
        Ok(bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?)
    }

    /// A page of the live keys in scope (optionally of one project).
    pub async fn sandbox_keys_page(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<SandboxKeyRow>, Option<String>)> {
        let (sql, binds) = crate::networks::scoped_sql(
            &format!("SELECT {KEY_COLUMNS} FROM sandbox_keys WHERE revoked_at IS NULL"),
            scope,
            project,
            "project_id",
        );
        self.page(&sql, binds, query, |r: &SandboxKeyRow| {
            key_by_created_or_name(query.sort.field, r.created_at, &r.name, &r.id)
        })
        .await
    }

    /// A live key by id.
    pub async fn sandbox_key(&self, id: &str) -> Result<Option<SandboxKeyRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM sandbox_keys WHERE id = $1 AND revoked_at IS NULL"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// How many sandboxes a key has alive (its concurrency limit).
    pub async fn live_sandbox_count_of_key(&self, key_id: &str) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sandboxes WHERE ended_at IS NULL AND key_id = $1")
            .bind(key_id)
            .fetch_one(self.pool())
            .await?;
        Ok(n)
    }

    pub async fn sandbox(&self, id: &str) -> Result<Option<SandboxRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM sandboxes WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Live sandboxes of the projects in `scope`, oldest first, with their instance's
    /// status and kind (one query for a listing).
    pub async fn live_sandboxes(&self, scope: &ProjectScope) -> Result<Vec<LiveSandbox>> {
        let columns: Vec<String> = COLUMNS.split(',').map(|c| format!("s.{}", c.trim())).collect();
        let mut sql = format!(
            "SELECT {}, i.status AS instance_status, i.kind AS instance_kind FROM sandboxes s \
             LEFT JOIN instances i ON i.id = s.instance_id WHERE s.ended_at IS NULL",
            columns.join(", ")
        );
        let mut binds: Vec<Bind> = Vec::new();
        scope.apply(&mut sql, &mut binds, "s.project_id");
        sql.push_str(" ORDER BY s.started_at, s.id");
        Ok(bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?)
    }

    /// A page of the live sandboxes in scope (optionally of one project), by start time
    /// (`created_at`; `name` is the template).
    pub async fn live_sandboxes_page(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<LiveSandbox>, Option<String>)> {
        let columns: Vec<String> = COLUMNS.split(',').map(|c| format!("s.{}", c.trim())).collect();
        let select = format!(
            "SELECT {}, i.status AS instance_status, i.kind AS instance_kind, s.started_at AS created_at, \
             s.template AS name FROM sandboxes s LEFT JOIN instances i ON i.id = s.instance_id WHERE s.ended_at IS NULL",
            columns.join(", ")
        );
        let (sql, binds) = crate::networks::scoped_sql(&select, scope, project, "s.project_id");
        self.page(&sql, binds, query, |r: &LiveSandbox| match query.sort.field {
            "name" => (CursorValue::Text(r.row.template.clone()), r.row.id.clone()),
            _ => (CursorValue::Int(r.row.started_at), r.row.id.clone()),
        })
        .await
    }

    /// Live sandboxes whose time ran out by `now`.
    pub async fn expired_sandboxes(&self, now: i64) -> Result<Vec<SandboxRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM sandboxes WHERE ended_at IS NULL AND expires_at <= $1"
        )))
        .bind(now)
        .fetch_all(self.pool())
        .await?)
    }

    /// Sandboxes in scope (optionally of a key) that ran at some point since `since`
    /// (for usage).
    pub async fn sandboxes_since(
        &self,
        scope: &ProjectScope,
        key_id: Option<&str>,
        since: i64,
    ) -> Result<Vec<SandboxRow>> {
        let mut sql = format!("SELECT {COLUMNS} FROM sandboxes WHERE (ended_at IS NULL OR ended_at >= $1)");
        let mut binds = vec![Bind::Int(since)];
        scope.apply(&mut sql, &mut binds, "project_id");
        if let Some(k) = key_id {
            binds.push(Bind::Text(k.to_string()));
            sql.push_str(&format!(" AND key_id = ${}", binds.len()));
        }
        Ok(bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?)
    }

    /// Counts a command run in a sandbox.
    pub async fn count_sandbox_command(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE sandboxes SET commands = commands + 1 WHERE id = $1").bind(id).execute(self.pool()).await?;
        Ok(())
    }
}
