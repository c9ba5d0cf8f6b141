//! Encrypted rooms in-process: members read each other, everyone else relays
//! ciphertext and sees one notice, and nothing sealed can be moved, altered
//! or replayed.

use libp2p::futures::StreamExt;
use p2p_chat::{
    Config, Event,
    crypto::{Binding, RoomKey},
    protocol::{self, Body, Envelope, Inner},
};

use crate::{
    node::rogue::Rogue,
    support::{TestNode, eventually, text_of},
};

const ROOM: &str = "secret-plans";
const PASS: &str = "correct horse battery staple";

async fn member(nick: &str, dial: &[&TestNode], pass: Option<&str>) -> TestNode {
    let n = TestNode::start_with(nick, dial).await;
    match pass {
        Some(p) => assert!(n.node.join_encrypted(ROOM, p).await.expect("join")),
        None => assert!(n.node.join(ROOM).await.expect("join")),
    }
    n
}

/// Events received so far, without waiting.
fn drain(n: &mut TestNode) -> Vec<Event> {
    std::iter::from_fn(|| n.events.try_recv().ok()).collect()
}

#[tokio::test]
async fn members_read_each_other_and_others_get_one_notice() {
    let mut a = member("a", &[], Some(PASS)).await;
    let mut b = member("b", &[&a], Some(PASS)).await;
    let mut c = member("c", &[&a], None).await;
    let mut d = member("d", &[&a], Some("wrong passphrase")).await;
    let rooms = a.node.rooms().await.expect("rooms");
    assert!(rooms.iter().any(|r| r.room == ROOM && r.encrypted));
    // Live delivery reaches the members a node knows of when it publishes.
    a.wait_members(ROOM, 3).await;
    for i in 0..3 {
        a.node
            .publish(ROOM, &format!("plan {i}"))
            .await
            .expect("publish");
    }
    b.node.publish(ROOM, "agreed").await.expect("publish");
    for i in 0..3 {
        let want = format!("plan {i}");
        b.wait(|e| text_of(e) == Some(want.as_str())).await;
    }
    let got = a.wait(|e| text_of(e) == Some("agreed")).await;
    assert!(matches!(got, Event::Message { room, nick, .. } if room == ROOM && nick == "b"));
    for n in [&c, &d] {
        eventually("all four sealed messages relayed", || async {
            n.node.status().await.expect("status").stats.opaque == 4
        })
        .await;
    }
    let a_key = rooms
        .iter()
        .find(|r| r.room == ROOM)
        .map(|r| r.unreadable)
        .expect("room");
    assert_eq!(a_key, 0, "a reads everything");
    let a_id = a.node.peer_id().to_string();
    for (n, has_key) in [(&mut c, false), (&mut d, true)] {
        let events = drain(n);
        let notices: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e, Event::Unreadable { from, .. } if *from == a_id))
            .collect();
        // One notice per author and key: a's first message (b's is another
        // author's).
        assert_eq!(notices.len(), 1, "{events:?}");
        assert!(
            matches!(notices[0], Event::Unreadable { room, count: 1, theirs: Some(_), ours, .. }
                if room == ROOM && ours.is_some() == has_key),
            "{:?}",
            notices[0]
        );
        let rooms = n.node.rooms().await.expect("rooms");
        assert_eq!(
            rooms.iter().find(|r| r.room == ROOM).map(|r| r.unreadable),
            Some(4)
        );
        assert!(
            !events.iter().any(|e| matches!(e, Event::Message { .. })),
            "{events:?}"
        );
        assert!(
            n.node
                .history(ROOM, 100, None)
                .await
                .expect("history")
                .is_empty()
        );
    }
    // The member with the wrong passphrase fixes it and reads what follows.
    d.node.join_encrypted(ROOM, PASS).await.expect("rejoin");
    a.node.publish(ROOM, "welcome d").await.expect("publish");
    d.wait(|e| text_of(e) == Some("welcome d")).await;
}

#[tokio::test]
async fn a_member_drops_plaintext_in_an_encrypted_room() {
    let mut a = member("a", &[], Some(PASS)).await;
    let mut c = member("c", &[&a], None).await;
    c.node.publish(ROOM, "in the clear").await.expect("publish");
    eventually("the plaintext message counted", || async {
        a.node
            .status()
            .await
            .expect("status")
            .stats
            .rejected
            .get("plaintext_in_encrypted_room")
            == Some(&1)
    })
    .await;
    a.node.publish(ROOM, "sealed").await.expect("publish");
    // Both sides are told, each naming the other.
    let c_id = c.node.peer_id().to_string();
    a.wait(|e| matches!(e, Event::Unreadable { from, theirs: None, ours: Some(_), .. } if *from == c_id))
        .await;
    c.wait(|e| {
        matches!(
            e,
            Event::Unreadable {
                theirs: Some(_),
                ours: None,
                ..
            }
        )
    })
    .await;
    assert!(
        !drain(&mut a)
            .iter()
            .any(|e| text_of(e) == Some("in the clear"))
    );
}

/// A sealed envelope from `rogue`'s identity, made with the room key.
fn sealed(key: &RoomKey, rogue: &Rogue, id: &str, ts: u64, plaintext: &[u8]) -> Envelope {
    let from = rogue.peer_id().to_string();
    let topic = protocol::topic_for(ROOM).hash().to_string();
    let body = Body::Sealed(key.seal(
        &Binding {
            version: protocol::VERSION,
            topic: &topic,
            from: &from,
            id,
            ts,
        },
        plaintext,
    ));
    let mut env = Envelope {
        v: protocol::VERSION,
        id: id.into(),
        from,
        ts,
        body,
        sig: String::new(),
    };
    rogue.sign(&mut env);
    env
}

fn inner(text: &str) -> Vec<u8> {
    serde_json::to_vec(&Inner {
        nick: "rogue".into(),
        text: text.into(),
    })
    .expect("json")
}

#[tokio::test]
async fn sealed_messages_cannot_be_replayed_altered_or_moved() {
    let mut a = member("a", &[], Some(PASS)).await;
    let mut rogue = Rogue::connect_to(&a.addr, ROOM).await;
    let key = RoomKey::derive(PASS, ROOM).expect("key");
    let (id, ts) = (protocol::new_id(), protocol::now_ms());
    let original = sealed(&key, &rogue, &id, ts, &inner("once"));
    rogue.publish(original.encode());
    // The same message sealed again under a fresh nonce: a different frame,
    // as a replay after gossipsub's duplicate cache expired would be.
    rogue.publish(sealed(&key, &rogue, &id, ts, &inner("once")).encode());
    // Altered ciphertext.
    let mut altered = sealed(&key, &rogue, &protocol::new_id(), ts, &inner("altered"));
    if let Body::Sealed(s) = &mut altered.body {
        // (re-signed below: only the ciphertext is wrong)
        s.ciphertext = s
            .ciphertext
            .replacen(|c: char| c.is_ascii_alphabetic(), "A", 1);
        if let Some(c) = s.ciphertext.chars().next() {
            let flip = if c == 'B' { "C" } else { "B" };
            s.ciphertext.replace_range(0..1, flip);
        }
    }
    rogue.sign(&mut altered);
    rogue.publish(altered.encode());
    // Sealed for another time than it claims.
    let mut moved = sealed(&key, &rogue, &protocol::new_id(), ts, &inner("moved"));
    moved.ts += 1;
    rogue.sign(&mut moved);
    rogue.publish(moved.encode());
    // Not UTF-8 inside.
    rogue.publish(sealed(&key, &rogue, &protocol::new_id(), ts, &[0xff, 0xfe, 0x00]).encode());
    rogue.publish(
        sealed(
            &key,
            &rogue,
            &protocol::new_id(),
            ts + 1, // after "once", so history order is known
            &inner("the last one"),
        )
        .encode(),
    );
    let node = a.node.clone();
    let _ = tokio::join!(
        a.wait(|e| text_of(e) == Some("the last one")),
        rogue.drive_for(1500)
    );
    eventually("every bad frame counted", || async {
        let r = node.status().await.expect("status").stats.rejected;
        r.get("duplicate") == Some(&1)
            && r.get("bad_ciphertext") == Some(&2)
            && r.get("invalid_utf8") == Some(&1)
    })
    .await;
    let texts = a.texts(ROOM, 10).await;
    assert_eq!(texts, ["once", "the last one"]);
}

#[tokio::test]
async fn the_wire_carries_neither_room_name_nor_nick_nor_text() {
    let a = member("alice-the-author", &[], Some(PASS)).await;
    let mut rogue = Rogue::connect_to(&a.addr, ROOM).await;
    a.node.publish(ROOM, "meet at noon").await.expect("publish");
    let frame = tokio::time::timeout(crate::support::WAIT, async {
        loop {
            let ev = rogue.swarm.select_next_some().await;
            if let libp2p::swarm::SwarmEvent::Behaviour(libp2p::gossipsub::Event::Message {
                message,
                ..
            }) = ev
            {
                return message.data;
            }
        }
    })
    .await
    .expect("frame in time");
    let wire = String::from_utf8_lossy(&frame);
    for secret in [ROOM, "alice-the-author", "meet at noon", PASS] {
        assert!(!wire.contains(secret), "{secret} on the wire: {wire}");
    }
    assert!(!protocol::topic_for(ROOM).to_string().contains(ROOM));
}

#[tokio::test]
async fn passphrase_from_config_joins_the_start_room_encrypted() {
    let mut cfg = Config::for_tests();
    cfg.room = ROOM.into();
    cfg.passphrase = Some(p2p_chat::config::Secret::new(PASS));
    let mut a = TestNode::start(cfg).await;
    let b = member("b", &[&a], Some(PASS)).await;
    assert!(
        a.node
            .rooms()
            .await
            .expect("rooms")
            .iter()
            .any(|r| r.room == ROOM && r.encrypted)
    );
    b.node
        .publish(ROOM, "hello via config")
        .await
        .expect("publish");
    a.wait(|e| text_of(e) == Some("hello via config")).await;
    let mut shown = Config::for_tests();
    shown.passphrase = Some(p2p_chat::config::Secret::new(PASS));
    assert!(
        !format!("{shown:?}").contains(PASS),
        "a passphrase never reaches a log line"
    );
}

mod processes {
    //! The real binary: four processes, two members, one without the
    //! passphrase, one with a wrong one.

    use std::{
        fs::File,
        path::Path,
        process::{Command, Stdio},
    };

    use super::{PASS, ROOM};
    use crate::cli::{Proc, run};

    const BIN: &str = env!("CARGO_BIN_EXE_p2p-chat");

    fn start(dir: &Path, nick: &str, dial: Option<&str>, setup: impl FnOnce(&mut Command)) -> Proc {
        let data = dir.join(nick);
        let log = File::create(dir.join(format!("{nick}.log"))).expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--no-mdns",
            "--json",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--room",
            ROOM,
            "--nick",
            nick,
        ])
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "debug")
        .env("P2P_CHAT_HEARTBEAT_MS", "200")
        .env_remove("P2P_CHAT_PASSPHRASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log);
        if let Some(addr) = dial {
            cmd.args(["--dial", addr]);
        }
        setup(&mut cmd);
        Proc::from_child(cmd.spawn().expect("binary starts"))
    }

    /// Asks for `/status` until `opaque` sealed messages were relayed.
    fn wait_opaque(p: &mut Proc, opaque: u64) {
        for _ in 0..100 {
            p.send("/status");
            let status = p.event("status", |_| true);
            if status["status"]["stats"]["opaque"] == opaque {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("never relayed {opaque} sealed messages");
    }

    /// Asks for `/rooms` until the room has `n` members.
    fn wait_members(p: &mut Proc, n: u64) {
        for _ in 0..100 {
            p.send("/rooms");
            let rooms = p.event("rooms", |_| true);
            let members = rooms["rooms"]
                .as_array()
                .and_then(|rs| rs.iter().find(|r| r["room"] == ROOM))
                .map(|r| r["members"].clone());
            if members == Some(n.into()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the room never had {n} members");
    }

    fn grep_tree(dir: &Path, needles: &[&str]) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                grep_tree(&path, needles);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                let text = String::from_utf8_lossy(&bytes);
                for n in needles {
                    assert!(!text.contains(n), "{n:?} found in {}", path.display());
                }
            }
        }
    }

    #[test]
    fn only_members_read_and_nothing_readable_reaches_disk_or_logs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pass_file = dir.path().join("passphrase");
        std::fs::write(&pass_file, format!("{PASS}\n")).expect("write");
        let mut a = start(dir.path(), "a", None, |c| {
            c.env("P2P_CHAT_PASSPHRASE", PASS);
        });
        let a_addr = a.address();
        let a_id = Proc::peer_id(&a_addr);
        let mut b = start(dir.path(), "b", Some(&a_addr), |c| {
            c.arg("--passphrase-file").arg(&pass_file);
        });
        let mut c = start(dir.path(), "c", Some(&a_addr), |_| {});
        let mut d = start(dir.path(), "d", Some(&a_addr), |c| {
            c.env("P2P_CHAT_PASSPHRASE", "not the passphrase");
        });
        for p in [&mut b, &mut c, &mut d] {
            p.event("peer_connected", |v| v["peer"] == a_id.as_str());
        }
        wait_members(&mut a, 3);
        a.send("alpha: the vault code is 4711");
        b.send("bravo: meet behind the station");
        b.event("message", |v| {
            v["text"] == "alpha: the vault code is 4711" && v["room"] == ROOM
        });
        a.event("message", |v| {
            v["text"] == "bravo: meet behind the station" && v["nick"] == "b"
        });
        wait_opaque(&mut c, 2);
        wait_opaque(&mut d, 2);
        for p in [&mut a, &mut b, &mut c, &mut d] {
            p.send("/quit");
            assert_eq!(p.wait_exit(), 0);
        }
        for (p, ours) in [(&mut c, r#""ours":null"#), (&mut d, r#""ours":""#)] {
            let out = p.output();
            let notices: Vec<&String> = out
                .iter()
                .filter(|l| l.contains(r#""event":"unreadable""#))
                .collect();
            assert_eq!(notices.len(), 2, "one per author (a and b): {out:#?}");
            assert!(notices.iter().all(|n| n.contains(ours)), "{notices:?}");
            assert!(
                !out.iter().any(|l| l.contains(r#""event":"message""#)),
                "{out:#?}"
            );
            assert!(
                !out.iter()
                    .any(|l| l.contains("vault") || l.contains("station")),
                "{out:#?}"
            );
        }
        let secrets = [
            "vault code",
            "behind the station",
            PASS,
            "not the passphrase",
        ];
        grep_tree(&dir.path().join("c"), &secrets);
        grep_tree(&dir.path().join("d"), &secrets);
        for log in ["a.log", "b.log", "c.log", "d.log"] {
            let text = std::fs::read_to_string(dir.path().join(log)).expect("log");
            assert!(text.contains("DEBUG"), "{log} is a debug log");
            for s in secrets {
                assert!(!text.contains(s), "{s:?} found in {log}");
            }
        }
    }

    #[test]
    fn a_passphrase_on_the_command_line_is_refused() {
        let (code, stderr) = run(&["--ephemeral", "--passphrase", "hunter2"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains("--passphrase-file") && stderr.contains("P2P_CHAT_PASSPHRASE"),
            "{stderr}"
        );
        let (code, stderr) = run(&[
            "--ephemeral",
            "--no-mdns",
            "--passphrase-file",
            "/nonexistent/pass",
        ]);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("/nonexistent/pass"), "{stderr}");
    }
}
