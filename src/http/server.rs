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
/// Connections served at once; further clients wait in the listen backlog.
const MAX_CONNECTIONS: usize = 512;
/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A bound sidecar, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    header_read_timeout: Duration,
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
        })
    }

    /// Changes the header read timeout (tests use a short one).
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
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
        } = self;
        let app = router(state.clone());
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .keep_alive(true);
        let graceful = GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = &mut shutdown => break,
            };
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
            let service = TowerToHyperService::new(app.clone());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
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
