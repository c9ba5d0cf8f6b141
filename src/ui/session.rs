//! What a chat session knows and decides, without a terminal: the current
//! room, the rooms joined and which of them are encrypted, the nicks seen,
//! what the prompt says, which lines input history may keep, and what Tab
//! completes. Line mode drives it; a full-screen or SSH front end reuses it,
//! so they cannot drift apart. Completion reads a snapshot kept here, never
//! the node: a key press never waits on the network.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
};

use super::{
    command::{COMMANDS, Input, JoinKey},
    names::{Names, Notice},
};
use crate::{
    node::{Event, RoomInfo},
    sanitize::for_terminal as clean,
};

/// The session's state. Cheap to share with a line editor's completer
/// through [`Model::known`].
#[derive(Debug, Default)]
pub(crate) struct Model {
    current: Option<String>,
    known: Arc<Mutex<Known>>,
    /// Messages that arrived in rooms other than the current one since it
    /// was last current.
    unread: BTreeMap<String, u64>,
    /// Of those, the ones that name us.
    mentions: BTreeMap<String, u64>,
    /// Our nick, for mentions.
    me: Option<String>,
}

/// What completion may offer: joined rooms (with whether each is
/// encrypted) and the names seen.
#[derive(Debug, Default, Clone)]
pub(crate) struct Known {
    rooms: BTreeMap<String, bool>,
    names: Names,
}

impl Model {
    /// A session whose current room is `room`.
    pub(crate) fn new(room: Option<String>) -> Self {
        Model {
            current: room,
            known: Arc::default(),
            unread: BTreeMap::new(),
            mentions: BTreeMap::new(),
            me: None,
        }
    }

    /// The snapshot a completer reads.
    pub(crate) fn known(&self) -> Arc<Mutex<Known>> {
        self.known.clone()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Known) -> T) -> T {
        f(&mut self.known.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The current room.
    pub(crate) fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Makes `room` current: its messages count as read.
    pub(crate) fn set_current(&mut self, room: Option<String>) {
        if let Some(room) = &room {
            self.unread.remove(room);
            self.mentions.remove(room);
        }
        self.current = room;
    }

    /// Messages in `room` since it was last current.
    pub(crate) fn unread(&self, room: &str) -> u64 {
        self.unread.get(room).copied().unwrap_or(0)
    }

    /// Messages naming us in `room` since it was last current.
    pub(crate) fn mentions(&self, room: &str) -> u64 {
        self.mentions.get(room).copied().unwrap_or(0)
    }

    /// Our nick, as the node has it: what a mention names.
    pub(crate) fn set_me(&mut self, nick: &str) {
        self.me = Some(nick.to_owned());
    }

    /// Whether `text` names us.
    pub(crate) fn mentions_me(&self, text: &str) -> bool {
        self.me.as_deref().is_some_and(|me| mentions(text, me))
    }

    /// The joined rooms, by name, with whether each is encrypted.
    pub(crate) fn rooms(&self) -> Vec<(String, bool)> {
        self.with(|k| k.rooms.iter().map(|(r, e)| (r.clone(), *e)).collect())
    }

    /// The prompt: the current room, e.g. `#lobby> `.
    pub(crate) fn prompt(&self) -> String {
        match &self.current {
            Some(room) => format!("#{}> ", clean(room)),
            None => "> ".into(),
        }
    }

    /// The rooms the node is in, as it reported them.
    pub(crate) fn set_rooms(&self, rooms: &[RoomInfo]) {
        self.with(|k| {
            k.rooms = rooms
                .iter()
                .map(|r| (r.room.clone(), r.encrypted))
                .collect();
        });
    }

    /// A join succeeded.
    pub(crate) fn joined(&self, room: &str, encrypted: bool) {
        self.with(|k| k.rooms.insert(room.to_owned(), encrypted));
    }

    /// A leave succeeded.
    pub(crate) fn left(&self, room: &str) {
        self.with(|k| k.rooms.remove(room));
    }

    /// Takes in what the node reports: names and unread counts; says what
    /// to tell about names.
    pub(crate) fn observe(&mut self, event: &Event) -> Notice {
        match event {
            Event::Message { room, text, .. } if self.current.as_deref() != Some(room) => {
                *self.unread.entry(room.clone()).or_default() += 1;
                if self.mentions_me(text) {
                    *self.mentions.entry(room.clone()).or_default() += 1;
                }
            }
            Event::Left { room } => {
                self.unread.remove(room);
                self.mentions.remove(room);
            }
            _ => {}
        }
        self.with(|k| k.names.observe(event))
    }

    /// Reads the names.
    pub(crate) fn names<T>(&self, f: impl FnOnce(&mut Names) -> T) -> T {
        self.with(|k| f(&mut k.names))
    }

    /// Whether input history may keep `input`: never a passphrase, never
    /// text for an encrypted room (the history file is not encrypted), and
    /// not a line that was not understood (it may hold a mistyped
    /// `/join ROOM PASSPHRASE`).
    pub(crate) fn keep_in_history(&self, input: &Result<Input, String>) -> bool {
        match input {
            Err(_) | Ok(Input::Nothing) => false,
            Ok(Input::Join {
                key: JoinKey::Passphrase(_),
                ..
            }) => false,
            Ok(Input::Say(_) | Input::Me(_)) => match &self.current {
                Some(room) => self.with(|k| k.rooms.get(room) == Some(&false)),
                None => false,
            },
            Ok(_) => true,
        }
    }
}

/// Whether `text` names `nick`: the nick as a whole word, in any case
/// (`bob`, `@bob`, `bob:` and `Bob,` do; `bobby` does not).
pub(crate) fn mentions(text: &str, nick: &str) -> bool {
    if nick.is_empty() {
        return false;
    }
    let (text, nick) = (text.to_lowercase(), nick.to_lowercase());
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
    text.match_indices(&nick).any(|(i, _)| {
        !word(text[..i].chars().next_back()) && !word(text[i + nick.len()..].chars().next())
    })
}

/// What Tab offers for `line` with the cursor at byte `pos`: where the
/// replaced word starts, and the candidates (each a whole replacement).
pub(crate) fn complete(known: &Known, line: &str, pos: usize) -> (usize, Vec<String>) {
    let Some(before) = line.get(..pos) else {
        return (pos, Vec::new());
    };
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before[start..];
    let first_word = !before[..start].chars().any(|c| !c.is_whitespace());
    let command = line
        .strip_prefix('/')
        .map(|rest| rest.split_whitespace().next().unwrap_or(""));
    let mut candidates: Vec<String> = if first_word && let Some(partial) = word.strip_prefix('/') {
        COMMANDS
            .iter()
            .filter(|c| c.starts_with(partial))
            .map(|c| format!("/{c} "))
            .collect()
    } else if let Some(partial) = word.strip_prefix('#') {
        rooms(known, partial).map(|r| format!("#{r}")).collect()
    } else {
        match command {
            Some("join" | "j" | "leave" | "part" | "switch" | "s") => {
                rooms(known, word).map(|r| r.to_owned()).collect()
            }
            Some("msg" | "m" | "whois" | "me") => nicks(known, word).collect(),
            Some(_) => Vec::new(),
            // In text: a nick, addressed (`bob: `) at the start of a line.
            None if first_word => nicks(known, word).map(|n| format!("{n}: ")).collect(),
            None => nicks(known, word).collect(),
        }
    };
    candidates.sort();
    candidates.dedup();
    (start, candidates)
}

fn rooms<'a>(known: &'a Known, partial: &'a str) -> impl Iterator<Item = &'a str> {
    known
        .rooms
        .keys()
        .filter(move |r| r.starts_with(partial))
        .map(String::as_str)
}

/// Nicks starting with `partial` (case-insensitively), each once, only those
/// a person can type as shown.
fn nicks<'a>(known: &'a Known, partial: &'a str) -> impl Iterator<Item = String> + 'a {
    let partial = partial.to_lowercase();
    known
        .names
        .typable()
        .into_iter()
        .filter(move |n| n.to_lowercase().starts_with(&partial))
        .map(str::to_owned)
}

#[cfg(test)]
pub(crate) mod tests;
