//! The rooms' decisions, driven without a swarm.

use libp2p::identity::Keypair;

use super::*;
use crate::{crypto::RoomKey, limits::UNREADABLE_NOTICE_EVERY};

const NOW: u64 = 1_800_000_000_000;

fn rooms_in(name: &str, key: Option<Arc<RoomKey>>) -> (Rooms, TopicHash) {
    let mut rooms = Rooms::new(10, None);
    rooms.add(name, key, Preload::default());
    (rooms, protocol::topic_for(name).hash())
}

/// A signed message of `room` from a new author, at `ts`.
fn message(room: &str, key: Option<Arc<RoomKey>>, text: &str, ts: u64) -> Envelope {
    message_by(
        &Author::new(Keypair::generate_ed25519()),
        room,
        key,
        text,
        ts,
    )
}

fn message_by(
    author: &Author,
    room: &str,
    key: Option<Arc<RoomKey>>,
    text: &str,
    ts: u64,
) -> Envelope {
    let topic = protocol::topic_for(room).hash();
    let mut out = Room::new(room, key, 1).outgoing(author, &topic, "ann", text.into());
    out.env.ts = ts;
    out.env
}

fn shown(outs: &[Out]) -> Vec<(&str, bool)> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Show(Event::Message {
                text, recovered, ..
            }) => Some((text.as_str(), *recovered)),
            _ => None,
        })
        .collect()
}

fn kept(outs: &[Out]) -> usize {
    outs.iter().filter(|o| matches!(o, Out::Keep(_))).count()
}

fn refusal(outs: &[Out]) -> Option<&'static str> {
    outs.iter().find_map(|o| match o {
        Out::Refused { reason, .. } => Some(*reason),
        _ => None,
    })
}

#[test]
fn a_live_message_is_shown_kept_and_then_known() {
    let (mut rooms, topic) = rooms_in("lobby", None);
    let env = message("lobby", None, "hi", NOW);
    let frame = env.encode();
    let (verdict, outs) = rooms.receive(&topic, Ok(env.clone()), &frame, Via::Live, NOW);
    assert_eq!(verdict, MessageAcceptance::Accept);
    assert_eq!(shown(&outs), [("hi", false)]);
    assert_eq!(kept(&outs), 1);
    assert!(matches!(&outs[0], Out::Nick { nick, .. } if nick == "ann"));
    assert!(rooms.known(&topic, &env));
    assert_eq!(rooms.get(&topic).map(|r| r.recent(10, None).len()), Some(1));
    let (verdict, outs) = rooms.receive(&topic, Ok(env), &frame, Via::Live, NOW);
    assert_eq!(verdict, MessageAcceptance::Ignore);
    assert_eq!(refusal(&outs), Some("duplicate"));
    assert_eq!(kept(&outs), 0);
}

#[test]
fn a_synced_message_takes_the_same_path_as_recovered() {
    let (mut rooms, topic) = rooms_in("lobby", None);
    let env = message("lobby", None, "late", NOW - 1000);
    let frame = env.encode();
    let (_, outs) = rooms.receive(&topic, Ok(env.clone()), &frame, Via::Sync, NOW);
    assert_eq!(shown(&outs), [("late", true)]);
    assert_eq!(kept(&outs), 1);
    let (_, outs) = rooms.receive(&topic, Ok(env), &frame, Via::Sync, NOW);
    assert!(outs.is_empty(), "a synced repeat is nobody's fault");
    let (verdict, outs) = rooms.receive(&topic, Err(Rejection::Forged), b"x", Via::Sync, NOW);
    assert_eq!(verdict, MessageAcceptance::Reject);
    assert_eq!(refusal(&outs), Some("forged"));
}

#[test]
fn times_outside_the_window_are_refused_or_recovered() {
    let (mut rooms, topic) = rooms_in("lobby", None);
    for (ts, reason) in [
        (NOW + MAX_SKEW_MS + 1, "future"),
        (EARLIEST_TS_MS - 1, "before_2025"),
    ] {
        let env = message("lobby", None, "t", ts);
        let (verdict, outs) = rooms.receive(&topic, Ok(env), b"f", Via::Live, NOW);
        assert_eq!(verdict, MessageAcceptance::Ignore);
        assert_eq!(refusal(&outs), Some(reason));
        assert_eq!(kept(&outs), 0, "{reason}: not kept");
    }
    let old = message("lobby", None, "old", NOW - MAX_SKEW_MS - 1);
    let (_, outs) = rooms.receive(&topic, Ok(old), b"f", Via::Live, NOW);
    assert_eq!(shown(&outs), [("old", true)], "late live: recovered");
}

#[test]
fn messages_past_retention_are_refused() {
    let retention = Retention {
        count: None,
        max_age: Some(std::time::Duration::from_secs(60)),
    };
    let mut rooms = Rooms::new(10, Some(retention));
    rooms.add("lobby", None, Preload::default());
    let topic = protocol::topic_for("lobby").hash();
    let env = message("lobby", None, "t", NOW - 61_000);
    let (_, outs) = rooms.receive(&topic, Ok(env), b"f", Via::Sync, NOW);
    assert_eq!(refusal(&outs), Some("past_retention"));
}

#[test]
fn unreadable_messages_are_kept_counted_and_told_now_and_then() {
    let key = Arc::new(RoomKey::derive("right passphrase", "vault").expect("derives"));
    let other = Arc::new(RoomKey::derive("another passphrase", "vault").expect("derives"));
    let (mut rooms, topic) = rooms_in("vault", Some(other.clone()));
    let bob = Author::new(Keypair::generate_ed25519());
    let mut told = Vec::new();
    for i in 0..=UNREADABLE_NOTICE_EVERY {
        let env = message_by(&bob, "vault", Some(key.clone()), &format!("m{i}"), NOW + i);
        let (verdict, outs) = rooms.receive(&topic, Ok(env), b"f", Via::Live, NOW);
        assert_eq!(verdict, MessageAcceptance::Accept, "relayed");
        assert_eq!(kept(&outs), 1);
        assert!(outs.iter().any(|o| matches!(o, Out::Opaque { .. })));
        for o in outs {
            if let Out::Show(Event::Unreadable {
                from,
                count,
                theirs,
                ours,
                ..
            }) = o
            {
                assert_eq!(from, bob.id());
                assert_eq!(theirs.as_deref(), Some(key.id()), "their key named");
                assert_eq!(ours.as_deref(), Some(other.id()), "ours named");
                told.push(count);
            }
        }
    }
    assert_eq!(
        told,
        vec![1, UNREADABLE_NOTICE_EVERY + 1],
        "the first, then every 100"
    );
    // Another author gets a notice of their own.
    let env = message("vault", Some(key.clone()), "x", NOW);
    let (_, outs) = rooms.receive(&topic, Ok(env), b"f", Via::Live, NOW);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Out::Show(Event::Unreadable { count: 1, .. })))
    );
}

#[test]
fn a_member_without_the_passphrase_is_told_whose_key_it_lacks() {
    let key = Arc::new(RoomKey::derive("right passphrase", "vault").expect("derives"));
    let (mut rooms, topic) = rooms_in("vault", None);
    let env = message("vault", Some(key.clone()), "a", NOW);
    let (_, outs) = rooms.receive(&topic, Ok(env), b"f", Via::Live, NOW);
    assert!(outs.iter().any(|o| matches!(o,
        Out::Show(Event::Unreadable { count: 1, theirs: Some(t), ours: None, .. }) if t == key.id())));
}

#[test]
fn plaintext_in_an_encrypted_room_is_refused_but_kept() {
    let key = Arc::new(RoomKey::derive("pass", "vault").expect("derives"));
    let (mut rooms, topic) = rooms_in("vault", Some(key));
    let env = message("vault", None, "clear", NOW);
    let (verdict, outs) = rooms.receive(&topic, Ok(env), b"f", Via::Live, NOW);
    assert_eq!(verdict, MessageAcceptance::Ignore);
    assert_eq!(refusal(&outs), Some("plaintext_in_encrypted_room"));
    assert_eq!(kept(&outs), 1, "the store holds the room's whole set");
    assert!(
        outs.iter().any(|o| matches!(
            o,
            Out::Show(Event::Unreadable {
                count: 1,
                theirs: None,
                ours: Some(_),
                ..
            })
        )),
        "the member with the key is told too"
    );
}

#[test]
fn our_queue_keeps_order_and_waits_for_the_commit() {
    let (mut rooms, topic) = rooms_in("lobby", None);
    let author = Author::new(Keypair::generate_ed25519());
    let (t, first) = rooms
        .prepare("lobby", "one".into(), &author, "me", None)
        .expect("prepared");
    assert_eq!(t, topic);
    assert!(matches!(rooms.admit(&topic, &first), Ok(false)));
    let id = first.env.id.clone();
    rooms.queue(&topic, first, false);
    let (_, second) = rooms
        .prepare("lobby", "two".into(), &author, "me", None)
        .expect("prepared");
    assert!(
        matches!(rooms.admit(&topic, &second), Ok(true)),
        "behind the first"
    );
    rooms.queue(&topic, second, true);
    assert!(rooms.next_pending(&topic).is_none(), "first not committed");
    assert_eq!(rooms.committed("lobby", &id), Some(topic.clone()));
    let out = rooms.next_pending(&topic).expect("first may go");
    assert_eq!(out.msg.text, "one");
    assert!(
        rooms.known(&topic, &out.env),
        "our own is not taken in again"
    );
    let failing = rooms.prepare("lobby", "x".into(), &author, "me", Some("disk full"));
    assert!(matches!(failing, Err(Error::StoreFailing(_))));
    rooms.not_kept("lobby", &out.env.id);
    assert!(!rooms.known(&topic, &out.env), "sync may bring it back");
}

#[test]
fn a_live_frame_is_verified_once_and_a_repeat_dropped_before_that() {
    let (mut rooms, topic) = rooms_in("lobby", None);
    let source = PeerId::random();
    // Signed as sent, at the real time.
    let author = Author::new(Keypair::generate_ed25519());
    let env = Room::new("lobby", None, 1)
        .outgoing(&author, &topic, "ann", "hi".into())
        .env;
    let now = env.ts;
    let frame = env.encode();
    let (verdict, outs) = rooms.receive_live(&topic, &frame, &source, now);
    assert_eq!(verdict, MessageAcceptance::Accept);
    assert_eq!(shown(&outs), [("hi", false)]);
    let (verdict, outs) = rooms.receive_live(&topic, &frame, &source, now);
    assert_eq!(verdict, MessageAcceptance::Ignore);
    assert_eq!(refusal(&outs), Some("duplicate"));
    let mut forged = message("lobby", None, "mine", now);
    forged.from = PeerId::random().to_string();
    let (verdict, outs) = rooms.receive_live(&topic, &forged.encode(), &source, now);
    assert_eq!(verdict, MessageAcceptance::Reject);
    assert_eq!(refusal(&outs), Some("forged"));
    let (verdict, outs) = rooms.receive_live(&topic, b"not json", &source, now);
    assert_eq!(verdict, MessageAcceptance::Reject);
    assert_eq!(refusal(&outs), Some("malformed"));
}
