//! `GET /events`: the node's events as Server-Sent Events, each `data:` the
//! same JSON object `--json` prints and each `id:` its number in the
//! sidecar's journal. A client that comes back with `Last-Event-ID` first
//! gets what it missed (or a `reset` event when that is no longer held).
//! The stream ends when the server stops.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    http::HeaderMap,
    response::sse::{self, KeepAlive, Sse},
};
use futures::{Stream, StreamExt as _};
use serde_json::json;
use tokio::sync::{broadcast, watch};

use super::{
    AppState,
    journal::{self, Entry, Replay},
};

/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<sse::Event, Infallible>>> {
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    // Subscribed before the answer's head is sent: a client that has the
    // head sees every event from then on, after what it missed.
    let (replay, live) = journal::open(&state.journal, last);
    let first: Vec<sse::Event> = match replay {
        None => Vec::new(),
        Some(Replay::Missed(missed)) => missed.iter().map(numbered).collect(),
        Some(Replay::Reset(held)) => std::iter::once(reset(last))
            .chain(held.iter().map(numbered))
            .collect(),
    };
    let closing = state.closing.subscribe();
    let live = futures::stream::unfold((live, closing), |(mut live, mut closing)| async move {
        let event = next(&mut live, &mut closing).await?;
        Some((event, (live, closing)))
    });
    let stream = futures::stream::iter(first).chain(live).map(Ok);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

fn numbered((id, json): &Entry) -> sse::Event {
    sse::Event::default().id(id.as_str()).data(&**json)
}

/// Tells a client that what it holds may be stale.
fn reset(last: Option<&str>) -> sse::Event {
    let data = json!({
        "event": "reset",
        "last_event_id": last,
        "message": "the events after your last one are no longer held: reload history and rooms",
    });
    sse::Event::default().data(data.to_string())
}

async fn next(
    live: &mut broadcast::Receiver<Entry>,
    closing: &mut watch::Receiver<bool>,
) -> Option<sse::Event> {
    if *closing.borrow() {
        return None;
    }
    let entry = tokio::select! {
        _ = closing.wait_for(|closed| *closed) => return None,
        entry = live.recv() => entry,
    };
    match entry {
        Ok(entry) => Some(numbered(&entry)),
        Err(broadcast::error::RecvError::Lagged(n)) => {
            let data = json!({
                "event": "error",
                "message": format!(
                    "stream too slow: {n} events were not sent; reconnect with Last-Event-ID to get them"
                ),
            });
            Some(sse::Event::default().data(data.to_string()))
        }
        Err(broadcast::error::RecvError::Closed) => None,
    }
}
