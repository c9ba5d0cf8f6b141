//! The sidecar of the real binary: `healthcheck`, the refusal to serve a
//! non-loopback address without a token, the token from the environment and
//! a file, a clean exit on SIGTERM, and `/events` next to `--json`.

use std::{
    io::{BufRead, BufReader},
    process::{Child, ChildStdin, Command, Stdio},
    time::Duration,
};

use p2p_chat::http::TOKEN_ENV;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::socket::SseReader;
use crate::support::{TestNode, WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_p2p-chat");
/// Lines buffered from a child's output.
const LINE_CAP: usize = 1024;

/// A node process (line mode unless `--headless` is given), logging JSON.
struct Daemon {
    child: Child,
    /// Kept open: in line mode, end of input would end the session.
    stdin: Option<ChildStdin>,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(LINE_CAP);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Daemon {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(BIN)
            .args(["--ephemeral", "--no-mdns"])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--log-format", "json"])
            .args(args)
            .env("P2P_CHAT_HEARTBEAT_MS", "200")
            .env_remove("RUST_LOG")
            .env_remove(TOKEN_ENV)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let stdin = child.stdin.take();
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        Daemon {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Types a line into the node's session.
    fn say(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write");
        stdin.flush().expect("flush");
    }

    /// The address of the HTTP API, from the startup log.
    async fn http_addr(&mut self) -> String {
        let line = wait_line(&mut self.stderr, |l| l.contains("http api listening")).await;
        let v: Value = serde_json::from_str(&line).expect("a JSON log line");
        v["fields"]["address"].as_str().expect("address").to_owned()
    }

    /// Sends `signal` (e.g. "-TERM"); returns the exit code and how long
    /// the exit took.
    fn signal(&mut self, signal: &str) -> (i32, Duration) {
        let started = std::time::Instant::now();
        let pid = self.child.id().to_string();
        let kill = Command::new("kill").args([signal, &pid]).status();
        assert!(kill.expect("kill runs").success());
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status.code().unwrap_or(-1), started.elapsed());
            }
            assert!(started.elapsed() < WAIT, "the process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_line(
    lines: &mut mpsc::Receiver<String>,
    mut pred: impl FnMut(&str) -> bool,
) -> String {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let line = lines.recv().await.expect("the process is still writing");
            if pred(&line) {
                return line;
            }
        }
    })
    .await;
    found.expect("line did not appear in time")
}

/// Runs the binary to completion: (exit code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("binary runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[tokio::test]
async fn healthcheck_exits_0_when_up_and_1_with_one_line_otherwise() {
    let mut node = Daemon::start(&["--headless", "--http", "127.0.0.1:0"], &[]);
    let addr = node.http_addr().await;
    // No HOME, no data dir: the check starts no node.
    let url = format!("http://{addr}/health");
    let (code, stdout, stderr) = run(&["healthcheck", "--url", &url], &[]);
    assert_eq!((code, stdout.as_str()), (0, "UP\n"), "{stderr}");
    let (code, _, stderr) = run(&["--http", &addr, "healthcheck"], &[]);
    assert_eq!(code, 0, "the default URL follows --http: {stderr}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/health");
    let (code, stdout, stderr) = run(&["healthcheck", "--url", &url], &[]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot reach") && stderr.contains(&url),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["healthcheck", "--url", "ftp://x/"], &[]);
    assert_eq!((code, stderr.lines().count()), (1, 1), "{stderr}");

    let (code, took) = node.signal("-TERM");
    assert_eq!(code, 0, "a clean exit on SIGTERM");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn non_loopback_http_needs_a_token_from_the_environment_or_a_file() {
    let (code, stdout, stderr) = run(
        &[
            "--ephemeral",
            "--no-mdns",
            "--headless",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--http",
            "0.0.0.0:0",
        ],
        &[],
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("without a token"), "{stderr}");
    assert!(stderr.contains("P2P_CHAT_HTTP_TOKEN"), "{stderr}");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, "from-a-file\n").expect("write token");
    let file = file.to_str().expect("utf-8 path");
    for (args, env, token) in [
        (
            vec!["--headless", "--http", "0.0.0.0:0"],
            vec![(TOKEN_ENV, "from-env")],
            "from-env",
        ),
        (
            vec![
                "--headless",
                "--http",
                "0.0.0.0:0",
                "--http-token-file",
                file,
            ],
            vec![],
            "from-a-file",
        ),
    ] {
        let mut node = Daemon::start(&args, &env);
        let port = node
            .http_addr()
            .await
            .rsplit(':')
            .next()
            .expect("port")
            .to_owned();
        let url = format!("http://127.0.0.1:{port}/rooms/lobby/messages");
        let client = reqwest::Client::new();
        let post = |auth: Option<&str>| {
            let mut req = client
                .post(&url)
                .header("content-type", "application/json")
                .body(r#"{"text":"hi"}"#);
            if let Some(token) = auth {
                req = req.bearer_auth(token);
            }
            req.send()
        };
        assert_eq!(post(None).await.expect("request").status(), 401);
        assert_eq!(post(Some("wrong")).await.expect("request").status(), 401);
        assert_eq!(post(Some(token)).await.expect("request").status(), 202);
        let health = client
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .expect("request");
        assert_eq!(health.status(), 200, "probes need no token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_posted_to_a_sidecar_shows_on_the_peers_json_output_and_events() {
    let a = TestNode::start_with("alice", &[]).await;
    let mut b = Daemon::start(
        &[
            "--headless",
            "--json",
            "--http",
            "127.0.0.1:0",
            "--dial",
            &a.addr,
        ],
        &[],
    );
    let b_http = b.http_addr().await;
    let client = reqwest::Client::new();
    let events = client
        .get(format!("http://{b_http}/events"))
        .send()
        .await
        .expect("request");
    assert_eq!(events.status(), 200);
    let posted = super::send(
        &super::app(&a),
        super::post_json("/rooms/lobby/messages", r#"{"text":"to the binary"}"#),
    )
    .await;
    assert_eq!(posted.status, axum::http::StatusCode::ACCEPTED);
    let id = posted.json()["id"].clone();

    let line = wait_line(&mut b.stdout, |l| l.contains("to the binary")).await;
    let printed: Value = serde_json::from_str(&line).expect("--json prints JSON");
    let streamed = SseReader::of(events)
        .wait(|v| v["event"] == "message")
        .await;
    assert_eq!(streamed, printed, "/events carries what --json prints");
    assert_eq!(
        printed,
        json!({
            "event": "message", "room": "lobby", "id": id, "from": a.id(),
            "nick": "alice", "text": "to the binary", "ts": printed["ts"],
        })
    );
}

#[tokio::test]
async fn one_sigint_in_line_mode_stops_the_session_the_api_and_the_node() {
    // Line mode: stdin stays open, the terminal front end runs.
    let mut node = Daemon::start(
        &["--json", "--http", "127.0.0.1:0"],
        &[("RUST_LOG", "p2p_chat=info")],
    );
    let addr = node.http_addr().await;
    let events = reqwest::Client::new()
        .get(format!("http://{addr}/events"))
        .send()
        .await
        .expect("request");
    assert_eq!(events.status(), 200);
    let mut events = SseReader::of(events);
    let (code, took) = node.signal("-INT");
    assert_eq!(code, 0, "a clean exit on SIGINT");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(events.ends().await, "the open event stream was closed");
}

#[tokio::test]
async fn an_invite_ticket_from_the_shell_is_all_another_node_needs_to_join() {
    let token = [(TOKEN_ENV, "invite-secret")];
    let mut alice = Daemon::start(
        &[
            "--json",
            "--nick",
            "alice",
            "--room",
            "plans",
            "--http",
            "127.0.0.1:0",
        ],
        &[token[0], ("RUST_LOG", "p2p_chat=info")],
    );
    let addr = alice.http_addr().await;
    let url = format!("http://{addr}");
    let (code, stdout, stderr) = run(&["invite", "--url", &url, "#plans"], &token);
    assert_eq!(code, 0, "{stderr}");
    let ticket = stdout.trim().to_owned();
    assert!(
        ticket.starts_with("p2pchat1") && !ticket.contains('\n'),
        "{stdout}"
    );
    let (code, stdout, _) = run(&["invite", "--url", &url, "--qr", "plans"], &token);
    assert_eq!(code, 0);
    let last = stdout.trim_end().rsplit('\n').next().unwrap_or_default();
    assert!(
        stdout.contains('▀') && last.starts_with("p2pchat1"),
        "a QR code, then the ticket: {stdout}"
    );
    let (code, _, stderr) = run(&["invite", "--url", &url, "plans"], &[]);
    assert_eq!((code, stderr.lines().count()), (1, 1), "no token: {stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    let (code, _, stderr) = run(&["invite", "--url", &url], &token);
    assert_eq!((code, stderr.lines().count()), (1, 1), "{stderr}");
    assert!(stderr.contains("not in room"), "{stderr}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let (code, _, stderr) = run(
        &["invite", "--url", &format!("http://127.0.0.1:{port}")],
        &[],
    );
    assert_eq!((code, stderr.lines().count()), (1, 1), "{stderr}");
    assert!(stderr.contains("no node answered"), "{stderr}");

    // Bad tickets are usage errors, told in one line.
    for bad in [&ticket[..ticket.len() - 3], "p2pchat1", "p2pchat1!!"] {
        let (code, _, stderr) = run(&["--join", bad, "--ephemeral"], &[]);
        assert_eq!(code, 2, "{bad}: {stderr}");
        assert!(stderr.contains("not a valid invite ticket"), "{stderr}");
    }

    let mut bob = Daemon::start(
        &[
            "--json",
            "--nick",
            "bob",
            "--join",
            &ticket,
            "--http",
            "127.0.0.1:0",
        ],
        &[],
    );
    wait_line(&mut alice.stdout, |l| l.contains("peer_connected")).await;
    bob.say("hello from the ticket");
    wait_line(&mut alice.stdout, |l| l.contains("hello from the ticket")).await;
}
