//! Events: every change appends its events to the durable log (`event_log`) in its own
//! transaction (see [`crate::kernel::Change`]); one reader per server reads the log in
//! sequence order and fans the events out to this server's streams, operation waits and
//! (later) webhooks. A commit wakes the reader at once; on PostgreSQL the commit also
//! notifies every other server (`LISTEN/NOTIFY`), so a client of any server sees every
//! change. `Last-Event-ID` replays from the log itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use roost_api::events::Event;
use roost_store::events::{EventRow, NOTIFY_CHANNEL};
use roost_store::{Backend, Store};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::Principal;

/// How many events a replay or one read of the log takes at most.
const READ_BATCH: u32 = 1000;
/// How often the reader looks at the log without being woken (a missed notification
/// from another server costs at most this much delay).
const POLL_EVERY: Duration = Duration::from_secs(2);

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

    /// As stored in the log.
    pub fn to_stored(&self) -> String {
        match self {
            Audience::User(id) => format!("user:{id}"),
            Audience::Admins => "admins".into(),
            Audience::Project(id) => format!("project:{id}"),
        }
    }

    /// From the log; anything unknown is for admins only.
    pub fn from_stored(s: &str) -> Audience {
        if let Some(id) = s.strip_prefix("user:") {
            Audience::User(id.to_string())
        } else if let Some(id) = s.strip_prefix("project:") {
            Audience::Project(id.to_string())
        } else {
            Audience::Admins
        }
    }
}

#[derive(Debug, Clone)]
pub struct Published {
    pub event: Arc<Event>,
    pub audience: Audience,
}

impl Published {
    fn from_row(row: EventRow) -> Published {
        let event = Event {
            id: row.seq.max(0) as u64,
            time: roost_store::to_time(row.time),
            kind: row.kind,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            data: row.data.as_deref().and_then(|d| serde_json::from_str(d).ok()),
        };
        Published { event: Arc::new(event), audience: Audience::from_stored(&row.audience) }
    }
}

/// What a subscriber missed that the log no longer holds (older events were pruned):
/// it should list again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

pub struct EventBus {
    sender: broadcast::Sender<Published>,
    wake: Notify,
    /// The sequence number of the last event broadcast.
    delivered: AtomicI64,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> EventBus {
        let (sender, _) = broadcast::channel(4096);
        EventBus { sender, wake: Notify::new(), delivered: AtomicI64::new(-1) }
    }

    /// Tells the reader that a commit appended events.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The last event this server has broadcast.
    pub fn delivered(&self) -> i64 {
        self.delivered.load(Ordering::Acquire)
    }

    /// A receiver of every event broadcast from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.sender.subscribe()
    }

    /// A receiver of what is broadcast from now on, plus the events after `last_seen`
    /// from the log (to resume a stream), without a gap or a repeat between the two:
    /// the receiver is taken first, and the replay stops at what it will deliver.
    pub async fn subscribe_after(
        &self,
        store: &Store,
        last_seen: u64,
    ) -> roost_store::Result<(Vec<Published>, broadcast::Receiver<Published>, Option<Truncated>)> {
        let receiver = self.sender.subscribe();
        let upto = self.delivered();
        let (replay, truncated) = self.read_range(store, last_seen as i64, upto).await?;
        Ok((replay, receiver, truncated))
    }

    /// The events in (`after`, `upto`] from the log, and whether some were already pruned.
    pub async fn read_range(
        &self,
        store: &Store,
        after: i64,
        upto: i64,
    ) -> roost_store::Result<(Vec<Published>, Option<Truncated>)> {
        let mut out = Vec::new();
        if upto <= after {
            return Ok((out, None));
        }
        let truncated = match store.first_event_seq().await? {
            Some(first) if first > after + 1 => Some(Truncated),
            None => Some(Truncated),
            _ => None,
        };
        let mut from = after;
        while from < upto {
            let rows = store.events_after(from, READ_BATCH).await?;
            let Some(last) = rows.last().map(|r| r.seq) else { break };
            out.extend(rows.into_iter().filter(|r| r.seq <= upto).map(Published::from_row));
            from = last;
        }
        Ok((out, truncated))
    }

    /// Reads the log from where it stands now and broadcasts every new event in order,
    /// until `shutdown`. Woken by local commits, by other servers' commits on PostgreSQL,
    /// and every [`POLL_EVERY`].
    pub async fn run_reader(self: Arc<Self>, store: Store, shutdown: CancellationToken) {
        let mut last = match store.last_event_seq().await {
            Ok(seq) => seq,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the event log's head; events start from 0");
                0
            }
        };
        self.delivered.store(last, Ordering::Release);
        let notified = Arc::new(Notify::new());
        if store.backend() == Backend::Postgres {
            tokio::spawn(listen(store.url().to_string(), notified.clone(), shutdown.clone()));
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = notified.notified() => {}
                _ = tokio::time::sleep(POLL_EVERY) => {}
            }
            loop {
                let rows = match store.events_after(last, READ_BATCH).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the event log");
                        break;
                    }
                };
                let full = rows.len() as u32 == READ_BATCH;
                for row in rows {
                    last = row.seq;
                    // No receivers is fine: nobody is listening.
                    let _ = self.sender.send(Published::from_row(row));
                    self.delivered.store(last, Ordering::Release);
                }
                if !full {
                    break;
                }
            }
        }
    }
}

/// Listens for other servers' commits on PostgreSQL; reconnects after a failure.
async fn listen(url: String, notified: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let attempt = async {
            let mut listener = roost_store::sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(NOTIFY_CHANNEL).await?;
            loop {
                listener.recv().await?;
                notified.notify_one();
            }
            #[allow(unreachable_code)]
            Ok::<(), roost_store::sqlx::Error>(())
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = attempt => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "event notifications from PostgreSQL stopped; reconnecting");
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_round_trip_through_the_log() {
        for a in [Audience::User("usr-a".into()), Audience::Admins, Audience::Project("prj-b".into())] {
            assert_eq!(Audience::from_stored(&a.to_stored()), a);
        }
        assert_eq!(Audience::from_stored("something-else"), Audience::Admins);
    }
}
