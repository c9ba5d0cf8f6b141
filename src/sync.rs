//! History sync, the pure part: the wire messages of `/p2p-chat/sync/1` and
//! range-based set reconciliation (Negentropy) over a room's `(ts, id)` set.
//!
//! The initiator sends its fingerprints, the responder answers with its own
//! for the ranges that differ, and so on until the initiator knows which ids
//! it lacks; it then fetches those in pages. The cost is proportional to the
//! difference, not to the history, and every step is bounded: frame size,
//! rounds, ids per fetch, bytes per response.

use std::collections::BTreeSet;

use libp2p::StreamProtocol;
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use libp2p::gossipsub::TopicHash;

use crate::{
    protocol::{AuthorKeys, Envelope, Rejection},
    store::Hash,
};

/// Protocol id of history sync.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/p2p-chat/sync/1");
/// Largest reconciliation message, in bytes (Negentropy's frame limit).
pub const FRAME_LIMIT: u64 = 60_000;
/// Most reconciliation rounds in one session.
pub const MAX_ROUNDS: usize = 256;
/// Most ids asked for in one fetch.
pub const FETCH_PAGE: usize = 512;
/// Most bytes of messages in one fetch response.
pub const RESPONSE_BUDGET: usize = 2 * 1024 * 1024;
/// Largest sync request on the wire.
pub const MAX_REQUEST: u64 = 128 * 1024;
/// Largest sync response on the wire.
pub const MAX_RESPONSE: u64 = RESPONSE_BUDGET as u64 + 128 * 1024;

/// A request on [`PROTOCOL`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SyncRequest {
    /// A reconciliation message for a room.
    Reconcile {
        /// The room's topic.
        topic: String,
        /// Negentropy message.
        msg: ByteBuf,
    },
    /// Asks for messages by id.
    Fetch {
        /// The room's topic.
        topic: String,
        /// Message hashes, at most [`FETCH_PAGE`].
        ids: Vec<ByteBuf>,
    },
}

/// The answer to a [`SyncRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SyncResponse {
    /// The next reconciliation message.
    Reconcile {
        /// Negentropy message.
        msg: ByteBuf,
    },
    /// The messages asked for that the responder has, as received.
    Frames {
        /// Envelope frames.
        frames: Vec<ByteBuf>,
    },
    /// The request was refused (not in the room, over a limit, malformed).
    Refused {
        /// One-line reason.
        reason: String,
    },
}

/// Why a reconciliation step failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SyncError {
    /// The peer's message is not valid Negentropy.
    #[error("reconciliation failed: {0}")]
    Protocol(String),
    /// The session took more rounds than allowed.
    #[error("more than {MAX_ROUNDS} rounds")]
    TooManyRounds,
}

fn protocol(e: negentropy::Error) -> SyncError {
    SyncError::Protocol(e.to_string())
}

fn storage(index: &BTreeSet<(u64, Hash)>) -> Result<NegentropyStorageVector, SyncError> {
    let mut storage = NegentropyStorageVector::with_capacity(index.len());
    for (ts, hash) in index {
        storage
            .insert(*ts, Id::from_byte_array(*hash))
            .map_err(protocol)?;
    }
    storage.seal().map_err(protocol)?;
    Ok(storage)
}

/// The responder's side of one round: stateless, bounded by [`FRAME_LIMIT`].
pub fn respond(index: &BTreeSet<(u64, Hash)>, msg: &[u8]) -> Result<Vec<u8>, SyncError> {
    let mut neg = Negentropy::owned(storage(index)?, FRAME_LIMIT).map_err(protocol)?;
    neg.reconcile(msg).map_err(protocol)
}

/// What the initiator does next.
#[derive(Debug)]
pub enum Step {
    /// Send this message and wait for the answer.
    Continue(Vec<u8>),
    /// Reconciled: these are the ids we lack.
    Done(Vec<Hash>),
}

/// The initiator's side of a reconciliation.
pub struct Session {
    neg: Negentropy<'static, NegentropyStorageVector>,
    rounds: usize,
    need: Vec<Hash>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("rounds", &self.rounds)
            .field("need", &self.need.len())
            .finish()
    }
}

impl Session {
    /// Starts a session over our `index`; returns the first message.
    pub fn start(index: &BTreeSet<(u64, Hash)>) -> Result<(Session, Vec<u8>), SyncError> {
        let mut neg = Negentropy::owned(storage(index)?, FRAME_LIMIT).map_err(protocol)?;
        let first = neg.initiate().map_err(protocol)?;
        Ok((
            Session {
                neg,
                rounds: 0,
                need: Vec::new(),
            },
            first,
        ))
    }

    /// Takes the responder's answer.
    pub fn step(&mut self, msg: &[u8]) -> Result<Step, SyncError> {
        self.rounds += 1;
        if self.rounds > MAX_ROUNDS {
            return Err(SyncError::TooManyRounds);
        }
        let mut have = Vec::new();
        let mut need = Vec::new();
        let next = self
            .neg
            .reconcile_with_ids(msg, &mut have, &mut need)
            .map_err(protocol)?;
        self.need.extend(need.iter().map(|id| *id.as_bytes()));
        Ok(match next {
            Some(msg) => Step::Continue(msg),
            None => Step::Done(std::mem::take(&mut self.need)),
        })
    }
}

/// Decodes and checks fetched frames, split over the machine's cores, each
/// part decoding an author's key once (a page is mostly a few authors).
/// Blocking.
pub fn check_frames(
    topic: &TopicHash,
    frames: Vec<ByteBuf>,
) -> Vec<(ByteBuf, Result<Envelope, Rejection>)> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = frames.len().div_ceil(cores).max(64);
    let check = |part: &[ByteBuf]| -> Vec<Result<Envelope, Rejection>> {
        let mut keys = AuthorKeys::default();
        part.iter()
            .map(|f| {
                let env = Envelope::parse(f, topic)?;
                keys.verify(&env, topic.as_str())?;
                Ok(env)
            })
            .collect()
    };
    let results: Vec<Result<Envelope, Rejection>> = std::thread::scope(|s| {
        let parts: Vec<_> = frames
            .chunks(chunk)
            .map(|part| s.spawn(move || check(part)))
            .collect();
        parts
            .into_iter()
            .zip(frames.chunks(chunk))
            // A panicked checker (none is expected) rejects its part.
            .flat_map(|(h, part)| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(Rejection::Malformed); part.len()])
            })
            .collect()
    });
    frames.into_iter().zip(results).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    #[test]
    fn fetched_frames_are_checked_in_order_each_author_by_its_own_key() {
        let topic = crate::protocol::topic_for("lobby").hash();
        let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let frame = |author: &Keypair, signer: &Keypair, text: &str| {
            let mut env = Envelope::text(&author.public().to_peer_id(), "lobby", "n", text);
            env.sign(signer, topic.as_str());
            ByteBuf::from(env.encode())
        };
        let mut frames: Vec<ByteBuf> = (0..150)
            .map(|i| {
                let author = if i % 2 == 0 { &a } else { &b };
                frame(author, author, &i.to_string())
            })
            .collect();
        frames[70] = frame(&a, &b, "forged");
        frames[140] = ByteBuf::from(b"{not json".to_vec());
        let checked = check_frames(&topic, frames.clone());
        assert_eq!(checked.len(), 150);
        for (i, ((frame, result), sent)) in checked.iter().zip(&frames).enumerate() {
            assert_eq!(frame, sent, "frames keep their order");
            match i {
                70 => assert_eq!(result.as_ref().err(), Some(&Rejection::Forged)),
                140 => assert_eq!(result.as_ref().err(), Some(&Rejection::Malformed)),
                _ => assert!(result.is_ok(), "frame {i}: {result:?}"),
            }
        }
    }

    fn index(range: std::ops::Range<u64>) -> BTreeSet<(u64, Hash)> {
        range
            .map(|i| (i, crate::store::hash(&i.to_string())))
            .collect()
    }

    fn reconcile(
        ours: &BTreeSet<(u64, Hash)>,
        theirs: &BTreeSet<(u64, Hash)>,
    ) -> (Vec<Hash>, usize) {
        let (mut session, mut msg) = Session::start(ours).expect("start");
        let mut bytes = msg.len();
        loop {
            let answer = respond(theirs, &msg).expect("respond");
            bytes += answer.len();
            match session.step(&answer).expect("step") {
                Step::Continue(next) => {
                    bytes += next.len();
                    msg = next;
                }
                Step::Done(need) => return (need, bytes),
            }
        }
    }

    #[test]
    fn finds_exactly_what_we_lack() {
        let ours = index(0..900);
        let theirs = index(100..1000);
        let (need, _) = reconcile(&ours, &theirs);
        let want: BTreeSet<Hash> = index(900..1000).into_iter().map(|(_, h)| h).collect();
        assert_eq!(need.into_iter().collect::<BTreeSet<_>>(), want);
    }

    #[test]
    fn cost_follows_the_difference_not_the_size() {
        let big = index(0..50_000);
        let mut almost = big.clone();
        almost.remove(&(25_000, crate::store::hash("25000")));
        let (need, bytes) = reconcile(&almost, &big);
        assert_eq!(need.len(), 1);
        assert!(
            bytes < 20_000,
            "{bytes} bytes to find one missing id among 50,000"
        );
        let (need, _) = reconcile(&big, &big);
        assert!(need.is_empty());
    }

    #[test]
    fn garbage_from_a_peer_is_an_error_not_a_panic() {
        let ours = index(0..10);
        assert!(respond(&ours, b"\xff\x00garbage").is_err());
        for garbage in [
            &b""[..],
            b"\x61",
            b"\x61\xff\xff\xff",
            b"\x61\x00\x02\xff\xff\xff\xff\xff",
            &[0x61; 300],
        ] {
            let _ = respond(&ours, garbage);
            let (mut session, _) = Session::start(&ours).expect("start");
            let _ = session.step(garbage);
        }
    }
}
