//! What the node knows about connected peers: nick, addresses, RTT; and how
//! a user names one (`peer id`, `nick`, or `nick#suffix` when nicks collide);
//! and whether a peer discovery found is worth dialing.

use std::{collections::HashMap, time::Duration};

use libp2p::{Multiaddr, PeerId, swarm::ConnectionId};
use tokio::time::Instant;

use super::{Error, PeerInfo, trim::Candidate};

/// Below this many connected peers, peers learnt from the DHT or mDNS are
/// dialed, so a room forms a mesh rather than a star around a bootstrap node.
const WANTED_PEERS: usize = 8;

/// Characters of the peer id shown after `#` to tell equal nicks apart.
const SUFFIX_LEN: usize = 6;

/// The tail of a peer id, short enough to read, long enough to tell apart.
pub(crate) fn short_id(peer: &PeerId) -> String {
    let s = peer.to_string();
    s[s.len().saturating_sub(SUFFIX_LEN)..].to_owned()
}

#[derive(Debug)]
struct Entry {
    /// The peer id in base58, made once: events and envelopes spell it.
    name: String,
    nick: Option<String>,
    addresses: Vec<Multiaddr>,
    rtt: Option<Duration>,
    connected_since: u64,
    since: Instant,
    /// Last direct message with this peer.
    used: Option<Instant>,
    outbound: bool,
    connections: usize,
    /// Connections that go through a relay, of `connections`.
    relayed: Vec<ConnectionId>,
}

impl Entry {
    /// Some connection to it does not go through a relay.
    fn direct(&self) -> bool {
        self.connections > self.relayed.len()
    }

    fn new(peer: &PeerId) -> Self {
        Entry {
            name: peer.to_string(),
            nick: None,
            addresses: Vec::new(),
            rtt: None,
            connected_since: 0,
            since: Instant::now(),
            used: None,
            outbound: false,
            connections: 0,
            relayed: Vec::new(),
        }
    }
}

/// Connected peers by id.
#[derive(Debug, Default)]
pub(crate) struct PeerBook {
    peers: HashMap<PeerId, Entry>,
}

impl PeerBook {
    /// Records a new connection; true if it is the first to this peer.
    pub(crate) fn connected(
        &mut self,
        peer: PeerId,
        addr: Option<Multiaddr>,
        outbound: bool,
    ) -> bool {
        let entry = self.peers.entry(peer).or_insert_with(|| Entry::new(&peer));
        entry.connections += 1;
        if entry.connections == 1 {
            entry.connected_since = crate::protocol::now_ms();
            entry.since = Instant::now();
            entry.outbound = outbound;
        }
        if let Some(addr) = addr {
            push_unique(&mut entry.addresses, addr);
        }
        entry.connections == 1
    }

    /// Records a closed connection; true if it was the last to this peer.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) -> bool {
        let Some(entry) = self.peers.get_mut(peer) else {
            return false;
        };
        entry.connections = entry.connections.saturating_sub(1);
        if entry.connections == 0 {
            self.peers.remove(peer);
            return true;
        }
        false
    }

    /// Notes that connection `conn` to `peer` goes through a relay.
    pub(crate) fn relayed(&mut self, peer: &PeerId, conn: ConnectionId) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.relayed.push(conn);
        }
    }

    /// Forgets a relayed connection that closed.
    pub(crate) fn relayed_closed(&mut self, peer: &PeerId, conn: ConnectionId) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.relayed.retain(|c| *c != conn);
        }
    }

    /// Relayed connections of peers that also have a direct one: closed,
    /// as the direct one does their work without the relay's limits.
    pub(crate) fn superseded(&self) -> Vec<(PeerId, ConnectionId)> {
        self.peers
            .iter()
            .filter(|(_, e)| e.direct())
            .flat_map(|(peer, e)| e.relayed.iter().map(|c| (*peer, *c)))
            .collect()
    }

    /// Whether every connection to `peer` goes through a relay.
    pub(crate) fn relayed_only(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|e| e.connections > 0 && !e.direct())
    }

    pub(crate) fn is_connected(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// Whether we have enough peers: bootstrap targets are not redialed,
    /// discovered peers not dialed.
    pub(crate) fn enough(&self) -> bool {
        self.peers.len() >= WANTED_PEERS
    }

    /// Whether to dial a peer discovery found, with `dialing` dials still
    /// under way: they count too, since discovery reports many peers at
    /// once, and dialing them all would make every node a hub.
    pub(crate) fn worth_dialing(&self, peer: &PeerId, dialing: usize) -> bool {
        !self.is_connected(peer) && self.peers.len() + dialing < WANTED_PEERS
    }

    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// Sets a peer's nick; true if it changed.
    pub(crate) fn set_nick(&mut self, peer: &PeerId, nick: &str) -> bool {
        match self.peers.get_mut(peer) {
            Some(entry) if entry.nick.as_deref() != Some(nick) => {
                entry.nick = Some(nick.to_owned());
                true
            }
            _ => false,
        }
    }

    /// [`Self::set_nick`] for the connected peer whose id in base58 is
    /// `name`; comparing text is cheaper than decoding it.
    pub(crate) fn set_nick_of_named(&mut self, name: &str, nick: &str) -> bool {
        let Some(peer) = self.named(name) else {
            return false;
        };
        self.set_nick(&peer, nick)
    }

    /// The connected peer whose id in base58 is `name`.
    fn named(&self, name: &str) -> Option<PeerId> {
        self.peers
            .iter()
            .find_map(|(peer, e)| (e.name == name).then_some(*peer))
    }

    /// A connected peer's id in base58.
    pub(crate) fn name(&self, peer: &PeerId) -> Option<&str> {
        self.peers.get(peer).map(|e| e.name.as_str())
    }

    /// Notes that a direct message used this peer.
    pub(crate) fn used(&mut self, peer: &PeerId) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.used = Some(Instant::now());
        }
    }

    /// Every peer for the trimmer; `protected` tells which others need, and
    /// recent use protects too.
    pub(crate) fn candidates(
        &self,
        recent: Duration,
        protected: impl Fn(&PeerId) -> bool,
    ) -> Vec<Candidate> {
        self.peers
            .iter()
            .map(|(peer, e)| Candidate {
                peer: *peer,
                since: e.since,
                protected: protected(peer) || e.used.is_some_and(|t| t.elapsed() < recent),
            })
            .collect()
    }

    pub(crate) fn set_rtt(&mut self, peer: &PeerId, rtt: Duration) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.rtt = Some(rtt);
        }
    }

    pub(crate) fn add_addresses(
        &mut self,
        peer: &PeerId,
        addrs: impl IntoIterator<Item = Multiaddr>,
    ) {
        if let Some(entry) = self.peers.get_mut(peer) {
            for addr in addrs {
                push_unique(&mut entry.addresses, addr);
            }
        }
    }

    /// How a person sees this peer: its nick, with `#suffix` if another
    /// connected peer has the same nick; the short id if it has no nick.
    pub(crate) fn display(&self, peer: &PeerId) -> String {
        match self.peers.get(peer).and_then(|e| e.nick.as_deref()) {
            Some(nick) if self.with_nick(nick).count() > 1 => format!("{nick}#{}", short_id(peer)),
            Some(nick) => nick.to_owned(),
            None => short_id(peer),
        }
    }

    fn with_nick<'a>(&'a self, nick: &'a str) -> impl Iterator<Item = &'a PeerId> + 'a {
        self.peers
            .iter()
            .filter(move |(_, e)| e.nick.as_deref() == Some(nick))
            .map(|(p, _)| p)
    }

    /// Finds the connected peer a user means by `who`: a peer id, a nick, or
    /// `nick#suffix`.
    pub(crate) fn resolve(&self, who: &str) -> Result<PeerId, Error> {
        if let Some(peer) = self.named(who) {
            return Ok(peer);
        }
        if let Ok(peer) = who.parse::<PeerId>() {
            return if self.is_connected(&peer) {
                Ok(peer)
            } else {
                Err(Error::NotConnected(peer))
            };
        }
        let (nick, suffix) = match who.split_once('#') {
            Some((nick, suffix)) => (nick, Some(suffix)),
            None => (who, None),
        };
        let found: Vec<&PeerId> = self
            .with_nick(nick)
            .filter(|p| suffix.is_none_or(|s| p.to_string().ends_with(s)))
            .collect();
        match found.as_slice() {
            [] => Err(Error::UnknownPeer(who.to_owned())),
            [peer] => Ok(**peer),
            many => {
                let mut names: Vec<String> = many
                    .iter()
                    .map(|p| format!("{nick}#{}", short_id(p)))
                    .collect();
                names.sort();
                Err(Error::AmbiguousNick {
                    nick: nick.to_owned(),
                    candidates: names.join(", "),
                })
            }
        }
    }

    pub(crate) fn list(&self) -> Vec<PeerInfo> {
        let mut list: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(peer, e)| PeerInfo {
                peer: peer.to_string(),
                nick: e.nick.clone(),
                display: self.display(peer),
                addresses: e.addresses.iter().map(ToString::to_string).collect(),
                rtt_ms: e.rtt.map(|d| d.as_secs_f64() * 1000.0),
                connected_since: e.connected_since,
                direction: if e.outbound { "outbound" } else { "inbound" },
                connection: if e.direct() { "direct" } else { "relayed" },
            })
            .collect();
        list.sort_by(|a, b| a.display.cmp(&b.display));
        list
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }
}

fn push_unique(list: &mut Vec<Multiaddr>, addr: Multiaddr) {
    const MAX_ADDRS: usize = 16;
    if !list.contains(&addr) && list.len() < MAX_ADDRS {
        list.push(addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_nicks_stay_distinguishable() {
        let mut book = PeerBook::default();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        for p in [a, b, c] {
            book.connected(p, None, true);
        }
        book.set_nick(&a, "sam");
        book.set_nick(&b, "sam");
        book.set_nick(&c, "kim");
        assert_eq!(book.display(&c), "kim");
        assert_eq!(book.display(&a), format!("sam#{}", short_id(&a)));
        assert_ne!(book.display(&a), book.display(&b));
        assert_eq!(book.resolve("kim").ok(), Some(c));
        assert!(matches!(
            book.resolve("sam"),
            Err(Error::AmbiguousNick { .. })
        ));
        assert_eq!(book.resolve(&format!("sam#{}", short_id(&b))).ok(), Some(b));
        assert_eq!(book.resolve(&a.to_string()).ok(), Some(a));
        assert!(matches!(book.resolve("nobody"), Err(Error::UnknownPeer(_))));
        let stranger = PeerId::random();
        assert!(matches!(
            book.resolve(&stranger.to_string()),
            Err(Error::NotConnected(_))
        ));
    }

    #[test]
    fn a_connected_peer_is_known_by_its_id_in_text() {
        let mut book = PeerBook::default();
        let (a, stranger) = (PeerId::random(), PeerId::random());
        book.connected(a, None, true);
        assert_eq!(book.name(&a), Some(a.to_string().as_str()));
        assert!(book.set_nick_of_named(&a.to_string(), "ann"));
        assert!(!book.set_nick_of_named(&a.to_string(), "ann"));
        assert_eq!(book.display(&a), "ann");
        assert!(!book.set_nick_of_named(&stranger.to_string(), "eve"));
        assert!(book.disconnected(&a));
        assert_eq!(book.name(&a), None);
        assert!(!book.set_nick_of_named(&a.to_string(), "bob"));
    }

    #[test]
    fn a_relayed_connection_gives_way_to_a_direct_one() {
        let mut book = PeerBook::default();
        let a = PeerId::random();
        let relayed = ConnectionId::new_unchecked(1);
        book.connected(a, None, false);
        book.relayed(&a, relayed);
        assert_eq!(book.list()[0].connection, "relayed");
        assert!(book.superseded().is_empty(), "the only way to reach it");
        book.connected(a, None, true);
        assert_eq!(book.list()[0].connection, "direct");
        assert_eq!(book.superseded(), vec![(a, relayed)]);
        book.relayed_closed(&a, relayed);
        book.disconnected(&a);
        assert!(book.superseded().is_empty());
        assert_eq!(book.list()[0].connection, "direct");
    }

    #[test]
    fn counts_connections() {
        let mut book = PeerBook::default();
        let a = PeerId::random();
        assert!(book.connected(a, None, true));
        assert!(!book.connected(a, None, false));
        assert!(!book.disconnected(&a));
        assert!(book.disconnected(&a));
        assert!(!book.is_connected(&a));
    }

    #[test]
    fn discovered_peers_are_dialed_until_there_are_enough() {
        let mut book = PeerBook::default();
        let known = PeerId::random();
        book.connected(known, None, true);
        assert!(!book.worth_dialing(&known, 0), "connected already");
        let stranger = PeerId::random();
        assert!(book.worth_dialing(&stranger, 0));
        assert!(
            !book.worth_dialing(&stranger, WANTED_PEERS - 1),
            "dials under way count"
        );
        for _ in 1..WANTED_PEERS {
            book.connected(PeerId::random(), None, false);
        }
        assert!(book.enough());
        assert!(!book.worth_dialing(&stranger, 0));
    }
}
