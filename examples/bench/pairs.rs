//! Two peers, one hop: ours (two `Node`s started as the binary starts them)
//! and the bare libp2p pair, as links for room messages and as round-trip
//! functions for direct messages.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, bail};
use libp2p::{Multiaddr, gossipsub::IdentTopic};
use p2p_chat::{Config, Event, Node, node::Events};
use tokio::{
    sync::{broadcast, mpsc},
    task::JoinHandle,
};

use crate::{
    bare::{self, Bare},
    load::{Arrivals, Link, RoundTrip, SendFn, text},
};

/// How long setting up a pair may take.
const SETUP: Duration = Duration::from_secs(20);
/// Capacity of a bare receiver's sink (as the node's event broadcast).
const SINK_CAP: usize = 4096;
/// The passphrase of the encrypted room.
const PASSPHRASE: &str = "correct horse battery staple";

/// Waits for the first event `pick` maps to a value.
pub(crate) async fn wait_event<T>(
    events: &mut Events,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(SETUP, async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(v) = pick(&e) {
                        return Ok(v);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => bail!("node stopped"),
            }
        }
    })
    .await
    .context("event did not come in time")?
}

pub(crate) fn listen_addr(quic: bool) -> anyhow::Result<Multiaddr> {
    Ok(if quic {
        "/ip4/127.0.0.1/udp/0/quic-v1".parse()?
    } else {
        "/ip4/127.0.0.1/tcp/0".parse()?
    })
}

/// Starts a node from `cfg`; returns it with its full listen address.
pub(crate) async fn start_node(cfg: &Config) -> anyhow::Result<(Node, String, JoinHandle<()>)> {
    let (node, mut events, task) = Node::spawn(cfg).await?;
    let addr = wait_event(&mut events, |e| match e {
        Event::Listening { address } => Some(address.clone()),
        _ => None,
    })
    .await?;
    Ok((node, addr, task))
}

/// Arrivals at `b` by room: one subscriber task records them all, as the
/// bare receiver has one sink, so that every event wakes one task.
type ByRoom = Arc<Mutex<HashMap<String, Arc<Arrivals>>>>;

/// Our pair: `a` publishes and answers, `b` receives and asks.
pub(crate) struct Ours {
    pub(crate) a: Node,
    pub(crate) b: Node,
    by_room: ByRoom,
    recorder: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
}

/// Records every room message `events` brings in its room's arrivals.
fn record_by_room(mut events: Events, by_room: ByRoom) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Event::Message { room, text, .. }) => {
                    let arrivals = by_room.lock().ok().and_then(|m| m.get(&room).cloned());
                    if let Some(arrivals) = arrivals {
                        arrivals.record(text.as_bytes());
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}

impl Ours {
    pub(crate) async fn start(quic: bool) -> anyhow::Result<Ours> {
        let mut cfg = Config::for_tests();
        // The heartbeat the node runs with, not the tests' fast one: the
        // bare pair has libp2p's default too.
        cfg.heartbeat_ms = p2p_chat::config::DEFAULT_HEARTBEAT_MS;
        cfg.listen = vec![listen_addr(quic)?];
        cfg.nick = Some("a".into());
        let (a, addr, ta) = start_node(&cfg).await?;
        cfg.nick = Some("b".into());
        cfg.dial = vec![addr.parse()?];
        let (b, mut b_events, tb) = Node::spawn(&cfg).await?;
        let a_id = a.peer_id().to_string();
        let connected = b.peers().await?.iter().any(|p| p.peer == a_id);
        if !connected {
            wait_event(&mut b_events, |e| match e {
                Event::PeerConnected { peer } if *peer == a_id => Some(()),
                _ => None,
            })
            .await?;
        }
        let by_room = ByRoom::default();
        let recorder = record_by_room(b.subscribe(), by_room.clone());
        Ok(Ours {
            a,
            b,
            by_room,
            recorder,
            tasks: vec![ta, tb],
        })
    }

    /// A room link from `a` to `b`: the plain lobby, or an encrypted room
    /// both join with one passphrase.
    pub(crate) async fn link(&self, sealed: bool, cap: usize) -> anyhow::Result<Link> {
        let room = if sealed {
            self.a.join_encrypted("sealed", PASSPHRASE).await?;
            self.b.join_encrypted("sealed", PASSPHRASE).await?;
            "sealed"
        } else {
            p2p_chat::config::DEFAULT_ROOM
        };
        let arrivals = Arrivals::new(cap);
        self.by_room
            .lock()
            .map_err(|_| anyhow::anyhow!("arrivals lock poisoned"))?
            .insert(room.to_owned(), arrivals.clone());
        let node = self.a.clone();
        let send: SendFn = Box::new(move |seq| {
            let node = node.clone();
            Box::pin(async move {
                node.publish(room, &text(seq)).await?;
                Ok(())
            })
        });
        Ok(Link {
            send,
            arrivals,
            next: 0,
        })
    }

    /// `workers` functions that each send `a` a direct message from `b`
    /// and wait for its receipt.
    pub(crate) fn round_trips(&self, workers: usize) -> Vec<RoundTrip> {
        let to = self.a.peer_id().to_string();
        (0..workers)
            .map(|_| {
                let (node, to) = (self.b.clone(), to.clone());
                let trip: RoundTrip = Arc::new(move |seq| {
                    let (node, to) = (node.clone(), to.clone());
                    Box::pin(async move {
                        node.send_direct(&to, &text(seq)).await?;
                        Ok(())
                    })
                });
                trip
            })
            .collect()
    }

    pub(crate) async fn stop(self) {
        self.recorder.abort();
        self.a.shutdown().await;
        self.b.shutdown().await;
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// Records what arrives in a bare peer's sink.
pub(crate) fn drain_sink(mut rx: mpsc::Receiver<Vec<u8>>, rec: Arc<Arrivals>) {
    tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            rec.record(&data);
        }
    });
}

/// The bare pair: `a` publishes and answers, `b` receives and asks.
pub(crate) struct BarePair {
    a: bare::Started,
    b: bare::Started,
    arrivals: Arc<Arrivals>,
}

impl BarePair {
    pub(crate) async fn start(quic: bool, cap: usize) -> anyhow::Result<BarePair> {
        let topic = IdentTopic::new("bench");
        let opts = bare::Options {
            quic,
            ..Default::default()
        };
        let (a_sink, _a_rx) = mpsc::channel(1);
        let a = Bare::start(opts, topic.clone(), a_sink).await?;
        let (b_sink, b_rx) = mpsc::channel(SINK_CAP);
        let b = Bare::start(opts, topic, b_sink).await?;
        let arrivals = Arrivals::new(cap);
        drain_sink(b_rx, arrivals.clone());
        b.bare.dial(a.bare.addr.clone()).await?;
        Ok(BarePair { a, b, arrivals })
    }

    pub(crate) fn link(&self) -> Link {
        let a = self.a.bare.clone();
        let send: SendFn = Box::new(move |seq| {
            let a = a.clone();
            Box::pin(async move { a.publish(text(seq).into_bytes()).await })
        });
        Link {
            send,
            arrivals: self.arrivals.clone(),
            next: 0,
        }
    }

    pub(crate) fn round_trips(&self, workers: usize) -> Vec<RoundTrip> {
        let to = self.a.bare.peer_id;
        (0..workers)
            .map(|_| {
                let b = self.b.bare.clone();
                let trip: RoundTrip = Arc::new(move |seq| {
                    let b = b.clone();
                    Box::pin(async move { b.request(to, text(seq)).await })
                });
                trip
            })
            .collect()
    }

    pub(crate) fn stop(self) {
        self.a.task.abort();
        self.b.task.abort();
    }
}
