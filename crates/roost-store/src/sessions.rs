//! Login sessions: short-lived credentials of the CLI and the console.

use sqlx::{AnyConnection, FromRow};

use crate::users::UserRow;
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub token_hash: String,
    pub csrf_hash: String,
    pub source: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: Option<i64>,
}

pub async fn insert(conn: &mut AnyConnection, s: &SessionRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, token_hash, csrf_hash, source, created_at, expires_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&s.id)
    .bind(&s.user_id)
    .bind(&s.token_hash)
    .bind(&s.csrf_hash)
    .bind(&s.source)
    .bind(s.created_at)
    .bind(s.expires_at)
    .bind(s.last_seen_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Deletes a session; returns whether it existed.
pub async fn delete(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

impl Store {
    /// The session with this token hash and its user, if any (expired ones too: the
    /// caller decides, so it can say "expired").
    pub async fn session_by_hash(&self, token_hash: &str) -> Result<Option<(SessionRow, UserRow)>> {
        let row: Option<SessionWithUser> = sqlx::query_as(
            "SELECT s.id, s.user_id, s.token_hash, s.csrf_hash, s.source, s.created_at, s.expires_at, s.last_seen_at, \
                    u.name, u.email, u.display_name, u.role, u.password_hash, u.disabled, \
                    u.created_at AS user_created_at, u.updated_at AS user_updated_at \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(SessionWithUser::split))
    }

    /// Removes sessions that expired before `now`; returns how many.
    pub async fn delete_expired_sessions(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at < $1").bind(now).execute(self.pool()).await?;
        Ok(done.rows_affected())
    }
}

#[derive(FromRow)]
struct SessionWithUser {
    id: String,
    user_id: String,
    token_hash: String,
    csrf_hash: String,
    source: Option<String>,
    created_at: i64,
    expires_at: i64,
    last_seen_at: Option<i64>,
    name: String,
    email: Option<String>,
    display_name: Option<String>,
    role: String,
    password_hash: String,
    disabled: i64,
    user_created_at: i64,
    user_updated_at: i64,
}

impl SessionWithUser {
    fn split(self) -> (SessionRow, UserRow) {
        let user = UserRow {
            id: self.user_id.clone(),
            name: self.name,
            email: self.email,
            display_name: self.display_name,
            role: self.role,
            password_hash: self.password_hash,
            disabled: self.disabled,
            created_at: self.user_created_at,
            updated_at: self.user_updated_at,
        };
        let session = SessionRow {
            id: self.id,
            user_id: self.user_id,
            token_hash: self.token_hash,
            csrf_hash: self.csrf_hash,
            source: self.source,
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_seen_at: self.last_seen_at,
        };
        (session, user)
    }
}

/// Ends every session of a user, but `except` (the one changing its password keeps its
/// own); returns the ids ended.
pub async fn delete_for_user(conn: &mut AnyConnection, user_id: &str, except: Option<&str>) -> Result<Vec<String>> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1 AND id <> $2")
        .bind(user_id)
        .bind(except.unwrap_or(""))
        .fetch_all(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
        .bind(user_id)
        .bind(except.unwrap_or(""))
        .execute(conn)
        .await?;
    Ok(ids)
}
