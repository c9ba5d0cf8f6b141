//! What a node is started with: the node's part of the configuration.
//! `config.rs` builds it from flags and the environment
//! (`From<&Config>`); nothing inside the node reads the whole `Config`,
//! so UI and HTTP flags stay out of the swarm and the event loop.

use std::{path::PathBuf, time::Duration};

use libp2p::{Multiaddr, multiaddr::Protocol};

use crate::crypto::Secret;

/// How much history a room keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Keep at most this many messages.
    pub count: Option<usize>,
    /// Keep messages at most this old.
    pub max_age: Option<std::time::Duration>,
}

/// What a relay server lends to others. Defaults suit a small public node:
/// a chat needs few bytes, and a circuit only has to last until the two
/// ends hole-punch a direct connection or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    /// Reservations held at once, all peers together.
    pub max_reservations: usize,
    /// Circuits open at once, all peers together.
    pub max_circuits: usize,
    /// Circuits open at once per peer (either end).
    pub max_circuits_per_peer: usize,
    /// Bytes a circuit may carry, both ways together.
    pub circuit_bytes: u64,
    /// How long a circuit may stay open.
    pub circuit_duration: Duration,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_reservations: 128,
            max_circuits: 64,
            max_circuits_per_peer: 4,
            circuit_bytes: 1 << 20,
            circuit_duration: Duration::from_secs(10 * 60),
        }
    }
}

/// The well-known port, TCP and QUIC, used when no listen address is given.
pub const DEFAULT_PORT: u16 = 4001;

/// A node's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Addresses to listen on; none: [`default_listen`] on
    /// [`DEFAULT_PORT`], or any free port if it is taken.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and redial when lost.
    pub dial: Vec<Multiaddr>,
    /// Peers to dial until enough others are found.
    pub bootstrap: Vec<Multiaddr>,
    /// Addresses where others reach us, as the operator knows them.
    pub external: Vec<Multiaddr>,
    /// Relays to hold a reservation on, whatever our reachability.
    pub relays: Vec<Multiaddr>,
    /// Serve circuit relay v2 to others, within these limits.
    pub relay_server: Option<RelayLimits>,
    /// The room joined at start.
    pub room: String,
    /// Our nick; none: the login name, else a short peer id.
    pub nick: Option<String>,
    /// The start room's passphrase (an encrypted room).
    pub passphrase: Option<Secret>,
    /// Where the key and the history live; none: the platform data dir.
    pub data_dir: Option<PathBuf>,
    /// A fresh key and history in memory, nothing on disk.
    pub ephemeral: bool,
    /// Find peers on the LAN by mDNS.
    pub mdns: bool,
    /// Gossipsub heartbeat.
    pub heartbeat: Duration,
    /// How long a direct message waits for its receipt.
    pub dm_timeout: Duration,
    /// Recent messages kept in memory per room.
    pub history_ring: usize,
    /// How much history each room keeps; none: everything.
    pub history_retention: Option<Retention>,
    /// Time between history reconciliations with each room's peers.
    pub sync_interval: Duration,
}

/// The listen addresses used when none were given.
pub fn default_listen(port: u16) -> Vec<Multiaddr> {
    vec![
        Multiaddr::empty()
            .with(Protocol::Ip4([0, 0, 0, 0].into()))
            .with(Protocol::Tcp(port)),
        Multiaddr::empty()
            .with(Protocol::Ip4([0, 0, 0, 0].into()))
            .with(Protocol::Udp(port))
            .with(Protocol::QuicV1),
    ]
}
