//! API tokens, stored only as the SHA-256 of their secret.

use roost_api::tokens::{Scope, Token};
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::list::{Bind, CursorValue, ListQuery, SortKey, bind_all};
use crate::users::UserRow;
use crate::{Result, Store, StoreError, to_time};

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub token_hash: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// When set, the token acts only in this project.
    pub project_id: Option<String>,
}

/// The fields a token list may be sorted by.
pub const SORT_KEYS: &[SortKey] =
    &[SortKey { field: "created_at", text: false }, SortKey { field: "name", text: true }];

impl TokenRow {
    pub fn scope(&self) -> Scope {
        Scope::parse(&self.scope).unwrap_or(Scope::Read)
    }

    pub fn to_api(&self) -> Token {
        Token {
            id: self.id.clone(),
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            scope: self.scope(),
            user_id: self.user_id.clone(),
            created_at: to_time(self.created_at),
            expires_at: self.expires_at.map(to_time),
            last_used_at: self.last_used_at.map(to_time),
            project_id: self.project_id.clone(),
        }
    }

    fn cursor_key(&self, sort: SortKey) -> (CursorValue, String) {
        let value = match sort.field {
            "name" => CursorValue::Text(self.name.clone()),
            _ => CursorValue::Int(self.created_at),
        };
        (value, self.id.clone())
    }
}

const COLUMNS: &str = "id, user_id, name, prefix, token_hash, scope, created_at, expires_at, last_used_at, project_id";

pub async fn insert(conn: &mut AnyConnection, t: &TokenRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_tokens (id, user_id, name, prefix, token_hash, scope, created_at, expires_at, last_used_at, \
         project_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&t.id)
    .bind(&t.user_id)
    .bind(&t.name)
    .bind(&t.prefix)
    .bind(&t.token_hash)
    .bind(&t.scope)
    .bind(t.created_at)
    .bind(t.expires_at)
    .bind(t.last_used_at)
    .bind(&t.project_id)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Deletes the user's token; returns whether it existed.
pub async fn rename(conn: &mut AnyConnection, user_id: &str, id: &str, name: &str) -> Result<()> {
    sqlx::query("UPDATE api_tokens SET name = $3 WHERE user_id = $1 AND id = $2")
        .bind(user_id)
        .bind(id)
        .bind(name)
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, user_id: &str, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM api_tokens WHERE user_id = $1 AND id = $2")
        .bind(user_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

impl Store {
    /// One page of a user's tokens. The owner is part of the query: nobody else's rows
    /// can come back.
    pub async fn list_tokens(&self, user_id: &str, query: &ListQuery) -> Result<(Vec<TokenRow>, Option<String>)> {
        let mut sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1");
        let mut binds = vec![Bind::Text(user_id.to_string())];
        query.apply(&mut sql, &mut binds)?;
        let rows: Vec<TokenRow> =
            bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?;
        Ok(query.finish(rows, |row| row.cursor_key(query.sort)))
    }

    /// A user's token by id or by name.
    pub async fn token_by_key(&self, user_id: &str, key: &str) -> Result<Option<TokenRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1 AND (id = $2 OR name = $2)"
        )))
        .bind(user_id)
        .bind(key)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The token with this secret hash and its owner.
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<(TokenRow, UserRow)>> {
        let row: Option<TokenWithUser> = sqlx::query_as(
            "SELECT t.id, t.user_id, t.name, t.prefix, t.token_hash, t.scope, t.created_at, t.expires_at, t.last_used_at, \
                    t.project_id, u.name AS user_name, u.email, u.display_name, u.role, u.password_hash, u.disabled, \
                    u.created_at AS user_created_at, u.updated_at AS user_updated_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(TokenWithUser::split))
    }

    /// Records use; callers debounce (at most once a minute per token).
    pub async fn touch_token(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[derive(FromRow)]
struct TokenWithUser {
    id: String,
    user_id: String,
    name: String,
    prefix: String,
    token_hash: String,
    scope: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    project_id: Option<String>,
    user_name: String,
    email: Option<String>,
    display_name: Option<String>,
    role: String,
    password_hash: String,
    disabled: i64,
    user_created_at: i64,
    user_updated_at: i64,
}

impl TokenWithUser {
    fn split(self) -> (TokenRow, UserRow) {
        let user = UserRow {
            id: self.user_id.clone(),
            name: self.user_name,
            email: self.email,
            display_name: self.display_name,
            role: self.role,
            password_hash: self.password_hash,
            disabled: self.disabled,
            created_at: self.user_created_at,
            updated_at: self.user_updated_at,
        };
        let token = TokenRow {
            id: self.id,
            user_id: self.user_id,
            name: self.name,
            prefix: self.prefix,
            token_hash: self.token_hash,
            scope: self.scope,
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            project_id: self.project_id,
        };
        (token, user)
    }
}
