//! One room's pure state: its key if encrypted, the ring of recent
//! messages, the ids it keeps, and the queue of our messages waiting for a
//! peer; and a bounded set of ids already seen. No I/O.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
};

use libp2p::gossipsub::{MessageAcceptance, TopicHash};

use super::ids::Ids;
use crate::{
    crypto::{CryptoError, RoomKey},
    limits::{SEEN_CAP, UNREADABLE_AUTHORS_CAP, UNREADABLE_NOTICE_EVERY},
    node::Retention,
    protocol::{Author, Body, ChatMessage, Envelope, Inner},
};

/// One of our messages, as sent and as shown.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// The wire form (sealed in an encrypted room).
    pub(crate) env: Envelope,
    /// The readable form.
    pub(crate) msg: ChatMessage,
    /// Held by the store: a queued message is sent only once it is, so
    /// that a failed commit never reports as unsent one that went out.
    pub(crate) committed: bool,
}

/// Why a plain message in a room we hold a key for is refused.
pub(crate) const PLAIN_IN_ENCRYPTED: &str = "plaintext_in_encrypted_room";

/// Messages of a room this member cannot read (sealed with another key,
/// sealed while it has none, or plain while it has one), counted by author
/// and key id so that a notice names them, and in total for `/rooms`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable {
    total: u64,
    by_author: HashMap<(String, Option<String>), u64>,
}

impl Unreadable {
    /// Counts one from `from` sealed with `theirs` (None: not sealed).
    /// Returns how many from them with that key so far when a notice is
    /// due: the first, then after every [`UNREADABLE_NOTICE_EVERY`] more.
    pub(crate) fn count(&mut self, from: &str, theirs: Option<&str>) -> Option<u64> {
        self.total += 1;
        let key = (from.to_owned(), theirs.map(str::to_owned));
        if !self.by_author.contains_key(&key) && self.by_author.len() >= UNREADABLE_AUTHORS_CAP {
            return None;
        }
        let n = self.by_author.entry(key).or_default();
        *n += 1;
        (*n - 1)
            .is_multiple_of(UNREADABLE_NOTICE_EVERY)
            .then_some(*n)
    }

    /// Unreadable messages so far.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

/// One joined room.
#[derive(Debug)]
pub(crate) struct Room {
    /// Room name.
    pub(crate) name: String,
    /// The room key, if joined with a passphrase.
    pub(crate) key: Option<Arc<RoomKey>>,
    /// Messages it could not read.
    pub(crate) unreadable: Unreadable,
    /// `(ts, id hash)` of every message kept: what history sync reconciles.
    pub(crate) index: Ids,
    /// The newest readable messages, in the store's order, `(ts, id hash)`,
    /// so that a page from here and the next from the store neither repeat
    /// nor skip one (with each message's id hash).
    ring: VecDeque<(crate::store::Hash, ChatMessage)>,
    ring_cap: usize,
    /// Our messages not yet sent, oldest first.
    pub(crate) pending: VecDeque<Outgoing>,
}

impl Room {
    /// An empty room.
    pub(crate) fn new(name: &str, key: Option<Arc<RoomKey>>, ring_cap: usize) -> Self {
        Room {
            name: name.to_owned(),
            key,
            unreadable: Unreadable::default(),
            index: Ids::default(),
            ring: VecDeque::new(),
            ring_cap: ring_cap.max(1),
            pending: VecDeque::new(),
        }
    }

    /// Keeps a message in the ring, in `(ts, id hash)` order, dropping the
    /// oldest when full.
    pub(crate) fn remember(&mut self, msg: ChatMessage) {
        let hash = crate::store::hash(&msg.id);
        let key = (msg.ts, hash);
        let at = self.ring.partition_point(|(h, e)| (e.ts, *h) <= key);
        self.ring.insert(at, (hash, msg));
        if self.ring.len() > self.ring_cap {
            self.ring.pop_front();
        }
    }

    /// Forgets messages older than `ts` (retention); returns how many.
    pub(crate) fn forget_before(&mut self, ts: u64) -> usize {
        let gone = self.index.forget_before(ts);
        self.ring.retain(|(_, m)| m.ts >= ts);
        gone
    }

    /// Forgets one message that was not kept after all (its commit failed):
    /// from the index, the ring and the queue; true if it was known.
    pub(crate) fn forget(&mut self, id: &str) -> bool {
        let hash = crate::store::hash(id);
        let indexed = self
            .index
            .time_of(&hash)
            .is_some_and(|ts| self.index.remove(ts, &hash));
        let (ring, pending) = (self.ring.len(), self.pending.len());
        self.ring.retain(|(_, m)| m.id != id);
        self.pending.retain(|out| out.env.id != id);
        indexed || ring != self.ring.len() || pending != self.pending.len()
    }

    /// The oldest time kept under `retention` at `now_ms`, if it drops any.
    pub(crate) fn horizon(&self, retention: &Retention, now_ms: u64) -> Option<u64> {
        let by_age = retention
            .max_age
            .map(|age| now_ms.saturating_sub(age.as_millis() as u64));
        let by_count = retention
            .count
            .and_then(|n| self.index.len().checked_sub(n))
            .and_then(|drop| self.index.sorted().iter().nth(drop))
            .map(|(ts, _)| *ts);
        let horizon = by_age.max(by_count)?;
        self.index
            .sorted()
            .first()
            .is_some_and(|(oldest, _)| *oldest < horizon)
            .then_some(horizon)
    }

    /// Whether the ring can answer a history query alone: it holds every
    /// message of the room, or `limit` messages before `before`.
    pub(crate) fn covers(&self, limit: usize, before: Option<&str>) -> bool {
        if self.ring.len() >= self.index.len() {
            return true;
        }
        match before {
            Some(id) => self
                .ring
                .iter()
                .position(|(_, e)| e.id == id)
                .is_some_and(|at| at >= limit),
            None => self.ring.len() >= limit,
        }
    }

    /// Up to `limit` messages, oldest first, all before `before` if given.
    pub(crate) fn recent(&self, limit: usize, before: Option<&str>) -> Vec<ChatMessage> {
        let end = match before {
            Some(id) => self.ring.iter().position(|(_, e)| e.id == id).unwrap_or(0),
            None => self.ring.len(),
        };
        let start = end.saturating_sub(limit);
        self.ring
            .range(start..end)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

/// What became of a received room envelope.
#[derive(Debug)]
pub(crate) enum Reading {
    /// Readable: show it.
    Shown(ChatMessage),
    /// Sealed and we cannot read it (sealed with key id `theirs`): relay
    /// and keep it, count it, tell the user now and then.
    Opaque { theirs: String },
    /// Refused, counted under this reason.
    Refused(&'static str, MessageAcceptance),
}

impl Room {
    /// Builds our next message for `room`: sealed if the room has a key.
    pub(crate) fn outgoing(
        &self,
        author: &Author,
        topic: &TopicHash,
        nick: &str,
        text: String,
    ) -> Outgoing {
        let mut env = Envelope::text(author.id(), &self.name, nick, &text);
        if let Some(room_key) = &self.key {
            let inner = Inner {
                nick: nick.to_owned(),
                text: text.clone(),
            };
            // A struct of two strings always serializes.
            let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(&inner).unwrap_or_default());
            let topic = topic.to_string();
            let sealed = room_key.seal(&env.binding(&topic), &plaintext);
            env.body = Body::Sealed(sealed);
        }
        env.sign(author.keypair(), topic.as_str());
        let msg = ChatMessage {
            room: self.name.clone(),
            id: env.id.clone(),
            from: env.from.clone(),
            nick: nick.to_owned(),
            text,
            ts: env.ts,
        };
        Outgoing {
            env,
            msg,
            committed: false,
        }
    }

    /// What a member of `room` can make of `env`.
    pub(crate) fn read(&self, topic: &TopicHash, env: Envelope) -> Reading {
        let sealed = match (&env.body, &self.key) {
            (Body::Text { .. }, Some(_)) => {
                // Plaintext in a protected room would look protected: drop it.
                return Reading::Refused(PLAIN_IN_ENCRYPTED, MessageAcceptance::Ignore);
            }
            (Body::Text { .. }, None) => {
                return env
                    .readable()
                    .map(Reading::Shown)
                    .unwrap_or(Reading::Refused("malformed", MessageAcceptance::Reject));
            }
            (Body::Sealed(sealed), None) => {
                return Reading::Opaque {
                    theirs: sealed.key_id.clone(),
                };
            }
            (Body::Sealed(sealed), Some(_)) => sealed,
        };
        let Some(key) = &self.key else {
            return Reading::Refused("malformed", MessageAcceptance::Reject);
        };
        let topic = topic.to_string();
        let plaintext = match key.open(&env.binding(&topic), sealed) {
            Ok(p) => p,
            Err(CryptoError::WrongKey) => {
                return Reading::Opaque {
                    theirs: sealed.key_id.clone(),
                };
            }
            Err(_) => return Reading::Refused("bad_ciphertext", MessageAcceptance::Reject),
        };
        if std::str::from_utf8(&plaintext).is_err() {
            return Reading::Refused("invalid_utf8", MessageAcceptance::Reject);
        }
        let Ok(inner) = serde_json::from_slice::<Inner>(&plaintext) else {
            return Reading::Refused("malformed", MessageAcceptance::Reject);
        };
        if !crate::limits::peer_text(&inner.nick, &inner.text) {
            return Reading::Refused("too_large", MessageAcceptance::Reject);
        }
        Reading::Shown(ChatMessage {
            room: self.name.clone(),
            id: env.id,
            from: env.from,
            nick: inner.nick,
            text: inner.text,
            ts: env.ts,
        })
    }
}

/// A bounded set of message ids: remembers the newest [`SEEN_CAP`].
#[derive(Debug, Default)]
pub(crate) struct SeenIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenIds {
    /// Records `id`; false if it was already there.
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        self.set.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        if self.order.len() > SEEN_CAP
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }

    /// Whether `id` was seen.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// Forgets `id`, so that it is taken in again when it comes back.
    pub(crate) fn remove(&mut self, id: &str) {
        self.set.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::RING_CAP;

    fn env(id: &str, ts: u64) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            room: "r".into(),
            from: "p".into(),
            nick: "n".into(),
            ts,
            text: id.into(),
        }
    }

    #[test]
    fn a_message_not_kept_leaves_the_index_and_the_ring() {
        let mut room = Room::new("r", None, RING_CAP);
        for (id, ts) in [("a", 1), ("b", 2), ("c", 3)] {
            room.index.insert(ts, crate::store::hash(id));
            room.remember(env(id, ts));
        }
        assert!(room.forget("b"));
        assert!(!room.forget("b"), "forgotten already");
        let ids: Vec<_> = room.recent(10, None).into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(room.index.len(), 2);
        assert_eq!(room.index.time_of(&crate::store::hash("b")), None);
        assert!(
            room.covers(10, None),
            "the ring still holds every kept message"
        );
    }

    #[test]
    fn ring_keeps_ts_order_and_pages() {
        let mut room = Room::new("r", None, RING_CAP);
        room.remember(env("b", 2));
        room.remember(env("a", 1));
        room.remember(env("c", 3));
        let ids: Vec<_> = room.recent(10, None).into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let ids: Vec<_> = room
            .recent(1, Some("c"))
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, ["b"]);
    }

    #[test]
    fn ring_is_bounded() {
        let mut room = Room::new("r", None, RING_CAP);
        for i in 0..(RING_CAP as u64 + 10) {
            room.remember(env(&i.to_string(), i));
        }
        let all = room.recent(usize::MAX, None);
        assert_eq!(all.len(), RING_CAP);
        assert_eq!(all[0].ts, 10);
    }

    #[test]
    fn seen_is_bounded_and_detects_repeats() {
        let mut seen = SeenIds::default();
        assert!(seen.insert("x"));
        assert!(!seen.insert("x"));
        for i in 0..SEEN_CAP {
            seen.insert(&i.to_string());
        }
        assert!(!seen.contains("x"));
        assert!(seen.contains(&(SEEN_CAP - 1).to_string()));
        seen.remove("7");
        assert!(!seen.contains("7"));
        assert!(seen.insert("7"), "taken in again once forgotten");
    }
}
