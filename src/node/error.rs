//! Errors a caller of the node sees: each message is one line that names
//! what to fix.

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use crate::identity::IdentityError;

/// Errors a caller of the node can see. Each message is one line that names
/// what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node task has stopped.
    #[error("the node has stopped")]
    NodeStopped,
    /// The identity could not be loaded.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The transport or a behaviour could not be built.
    #[error("cannot start the network stack: {0}")]
    Transport(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// A message text is over the limit.
    #[error("message is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A message text is empty.
    #[error("message is empty")]
    Empty,
    /// A room name is not acceptable.
    #[error("invalid room name: {0}")]
    InvalidRoom(String),
    /// A nick is not acceptable.
    #[error("invalid nick: {0}")]
    InvalidNick(String),
    /// The room has not been joined.
    #[error("not in room '{0}': /join it first")]
    NotJoined(String),
    /// No peer with that id or nick is known.
    #[error("unknown peer or nick '{0}': see /peers")]
    UnknownPeer(String),
    /// Several peers share the nick.
    #[error("nick '{nick}' is ambiguous: use one of {candidates}")]
    AmbiguousNick {
        /// The nick given.
        nick: String,
        /// The distinguishable names, comma-separated.
        candidates: String,
    },
    /// The peer is known but not connected.
    #[error("not connected to {0}")]
    NotConnected(PeerId),
    /// No receipt came within the request timeout.
    #[error("no receipt from {0} within the timeout")]
    Timeout(PeerId),
    /// The direct message failed for another reason.
    #[error("direct message to {peer} failed: {reason}")]
    DirectFailed {
        /// The recipient.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// The room's pending queue is full.
    #[error("{0} messages are already waiting for a peer in '{1}': wait for one to join")]
    QueueFull(usize, String),
    /// The history store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The history store is failing: a new message is refused before it is
    /// sent, as it could not be kept.
    #[error(
        "not sent: history is not being saved ({0}); free space in the data dir \
         (the node tries the store again every 5 s)"
    )]
    StoreFailing(String),
    /// The commit that held one of our messages failed.
    #[error("message {id} {} but not saved: {reason}", if *.published { "was sent" } else { "was not sent" })]
    NotSaved {
        /// The message id.
        id: String,
        /// Whether it went out before the commit failed (peers may hold it;
        /// it is not sent again).
        published: bool,
        /// Why the commit failed.
        reason: String,
    },
    /// The room key could not be derived.
    #[error("cannot derive the room key: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
    /// Work off the node task (a store read, key derivation) stopped
    /// before it answered.
    #[error("{what} stopped: {reason}")]
    Interrupted {
        /// What it was doing.
        what: &'static str,
        /// Why it stopped.
        reason: String,
    },
    /// Gossipsub refused the publish.
    #[error("cannot send to '{room}': {reason}")]
    Publish {
        /// The room.
        room: String,
        /// Why.
        reason: String,
    },
}

impl<T> From<mpsc::error::SendError<T>> for Error {
    fn from(_: mpsc::error::SendError<T>) -> Self {
        Error::NodeStopped
    }
}

impl From<crate::limits::Invalid> for Error {
    fn from(e: crate::limits::Invalid) -> Self {
        use crate::limits::Invalid;
        match e {
            Invalid::Nick(why) => Error::InvalidNick(why),
            Invalid::Room(why) => Error::InvalidRoom(why),
            Invalid::Empty => Error::Empty,
            Invalid::TooLarge { size, limit } => Error::TooLarge { size, limit },
        }
    }
}

impl From<oneshot::error::RecvError> for Error {
    fn from(_: oneshot::error::RecvError) -> Self {
        Error::NodeStopped
    }
}
