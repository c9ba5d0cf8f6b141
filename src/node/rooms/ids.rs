//! The ids of every message a room keeps: in `(ts, hash)` order, which is
//! what history sync reconciles and the store's key, and by hash, so that a
//! peer's fetch by hash finds each message's key without an index on disk.

use std::collections::{BTreeSet, HashMap};

use crate::store::Hash;

/// `(ts, id hash)` of every message a room keeps.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    sorted: BTreeSet<(u64, Hash)>,
    times: HashMap<Hash, u64>,
}

impl Ids {
    /// Adds a message's id; false if it was there.
    pub(crate) fn insert(&mut self, ts: u64, hash: Hash) -> bool {
        let added = self.sorted.insert((ts, hash));
        if added {
            // One id at two times (an author may reuse one): the newest
            // answers, and stays while any of them is kept.
            let t = self.times.entry(hash).or_insert(ts);
            *t = (*t).max(ts);
        }
        added
    }

    /// Removes a message's id; false if it was not there.
    pub(crate) fn remove(&mut self, ts: u64, hash: &Hash) -> bool {
        let removed = self.sorted.remove(&(ts, *hash));
        if removed && self.times.get(hash) == Some(&ts) {
            self.times.remove(hash);
        }
        removed
    }

    /// Whether the message with this time and id hash is kept.
    pub(crate) fn contains(&self, ts: u64, hash: &Hash) -> bool {
        self.sorted.contains(&(ts, *hash))
    }

    /// The time of the message with this id hash: its store key with it.
    pub(crate) fn time_of(&self, hash: &Hash) -> Option<u64> {
        self.times.get(hash).copied()
    }

    /// The store key, `(ts, hash)`, of the message with this id hash.
    pub(crate) fn key_of(&self, hash: Hash) -> Option<(u64, Hash)> {
        Some((self.time_of(&hash)?, hash))
    }

    /// How many messages are kept.
    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Every id in `(ts, hash)` order.
    pub(crate) fn sorted(&self) -> &BTreeSet<(u64, Hash)> {
        &self.sorted
    }

    /// Forgets the ids older than `ts`; returns how many.
    pub(crate) fn forget_before(&mut self, ts: u64) -> usize {
        let kept = self.sorted.split_off(&(ts, [0u8; 32]));
        let gone = std::mem::replace(&mut self.sorted, kept);
        for (_, hash) in &gone {
            if self.times.get(hash).is_some_and(|t| *t < ts) {
                self.times.remove(hash);
            }
        }
        gone.len()
    }
}

impl Extend<(u64, Hash)> for Ids {
    fn extend<I: IntoIterator<Item = (u64, Hash)>>(&mut self, iter: I) {
        for (ts, hash) in iter {
            self.insert(ts, hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_times_by_hash_and_forgets_old_ids() {
        let mut ids = Ids::default();
        ids.extend([(5, [5u8; 32]), (1, [1u8; 32]), (3, [3u8; 32])]);
        assert!(!ids.insert(3, [3u8; 32]), "held already");
        assert_eq!(ids.len(), 3);
        assert_eq!(ids.time_of(&[3u8; 32]), Some(3));
        assert!(ids.contains(3, &[3u8; 32]));
        assert!(!ids.contains(4, &[3u8; 32]));
        let order: Vec<u64> = ids.sorted().iter().map(|(ts, _)| *ts).collect();
        assert_eq!(order, [1, 3, 5]);
        assert_eq!(ids.forget_before(4), 2);
        assert_eq!(ids.time_of(&[1u8; 32]), None);
        assert_eq!(ids.time_of(&[3u8; 32]), None);
        assert_eq!(ids.time_of(&[5u8; 32]), Some(5));
        assert_eq!(ids.len(), 1);
        assert!(ids.remove(5, &[5u8; 32]));
        assert!(!ids.remove(5, &[5u8; 32]));
        assert_eq!(ids.time_of(&[5u8; 32]), None);
        assert_eq!(ids.len(), 0);
    }
}
