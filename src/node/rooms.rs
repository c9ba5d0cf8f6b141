//! The rooms this node is in, and what to do with each room message: who
//! we are in (membership and keys), what each room holds in memory (the
//! ring, the index of kept ids, our queue of messages waiting for a peer),
//! and the ids already seen. No I/O: [`Rooms::receive`] decides what becomes
//! of a message, live or synced alike, and returns it as [`Out`]s that the
//! event loop applies to the event channel, the metrics and the store.

use std::{collections::HashMap, sync::Arc};

use libp2p::{
    PeerId,
    gossipsub::{MessageAcceptance, TopicHash},
};

mod ids;
mod room;

pub(crate) use room::{Outgoing, PLAIN_IN_ENCRYPTED, Reading, Room, SeenIds};

use super::{Error, Event, Retention, archive::Preload};
use crate::{
    crypto::RoomKey,
    limits::{self, PENDING_CAP},
    protocol::{self, Author, AuthorKeys, Envelope, Rejection},
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

/// How a room message reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// Gossipsub, as it was sent.
    Live,
    /// History sync.
    Sync,
}

/// What the event loop does about a room message.
#[derive(Debug)]
pub(super) enum Out {
    /// Tell the front ends (and the metrics).
    Show(Event),
    /// Queue for the store's next group commit.
    Keep(Record),
    /// Count a refusal; `room` is None for a topic we are not in.
    Refused {
        room: Option<String>,
        reason: &'static str,
    },
    /// Count a sealed message we cannot read.
    Opaque { room: String },
    /// The nick a peer's message carries, for the peer book.
    Nick { peer: String, nick: String },
}

/// The joined rooms, by topic.
pub(super) struct Rooms {
    joined: HashMap<TopicHash, Room>,
    /// Ids taken in or sent: a repeat is dropped before its signature is
    /// checked.
    seen: SeenIds,
    /// Decoded keys of the authors we hear, to check signatures.
    authors: AuthorKeys,
    ring_cap: usize,
    retention: Option<Retention>,
}

impl Rooms {
    pub(super) fn new(ring_cap: usize, retention: Option<Retention>) -> Self {
        Rooms {
            joined: HashMap::new(),
            seen: SeenIds::default(),
            authors: AuthorKeys::default(),
            ring_cap,
            retention,
        }
    }

    /// Messages each room keeps in memory.
    pub(super) fn ring_cap(&self) -> usize {
        self.ring_cap
    }

    pub(super) fn get(&self, topic: &TopicHash) -> Option<&Room> {
        self.joined.get(topic)
    }

    pub(super) fn contains(&self, topic: &TopicHash) -> bool {
        self.joined.contains_key(topic)
    }

    pub(super) fn len(&self) -> usize {
        self.joined.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&TopicHash, &Room)> {
        self.joined.iter()
    }

    /// The topics of every joined room.
    pub(super) fn topics(&self) -> Vec<TopicHash> {
        self.joined.keys().cloned().collect()
    }

    /// Rooms with messages of ours waiting for a peer.
    pub(super) fn waiting(&self) -> Vec<TopicHash> {
        self.joined
            .iter()
            .filter(|(_, r)| !r.pending.is_empty())
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// For an already joined room, sets its key when one is given; false
    /// if the room is not joined.
    pub(super) fn rekey(&mut self, topic: &TopicHash, key: Option<Arc<RoomKey>>) -> bool {
        let Some(room) = self.joined.get_mut(topic) else {
            return false;
        };
        if key.is_some() {
            room.key = key;
            room.unreadable = Default::default();
        }
        true
    }

    /// Adds a joined room with what the store holds of it.
    pub(super) fn add(&mut self, name: &str, key: Option<Arc<RoomKey>>, preload: Preload) {
        let topic = protocol::topic_for(name).hash();
        let mut room = Room::new(name, key, self.ring_cap);
        room.index.extend(preload.ids);
        for frame in preload.recent {
            if let Ok(env) = Envelope::decode(&frame, &topic)
                && let Reading::Shown(msg) = room.read(&topic, env)
            {
                room.remember(msg);
            }
        }
        self.joined.insert(topic, room);
    }

    /// Leaves a room, dropping (and so zeroizing) its key; false if it was
    /// not joined.
    pub(super) fn remove(&mut self, topic: &TopicHash) -> bool {
        self.joined.remove(topic).is_some()
    }

    /// Builds our next message for `room`, sealed and signed, with the
    /// room's topic. `store_error` is the store's failure, if failing: then
    /// nothing is sent.
    pub(super) fn prepare(
        &mut self,
        room: &str,
        text: String,
        author: &Author,
        nick: &str,
        store_error: Option<&str>,
    ) -> Result<(TopicHash, Outgoing), Error> {
        limits::own_text(&text)?;
        // A joined room is found by its name: hashing the name into its
        // topic on every message cost more than looking.
        let Some((topic, state)) = self.joined.iter().find(|(_, r)| r.name == room) else {
            return Err(Error::NotJoined(room.to_owned()));
        };
        if state.pending.len() >= PENDING_CAP {
            return Err(Error::QueueFull(PENDING_CAP, room.to_owned()));
        }
        if let Some(reason) = store_error {
            return Err(Error::StoreFailing(reason.to_owned()));
        }
        let out = state.outgoing(author, topic, nick, text);
        self.seen.insert(&out.env.id);
        Ok((topic.clone(), out))
    }

    /// Indexes a prepared message as kept; true if it must queue behind
    /// messages already waiting (order is kept: none overtakes another).
    pub(super) fn admit(&mut self, topic: &TopicHash, out: &Outgoing) -> Result<bool, Error> {
        let Some(room) = self.joined.get_mut(topic) else {
            return Err(Error::NotJoined(out.msg.room.clone()));
        };
        room.index.insert(out.env.ts, store::hash(&out.env.id));
        Ok(!room.pending.is_empty())
    }

    /// Queues one of our messages until a peer of the room is reachable;
    /// `committed` when no commit is to be waited for. Returns the event
    /// that shows it as pending.
    pub(super) fn queue(&mut self, topic: &TopicHash, mut out: Outgoing, committed: bool) -> Event {
        out.committed = committed;
        let event = Event::Pending {
            room: out.msg.room.clone(),
            id: out.msg.id.clone(),
            text: out.msg.text.clone(),
        };
        if let Some(room) = self.joined.get_mut(topic) {
            room.pending.push_back(out);
        }
        event
    }

    /// One of our messages went out: it joins the ring. Returns the event
    /// that shows it as sent.
    pub(super) fn sent(&mut self, topic: &TopicHash, out: Outgoing) -> Event {
        let m = &out.msg;
        let event = Event::Sent {
            room: m.room.clone(),
            id: m.id.clone(),
            nick: m.nick.clone(),
            text: m.text.clone(),
            ts: m.ts,
        };
        if let Some(room) = self.joined.get_mut(topic) {
            room.remember(out.msg);
        }
        event
    }

    /// The next queued message of `topic` that may go out: in order, and
    /// only once its commit has returned.
    pub(super) fn next_pending(&mut self, topic: &TopicHash) -> Option<Outgoing> {
        self.joined
            .get_mut(topic)
            .filter(|r| r.pending.front().is_some_and(|o| o.committed))
            .and_then(|r| r.pending.pop_front())
    }

    /// Puts back a queued message that still finds no peer.
    pub(super) fn requeue(&mut self, topic: &TopicHash, out: Outgoing) {
        if let Some(room) = self.joined.get_mut(topic) {
            room.pending.push_front(out);
        }
    }

    /// A queued message of ours is in the store: it may go out now.
    /// Returns its room's topic.
    pub(super) fn committed(&mut self, room: &str, id: &str) -> Option<TopicHash> {
        let (topic, state) = self.joined.iter_mut().find(|(_, r)| r.name == room)?;
        if let Some(out) = state.pending.iter_mut().find(|o| o.env.id == id) {
            out.committed = true;
        }
        Some(topic.clone())
    }

    /// Forgets one of our messages whose commit failed: the room must not
    /// offer peers what the store lacks, nor send a queued one later.
    pub(super) fn not_kept(&mut self, room: &str, id: &str) {
        if let Some(state) = self.joined.values_mut().find(|r| r.name == room) {
            state.forget(id);
        }
        // Sync may bring it back from a peer that has it: take it in then.
        self.seen.remove(id);
    }

    /// Whether a message is already here (seen live, or in the store).
    pub(super) fn known(&self, topic: &TopicHash, env: &Envelope) -> bool {
        self.seen.contains(&env.id)
            || self
                .joined
                .get(topic)
                .is_some_and(|r| r.index.contains(env.ts, &store::hash(&env.id)))
    }

    /// Decides what becomes of a room message, live or synced: `checked`
    /// is the envelope whose signature was checked, or why it was refused;
    /// `frame` its encoded form; `now` our clock in ms. Returns the
    /// gossipsub verdict (meaningless for a synced one) and what to do.
    pub(super) fn receive(
        &mut self,
        topic: &TopicHash,
        checked: Result<Envelope, Rejection>,
        frame: &[u8],
        via: Via,
        now: u64,
    ) -> (MessageAcceptance, Vec<Out>) {
        if !self.joined.contains_key(topic) {
            // Live: gossipsub only brings topics we are in, counted anyway.
            // Synced: a page checked after the room was left.
            return match (via, checked) {
                (Via::Live, Err(reason)) => self.refuse(topic, reason.label(), true),
                _ => (MessageAcceptance::Ignore, Vec::new()),
            };
        }
        match checked {
            Err(reason) => self.refuse(topic, reason.label(), true),
            // Synced pages hold what we lacked when asked: a repeat is no
            // peer's fault then.
            Ok(env) if self.known(topic, &env) => match via {
                Via::Live => self.refuse(topic, "duplicate", false),
                Via::Sync => (MessageAcceptance::Ignore, Vec::new()),
            },
            Ok(env) => self.take(topic, env, frame, via, now),
        }
    }

    /// A gossipsub frame of `topic` from `source`: parsed, dropped if it is
    /// already here before its signature is checked (the costly part),
    /// verified, then decided as [`Rooms::receive`] does.
    pub(super) fn receive_live(
        &mut self,
        topic: &TopicHash,
        frame: &[u8],
        source: &PeerId,
        now: u64,
    ) -> (MessageAcceptance, Vec<Out>) {
        let env = match Envelope::parse(frame, topic) {
            Ok(env) if self.known(topic, &env) => {
                return self.refuse(topic, "duplicate", false);
            }
            Ok(env) => self.authors.verify(&env, topic.as_str()).map(|()| env),
            Err(reason) => Err(reason),
        };
        match env {
            Ok(env) if self.joined.contains_key(topic) => {
                self.take(topic, env, frame, Via::Live, now)
            }
            Ok(_) => (MessageAcceptance::Ignore, Vec::new()),
            Err(reason) => {
                tracing::warn!(peer = %source, reason = reason.label(), "room message rejected");
                self.refuse(topic, reason.label(), true)
            }
        }
    }

    /// Takes in a valid, signed message of a joined room that is not here
    /// yet.
    fn take(
        &mut self,
        topic: &TopicHash,
        env: Envelope,
        frame: &[u8],
        via: Via,
        now: u64,
    ) -> (MessageAcceptance, Vec<Out>) {
        let Some(room) = self.joined.get(topic) else {
            return (MessageAcceptance::Ignore, Vec::new());
        };
        if env.ts > now + MAX_SKEW_MS {
            return self.refuse(topic, "future", false);
        }
        if env.ts < EARLIEST_TS_MS {
            return self.refuse(topic, "before_2025", false);
        }
        if let Some(age) = self.retention.and_then(|r| r.max_age)
            && env.ts + (age.as_millis() as u64) < now
        {
            return self.refuse(topic, "past_retention", false);
        }
        let recovered = via == Via::Sync || env.ts + MAX_SKEW_MS < now;
        let (ts, hash) = (env.ts, store::hash(&env.id));
        self.seen.insert(&env.id);
        let from = env.from.clone();
        let reading = room.read(topic, env);
        let mut outs = Vec::with_capacity(3);
        let verdict = match reading {
            Reading::Shown(msg) => {
                // `user@node` is one of the node's users, not its nick.
                if !msg.nick.contains('@') {
                    outs.push(Out::Nick {
                        peer: msg.from.clone(),
                        nick: msg.nick.clone(),
                    });
                }
                outs.push(Out::Show(Event::Message {
                    room: msg.room.clone(),
                    id: msg.id.clone(),
                    from: msg.from.clone(),
                    nick: msg.nick.clone(),
                    text: msg.text.clone(),
                    ts: msg.ts,
                    recovered,
                }));
                if let Some(room) = self.joined.get_mut(topic) {
                    room.remember(msg);
                }
                MessageAcceptance::Accept
            }
            Reading::Opaque { theirs } => {
                let name = room.name.clone();
                if let Some(notice) = self.unreadable(topic, &from, Some(theirs)) {
                    outs.push(Out::Show(notice));
                }
                outs.push(Out::Opaque { room: name });
                MessageAcceptance::Accept
            }
            Reading::Refused(reason, verdict) => {
                if reason == PLAIN_IN_ENCRYPTED
                    && let Some(notice) = self.unreadable(topic, &from, None)
                {
                    outs.push(Out::Show(notice));
                }
                outs.push(self.refused(topic, reason));
                verdict
            }
        };
        // Every authentic message of the topic is kept, shown or not: the
        // store holds the room's set, which sync makes equal everywhere.
        // Kept after it is shown: a reader waits for the event, not this.
        if let Some(room) = self.joined.get_mut(topic) {
            room.index.insert(ts, hash);
        }
        outs.push(Out::Keep(Record {
            topic: topic.to_string(),
            ts,
            hash,
            frame: frame.to_vec(),
        }));
        (verdict, outs)
    }

    /// A refusal, with its verdict: rejected (the sender misbehaved) or
    /// ignored.
    fn refuse(
        &self,
        topic: &TopicHash,
        reason: &'static str,
        reject: bool,
    ) -> (MessageAcceptance, Vec<Out>) {
        let verdict = if reject {
            MessageAcceptance::Reject
        } else {
            MessageAcceptance::Ignore
        };
        (verdict, vec![self.refused(topic, reason)])
    }

    fn refused(&self, topic: &TopicHash, reason: &'static str) -> Out {
        Out::Refused {
            room: self.joined.get(topic).map(|r| r.name.clone()),
            reason,
        }
    }

    /// Counts a message of `from` the room cannot read (sealed with key id
    /// `theirs`, or plain if None); the notice for it when one is due.
    fn unreadable(
        &mut self,
        topic: &TopicHash,
        from: &str,
        theirs: Option<String>,
    ) -> Option<Event> {
        let room = self.joined.get_mut(topic)?;
        let count = room.unreadable.count(from, theirs.as_deref())?;
        Some(Event::Unreadable {
            room: room.name.clone(),
            from: from.to_owned(),
            count,
            theirs,
            ours: room.key.as_ref().map(|k| k.id().to_owned()),
        })
    }

    /// Applies `--history-retention` at `now` (ms): forgets old messages
    /// in memory; returns each room's horizon, for the store to prune.
    pub(super) fn apply_retention(&mut self, now: u64) -> Vec<(TopicHash, u64)> {
        let Some(retention) = self.retention else {
            return Vec::new();
        };
        let mut pruned = Vec::new();
        for (topic, room) in &mut self.joined {
            let Some(horizon) = room.horizon(&retention, now) else {
                continue;
            };
            let gone = room.forget_before(horizon);
            tracing::debug!(room = %room.name, gone, "history retention");
            pruned.push((topic.clone(), horizon));
        }
        pruned
    }
}

#[cfg(test)]
mod tests;
