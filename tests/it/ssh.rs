//! SSH access with the real OpenSSH client against the real binary: line
//! mode without a terminal, the full-screen client with one (in tmux),
//! public keys only, the host key kept across restarts, authorized_keys
//! read again when it changes, the session limit and the idle timeout.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::{
    cli::Proc,
    support::WAIT,
    terminal::{BIN, Tmux},
};

/// A free port on 127.0.0.1 (bound, then let go).
fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}

/// A key pair made by ssh-keygen: its private key file.
fn keygen(dir: &Path, name: &str, comment: &str) -> PathBuf {
    let path = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen runs (installed by scripts/install-deps.sh)");
    assert!(ok.success());
    path
}

fn public(key: &Path) -> String {
    std::fs::read_to_string(key.with_extension("pub")).expect("public key")
}

/// The node: headless, SSH on `port`, its data dir `data`.
fn node(data: &Path, port: u16, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(["--headless", "--no-mdns", "--nick", "nodea"])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--data-dir"])
        .arg(data)
        .args(["--ssh", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("P2P_CHAT_HEARTBEAT_MS", "200")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let proc = Proc::from_child(cmd.spawn().expect("binary starts"));
    // Up once the port answers.
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "SSH never listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    proc
}

/// The address a headless node prints it listens on.
fn listening(node: &mut Proc) -> String {
    node.line("listening", |l| l.starts_with("listening on "))
        .trim_start_matches("listening on ")
        .trim()
        .to_owned()
}

/// The ssh command line for `key` (None: no key at all).
fn ssh_args(port: u16, key: Option<&Path>, known: &Path) -> Vec<String> {
    // Not the user's ~/.ssh/config: only what is given here.
    let mut args = vec![
        "-F".into(),
        "/dev/null".into(),
        "-p".into(),
        port.to_string(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        format!("UserKnownHostsFile={}", known.display()),
        "-o".into(),
        "StrictHostKeyChecking=accept-new".into(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        "ConnectTimeout=10".into(),
    ];
    if let Some(key) = key {
        args.push("-i".into());
        args.push(key.display().to_string());
    }
    args
}

/// Runs ssh (`extra` options, then the host, then `command` if any) with
/// `stdin` as its input; its output and status.
fn ssh(port: u16, key: Option<&Path>, known: &Path, extra: &[&str], stdin: &str) -> Output {
    let (options, command) = match extra.last() {
        Some(c) if c.starts_with('/') => (&extra[..extra.len() - 1], Some(*c)),
        _ => (extra, None),
    };
    use std::io::Write as _;
    let mut child = Command::new("ssh")
        .args(ssh_args(port, key, known))
        .args(options)
        .arg("localhost")
        .args(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh runs (installed by scripts/install-deps.sh)");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write");
    drop(input);
    child.wait_with_output().expect("ssh ends")
}

/// An ssh session (line mode) whose stdin is held open and never written.
fn held(port: u16, key: &Path, known: &Path) -> std::process::Child {
    Command::new("ssh")
        .args(ssh_args(port, Some(key), known))
        .arg("localhost")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh runs")
}

/// `/metrics` of the sidecar at `http_addr`.
fn metrics(http_addr: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", &format!("http://{http_addr}/metrics")])
        .output()
        .expect("curl");
    text(&out.stdout)
}

/// Waits until `/metrics` says `line`.
fn wait_metrics(http_addr: &str, line: &str) {
    let deadline = Instant::now() + WAIT;
    while !metrics(http_addr).contains(line) {
        assert!(
            Instant::now() < deadline,
            "no {line} in:\n{}",
            metrics(http_addr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The session ran to its end (exit status 0): what it printed.
fn ran(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// ssh was refused (exit status 255), saying `why`.
fn refused(out: &Output, why: &str) {
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn line_mode_without_a_terminal_public_keys_only_and_a_host_key_that_stays() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node1");
    std::fs::create_dir_all(&data).expect("data dir");
    let carol = keygen(dir.path(), "carol", "carol@laptop");
    let dave = keygen(dir.path(), "dave", "dave@desk");
    std::fs::write(data.join("authorized_keys"), public(&carol)).expect("authorized_keys");
    let known = dir.path().join("known_hosts");
    let port = free_port();
    let mut node1 = node(&data, port, &["--no-http"]);
    let addr = listening(&mut node1);
    let mut watcher = Proc::start(&["--json", "--nick", "watcher", "--dial", &addr]);
    watcher.event("peer_nick", |v| v["nick"] == "nodea");

    // A command as ssh's argument: its answer, exit status 0.
    let out = ssh(port, Some(&carol), &known, &["/rooms"], "");
    let said = ran(&out);
    assert!(said.contains("#lobby"), "{said}");
    // More input at once than the pipe into line mode holds (64 KiB):
    // all of it is read, the last line too.
    let big = format!("{}/rooms\n", " \n".repeat(60_000));
    let out = ssh(port, Some(&carol), &known, &[], &big);
    let said = ran(&out);
    assert!(said.contains("#lobby"), "{said}");

    // Lines on stdin: each runs; a line of text is sent; commands that
    // change the whole node are refused with a line saying so.
    let out = ssh(
        port,
        Some(&carol),
        &known,
        &[],
        &format!(
            "/status\nhello over ssh\n/nick mallory\n/leave\n/msg {} psst over ssh\n",
            Proc::peer_id(&watcher.address())
        ),
    );
    let said = ran(&out);
    assert!(said.contains("nick: nodea"), "{said}");
    assert!(
        said.contains("/nick renames the whole node: not over SSH"),
        "{said}"
    );
    assert!(
        said.contains("/leave leaves the room for the whole node"),
        "{said}"
    );
    // It went out from the node as its user: `carol@nodea`, from nodea.
    let message = watcher.event("message", |v| v["text"] == "hello over ssh");
    assert_eq!(message["nick"], "carol@nodea");
    assert_eq!(message["from"], Proc::peer_id(&addr));
    // A direct message too, and nodea's own nick stays what it is.
    let direct = watcher.event("direct", |v| v["text"] == "psst over ssh");
    assert_eq!(direct["nick"], "carol@nodea");
    assert_eq!(direct["from"], Proc::peer_id(&addr));
    let renamed: Vec<String> = watcher
        .lines_so_far()
        .into_iter()
        .filter(|l| l.contains("peer_nick") && l.contains("carol@"))
        .collect();
    assert!(renamed.is_empty(), "{renamed:?}");
    // A peer that calls itself `carol@nodea` is not shown as her: a person
    // reading (line mode) sees who it is.
    let mut reader = Proc::start(&["--nick", "reader", "--dial", &addr]);
    let mut impostor = Proc::start(&["--json", "--nick", "carol@nodea", "--dial", &addr]);
    impostor.event("peer_nick", |v| v["nick"] == "nodea");
    reader.line("nodea's nick", |l| l == "* nodea connected");
    let out = ssh(port, Some(&carol), &known, &[], "the real carol\n");
    ran(&out);
    impostor.send("the fake carol");
    let real = reader.line("carol's line", |l| l.contains("the real carol"));
    assert!(real.contains("<carol@nodea> the real carol"), "{real}");
    let fake = reader.line("the impostor's line", |l| l.contains("the fake carol"));
    assert!(!fake.contains("<carol@nodea>"), "{fake}");
    // (Named by what the reader knows of the impostor's peer id: its own
    // nick, or its short id.)
    assert!(fake.contains("<carol@"), "{fake}");

    // /status names the SSH server and its host key.
    let out = ssh(port, Some(&carol), &known, &["/status"], "");
    let status = text(&out.stdout);
    assert!(
        status.contains(&format!("ssh: 127.0.0.1:{port} (host key SHA256:")),
        "{status}"
    );
    // At most 5 messages a second, 20 at once, per session: the rest are
    // refused with a line saying so.
    let burst: String = (0..30).map(|n| format!("burst {n:02}\n")).collect();
    let out = ssh(port, Some(&carol), &known, &[], &burst);
    let said = text(&out.stdout);
    let over_rate = said
        .matches("not sent: at most 5 messages a second")
        .count();
    assert!(
        (5..=10).contains(&over_rate),
        "{over_rate} refused:\n{said}"
    );

    // A key not in authorized_keys, and a password, are refused.
    let out = ssh(port, Some(&dave), &known, &["/rooms"], "");
    refused(&out, "Permission denied (publickey)");
    let out = ssh(
        port,
        None,
        &known,
        &[
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            "/rooms",
        ],
        "",
    );
    refused(&out, "Permission denied");

    // authorized_keys is read again when it changes: dave is let in.
    std::fs::write(
        data.join("authorized_keys"),
        format!("{}{}", public(&carol), public(&dave)),
    )
    .expect("authorized_keys");
    let deadline = Instant::now() + WAIT;
    loop {
        let out = ssh(port, Some(&dave), &known, &["/rooms"], "");
        if out.status.code() == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "dave never let in");
        std::thread::sleep(Duration::from_millis(500));
    }

    // The host key survives a restart: known_hosts still matches.
    let mode = {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(data.join("ssh_host_ed25519_key"))
            .expect("host key file")
            .permissions()
            .mode()
    };
    assert_eq!(mode & 0o777, 0o600);
    node1.kill();
    let _node1 = node(&data, port, &["--no-http"]);
    let out = ssh(
        port,
        Some(&carol),
        &known,
        &["-o", "StrictHostKeyChecking=yes", "/rooms"],
        "",
    );
    ran(&out);
}

#[test]
fn a_terminal_gets_the_full_screen_client_and_one_session_too_many_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node1");
    std::fs::create_dir_all(&data).expect("data dir");
    let carol = keygen(dir.path(), "carol", "carol@laptop");
    std::fs::write(data.join("authorized_keys"), public(&carol)).expect("authorized_keys");
    let known = dir.path().join("known_hosts");
    let port = free_port();
    let http = free_port();
    let http_addr = format!("127.0.0.1:{http}");
    let mut node1 = node(
        &data,
        port,
        &["--ssh-max-sessions", "1", "--http", &http_addr],
    );
    let addr = listening(&mut node1);
    let mut watcher = Proc::start(&["--json", "--nick", "watcher", "--dial", &addr]);
    watcher.event("peer_nick", |v| v["nick"] == "nodea");

    let tmux = Tmux::start("bash --norc --noprofile");
    tmux.keys(&format!(
        "ssh -t {} localhost; echo ssh-exited-$?",
        ssh_args(port, Some(&carol), &known).join(" ")
    ));
    tmux.wait_for("rooms");
    tmux.wait_for("#lobby>");
    tmux.keys("typed in a terminal over ssh");
    watcher.event("message", |v| v["text"] == "typed in a terminal over ssh");
    tmux.wait_for("typed in a terminal over ssh");
    // Its status line counts the SSH sessions (within its 2 s refresh).
    tmux.wait_for("SSH 1 session");
    // Direct messages go out as carol@nodea, at the session's rate. 30
    // lines arrive at once (one write of 2,100 bytes): no key is lost, so
    // each line is sent whole or refused with a line saying so.
    let watcher_id = Proc::peer_id(&watcher.address());
    let burst: String = (0..30)
        .map(|n| format!("/msg {watcher_id} burst {n:02}\r"))
        .collect();
    tmux.typed(&burst);
    tmux.wait_for("not sent: at most 5 messages a second");
    for n in 0..10 {
        let direct = watcher.event("direct", |v| v["text"] == format!("burst {n:02}"));
        assert_eq!(direct["nick"], "carol@nodea");
    }
    assert!(!tmux.screen().contains("usage:"), "{}", tmux.screen());
    // Resize: the client redraws at the new size.
    tmux.tmux(&["resize-window", "-x", "60", "-y", "20"]);
    let deadline = Instant::now() + WAIT;
    while tmux.visible().contains("members") {
        assert!(Instant::now() < deadline, "{}", tmux.visible());
        std::thread::sleep(Duration::from_millis(50));
    }

    // The one session allowed is taken: the next is refused.
    let out = ssh(port, Some(&carol), &known, &["/rooms"], "");
    refused(&out, "Permission denied");
    // Both counted in /metrics.
    let counted = metrics(&http_addr);
    assert!(counted.contains("p2p_chat_ssh_sessions 1"), "{counted}");
    assert!(
        counted.contains(r#"p2p_chat_ssh_refused_total{reason="too_many_sessions"} 1"#),
        "{counted}"
    );

    // Ctrl+C ends the session (not the node): exit 0, the screen back.
    tmux.press("C-c");
    tmux.wait_for("ssh-exited-0");
    assert!(!tmux.visible().contains("members"));
    // The session freed its place.
    let out = ssh(port, Some(&carol), &known, &["/rooms"], "");
    ran(&out);
    // A client killed mid-session (its connection dropped) frees it too.
    wait_metrics(&http_addr, "p2p_chat_ssh_sessions 0");
    let mut dropped = held(port, &carol, &known);
    wait_metrics(&http_addr, "p2p_chat_ssh_sessions 1");
    dropped.kill().expect("kill ssh");
    dropped.wait().expect("reaped");
    wait_metrics(&http_addr, "p2p_chat_ssh_sessions 0");
    let out = ssh(port, Some(&carol), &known, &["/rooms"], "");
    ran(&out);
    node1.kill();
}

#[test]
fn an_idle_session_is_closed_and_frees_its_place_and_an_unknown_key_is_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node1");
    std::fs::create_dir_all(&data).expect("data dir");
    let carol = keygen(dir.path(), "carol", "carol@laptop");
    std::fs::write(data.join("authorized_keys"), public(&carol)).expect("authorized_keys");
    let known = dir.path().join("known_hosts");
    let port = free_port();
    let http_addr = format!("127.0.0.1:{}", free_port());
    let extra = [
        "--ssh-idle-secs",
        "1",
        "--ssh-max-sessions",
        "1",
        "--http",
        &http_addr,
    ];
    let mut node1 = node(&data, port, &extra);
    // A session that says nothing: its stdin held open, never written.
    let started = Instant::now();
    let mut idle = held(port, &carol, &known);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = idle.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the idle session was not closed");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = idle.wait_with_output().expect("output");
    assert!(started.elapsed() >= Duration::from_secs(1), "{status:?}");
    // The server closed it.
    assert!(
        text(&out.stderr).contains("closed by remote host"),
        "{status:?}: {}",
        text(&out.stderr)
    );
    wait_metrics(&http_addr, "p2p_chat_ssh_sessions 0");
    // The one place is free again.
    let out = ssh(port, Some(&carol), &known, &["/rooms"], "");
    ran(&out);
    // A key not in authorized_keys is refused and counted.
    let dave = keygen(dir.path(), "dave", "dave@desk");
    let out = ssh(port, Some(&dave), &known, &["/rooms"], "");
    refused(&out, "Permission denied");
    let counted = metrics(&http_addr);
    assert!(
        counted.contains(r#"p2p_chat_ssh_refused_total{reason="unknown_key"} 1"#),
        "{counted}"
    );
    node1.kill();
}
