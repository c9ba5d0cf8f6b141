//! The one thread that writes history: it takes every job queued, commits
//! them in one transaction, acknowledges the waiters, and reports a failure
//! rather than lose it silently.

use std::sync::Arc;

use redb::{Database, ReadableTable};
use tokio::sync::{mpsc, oneshot};

use super::{MESSAGES, Record, StoreError, io};

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
}

pub(super) fn spawn(
    db: Arc<Database>,
    failures: mpsc::Sender<Failure>,
) -> Result<mpsc::Sender<Job>, StoreError> {
    let (tx, rx) = mpsc::channel(QUEUE);
    std::thread::Builder::new()
        .name("history-writer".into())
        .spawn(move || {
            let closed = run(&db, rx, &failures);
            // Release the file before saying so, so it can be opened again.
            drop(db);
            if let Some(ack) = closed {
                let _ = ack.send(());
            }
        })
        .map_err(io)?;
    Ok(tx)
}

/// Runs until every sender is gone or a close job comes (returned).
fn run(
    db: &Database,
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
                    let _ = ack.send(prune(db, &topic, before_ts));
                }
                Job::Close { ack } => closing = Some(ack),
            }
        }
        if appends.is_empty() {
            if closing.is_some() {
                return closing;
            }
            continue;
        }
        let result = commit(db, &appends);
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
        if closing.is_some() {
            return closing;
        }
    }
    None
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
