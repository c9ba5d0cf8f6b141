//! Direct messages and hellos, decided without I/O: what to answer a
//! peer's request (a receipt, our nick, or a refusal with its reason), and
//! what a peer's answer to ours means (delivered, refused, failed). Our
//! requests waiting for an answer, and the direct messages already taken
//! in, are held here. Decisions return [`Out`]s the event loop applies.

use std::collections::HashMap;

use libp2p::{PeerId, request_response::OutboundRequestId};
use tokio::sync::oneshot;

use super::{Error, Event, Receipt, rooms::SeenIds};
use crate::protocol::{DirectRequest, DirectResponse};

type ReceiptReply = oneshot::Sender<Result<Receipt, Error>>;

/// What the event loop does about direct traffic.
#[derive(Debug)]
pub(super) enum Out {
    /// Tell the front ends (and the metrics).
    Show(Event),
    /// Count a refused direct message under this reason.
    Refused(&'static str),
    /// The nick a peer told us, for the peer book (limits not yet checked).
    Nick { peer: PeerId, nick: String },
    /// The peer was of use: keep its connection when trimming.
    Used(PeerId),
    /// Answer the handle that sent our message.
    Answer(ReceiptReply, Result<Receipt, Error>),
}

/// A direct message of ours waiting for its receipt.
struct Waiting {
    id: String,
    to: PeerId,
    reply: Option<ReceiptReply>,
}

/// Direct traffic state.
#[derive(Default)]
pub(super) struct Direct {
    /// Our messages waiting for a receipt, by request; hellos are not here.
    waiting: HashMap<OutboundRequestId, Waiting>,
    /// Direct messages taken in, by sender and id (an id is only unique
    /// per author).
    seen: SeenIds,
}

impl Direct {
    /// Peers a message of ours waits on.
    pub(super) fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.waiting.values().map(|w| w.to)
    }

    /// Our message `id` went to `to` as request `request`; `reply` hears
    /// of its receipt or failure.
    pub(super) fn sent(
        &mut self,
        request: OutboundRequestId,
        id: String,
        to: PeerId,
        reply: ReceiptReply,
    ) {
        let waiting = Waiting {
            id,
            to,
            reply: Some(reply),
        };
        self.waiting.insert(request, waiting);
    }

    /// What to answer `peer`'s request. `name` is the peer's id in base58
    /// (what its `from` must say: the connection authenticates the
    /// sender, so a direct message has no signature); `our_nick` answers a
    /// hello.
    pub(super) fn request(
        &mut self,
        peer: PeerId,
        name: &str,
        request: DirectRequest,
        our_nick: &str,
    ) -> (DirectResponse, Vec<Out>) {
        let refuse = |label: &'static str, reason: &str| {
            let response = DirectResponse::Refused {
                reason: reason.to_owned(),
            };
            (response, vec![Out::Refused(label)])
        };
        let env = match request {
            DirectRequest::Hello { nick } => {
                let answer = DirectResponse::Hello {
                    nick: our_nick.to_owned(),
                };
                return (answer, vec![Out::Nick { peer, nick }]);
            }
            DirectRequest::Message(env) => env,
        };
        if let Err(reason) = env.check_fields() {
            return refuse(reason.label(), reason.label());
        }
        if env.from != name {
            return refuse("forged", "sender does not match connection");
        }
        let Some(msg) = env.readable().filter(|m| m.room.is_empty()) else {
            let (response, mut outs) = refuse("malformed", "not a direct message");
            outs.insert(0, Out::Used(peer));
            return (response, outs);
        };
        let receipt = DirectResponse::Receipt { id: msg.id.clone() };
        let mut outs = vec![Out::Used(peer)];
        // `user@node` is one of the node's users, not its nick.
        if !msg.nick.contains('@') {
            outs.push(Out::Nick {
                peer,
                nick: msg.nick.clone(),
            });
        }
        // A repeat (the sender retried after a lost receipt) is answered
        // again, and shown once.
        if self.seen.insert(&format!("{name}/{}", msg.id)) {
            outs.push(Out::Show(Event::Direct {
                id: msg.id,
                from: msg.from,
                nick: msg.nick,
                text: msg.text,
                ts: msg.ts,
            }));
        }
        (receipt, outs)
    }

    /// `peer` answered our request. `name` is its id in base58.
    pub(super) fn answered(
        &mut self,
        peer: PeerId,
        name: &str,
        request: OutboundRequestId,
        response: DirectResponse,
    ) -> Vec<Out> {
        let waiting = self.waiting.remove(&request);
        match (response, waiting) {
            (DirectResponse::Hello { nick }, _) => vec![Out::Nick { peer, nick }],
            (DirectResponse::Receipt { id }, Some(w)) if id == w.id => {
                let to = name.to_owned();
                let mut outs = vec![Out::Used(peer)];
                // The sender waits for this answer; front ends watching
                // events come second.
                if let Some(reply) = w.reply {
                    let receipt = Receipt {
                        id: id.clone(),
                        to: to.clone(),
                    };
                    outs.push(Out::Answer(reply, Ok(receipt)));
                }
                outs.push(Out::Show(Event::Receipt { id, to }));
                outs
            }
            (DirectResponse::Refused { reason }, Some(w)) => {
                failed(w, Error::DirectFailed { peer, reason })
            }
            (other, Some(w)) => {
                let reason = format!("unexpected answer {other:?}");
                failed(w, Error::DirectFailed { peer, reason })
            }
            (_, None) => Vec::new(),
        }
    }

    /// Our request to `peer` failed with `error` (a hello's failure is
    /// only logged).
    pub(super) fn failed(&mut self, request: OutboundRequestId, error: Error) -> Vec<Out> {
        match self.waiting.remove(&request) {
            Some(w) => failed(w, error),
            None => {
                tracing::debug!(%error, "hello failed");
                Vec::new()
            }
        }
    }
}

/// A message of ours was not delivered: its sender hears why.
fn failed(w: Waiting, err: Error) -> Vec<Out> {
    let event = Event::DirectFailed {
        id: w.id,
        to: w.to.to_string(),
        reason: err.to_string(),
    };
    let mut outs = vec![Out::Show(event)];
    if let Some(reply) = w.reply {
        outs.push(Out::Answer(reply, Err(err)));
    }
    outs
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;
    use crate::{node::testing::request_ids, protocol::Envelope};

    fn shown(outs: &[Out]) -> usize {
        outs.iter().filter(|o| matches!(o, Out::Show(_))).count()
    }

    #[test]
    fn a_direct_message_is_answered_with_a_receipt_and_shown_once() {
        let mut direct = Direct::default();
        let peer = PeerId::from(Keypair::generate_ed25519().public());
        let name = peer.to_string();
        let env = Envelope::text(&name, "", "bob", "hello");
        let request = || DirectRequest::Message(env.clone());
        let (answer, outs) = direct.request(peer, &name, request(), "me");
        assert!(matches!(answer, DirectResponse::Receipt { ref id } if *id == env.id));
        assert_eq!(shown(&outs), 1);
        assert!(
            outs.iter()
                .any(|o| matches!(o, Out::Nick { nick, .. } if nick == "bob"))
        );
        let (answer, outs) = direct.request(peer, &name, request(), "me");
        assert!(
            matches!(answer, DirectResponse::Receipt { .. }),
            "answered again"
        );
        assert_eq!(shown(&outs), 0, "shown once");
        // From one of the peer's users (`carol@node`): shown, but not
        // taken as the peer's nick.
        let env = Envelope::text(&name, "", "carol@bob", "from carol");
        let (_, outs) = direct.request(peer, &name, DirectRequest::Message(env), "me");
        assert_eq!(shown(&outs), 1);
        assert!(!outs.iter().any(|o| matches!(o, Out::Nick { .. })));
    }

    #[test]
    fn a_forged_or_room_message_is_refused_with_its_reason() {
        let mut direct = Direct::default();
        let peer = PeerId::random();
        let other = PeerId::random().to_string();
        let forged = DirectRequest::Message(Envelope::text(&other, "", "eve", "hi"));
        let (answer, outs) = direct.request(peer, &peer.to_string(), forged, "me");
        assert!(
            matches!(answer, DirectResponse::Refused { ref reason } if reason == "sender does not match connection")
        );
        assert!(matches!(&outs[..], [Out::Refused("forged")]));
        let name = peer.to_string();
        let room = DirectRequest::Message(Envelope::text(&name, "lobby", "eve", "hi"));
        let (answer, outs) = direct.request(peer, &name, room, "me");
        assert!(
            matches!(answer, DirectResponse::Refused { ref reason } if reason == "not a direct message")
        );
        assert!(outs.iter().any(|o| matches!(o, Out::Refused("malformed"))));
        let hello = DirectRequest::Hello { nick: "eve".into() };
        let (answer, _) = direct.request(peer, &name, hello, "me");
        assert!(matches!(answer, DirectResponse::Hello { ref nick } if nick == "me"));
    }

    #[test]
    fn the_sender_hears_of_a_receipt_or_a_refusal_before_front_ends_do() {
        let mut direct = Direct::default();
        let peer = PeerId::random();
        let ids = request_ids(3);
        let (tx, mut rx) = oneshot::channel();
        direct.sent(ids[0], "m1".into(), peer, tx);
        assert_eq!(direct.peers().collect::<Vec<_>>(), [peer]);
        let receipt = DirectResponse::Receipt { id: "m1".into() };
        let outs = direct.answered(peer, "p", ids[0], receipt);
        assert!(matches!(
            &outs[..],
            [Out::Used(_), Out::Answer(_, Ok(Receipt { id, .. })), Out::Show(Event::Receipt { .. })] if id == "m1"
        ));
        assert!(rx.try_recv().is_err(), "the event loop answers, in order");
        let (tx, _rx) = oneshot::channel();
        direct.sent(ids[1], "m2".into(), peer, tx);
        let refused = DirectResponse::Refused {
            reason: "too_large".into(),
        };
        let outs = direct.answered(peer, "p", ids[1], refused);
        assert!(matches!(
            &outs[..],
            [Out::Show(Event::DirectFailed { reason, .. }), Out::Answer(_, Err(_))] if reason.contains("too_large")
        ));
        assert_eq!(direct.peers().count(), 0);
        let late = DirectResponse::Receipt { id: "m2".into() };
        assert!(
            direct.answered(peer, "p", ids[1], late).is_empty(),
            "answered once"
        );
        assert!(
            direct.failed(ids[2], Error::Timeout(peer)).is_empty(),
            "a hello's failure"
        );
    }
}
