//! Operations: long work that a request starts and a client waits for.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl OperationStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Pending => "pending",
            OperationStatus::Running => "running",
            OperationStatus::Succeeded => "succeeded",
            OperationStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "running" => Some(Self::Running),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// Succeeded or failed: nothing more will happen to it.
    pub const fn is_final(self) -> bool {
        matches!(self, OperationStatus::Succeeded | OperationStatus::Failed)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Operation {
    pub id: String,
    /// What it does, e.g. `system.backup`.
    pub kind: String,
    pub status: OperationStatus,
    /// 0 to 100.
    pub progress: u8,
    /// The current step, for people.
    #[serde(default)]
    pub message: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<OperationError>,
    /// What it produced (kind-specific).
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub resource_id: Option<String>,
    /// The user who started it.
    #[serde(default)]
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// The project it works in (absent: server-wide).
    #[serde(default)]
    pub project_id: Option<String>,
    /// A job's step (1-based) running now, or, while `unwinding`, being undone; after
    /// the end, the step it reached. Absent for operations without steps.
    #[serde(default)]
    pub step: Option<u32>,
    /// How many steps the job has.
    #[serde(default)]
    pub steps: Option<u32>,
    /// The name of that step, e.g. `copy root filesystem`.
    #[serde(default)]
    pub step_name: Option<String>,
    /// The job failed (or the server restarted during a job that cannot resume) and is
    /// undoing its completed steps in reverse order.
    #[serde(default)]
    pub unwinding: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationError {
    pub code: String,
    pub message: String,
}

/// `GET /v1/operations/{id}?wait=30s`: block until the operation is final or the time
/// passes (at most 60 s), then return it either way.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitParams {
    /// How long to wait for the operation to finish, e.g. `30s` (at most `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
}
