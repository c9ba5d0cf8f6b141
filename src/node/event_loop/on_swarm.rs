//! Reacting to swarm events: connections, listen addresses, and each
//! protocol's events (room messages, direct messages, discovery, pings).

use libp2p::{
    Multiaddr, PeerId,
    core::ConnectedPoint,
    gossipsub, identify, kad, mdns,
    multiaddr::Protocol,
    ping, relay,
    swarm::{SwarmEvent, dial_opts::DialOpts},
};
use tokio::time::Instant;

use super::EventLoop;
use crate::node::{Event, behaviour::BehaviourEvent};

impl EventLoop {
    pub(super) fn handle_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.metrics.record(&event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(ev)) => self.on_gossipsub(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Direct(ev)) => self.on_direct(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(ev)) => self.on_identify(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => self.on_kad(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(ev)) => self.on_mdns(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(ev)) => self.on_autonat(ev),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(ev)) => self.on_relay_client(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Relay(ev)) => self.on_relay_server(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(ev)) => self.on_dcutr(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            })) => {
                self.peers.set_rtt(&peer, rtt);
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = self.full(address);
                // A relay reservation's renewal reports its address again.
                if self.listen_addrs.contains(&full) {
                    return;
                }
                tracing::info!(address = %full, "listening");
                self.listen_addrs.push(full.clone());
                self.emit(Event::Listening {
                    address: full.to_string(),
                });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                let full = self.full(address);
                self.listen_addrs.retain(|a| *a != full);
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "address confirmed");
                // Our rooms' provider records should carry it.
                self.announce_all();
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                ..
            } => {
                for address in addresses {
                    let full = self.full(address);
                    self.listen_addrs.retain(|a| *a != full);
                }
                self.listener_closed(listener_id);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let (addr, outbound) = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => (Some(address.clone()), true),
                    ConnectedPoint::Listener { .. } => (None, false),
                };
                if let Some(addr) =
                    self.redial
                        .on_established(connection_id, peer_id, Instant::now())
                {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    if let Err(e) = self.swarm.behaviour_mut().kad.bootstrap() {
                        tracing::debug!(error = %e, "kademlia bootstrap");
                    }
                }
                let first = self.peers.connected(peer_id, addr, outbound);
                if first && let Some(target) = self.redial.target_addr(&peer_id).cloned() {
                    // A dial or bootstrap peer: a relay candidate, and one
                    // to tell (again) which rooms we are in.
                    self.relays.dialed(peer_id, &target);
                    self.announce_all();
                }
                if endpoint.is_relayed() {
                    self.peers.relayed(&peer_id, connection_id);
                }
                if first {
                    tracing::info!(peer = %peer_id, relayed = endpoint.is_relayed(), "peer connected");
                    self.emit(Event::PeerConnected {
                        peer: peer_id.to_string(),
                    });
                    self.send_hello(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                endpoint,
                num_established: 0,
                ..
            } => {
                self.peers.relayed_closed(&peer_id, connection_id);
                self.redial.on_disconnected(peer_id, Instant::now());
                self.served.gone(&peer_id);
                if endpoint.is_relayed() {
                    // A circuit ended (its limits): look for the room's
                    // members again soon rather than at the next round.
                    self.discover_soon();
                }
                self.served_changed();
                if self.peers.disconnected(&peer_id) {
                    tracing::info!(peer = %peer_id, "peer disconnected");
                    self.emit(Event::PeerDisconnected {
                        peer: peer_id.to_string(),
                    });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                self.peers.relayed_closed(&peer_id, connection_id);
                self.peers.disconnected(&peer_id);
                if endpoint.is_relayed() {
                    self.relayed_gone(peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
                self.redial.on_dial_failed(connection_id, Instant::now());
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!(%error, "listener error");
            }
            _ => {}
        }
    }

    /// A listen address with our peer id at the end (a relay's circuit
    /// address has it already).
    pub(super) fn full(&self, address: Multiaddr) -> Multiaddr {
        let me = *self.swarm.local_peer_id();
        if address.iter().last() == Some(Protocol::P2p(me)) {
            address
        } else {
            address.with(Protocol::P2p(me))
        }
    }

    fn on_gossipsub(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let verdict = self.receive_live(&message.topic, &message.data, &propagation_source);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, verdict);
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                tracing::debug!(peer = %peer_id, %topic, "peer subscribed");
                self.flush_pending(&topic);
                if self.rooms.contains(&topic) {
                    self.start_pull(peer_id, &topic, 0);
                }
            }
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                tracing::warn!(peer = %peer_id, ?failed_messages, "slow peer: messages to it were dropped");
            }
            _ => {}
        }
    }

    fn on_identify(&mut self, event: identify::Event) {
        if let identify::Event::Received { peer_id, info, .. } = event {
            let hop = info.protocols.contains(&relay::HOP_PROTOCOL_NAME);
            self.relays.identified(peer_id, hop, Instant::now());
            self.peers
                .add_addresses(&peer_id, info.listen_addrs.iter().cloned());
            for addr in info.listen_addrs {
                self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
            }
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated {
                peer, addresses, ..
            } => self.dial_if_wanted(peer, addresses.into_vec()),
            kad::Event::OutboundQueryProgressed {
                result:
                    kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                        key,
                        providers,
                    })),
                ..
            } => self.found_members(&key, providers),
            _ => {}
        }
    }

    fn on_mdns(&mut self, event: mdns::Event) {
        if let mdns::Event::Discovered(found) = event {
            for (peer, addr) in found {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
                self.dial_if_wanted(peer, vec![addr]);
            }
        }
    }

    pub(super) fn dial_if_wanted(&mut self, peer: PeerId, addresses: Vec<Multiaddr>) {
        let dialing = self
            .swarm
            .network_info()
            .connection_counters()
            .num_pending_outgoing() as usize;
        if peer == *self.swarm.local_peer_id()
            || self.swarm.is_connected(&peer)
            || !self.peers.worth_dialing(&peer, dialing)
        {
            return;
        }
        let opts = DialOpts::peer_id(peer).addresses(addresses).build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, error = %e, "discovered peer not dialed");
        }
    }
}
