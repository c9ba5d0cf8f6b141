//! The real binary as separate processes on 127.0.0.1, driven through stdin
//! and read through `--json` (or human) stdout; bad input checked for its
//! exit code and its one-line message.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;

use crate::support::WAIT;

const BIN: &str = env!("CARGO_BIN_EXE_p2p-chat");

/// A running `p2p-chat` process.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Lines read but not yet matched, so waits need not come in order.
    backlog: Vec<String>,
    seen: Vec<String>,
}

impl Proc {
    pub fn start(args: &[&str]) -> Proc {
        let identity: &[&str] = if args.contains(&"--data-dir") {
            &[]
        } else {
            &["--ephemeral"]
        };
        let child = Command::new(BIN)
            .args(identity)
            .args(["--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(args)
            .env("P2P_CHAT_HEARTBEAT_MS", "200")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("binary starts");
        Proc::from_child(child)
    }

    pub fn from_child(mut child: Child) -> Proc {
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Proc {
            child,
            stdin,
            lines,
            backlog: Vec::new(),
            seen: Vec::new(),
        }
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write stdin");
        stdin.flush().expect("flush");
    }

    /// The first unmatched stdout line matching `pred`, within [`WAIT`].
    pub fn line(&mut self, what: &str, mut pred: impl FnMut(&str) -> bool) -> String {
        if let Some(i) = self.backlog.iter().position(|l| pred(l)) {
            return self.backlog.remove(i);
        }
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                    self.backlog.push(line);
                }
                Err(_) => panic!("no line with {what}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Next JSON event of kind `event` for which `pred` holds.
    pub fn event(&mut self, event: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let line = self.line(event, |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| v["event"] == event && pred(&v))
        });
        serde_json::from_str(&line).expect("json")
    }

    pub fn address(&mut self) -> String {
        let v = self.event("listening", |_| true);
        v["address"].as_str().expect("address").to_owned()
    }

    pub fn peer_id(addr: &str) -> String {
        addr.rsplit('/').next().expect("peer id").to_owned()
    }

    /// Every stdout line read so far (without waiting).
    pub fn lines_so_far(&mut self) -> Vec<String> {
        let fresh: Vec<String> = self.lines.try_iter().collect();
        self.seen.extend(fresh.iter().cloned());
        self.backlog.extend(fresh);
        self.seen.clone()
    }

    /// Puts a line back, for a later wait to find.
    pub fn unread(&mut self, line: &str) {
        self.backlog.push(line.to_owned());
    }

    /// Kills the process at once (SIGKILL), as a crash or `kill -9` would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every stdout line, once the process has exited.
    pub fn output(&mut self) -> Vec<String> {
        self.seen.extend(self.lines.try_iter());
        self.seen.clone()
    }

    /// Waits for the process to exit by itself and returns its code.
    pub fn exit_code(mut self) -> i32 {
        self.wait_exit()
    }

    /// Closes stdin and waits for the process to exit; returns its code.
    pub fn wait_exit(&mut self) -> i32 {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(std::time::Instant::now() < deadline, "process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_processes_chat_and_direct_message_over_json() {
    let mut a = Proc::start(&["--json", "--nick", "alice"]);
    let a_addr = a.address();
    let a_id = Proc::peer_id(&a_addr);
    let mut b = Proc::start(&["--json", "--nick", "bob", "--dial", &a_addr]);
    let b_id = Proc::peer_id(&b.address());
    b.event("peer_connected", |v| v["peer"] == a_id.as_str());
    b.send("hello from bob");
    let m = a.event("message", |v| v["text"] == "hello from bob");
    assert_eq!(m["from"], b_id.as_str());
    assert_eq!(m["nick"], "bob");
    assert_eq!(m["room"], "lobby");
    assert!(m["ts"].as_u64().is_some() && m["id"].as_str().is_some());

    a.event("peer_nick", |v| v["nick"] == "bob");
    a.send("/msg bob a secret");
    let d = b.event("direct", |v| v["text"] == "a secret");
    assert_eq!(d["from"], a_id.as_str());
    assert_eq!(d["nick"], "alice");
    let r = a.event("receipt", |v| v["id"] == d["id"]);
    assert_eq!(r["to"], b_id.as_str());

    b.send("/peers");
    let peers = b.event("peers", |_| true);
    assert_eq!(peers["peers"][0]["nick"], "alice");
    assert_eq!(peers["peers"][0]["peer"], a_id.as_str());

    a.send("/quit");
    assert_eq!(a.exit_code(), 0);
    b.event("peer_disconnected", |v| v["peer"] == a_id.as_str());
    assert_eq!(b.exit_code(), 0, "EOF on stdin ends the node cleanly");
}

#[test]
fn three_processes_relay_and_survive_bad_session_input() {
    let mut a = Proc::start(&["--json", "--nick", "a"]);
    let a_addr = a.address();
    let mut b = Proc::start(&["--json", "--nick", "b", "--dial", &a_addr]);
    let b_addr = b.address();
    let mut c = Proc::start(&["--json", "--nick", "c", "--dial", &b_addr]);
    c.address();
    c.send("from the far end");
    a.event("message", |v| {
        v["text"] == "from the far end" && v["nick"] == "c"
    });
    b.event("message", |v| v["text"] == "from the far end");

    let big = "x".repeat(16 * 1024 + 1);
    c.send(&big);
    let e = c.event("error", |_| true);
    let msg = e["message"].as_str().expect("message");
    assert!(msg.contains("16385") && msg.contains("16384"), "{msg}");
    c.send("/msg nobody hi");
    let e = c.event("error", |_| true);
    assert!(
        e["message"].as_str().expect("message").contains("nobody"),
        "{e}"
    );
    c.send("/frobnicate");
    let e = c.event("error", |_| true);
    assert!(
        e["message"].as_str().expect("message").contains("/help"),
        "{e}"
    );
    c.send("/join");
    c.event("error", |v| {
        v["message"] == "usage: /join ROOM [--encrypted | PASSPHRASE]"
    });
    c.send("still alive");
    a.event("message", |v| v["text"] == "still alive");
    // Only /quit quits: a bare word is a message like any other.
    c.send("exit");
    a.event("message", |v| v["text"] == "exit");
    c.send("/quit");
    assert_eq!(c.exit_code(), 0);
}

#[test]
fn human_output_shows_control_characters_as_escapes() {
    let mut a = Proc::start(&["--nick", "alice"]);
    let addr_line = a.line("listening", |l| l.starts_with("listening on "));
    let a_addr = addr_line.trim_start_matches("listening on ").to_owned();
    let a_id = Proc::peer_id(&a_addr);
    let mut b = Proc::start(&["--json", "--nick", "evil", "--dial", &a_addr]);
    b.event("peer_connected", |v| v["peer"] == a_id.as_str());
    b.send("\x1b[2J\x1b]0;owned\x07 hi\u{9b}");
    let line = a.line("the message", |l| l.contains(" hi"));
    assert!(
        line.contains("\\x1b[2J\\x1b]0;owned\\x07 hi\\x9b"),
        "{line:?}"
    );
    assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    a.send("/quit");
    assert_eq!(a.exit_code(), 0);
}

/// Runs the binary to completion with `args`; returns (code, stderr).
pub fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn usage_errors_exit_2_naming_the_bad_value() {
    for (flag, value) in [
        ("--listen", "hello"),
        ("--listen", "/ip4/999.1.1.1/tcp/1"),
        ("--dial", "/ip4/1.2.3.4/tcp/x"),
        ("--bootstrap", "hello"),
        ("--dial", "/ip4/1.2.3.4/udp/5"),
        ("--relay", "/ip4/203.0.113.7/tcp/4001"),
        ("--relay", "relay.example.org"),
        ("--join", "p2pchat1notaticket"),
        ("--room", "p2pchat1lookalike"),
    ] {
        let (code, stderr) = run(&["--ephemeral", flag, value]);
        assert_eq!(code, 2, "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(value) && stderr.contains(flag),
            "{flag} {value}: {stderr}"
        );
    }
    let (code, stderr) = run(&["--ephemeral", "--data-dir", "/tmp/x"]);
    assert_eq!(code, 2, "{stderr}");
    // Checked before anything is written: no data dir, no key.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8 path");
    let long = "n".repeat(65);
    for (flag, value) in [
        ("--nick", long.as_str()),
        ("--nick", "bad\u{7}bell"),
        ("--nick", "ali\u{202e}ce"),
        ("--nick", "zero\u{200b}width"),
        ("--nick", "\u{feff}bom"),
        ("--room", "lob\u{2066}by"),
        ("--room", "two words"),
        ("--history-ring", "0"),
        ("--sync-interval", "0"),
    ] {
        let (code, stderr) = run(&["--data-dir", d, "--headless", flag, value]);
        assert_eq!(code, 2, "{flag} {value:?}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value:?}: {stderr}");
        assert!(!data.exists(), "{flag} {value:?} left a data dir behind");
    }
    // An encrypted room's ticket needs the passphrase from a file.
    let ticket = p2p_chat::ticket::Ticket {
        room: "vault".into(),
        encrypted: true,
        addrs: vec![
            "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
                .parse()
                .expect("address"),
        ],
        created: p2p_chat::protocol::now_ms() / 1000,
    }
    .encode();
    let (code, stderr) = run(&["--ephemeral", "--join", &ticket]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("#vault is encrypted") && stderr.contains("--passphrase-file"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--bogus"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--bogus"), "{stderr}");
}

#[test]
fn runtime_errors_exit_1_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let addr = format!("/ip4/127.0.0.1/tcp/{port}");
    let (code, stderr) = run(&["--ephemeral", "--no-mdns", "--headless", "--listen", &addr]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&addr) && stderr.contains("already in use"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // A port held by another p2p-chat (whose listener sets SO_REUSEPORT)
    // is refused too, rather than silently shared.
    drop(taken);
    let mut holder = Proc::start(&["--json", "--listen", &addr]);
    holder.address();
    let (code, stderr) = run(&["--ephemeral", "--no-mdns", "--headless", "--listen", &addr]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("already in use"), "{stderr}");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").expect("write");
    let bad = file.join("data");
    let bad = bad.to_str().expect("utf-8 path");
    let (code, stderr) = run(&[
        "--no-mdns",
        "--headless",
        "--data-dir",
        bad,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(bad), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn same_peer_id_after_restart_with_a_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut p = Proc::start(&["--json", "--data-dir", d]);
        ids.push(Proc::peer_id(&p.address()));
        p.send("/quit");
        assert_eq!(p.exit_code(), 0);
    }
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn headless_node_stops_cleanly_on_sigterm() {
    let mut p = Proc::start(&["--json", "--headless"]);
    p.address();
    let pid = p.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    assert_eq!(p.exit_code(), 0);
}

#[test]
fn with_no_listen_flag_it_listens_on_tcp_and_quic_falling_back_when_taken() {
    let ports = |p: &mut Proc| {
        let mut tcp = None;
        let mut quic = None;
        while tcp.is_none() || quic.is_none() {
            let addr = p.address();
            assert!(addr.contains("/p2p/12D3Koo"), "{addr}");
            let parts: Vec<&str> = addr.split('/').collect();
            match parts.get(3) {
                Some(&"tcp") => tcp = parts.get(4).map(|s| s.to_string()),
                Some(&"udp") if addr.contains("/quic-v1/") => {
                    quic = parts.get(4).map(|s| s.to_string())
                }
                _ => {}
            }
        }
        (tcp.expect("tcp"), quic.expect("quic"))
    };
    let start = || {
        let child = Command::new(BIN)
            .args(["--ephemeral", "--no-mdns", "--json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("binary starts");
        Proc::from_child(child)
    };
    let mut first = start();
    let (tcp1, quic1) = ports(&mut first);
    // Whatever the first one got, the default port is now taken.
    assert!(std::net::TcpListener::bind("0.0.0.0:4001").is_err());
    let mut second = start();
    let (tcp2, quic2) = ports(&mut second);
    assert!(
        tcp1 != tcp2 && quic1 != quic2,
        "{tcp1} {tcp2} {quic1} {quic2}"
    );
    assert!(tcp2 != "4001");
}

/// A headless node's output is a log (container logs, journald): it shows
/// notices, never what people wrote, plain or decrypted, at any log level.
#[test]
fn a_headless_node_writes_no_chat_text_to_its_output_or_logs() {
    for passphrase in [None, Some("the hub's key")] {
        let room = if passphrase.is_some() {
            "vault"
        } else {
            "lobby"
        };
        let with_key = |cmd: &mut Command| {
            match passphrase {
                Some(p) => cmd.env("P2P_CHAT_PASSPHRASE", p),
                None => cmd.env_remove("P2P_CHAT_PASSPHRASE"),
            };
        };
        let stderr = tempfile::NamedTempFile::new().expect("temp file");
        let mut cmd = Command::new(BIN);
        cmd.args(["--ephemeral", "--no-mdns", "--headless", "--nick", "hub"])
            .args(["--room", room, "--listen", "/ip4/127.0.0.1/tcp/0"])
            .env("P2P_CHAT_HEARTBEAT_MS", "200")
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("reopen"));
        with_key(&mut cmd);
        let mut hub = Proc::from_child(cmd.spawn().expect("binary starts"));
        let line = hub.line("listening", |l| l.starts_with("listening on "));
        let addr = line.trim_start_matches("listening on ").to_owned();
        let member = |nick: &str| {
            let mut cmd = Command::new(BIN);
            cmd.args(["--ephemeral", "--no-mdns", "--json", "--nick", nick])
                .args(["--room", room, "--listen", "/ip4/127.0.0.1/tcp/0"])
                .args(["--dial", &addr])
                .env("P2P_CHAT_HEARTBEAT_MS", "200")
                .env_remove("RUST_LOG")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            with_key(&mut cmd);
            Proc::from_child(cmd.spawn().expect("binary starts"))
        };
        let (mut sender, mut reader) = (member("sender"), member("reader"));
        sender.event("peer_connected", |_| true);
        reader.event("peer_connected", |_| true);
        let nonce = format!("nonce-{}-{room}-9f3c1e", std::process::id());
        sender.send(&nonce);
        // The reader hears only the hub: the hub took it in and relayed it.
        reader.event("message", |v| v["text"] == nonce.as_str());
        hub.kill();
        let out = hub.output().join("\n");
        let err = std::fs::read_to_string(stderr.path()).expect("stderr");
        assert!(out.contains("listening on "), "notices are shown: {out}");
        assert!(err.contains("DEBUG"), "the log runs at debug");
        assert!(!out.contains(&nonce), "{room}: text on stdout: {out}");
        assert!(!err.contains(&nonce), "{room}: text in the log");
        sender.kill();
        reader.kill();
    }
}
