//! `/v1/events`: resource changes as server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use roost_api::ErrorResponse;
use roost_api::events::{Event, EventFilter};
use roost_control::events::Published;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::Query;

/// Stream changes to resources you can see, as `text/event-stream`.
///
/// Each message's `event:` is the event type and `id:` its number; reconnect with
/// `Last-Event-ID` to receive what was missed while the server still holds it. Filter
/// with `?type=token,operation` (resource or event types) and `?resource_id=`.
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
    let (replay, mut live) = state.control.events().subscribe(last_seen);
    let shutdown = state.control.shutdown().clone();
    let projects = state.control.visible_project_ids(&auth).await?;
    let principal = auth.0;
    let visible = move |p: &Published| p.audience.admits(&principal, &projects) && filter.accepts(&p.event);
    let stream = async_stream::stream! {
        for p in replay.iter().filter(|p| visible(p)) {
            yield Ok(to_sse(&p.event));
        }
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = live.recv() => next,
            };
            match next {
                Ok(p) if visible(&p) => yield Ok(to_sse(&p.event)),
                Ok(_) => {}
                // The client fell behind the buffer: tell it, so it can re-list.
                Err(RecvError::Lagged(missed)) => {
                    yield Ok(SseEvent::default().event("lagged").data(format!("{{\"missed\":{missed}}}")));
                }
                Err(RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn to_sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.id.to_string())
        .event(event.kind.as_str())
        .data(serde_json::to_string(event).unwrap_or_default())
}
