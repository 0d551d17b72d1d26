//! Volumes (with their one attachment), snapshots, backup policies, instance snapshots
//! and instance clone lineage.

use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::list::{Bind, ListQuery, ProjectScope, bind_all, key_by_created_or_name};
use crate::networks::scoped_sql;
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, FromRow)]
pub struct VolumeRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub size_bytes: i64,
    pub filesystem: String,
    pub format: String,
    pub instance_id: Option<String>,
    pub mount_path: Option<String>,
    pub read_only: i64,
    pub cloned_from: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const VOLUME_COLUMNS: &str = "id, project_id, name, size_bytes, filesystem, format, instance_id, mount_path, \
                              read_only, cloned_from, created_by, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct SnapshotRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub volume_id: String,
    pub size_bytes: i64,
    pub description: Option<String>,
    pub policy_id: Option<String>,
    pub instance_snapshot_id: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
}

const SNAPSHOT_COLUMNS: &str =
    "id, project_id, name, volume_id, size_bytes, description, policy_id, instance_snapshot_id, created_by, created_at";

#[derive(Debug, Clone, FromRow)]
pub struct PolicyRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub volume_id: String,
    pub cron: String,
    pub keep: i64,
    pub last_run_at: Option<i64>,
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    pub next_run_at: Option<i64>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const POLICY_COLUMNS: &str = "id, project_id, name, volume_id, cron, keep, last_run_at, last_result, last_error, \
                              next_run_at, created_by, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct InstanceSnapshotRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub instance_id: String,
    pub rootfs_bytes: i64,
    pub description: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
}

const ISNAP_COLUMNS: &str = "id, project_id, name, instance_id, rootfs_bytes, description, created_by, created_at";

// ---- volumes ----

pub async fn insert_volume(conn: &mut AnyConnection, v: &VolumeRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO volumes ({VOLUME_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    )))
    .bind(&v.id)
    .bind(&v.project_id)
    .bind(&v.name)
    .bind(v.size_bytes)
    .bind(&v.filesystem)
    .bind(&v.format)
    .bind(&v.instance_id)
    .bind(&v.mount_path)
    .bind(v.read_only)
    .bind(&v.cloned_from)
    .bind(&v.created_by)
    .bind(v.created_at)
    .bind(v.updated_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn delete_volume(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM volumes WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

pub async fn volume(conn: &mut AnyConnection, id: &str) -> Result<Option<VolumeRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

pub async fn snapshot(conn: &mut AnyConnection, id: &str) -> Result<Option<SnapshotRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

pub async fn policy(conn: &mut AnyConnection, id: &str) -> Result<Option<PolicyRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {POLICY_COLUMNS} FROM backup_policies WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

pub async fn set_size(conn: &mut AnyConnection, id: &str, size: i64, now: i64) -> Result<()> {
    sqlx::query("UPDATE volumes SET size_bytes = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(size)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Attaches (`Some`) or detaches (`None`). An attach only succeeds on a volume that is
/// free, so two concurrent attaches cannot both win: false when it was taken.
pub async fn set_attachment(
    conn: &mut AnyConnection,
    id: &str,
    attachment: Option<(&str, &str, bool)>,
    now: i64,
) -> Result<bool> {
    let done = match attachment {
        Some((instance, path, ro)) => {
            sqlx::query(
                "UPDATE volumes SET instance_id = $2, mount_path = $3, read_only = $4, updated_at = $5 \
             WHERE id = $1 AND instance_id IS NULL",
            )
            .bind(id)
            .bind(instance)
            .bind(path)
            .bind(ro as i64)
            .bind(now)
            .execute(conn)
            .await?
        }
        None => sqlx::query(
            "UPDATE volumes SET instance_id = NULL, mount_path = NULL, read_only = 0, updated_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?,
    };
    Ok(done.rows_affected() > 0)
}

pub async fn volumes_of_instance(conn: &mut AnyConnection, instance_id: &str) -> Result<Vec<VolumeRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {VOLUME_COLUMNS} FROM volumes WHERE instance_id = $1 ORDER BY mount_path"
    )))
    .bind(instance_id)
    .fetch_all(conn)
    .await?)
}

/// Detaches every volume of an instance (it is being deleted); the data stays.
pub async fn detach_all(conn: &mut AnyConnection, instance_id: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE volumes SET instance_id = NULL, mount_path = NULL, read_only = 0, updated_at = $2 WHERE instance_id = $1",
    )
    .bind(instance_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

// ---- snapshots ----

pub async fn insert_snapshot(conn: &mut AnyConnection, s: &SnapshotRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO snapshots ({SNAPSHOT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    )))
    .bind(&s.id)
    .bind(&s.project_id)
    .bind(&s.name)
    .bind(&s.volume_id)
    .bind(s.size_bytes)
    .bind(&s.description)
    .bind(&s.policy_id)
    .bind(&s.instance_snapshot_id)
    .bind(&s.created_by)
    .bind(s.created_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn delete_snapshot(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM snapshots WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// A policy's snapshots, newest first.
pub async fn snapshots_of_policy(conn: &mut AnyConnection, policy_id: &str) -> Result<Vec<SnapshotRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE policy_id = $1 ORDER BY created_at DESC, id DESC"
    )))
    .bind(policy_id)
    .fetch_all(conn)
    .await?)
}

pub async fn snapshots_of_instance_snapshot(conn: &mut AnyConnection, isnap: &str) -> Result<Vec<SnapshotRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE instance_snapshot_id = $1 ORDER BY created_at, id"
    )))
    .bind(isnap)
    .fetch_all(conn)
    .await?)
}

pub async fn rename_volume(conn: &mut AnyConnection, id: &str, name: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE volumes SET name = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(name)
        .bind(now)
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn update_snapshot(conn: &mut AnyConnection, id: &str, name: &str, description: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE snapshots SET name = $2, description = $3 WHERE id = $1")
        .bind(id)
        .bind(name)
        .bind(description)
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(())
}

/// Renames a policy, or changes its schedule (with its next run) or how many it keeps.
pub async fn update_policy(
    conn: &mut AnyConnection,
    id: &str,
    name: &str,
    cron: &str,
    keep: i64,
    next_run_at: Option<i64>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE backup_policies SET name = $2, cron = $3, keep = $4, next_run_at = $5, updated_at = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(name)
    .bind(cron)
    .bind(keep)
    .bind(next_run_at)
    .bind(now)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

// ---- backup policies ----

pub async fn insert_policy(conn: &mut AnyConnection, p: &PolicyRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO backup_policies ({POLICY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    )))
    .bind(&p.id)
    .bind(&p.project_id)
    .bind(&p.name)
    .bind(&p.volume_id)
    .bind(&p.cron)
    .bind(p.keep)
    .bind(p.last_run_at)
    .bind(&p.last_result)
    .bind(&p.last_error)
    .bind(p.next_run_at)
    .bind(&p.created_by)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn delete_policy(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM backup_policies WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

pub async fn policies_of_volume(conn: &mut AnyConnection, volume_id: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM backup_policies WHERE volume_id = $1")
        .bind(volume_id)
        .fetch_one(conn)
        .await?)
}

pub async fn record_run(
    conn: &mut AnyConnection,
    id: &str,
    at: i64,
    result: &str,
    error: Option<&str>,
    next: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE backup_policies SET last_run_at = $2, last_result = $3, last_error = $4, next_run_at = $5, \
         updated_at = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(at)
    .bind(result)
    .bind(error)
    .bind(next)
    .execute(conn)
    .await?;
    Ok(())
}

// ---- instance snapshots and lineage ----

/// An instance snapshot's row, in the caller's transaction.
pub async fn instance_snapshot(conn: &mut AnyConnection, id: &str) -> Result<Option<InstanceSnapshotRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {ISNAP_COLUMNS} FROM instance_snapshots WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// Removes an instance snapshot's row (its volume snapshots are their own rows).
pub async fn delete_instance_snapshot(conn: &mut AnyConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM instance_snapshots WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}

pub async fn insert_instance_snapshot(conn: &mut AnyConnection, s: &InstanceSnapshotRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO instance_snapshots ({ISNAP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )))
    .bind(&s.id)
    .bind(&s.project_id)
    .bind(&s.name)
    .bind(&s.instance_id)
    .bind(s.rootfs_bytes)
    .bind(&s.description)
    .bind(&s.created_by)
    .bind(s.created_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn set_lineage(conn: &mut AnyConnection, instance_id: &str, cloned_from: &str, now: i64) -> Result<()> {
    sqlx::query("INSERT INTO instance_lineage (instance_id, cloned_from, created_at) VALUES ($1, $2, $3)")
        .bind(instance_id)
        .bind(cloned_from)
        .bind(now)
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn delete_lineage(conn: &mut AnyConnection, instance_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM instance_lineage WHERE instance_id = $1").bind(instance_id).execute(conn).await?;
    Ok(())
}

impl Store {
    pub async fn all_volumes(&self) -> Result<Vec<VolumeRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {VOLUME_COLUMNS} FROM volumes ORDER BY id")))
            .fetch_all(self.pool())
            .await?)
    }

    pub async fn volume_by_id(&self, id: &str) -> Result<Option<VolumeRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    pub async fn attached_volumes(&self, instance_id: &str) -> Result<Vec<VolumeRow>> {
        let mut conn = self.pool().acquire().await?;
        volumes_of_instance(&mut conn, instance_id).await
    }

    /// A page of volumes in scope (optionally of one project).
    pub async fn volumes_page(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<VolumeRow>, Option<String>)> {
        let (sql, binds) =
            scoped_sql(&format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE 1 = 1"), scope, project, "project_id");
        self.page(&sql, binds, query, |r: &VolumeRow| {
            key_by_created_or_name(query.sort.field, r.created_at, &r.name, &r.id)
        })
        .await
    }

    /// A page of snapshots in scope, optionally of one project and one volume.
    pub async fn snapshots_page(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
        volume_id: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<SnapshotRow>, Option<String>)> {
        let (mut sql, mut binds) =
            scoped_sql(&format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE 1 = 1"), scope, project, "project_id");
        if let Some(v) = volume_id {
            binds.push(Bind::Text(v.to_string()));
            sql.push_str(&format!(" AND volume_id = ${}", binds.len()));
        }
        self.page(&sql, binds, query, |r: &SnapshotRow| {
            key_by_created_or_name(query.sort.field, r.created_at, &r.name, &r.id)
        })
        .await
    }

    /// A page of backup policies in scope (optionally of one project).
    pub async fn policies_page(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<PolicyRow>, Option<String>)> {
        let (sql, binds) = scoped_sql(
            &format!("SELECT {POLICY_COLUMNS} FROM backup_policies WHERE 1 = 1"),
            scope,
            project,
            "project_id",
        );
        self.page(&sql, binds, query, |r: &PolicyRow| {
            key_by_created_or_name(query.sort.field, r.created_at, &r.name, &r.id)
        })
        .await
    }

    /// Volume id → name, in one query.
    pub async fn volume_names(&self, ids: &[String]) -> Result<std::collections::HashMap<String, String>> {
        let rows: Vec<(String, String)> = self.by_ids("SELECT id, name FROM volumes WHERE id IN ({ids})", ids).await?;
        Ok(rows.into_iter().collect())
    }

    /// Policy id → how many snapshots it keeps, in one query.
    pub async fn policy_snapshot_counts(&self, ids: &[String]) -> Result<std::collections::HashMap<String, i64>> {
        let rows: Vec<(String, i64)> = self
            .by_ids("SELECT policy_id, COUNT(*) FROM snapshots WHERE policy_id IN ({ids}) GROUP BY policy_id", ids)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// The volumes attached to these instances, in one query.
    pub async fn volumes_of_instances(&self, instance_ids: &[String]) -> Result<Vec<VolumeRow>> {
        self.by_ids(
            &format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE instance_id IN ({{ids}}) ORDER BY mount_path"),
            instance_ids,
        )
        .await
    }

    /// Instance id → the instance it was cloned from, in one query.
    pub async fn clone_sources(&self, instance_ids: &[String]) -> Result<std::collections::HashMap<String, String>> {
        let rows: Vec<(String, String)> = self
            .by_ids("SELECT instance_id, cloned_from FROM instance_lineage WHERE instance_id IN ({ids})", instance_ids)
            .await?;
        Ok(rows.into_iter().collect())
    }

    pub async fn volumes_in(&self, scope: &ProjectScope, project: Option<&str>) -> Result<Vec<VolumeRow>> {
        self.scoped_rows(&format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE 1 = 1"), scope, project, None).await
    }

    /// Snapshots in scope, optionally of one volume, oldest first.
    pub async fn snapshots_in(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
        volume_id: Option<&str>,
    ) -> Result<Vec<SnapshotRow>> {
        self.scoped_rows(
            &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE 1 = 1"),
            scope,
            project,
            volume_id.map(|v| ("volume_id", v)),
        )
        .await
    }

    pub async fn snapshot_by_id(&self, id: &str) -> Result<Option<SnapshotRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    pub async fn instance_snapshot(&self, id: &str) -> Result<Option<InstanceSnapshotRow>> {
        let mut conn = self.pool().acquire().await?;
        instance_snapshot(&mut conn, id).await
    }

    pub async fn policies_in(&self, scope: &ProjectScope, project: Option<&str>) -> Result<Vec<PolicyRow>> {
        self.scoped_rows(&format!("SELECT {POLICY_COLUMNS} FROM backup_policies WHERE 1 = 1"), scope, project, None)
            .await
    }

    pub async fn all_policies(&self) -> Result<Vec<PolicyRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {POLICY_COLUMNS} FROM backup_policies ORDER BY id")))
            .fetch_all(self.pool())
            .await?)
    }

    pub async fn policy_by_id(&self, id: &str) -> Result<Option<PolicyRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {POLICY_COLUMNS} FROM backup_policies WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    pub async fn instance_snapshots_in(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
    ) -> Result<Vec<InstanceSnapshotRow>> {
        self.scoped_rows(&format!("SELECT {ISNAP_COLUMNS} FROM instance_snapshots WHERE 1 = 1"), scope, project, None)
            .await
    }

    pub async fn cloned_from(&self, instance_id: &str) -> Result<Option<String>> {
        let mut conn = self.pool().acquire().await?;
        cloned_from_in(&mut conn, instance_id).await
    }

    /// Every snapshot id (the reconciler removes snapshot files without a row).
    pub async fn all_snapshot_ids(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT id FROM snapshots").fetch_all(self.pool()).await?)
    }

    /// Rows of `select` limited to the scope (tenant isolation in the query).
    async fn scoped_rows<T>(
        &self,
        select: &str,
        scope: &ProjectScope,
        project: Option<&str>,
        extra: Option<(&str, &str)>,
    ) -> Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let mut sql = select.to_string();
        let mut binds = Vec::new();
        scope.apply(&mut sql, &mut binds, "project_id");
        if let Some(p) = project {
            binds.push(Bind::Text(p.to_string()));
            sql.push_str(&format!(" AND project_id = ${}", binds.len()));
        }
        if let Some((column, value)) = extra {
            binds.push(Bind::Text(value.to_string()));
            sql.push_str(&format!(" AND {column} = ${}", binds.len()));
        }
        sql.push_str(" ORDER BY created_at, id");
        Ok(bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?)
    }
}

/// The instance an instance was cloned from, if any.
pub async fn cloned_from_in(conn: &mut AnyConnection, instance_id: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT cloned_from FROM instance_lineage WHERE instance_id = $1")
        .bind(instance_id)
        .fetch_optional(conn)
        .await?)
}
