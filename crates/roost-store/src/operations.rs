//! Operations: the durable record of long work.

use roost_api::operations::{Operation, OperationError, OperationStatus};
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::list::{Bind, CursorValue, ListQuery, SortKey, bind_all};
use crate::{Result, Store, StoreError, to_time};

#[derive(Debug, Clone, FromRow)]
pub struct OperationRow {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub progress: i64,
    pub message: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub result: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub project_id: Option<String>,
    /// A job's parameters (JSON); `None` for an operation without steps.
    pub job_params: Option<String>,
    /// The state a job's completed steps produced (JSON).
    pub job_state: Option<String>,
    /// The step (0-based) a job is at: running, or the next to undo while unwinding.
    pub job_step: Option<i64>,
    pub job_steps: Option<i64>,
    pub job_step_name: Option<String>,
    /// 1 while a job undoes its steps.
    pub job_unwinding: i64,
}

pub const SORT_KEYS: &[SortKey] = &[SortKey { field: "created_at", text: false }];

impl OperationRow {
    pub fn status(&self) -> OperationStatus {
        OperationStatus::parse(&self.status).unwrap_or(OperationStatus::Failed)
    }

    pub fn to_api(&self) -> Operation {
        Operation {
            id: self.id.clone(),
            kind: self.kind.clone(),
            status: self.status(),
            progress: self.progress.clamp(0, 100) as u8,
            message: self.message.clone(),
            error: match (&self.error_code, &self.error_message) {
                (Some(code), message) => {
                    Some(OperationError { code: code.clone(), message: message.clone().unwrap_or_default() })
                }
                _ => None,
            },
            result: self.result.as_deref().and_then(|r| serde_json::from_str(r).ok()),
            resource_type: self.resource_type.clone(),
            resource_id: self.resource_id.clone(),
            created_by: self.created_by.clone(),
            created_at: to_time(self.created_at),
            updated_at: to_time(self.updated_at),
            finished_at: self.finished_at.map(to_time),
            project_id: self.project_id.clone(),
            step: match (self.job_step, self.job_steps) {
                (Some(step), Some(steps)) if steps > 0 => Some((step + 1).clamp(1, steps) as u32),
                _ => None,
            },
            steps: self.job_steps.map(|n| n.max(0) as u32),
            step_name: self.job_step_name.clone(),
            unwinding: self.job_unwinding != 0,
        }
    }

    /// Whether this operation is a job (has steps).
    pub fn is_job(&self) -> bool {
        self.job_steps.is_some()
    }
}

const COLUMNS: &str = "id, kind, status, progress, message, error_code, error_message, result, resource_type, \
                       resource_id, created_by, created_at, updated_at, finished_at, project_id, job_params, \
                       job_state, job_step, job_steps, job_step_name, job_unwinding";

pub async fn insert(conn: &mut AnyConnection, op: &OperationRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO operations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
         $21)"
    )))
    .bind(&op.id)
    .bind(&op.kind)
    .bind(&op.status)
    .bind(op.progress)
    .bind(&op.message)
    .bind(&op.error_code)
    .bind(&op.error_message)
    .bind(&op.result)
    .bind(&op.resource_type)
    .bind(&op.resource_id)
    .bind(&op.created_by)
    .bind(op.created_at)
    .bind(op.updated_at)
    .bind(op.finished_at)
    .bind(&op.project_id)
    .bind(&op.job_params)
    .bind(&op.job_state)
    .bind(op.job_step)
    .bind(op.job_steps)
    .bind(&op.job_step_name)
    .bind(op.job_unwinding)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Writes every mutable field of `op` (status, progress, message, error, result, times,
/// a job's state and step).
pub async fn update(conn: &mut AnyConnection, op: &OperationRow) -> Result<()> {
    let done = sqlx::query(
        "UPDATE operations SET status = $2, progress = $3, message = $4, error_code = $5, error_message = $6, \
         result = $7, updated_at = $8, finished_at = $9, job_state = $10, job_step = $11, job_step_name = $12, \
         job_unwinding = $13 WHERE id = $1",
    )
    .bind(&op.id)
    .bind(&op.status)
    .bind(op.progress)
    .bind(&op.message)
    .bind(&op.error_code)
    .bind(&op.error_message)
    .bind(&op.result)
    .bind(op.updated_at)
    .bind(op.finished_at)
    .bind(&op.job_state)
    .bind(op.job_step)
    .bind(&op.job_step_name)
    .bind(op.job_unwinding)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

impl Store {
    /// An operation, visible to its creator (`created_by`) or to anyone when `visible_to`
    /// is `None` (admins).
    pub async fn operation(&self, id: &str, visible_to: Option<&str>) -> Result<Option<OperationRow>> {
        let row = match visible_to {
            Some(user) => {
                sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM operations WHERE id = $1 AND created_by = $2"
                )))
                .bind(id)
                .bind(user)
                .fetch_optional(self.pool())
                .await?
            }
            None => {
                sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM operations WHERE id = $1")))
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await?
            }
        };
        Ok(row)
    }

    /// A page of operations, limited to one creator unless `visible_to` is `None`.
    pub async fn list_operations(
        &self,
        visible_to: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<OperationRow>, Option<String>)> {
        let mut sql = format!("SELECT {COLUMNS} FROM operations WHERE 1 = 1");
        let mut binds = Vec::new();
        if let Some(user) = visible_to {
            binds.push(Bind::Text(user.to_string()));
            sql.push_str(" AND created_by = $1");
        }
        // Operations have no name column: a name filter does not apply.
        let query = ListQuery { name_like: None, ..query.clone() };
        query.apply(&mut sql, &mut binds)?;
        let rows: Vec<OperationRow> =
            bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?;
        Ok(query.finish(rows, |row| (CursorValue::Int(row.created_at), row.id.clone())))
    }

    /// Marks operations without steps that were running when the server stopped as
    /// failed; returns them. Jobs are left to be resumed or unwound ([`Store::unfinished_jobs`]).
    pub async fn fail_interrupted_operations(&self, now: i64) -> Result<Vec<OperationRow>> {
        let mut tx = self.write().await?;
        let rows: Vec<OperationRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM operations WHERE status IN ('pending', 'running') AND job_steps IS NULL"
        )))
        .fetch_all(tx.conn())
        .await?;
        sqlx::query(
            "UPDATE operations SET status = 'failed', error_code = 'interrupted', \
             error_message = 'the server stopped before the operation finished', updated_at = $1, finished_at = $1 \
             WHERE status IN ('pending', 'running') AND job_steps IS NULL",
        )
        .bind(now)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Jobs a stopped server left unfinished, oldest first.
    pub async fn unfinished_jobs(&self) -> Result<Vec<OperationRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM operations WHERE status IN ('pending', 'running') AND job_steps IS NOT NULL \
             ORDER BY created_at, id"
        )))
        .fetch_all(self.pool())
        .await?)
    }
}
