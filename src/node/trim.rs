//! Keeps the number of connections near what a chat node needs. Discovery
//! (Kademlia lookups, inbound dials) opens connections to many peers, and
//! the long idle timeout that keeps direct-message peers connected would keep
//! them all: in a large network every node would end up connected to every
//! other, and carry gossip for all of them. Above [`HIGH_WATER`] peers, the
//! node closes the ones it does not use down to [`LOW_WATER`]. Protected:
//! room mesh peers, `--dial`/`--bootstrap` peers, peers of a direct message
//! in the last [`super::swarm::IDLE_TIMEOUT`], peers of a history sync under
//! way, and every connection younger than [`GRACE`] (time to identify,
//! subscribe, graft).
//!
//! Trimming also waits while Kademlia lookups run (at most
//! [`DISCOVERY_WAIT`]): a lookup dials the peers it asks, and closing them
//! halfway made the lookup's next steps, and the next bootstrap, dial them
//! again. In a mesh of 100 nodes started together that doubled the dials.

use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

/// Above this many connected peers, unused ones are closed...
pub(crate) const HIGH_WATER: usize = 24;
/// ...down to this many.
pub(crate) const LOW_WATER: usize = 16;
/// A new connection is never closed before this age.
pub(crate) const GRACE: Duration = Duration::from_secs(10);
/// Trimming waits for running lookups at most this long.
pub(crate) const DISCOVERY_WAIT: Duration = Duration::from_secs(60);

/// When trimming began to wait for discovery, if it is waiting.
#[derive(Debug, Default)]
pub(crate) struct Wait(Option<Instant>);

impl Wait {
    /// Whether trimming waits now: lookups are running and have not yet
    /// held it back for [`DISCOVERY_WAIT`].
    pub(crate) fn holds(&mut self, lookups_running: bool, now: Instant) -> bool {
        if !lookups_running {
            self.0 = None;
            return false;
        }
        let since = *self.0.get_or_insert(now);
        now.saturating_duration_since(since) < DISCOVERY_WAIT
    }
}

/// A connected peer as the trimmer sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub(crate) peer: PeerId,
    /// When its first current connection opened.
    pub(crate) since: Instant,
    /// Whether something the node cares about uses it (see module docs).
    pub(crate) protected: bool,
}

/// The peers to disconnect: none at or below `HIGH_WATER`; otherwise the
/// unprotected peers past their grace, newest first (long-standing peers are
/// kept), until `LOW_WATER` remain or none is left to close.
pub(crate) fn victims(mut peers: Vec<Candidate>, now: Instant) -> Vec<PeerId> {
    if peers.len() <= HIGH_WATER {
        return Vec::new();
    }
    let excess = peers.len() - LOW_WATER;
    peers.retain(|c| !c.protected && now.saturating_duration_since(c.since) >= GRACE);
    peers.sort_by_key(|c| std::cmp::Reverse(c.since));
    peers.into_iter().take(excess).map(|c| c.peer).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(n: usize, since: Instant) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                peer: PeerId::random(),
                since: since + Duration::from_millis(i as u64),
                protected: false,
            })
            .collect()
    }

    #[test]
    fn nothing_closes_at_or_below_the_high_water_mark() {
        let now = Instant::now() + GRACE * 2;
        assert!(victims(candidates(HIGH_WATER, Instant::now()), now).is_empty());
    }

    #[test]
    fn trims_to_low_water_newest_unprotected_first() {
        let start = Instant::now();
        let now = start + GRACE * 2;
        let mut peers = candidates(HIGH_WATER + 6, start);
        peers[HIGH_WATER + 5].protected = true; // the newest
        let closed = victims(peers.clone(), now);
        assert_eq!(closed.len(), HIGH_WATER + 6 - LOW_WATER);
        assert!(!closed.contains(&peers[HIGH_WATER + 5].peer));
        assert_eq!(closed[0], peers[HIGH_WATER + 4].peer);
        assert!(!closed.contains(&peers[0].peer), "the oldest stays");
    }

    #[test]
    fn trimming_waits_for_lookups_but_not_forever() {
        let start = Instant::now();
        let mut wait = Wait::default();
        assert!(!wait.holds(false, start), "no lookup: no wait");
        assert!(wait.holds(true, start));
        assert!(wait.holds(true, start + DISCOVERY_WAIT / 2));
        assert!(
            !wait.holds(true, start + DISCOVERY_WAIT),
            "lookups that never end do not stop trimming"
        );
        assert!(!wait.holds(false, start + DISCOVERY_WAIT));
        let later = start + DISCOVERY_WAIT * 2;
        assert!(
            wait.holds(true, later),
            "a new round of lookups waits again"
        );
    }

    #[test]
    fn young_and_protected_connections_are_kept() {
        let start = Instant::now();
        let mut peers = candidates(HIGH_WATER + 10, start);
        for c in peers.iter_mut().skip(5) {
            c.protected = true;
        }
        let closed = victims(peers.clone(), start + GRACE * 2);
        assert_eq!(closed.len(), 5, "only the unprotected can go");
        assert!(victims(peers, start + GRACE / 2).is_empty(), "all in grace");
    }
}
