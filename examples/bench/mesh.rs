//! Propagation through a mesh of N peers in this process: ours joined
//! through one bootstrap peer (the node finds the rest itself), the bare
//! baseline wired as a random graph (bare libp2p has no discovery). One
//! message at a time from a rotating publisher; the time until the last
//! other peer has it.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, bail};
use libp2p::gossipsub::IdentTopic;
use p2p_chat::{Config, Event, Node, config::DEFAULT_ROOM};
use tokio::{
    sync::{Notify, broadcast, mpsc},
    task::JoinHandle,
    time::Instant,
};

use crate::{
    bare::{self, Bare},
    load::{SendFn, seq_of, text},
    pairs::start_node,
};

/// Gossipsub heartbeat of every mesh peer, ours (`Config::for_tests`) and
/// bare alike, with the initial delay.
const HEARTBEAT: (Duration, Duration) = (Duration::from_millis(200), Duration::from_millis(100));
/// How many earlier peers each bare peer dials.
const BARE_DEGREE: usize = 3;
/// Capacity of a bare peer's sink.
const SINK_CAP: usize = 1024;
/// The connection count is steady once unchanged this long...
const SETTLE_QUIET: Duration = Duration::from_secs(4);
/// ...but never before this long: past the node's 10 s grace for new
/// connections (`src/node/trim.rs`), so trimming has had its turn...
const SETTLE_MIN: Duration = Duration::from_secs(12);
/// ...and, at the latest, after this long.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct ReachState {
    /// Per message: how many peers have it, and when the last one got it.
    got: HashMap<usize, (usize, Instant)>,
    /// Per peer: messages it has shown.
    seen: Vec<HashSet<usize>>,
    /// Messages a peer showed more than once.
    repeats: usize,
}

/// Who has which message, and when.
pub(crate) struct Reach {
    state: Mutex<ReachState>,
    notify: Notify,
}

impl Reach {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Reach {
            state: Mutex::new(ReachState {
                seen: vec![HashSet::new(); n],
                ..Default::default()
            }),
            notify: Notify::new(),
        })
    }

    fn record(&self, peer: usize, data: &[u8]) {
        let Some(seq) = seq_of(data) else { return };
        let now = Instant::now();
        let Ok(mut s) = self.state.lock() else { return };
        if !s.seen.get_mut(peer).is_some_and(|set| set.insert(seq)) {
            s.repeats += 1;
            return;
        }
        let entry = s.got.entry(seq).or_insert((0, now));
        *entry = (entry.0 + 1, now);
        self.notify.notify_one();
    }

    fn reached(&self, seq: usize) -> (usize, Option<Instant>) {
        match self
            .state
            .lock()
            .ok()
            .and_then(|s| s.got.get(&seq).copied())
        {
            Some((count, last)) => (count, Some(last)),
            None => (0, None),
        }
    }

    /// Messages some peer showed twice (should be none).
    pub(crate) fn repeats(&self) -> usize {
        self.state.lock().map(|s| s.repeats).unwrap_or(0)
    }

    /// When the `target`-th peer got `seq`; None on timeout.
    async fn wait(&self, seq: usize, target: usize, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            if let (count, Some(last)) = self.reached(seq)
                && count >= target
            {
                return Some(last);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero()
                || tokio::time::timeout(left, self.notify.notified())
                    .await
                    .is_err()
            {
                return None;
            }
        }
    }
}

/// A formed mesh, ready to carry messages.
pub(crate) struct Mesh {
    senders: Vec<SendFn>,
    pub(crate) reach: Arc<Reach>,
    next: usize,
    /// Seconds from the first start until every peer had a mesh peer.
    pub(crate) formed_s: f64,
}

/// Times to reach every other peer, and how many messages never did.
pub(crate) struct Propagation {
    pub(crate) ms: Vec<f64>,
    pub(crate) unreached: usize,
}

impl Mesh {
    /// `msgs` messages, one at a time, each from the next peer in turn.
    pub(crate) async fn run(
        &mut self,
        msgs: usize,
        limit: Duration,
    ) -> anyhow::Result<Propagation> {
        let n = self.senders.len();
        let mut out = Propagation {
            ms: Vec::with_capacity(msgs),
            unreached: 0,
        };
        for k in 0..msgs {
            let seq = self.next;
            self.next += 1;
            let t = Instant::now();
            (self.senders[k % n])(seq).await.context("publishing")?;
            match self.reach.wait(seq, n - 1, limit).await {
                Some(last) => out
                    .ms
                    .push(last.saturating_duration_since(t).as_secs_f64() * 1e3),
                None => out.unreached += 1,
            }
        }
        Ok(out)
    }

    /// Sends until one message reaches every peer.
    pub(crate) async fn warm_up(&mut self, tries: usize) -> anyhow::Result<()> {
        let mut best = 0;
        for _ in 0..tries {
            let seq = self.next;
            if self.run(1, Duration::from_secs(2)).await?.unreached == 0 {
                return Ok(());
            }
            best = best.max(self.reach.reached(seq).0);
        }
        let others = self.senders.len() - 1;
        bail!("no message reached every peer in {tries} tries (at best {best} of {others})")
    }
}

/// Waits until `check` says every peer has a mesh peer.
async fn formed<F, Fut>(n: usize, start: Instant, mut check: F) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let limit = Duration::from_secs(30) + Duration::from_millis(300) * n as u32;
    while !check().await? {
        if start.elapsed() > limit {
            bail!("the mesh of {n} did not form within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Our nodes, all started through `Node::spawn`.
pub(crate) struct OursMesh {
    nodes: Vec<Node>,
    tasks: Vec<JoinHandle<()>>,
}

impl OursMesh {
    /// `n` nodes; node 0 is the bootstrap peer every other is given.
    pub(crate) async fn start(n: usize) -> anyhow::Result<(OursMesh, Mesh)> {
        let start = Instant::now();
        let mut cfg = Config::for_tests();
        let (first, addr, task) = start_node(&cfg).await?;
        cfg.bootstrap = vec![addr.parse()?];
        let (mut nodes, mut tasks) = (vec![first], vec![task]);
        for i in 1..n {
            cfg.nick = Some(format!("n{i}"));
            let (node, _, task) = start_node(&cfg).await?;
            nodes.push(node);
            tasks.push(task);
        }
        let reach = Reach::new(n);
        for (i, node) in nodes.iter().enumerate() {
            let (mut events, rec) = (node.subscribe(), reach.clone());
            tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(Event::Message { text, .. }) => rec.record(i, text.as_bytes()),
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
        }
        let formed_s = formed(n, start, || async {
            for node in &nodes {
                let rooms = node.rooms().await?;
                if !rooms
                    .iter()
                    .any(|r| r.room == DEFAULT_ROOM && r.mesh_peers > 0)
                {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await?;
        let senders = nodes
            .iter()
            .map(|node| {
                let node = node.clone();
                let send: SendFn = Box::new(move |seq| {
                    let node = node.clone();
                    Box::pin(async move {
                        node.publish(DEFAULT_ROOM, &text(seq)).await?;
                        Ok(())
                    })
                });
                send
            })
            .collect();
        let mesh = Mesh {
            senders,
            reach,
            next: 0,
            formed_s,
        };
        Ok((OursMesh { nodes, tasks }, mesh))
    }

    /// Duplicates the nodes themselves counted (status counters), summed.
    pub(crate) async fn counted_duplicates(&self) -> anyhow::Result<u64> {
        let mut sum = 0;
        for node in &self.nodes {
            sum += node
                .status()
                .await?
                .stats
                .rejected
                .get("duplicate")
                .copied()
                .unwrap_or(0);
        }
        Ok(sum)
    }

    /// Connected peers per node: the mean and the largest.
    pub(crate) async fn degree(&self) -> anyhow::Result<(f64, f64)> {
        let mut counts = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            counts.push(node.peers().await?.len() as f64);
        }
        Ok(mean_max(&counts))
    }

    /// Waits for the steady state: discovery opens more connections than a
    /// node keeps, and the node closes the unused ones after a grace period.
    /// Settled once the connection count has not changed for
    /// [`SETTLE_QUIET`], and no sooner than [`SETTLE_MIN`] (at most
    /// [`SETTLE_LIMIT`]); returns the seconds waited.
    pub(crate) async fn settle(&self) -> anyhow::Result<f64> {
        let start = Instant::now();
        let (mut last, mut since) = (self.degree().await?, Instant::now());
        while (since.elapsed() < SETTLE_QUIET || start.elapsed() < SETTLE_MIN)
            && start.elapsed() < SETTLE_LIMIT
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.degree().await?;
            if now != last {
                (last, since) = (now, Instant::now());
            }
        }
        Ok(start.elapsed().as_secs_f64())
    }

    /// Gossip receptions on the wire, with and without duplicates, summed
    /// over every node (the node's own gossipsub metrics).
    pub(crate) fn receptions(&self) -> anyhow::Result<(f64, f64)> {
        let mut sum = (0.0, 0.0);
        for node in &self.nodes {
            let (all, unique) = bare::receptions_in(&node.encode_metrics()?);
            sum.0 += all;
            sum.1 += unique;
        }
        Ok(sum)
    }

    /// Dials attempted, summed over every node.
    pub(crate) fn dials(&self) -> anyhow::Result<f64> {
        let mut sum = 0.0;
        for node in &self.nodes {
            sum += bare::dials_in(&node.encode_metrics()?);
        }
        Ok(sum)
    }

    pub(crate) async fn stop(self) {
        for node in &self.nodes {
            node.shutdown().await;
        }
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// The bare baseline mesh, with gossipsub's metrics on.
pub(crate) struct BareMesh {
    peers: Vec<bare::Started>,
}

impl BareMesh {
    /// `n` bare peers; each dials up to [`BARE_DEGREE`] random earlier ones.
    pub(crate) async fn start(n: usize, seed: u64) -> anyhow::Result<(BareMesh, Mesh)> {
        let start = Instant::now();
        let topic = IdentTopic::new("bench-mesh");
        let opts = bare::Options {
            heartbeat: Some(HEARTBEAT),
            metrics: true,
            ..Default::default()
        };
        let reach = Reach::new(n);
        let mut peers: Vec<bare::Started> = Vec::with_capacity(n);
        let mut rng = seed | 1;
        for i in 0..n {
            let (sink, mut rx) = mpsc::channel::<Vec<u8>>(SINK_CAP);
            let rec = reach.clone();
            tokio::spawn(async move {
                while let Some(data) = rx.recv().await {
                    rec.record(i, &data);
                }
            });
            let peer = Bare::start(opts, topic.clone(), sink).await?;
            let mut chosen = HashSet::new();
            while chosen.len() < i.min(BARE_DEGREE) {
                // xorshift64: a fixed, seeded wiring.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                chosen.insert((rng % i as u64) as usize);
            }
            for j in chosen {
                peer.bare.dial(peers[j].bare.addr.clone()).await?;
            }
            peers.push(peer);
        }
        let handles: Vec<Bare> = peers.iter().map(|p| p.bare.clone()).collect();
        let formed_s = formed(n, start, || async {
            for b in &handles {
                if b.mesh_peers().await? == 0 {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await?;
        let senders = handles
            .into_iter()
            .map(|b| {
                let send: SendFn = Box::new(move |seq| {
                    let b = b.clone();
                    Box::pin(async move { b.publish(text(seq).into_bytes()).await })
                });
                send
            })
            .collect();
        let mesh = Mesh {
            senders,
            reach,
            next: 0,
            formed_s,
        };
        Ok((BareMesh { peers }, mesh))
    }

    /// Gossip receptions on the wire, with and without duplicates, summed
    /// over every peer.
    pub(crate) fn receptions(&self) -> anyhow::Result<(f64, f64)> {
        let mut sum = (0.0, 0.0);
        for p in &self.peers {
            if let Some(reg) = &p.registry {
                let (all, unique) = bare::receptions(reg)?;
                sum.0 += all;
                sum.1 += unique;
            }
        }
        Ok(sum)
    }

    /// Connected peers per peer: the mean and the largest.
    pub(crate) async fn degree(&self) -> anyhow::Result<(f64, f64)> {
        let mut counts = Vec::with_capacity(self.peers.len());
        for p in &self.peers {
            counts.push(p.bare.connected().await? as f64);
        }
        Ok(mean_max(&counts))
    }

    pub(crate) fn stop(self) {
        for p in self.peers {
            p.task.abort();
        }
    }
}

fn mean_max(v: &[f64]) -> (f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (mean, v.iter().copied().fold(0.0, f64::max))
}
