//! Waits for the signals that ask a daemon to stop: SIGINT and SIGTERM.

/// Resolves when SIGINT (Ctrl-C) or SIGTERM arrives.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Like [`signal`], but listening from the moment it is called rather than
/// from the first poll: a signal that arrives while the node is still
/// starting is not lost (nor does it kill the process unhandled).
#[cfg(unix)]
pub fn listen() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Like [`signal`] (listening starts at the first poll on this platform).
#[cfg(not(unix))]
pub fn listen() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(signal())
}
