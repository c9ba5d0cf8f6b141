//! Room traffic, the doing: subscribing, publishing on gossipsub, and
//! applying what [`Rooms`](crate::node::rooms::Rooms) decided about a
//! message to the event channel, the metrics, the peer book and the store.

use std::sync::Arc;

use libp2p::{
    PeerId,
    gossipsub::{MessageAcceptance, PublishError, TopicHash},
};

use super::{EventLoop, publish_reason};
use crate::{
    crypto::RoomKey,
    limits,
    node::{
        Error, Event, Reply, RoomInfo, Sent, archive,
        archive::Preload,
        blocking,
        rooms::{Out, Outgoing, Via},
    },
    protocol::{self, Envelope, Rejection},
};

/// A join whose room's history has been read from the store.
pub(crate) struct Loaded {
    room: String,
    key: Option<Arc<RoomKey>>,
    preload: Result<Preload, Error>,
    reply: Reply<bool>,
}

impl EventLoop {
    /// Joins `room` once what the store holds of it is read (off this
    /// task), or at once sets its key if already joined.
    pub(super) fn join_soon(
        &mut self,
        room: String,
        key: Option<Arc<RoomKey>>,
        reply: Reply<bool>,
    ) {
        let topic = protocol::topic_for(&room).hash();
        if self.rooms.contains(&topic) {
            let _ = reply.send(self.join(&room, key, Preload::default()));
            return;
        }
        let (store, ring) = (self.archive.store().clone(), self.rooms.ring_cap());
        self.loading.push(Box::pin(async move {
            let topic = topic.to_string();
            let preload = blocking::run("reading the history", move || {
                Ok(Preload::load(&store, &topic, ring)?)
            })
            .await;
            Loaded {
                room,
                key,
                preload,
                reply,
            }
        }));
    }

    pub(super) fn loaded(&mut self, loaded: Loaded) {
        let Loaded {
            room,
            key,
            preload,
            reply,
        } = loaded;
        let _ = reply.send(preload.and_then(|p| self.join(&room, key, p)));
    }

    /// Joins `room` with what the store holds of it, or sets its key if
    /// already joined. True if newly joined.
    pub(crate) fn join(
        &mut self,
        room: &str,
        key: Option<Arc<RoomKey>>,
        preload: Preload,
    ) -> Result<bool, Error> {
        limits::own_room(room)?;
        let topic = protocol::topic_for(room);
        let hash = topic.hash();
        if self.rooms.rekey(&hash, key.clone()) {
            return Ok(false);
        }
        self.swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|e| Error::InvalidRoom(format!("cannot subscribe: {e}")))?;
        self.rooms.add(room, key, preload);
        self.emit(Event::Joined {
            room: room.to_owned(),
        });
        self.sync_room(&hash, None);
        self.announce(&hash);
        Ok(true)
    }

    /// Leaves `room`, dropping (and so zeroizing) its key.
    pub(super) fn leave(&mut self, room: &str) -> bool {
        let topic = protocol::topic_for(room);
        if !self.rooms.remove(&topic.hash()) {
            return false;
        }
        self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic);
        self.unannounce(&topic.hash());
        self.sync.forget_room(&topic.hash());
        self.emit(Event::Left {
            room: room.to_owned(),
        });
        true
    }

    /// Builds our next message for `room` (sealed and signed), sends it (or
    /// queues it while no peer is reachable) and commits it at once with
    /// whatever else waits for the store: the answer comes when that commit
    /// has returned. An ephemeral node, whose history is only in memory,
    /// answers at once and commits with the next group. While the store is
    /// failing, nothing is sent.
    pub(super) fn publish(
        &mut self,
        room: &str,
        text: String,
        user: Option<&str>,
        reply: Reply<Sent>,
    ) {
        let nick = match self.nick_of_user(user) {
            Ok(nick) => nick,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let prepared = self
            .rooms
            .prepare(room, text, &self.author, &nick, self.archive.error());
        let (topic, out) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        // Encoded once, for the store and the wire.
        let frame = out.env.encode();
        // Kept even if sending fails: history sync still delivers it.
        let record = archive::record(&topic, &out.env, frame.clone());
        let durable = self.archive.durable();
        if durable {
            // Into the commit that `save` starts below, whatever waits.
            self.archive.keep_in_next_commit(record);
        } else {
            self.keep_soon(record);
        }
        match self.send(topic, out, frame) {
            Ok(sent) if durable => self.save(Some((reply, sent))),
            result => {
                if durable {
                    self.save(None);
                }
                let _ = reply.send(result);
            }
        }
    }

    /// Publishes a prepared message (`frame` is its envelope, encoded), or
    /// queues it while no peer of the room is reachable.
    fn send(&mut self, topic: TopicHash, out: Outgoing, frame: Vec<u8>) -> Result<Sent, Error> {
        let id = out.env.id.clone();
        if self.rooms.admit(&topic, &out)? {
            self.queue(&topic, out);
            return Ok(Sent { id, pending: true });
        }
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic.clone(), frame)
        {
            Ok(_) => {
                let event = self.rooms.sent(&topic, out);
                self.emit_when_saved(event);
                Ok(Sent { id, pending: false })
            }
            Err(PublishError::NoPeersSubscribedToTopic) => {
                self.queue(&topic, out);
                Ok(Sent { id, pending: true })
            }
            Err(e) => {
                self.metrics.send_failed(&out.msg.room);
                Err(Error::Publish {
                    room: out.msg.room,
                    reason: publish_reason(&e),
                })
            }
        }
    }

    fn queue(&mut self, topic: &TopicHash, out: Outgoing) {
        // An ephemeral node waits for no commit.
        let committed = !self.archive.durable();
        let event = self.rooms.queue(topic, out, committed);
        self.emit_when_saved(event);
    }

    /// A queued message of ours is in the store: it may go out now.
    pub(super) fn queued_kept(&mut self, room: &str, id: &str) {
        if let Some(topic) = self.rooms.committed(room, id) {
            self.flush_pending(&topic);
        }
    }

    /// Sends what waits in `topic`'s queue, in order, until a publish finds
    /// no peer again.
    pub(super) fn flush_pending(&mut self, topic: &TopicHash) {
        while let Some(out) = self.rooms.next_pending(topic) {
            match self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic.clone(), out.env.encode())
            {
                // Committed when it was queued: shown at once.
                Ok(_) => {
                    let event = self.rooms.sent(topic, out);
                    self.emit(event);
                }
                Err(PublishError::NoPeersSubscribedToTopic) => {
                    self.rooms.requeue(topic, out);
                    return;
                }
                Err(e) => {
                    // It is stored: history sync still delivers it.
                    self.metrics.send_failed(&out.msg.room);
                    let message = format!(
                        "message {} to '{}' not sent live: {}",
                        out.msg.id,
                        out.msg.room,
                        publish_reason(&e)
                    );
                    self.emit(Event::Error { message });
                }
            }
        }
    }

    /// Takes in a synced room message (see [`Rooms::receive`]).
    ///
    /// [`Rooms::receive`]: crate::node::rooms::Rooms::receive
    pub(super) fn receive_synced(
        &mut self,
        topic: &TopicHash,
        checked: Result<Envelope, Rejection>,
        frame: &[u8],
    ) {
        let now = protocol::now_ms();
        let (_, outs) = self.rooms.receive(topic, checked, frame, Via::Sync, now);
        self.apply_room(outs, Via::Sync);
    }

    /// Takes in a gossipsub frame from `source`; returns the gossipsub
    /// verdict (see [`Rooms::receive_live`]).
    ///
    /// [`Rooms::receive_live`]: crate::node::rooms::Rooms::receive_live
    pub(super) fn receive_live(
        &mut self,
        topic: &TopicHash,
        frame: &[u8],
        source: &PeerId,
    ) -> MessageAcceptance {
        let now = protocol::now_ms();
        let (verdict, outs) = self.rooms.receive_live(topic, frame, source, now);
        self.apply_room(outs, Via::Live);
        verdict
    }

    fn apply_room(&mut self, outs: Vec<Out>, via: Via) {
        for out in outs {
            match out {
                Out::Show(event) => self.emit(event),
                Out::Keep(record) => self.keep_soon(record),
                Out::Refused { room, reason } => {
                    tracing::debug!(?room, reason, ?via, "room message refused");
                    self.metrics.rejected(room.as_deref(), reason);
                }
                Out::Opaque { room } => self.metrics.opaque(&room),
                Out::Nick { peer, nick } => {
                    if self.peers.set_nick_of_named(&peer, &nick) {
                        self.emit(Event::PeerNick { peer, nick });
                    }
                }
            }
        }
    }

    /// Applies `--history-retention`: forgets old messages in memory and
    /// prunes them from the store in the background.
    pub(super) fn apply_retention(&mut self) {
        for (topic, horizon) in self.rooms.apply_retention(protocol::now_ms()) {
            let (store, topic) = (self.archive.store().clone(), topic.to_string());
            tokio::spawn(async move {
                if let Err(e) = store.prune(&topic, horizon).await {
                    tracing::warn!(error = %e, "history retention not applied");
                }
            });
        }
    }

    /// The connected peers subscribed to `room` or in its mesh.
    pub(super) fn members(&self, room: &str) -> Result<Vec<String>, Error> {
        let topic = protocol::topic_for(room).hash();
        if !self.rooms.contains(&topic) {
            return Err(Error::NotJoined(room.to_owned()));
        }
        let gossip = &self.swarm.behaviour().gossipsub;
        let mut members: Vec<String> = gossip
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&topic))
            .map(|(peer, _)| peer)
            .chain(gossip.mesh_peers(&topic))
            .map(ToString::to_string)
            .collect();
        members.sort();
        members.dedup();
        Ok(members)
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
                messages: room.index.len() as u64,
                unreadable: room.unreadable.total(),
            })
            .collect();
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        rooms
    }
}
