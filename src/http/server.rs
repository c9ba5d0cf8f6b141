//! Serving the router on a socket with hyper directly, so its timer is
//! installed and a client that never finishes its request head is cut off;
//! and stopping gracefully: no new connections, in-flight requests finish,
//! bounded by a grace period.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};

use super::{AppState, Error, Token, router};
use crate::node::Node;

/// Time a client has to send a complete request head, also the longest a
/// kept-alive connection may sit idle.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for in-flight requests before closing anyway.
pub const GRACE: Duration = Duration::from_secs(3);
/// Connections served at once. Further ones are still accepted, but get
/// [`OVER_CAP_HEADER_TIMEOUT`] to send their request head, and only the
/// probes (`/health`, `/ready`) are answered on them: a client holding
/// every connection open (slowloris) cannot fail a liveness probe.
pub const MAX_CONNECTIONS: usize = 512;
/// Connections over the cap at once; past this they are closed unread.
const MAX_OVER_CAP: usize = 1024;
/// Time a connection over the cap has to send its request head.
const OVER_CAP_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A bound sidecar, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    header_read_timeout: Duration,
    max_connections: usize,
}

impl Server {
    /// Binds `addr` for `node`'s API. Check the access rules first
    /// ([`super::Config::token`]).
    pub async fn bind(
        addr: SocketAddr,
        node: Node,
        token: Option<Token>,
        allowed_hosts: Vec<String>,
    ) -> Result<Server, Error> {
        let listener = TcpListener::bind(addr).await.map_err(|e| Error::Bind {
            addr,
            reason: if e.kind() == std::io::ErrorKind::AddrInUse {
                "address already in use".into()
            } else {
                e.to_string()
            },
        })?;
        Ok(Server {
            listener,
            state: AppState::new(node, token, allowed_hosts),
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        })
    }

    /// Changes the header read timeout (tests use a short one).
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Changes the cap on connections served at once (tests use a small
    /// one).
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves; then stops accepting, ends event
    /// streams, and waits up to [`GRACE`] for requests in flight.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            state,
            header_read_timeout,
            max_connections,
        } = self;
        let app = router(state.clone());
        let probes = super::probes_router(state.clone(), max_connections);
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .keep_alive(true);
        let mut over_cap = http1::Builder::new();
        over_cap
            .timer(TokioTimer::new())
            .header_read_timeout(OVER_CAP_HEADER_TIMEOUT.min(header_read_timeout))
            .keep_alive(false);
        let graceful = GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(max_connections));
        let spare = Arc::new(Semaphore::new(MAX_OVER_CAP));
        tokio::pin!(shutdown);
        loop {
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "http accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let io = TokioIo::new(stream);
            let (connection, permit) = if let Ok(permit) = slots.clone().try_acquire_owned() {
                let service = TowerToHyperService::new(app.clone());
                (
                    graceful.watch(builder.serve_connection(io, service)),
                    permit,
                )
            } else if let Ok(permit) = spare.clone().try_acquire_owned() {
                tracing::debug!(%remote, "http connections at the cap: serving probes only");
                let service = TowerToHyperService::new(probes.clone());
                (
                    graceful.watch(over_cap.serve_connection(io, service)),
                    permit,
                )
            } else {
                tracing::debug!(%remote, "http connections far over the cap: closed");
                continue;
            };
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%remote, error = %e, "http connection ended");
                }
                drop(permit);
            });
        }
        drop(listener);
        state.close();
        tracing::debug!("http server stopping");
        if tokio::time::timeout(GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_secs = GRACE.as_secs(),
                "http requests still in flight after the grace period; closing them"
            );
        }
    }
}
