//! Room traffic in the node task: joining and leaving, publishing (sealed in
//! an encrypted room, queued while no peer of the room is reachable), and
//! reading what arrives (opened with the room key when there is one).

use libp2p::{
    PeerId,
    gossipsub::{MessageAcceptance, PublishError, TopicHash},
    identity::Keypair,
};

use super::{
    Error, Event, RoomInfo, Sent, check_room,
    event_loop::{EventLoop, check_text, publish_reason},
};
use crate::{
    crypto::{Binding, CryptoError, RoomKey},
    protocol::{self, Body, ChatMessage, Envelope, Inner},
    room::{Outgoing, PENDING_CAP, Room},
};

/// What became of a received room envelope.
enum Reading {
    /// Readable: show it.
    Shown(ChatMessage),
    /// Sealed and we cannot read it: relay it, show a notice once.
    Opaque,
    /// Refused, counted under this reason.
    Refused(&'static str, MessageAcceptance),
}

impl EventLoop {
    /// Joins `room`, or sets its key if already joined. True if newly joined.
    pub(crate) fn join(&mut self, room: &str, key: Option<RoomKey>) -> Result<bool, Error> {
        check_room(room)?;
        let topic = protocol::topic_for(room);
        if let Some(state) = self.rooms.get_mut(&topic.hash()) {
            if key.is_some() {
                state.key = key;
                state.notices = Default::default();
            }
            return Ok(false);
        }
        self.swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|e| Error::InvalidRoom(format!("cannot subscribe: {e}")))?;
        self.rooms.insert(topic.hash(), Room::new(room, key));
        self.emit(Event::Joined {
            room: room.to_owned(),
        });
        Ok(true)
    }

    /// Leaves `room`, dropping (and so zeroizing) its key.
    pub(super) fn leave(&mut self, room: &str) -> bool {
        let topic = protocol::topic_for(room);
        if self.rooms.remove(&topic.hash()).is_none() {
            return false;
        }
        self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic);
        self.emit(Event::Left {
            room: room.to_owned(),
        });
        true
    }

    pub(super) fn publish(&mut self, room: &str, text: String) -> Result<Sent, Error> {
        check_text(&text)?;
        let topic = protocol::topic_for(room);
        let Some(state) = self.rooms.get_mut(&topic.hash()) else {
            return Err(Error::NotJoined(room.to_owned()));
        };
        if state.pending.len() >= PENDING_CAP {
            return Err(Error::QueueFull(PENDING_CAP, room.to_owned()));
        }
        let out = outgoing(&self.keypair, state, &topic.hash(), &self.nick, text);
        self.seen.insert(&out.env.id);
        let id = out.env.id.clone();
        if !state.pending.is_empty() {
            // Keep order: never overtake messages already waiting.
            self.queue(topic.hash(), out);
            return Ok(Sent { id, pending: true });
        }
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic.clone(), out.env.encode())
        {
            Ok(_) => {
                self.sent(&topic.hash(), out);
                Ok(Sent { id, pending: false })
            }
            Err(PublishError::NoPeersSubscribedToTopic) => {
                self.queue(topic.hash(), out);
                Ok(Sent { id, pending: true })
            }
            Err(e) => {
                self.stats.send_failed += 1;
                Err(Error::Publish {
                    room: room.to_owned(),
                    reason: publish_reason(&e),
                })
            }
        }
    }

    fn queue(&mut self, topic: TopicHash, out: Outgoing) {
        let event = Event::Pending {
            room: out.msg.room.clone(),
            id: out.msg.id.clone(),
            text: out.msg.text.clone(),
        };
        if let Some(room) = self.rooms.get_mut(&topic) {
            room.pending.push_back(out);
        }
        self.emit(event);
    }

    fn sent(&mut self, topic: &TopicHash, out: Outgoing) {
        self.stats.published += 1;
        let m = &out.msg;
        self.emit(Event::Sent {
            room: m.room.clone(),
            id: m.id.clone(),
            nick: m.nick.clone(),
            text: m.text.clone(),
            ts: m.ts,
        });
        if let Some(room) = self.rooms.get_mut(topic) {
            room.remember(out.msg);
        }
    }

    /// Sends what waits in `topic`'s queue, in order, until a publish finds
    /// no peer again.
    pub(super) fn flush_pending(&mut self, topic: &TopicHash) {
        loop {
            let Some(out) = self
                .rooms
                .get_mut(topic)
                .and_then(|r| r.pending.pop_front())
            else {
                return;
            };
            match self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic.clone(), out.env.encode())
            {
                Ok(_) => self.sent(topic, out),
                Err(PublishError::NoPeersSubscribedToTopic) => {
                    if let Some(room) = self.rooms.get_mut(topic) {
                        room.pending.push_front(out);
                    }
                    return;
                }
                Err(e) => {
                    self.stats.send_failed += 1;
                    let message = format!(
                        "message {} to '{}' not sent: {}",
                        out.msg.id,
                        out.msg.room,
                        publish_reason(&e)
                    );
                    self.emit(Event::Error { message });
                }
            }
        }
    }

    /// Handles a valid, signed, not yet seen envelope on a joined room's
    /// topic; returns the verdict for gossipsub.
    pub(super) fn receive(
        &mut self,
        topic: &TopicHash,
        source: PeerId,
        env: Envelope,
    ) -> MessageAcceptance {
        let Some(room) = self.rooms.get_mut(topic) else {
            return MessageAcceptance::Ignore;
        };
        let reading = read(room, topic, env);
        let name = room.name.clone();
        match reading {
            Reading::Shown(msg) => {
                self.seen.insert(&msg.id);
                if self.peers.set_nick(&source, &msg.nick) {
                    self.emit(Event::PeerNick {
                        peer: source.to_string(),
                        nick: msg.nick.clone(),
                    });
                }
                self.stats.received += 1;
                self.emit(Event::Message {
                    room: msg.room.clone(),
                    id: msg.id.clone(),
                    from: msg.from.clone(),
                    nick: msg.nick.clone(),
                    text: msg.text.clone(),
                    ts: msg.ts,
                });
                if let Some(room) = self.rooms.get_mut(topic) {
                    room.remember(msg);
                }
                MessageAcceptance::Accept
            }
            Reading::Opaque => {
                self.stats.opaque += 1;
                self.notify(topic, &name);
                MessageAcceptance::Accept
            }
            Reading::Refused(reason, verdict) => {
                *self.stats.rejected.entry(reason).or_default() += 1;
                self.metrics.rejected(Some(&name), reason);
                tracing::debug!(peer = %source, room = %name, reason, "room message refused");
                verdict
            }
        }
    }

    /// Shows the room's one-time notice about a message it cannot read.
    fn notify(&mut self, topic: &TopicHash, name: &str) {
        let Some(room) = self.rooms.get_mut(topic) else {
            return;
        };
        let message = if room.key.is_some() {
            if std::mem::replace(&mut room.notices.wrong_key, true) {
                return;
            }
            format!(
                "cannot read #{name}: wrong passphrase? Join again with /join {name} PASSPHRASE"
            )
        } else {
            if std::mem::replace(&mut room.notices.locked, true) {
                return;
            }
            format!("#{name} is encrypted: join it with /join {name} PASSPHRASE to read it")
        };
        self.emit(Event::Notice {
            room: name.to_owned(),
            message,
        });
    }

    pub(super) fn room_infos(&self) -> Vec<RoomInfo> {
        let gossip = &self.swarm.behaviour().gossipsub;
        let mut rooms: Vec<RoomInfo> = self
            .rooms
            .iter()
            .map(|(topic, room)| RoomInfo {
                room: room.name.clone(),
                encrypted: room.key.is_some(),
                members: gossip
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&topic))
                    .count(),
                mesh_peers: gossip.mesh_peers(topic).count(),
                pending: room.pending.len(),
            })
            .collect();
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        rooms
    }
}

/// Builds our next message for `room`: sealed if the room has a key.
fn outgoing(key: &Keypair, room: &Room, topic: &TopicHash, nick: &str, text: String) -> Outgoing {
    let mut env = Envelope::text(&key.public().to_peer_id(), &room.name, nick, &text);
    if let Some(room_key) = &room.key {
        let inner = Inner {
            nick: nick.to_owned(),
            text: text.clone(),
        };
        // A struct of two strings always serializes.
        let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(&inner).unwrap_or_default());
        let topic = topic.to_string();
        let binding = Binding {
            topic: &topic,
            from: &env.from,
            id: &env.id,
            ts: env.ts,
        };
        env.body = Body::Sealed(room_key.seal(&binding, &plaintext));
    }
    env.sign(key, topic.as_str());
    let msg = ChatMessage {
        room: room.name.clone(),
        id: env.id.clone(),
        from: env.from.clone(),
        nick: nick.to_owned(),
        text,
        ts: env.ts,
    };
    Outgoing { env, msg }
}

/// What a member of `room` can make of `env`.
fn read(room: &Room, topic: &TopicHash, env: Envelope) -> Reading {
    let sealed = match (&env.body, &room.key) {
        (Body::Text { .. }, Some(_)) => {
            // Plaintext in a protected room would look protected: drop it.
            return Reading::Refused("plaintext_in_encrypted_room", MessageAcceptance::Ignore);
        }
        (Body::Text { .. }, None) => {
            return env
                .readable()
                .map(Reading::Shown)
                .unwrap_or(Reading::Opaque);
        }
        (Body::Sealed(_), None) => return Reading::Opaque,
        (Body::Sealed(sealed), Some(_)) => sealed,
    };
    let Some(key) = &room.key else {
        return Reading::Opaque;
    };
    let topic = topic.to_string();
    let binding = Binding {
        topic: &topic,
        from: &env.from,
        id: &env.id,
        ts: env.ts,
    };
    let plaintext = match key.open(&binding, sealed) {
        Ok(p) => p,
        Err(CryptoError::WrongKey) => return Reading::Opaque,
        Err(_) => return Reading::Refused("bad_ciphertext", MessageAcceptance::Reject),
    };
    if std::str::from_utf8(&plaintext).is_err() {
        return Reading::Refused("invalid_utf8", MessageAcceptance::Reject);
    }
    let Ok(inner) = serde_json::from_slice::<Inner>(&plaintext) else {
        return Reading::Refused("malformed", MessageAcceptance::Reject);
    };
    if protocol::check_text(&inner.nick, &inner.text).is_err() {
        return Reading::Refused("too_large", MessageAcceptance::Reject);
    }
    Reading::Shown(ChatMessage {
        room: room.name.clone(),
        id: env.id,
        from: env.from,
        nick: inner.nick,
        text: inner.text,
        ts: env.ts,
    })
}
