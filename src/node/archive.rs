//! The history store as the node task uses it. Writing: the group commit
//! ([`Archive`]), which holds what shows our own messages until the commit
//! that keeps them has returned. Reading, off the node task: pages older
//! than the in-memory ring, and search; encrypted rooms are decrypted in
//! memory with the room's key, and nothing readable is written.

use std::{pin::Pin, sync::Arc, time::Duration};

use libp2p::{
    futures::{
        StreamExt,
        future::{BoxFuture, OptionFuture},
        stream::FuturesOrdered,
    },
    gossipsub::TopicHash,
};
use tokio::{
    sync::mpsc,
    time::{Instant, Sleep},
};

use serde_bytes::ByteBuf;

use super::{
    Event, Reply, Sent,
    rooms::{Reading, Room},
};
use crate::{
    crypto::RoomKey,
    protocol::{ChatMessage, Envelope},
    store::{self, Failure, Hash, Record, Saving, Store, StoreError},
};

/// Frames read per step while paging or searching.
const STEP: usize = 256;
/// Most messages a search reads per room.
const SEARCH_SCAN: usize = 100_000;

/// What a handle needs to read a room's history.
#[derive(Debug, Clone)]
pub(crate) struct RoomAccess {
    pub(crate) name: String,
    pub(crate) topic: TopicHash,
    pub(crate) key: Option<Arc<RoomKey>>,
}

/// The store record of one of our messages; `frame` is `env` encoded.
pub(crate) fn record(topic: &TopicHash, env: &Envelope, frame: Vec<u8>) -> Record {
    Record {
        topic: topic.to_string(),
        ts: env.ts,
        hash: store::hash(&env.id),
        frame,
    }
}

/// How long a received message may wait for the store's next group commit:
/// one commit per burst instead of one per message.
const SAVE_DELAY: Duration = Duration::from_millis(10);
/// A batch this large is committed without waiting.
const SAVE_BATCH: usize = 1024;
/// How often a failing store is tried again.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// The node task's writing side of the store: the group commit, the events
/// and answers that wait for it (what was shown or acknowledged as sent is
/// committed), and the failing state with its probe. The event loop hands
/// it records and events and applies what it returns.
pub(crate) struct Archive {
    store: Store,
    /// Messages for the next group commit, due when `save_timer` fires.
    unsaved: Vec<Record>,
    save_timer: Pin<Box<Sleep>>,
    /// Events that show our own messages, emitted once the commit that
    /// holds them is done.
    held: Vec<Event>,
    /// Commits being waited for, in order.
    saving: FuturesOrdered<BoxFuture<'static, Saved>>,
    failures: mpsc::Receiver<Failure>,
    /// The last write failure, while the store is failing.
    error: Option<String>,
    /// When a failing store is tried next, and the try under way.
    next_probe: Instant,
    probing: Option<Saving>,
}

/// A group commit that something waits for, done or failed.
pub(crate) struct Saved {
    /// How many records it held.
    pub(super) records: usize,
    /// Why it failed.
    pub(super) result: Result<(), String>,
    /// Events held for it.
    pub(super) events: Vec<Event>,
    /// A publish answered once it is done.
    pub(super) answer: Option<(Reply<Sent>, Sent)>,
}

/// What the archive has for the event loop.
pub(crate) enum Step {
    /// Received messages waited long enough: save them.
    Due,
    /// A commit something waited for is done or failed.
    Saved(Saved),
    /// A commit nothing waited for failed.
    Failed(Failure),
    /// A probe of the failing store answered.
    Probed(Result<(), String>),
}

impl Archive {
    pub(crate) fn new(store: Store, failures: mpsc::Receiver<Failure>) -> Archive {
        Archive {
            store,
            unsaved: Vec::new(),
            save_timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            held: Vec::new(),
            saving: FuturesOrdered::new(),
            failures,
            error: None,
            next_probe: Instant::now(),
            probing: None,
        }
    }

    /// The store, for reads.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Whether a commit makes what it holds durable: the store is on disk.
    /// An ephemeral node's history is in memory and gone at any stop, so
    /// nothing of it waits for a commit.
    pub(crate) fn durable(&self) -> bool {
        self.store.path.is_some()
    }

    /// Why the store is failing, while it is.
    pub(crate) fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Adds a message to what the next `save` commits, with no timer and
    /// no early flush: the caller saves at once.
    pub(crate) fn keep_in_next_commit(&mut self, record: Record) {
        self.unsaved.push(record);
    }

    /// Queues a message for the next group commit; true when the batch is
    /// full and the caller should save now.
    pub(crate) fn keep_soon(&mut self, record: Record) -> bool {
        if self.unsaved.is_empty() {
            self.save_timer.as_mut().reset(Instant::now() + SAVE_DELAY);
        }
        self.unsaved.push(record);
        self.unsaved.len() >= SAVE_BATCH
    }

    /// Whether an event about one of our messages must wait for a commit
    /// (then [`Archive::hold`] it), or may be shown now.
    pub(crate) fn must_hold(&self) -> bool {
        self.durable() && !(self.unsaved.is_empty() && self.held.is_empty())
    }

    pub(crate) fn hold(&mut self, event: Event) {
        self.held.push(event);
    }

    /// Hands the messages waiting to the store's writer; the events held
    /// for them, and `answer`, wait for the commit. Returns a commit that
    /// failed at once (the writer's queue full or stopped).
    pub(crate) fn save(&mut self, answer: Option<(Reply<Sent>, Sent)>) -> Option<Saved> {
        let records = std::mem::take(&mut self.unsaved);
        let events = std::mem::take(&mut self.held);
        let n = records.len();
        let saved = Saved {
            records: n,
            result: Ok(()),
            events,
            answer,
        };
        if saved.events.is_empty() && saved.answer.is_none() {
            if n == 0 {
                return None;
            }
            return self.store.append_soon(records).err().map(|e| Saved {
                result: Err(e.to_string()),
                ..saved
            });
        }
        match self.store.append_acked(records) {
            Ok(ack) => {
                self.saving.push_back(Box::pin(async move {
                    let result = match ack.await {
                        Ok(result) => result.map_err(|e| e.to_string()),
                        Err(_) => Err(StoreError::Stopped.to_string()),
                    };
                    Saved { result, ..saved }
                }));
                None
            }
            Err(e) => Some(Saved {
                result: Err(e.to_string()),
                ..saved
            }),
        }
    }

    /// The next thing the event loop must act on.
    pub(crate) async fn next(&mut self) -> Step {
        tokio::select! {
            biased;
            () = &mut self.save_timer, if !self.unsaved.is_empty() => Step::Due,
            Some(saved) = self.saving.next(), if !self.saving.is_empty() => Step::Saved(saved),
            Some(failure) = self.failures.recv() => Step::Failed(failure),
            Some(probed) = OptionFuture::from(self.probing.as_mut()), if self.probing.is_some() => {
                self.probing = None;
                Step::Probed(match probed {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(_) => Err(StoreError::Stopped.to_string()),
                })
            }
            else => std::future::pending().await,
        }
    }

    /// The next commit still waited for, at a stop.
    pub(crate) async fn next_saved(&mut self) -> Option<Saved> {
        self.saving.next().await
    }

    /// Commits what is queued and closes the database file.
    pub(crate) async fn close(&mut self) {
        let store = self.store.clone();
        store.close().await;
    }

    /// Marks the store as failing: new messages are refused until a probe
    /// (every 5 s) finds it working again.
    pub(crate) fn failed(&mut self, reason: &str) {
        if self.error.is_none() {
            self.next_probe = Instant::now() + PROBE_EVERY;
        }
        self.error = Some(reason.to_owned());
    }

    /// Tries a failing store again when it is time.
    pub(crate) fn probe(&mut self, now: Instant) {
        if self.error.is_none() || self.probing.is_some() || now < self.next_probe {
            return;
        }
        self.next_probe = now + PROBE_EVERY;
        match self.store.probe() {
            Ok(ack) => self.probing = Some(ack),
            Err(e) => tracing::warn!(error = %e, "history store: cannot try it again"),
        }
    }

    /// A probe answered; the failure it cleared, if the store works again.
    pub(crate) fn probed(&mut self, result: Result<(), String>) -> Option<String> {
        match result {
            Ok(()) => {
                let was = self.error.take()?;
                tracing::info!(error = %was, "history store works again");
                Some(was)
            }
            Err(e) => {
                tracing::warn!(error = %e, "history store still failing");
                self.error = Some(e);
                None
            }
        }
    }
}

/// What the store holds of a room, read before joining it.
#[derive(Debug, Default)]
pub(crate) struct Preload {
    pub(crate) ids: Vec<(u64, Hash)>,
    pub(crate) recent: Vec<Vec<u8>>,
}

impl Preload {
    /// Reads a room's ids and its newest `ring` messages. Blocking.
    pub(crate) fn load(store: &Store, topic: &str, ring: usize) -> Result<Preload, StoreError> {
        Ok(Preload {
            ids: store.ids(topic)?,
            recent: store.page(topic, None, ring)?,
        })
    }
}

/// The node task's answer to a history query: from the ring, or "read the
/// store with this, from before this key".
#[derive(Debug)]
pub(crate) enum HistoryAnswer {
    Ring(Vec<crate::protocol::ChatMessage>),
    Store {
        access: RoomAccess,
        before: Option<(u64, Hash)>,
    },
}

impl HistoryAnswer {
    /// Where a page of `room`'s history comes from: the ring when it holds
    /// the page, else the store, before the key of the message `before`.
    /// Both are in `(ts, id hash)` order, so pages neither repeat nor skip.
    pub(crate) fn for_room(
        room: &Room,
        topic: TopicHash,
        limit: usize,
        before: Option<&str>,
    ) -> HistoryAnswer {
        if room.covers(limit, before) {
            return HistoryAnswer::Ring(room.recent(limit, before));
        }
        let access = RoomAccess {
            name: room.name.clone(),
            topic,
            key: room.key.clone(),
        };
        match before.map(|id| room.index.key_of(crate::store::hash(id))) {
            // No message has that id: none is before it.
            Some(None) => HistoryAnswer::Ring(Vec::new()),
            start => HistoryAnswer::Store {
                access,
                before: start.flatten(),
            },
        }
    }
}

/// Reads the frames asked for, within the response budget. Blocking.
pub(super) fn frames_for_peer(
    store: &Store,
    topic: &str,
    keys: &[(u64, Hash)],
) -> Result<Vec<ByteBuf>, StoreError> {
    let mut budget = crate::sync::RESPONSE_BUDGET;
    let mut out = Vec::new();
    for frame in store.frames(topic, keys)? {
        if frame.len() > budget {
            break;
        }
        budget -= frame.len();
        out.push(ByteBuf::from(frame));
    }
    Ok(out)
}

/// Walks a room's stored messages from the newest (or from before
/// `before`) back, yielding the readable ones, reading at most `scan`.
fn walk(
    store: &Store,
    access: &RoomAccess,
    before: Option<(u64, Hash)>,
    scan: usize,
    mut take: impl FnMut(ChatMessage) -> bool,
) -> Result<(), StoreError> {
    let room = Room::new(&access.name, access.key.clone(), 1);
    let topic = access.topic.as_str();
    let mut cursor = before;
    let mut read = 0;
    while read < scan {
        let frames = store.page(topic, cursor, STEP)?;
        if frames.is_empty() {
            return Ok(());
        }
        read += frames.len();
        for frame in frames.iter().rev() {
            let Ok(env) = Envelope::decode(frame, &access.topic) else {
                continue;
            };
            cursor = Some((env.ts, store::hash(&env.id)));
            if let Reading::Shown(msg) = room.read(&access.topic, env)
                && !take(msg)
            {
                return Ok(());
            }
        }
        if frames.len() < STEP {
            return Ok(());
        }
    }
    Ok(())
}

/// Up to `limit` readable messages before the message with store key
/// `before` (or the newest), oldest first. Blocking.
pub(crate) fn page(
    store: &Store,
    access: &RoomAccess,
    limit: usize,
    before: Option<(u64, Hash)>,
) -> Result<Vec<ChatMessage>, StoreError> {
    let mut out = Vec::new();
    walk(store, access, before, usize::MAX, |msg| {
        out.push(msg);
        out.len() < limit
    })?;
    out.reverse();
    Ok(out)
}

/// The newest `limit` readable messages containing `query` (any case),
/// across `rooms`, oldest first. Blocking.
pub(crate) fn search(
    store: &Store,
    rooms: &[RoomAccess],
    query: &str,
    limit: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    let needle = query.to_lowercase();
    let mut found = Vec::new();
    for access in rooms {
        let mut in_room = 0;
        walk(store, access, None, SEARCH_SCAN, |msg| {
            if msg.text.to_lowercase().contains(&needle) {
                found.push(msg);
                in_room += 1;
            }
            in_room < limit
        })?;
    }
    found.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
    let skip = found.len().saturating_sub(limit);
    Ok(found.split_off(skip))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::protocol::{self, Author};

    /// Pages a room's history backwards, `size` at a time, as a client of
    /// `GET /rooms/{room}/messages?before=ID` does: ids, oldest first.
    fn page_back(store: &Store, room: &Room, topic: &TopicHash, size: usize) -> Vec<String> {
        let mut pages: Vec<Vec<String>> = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let messages =
                match HistoryAnswer::for_room(room, topic.clone(), size, before.as_deref()) {
                    HistoryAnswer::Ring(messages) => messages,
                    HistoryAnswer::Store { access, before } => {
                        page(store, &access, size, before).expect("page")
                    }
                };
            let Some(first) = messages.first() else {
                break;
            };
            before = Some(first.id.clone());
            pages.push(messages.into_iter().map(|m| m.id).collect());
        }
        pages.into_iter().rev().flatten().collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the page size, the ring's size and how many messages
        /// share a millisecond, the pages together are the history, each
        /// message once, in the store's order.
        #[test]
        fn pages_neither_repeat_nor_skip(
            times in proptest::collection::vec(1u64..4, 0..60),
            ring in 1usize..20,
            size in 1usize..25,
        ) {
            let author = Author::new(libp2p::identity::Keypair::generate_ed25519());
            let topic = protocol::topic_for("r").hash();
            let mut room = Room::new("r", None, ring);
            let mut records = Vec::new();
            let mut all = Vec::new();
            for (i, ts) in times.iter().enumerate() {
                let mut env = Envelope::text(author.id(), "r", "n", &format!("m{i}"));
                env.ts = *ts;
                env.sign(author.keypair(), topic.as_str());
                all.push((env.ts, store::hash(&env.id), env.id.clone()));
                room.index.insert(env.ts, store::hash(&env.id));
                records.push(record(&topic, &env, env.encode()));
                if let Some(msg) = env.readable() {
                    room.remember(msg);
                }
            }
            let (failures, _rx) = tokio::sync::mpsc::channel(1);
            let store = Store::in_memory(failures).expect("store");
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime")
                .block_on(store.append_durable(records))
                .expect("append");
            all.sort();
            let want: Vec<String> = all.into_iter().map(|(_, _, id)| id).collect();
            prop_assert_eq!(page_back(&store, &room, &topic, size), want);
        }
    }
}
