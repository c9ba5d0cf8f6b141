//! Whether others can dial this node, derived from AutoNAT's per-address
//! results and the operator's `--external` addresses.
//!
//! AutoNAT v2 tests one address at a time: a peer that serves it dials the
//! address back on a fresh port, so a NAT's mapping for our own outgoing
//! connections does not let the dial-back through. The node is:
//! - `public` once any address was confirmed, or the operator declared one;
//! - `private` once addresses were tested and every one failed;
//! - `unknown` before any result (no peer serving AutoNAT yet).
//!
//! Relay (`/p2p-circuit`) addresses are never tested: they say where a
//! relay reaches us, not whether we are reachable ourselves.

use std::collections::VecDeque;

use libp2p::{Multiaddr, multiaddr::Protocol};
use serde::Serialize;

/// Results kept, the newest; so a peer reporting many made-up addresses
/// cannot grow it.
const MAX_RESULTS: usize = 32;

/// What this node knows of its own reachability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    /// Some address of ours was dialed back, or is declared by the operator.
    Public,
    /// Every address tested failed: peers reach us only through a relay.
    Private,
    /// Nothing tested yet.
    Unknown,
}

impl Reachability {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reachability::Public => "public",
            Reachability::Private => "private",
            Reachability::Unknown => "unknown",
        }
    }
}

/// Each tested address's last result, and the declared ones.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    declared: Vec<Multiaddr>,
    /// Each tested address's last result, oldest first.
    results: VecDeque<(Multiaddr, bool)>,
}

impl Tracker {
    pub(crate) fn new(declared: Vec<Multiaddr>) -> Self {
        Tracker {
            declared,
            results: VecDeque::new(),
        }
    }

    /// Records a test's result; the new state if it changed.
    pub(crate) fn tested(&mut self, addr: Multiaddr, reachable: bool) -> Option<Reachability> {
        if is_relayed(&addr) {
            return None;
        }
        let before = self.state();
        self.results.retain(|(a, _)| *a != addr);
        self.results.push_back((addr, reachable));
        if self.results.len() > MAX_RESULTS {
            self.results.pop_front();
        }
        let after = self.state();
        (before != after).then_some(after)
    }

    pub(crate) fn state(&self) -> Reachability {
        if !self.declared.is_empty() || self.results.iter().any(|(_, ok)| *ok) {
            Reachability::Public
        } else if self.results.is_empty() {
            Reachability::Unknown
        } else {
            Reachability::Private
        }
    }
}

/// Whether an address goes through a relay.
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("valid test address")
    }

    #[test]
    fn the_three_states_follow_the_results() {
        let mut t = Tracker::default();
        assert_eq!(t.state(), Reachability::Unknown);
        let tcp = addr("/ip4/198.51.100.1/tcp/4001");
        let quic = addr("/ip4/198.51.100.1/udp/4001/quic-v1");
        assert_eq!(t.tested(tcp.clone(), false), Some(Reachability::Private));
        assert_eq!(t.tested(tcp.clone(), false), None, "no change, no news");
        assert_eq!(t.tested(quic.clone(), true), Some(Reachability::Public));
        assert_eq!(t.tested(quic, false), Some(Reachability::Private));
    }

    #[test]
    fn declared_addresses_are_public_and_relay_addresses_are_not_tested() {
        let declared = addr("/ip4/203.0.113.7/tcp/4001");
        let mut t = Tracker::new(vec![declared.clone()]);
        assert_eq!(t.state(), Reachability::Public);
        assert_eq!(t.tested(declared, false), None, "the operator knows");
        let mut t = Tracker::default();
        let relayed = addr(
            "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
        );
        assert_eq!(t.tested(relayed, true), None);
        assert_eq!(t.state(), Reachability::Unknown);
    }

    #[test]
    fn results_are_bounded_and_the_newest_count() {
        let mut t = Tracker::default();
        t.tested(addr("/ip4/198.51.100.1/tcp/1"), true);
        for port in 2..=(MAX_RESULTS as u16 + 10) {
            t.tested(addr(&format!("/ip4/198.51.100.1/tcp/{port}")), false);
        }
        assert_eq!(t.results.len(), MAX_RESULTS);
        assert_eq!(t.state(), Reachability::Private, "the old success is gone");
        t.tested(addr("/ip4/198.51.100.2/tcp/1"), true);
        assert_eq!(t.state(), Reachability::Public, "a new one counts");
    }
}
