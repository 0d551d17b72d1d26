//! The event stream: resource changes as server-sent events.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use chrono::{DateTime, Utc};

/// One change. Sent as an SSE message whose `event:` is `type` and whose `id:` is `id`
/// (reconnect with `Last-Event-ID` to receive what was missed, while the server still
/// holds it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Increasing per server.
    pub id: u64,
    pub time: DateTime<Utc>,
    /// `<resource>.<change>`, e.g. `token.created`, `operation.updated`.
    #[serde(rename = "type")]
    pub kind: String,
    pub resource_type: String,
    pub resource_id: String,
    /// The resource as it is after the change (absent for deletions).
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// Comma-separated resource types (`token,operation`) or event types (`token.created`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only events about this resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

impl EventFilter {
    pub fn accepts(&self, event: &Event) -> bool {
        if let Some(id) = &self.resource_id
            && id != &event.resource_id
        {
            return false;
        }
        match &self.kind {
            None => true,
            Some(kinds) => kinds
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .any(|k| k == event.kind || k == event.resource_type),
        }
    }
}
