//! Counting the statements the store runs, so a test (and the `/metrics` scrape) can see
//! that a listing costs a bounded number of queries whatever its length.
//!
//! [`Store::pool`](crate::Store::pool) hands out [`CountedPool`], an executor over the
//! pool that counts every statement it runs; write transactions count each statement as
//! they hand out their connection ([`WriteTx::conn`](crate::WriteTx::conn)). Statements
//! run on a connection taken with [`CountedPool::acquire`] are counted once, at the
//! acquisition: keep such connections for writes and one-off work, never for a loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::any::{AnyQueryResult, AnyRow, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Database, Either, Execute, Executor, SqlStr, Transaction};

tokio::task_local! {
    /// The statements of the work running in [`count_statements`].
    static SCOPE: Arc<AtomicU64>;
}

/// Runs `work` and also counts the statements it runs on its own task (not in tasks it
/// spawns): what one request costs, exactly, whatever else the server does meanwhile.
pub async fn count_statements<F: std::future::Future>(work: F) -> (F::Output, u64) {
    let counter = Arc::new(AtomicU64::new(0));
    let out = SCOPE.scope(counter.clone(), work).await;
    (out, counter.load(Ordering::Relaxed))
}

/// Runs `work` without counting its statements in the enclosing [`count_statements`]
/// (they still count in [`Store::queries_executed`](crate::Store::queries_executed)).
pub async fn apart<F: std::future::Future>(work: F) -> F::Output {
    count_statements(work).await.0
}

/// The statement counter shared by a store's clones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counter(Arc<AtomicU64>);

impl Counter {
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
        let _ = SCOPE.try_with(|scope| scope.fetch_add(1, Ordering::Relaxed));
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The store's pool as an executor that counts the statements it runs.
#[derive(Debug, Clone, Copy)]
pub struct CountedPool<'a> {
    pool: &'a AnyPool,
    counter: &'a Counter,
}

impl<'a> CountedPool<'a> {
    pub(crate) fn new(pool: &'a AnyPool, counter: &'a Counter) -> Self {
        CountedPool { pool, counter }
    }

    /// A connection of the pool (counted as one statement).
    pub async fn acquire(self) -> Result<PoolConnection<Any>, sqlx::Error> {
        self.counter.bump();
        self.pool.acquire().await
    }

    /// A transaction on a connection of the pool (counted as one statement).
    pub async fn begin(self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        self.counter.bump();
        self.pool.begin().await
    }

    /// The pool itself, uncounted (migrations, administration).
    pub fn inner(self) -> &'a AnyPool {
        self.pool
    }
}

impl<'a> Executor<'a> for CountedPool<'a> {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'a: 'e,
        E: 'q + Execute<'q, Any>,
    {
        self.counter.bump();
        self.pool.fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'a: 'e,
        E: 'q + Execute<'q, Any>,
    {
        self.counter.bump();
        self.pool.fetch_optional(query)
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<<Any as Database>::Statement, sqlx::Error>>
    where
        'a: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Any>, sqlx::Error>>
    where
        'a: 'e,
    {
        self.pool.describe(sql)
    }
}
