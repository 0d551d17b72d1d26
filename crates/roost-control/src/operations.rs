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
    pub fn id(&self) -> &str {
        &self.row.id
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

    async fn save(&mut self) {
        self.row.updated_at = now_ms();
        let result = async {
            let mut change = self.control.system_change().await?;
            roost_store::operations::update(change.conn(), &self.row).await?;
            self.announce_in(&mut change);
            change.commit().await
        }
        .await;
        if let Err(err) = result {
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
        self.row.status = OperationStatus::Failed.as_str().to_string();
        self.row.error_code = Some(err.code.as_str().to_string());
        // Readers of the operation see what a response would say; the details are logged.
        self.row.error_message = Some(err.public_message().to_string());
        self.row.finished_at = Some(now_ms());
        self.save().await;
    }
}
