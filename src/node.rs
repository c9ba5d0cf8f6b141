//! The node: one task owns the libp2p `Swarm`; every front end holds a cheap
//! [`Node`] handle and talks to that task by message.
//!
//! `Node` methods send a [`Command`] with a oneshot reply and await it; the
//! task answers from its own state, so nothing else ever touches the swarm.
//! Everything that happens is also broadcast as an [`Event`].

mod archive;
mod behaviour;
mod blocking;
mod direct;
mod error;
mod event;
mod event_loop;
mod listen;
mod metrics;
mod options;
mod peers;
mod reachability;
mod readiness;
mod redial;
mod relays;
mod rooms;
mod swarm;
mod sync;
#[cfg(test)]
mod testing;
mod trim;
mod types;

use std::sync::Arc;

use libp2p::{Multiaddr, PeerId};
use prometheus_client::registry::Registry;
use tokio::{
    sync::{broadcast, mpsc, oneshot},
    task::JoinHandle,
};

pub use error::Error;
pub use event::{Event, Events};
pub use options::{DEFAULT_PORT, Options, RelayLimits, Retention, default_listen};
pub use readiness::Readiness;

use archive::Preload;
pub use reachability::Reachability;
pub use types::{PeerInfo, Receipt, RelayServerStatus, RoomInfo, Sent, SshStatus, Stats, Status};

use crate::{
    crypto::RoomKey,
    identity::{self, IdentityError},
    limits,
    protocol::{self, ChatMessage},
    store::Store,
    ticket::Ticket,
};

/// Capacity of the command channel from handles to the node task.
const COMMAND_CAP: usize = 64;
/// Capacity of the event broadcast; a subscriber that falls further behind
/// is told how many events it missed.
const EVENT_CAP: usize = 4096;

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// A request from a handle to the node task.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        room: String,
        text: String,
        /// A user of this node (SSH) it is from: sent as `user@nick`.
        user: Option<String>,
        reply: Reply<Sent>,
    },
    Search {
        query: String,
        room: Option<String>,
        limit: usize,
        reply: Reply<Vec<ChatMessage>>,
    },
    SendDirect {
        to: String,
        text: String,
        /// A user of this node (SSH) it is from: sent as `user@nick`.
        user: Option<String>,
        reply: Reply<Receipt>,
    },
    Join {
        room: String,
        key: Option<Arc<RoomKey>>,
        reply: Reply<bool>,
    },
    Leave {
        room: String,
        reply: Reply<bool>,
    },
    Rooms {
        reply: Reply<Vec<RoomInfo>>,
    },
    Members {
        room: String,
        reply: Reply<Vec<String>>,
    },
    Peers {
        reply: Reply<Vec<PeerInfo>>,
    },
    History {
        room: String,
        limit: usize,
        before: Option<String>,
        reply: Reply<Vec<ChatMessage>>,
    },
    SetNick {
        nick: String,
        reply: Reply<()>,
    },
    Status {
        reply: Reply<Status>,
    },
    Readiness {
        reply: Reply<Readiness>,
    },
    Invite {
        room: String,
        reply: Reply<Ticket>,
    },
    Reach {
        addrs: Vec<Multiaddr>,
        reply: Reply<()>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Handle to a running node. Cheap to clone; all clones talk to one task.
#[derive(Debug, Clone)]
pub struct Node {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Arc<Event>>,
    /// Written by the node task through the metric handles it owns; the
    /// registry itself is only read (encoded) after start.
    metrics: Arc<Registry>,
    /// What the SSH front end tells: shown by `status`, counted in the
    /// registry.
    ssh: Arc<SshFront>,
}

/// The SSH front end's state, as the node shows it.
#[derive(Debug, Default)]
struct SshFront {
    status: std::sync::Mutex<Option<SshStatus>>,
    metrics: metrics::SshMetrics,
}

impl Node {
    /// Starts a node: loads the identity, binds every listen address, joins
    /// the configured room and spawns the task that owns the swarm. Returns
    /// the handle, a receiver that sees every event from the first on, and
    /// the task's join handle.
    pub async fn spawn(
        options: impl Into<Options>,
    ) -> Result<(Node, Events, JoinHandle<()>), Error> {
        let cfg = &options.into();
        let (failures_tx, failures_rx) = mpsc::channel(16);
        let (keypair, store) = if cfg.ephemeral {
            let store = Store::in_memory(failures_tx)?;
            (libp2p::identity::Keypair::generate_ed25519(), store)
        } else {
            let dir = match &cfg.data_dir {
                Some(dir) => dir.clone(),
                None => identity::default_data_dir().ok_or(IdentityError::NoDataDir)?,
            };
            blocking::run("opening the data dir", move || {
                let ran_before = dir.join(identity::KEY_FILE).exists();
                let keypair = identity::load_or_create(&dir)?;
                if ran_before {
                    Store::refuse_emptied(&dir)?;
                }
                Ok((keypair, Store::open(&dir, failures_tx)?))
            })
            .await?
        };
        let peer_id = keypair.public().to_peer_id();
        let nick = match &cfg.nick {
            Some(nick) => nick.clone(),
            None => default_nick(&peer_id),
        };
        limits::own_nick(&nick)?;
        let mut registry = Registry::default();
        let mut swarm = swarm::build(keypair.clone(), cfg, &mut registry)?;
        let metrics = metrics::Metrics::new(&mut registry);
        let ssh = Arc::new(SshFront {
            status: std::sync::Mutex::new(None),
            metrics: metrics::SshMetrics::new(&mut registry),
        });
        listen::listen(&mut swarm, cfg)?;
        for addr in &cfg.external {
            swarm.add_external_address(addr.clone());
        }
        if cfg.relay_server.is_some() && cfg.external.is_empty() {
            tracing::warn!(
                "--relay-server without --external: reservations are refused until AutoNAT \
                 confirms an address of this node (a peer it dials must dial it back)"
            );
        }
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_CAP);
        let (events_tx, events_rx) = broadcast::channel(EVENT_CAP);
        let key = match &cfg.passphrase {
            Some(pass) => Some(Arc::new(derive_key(&cfg.room, pass.expose()).await?)),
            None => None,
        };
        let topic = protocol::topic_for(&cfg.room).hash().to_string();
        let (preload_store, ring) = (store.clone(), cfg.history_ring);
        let preload = blocking::run("reading the history", move || {
            Ok(Preload::load(&preload_store, &topic, ring)?)
        })
        .await?;
        let parts = event_loop::Parts {
            keypair,
            commands: commands_rx,
            events: events_tx.clone(),
            nick,
            metrics,
            store,
            failures: failures_rx,
        };
        let mut event_loop = event_loop::EventLoop::new(swarm, parts, cfg);
        event_loop.join(&cfg.room, key, preload)?;
        let task = tokio::spawn(event_loop.run());
        let node = Node {
            peer_id,
            commands: commands_tx,
            events: events_tx,
            metrics: Arc::new(registry),
            ssh,
        };
        Ok((node, Events::new(events_rx), task))
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// True while the node task runs. False once it has stopped, whether by
    /// [`Node::shutdown`] or by failing.
    pub fn is_alive(&self) -> bool {
        !self.commands.is_closed()
    }

    /// All metrics (libp2p's and the node's) in the Prometheus / OpenMetrics
    /// text format.
    pub fn encode_metrics(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.metrics)?;
        Ok(text)
    }

    /// A new receiver of events from now on.
    pub fn subscribe(&self) -> Events {
        Events::new(self.events.subscribe())
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await?;
        rx.await?
    }

    /// Sends `text` to `room`. If no peer of the room is reachable yet, the
    /// message is queued (`pending: true`) and sent when one appears.
    ///
    /// Resolves once the history store has committed the message (the
    /// commit starts at once), so what it acknowledges survives a crash;
    /// [`Event::Sent`] comes at the same moment. An ephemeral node keeps
    /// its history in memory only, which no commit makes durable: it
    /// answers once the message is sent (or queued). If that commit fails, the
    /// answer is [`Error::NotSaved`] (and an [`Event::NotSaved`] names the
    /// id); while the store is failing nothing is sent and the answer is
    /// [`Error::StoreFailing`].
    pub async fn publish(&self, room: &str, text: &str) -> Result<Sent, Error> {
        self.publish_from(room, text, None).await
    }

    /// As [`Node::publish`], for `user`, a user of this node (an SSH
    /// login): the message carries the nick `user@<our nick>`, and
    /// receivers show its node part by this node's verified peer id.
    pub async fn publish_as(&self, room: &str, text: &str, user: &str) -> Result<Sent, Error> {
        self.publish_from(room, text, Some(user)).await
    }

    async fn publish_from(
        &self,
        room: &str,
        text: &str,
        user: Option<&str>,
    ) -> Result<Sent, Error> {
        let (room, text, user) = (room.to_owned(), text.to_owned(), user.map(str::to_owned));
        self.call(|reply| Command::Publish {
            room,
            text,
            user,
            reply,
        })
        .await
    }

    /// Sends a direct message to a peer id or nick and waits for its receipt.
    pub async fn send_direct(&self, to: &str, text: &str) -> Result<Receipt, Error> {
        self.send_direct_from(to, text, None).await
    }

    /// As [`Node::send_direct`], for `user`, a user of this node (an SSH
    /// login): the message carries the nick `user@<our nick>`.
    pub async fn send_direct_as(&self, to: &str, text: &str, user: &str) -> Result<Receipt, Error> {
        self.send_direct_from(to, text, Some(user)).await
    }

    async fn send_direct_from(
        &self,
        to: &str,
        text: &str,
        user: Option<&str>,
    ) -> Result<Receipt, Error> {
        let (to, text, user) = (to.to_owned(), text.to_owned(), user.map(str::to_owned));
        self.call(|reply| Command::SendDirect {
            to,
            text,
            user,
            reply,
        })
        .await
    }

    /// Joins an open room; false if already joined.
    pub async fn join(&self, room: &str) -> Result<bool, Error> {
        self.join_with(room, None).await
    }

    async fn join_with(&self, room: &str, key: Option<Arc<RoomKey>>) -> Result<bool, Error> {
        limits::own_room(room)?;
        let room = room.to_owned();
        self.call(|reply| Command::Join { room, key, reply }).await
    }

    /// Joins an encrypted room, or gives a joined room its passphrase. The
    /// key is derived here, once, off the async runtime (Argon2id takes a
    /// few hundred milliseconds); false if the room was already joined.
    pub async fn join_encrypted(&self, room: &str, passphrase: &str) -> Result<bool, Error> {
        limits::own_room(room)?;
        let key = derive_key(room, passphrase).await?;
        self.join_with(room, Some(Arc::new(key))).await
    }

    /// Leaves a room; false if not joined.
    pub async fn leave(&self, room: &str) -> Result<bool, Error> {
        let room = room.to_owned();
        self.call(|reply| Command::Leave { room, reply }).await
    }

    /// Joined rooms.
    pub async fn rooms(&self) -> Result<Vec<RoomInfo>, Error> {
        self.call(|reply| Command::Rooms { reply }).await
    }

    /// The connected peers in a joined room (subscribed to its topic or in
    /// its mesh), as peer ids.
    pub async fn members(&self, room: &str) -> Result<Vec<String>, Error> {
        let room = room.to_owned();
        self.call(|reply| Command::Members { room, reply }).await
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        self.call(|reply| Command::Peers { reply }).await
    }

    /// Up to `limit` recent messages of a room, oldest first, optionally
    /// only those before the message with id `before`.
    pub async fn history(
        &self,
        room: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<ChatMessage>, Error> {
        let (room, before) = (room.to_owned(), before.map(str::to_owned));
        self.call(|reply| Command::History {
            room,
            limit,
            before,
            reply,
        })
        .await
    }

    /// The newest `limit` messages containing `query` (any case) in the
    /// rooms this node can read (all joined rooms, or just `room`), oldest
    /// first. Encrypted rooms are decrypted in memory; no index is written.
    pub async fn search(
        &self,
        query: &str,
        room: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, Error> {
        let (query, room) = (query.to_owned(), room.map(str::to_owned));
        self.call(|reply| Command::Search {
            query,
            room,
            limit,
            reply,
        })
        .await
    }

    /// Changes our nick and tells connected peers.
    pub async fn set_nick(&self, nick: &str) -> Result<(), Error> {
        let nick = nick.to_owned();
        self.call(|reply| Command::SetNick { nick, reply }).await
    }

    /// A snapshot of the node.
    pub async fn status(&self) -> Result<Status, Error> {
        let mut status: Status = self.call(|reply| Command::Status { reply }).await?;
        status.ssh = self.ssh_status().clone();
        Ok(status)
    }

    fn ssh_status(&self) -> std::sync::MutexGuard<'_, Option<SshStatus>> {
        self.ssh
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The SSH front end serves at `addr` with a host key of `fingerprint`.
    pub fn ssh_started(&self, addr: String, fingerprint: String, max_sessions: usize) {
        *self.ssh_status() = Some(SshStatus {
            addr,
            fingerprint,
            sessions: 0,
            max_sessions,
        });
    }

    /// SSH sessions open now.
    pub fn ssh_sessions(&self, open: usize) {
        if let Some(status) = self.ssh_status().as_mut() {
            status.sessions = open;
        }
        self.ssh.metrics.sessions(open);
    }

    /// An SSH login was refused, for `reason` (`unknown_key`,
    /// `too_many_sessions`).
    pub fn ssh_refused(&self, reason: &str) {
        self.ssh.metrics.refused(reason);
    }

    /// An invite ticket for `room` (joined): its name, whether it is
    /// encrypted, and the addresses where this node is reached.
    pub async fn invite(&self, room: &str) -> Result<Ticket, Error> {
        let room = room.to_owned();
        self.call(|reply| Command::Invite { room, reply }).await
    }

    /// Dials the peer these addresses (each ending in `/p2p/ID`, one peer)
    /// lead to, once; a ticket's. Connecting is told by a `peer_connected`
    /// event.
    pub async fn reach(&self, addrs: Vec<Multiaddr>) -> Result<(), Error> {
        self.call(|reply| Command::Reach { addrs, reply }).await
    }

    /// Whether the node is ready to serve (see [`Readiness`]).
    pub async fn readiness(&self) -> Result<Readiness, Error> {
        self.call(|reply| Command::Readiness { reply }).await
    }

    /// Stops the node task, closing every connection. Idempotent.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown { reply: tx })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

async fn derive_key(room: &str, passphrase: &str) -> Result<RoomKey, Error> {
    let (room, pass) = (
        room.to_owned(),
        zeroize::Zeroizing::new(passphrase.to_owned()),
    );
    blocking::run("deriving the room key", move || {
        Ok(RoomKey::derive(&pass, &room)?)
    })
    .await
}

/// The login name, else a short form of the peer id.
fn default_nick(peer: &PeerId) -> String {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .find(|name| limits::own_nick(name).is_ok())
        .unwrap_or_else(|| peers::short_id(peer))
}
