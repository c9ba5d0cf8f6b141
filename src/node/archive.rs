//! Reading history from the store on behalf of a handle, off the node task:
//! pages older than the in-memory ring, and search. Encrypted rooms are
//! decrypted in memory with the room's key; nothing readable is written.

use std::sync::Arc;

use libp2p::gossipsub::TopicHash;

use crate::{
    crypto::RoomKey,
    protocol::{ChatMessage, Envelope},
    room::{Reading, Room},
    store::{self, Hash, Record, Store, StoreError},
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
    use crate::{
        node::history::HistoryAnswer,
        protocol::{self, Author},
    };

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
