//! Sync sessions driven without a swarm: the peer's side is answered with
//! the same pure functions a peer runs.

use super::*;
use crate::{
    node::{archive::Preload, testing::request_ids},
    protocol, store,
};

fn ids(range: std::ops::Range<u64>) -> BTreeSet<(u64, Hash)> {
    range.map(|i| (i, store::hash(&i.to_string()))).collect()
}

fn ended(pull: Pull) -> Vec<Retry> {
    let mut state = SyncState::default();
    let key = (PeerId::random(), TopicHash::from_raw("t"));
    state.pulls.insert(key.clone(), pull);
    state.end(&key, Instant::now());
    state.retries
}

/// Sends `out` as the event loop would, with the next request id.
fn send(state: &mut SyncState, out: Out, ids: &mut Vec<OutboundRequestId>) -> OutboundRequestId {
    let Out::Request { peer, topic, .. } = out else {
        panic!("a request: {out:?}");
    };
    let id = ids.pop().expect("enough ids");
    state.sent(id, peer, topic);
    id
}

#[test]
fn a_pull_reconciles_fetches_what_it_lacks_and_ends() {
    let (ours, theirs) = (ids(0..50), ids(0..60));
    let topic = TopicHash::from_raw("t");
    let peer = PeerId::random();
    let mut ids_left = request_ids(16);
    let mut state = SyncState::default();
    let mut out = state
        .start(peer, &topic, &ours, 0, Link::Direct)
        .expect("starts");
    assert!(
        state.start(peer, &topic, &ours, 0, Link::Direct).is_none(),
        "one pull per peer and room"
    );
    let now = Instant::now();
    let fetched = loop {
        let request = match &out {
            Out::Request { request, .. } => request.clone(),
            other => panic!("a request: {other:?}"),
        };
        let id = send(&mut state, out, &mut ids_left);
        let response = match request {
            SyncRequest::Reconcile { msg, .. } => SyncResponse::Reconcile {
                msg: ByteBuf::from(sync::respond(&theirs, &msg).expect("answers")),
            },
            SyncRequest::Fetch { ids, .. } => break ids,
        };
        let mut outs = state.answered(id, response, now);
        assert_eq!(outs.len(), 1);
        out = outs.remove(0);
    };
    assert_eq!(fetched.len(), 10, "exactly the ten we lack");
    assert_eq!(state.peers().collect::<Vec<_>>(), [peer]);
    // The answer, then its check.
    let frames: Vec<ByteBuf> = fetched.iter().map(|_| ByteBuf::from(vec![1])).collect();
    let fetch_id = *state
        .requests
        .keys()
        .next()
        .expect("the fetch is under way");
    let outs = state.answered(fetch_id, SyncResponse::Frames { frames }, now);
    assert!(matches!(&outs[..], [Out::Check { frames, .. }] if frames.len() == 10));
    assert!(state.checked(peer, topic, now).is_empty());
    assert_eq!(state.peers().count(), 0, "finished");
    assert!(state.retries.is_empty(), "complete: no retry");
}

#[test]
fn ids_another_pull_is_fetching_are_left_to_it() {
    let topic = TopicHash::from_raw("t");
    let (ours, theirs) = (ids(0..5), ids(0..8));
    let mut ids_left = request_ids(16);
    let mut state = SyncState::default();
    let now = Instant::now();
    let mut asked = Vec::new();
    for _ in 0..2 {
        let peer = PeerId::random();
        let mut out = state
            .start(peer, &topic, &ours, 0, Link::Direct)
            .expect("starts");
        let fetch = loop {
            let Out::Request { request, .. } = &out else {
                panic!("a request");
            };
            let request = request.clone();
            let id = send(&mut state, out, &mut ids_left);
            let SyncRequest::Reconcile { msg, .. } = request else {
                break Some(request);
            };
            let msg = ByteBuf::from(sync::respond(&theirs, &msg).expect("answers"));
            match state
                .answered(id, SyncResponse::Reconcile { msg }, now)
                .pop()
            {
                Some(next) => out = next,
                None => break None,
            }
        };
        asked.push(fetch.map(|f| match f {
            SyncRequest::Fetch { ids, .. } => ids.len(),
            _ => 0,
        }));
    }
    assert_eq!(
        asked,
        [Some(3), None],
        "the second pull leaves them to the first"
    );
}

#[test]
fn a_short_page_asks_for_the_rest_and_a_third_page_waits() {
    let topic = TopicHash::from_raw("t");
    let peer = PeerId::random();
    let key = (peer, topic.clone());
    let need: VecDeque<Hash> = ids(0..(sync::FETCH_PAGE as u64 * 3))
        .into_iter()
        .map(|(_, h)| h)
        .collect();
    let mut state = SyncState::default();
    state.pulls.insert(
        key.clone(),
        Pull {
            need,
            ..Pull::default()
        },
    );
    let now = Instant::now();
    let mut ids_left = request_ids(8);
    let first = state.fetch_next(&key, now).expect("a page");
    let id = send(&mut state, first, &mut ids_left);
    // Only 2 frames of 512: the rest is asked again first.
    let two = vec![ByteBuf::from(vec![1]); 2];
    let outs = state.answered(id, SyncResponse::Frames { frames: two }, now);
    let [Out::Request { request, .. }, Out::Check { .. }] = &outs[..] else {
        panic!("the next page, then the check: {outs:?}");
    };
    let SyncRequest::Fetch { ids: next, .. } = request else {
        panic!("a fetch");
    };
    assert_eq!(next.len(), sync::FETCH_PAGE);
    let mut outs = outs;
    let id = send(&mut state, outs.remove(0), &mut ids_left);
    // The second page arrives while the first is being checked: the
    // third fetch waits for a check.
    let page = vec![ByteBuf::from(vec![1]); sync::FETCH_PAGE];
    let outs = state.answered(id, SyncResponse::Frames { frames: page }, now);
    assert!(matches!(&outs[..], [Out::Check { .. }]), "{outs:?}");
    let outs = state.checked(peer, topic.clone(), now);
    assert!(
        matches!(
            &outs[..],
            [Out::Request {
                request: SyncRequest::Fetch { .. },
                ..
            }]
        ),
        "the deferred fetch goes once a check is done"
    );
    state.forget_room(&topic);
    assert_eq!(state.peers().count(), 0);
}

#[test]
fn a_peer_is_served_what_the_rooms_hold_within_bounds() {
    let mut rooms = Rooms::new(10, None);
    let preload = Preload {
        ids: ids(0..3).into_iter().collect(),
        recent: Vec::new(),
    };
    rooms.add("lobby", None, preload);
    let topic = protocol::topic_for("lobby").hash().to_string();
    let refused = |s: Serve| match s {
        Serve::Answer(SyncResponse::Refused { reason }) => reason,
        other => panic!("refused: {other:?}"),
    };
    let other_room = SyncRequest::Fetch {
        topic: "elsewhere".into(),
        ids: Vec::new(),
    };
    assert_eq!(refused(serve(&rooms, other_room)), "not in that room");
    let greedy = SyncRequest::Fetch {
        topic: topic.clone(),
        ids: vec![ByteBuf::from(vec![0; 32]); sync::FETCH_PAGE + 1],
    };
    assert_eq!(refused(serve(&rooms, greedy)), "too many ids in one fetch");
    let garbage = SyncRequest::Reconcile {
        topic: topic.clone(),
        msg: ByteBuf::from(vec![0xff; 9]),
    };
    assert_eq!(
        refused(serve(&rooms, garbage)),
        "malformed reconciliation message"
    );
    let (held, unknown) = (store::hash("1"), store::hash("nope"));
    let fetch = SyncRequest::Fetch {
        topic,
        ids: vec![
            ByteBuf::from(held.to_vec()),
            ByteBuf::from(unknown.to_vec()),
        ],
    };
    let Serve::Read { keys, .. } = serve(&rooms, fetch) else {
        panic!("a read");
    };
    assert_eq!(keys, [(1, held)], "only what we hold");
}

#[test]
fn a_pull_with_a_page_on_its_way_is_not_finished() {
    let hash = Hash::default();
    assert!(Pull::default().finished());
    let on_its_way = Pull {
        asked: vec![hash],
        ..Pull::default()
    };
    assert!(!on_its_way.finished(), "the last page is still to come");
    let checking = Pull {
        checking: 1,
        ..Pull::default()
    };
    assert!(!checking.finished());
    let to_fetch = Pull {
        need: [hash].into(),
        ..Pull::default()
    };
    assert!(!to_fetch.finished());
}

#[test]
fn a_pull_that_left_ids_behind_is_tried_again_a_few_times() {
    assert!(ended(Pull::default()).is_empty(), "a complete pull ends");
    let short = ended(Pull {
        short: true,
        ..Pull::default()
    });
    assert_eq!(short.len(), 1);
    assert_eq!(short[0].attempt, 1);
    let failed = ended(Pull {
        need: [[0u8; 32]].into(),
        attempt: 1,
        ..Pull::default()
    });
    assert_eq!(failed[0].attempt, 2, "a failure with ids to fetch");
    let last = ended(Pull {
        short: true,
        attempt: MAX_RETRIES,
        ..Pull::default()
    });
    assert!(last.is_empty(), "then the periodic round takes over");
}

#[test]
fn retries_wait_and_a_left_room_drops_them() {
    let mut state = SyncState::default();
    let topic = TopicHash::from_raw("t");
    let key = (PeerId::random(), topic.clone());
    let pull = Pull {
        short: true,
        ..Pull::default()
    };
    state.pulls.insert(key.clone(), pull);
    let now = Instant::now();
    state.end(&key, now);
    assert!(state.due_retries(now).is_empty(), "not yet");
    assert_eq!(state.due_retries(now + RETRY_AFTER).len(), 1);
    assert!(state.retries.is_empty(), "taken out once");
    state.pulls.insert(
        key.clone(),
        Pull {
            short: true,
            ..Pull::default()
        },
    );
    state.end(&key, now);
    state.forget_room(&topic);
    assert!(state.retries.is_empty());
}

#[test]
fn rounds_take_the_peers_in_turn() {
    let mut state = SyncState::default();
    let mut peers: Vec<PeerId> = (0..7).map(|_| PeerId::random()).collect();
    assert_eq!(state.pick(peers.clone(), None).len(), 7, "a join asks all");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        state.next_round();
        let picked = state.pick(peers.clone(), Some(SYNC_FANOUT));
        assert_eq!(picked.len(), SYNC_FANOUT);
        seen.extend(picked);
    }
    peers.sort_unstable();
    assert_eq!(seen.len(), 7, "three rounds of three reach all seven");
}

/// A state with one pull over a relay that lacks 100 ids and has made
/// `pages` fetches.
fn relayed_pull(pages: usize) -> (SyncState, Key) {
    let key = (PeerId::random(), TopicHash::from_raw("t"));
    let need: VecDeque<Hash> = ids(0..100).into_iter().map(|(_, h)| h).collect();
    let mut state = SyncState::default();
    state.pulls.insert(
        key.clone(),
        Pull {
            need,
            link: Link::Relayed,
            pages,
            ..Pull::default()
        },
    );
    (state, key)
}

#[test]
fn over_a_relay_a_pull_fetches_one_small_page_and_leaves_the_rest() {
    let (mut state, key) = relayed_pull(0);
    let (peer, topic) = key.clone();
    let now = Instant::now();
    let mut ids_left = request_ids(8);
    let first = state.fetch_next(&key, now).expect("a page");
    let Out::Request {
        request: SyncRequest::Fetch { ids: asked, .. },
        ..
    } = &first
    else {
        panic!("a fetch: {first:?}");
    };
    assert_eq!(asked.len(), RELAYED_FETCH_PAGE);
    let id = send(&mut state, first, &mut ids_left);
    let page = vec![ByteBuf::from(vec![1]); RELAYED_FETCH_PAGE];
    let outs = state.answered(id, SyncResponse::Frames { frames: page }, now);
    assert!(matches!(&outs[..], [Out::Check { .. }]), "{outs:?}");
    let outs = state.checked(peer, topic, now);
    assert!(outs.is_empty(), "no second page over a relay: {outs:?}");
    assert!(state.pulls.is_empty(), "the pull ended");
    assert!(
        state.due_retries(now + RETRY_AFTER).is_empty(),
        "and is not retried at once: the rest waits"
    );
}

#[test]
fn a_pull_whose_peer_goes_direct_fetches_full_pages_again() {
    let (mut state, key) = relayed_pull(RELAYED_PAGES);
    state.direct_now(&key.0);
    let Some(Out::Request {
        request: SyncRequest::Fetch { ids: asked, .. },
        ..
    }) = state.fetch_next(&key, Instant::now())
    else {
        panic!("a fetch");
    };
    assert_eq!(asked.len(), 100);
}
