//! Prometheus metrics of the node: libp2p's own (swarm, gossipsub, identify,
//! ping, kad, bandwidth) and the chat's (messages per room, direct messages,
//! peers, pending queues, delivery latency). The node task records them,
//! mostly from the events it emits; handles only encode the registry.
//!
//! Every counter of the node is counted here and only here: `/status`
//! reads its totals from [`Metrics::stats`], so the two never disagree.

use std::time::Duration;

use libp2p::{metrics::Recorder, swarm::SwarmEvent};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

use super::{Event, Reachability, Stats, behaviour::BehaviourEvent};
use crate::protocol;

/// Prefix of the chat's own metric names.
const PREFIX: &str = "p2p_chat";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoomLabel {
    room: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabel {
    room: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeniedLabel {
    request: &'static str,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// What the SSH front end records: kept by the node's handle, in the
/// node's registry.
#[derive(Debug, Clone, Default)]
pub(crate) struct SshMetrics {
    sessions: Gauge,
    refused: Family<ReasonLabel, Counter>,
}

impl SshMetrics {
    /// Registers the SSH metrics in `registry`.
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let metrics = SshMetrics::default();
        let r = registry.sub_registry_with_prefix(PREFIX);
        r.register(
            "ssh_sessions",
            "SSH sessions open",
            metrics.sessions.clone(),
        );
        r.register(
            "ssh_refused",
            "SSH logins refused, by reason",
            metrics.refused.clone(),
        );
        metrics
    }

    pub(crate) fn sessions(&self, open: usize) {
        self.sessions.set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    pub(crate) fn refused(&self, reason: &str) {
        self.refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// Everything the node task records.
pub(crate) struct Metrics {
    /// libp2p's recorders, fed with swarm and behaviour events.
    libp2p: libp2p::metrics::Metrics,
    published: Family<RoomLabel, Counter>,
    received: Family<RoomLabel, Counter>,
    recovered: Family<RoomLabel, Counter>,
    opaque: Family<RoomLabel, Counter>,
    send_failed: Family<RoomLabel, Counter>,
    rejected: Family<RejectLabel, Counter>,
    direct_rejected: Family<ReasonLabel, Counter>,
    direct_sent: Counter,
    direct_received: Counter,
    direct_failed: Counter,
    peers: Gauge,
    pending: Family<RoomLabel, Gauge>,
    latency: Histogram,
    store_failures: Counter,
    trimmed: Counter,
    reachability: Family<StateLabel, Gauge>,
    relay_reservations: Gauge,
    relay_circuits: Gauge,
    relay_denied: Family<DeniedLabel, Counter>,
    relayed_closed: Counter,
    /// The same counts as totals, for `/status`.
    totals: Stats,
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let libp2p = libp2p::metrics::Metrics::new(registry);
        let metrics = Metrics {
            libp2p,
            published: Family::default(),
            received: Family::default(),
            recovered: Family::default(),
            opaque: Family::default(),
            send_failed: Family::default(),
            rejected: Family::default(),
            direct_rejected: Family::default(),
            direct_sent: Counter::default(),
            direct_received: Counter::default(),
            direct_failed: Counter::default(),
            peers: Gauge::default(),
            pending: Family::default(),
            // 1 ms to about 33 s.
            latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            store_failures: Counter::default(),
            trimmed: Counter::default(),
            reachability: Family::default(),
            relay_reservations: Gauge::default(),
            relay_circuits: Gauge::default(),
            relay_denied: Family::default(),
            relayed_closed: Counter::default(),
            totals: Stats::default(),
        };
        let r = registry.sub_registry_with_prefix(PREFIX);
        r.register(
            "messages_published",
            "Room messages we published, by room",
            metrics.published.clone(),
        );
        r.register(
            "messages_received",
            "Room messages received from peers and shown, by room",
            metrics.received.clone(),
        );
        r.register(
            "messages_recovered",
            "Room messages taken in by history sync or late, not live, by room",
            metrics.recovered.clone(),
        );
        r.register(
            "messages_opaque",
            "Sealed room messages relayed and kept but not readable here, by room",
            metrics.opaque.clone(),
        );
        r.register(
            "messages_send_failed",
            "Our room messages gossipsub refused to send (kept: sync delivers them), by room",
            metrics.send_failed.clone(),
        );
        r.register(
            "store_failures",
            "Messages a history commit failed to write",
            metrics.store_failures.clone(),
        );
        r.register(
            "connections_trimmed",
            "Connections to unused peers closed because there were too many",
            metrics.trimmed.clone(),
        );
        r.register(
            "messages_rejected",
            "Room messages refused or dropped, by room and reason",
            metrics.rejected.clone(),
        );
        r.register(
            "direct_sent",
            "Direct messages delivered (receipt received)",
            metrics.direct_sent.clone(),
        );
        r.register(
            "direct_received",
            "Direct messages received",
            metrics.direct_received.clone(),
        );
        r.register(
            "direct_failed",
            "Direct messages not delivered",
            metrics.direct_failed.clone(),
        );
        r.register(
            "direct_rejected",
            "Direct messages refused, by reason",
            metrics.direct_rejected.clone(),
        );
        r.register("peers_connected", "Connected peers", metrics.peers.clone());
        r.register(
            "pending_messages",
            "Our room messages waiting for a peer of the room, by room",
            metrics.pending.clone(),
        );
        r.register(
            "reachability",
            "1 for the node's reachability (public, private, unknown), 0 for the others",
            metrics.reachability.clone(),
        );
        r.register(
            "relay_reservations",
            "Peers holding a reservation on this relay server",
            metrics.relay_reservations.clone(),
        );
        r.register(
            "relay_circuits",
            "Circuits open through this relay server",
            metrics.relay_circuits.clone(),
        );
        r.register(
            "relay_denied",
            "Reservations and circuits this relay server refused, by request and status",
            metrics.relay_denied.clone(),
        );
        r.register(
            "relayed_connections_closed",
            "Relayed connections closed because a direct one to the peer was up",
            metrics.relayed_closed.clone(),
        );
        metrics.set_reachability(Reachability::Unknown);
        r.register_with_unit(
            "message_latency",
            "Time from a room message's timestamp at its author to its receipt here",
            Unit::Seconds,
            metrics.latency.clone(),
        );
        metrics
    }

    /// Feeds libp2p's recorders: the swarm event itself and, for the
    /// protocols libp2p has recorders for, the behaviour's event.
    pub(crate) fn record(&self, event: &SwarmEvent<BehaviourEvent>) {
        self.libp2p.record(event);
        if let SwarmEvent::Behaviour(event) = event {
            match event {
                BehaviourEvent::Gossipsub(e) => self.libp2p.record(e),
                BehaviourEvent::Identify(e) => self.libp2p.record(e),
                BehaviourEvent::Ping(e) => self.libp2p.record(e),
                BehaviourEvent::Kad(e) => self.libp2p.record(e),
                BehaviourEvent::Relay(e) => self.libp2p.record(e),
                BehaviourEvent::Dcutr(e) => self.libp2p.record(e),
                _ => {}
            }
        }
    }

    /// Counts what the node tells its front ends, so the numbers are those
    /// of what users saw. `peers` is the number of connected peers after
    /// the event.
    pub(crate) fn observe(&mut self, event: &Event, peers: usize) {
        let totals = &mut self.totals;
        match event {
            Event::Sent { room, .. } => {
                totals.published += 1;
                self.published.get_or_create(&room_label(room)).inc();
            }
            Event::Message {
                room,
                ts,
                recovered,
                ..
            } => {
                totals.received += 1;
                self.received.get_or_create(&room_label(room)).inc();
                if *recovered {
                    totals.recovered += 1;
                    self.recovered.get_or_create(&room_label(room)).inc();
                }
                // A clock behind ours counts as no delay, not as negative.
                let ms = protocol::now_ms().saturating_sub(*ts);
                self.latency
                    .observe(Duration::from_millis(ms).as_secs_f64());
            }
            Event::Receipt { .. } => {
                totals.direct_sent += 1;
                self.direct_sent.inc();
            }
            Event::Direct { .. } => {
                totals.direct_received += 1;
                self.direct_received.inc();
            }
            Event::DirectFailed { .. } => {
                totals.direct_failed += 1;
                self.direct_failed.inc();
            }
            Event::PeerConnected { .. } | Event::PeerDisconnected { .. } => {
                self.peers.set(gauge_value(peers));
            }
            Event::Left { room } => {
                self.pending.remove(&room_label(room));
            }
            _ => {}
        }
    }

    /// A room message refused or dropped; `room` is None when it came on a
    /// topic we are not in.
    pub(crate) fn rejected(&mut self, room: Option<&str>, reason: &'static str) {
        *self.totals.rejected.entry(reason).or_default() += 1;
        let label = RejectLabel {
            room: room.unwrap_or("unknown").to_owned(),
            reason: reason.to_owned(),
        };
        self.rejected.get_or_create(&label).inc();
    }

    pub(crate) fn set_reachability(&self, now: Reachability) {
        for state in [
            Reachability::Public,
            Reachability::Private,
            Reachability::Unknown,
        ] {
            let label = StateLabel {
                state: state.as_str(),
            };
            self.reachability
                .get_or_create(&label)
                .set(i64::from(state == now));
        }
    }

    /// What the relay server holds now.
    pub(crate) fn relay_served(&self, reservations: usize, circuits: usize) {
        self.relay_reservations.set(gauge_value(reservations));
        self.relay_circuits.set(gauge_value(circuits));
    }

    /// The relay server refused a `request` ("reservation" or "circuit").
    pub(crate) fn relay_denied(&self, request: &'static str, status: String) {
        self.relay_denied
            .get_or_create(&DeniedLabel { request, status })
            .inc();
    }

    pub(crate) fn relayed_closed(&self) {
        self.relayed_closed.inc();
    }

    /// A direct message refused.
    pub(crate) fn direct_rejected(&mut self, reason: &'static str) {
        *self.totals.rejected.entry(reason).or_default() += 1;
        let label = ReasonLabel {
            reason: reason.to_owned(),
        };
        self.direct_rejected.get_or_create(&label).inc();
    }

    /// A sealed room message we cannot read, relayed and kept.
    pub(crate) fn opaque(&mut self, room: &str) {
        self.totals.opaque += 1;
        self.opaque.get_or_create(&room_label(room)).inc();
    }

    /// One of our room messages gossipsub refused to send.
    pub(crate) fn send_failed(&mut self, room: &str) {
        self.totals.send_failed += 1;
        self.send_failed.get_or_create(&room_label(room)).inc();
    }

    /// Messages a history commit failed to write.
    pub(crate) fn store_failed(&mut self, records: usize) {
        let n = records as u64;
        self.totals.store_failures += n;
        self.store_failures.inc_by(n);
    }

    /// A connection closed because there were too many.
    pub(crate) fn trimmed(&mut self) {
        self.totals.trimmed += 1;
        self.trimmed.inc();
    }

    /// The totals `/status` shows.
    pub(crate) fn stats(&self) -> Stats {
        self.totals.clone()
    }

    /// The length of a room's queue of messages waiting for a peer.
    pub(crate) fn set_pending(&self, room: &str, n: usize) {
        self.pending
            .get_or_create(&room_label(room))
            .set(gauge_value(n));
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn room_label(room: &str) -> RoomLabel {
    RoomLabel {
        room: room.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_chat_metrics_with_room_labels() {
        let mut registry = Registry::default();
        let mut m = Metrics::new(&mut registry);
        let (room, id, text) = ("lobby".to_owned(), "x".to_owned(), "hi".to_owned());
        let nick = "n".to_owned();
        m.observe(
            &Event::Sent {
                room: room.clone(),
                id: id.clone(),
                nick: nick.clone(),
                text: text.clone(),
                ts: 1,
            },
            0,
        );
        m.observe(
            &Event::Message {
                room: room.clone(),
                id,
                from: "p".into(),
                nick,
                text,
                ts: protocol::now_ms(),
                recovered: false,
            },
            0,
        );
        m.observe(&Event::PeerConnected { peer: "p".into() }, 3);
        m.rejected(Some("lobby"), "forged");
        m.set_pending("lobby", 2);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(
            text.contains(r#"p2p_chat_messages_published_total{room="lobby"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"p2p_chat_messages_rejected_total{room="lobby",reason="forged"} 1"#)
        );
        assert!(text.contains(r#"p2p_chat_pending_messages{room="lobby"} 2"#));
        assert!(text.contains(r#"p2p_chat_messages_received_total{room="lobby"} 1"#));
        assert!(text.contains("p2p_chat_message_latency_seconds_count 1"));
        assert!(text.contains("p2p_chat_peers_connected 3"));
        m.opaque("lobby");
        m.store_failed(2);
        let stats = m.stats();
        assert_eq!(
            (stats.published, stats.received, stats.recovered),
            (1, 1, 0)
        );
        assert_eq!((stats.opaque, stats.store_failures), (1, 2));
        assert_eq!(stats.rejected.get("forged"), Some(&1));
        m.observe(&Event::Left { room }, 3);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(!text.contains(r#"p2p_chat_pending_messages{room="lobby"}"#));
        assert!(text.contains("libp2p_identify_received_total 0"), "{text}");
    }
}
