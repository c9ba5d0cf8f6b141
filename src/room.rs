//! Pure room state: the ring of recent messages, the queue of messages
//! waiting for a peer, and the set of ids already seen. No I/O.

use std::collections::{HashSet, VecDeque};

use crate::protocol::Envelope;

/// Recent messages kept per room in memory.
pub const RING_CAP: usize = 1000;
/// Messages that may wait for a peer, per room.
pub const PENDING_CAP: usize = 1000;
/// Message ids remembered for duplicate and replay detection.
pub const SEEN_CAP: usize = 100_000;

/// One joined room.
#[derive(Debug)]
pub struct Room {
    /// Room name.
    pub name: String,
    ring: VecDeque<Envelope>,
    /// Our messages not yet sent, oldest first.
    pub pending: VecDeque<Envelope>,
}

impl Room {
    /// An empty room.
    pub fn new(name: &str) -> Self {
        Room {
            name: name.to_owned(),
            ring: VecDeque::new(),
            pending: VecDeque::new(),
        }
    }

    /// Keeps a message in the ring, in `(ts, id)` order, dropping the oldest
    /// when full.
    pub fn remember(&mut self, env: Envelope) {
        let key = (env.ts, env.id.as_str());
        let at = self.ring.partition_point(|e| (e.ts, e.id.as_str()) <= key);
        self.ring.insert(at, env);
        if self.ring.len() > RING_CAP {
            self.ring.pop_front();
        }
    }

    /// Up to `limit` messages, oldest first, all before `before` if given.
    pub fn recent(&self, limit: usize, before: Option<&str>) -> Vec<Envelope> {
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

    fn env(id: &str, ts: u64) -> Envelope {
        Envelope {
            v: 1,
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
        let mut room = Room::new("r");
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
        let mut room = Room::new("r");
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
