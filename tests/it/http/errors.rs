//! Every error case of the API through `router.oneshot`: bodies, queries,
//! unknown rooms and routes, the bearer token and the Host check. Each
//! answer has the right status and the `{"error":"one line"}` shape.

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use p2p_chat::{
    http::{self, AppState, Token},
    protocol::MAX_TEXT_BYTES,
};
use serde_json::json;

use super::{app, get, post_json, send};
use crate::support::TestNode;

#[tokio::test]
async fn history_rejects_bad_limits_and_unknown_rooms() {
    let a = TestNode::start_with("alice", &[]).await;
    let app = app(&a);
    for uri in [
        "/rooms/lobby/messages?limit=0",
        "/rooms/lobby/messages?limit=1001",
        "/rooms/lobby/messages?limit=ten",
    ] {
        let answer = send(&app, get(uri)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(answer.error().contains("limit"), "{}", answer.body);
    }
    let answer = send(&app, get("/rooms/elsewhere/messages")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.error().contains("elsewhere"), "{}", answer.body);
}

#[tokio::test]
async fn post_body_errors_are_json_with_the_right_status() {
    let a = TestNode::start_with("alice", &[]).await;
    let app = app(&a);
    let uri = "/rooms/lobby/messages";

    let no_type = Request::post(uri)
        .body(Body::from(r#"{"text":"hi"}"#))
        .expect("request");
    let answer = send(&app, no_type).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer.error().contains("application/json"));

    let text_plain = Request::post(uri)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"text":"hi"}"#))
        .expect("request");
    assert_eq!(
        send(&app, text_plain).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    let answer = send(&app, post_json(uri, r#"{"text": "#)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.error().contains("EOF"), "{}", answer.body);

    let answer = send(&app, post_json(uri, r#"{"txt":"hi"}"#)).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.error().contains("txt"), "{}", answer.body);

    let answer = send(&app, post_json(uri, r#"{"text":42}"#)).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.error().contains("invalid type"), "{}", answer.body);

    let huge = json!({ "text": "x".repeat(http::BODY_LIMIT) }).to_string();
    let answer = send(&app, post_json(uri, huge)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    answer.error();

    let over_text_limit = json!({ "text": "x".repeat(MAX_TEXT_BYTES + 1) }).to_string();
    let answer = send(&app, post_json(uri, over_text_limit)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.error().contains("limit"), "{}", answer.body);

    let answer = send(&app, post_json(uri, r#"{"text":"   "}"#)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.error().contains("empty"));

    let answer = send(
        &app,
        post_json("/rooms/elsewhere/messages", r#"{"text":"hi"}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.error().contains("elsewhere"));
}

#[tokio::test]
async fn token_guards_sending_history_and_events_but_not_probes() {
    let a = TestNode::start_with("alice", &[]).await;
    let token = Token::new("s3cret-token").expect("non-empty");
    let app = http::router(AppState::new(a.node.clone(), Some(token), Vec::new()));
    let with = |req: axum::http::request::Builder, auth: &str| {
        req.header(header::AUTHORIZATION, auth)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"text":"hi"}"#))
            .expect("request")
    };
    for (method, uri) in [
        ("POST", "/rooms/lobby/messages"),
        ("GET", "/rooms/lobby/messages"),
        ("POST", "/direct/bob"),
        ("GET", "/events"),
        ("POST", "/rooms/lobby/messages?token=s3cret-token"),
    ] {
        let req = Request::builder().method(method).uri(uri);
        let answer = send(&app, with(req, "")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer");
        answer.error();
        let req = Request::builder().method(method).uri(uri);
        let answer = send(&app, with(req, "Bearer wrong")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert!(answer.error().contains("not valid"));
    }
    let req = Request::post("/rooms/lobby/messages");
    let answer = send(&app, with(req, "Bearer s3cret-token")).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let req = Request::post("/rooms/lobby/messages");
    let answer = send(&app, with(req, "bearer   s3cret-token")).await;
    assert_eq!(
        answer.status,
        StatusCode::ACCEPTED,
        "scheme is case-insensitive"
    );
    for uri in [
        "/health", "/ready", "/status", "/peers", "/rooms", "/metrics",
    ] {
        assert_eq!(send(&app, get(uri)).await.status, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn foreign_host_headers_are_refused() {
    let a = TestNode::start_with("alice", &[]).await;
    let app = http::router(AppState::new(
        a.node.clone(),
        None,
        vec!["chat.example".into()],
    ));
    let with_host = |host: &str| {
        Request::get("/status")
            .header(header::HOST, host)
            .body(Body::empty())
            .expect("request")
    };
    for host in [
        "127.0.0.1:8081",
        "[::1]:8081",
        "localhost:8081",
        "chat.example:80",
        "10.1.2.3",
    ] {
        assert_eq!(
            send(&app, with_host(host)).await.status,
            StatusCode::OK,
            "{host}"
        );
    }
    let answer = send(&app, with_host("evil.example:8081")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.error().contains("evil.example"), "{}", answer.body);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let a = TestNode::start_with("alice", &[]).await;
    let app = app(&a);
    let answer = send(&app, get("/nope")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.error().contains("/nope"));
    let answer = send(&app, post_json("/health", "{}")).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(answer.error().contains("POST"));
    let answer = send(
        &app,
        Request::delete("/rooms/lobby/messages")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        answer.headers.get("access-control-allow-origin").is_none(),
        "no CORS"
    );
}

/// The open routes show a caller without the token nothing of the user's
/// own: not where history is kept, not the names of encrypted rooms.
#[tokio::test]
async fn open_routes_keep_private_things_from_a_caller_without_the_token() {
    let a = TestNode::start_with("alice", &[]).await;
    assert!(a.node.join_encrypted("vault", "pw").await.expect("join"));
    let token = Token::new("s3cret-token").expect("non-empty");
    let app = http::router(AppState::new(a.node.clone(), Some(token), Vec::new()));
    let as_owner = |uri: &str| {
        Request::get(uri)
            .header(header::AUTHORIZATION, "Bearer s3cret-token")
            .body(Body::empty())
            .expect("request")
    };
    let open = send(&app, get("/status")).await;
    assert_eq!(open.status, StatusCode::OK);
    let status: serde_json::Value = serde_json::from_str(&open.body).expect("json");
    assert_eq!(status["rooms"], json!(["lobby"]), "{status}");
    assert_eq!(status["encrypted_rooms"], 1);
    assert!(status.get("history").is_none(), "{status}");
    assert!(!open.body.contains("vault"));
    let owner = send(&app, as_owner("/status")).await;
    let status: serde_json::Value = serde_json::from_str(&owner.body).expect("json");
    assert_eq!(status["rooms"], json!(["lobby", "vault"]), "{status}");
    assert_eq!(status["history"], "memory");

    let open = send(&app, get("/rooms")).await;
    assert_eq!(open.status, StatusCode::OK);
    assert!(
        open.body.contains("lobby") && !open.body.contains("vault"),
        "{}",
        open.body
    );
    let owner = send(&app, as_owner("/rooms")).await;
    assert!(owner.body.contains("vault"), "{}", owner.body);
}
