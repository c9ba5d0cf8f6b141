//! Limits and validation, in one place, under two rules:
//!
//! * **What our own user gives** (a nick, a room name, a text, from flags,
//!   the terminal or the API) is refused when invalid, with one line that
//!   names what to fix: [`own_nick`], [`own_room`], [`own_text`].
//! * **What peers send** is held to the limits only ([`peer_text`],
//!   [`peer_nick`]); anything else in it is shown escaped (see
//!   [`crate::sanitize`]), never refused for looking odd.

/// Largest text body, in bytes, checked at both ends.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// Largest frame (gossipsub message or request-response body), in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Largest nick, in bytes.
pub const MAX_NICK_BYTES: usize = 64;
/// Largest room name, in bytes.
pub const MAX_ROOM_BYTES: usize = 128;
/// Recent messages kept per room in memory, by default.
pub const RING_CAP: usize = 1000;
/// Messages of ours that may wait for a peer, per room.
pub const PENDING_CAP: usize = 1000;
/// Message ids remembered for duplicate and replay detection.
pub const SEEN_CAP: usize = 100_000;
/// Authors (with their key) a room counts unreadable messages of, for
/// notices; past it the room's total still counts every one.
pub const UNREADABLE_AUTHORS_CAP: usize = 1024;
/// A notice about unreadable messages from one author with one key is
/// given for the first and again after every this many more.
pub const UNREADABLE_NOTICE_EVERY: u64 = 100;

/// Why our own user's input is refused; each message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A nick is not acceptable.
    #[error("invalid nick: {0}")]
    Nick(String),
    /// A room name is not acceptable.
    #[error("invalid room name: {0}")]
    Room(String),
    /// A message text is empty.
    #[error("message is empty")]
    Empty,
    /// A message text is over the limit.
    #[error("message is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// A control or format character: nothing a name of ours may hold.
fn unseen(c: char) -> bool {
    c.is_control() || crate::sanitize::is_format(c)
}

/// Our nick: 1..=64 bytes of printable characters, without spaces or `#`.
pub fn own_nick(nick: &str) -> Result<(), Invalid> {
    if nick.is_empty() || nick.len() > MAX_NICK_BYTES {
        return Err(Invalid::Nick(format!("give 1 to {MAX_NICK_BYTES} bytes")));
    }
    if nick
        .chars()
        .any(|c| unseen(c) || c.is_whitespace() || c == '#')
    {
        return Err(Invalid::Nick(format!(
            "'{}' has a space, '#', or a control or format character",
            crate::sanitize::for_terminal(nick)
        )));
    }
    Ok(())
}

/// A room we join: 1..=128 bytes of printable characters without spaces.
pub fn own_room(room: &str) -> Result<(), Invalid> {
    if room.is_empty() || room.len() > MAX_ROOM_BYTES {
        return Err(Invalid::Room(format!("give 1 to {MAX_ROOM_BYTES} bytes")));
    }
    if room.starts_with(crate::ticket::PREFIX) {
        return Err(Invalid::Room(format!(
            "names starting with {} are invite tickets",
            crate::ticket::PREFIX
        )));
    }
    if room.chars().any(|c| unseen(c) || c.is_whitespace()) {
        return Err(Invalid::Room(format!(
            "'{}' has a space, or a control or format character",
            crate::sanitize::for_terminal(room)
        )));
    }
    Ok(())
}

/// A text we send: not blank, within [`MAX_TEXT_BYTES`].
pub fn own_text(text: &str) -> Result<(), Invalid> {
    if text.trim().is_empty() {
        return Err(Invalid::Empty);
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(Invalid::TooLarge {
            size: text.len(),
            limit: MAX_TEXT_BYTES,
        });
    }
    Ok(())
}

/// A peer's readable text and nick: within the limits (an empty text or
/// an odd character is the peer's business, shown escaped).
pub fn peer_text(nick: &str, text: &str) -> bool {
    text.len() <= MAX_TEXT_BYTES && nick.len() <= MAX_NICK_BYTES
}

/// A nick a peer announces: 1..=64 bytes.
pub fn peer_nick(nick: &str) -> bool {
    !nick.is_empty() && nick.len() <= MAX_NICK_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_input_is_refused_naming_what_to_fix() {
        assert_eq!(own_nick("alice"), Ok(()));
        assert!(own_nick("").is_err());
        assert!(own_nick(&"n".repeat(MAX_NICK_BYTES + 1)).is_err());
        for bad in [
            "a b",
            "a#b",
            "a\u{7}b",
            "ali\u{202e}ce",
            "\u{feff}x",
            "z\u{200b}w",
        ] {
            let e = own_nick(bad).expect_err(bad).to_string();
            assert!(e.starts_with("invalid nick: "), "{e}");
            assert!(
                !e.chars().any(unseen),
                "the message shows it escaped: {e:?}"
            );
        }
        assert_eq!(own_room("lobby"), Ok(()));
        assert!(own_room("lob\u{2066}by").is_err());
        assert!(own_room("two words").is_err());
        assert_eq!(own_text("  "), Err(Invalid::Empty));
        assert_eq!(
            own_text(&"x".repeat(MAX_TEXT_BYTES + 1)),
            Err(Invalid::TooLarge {
                size: MAX_TEXT_BYTES + 1,
                limit: MAX_TEXT_BYTES
            })
        );
    }

    #[test]
    fn what_peers_send_is_held_to_the_limits_only() {
        assert!(peer_text("ali\u{202e}ce", ""));
        assert!(!peer_text("n", &"x".repeat(MAX_TEXT_BYTES + 1)));
        assert!(!peer_text(&"n".repeat(MAX_NICK_BYTES + 1), "hi"));
        assert!(peer_nick("ali\u{202e}ce"));
        assert!(!peer_nick(""));
    }
}
