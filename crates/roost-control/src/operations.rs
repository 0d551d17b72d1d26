//! Operations: a row per long task, updated as it progresses; each update is published
//! on the event bus, which is what `?wait=` blocks on.

use std::time::Duration;

use roost_api::ids::IdKind;
use roost_api::operations::{Operation, OperationStatus};
use roost_api::{ListParams, Page};
use roost_store::now_ms;
use roost_store::operations::{OperationRow, SORT_KEYS};
use tokio::sync::broadcast::error::RecvError;

use crate::events::Audience;
use crate::kernel::Change;
use crate::list::list_query;
use crate::{Control, Error, Principal, Result};

/// The longest a client may block on `?wait=`.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// A running operation, owned by the task doing the work.
pub struct OperationHandle {
    control: Control,
    row: OperationRow,
}

impl Control {
    /// Records a new pending operation as part of `change` (with its event).
    pub(crate) async fn new_operation(
        &self,
        change: &mut Change<'_>,
        principal: &Principal,
        kind: &str,
        resource: Option<(&str, &str)>,
    ) -> Result<OperationHandle> {
        self.insert_operation(change, principal, kind, resource, None).await
    }

    /// Records a new pending job (an operation with steps, see [`crate::jobs`]) as part of
    /// `change`: its parameters, step count and first step.
    pub(crate) async fn new_job_operation(
        &self,
        change: &mut Change<'_>,
        principal: &Principal,
        kind: &str,
        resource: Option<(&str, &str)>,
        job: (String, usize, &str),
    ) -> Result<OperationHandle> {
        self.insert_operation(change, principal, kind, resource, Some(job)).await
    }

    async fn insert_operation(
        &self,
        change: &mut Change<'_>,
        principal: &Principal,
        kind: &str,
        resource: Option<(&str, &str)>,
        job: Option<(String, usize, &str)>,
    ) -> Result<OperationHandle> {
        let now = now_ms();
        let row = OperationRow {
            id: IdKind::Operation.generate(),
            kind: kind.to_string(),
            status: OperationStatus::Pending.as_str().to_string(),
            progress: 0,
            message: None,
            error_code: None,
            error_message: None,
            result: None,
            resource_type: resource.map(|(t, _)| t.to_string()),
            resource_id: resource.map(|(_, id)| id.to_string()),
            created_by: Some(principal.user_id.clone()),
            created_at: now,
            updated_at: now,
            finished_at: None,
            project_id: None,
            job_state: job.as_ref().map(|_| "null".to_string()),
            job_step: job.as_ref().map(|_| 0),
            job_steps: job.as_ref().map(|(_, steps, _)| *steps as i64),
            job_step_name: job.as_ref().map(|(_, _, first)| first.to_string()),
            job_params: job.map(|(params, _, _)| params),
            job_unwinding: 0,
        };
        roost_store::operations::insert(change.conn(), &row).await?;
        let op = OperationHandle { control: self.clone(), row };
        op.announce_in(change);
        Ok(op)
    }

    /// An operation the caller may see (their own; admins see all).
    pub async fn get_operation(&self, principal: &Principal, id: &str) -> Result<Operation> {
        let visible_to = (!principal.is_admin()).then_some(principal.user_id.as_str());
        match self.store().operation(id, visible_to).await? {
            Some(row) => Ok(row.to_api()),
            None => Err(Error::not_found("operation", id)),
        }
    }

    pub async fn list_operations(&self, principal: &Principal, params: &ListParams) -> Result<Page<Operation>> {
        let query = list_query(params, SORT_KEYS)?;
        let visible_to = (!principal.is_admin()).then_some(principal.user_id.as_str());
        let (rows, next_cursor) = self.store().list_operations(visible_to, &query).await?;
        Ok(Page { items: rows.iter().map(OperationRow::to_api).collect(), next_cursor })
    }

    /// Returns the operation once it is final, or as it is when `wait` has passed (or
    /// the server begins to shut down).
    pub async fn wait_operation(&self, principal: &Principal, id: &str, wait: Duration) -> Result<Operation> {
        // Subscribe before reading, so an update between the two is not missed.
        let mut updates = self.events().subscribe();
        let mut op = self.get_operation(principal, id).await?;
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        while !op.status.is_final() {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = self.shutdown().cancelled() => break,
                received = updates.recv() => match received {
                    Ok(p) if p.event.resource_type == "operation" && p.event.resource_id == op.id => {}
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                },
            }
            op = self.get_operation(principal, id).await?;
        }
        Ok(op)
    }
}

impl OperationHandle {
    /// Takes over an operation a stopped server left unfinished (a job to resume or unwind).
    pub(crate) fn from_row(control: &Control, row: OperationRow) -> OperationHandle {
        OperationHandle { control: control.clone(), row }
    }

    pub fn id(&self) -> &str {
        &self.row.id
    }

    pub(crate) fn row(&self) -> &OperationRow {
        &self.row
    }

    /// A job's position: the step it is at, its name, whether it is undoing, and the state
    /// its completed steps produced. Written with the next save.
    pub(crate) fn set_job_position(&mut self, step: usize, name: &str, unwinding: bool, state: Option<String>) {
        self.row.job_step = Some(step as i64);
        self.row.job_step_name = Some(name.to_string());
        self.row.job_unwinding = unwinding as i64;
        if let Some(state) = state {
            self.row.job_state = Some(state);
        }
    }

    /// Like [`OperationHandle::progress`], but the caller learns whether it was recorded
    /// (a job must not go on with a state the store does not have).
    pub(crate) async fn progress_checked(&mut self, progress: u8, message: &str) -> Result<()> {
        self.row.status = OperationStatus::Running.as_str().to_string();
        self.row.progress = progress.min(100) as i64;
        self.row.message = Some(message.to_string());
        self.try_save().await
    }

    pub(crate) fn set_message(&mut self, message: &str) {
        self.row.message = Some(message.to_string());
    }

    /// Records why a job fails before it undoes its steps (a restart during the undo
    /// finishes the undo and reports this error).
    pub(crate) fn set_error(&mut self, code: &str, message: &str) {
        self.row.error_code = Some(code.to_string());
        self.row.error_message = Some(message.to_string());
    }

    pub fn to_api(&self) -> Operation {
        self.row.to_api()
    }

    /// Raises the operation's current state as an event of `change`.
    pub(crate) fn announce_in(&self, change: &mut Change<'_>) {
        let audience = match &self.row.created_by {
            Some(user) => Audience::User(user.clone()),
            None => Audience::Admins,
        };
        change.event("operation.updated", "operation", &self.row.id, &self.row.to_api(), audience);
    }

    async fn try_save(&mut self) -> Result<()> {
        self.row.updated_at = now_ms();
        let mut change = self.control.system_change().await?;
        roost_store::operations::update(change.conn(), &self.row).await?;
        self.announce_in(&mut change);
        change.commit().await
    }

    async fn save(&mut self) {
        if let Err(err) = self.try_save().await {
            tracing::error!(operation = %self.row.id, error = %err.message, "could not record operation progress");
        }
    }

    /// Running, at `progress` percent, doing `message`.
    pub async fn progress(&mut self, progress: u8, message: &str) {
        self.row.status = OperationStatus::Running.as_str().to_string();
        self.row.progress = progress.min(100) as i64;
        self.row.message = Some(message.to_string());
        self.save().await;
    }

    pub async fn succeed(mut self, result: Option<serde_json::Value>) {
        self.row.status = OperationStatus::Succeeded.as_str().to_string();
        self.row.progress = 100;
        self.row.message = None;
        self.row.result = result.map(|r| r.to_string());
        self.row.finished_at = Some(now_ms());
        self.save().await;
    }

    pub async fn fail(mut self, err: &Error) {
        if err.code.status() == 500 {
            tracing::error!(operation = %self.row.id, kind = %self.row.kind, error = %err.message, "operation failed");
        }
        // Readers of the operation see what a response would say; the details are logged.
        self.set_error(err.code.as_str(), err.public_message());
        self.finish_failed().await;
    }

    /// Failed, with the error already set ([`OperationHandle::set_error`]).
    pub(crate) async fn finish_failed(&mut self) {
        self.row.status = OperationStatus::Failed.as_str().to_string();
        self.row.finished_at = Some(now_ms());
        self.save().await;
    }
}
