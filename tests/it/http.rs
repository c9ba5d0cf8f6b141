//! The HTTP sidecar: every endpoint and error through `router.oneshot` (no
//! socket), the server on real sockets (slow clients, graceful stop, two
//! nodes), and the binary (`healthcheck`, refusing an unguarded bind).

mod binary;
mod errors;
mod socket;

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use futures::StreamExt;
use http_body_util::BodyExt;
use p2p_chat::{
    Config, Event,
    http::{self, AppState},
};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{TestNode, WAIT, eventually, text_of};

/// The answer of one request, body read in full.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("the body is JSON")
    }

    /// The `error` of an error answer; also checks the error shape.
    fn error(&self) -> String {
        let v = self.json();
        let e = v["error"].as_str().expect("an error field").to_owned();
        assert!(!e.is_empty() && !e.contains('\n'), "one line: {e:?}");
        e
    }
}

fn app(node: &TestNode) -> Router {
    http::router(AppState::new(node.node.clone(), None, Vec::new()))
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .expect("body in time")
        .expect("body reads")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).expect("utf-8 body"),
    }
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .body(Body::empty())
        .expect("valid request")
}

fn post_json(uri: &str, body: impl Into<String>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.into()))
        .expect("valid request")
}

async fn get_json(app: &Router, uri: &str) -> Value {
    let answer = send(app, get(uri)).await;
    assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.body);
    answer.json()
}

/// Two connected nodes, each subscribed to the other's lobby.
async fn pair() -> (TestNode, TestNode) {
    let a = TestNode::start_with("alice", &[]).await;
    let mut b = TestNode::start_with("bob", &[&a]).await;
    b.wait_nick(&a).await;
    let a_app = app(&a);
    eventually("alice sees bob in the lobby", || async {
        get_json(&a_app, "/rooms").await[0]["members"] == 1
    })
    .await;
    (a, b)
}

#[tokio::test]
async fn health_is_up_without_peers_and_down_once_the_node_task_stops() {
    let a = TestNode::start_with("alice", &[]).await;
    let app = app(&a);
    let up = send(&app, get("/health")).await;
    assert_eq!(up.status, StatusCode::OK);
    assert_eq!(up.json(), json!({ "status": "UP" }));
    a.node.shutdown().await;
    let down = send(&app, get("/health")).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.json()["status"], "DOWN");
    down.error();
    let ready = send(&app, get("/ready")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.error().contains("stopped"), "{}", ready.body);
}

#[tokio::test]
async fn ready_is_503_while_the_dial_target_is_down_and_health_stays_200() {
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut cfg = Config::for_tests();
    cfg.dial = vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("addr")];
    let a = TestNode::start(cfg).await;
    let app = app(&a);
    // Not merely "not dialed yet": the dial has been tried and failed.
    eventually("a failed dial", || async {
        let metrics = send(&app, get("/metrics")).await.body;
        metrics.contains("libp2p_swarm_outgoing_connection_error_total{")
    })
    .await;
    let ready = send(&app, get("/ready")).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );
    assert!(ready.error().contains("--dial"), "{}", ready.body);
    assert_eq!(ready.json()["detail"]["dial_targets"], 1);
    assert_eq!(ready.json()["detail"]["dial_connected"], 0);
    let health = send(&app, get("/health")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json(), json!({ "status": "UP" }));
}

#[tokio::test]
async fn ready_is_200_when_listening_in_a_room_and_connected_to_the_dial_target() {
    let a = TestNode::start_with("alice", &[]).await;
    let ready = send(&app(&a), get("/ready")).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.json()["status"], "READY");
    let b = TestNode::start_with("bob", &[&a]).await;
    let b_app = app(&b);
    eventually("bob ready once connected to alice", || async {
        send(&b_app, get("/ready")).await.status == StatusCode::OK
    })
    .await;
    assert_eq!(
        get_json(&b_app, "/ready").await["detail"]["dial_connected"],
        1
    );
}

#[tokio::test]
async fn status_peers_and_rooms_describe_two_connected_nodes() {
    let (a, b) = pair().await;
    let app = app(&a);
    let status = get_json(&app, "/status").await;
    assert_eq!(status["peer_id"], a.id());
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["uptime_secs"].is_u64());
    assert_eq!(status["connected_peers"], 1);
    assert_eq!(status["rooms"], json!(["lobby"]));
    let listen = status["listen_addrs"][0].as_str().expect("an address");
    assert!(listen.ends_with(&format!("/p2p/{}", a.id())), "{listen}");
    assert!(status["external_addrs"].is_array());
    assert!(!status.to_string().contains("key"), "no secrets: {status}");

    let peers = get_json(&app, "/peers").await;
    let peer = &peers[0];
    assert_eq!(peer["peer"], b.id());
    assert_eq!(peer["nick"], "bob");
    assert_eq!(peer["direction"], "inbound");
    assert!(peer["connected_since"].as_u64().expect("ms") > 0);
    assert!(peer["addresses"].is_array() && peer.get("rtt_ms").is_some());

    let rooms = get_json(&app, "/rooms").await;
    assert_eq!(rooms[0]["room"], "lobby");
    assert_eq!(rooms[0]["members"], 1);
    assert!(rooms[0]["mesh_peers"].is_u64());
}

#[tokio::test]
async fn posted_room_message_is_delivered_and_paged_in_history() {
    let (a, mut b) = pair().await;
    let app = app(&a);
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        let answer = send(
            &app,
            post_json("/rooms/lobby/messages", json!({ "text": text }).to_string()),
        )
        .await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        ids.push(answer.json()["id"].as_str().expect("id").to_owned());
        let got = b.wait(|e| text_of(e) == Some(text)).await;
        let Event::Message { id, from, .. } = got else {
            unreachable!()
        };
        assert_eq!((id.as_str(), from), (ids[ids.len() - 1].as_str(), a.id()));
    }
    let all = get_json(&app, "/rooms/lobby/messages").await;
    let texts: Vec<&str> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["text"].as_str().expect("text"))
        .collect();
    assert_eq!(texts, ["one", "two", "three"], "oldest first");
    let last = get_json(&app, "/rooms/lobby/messages?limit=1").await;
    assert_eq!(last[0]["id"], ids[2].as_str());
    let before = format!("/rooms/lobby/messages?limit=5&before={}", ids[2]);
    let page = get_json(&app, &before).await;
    assert_eq!(page.as_array().expect("array").len(), 2);
    assert_eq!(page[0]["id"], ids[0].as_str());
    // The receiver keeps them too.
    let b_history = get_json(&self::app(&b), "/rooms/lobby/messages").await;
    assert_eq!(b_history.as_array().expect("array").len(), 3);
}

#[tokio::test]
async fn post_to_a_room_without_peers_is_accepted_as_pending() {
    let mut a = TestNode::start_with("alice", &[]).await;
    let answer = send(
        &app(&a),
        post_json("/rooms/lobby/messages", r#"{"text":"anyone?"}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.json()["pending"], true);
    let id = answer.json()["id"].as_str().expect("id").to_owned();
    a.wait(|e| matches!(e, Event::Pending { id: p, .. } if *p == id))
        .await;
    let rooms = get_json(&app(&a), "/rooms").await;
    assert_eq!(rooms[0]["pending"], 1);
}

#[tokio::test]
async fn direct_message_is_delivered_by_nick_and_unknown_peers_are_404() {
    let (a, mut b) = pair().await;
    let app = app(&a);
    let answer = send(&app, post_json("/direct/bob", r#"{"text":"psst"}"#)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["delivered"], true);
    assert_eq!(body["to"], b.id());
    let got = b.wait(|e| text_of(e) == Some("psst")).await;
    assert!(matches!(got, Event::Direct { id, .. } if id == body["id"].as_str().expect("id")));

    let by_id = format!("/direct/{}", b.id());
    let answer = send(&app, post_json(&by_id, r#"{"text":"by id"}"#)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let answer = send(&app, post_json("/direct/nobody", r#"{"text":"hi"}"#)).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.error().contains("nobody"));
    let stranger = libp2p::PeerId::random();
    let answer = send(
        &app,
        post_json(&format!("/direct/{stranger}"), r#"{"text":"hi"}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.error().contains("not connected"), "{}", answer.body);

    let sent = send(&app, get("/metrics")).await.body;
    assert!(sent.contains("p2p_chat_direct_sent_total 2"), "{sent}");
    let received = send(&self::app(&b), get("/metrics")).await.body;
    assert!(
        received.contains("p2p_chat_direct_received_total 2"),
        "{received}"
    );
}

#[tokio::test]
async fn direct_message_to_a_peer_that_never_answers_is_504() {
    let silent = socket::SilentPeer::start().await;
    let mut cfg = Config::for_tests();
    cfg.dm_timeout = 1;
    cfg.dial = vec![silent.addr.clone()];
    let a = TestNode::start(cfg).await;
    let app = app(&a);
    eventually("connected to the silent peer", || async {
        get_json(&app, "/peers").await[0]["peer"] == silent.peer.to_string()
    })
    .await;
    let uri = format!("/direct/{}", silent.peer);
    let answer = send(&app, post_json(&uri, r#"{"text":"hello?"}"#)).await;
    assert_eq!(
        answer.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        answer.body
    );
    assert!(answer.error().contains("no receipt"), "{}", answer.body);
    let metrics = send(&app, get("/metrics")).await.body;
    assert!(
        metrics.contains("p2p_chat_direct_failed_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_expose_libp2p_and_chat_counters() {
    let (a, mut b) = pair().await;
    let answer = send(
        &app(&a),
        post_json("/rooms/lobby/messages", r#"{"text":"counted"}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    b.wait(|e| text_of(e) == Some("counted")).await;
    let scrape = |node: &TestNode| {
        let app = app(node);
        async move {
            let answer = send(&app, get("/metrics")).await;
            assert_eq!(answer.status, StatusCode::OK);
            let ct = answer.headers[header::CONTENT_TYPE]
                .to_str()
                .expect("ascii");
            assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
            answer.body
        }
    };
    let text = scrape(&a).await;
    for want in [
        r#"p2p_chat_messages_published_total{room="lobby"} 1"#,
        "p2p_chat_peers_connected 1",
        r#"p2p_chat_pending_messages{room="lobby"} 0"#,
        "libp2p_swarm_connections_established_total",
        "libp2p_identify_",
        "libp2p_ping_",
        "libp2p_gossipsub_",
        "gossipsub_topic_subscription_status",
        "libp2p_bandwidth_",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
    let text = scrape(&b).await;
    assert!(
        text.contains(r#"p2p_chat_messages_received_total{room="lobby"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("p2p_chat_message_latency_seconds_count 1"),
        "{text}"
    );
    assert!(text.contains("p2p_chat_message_latency_seconds_bucket"));
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn events_stream_carries_the_json_events() {
    let a = TestNode::start_with("alice", &[]).await;
    let app = app(&a);
    let response = app
        .clone()
        .oneshot(get("/events"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let body = response.into_body().into_data_stream();
    let mut events = socket::SseReader::new(body.map(|c| c.expect("chunk")));
    let sent = a.node.publish("lobby", "over sse").await.expect("publish");
    let event = events.wait(|v| v["event"] == "pending").await;
    let expected = Event::Pending {
        room: "lobby".into(),
        id: sent.id,
        text: "over sse".into(),
    };
    assert_eq!(event, serde_json::to_value(&expected).expect("json"));
}

/// A client that comes back with `Last-Event-ID` gets what it missed; one
/// whose id is not held gets a `reset` first.
#[tokio::test]
async fn events_missed_while_away_are_replayed_from_last_event_id() {
    let a = TestNode::start_with("alice", &[]).await;
    let app = app(&a);
    let open = |last: Option<&str>| {
        let mut request = axum::http::Request::get("/events");
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        let request = request.body(axum::body::Body::empty()).expect("request");
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await.expect("infallible");
            let body = response.into_body().into_data_stream();
            socket::SseReader::new(body.map(|c| c.expect("chunk")))
        }
    };
    let mut first = open(None).await;
    a.node.publish("lobby", "one").await.expect("publish");
    let (id, _) = first.wait_with_id(|v| v["text"] == "one").await;
    let id = id.expect("numbered");
    drop(first);
    for text in ["two", "three"] {
        a.node.publish("lobby", text).await.expect("publish");
    }
    let mut back = open(Some(&id)).await;
    let (id2, two) = back.wait_with_id(|v| v["event"] == "pending").await;
    assert_eq!(two["text"], "two", "the first missed event comes first");
    let (id3, three) = back.wait_with_id(|v| v["event"] == "pending").await;
    assert_eq!(three["text"], "three");
    let n = |id: Option<String>| {
        let id = id.expect("numbered");
        let (_, n) = id.rsplit_once('-').expect("run-n");
        n.parse::<u64>().expect("a number")
    };
    assert!(n(Some(id.clone())) < n(id2.clone()) && n(id2) < n(id3));

    let mut stale = open(Some("01KBOLDRUN0000000000000000-2")).await;
    let (none, reset) = stale.next_event().await;
    assert_eq!(reset["event"], "reset", "{reset}");
    assert_eq!(none, None);
    stale.wait(|v| v["text"] == "three").await;
}

#[tokio::test]
async fn joining_an_encrypted_room_through_the_api() {
    let a = TestNode::start_with("a", &[]).await;
    let mut b = TestNode::start_with("b", &[&a]).await;
    b.node
        .join_encrypted("vault", "same passphrase")
        .await
        .expect("join");
    let api = app(&a);
    let answer = send(
        &api,
        post_json("/rooms/vault/join", r#"{"passphrase":"same passphrase"}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json()["encrypted"], true);
    let rooms = get_json(&api, "/rooms").await;
    let vault = rooms
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["room"] == "vault")
        .expect("vault")
        .clone();
    assert_eq!(vault["encrypted"], true);
    assert!(!rooms.to_string().contains("same passphrase"));
    let status = get_json(&api, "/status").await;
    assert!(
        !status.to_string().contains("same passphrase"),
        "no secret in /status"
    );
    let answer = send(
        &api,
        post_json("/rooms/vault/messages", r#"{"text":"sealed via the API"}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    b.wait(|e| text_of(e) == Some("sealed via the API")).await;
    let answer = send(&api, post_json("/rooms/vault/join", r#"{"passphrase":""}"#)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = send(&api, post_json("/rooms/open/join", "{}")).await;
    assert_eq!(answer.json()["encrypted"], false);
    let answer = send(&api, post_json("/rooms/open/leave", "")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let answer = send(&api, post_json("/rooms/open/leave", "")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}
