//! Durable history: every room message as it was received (plaintext, or
//! ciphertext for an encrypted room), in an embedded database (redb) in the
//! data dir, or in memory for an ephemeral node.
//!
//! Reads are short and may run on any thread. Writes go through one writer
//! thread ([`writer`]) that commits whatever is queued in one transaction.
//! The node hands it received messages in groups (every 10 ms at most, see
//! `node/event_loop.rs`) and our own at once; a caller that must know its
//! records are on disk waits for the acknowledgement, others are durable
//! with the next commit. After an I/O error the writer reopens the file
//! (every handle reads through one shared slot, so all let go of it).
//!
//! One table, keyed by room and time: a group commit appends to the same
//! few pages. A message is found by its key, `(topic, ts, hash)`; the node
//! knows each kept message's time by its hash (`Ids` in `node/rooms/ids.rs`). A
//! table indexed by hash cost a write to a page chosen at random for every
//! message, half the writer's time; stores made with it still open, and
//! the unused table is dropped.

mod writer;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use redb::{Database, ReadableDatabase, TableDefinition, backends::InMemoryBackend};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

pub use writer::Failure;

/// The history file inside the data dir.
pub const FILE: &str = "history.redb";

/// `(topic, ts, hash) -> frame`: one room's messages in `(ts, hash)` order.
const MESSAGES: TableDefinition<(&str, u64, &[u8]), &[u8]> = TableDefinition::new("messages");
/// Where earlier versions kept `hash -> (topic, ts)`; dropped when found.
const OLD_INDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("index");

/// The 32-byte key of a message id, as history sync exchanges it.
pub type Hash = [u8; 32];

/// The sync key of a message id.
pub fn hash(id: &str) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(id.as_bytes()));
    out
}

/// A message to keep.
#[derive(Debug, Clone)]
pub struct Record {
    /// The room's topic.
    pub topic: String,
    /// The author's timestamp.
    pub ts: u64,
    /// [`hash`] of the message id.
    pub hash: Hash,
    /// The envelope as received.
    pub frame: Vec<u8>,
}

/// Why the store failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The file is damaged; the message names it and how to recover.
    #[error(
        "history store {path} is damaged ({reason}): move it aside \
         (mv {path} {path}.damaged) and start again; peers will sync the history back"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file cannot be opened (permissions, locked by another process).
    #[error("history store {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A read or write failed (disk full, I/O error).
    #[error("{0}")]
    Io(String),
    /// The writer thread has stopped.
    #[error("the history writer has stopped")]
    Stopped,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

/// Handle to the history store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Slot>,
    writer: mpsc::Sender<writer::Job>,
    /// Where it lives; None in memory.
    pub path: Option<PathBuf>,
}

/// The open database, shared by every handle and the writer; empty while
/// the writer reopens the file after an I/O error (redb then refuses every
/// write until the database is dropped and opened again).
struct Slot(RwLock<Option<Arc<Database>>>);

impl Slot {
    fn get(&self) -> Result<Arc<Database>, StoreError> {
        self.0
            .read()
            .map_err(|_| StoreError::Stopped)?
            .clone()
            .ok_or_else(|| {
                StoreError::Io("the history store is closed until it can be reopened".into())
            })
    }

    /// Takes the database out and waits (up to 5 s) for readers to drop
    /// their clones, then drops it: its file is closed. False if a reader
    /// held on; the database is put back then.
    fn release(&self) -> bool {
        let Ok(mut slot) = self.0.write() else {
            return false;
        };
        let Some(mut db) = slot.take() else {
            return true;
        };
        drop(slot);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Arc::try_unwrap(db) {
                Ok(db) => {
                    drop(db);
                    return true;
                }
                Err(still) if std::time::Instant::now() < deadline => {
                    db = still;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(still) => {
                    if let Ok(mut slot) = self.0.write() {
                        *slot = Some(still);
                    }
                    return false;
                }
            }
        }
    }

    fn set(&self, db: Database) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(Arc::new(db));
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`, checking its integrity.
    /// Failures of later writes are sent to `failures`.
    pub fn open(dir: &Path, failures: mpsc::Sender<Failure>) -> Result<Store, StoreError> {
        let path = dir.join(FILE);
        // redb panics on some damaged files instead of returning an error
        // (turned into the error it is). Opening runs at start-up, before
        // any other thread, so silencing the panic report here hides nothing.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let opened = open_file(&path);
        std::panic::set_hook(hook);
        Store::start(opened?, Some(path), failures)
    }

    /// Refuses a store file that is there but empty (0 bytes), for a data
    /// dir that was used before: what `> history.redb`, or a crash on a
    /// filesystem that does not journal data, leaves. Opened, it would be
    /// a new, empty history, and every message gone without a word. (A
    /// missing file is a fresh start, as after `mv … .damaged`.)
    pub fn refuse_emptied(dir: &Path) -> Result<(), StoreError> {
        let path = dir.join(FILE);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() && meta.len() == 0 => Err(StoreError::Corrupt {
                path,
                reason: "it is empty (0 bytes), though this data dir was used before".into(),
            }),
            _ => Ok(()),
        }
    }

    /// A store in memory, for an ephemeral node.
    pub fn in_memory(failures: mpsc::Sender<Failure>) -> Result<Store, StoreError> {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .map_err(io)?;
        Store::start(db, None, failures)
    }

    fn start(
        db: Database,
        path: Option<PathBuf>,
        failures: mpsc::Sender<Failure>,
    ) -> Result<Store, StoreError> {
        let txn = db.begin_write().map_err(io)?;
        txn.open_table(MESSAGES).map_err(io)?;
        if txn.delete_table(OLD_INDEX).map_err(io)? {
            tracing::info!("history store: dropped the old index table");
        }
        txn.commit().map_err(io)?;
        let db = Arc::new(Slot(RwLock::new(Some(Arc::new(db)))));
        let writer = writer::spawn(db.clone(), path.clone(), failures)?;
        Ok(Store { db, writer, path })
    }

    /// Asks the writer whether the store can commit again; after a failed
    /// write, redb wants the database reopened, and the writer does that.
    /// Fails only if the queue is full or the writer has stopped.
    pub fn probe(&self) -> Result<Saving, StoreError> {
        let (ack, done) = oneshot::channel();
        self.writer
            .try_send(writer::Job::Probe { ack })
            .map_err(queue_error)?;
        Ok(done)
    }

    /// Queues records; they are committed with the writer's next commit.
    /// Fails only if the queue is full or the writer has stopped.
    pub fn append_soon(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.writer
            .try_send(writer::Job::Append { records, ack: None })
            .map_err(queue_error)
    }

    /// Queues records and returns at once; the receiver resolves when they
    /// are committed (or failed to be). Fails only if the queue is full or
    /// the writer has stopped.
    pub fn append_acked(&self, records: Vec<Record>) -> Result<Saving, StoreError> {
        let (job, done) = acked_append(records);
        self.writer.try_send(job).map_err(queue_error)?;
        Ok(done)
    }

    /// Appends records and waits until they are committed to disk.
    pub async fn append_durable(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let (job, done) = acked_append(records);
        self.writer
            .send(job)
            .await
            .map_err(|_| StoreError::Stopped)?;
        done.await.map_err(|_| StoreError::Stopped)?
    }

    /// Commits what is queued and closes the database file (other handles
    /// of this store then fail with [`StoreError::Stopped`]).
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.writer.send(writer::Job::Close { ack }).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Deletes a room's messages older than `ts`.
    pub async fn prune(&self, topic: &str, ts: u64) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        let job = writer::Job::Prune {
            topic: topic.to_owned(),
            before_ts: ts,
            ack,
        };
        self.writer
            .send(job)
            .await
            .map_err(|_| StoreError::Stopped)?;
        done.await.map_err(|_| StoreError::Stopped)?
    }

    /// A read transaction, with the database it reads: held for the whole
    /// read, so that a reopen waits for it.
    fn read(&self) -> Result<(Arc<Database>, redb::ReadTransaction), StoreError> {
        let db = self.db.get()?;
        let txn = db.begin_read().map_err(io)?;
        Ok((db, txn))
    }

    /// Every `(ts, hash)` of a room, in order. Blocking.
    pub fn ids(&self, topic: &str) -> Result<Vec<(u64, Hash)>, StoreError> {
        let (_db, txn) = self.read()?;
        let table = txn.open_table(MESSAGES).map_err(io)?;
        let mut out = Vec::new();
        for entry in table.range((topic, 0u64, &[][..])..).map_err(io)? {
            let (key, _) = entry.map_err(io)?;
            let (t, ts, h) = key.value();
            if t != topic {
                break;
            }
            out.push((ts, to_hash(h)));
        }
        Ok(out)
    }

    /// The frames of a room's messages with these keys that are here, in the
    /// given order. Blocking.
    pub fn frames(&self, topic: &str, keys: &[(u64, Hash)]) -> Result<Vec<Vec<u8>>, StoreError> {
        let (_db, txn) = self.read()?;
        let messages = txn.open_table(MESSAGES).map_err(io)?;
        let mut out = Vec::with_capacity(keys.len());
        for (ts, h) in keys {
            if let Some(frame) = messages.get((topic, *ts, &h[..])).map_err(io)? {
                out.push(frame.value().to_vec());
            }
        }
        Ok(out)
    }

    /// Up to `limit` frames of a room before `(ts, hash)` (or the newest),
    /// oldest first. Blocking.
    pub fn page(
        &self,
        topic: &str,
        before: Option<(u64, Hash)>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let (_db, txn) = self.read()?;
        let table = txn.open_table(MESSAGES).map_err(io)?;
        let start = (topic, 0u64, &[][..]);
        let end_hash;
        let range = match &before {
            Some((ts, h)) => {
                end_hash = *h;
                table
                    .range(start..(topic, *ts, &end_hash[..]))
                    .map_err(io)?
            }
            None => table
                .range(start..(topic, u64::MAX, &[0xffu8; 33][..]))
                .map_err(io)?,
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for entry in range.rev().take(limit) {
            let (_, frame) = entry.map_err(io)?;
            out.push(frame.value().to_vec());
        }
        out.reverse();
        Ok(out)
    }

    /// How many messages of a room are kept. Blocking.
    pub fn count(&self, topic: &str) -> Result<usize, StoreError> {
        Ok(self.ids(topic)?.len())
    }
}

/// Resolves when an [`Store::append_acked`] write is committed.
pub type Saving = oneshot::Receiver<Result<(), StoreError>>;

/// An append job whose commit the returned receiver reports.
fn acked_append(records: Vec<Record>) -> (writer::Job, Saving) {
    let (ack, done) = oneshot::channel();
    (
        writer::Job::Append {
            records,
            ack: Some(ack),
        },
        done,
    )
}

fn queue_error<T>(e: mpsc::error::TrySendError<T>) -> StoreError {
    match e {
        mpsc::error::TrySendError::Full(_) => {
            StoreError::Io("the history write queue is full".into())
        }
        mpsc::error::TrySendError::Closed(_) => StoreError::Stopped,
    }
}

/// Opens (or creates) the database file and checks it; a damaged file,
/// even one redb panics on, is [`StoreError::Corrupt`].
fn open_file(path: &Path) -> Result<Database, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let opened = std::panic::catch_unwind(|| -> Result<Database, StoreError> {
        let mut db = match Database::create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason))) => {
                return Err(corrupt(reason));
            }
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                if e.kind() == std::io::ErrorKind::InvalidData =>
            {
                return Err(corrupt(e.to_string()));
            }
            Err(e) => {
                return Err(StoreError::Open {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                });
            }
        };
        match db.check_integrity() {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                path = %path.display(),
                "history store was repaired after an unclean stop"
            ),
            Err(e) => return Err(corrupt(e.to_string())),
        }
        Ok(db)
    });
    match opened {
        Ok(result) => result,
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unreadable".into());
            Err(corrupt(reason))
        }
    }
}

fn to_hash(bytes: &[u8]) -> Hash {
    let mut h = [0u8; 32];
    let n = bytes.len().min(32);
    h[..n].copy_from_slice(&bytes[..n]);
    h
}

#[cfg(test)]
mod tests;
