//! Shared helpers: start nodes, wait for events with a bound.

use std::time::Duration;

use p2p_chat::{Config, Event, Node, node::Events};
use tokio::{sync::broadcast, task::JoinHandle};

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

pub struct TestNode {
    pub node: Node,
    pub events: Events,
    pub task: JoinHandle<()>,
    pub addr: String,
}

impl TestNode {
    pub async fn start(cfg: Config) -> TestNode {
        let (node, mut events, task) = Node::spawn(&cfg).await.expect("node starts");
        let addr = match wait_for(&mut events, |e| matches!(e, Event::Listening { .. })).await {
            Event::Listening { address } => address,
            _ => unreachable!(),
        };
        TestNode {
            node,
            events,
            task,
            addr,
        }
    }

    /// A node with `nick` that dials each of `dial`.
    pub async fn start_with(nick: &str, dial: &[&TestNode]) -> TestNode {
        let mut cfg = Config::for_tests();
        cfg.nick = Some(nick.into());
        cfg.dial = dial
            .iter()
            .map(|n| n.addr.parse().expect("listen addr"))
            .collect();
        TestNode::start(cfg).await
    }

    pub fn id(&self) -> String {
        self.node.peer_id().to_string()
    }

    pub async fn wait(&mut self, pred: impl FnMut(&Event) -> bool) -> Event {
        wait_for(&mut self.events, pred).await
    }

    /// Waits until this node has heard `peer`'s nick (so it can be named).
    pub async fn wait_nick(&mut self, peer: &TestNode) {
        let id = peer.id();
        if self
            .node
            .peers()
            .await
            .expect("peers")
            .iter()
            .any(|p| p.peer == id && p.nick.is_some())
        {
            return;
        }
        self.wait(|e| matches!(e, Event::PeerNick { peer, .. } if *peer == id))
            .await;
    }

    /// Waits until this node knows `n` other members of `room`.
    pub async fn wait_members(&self, room: &str, n: usize) {
        eventually(&format!("{n} members of {room}"), || async {
            self.node
                .rooms()
                .await
                .expect("rooms")
                .iter()
                .any(|r| r.room == room && r.members == n)
        })
        .await;
    }

    pub async fn stop(self) {
        self.node.shutdown().await;
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("node stops")
            .expect("task ends");
    }
}

/// Waits for the first event matching `pred`, failing the test after [`WAIT`].
pub async fn wait_for(events: &mut Events, mut pred: impl FnMut(&Event) -> bool) -> Event {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("node stopped while waiting"),
            }
        }
    })
    .await;
    found.expect("event did not arrive in time")
}

/// Polls `check` until it is true, failing after [`WAIT`]. For state that
/// has no event of its own (e.g. a peer list).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn text_of(e: &Event) -> Option<&str> {
    match e {
        Event::Message { text, .. } | Event::Direct { text, .. } => Some(text),
        _ => None,
    }
}

/// A bare libp2p swarm over TCP (Noise + Yamux) with `behaviour`, to play a
/// peer that p2p-chat would never be.
pub fn tcp_swarm<B: libp2p::swarm::NetworkBehaviour>(
    key: libp2p::identity::Keypair,
    behaviour: impl FnOnce(&libp2p::identity::Keypair) -> B,
) -> libp2p::Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

impl TestNode {
    /// The texts of a room's history, oldest first.
    pub async fn texts(&self, room: &str, limit: usize) -> Vec<String> {
        let history = self.node.history(room, limit, None).await.expect("history");
        history.into_iter().map(|m| m.text).collect()
    }
}

/// The test config of a node with its data (key, history) in `dir`.
pub fn persistent(dir: &std::path::Path, nick: &str) -> Config {
    let mut cfg = Config::for_tests();
    cfg.ephemeral = false;
    cfg.data_dir = Some(dir.to_path_buf());
    cfg.nick = Some(nick.into());
    cfg
}
