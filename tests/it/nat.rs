//! Reaching peers through a relay, in-process on loopback: reservations,
//! circuits, the upgrade to a direct connection, reachability. The same
//! behind real NAT is in `lab.rs`.

use p2p_chat::{Config, Event, node::Reachability};

use crate::support::{TestNode, eventually, text_of};

fn relay_server(nick: &str) -> Config {
    let mut cfg = Config::for_tests();
    cfg.nick = Some(nick.into());
    cfg.relay.relay_server = true;
    cfg
}

/// A node with `nick` that holds a reservation on `relay`, once it does;
/// and its address through the relay.
async fn reserved_on(relay: &TestNode, nick: &str) -> (TestNode, String) {
    let mut cfg = Config::for_tests();
    cfg.nick = Some(nick.into());
    cfg.relay.relays = vec![relay.addr.parse().expect("relay address")];
    let node = TestNode::start(cfg).await;
    eventually(&format!("{nick}'s address through the relay"), || async {
        !node
            .node
            .status()
            .await
            .expect("status")
            .relay_addrs
            .is_empty()
    })
    .await;
    let circuit = node.node.status().await.expect("status").relay_addrs[0].clone();
    (node, circuit)
}

/// A holds a reservation on R; B dials A's circuit address and the two
/// chat through R (a room message and a direct message); hole punching
/// then gives them a direct connection and the relayed one is closed.
#[tokio::test]
async fn a_peer_reached_through_a_relay_chats_and_then_goes_direct() {
    let r = TestNode::start(relay_server("relay")).await;
    let (mut a, circuit) = reserved_on(&r, "alice").await;
    assert!(
        circuit.starts_with(&r.addr) && circuit.ends_with(&format!("/p2p-circuit/p2p/{}", a.id())),
        "{circuit}"
    );
    let held = r.node.status().await.expect("status").relay_server;
    assert_eq!(held.map(|h| h.reservations), Some(1));

    let mut cfg = Config::for_tests();
    cfg.nick = Some("bob".into());
    cfg.dial = vec![circuit.parse().expect("circuit address")];
    let mut b = TestNode::start(cfg).await;
    b.wait_nick(&a).await;
    b.wait_members("lobby", 2).await;
    a.wait_members("lobby", 2).await;

    a.node
        .publish("lobby", "through the relay")
        .await
        .expect("publish");
    b.wait(|e| text_of(e) == Some("through the relay")).await;
    let bob = b.id();
    b.node
        .send_direct(&a.id(), "just us")
        .await
        .expect("delivered");
    a.wait(|e| matches!(e, Event::Direct { from, text, .. } if *from == bob && text == "just us"))
        .await;

    eventually("a direct connection between a and b", || async {
        let peers = b.node.peers().await.expect("peers");
        peers
            .iter()
            .any(|p| p.peer == a.id() && p.connection == "direct")
    })
    .await;
    let text = r.node.encode_metrics().expect("metrics");
    assert!(
        text.contains("libp2p_relay_events_total{event=\"CircuitReqAccepted\"} 1"),
        "{text}"
    );
}

/// Nodes that can dial each other back find themselves public; the
/// reachability is in the status and the metrics.
#[tokio::test]
async fn nodes_that_dial_each_other_back_are_public() {
    let r = TestNode::start(relay_server("r")).await;
    let a = TestNode::start_with("a", &[&r]).await;
    for node in [&a, &r] {
        eventually("reachability public", || async {
            node.node.status().await.expect("status").reachability == Reachability::Public
        })
        .await;
    }
    let status = a.node.status().await.expect("status");
    assert!(!status.external_addrs.is_empty(), "{status:?}");
    let text = a.node.encode_metrics().expect("metrics");
    assert!(
        text.contains("p2p_chat_reachability{state=\"public\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("p2p_chat_reachability{state=\"private\"} 0"),
        "{text}"
    );
}

/// A relay refuses a reservation over its limit with libp2p's status code,
/// counts the refusal, and the refused node keeps asking with a backoff.
#[tokio::test]
async fn a_relay_refuses_reservations_over_its_limit_and_counts_them() {
    let mut cfg = relay_server("relay");
    cfg.relay.relay_max_reservations = 1;
    let r = TestNode::start(cfg).await;
    let with_relay = |nick: &str| {
        let mut cfg = Config::for_tests();
        cfg.nick = Some(nick.into());
        cfg.relay.relays = vec![r.addr.parse().expect("relay address")];
        cfg
    };
    let _a = reserved_on(&r, "alice").await;
    let c = TestNode::start(with_relay("carol")).await;
    eventually("the relay to refuse carol's reservation", || async {
        r.node.encode_metrics().expect("metrics").contains(
            "p2p_chat_relay_denied_total{request=\"reservation\",status=\"ResourceLimitExceeded\"}",
        )
    })
    .await;
    let status = c.node.status().await.expect("status");
    assert!(status.relay_addrs.is_empty(), "{status:?}");
    let held = r.node.status().await.expect("status").relay_server;
    assert_eq!(held.map(|h| h.reservations), Some(1));
}

/// A peer that opens circuits in a loop (a bare libp2p client, closing each
/// and opening the next) is limited by the relay: refused with libp2p's
/// status code after the relay's per-peer rate, and counted.
#[tokio::test]
async fn a_peer_opening_circuits_in_a_loop_is_limited() {
    use libp2p::{futures::StreamExt, swarm::SwarmEvent};

    let r = TestNode::start(relay_server("relay")).await;
    let (_a, circuit) = reserved_on(&r, "alice").await;
    let circuit: libp2p::Multiaddr = circuit.parse().expect("circuit address");
    let mut looper = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("tcp")
        .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .expect("relay client")
        .with_behaviour(|_, relay| relay)
        .expect("behaviour")
        .build();
    let (mut opened, mut refused) = (0, 0);
    // libp2p's default: 30 circuits per source peer every 2 minutes.
    for _ in 0..40 {
        looper.dial(circuit.clone()).expect("dial starts");
        let outcome = tokio::time::timeout(crate::support::WAIT, async {
            loop {
                match looper.select_next_some().await {
                    SwarmEvent::ConnectionEstablished {
                        connection_id,
                        endpoint,
                        ..
                    } if endpoint.is_relayed() => {
                        looper.close_connection(connection_id);
                        return true;
                    }
                    SwarmEvent::OutgoingConnectionError { .. } => return false,
                    _ => {}
                }
            }
        })
        .await
        .expect("each dial ends");
        if outcome {
            opened += 1;
        } else {
            refused += 1;
        }
    }
    assert!(
        opened >= 1 && refused >= 1,
        "opened {opened}, refused {refused}"
    );
    let text = r.node.encode_metrics().expect("metrics");
    assert!(
        text.contains(
            "p2p_chat_relay_denied_total{request=\"circuit\",status=\"ResourceLimitExceeded\"}"
        ),
        "{text}"
    );
}
