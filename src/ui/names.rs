//! How people are named on screen, decided without a terminal: by nick, as
//! `nick#x7Fq2K` (the last six characters of the peer id, which `/msg`
//! accepts) when two peers have used that nick or it has to be shown
//! escaped, and by the short id until a nick is known. The full peer id is
//! only in `/whois` and `/peers`. Also what a name-related event is worth
//! telling: a peer is announced once its nick is known (it says hello right
//! after connecting), and a nick change reads `old → new`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::{node::Event, sanitize::for_terminal as clean};

/// Characters of the peer id that tell peers with one nick apart.
const SUFFIX_LEN: usize = 6;

/// The last characters of a peer id.
pub(crate) fn suffix(peer: &str) -> &str {
    let mut start = peer.len().saturating_sub(SUFFIX_LEN);
    while !peer.is_char_boundary(start) {
        start += 1;
    }
    &peer[start..]
}

/// Nicks seen, by peer id, and which peers are connected.
#[derive(Debug, Default, Clone)]
pub(crate) struct Names {
    nick_of: BTreeMap<String, String>,
    peers_of: BTreeMap<String, BTreeSet<String>>,
    connected: HashSet<String>,
    /// Connected peers whose arrival was already told.
    announced: HashSet<String>,
}

/// What a person is told about a name-related event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// Nothing (yet): e.g. a peer connected whose nick is not known.
    Quiet,
    /// `* alice connected`
    Connected(String),
    /// `* alice disconnected`
    Disconnected(String),
    /// `* alice → alicia`
    Renamed { old: String, new: String },
}

impl Names {
    /// How `peer` is shown.
    pub(crate) fn show(&self, peer: &str) -> String {
        match self.nick_of.get(peer) {
            Some(nick) => self.show_nick(peer, nick),
            None => format!("…{}", clean(suffix(peer))),
        }
    }

    fn show_nick(&self, peer: &str, nick: &str) -> String {
        let shared = self.peers_of.get(nick).is_some_and(|p| p.len() > 1);
        if shared || crate::sanitize::needs_escape(nick) {
            format!("{}#{}", clean(nick), clean(suffix(peer)))
        } else {
            clean(nick)
        }
    }

    /// Learns that `peer` calls itself `nick`; returns the nick it had.
    pub(crate) fn learn(&mut self, peer: &str, nick: &str) -> Option<String> {
        self.peers_of
            .entry(nick.to_owned())
            .or_default()
            .insert(peer.to_owned());
        self.nick_of.insert(peer.to_owned(), nick.to_owned())
    }

    /// How the author of a message is shown: by the nick the message
    /// carries (an old message keeps its old nick). Learned only for a
    /// peer not known yet: an old message never renames a peer.
    ///
    /// A nick with `@` is a user of the sending node (an SSH login): shown
    /// as the part before `@`, then `@` and the node as this side names its
    /// verified peer id, never as the message spells the node.
    pub(crate) fn author(&mut self, peer: &str, nick: &str) -> String {
        if let Some((user, _)) = nick.split_once('@') {
            return format!("{}@{}", clean(user), self.show(peer));
        }
        self.peers_of
            .entry(nick.to_owned())
            .or_default()
            .insert(peer.to_owned());
        self.nick_of
            .entry(peer.to_owned())
            .or_insert_with(|| nick.to_owned());
        self.show_nick(peer, nick)
    }

    /// Takes in a node event; says what a person should be told about names.
    pub(crate) fn observe(&mut self, event: &Event) -> Notice {
        match event {
            Event::PeerConnected { peer } => {
                self.connected.insert(peer.clone());
                if self.nick_of.contains_key(peer) {
                    self.announced.insert(peer.clone());
                    Notice::Connected(self.show(peer))
                } else {
                    Notice::Quiet
                }
            }
            Event::PeerDisconnected { peer } => {
                self.connected.remove(peer);
                if self.announced.remove(peer) {
                    Notice::Disconnected(self.show(peer))
                } else {
                    Notice::Quiet
                }
            }
            Event::PeerNick { peer, nick } => {
                let before = self.nick_of.contains_key(peer).then(|| self.show(peer));
                let old = self.learn(peer, nick);
                match (old, before) {
                    (Some(old), Some(before)) if old != *nick => Notice::Renamed {
                        old: before,
                        new: self.show(peer),
                    },
                    _ if self.connected.contains(peer) && self.announced.insert(peer.clone()) => {
                        Notice::Connected(self.show(peer))
                    }
                    _ => Notice::Quiet,
                }
            }
            Event::Message {
                from,
                nick,
                recovered: false,
                ..
            }
            | Event::Direct { from, nick, .. } => {
                // `user@node` names one of the node's users, not the node.
                if !nick.contains('@') {
                    self.learn(from, nick);
                }
                Notice::Quiet
            }
            Event::Message { from, nick, .. } => {
                self.author(from, nick);
                Notice::Quiet
            }
            _ => Notice::Quiet,
        }
    }

    /// The peers `who` may mean: a peer id, a nick, or `nick#suffix`.
    pub(crate) fn find(&self, who: &str) -> Vec<String> {
        if self.nick_of.contains_key(who) {
            return vec![who.to_owned()];
        }
        let (nick, tail) = match who.rsplit_once('#') {
            Some((nick, tail)) => (nick, Some(tail)),
            None => (who, None),
        };
        self.peers_of
            .get(nick)
            .into_iter()
            .flatten()
            .filter(|p| self.nick_of.get(*p).map(String::as_str) == Some(nick))
            .filter(|p| tail.is_none_or(|t| suffix(p) == t))
            .cloned()
            .collect()
    }

    /// Nicks a person can type as shown, each once.
    pub(crate) fn typable(&self) -> BTreeSet<&str> {
        self.nick_of
            .values()
            .filter(|n| !crate::sanitize::needs_escape(n))
            .map(String::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "12D3KooWAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaax7Fq2K";
    const ALICE2: &str = "12D3KooWBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbQ9pLmN";
    const BOB: &str = "12D3KooWCccccccccccccccccccccccccccccccccccccccccZz9Yy8";

    fn nick(peer: &str, nick: &str) -> Event {
        Event::PeerNick {
            peer: peer.into(),
            nick: nick.into(),
        }
    }

    #[test]
    fn a_peer_is_announced_by_nick_once_it_is_known() {
        let mut n = Names::default();
        let connected = Event::PeerConnected { peer: ALICE.into() };
        assert_eq!(n.observe(&connected), Notice::Quiet, "no nick yet");
        assert_eq!(n.show(ALICE), "…x7Fq2K");
        assert_eq!(
            n.observe(&nick(ALICE, "alice")),
            Notice::Connected("alice".into())
        );
        assert_eq!(n.observe(&nick(ALICE, "alice")), Notice::Quiet, "once");
        assert_eq!(
            n.observe(&nick(ALICE, "alicia")),
            Notice::Renamed {
                old: "alice".into(),
                new: "alicia".into()
            }
        );
        let gone = Event::PeerDisconnected { peer: ALICE.into() };
        assert_eq!(n.observe(&gone), Notice::Disconnected("alicia".into()));
        assert_eq!(
            n.observe(&connected),
            Notice::Connected("alicia".into()),
            "known from before"
        );
    }

    #[test]
    fn a_node_users_nick_names_the_node_by_its_verified_peer() {
        let mut n = Names::default();
        n.learn(ALICE, "nodea");
        n.learn(ALICE2, "carol@nodea");
        // carol, an SSH user of nodea: her message says `carol@nodea`.
        assert_eq!(n.author(ALICE, "carol@nodea"), "carol@nodea");
        // A peer that calls itself `carol@nodea` is shown by what it is.
        assert_eq!(n.author(ALICE2, "carol@nodea"), "carol@carol@nodea");
        // A message cannot rename the node it comes from.
        assert_eq!(n.author(ALICE, "carol@evil"), "carol@nodea");
        assert_eq!(n.show(ALICE), "nodea");
        // An unknown node is named by its short id.
        assert_eq!(n.author(BOB, "dave@x"), format!("dave@…{}", suffix(BOB)));
    }

    #[test]
    fn a_shared_nick_gets_the_suffix_and_can_be_found_by_it() {
        let mut n = Names::default();
        n.learn(ALICE, "alice");
        assert_eq!(n.show(ALICE), "alice");
        assert_eq!(n.author(ALICE2, "alice"), "alice#Q9pLmN");
        assert_eq!(n.show(ALICE), "alice#x7Fq2K");
        assert_eq!(n.find("alice").len(), 2);
        assert_eq!(n.find("alice#Q9pLmN"), vec![ALICE2.to_owned()]);
        assert_eq!(n.find(ALICE), vec![ALICE.to_owned()]);
        assert!(n.find("bob").is_empty());
        assert_eq!(n.typable().len(), 1);
        // A nick that must be shown escaped is marked with its peer.
        n.learn(ALICE, "ali\u{202e}ce");
        assert_eq!(n.show(ALICE), "ali\\u{202e}ce#x7Fq2K");
        assert!(
            n.find("alice").len() == 1,
            "the old nick is not alice's now"
        );
    }

    #[test]
    fn a_suffix_is_cut_on_a_character_boundary() {
        assert_eq!(suffix("abc"), "abc");
        assert_eq!(suffix("€€€é"), "€é");
    }
}
