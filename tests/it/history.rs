//! Durable history and history sync in-process: late joiners, restarts,
//! a node that was down, search, and peers that misbehave in sync.

use p2p_chat::Event;

use crate::support::{TestNode, eventually, persistent, text_of};

/// Waits until `n` holds exactly the messages `texts` in `room`, in order.
/// Waits until `n` holds exactly the messages `want`, each once (one
/// millisecond's messages are in id-hash order, not sent order).
async fn holds(n: &TestNode, room: &str, want: &[String]) {
    let mut want = want.to_vec();
    want.sort();
    eventually("the room's whole history", || async {
        let got = n
            .node
            .history(room, want.len() + 10, None)
            .await
            .expect("history");
        let mut got: Vec<String> = got.into_iter().map(|m| m.text).collect();
        got.sort();
        got == want
    })
    .await;
}

/// A source node, and a witness in its room (so what the source publishes
/// goes out live).
async fn source_and_witness() -> (TestNode, TestNode) {
    let source = TestNode::start_with("source", &[]).await;
    let witness = TestNode::start_with("witness", &[&source]).await;
    source.wait_members("lobby", 1).await;
    (source, witness)
}

/// Waits until `n` has shown `count` room messages (live or by sync),
/// failing after `secs`.
async fn shows(n: &TestNode, count: u64, secs: u64) {
    tokio::time::timeout(std::time::Duration::from_secs(secs), async {
        while n.node.status().await.expect("status").stats.received < count {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} messages shown within {secs} s"));
}

fn texts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix} {i:04}")).collect()
}

#[tokio::test]
async fn a_late_joiner_receives_what_was_said_before_it_came() {
    let a = TestNode::start_with("a", &[]).await;
    let mut b = TestNode::start_with("b", &[&a]).await;
    let sent = texts("earlier", 20);
    for t in &sent {
        a.node.publish("lobby", t).await.expect("publish");
    }
    b.wait(|e| text_of(e) == Some(sent[19].as_str())).await;
    let mut c = TestNode::start_with("c", &[&b]).await;
    holds(&c, "lobby", &sent).await;
    let got = c
        .wait(|e| {
            matches!(
                e,
                Event::Message {
                    recovered: true,
                    ..
                }
            )
        })
        .await;
    assert!(matches!(got, Event::Message { nick, .. } if nick == "a"));
}

#[tokio::test]
async fn history_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = TestNode::start(persistent(dir.path(), "a")).await;
    let mut b = TestNode::start_with("b", &[&a]).await;
    b.node.publish("lobby", "from b").await.expect("publish");
    a.node.publish("lobby", "from a").await.expect("publish");
    b.wait(|e| text_of(e) == Some("from a")).await;
    eventually("a received b's message", || async {
        a.node
            .history("lobby", 10, None)
            .await
            .expect("history")
            .len()
            == 2
    })
    .await;
    a.stop().await;
    let a = TestNode::start(persistent(dir.path(), "a")).await;
    let got = a.texts("lobby", 10).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&"from a".to_string()) && got.contains(&"from b".to_string()));
    let status = a.node.status().await.expect("status");
    assert!(
        status.history.ends_with("history.redb"),
        "{}",
        status.history
    );
}

#[tokio::test]
async fn a_node_that_was_down_catches_up_on_a_thousand_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = TestNode::start_with("hub", &[]).await;
    let witness = TestNode::start_with("witness", &[&hub]).await;
    let mut cfg = persistent(dir.path(), "sleeper");
    cfg.dial = vec![hub.addr.parse().expect("addr")];
    let sleeper = TestNode::start(cfg.clone()).await;
    hub.wait_members("lobby", 2).await;
    sleeper.stop().await;
    let sent = texts("while you slept", 1000);
    let t0 = std::time::Instant::now();
    for t in &sent {
        let s = hub.node.publish("lobby", t).await.expect("publish");
        assert!(!s.pending, "the witness is there");
    }
    eprintln!("published 1000 in {:?}", t0.elapsed());
    holds(&witness, "lobby", &sent).await;
    eprintln!("witness has them after {:?}", t0.elapsed());
    let started = std::time::Instant::now();
    let sleeper = TestNode::start(cfg).await;
    holds(&sleeper, "lobby", &sent).await;
    let took = started.elapsed();
    assert_eq!(
        sleeper.node.status().await.expect("status").stats.recovered,
        1000
    );
    eprintln!("caught up on 1000 messages in {took:?}");
}

#[tokio::test]
async fn search_reads_open_and_encrypted_rooms_it_can_read() {
    let a = TestNode::start_with("a", &[]).await;
    let b = TestNode::start_with("b", &[&a]).await;
    for n in [&a, &b] {
        n.node
            .join_encrypted("vault", "a long passphrase")
            .await
            .expect("join");
    }
    let c = TestNode::start_with("c", &[&a]).await;
    c.node.join("vault").await.expect("join without passphrase");
    a.node
        .publish("lobby", "the Treasure is in the lobby")
        .await
        .expect("publish");
    a.node
        .publish("vault", "the treasure is in the vault")
        .await
        .expect("publish");
    a.node
        .publish("vault", "nothing here")
        .await
        .expect("publish");
    eventually("b finds both", || async {
        b.node
            .search("TREASURE", None, 10)
            .await
            .expect("search")
            .len()
            == 2
    })
    .await;
    let in_vault = b
        .node
        .search("treasure", Some("vault"), 10)
        .await
        .expect("search");
    assert_eq!(in_vault.len(), 1);
    assert_eq!(in_vault[0].text, "the treasure is in the vault");
    eventually("c holds the sealed messages", || async {
        c.node.status().await.expect("status").stats.opaque >= 2
    })
    .await;
    eventually("c finds the open room's message", || async {
        let found = c.node.search("treasure", None, 10).await.expect("search");
        found.len() == 1 && found[0].room == "lobby"
    })
    .await;
    let sealed = c.node.search("vault", None, 10).await.expect("search");
    assert!(sealed.is_empty(), "c cannot read the vault: {sealed:?}");
}

#[tokio::test]
async fn retention_keeps_the_newest_messages_in_memory_and_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = persistent(dir.path(), "keeper");
    cfg.history_retention = Some(p2p_chat::config::Retention {
        count: Some(5),
        max_age: None,
    });
    cfg.sync_interval = 1;
    let keeper = TestNode::start(cfg.clone()).await;
    let mut b = TestNode::start_with("b", &[&keeper]).await;
    let sent = texts("kept or not", 12);
    for t in &sent {
        b.node.publish("lobby", t).await.expect("publish");
        // One millisecond each: retention counts by time.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    b.wait(|e| matches!(e, Event::Sent { text, .. } if *text == sent[11]))
        .await;
    holds(&keeper, "lobby", &sent[7..]).await;
    keeper.stop().await;
    cfg.history_retention = None;
    let keeper = TestNode::start(cfg).await;
    let kept = keeper.texts("lobby", 50).await;
    assert_eq!(kept, sent[7..], "the store was pruned too");
}

#[tokio::test]
async fn a_new_node_catches_up_on_ten_thousand_messages() {
    let (source, _witness) = source_and_witness().await;
    let sent = texts("history", 10_000);
    for t in &sent {
        source.node.publish("lobby", t).await.expect("publish");
    }
    let started = std::time::Instant::now();
    let fresh = TestNode::start_with("fresh", &[&source]).await;
    shows(&fresh, 10_000, 120).await;
    eprintln!("caught up on 10,000 messages in {:?}", started.elapsed());
    let newest = fresh
        .node
        .history("lobby", 1000, None)
        .await
        .expect("history");
    assert_eq!(newest.len(), 1000);
    // Its last millisecond's messages are in id-hash order.
    let last_ms = newest.last().map_or(0, |m| m.ts);
    assert!(
        newest
            .iter()
            .filter(|m| m.ts == last_ms)
            .any(|m| m.text == sent[9_999]),
        "the newest page ends with the last millisecond sent"
    );
    let oldest = fresh
        .node
        .search("history 0000", None, 5)
        .await
        .expect("search");
    assert_eq!(oldest.len(), 1, "the oldest message is in the store too");
}

#[tokio::test]
async fn a_new_node_catches_up_on_long_messages_past_one_answers_budget() {
    // 300 texts of 15,000 bytes: about 4.5 MiB, where one sync answer
    // carries at most 2 MiB, so pages come back cut short and the rest
    // must be asked for again, well before the periodic round (30 s).
    let (source, _witness) = source_and_witness().await;
    let sent: Vec<String> = (0..300)
        .map(|i| format!("{i:04} {}", "x".repeat(15_000)))
        .collect();
    for t in &sent {
        source.node.publish("lobby", t).await.expect("publish");
    }
    let fresh = TestNode::start_with("fresh", &[&source]).await;
    shows(&fresh, 300, 20).await;
    let stats = fresh.node.status().await.expect("status").stats;
    assert_eq!(stats.received, 300, "each shown once");
}

#[tokio::test]
async fn a_page_before_an_id_older_than_the_ring_is_read_from_the_store() {
    // A data dir: each publish is answered once committed.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = persistent(dir.path(), "solo");
    cfg.history_ring = 2;
    let n = TestNode::start(cfg).await;
    let sent = texts("older", 6);
    let mut ids = Vec::new();
    for t in &sent {
        // No peer: each is queued, and committed before the answer. One a
        // millisecond: the store orders one millisecond's messages by id hash.
        ids.push(n.node.publish("lobby", t).await.expect("publish").id);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let page = n
        .node
        .history("lobby", 2, Some(&ids[4]))
        .await
        .expect("history");
    let got: Vec<&str> = page.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(got, [sent[2].as_str(), sent[3].as_str()]);
    let none = n
        .node
        .history("lobby", 2, Some("no-such-id"))
        .await
        .expect("history");
    assert!(none.is_empty(), "nothing is before an unknown id");
}
