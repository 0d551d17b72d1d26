//! Projects (the unit of tenancy), their members and their quotas.

use roost_api::projects::{Member, Project};
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::list::{Bind, CursorValue, ListQuery, SortKey, bind_all};
use crate::{Result, Store, StoreError, to_time};

#[derive(Debug, Clone, FromRow)]
pub struct ProjectRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ProjectRow {
    pub fn to_api(&self) -> Project {
        Project {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            created_at: to_time(self.created_at),
            updated_at: to_time(self.updated_at),
        }
    }
}

pub const SORT_KEYS: &[SortKey] =
    &[SortKey { field: "created_at", text: false }, SortKey { field: "name", text: true }];

const COLUMNS: &str = "id, name, description, created_at, updated_at";

pub async fn insert(conn: &mut AnyConnection, p: &ProjectRow) -> Result<()> {
    sqlx::query("INSERT INTO projects (id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&p.id)
        .bind(&p.name)
        .bind(&p.description)
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn update_description(conn: &mut AnyConnection, id: &str, description: Option<&str>, now: i64) -> Result<()> {
    sqlx::query("UPDATE projects SET description = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(description)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes a project and what it owns without instances: its networks (and their
/// peerings) and security groups (and their rules). The caller checked it has no
/// instances.
pub async fn delete(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    for sql in [
        "DELETE FROM network_peers WHERE network_a IN (SELECT id FROM networks WHERE project_id = $1) \
         OR network_b IN (SELECT id FROM networks WHERE project_id = $1)",
        "DELETE FROM networks WHERE project_id = $1",
        "DELETE FROM security_group_rules WHERE group_id IN (SELECT id FROM security_groups WHERE project_id = $1)",
        "DELETE FROM security_groups WHERE project_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    let done = sqlx::query("DELETE FROM projects WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// Adds a member or changes their role.
pub async fn upsert_member(
    conn: &mut AnyConnection,
    project_id: &str,
    user_id: &str,
    role: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO project_members (project_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(role)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn remove_member(conn: &mut AnyConnection, project_id: &str, user_id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
        .bind(project_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Sets (`Some`) or removes (`None`: unlimited) one quota.
pub async fn set_quota(conn: &mut AnyConnection, project_id: &str, resource: &str, limit: Option<i64>) -> Result<()> {
    match limit {
        Some(limit) => {
            sqlx::query(
                "INSERT INTO project_quotas (project_id, resource, limit_value) VALUES ($1, $2, $3) \
                 ON CONFLICT (project_id, resource) DO UPDATE SET limit_value = excluded.limit_value",
            )
            .bind(project_id)
            .bind(resource)
            .bind(limit)
            .execute(conn)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM project_quotas WHERE project_id = $1 AND resource = $2")
                .bind(project_id)
                .bind(resource)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// The quotas of a project, read inside a transaction (quota checks read and insert in one).
pub async fn quotas_in(conn: &mut AnyConnection, project_id: &str) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as("SELECT resource, limit_value FROM project_quotas WHERE project_id = $1 ORDER BY resource")
        .bind(project_id)
        .fetch_all(conn)
        .await?)
}

/// Locks the project row for the rest of the transaction (PostgreSQL); SQLite's writer
/// lock already serializes. Quota checks take it so concurrent creates count in turn.
pub async fn lock(conn: &mut AnyConnection, project_id: &str, backend: crate::Backend) -> Result<()> {
    if backend == crate::Backend::Postgres {
        sqlx::query("SELECT id FROM projects WHERE id = $1 FOR UPDATE").bind(project_id).fetch_optional(conn).await?;
    }
    Ok(())
}

#[derive(FromRow)]
struct MemberRow {
    user_id: String,
    user_name: String,
    role: String,
    created_at: i64,
}

impl MemberRow {
    fn into_api(self) -> Member {
        Member {
            user_id: self.user_id,
            user_name: self.user_name,
            role: roost_api::auth::Role::parse(&self.role).unwrap_or(roost_api::auth::Role::Viewer),
            added_at: to_time(self.created_at),
        }
    }
}

impl Store {
    /// A project by id or name.
    pub async fn project_by_key(&self, key: &str) -> Result<Option<ProjectRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM projects WHERE id = $1 OR name = $1")))
            .bind(key)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Projects visible to `member` (all when `None`: admins). The membership is part of
    /// the query.
    pub async fn list_projects(
        &self,
        member: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<ProjectRow>, Option<String>)> {
        let mut sql = format!("SELECT {COLUMNS} FROM projects WHERE 1 = 1");
        let mut binds = Vec::new();
        if let Some(user) = member {
            binds.push(Bind::Text(user.to_string()));
            sql.push_str(" AND id IN (SELECT project_id FROM project_members WHERE user_id = $1)");
        }
        query.apply(&mut sql, &mut binds)?;
        let rows: Vec<ProjectRow> =
            bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?;
        Ok(query.finish(rows, |row| {
            let value = match query.sort.field {
                "name" => CursorValue::Text(row.name.clone()),
                _ => CursorValue::Int(row.created_at),
            };
            (value, row.id.clone())
        }))
    }

    /// The member's role in the project, if a member.
    pub async fn membership(&self, project_id: &str, user_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// A page of a project's members (`name` is the user's name, `created_at` when they
    /// joined).
    pub async fn members_page(&self, project_id: &str, query: &ListQuery) -> Result<(Vec<Member>, Option<String>)> {
        let sql = "SELECT m.user_id AS id, m.user_id, u.name AS name, u.name AS user_name, m.role, m.created_at \
                   FROM project_members m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1";
        let (rows, next) = self
            .page(sql, vec![Bind::Text(project_id.to_string())], query, |r: &MemberRow| {
                crate::list::key_by_created_or_name(query.sort.field, r.created_at, &r.user_name, &r.user_id)
            })
            .await?;
        Ok((rows.into_iter().map(MemberRow::into_api).collect(), next))
    }

    pub async fn members(&self, project_id: &str) -> Result<Vec<Member>> {
        let rows: Vec<MemberRow> = sqlx::query_as(
            "SELECT m.user_id, u.name AS user_name, m.role, m.created_at FROM project_members m \
             JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 ORDER BY u.name",
        )
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(MemberRow::into_api).collect())
    }

    pub async fn quotas(&self, project_id: &str) -> Result<Vec<(String, i64)>> {
        let mut conn = self.pool().acquire().await?;
        quotas_in(&mut conn, project_id).await
    }
}

/// A project read inside a transaction (to check a precondition against what is updated).
pub async fn get_in(conn: &mut AnyConnection, id: &str) -> Result<Option<ProjectRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM projects WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}
