//! History sync: a fresh node joins a room that already holds N messages and
//! catches up. Figures: seconds until it holds all N, beside the time to
//! copy the same bytes over a raw TCP socket (the floor); and bytes it
//! received over the payload (the envelopes' encoded size), beside 1.0.
//! Also the room key derivation (Argon2id), beside one SHA-256 of the same
//! passphrase (what a derivation without a work factor would cost).

use std::time::{Duration, Instant};

use p2p_chat::{Config, Node, protocol::Envelope};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Plan, report::Figure};

/// Inbound bytes the node's transports counted so far.
fn inbound_bytes(node: &Node) -> anyhow::Result<f64> {
    let text = node.encode_metrics()?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("libp2p_bandwidth") && l.to_lowercase().contains("inbound"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

fn cfg(nick: &str) -> Config {
    let mut cfg = Config::for_tests();
    cfg.nick = Some(nick.into());
    cfg.history_ring = 1000;
    cfg
}

async fn listening(events: &mut p2p_chat::node::Events) -> anyhow::Result<String> {
    loop {
        if let p2p_chat::Event::Listening { address } = events.recv().await? {
            return Ok(address);
        }
    }
}

/// Time to push `bytes` through a loopback TCP socket: the floor.
async fn raw_copy(bytes: usize) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < bytes {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        anyhow::Ok(())
    });
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0;
    while sent < bytes {
        let n = chunk.len().min(bytes - sent);
        s.write_all(&chunk[..n]).await?;
        sent += n;
    }
    reader.await??;
    Ok(t.elapsed().as_secs_f64())
}

fn key_derivation(reps: usize) -> Option<Figure> {
    use sha2::Digest;
    let pass = "correct horse battery staple";
    let (mut ours, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(3) {
        let t = Instant::now();
        let _ = p2p_chat::crypto::RoomKey::derive(pass, "lobby").ok()?;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        std::hint::black_box(sha2::Sha256::digest(pass.as_bytes()));
        plain.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let params = json!({"algorithm": "argon2id", "t": 3, "m_kib": 65536, "p": 4});
    Some(Figure::new("crypto.key_derivation", params, "ms", &ours)?.against("one SHA-256", &plain))
}

/// Publishes to the lobby. A message refused live because the witness's
/// send queue is full is stored all the same (`Error::Publish`): the source
/// holds it; wait a little so the witness catches up.
async fn publish_paced(node: &Node, text: &str) -> anyhow::Result<()> {
    match node.publish("lobby", text).await {
        Err(p2p_chat::node::Error::Publish { .. }) => {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(())
        }
        result => result.map(|_| ()).map_err(Into::into),
    }
}

pub(crate) async fn run(plan: &Plan) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let reps = plan.reps;
    figures.extend(tokio::task::spawn_blocking(move || key_derivation(reps)).await?);
    for &n in &plan.sync_sizes {
        // A source holding n messages, and a witness so they go out live.
        let (source, mut source_events, _) = Node::spawn(&cfg("source")).await?;
        let source_addr = listening(&mut source_events).await?;
        let mut wcfg = cfg("witness");
        wcfg.dial = vec![source_addr.parse()?];
        let (_witness, _w, _) = Node::spawn(&wcfg).await?;
        let text = "x".repeat(256);
        let deadline = Instant::now() + Duration::from_secs(30);
        while source.rooms().await?.iter().all(|r| r.members == 0) {
            anyhow::ensure!(Instant::now() < deadline, "the witness never joined");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..n {
            publish_paced(&source, &text).await?;
        }
        // The envelopes as stored: every one has the same shape and size.
        let mut sample = Envelope::text(&source.peer_id(), "lobby", "source", &text);
        sample.sign(
            &libp2p::identity::Keypair::generate_ed25519(),
            "p2p-chat/room/00000000000000000000000000000000",
        );
        let payload = (sample.encode().len() * n) as f64;
        let (mut secs, mut ratio, mut floor) = (Vec::new(), Vec::new(), Vec::new());
        let mut live = 0;
        for _ in 0..plan.sync_reps {
            let mut fcfg = cfg("fresh");
            fcfg.dial = vec![source_addr.parse()?];
            let t = Instant::now();
            let (fresh, _e, task) = Node::spawn(&fcfg).await?;
            let deadline = t + Duration::from_secs(300);
            // Caught up once every message is shown (`received`), by sync
            // (`recovered`) or live: the witness may still be relaying the
            // source's backlog when the fresh node joins its mesh.
            loop {
                let stats = fresh.status().await?.stats;
                let by_sync = stats.recovered;
                let arrived = stats.received.saturating_sub(by_sync);
                if stats.received >= n as u64 {
                    live += arrived;
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the fresh node never caught up: {by_sync} of {n} by sync, {arrived} live"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            secs.push(t.elapsed().as_secs_f64());
            ratio.push(inbound_bytes(&fresh)? / payload);
            fresh.shutdown().await;
            let _ = task.await;
            floor.push(raw_copy(payload as usize).await?);
        }
        let params = json!({"messages": n, "text_bytes": 256, "payload_bytes": payload, "arrived_live": live});
        if let Some(f) = Figure::new("history.sync.catch_up", params.clone(), "s", &secs) {
            figures.push(f.against("raw TCP copy of the payload", &floor));
        }
        if let Some(f) = Figure::new("history.sync.bytes_per_payload_byte", params, "x", &ratio) {
            figures.push(f.against("payload", &vec![1.0; ratio.len()]));
        }
        source.shutdown().await;
    }
    Ok(figures)
}
