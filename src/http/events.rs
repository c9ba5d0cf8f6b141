//! `GET /events`: the node's events as Server-Sent Events, each `data:` the
//! same JSON object `--json` prints. The stream ends when the server stops.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    response::sse::{self, KeepAlive, Sse},
};
use futures::Stream;
use tokio::sync::{broadcast, watch};

use super::AppState;
use crate::node::{Event, Events};

/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) async fn stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<sse::Event, Infallible>>> {
    // Subscribed before the answer's head is sent: a client that has the
    // head sees every event from then on.
    let events = state.node.subscribe();
    let closing = state.closing.subscribe();
    let stream =
        futures::stream::unfold((events, closing), |(mut events, mut closing)| async move {
            let event = next(&mut events, &mut closing).await?;
            Some((Ok(event), (events, closing)))
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

async fn next(events: &mut Events, closing: &mut watch::Receiver<bool>) -> Option<sse::Event> {
    if *closing.borrow() {
        return None;
    }
    let event = tokio::select! {
        _ = closing.wait_for(|closed| *closed) => return None,
        event = events.recv() => event,
    };
    let event = match event {
        Ok(event) => event,
        Err(broadcast::error::RecvError::Lagged(n)) => Event::Error {
            message: format!("stream too slow: {n} events were not sent"),
        },
        Err(broadcast::error::RecvError::Closed) => return None,
    };
    match serde_json::to_string(&event) {
        Ok(json) => Some(sse::Event::default().data(json)),
        Err(e) => Some(sse::Event::default().comment(format!("unencodable event: {e}"))),
    }
}
