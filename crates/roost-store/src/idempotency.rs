//! Idempotency keys: the first request with a key claims it; its response is stored and
//! replayed to retries of the same request.

use sqlx::FromRow;

use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, FromRow)]
pub struct IdempotencyRow {
    pub request_hash: String,
    /// `None` while the first request is still running.
    pub status: Option<i64>,
    pub body: Option<String>,
}

/// What claiming a key found.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The key is ours: run the request, then `complete` (or `release` on failure).
    Claimed,
    /// Someone used it before.
    Existing(IdempotencyRow),
}

impl Store {
    pub async fn claim_idempotency_key(
        &self,
        credential: &str,
        key: &str,
        request_hash: &str,
        now: i64,
    ) -> Result<Claim> {
        let mut tx = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (credential, key, request_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(credential)
        .bind(key)
        .bind(request_hash)
        .bind(now)
        .execute(tx.conn())
        .await
        .map_err(StoreError::from_write);
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                Ok(Claim::Claimed)
            }
            Err(StoreError::Conflict(_)) => {
                drop(tx);
                let row: IdempotencyRow = sqlx::query_as(
                    "SELECT request_hash, status, body FROM idempotency_keys WHERE credential = $1 AND key = $2",
                )
                .bind(credential)
                .bind(key)
                .fetch_one(self.pool())
                .await?;
                Ok(Claim::Existing(row))
            }
            Err(e) => Err(e),
        }
    }

    pub async fn complete_idempotency_key(&self, credential: &str, key: &str, status: i64, body: &str) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE idempotency_keys SET status = $3, body = $4 WHERE credential = $1 AND key = $2")
            .bind(credential)
            .bind(key)
            .bind(status)
            .bind(body)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// Frees a key whose request failed, so a retry runs again.
    pub async fn release_idempotency_key(&self, credential: &str, key: &str) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE credential = $1 AND key = $2")
            .bind(credential)
            .bind(key)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// Forgets keys older than `before`.
    pub async fn prune_idempotency_keys(&self, before: i64) -> Result<u64> {
        let mut tx = self.write().await?;
        let done =
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1").bind(before).execute(tx.conn()).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
