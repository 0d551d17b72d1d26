//! The durable event log: appended in the transaction of the change that raised the
//! event, read in sequence order by every server's stream of events.

use sqlx::{AnyConnection, FromRow};

use crate::{Backend, Result, Store};

/// The PostgreSQL channel a commit with events notifies (`NOTIFY`, delivered at commit),
/// so every server reads the new rows at once.
pub const NOTIFY_CHANNEL: &str = "roost_events";

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub time: i64,
    pub kind: String,
    pub resource_type: String,
    pub resource_id: String,
    /// `admins`, `user:<id>` or `project:<id>`.
    pub audience: String,
    /// The resource as the API shows it, JSON.
    pub data: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub seq: i64,
    pub time: i64,
    pub kind: String,
    pub resource_type: String,
    pub resource_id: String,
    pub audience: String,
    pub data: Option<String>,
}

/// Appends events inside the caller's transaction and returns their sequence numbers.
/// The head row is updated first: it stays locked until the commit, so a reader that
/// has seen sequence N never later finds a smaller one appear.
pub async fn append(conn: &mut AnyConnection, backend: Backend, events: &[NewEvent]) -> Result<Vec<i64>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let (last,): (i64,) = sqlx::query_as("UPDATE event_head SET seq = seq + $1 WHERE id = 1 RETURNING seq")
        .bind(events.len() as i64)
        .fetch_one(&mut *conn)
        .await?;
    let first = last - events.len() as i64 + 1;
    let mut seqs = Vec::with_capacity(events.len());
    for (n, e) in events.iter().enumerate() {
        let seq = first + n as i64;
        sqlx::query(
            "INSERT INTO event_log (seq, time, kind, resource_type, resource_id, audience, data) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(seq)
        .bind(e.time)
        .bind(&e.kind)
        .bind(&e.resource_type)
        .bind(&e.resource_id)
        .bind(&e.audience)
        .bind(&e.data)
        .execute(&mut *conn)
        .await?;
        seqs.push(seq);
    }
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)").bind(NOTIFY_CHANNEL).bind(last.to_string()).execute(&mut *conn).await?;
    }
    Ok(seqs)
}

impl Store {
    /// Events after `seq`, oldest first.
    pub async fn events_after(&self, seq: i64, limit: u32) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT seq, time, kind, resource_type, resource_id, audience, data FROM event_log \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?)
    }

    /// The sequence number of the newest event (0 before the first).
    pub async fn last_event_seq(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT seq FROM event_head WHERE id = 1").fetch_one(self.pool()).await?)
    }

    /// The oldest sequence number still in the log, if any.
    pub async fn first_event_seq(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(seq) FROM event_log").fetch_one(self.pool()).await?)
    }

    /// Removes events older than `before` (milliseconds), keeping at least the newest
    /// `keep`; returns how many went.
    pub async fn prune_events(&self, before: i64, keep: i64) -> Result<u64> {
        let mut tx = self.write().await?;
        let head: i64 = sqlx::query_scalar("SELECT seq FROM event_head WHERE id = 1").fetch_one(tx.conn()).await?;
        let done = sqlx::query("DELETE FROM event_log WHERE time < $1 AND seq <= $2")
            .bind(before)
            .bind(head - keep)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
