//! Wire types: what crosses the network, and the checks every received
//! frame passes before the node believes it (its limits are in
//! [`crate::limits`]).
//!
//! Rooms travel as gossipsub messages carrying a JSON [`Envelope`]; direct
//! messages and nick announcements travel over request-response
//! ([`DM_PROTOCOL`]) as [`DirectRequest`] / [`DirectResponse`].

use libp2p::{PeerId, StreamProtocol, gossipsub::IdentTopic};
use serde::{Deserialize, Serialize};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use libp2p::identity::{Keypair, PublicKey};

use crate::crypto::{Sealed, hex};

/// The public key inside an ed25519 peer id (an identity multihash).
fn public_key(peer: &PeerId) -> Option<PublicKey> {
    let mh: &libp2p::multiaddr::multihash::Multihash<64> = peer.as_ref();
    if mh.code() != 0 {
        return None;
    }
    PublicKey::try_decode_protobuf(mh.digest()).ok()
}
use sha2::{Digest, Sha256};

/// Schema version carried in every envelope.
pub const VERSION: u8 = 1;
pub use crate::limits::{MAX_FRAME_BYTES, MAX_NICK_BYTES, MAX_ROOM_BYTES, MAX_TEXT_BYTES};
/// Protocol id of direct messages and nick announcements.
pub const DM_PROTOCOL: StreamProtocol = StreamProtocol::new("/p2p-chat/dm/1");
/// Protocol id announced by identify.
pub const IDENTIFY_PROTOCOL: &str = "/p2p-chat/1.0.0";
/// Protocol id of our Kademlia DHT (kept apart from the public IPFS DHT).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/p2p-chat/kad/1.0.0");

/// The gossipsub topic of a room: a domain-separated hash of its name, so a
/// topic never spells the room name.
pub fn topic_for(room: &str) -> IdentTopic {
    let mut hasher = Sha256::new();
    hasher.update(b"p2p-chat/room/v1\0");
    hasher.update(room.as_bytes());
    let digest = hasher.finalize();
    IdentTopic::new(format!("p2p-chat/room/{}", hex(&digest[..16])))
}

/// Gossipsub message id: a hash of the whole frame, which carries a unique
/// envelope id, so two equal texts are never mistaken for one message.
pub fn message_id(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data)[..20].to_vec()
}

/// A room or direct message as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Schema version ([`VERSION`]).
    pub v: u8,
    /// Unique id (a ULID: sortable by time, random in its low bits).
    pub id: String,
    /// Author's peer id: the key that signed a room message, the
    /// connection's peer for a direct one.
    pub from: String,
    /// Author's clock, ms since the Unix epoch.
    pub ts: u64,
    /// What it says, readable or sealed.
    pub body: Body,
    /// The author's ed25519 signature (base64) over the envelope and its
    /// topic, so a room message stays verifiable wherever it comes from:
    /// relayed live, or passed on later by history sync. Empty for a direct
    /// message, which the connection itself authenticates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sig: String,
}

/// The body of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// A readable message. `room` is empty for a direct message.
    Text {
        /// Room name.
        room: String,
        /// Author's nick at the time of sending.
        nick: String,
        /// The text.
        text: String,
    },
    /// A message of an encrypted room: its plaintext is an [`Inner`]; the
    /// room name is not on the wire, only bound into the associated data.
    Sealed(Sealed),
}

impl Body {
    /// About how many bytes its JSON takes (more if text needs escapes).
    fn size_hint(&self) -> usize {
        let strings = match self {
            Body::Text { room, nick, text } => room.len() + nick.len() + text.len(),
            Body::Sealed(s) => s.key_id.len() + s.nonce.len() + s.ciphertext.len(),
        };
        64 + strings
    }
}

/// The plaintext inside a sealed body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inner {
    /// Author's nick.
    pub nick: String,
    /// The text.
    pub text: String,
}

/// A message as a person reads it: from a readable envelope, or from a
/// sealed one this node could open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Room name (empty for a direct message).
    pub room: String,
    /// Message id.
    pub id: String,
    /// Author's peer id.
    pub from: String,
    /// Author's nick.
    pub nick: String,
    /// The text.
    pub text: String,
    /// Author's clock, ms since the epoch.
    pub ts: u64,
}

/// Why a received frame was refused. Each reason is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Rejection {
    /// The frame is not a JSON envelope of our schema.
    #[error("malformed")]
    Malformed,
    /// The envelope carries a schema version we do not speak.
    #[error("unsupported_version")]
    Version,
    /// A field is over its limit.
    #[error("too_large")]
    TooLarge,
    /// The claimed author is not the signed author, or the room does not
    /// belong to the topic it came on.
    #[error("forged")]
    Forged,
}

impl Rejection {
    /// Stable label for counters and logs.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::Version => "unsupported_version",
            Rejection::TooLarge => "too_large",
            Rejection::Forged => "forged",
        }
    }
}

/// Our signing key and our peer id as envelopes spell it. The text form
/// is made once: base58 costs more than the rest of a direct message's
/// handling.
#[derive(Debug, Clone)]
pub struct Author {
    keypair: Keypair,
    id: String,
}

impl Author {
    /// The author holding `keypair`.
    pub fn new(keypair: Keypair) -> Author {
        let id = keypair.public().to_peer_id().to_string();
        Author { keypair, id }
    }

    /// Our peer id, in base58.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key envelopes are signed with.
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }
}

impl Envelope {
    /// A readable envelope from `from` (a peer id, or its base58 text),
    /// stamped now with a fresh id.
    pub fn text(
        from: &(impl std::fmt::Display + ?Sized),
        room: &str,
        nick: &str,
        text: &str,
    ) -> Envelope {
        Envelope {
            v: VERSION,
            id: new_id(),
            from: from.to_string(),
            ts: now_ms(),
            body: Body::Text {
                room: room.into(),
                nick: nick.into(),
                text: text.into(),
            },
            sig: String::new(),
        }
    }

    /// The bytes the author signs: the envelope bound to its topic (the
    /// topic is empty for a direct message).
    fn signed_bytes(&self, topic: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + topic.len() + self.id.len() + self.from.len() + self.body.size_hint(),
        );
        out.extend_from_slice(b"p2p-chat/envelope/v1\0");
        out.push(self.v);
        for field in [topic.as_bytes(), self.id.as_bytes(), self.from.as_bytes()] {
            out.extend_from_slice(&(field.len() as u32).to_be_bytes());
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&self.ts.to_be_bytes());
        // A body of strings always serializes; a failure would fail the check.
        let _ = serde_json::to_writer(&mut out, &self.body);
        out
    }

    /// Signs the envelope for `topic` with the author's key.
    pub fn sign(&mut self, key: &Keypair, topic: &str) {
        // Signing with an ed25519 key cannot fail.
        let sig = key.sign(&self.signed_bytes(topic)).unwrap_or_default();
        self.sig = B64.encode(sig);
    }

    /// Checks the author's signature for `topic`.
    pub fn verify(&self, topic: &str) -> Result<(), Rejection> {
        self.verify_by(&author_key(&self.from)?, topic)
    }

    /// Checks the signature for `topic` against the author's decoded key.
    fn verify_by(&self, key: &PublicKey, topic: &str) -> Result<(), Rejection> {
        let sig = B64.decode(&self.sig).map_err(|_| Rejection::Forged)?;
        if key.verify(&self.signed_bytes(topic), &sig) {
            Ok(())
        } else {
            Err(Rejection::Forged)
        }
    }

    /// What a sealed body of this envelope is bound to on `topic`.
    pub fn binding<'a>(&'a self, topic: &'a str) -> crate::crypto::Binding<'a> {
        crate::crypto::Binding {
            version: self.v,
            topic,
            from: &self.from,
            id: &self.id,
            ts: self.ts,
        }
    }

    /// Serializes to the wire form.
    pub fn encode(&self) -> Vec<u8> {
        // Sized up front: growing from serde_json's default 128 bytes
        // copied each frame three times.
        let mut out = Vec::with_capacity(
            128 + self.id.len() + self.from.len() + self.sig.len() + self.body.size_hint(),
        );
        // Serializing a struct of strings and integers cannot fail.
        let _ = serde_json::to_writer(&mut out, self);
        out
    }

    /// Parses and checks a frame of `topic` from wherever it came (a relay,
    /// history sync, the store): its author's signature vouches for it.
    pub fn decode(data: &[u8], topic: &libp2p::gossipsub::TopicHash) -> Result<Self, Rejection> {
        let env = Envelope::parse(data, topic)?;
        env.verify(topic.as_str())?;
        Ok(env)
    }

    /// [`Envelope::decode`] without the signature check (the costly part),
    /// for a caller that can drop a duplicate before checking it. The frame
    /// must be exactly the envelope's own encoding: the signature covers the
    /// fields, not the bytes, so a relay must not be able to make a valid
    /// message into new frames (padded, escaped, reordered) that pass
    /// gossipsub's duplicate filter or get stored in place of the author's.
    pub fn parse(data: &[u8], topic: &libp2p::gossipsub::TopicHash) -> Result<Self, Rejection> {
        if data.len() > MAX_FRAME_BYTES {
            return Err(Rejection::TooLarge);
        }
        let env: Envelope = serde_json::from_slice(data).map_err(|_| Rejection::Malformed)?;
        env.check_fields()?;
        if env.encode() != data {
            return Err(Rejection::Malformed);
        }
        if let Body::Text { room, .. } = &env.body {
            if room.is_empty() {
                return Err(Rejection::Malformed);
            }
            if topic_for(room).hash() != *topic {
                return Err(Rejection::Forged);
            }
        }
        Ok(env)
    }

    /// Field checks shared by room and direct messages.
    pub fn check_fields(&self) -> Result<(), Rejection> {
        if self.v != VERSION {
            return Err(Rejection::Version);
        }
        if self.id.is_empty() || self.id.len() > 64 {
            return Err(Rejection::Malformed);
        }
        match &self.body {
            Body::Text { room, nick, text } => {
                if !crate::limits::peer_text(nick, text) {
                    return Err(Rejection::TooLarge);
                }
                if room.len() > MAX_ROOM_BYTES {
                    return Err(Rejection::TooLarge);
                }
            }
            Body::Sealed(sealed) => {
                if sealed.key_id.len() > 64 || sealed.nonce.len() > 64 {
                    return Err(Rejection::Malformed);
                }
            }
        }
        Ok(())
    }

    /// The readable view of a text envelope; None for a sealed one.
    pub fn readable(&self) -> Option<ChatMessage> {
        match &self.body {
            Body::Text { room, nick, text } => Some(ChatMessage {
                room: room.clone(),
                id: self.id.clone(),
                from: self.from.clone(),
                nick: nick.clone(),
                text: text.clone(),
                ts: self.ts,
            }),
            Body::Sealed(_) => None,
        }
    }
}

/// The public key of an author's peer id.
fn author_key(from: &str) -> Result<PublicKey, Rejection> {
    let peer: PeerId = from.parse().map_err(|_| Rejection::Forged)?;
    public_key(&peer).ok_or(Rejection::Forged)
}

/// Authors' public keys by peer id: decoding one (a base58 peer id, then
/// an elliptic-curve point) costs a third of checking a signature, and a
/// room hears the same few authors over and over.
#[derive(Debug, Default)]
pub struct AuthorKeys {
    keys: std::collections::HashMap<String, PublicKey>,
}

impl AuthorKeys {
    /// Authors remembered; past this the cache starts again empty.
    const CAP: usize = 4096;

    /// [`Envelope::verify`], with the author's key decoded once.
    pub fn verify(&mut self, env: &Envelope, topic: &str) -> Result<(), Rejection> {
        if let Some(key) = self.keys.get(&env.from) {
            return env.verify_by(key, topic);
        }
        let key = author_key(&env.from)?;
        let result = env.verify_by(&key, topic);
        if self.keys.len() >= Self::CAP {
            self.keys.clear();
        }
        self.keys.insert(env.from.clone(), key);
        result
    }
}

/// A request on [`DM_PROTOCOL`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DirectRequest {
    /// A direct message; `room` is empty.
    Message(Envelope),
    /// "This is my nick": sent on connect and on a nick change.
    Hello {
        /// The sender's nick.
        nick: String,
    },
}

/// The answer to a [`DirectRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DirectResponse {
    /// The message with this id was received and shown.
    Receipt {
        /// Id of the direct message.
        id: String,
    },
    /// The answer to a hello: the responder's own nick.
    Hello {
        /// The responder's nick.
        nick: String,
    },
    /// The request was refused.
    Refused {
        /// One-line reason.
        reason: String,
    },
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh, unique, time-sortable message id. Ids made by this process
/// within one millisecond still sort in the order they were made, so a
/// burst of messages keeps its order live and in the in-memory ring (sorted
/// by `(ts, id)`). The step between two such ids is random (32 bits), so the
/// next id cannot be guessed and claimed first by someone else.
pub fn new_id() -> String {
    static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);
    let fresh = ulid::Ulid::new();
    let Ok(mut last) = LAST.lock() else {
        return fresh.to_string();
    };
    let id = if fresh.0 > *last {
        fresh.0
    } else {
        let step = 1 + u128::from(ulid::Ulid::new().0 as u32);
        last.checked_add(step).unwrap_or(fresh.0)
    };
    *last = id;
    ulid::Ulid(id).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(key: &Keypair, room: &str, text: &str) -> Envelope {
        let mut env = Envelope::text(&key.public().to_peer_id(), room, "alice", text);
        env.sign(key, topic_for(room).hash().as_str());
        env
    }

    #[test]
    fn only_the_authors_own_encoding_is_accepted() {
        let key = Keypair::generate_ed25519();
        let topic = topic_for("lobby").hash();
        let env = signed(&key, "lobby", "hello");
        let frame = env.encode();
        assert_eq!(Envelope::decode(&frame, &topic), Ok(env.clone()));
        let text = String::from_utf8(frame).expect("utf-8");
        let padded = format!("{text}   ");
        let escaped = text.replace("hello", "h\\u0065llo");
        let extra = text.replacen('{', "{\"x\":1,", 1);
        for variant in [padded, escaped, extra] {
            assert_eq!(
                Envelope::decode(variant.as_bytes(), &topic),
                Err(Rejection::Malformed),
                "{variant}"
            );
        }
    }

    #[test]
    fn ids_made_in_a_burst_keep_their_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn round_trip() {
        let key = Keypair::generate_ed25519();
        let env = signed(&key, "lobby", "hello");
        let topic = topic_for("lobby").hash();
        assert_eq!(Envelope::decode(&env.encode(), &topic), Ok(env));
    }

    #[test]
    fn signature_binds_every_field_and_the_topic() {
        let key = Keypair::generate_ed25519();
        let env = signed(&key, "lobby", "hello");
        let topic = topic_for("lobby").hash();
        assert_eq!(env.verify(topic.as_str()), Ok(()));
        assert_eq!(
            env.verify(topic_for("other").hash().as_str()),
            Err(Rejection::Forged)
        );
        let mut changed = env.clone();
        changed.ts += 1;
        assert_eq!(changed.verify(topic.as_str()), Err(Rejection::Forged));
        let mut changed = env.clone();
        changed.body = Body::Text {
            room: "lobby".into(),
            nick: "alice".into(),
            text: "hellO".into(),
        };
        assert_eq!(changed.verify(topic.as_str()), Err(Rejection::Forged));
        let mut stolen = env.clone();
        stolen.sign(&Keypair::generate_ed25519(), topic.as_str());
        assert_eq!(
            stolen.verify(topic.as_str()),
            Err(Rejection::Forged),
            "signed by someone else"
        );
    }

    #[test]
    fn topic_hides_room_name() {
        let t = topic_for("secret-room").to_string();
        assert!(!t.contains("secret"));
        assert_ne!(topic_for("a").hash(), topic_for("b").hash());
        // The wire name never changes: nodes of every version must agree.
        assert_eq!(
            topic_for("lobby").to_string(),
            "p2p-chat/room/69caecfaacb8856489e5a4b42b345e68"
        );
    }

    #[test]
    fn rejects_forged_sender_and_wrong_topic() {
        let key = Keypair::generate_ed25519();
        let topic = topic_for("lobby").hash();
        let mut claimed = signed(&key, "lobby", "hello");
        claimed.from = PeerId::random().to_string();
        assert_eq!(
            Envelope::decode(&claimed.encode(), &topic),
            Err(Rejection::Forged),
            "another author's name on our signature"
        );
        let mut unsigned = signed(&key, "lobby", "hello");
        unsigned.sig.clear();
        assert_eq!(
            Envelope::decode(&unsigned.encode(), &topic),
            Err(Rejection::Forged)
        );
        let env = signed(&key, "lobby", "hello").encode();
        let wrong = topic_for("elsewhere").hash();
        assert_eq!(Envelope::decode(&env, &wrong), Err(Rejection::Forged));
    }

    #[test]
    fn rejects_malformed_and_oversize() {
        let key = Keypair::generate_ed25519();
        let topic = topic_for("lobby").hash();
        assert_eq!(
            Envelope::decode(b"not json", &topic),
            Err(Rejection::Malformed)
        );
        let env = signed(&key, "lobby", &"x".repeat(MAX_TEXT_BYTES + 1));
        assert_eq!(
            Envelope::decode(&env.encode(), &topic),
            Err(Rejection::TooLarge)
        );
        let mut env = signed(&key, "lobby", "hello");
        env.v = 9;
        assert_eq!(
            Envelope::decode(&env.encode(), &topic),
            Err(Rejection::Version)
        );
    }

    #[test]
    fn message_ids_differ_for_equal_texts() {
        let key = Keypair::generate_ed25519();
        let (a, b) = (signed(&key, "lobby", "hi"), signed(&key, "lobby", "hi"));
        assert_ne!(message_id(&a.encode()), message_id(&b.encode()));
    }
}
