//! The event bus: every committed change is published here once, and the SSE stream,
//! operation waits and (later) webhooks read from it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use roost_api::events::Event;
use tokio::sync::broadcast;

use crate::Principal;

/// How many recent events are kept for `Last-Event-ID` resumption.
const REPLAY_CAPACITY: usize = 1024;

/// Who may see an event. Enforced by the bus for every subscriber, so a stream cannot
/// leak another tenant's changes whatever filter a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// The user with this id, and admins.
    User(String),
    /// Admins only.
    Admins,
    /// Members of the project (and admins).
    Project(String),
}

impl Audience {
    /// Whether the principal may see the event; `projects` are the ids of the projects
    /// it may see (loaded when its stream opened).
    pub fn admits(&self, principal: &Principal, projects: &std::collections::HashSet<String>) -> bool {
        if principal.sees_everything() && principal.project_id.is_none() {
            return true;
        }
        match self {
            Audience::User(id) => *id == principal.user_id,
            Audience::Admins => false,
            Audience::Project(id) => projects.contains(id),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Published {
    pub event: Arc<Event>,
    pub audience: Audience,
}

pub struct EventBus {
    sender: broadcast::Sender<Published>,
    next_id: AtomicU64,
    recent: Mutex<VecDeque<Published>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> EventBus {
        let (sender, _) = broadcast::channel(4096);
        EventBus { sender, next_id: AtomicU64::new(1), recent: Mutex::new(VecDeque::with_capacity(REPLAY_CAPACITY)) }
    }

    /// Publishes a change (call after the transaction that made it has committed).
    pub fn publish(
        &self,
        kind: &str,
        resource_type: &str,
        resource_id: &str,
        data: Option<serde_json::Value>,
        audience: Audience,
    ) {
        // The id is taken under the replay lock so ids in `recent` stay in order.
        let mut recent = self.recent.lock().expect("event buffer poisoned");
        let event = Event {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            time: chrono::Utc::now(),
            kind: kind.to_string(),
            resource_type: resource_type.to_string(),
            resource_id: resource_id.to_string(),
            data,
        };
        let published = Published { event: Arc::new(event), audience };
        if recent.len() == REPLAY_CAPACITY {
            recent.pop_front();
        }
        recent.push_back(published.clone());
        // No receivers is fine: nobody is listening.
        let _ = self.sender.send(published);
    }

    /// A receiver of everything published from now on, plus the buffered events after
    /// `last_seen` (for resumption), taken atomically so none falls between.
    pub fn subscribe(&self, last_seen: Option<u64>) -> (Vec<Published>, broadcast::Receiver<Published>) {
        let recent = self.recent.lock().expect("event buffer poisoned");
        let receiver = self.sender.subscribe();
        let replay = match last_seen {
            Some(id) => recent.iter().filter(|p| p.event.id > id).cloned().collect(),
            None => Vec::new(),
        };
        (replay, receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replays_after_last_seen_and_streams_new_events() {
        let bus = EventBus::new();
        bus.publish("token.created", "token", "tok-1", None, Audience::Admins);
        bus.publish("token.deleted", "token", "tok-1", None, Audience::Admins);
        let (replay, mut rx) = bus.subscribe(Some(1));
        assert_eq!(replay.iter().map(|p| p.event.id).collect::<Vec<_>>(), vec![2]);
        bus.publish("token.created", "token", "tok-2", None, Audience::User("usr-a".into()));
        let next = rx.recv().await.unwrap();
        assert_eq!((next.event.id, next.event.resource_id.as_str()), (3, "tok-2"));
    }
}
