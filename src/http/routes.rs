//! The request handlers: each turns one request into one call on the node
//! handle and its answer into JSON.

use axum::{
    Json,
    extract::{
        Path, Query, State,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AppState,
    auth::{self, Access},
    error::AppError,
    open,
};
use crate::{
    limits::RING_CAP,
    node::{self, PeerInfo, RoomInfo},
    protocol::ChatMessage,
};

/// Messages returned by `GET /rooms/{room}/messages` without `limit`.
pub(super) const DEFAULT_LIMIT: usize = 50;

type Result<T> = std::result::Result<T, AppError>;

/// Liveness: the process answers and its node task runs. Never depends on
/// peers.
pub(super) async fn health(State(state): State<AppState>) -> Response {
    if state.node.is_alive() {
        Json(json!({ "status": "UP" })).into_response()
    } else {
        let body = json!({ "status": "DOWN", "error": "the node task has stopped" });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// Readiness: listening, in a room, and connected where peers were given.
pub(super) async fn ready(State(state): State<AppState>) -> Response {
    match state.node.readiness().await {
        Ok(r) if r.ready => Json(json!({ "status": "READY", "detail": r })).into_response(),
        Ok(r) => {
            let reason = r.reason.clone().unwrap_or_default();
            let body = json!({ "status": "NOT_READY", "error": reason, "detail": r });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
        Err(e) => {
            let body = json!({ "status": "NOT_READY", "error": e.to_string() });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// The node's status; to a caller without the token, its public face
/// (see `open`).
pub(super) async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    if auth::presented(&state, &headers) == Access::Granted {
        return Ok(Json(json!(state.node.status().await?)));
    }
    let rooms = state.node.rooms().await?;
    let status = state.node.status().await?;
    Ok(Json(open::status(&status, &rooms)))
}

pub(super) async fn peers(State(state): State<AppState>) -> Result<Json<Vec<PeerInfo>>> {
    Ok(Json(state.node.peers().await?))
}

/// Joined rooms; to a caller without the token, the plain ones only.
pub(super) async fn rooms(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<RoomInfo>>> {
    let rooms = state.node.rooms().await?;
    if auth::presented(&state, &headers) == Access::Granted {
        return Ok(Json(rooms));
    }
    Ok(Json(open::rooms(rooms)))
}

#[derive(Debug, Deserialize)]
pub(super) struct HistoryQuery {
    limit: Option<usize>,
    before: Option<String>,
}

/// A page size from the query: 1 to [`RING_CAP`], by default [`DEFAULT_LIMIT`].
fn page_limit(limit: Option<usize>) -> Result<usize> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=RING_CAP => Ok(n),
        _ => Err(AppError::bad_request(format!(
            "limit must be 1 to {RING_CAP}"
        ))),
    }
}

/// Recent messages of a joined room, oldest first.
pub(super) async fn history(
    State(state): State<AppState>,
    room: std::result::Result<Path<String>, PathRejection>,
    query: std::result::Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Vec<ChatMessage>>> {
    let Path(room) = room?;
    let Query(query) = query?;
    let limit = page_limit(query.limit)?;
    let messages = state
        .node
        .history(&room, limit, query.before.as_deref())
        .await?;
    Ok(Json(messages))
}

/// An invite ticket for a joined room, with what it says.
pub(super) async fn invite(
    State(state): State<AppState>,
    room: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>> {
    let Path(room) = room?;
    let ticket = state.node.invite(&room).await?;
    Ok(Json(serde_json::json!({
        "ticket": ticket.encode(),
        "room": ticket.room,
        "encrypted": ticket.encrypted,
        "addrs": ticket.addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "created": ticket.created,
        "expires": ticket.expires(),
    })))
}

/// `?q=TEXT&limit=N` of the search endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchQuery {
    q: String,
    limit: Option<usize>,
}

/// Messages of a joined room that contain `q` (any case), newest `limit`,
/// oldest first. Encrypted rooms are searched in memory, never indexed.
pub(super) async fn search(
    State(state): State<AppState>,
    room: std::result::Result<Path<String>, PathRejection>,
    query: std::result::Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Vec<ChatMessage>>> {
    let Path(room) = room?;
    let Query(query) = query?;
    let limit = page_limit(query.limit)?;
    if query.q.trim().is_empty() {
        return Err(AppError::bad_request("q must not be empty"));
    }
    Ok(Json(state.node.search(&query.q, Some(&room), limit).await?))
}

/// The body of the sending endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Text {
    text: String,
}

/// Sends to a room exactly as typed text is sent: queued (`pending`) while
/// no peer of the room is reachable.
pub(super) async fn publish(
    State(state): State<AppState>,
    room: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Json<Text>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>)> {
    let Path(room) = room?;
    let Json(body) = body?;
    let sent = state.node.publish(&room, &body.text).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": sent.id, "pending": sent.pending })),
    ))
}

/// The body of `POST /rooms/{room}/join`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Join {
    passphrase: Option<String>,
}

/// Joins a room: encrypted with a passphrase (the key is derived once, here),
/// open without one. Also gives an already joined room its passphrase.
pub(super) async fn join(
    State(state): State<AppState>,
    room: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Json<Join>, JsonRejection>,
) -> Result<Json<Value>> {
    let Path(room) = room?;
    let Json(body) = body?;
    let joined = match body.passphrase.as_deref() {
        Some("") => return Err(AppError::bad_request("passphrase must not be empty")),
        Some(pass) => state.node.join_encrypted(&room, pass).await?,
        None => state.node.join(&room).await?,
    };
    let encrypted = body.passphrase.is_some();
    Ok(Json(
        json!({ "room": room, "joined": joined, "encrypted": encrypted }),
    ))
}

/// Leaves a room (its key, if any, is forgotten).
pub(super) async fn leave(
    State(state): State<AppState>,
    room: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let Path(room) = room?;
    if !state.node.leave(&room).await? {
        return Err(node::Error::NotJoined(room).into());
    }
    Ok(Json(json!({ "room": room, "left": true })))
}

/// Sends a direct message and waits for its receipt.
pub(super) async fn direct(
    State(state): State<AppState>,
    peer: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Json<Text>, JsonRejection>,
) -> Result<Json<Value>> {
    let Path(peer) = peer?;
    let Json(body) = body?;
    let receipt = state.node.send_direct(&peer, &body.text).await?;
    Ok(Json(
        json!({ "id": receipt.id, "to": receipt.to, "delivered": true }),
    ))
}

/// Prometheus scrape.
pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response> {
    let text = state.node.encode_metrics().map_err(|e| {
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

pub(super) async fn not_found(method: Method, uri: Uri) -> AppError {
    AppError::not_found(format!("no such endpoint: {method} {}", uri.path()))
}

pub(super) async fn method_not_allowed(method: Method, uri: Uri) -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
