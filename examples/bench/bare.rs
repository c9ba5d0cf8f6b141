//! Baseline (a): a bare rust-libp2p peer, gossipsub and request-response
//! with libp2p's default configurations and no application logic, so the
//! ratio to it shows what the chat node adds on top of libp2p itself.
//!
//! Like the node, one task owns the swarm and a handle talks to it by
//! message; received gossip goes to a bounded sink without being looked at.

use std::{collections::HashMap, time::Duration};

use anyhow::{Context, anyhow};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder,
    futures::StreamExt,
    gossipsub::{self, IdentTopic},
    noise,
    request_response::{self, OutboundRequestId, ProtocolSupport},
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};

/// Capacity of the command channel (as the node's).
const COMMAND_CAP: usize = 64;
/// The request-response protocol of the baseline.
const RR_PROTOCOL: StreamProtocol = StreamProtocol::new("/bench/rr/1");

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    rr: request_response::json::Behaviour<String, String>,
}

/// How a bare peer is built.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    /// Listen on QUIC rather than TCP.
    pub(crate) quic: bool,
    /// Heartbeat and initial delay; None keeps gossipsub's defaults.
    pub(crate) heartbeat: Option<(Duration, Duration)>,
    /// Keep gossipsub metrics (to count duplicate receptions).
    pub(crate) metrics: bool,
    /// Speak the node's wire form: unsigned gossipsub frames, the envelope
    /// carrying the author's signature (to exchange messages with a node).
    pub(crate) anonymous: bool,
}

enum Command {
    Publish(Vec<u8>, oneshot::Sender<Result<(), String>>),
    Request(PeerId, String, oneshot::Sender<Result<(), String>>),
    Dial(Multiaddr),
    MeshPeers(oneshot::Sender<usize>),
    Connected(oneshot::Sender<usize>),
}

/// Handle to a bare peer's task.
#[derive(Clone)]
pub(crate) struct Bare {
    commands: mpsc::Sender<Command>,
    pub(crate) peer_id: PeerId,
    /// Its identity, to sign envelopes as their author when it stands in
    /// for a chat client.
    pub(crate) key: libp2p::identity::Keypair,
    /// Its listen address, ending in `/p2p/<id>`.
    pub(crate) addr: Multiaddr,
}

/// A started bare peer: the handle, its metrics, the task.
pub(crate) struct Started {
    pub(crate) bare: Bare,
    pub(crate) registry: Option<Registry>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

fn build(
    opts: Options,
    key: &libp2p::identity::Keypair,
    registry: Option<&mut Registry>,
) -> anyhow::Result<Swarm<Behaviour>> {
    let mut cfg = gossipsub::ConfigBuilder::default();
    if let Some((interval, initial)) = opts.heartbeat {
        cfg.heartbeat_interval(interval)
            .heartbeat_initial_delay(initial);
    }
    if opts.anonymous {
        // Without a source and sequence number every frame would get the
        // same default id: hash the frame, as the node does.
        cfg.validation_mode(gossipsub::ValidationMode::Anonymous)
            .message_id_fn(|m| p2p_chat::protocol::message_id(&m.data).into());
    }
    let cfg = cfg.build().map_err(|e| anyhow!("gossipsub config: {e}"))?;
    let swarm = SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_behaviour(|key| {
            let authenticity = if opts.anonymous {
                gossipsub::MessageAuthenticity::Anonymous
            } else {
                gossipsub::MessageAuthenticity::Signed(key.clone())
            };
            let mut gossipsub = gossipsub::Behaviour::new(authenticity, cfg)?;
            if let Some(registry) = registry {
                gossipsub = gossipsub.with_metrics(registry, Default::default());
            }
            let rr = request_response::json::Behaviour::new(
                [(RR_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default(),
            );
            Ok(Behaviour { gossipsub, rr })
        })
        .map_err(|e| anyhow!("bare behaviour: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

impl Bare {
    /// Starts a bare peer on 127.0.0.1, subscribed to `topic`, handing every
    /// received gossip payload to `sink` (dropped when the sink is full).
    pub(crate) async fn start(
        opts: Options,
        topic: IdentTopic,
        sink: mpsc::Sender<Vec<u8>>,
    ) -> anyhow::Result<Started> {
        let mut registry = opts.metrics.then(Registry::default);
        let key = libp2p::identity::Keypair::generate_ed25519();
        let mut swarm = build(opts, &key, registry.as_mut())?;
        swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
        let listen: Multiaddr = if opts.quic {
            "/ip4/127.0.0.1/udp/0/quic-v1".parse()?
        } else {
            "/ip4/127.0.0.1/tcp/0".parse()?
        };
        swarm.listen_on(listen)?;
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        let peer_id = *swarm.local_peer_id();
        let addr = addr.with(libp2p::multiaddr::Protocol::P2p(peer_id));
        let (tx, rx) = mpsc::channel(COMMAND_CAP);
        let task = tokio::spawn(run(swarm, topic, rx, sink));
        Ok(Started {
            bare: Bare {
                commands: tx,
                peer_id,
                key,
                addr,
            },
            registry,
            task,
        })
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> anyhow::Result<T> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| anyhow!("bare peer stopped"))?;
        rx.await.context("bare peer stopped")
    }

    /// Publishes on the topic; resolves once gossipsub took it.
    pub(crate) async fn publish(&self, data: Vec<u8>) -> anyhow::Result<()> {
        self.call(|r| Command::Publish(data, r))
            .await?
            .map_err(|e| anyhow!("publish: {e}"))
    }

    /// One request to `peer`; resolves with its response.
    pub(crate) async fn request(&self, peer: PeerId, text: String) -> anyhow::Result<()> {
        self.call(|r| Command::Request(peer, text, r))
            .await?
            .map_err(|e| anyhow!("request: {e}"))
    }

    pub(crate) async fn dial(&self, addr: Multiaddr) -> anyhow::Result<()> {
        self.commands
            .send(Command::Dial(addr))
            .await
            .map_err(|_| anyhow!("bare peer stopped"))
    }

    /// Peers we have a connection to.
    pub(crate) async fn connected(&self) -> anyhow::Result<usize> {
        self.call(Command::Connected).await
    }

    /// Peers in our gossipsub mesh for the topic.
    pub(crate) async fn mesh_peers(&self) -> anyhow::Result<usize> {
        self.call(Command::MeshPeers).await
    }
}

type Pending = HashMap<OutboundRequestId, oneshot::Sender<Result<(), String>>>;

async fn run(
    mut swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    mut commands: mpsc::Receiver<Command>,
    sink: mpsc::Sender<Vec<u8>>,
) {
    let mut pending: Pending = HashMap::new();
    loop {
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(c) => on_command(&mut swarm, &topic, &mut pending, c),
                None => break,
            },
            event = swarm.select_next_some() => on_event(&mut swarm, &mut pending, &sink, event),
        }
    }
}

fn on_command(swarm: &mut Swarm<Behaviour>, topic: &IdentTopic, pending: &mut Pending, c: Command) {
    let b = swarm.behaviour_mut();
    match c {
        Command::Publish(data, reply) => {
            let r = b.gossipsub.publish(topic.clone(), data);
            let _ = reply.send(r.map(|_| ()).map_err(|e| e.to_string()));
        }
        Command::Request(peer, text, reply) => {
            let id = b.rr.send_request(&peer, text);
            pending.insert(id, reply);
        }
        Command::Dial(addr) => {
            if let Err(e) = swarm.dial(addr) {
                eprintln!("bare dial: {e}");
            }
        }
        Command::MeshPeers(reply) => {
            let _ = reply.send(b.gossipsub.mesh_peers(&topic.hash()).count());
        }
        Command::Connected(reply) => {
            let _ = reply.send(swarm.connected_peers().count());
        }
    }
}

fn on_event(
    swarm: &mut Swarm<Behaviour>,
    pending: &mut Pending,
    sink: &mpsc::Sender<Vec<u8>>,
    event: SwarmEvent<BehaviourEvent>,
) {
    use request_response::{Event as R, Message as M};
    match event {
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
            message,
            ..
        })) => {
            let _ = sink.try_send(message.data);
        }
        SwarmEvent::Behaviour(BehaviourEvent::Rr(R::Message { message, .. })) => match message {
            M::Request {
                request, channel, ..
            } => {
                // Answer with an id-sized receipt, as the node does.
                let receipt: String = request.chars().take(26).collect();
                let _ = swarm.behaviour_mut().rr.send_response(channel, receipt);
            }
            M::Response { request_id, .. } => {
                if let Some(reply) = pending.remove(&request_id) {
                    let _ = reply.send(Ok(()));
                }
            }
        },
        SwarmEvent::Behaviour(BehaviourEvent::Rr(R::OutboundFailure {
            request_id, error, ..
        })) => {
            if let Some(reply) = pending.remove(&request_id) {
                let _ = reply.send(Err(error.to_string()));
            }
        }
        _ => {}
    }
}

/// Sums a gossipsub counter family over every topic in metrics text; the
/// name may carry a registry prefix (the node's does).
fn counter(text: &str, name: &str) -> f64 {
    let suffix = format!("{name}_total");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.split(['{', ' '])
                .next()
                .is_some_and(|m| m == suffix || m.ends_with(&format!("_{suffix}")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Gossip messages received including duplicates, and without them, from
/// metrics text.
pub(crate) fn receptions_in(text: &str) -> (f64, f64) {
    (
        counter(text, "topic_msg_recv_counts_unfiltered"),
        counter(text, "topic_msg_recv_counts"),
    )
}

/// Dials a node attempted, from metrics text.
pub(crate) fn dials_in(text: &str) -> f64 {
    counter(text, "swarm_dial_attempt")
}

/// The same, from a bare peer's registry.
pub(crate) fn receptions(registry: &Registry) -> anyhow::Result<(f64, f64)> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(receptions_in(&text))
}
