//! Images: builtin ones (project '') and those a project built or imported.

use roost_api::images::{Image, ImageStatus};
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::list::{Bind, ListQuery, ProjectScope, bind_all, key_by_created_or_name};
use crate::{Result, Store, StoreError, to_time};

/// The project id of builtin images.
pub const BUILTIN: &str = "";

#[derive(Debug, Clone, FromRow)]
pub struct ImageRow {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub source: String,
    pub description: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
    pub digest: Option<String>,
    pub size_bytes: Option<i64>,
    pub spec: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ImageRow {
    pub fn status(&self) -> ImageStatus {
        ImageStatus::parse(&self.status).unwrap_or(ImageStatus::Failed)
    }

    pub fn to_api(&self) -> Image {
        Image {
            id: self.id.clone(),
            name: self.name.clone(),
            project_id: (!self.project_id.is_empty()).then(|| self.project_id.clone()),
            source: self.source.clone(),
            description: self.description.clone(),
            status: self.status(),
            status_reason: self.status_reason.clone(),
            digest: self.digest.clone(),
            size_bytes: self.size_bytes.map(|s| s as u64),
            created_at: to_time(self.created_at),
        }
    }
}

pub(crate) const COLUMNS: &str = "id, name, project_id, source, description, status, status_reason, digest, size_bytes, spec, \
                       created_by, created_at, updated_at";

pub async fn insert(conn: &mut AnyConnection, i: &ImageRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO images ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    )))
    .bind(&i.id)
    .bind(&i.name)
    .bind(&i.project_id)
    .bind(&i.source)
    .bind(&i.description)
    .bind(&i.status)
    .bind(&i.status_reason)
    .bind(&i.digest)
    .bind(i.size_bytes)
    .bind(&i.spec)
    .bind(&i.created_by)
    .bind(i.created_at)
    .bind(i.updated_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Records the outcome of a build.
/// An image back to `building` without contents (the undo of recording a build).
pub async fn unfinish(conn: &mut AnyConnection, id: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE images SET status = 'building', status_reason = NULL, digest = NULL, size_bytes = NULL, \
         updated_at = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn finish(
    conn: &mut AnyConnection,
    id: &str,
    status: ImageStatus,
    reason: Option<&str>,
    digest: Option<&str>,
    size: Option<i64>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE images SET status = $2, status_reason = $3, digest = COALESCE($4, digest), \
         size_bytes = COALESCE($5, size_bytes), updated_at = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(reason)
    .bind(digest)
    .bind(size)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_description(conn: &mut AnyConnection, id: &str, description: Option<&str>, now: i64) -> Result<()> {
    sqlx::query("UPDATE images SET description = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(description)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM images WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

impl Store {
    /// An image by id or name, among the builtin ones and those of the given projects.
    /// A builtin name means the builtin image: project images may not take one (an older
    /// row that did is reached by its id).
    pub async fn image_by_key(&self, key: &str, scope: &ProjectScope) -> Result<Option<ImageRow>> {
        let mut sql =
            format!("SELECT {COLUMNS} FROM images WHERE (id = $1 OR name = $1) AND (project_id = '' OR 1 = 1");
        let mut binds = vec![Bind::Text(key.to_string())];
        scope.apply(&mut sql, &mut binds, "project_id");
        sql.push(')');
        sql.push_str(" ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END, project_id");
        let rows: Vec<ImageRow> =
            bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?;
        Ok(rows.into_iter().next())
    }

    /// Builtin images and those of the projects in scope (optionally one project).
    pub async fn list_images(&self, scope: &ProjectScope, project: Option<&str>) -> Result<Vec<ImageRow>> {
        let mut sql = format!("SELECT {COLUMNS} FROM images WHERE (project_id = '' OR (1 = 1");
        let mut binds = Vec::new();
        scope.apply(&mut sql, &mut binds, "project_id");
        sql.push_str("))");
        if let Some(p) = project {
            binds.push(Bind::Text(p.to_string()));
            sql.push_str(&format!(" AND (project_id = '' OR project_id = ${})", binds.len()));
        }
        sql.push_str(" ORDER BY name, project_id");
        Ok(bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?)
    }

    /// A page of the builtin images and those of the projects in scope (or of one).
    pub async fn images_page(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<ImageRow>, Option<String>)> {
        let mut sql = format!("SELECT {COLUMNS} FROM images WHERE (project_id = '' OR (1 = 1");
        let mut binds = Vec::new();
        scope.apply(&mut sql, &mut binds, "project_id");
        sql.push_str("))");
        if let Some(p) = project {
            binds.push(Bind::Text(p.to_string()));
            sql.push_str(&format!(" AND (project_id = '' OR project_id = ${})", binds.len()));
        }
        self.page(&sql, binds, query, |r: &ImageRow| {
            key_by_created_or_name(query.sort.field, r.created_at, &r.name, &r.id)
        })
        .await
    }

    /// Image id → name, in one query.
    pub async fn image_names(&self, ids: &[String]) -> Result<std::collections::HashMap<String, String>> {
        let rows: Vec<(String, String)> = self.by_ids("SELECT id, name FROM images WHERE id IN ({ids})", ids).await?;
        Ok(rows.into_iter().collect())
    }

    /// An image an instance of `project_id` may run, by id or name: a builtin one or one
    /// of that project, never another project's (whoever asks).
    pub async fn image_for_project(&self, key: &str, project_id: &str) -> Result<Option<ImageRow>> {
        self.image_by_key(key, &ProjectScope::One(project_id.to_string())).await
    }

    /// Project images that carry a builtin image's name (made before such names were
    /// reserved): reached by id only.
    pub async fn images_named_like_builtins(&self) -> Result<Vec<ImageRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM images WHERE project_id <> '' AND name IN (SELECT name FROM images WHERE project_id = '')"
        )))
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn image_by_id(&self, id: &str) -> Result<Option<ImageRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM images WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// How many instances use the image.
    pub async fn image_users(&self, id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE image_id = $1")
            .bind(id)
            .fetch_one(self.pool())
            .await?)
    }

    /// Images left `building` by a crash become `failed`, but for those whose build is
    /// a job a restart takes over (it finishes or fails the image).
    pub async fn fail_interrupted_builds(&self, now: i64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE images SET status = 'failed', status_reason = 'the server stopped during the build', updated_at = $1 \
             WHERE status = 'building' AND id NOT IN (SELECT resource_id FROM operations \
             WHERE kind = 'image.build' AND job_steps IS NOT NULL AND status IN ('pending', 'running') \
             AND resource_id IS NOT NULL)",
        )
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

/// An image's row, in the caller's transaction.
pub async fn get_in(conn: &mut AnyConnection, id: &str) -> Result<Option<ImageRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM images WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// An image's name by id, in the caller's transaction or on any connection.
pub async fn name_in(conn: &mut AnyConnection, id: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT name FROM images WHERE id = $1").bind(id).fetch_optional(conn).await?)
}
