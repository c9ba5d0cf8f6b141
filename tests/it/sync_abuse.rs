//! History sync against a peer that misbehaves: greedy or malformed
//! requests get bounded refusals, forged or oversized entries in answers are
//! rejected and counted, and nothing panics.

use std::{collections::HashMap, time::Duration};

use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm,
    futures::StreamExt,
    gossipsub,
    identity::Keypair,
    request_response::{self, ProtocolSupport},
    swarm::{NetworkBehaviour, SwarmEvent},
};
use p2p_chat::{
    protocol::{self, Envelope},
    store::{self, Hash},
    sync::{self, SyncRequest, SyncResponse},
};
use serde_bytes::ByteBuf;

use crate::support::{TestNode, WAIT, eventually};

#[derive(NetworkBehaviour)]
struct Rogue {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
}

fn rogue_swarm(key: &Keypair) -> Swarm<Rogue> {
    crate::support::tcp_swarm(key.clone(), |_| Rogue {
        gossipsub: gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Anonymous,
            gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .message_id_fn(|m| p2p_chat::protocol::message_id(&m.data).into())
                .build()
                .expect("gossipsub config"),
        )
        .expect("gossipsub"),
        sync: request_response::cbor::Behaviour::new(
            [(
                StreamProtocol::new("/p2p-chat/sync/1"),
                ProtocolSupport::Full,
            )],
            request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
        ),
    })
}

/// Drives the rogue until `f` returns a value, answering sync requests with
/// `serve` meanwhile.
async fn drive<T>(
    swarm: &mut Swarm<Rogue>,
    mut serve: impl FnMut(SyncRequest) -> SyncResponse,
    mut f: impl FnMut(&SwarmEvent<RogueEvent>) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = swarm.select_next_some().await;
            if let Some(v) = f(&event) {
                return v;
            }
            if let SwarmEvent::Behaviour(RogueEvent::Sync(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            })) = event
            {
                let _ = swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, serve(request));
            }
        }
    })
    .await
    .ok()
}

/// The answer to request `id`: the response, or the failure (a request
/// over the size limit is cut off by the codec, never served).
fn response_to(
    id: request_response::OutboundRequestId,
) -> impl FnMut(&SwarmEvent<RogueEvent>) -> Option<Result<SyncResponse, String>> {
    move |e| match e {
        SwarmEvent::Behaviour(RogueEvent::Sync(request_response::Event::Message {
            message:
                request_response::Message::Response {
                    request_id,
                    response,
                },
            ..
        })) if *request_id == id => Some(Ok(response.clone())),
        SwarmEvent::Behaviour(RogueEvent::Sync(request_response::Event::OutboundFailure {
            request_id,
            error,
            ..
        })) if *request_id == id => Some(Err(error.to_string())),
        _ => None,
    }
}

#[tokio::test]
async fn greedy_and_malformed_requests_are_refused_within_bounds() {
    let a = TestNode::start_with("a", &[]).await;
    let key = Keypair::generate_ed25519();
    let mut rogue = rogue_swarm(&key);
    let a_peer: PeerId = a.id().parse().expect("peer id");
    rogue
        .dial(a.addr.parse::<Multiaddr>().expect("addr"))
        .expect("dial");
    let topic = protocol::topic_for("lobby").hash().to_string();
    let refuse = |_| SyncResponse::Refused {
        reason: "no".into(),
    };

    let ids = |n: u32| {
        (0..n)
            .map(|i| ByteBuf::from(store::hash(&i.to_string()).to_vec()))
            .collect::<Vec<_>>()
    };
    // Everything at once: over the request size limit, cut off unserved.
    let id = rogue.behaviour_mut().sync.send_request(
        &a_peer,
        SyncRequest::Fetch {
            topic: topic.clone(),
            ids: ids(10_000),
        },
    );
    let answer = drive(&mut rogue, refuse, response_to(id))
        .await
        .expect("an answer");
    assert!(answer.is_err(), "{answer:?}");
    // More than a page: refused.
    let id = rogue.behaviour_mut().sync.send_request(
        &a_peer,
        SyncRequest::Fetch {
            topic: topic.clone(),
            ids: ids(600),
        },
    );
    let answer = drive(&mut rogue, refuse, response_to(id))
        .await
        .expect("an answer");
    assert!(matches!(answer, Ok(SyncResponse::Refused { reason }) if reason.contains("too many")));

    let id = rogue.behaviour_mut().sync.send_request(
        &a_peer,
        SyncRequest::Reconcile {
            topic: "p2p-chat/room/elsewhere".into(),
            msg: ByteBuf::from(vec![0x61]),
        },
    );
    let answer = drive(&mut rogue, refuse, response_to(id))
        .await
        .expect("an answer");
    assert!(
        matches!(answer, Ok(SyncResponse::Refused { reason }) if reason.contains("not in that room"))
    );

    let id = rogue.behaviour_mut().sync.send_request(
        &a_peer,
        SyncRequest::Reconcile {
            topic: topic.clone(),
            msg: ByteBuf::from(b"\xff\xfegarbage".to_vec()),
        },
    );
    let answer = drive(&mut rogue, refuse, response_to(id))
        .await
        .expect("an answer");
    assert!(
        matches!(answer, Ok(SyncResponse::Refused { .. })),
        "{answer:?}"
    );

    let unknown: Vec<ByteBuf> = (0..sync::FETCH_PAGE as u32)
        .map(|i| ByteBuf::from(store::hash(&format!("x{i}")).to_vec()))
        .collect();
    let id = rogue.behaviour_mut().sync.send_request(
        &a_peer,
        SyncRequest::Fetch {
            topic,
            ids: unknown,
        },
    );
    let answer = drive(&mut rogue, refuse, response_to(id))
        .await
        .expect("an answer");
    assert!(matches!(answer, Ok(SyncResponse::Frames { frames }) if frames.is_empty()));
    assert!(a.node.status().await.is_ok(), "the node is fine");
}

#[tokio::test]
async fn forged_and_oversized_entries_in_a_sync_answer_are_rejected() {
    let a = TestNode::start_with("a", &[]).await;
    let key = Keypair::generate_ed25519();
    let me = key.public().to_peer_id();
    let topic = protocol::topic_for("lobby");
    let signed = |text: &str, from: &PeerId| {
        let mut env = Envelope::text(from, "lobby", "rogue", text);
        env.sign(&key, topic.hash().as_str());
        env
    };
    let forged = signed("claims to be someone else", &PeerId::random());
    let too_long = signed(&"y".repeat(protocol::MAX_TEXT_BYTES + 1), &me);
    let mut bloated = signed("fine", &me).encode();
    bloated.extend(std::iter::repeat_n(b' ', protocol::MAX_FRAME_BYTES));
    let genuine = signed("the only real one", &me);
    let mut frames: HashMap<Hash, Vec<u8>> = HashMap::new();
    let mut index = std::collections::BTreeSet::new();
    for (env, frame) in [
        (&forged, forged.encode()),
        (&too_long, too_long.encode()),
        (&genuine, bloated),
        (&genuine, genuine.encode()),
    ] {
        let h = store::hash(&format!("{}{}", env.id, frame.len()));
        let h = if frame.len() < 1000 && env.id == genuine.id {
            store::hash(&genuine.id)
        } else {
            h
        };
        index.insert((env.ts, h));
        frames.insert(h, frame);
    }
    let mut rogue = rogue_swarm(&key);
    rogue
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .expect("subscribe");
    rogue
        .dial(a.addr.parse::<Multiaddr>().expect("addr"))
        .expect("dial");
    // a starts a sync with the rogue when it sees the subscription; serve
    // it the poisoned set until a has asked for every entry.
    let mut fetched = 0;
    let serve = |request| match request {
        SyncRequest::Reconcile { msg, .. } => match sync::respond(&index, &msg) {
            Ok(msg) => SyncResponse::Reconcile {
                msg: ByteBuf::from(msg),
            },
            Err(e) => SyncResponse::Refused {
                reason: e.to_string(),
            },
        },
        SyncRequest::Fetch { ids, .. } => {
            fetched += ids.len();
            let out = ids
                .iter()
                .filter_map(|i| <Hash>::try_from(i.as_slice()).ok())
                .filter_map(|h| frames.get(&h).cloned());
            SyncResponse::Frames {
                frames: out.map(ByteBuf::from).collect(),
            }
        }
    };
    let node = a.node.clone();
    let check = tokio::spawn(async move {
        eventually("the genuine entry taken, the others counted", || async {
            let status = node.status().await.expect("status");
            let r = &status.stats.rejected;
            status.stats.recovered == 1
                && r.get("forged") == Some(&1)
                && r.get("too_large") == Some(&2)
        })
        .await;
    });
    tokio::select! {
        _ = drive(&mut rogue, serve, |_| None::<()>) => panic!("the node never counted the entries"),
        done = check => done.expect("counted"),
    }
    let texts = a.texts("lobby", 10).await;
    assert_eq!(texts, ["the only real one"]);
}
