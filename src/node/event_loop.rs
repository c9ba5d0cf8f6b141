//! The task that owns the swarm: a `select!` over commands from handles,
//! swarm events and a housekeeping tick. Command handling lives here; swarm
//! events are handled in `on_swarm.rs`.

use std::{collections::HashMap, time::Duration};

use libp2p::{
    Multiaddr, PeerId, Swarm,
    futures::StreamExt,
    gossipsub::{PublishError, TopicHash},
    identity::Keypair,
    request_response::OutboundRequestId,
    swarm::dial_opts::DialOpts,
};
use tokio::{
    sync::{broadcast, mpsc, oneshot},
    time::{Instant, MissedTickBehavior},
};

use super::{
    Command, Error, Event, PeerInfo, Receipt, Stats, Status, behaviour::Behaviour, check_nick,
    metrics::Metrics, peers::PeerBook, redial::Redial,
};
use crate::{
    config::Config,
    protocol::{self, DirectRequest, Envelope},
    room::{Room, SeenIds},
};

/// Housekeeping period: redials and pending retries.
const TICK: Duration = Duration::from_millis(250);

/// A direct message waiting for its receipt.
pub(super) struct PendingDirect {
    pub(super) id: String,
    pub(super) to: PeerId,
    pub(super) reply: Option<oneshot::Sender<Result<Receipt, Error>>>,
}

pub(crate) struct EventLoop {
    pub(super) swarm: Swarm<Behaviour>,
    /// Our identity, to sign envelopes.
    pub(super) keypair: Keypair,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<Event>,
    pub(super) nick: String,
    pub(super) rooms: HashMap<TopicHash, Room>,
    pub(super) peers: PeerBook,
    pub(super) pending_direct: HashMap<OutboundRequestId, PendingDirect>,
    pub(super) redial: Redial,
    pub(super) seen: SeenIds,
    pub(super) stats: Stats,
    pub(super) metrics: Metrics,
    pub(super) listen_addrs: Vec<Multiaddr>,
    started: Instant,
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        keypair: Keypair,
        commands: mpsc::Receiver<Command>,
        events: broadcast::Sender<Event>,
        nick: String,
        metrics: Metrics,
        cfg: &Config,
    ) -> Self {
        let mut redial = Redial::default();
        let now = Instant::now();
        for addr in &cfg.dial {
            redial.add(addr.clone(), false, now);
        }
        for addr in &cfg.bootstrap {
            redial.add(addr.clone(), true, now);
        }
        EventLoop {
            swarm,
            keypair,
            commands,
            events,
            nick,
            rooms: HashMap::new(),
            peers: PeerBook::default(),
            pending_direct: HashMap::new(),
            redial,
            seen: SeenIds::default(),
            stats: Stats::default(),
            metrics,
            listen_addrs: Vec::new(),
            started: now,
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
                        self.close();
                        let _ = reply.send(());
                        break;
                    }
                    Some(command) => self.handle_command(command),
                    None => {
                        self.close();
                        break;
                    }
                },
                event = self.swarm.select_next_some() => self.handle_swarm_event(event),
                _ = tick.tick() => self.on_tick(),
            }
        }
        tracing::debug!("node task stopped");
    }

    fn close(&mut self) {
        let peers: Vec<PeerId> = self.peers.ids().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    pub(super) fn emit(&self, event: Event) {
        self.metrics.observe(&event, self.peers.len());
        // No receiver is fine: nobody is watching.
        let _ = self.events.send(event);
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Publish { room, text, reply } => {
                let _ = reply.send(self.publish(&room, text));
            }
            Command::SendDirect { to, text, reply } => self.send_direct(&to, text, reply),
            Command::Join { room, key, reply } => {
                let _ = reply.send(self.join(&room, key));
            }
            Command::Leave { room, reply } => {
                let _ = reply.send(Ok(self.leave(&room)));
            }
            Command::Rooms { reply } => {
                let _ = reply.send(Ok(self.room_infos()));
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
                let result = match self.rooms.get(&protocol::topic_for(&room).hash()) {
                    Some(r) => Ok(r.recent(limit, before.as_deref())),
                    None => Err(Error::NotJoined(room)),
                };
                let _ = reply.send(result);
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
            Command::Shutdown { .. } => {}
        }
    }

    fn send_direct(
        &mut self,
        to: &str,
        text: String,
        reply: oneshot::Sender<Result<Receipt, Error>>,
    ) {
        if let Err(e) = check_text(&text) {
            let _ = reply.send(Err(e));
            return;
        }
        let peer = match self.peers.resolve(to) {
            Ok(peer) => peer,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let mut env = Envelope::text(self.swarm.local_peer_id(), "", &self.nick, &text);
        env.sign(&self.keypair, "");
        let id = env.id.clone();
        let request_id = self
            .swarm
            .behaviour_mut()
            .direct
            .send_request(&peer, DirectRequest::Message(env));
        self.pending_direct.insert(
            request_id,
            PendingDirect {
                id,
                to: peer,
                reply: Some(reply),
            },
        );
    }

    fn set_nick(&mut self, nick: String) -> Result<(), Error> {
        check_nick(&nick)?;
        self.nick = nick;
        let peers: Vec<PeerId> = self.peers.ids().copied().collect();
        for peer in peers {
            self.send_hello(peer);
        }
        Ok(())
    }

    pub(super) fn send_hello(&mut self, peer: PeerId) {
        let hello = DirectRequest::Hello {
            nick: self.nick.clone(),
        };
        self.swarm.behaviour_mut().direct.send_request(&peer, hello);
    }

    fn peer_infos(&self) -> Vec<PeerInfo> {
        self.peers.list()
    }

    fn status(&self) -> Status {
        let mut rooms: Vec<String> = self.rooms.values().map(|r| r.name.clone()).collect();
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
            rooms,
            connected_peers: self.peers.len(),
            stats: self.stats.clone(),
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        for due in self.redial.due(now) {
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
        let waiting: Vec<TopicHash> = self
            .rooms
            .iter()
            .filter(|(_, r)| !r.pending.is_empty())
            .map(|(t, _)| t.clone())
            .collect();
        for topic in waiting {
            self.flush_pending(&topic);
        }
        for room in self.rooms.values() {
            self.metrics.set_pending(&room.name, room.pending.len());
        }
    }
}

pub(super) fn check_text(text: &str) -> Result<(), Error> {
    if text.trim().is_empty() {
        return Err(Error::Empty);
    }
    if text.len() > protocol::MAX_TEXT_BYTES {
        return Err(Error::TooLarge {
            size: text.len(),
            limit: protocol::MAX_TEXT_BYTES,
        });
    }
    Ok(())
}

pub(super) fn publish_reason(e: &PublishError) -> String {
    match e {
        PublishError::AllQueuesFull(n) => format!("the send queues to all {n} peers are full"),
        PublishError::MessageTooLarge => "the frame is over the network's limit".into(),
        PublishError::Duplicate => "this exact message was already sent".into(),
        other => other.to_string(),
    }
}
