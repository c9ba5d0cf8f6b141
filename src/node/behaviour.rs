//! The libp2p protocols a node speaks, combined into one behaviour, each
//! configured for chat: small frames, validated messages, bounded
//! connections.

use std::time::Duration;

use libp2p::{
    autonat, connection_limits, dcutr, gossipsub, identify,
    identity::Keypair,
    kad, mdns, ping, relay, request_response,
    swarm::{NetworkBehaviour, behaviour::toggle::Toggle},
};

use prometheus_client::registry::Registry;

use super::Error;
use crate::{
    protocol::{self, DirectRequest, DirectResponse},
    sync::{self, SyncRequest, SyncResponse},
};

/// Upper bounds on connections, so a flood of dials or a chatty DHT cannot
/// exhaust the node.
const MAX_PENDING: u32 = 64;
const MAX_ESTABLISHED: u32 = 256;
const MAX_PER_PEER: u32 = 4;

/// Every protocol of a chat node.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) direct: request_response::json::Behaviour<DirectRequest, DirectResponse>,
    pub(crate) sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    /// Reservations on relays and circuits through them.
    pub(crate) relay_client: relay::client::Behaviour,
    /// Serving as a relay (`--relay-server`).
    pub(crate) relay: Toggle<relay::Behaviour>,
    /// Hole punching: a relayed connection upgraded to a direct one.
    pub(crate) dcutr: dcutr::Behaviour,
    /// Asks peers to dial our addresses back: are we reachable?
    pub(crate) autonat: autonat::v2::client::Behaviour,
    /// Dials back others' addresses when they ask.
    pub(crate) autonat_server: autonat::v2::server::Behaviour,
}

impl Behaviour {
    pub(crate) fn new(
        key: &Keypair,
        relay_client: relay::client::Behaviour,
        cfg: &super::Options,
        registry: &mut Registry,
    ) -> Result<Self, Error> {
        let peer_id = key.public().to_peer_id();
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(MAX_PENDING))
            .with_max_pending_outgoing(Some(MAX_PENDING))
            .with_max_established(Some(MAX_ESTABLISHED))
            .with_max_established_per_peer(Some(MAX_PER_PEER));

        let gossip_cfg = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(cfg.heartbeat)
            .heartbeat_initial_delay(Duration::from_millis(100))
            // Authorship is the envelope's own signature, checked once per
            // message in validation; gossipsub's per-frame signature would
            // sign twice and verify every duplicate copy again.
            .validation_mode(gossipsub::ValidationMode::Anonymous)
            .validate_messages()
            .message_id_fn(|m: &gossipsub::Message| {
                gossipsub::MessageId::from(protocol::message_id(&m.data))
            })
            .max_transmit_size(protocol::MAX_FRAME_BYTES)
            .build()
            .map_err(|e| Error::Transport(format!("gossipsub config: {e}")))?;
        let gossipsub =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_cfg)
                .map_err(|e| Error::Transport(format!("gossipsub: {e}")))?
                .with_metrics(
                    registry.sub_registry_with_prefix("gossipsub"),
                    gossipsub::MetricsConfig::default(),
                );

        let frame = protocol::MAX_FRAME_BYTES as u64;
        let codec = request_response::json::codec::Codec::default()
            .set_request_size_maximum(frame)
            .set_response_size_maximum(frame);
        let direct = request_response::Behaviour::with_codec(
            codec,
            [(
                protocol::DM_PROTOCOL,
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(cfg.dm_timeout)
                .with_max_concurrent_streams(64),
        );

        let sync_codec = request_response::cbor::codec::Codec::default()
            .set_request_size_maximum(sync::MAX_REQUEST)
            .set_response_size_maximum(sync::MAX_RESPONSE);
        let sync = request_response::Behaviour::with_codec(
            sync_codec,
            [(sync::PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(Duration::from_secs(20))
                .with_max_concurrent_streams(16),
        );

        let identify = identify::Behaviour::new(
            identify::Config::new(protocol::IDENTIFY_PROTOCOL.into(), key.public())
                .with_agent_version(format!("p2p-chat/{}", env!("CARGO_PKG_VERSION"))),
        );

        let mut kad = kad::Behaviour::with_config(
            peer_id,
            kad::store::MemoryStore::new(peer_id),
            kad::Config::new(protocol::KAD_PROTOCOL),
        );
        // Serve the DHT even without a confirmed public address, so peers
        // that only share a bootstrap node can find each other.
        kad.set_mode(Some(kad::Mode::Server));

        let mdns = if !cfg.mdns {
            None
        } else {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(|e| Error::Transport(format!("mdns: {e}")))?,
            )
        };

        Ok(Behaviour {
            limits: connection_limits::Behaviour::new(limits),
            gossipsub,
            direct,
            sync,
            identify,
            ping: ping::Behaviour::new(ping::Config::new()),
            kad,
            mdns: mdns.into(),
            relay_client,
            relay: cfg.relay_server.map(|l| relay_server(peer_id, l)).into(),
            dcutr: dcutr::Behaviour::new(peer_id),
            autonat: autonat::v2::client::Behaviour::default(),
            autonat_server: autonat::v2::server::Behaviour::default(),
        })
    }
}

/// A relay server within `limits`. It offers relay once it has a confirmed
/// address (`--external`, or AutoNAT's): a reservation carries the relay's
/// addresses, and one without any is refused by the client while still
/// holding a slot here.
fn relay_server(peer_id: libp2p::PeerId, limits: super::RelayLimits) -> relay::Behaviour {
    let config = relay::Config {
        max_reservations: limits.max_reservations,
        max_circuits: limits.max_circuits,
        max_circuits_per_peer: limits.max_circuits_per_peer,
        max_circuit_bytes: limits.circuit_bytes,
        max_circuit_duration: limits.circuit_duration,
        ..relay::Config::default()
    };
    relay::Behaviour::new(peer_id, config)
}
