//! Pure room state: its key if encrypted, the ring of recent messages, the
//! queue of messages waiting for a peer, and the set of ids already seen.
//! No I/O.

use std::collections::{HashSet, VecDeque};

use crate::{
    crypto::RoomKey,
    protocol::{ChatMessage, Envelope},
};

/// Recent messages kept per room in memory.
pub const RING_CAP: usize = 1000;
/// Messages that may wait for a peer, per room.
pub const PENDING_CAP: usize = 1000;
/// Message ids remembered for duplicate and replay detection.
pub const SEEN_CAP: usize = 100_000;

/// One of our messages, as sent and as shown.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The wire form (sealed in an encrypted room).
    pub env: Envelope,
    /// The readable form.
    pub msg: ChatMessage,
}

/// Notices a person sees once per room, not once per message.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Notices {
    /// "This room is encrypted": shown to a member without the passphrase.
    pub locked: bool,
    /// "Wrong passphrase?": shown to a member whose key does not fit.
    pub wrong_key: bool,
}

/// One joined room.
#[derive(Debug)]
pub struct Room {
    /// Room name.
    pub name: String,
    /// The room key, if joined with a passphrase.
    pub key: Option<RoomKey>,
    /// Which one-time notices were shown.
    pub notices: Notices,
    ring: VecDeque<ChatMessage>,
    /// Our messages not yet sent, oldest first.
    pub pending: VecDeque<Outgoing>,
}

impl Room {
    /// An empty room.
    pub fn new(name: &str, key: Option<RoomKey>) -> Self {
        Room {
            name: name.to_owned(),
            key,
            notices: Notices::default(),
            ring: VecDeque::new(),
            pending: VecDeque::new(),
        }
    }

    /// Keeps a message in the ring, in `(ts, id)` order, dropping the oldest
    /// when full.
    pub fn remember(&mut self, msg: ChatMessage) {
        let key = (msg.ts, msg.id.as_str());
        let at = self.ring.partition_point(|e| (e.ts, e.id.as_str()) <= key);
        self.ring.insert(at, msg);
        if self.ring.len() > RING_CAP {
            self.ring.pop_front();
        }
    }

    /// Up to `limit` messages, oldest first, all before `before` if given.
    pub fn recent(&self, limit: usize, before: Option<&str>) -> Vec<ChatMessage> {
        let end = match before {
            Some(id) => self.ring.iter().position(|e| e.id == id).unwrap_or(0),
            None => self.ring.len(),
        };
        let start = end.saturating_sub(limit);
        self.ring.range(start..end).cloned().collect()
    }
}

/// A bounded set of message ids: remembers the newest [`SEEN_CAP`].
#[derive(Debug, Default)]
pub struct SeenIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenIds {
    /// Records `id`; false if it was already there.
    pub fn insert(&mut self, id: &str) -> bool {
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
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn ring_keeps_ts_order_and_pages() {
        let mut room = Room::new("r", None);
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
        let mut room = Room::new("r", None);
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
    }
}
