//! Users: people who log in.

use roost_api::auth::{Role, User};
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::{Result, Store, StoreError, to_time};

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub role: String,
    pub password_hash: String,
    pub disabled: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl UserRow {
    pub fn role(&self) -> Role {
        // Unknown roles (a newer server's) degrade to the least privilege.
        Role::parse(&self.role).unwrap_or(Role::Viewer)
    }

    pub fn to_api(&self) -> User {
        User {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role(),
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            created_at: to_time(self.created_at),
        }
    }
}

const COLUMNS: &str = "id, name, email, display_name, role, password_hash, disabled, created_at, updated_at";

pub async fn insert(conn: &mut AnyConnection, user: &UserRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, name, email, display_name, role, password_hash, disabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(&user.email)
    .bind(&user.display_name)
    .bind(&user.role)
    .bind(&user.password_hash)
    .bind(user.disabled)
    .bind(user.created_at)
    .bind(user.updated_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

impl Store {
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE name = $1")))
            .bind(name)
            .fetch_optional(self.pool())
            .await?)
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    pub async fn user_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(self.pool()).await?)
    }
}

/// The fields a user list may be sorted by.
pub const SORT_KEYS: &[crate::SortKey] =
    &[crate::SortKey { field: "created_at", text: false }, crate::SortKey { field: "name", text: true }];

/// Changes the profile fields (`None` leaves a field as it is; `Some(None)` clears it).
pub async fn update_profile(
    conn: &mut AnyConnection,
    id: &str,
    display_name: Option<Option<&str>>,
    email: Option<Option<&str>>,
    role: Option<&str>,
    now: i64,
) -> Result<bool> {
    let current: Option<UserRow> = sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE id = $1")))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(current) = current else { return Ok(false) };
    let display_name = display_name.map(|d| d.map(str::to_string)).unwrap_or(current.display_name);
    let email = email.map(|e| e.map(str::to_string)).unwrap_or(current.email);
    let role = role.map(str::to_string).unwrap_or(current.role);
    sqlx::query("UPDATE users SET display_name = $2, email = $3, role = $4, updated_at = $5 WHERE id = $1")
        .bind(id)
        .bind(display_name)
        .bind(email)
        .bind(role)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(true)
}

pub async fn set_disabled(conn: &mut AnyConnection, id: &str, disabled: bool, now: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE users SET disabled = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(disabled as i64)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn set_password(conn: &mut AnyConnection, id: &str, password_hash: &str, now: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(password_hash)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes a user; sessions, tokens and memberships go with it (foreign keys cascade).
pub async fn delete(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// How many enabled admins there are (the last one may not be removed or demoted).
pub async fn enabled_admins(conn: &mut AnyConnection) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0").fetch_one(conn).await?)
}

impl Store {
    /// A user by id or by name.
    pub async fn user_by_key(&self, key: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE id = $1 OR name = $1")))
            .bind(key)
            .fetch_optional(self.pool())
            .await?)
    }

    pub async fn list_users(&self, query: &crate::ListQuery) -> Result<(Vec<UserRow>, Option<String>)> {
        use crate::list::{Bind, CursorValue, bind_all};
        let mut sql = format!("SELECT {COLUMNS} FROM users WHERE 1 = 1");
        let mut binds: Vec<Bind> = Vec::new();
        query.apply(&mut sql, &mut binds)?;
        let rows: Vec<UserRow> =
            bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?;
        Ok(query.finish(rows, |row| {
            let value = match query.sort.field {
                "name" => CursorValue::Text(row.name.clone()),
                _ => CursorValue::Int(row.created_at),
            };
            (value, row.id.clone())
        }))
    }
}

/// A user read inside a transaction (to check a precondition against what is updated).
pub async fn get_in(conn: &mut AnyConnection, id: &str) -> Result<Option<UserRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}
