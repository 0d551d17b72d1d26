//! Instances and their metric samples (their NICs are in `networks`).

use std::collections::BTreeMap;

use roost_api::instances::{Desired, Instance, InstanceStatus, RestartPolicy};
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::list::{Bind, CursorValue, ListQuery, ProjectScope, SortKey, bind_all};
use crate::{Result, Store, StoreError, to_time};

#[derive(Debug, Clone, FromRow)]
pub struct InstanceRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub kind: String,
    pub image_id: String,
    pub cpus_milli: i64,
    pub memory_bytes: i64,
    pub command: Option<String>,
    pub env: String,
    pub labels: String,
    pub restart_policy: String,
    pub desired: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub ip: Option<String>,
    pub exit_code: Option<i64>,
    pub restart_count: i64,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    /// JSON array of capability names added to the default set.
    pub capabilities_add: String,
}

pub const SORT_KEYS: &[SortKey] =
    &[SortKey { field: "created_at", text: false }, SortKey { field: "name", text: true }];

impl InstanceRow {
    pub fn status(&self) -> InstanceStatus {
        InstanceStatus::parse(&self.status).unwrap_or(InstanceStatus::Error)
    }

    pub fn desired(&self) -> Desired {
        Desired::parse(&self.desired).unwrap_or(Desired::Stopped)
    }

    pub fn restart(&self) -> RestartPolicy {
        RestartPolicy::parse(&self.restart_policy).unwrap_or_default()
    }

    pub fn command(&self) -> Option<Vec<String>> {
        self.command.as_deref().and_then(|c| serde_json::from_str(c).ok())
    }

    pub fn env(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.env).unwrap_or_default()
    }

    pub fn capabilities_add(&self) -> Vec<String> {
        serde_json::from_str(&self.capabilities_add).unwrap_or_default()
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.labels).unwrap_or_default()
    }

    pub fn to_api(&self, image_name: &str) -> Instance {
        Instance {
            id: self.id.clone(),
            name: self.name.clone(),
            project_id: self.project_id.clone(),
            kind: self.kind.clone(),
            image_id: self.image_id.clone(),
            image: image_name.to_string(),
            status: self.status(),
            status_reason: self.status_reason.clone(),
            desired: self.desired(),
            cpus: self.cpus_milli as f64 / 1000.0,
            memory_bytes: self.memory_bytes as u64,
            command: self.command(),
            env: self.env(),
            labels: self.labels(),
            restart: self.restart(),
            ip: self.ip.clone(),
            nics: Vec::new(),
            security_groups: Vec::new(),
            exit_code: self.exit_code.map(|c| c as i32),
            restart_count: self.restart_count as u32,
            created_at: to_time(self.created_at),
            updated_at: to_time(self.updated_at),
            started_at: self.started_at.map(to_time),
            cloned_from: None,
            volumes: Vec::new(),
            capabilities_add: self.capabilities_add(),
        }
    }
}

const COLUMNS: &str = "id, project_id, name, kind, image_id, cpus_milli, memory_bytes, command, env, labels, \
                       restart_policy, desired, status, status_reason, ip, exit_code, restart_count, created_by, \
                       created_at, updated_at, started_at, capabilities_add";

pub async fn insert(conn: &mut AnyConnection, i: &InstanceRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO instances ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18, $19, $20, $21, $22)"
    )))
    .bind(&i.id)
    .bind(&i.project_id)
    .bind(&i.name)
    .bind(&i.kind)
    .bind(&i.image_id)
    .bind(i.cpus_milli)
    .bind(i.memory_bytes)
    .bind(&i.command)
    .bind(&i.env)
    .bind(&i.labels)
    .bind(&i.restart_policy)
    .bind(&i.desired)
    .bind(&i.status)
    .bind(&i.status_reason)
    .bind(&i.ip)
    .bind(i.exit_code)
    .bind(i.restart_count)
    .bind(&i.created_by)
    .bind(i.created_at)
    .bind(i.updated_at)
    .bind(i.started_at)
    .bind(&i.capabilities_add)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Sets what the owner wants.
/// An instance by id, in the caller's transaction or on any connection.
pub async fn get_in(conn: &mut AnyConnection, id: &str) -> Result<Option<InstanceRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM instances WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

pub async fn set_desired(conn: &mut AnyConnection, id: &str, desired: Desired, now: i64) -> Result<()> {
    sqlx::query("UPDATE instances SET desired = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(desired.as_str())
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces what a PATCH may change: the labels (JSON) and the restart policy.
pub async fn set_labels_and_restart(
    conn: &mut AnyConnection,
    id: &str,
    labels: &str,
    restart_policy: &str,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE instances SET labels = $2, restart_policy = $3, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(labels)
        .bind(restart_policy)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records what the node observed.
pub async fn set_status(
    conn: &mut AnyConnection,
    id: &str,
    status: InstanceStatus,
    reason: Option<&str>,
    exit_code: Option<i64>,
    started_at: Option<i64>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE instances SET status = $2, status_reason = $3, exit_code = $4, started_at = COALESCE($5, started_at), \
         updated_at = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(reason)
    .bind(exit_code)
    .bind(started_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn count_restart(conn: &mut AnyConnection, id: &str) -> Result<()> {
    sqlx::query("UPDATE instances SET restart_count = restart_count + 1 WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}

pub async fn set_ip(conn: &mut AnyConnection, id: &str, ip: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE instances SET ip = $2 WHERE id = $1").bind(id).bind(ip).execute(conn).await?;
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    sqlx::query("DELETE FROM instance_samples WHERE instance_id = $1").bind(id).execute(&mut *conn).await?;
    for table in ["instance_nics", "instance_security_groups", "port_forwards"] {
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE instance_id = $1")))
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    let done = sqlx::query("DELETE FROM instances WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// One metric sample.
#[derive(Debug, Clone, FromRow)]
pub struct SampleRow {
    pub instance_id: String,
    pub resolution: i64,
    pub time: i64,
    pub cpu_percent: f64,
    pub memory_bytes: i64,
    pub pids: i64,
    pub net_rx_bytes: i64,
    pub net_tx_bytes: i64,
}

pub async fn insert_sample(conn: &mut AnyConnection, s: &SampleRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO instance_samples (instance_id, resolution, time, cpu_percent, memory_bytes, pids, net_rx_bytes, \
         net_tx_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (instance_id, resolution, time) DO NOTHING",
    )
    .bind(&s.instance_id)
    .bind(s.resolution)
    .bind(s.time)
    .bind(s.cpu_percent)
    .bind(s.memory_bytes)
    .bind(s.pids)
    .bind(s.net_rx_bytes)
    .bind(s.net_tx_bytes)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes samples of a resolution older than `before`.
pub async fn prune_samples(conn: &mut AnyConnection, resolution: i64, before: i64) -> Result<u64> {
    let done = sqlx::query("DELETE FROM instance_samples WHERE resolution = $1 AND time < $2")
        .bind(resolution)
        .bind(before)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

impl Store {
    /// An instance by id or name within the projects in scope; with `project`, the name
    /// is looked up in that project only.
    pub async fn instance_by_key(
        &self,
        key: &str,
        scope: &ProjectScope,
        project: Option<&str>,
    ) -> Result<Option<InstanceRow>> {
        let mut sql = format!("SELECT {COLUMNS} FROM instances WHERE (id = $1 OR name = $1)");
        let mut binds = vec![Bind::Text(key.to_string())];
        scope.apply(&mut sql, &mut binds, "project_id");
        if let Some(p) = project {
            binds.push(Bind::Text(p.to_string()));
            sql.push_str(&format!(" AND (id = $1 OR project_id = ${})", binds.len()));
        }
        sql.push_str(" ORDER BY created_at LIMIT 2");
        let rows: Vec<InstanceRow> =
            bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?;
        // An id is unique; a name is unique per project, so two hits mean the caller
        // must say which project.
        if rows.len() > 1 && rows[0].id != key {
            return Err(StoreError::Conflict(format!(
                "more than one of your projects has an instance named '{key}': pass the project or the id"
            )));
        }
        Ok(rows.into_iter().next())
    }

    /// An instance by id or name that is in `project_id`, whatever else the caller sees:
    /// for joining resources that must share a project (a volume and the instance it is
    /// attached to). [`Store::instance_by_key`] narrows names only; an id passes there.
    pub async fn instance_in_project(&self, key: &str, project_id: &str) -> Result<Option<InstanceRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM instances WHERE (id = $1 OR name = $1) AND project_id = $2 \
             ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1"
        )))
        .bind(key)
        .bind(project_id)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn instance(&self, id: &str) -> Result<Option<InstanceRow>> {
        let mut conn = self.pool().acquire().await?;
        get_in(&mut conn, id).await
    }

    /// The names of some instances, by id, in one query (for listings that show them).
    pub async fn instance_names(&self, ids: &[String]) -> Result<std::collections::HashMap<String, String>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT id, name FROM instances WHERE id IN ({})", marks.join(", "));
        let binds: Vec<Bind> = ids.iter().map(|id| Bind::Text(id.clone())).collect();
        let rows: Vec<(String, String)> =
            bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?;
        Ok(rows.into_iter().collect())
    }

    /// A page of instances in scope, filtered.
    pub async fn list_instances(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
        status: Option<&str>,
        label: Option<(&str, &str)>,
        query: &ListQuery,
    ) -> Result<(Vec<InstanceRow>, Option<String>)> {
        let mut sql = format!("SELECT {COLUMNS} FROM instances WHERE 1 = 1");
        let mut binds = Vec::new();
        scope.apply(&mut sql, &mut binds, "project_id");
        if let Some(p) = project {
            binds.push(Bind::Text(p.to_string()));
            sql.push_str(&format!(" AND project_id = ${}", binds.len()));
        }
        if let Some(s) = status {
            binds.push(Bind::Text(s.to_string()));
            sql.push_str(&format!(" AND status = ${}", binds.len()));
        }
        if let Some((k, v)) = label {
            // Labels are a JSON object; matching its serialized pair is exact because
            // keys and values are JSON-escaped the same way on both sides.
            let pair = format!("%{}%", crate::list::glob_to_like(&format!("{}:{}", json(k), json(v))));
            binds.push(Bind::Text(pair));
            sql.push_str(&format!(" AND labels LIKE ${} ESCAPE '\\'", binds.len()));
        }
        query.apply(&mut sql, &mut binds)?;
        let rows: Vec<InstanceRow> =
            bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?;
        Ok(query.finish(rows, |row| {
            let value = match query.sort.field {
                "name" => CursorValue::Text(row.name.clone()),
                _ => CursorValue::Int(row.created_at),
            };
            (value, row.id.clone())
        }))
    }

    /// Every instance, for the reconciler.
    pub async fn all_instances(&self) -> Result<Vec<InstanceRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM instances ORDER BY created_at")))
            .fetch_all(self.pool())
            .await?)
    }

    /// Samples of one instance at a resolution since a time, oldest first.
    pub async fn samples(&self, instance_id: &str, resolution: i64, since: i64) -> Result<Vec<SampleRow>> {
        Ok(sqlx::query_as(
            "SELECT instance_id, resolution, time, cpu_percent, memory_bytes, pids, net_rx_bytes, net_tx_bytes \
             FROM instance_samples WHERE instance_id = $1 AND resolution = $2 AND time >= $3 ORDER BY time",
        )
        .bind(instance_id)
        .bind(resolution)
        .bind(since)
        .fetch_all(self.pool())
        .await?)
    }
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Hands a pre-created (pooled) sandbox instance to the user it is given to.
pub async fn set_creator(conn: &mut AnyConnection, id: &str, created_by: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE instances SET created_by = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(created_by)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}
