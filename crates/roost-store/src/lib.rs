//! Persistence for Roost: one [`Store`] over SQLite (embedded default) or PostgreSQL,
//! with repositories named by resource. Queries are written once with `$N` placeholders
//! and run through sqlx's `Any` driver on either backend.

pub mod audit;
pub mod buckets;
pub mod counted;
pub mod events;
pub mod idempotency;
pub mod images;
pub mod instances;
pub mod list;
pub mod meta;
pub mod networks;
pub mod operations;
pub mod projects;
pub mod sandbox_templates;
pub mod sandboxes;
pub mod sessions;
pub mod ssh_keys;
pub mod tasks;
pub mod tokens;
pub mod users;
pub mod volumes;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use counted::CountedPool;
pub use list::{Cursor, ListQuery, SortKey};
/// Re-exported so services can name connection types without their own sqlx dependency.
pub use sqlx;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write (a name is taken).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Conflict`].
    pub fn from_write(err: sqlx::Error) -> StoreError {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(db.message().to_string()),
            _ => StoreError::Db(err),
        }
    }

    /// Errors that mean the store is unreachable rather than that the request was bad.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer; taking this lock before a write transaction turns
    /// SQLITE_BUSY retries into a fair queue. PostgreSQL needs none.
    write_lock: Option<Arc<Mutex<()>>>,
    queries: counted::Counter,
    /// What it was opened with (a PostgreSQL listener needs a connection of its own).
    url: Arc<str>,
}

/// A write transaction. Commit it; dropping it rolls back.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    _guard: Option<OwnedMutexGuard<()>>,
    queries: counted::Counter,
}

impl WriteTx {
    /// The transaction's connection, for one statement (each call counts as one).
    pub fn conn(&mut self) -> &mut AnyConnection {
        self.queries.bump();
        &mut self.tx
    }

    /// Locks a row of `table` (one of ours, never user input) for the rest of the
    /// transaction, so a check made now (an `If-Match`) still holds at commit: a no-op
    /// update takes the row lock on PostgreSQL, and the database's write lock on SQLite,
    /// which writers outside [`Store::write`] wait for too. Returns whether the row exists.
    pub async fn lock_row(&mut self, table: &'static str, id: &str) -> Result<bool> {
        let done = sqlx::query(AssertSqlSafe(format!("UPDATE {table} SET id = id WHERE id = $1")))
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Opens the embedded SQLite store at `path` (created when missing).
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Store::open(&url).await
    }

    /// Opens `sqlite://…` or `postgres://…` and runs the migrations.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Db(sqlx::Error::Configuration(
                format!("unsupported database URL scheme in '{}'", redact_url(url)).into(),
            )));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool_options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let pool = match backend {
            Backend::Sqlite => {
                // A local file never goes stale: skipping the ping before each use saves
                // a round trip to the connection's worker thread per query.
                pool_options
                    .max_connections(8)
                    .test_before_acquire(false)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // WAL lets readers run beside the writer; NORMAL sync is durable
                            // across process crashes (a power loss may lose the last commits).
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => pool_options.max_connections(16).connect_with(options).await?,
        };
        let write_lock = (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(())));
        let store = Store { pool, backend, write_lock, queries: Default::default(), url: url.into() };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL the store was opened with (it may hold a password: never log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The pool, as an executor that counts the statements it runs.
    pub fn pool(&self) -> CountedPool<'_> {
        CountedPool::new(&self.pool, &self.queries)
    }

    /// Statements run so far by this store (and its clones): on the pool, plus one per
    /// [`WriteTx::conn`] use. Exposed as `roost_store_queries_total`; tests compare it
    /// before and after a request to show that a listing costs the same whatever its size.
    pub fn queries_executed(&self) -> u64 {
        self.queries.get()
    }

    /// Starts a write transaction (queued behind other writers on SQLite).
    pub async fn write(&self) -> Result<WriteTx> {
        let guard = match &self.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let tx = self.pool.begin().await?;
        self.queries.bump();
        Ok(WriteTx { tx, _guard: guard, queries: self.queries.clone() })
    }

    /// Readiness: the store answers and every migration this build knows is applied.
    pub async fn check_ready(&self) -> Result<()> {
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.pool)
            .await?;
        let known = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.iter().count(),
            Backend::Postgres => POSTGRES_MIGRATIONS.iter().count(),
        };
        if (applied as usize) < known {
            return Err(StoreError::Db(sqlx::Error::Configuration(
                format!("{applied} of {known} migrations applied").into(),
            )));
        }
        Ok(())
    }

    /// A consistent copy of a SQLite store, taken while it serves (`VACUUM INTO`).
    pub async fn backup_sqlite_to(&self, target: &Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Db(sqlx::Error::Configuration(
                "backups are for the embedded SQLite store; use pg_dump for PostgreSQL".into(),
            )));
        }
        let path = target.to_string_lossy().replace('\'', "''");
        sqlx::query(AssertSqlSafe(format!("VACUUM INTO '{path}'"))).execute(&self.pool).await?;
        Ok(())
    }

    /// Waits for in-flight queries and closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A bare pool without migrations, for administration (creating databases in tests).
pub async fn raw_pool(url: &str) -> Result<AnyPool> {
    sqlx::any::install_default_drivers();
    Ok(AnyPoolOptions::new().max_connections(2).connect(url).await?)
}

/// The URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Milliseconds since the epoch, the store's time unit.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn to_time(ms: i64) -> roost_api::Timestamp {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub fn to_ms(t: roost_api::Timestamp) -> i64 {
    t.timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(redact_url("postgres://roost:s3cret@db:5432/roost"), "postgres://roost:***@db:5432/roost");
        assert_eq!(redact_url("postgres://roost@db/roost"), "postgres://roost@db/roost");
        assert_eq!(redact_url("sqlite:///var/lib/roost/roost.db"), "sqlite:///var/lib/roost/roost.db");
    }
}
