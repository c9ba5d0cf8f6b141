//! History sync with the peers of each room, decided without I/O: which
//! peers a round reconciles with, each pull's session (reconcile the sets
//! of message ids, then fetch what we lack in bounded pages, at most two
//! pages waiting in memory), retries of pulls that ended short, and what to
//! answer a peer's request. Each decision returns [`Out`]s (requests to
//! send, pages to check) that the event loop carries out; the pages come
//! back, checked, through [`Rooms::receive`](super::rooms::Rooms::receive)
//! as a live message would.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use libp2p::{PeerId, gossipsub::TopicHash, request_response::OutboundRequestId};
use serde_bytes::ByteBuf;
use tokio::time::{Duration, Instant};

use super::rooms::Rooms;
use crate::{
    store::Hash,
    sync::{self, Session, Step, SyncRequest, SyncResponse},
};

/// Peers of a room one periodic sync round reconciles with. Every peer
/// comes in turn; a message any peer holds spreads like gossip, without
/// every node asking every peer every round.
pub(super) const SYNC_FANOUT: usize = 3;

/// A pull that ended short is tried again with the same peer this much
/// later, at most [`MAX_RETRIES`] times; after that the periodic round
/// fetches what is still missing.
const RETRY_AFTER: Duration = Duration::from_secs(1);
const MAX_RETRIES: u8 = 3;
/// Ids asked for in one fetch from a peer reached only through a relay:
/// relays limit each circuit's bytes (1 MiB by default here, 128 KiB by
/// libp2p's), and a full page could take all of it.
pub(super) const RELAYED_FETCH_PAGE: usize = 8;
/// Fetches one pull makes over a relay; the rest waits for a direct
/// connection (a relayed one giving way starts a pull) or the next round.
pub(super) const RELAYED_PAGES: usize = 1;

/// How a pull's peer is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Link {
    /// At least one direct connection.
    #[default]
    Direct,
    /// Only through a relay: fetches are small and few.
    Relayed,
}

/// What the event loop does for history sync.
#[derive(Debug)]
pub(super) enum Out {
    /// Send `request` to `peer`, then tell [`SyncState::sent`] its id.
    Request {
        peer: PeerId,
        topic: TopicHash,
        request: SyncRequest,
    },
    /// Check a fetched page off the node task, then hand each frame to the
    /// rooms and tell [`SyncState::checked`].
    Check {
        peer: PeerId,
        topic: TopicHash,
        frames: Vec<ByteBuf>,
    },
}

/// What to answer a peer's sync request.
#[derive(Debug)]
pub(super) enum Serve {
    Answer(SyncResponse),
    /// Read these frames of `topic` from the store (by `(ts, hash)`), off
    /// the node task, and answer with them.
    Read {
        topic: String,
        keys: Vec<(u64, Hash)>,
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
    /// How the peer is reached.
    link: Link,
    /// Fetches made.
    pages: usize,
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

/// A pull to start again.
#[derive(Debug)]
pub(super) struct Retry {
    due: Instant,
    pub(super) peer: PeerId,
    pub(super) topic: TopicHash,
    pub(super) attempt: u8,
}

type Key = (PeerId, TopicHash);

/// History sync state of the node.
#[derive(Default)]
pub(super) struct SyncState {
    pulls: HashMap<Key, Pull>,
    requests: HashMap<OutboundRequestId, Key>,
    /// Periodic rounds so far: which peers the next round picks.
    round: usize,
    /// Ids some pull of this node is fetching: another pull that finds the
    /// same ids missing leaves them to it, so each is fetched once.
    claimed: HashSet<Hash>,
    /// Pulls that ended short, to start again.
    retries: Vec<Retry>,
}

impl SyncState {
    /// Peers a pull is under way with.
    pub(super) fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.pulls.keys().map(|(peer, _)| *peer)
    }

    /// `peer` is now reached directly: its pulls fetch full pages again.
    pub(super) fn direct_now(&mut self, peer: &PeerId) {
        for ((p, _), pull) in &mut self.pulls {
            if p == peer {
                pull.link = Link::Direct;
            }
        }
    }

    /// A periodic round begins: the next peers' turn.
    pub(super) fn next_round(&mut self) {
        self.round = self.round.wrapping_add(1);
    }

    /// Which of a room's peers to reconcile with: all, or `fanout` of them,
    /// taken in turn round after round.
    pub(super) fn pick(&self, mut peers: Vec<PeerId>, fanout: Option<usize>) -> Vec<PeerId> {
        if let Some(fanout) = fanout.filter(|&f| f < peers.len()) {
            peers.sort_unstable();
            let start = self.round * fanout % peers.len();
            peers.rotate_left(start);
            peers.truncate(fanout);
        }
        peers
    }

    /// Starts pulling a room's history (`ids`, what we hold of it) from
    /// `peer`, unless already doing so.
    pub(super) fn start(
        &mut self,
        peer: PeerId,
        topic: &TopicHash,
        ids: &BTreeSet<(u64, Hash)>,
        attempt: u8,
        link: Link,
    ) -> Option<Out> {
        let key = (peer, topic.clone());
        if self.pulls.contains_key(&key) {
            return None;
        }
        let (session, first) = match Session::start(ids) {
            Ok(started) => started,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start history sync");
                return None;
            }
        };
        self.pulls.insert(
            key,
            Pull {
                session: Some(session),
                attempt,
                link,
                ..Pull::default()
            },
        );
        Some(Out::Request {
            peer,
            topic: topic.clone(),
            request: SyncRequest::Reconcile {
                topic: topic.to_string(),
                msg: ByteBuf::from(first),
            },
        })
    }

    /// A request of [`Out::Request`] went out with this id.
    pub(super) fn sent(&mut self, id: OutboundRequestId, peer: PeerId, topic: TopicHash) {
        self.requests.insert(id, (peer, topic));
    }

    /// A request failed (the peer went, or timed out): its pull ends.
    pub(super) fn failed(&mut self, id: OutboundRequestId, now: Instant) -> bool {
        let Some(key) = self.requests.remove(&id) else {
            return false;
        };
        self.end(&key, now);
        true
    }

    /// A peer answered one of our requests.
    pub(super) fn answered(
        &mut self,
        id: OutboundRequestId,
        response: SyncResponse,
        now: Instant,
    ) -> Vec<Out> {
        let Some(key) = self.requests.remove(&id) else {
            return Vec::new();
        };
        let peer = key.0;
        match response {
            SyncResponse::Reconcile { msg } => {
                let Some(session) = self.pulls.get_mut(&key).and_then(|p| p.session.as_mut())
                else {
                    // Not an answer this pull waits for: the pull ends.
                    self.end(&key, now);
                    return Vec::new();
                };
                match session.step(&msg) {
                    Ok(Step::Continue(next)) => vec![Out::Request {
                        peer,
                        topic: key.1.clone(),
                        request: SyncRequest::Reconcile {
                            topic: key.1.to_string(),
                            msg: ByteBuf::from(next),
                        },
                    }],
                    Ok(Step::Done(mut need)) => {
                        let missing = need.len();
                        let claimed = &mut self.claimed;
                        need.retain(|hash| claimed.insert(*hash));
                        tracing::debug!(%peer, missing, taken = need.len(), "history reconciled");
                        if let Some(pull) = self.pulls.get_mut(&key) {
                            pull.session = None;
                            pull.claimed.clone_from(&need);
                            pull.need = need.into();
                        }
                        self.fetch_next(&key, now).into_iter().collect()
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "history reconciliation failed");
                        self.end(&key, now);
                        Vec::new()
                    }
                }
            }
            SyncResponse::Frames { frames } => {
                let Some(pull) = self.pulls.get_mut(&key) else {
                    tracing::debug!(%peer, "history page for a pull that ended dropped");
                    return Vec::new();
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
                // The next page is asked for while this one is checked;
                // a third waits.
                pull.checking += 1;
                let mut outs = Vec::with_capacity(2);
                if pull.checking == 1 {
                    outs.extend(self.fetch_next(&key, now));
                } else {
                    pull.deferred = true;
                }
                outs.push(Out::Check {
                    peer,
                    topic: key.1,
                    frames,
                });
                outs
            }
            SyncResponse::Refused { reason } => {
                tracing::debug!(%peer, %reason, "history sync refused");
                self.end(&key, now);
                Vec::new()
            }
        }
    }

    /// A page of [`Out::Check`] was checked and taken in.
    pub(super) fn checked(&mut self, peer: PeerId, topic: TopicHash, now: Instant) -> Vec<Out> {
        let key = (peer, topic);
        let Some(pull) = self.pulls.get_mut(&key) else {
            return Vec::new();
        };
        pull.checking = pull.checking.saturating_sub(1);
        if std::mem::take(&mut pull.deferred) {
            return self.fetch_next(&key, now).into_iter().collect();
        }
        if pull.finished() {
            self.end(&key, now);
        }
        Vec::new()
    }

    /// Asks for the next page of what the pull lacks, or ends a pull with
    /// nothing left.
    fn fetch_next(&mut self, key: &Key, now: Instant) -> Option<Out> {
        let pull = self.pulls.get_mut(key)?;
        let (page, pages) = match pull.link {
            Link::Direct => (sync::FETCH_PAGE, usize::MAX),
            Link::Relayed => (RELAYED_FETCH_PAGE, RELAYED_PAGES),
        };
        if pull.pages >= pages && !pull.need.is_empty() {
            tracing::debug!(peer = %key.0, left = pull.need.len(), "the rest of the history waits for a direct connection");
            pull.need.clear();
        }
        let n = pull.need.len().min(page);
        if n == 0 {
            if pull.finished() {
                self.end(key, now);
            }
            return None;
        }
        pull.pages += 1;
        pull.asked = pull.need.drain(..n).collect();
        let ids = pull
            .asked
            .iter()
            .map(|h| ByteBuf::from(h.to_vec()))
            .collect();
        Some(Out::Request {
            peer: key.0,
            topic: key.1.clone(),
            request: SyncRequest::Fetch {
                topic: key.1.to_string(),
                ids,
            },
        })
    }

    /// Removes a pull; what it had claimed but not fetched is free again.
    fn remove(&mut self, key: &Key) -> Option<Pull> {
        let pull = self.pulls.remove(key)?;
        for hash in &pull.claimed {
            self.claimed.remove(hash);
        }
        Some(pull)
    }

    /// Ends a pull. One that left ids behind (answers short, or a failure
    /// with ids still to fetch) is tried again soon, a few times.
    fn end(&mut self, key: &Key, now: Instant) {
        let Some(pull) = self.remove(key) else {
            return;
        };
        let retry = (pull.short || !pull.need.is_empty()) && pull.attempt < MAX_RETRIES;
        tracing::debug!(peer = %key.0, short = pull.short, left = pull.need.len(), attempt = pull.attempt, retry, "history pull ended");
        if retry {
            self.retries.push(Retry {
                due: now + RETRY_AFTER,
                peer: key.0,
                topic: key.1.clone(),
                attempt: pull.attempt + 1,
            });
        }
    }

    /// Retries that are due, taken out.
    pub(super) fn due_retries(&mut self, now: Instant) -> Vec<Retry> {
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

/// What to answer a peer's sync request, from what the rooms hold.
pub(super) fn serve(rooms: &Rooms, request: SyncRequest) -> Serve {
    let refused = |reason: &str| {
        Serve::Answer(SyncResponse::Refused {
            reason: reason.to_owned(),
        })
    };
    let room_of = |t: &str| rooms.get(&TopicHash::from_raw(t));
    match request {
        SyncRequest::Reconcile { topic, msg } => match room_of(&topic) {
            None => refused("not in that room"),
            Some(room) => match sync::respond(room.index.sorted(), &msg) {
                Ok(msg) => Serve::Answer(SyncResponse::Reconcile {
                    msg: ByteBuf::from(msg),
                }),
                Err(e) => {
                    tracing::debug!(error = %e, "bad reconciliation request");
                    refused("malformed reconciliation message")
                }
            },
        },
        SyncRequest::Fetch { topic, ids } => match room_of(&topic) {
            None => refused("not in that room"),
            Some(_) if ids.len() > sync::FETCH_PAGE => refused("too many ids in one fetch"),
            Some(room) => {
                // Each id's store key, from the room's ids; one we do not
                // hold is left out of the answer.
                let keys = ids
                    .iter()
                    .filter_map(|b| <Hash>::try_from(b.as_slice()).ok())
                    .filter_map(|h| room.index.key_of(h))
                    .collect();
                Serve::Read { topic, keys }
            }
        },
    }
}

#[cfg(test)]
mod tests;
