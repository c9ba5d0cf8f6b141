//! History in the node task: what a room brings from the store when it is
//! joined, and history sync with the peers of each room: reconcile the sets
//! of message ids, then fetch what we lack in bounded pages, each message
//! checked exactly as a live one; and serve the same to peers.

use std::collections::{HashMap, VecDeque};

use libp2p::{
    PeerId,
    futures::{FutureExt, future::BoxFuture, stream::FuturesUnordered},
    gossipsub::TopicHash,
    request_response::{self, OutboundRequestId, ResponseChannel},
};
use serde_bytes::ByteBuf;

use super::{archive, blocking, event_loop::EventLoop, rooms::Via};
use crate::{
    protocol::{Envelope, Rejection},
    store::Hash,
    sync::{self, Session, Step, SyncRequest, SyncResponse},
};

/// Work done off the node task whose result the task takes on.
pub(super) enum Background {
    /// A page of frames read from the store for a peer.
    Respond {
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
    },
    /// A page of frames fetched from a peer, each decoded and its signature
    /// checked.
    Checked {
        peer: PeerId,
        topic: TopicHash,
        frames: Vec<(ByteBuf, Result<Envelope, Rejection>)>,
    },
}

/// One pull of a room's history from one peer.
#[derive(Debug, Default)]
struct Pull {
    session: Option<Session>,
    need: VecDeque<Hash>,
    /// Fetched pages being checked off the node task.
    checking: usize,
    /// A page arrived while another was being checked: the next fetch waits
    /// for that check, so at most two pages wait in memory.
    deferred: bool,
    /// Ids this pull took on to fetch (see [`SyncState::claimed`]).
    claimed: Vec<Hash>,
    /// Ids of the fetch under way.
    asked: Vec<Hash>,
    /// An answer brought fewer frames than asked for: the answer's byte
    /// budget cut the page short, or the peer's store did not hold them
    /// (yet: its index runs up to a group commit ahead of its store).
    short: bool,
    /// Which retry of this peer and room this pull is (0: the first pull).
    attempt: u8,
}

impl Pull {
    /// Nothing left to do: reconciled, every page fetched and checked. A
    /// page still on its way counts: checking the one before it may finish
    /// first.
    fn finished(&self) -> bool {
        self.session.is_none()
            && self.need.is_empty()
            && self.asked.is_empty()
            && self.checking == 0
    }
}

/// A pull that ended short is tried again with the same peer this much
/// later, at most [`MAX_RETRIES`] times; after that the periodic round
/// fetches what is still missing.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_RETRIES: u8 = 3;

/// A pull to start again.
#[derive(Debug)]
struct Retry {
    due: tokio::time::Instant,
    peer: PeerId,
    topic: TopicHash,
    attempt: u8,
}

/// History sync state of the node task.
#[derive(Default)]
pub(super) struct SyncState {
    pulls: HashMap<(PeerId, TopicHash), Pull>,
    requests: HashMap<OutboundRequestId, (PeerId, TopicHash)>,
    pub(super) background: FuturesUnordered<BoxFuture<'static, Background>>,
    /// Periodic rounds so far: which peers the next round picks.
    round: usize,
    /// Ids some pull of this node is fetching: another pull that finds the
    /// same ids missing leaves them to it, so each is fetched once.
    claimed: std::collections::HashSet<Hash>,
    /// Pulls that ended short, to start again.
    retries: Vec<Retry>,
}

/// Peers of a room one periodic sync round reconciles with. Every peer
/// comes in turn; a message any peer holds spreads like gossip, without
/// every node asking every peer every round.
const SYNC_FANOUT: usize = 3;

type SyncEvent = request_response::Event<SyncRequest, SyncResponse>;

impl SyncState {
    /// Peers a pull is under way with.
    pub(super) fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.pulls.keys().map(|(peer, _)| *peer)
    }

    /// Removes a pull; what it had claimed but not fetched is free again.
    fn remove(&mut self, key: &(PeerId, TopicHash)) -> Option<Pull> {
        let pull = self.pulls.remove(key)?;
        for hash in &pull.claimed {
            self.claimed.remove(hash);
        }
        Some(pull)
    }

    /// Ends a pull. One that left ids behind (answers short, or a failure
    /// with ids still to fetch) is tried again soon, a few times.
    fn end(&mut self, key: &(PeerId, TopicHash)) {
        let Some(pull) = self.remove(key) else {
            return;
        };
        let retry = (pull.short || !pull.need.is_empty()) && pull.attempt < MAX_RETRIES;
        tracing::debug!(peer = %key.0, short = pull.short, left = pull.need.len(), attempt = pull.attempt, retry, "history pull ended");
        if retry {
            self.retries.push(Retry {
                due: tokio::time::Instant::now() + RETRY_AFTER,
                peer: key.0,
                topic: key.1.clone(),
                attempt: pull.attempt + 1,
            });
        }
    }

    /// Retries that are due, taken out.
    fn due_retries(&mut self, now: tokio::time::Instant) -> Vec<Retry> {
        let (due, later) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|r| r.due <= now);
        self.retries = later;
        due
    }

    /// Stops every pull of a room that was left.
    pub(super) fn forget_room(&mut self, topic: &TopicHash) {
        let keys: Vec<_> = self
            .pulls
            .keys()
            .filter(|(_, t)| t == topic)
            .cloned()
            .collect();
        for key in keys {
            self.remove(&key);
        }
        self.retries.retain(|r| r.topic != *topic);
    }
}

impl EventLoop {
    /// Reconciles a room with the connected peers that are in it: all of
    /// them, or `fanout` of them, taken in turn round after round.
    pub(super) fn sync_room(&mut self, topic: &TopicHash, fanout: Option<usize>) {
        let mut peers: Vec<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&topic))
            .map(|(p, _)| *p)
            .collect();
        if let Some(fanout) = fanout.filter(|&f| f < peers.len()) {
            peers.sort_unstable();
            let start = self.sync.round * fanout % peers.len();
            peers.rotate_left(start);
            peers.truncate(fanout);
        }
        for peer in peers {
            self.start_sync(peer, topic);
        }
    }

    /// Reconciles every room with its peers (the periodic sync).
    pub(super) fn sync_all(&mut self) {
        self.sync.round = self.sync.round.wrapping_add(1);
        for topic in self.rooms.topics() {
            self.sync_room(&topic, Some(SYNC_FANOUT));
        }
    }

    /// Starts pulling a room's history from `peer`, unless already doing so.
    pub(super) fn start_sync(&mut self, peer: PeerId, topic: &TopicHash) {
        self.start_pull(peer, topic, 0);
    }

    /// Starts the pulls that ended short and are due again, with peers
    /// still connected.
    pub(super) fn retry_syncs(&mut self, now: tokio::time::Instant) {
        for r in self.sync.due_retries(now) {
            if self.swarm.is_connected(&r.peer) {
                self.start_pull(r.peer, &r.topic, r.attempt);
            }
        }
    }

    fn start_pull(&mut self, peer: PeerId, topic: &TopicHash, attempt: u8) {
        let key = (peer, topic.clone());
        if self.sync.pulls.contains_key(&key) {
            return;
        }
        let Some(room) = self.rooms.get(topic) else {
            return;
        };
        let (session, first) = match Session::start(room.index.sorted()) {
            Ok(started) => started,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start history sync");
                return;
            }
        };
        self.sync.pulls.insert(
            key,
            Pull {
                session: Some(session),
                attempt,
                ..Pull::default()
            },
        );
        let request = SyncRequest::Reconcile {
            topic: topic.to_string(),
            msg: ByteBuf::from(first),
        };
        self.send_sync(peer, topic, request);
    }

    fn send_sync(&mut self, peer: PeerId, topic: &TopicHash, request: SyncRequest) {
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.sync.requests.insert(id, (peer, topic.clone()));
    }

    pub(super) fn on_sync(&mut self, event: SyncEvent) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message: M::Request {
                    request, channel, ..
                },
                ..
            } => self.serve_sync(peer, request, channel),
            E::Message {
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((peer, topic)) = self.sync.requests.remove(&request_id) {
                    self.on_sync_response(peer, topic, response);
                }
            }
            E::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(key) = self.sync.requests.remove(&request_id) {
                    tracing::debug!(%peer, %error, "history sync request failed");
                    self.sync.end(&key);
                }
            }
            E::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "history sync request not served")
            }
            E::ResponseSent { .. } => {}
        }
    }

    fn serve_sync(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let refused = |reason: &str| SyncResponse::Refused {
            reason: reason.to_owned(),
        };
        let topic_of = |t: &str| TopicHash::from_raw(t);
        let response = match request {
            SyncRequest::Reconcile { topic, msg } => match self.rooms.get(&topic_of(&topic)) {
                None => refused("not in that room"),
                Some(room) => match sync::respond(room.index.sorted(), &msg) {
                    Ok(msg) => SyncResponse::Reconcile {
                        msg: ByteBuf::from(msg),
                    },
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "bad reconciliation request");
                        refused("malformed reconciliation message")
                    }
                },
            },
            SyncRequest::Fetch { topic, ids } => match self.rooms.get(&topic_of(&topic)) {
                None => refused("not in that room"),
                Some(_) if ids.len() > sync::FETCH_PAGE => refused("too many ids in one fetch"),
                Some(room) => {
                    // Each id's store key, from the room's ids; one we do
                    // not hold is left out of the answer.
                    let keys: Vec<(u64, Hash)> = ids
                        .iter()
                        .filter_map(|b| <Hash>::try_from(b.as_slice()).ok())
                        .filter_map(|h| room.index.key_of(h))
                        .collect();
                    let store = self.archive.store().clone();
                    let job = blocking::run("reading history for a peer", move || {
                        Ok(archive::frames_for_peer(&store, &topic, &keys)?)
                    })
                    .map(move |result| {
                        let response = match result {
                            Ok(frames) => SyncResponse::Frames { frames },
                            // Nothing of our internals goes to a peer.
                            Err(super::Error::Interrupted { .. }) => SyncResponse::Refused {
                                reason: "history read failed".into(),
                            },
                            Err(e) => SyncResponse::Refused {
                                reason: format!("history store: {e}"),
                            },
                        };
                        Background::Respond { channel, response }
                    });
                    self.sync.background.push(job.boxed());
                    return;
                }
            },
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    pub(super) fn on_background(&mut self, done: Background) {
        match done {
            Background::Respond { channel, response } => {
                // The requester may have gone; it then sees its own failure.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response);
            }
            Background::Checked {
                peer,
                topic,
                frames,
            } => {
                for (frame, checked) in frames {
                    self.receive(&topic, checked, &frame, Via::Sync);
                }
                let key = (peer, topic);
                let Some(pull) = self.sync.pulls.get_mut(&key) else {
                    return;
                };
                pull.checking = pull.checking.saturating_sub(1);
                if std::mem::take(&mut pull.deferred) {
                    self.fetch_next(peer, &key.1);
                } else if pull.finished() {
                    self.sync.end(&key);
                }
            }
        }
    }

    fn on_sync_response(&mut self, peer: PeerId, topic: TopicHash, response: SyncResponse) {
        let key = (peer, topic.clone());
        match response {
            SyncResponse::Reconcile { msg } => {
                let Some(session) = self
                    .sync
                    .pulls
                    .get_mut(&key)
                    .and_then(|p| p.session.as_mut())
                else {
                    // Not an answer this pull waits for: the pull ends.
                    self.sync.end(&key);
                    return;
                };
                match session.step(&msg) {
                    Ok(Step::Continue(next)) => self.send_sync(
                        peer,
                        &topic,
                        SyncRequest::Reconcile {
                            topic: topic.to_string(),
                            msg: ByteBuf::from(next),
                        },
                    ),
                    Ok(Step::Done(mut need)) => {
                        let missing = need.len();
                        let claimed = &mut self.sync.claimed;
                        need.retain(|hash| claimed.insert(*hash));
                        tracing::debug!(%peer, missing, taken = need.len(), "history reconciled");
                        if let Some(pull) = self.sync.pulls.get_mut(&key) {
                            pull.session = None;
                            pull.claimed.clone_from(&need);
                            pull.need = need.into();
                        }
                        self.fetch_next(peer, &topic);
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "history reconciliation failed");
                        self.sync.end(&key);
                    }
                }
            }
            SyncResponse::Frames { frames } => {
                let Some(pull) = self.sync.pulls.get_mut(&key) else {
                    tracing::debug!(%peer, "history page for a pull that ended dropped");
                    return;
                };
                let asked = std::mem::take(&mut pull.asked);
                if frames.len() < asked.len() {
                    pull.short = true;
                    // Frames come in the order asked; a page cut short by
                    // the budget is a prefix, so the rest is asked again
                    // (at least one frame came: this ends).
                    if !frames.is_empty() {
                        for hash in asked[frames.len()..].iter().rev() {
                            pull.need.push_front(*hash);
                        }
                    }
                }
                // The next page is asked for while this one is checked, on
                // every core, off the node task; a third waits.
                pull.checking += 1;
                if pull.checking == 1 {
                    self.fetch_next(peer, &topic);
                } else {
                    pull.deferred = true;
                }
                let job = blocking::run("checking synced messages", {
                    let topic = topic.clone();
                    move || Ok(sync::check_frames(&topic, frames))
                })
                .map(move |checked| Background::Checked {
                    peer,
                    topic,
                    // Lost frames come again with the next sync round.
                    frames: checked.unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "checking synced messages failed");
                        Vec::new()
                    }),
                });
                self.sync.background.push(job.boxed());
            }
            SyncResponse::Refused { reason } => {
                tracing::debug!(%peer, %reason, "history sync refused");
                self.sync.end(&key);
            }
        }
    }

    fn fetch_next(&mut self, peer: PeerId, topic: &TopicHash) {
        let key = (peer, topic.clone());
        let Some(pull) = self.sync.pulls.get_mut(&key) else {
            return;
        };
        let n = pull.need.len().min(sync::FETCH_PAGE);
        if n == 0 {
            if pull.finished() {
                self.sync.end(&key);
            }
            return;
        }
        pull.asked = pull.need.drain(..n).collect();
        let ids = pull
            .asked
            .iter()
            .map(|h| ByteBuf::from(h.to_vec()))
            .collect();
        self.send_sync(
            peer,
            topic,
            SyncRequest::Fetch {
                topic: topic.to_string(),
                ids,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(pull: Pull) -> Vec<Retry> {
        let mut state = SyncState::default();
        let key = (PeerId::random(), TopicHash::from_raw("t"));
        state.pulls.insert(key.clone(), pull);
        state.end(&key);
        state.retries
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
        state.end(&key);
        let now = tokio::time::Instant::now();
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
        state.end(&key);
        state.forget_room(&topic);
        assert!(state.retries.is_empty());
    }
}
