//! Keeps `--dial` and `--bootstrap` peers connected: dials them at start and
//! again, with exponential backoff, whenever the connection drops or a dial
//! fails. A bootstrap peer is only a way in: once the node has enough other
//! peers it is not redialed (a busy bootstrap node closes connections it
//! does not use), and Kademlia is seeded from it once, not on every
//! reconnection. Pure bookkeeping; the event loop does the dialing.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol, swarm::ConnectionId};
use tokio::time::Instant;

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection that stayed up this long resets the backoff; one closed
/// sooner (e.g. by a busy peer trimming its connections) backs off further.
const STABLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting {
        due: Instant,
    },
    Dialing(ConnectionId),
    Connected,
    /// The address is this node itself: never dialed, not counted.
    Myself,
}

#[derive(Debug)]
struct Target {
    addr: Multiaddr,
    peer: Option<PeerId>,
    bootstrap: bool,
    /// Kademlia has been seeded from this (bootstrap) target.
    seeded: bool,
    state: State,
    backoff: Duration,
    /// When the current connection opened.
    connected_at: Option<Instant>,
}

/// The peers we keep connected to.
#[derive(Debug, Default)]
pub(crate) struct Redial {
    targets: Vec<Target>,
    /// This machine's host name, to recognize a `--dial` of ourselves.
    hostname: String,
}

/// A dial the loop should make now.
#[derive(Debug)]
pub(crate) struct Due {
    pub(crate) index: usize,
    pub(crate) addr: Multiaddr,
}

impl Redial {
    /// Targets of a node on the machine named `hostname`.
    pub(crate) fn new(hostname: String) -> Self {
        Redial {
            targets: Vec::new(),
            hostname,
        }
    }

    /// The dials to make now (see `due`), leaving out targets
    /// that are this node itself: its host name and a port it listens on
    /// (`listening`). Those wait until the node listens, then are dropped.
    pub(crate) fn dials_due(
        &mut self,
        now: Instant,
        enough_peers: bool,
        listening: &[Multiaddr],
    ) -> Vec<Due> {
        let mut due = self.due(now, enough_peers);
        due.retain(|d| {
            if !names_host(&d.addr, &self.hostname) {
                return true;
            }
            // Maybe ourselves: wait until our own ports are known.
            if listening.is_empty() {
                return false;
            }
            if !same_port(&d.addr, listening) {
                return true;
            }
            tracing::info!(addr = %d.addr, hostname = %self.hostname,
                "this address is this node itself (its host name and port); not dialing it");
            if let Some(t) = self.targets.get_mut(d.index) {
                t.state = State::Myself;
            }
            false
        });
        due
    }

    pub(crate) fn add(&mut self, addr: Multiaddr, bootstrap: bool, now: Instant) {
        let peer = addr.iter().find_map(|p| match p {
            Protocol::P2p(peer) => Some(peer),
            _ => None,
        });
        self.targets.push(Target {
            addr,
            peer,
            bootstrap,
            seeded: false,
            state: State::Waiting { due: now },
            backoff: FIRST_BACKOFF,
            connected_at: None,
        });
    }

    /// The peers of targets, where known (from the address or a connection).
    pub(crate) fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.targets.iter().filter_map(|t| t.peer)
    }

    /// How many targets there are, and how many of them are connected.
    /// Targets that are this node itself are not counted.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let others = self.targets.iter().filter(|t| t.state != State::Myself);
        let connected = others.clone().filter(|t| t.state == State::Connected);
        (others.count(), connected.count())
    }

    /// True when every target (but ourselves) is a bootstrap peer.
    pub(crate) fn only_bootstrap(&self) -> bool {
        self.targets
            .iter()
            .filter(|t| t.state != State::Myself)
            .all(|t| t.bootstrap)
    }

    /// Targets whose wait is over; bootstrap targets only while the node
    /// lacks peers (`enough_peers` false).
    fn due(&self, now: Instant, enough_peers: bool) -> Vec<Due> {
        self.targets
            .iter()
            .enumerate()
            .filter(|(_, t)| !(t.bootstrap && enough_peers))
            .filter(|(_, t)| matches!(t.state, State::Waiting { due } if due <= now))
            .map(|(index, t)| Due {
                index,
                addr: t.addr.clone(),
            })
            .collect()
    }

    pub(crate) fn dialing(&mut self, index: usize, id: ConnectionId) {
        if let Some(t) = self.targets.get_mut(index) {
            t.state = State::Dialing(id);
        }
    }

    /// A dial could not even start; try again after the backoff.
    pub(crate) fn dial_refused(&mut self, index: usize, now: Instant) {
        if let Some(t) = self.targets.get_mut(index) {
            retry_later(t, now);
        }
    }

    /// A connection opened. Returns the address if it is a bootstrap peer's
    /// first connection (the loop then seeds Kademlia with it).
    pub(crate) fn on_established(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        now: Instant,
    ) -> Option<Multiaddr> {
        let mut bootstrap = None;
        for t in &mut self.targets {
            let ours = t.state == State::Dialing(id) || t.peer == Some(peer);
            if ours {
                t.peer = Some(peer);
                if t.state != State::Connected {
                    t.connected_at = Some(now);
                }
                t.state = State::Connected;
                if t.bootstrap && !t.seeded {
                    t.seeded = true;
                    bootstrap = Some(t.addr.clone());
                }
            }
        }
        bootstrap
    }

    /// The address of the `--dial` or `--bootstrap` target that is `peer`.
    pub(crate) fn target_addr(&self, peer: &PeerId) -> Option<&Multiaddr> {
        self.targets
            .iter()
            .find(|t| t.peer.as_ref() == Some(peer))
            .map(|t| &t.addr)
    }

    /// A dial failed.
    pub(crate) fn on_dial_failed(&mut self, id: ConnectionId, now: Instant) {
        for t in &mut self.targets {
            if t.state == State::Dialing(id) {
                retry_later(t, now);
            }
        }
    }

    /// The last connection to `peer` closed.
    pub(crate) fn on_disconnected(&mut self, peer: PeerId, now: Instant) {
        for t in &mut self.targets {
            if t.peer == Some(peer) && t.state == State::Connected {
                let lasted = t.connected_at.map(|at| now.saturating_duration_since(at));
                if lasted.is_some_and(|d| d >= STABLE) {
                    t.backoff = FIRST_BACKOFF;
                }
                retry_later(t, now);
            }
        }
    }
}

/// Whether `addr` names this machine by its host name: `/dns4/HOST/...`,
/// `/dns6/HOST.…/...` or `/dns/HOST.…/...` whose first label is `hostname`.
/// Replicas that share one `--dial` list reach themselves that way (a
/// StatefulSet's pods all dialing `/dns4/p2p-chat-0.p2p-chat/...`: pod 0's
/// host name is `p2p-chat-0`); a node cannot connect to itself. `localhost`
/// never counts: it is how local nodes on other ports are dialed.
fn names_host(addr: &Multiaddr, hostname: &str) -> bool {
    if hostname.is_empty() || hostname.eq_ignore_ascii_case("localhost") {
        return false;
    }
    addr.iter().any(|p| match p {
        Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name) => name
            .split('.')
            .next()
            .is_some_and(|first| first.eq_ignore_ascii_case(hostname)),
        _ => false,
    })
}

/// Whether `addr`'s TCP or UDP port is one this node listens on (with the
/// same transport): with [`names_host`], the address is this node itself,
/// not another node on the same machine.
fn same_port(addr: &Multiaddr, listening: &[Multiaddr]) -> bool {
    let port = |a: &Multiaddr| {
        a.iter().find_map(|p| match p {
            Protocol::Tcp(n) => Some((false, n)),
            Protocol::Udp(n) => Some((true, n)),
            _ => None,
        })
    };
    port(addr).is_some_and(|want| listening.iter().any(|l| port(l) == Some(want)))
}

fn retry_later(t: &mut Target, now: Instant) {
    t.state = State::Waiting {
        due: now + t.backoff,
    };
    t.backoff = (t.backoff * 2).min(MAX_BACKOFF);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_then_resets_on_connect() {
        let now = Instant::now();
        let mut r = Redial::default();
        r.add("/ip4/127.0.0.1/tcp/1".parse().expect("addr"), false, now);
        let id = ConnectionId::new_unchecked(1);
        assert_eq!(r.due(now, false).len(), 1);
        r.dialing(0, id);
        assert!(r.due(now, false).is_empty());
        r.on_dial_failed(id, now);
        assert!(r.due(now, false).is_empty());
        assert_eq!(r.due(now + FIRST_BACKOFF, false).len(), 1);
        let id2 = ConnectionId::new_unchecked(2);
        r.dialing(0, id2);
        r.on_dial_failed(id2, now);
        assert!(
            r.due(now + FIRST_BACKOFF, false).is_empty(),
            "backoff doubled"
        );
        assert_eq!(r.due(now + FIRST_BACKOFF * 2, false).len(), 1);
        let id3 = ConnectionId::new_unchecked(3);
        r.dialing(0, id3);
        let peer = PeerId::random();
        assert_eq!(r.on_established(id3, peer, now), None);
        r.on_disconnected(peer, now + STABLE / 2);
        assert!(
            r.due(now + STABLE / 2 + FIRST_BACKOFF * 2, false)
                .is_empty(),
            "a short connection backs off further"
        );
        assert_eq!(r.due(now + STABLE / 2 + FIRST_BACKOFF * 4, false).len(), 1);
        let id4 = ConnectionId::new_unchecked(4);
        r.dialing(0, id4);
        let later = now + STABLE;
        assert_eq!(r.on_established(id4, peer, later), None);
        r.on_disconnected(peer, later + STABLE);
        assert_eq!(
            r.due(later + STABLE + FIRST_BACKOFF, false).len(),
            1,
            "backoff reset after a stable connection"
        );
    }

    #[test]
    fn a_bootstrap_peer_seeds_once_and_waits_while_peers_are_enough() {
        let now = Instant::now();
        let mut r = Redial::default();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().expect("addr");
        r.add(addr.clone(), true, now);
        assert!(r.only_bootstrap());
        assert!(r.due(now, true).is_empty(), "enough peers: not dialed");
        assert_eq!(r.due(now, false).len(), 1);
        let peer = PeerId::random();
        r.dialing(0, ConnectionId::new_unchecked(1));
        assert_eq!(
            r.on_established(ConnectionId::new_unchecked(1), peer, now),
            Some(addr)
        );
        r.on_disconnected(peer, now);
        r.dialing(0, ConnectionId::new_unchecked(2));
        assert_eq!(
            r.on_established(ConnectionId::new_unchecked(2), peer, now),
            None,
            "Kademlia is seeded on the first connection only"
        );
    }

    #[test]
    fn an_address_naming_this_host_is_recognized() {
        let addr = |s: &str| s.parse::<Multiaddr>().expect("addr");
        let pod0 = addr("/dns4/p2p-chat-0.p2p-chat/tcp/4001");
        assert!(names_host(&pod0, "p2p-chat-0"));
        assert!(names_host(&pod0, "P2P-Chat-0"));
        assert!(!names_host(&pod0, "p2p-chat-1"));
        assert!(!names_host(&pod0, "p2p-chat"));
        assert!(!names_host(&pod0, ""));
        assert!(names_host(&addr("/dns/node1/tcp/4001"), "node1"));
        assert!(!names_host(&addr("/dns4/node10/tcp/4001"), "node1"));
        assert!(!names_host(&addr("/ip4/127.0.0.1/tcp/4001"), "localhost"));
        assert!(!names_host(&addr("/dns4/localhost/tcp/4001"), "localhost"));
    }

    #[test]
    fn only_our_own_port_is_ourselves() {
        let addr = |s: &str| s.parse::<Multiaddr>().expect("addr");
        let listening = [
            addr("/ip4/10.0.0.5/tcp/4001"),
            addr("/ip4/10.0.0.5/udp/4001/quic-v1"),
        ];
        assert!(same_port(
            &addr("/dns4/p2p-chat-0.p2p-chat/tcp/4001"),
            &listening
        ));
        assert!(same_port(
            &addr("/dns4/p2p-chat-0.p2p-chat/udp/4001/quic-v1"),
            &listening
        ));
        assert!(!same_port(
            &addr("/dns4/p2p-chat-0.p2p-chat/tcp/4002"),
            &listening
        ));
        assert!(!same_port(
            &addr("/dns4/p2p-chat-0.p2p-chat/tcp/4001"),
            &listening[1..]
        ));
        assert!(!same_port(&addr("/dns4/p2p-chat-0.p2p-chat/tcp/4001"), &[]));
    }

    #[test]
    fn a_target_that_is_ourselves_is_not_dialed_nor_counted() {
        let now = Instant::now();
        let mut r = Redial::new("p2p-chat-0".into());
        r.add(
            "/dns4/p2p-chat-0.p2p-chat/tcp/4001".parse().expect("addr"),
            false,
            now,
        );
        r.add(
            "/dns4/p2p-chat-0.p2p-chat/tcp/4002".parse().expect("addr"),
            false,
            now,
        );
        assert_eq!(r.counts(), (2, 0));
        assert!(
            r.dials_due(now, false, &[]).is_empty(),
            "wait for our ports"
        );
        let ours = ["/ip4/0.0.0.0/tcp/4001".parse().expect("addr")];
        let due = r.dials_due(now, false, &ours);
        assert_eq!(due.len(), 1, "another node on this machine is dialed");
        assert_eq!(due[0].index, 1);
        assert_eq!(r.counts(), (1, 0), "ourselves: not counted");
        assert!(
            r.dials_due(now + MAX_BACKOFF, false, &ours)
                .iter()
                .all(|d| d.index == 1),
            "never dialed"
        );
    }
}
