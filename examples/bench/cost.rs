//! What a node costs as a process: the real `p2p-chat` binary beside a bare
//! libp2p peer run as a process of this harness (`--bare-node`). Memory and
//! CPU time come from /proc; the relay load comes from two bare peers in
//! this process that reach each other only through the middle process.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, anyhow, bail};
use libp2p::{Multiaddr, PeerId};
use p2p_chat::protocol::{Envelope, topic_for};
use std::process::{Child, Command};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use crate::{
    bare::{self, Bare},
    load::{Arrivals, Link, SendFn, text},
    pairs::drain_sink,
};

/// The room the binary joins at start, and so the relay's topic.
const ROOM: &str = p2p_chat::config::DEFAULT_ROOM;
/// How long a process may take to print its listening line.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Which program a cost figure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Program {
    /// The `p2p-chat` binary.
    Ours,
    /// This harness as `--bare-node`.
    Bare,
}

/// A running process that printed its listening address.
pub(crate) struct Proc {
    child: Child,
    pub(crate) pid: u32,
    pub(crate) addr: Multiaddr,
    /// From spawn to its first listening line on stdout.
    pub(crate) start: Duration,
    /// From spawn to the first `200` from `/health` (ours only).
    pub(crate) health: Option<Duration>,
    /// Our node's data dir, removed with the process.
    _data: Option<tempfile::TempDir>,
}

/// The `p2p-chat` binary of this build's profile. Build it first, with
/// the harness's features (`cargo build [--release] --bin p2p-chat
/// --example bench`): a cargo build started from here would see the
/// environment `cargo run` sets, rebuild, and replace this very executable
/// while it runs.
pub(crate) fn our_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/bench -> target/<profile>/p2p-chat
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("p2p-chat"))
        .ok_or_else(|| anyhow!("cannot place {}", exe.display()))?;
    if !bin.exists() {
        let profile = if cfg!(debug_assertions) {
            ""
        } else {
            " --release"
        };
        bail!(
            "{} is missing: run cargo build{profile} --bin p2p-chat --example bench",
            bin.display()
        );
    }
    Ok(bin)
}

impl Proc {
    /// Starts `program` listening on 127.0.0.1 TCP and waits for its
    /// listening line (and, for ours, for `/health` to answer 200). Ours
    /// runs as a user would: durable history in a data dir, the HTTP API on.
    pub(crate) async fn start(program: Program, bin: &Path) -> anyhow::Result<Proc> {
        let (mut data, mut http) = (None, None);
        let mut cmd = match program {
            Program::Ours => {
                let dir = tempfile::tempdir()?;
                let port = std::net::TcpListener::bind("127.0.0.1:0")?
                    .local_addr()?
                    .port();
                let mut c = Command::new(bin);
                c.args(["--no-mdns", "--headless", "--json"])
                    .arg("--data-dir")
                    .arg(dir.path())
                    .args(["--http", &format!("127.0.0.1:{port}")])
                    .args(["--listen", "/ip4/127.0.0.1/tcp/0"]);
                (data, http) = (Some(dir), Some(port));
                c
            }
            Program::Bare => {
                let mut c = Command::new(std::env::current_exe()?);
                c.arg("--bare-node");
                c
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env_remove("RUST_LOG");
        let t = Instant::now();
        let mut child = cmd.spawn().context("spawning")?;
        let health = http.map(|port| health_ok(port, t));
        let pid = child.id();
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = oneshot::channel();
        // A reader thread: hands over the first listening address, then
        // keeps reading so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v["event"] == "listening"
                    && let (Some(a), Some(tx)) = (v["address"].as_str(), tx.take())
                {
                    let _ = tx.send((Instant::now(), a.to_owned()));
                }
            }
        });
        let mut proc = Proc {
            child,
            pid,
            addr: Multiaddr::empty(),
            start: Duration::ZERO,
            health: None,
            _data: data,
        };
        match tokio::time::timeout(START_LIMIT, rx).await {
            Ok(Ok((at, addr))) => {
                proc.addr = addr.parse()?;
                proc.start = at.saturating_duration_since(t);
                if let Some(health) = health {
                    proc.health = Some(health.await??);
                }
                Ok(proc)
            }
            _ => {
                proc.stop().await;
                bail!("no listening line on stdout within {START_LIMIT:?}")
            }
        }
    }

    /// Resident set size, MiB.
    pub(crate) fn rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS"))?;
        Ok(kib / 1024.0)
    }

    /// User plus system CPU time so far, seconds.
    pub(crate) fn cpu_s(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .ok_or_else(|| anyhow!("bad stat"))?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        // Fields 14 and 15 of stat; the first after ')' is field 3.
        let ticks = |i: usize| -> anyhow::Result<f64> {
            Ok(fields
                .get(i)
                .ok_or_else(|| anyhow!("short stat"))?
                .parse()?)
        };
        Ok((ticks(11)? + ticks(12)?) / clock_ticks())
    }

    /// Kills and reaps the process.
    pub(crate) async fn stop(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `GET /health` on 127.0.0.1:`port` every millisecond until it
/// answers 200; the time since `t`. On an OS thread started at once, not
/// a task of the harness's runtime, whose workers may be busy when the
/// process starts: the figure is the node's, not the harness's.
fn health_ok(port: u16, t: Instant) -> oneshot::Receiver<anyhow::Result<Duration>> {
    use std::io::{Read, Write};
    let t = t.into_std();
    let poll = move || -> anyhow::Result<Duration> {
        while t.elapsed() < START_LIMIT {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                s.set_read_timeout(Some(Duration::from_secs(1)))?;
                s.write_all(
                    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                )?;
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && head.ends_with(b"200") {
                    return Ok(t.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        bail!("/health did not answer 200 within {START_LIMIT:?}")
    };
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(poll());
    });
    rx
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A relay through `middle`: bare peer `a` publishes our envelopes on the
/// room's topic, bare peer `b` receives them; neither knows the other. The
/// ends speak the middle's wire form (`program`).
pub(crate) struct Relay {
    pub(crate) link: Link,
    ends: Vec<bare::Started>,
}

impl Relay {
    pub(crate) async fn through(
        middle: &Multiaddr,
        program: Program,
        cap: usize,
    ) -> anyhow::Result<Relay> {
        let topic = topic_for(ROOM);
        let opts = bare::Options {
            anonymous: program == Program::Ours,
            ..Default::default()
        };
        let (a_sink, _a_rx) = mpsc::channel(1);
        let a = Bare::start(opts, topic.clone(), a_sink).await?;
        let (b_sink, b_rx) = mpsc::channel(4096);
        let b = Bare::start(opts, topic, b_sink).await?;
        let arrivals = Arrivals::new(cap);
        drain_sink(b_rx, arrivals.clone());
        a.bare.dial(middle.clone()).await?;
        b.bare.dial(middle.clone()).await?;
        let (sender, from): (Bare, PeerId) = (a.bare.clone(), a.bare.peer_id);
        let (key, topic_name) = (a.bare.key.clone(), topic_for(ROOM).hash().into_string());
        let send: SendFn = Box::new(move |seq| {
            let sender = sender.clone();
            let mut env = Envelope::text(&from, ROOM, "bench", &text(seq));
            env.sign(&key, &topic_name);
            let env = env.encode();
            Box::pin(async move { sender.publish(env).await })
        });
        Ok(Relay {
            link: Link {
                send,
                arrivals,
                next: 0,
            },
            ends: vec![a, b],
        })
    }

    pub(crate) fn stop(self) {
        for e in self.ends {
            e.task.abort();
        }
    }
}

/// Runs this harness as a bare peer process: listens, prints the listening
/// line as the node's `--json` does, relays the chat room's topic.
pub(crate) async fn bare_node() -> anyhow::Result<()> {
    let topic = topic_for(ROOM);
    // The node's binary heartbeat (first after 100 ms), so both middles
    // graft their neighbours equally soon.
    let heartbeat = Duration::from_millis(p2p_chat::config::DEFAULT_HEARTBEAT_MS);
    let opts = bare::Options {
        heartbeat: Some((heartbeat, Duration::from_millis(100))),
        ..Default::default()
    };
    let (sink, mut rx) = mpsc::channel(64);
    let started = Bare::start(opts, topic, sink).await?;
    println!(
        "{}",
        serde_json::json!({"event": "listening", "address": started.bare.addr.to_string()})
    );
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    // Until killed, or an hour at most.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}
