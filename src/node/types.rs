//! What the node answers with: plain data, serializable for the JSON front
//! ends.

use crate::node::reachability::Reachability;
use serde::Serialize;

/// The result of publishing a room message.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    /// The message id.
    pub id: String,
    /// True when no peer of the room was reachable: the message is queued
    /// and goes out as soon as one is.
    pub pending: bool,
}

/// A delivered direct message.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    /// The direct message's id.
    pub id: String,
    /// The recipient.
    pub to: String,
}

/// A connected peer, as `/peers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    /// Peer id.
    pub peer: String,
    /// Last nick heard from it.
    pub nick: Option<String>,
    /// How to show it: the nick, with a peer id suffix where nicks collide.
    pub display: String,
    /// Addresses it is reachable at.
    pub addresses: Vec<String>,
    /// Last ping round trip.
    pub rtt_ms: Option<f64>,
    /// When the first current connection opened, ms since the epoch.
    pub connected_since: u64,
    /// "inbound" or "outbound" (of the first current connection).
    pub direction: &'static str,
    /// "direct", or "relayed" while every connection goes through a relay.
    pub connection: &'static str,
}

/// A joined room.
#[derive(Debug, Clone, Serialize)]
pub struct RoomInfo {
    /// Room name.
    pub room: String,
    /// Joined with a passphrase: messages are sealed.
    pub encrypted: bool,
    /// Connected peers subscribed to it.
    pub members: usize,
    /// Peers in our gossipsub mesh for it.
    pub mesh_peers: usize,
    /// Messages waiting for a peer.
    pub pending: usize,
    /// Messages of the room this node keeps (in its store, or in memory
    /// with `--ephemeral`), readable or not.
    pub messages: u64,
    /// Messages in it this node could not read (another key, no key, or
    /// plain in a room we hold a key for) since it joined with this key.
    pub unreadable: u64,
}

/// Counters kept by the node task.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Room messages published.
    pub published: u64,
    /// Room messages received and shown.
    pub received: u64,
    /// Frames rejected, by reason.
    pub rejected: std::collections::BTreeMap<&'static str, u64>,
    /// Sealed room messages relayed but not readable here (no key, or
    /// another key).
    pub opaque: u64,
    /// Room messages that could not be sent and were dropped.
    pub send_failed: u64,
    /// Direct messages delivered (receipt received).
    pub direct_sent: u64,
    /// Direct messages received.
    pub direct_received: u64,
    /// Direct messages that failed.
    pub direct_failed: u64,
    /// Room messages that arrived by history sync rather than live.
    pub recovered: u64,
    /// Messages that could not be written to the history store.
    pub store_failures: u64,
    /// Connections to unused peers closed because there were too many.
    pub trimmed: u64,
}

/// What a relay server holds for others now.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RelayServerStatus {
    /// Peers holding a reservation.
    pub reservations: usize,
    /// Circuits open through us.
    pub circuits: usize,
    /// Circuits opened through us since the start.
    pub circuits_opened: u64,
}

/// The SSH front end, while it serves.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SshStatus {
    /// Where it listens.
    pub addr: String,
    /// The host key's fingerprint (`SHA256:…`).
    pub fingerprint: String,
    /// Sessions open now.
    pub sessions: usize,
    /// Sessions allowed at once.
    pub max_sessions: usize,
}

/// A snapshot of the node.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Our peer id.
    pub peer_id: String,
    /// Our nick.
    pub nick: String,
    /// The program's version.
    pub version: &'static str,
    /// Seconds since the node started.
    pub uptime_secs: u64,
    /// Full addresses to reach us (ending in `/p2p/<id>`).
    pub listen_addrs: Vec<String>,
    /// Addresses confirmed to reach us: declared by `--external`, dialed
    /// back by AutoNAT, or a relay's circuit address holding our reservation.
    pub external_addrs: Vec<String>,
    /// Whether peers can dial us: "public", "private" or "unknown".
    pub reachability: Reachability,
    /// How we take part in the DHT: "server" (we answer lookups), or
    /// "client" while private (others could not dial us to ask).
    pub dht_mode: &'static str,
    /// Our addresses through relays (`…/p2p-circuit/p2p/<id>`): the ones
    /// to share when we are private.
    pub relay_addrs: Vec<String>,
    /// Serving as a relay: what it holds now; none when not serving.
    pub relay_server: Option<RelayServerStatus>,
    /// The SSH front end, when it serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshStatus>,
    /// Joined rooms.
    pub rooms: Vec<String>,
    /// Connected peers.
    pub connected_peers: usize,
    /// Counters.
    pub stats: Stats,
    /// The last history write failure, while the store is failing (the
    /// node keeps relaying; readiness reports it).
    pub store_error: Option<String>,
    /// Where history is kept: the file, or "memory".
    pub history: String,
}
