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
