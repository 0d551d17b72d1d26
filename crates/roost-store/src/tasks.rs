//! Background tasks: each task's lease (which server runs it) and the status of its last
//! activation, so every server can show it.

use sqlx::{AnyConnection, FromRow};

use crate::{Result, Store};

#[derive(Debug, Clone, FromRow)]
pub struct TaskRow {
    pub name: String,
    pub description: String,
    pub period_ms: i64,
    pub holder: Option<String>,
    pub lease_expires_at: i64,
    pub wake_requested_at: Option<i64>,
    pub runs: i64,
    pub last_server: Option<String>,
    pub last_started_at: Option<i64>,
    pub last_elapsed_ms: Option<i64>,
    /// 1: ok (`last_details` is its JSON summary), 0: failed (`last_details` is the error).
    pub last_ok: Option<i64>,
    pub last_details: Option<String>,
    pub next_run_at: Option<i64>,
}

const COLUMNS: &str = "name, description, period_ms, holder, lease_expires_at, wake_requested_at, runs, \
                       last_server, last_started_at, last_elapsed_ms, last_ok, last_details, next_run_at";

/// What a task's lease says once taken or renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The last run asked for (possibly of another server), in ms.
    pub wake_requested_at: Option<i64>,
}

/// A finished activation, as recorded.
#[derive(Debug, Clone)]
pub struct TaskRunRecord<'a> {
    pub server: &'a str,
    pub started_at: i64,
    pub elapsed_ms: i64,
    pub ok: bool,
    /// The JSON summary, or the error message.
    pub details: &'a str,
    pub next_run_at: i64,
    /// The lease's new end, applied only while `server` still holds it.
    pub lease_until: i64,
}

#[derive(FromRow)]
struct LeaseAnswer {
    holder: Option<String>,
    wake_requested_at: Option<i64>,
}

/// Asks for a run of a task, for whichever server holds its lease (it sees the request
/// when it next renews the lease); false when no server has taken a task of that name.
pub async fn request_run(conn: &mut AnyConnection, name: &str, at: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE background_tasks SET wake_requested_at = $2 WHERE name = $1")
        .bind(name)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

impl Store {
    /// Takes the lease of a task for `server` until `until` when it is free, expired or
    /// already `server`'s (a renewal), in one conditional upsert; `None` while another
    /// server holds it. The row's description and period are this server's.
    pub async fn acquire_task_lease(
        &self,
        name: &str,
        description: &str,
        period_ms: i64,
        server: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<Held>> {
        let mut tx = self.write().await?;
        let answer: Option<LeaseAnswer> = sqlx::query_as(
            "INSERT INTO background_tasks (name, description, period_ms, holder, lease_expires_at, runs) \
             VALUES ($1, $2, $3, $4, $5, 0) \
             ON CONFLICT (name) DO UPDATE SET description = excluded.description, period_ms = excluded.period_ms, \
                 holder = excluded.holder, lease_expires_at = excluded.lease_expires_at \
             WHERE background_tasks.holder IS NULL OR background_tasks.holder = excluded.holder \
                 OR background_tasks.lease_expires_at <= $6 \
             RETURNING holder, wake_requested_at",
        )
        .bind(name)
        .bind(description)
        .bind(period_ms)
        .bind(server)
        .bind(until)
        .bind(now)
        .fetch_optional(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(answer.map(|a| Held { wake_requested_at: a.wake_requested_at }))
    }

    /// Records a finished activation and renews `server`'s lease with it; `None` when the
    /// lease is no longer `server`'s (the status is recorded all the same).
    pub async fn record_task_run(&self, name: &str, run: &TaskRunRecord<'_>) -> Result<Option<Held>> {
        let mut tx = self.write().await?;
        let answer: Option<LeaseAnswer> = sqlx::query_as(
            "UPDATE background_tasks SET runs = runs + 1, last_server = $2, last_started_at = $3, \
                 last_elapsed_ms = $4, last_ok = $5, last_details = $6, next_run_at = $7, \
                 lease_expires_at = CASE WHEN holder = $2 THEN $8 ELSE lease_expires_at END \
             WHERE name = $1 RETURNING holder, wake_requested_at",
        )
        .bind(name)
        .bind(run.server)
        .bind(run.started_at)
        .bind(run.elapsed_ms)
        .bind(run.ok as i64)
        .bind(run.details)
        .bind(run.next_run_at)
        .bind(run.lease_until)
        .fetch_optional(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(answer
            .filter(|a| a.holder.as_deref() == Some(run.server))
            .map(|a| Held { wake_requested_at: a.wake_requested_at }))
    }

    /// Gives up `server`'s lease of a task (at shutdown), so another server takes it at
    /// once instead of when it expires.
    pub async fn release_task_lease(&self, name: &str, server: &str) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE background_tasks SET holder = NULL, lease_expires_at = 0 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(server)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// Gives up every lease `server` holds: that process is gone (the next process on its
    /// data directory says so at start), so its tasks need not wait for the leases to
    /// expire.
    pub async fn release_task_leases_of(&self, server: &str) -> Result<u64> {
        let mut tx = self.write().await?;
        let done = sqlx::query("UPDATE background_tasks SET holder = NULL, lease_expires_at = 0 WHERE holder = $1")
            .bind(server)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Every task any server has run, by name.
    pub async fn tasks(&self) -> Result<Vec<TaskRow>> {
        let sql = format!("SELECT {COLUMNS} FROM background_tasks ORDER BY name");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?)
    }

    pub async fn task(&self, name: &str) -> Result<Option<TaskRow>> {
        let sql = format!("SELECT {COLUMNS} FROM background_tasks WHERE name = $1");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(self.pool()).await?)
    }
}
