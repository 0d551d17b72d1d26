//! SSH public keys (a user's own), and the first-boot data of instances.

use roost_api::ssh_keys::SshKey;
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::list::{Bind, CursorValue, ListQuery, SortKey, bind_all};
use crate::{Result, Store, StoreError, to_time};

#[derive(Debug, Clone, FromRow)]
pub struct SshKeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
    pub created_at: i64,
    /// The one project whose instances may get it (made with a project-restricted token).
    pub project_id: Option<String>,
    /// After this it is no longer put into new instances (made with an expiring token).
    pub expires_at: Option<i64>,
}

pub const SORT_KEYS: &[SortKey] =
    &[SortKey { field: "created_at", text: false }, SortKey { field: "name", text: true }];

impl SshKeyRow {
    pub fn to_api(&self) -> SshKey {
        SshKey {
            id: self.id.clone(),
            name: self.name.clone(),
            public_key: self.public_key.clone(),
            fingerprint: self.fingerprint.clone(),
            user_id: self.user_id.clone(),
            created_at: to_time(self.created_at),
            project_id: self.project_id.clone(),
            expires_at: self.expires_at.map(to_time),
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

const COLUMNS: &str = "id, user_id, name, public_key, fingerprint, created_at, project_id, expires_at";

pub async fn insert(conn: &mut AnyConnection, k: &SshKeyRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!("INSERT INTO ssh_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")))
        .bind(&k.id)
        .bind(&k.user_id)
        .bind(&k.name)
        .bind(&k.public_key)
        .bind(&k.fingerprint)
        .bind(k.created_at)
        .bind(&k.project_id)
        .bind(k.expires_at)
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(())
}

/// Deletes the user's key; returns whether it existed.
pub async fn rename(conn: &mut AnyConnection, user_id: &str, id: &str, name: &str) -> Result<()> {
    sqlx::query("UPDATE ssh_keys SET name = $3 WHERE user_id = $1 AND id = $2")
        .bind(user_id)
        .bind(id)
        .bind(name)
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, user_id: &str, id: &str) -> Result<bool> {
    let done =
        sqlx::query("DELETE FROM ssh_keys WHERE user_id = $1 AND id = $2").bind(user_id).bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// What an instance gets at first boot: public key lines and a script.
#[derive(Debug, Clone, FromRow)]
pub struct FirstBootRow {
    pub instance_id: String,
    /// JSON array of `authorized_keys` lines.
    pub ssh_keys: String,
    pub user_data: Option<String>,
    pub done_at: Option<i64>,
}

pub async fn insert_first_boot(conn: &mut AnyConnection, row: &FirstBootRow) -> Result<()> {
    sqlx::query("INSERT INTO instance_first_boot (instance_id, ssh_keys, user_data, done_at) VALUES ($1, $2, $3, $4)")
        .bind(&row.instance_id)
        .bind(&row.ssh_keys)
        .bind(&row.user_data)
        .bind(row.done_at)
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(())
}

impl Store {
    /// One page of a user's keys; the owner is part of the query.
    pub async fn list_ssh_keys(&self, user_id: &str, query: &ListQuery) -> Result<(Vec<SshKeyRow>, Option<String>)> {
        let mut sql = format!("SELECT {COLUMNS} FROM ssh_keys WHERE user_id = $1");
        let mut binds = vec![Bind::Text(user_id.to_string())];
        query.apply(&mut sql, &mut binds)?;
        let rows: Vec<SshKeyRow> =
            bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?;
        Ok(query.finish(rows, |row| row.cursor_key(query.sort)))
    }

    /// A user's key by id or by name.
    pub async fn ssh_key_by_key(&self, user_id: &str, key: &str) -> Result<Option<SshKeyRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM ssh_keys WHERE user_id = $1 AND (id = $2 OR name = $2)"
        )))
        .bind(user_id)
        .bind(key)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The first-boot data of an instance not yet delivered.
    pub async fn pending_first_boot(&self, instance_id: &str) -> Result<Option<FirstBootRow>> {
        Ok(sqlx::query_as(
            "SELECT instance_id, ssh_keys, user_data, done_at FROM instance_first_boot \
             WHERE instance_id = $1 AND done_at IS NULL",
        )
        .bind(instance_id)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn first_boot_done(&self, instance_id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE instance_first_boot SET done_at = $1 WHERE instance_id = $2")
            .bind(now)
            .bind(instance_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
