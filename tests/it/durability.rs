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
    newest_ids(p, 1000)
}

/// The ids of the newest `n` messages a node holds in `lobby`.
fn newest_ids(p: &mut Proc, n: usize) -> Vec<String> {
    p.send(&format!("/history {n}"));
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
    let emptied = Vec::new();
    for (what, bytes) in [
        ("truncated", truncated),
        ("bit-flipped", flipped),
        ("emptied", emptied),
    ] {
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
    // The way out it names: moved aside, the node starts with an empty
    // history (peers sync it back).
    std::fs::rename(&file, file.with_extension("redb.damaged")).expect("mv");
    let mut p = start_local(&["--data-dir", d]);
    p.address();
    assert!(history_ids(&mut p).is_empty());
}

/// A data dir on a 1.6 MB tmpfs, for the length of a test.
struct SmallDisk {
    // Unmounted before the directory is removed.
    _fs: Tmpfs,
    dir: tempfile::TempDir,
    data: String,
}

impl SmallDisk {
    fn new() -> SmallDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = Tmpfs::mount(dir.path(), "1600k");
        let data = dir
            .path()
            .join("data")
            .to_str()
            .expect("utf-8 path")
            .to_owned();
        SmallDisk { _fs: fs, dir, data }
    }

    fn data(&self) -> &str {
        &self.data
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

#[test]
fn a_full_disk_is_reported_and_the_node_keeps_relaying() {
    let disk = SmallDisk::new();
    let mut a = start_local(&["--ephemeral", "--nick", "a"]);
    let a_addr = a.address();
    let (mut b, port) = start_b_with_http(disk.data(), &a_addr);
    let b_addr = b.address();
    let mut c = start_local(&["--ephemeral", "--nick", "c", "--dial", &b_addr]);
    c.event("peer_connected", |_| true);
    fill(disk.dir.path());
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
    let (code, body) = http(port, "GET", "/ready", "").expect("ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.to_string().contains("degraded"), "{body}");
    let (code, _) = http(port, "GET", "/health", "").expect("health");
    assert_eq!(code, 200, "liveness does not depend on the disk");
}

/// One HTTP/1.1 request on a new connection: the status and the JSON body
/// (Null when the body is not JSON); None if the node is not answering.
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, Value)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(WAIT)).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let json = out
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    Some((code, json))
}

fn post_text(port: u16, text: &str) -> Option<(u16, Value)> {
    let body = serde_json::json!({ "text": text }).to_string();
    http(port, "POST", "/rooms/lobby/messages", &body)
}

/// Node `b` with its data in `data`, dialing `a_addr`, its HTTP API on a
/// free port (returned) answering.
fn start_b_with_http(data: &str, a_addr: &str) -> (Proc, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let http_addr = format!("127.0.0.1:{port}");
    let b = start_local(&[
        "--data-dir",
        data,
        "--nick",
        "b",
        "--dial",
        a_addr,
        "--http",
        &http_addr,
    ]);
    let deadline = Instant::now() + WAIT;
    while http(port, "GET", "/health", "").is_none_or(|(code, _)| code != 200) {
        assert!(
            Instant::now() < deadline,
            "HTTP API on {port} never came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (b, port)
}

/// Fills the filesystem of `dir` with a file, returned.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    filler
}

#[test]
fn kill_9_loses_no_message_the_http_api_acknowledged() {
    let mut a = start_local(&["--ephemeral", "--nick", "a"]);
    let a_addr = a.address();
    let (mut acked_total, mut trials) = (0, 0);
    for trial in 0..10u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().to_str().expect("utf-8 path").to_owned();
        let (mut b, port) = start_b_with_http(&data, &a_addr);
        b.event("peer_connected", |_| true);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let senders: Vec<_> = (0..4)
            .map(|client| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    let mut i = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let Some((code, body)) =
                            post_text(port, &format!("trial {trial} client {client} #{i}"))
                        else {
                            break;
                        };
                        i += 1;
                        if code == 202 && body["pending"] == false {
                            acked.push(body["id"].as_str().expect("id").to_owned());
                        }
                    }
                    acked
                })
            })
            .collect();
        // A moment between 0.2 and 1.2 s into the traffic, varied by trial.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos() as u64;
        std::thread::sleep(Duration::from_millis(200 + (nanos + trial * 337) % 1000));
        b.kill();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let acked: BTreeSet<String> = senders
            .into_iter()
            .flat_map(|s| s.join().expect("sender"))
            .collect();
        assert!(!acked.is_empty(), "trial {trial}: nothing was acknowledged");
        // Back with no peer: only its own store can hold them.
        let mut b = start_local(&["--data-dir", &data, "--nick", "b"]);
        let held: BTreeSet<String> = newest_ids(&mut b, acked.len() + 1000).into_iter().collect();
        let lost: Vec<&String> = acked.difference(&held).collect();
        assert!(
            lost.is_empty(),
            "trial {trial}: {} of {} acknowledged messages lost by kill -9: {lost:?}",
            lost.len(),
            acked.len()
        );
        b.kill();
        acked_total += acked.len();
        trials += 1;
    }
    eprintln!("{trials} kill -9 trials, {acked_total} messages acknowledged, 0 lost");
}

#[test]
fn a_full_disk_refuses_new_messages_names_failed_ones_and_recovers_without_a_restart() {
    let disk = SmallDisk::new();
    let mut a = start_local(&["--ephemeral", "--nick", "a"]);
    let a_addr = a.address();
    let (mut b, port) = start_b_with_http(disk.data(), &a_addr);
    b.event("peer_connected", |_| true);
    let (mut acked, mut failed, mut refused) = (BTreeSet::new(), BTreeSet::new(), 0);
    for i in 0..5 {
        let (code, body) = post_text(port, &format!("before the disk filled {i}")).expect("post");
        assert_eq!(code, 202, "{body}");
        acked.insert(body["id"].as_str().expect("id").to_owned());
    }
    let filler = fill(disk.dir.path());
    // Until the store fails and new messages are refused.
    let deadline = Instant::now() + WAIT;
    let text = "x".repeat(2000);
    let mut i = 0;
    while refused == 0 {
        assert!(
            Instant::now() < deadline,
            "the node never refused a message"
        );
        i += 1;
        let (code, body) = post_text(port, &format!("{i} {text}")).expect("b answers");
        match code {
            202 => {
                acked.insert(body["id"].as_str().expect("id").to_owned());
            }
            507 if body["published"] == true => {
                assert_eq!(body["saved"], false, "{body}");
                assert!(
                    body["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("not saved"))
                );
                failed.insert(
                    body["id"]
                        .as_str()
                        .expect("a failed message's id")
                        .to_owned(),
                );
            }
            507 => {
                assert_eq!(body["saved"], false, "{body}");
                assert!(
                    body["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("not sent"))
                );
                refused += 1;
            }
            other => panic!("POST answered {other}: {body}"),
        }
    }
    // Every message that failed after going out was named in an event.
    for id in &failed {
        b.event("not_saved", |v| {
            v["id"] == id.as_str() && v["published"] == true
        });
    }
    let (code, body) = http(port, "GET", "/ready", "").expect("ready");
    assert_eq!(code, 503, "{body}");
    eprintln!(
        "full disk: {} saved, {} sent but not saved, {refused} refused",
        acked.len(),
        failed.len()
    );
    // Space comes back: the node finds out by itself and takes messages again.
    std::fs::remove_file(&filler).expect("free space");
    b.event("store_recovered", |_| true);
    let told = b
        .lines_so_far()
        .iter()
        .filter(|l| l.contains(r#""event":"error""#) && l.contains("not saved"))
        .count();
    assert_eq!(told, 1, "told once that history is not being saved");
    let (code, body) = post_text(port, "after the disk had room again").expect("post");
    assert_eq!(code, 202, "{body}");
    acked.insert(body["id"].as_str().expect("id").to_owned());
    let (code, body) = http(port, "GET", "/rooms/lobby/messages?limit=1000", "").expect("page");
    assert_eq!(code, 200, "{body}");
    let held: BTreeSet<String> = body
        .as_array()
        .expect("a page of messages")
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = acked.difference(&held).collect();
    assert!(missing.is_empty(), "saved, then missing: {missing:?}");
    // And after a restart with no peer.
    b.kill();
    let mut b = start_local(&["--data-dir", disk.data(), "--nick", "b"]);
    let held: BTreeSet<String> = history_ids(&mut b).into_iter().collect();
    let missing: Vec<&String> = acked.difference(&held).collect();
    assert!(
        missing.is_empty(),
        "saved, then lost by a restart: {missing:?}"
    );
}
