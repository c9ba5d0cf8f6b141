//! Circuit relays on both sides: the relays this node holds a reservation
//! on (so peers reach it through them when it is behind NAT), and the
//! peers it relays for when it serves as one.
//!
//! A reservation is asked for on every `--relay`, and, once AutoNAT says
//! the node is private, on up to [`AUTO_RELAYS`] of its dial and bootstrap
//! peers whose identify says they serve relay. A reservation that ends is
//! asked for again after a backoff. The decisions are here, without a
//! swarm; the event loop listens on the addresses [`Relays::due`] returns.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use libp2p::{Multiaddr, PeerId, core::transport::ListenerId, multiaddr::Protocol};
use tokio::time::Instant;

/// Relays found among our peers that a private node reserves on.
pub(crate) const AUTO_RELAYS: usize = 2;
/// Relays remembered as candidates.
const MAX_FOUND: usize = 16;
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Relay {
    /// The relay's own addresses, each ending in `/p2p/ID`: tried in turn,
    /// the next one after each failure.
    addrs: Vec<Multiaddr>,
    /// Given by the operator: reserved on whatever our reachability.
    fixed: bool,
    listener: Option<ListenerId>,
    /// The reservation was accepted by the relay.
    reserved: bool,
    next_try: Instant,
    failures: u32,
}

/// The relays we use and the reservations we hold.
#[derive(Debug, Default)]
pub(crate) struct Relays {
    relays: HashMap<PeerId, Relay>,
    /// Peers we dial on purpose whose addresses we know: candidates once
    /// identify says they serve relay.
    dialed: HashMap<PeerId, Multiaddr>,
}

impl Relays {
    /// `fixed`: the `--relay` addresses (each ends in `/p2p/ID`).
    pub(crate) fn new(fixed: &[Multiaddr], now: Instant) -> Self {
        let mut relays: HashMap<PeerId, Relay> = HashMap::new();
        for addr in fixed {
            if let Some(peer) = peer_of(addr) {
                relays
                    .entry(peer)
                    .or_insert_with(|| Relay {
                        addrs: Vec::new(),
                        fixed: true,
                        listener: None,
                        reserved: false,
                        next_try: now,
                        failures: 0,
                    })
                    .addrs
                    .push(addr.clone());
            }
        }
        Relays {
            relays,
            dialed: HashMap::new(),
        }
    }

    /// A dial or bootstrap peer connected at `addr`.
    pub(crate) fn dialed(&mut self, peer: PeerId, addr: &Multiaddr) {
        if self.dialed.len() < MAX_FOUND && !crate::node::reachability::is_relayed(addr) {
            let mut addr = addr.clone();
            if peer_of(&addr).is_none() {
                addr.push(Protocol::P2p(peer));
            }
            self.dialed.insert(peer, addr);
        }
    }

    /// Identify told which protocols `peer` serves; `hop` if relay.
    pub(crate) fn identified(&mut self, peer: PeerId, hop: bool, now: Instant) {
        if !hop || self.relays.contains_key(&peer) || self.relays.len() >= MAX_FOUND {
            return;
        }
        if let Some(addr) = self.dialed.get(&peer) {
            self.relays.insert(
                peer,
                Relay {
                    addrs: vec![addr.clone()],
                    fixed: false,
                    listener: None,
                    reserved: false,
                    next_try: now,
                    failures: 0,
                },
            );
        }
    }

    /// Circuit addresses to listen on now (each asks its relay for a
    /// reservation): every fixed relay, and when `private`, found ones up
    /// to [`AUTO_RELAYS`] held at once.
    pub(crate) fn due(&self, now: Instant, private: bool) -> Vec<(PeerId, Multiaddr)> {
        let auto_held = self
            .relays
            .values()
            .filter(|r| !r.fixed && r.listener.is_some())
            .count();
        let mut auto_room = if private {
            AUTO_RELAYS.saturating_sub(auto_held)
        } else {
            0
        };
        let mut due = Vec::new();
        let mut waiting: Vec<(&PeerId, &Relay)> = self
            .relays
            .iter()
            .filter(|(_, r)| r.listener.is_none() && r.next_try <= now)
            .collect();
        waiting.sort_by_key(|(p, r)| (!r.fixed, r.failures, p.to_bytes()));
        for (peer, relay) in waiting {
            if !relay.fixed {
                if auto_room == 0 {
                    continue;
                }
                auto_room -= 1;
            }
            let addr = &relay.addrs[relay.failures as usize % relay.addrs.len()];
            due.push((*peer, addr.clone().with(Protocol::P2pCircuit)));
        }
        due
    }

    /// Listening on `peer`'s circuit address started as `id`.
    pub(crate) fn listening(&mut self, peer: &PeerId, id: ListenerId) {
        if let Some(relay) = self.relays.get_mut(peer) {
            relay.listener = Some(id);
        }
    }

    /// Listening could not even start: tried again after a backoff.
    pub(crate) fn refused(&mut self, peer: &PeerId, now: Instant) {
        if let Some(relay) = self.relays.get_mut(peer) {
            relay.back_off(now);
        }
    }

    /// The relay accepted (or renewed) our reservation.
    pub(crate) fn reserved(&mut self, peer: &PeerId) {
        if let Some(relay) = self.relays.get_mut(peer) {
            relay.reserved = true;
            relay.failures = 0;
        }
    }

    /// A listener closed: if it was a relay's, its reservation is asked
    /// for again after a backoff. Returns the relay.
    pub(crate) fn closed(&mut self, id: ListenerId, now: Instant) -> Option<PeerId> {
        let (peer, relay) = self
            .relays
            .iter_mut()
            .find(|(_, r)| r.listener == Some(id))?;
        relay.listener = None;
        relay.reserved = false;
        relay.back_off(now);
        Some(*peer)
    }

    /// Relays we hold a reservation on: their connections are kept.
    pub(crate) fn held(&self) -> HashSet<PeerId> {
        self.relays
            .iter()
            .filter(|(_, r)| r.reserved)
            .map(|(p, _)| *p)
            .collect()
    }
}

impl Relay {
    fn back_off(&mut self, now: Instant) {
        let wait = FIRST_BACKOFF.saturating_mul(1 << self.failures.min(10));
        self.failures = self.failures.saturating_add(1);
        self.next_try = now + wait.min(MAX_BACKOFF);
    }
}

/// The peer an address ends with.
pub(crate) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

/// What we relay for others as a server: who holds a reservation, which
/// circuits are open, so trimming leaves their connections alone. libp2p
/// may tell a circuit's end twice (once per side that notices): counts
/// never go below zero, and a peer's entries go when its last connection
/// does.
#[derive(Debug, Default)]
pub(crate) struct Served {
    reservations: HashSet<PeerId>,
    /// Open circuits by (source, destination).
    circuits: HashMap<(PeerId, PeerId), usize>,
    opened: u64,
}

impl Served {
    pub(crate) fn reserved(&mut self, peer: PeerId) {
        self.reservations.insert(peer);
    }

    pub(crate) fn unreserved(&mut self, peer: &PeerId) {
        self.reservations.remove(peer);
    }

    pub(crate) fn circuit_opened(&mut self, src: PeerId, dst: PeerId) {
        self.opened += 1;
        *self.circuits.entry((src, dst)).or_default() += 1;
    }

    pub(crate) fn circuit_closed(&mut self, src: PeerId, dst: PeerId) {
        if let Some(n) = self.circuits.get_mut(&(src, dst)) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.circuits.remove(&(src, dst));
            }
        }
    }

    /// `peer`'s last connection closed: nothing of it is held any more.
    pub(crate) fn gone(&mut self, peer: &PeerId) {
        self.reservations.remove(peer);
        self.circuits
            .retain(|(src, dst), _| src != peer && dst != peer);
    }

    pub(crate) fn reservations(&self) -> usize {
        self.reservations.len()
    }

    pub(crate) fn circuits(&self) -> usize {
        self.circuits.values().sum()
    }

    /// Circuits opened since the start.
    pub(crate) fn opened(&self) -> u64 {
        self.opened
    }

    /// Whether `peer` holds a reservation or a circuit here.
    pub(crate) fn uses(&self, peer: &PeerId) -> bool {
        self.reservations.contains(peer)
            || self
                .circuits
                .keys()
                .any(|(src, dst)| src == peer || dst == peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay_addr(peer: PeerId, port: u16) -> Multiaddr {
        format!("/ip4/203.0.113.1/tcp/{port}/p2p/{peer}")
            .parse()
            .expect("valid test address")
    }

    #[test]
    fn fixed_relays_are_always_reserved_found_ones_only_when_private() {
        let now = Instant::now();
        let (fixed, found) = (PeerId::random(), PeerId::random());
        let mut relays = Relays::new(&[relay_addr(fixed, 1)], now);
        relays.dialed(found, &"/ip4/203.0.113.2/tcp/4001".parse().expect("valid"));
        relays.identified(found, true, now);
        let due = relays.due(now, false);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, fixed);
        assert!(due[0].1.to_string().ends_with("/p2p-circuit"));
        let due = relays.due(now, true);
        assert_eq!(due.len(), 2);
        let found_addr = &due.iter().find(|(p, _)| *p == found).expect("found").1;
        assert_eq!(
            found_addr.to_string(),
            format!("/ip4/203.0.113.2/tcp/4001/p2p/{found}/p2p-circuit")
        );
    }

    #[test]
    fn only_dialed_peers_that_serve_relay_are_used_and_at_most_two() {
        let now = Instant::now();
        let mut relays = Relays::new(&[], now);
        let stranger = PeerId::random();
        relays.identified(stranger, true, now);
        let no_hop = PeerId::random();
        relays.dialed(no_hop, &relay_addr(no_hop, 2));
        relays.identified(no_hop, false, now);
        assert!(relays.due(now, true).is_empty());
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        for (i, p) in peers.iter().enumerate() {
            relays.dialed(*p, &relay_addr(*p, 10 + i as u16));
            relays.identified(*p, true, now);
        }
        let due = relays.due(now, true);
        assert_eq!(due.len(), AUTO_RELAYS);
        for (i, (peer, _)) in due.iter().enumerate() {
            relays.listening(peer, ListenerId::next());
            assert_eq!(relays.due(now, true).len(), AUTO_RELAYS - i - 1);
        }
    }

    #[test]
    fn a_relay_given_twice_is_tried_at_each_address_in_turn() {
        let now = Instant::now();
        let peer = PeerId::random();
        let (tcp, quic) = (relay_addr(peer, 1), relay_addr(peer, 2));
        let mut relays = Relays::new(&[tcp.clone(), quic.clone()], now);
        assert_eq!(
            relays.due(now, false),
            vec![(peer, tcp.with(Protocol::P2pCircuit))]
        );
        relays.refused(&peer, now);
        let later = now + MAX_BACKOFF;
        assert_eq!(
            relays.due(later, false),
            vec![(peer, quic.with(Protocol::P2pCircuit))]
        );
    }

    #[test]
    fn a_closed_reservation_is_asked_again_after_a_growing_backoff() {
        let now = Instant::now();
        let peer = PeerId::random();
        let mut relays = Relays::new(&[relay_addr(peer, 1)], now);
        let id = ListenerId::next();
        relays.listening(&peer, id);
        relays.reserved(&peer);
        assert!(relays.held().contains(&peer));
        assert!(relays.due(now, false).is_empty(), "held");
        assert_eq!(relays.closed(id, now), Some(peer));
        assert!(relays.held().is_empty());
        assert!(relays.due(now, false).is_empty(), "backing off");
        assert_eq!(relays.due(now + FIRST_BACKOFF, false).len(), 1);
        relays.refused(&peer, now);
        assert!(relays.due(now + FIRST_BACKOFF, false).is_empty());
        assert_eq!(relays.due(now + FIRST_BACKOFF * 2, false).len(), 1);
        assert_eq!(relays.closed(ListenerId::next(), now), None);
    }

    #[test]
    fn served_peers_are_counted_until_their_circuits_close() {
        let mut served = Served::default();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        served.reserved(a);
        served.circuit_opened(b, a);
        served.circuit_opened(b, c);
        assert_eq!((served.reservations(), served.circuits()), (1, 2));
        assert_eq!(served.opened(), 2);
        served.unreserved(&a);
        assert!(served.uses(&a) && served.uses(&b));
        // One circuit's end told twice leaves the other circuit counted.
        served.circuit_closed(b, a);
        served.circuit_closed(b, a);
        assert!(!served.uses(&a) && served.uses(&b) && served.uses(&c));
        assert_eq!(served.circuits(), 1);
        served.gone(&c);
        assert!(!served.uses(&b));
        assert_eq!(served.circuits(), 0);
    }
}
