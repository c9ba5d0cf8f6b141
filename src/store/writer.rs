//! The one thread that writes history: it takes every job queued, commits
//! them in one transaction, acknowledges the waiters, and reports a failure
//! rather than lose it silently. After a failed write redb refuses every
//! later one ("previous I/O error") until the database is opened again: a
//! probe finds that and reopens the file.

use std::{path::PathBuf, sync::Arc};

use redb::{Database, ReadableTable};
use tokio::sync::{mpsc, oneshot};

use super::{MESSAGES, Record, Slot, StoreError, io, open_file};

/// Jobs waiting for the writer; enough for bursts of received messages.
const QUEUE: usize = 16 * 1024;

/// A write that failed with no caller waiting for it: the node reports it
/// ("not saved: <reason>") and marks itself degraded.
#[derive(Debug, Clone)]
pub struct Failure {
    /// How many records were not saved.
    pub records: usize,
    /// Why.
    pub reason: String,
}

pub(super) enum Job {
    /// Commit what is queued, release the database, stop.
    Close { ack: oneshot::Sender<()> },
    Append {
        records: Vec<Record>,
        ack: Option<oneshot::Sender<Result<(), StoreError>>>,
    },
    Prune {
        topic: String,
        before_ts: u64,
        ack: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Commit nothing, reopening the file first if redb asks for it: does
    /// the store work again?
    Probe {
        ack: oneshot::Sender<Result<(), StoreError>>,
    },
}

pub(super) fn spawn(
    db: Arc<Slot>,
    path: Option<PathBuf>,
    failures: mpsc::Sender<Failure>,
) -> Result<mpsc::Sender<Job>, StoreError> {
    let (tx, rx) = mpsc::channel(QUEUE);
    std::thread::Builder::new()
        .name("history-writer".into())
        .spawn(move || {
            let closed = run(&db, path.as_ref(), rx, &failures);
            // Release the file before saying so, so it can be opened again.
            db.release();
            if let Some(ack) = closed {
                let _ = ack.send(());
            }
        })
        .map_err(io)?;
    Ok(tx)
}

/// Runs until every sender is gone or a close job comes (returned).
fn run(
    slot: &Slot,
    path: Option<&PathBuf>,
    mut jobs: mpsc::Receiver<Job>,
    failures: &mpsc::Sender<Failure>,
) -> Option<oneshot::Sender<()>> {
    let mut closing = None;
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(more) = jobs.try_recv() {
            batch.push(more);
        }
        let mut appends = Vec::new();
        let mut waiters = Vec::new();
        let mut probes = Vec::new();
        let mut unacked = 0;
        for job in batch {
            match job {
                Job::Append { records, ack } => {
                    match ack {
                        Some(ack) => waiters.push(ack),
                        None => unacked += records.len(),
                    }
                    appends.extend(records);
                }
                Job::Prune {
                    topic,
                    before_ts,
                    ack,
                } => {
                    let result = slot.get().and_then(|db| prune(&db, &topic, before_ts));
                    let _ = ack.send(result);
                }
                Job::Probe { ack } => probes.push(ack),
                Job::Close { ack } => closing = Some(ack),
            }
        }
        let result = if appends.is_empty() {
            Ok(())
        } else {
            slot.get().and_then(|db| commit(&db, &appends))
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, records = appends.len(), "history not saved");
            if unacked > 0 {
                let _ = failures.try_send(Failure {
                    records: unacked,
                    reason: e.to_string(),
                });
            }
        }
        for ack in waiters {
            let _ = ack.send(result.clone());
        }
        // After the batch's commit: a probe never reports a store that
        // has just failed as working.
        for ack in probes {
            let _ = ack.send(result.clone().and_then(|()| probe(slot, path)));
        }
        if closing.is_some() {
            return closing;
        }
    }
    None
}

/// An empty commit; when redb wants the database reopened (or it is not
/// open), drops it (every handle's clone too) and opens the file again.
fn probe(slot: &Slot, path: Option<&PathBuf>) -> Result<(), StoreError> {
    // Closed: an earlier reopen could not open the file.
    if let Ok(db) = slot.get() {
        match empty_commit(&db) {
            Ok(()) => return Ok(()),
            Err(redb::Error::PreviousIo) if path.is_some() => {}
            Err(e) => return Err(io(e)),
        }
    }
    let Some(path) = path else {
        return Err(StoreError::Stopped);
    };
    // Only the file that was open: a missing or emptied one would open
    // as a new, empty history, under an index that lists every message.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0) {
        return Err(StoreError::Io(format!(
            "{} is missing or empty: restart the node (peers sync the history back)",
            path.display()
        )));
    }
    tracing::info!("history store: reopening it after an I/O error");
    if !slot.release() {
        return Err(StoreError::Io(
            "the history store is still in use; it is reopened at the next try".into(),
        ));
    }
    slot.set(open_file(path)?);
    slot.get().and_then(|db| empty_commit(&db).map_err(io))
}

fn empty_commit(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(MESSAGES)?;
    txn.commit()?;
    Ok(())
}

fn commit(db: &Database, records: &[Record]) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(io)?;
    {
        let mut messages = txn.open_table(MESSAGES).map_err(io)?;
        for r in records {
            let key = (r.topic.as_str(), r.ts, &r.hash[..]);
            // A message held already keeps its first frame.
            if messages.get(key).map_err(io)?.is_none() {
                messages.insert(key, &r.frame[..]).map_err(io)?;
            }
        }
    }
    txn.commit().map_err(io)
}

fn prune(db: &Database, topic: &str, before_ts: u64) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(io)?;
    {
        let mut messages = txn.open_table(MESSAGES).map_err(io)?;
        let mut doomed = Vec::new();
        for entry in messages
            .range((topic, 0u64, &[][..])..(topic, before_ts, &[][..]))
            .map_err(io)?
        {
            let (key, _) = entry.map_err(io)?;
            let (_, ts, h) = key.value();
            doomed.push((ts, h.to_vec()));
        }
        for (ts, h) in doomed {
            messages.remove((topic, ts, &h[..])).map_err(io)?;
        }
    }
    txn.commit().map_err(io)
}
