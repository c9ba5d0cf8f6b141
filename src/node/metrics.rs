//! Prometheus metrics of the node: libp2p's own (swarm, gossipsub, identify,
//! ping, kad, bandwidth) and the chat's (messages per room, direct messages,
//! peers, pending queues, delivery latency). The node task records them;
//! handles only encode the registry.

use std::time::Duration;

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
    pub(crate) libp2p: libp2p::metrics::Metrics,
    published: Family<RoomLabel, Counter>,
    received: Family<RoomLabel, Counter>,
    rejected: Family<RejectLabel, Counter>,
    direct_rejected: Family<ReasonLabel, Counter>,
    send_failed: Family<RoomLabel, Counter>,
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
            send_failed: Family::default(),
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
            "messages_send_failed",
            "Room messages that could not be sent and were dropped, by room",
            metrics.send_failed.clone(),
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

    pub(crate) fn published(&self, room: &str) {
        self.published.get_or_create(&room_label(room)).inc();
    }

    pub(crate) fn received(&self, room: &str, latency: Duration) {
        self.received.get_or_create(&room_label(room)).inc();
        self.latency.observe(latency.as_secs_f64());
    }

    pub(crate) fn rejected(&self, room: &str, reason: &str) {
        let label = RejectLabel {
            room: room.to_owned(),
            reason: reason.to_owned(),
        };
        self.rejected.get_or_create(&label).inc();
    }

    pub(crate) fn send_failed(&self, room: &str) {
        self.send_failed.get_or_create(&room_label(room)).inc();
    }

    pub(crate) fn direct_rejected(&self, reason: &str) {
        let label = ReasonLabel {
            reason: reason.to_owned(),
        };
        self.direct_rejected.get_or_create(&label).inc();
    }

    pub(crate) fn direct_sent(&self) {
        self.direct_sent.inc();
    }

    pub(crate) fn direct_received(&self) {
        self.direct_received.inc();
    }

    pub(crate) fn direct_failed(&self) {
        self.direct_failed.inc();
    }

    pub(crate) fn set_peers(&self, n: usize) {
        self.peers.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn set_pending(&self, room: &str, n: usize) {
        self.pending
            .get_or_create(&room_label(room))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Forgets the per-room gauge of a room we left.
    pub(crate) fn left(&self, room: &str) {
        self.pending.remove(&room_label(room));
    }
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
        m.published("lobby");
        m.received("lobby", Duration::from_millis(3));
        m.rejected("lobby", "forged");
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
        assert!(text.contains("p2p_chat_message_latency_seconds_count 1"));
        assert!(text.contains("libp2p_identify_received_total 0"), "{text}");
    }
}
