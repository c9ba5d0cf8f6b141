//! What an acknowledgement costs. `Node::publish` answers once the history
//! store has committed the message, so a node with a data dir pays for a
//! commit to disk (one per group: what queues during a commit forms the
//! next one). Publishes with 1, 4 and 32 in flight, on a node with a data
//! dir on the real disk beside an ephemeral node (store in memory); and
//! HTTP POSTs from 1 and 4 keep-alive clients beside `Node::publish` with
//! as many in flight on the same node. Reported, not bounded.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, bail};
use p2p_chat::{Config, config::DEFAULT_ROOM, http::Server, node::Node};
use serde_json::json;
use tokio::{task::JoinHandle, time::Instant};

use crate::{
    Plan,
    load::{RoundTrip, round_trips, text},
    pairs::start_node,
    report::{Figure, percentile},
};

/// How long a node waits to have a peer of the room.
const WARM: Duration = Duration::from_secs(20);

/// A node that publishes (durable or not) and a peer of its room.
struct Pair {
    a: Node,
    b: Node,
    tasks: Vec<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Pair {
    async fn start(durable: bool) -> anyhow::Result<Pair> {
        let mut cfg = Config::for_tests();
        cfg.heartbeat_ms = p2p_chat::config::DEFAULT_HEARTBEAT_MS;
        let dir = if durable {
            // On the disk the build is on, not a tmpfs.
            let parent = crate::target_dir().join("bench");
            std::fs::create_dir_all(&parent)?;
            let dir = tempfile::tempdir_in(parent)?;
            cfg.ephemeral = false;
            cfg.data_dir = Some(dir.path().to_path_buf());
            Some(dir)
        } else {
            None
        };
        cfg.nick = Some("a".into());
        let (a, addr, ta) = start_node(&cfg).await?;
        let mut cfg = Config::for_tests();
        cfg.nick = Some("b".into());
        cfg.dial = vec![addr.parse()?];
        let (b, mut events, tb) = Node::spawn(&cfg).await?;
        // Until a publish goes out, not into the queue for want of a peer.
        let deadline = Instant::now() + WARM;
        loop {
            if !a.publish(DEFAULT_ROOM, "warm-up").await?.pending {
                break;
            }
            if Instant::now() > deadline {
                bail!("no peer of the room within {WARM:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        while events.try_recv().is_ok() {}
        drop(events);
        Ok(Pair {
            a,
            b,
            tasks: vec![ta, tb],
            _dir: dir,
        })
    }

    async fn stop(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// Round-trip time limit of one run.
const LIMIT: Duration = Duration::from_secs(300);

/// `n` sends by `flight` concurrent senders: messages per second and each
/// acknowledgement's time, ms.
async fn run(send: &RoundTrip, n: usize, flight: usize) -> anyhow::Result<(f64, Vec<f64>)> {
    let start = Instant::now();
    let ms = round_trips(&vec![send.clone(); flight], n, LIMIT).await?;
    Ok((n as f64 / start.elapsed().as_secs_f64(), ms))
}

fn publisher(node: &Node) -> RoundTrip {
    let node = node.clone();
    Arc::new(move |seq| {
        let node = node.clone();
        Box::pin(async move {
            let sent = node.publish(DEFAULT_ROOM, &text(seq)).await?;
            if sent.pending {
                bail!("message {} was queued: the peer left", sent.id);
            }
            Ok(())
        })
    })
}

fn poster(url: String) -> RoundTrip {
    let client = reqwest::Client::new();
    Arc::new(move |seq| {
        let (client, url) = (client.clone(), url.clone());
        Box::pin(async move {
            let body = json!({ "text": text(seq) }).to_string();
            let answer = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?;
            if answer.status() != 202 {
                bail!("POST answered {}", answer.status());
            }
            Ok(())
        })
    })
}

/// Per-repetition rate, p50 and p99 of one system at one concurrency.
#[derive(Default)]
struct Acc {
    rate: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
}

impl Acc {
    fn add(&mut self, (rate, ms): (f64, Vec<f64>)) {
        self.rate.push(rate);
        self.p50.push(percentile(&ms, 50.0));
        self.p99.push(percentile(&ms, 99.0));
    }

    fn figures(&self, what: &str, params: serde_json::Value, base: (&str, &Acc)) -> Vec<Figure> {
        let (name, b) = base;
        [
            ("rate", "msg/s", &self.rate, &b.rate),
            ("p50", "ms", &self.p50, &b.p50),
            ("p99", "ms", &self.p99, &b.p99),
        ]
        .into_iter()
        .filter_map(|(k, unit, ours, theirs)| {
            Figure::new(&format!("{what}.{k}"), params.clone(), unit, ours)
                .map(|f| f.against(name, theirs))
        })
        .collect()
    }
}

/// Publishes on a durable and an ephemeral node, and HTTP POSTs.
pub(crate) async fn run_all(plan: &Plan) -> anyhow::Result<Vec<Figure>> {
    let n = plan.ack_n;
    let durable = Pair::start(true).await.context("durable pair")?;
    let ephemeral = Pair::start(false).await.context("ephemeral pair")?;
    let server = Server::bind("127.0.0.1:0".parse()?, durable.a.clone(), None, Vec::new())
        .await
        .context("HTTP sidecar")?;
    let url = format!(
        "http://{}/rooms/{DEFAULT_ROOM}/messages",
        server.local_addr()?
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.run(async {
        let _ = stop_rx.await;
    }));
    let (on_disk, in_memory, post) = (publisher(&durable.a), publisher(&ephemeral.a), poster(url));
    const FLIGHTS: [usize; 3] = [1, 4, 32];
    const CLIENTS: [usize; 2] = [1, 4];
    let mut disk: Vec<Acc> = FLIGHTS.iter().map(|_| Acc::default()).collect();
    let mut memory: Vec<Acc> = FLIGHTS.iter().map(|_| Acc::default()).collect();
    let mut http: Vec<Acc> = CLIENTS.iter().map(|_| Acc::default()).collect();
    for _ in 0..plan.reps {
        for (i, &k) in FLIGHTS.iter().enumerate() {
            disk[i].add(run(&on_disk, n, k).await.context("durable publishes")?);
            memory[i].add(run(&in_memory, n, k).await.context("ephemeral publishes")?);
        }
        for (i, &c) in CLIENTS.iter().enumerate() {
            http[i].add(run(&post, n, c).await.context("HTTP POSTs")?);
        }
    }
    let _ = stop_tx.send(());
    let _ = served.await;
    let store_error = durable.a.status().await?.store_error;
    durable.stop().await;
    ephemeral.stop().await;
    if let Some(e) = store_error {
        bail!("the durable node's store failed: {e}");
    }
    let mut figures = Vec::new();
    for (i, &k) in FLIGHTS.iter().enumerate() {
        let params = json!({"store": "data dir", "in_flight": k, "msgs": n, "text_bytes": 256});
        figures.extend(disk[i].figures("ack.publish", params, ("ephemeral node", &memory[i])));
    }
    for (i, &c) in CLIENTS.iter().enumerate() {
        let Some(base) = FLIGHTS.iter().position(|&k| k == c) else {
            continue;
        };
        let params = json!({"store": "data dir", "clients": c, "msgs": n, "text_bytes": 256});
        figures.extend(http[i].figures(
            "ack.http_post",
            params,
            ("Node::publish, same in flight", &disk[base]),
        ));
    }
    Ok(figures)
}
