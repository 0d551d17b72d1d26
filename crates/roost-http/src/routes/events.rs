//! `/v1/events`: resource changes as server-sent events.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use roost_api::ErrorResponse;
use roost_api::events::{Event, EventFilter};
use roost_control::Principal;
use roost_control::events::Published;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::Query;

/// Stream changes to resources you can see, as `text/event-stream`.
///
/// Each message's `event:` is the event type and `id:` its number in the durable event
/// log; reconnect with `Last-Event-ID` to receive what was missed (while the log still
/// holds it: when it no longer does, a `lagged` message says so and the client should
/// list again). Filter
/// with `?type=token,operation` (resource or event types) and `?resource_id=`. The
/// stream follows its credential: events of a project stop when you leave it, and when
/// the token is revoked, the session ends or expires, or the user is disabled, a last
/// `closed` message carries the error (`{"error": {"code", "message"}}`) and the stream
/// ends.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventFilter),
    responses(
        (status = 200, description = "A stream of events", content_type = "text/event-stream", body = Event),
        (status = 401, body = ErrorResponse),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    auth: Auth,
    Query(filter): Query<EventFilter>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let last_seen = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    let control = state.control.clone();
    // Watch for revocations before reading the rights, so none falls between the two.
    let mut changes = control.credential_changes();
    changes.mark_unchanged();
    let (replay, mut live, truncated) = match last_seen {
        Some(seen) => {
            control.events().subscribe_after(control.store(), seen).await.map_err(roost_control::Error::from)?
        }
        None => (Vec::new(), control.events().subscribe(), None),
    };
    // The last event sent, so a stream that falls behind the live channel resumes from
    // the log without a gap or a repeat.
    let mut sent = replay.last().map(|p| p.event.id).or(last_seen).unwrap_or(0);
    let shutdown = control.shutdown().clone();
    let secret = auth.credential().to_string();
    let mut principal = auth.0.clone();
    let mut projects = control.visible_project_ids(&principal).await?;
    let mut next_check = next_check_at(&principal);
    let stream = async_stream::stream! {
        if truncated.is_some() {
            yield Ok(lagged());
        }
        for p in replay.iter().filter(|p| visible(&principal, &projects, &filter, p)) {
            yield Ok(to_sse(&p.event));
        }
        loop {
            // The stream lives only as long as its credential would be accepted: checked
            // again when anyone's credentials or rights change (before anything further
            // is sent), at its expiry, and every minute (changes made by another server).
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                changed = changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    None
                }
                _ = tokio::time::sleep_until(next_check) => None,
                next = live.recv() => Some(next),
            };
            if next.is_none() || changes.has_changed().unwrap_or(false) {
                changes.mark_unchanged();
                match control.event_stream_access(&secret).await {
                    Ok((p, ids)) => {
                        (principal, projects) = (p, ids);
                        next_check = next_check_at(&principal);
                    }
                    Err(e) => {
                        yield Ok(closed(&e));
                        break;
                    }
                }
            }
            match next {
                None => {}
                // Already sent from the log after falling behind.
                Some(Ok(p)) if p.event.id <= sent => {}
                Some(Ok(p)) => {
                    sent = p.event.id;
                    if visible(&principal, &projects, &filter, &p) {
                        yield Ok(to_sse(&p.event));
                    }
                }
                // The stream fell behind the live channel: what it missed is read from
                // the log, in order; only what the log no longer holds is lost.
                Some(Err(RecvError::Lagged(_))) => {
                    let upto = control.events().delivered();
                    match control.events().read_range(control.store(), sent as i64, upto).await {
                        Ok((missed, truncated)) => {
                            if truncated.is_some() {
                                yield Ok(lagged());
                            }
                            for p in missed {
                                sent = p.event.id;
                                if visible(&principal, &projects, &filter, &p) {
                                    yield Ok(to_sse(&p.event));
                                }
                            }
                        }
                        Err(_) => yield Ok(lagged()),
                    }
                }
                Some(Err(RecvError::Closed)) => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// How often an open stream checks its credential without being told of a change.
const RECHECK_EVERY: Duration = Duration::from_secs(60);

/// When to check the credential next without being told: at its expiry, or in a minute.
fn next_check_at(principal: &Principal) -> tokio::time::Instant {
    let left = principal.expires_at.map_or(RECHECK_EVERY, |at| {
        Duration::from_millis(at.saturating_sub(roost_store::now_ms()).max(0) as u64).min(RECHECK_EVERY)
    });
    tokio::time::Instant::now() + left
}

fn visible(principal: &Principal, projects: &HashSet<String>, filter: &EventFilter, p: &Published) -> bool {
    p.audience.admits(principal, projects) && filter.accepts(&p.event)
}

/// The stream's last message when its credential stopped being accepted: `closed`, with
/// the error a new request would get (e.g. `unauthorized`, "unknown or revoked token").
fn closed(e: &roost_control::Error) -> SseEvent {
    let body = ErrorResponse {
        error: roost_api::ErrorBody {
            code: e.code,
            message: e.public_message().to_string(),
            request_id: None,
            details: Vec::new(),
        },
    };
    SseEvent::default().event("closed").data(serde_json::to_string(&body).unwrap_or_default())
}

/// Some events are gone for this stream (pruned from the log): the client should list
/// again.
fn lagged() -> SseEvent {
    SseEvent::default().event("lagged").data("{}")
}

fn to_sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.id.to_string())
        .event(event.kind.as_str())
        .data(serde_json::to_string(event).unwrap_or_default())
}
