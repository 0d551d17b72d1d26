//! Sandbox templates built from setup commands: how each was built and its cache
//! counters, one row per template image (the image row holds name, project and digest).

use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::list::{Bind, ListQuery, ProjectScope, bind_all};
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, FromRow)]
pub struct TemplateRow {
    pub image_id: String,
    pub project_id: String,
    pub base: String,
    pub base_digest: String,
    pub cache_key: String,
    /// JSON array of strings.
    pub commands: String,
    pub build_log: String,
    pub build_ms: Option<i64>,
    pub hits: i64,
    pub misses: i64,
    pub last_used_at: Option<i64>,
    pub updated_at: i64,
}

impl TemplateRow {
    pub fn commands(&self) -> Vec<String> {
        serde_json::from_str(&self.commands).unwrap_or_default()
    }
}

const COLUMNS: &str = "image_id, project_id, base, base_digest, cache_key, commands, build_log, build_ms, hits, \
                       misses, last_used_at, updated_at";

pub async fn insert(conn: &mut AnyConnection, t: &TemplateRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO sandbox_templates ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    )))
    .bind(&t.image_id)
    .bind(&t.project_id)
    .bind(&t.base)
    .bind(&t.base_digest)
    .bind(&t.cache_key)
    .bind(&t.commands)
    .bind(&t.build_log)
    .bind(t.build_ms)
    .bind(t.hits)
    .bind(t.misses)
    .bind(t.last_used_at)
    .bind(t.updated_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Rewrites how a template was built (a rebuild with other inputs), keeping its counters.
pub async fn update_build(conn: &mut AnyConnection, t: &TemplateRow) -> Result<()> {
    sqlx::query(
        "UPDATE sandbox_templates SET base = $2, base_digest = $3, cache_key = $4, commands = $5, build_log = $6, \
         build_ms = $7, updated_at = $8 WHERE image_id = $1",
    )
    .bind(&t.image_id)
    .bind(&t.base)
    .bind(&t.base_digest)
    .bind(&t.cache_key)
    .bind(&t.commands)
    .bind(&t.build_log)
    .bind(t.build_ms)
    .bind(t.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts one build: a cache hit or a miss; either way the template was just used.
pub async fn count_build(conn: &mut AnyConnection, image_id: &str, hit: bool, now: i64) -> Result<()> {
    let column = if hit { "hits" } else { "misses" };
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE sandbox_templates SET {column} = {column} + 1, last_used_at = $2 WHERE image_id = $1"
    )))
    .bind(image_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Points a template's image row at other contents (a rebuild under the same name).
pub async fn retag_image(
    conn: &mut AnyConnection,
    image_id: &str,
    digest: &str,
    size: i64,
    description: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE images SET digest = $2, size_bytes = $3, description = $4, status = 'ready', status_reason = NULL, \
         updated_at = $5 WHERE id = $1",
    )
    .bind(image_id)
    .bind(digest)
    .bind(size)
    .bind(description)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, image_id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM sandbox_templates WHERE image_id = $1").bind(image_id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

impl Store {
    pub async fn sandbox_template(&self, image_id: &str) -> Result<Option<TemplateRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM sandbox_templates WHERE image_id = $1")))
            .bind(image_id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The templates of the projects in scope (optionally one project), oldest first.
    pub async fn list_sandbox_templates(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
    ) -> Result<Vec<TemplateRow>> {
        let mut sql = format!("SELECT {COLUMNS} FROM sandbox_templates WHERE 1 = 1");
        let mut binds = Vec::new();
        scope.apply(&mut sql, &mut binds, "project_id");
        if let Some(p) = project {
            binds.push(Bind::Text(p.to_string()));
            sql.push_str(&format!(" AND project_id = ${}", binds.len()));
        }
        sql.push_str(" ORDER BY updated_at, image_id");
        Ok(bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?)
    }

    /// A page of template images: the builtin templates named `builtin` and the built
    /// templates of the projects in scope (or of one project).
    pub async fn template_images_page(
        &self,
        builtin: &[&str],
        scope: &ProjectScope,
        project: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<crate::images::ImageRow>, Option<String>)> {
        let mut binds: Vec<Bind> = builtin.iter().map(|n| Bind::Text(n.to_string())).collect();
        let names = if builtin.is_empty() { "NULL".to_string() } else { crate::list::placeholders(1, builtin.len()) };
        let mut sql = format!(
            "SELECT {} FROM images WHERE (project_id = '' AND name IN ({names})) OR id IN \
             (SELECT image_id FROM sandbox_templates WHERE 1 = 1",
            crate::images::COLUMNS
        );
        scope.apply(&mut sql, &mut binds, "project_id");
        if let Some(p) = project {
            binds.push(Bind::Text(p.to_string()));
            sql.push_str(&format!(" AND project_id = ${}", binds.len()));
        }
        sql.push(')');
        self.page(&sql, binds, query, |r: &crate::images::ImageRow| {
            crate::list::key_by_created_or_name(query.sort.field, r.created_at, &r.name, &r.id)
        })
        .await
    }

    /// The template rows of these images, in one query.
    pub async fn sandbox_templates_of(&self, image_ids: &[String]) -> Result<Vec<TemplateRow>> {
        self.by_ids(&format!("SELECT {COLUMNS} FROM sandbox_templates WHERE image_id IN ({{ids}})"), image_ids).await
    }

    /// The project's templates built with this cache key (the cache's lookup: a project
    /// never gets a hit from another project's build).
    pub async fn sandbox_templates_by_cache_key(&self, project_id: &str, cache_key: &str) -> Result<Vec<TemplateRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM sandbox_templates WHERE project_id = $1 AND cache_key = $2 ORDER BY image_id"
        )))
        .bind(project_id)
        .bind(cache_key)
        .fetch_all(self.pool())
        .await?)
    }

    /// A sandbox was created from the template.
    pub async fn touch_sandbox_template(&self, image_id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE sandbox_templates SET last_used_at = $2 WHERE image_id = $1")
            .bind(image_id)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
