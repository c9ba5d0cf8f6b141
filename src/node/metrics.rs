//! Prometheus metrics of the node: libp2p's own (swarm, gossipsub, identify,
//! ping, kad, bandwidth) and the chat's (messages per room, direct messages,
//! peers, pending queues, delivery latency). The node task records them,
//! mostly from the events it emits; handles only encode the registry.

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

use super::{Event, behaviour::BehaviourEvent};
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
struct ReasonLabel {
    reason: String,
}

/// Everything the node task records.
pub(crate) struct Metrics {
    /// libp2p's recorders, fed with swarm and behaviour events.
    libp2p: libp2p::metrics::Metrics,
    published: Family<RoomLabel, Counter>,
    received: Family<RoomLabel, Counter>,
    rejected: Family<RejectLabel, Counter>,
    direct_rejected: Family<ReasonLabel, Counter>,
    direct_sent: Counter,
    direct_received: Counter,
    direct_failed: Counter,
    peers: Gauge,
    pending: Family<RoomLabel, Gauge>,
    latency: Histogram,
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let libp2p = libp2p::metrics::Metrics::new(registry);
        let metrics = Metrics {
            libp2p,
            published: Family::default(),
            received: Family::default(),
            rejected: Family::default(),
            direct_rejected: Family::default(),
            direct_sent: Counter::default(),
            direct_received: Counter::default(),
            direct_failed: Counter::default(),
            peers: Gauge::default(),
            pending: Family::default(),
            // 1 ms to about 33 s.
            latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
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
                _ => {}
            }
        }
    }

    /// Counts what the node tells its front ends, so the numbers are those
    /// of what users saw. `peers` is the number of connected peers after
    /// the event.
    pub(crate) fn observe(&self, event: &Event, peers: usize) {
        match event {
            Event::Sent { room, .. } => {
                self.published.get_or_create(&room_label(room)).inc();
            }
            Event::Message { room, ts, .. } => {
                self.received.get_or_create(&room_label(room)).inc();
                // A clock behind ours counts as no delay, not as negative.
                let ms = protocol::now_ms().saturating_sub(*ts);
                self.latency
                    .observe(Duration::from_millis(ms).as_secs_f64());
            }
            Event::Receipt { .. } => {
                self.direct_sent.inc();
            }
            Event::Direct { .. } => {
                self.direct_received.inc();
            }
            Event::DirectFailed { .. } => {
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
    pub(crate) fn rejected(&self, room: Option<&str>, reason: &str) {
        let label = RejectLabel {
            room: room.unwrap_or("unknown").to_owned(),
            reason: reason.to_owned(),
        };
        self.rejected.get_or_create(&label).inc();
    }

    /// A direct message refused.
    pub(crate) fn direct_rejected(&self, reason: &str) {
        let label = ReasonLabel {
            reason: reason.to_owned(),
        };
        self.direct_rejected.get_or_create(&label).inc();
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
        let m = Metrics::new(&mut registry);
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
        m.observe(&Event::Left { room }, 3);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(!text.contains(r#"p2p_chat_pending_messages{room="lobby"}"#));
        assert!(text.contains("libp2p_identify_received_total 0"), "{text}");
    }
}
