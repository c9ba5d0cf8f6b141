//! The task that owns the swarm: a `select!` over commands from handles,
//! swarm events and a housekeeping tick. Command handling lives here; swarm
//! events are handled in `on_swarm.rs`, room traffic in `rooms.rs`, history
//! sync in `sync.rs`. The parts it holds decide (`node/rooms.rs` what
//! becomes of a room message, `node/sync.rs` what a sync session does
//! next); this module does what they decide to the swarm, the store and
//! the event channel.

mod direct;
mod discovery;
mod nat;
mod on_swarm;
mod rooms;
mod sync;

pub(crate) use rooms::Loaded;

use std::{collections::HashSet, sync::Arc, time::Duration};

use libp2p::{
    Multiaddr, PeerId, Swarm,
    futures::{StreamExt, future::BoxFuture, stream::FuturesUnordered},
    gossipsub::PublishError,
    identity::Keypair,
    swarm::dial_opts::DialOpts,
};
use tokio::{
    sync::{broadcast, mpsc},
    time::{Instant, MissedTickBehavior},
};

use super::{
    Command, Error, Event, PeerInfo, RelayServerStatus, Reply, Sent, Status,
    archive::{self, Archive, HistoryAnswer, RoomAccess, Saved, Step},
    behaviour::Behaviour,
    blocking,
    direct::Direct,
    metrics::Metrics,
    peers::PeerBook,
    reachability::{self, Reachability},
    readiness::{self, Readiness},
    redial::Redial,
    relays::{Relays, Served},
    rooms::Rooms,
    sync::SyncState,
    trim,
};
use crate::{
    limits,
    protocol::{self, Author},
    store::{Failure, Record, Store},
};

/// Housekeeping period: redials and pending retries.
const TICK: Duration = Duration::from_millis(250);

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    /// Our identity, to sign envelopes.
    author: Author,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<Arc<Event>>,
    nick: String,
    /// The joined rooms: they decide what becomes of room messages.
    rooms: Rooms,
    peers: PeerBook,
    /// Direct messages: they decide what to answer and what answers mean.
    direct: Direct,
    redial: Redial,
    metrics: Metrics,
    listen_addrs: Vec<Multiaddr>,
    started: Instant,
    /// The group commit and the store behind it.
    archive: Archive,
    /// History sync sessions: they decide what to ask peers next.
    sync: SyncState,
    /// Sync work off the node task: pages checked, pages read for peers.
    sync_jobs: FuturesUnordered<BoxFuture<'static, sync::Job>>,
    sync_interval: Duration,
    next_sync: Instant,
    /// Trimming held back while Kademlia lookups run.
    trim_wait: trim::Wait,
    /// Joins waiting for what the store holds of their room.
    loading: FuturesUnordered<BoxFuture<'static, Loaded>>,
    /// Whether peers can dial us.
    reachability: reachability::Tracker,
    /// Relays we hold reservations on.
    relays: Relays,
    /// Peers we relay for, when serving as a relay.
    served: Served,
    /// When to next ask the DHT for our rooms' members.
    next_discover: Instant,
}

/// What the node task is started with besides the swarm.
pub(crate) struct Parts {
    pub(crate) keypair: Keypair,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: broadcast::Sender<Arc<Event>>,
    pub(crate) nick: String,
    pub(crate) metrics: Metrics,
    pub(crate) store: Store,
    pub(crate) failures: mpsc::Receiver<Failure>,
}

impl EventLoop {
    pub(crate) fn new(swarm: Swarm<Behaviour>, parts: Parts, cfg: &super::Options) -> Self {
        let Parts {
            keypair,
            commands,
            events,
            nick,
            metrics,
            store,
            failures,
        } = parts;
        let hostname = rustix::system::uname()
            .nodename()
            .to_str()
            .unwrap_or_default()
            .to_owned();
        let mut redial = Redial::new(hostname);
        let now = Instant::now();
        for addr in &cfg.dial {
            redial.add(addr.clone(), false, now);
        }
        for addr in &cfg.bootstrap {
            redial.add(addr.clone(), true, now);
        }
        EventLoop {
            swarm,
            author: Author::new(keypair),
            commands,
            events,
            nick,
            rooms: Rooms::new(cfg.history_ring, cfg.history_retention),
            peers: PeerBook::default(),
            direct: Direct::default(),
            redial,
            metrics,
            listen_addrs: Vec::new(),
            started: now,
            archive: Archive::new(store, failures),
            sync: SyncState::default(),
            sync_jobs: FuturesUnordered::new(),
            sync_interval: cfg.sync_interval,
            next_sync: now + cfg.sync_interval,
            trim_wait: trim::Wait::default(),
            loading: FuturesUnordered::new(),
            reachability: reachability::Tracker::new(cfg.external.clone()),
            relays: Relays::new(&cfg.relays, now),
            served: Served::default(),
            next_discover: now + discovery::DISCOVER_EVERY,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown { reply }) => {
                        self.close().await;
                        let _ = reply.send(());
                        break;
                    }
                    Some(command) => self.handle_command(command),
                    None => {
                        self.close().await;
                        break;
                    }
                },
                event = self.swarm.select_next_some() => self.handle_swarm_event(event),
                Some(done) = self.sync_jobs.next(), if !self.sync_jobs.is_empty() => self.on_sync_job(done),
                step = self.archive.next() => self.on_archive(step),
                Some(loaded) = self.loading.next(), if !self.loading.is_empty() => self.loaded(loaded),
                _ = tick.tick() => self.on_tick(),
            }
        }
        tracing::debug!("node task stopped");
    }

    /// Closes every connection, and commits and closes the history store.
    async fn close(&mut self) {
        let peers: Vec<PeerId> = self.peers.ids().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        self.save(None);
        while let Some(saved) = self.archive.next_saved().await {
            self.saved(saved);
        }
        self.archive.close().await;
    }

    fn on_archive(&mut self, step: Step) {
        match step {
            Step::Due => self.save(None),
            Step::Saved(saved) => self.saved(saved),
            Step::Failed(failure) => self.store_failed(failure.records, &failure.reason),
            Step::Probed(result) => {
                if let Some(was) = self.archive.probed(result) {
                    self.emit(Event::StoreRecovered {
                        message: format!(
                            "history is saved again (it failed with: {was}); \
                             messages refused meanwhile were not sent"
                        ),
                    });
                }
            }
        }
    }

    /// Queues a message for the store's next group commit.
    pub(super) fn keep_soon(&mut self, record: Record) {
        if self.archive.keep_soon(record) {
            self.save(None);
        }
    }

    /// Emits an event about one of our messages once the store holds it
    /// (at once on an ephemeral node); metrics count it now.
    pub(super) fn emit_when_saved(&mut self, event: Event) {
        if self.archive.must_hold() {
            self.metrics.observe(&event, self.peers.len());
            self.archive.hold(event);
        } else {
            self.emit(event);
        }
    }

    /// Hands what waits to the store's writer (see [`Archive::save`]).
    pub(super) fn save(&mut self, answer: Option<(Reply<Sent>, Sent)>) {
        if let Some(failed) = self.archive.save(answer) {
            self.saved(failed);
        }
    }

    /// A commit is done (or failed): show what waited for it. Our
    /// messages it failed to hold are told as not saved, by id; a queued
    /// one leaves its queue, as it has no copy anywhere.
    fn saved(&mut self, saved: Saved) {
        let Err(reason) = saved.result else {
            let mut queued = Vec::new();
            for event in saved.events {
                if let Event::Pending { room, id, .. } = &event {
                    queued.push((room.clone(), id.clone()));
                }
                // Counted when held.
                let _ = self.events.send(Arc::new(event));
            }
            // Shown as pending first; now they may go out.
            for (room, id) in queued {
                self.queued_kept(&room, &id);
            }
            if let Some((reply, sent)) = saved.answer {
                let _ = reply.send(Ok(sent));
            }
            return;
        };
        self.store_failed(saved.records, &reason);
        for event in saved.events {
            let (room, id, published) = match event {
                Event::Sent { room, id, .. } => (room, id, true),
                Event::Pending { room, id, .. } => (room, id, false),
                other => {
                    let _ = self.events.send(Arc::new(other));
                    continue;
                }
            };
            self.rooms.not_kept(&room, &id);
            self.emit(Event::NotSaved {
                room,
                id,
                published,
                error: reason.clone(),
            });
        }
        if let Some((reply, sent)) = saved.answer {
            let _ = reply.send(Err(Error::NotSaved {
                id: sent.id,
                published: !sent.pending,
                reason,
            }));
        }
    }

    fn emit(&mut self, event: Event) {
        self.metrics.observe(&event, self.peers.len());
        // No receiver is fine: nobody is watching.
        let _ = self.events.send(Arc::new(event));
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Publish {
                room,
                text,
                user,
                reply,
            } => self.publish(&room, text, user.as_deref(), reply),
            Command::Search {
                query,
                room,
                limit,
                reply,
            } => match self.room_access(room.as_deref()) {
                Ok(access) => {
                    let store = self.archive.store().clone();
                    blocking::answer(reply, "searching the history", move || {
                        Ok(archive::search(&store, &access, &query, limit)?)
                    });
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::SendDirect {
                to,
                text,
                user,
                reply,
            } => self.send_direct(&to, text, user.as_deref(), reply),
            Command::Join { room, key, reply } => self.join_soon(room, key, reply),
            Command::Leave { room, reply } => {
                let _ = reply.send(Ok(self.leave(&room)));
            }
            Command::Rooms { reply } => {
                let _ = reply.send(Ok(self.room_infos()));
            }
            Command::Members { room, reply } => {
                let _ = reply.send(self.members(&room));
            }
            Command::Peers { reply } => {
                let _ = reply.send(Ok(self.peer_infos()));
            }
            Command::History {
                room,
                limit,
                before,
                reply,
            } => {
                let topic = protocol::topic_for(&room).hash();
                match self
                    .rooms
                    .get(&topic)
                    .map(|r| HistoryAnswer::for_room(r, topic, limit, before.as_deref()))
                {
                    None => {
                        let _ = reply.send(Err(Error::NotJoined(room)));
                    }
                    Some(HistoryAnswer::Ring(messages)) => {
                        let _ = reply.send(Ok(messages));
                    }
                    Some(HistoryAnswer::Store { access, before }) => {
                        let store = self.archive.store().clone();
                        blocking::answer(reply, "reading the history", move || {
                            Ok(archive::page(&store, &access, limit, before)?)
                        });
                    }
                }
            }
            Command::SetNick { nick, reply } => {
                let _ = reply.send(self.set_nick(nick));
            }
            Command::Status { reply } => {
                let _ = reply.send(Ok(self.status()));
            }
            Command::Readiness { reply } => {
                let _ = reply.send(Ok(self.readiness()));
            }
            Command::Invite { room, reply } => {
                let _ = reply.send(self.invite(&room));
            }
            Command::Reach { addrs, reply } => {
                let _ = reply.send(self.reach(addrs));
            }
            Command::Shutdown { .. } => {}
        }
    }

    /// What a handle needs to read the history of `room`, or of every
    /// joined room.
    fn room_access(&self, room: Option<&str>) -> Result<Vec<RoomAccess>, Error> {
        let all = self.rooms.iter().map(|(topic, r)| RoomAccess {
            name: r.name.clone(),
            topic: topic.clone(),
            key: r.key.clone(),
        });
        match room {
            None => Ok(all.collect()),
            Some(name) => {
                let found: Vec<RoomAccess> = all.filter(|a| a.name == name).collect();
                if found.is_empty() {
                    Err(Error::NotJoined(name.to_owned()))
                } else {
                    Ok(found)
                }
            }
        }
    }

    fn set_nick(&mut self, nick: String) -> Result<(), Error> {
        limits::own_nick(&nick)?;
        self.nick = nick;
        let peers: Vec<PeerId> = self.peers.ids().copied().collect();
        for peer in peers {
            self.send_hello(peer);
        }
        Ok(())
    }

    fn readiness(&self) -> Readiness {
        let (dial_targets, dial_connected) = self.redial.counts();
        readiness::decide(readiness::Inputs {
            listening: self.listen_addrs.len(),
            rooms: self.rooms.len(),
            store_error: self.archive.error(),
            dial_targets,
            dial_connected,
            only_bootstrap: self.redial.only_bootstrap(),
            peers: self.peers.len(),
        })
    }

    fn peer_infos(&self) -> Vec<PeerInfo> {
        self.peers.list()
    }

    fn status(&self) -> Status {
        let mut rooms: Vec<String> = self.rooms.iter().map(|(_, r)| r.name.clone()).collect();
        rooms.sort();
        Status {
            peer_id: self.swarm.local_peer_id().to_string(),
            nick: self.nick.clone(),
            version: env!("CARGO_PKG_VERSION"),
            uptime_secs: self.started.elapsed().as_secs(),
            listen_addrs: self.listen_addrs.iter().map(ToString::to_string).collect(),
            external_addrs: self
                .swarm
                .external_addresses()
                .map(ToString::to_string)
                .collect(),
            reachability: self.reachability.state(),
            dht_mode: match self.swarm.behaviour().kad.mode() {
                libp2p::kad::Mode::Client => "client",
                libp2p::kad::Mode::Server => "server",
            },
            relay_addrs: self
                .listen_addrs
                .iter()
                .filter(|a| reachability::is_relayed(a))
                .map(ToString::to_string)
                .collect(),
            relay_server: self
                .swarm
                .behaviour()
                .relay
                .is_enabled()
                .then(|| RelayServerStatus {
                    reservations: self.served.reservations(),
                    circuits: self.served.circuits(),
                    circuits_opened: self.served.opened(),
                }),
            // Filled in by the handle, which the SSH front end tells.
            ssh: None,
            rooms,
            connected_peers: self.peers.len(),
            stats: self.metrics.stats(),
            store_error: self.archive.error().map(str::to_owned),
            history: match &self.archive.store().path {
                Some(path) => path.display().to_string(),
                None => "memory".into(),
            },
        }
    }

    /// A history write failed: counted, and the store is failing until a
    /// probe finds it working again. Told once when it starts failing, not
    /// at every commit of a node that keeps relaying (our own messages are
    /// each named by their `not_saved` event).
    pub(super) fn store_failed(&mut self, records: usize, reason: &str) {
        self.metrics.store_failed(records);
        let first = self.archive.error().is_none();
        self.archive.failed(reason);
        if first {
            self.emit(Event::Error {
                message: format!(
                    "not saved: {reason} (history is not being saved; messages of ours \
                     are refused until it is, tried again every 5 s)"
                ),
            });
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.archive.probe(now);
        if now >= self.next_sync {
            self.next_sync = now + self.sync_interval;
            self.apply_retention();
            self.sync_all();
        }
        self.retry_syncs(now);
        let enough = self.peers.enough();
        for due in self.redial.dials_due(now, enough, &self.listen_addrs) {
            let opts = DialOpts::from(due.addr.clone());
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => self.redial.dialing(due.index, id),
                Err(e) => {
                    tracing::debug!(addr = %due.addr, error = %e, "dial refused");
                    self.redial.dial_refused(due.index, now);
                }
            }
        }
        for topic in self.rooms.waiting() {
            self.flush_pending(&topic);
        }
        self.reserve_relays(now);
        self.discover(now);
        self.close_superseded();
        for (_, room) in self.rooms.iter() {
            self.metrics.set_pending(&room.name, room.pending.len());
        }
        self.trim(now);
    }

    /// Closes unused connections when there are too many (see `trim.rs`).
    fn trim(&mut self, now: Instant) {
        let lookups = self.swarm.behaviour().kad.iter_queries().next().is_some();
        if self.trim_wait.holds(lookups, now) || self.peers.len() <= trim::HIGH_WATER {
            return;
        }
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let mut keep: HashSet<PeerId> = gossipsub.all_mesh_peers().copied().collect();
        keep.extend(self.redial.peers());
        keep.extend(self.direct.peers());
        keep.extend(self.sync.peers());
        keep.extend(self.relays.held());
        let served = &self.served;
        let candidates = self.peers.candidates(super::swarm::IDLE_TIMEOUT, |p| {
            keep.contains(p) || served.uses(p)
        });
        for peer in trim::victims(candidates, now) {
            tracing::debug!(%peer, "closing an unused connection: too many peers");
            self.metrics.trimmed();
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }
}

pub(super) fn publish_reason(e: &PublishError) -> String {
    match e {
        // Kept all the same: peers get it by history sync.
        PublishError::AllQueuesFull(n) => format!(
            "the send queues to all {n} peers are full (it is kept, and history sync delivers it)"
        ),
        PublishError::MessageTooLarge => "the frame is over the network's limit".into(),
        PublishError::Duplicate => "this exact message was already sent".into(),
        other => other.to_string(),
    }
}
