//! The node in-process: 2 and 3 nodes on loopback TCP, through the same
//! `Node::spawn` the binary uses.

use p2p_chat::{
    Config, Event,
    node::Error,
    protocol::{Envelope, MAX_TEXT_BYTES},
};

use crate::support::{TestNode, eventually, text_of};

#[tokio::test]
async fn room_message_reaches_the_other_node() {
    let mut a = TestNode::start_with("alice", &[]).await;
    let b = TestNode::start_with("bob", &[&a]).await;
    b.node
        .publish("lobby", "hello alice")
        .await
        .expect("publish");
    let got = a.wait(|e| text_of(e) == Some("hello alice")).await;
    let Event::Message {
        room, from, nick, ..
    } = got
    else {
        unreachable!()
    };
    assert_eq!((room.as_str(), nick.as_str()), ("lobby", "bob"));
    assert_eq!(from, b.id());
}

#[tokio::test]
async fn message_sent_before_any_peer_is_queued_then_delivered() {
    let mut a = TestNode::start_with("alice", &[]).await;
    let sent = a
        .node
        .publish("lobby", "anyone there?")
        .await
        .expect("queued, not an error");
    assert!(sent.pending);
    a.wait(|e| matches!(e, Event::Pending { id, .. } if *id == sent.id))
        .await;
    let mut b = TestNode::start_with("bob", &[&a]).await;
    let got = b.wait(|e| text_of(e) == Some("anyone there?")).await;
    let Event::Message { id, .. } = got else {
        unreachable!()
    };
    assert_eq!(id, sent.id, "the queued message keeps its id");
    a.wait(|e| matches!(e, Event::Sent { id, .. } if *id == sent.id))
        .await;
}

#[tokio::test]
async fn three_nodes_in_a_line_relay_room_messages() {
    let mut a = TestNode::start_with("a", &[]).await;
    let mut b = TestNode::start_with("b", &[&a]).await;
    let mut c = TestNode::start_with("c", &[&b]).await;
    c.node.publish("lobby", "from c").await.expect("publish");
    a.wait(|e| text_of(e) == Some("from c")).await;
    b.wait(|e| text_of(e) == Some("from c")).await;
    a.node.publish("lobby", "from a").await.expect("publish");
    c.wait(|e| text_of(e) == Some("from a")).await;
}

#[tokio::test]
async fn rooms_are_separate() {
    let mut a = TestNode::start_with("a", &[]).await;
    let b = TestNode::start_with("b", &[&a]).await;
    a.node.join("dev").await.expect("join");
    b.node.join("dev").await.expect("join");
    assert!(b.node.leave("lobby").await.expect("leave"));
    b.node.publish("dev", "in dev").await.expect("publish");
    let got = a.wait(|e| text_of(e) == Some("in dev")).await;
    assert!(matches!(got, Event::Message { room, .. } if room == "dev"));
    assert!(matches!(
        b.node.publish("lobby", "x").await,
        Err(Error::NotJoined(_))
    ));
    let history = a.node.history("dev", 10, None).await.expect("history");
    assert_eq!(
        history.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["in dev"]
    );
}

#[tokio::test]
async fn direct_message_gets_a_receipt() {
    let mut a = TestNode::start_with("alice", &[]).await;
    let mut b = TestNode::start_with("bob", &[&a]).await;
    b.wait_nick(&a).await;
    let receipt = b
        .node
        .send_direct("alice", "psst")
        .await
        .expect("delivered");
    assert_eq!(receipt.to, a.id());
    let got = a.wait(|e| text_of(e) == Some("psst")).await;
    let Event::Direct { id, from, nick, .. } = got else {
        panic!("not a direct message: {got:?}")
    };
    assert_eq!(
        (id, from, nick),
        (receipt.id.clone(), b.id(), "bob".to_string())
    );
    b.wait(|e| matches!(e, Event::Receipt { id, .. } if *id == receipt.id))
        .await;
    // And back, by peer id.
    let back = a
        .node
        .send_direct(&b.id(), "hi bob")
        .await
        .expect("delivered");
    b.wait(|e| text_of(e) == Some("hi bob")).await;
    assert_eq!(back.to, b.id());
}

#[tokio::test]
async fn direct_message_to_unknown_or_gone_peer_fails_cleanly() {
    let a = TestNode::start_with("alice", &[]).await;
    let mut b = TestNode::start_with("bob", &[&a]).await;
    assert!(matches!(
        b.node.send_direct("nobody", "hi").await,
        Err(Error::UnknownPeer(_))
    ));
    b.wait_nick(&a).await;
    let a_id = a.id();
    a.stop().await;
    b.wait(|e| matches!(e, Event::PeerDisconnected { peer } if *peer == a_id))
        .await;
    let err = b
        .node
        .send_direct(&a_id, "are you there")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotConnected(_)), "{err}");
    assert!(matches!(
        b.node.send_direct("alice", "hi").await,
        Err(Error::UnknownPeer(_))
    ));
}

#[tokio::test]
async fn peers_show_nicks_and_equal_nicks_stay_distinguishable() {
    let mut a = TestNode::start_with("alice", &[]).await;
    let b1 = TestNode::start_with("sam", &[&a]).await;
    let b2 = TestNode::start_with("sam", &[&a]).await;
    a.wait_nick(&b1).await;
    a.wait_nick(&b2).await;
    let peers = a.node.peers().await.expect("peers");
    assert_eq!(peers.len(), 2);
    assert!(peers.iter().all(|p| p.nick.as_deref() == Some("sam")));
    assert_ne!(peers[0].display, peers[1].display);
    assert!(
        peers
            .iter()
            .all(|p| p.display.starts_with("sam#") && !p.addresses.is_empty())
    );
    let err = a.node.send_direct("sam", "which one?").await.unwrap_err();
    assert!(matches!(err, Error::AmbiguousNick { .. }), "{err}");
    a.node
        .send_direct(&peers[0].display, "you")
        .await
        .expect("nick#suffix names one");
}

#[tokio::test]
async fn nick_change_reaches_peers() {
    let mut a = TestNode::start_with("alice", &[]).await;
    let b = TestNode::start_with("bob", &[&a]).await;
    a.wait_nick(&b).await;
    b.node.set_nick("robert").await.expect("nick");
    let b_id = b.id();
    a.wait(|e| matches!(e, Event::PeerNick { peer, nick } if *peer == b_id && nick == "robert"))
        .await;
    assert!(b.node.set_nick("has space").await.is_err());
}

#[tokio::test]
async fn redials_a_peer_that_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config::for_tests();
    cfg.ephemeral = false;
    cfg.data_dir = Some(dir.path().to_path_buf());
    cfg.nick = Some("server".into());
    let server = TestNode::start(cfg.clone()).await;
    let addr = server.addr.clone();
    let server_id = server.id();
    let mut client = TestNode::start_with("client", &[&server]).await;
    client
        .wait(|e| matches!(e, Event::PeerConnected { peer } if *peer == server_id))
        .await;
    server.stop().await;
    client
        .wait(|e| matches!(e, Event::PeerDisconnected { peer } if *peer == server_id))
        .await;
    // Same identity and port: the dialer must find it again by itself.
    cfg.listen = vec![without_p2p(&addr)];
    let mut server = TestNode::start(cfg).await;
    assert_eq!(server.id(), server_id, "identity survives a restart");
    client
        .wait(|e| matches!(e, Event::PeerConnected { peer } if *peer == server_id))
        .await;
    client
        .node
        .publish("lobby", "welcome back")
        .await
        .expect("publish");
    server.wait(|e| text_of(e) == Some("welcome back")).await;
}

fn without_p2p(addr: &str) -> libp2p::Multiaddr {
    let mut a: libp2p::Multiaddr = addr.parse().expect("addr");
    a.pop();
    a
}

#[tokio::test]
async fn oversize_text_is_refused_at_the_sender() {
    let a = TestNode::start_with("alice", &[]).await;
    let big = "x".repeat(MAX_TEXT_BYTES + 1);
    let err = a.node.publish("lobby", &big).await.unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { size, limit } if size == MAX_TEXT_BYTES + 1 && limit == MAX_TEXT_BYTES)
    );
    assert!(err.to_string().contains("16385") && err.to_string().contains("16384"));
    assert!(matches!(
        a.node.send_direct("x", &big).await,
        Err(Error::TooLarge { .. })
    ));
    a.node
        .publish("lobby", &"y".repeat(MAX_TEXT_BYTES))
        .await
        .expect("exactly the limit is fine");
    assert!(matches!(
        a.node.publish("lobby", "  ").await,
        Err(Error::Empty)
    ));
}

#[tokio::test]
async fn nodes_sharing_one_bootstrap_peer_form_a_mesh() {
    let hub = TestNode::start_with("hub", &[]).await;
    let mut others = Vec::new();
    for nick in ["n1", "n2", "n3"] {
        let mut cfg = Config::for_tests();
        cfg.nick = Some(nick.into());
        cfg.bootstrap = vec![hub.addr.parse().expect("addr")];
        others.push(TestNode::start(cfg).await);
    }
    let ids: Vec<String> = others.iter().map(TestNode::id).collect();
    for (i, n) in others.iter().enumerate() {
        let want: Vec<String> = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, id)| id.clone())
            .collect();
        eventually("a connection to every other non-hub node", || async {
            let peers = n.node.peers().await.expect("peers");
            want.iter().all(|w| peers.iter().any(|p| p.peer == *w))
        })
        .await;
    }
}

/// A bare gossipsub peer, to send what a p2p-chat node never would.
pub mod rogue {
    use libp2p::{
        Multiaddr, Swarm, futures::StreamExt, gossipsub, gossipsub::IdentTopic, swarm::SwarmEvent,
    };

    pub struct Rogue {
        pub swarm: Swarm<gossipsub::Behaviour>,
        pub topic: IdentTopic,
        pub key: libp2p::identity::Keypair,
    }

    impl Rogue {
        pub async fn connect(addr: &str) -> Rogue {
            Rogue::connect_to(addr, "lobby").await
        }

        pub async fn connect_to(addr: &str, room: &str) -> Rogue {
            let key = libp2p::identity::Keypair::generate_ed25519();
            let mut swarm = crate::support::tcp_swarm(key.clone(), |_| {
                let cfg = gossipsub::ConfigBuilder::default()
                    .heartbeat_interval(std::time::Duration::from_millis(200))
                    .validation_mode(gossipsub::ValidationMode::Anonymous)
                    .message_id_fn(|m| p2p_chat::protocol::message_id(&m.data).into())
                    .build()
                    .expect("config");
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, cfg)
                    .expect("behaviour")
            });
            swarm
                .behaviour_mut()
                .subscribe(&p2p_chat::protocol::topic_for(room))
                .expect("subscribe");
            swarm
                .dial(addr.parse::<Multiaddr>().expect("addr"))
                .expect("dial");
            let mut rogue = Rogue {
                swarm,
                topic: p2p_chat::protocol::topic_for(room),
                key,
            };
            rogue
                .drive_until(|e| {
                    matches!(
                        e,
                        SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. })
                    )
                })
                .await;
            rogue
        }

        pub fn peer_id(&self) -> libp2p::PeerId {
            *self.swarm.local_peer_id()
        }

        /// Signs `env` as its author would, for this rogue's topic.
        pub fn sign(&self, env: &mut p2p_chat::protocol::Envelope) {
            env.sign(&self.key, self.topic.hash().as_str());
        }

        pub fn publish(&mut self, data: Vec<u8>) {
            self.swarm
                .behaviour_mut()
                .publish(self.topic.clone(), data)
                .expect("publish");
        }

        pub async fn drive_until(
            &mut self,
            mut pred: impl FnMut(&SwarmEvent<gossipsub::Event>) -> bool,
        ) {
            tokio::time::timeout(crate::support::WAIT, async {
                loop {
                    if pred(&self.swarm.select_next_some().await) {
                        return;
                    }
                }
            })
            .await
            .expect("rogue event in time");
        }

        /// Keeps the swarm running (so frames go out) for the given time.
        pub async fn drive_for(&mut self, ms: u64) {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(ms), async {
                loop {
                    self.swarm.select_next_some().await;
                }
            })
            .await;
        }
    }
}

fn envelope(rogue: &rogue::Rogue, from: &libp2p::PeerId, text: String) -> Envelope {
    let mut env = Envelope::text(from, "lobby", "rogue", &text);
    rogue.sign(&mut env);
    env
}

#[tokio::test]
async fn malformed_forged_and_oversize_envelopes_are_rejected_and_counted() {
    let mut a = TestNode::start_with("alice", &[]).await;
    let mut rogue = rogue::Rogue::connect(&a.addr).await;
    let me = rogue.peer_id();
    rogue.publish(b"{not an envelope".to_vec());
    let forged = envelope(&rogue, &libp2p::PeerId::random(), "forged sender".into());
    rogue.publish(forged.encode());
    let big = envelope(&rogue, &me, "z".repeat(MAX_TEXT_BYTES + 100));
    rogue.publish(big.encode());
    let fine = envelope(&rogue, &me, "a fine message".into());
    rogue.publish(fine.encode());
    let node = a.node.clone();
    let (wait_good, _) = tokio::join!(
        a.wait(|e| text_of(e) == Some("a fine message")),
        rogue.drive_for(1500)
    );
    drop(wait_good);
    eventually("three rejections counted", || async {
        let stats = node.status().await.expect("status").stats;
        stats.rejected.get("malformed") == Some(&1)
            && stats.rejected.get("forged") == Some(&1)
            && stats.rejected.get("too_large") == Some(&1)
    })
    .await;
    let history = a.node.history("lobby", 100, None).await.expect("history");
    assert_eq!(
        history.len(),
        1,
        "only the valid message is kept: {history:?}"
    );
}

#[tokio::test]
async fn a_live_message_from_long_ago_is_recovered_and_one_before_2025_refused() {
    let mut a = TestNode::start_with("alice", &[]).await;
    let mut rogue = rogue::Rogue::connect(&a.addr).await;
    let me = rogue.peer_id();
    let mut ancient = envelope(&rogue, &me, "from 2024".into());
    ancient.ts = 1_704_067_200_000; // 2024-01-01
    rogue.sign(&mut ancient);
    rogue.publish(ancient.encode());
    let mut old = envelope(&rogue, &me, "an hour late".into());
    old.ts -= 3_600_000;
    rogue.sign(&mut old);
    rogue.publish(old.encode());
    let (late, _) = tokio::join!(
        a.wait(|e| text_of(e) == Some("an hour late")),
        rogue.drive_for(1500)
    );
    assert!(
        matches!(late, Event::Message { recovered: true, ts, .. } if ts == old.ts),
        "shown in its place, never as new: {late:?}"
    );
    let node = a.node.clone();
    eventually("the 2024 message refused", || async {
        let stats = node.status().await.expect("status").stats;
        stats.rejected.get("before_2025") == Some(&1)
    })
    .await;
    let history = a.node.history("lobby", 10, None).await.expect("history");
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["an hour late"], "stored, the 2024 one not");
}

#[tokio::test]
async fn replayed_envelope_is_shown_once() {
    let mut a = TestNode::start_with("alice", &[]).await;
    let mut rogue = rogue::Rogue::connect(&a.addr).await;
    let env = envelope(&rogue, &rogue.peer_id(), "once".into());
    rogue.publish(env.encode());
    let mut again = env.clone();
    again.ts += 1; // different frame, same message id
    rogue.sign(&mut again);
    rogue.publish(again.encode());
    let node = a.node.clone();
    let _ = tokio::join!(
        a.wait(|e| text_of(e) == Some("once")),
        rogue.drive_for(1000)
    );
    eventually("the replay counted as a duplicate", || async {
        node.status()
            .await
            .expect("status")
            .stats
            .rejected
            .get("duplicate")
            == Some(&1)
    })
    .await;
    assert_eq!(
        a.node
            .history("lobby", 10, None)
            .await
            .expect("history")
            .len(),
        1
    );
}

#[tokio::test]
async fn quic_and_dns_addresses_work() {
    let mut cfg = Config::for_tests();
    cfg.listen = vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("addr")];
    cfg.nick = Some("quic".into());
    let mut a = TestNode::start(cfg).await;
    assert!(a.addr.contains("/quic-v1/p2p/"), "{}", a.addr);
    let b = TestNode::start_with("b", &[&a]).await;
    b.node.publish("lobby", "over quic").await.expect("publish");
    a.wait(|e| text_of(e) == Some("over quic")).await;

    let tcp = TestNode::start_with("tcp", &[]).await;
    let by_name = tcp.addr.replace("/ip4/127.0.0.1/", "/dns4/localhost/");
    let mut cfg = Config::for_tests();
    cfg.dial = vec![by_name.parse().expect("dns addr")];
    let mut c = TestNode::start(cfg).await;
    let tcp_id = tcp.id();
    c.wait(|e| matches!(e, Event::PeerConnected { peer } if *peer == tcp_id))
        .await;
}

#[tokio::test]
async fn a_room_of_two_forms_its_mesh_quickly() {
    let a = TestNode::start_with("a", &[]).await;
    let _b = TestNode::start_with("b", &[&a]).await;
    eventually("a mesh peer in the lobby", || async {
        let rooms = a.node.rooms().await.expect("rooms");
        rooms
            .iter()
            .any(|r| r.room == "lobby" && r.members == 1 && r.mesh_peers == 1)
    })
    .await;
}

#[tokio::test]
async fn what_is_shown_as_sent_or_queued_is_already_in_the_store() {
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let mut a = TestNode::start(crate::support::persistent(dirs[0].path(), "alice")).await;
    // Queued: committed before publish answers.
    let queued = a
        .node
        .publish("lobby", "queued word")
        .await
        .expect("queued");
    assert!(queued.pending);
    let found = a.node.search("queued word", None, 5).await.expect("search");
    assert_eq!(found.len(), 1, "a queued message is committed first");
    let mut cfg = crate::support::persistent(dirs[1].path(), "bob");
    cfg.dial = vec![a.addr.parse().expect("addr")];
    let b = TestNode::start(cfg).await;
    // Sent: answered, and shown (the sent event), only once committed.
    let mut events = b.node.subscribe();
    for i in 0..20 {
        let text = format!("burst {i:02}");
        let sent = b.node.publish("lobby", &text).await.expect("publish");
        let found = b.node.search(&text, None, 5).await.expect("search");
        assert_eq!(found.len(), 1, "{text} is in the store once answered");
        let shown = loop {
            match events.recv().await {
                Ok(Event::Sent { id, .. }) if id == sent.id => break true,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break false,
            }
        };
        assert!(shown, "the sent event came");
        let found = b.node.search(&text, None, 5).await.expect("search");
        assert_eq!(found.len(), 1, "{text} is in the store once shown as sent");
    }
    a.wait(|e| text_of(e) == Some("burst 19")).await;
}

/// `--external`: an address the operator knows is this node's is in its
/// status and reaches its peers as one of its addresses.
#[tokio::test]
async fn an_external_address_is_told_to_peers() {
    let mut cfg = Config::for_tests();
    cfg.nick = Some("public".into());
    let external = "/ip4/203.0.113.7/tcp/4001";
    cfg.external = vec![external.parse().expect("valid")];
    let a = TestNode::start(cfg).await;
    let status = a.node.status().await.expect("status");
    assert!(
        status.external_addrs.iter().any(|x| x == external),
        "{:?}",
        status.external_addrs
    );
    let mut b = TestNode::start_with("b", &[&a]).await;
    b.wait_nick(&a).await;
    eventually("a's external address known to b", || async {
        b.node
            .peers()
            .await
            .expect("peers")
            .iter()
            .any(|p| p.peer == a.id() && p.addresses.iter().any(|x| x.starts_with(external)))
    })
    .await;
}
