//! The HTTP sidecar: health and readiness for probes, status, peers and
//! rooms for scripts, sending and a live event stream for front ends, and
//! Prometheus metrics. A client of the [`Node`] handle like every other
//! front end; the API is described in `docs/http.md`.
//!
//! [`router`] builds the axum app (tests drive it with `oneshot`, no
//! socket); [`Server`] binds it with hyper's timers installed and shuts it
//! down gracefully.

mod auth;
mod client;
mod config;
mod error;
mod events;
mod journal;
mod open;
mod routes;
mod server;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

pub use auth::Token;
pub use client::{ClientError, fetch_invite, healthcheck};
pub use config::{Config, DEFAULT_ADDR, TOKEN_ENV};
pub use error::AppError;
pub use server::{GRACE, HEADER_READ_TIMEOUT, MAX_CONNECTIONS, Server};

use crate::node::Node;

/// Largest request body.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest time a request may take to be answered (the answer's head; an
/// event stream then goes on). Longer than a direct message's receipt
/// timeout, so that one is reported as such (504).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the sidecar cannot start. Each message is one line naming the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A non-loopback address without a token.
    #[error(
        "refusing to serve HTTP on {0} without a token: set P2P_CHAT_HTTP_TOKEN or \
         --http-token-file, or use a loopback address such as 127.0.0.1:8081"
    )]
    NoToken(SocketAddr),
    /// The token is empty.
    #[error("the HTTP token is empty: put a secret in P2P_CHAT_HTTP_TOKEN or the token file")]
    EmptyToken,
    /// The token file cannot be read.
    #[error("cannot read the HTTP token file {}: {reason}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The address cannot be bound.
    #[error("cannot serve HTTP on {addr}: {reason} (choose another with --http, or --no-http)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// What every handler sees.
#[derive(Debug, Clone)]
pub struct AppState {
    node: Node,
    token: Option<Token>,
    allowed_hosts: Arc<[String]>,
    /// Set once the server stops: long-lived answers (the event stream)
    /// end, so the graceful shutdown does not wait for them.
    closing: Arc<watch::Sender<bool>>,
    /// The last events, numbered, for clients that reconnect.
    journal: Arc<std::sync::Mutex<journal::Journal>>,
}

impl AppState {
    /// State for a node, guarded by `token` if given, answering to IP
    /// addresses, `localhost` and `allowed_hosts`.
    /// Starts recording the node's events for the event stream: call it
    /// inside the runtime.
    pub fn new(node: Node, token: Option<Token>, allowed_hosts: Vec<String>) -> Self {
        let journal = Arc::new(std::sync::Mutex::new(journal::Journal::new(
            journal::JOURNAL_CAP,
        )));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(journal::record(node.subscribe(), journal.clone()));
            }
            Err(e) => tracing::warn!(error = %e, "no runtime: the event stream stays empty"),
        }
        AppState {
            node,
            token,
            allowed_hosts: allowed_hosts.into(),
            closing: Arc::new(watch::Sender::new(false)),
            journal,
        }
    }

    /// Ends the event streams now and refuses new ones.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// The API. Every answer is JSON (except `/metrics` and `/events`), every
/// error `{"error":"..."}`.
pub fn router(state: AppState) -> Router {
    let guarded = Router::new()
        .route(
            "/rooms/{room}/messages",
            get(routes::history).post(routes::publish),
        )
        .route("/rooms/{room}/search", get(routes::search))
        .route("/rooms/{room}/invite", get(routes::invite))
        .route("/rooms/{room}/join", post(routes::join))
        .route("/rooms/{room}/leave", post(routes::leave))
        .route("/direct/{peer}", post(routes::direct))
        .route("/events", get(events::stream))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .route("/status", get(routes::status))
        .route("/peers", get(routes::peers))
        .route("/rooms", get(routes::rooms))
        .route("/metrics", get(routes::metrics))
        .merge(guarded)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(timeout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::check_host,
        ))
        // The path only: a query can be chat content (`/search?q=`).
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The span of a request in the log: its method and path, never its query.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
    )
}

/// What a connection over the cap is served: the probes, and 503 for the
/// rest (the connection is closed after one answer).
pub(crate) fn probes_router(state: AppState, max_connections: usize) -> Router {
    Router::new()
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .fallback(move || async move {
            AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the API has {max_connections} connections open: only /health and \
                     /ready are served until one closes; try again"
                ),
            )
        })
        .layer(middleware::from_fn(timeout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::check_host,
        ))
        .with_state(state)
}

async fn timeout(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
        )
        .into_response(),
    }
}
