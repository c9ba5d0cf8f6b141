//! Reaching and being reached across NAT: AutoNAT results, reservations on
//! relays, the relay we serve, and hole punching. `reachability.rs` and
//! `relays.rs` decide; this applies their decisions to the swarm.

use libp2p::{
    Multiaddr, autonat, core::transport::ListenerId, dcutr, kad, multiaddr::Protocol, relay,
    swarm::dial_opts::DialOpts,
};
use tokio::time::Instant;

use super::{EventLoop, Reachability};
use crate::{
    node::{Error, relays::peer_of},
    protocol,
    ticket::{self, Ticket},
};

impl EventLoop {
    pub(super) fn on_autonat(&mut self, event: autonat::v2::client::Event) {
        let reachable = event.result.is_ok();
        tracing::debug!(
            address = %event.tested_addr,
            server = %event.server,
            reachable,
            "address tested"
        );
        if let Some(now) = self.reachability.tested(event.tested_addr, reachable) {
            tracing::info!(reachability = now.as_str(), "reachability changed");
            self.metrics.set_reachability(now);
            // A node others cannot dial would only stall their lookups.
            let mode = if now == Reachability::Private {
                kad::Mode::Client
            } else {
                kad::Mode::Server
            };
            self.swarm.behaviour_mut().kad.set_mode(Some(mode));
            self.announce_all();
        }
    }

    pub(super) fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                self.relays.reserved(&relay_peer_id);
                if !renewal {
                    // Its address is announced once the swarm confirms it.
                    tracing::info!(relay = %relay_peer_id, "reservation accepted: peers can reach us through this relay");
                }
            }
            other => tracing::debug!(event = ?other, "relay client"),
        }
    }

    /// Our relay server's events: counted by libp2p's recorder, refusals
    /// logged once each and counted by status here.
    pub(super) fn on_relay_server(&mut self, event: relay::Event) {
        match event {
            relay::Event::ReservationReqAccepted { src_peer_id, .. } => {
                self.served.reserved(src_peer_id);
            }
            relay::Event::ReservationReqDenied {
                src_peer_id,
                status,
            } => {
                tracing::info!(peer = %src_peer_id, ?status, "relay reservation refused");
                self.metrics
                    .relay_denied("reservation", format!("{status:?}"));
            }
            relay::Event::ReservationClosed { src_peer_id }
            | relay::Event::ReservationTimedOut { src_peer_id } => {
                self.served.unreserved(&src_peer_id);
            }
            relay::Event::CircuitReqAccepted {
                src_peer_id,
                dst_peer_id,
            } => self.served.circuit_opened(src_peer_id, dst_peer_id),
            relay::Event::CircuitReqDenied {
                src_peer_id,
                dst_peer_id,
                status,
            } => {
                tracing::info!(src = %src_peer_id, dst = %dst_peer_id, ?status, "relay circuit refused");
                self.metrics.relay_denied("circuit", format!("{status:?}"));
            }
            relay::Event::CircuitClosed {
                src_peer_id,
                dst_peer_id,
                ..
            } => self.served.circuit_closed(src_peer_id, dst_peer_id),
            other => tracing::debug!(event = ?other, "relay server"),
        }
        self.served_changed();
    }

    /// What the relay server holds changed: its gauges follow.
    pub(super) fn served_changed(&self) {
        self.metrics
            .relay_served(self.served.reservations(), self.served.circuits());
    }

    pub(super) fn on_dcutr(&mut self, event: dcutr::Event) {
        match event.result {
            Ok(_) => {
                tracing::info!(peer = %event.remote_peer_id, "direct connection by hole punching")
            }
            Err(e) => {
                tracing::info!(peer = %event.remote_peer_id, error = %e, "hole punching failed; the connection stays relayed")
            }
        }
    }

    /// Asks relays for the reservations `relays.rs` says are due.
    pub(super) fn reserve_relays(&mut self, now: Instant) {
        let private = self.reachability.state() == Reachability::Private;
        for (relay, addr) in self.relays.due(now, private) {
            match self.swarm.listen_on(addr.clone()) {
                Ok(id) => self.relays.listening(&relay, id),
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "cannot ask the relay for a reservation");
                    self.relays.refused(&relay, now);
                }
            }
        }
    }

    /// A listener closed: a relay's reservation ended, to be asked again.
    pub(super) fn listener_closed(&mut self, id: ListenerId) {
        if let Some(relay) = self.relays.closed(id, Instant::now()) {
            tracing::info!(%relay, "reservation on a relay ended; asking again soon");
        }
    }

    /// Closes relayed connections to peers that have a direct one.
    pub(super) fn close_superseded(&mut self) {
        for (peer, conn) in self.peers.superseded() {
            tracing::debug!(%peer, "closing the relayed connection: a direct one is up");
            if self.swarm.close_connection(conn) {
                self.metrics.relayed_closed();
            }
            // Told closed by the swarm in due course; not counted twice.
            self.peers.relayed_closed(&peer, conn);
        }
    }

    /// A relayed connection to `peer` closed while another stays up: a room
    /// message gossipsub had handed to it is lost with it, so the rooms
    /// shared with the peer are pulled again over the one that stays.
    pub(super) fn relayed_gone(&mut self, peer: libp2p::PeerId) {
        self.sync.direct_now(&peer);
        let shared: Vec<_> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(p, _)| **p == peer)
            .flat_map(|(_, topics)| topics.into_iter().cloned())
            .filter(|t| self.rooms.contains(t))
            .collect();
        for topic in shared {
            self.start_pull(peer, &topic, 0);
        }
    }
}

impl EventLoop {
    /// A ticket for a joined room: confirmed addresses first (declared,
    /// dialed back, relays'), then what we listen on; loopback only when
    /// there is nothing else.
    pub(super) fn invite(&self, room: &str) -> Result<Ticket, Error> {
        let topic = protocol::topic_for(room).hash();
        let joined = self
            .rooms
            .get(&topic)
            .ok_or_else(|| Error::NotJoined(room.to_owned()))?;
        let mut addrs: Vec<Multiaddr> = Vec::new();
        let confirmed = self.swarm.external_addresses().cloned();
        let confirmed: Vec<Multiaddr> = confirmed.map(|a| self.full(a)).collect();
        for addr in confirmed
            .into_iter()
            .chain(self.listen_addrs.iter().cloned())
        {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        let (mut wide, near): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|a| !is_loopback(a));
        if wide.is_empty() {
            wide = near;
        }
        wide.truncate(ticket::MAX_ADDRS);
        Ok(Ticket::new(room.to_owned(), joined.key.is_some(), wide))
    }

    /// Dials the peer a ticket's addresses lead to.
    pub(super) fn reach(&mut self, addrs: Vec<Multiaddr>) -> Result<(), Error> {
        let peer = addrs
            .iter()
            .find_map(peer_of)
            .ok_or_else(|| Error::Transport("the addresses name no peer".into()))?;
        if peer == *self.swarm.local_peer_id() {
            return Err(Error::Transport("this ticket is this node's own".into()));
        }
        let addrs: Vec<Multiaddr> = addrs
            .into_iter()
            .filter(|a| peer_of(a) == Some(peer))
            .collect();
        // Not while connected or dialing already (the default condition).
        let opts = DialOpts::peer_id(peer).addresses(addrs).build();
        match self.swarm.dial(opts) {
            Ok(()) => Ok(()),
            Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => Ok(()),
            Err(e) => Err(Error::Transport(format!(
                "cannot dial the inviting node: {e}"
            ))),
        }
    }
}

fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}
