//! History as processes and hosts see it: kill -9 during traffic, a
//! partition that heals, a damaged store file, a full disk.

use std::{
    collections::BTreeSet,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{cli::Proc, lab::Lab, support::WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_p2p-chat");

/// The ids a node holds in `lobby`, in its order (asks `/history`).
fn history_ids(p: &mut Proc) -> Vec<String> {
    p.send("/history 1000");
    let h = p.event("history", |_| true);
    h["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Polls `/history` until `check` holds, within `limit`.
fn until(
    p: &mut Proc,
    limit: Duration,
    what: &str,
    mut check: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let ids = history_ids(p);
        if check(&ids) {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; holds {}",
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sent_ids(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "sent" || v["event"] == "pending")
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect()
}

fn start_local(args: &[&str]) -> Proc {
    let child = Command::new(BIN)
        .args([
            "--no-mdns",
            "--json",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--sync-interval",
            "1",
        ])
        .args(args)
        .env("P2P_CHAT_HEARTBEAT_MS", "200")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    Proc::from_child(child)
}

#[test]
fn kill_9_during_traffic_loses_nothing_shown_as_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path").to_owned();
    let mut a = start_local(&["--ephemeral", "--nick", "a"]);
    let a_addr = a.address();
    let mut b_sent = BTreeSet::new();
    let mut sent_by_a = 0;
    for round in 0..3 {
        let mut b = start_local(&["--data-dir", &data, "--nick", "b", "--dial", &a_addr]);
        b.event("peer_connected", |_| true);
        for i in 0..60 {
            a.send(&format!("a round {round} message {i}"));
            if i % 4 == 0 {
                b.send(&format!("b round {round} message {i}"));
            }
            sent_by_a += 1;
            std::thread::sleep(Duration::from_millis(3));
        }
        // Whatever b showed as sent (or pending) before the kill must survive it.
        std::thread::sleep(Duration::from_millis(20 * round));
        b.kill();
        b_sent.extend(sent_ids(&b.output()));
    }
    assert!(b_sent.len() >= 10, "b sent {} messages", b_sent.len());
    let mut b = start_local(&["--data-dir", &data, "--nick", "b", "--dial", &a_addr]);
    let held: BTreeSet<String> = history_ids(&mut b).into_iter().collect();
    let lost: Vec<&String> = b_sent.difference(&held).collect();
    assert!(
        lost.is_empty(),
        "shown as sent, then lost by kill -9: {lost:?}"
    );
    // What a holds (all it sent, and what reached it from b) comes back to
    // b by sync, and what b kept reaches a: both end with the union.
    let a_ids: BTreeSet<String> = history_ids(&mut a).into_iter().collect();
    assert!(
        a_ids.len() >= sent_by_a,
        "a holds its own {sent_by_a} messages"
    );
    let union: BTreeSet<String> = a_ids.union(&b_sent).cloned().collect();
    until(&mut b, WAIT, "b to hold the union", |ids| {
        ids.iter().collect::<BTreeSet<_>>().len() >= union.len()
    });
    until(&mut a, WAIT, "a to hold the union", |ids| {
        ids.iter().collect::<BTreeSet<_>>().len() >= union.len()
    });
}

#[test]
fn after_a_partition_heals_every_node_holds_the_union_in_one_order() {
    let lab = Lab::new(5);
    let mut nodes: Vec<Proc> = Vec::new();
    for i in 0..5 {
        let mut cmd = lab.command(i, BIN);
        cmd.args([
            "--ephemeral",
            "--no-mdns",
            "--json",
            "--nick",
            &format!("n{i}"),
        ])
        .args(["--listen", "/ip4/0.0.0.0/tcp/4001", "--sync-interval", "2"])
        .env("P2P_CHAT_HEARTBEAT_MS", "200")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        for (j, node) in nodes.iter_mut().enumerate() {
            let id = node.event("listening", |v| {
                v["address"]
                    .as_str()
                    .is_some_and(|a| a.contains(&Lab::ip(j)))
            });
            let addr = id["address"].as_str().expect("address").to_owned();
            cmd.args(["--dial", &addr]);
            // Put the line back for the next node that needs it.
            node.unread(&id.to_string());
        }
        nodes.push(Proc::from_child(
            cmd.spawn().expect("binary starts in its namespace"),
        ));
    }
    for (i, n) in nodes.iter_mut().enumerate() {
        n.send("/peers");
        let deadline = Instant::now() + WAIT;
        loop {
            let peers = n.event("peers", |_| true);
            if peers["peers"].as_array().is_some_and(|p| p.len() == 4) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} never saw 4 peers: {peers}"
            );
            std::thread::sleep(Duration::from_millis(100));
            n.send("/peers");
        }
    }
    let (left, right) = ([0, 1, 2], [3, 4]);
    lab.cut(&left, &right);
    for round in 0..10 {
        for i in [0, 2, 3, 4] {
            nodes[i].send(&format!("n{i} during the cut {round}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Each side has its own half: 20 on the left, 20 on the right.
    until(&mut nodes[1], WAIT, "the left side's 20", |ids| {
        ids.len() == 20
    });
    until(&mut nodes[4], WAIT, "the right side's 20", |ids| {
        ids.len() == 20
    });
    lab.heal(&[0, 1, 2, 3, 4]);
    let healed = Instant::now();
    let mut views = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        let ids = until(
            n,
            Duration::from_secs(10)
                .saturating_sub(healed.elapsed())
                .max(Duration::from_secs(1)),
            &format!("node {i} to hold all 40"),
            |ids| ids.len() >= 40,
        );
        views.push(ids);
    }
    eprintln!(
        "every node held the union {:?} after the cut was removed",
        healed.elapsed()
    );
    for (i, ids) in views.iter().enumerate() {
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), 40, "node {i} holds each message exactly once");
        assert_eq!(ids, &views[0], "node {i} orders history as node 0 does");
    }
}

/// Makes a store with one message in `dir` by running the binary.
fn store_with_a_message(dir: &str) {
    let mut p = start_local(&["--data-dir", dir]);
    p.address();
    p.send("remember me");
    p.event("pending", |_| true);
    p.send("/quit");
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn a_damaged_store_stops_the_start_naming_the_file_and_the_way_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    store_with_a_message(d);
    let file = dir.path().join(p2p_chat::store::FILE);
    let original = std::fs::read(&file).expect("store file");
    let truncated = original[..original.len() / 2].to_vec();
    let mut flipped = original.clone();
    for b in flipped.iter_mut().skip(4096).step_by(997) {
        *b ^= 0x5a;
    }
    for (what, bytes) in [("truncated", truncated), ("bit-flipped", flipped)] {
        std::fs::write(&file, &bytes).expect("damage");
        let (code, stderr) = crate::cli::run(&[
            "--data-dir",
            d,
            "--no-mdns",
            "--headless",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ]);
        assert_eq!(code, 1, "{what}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{what}: one line: {stderr}"
        );
        assert!(
            stderr.contains(file.to_str().expect("path")) && stderr.contains("mv "),
            "{what}: {stderr}"
        );
        assert_eq!(
            std::fs::read(&file).expect("still there"),
            bytes,
            "{what}: the file is left as it was"
        );
    }
}

/// A tmpfs mounted for the length of a test.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn http_status(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

#[test]
fn a_full_disk_is_reported_and_the_node_keeps_relaying() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _fs = Tmpfs::mount(dir.path(), "1600k");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8 path");
    let mut a = start_local(&["--ephemeral", "--nick", "a"]);
    let a_addr = a.address();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let http = format!("127.0.0.1:{port}");
    let mut b = start_local(&[
        "--data-dir",
        d,
        "--nick",
        "b",
        "--dial",
        &a_addr,
        "--http",
        &http,
    ]);
    let b_addr = b.address();
    let mut c = start_local(&["--ephemeral", "--nick", "c", "--dial", &b_addr]);
    c.event("peer_connected", |_| true);
    // Fill the disk.
    let filler = dir.path().join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let deadline = Instant::now() + WAIT;
    let mut i = 0;
    loop {
        a.send(&format!("into a full disk {i}"));
        i += 1;
        if b.lines_so_far().iter().any(|l| l.contains("not saved")) {
            break;
        }
        assert!(Instant::now() < deadline, "b never said 'not saved'");
        std::thread::sleep(Duration::from_millis(50));
    }
    // b keeps relaying: c hears a through b.
    let last = format!("still relayed {i}");
    a.send(&last);
    c.event("message", |v| v["text"] == last.as_str());
    b.send("/status");
    let status = b.event("status", |_| true);
    assert!(
        status["status"]["store_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{status}"
    );
    let (code, body) = http_status(port, "/ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("degraded"), "{body}");
    let (code, _) = http_status(port, "/health");
    assert_eq!(code, 200, "liveness does not depend on the disk");
}
