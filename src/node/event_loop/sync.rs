//! History sync, the doing: sending what [`SyncState`] decides, checking
//! fetched pages and reading pages for peers off the node task, and taking
//! checked messages in through the rooms.
//!
//! [`SyncState`]: crate::node::sync::SyncState

use libp2p::{
    PeerId,
    futures::FutureExt,
    gossipsub::TopicHash,
    request_response::{self, ResponseChannel},
};
use serde_bytes::ByteBuf;
use tokio::time::Instant;

use super::EventLoop;
use crate::{
    node::{
        Error, archive, blocking,
        sync::{self, Link, Out, SYNC_FANOUT, Serve},
    },
    protocol::{Envelope, Rejection},
    sync::{SyncRequest, SyncResponse, check_frames},
};

/// Work done off the node task whose result the task takes on.
pub(crate) enum Job {
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

type SyncEvent = request_response::Event<SyncRequest, SyncResponse>;

impl EventLoop {
    /// Reconciles a room with the connected peers that are in it: all of
    /// them, or `fanout` of them, taken in turn round after round.
    pub(super) fn sync_room(&mut self, topic: &TopicHash, fanout: Option<usize>) {
        let peers: Vec<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&topic))
            .map(|(p, _)| *p)
            .collect();
        for peer in self.sync.pick(peers, fanout) {
            self.start_pull(peer, topic, 0);
        }
    }

    /// Reconciles every room with its peers (the periodic sync).
    pub(super) fn sync_all(&mut self) {
        self.sync.next_round();
        for topic in self.rooms.topics() {
            self.sync_room(&topic, Some(SYNC_FANOUT));
        }
    }

    /// Starts the pulls that ended short and are due again, with peers
    /// still connected.
    pub(super) fn retry_syncs(&mut self, now: Instant) {
        for r in self.sync.due_retries(now) {
            if self.swarm.is_connected(&r.peer) {
                self.start_pull(r.peer, &r.topic, r.attempt);
            }
        }
    }

    /// Starts pulling a room's history from `peer`, unless already doing so.
    pub(super) fn start_pull(&mut self, peer: PeerId, topic: &TopicHash, attempt: u8) {
        let Some(room) = self.rooms.get(topic) else {
            return;
        };
        let link = if self.peers.relayed_only(&peer) {
            Link::Relayed
        } else {
            Link::Direct
        };
        let out = self
            .sync
            .start(peer, topic, room.index.sorted(), attempt, link);
        self.do_sync(out);
    }

    fn do_sync(&mut self, outs: impl IntoIterator<Item = Out>) {
        for out in outs {
            match out {
                Out::Request {
                    peer,
                    topic,
                    request,
                } => {
                    let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                    self.sync.sent(id, peer, topic);
                }
                Out::Check {
                    peer,
                    topic,
                    frames,
                } => {
                    // On every core, off the node task.
                    let job = blocking::run("checking synced messages", {
                        let topic = topic.clone();
                        move || Ok(check_frames(&topic, frames))
                    })
                    .map(move |checked| Job::Checked {
                        peer,
                        topic,
                        // Lost frames come again with the next sync round.
                        frames: checked.unwrap_or_else(|e| {
                            tracing::warn!(error = %e, "checking synced messages failed");
                            Vec::new()
                        }),
                    });
                    self.sync_jobs.push(job.boxed());
                }
            }
        }
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
                let outs = self.sync.answered(request_id, response, Instant::now());
                self.do_sync(outs);
            }
            E::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if self.sync.failed(request_id, Instant::now()) {
                    tracing::debug!(%peer, %error, "history sync request failed");
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
        let (topic, keys) = match sync::serve(&self.rooms, request) {
            Serve::Answer(response) => {
                if let SyncResponse::Refused { reason } = &response {
                    tracing::debug!(%peer, %reason, "history sync request refused");
                }
                self.respond(channel, response);
                return;
            }
            Serve::Read { topic, keys } => (topic, keys),
        };
        let store = self.archive.store().clone();
        let job = blocking::run("reading history for a peer", move || {
            Ok(archive::frames_for_peer(&store, &topic, &keys)?)
        })
        .map(move |result| {
            let response = match result {
                Ok(frames) => SyncResponse::Frames { frames },
                // Nothing of our internals goes to a peer.
                Err(Error::Interrupted { .. }) => SyncResponse::Refused {
                    reason: "history read failed".into(),
                },
                Err(e) => SyncResponse::Refused {
                    reason: format!("history store: {e}"),
                },
            };
            Job::Respond { channel, response }
        });
        self.sync_jobs.push(job.boxed());
    }

    fn respond(&mut self, channel: ResponseChannel<SyncResponse>, response: SyncResponse) {
        // The requester may have gone; it then sees its own failure.
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    pub(super) fn on_sync_job(&mut self, done: Job) {
        match done {
            Job::Respond { channel, response } => self.respond(channel, response),
            Job::Checked {
                peer,
                topic,
                frames,
            } => {
                for (frame, checked) in frames {
                    self.receive_synced(&topic, checked, &frame);
                }
                let outs = self.sync.checked(peer, topic, Instant::now());
                self.do_sync(outs);
            }
        }
    }
}
