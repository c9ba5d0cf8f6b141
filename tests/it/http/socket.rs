//! The sidecar on real sockets: a real HTTP client, a client that never
//! finishes its request head, a graceful stop, and two nodes.

use std::{net::SocketAddr, time::Duration};

use axum::body::Bytes;
use futures::{Stream, StreamExt, stream::BoxStream};
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol, request_response, swarm::SwarmEvent};
use p2p_chat::{http::Server, protocol::DM_PROTOCOL};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use crate::support::{TestNode, WAIT};

/// Splits a Server-Sent Events body into the JSON of its `data:` lines.
pub struct SseReader {
    source: BoxStream<'static, Bytes>,
    buf: String,
}

impl SseReader {
    pub fn new(source: impl Stream<Item = Bytes> + Send + 'static) -> Self {
        SseReader {
            source: source.boxed(),
            buf: String::new(),
        }
    }

    /// The body of a real HTTP response.
    pub fn of(response: reqwest::Response) -> Self {
        SseReader::new(futures::stream::unfold(response, |mut r| async move {
            let chunk = r.chunk().await.expect("the stream reads")?;
            Some((chunk, r))
        }))
    }

    fn pop(&mut self) -> Option<(Option<String>, Value)> {
        while let Some(end) = self.buf.find("\n\n") {
            let frame: String = self.buf.drain(..end + 2).collect();
            let data: Vec<&str> = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            let id = frame
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .map(str::to_owned);
            if !data.is_empty() {
                let value = serde_json::from_str(&data.join("\n")).expect("data is JSON");
                return Some((id, value));
            }
        }
        None
    }

    /// Reads until an event matches `pred`, failing after [`WAIT`].
    pub async fn wait(&mut self, pred: impl FnMut(&Value) -> bool) -> Value {
        self.wait_with_id(pred).await.1
    }

    /// The next event, with its `id:` if it has one.
    pub async fn next_event(&mut self) -> (Option<String>, Value) {
        self.wait_with_id(|_| true).await
    }

    /// As [`SseReader::wait`], with the event's `id:`.
    pub async fn wait_with_id(
        &mut self,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> (Option<String>, Value) {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                while let Some((id, v)) = self.pop() {
                    if pred(&v) {
                        return (id, v);
                    }
                }
                let chunk = self.source.next().await.expect("the stream goes on");
                self.buf
                    .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
            }
        })
        .await;
        found.expect("event did not arrive in time")
    }

    /// Whether the stream ends (within [`WAIT`]).
    pub async fn ends(&mut self) -> bool {
        tokio::time::timeout(WAIT, async { while self.source.next().await.is_some() {} })
            .await
            .is_ok()
    }
}

/// A sidecar serving on 127.0.0.1, port 0, until `stop` is sent.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn serve(node: &TestNode, header_timeout: Duration) -> Running {
    serve_capped(node, header_timeout, p2p_chat::http::MAX_CONNECTIONS).await
}

async fn serve_capped(node: &TestNode, header_timeout: Duration, cap: usize) -> Running {
    let server = Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        node.node.clone(),
        None,
        Vec::new(),
    )
    .await
    .expect("binds")
    .with_header_read_timeout(header_timeout)
    .with_max_connections(cap);
    let addr = server.local_addr().expect("bound address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn real_socket_serves_requests_and_cuts_off_a_slow_header() {
    let a = TestNode::start_with("alice", &[]).await;
    let header_timeout = Duration::from_millis(500);
    let server = serve(&a, header_timeout).await;
    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{}/health", server.addr))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.expect("body"), r#"{"status":"UP"}"#);

    // A slowloris client: half a request head, then silence.
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .expect("write");
    // And one that connects and never sends a byte.
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    let started = tokio::time::Instant::now();
    let sent = tokio::time::timeout(WAIT, read_until_closed(&mut slow))
        .await
        .expect("the server closes a connection whose head never completes");
    assert!(started.elapsed() >= header_timeout - Duration::from_millis(50));
    assert!(!sent.contains("200 OK"), "{sent}");
    tokio::time::timeout(WAIT, read_until_closed(&mut idle))
        .await
        .expect("the server closes an idle connection");
    // The server still serves others.
    let health = client
        .get(format!("http://{}/health", server.addr))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn with_every_connection_held_open_the_probes_still_answer() {
    let a = TestNode::start_with("alice", &[]).await;
    // A cap of 16 (512 by default), and the real header timeout (10 s):
    // the held connections stay held.
    let cap = 16;
    let server = serve_capped(&a, p2p_chat::http::HEADER_READ_TIMEOUT, cap).await;
    let addr = server.addr;
    let mut held = Vec::new();
    for _ in 0..cap + 8 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .expect("write");
        held.push(s);
    }
    let raw = |path: &str| {
        let path = path.to_owned();
        async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let started = tokio::time::Instant::now();
            let answer = tokio::time::timeout(WAIT, read_until_closed(&mut s))
                .await
                .expect("answered, and the connection closed");
            (answer, started.elapsed())
        }
    };
    let (health, took) = raw("/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(took < Duration::from_secs(2), "/health took {took:?}");
    let (ready, _) = raw("/ready").await;
    assert!(ready.contains(r#""ready""#), "{ready}");
    let (status, _) = raw("/status").await;
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    assert!(status.contains("only /health and /ready"), "{status}");
    // A connection over the cap has 1 s for its head, not 10.
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\n")
        .await
        .expect("write");
    let started = tokio::time::Instant::now();
    tokio::time::timeout(WAIT, read_until_closed(&mut slow))
        .await
        .expect("closed");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(held);
}

#[tokio::test]
async fn graceful_stop_ends_event_streams_and_refuses_new_connections() {
    let a = TestNode::start_with("alice", &[]).await;
    let server = serve(&a, Duration::from_secs(10)).await;
    let events = reqwest::Client::new()
        .get(format!("http://{}/events", server.addr))
        .send()
        .await
        .expect("request");
    assert_eq!(events.status(), 200);
    let mut events = SseReader::of(events);
    server.stop.send(()).expect("server running");
    tokio::time::timeout(p2p_chat::http::GRACE + Duration::from_secs(1), server.task)
        .await
        .expect("the server stops within the grace period")
        .expect("task ends");
    assert!(events.ends().await, "the event stream ended");
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn graceful_stop_lets_a_request_in_flight_finish() {
    let mut silent = SilentPeer::start().await;
    let mut cfg = p2p_chat::Config::for_tests();
    cfg.dm_timeout = 1;
    cfg.dial = vec![silent.addr.clone()];
    let a = TestNode::start(cfg).await;
    crate::support::eventually("connected to the silent peer", || async {
        a.node.peers().await.expect("peers").len() == 1
    })
    .await;
    let server = serve(&a, Duration::from_secs(10)).await;
    let url = format!("http://{}/direct/{}", server.addr, silent.peer);
    let in_flight = tokio::spawn(
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(r#"{"text":"still there?"}"#)
            .send(),
    );
    // The request has reached the peer: it is in flight in the server.
    tokio::time::timeout(WAIT, async {
        while silent.requests.recv().await.expect("peer runs")["kind"] != "message" {}
    })
    .await
    .expect("the direct message left");
    server.stop.send(()).expect("server running");
    let answer = tokio::time::timeout(WAIT, in_flight)
        .await
        .expect("answered in time")
        .expect("task")
        .expect("answered, not cut off");
    assert_eq!(answer.status(), 504, "the request ran to its own end");
    tokio::time::timeout(p2p_chat::http::GRACE + Duration::from_secs(1), server.task)
        .await
        .expect("the server stops within the grace period")
        .expect("task ends");
}

#[tokio::test]
async fn room_message_posted_to_one_sidecar_appears_on_the_others_event_stream() {
    let (a, b) = super::pair().await;
    let (sa, sb) = (
        serve(&a, Duration::from_secs(10)).await,
        serve(&b, Duration::from_secs(10)).await,
    );
    let client = reqwest::Client::new();
    let stream = client
        .get(format!("http://{}/events", sb.addr))
        .send()
        .await
        .expect("request");
    assert_eq!(stream.status(), 200);
    let posted = client
        .post(format!("http://{}/rooms/lobby/messages", sa.addr))
        .header("content-type", "application/json")
        .body(json!({ "text": "hello over http" }).to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(posted.status(), 202);
    let id = json_of(posted).await["id"].clone();
    let event = SseReader::of(stream)
        .wait(|v| v["event"] == "message")
        .await;
    assert_eq!(
        event,
        json!({
            "event": "message", "room": "lobby", "id": id, "from": a.id(),
            "nick": "alice", "text": "hello over http", "ts": event["ts"],
        })
    );
    assert!(event["ts"].as_u64().expect("ts") > 0);
}

async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).expect("JSON body")
}

/// A libp2p peer that speaks the direct-message protocol but never answers:
/// what a hung or overloaded peer looks like.
pub struct SilentPeer {
    pub peer: PeerId,
    pub addr: Multiaddr,
    /// Every request received (and never answered).
    pub requests: mpsc::Receiver<Value>,
    _task: JoinHandle<()>,
}

impl SilentPeer {
    pub async fn start() -> SilentPeer {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let mut swarm = crate::support::tcp_swarm(key, |_| {
            request_response::json::Behaviour::<Value, Value>::new(
                [(DM_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(60)),
            )
        });
        let peer = *swarm.local_peer_id();
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("addr"))
            .expect("listen");
        let addr = tokio::time::timeout(WAIT, async {
            loop {
                if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                    return address.with(Protocol::P2p(peer));
                }
            }
        })
        .await
        .expect("listening");
        let (tx, requests) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            // Requests are kept, never answered, so the sender times out.
            let mut held = Vec::new();
            loop {
                if let SwarmEvent::Behaviour(request_response::Event::Message {
                    message:
                        request_response::Message::Request {
                            channel, request, ..
                        },
                    ..
                }) = swarm.select_next_some().await
                {
                    held.push(channel);
                    let _ = tx.try_send(request);
                }
            }
        });
        SilentPeer {
            peer,
            addr,
            requests,
            _task: task,
        }
    }
}
