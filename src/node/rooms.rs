//! Room traffic in the node task: joining and leaving, publishing (sealed in
//! an encrypted room, queued while no peer of the room is reachable), and
//! taking in what arrives, live or by history sync: shown if readable, kept
//! in the history store either way.

use std::sync::Arc;

use libp2p::gossipsub::{MessageAcceptance, PublishError, TopicHash};

use super::{
    Error, Event, Reply, RoomInfo, Sent, archive,
    archive::Preload,
    blocking,
    event_loop::{EventLoop, publish_reason},
};
use crate::{
    crypto::RoomKey,
    limits,
    protocol::{self, Envelope, Rejection},
    room::{Outgoing, PENDING_CAP, Reading, Room},
    store::{self, Record},
};

/// How far a live message's time may be from our clock. Later ones wait:
/// they are refused now and arrive by sync once their time has come.
/// Earlier ones are taken in as recovered (shown in their place, never as
/// new), as if sync had brought them.
const MAX_SKEW_MS: u64 = 5 * 60 * 1000;
/// 2025-01-01T00:00:00Z: no message of this protocol is older. An earlier
/// time is a broken clock or a forgery, and would sort before everything.
const EARLIEST_TS_MS: u64 = 1_735_689_600_000;

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
        if self.rooms.contains_key(&topic) {
            let _ = reply.send(self.join(&room, key, Preload::default()));
            return;
        }
        let (store, ring) = (self.archive.store().clone(), self.ring_cap);
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
        if let Some(state) = self.rooms.get_mut(&hash) {
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
        let mut state = Room::new(room, key, self.ring_cap);
        state.index.extend(preload.ids);
        for frame in preload.recent {
            if let Ok(env) = Envelope::decode(&frame, &hash)
                && let Reading::Shown(msg) = state.read(&hash, env)
            {
                state.remember(msg);
            }
        }
        self.rooms.insert(hash.clone(), state);
        self.emit(Event::Joined {
            room: room.to_owned(),
        });
        self.sync_room(&hash, None);
        Ok(true)
    }

    /// Leaves `room`, dropping (and so zeroizing) its key.
    pub(super) fn leave(&mut self, room: &str) -> bool {
        let topic = protocol::topic_for(room);
        if self.rooms.remove(&topic.hash()).is_none() {
            return false;
        }
        self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic);
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
    pub(super) fn publish(&mut self, room: &str, text: String, reply: Reply<Sent>) {
        let (topic, out) = match self.prepare(room, text) {
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

    /// Forgets one of our messages whose commit failed: the room must not
    /// offer peers what the store lacks, nor send a queued one later.
    pub(super) fn not_kept(&mut self, room: &str, id: &str) {
        if let Some(state) = self.rooms.values_mut().find(|r| r.name == room) {
            state.forget(id);
        }
        // Sync may bring it back from a peer that has it: take it in then.
        self.seen.remove(id);
    }

    /// A queued message of ours is in the store: it may go out now.
    pub(super) fn queued_kept(&mut self, room: &str, id: &str) {
        let Some((topic, state)) = self.rooms.iter_mut().find(|(_, r)| r.name == room) else {
            return;
        };
        if let Some(out) = state.pending.iter_mut().find(|o| o.env.id == id) {
            out.committed = true;
        }
        let topic = topic.clone();
        self.flush_pending(&topic);
    }

    /// Builds our next message for `room`, sealed and signed, with the
    /// room's topic.
    fn prepare(&mut self, room: &str, text: String) -> Result<(TopicHash, Outgoing), Error> {
        limits::own_text(&text)?;
        // A joined room is found by its name: hashing the name into its
        // topic on every message cost more than looking.
        let Some((topic, state)) = self.rooms.iter().find(|(_, r)| r.name == room) else {
            return Err(Error::NotJoined(room.to_owned()));
        };
        let topic = topic.clone();
        if state.pending.len() >= PENDING_CAP {
            return Err(Error::QueueFull(PENDING_CAP, room.to_owned()));
        }
        if let Some(reason) = self.archive.error() {
            return Err(Error::StoreFailing(reason.to_owned()));
        }
        let out = state.outgoing(&self.author, &topic, &self.nick, text);
        self.seen.insert(&out.env.id);
        Ok((topic, out))
    }

    /// Publishes a prepared message (`frame` is its envelope, encoded), or
    /// queues it while no peer of the room is reachable.
    fn send(&mut self, topic: TopicHash, out: Outgoing, frame: Vec<u8>) -> Result<Sent, Error> {
        let id = out.env.id.clone();
        let Some(state) = self.rooms.get_mut(&topic) else {
            return Err(Error::NotJoined(out.msg.room));
        };
        state.index.insert(out.env.ts, store::hash(&id));
        if !state.pending.is_empty() {
            // Keep order: never overtake messages already waiting.
            self.queue(topic, out);
            return Ok(Sent { id, pending: true });
        }
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic.clone(), frame)
        {
            Ok(_) => {
                self.sent(&topic, out, true);
                Ok(Sent { id, pending: false })
            }
            Err(PublishError::NoPeersSubscribedToTopic) => {
                self.queue(topic, out);
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

    fn queue(&mut self, topic: TopicHash, mut out: Outgoing) {
        // An ephemeral node waits for no commit.
        out.committed = !self.archive.durable();
        let event = Event::Pending {
            room: out.msg.room.clone(),
            id: out.msg.id.clone(),
            text: out.msg.text.clone(),
        };
        if let Some(room) = self.rooms.get_mut(&topic) {
            room.pending.push_back(out);
        }
        self.emit_when_saved(event);
    }

    /// Shows one of our messages as sent: once its commit is done when
    /// that commit is still to come (`uncommitted`), else now.
    fn sent(&mut self, topic: &TopicHash, out: Outgoing, uncommitted: bool) {
        let m = &out.msg;
        let event = Event::Sent {
            room: m.room.clone(),
            id: m.id.clone(),
            nick: m.nick.clone(),
            text: m.text.clone(),
            ts: m.ts,
        };
        if uncommitted {
            self.emit_when_saved(event);
        } else {
            self.emit(event);
        }
        if let Some(room) = self.rooms.get_mut(topic) {
            room.remember(out.msg);
        }
    }

    /// Sends what waits in `topic`'s queue, in order, until a publish finds
    /// no peer again.
    pub(super) fn flush_pending(&mut self, topic: &TopicHash) {
        loop {
            // In order: stop at one whose commit has not returned yet.
            let Some(out) = self
                .rooms
                .get_mut(topic)
                .filter(|r| r.pending.front().is_some_and(|o| o.committed))
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
                // Committed when it was queued: shown at once.
                Ok(_) => self.sent(topic, out, false),
                Err(PublishError::NoPeersSubscribedToTopic) => {
                    if let Some(room) = self.rooms.get_mut(topic) {
                        room.pending.push_front(out);
                    }
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

    /// Whether a message is already here (seen live, or in the store).
    pub(super) fn known(&self, topic: &TopicHash, env: &Envelope) -> bool {
        self.seen.contains(&env.id)
            || self
                .rooms
                .get(topic)
                .is_some_and(|r| r.index.contains(env.ts, &store::hash(&env.id)))
    }

    /// Takes in a valid, signed envelope of a joined room that is not here
    /// yet, live (`recovered` false) or by sync; returns the gossipsub verdict.
    pub(super) fn receive(
        &mut self,
        topic: &TopicHash,
        env: Envelope,
        frame: &[u8],
        recovered: bool,
    ) -> MessageAcceptance {
        let Some(name) = self.rooms.get(topic).map(|r| r.name.clone()) else {
            return MessageAcceptance::Ignore;
        };
        let now = protocol::now_ms();
        if env.ts > now + MAX_SKEW_MS {
            return self.refuse(topic, "future", MessageAcceptance::Ignore);
        }
        if env.ts < EARLIEST_TS_MS {
            return self.refuse(topic, "before_2025", MessageAcceptance::Ignore);
        }
        let recovered = recovered || env.ts + MAX_SKEW_MS < now;
        if let Some(r) = &self.retention
            && r.max_age
                .is_some_and(|age| env.ts + (age.as_millis() as u64) < now)
        {
            return self.refuse(topic, "past_retention", MessageAcceptance::Ignore);
        }
        let Some(room) = self.rooms.get(topic) else {
            return MessageAcceptance::Ignore;
        };
        let (ts, id) = (env.ts, env.id.clone());
        let reading = room.read(topic, env);
        let verdict = match reading {
            Reading::Shown(msg) => {
                if self.peers.set_nick_of_named(&msg.from, &msg.nick) {
                    self.emit(Event::PeerNick {
                        peer: msg.from.clone(),
                        nick: msg.nick.clone(),
                    });
                }
                self.emit(Event::Message {
                    room: msg.room.clone(),
                    id: msg.id.clone(),
                    from: msg.from.clone(),
                    nick: msg.nick.clone(),
                    text: msg.text.clone(),
                    ts: msg.ts,
                    recovered,
                });
                if let Some(room) = self.rooms.get_mut(topic) {
                    room.remember(msg);
                }
                MessageAcceptance::Accept
            }
            Reading::Opaque => {
                self.metrics.opaque(&name);
                self.notify(topic, &name);
                MessageAcceptance::Accept
            }
            Reading::Refused(reason, verdict) => self.refuse(topic, reason, verdict),
        };
        // Every authentic message of the topic is kept, shown or not: the
        // store holds the room's set, which sync makes equal everywhere.
        // Kept after it is shown: a reader waits for the event, not this.
        self.keep(topic, ts, &id, frame);
        verdict
    }

    pub(super) fn refuse(
        &mut self,
        topic: &TopicHash,
        reason: &'static str,
        verdict: MessageAcceptance,
    ) -> MessageAcceptance {
        let room = self.rooms.get(topic).map(|r| r.name.as_str());
        self.metrics.rejected(room, reason);
        tracing::debug!(?room, reason, "room message refused");
        verdict
    }

    /// Remembers a message as held, and queues it for the store.
    fn keep(&mut self, topic: &TopicHash, ts: u64, id: &str, frame: &[u8]) {
        self.seen.insert(id);
        let hash = store::hash(id);
        if let Some(room) = self.rooms.get_mut(topic) {
            room.index.insert(ts, hash);
        }
        let record = Record {
            topic: topic.to_string(),
            ts,
            hash,
            frame: frame.to_vec(),
        };
        self.keep_soon(record);
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

    /// A message from history sync, checked as a live one would be.
    pub(super) fn take_synced(
        &mut self,
        topic: &TopicHash,
        frame: &[u8],
        checked: Result<Envelope, Rejection>,
    ) {
        if !self.rooms.contains_key(topic) {
            return;
        }
        match checked {
            Ok(env) if self.known(topic, &env) => {}
            Ok(env) => {
                self.receive(topic, env, frame, true);
            }
            Err(reason) => {
                self.refuse(topic, reason.label(), MessageAcceptance::Reject);
            }
        }
    }

    /// Applies `--history-retention`: forgets old messages in memory and
    /// prunes them from the store in the background.
    pub(super) fn apply_retention(&mut self) {
        let Some(retention) = self.retention else {
            return;
        };
        let now = protocol::now_ms();
        for (topic, room) in &mut self.rooms {
            let Some(horizon) = room.horizon(&retention, now) else {
                continue;
            };
            let gone = room.forget_before(horizon);
            tracing::debug!(room = %room.name, gone, "history retention");
            let (store, topic) = (self.archive.store().clone(), topic.to_string());
            tokio::spawn(async move {
                if let Err(e) = store.prune(&topic, horizon).await {
                    tracing::warn!(error = %e, "history retention not applied");
                }
            });
        }
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
