//! Work that blocks (the history store, key derivation, opening the data
//! dir) runs on tokio's blocking pool through these two helpers, so the
//! node task never waits on a disk, and a panic there comes back as an
//! error naming the work instead of a lost answer.

use super::{Error, Reply};

/// Runs `work` on the blocking pool and waits for it.
pub(crate) async fn run<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Interrupted {
            what,
            reason: e.to_string(),
        })?
}

/// Runs `work` on the blocking pool and answers `reply` with its result;
/// returns at once.
pub(crate) fn answer<T: Send + 'static>(
    reply: Reply<T>,
    what: &'static str,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) {
    tokio::spawn(async move {
        let _ = reply.send(run(what, work).await);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_an_error_naming_the_work() {
        let got: Result<(), Error> = run("reading the history", || panic!("boom")).await;
        let e = got.expect_err("the panic is an error");
        assert!(e.to_string().starts_with("reading the history"), "{e}");
        let (tx, rx) = tokio::sync::oneshot::channel();
        answer(tx, "counting", || Ok(7));
        assert_eq!(rx.await.expect("answered").expect("ok"), 7);
    }
}
