//! Direct messages and hellos, the doing: sending requests and answers on
//! the swarm, and applying what [`Direct`](crate::node::direct::Direct)
//! decided to the peer book, the metrics and the event channel.

use libp2p::{
    PeerId,
    request_response::{self, OutboundFailure},
};
use tokio::sync::oneshot;

use super::EventLoop;
use crate::{
    limits,
    node::{Error, Event, Receipt, direct::Out},
    protocol::{DirectRequest, DirectResponse, Envelope},
};

type DirectEvent = request_response::Event<DirectRequest, DirectResponse>;

impl EventLoop {
    pub(super) fn send_direct(
        &mut self,
        to: &str,
        text: String,
        user: Option<&str>,
        reply: oneshot::Sender<Result<Receipt, Error>>,
    ) {
        let checked = limits::own_text(&text)
            .map_err(Error::from)
            .and_then(|()| self.nick_of_user(user));
        let nick = match checked {
            Ok(nick) => nick,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let peer = match self.peers.resolve(to) {
            Ok(peer) => peer,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let env = Envelope::text(self.author.id(), "", &nick, &text);
        let id = env.id.clone();
        let request = self
            .swarm
            .behaviour_mut()
            .direct
            .send_request(&peer, DirectRequest::Message(env));
        self.direct.sent(request, id, peer, reply);
    }

    /// The nick a message from `user` carries: `user@<our nick>` for a
    /// user of this node (SSH), our nick for our own.
    pub(super) fn nick_of_user(&self, user: Option<&str>) -> Result<String, Error> {
        let Some(user) = user else {
            return Ok(self.nick.clone());
        };
        let nick = format!("{user}@{}", self.nick);
        limits::own_nick(&nick)?;
        Ok(nick)
    }

    /// Tells `peer` our nick.
    pub(super) fn send_hello(&mut self, peer: PeerId) {
        let hello = DirectRequest::Hello {
            nick: self.nick.clone(),
        };
        self.swarm.behaviour_mut().direct.send_request(&peer, hello);
    }

    pub(super) fn on_direct(&mut self, event: DirectEvent) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message: M::Request {
                    request, channel, ..
                },
                ..
            } => {
                let name = self.name_of(&peer);
                let (response, outs) = self.direct.request(peer, &name, request, &self.nick);
                self.do_direct(outs);
                // The requester may have gone; it then sees its own failure.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .direct
                    .send_response(channel, response);
            }
            E::Message {
                peer,
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let name = self.name_of(&peer);
                let outs = self.direct.answered(peer, &name, request_id, response);
                self.do_direct(outs);
            }
            E::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let err = match error {
                    OutboundFailure::Timeout => Error::Timeout(peer),
                    OutboundFailure::DialFailure => Error::DirectFailed {
                        peer,
                        reason: "could not reach the peer".into(),
                    },
                    OutboundFailure::UnsupportedProtocols => Error::DirectFailed {
                        peer,
                        reason: "the peer does not speak p2p-chat direct messages".into(),
                    },
                    other => Error::DirectFailed {
                        peer,
                        reason: other.to_string(),
                    },
                };
                let outs = self.direct.failed(request_id, err);
                self.do_direct(outs);
            }
            E::InboundFailure { peer, error, .. } => {
                tracing::debug!(peer = %peer, %error, "inbound direct request failed");
            }
            E::ResponseSent { .. } => {}
        }
    }

    fn do_direct(&mut self, outs: Vec<Out>) {
        for out in outs {
            match out {
                Out::Show(event) => self.emit(event),
                Out::Refused(reason) => self.metrics.direct_rejected(reason),
                Out::Nick { peer, nick } => self.learn_nick(peer, &nick),
                Out::Used(peer) => self.peers.used(&peer),
                Out::Answer(reply, result) => {
                    // The sender may have stopped waiting.
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// A peer's id in base58, from the peer book while it is connected.
    fn name_of(&self, peer: &PeerId) -> String {
        match self.peers.name(peer) {
            Some(name) => name.to_owned(),
            None => peer.to_string(),
        }
    }

    fn learn_nick(&mut self, peer: PeerId, nick: &str) {
        if !limits::peer_nick(nick) {
            return;
        }
        if self.peers.set_nick(&peer, nick) {
            self.emit(Event::PeerNick {
                peer: peer.to_string(),
                nick: nick.to_owned(),
            });
        }
    }
}
