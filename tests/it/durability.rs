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
        for j in 0..i {
            let id = nodes[j].event("listening", |v| {
                v["address"]
                    .as_str()
                    .is_some_and(|a| a.contains(&Lab::ip(j)))
            });
            let addr = id["address"].as_str().expect("address").to_owned();
            cmd.args(["--dial", &addr]);
            // Put the line back for the next node that needs it.
            nodes[j].unread(&id.to_string());
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
