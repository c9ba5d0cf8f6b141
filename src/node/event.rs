//! What the node tells its front ends. The serde form is the `--json` line
//! and the `/events` stream: `{"event":"<kind>", ...fields}`.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

/// Something that happened on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// We listen on this address (full, ending in `/p2p/<id>`).
    Listening {
        /// The address.
        address: String,
    },
    /// The first connection to a peer opened.
    PeerConnected {
        /// Peer id.
        peer: String,
    },
    /// The last connection to a peer closed.
    PeerDisconnected {
        /// Peer id.
        peer: String,
    },
    /// A peer told us its nick.
    PeerNick {
        /// Peer id.
        peer: String,
        /// Its nick.
        nick: String,
    },
    /// A room message from another peer.
    Message {
        /// Room name.
        room: String,
        /// Message id.
        id: String,
        /// Author's peer id.
        from: String,
        /// Author's nick.
        nick: String,
        /// Text.
        text: String,
        /// Author's clock, ms since the epoch.
        ts: u64,
        /// It arrived by history sync, not live: it was sent while this
        /// node was away or cut off.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        recovered: bool,
    },
    /// One of our room messages went out.
    Sent {
        /// Room name.
        room: String,
        /// Message id.
        id: String,
        /// Our nick.
        nick: String,
        /// Text.
        text: String,
        /// Our clock, ms since the epoch.
        ts: u64,
    },
    /// One of our room messages is queued until a peer of the room appears.
    Pending {
        /// Room name.
        room: String,
        /// Message id.
        id: String,
        /// Text.
        text: String,
    },
    /// One of our room messages could not be kept: the commit that held it
    /// failed. If it was published, peers may hold it; it is not sent
    /// again. If it was still queued, it is dropped from the queue.
    NotSaved {
        /// Room name.
        room: String,
        /// Message id.
        id: String,
        /// Whether it went out before the commit failed.
        published: bool,
        /// Why, in one line.
        error: String,
    },
    /// The history store works again after failing.
    StoreRecovered {
        /// What happened, one line.
        message: String,
    },
    /// A direct message to us.
    Direct {
        /// Message id.
        id: String,
        /// Sender's peer id.
        from: String,
        /// Sender's nick.
        nick: String,
        /// Text.
        text: String,
        /// Sender's clock, ms since the epoch.
        ts: u64,
    },
    /// A direct message of ours was delivered.
    Receipt {
        /// The direct message's id.
        id: String,
        /// The recipient.
        to: String,
    },
    /// A direct message of ours was not delivered.
    DirectFailed {
        /// The direct message's id.
        id: String,
        /// The intended recipient.
        to: String,
        /// Why, in one line.
        reason: String,
    },
    /// We joined a room.
    Joined {
        /// Room name.
        room: String,
    },
    /// We left a room.
    Left {
        /// Room name.
        room: String,
    },
    /// Messages in a room that this node cannot read: sealed with another
    /// key than ours, sealed while we joined without a passphrase, or plain
    /// while we hold a key. Given for an author and key the first time and
    /// again after every 100 more.
    Unreadable {
        /// Room name.
        room: String,
        /// The author's peer id.
        from: String,
        /// Unreadable messages from this author with this key so far.
        count: u64,
        /// The key id their messages are sealed with; None: not sealed.
        theirs: Option<String>,
        /// Our key id for the room; None: we joined without a passphrase.
        ours: Option<String>,
    },
    /// Something the user must see, in one line.
    Error {
        /// The message.
        message: String,
    },
}

impl Event {
    /// Whether the event carries chat content (a message's text): what a
    /// front end nobody reads, such as a headless node's stdout that ends
    /// up in container logs, must not print.
    pub fn carries_text(&self) -> bool {
        matches!(
            self,
            Event::Message { .. }
                | Event::Sent { .. }
                | Event::Pending { .. }
                | Event::Direct { .. }
        )
    }
}

/// A front end's stream of events: every event from when it subscribed on,
/// or, when it falls more than the channel's capacity behind, how many it
/// missed (`RecvError::Lagged`).
///
/// The channel holds each event once behind an `Arc`: its slots, allocated
/// up front, stay small (the idle node's memory), and a subscriber gets its
/// own copy only when it takes the event.
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<Arc<Event>>,
}

impl Events {
    pub(super) fn new(rx: broadcast::Receiver<Arc<Event>>) -> Self {
        Events { rx }
    }

    /// The next event; `Lagged(n)` once after `n` were missed, `Closed` once
    /// the node has stopped and every event was taken.
    pub async fn recv(&mut self) -> Result<Event, broadcast::error::RecvError> {
        self.rx.recv().await.map(|e| Event::clone(&e))
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Result<Event, broadcast::error::TryRecvError> {
        self.rx.try_recv().map(|e| Event::clone(&e))
    }
}
