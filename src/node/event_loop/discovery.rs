//! Finding the members of our rooms through the DHT. Each node announces
//! itself as a provider of every room it is in (the key is the room's topic
//! hash), and asks who provides them while it has few peers. A provider
//! record carries the provider's confirmed addresses, its relay addresses
//! among them: this is how two nodes behind NAT that share only a public
//! node find each other. Announced again when the swarm confirms a new
//! address of ours (a relay reservation's among them).

use std::time::Duration;

use libp2p::{
    PeerId,
    gossipsub::TopicHash,
    kad::{self, store::RecordStore},
};
use tokio::time::Instant;

use super::EventLoop;

/// How often to ask for the members of our rooms while peers are few.
pub(super) const DISCOVER_EVERY: Duration = Duration::from_secs(30);
/// How soon to ask again once a relayed member is lost.
const DISCOVER_SOON: Duration = Duration::from_secs(1);

fn room_key(topic: &TopicHash) -> kad::RecordKey {
    kad::RecordKey::new(&topic.as_str())
}

impl EventLoop {
    /// Announces that we are in `topic`'s room, and asks who else is.
    pub(super) fn announce(&mut self, topic: &TopicHash) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        if let Err(e) = kad.start_providing(room_key(topic)) {
            tracing::debug!(error = %e, "cannot announce a room in the DHT");
        }
        kad.get_providers(room_key(topic));
    }

    /// Announces every room again (our addresses changed).
    pub(super) fn announce_all(&mut self) {
        let topics: Vec<TopicHash> = self.rooms.iter().map(|(t, _)| t.clone()).collect();
        for topic in &topics {
            self.announce(topic);
        }
    }

    pub(super) fn unannounce(&mut self, topic: &TopicHash) {
        self.swarm
            .behaviour_mut()
            .kad
            .stop_providing(&room_key(topic));
    }

    /// Asks for our rooms' members at the next tick but one.
    pub(super) fn discover_soon(&mut self) {
        self.next_discover = self.next_discover.min(Instant::now() + DISCOVER_SOON);
    }

    /// Asks for our rooms' members now and then while peers are few.
    pub(super) fn discover(&mut self, now: Instant) {
        if now < self.next_discover {
            return;
        }
        self.next_discover = now + DISCOVER_EVERY;
        if self.peers.enough() {
            return;
        }
        let topics: Vec<TopicHash> = self.rooms.iter().map(|(t, _)| t.clone()).collect();
        for topic in topics {
            self.swarm
                .behaviour_mut()
                .kad
                .get_providers(room_key(&topic));
        }
    }

    /// Members of a room of ours found: dialed while peers are few. The
    /// DHT query that found them supplies the addresses other nodes gave;
    /// records this node stores itself give theirs here.
    pub(super) fn found_members(
        &mut self,
        key: &kad::RecordKey,
        providers: impl IntoIterator<Item = PeerId>,
    ) {
        let stored = self.swarm.behaviour_mut().kad.store_mut().providers(key);
        for peer in providers {
            let addrs = stored
                .iter()
                .find(|r| r.provider == peer)
                .map(|r| r.addresses.clone())
                .unwrap_or_default();
            self.dial_if_wanted(peer, addrs);
        }
    }
}
