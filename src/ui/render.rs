//! Turning events and command results into output lines: readable lines for
//! a person, or one JSON object per line for scripts. Every string from the
//! network is sanitized before a person sees it.

use std::fmt::Write as _;

use serde_json::json;

use super::names::{Names, Notice};
use crate::{
    node::{Event, PeerInfo, RoomInfo, Status},
    protocol::ChatMessage,
    sanitize::for_terminal as clean,
};

/// Output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Lines for a person.
    Human,
    /// NDJSON for scripts.
    Json,
}

/// Renders lines; people are named by [`Names`].
#[derive(Debug)]
pub struct Renderer {
    style: Style,
    /// How this program was started, for the dial hint others paste.
    program: String,
    /// Errors are shown dim (a terminal a person reads).
    dim: bool,
}

/// Dim text on, and every attribute off, in a terminal.
const DIM: (&str, &str) = ("\x1b[2m", "\x1b[0m");

/// The text that starts an action (`/me waves` is shown `* alice waves`).
const ACTION: &str = "/me ";

/// `<who> text`, or `* who waves` for an action.
fn said(who: &str, text: &str) -> String {
    match text.strip_prefix(ACTION) {
        Some(action) => format!("* {who} {}", clean(action)),
        None => format!("<{who}> {}", clean(text)),
    }
}

/// One room message: `12:34:56 #room <who> text`.
fn room_line(ts: u64, room: &str, who: &str, text: &str) -> String {
    format!("{} #{} {}", time(ts), clean(room), said(who, text))
}

/// The local time of `ts` (ms), with the date when it is not today.
fn time(ts: u64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ts as i64) else {
        return "--:--:--".into();
    };
    let t = t.with_timezone(&chrono::Local);
    if t.date_naive() == chrono::Local::now().date_naive() {
        t.format("%H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

impl Renderer {
    /// A renderer of `style`.
    pub fn new(style: Style) -> Self {
        Renderer {
            style,
            program: "p2p-chat".into(),
            dim: false,
        }
    }

    /// The command the dial hint shows: this program as it was started.
    pub fn with_program(mut self, program: &str) -> Self {
        self.program = program.to_owned();
        self
    }

    /// Shows error notices dim: for a terminal, never for a pipe.
    pub fn with_dim_errors(mut self, dim: bool) -> Self {
        self.dim = dim;
        self
    }

    /// One notice line, dim in a terminal. `line` is already sanitized.
    fn notice(&self, line: &str) -> String {
        if self.dim {
            format!("{}{line}{}", DIM.0, DIM.1)
        } else {
            line.to_owned()
        }
    }

    /// Whether output is JSON.
    pub fn is_json(&self) -> bool {
        self.style == Style::Json
    }

    /// The line for a node event, if it has one; `notice` is what
    /// [`Names::observe`] made of it.
    pub(crate) fn event(
        &self,
        event: &Event,
        names: &mut Names,
        notice: &Notice,
    ) -> Option<String> {
        if self.is_json() {
            return Some(json_line(event));
        }
        Some(match event {
            Event::Listening { address } => format!(
                "listening on {address}\n  others join with:\n    {} --dial {address}",
                clean(&self.program)
            ),
            Event::PeerConnected { .. }
            | Event::PeerDisconnected { .. }
            | Event::PeerNick { .. } => match notice {
                Notice::Quiet => return None,
                Notice::Connected(who) => format!("* {who} connected"),
                Notice::Disconnected(who) => format!("* {who} disconnected"),
                Notice::Renamed { old, new } => format!("* {old} → {new}"),
            },
            Event::Message {
                room,
                from,
                nick,
                text,
                ts,
                recovered,
                ..
            } => {
                let who = names.author(from, nick);
                let mark = if *recovered {
                    " (recovered: sent while you were away)"
                } else {
                    ""
                };
                format!("{}{mark}", room_line(*ts, room, &who, text))
            }
            Event::Sent {
                room,
                nick,
                text,
                ts,
                ..
            } => room_line(*ts, room, &clean(nick), text),
            Event::Pending { room, text, .. } => {
                format!(
                    "(pending: no peer in #{} yet; sent when one joins) {}",
                    clean(room),
                    clean(text)
                )
            }
            Event::Direct {
                from,
                nick,
                text,
                ts,
                ..
            } => {
                let who = names.author(from, nick);
                format!("{} [direct] {}", time(*ts), said(&who, text))
            }
            Event::Receipt { to, .. } => format!("  ✓ delivered to {}", names.show(to)),
            Event::DirectFailed { to, reason, .. } => {
                format!("  ✗ not delivered to {}: {}", names.show(to), clean(reason))
            }
            Event::NotSaved {
                room,
                published,
                error,
                ..
            } => {
                let what = if *published {
                    "it went out to #"
                } else {
                    "it was not sent and left the queue of #"
                };
                format!("  ✗ not saved ({what}{}): {}", clean(room), clean(error))
            }
            Event::StoreRecovered { message } => format!("* {}", clean(message)),
            Event::Joined { room } => format!("* joined #{}", clean(room)),
            Event::Left { room } => format!("* left #{}", clean(room)),
            Event::Unreadable {
                room,
                from,
                count,
                theirs,
                ours,
            } => {
                let who = names.show(from);
                let (room, n) = (clean(room), *count);
                let head = format!("* {n} message(s) from {who} in #{room}");
                match (theirs.as_deref().map(clean), ours.as_deref().map(clean)) {
                    (Some(theirs), Some(ours)) => format!(
                        "{head} use key {theirs}, yours is {ours}: one of you has another passphrase"
                    ),
                    (Some(theirs), None) => format!(
                        "{head} are encrypted (key {theirs}) and you joined without a passphrase: /join {room} --encrypted to read them"
                    ),
                    (None, Some(ours)) => format!(
                        "{head} are not encrypted, yours use key {ours}: {who} joined without the passphrase; they are not shown"
                    ),
                    (None, None) => format!("{head} could not be read"),
                }
            }
            Event::Error { message } => self.notice(&format!("error: {}", clean(message))),
        })
    }

    /// A one-line error for the user.
    pub fn error(&self, message: &str) -> String {
        match self.style {
            Style::Json => json_line(&json!({"event": "error", "message": message})),
            Style::Human => self.notice(&format!("error: {}", clean(message))),
        }
    }

    /// A one-line notice for the user.
    pub fn info(&self, message: &str) -> String {
        match self.style {
            Style::Json => json_line(&json!({"event": "info", "message": message})),
            Style::Human => message.to_owned(),
        }
    }

    /// An invite ticket for `/invite`.
    pub(crate) fn invite(&self, ticket: &crate::ticket::Ticket, qr: bool) -> String {
        let line = ticket.encode();
        let expires = ticket.expires();
        if self.is_json() {
            return json_line(&json!({
                "event": "invite", "room": ticket.room, "encrypted": ticket.encrypted,
                "ticket": line, "expires": expires,
            }));
        }
        let mut out = String::new();
        if qr {
            out.push_str(&super::qr(&line));
            out.push('\n');
        }
        let until = chrono::DateTime::from_timestamp(i64::try_from(expires).unwrap_or(i64::MAX), 0)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        out.push_str(&format!(
            "invite to #{} (good until {until}; anyone with it can dial this node{}):\n{line}",
            clean(&ticket.room),
            if ticket.encrypted {
                " — give the passphrase another way"
            } else {
                ""
            }
        ));
        out
    }

    /// The `/peers` listing.
    pub fn peers(&self, peers: &[PeerInfo]) -> String {
        if self.is_json() {
            return json_line(&json!({"event": "peers", "peers": peers}));
        }
        if peers.is_empty() {
            return "no peers connected".into();
        }
        let mut out = format!("{} peer(s):", peers.len());
        for p in peers {
            let rtt = p
                .rtt_ms
                .map(|ms| format!("{ms:.1} ms"))
                .unwrap_or_else(|| "-".into());
            out.push_str(&format!(
                "\n  {:<20} {}  rtt {rtt}  {} {}  {}",
                clean(&p.display),
                p.peer,
                p.connection,
                p.direction,
                p.addresses
                    .iter()
                    .map(|a| clean(a))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        out
    }

    /// The `/whois` answer: for each peer a name may mean, how it is shown,
    /// its peer id and its connection if there is one.
    pub(crate) fn whois(&self, rows: &[(String, String, Option<&PeerInfo>)]) -> String {
        if self.is_json() {
            let peers: Vec<_> = rows
                .iter()
                .map(|(_, peer, info)| json!({"peer": peer, "connected": info.is_some(), "info": info}))
                .collect();
            return json_line(&json!({"event": "whois", "peers": peers}));
        }
        let mut out = Vec::new();
        for (shown, peer, info) in rows {
            out.push(match info {
                Some(p) => {
                    let rtt = p
                        .rtt_ms
                        .map(|ms| format!(", rtt {ms:.1} ms"))
                        .unwrap_or_default();
                    let addrs: Vec<String> = p.addresses.iter().map(|a| clean(a)).collect();
                    format!(
                        "{shown}: peer id {peer}, connected ({} {}{rtt}) at {}",
                        p.connection,
                        p.direction,
                        addrs.join(" ")
                    )
                }
                None => format!("{shown}: peer id {peer}, not connected"),
            });
        }
        out.join("\n")
    }

    /// The `/names` answer: `me` (our nick), the connected `members` of
    /// `room` and authors of its recent messages who are `away`.
    pub(crate) fn names(
        &self,
        room: &str,
        me: Option<&str>,
        members: &[String],
        away: &[String],
        names: &Names,
    ) -> String {
        if self.is_json() {
            return json_line(
                &json!({"event": "names", "room": room, "connected": members, "not_connected": away}),
            );
        }
        let mut here: Vec<String> = me
            .map(|n| format!("{} (you)", clean(n)))
            .into_iter()
            .collect();
        here.extend(members.iter().map(|p| names.show(p)));
        let mut line = format!("#{}: {}", clean(room), here.join(", "));
        if !away.is_empty() {
            let away: Vec<String> = away.iter().map(|p| names.show(p)).collect();
            line.push_str(&format!(" · not connected: {}", away.join(", ")));
        }
        line
    }

    /// The `/rooms` listing; `current` is marked, `unread` counts what
    /// arrived in each other room since it was last current.
    pub(crate) fn rooms(
        &self,
        rooms: &[RoomInfo],
        current: Option<&str>,
        unread: impl Fn(&str) -> u64,
    ) -> String {
        if self.is_json() {
            let unread: serde_json::Map<String, serde_json::Value> = rooms
                .iter()
                .map(|r| (r.room.clone(), json!(unread(&r.room))))
                .collect();
            return json_line(
                &json!({"event": "rooms", "current": current, "rooms": rooms, "unread": unread}),
            );
        }
        if rooms.is_empty() {
            return "no rooms joined: /join ROOM".into();
        }
        let mut out = String::from("rooms:");
        for r in rooms {
            let mark = if Some(r.room.as_str()) == current {
                "*"
            } else {
                " "
            };
            let unreadable = match r.unreadable {
                0 => String::new(),
                n => format!(", {n} unreadable"),
            };
            let unread = match unread(&r.room) {
                0 => String::new(),
                n => format!(", {n} unread"),
            };
            out.push_str(&format!(
                "\n {mark} #{:<20} {}{} member(s), {} in mesh, {} pending{unreadable}{unread}",
                clean(&r.room),
                if r.encrypted { "encrypted, " } else { "" },
                r.members,
                r.mesh_peers,
                r.pending
            ));
        }
        out
    }

    /// What a room held before now, shown on start and on `/join`: its
    /// last messages, after a line saying how many earlier ones there are.
    pub(crate) fn backlog(
        &self,
        room: &str,
        messages: &[ChatMessage],
        earlier: u64,
        names: &mut Names,
    ) -> Option<String> {
        if self.is_json() || messages.is_empty() {
            return None;
        }
        let mut out = String::new();
        if earlier > 0 {
            out.push_str(&format!(
                "— {earlier} earlier message(s) in #{}, /history N for more —\n",
                clean(room)
            ));
        }
        out.push_str(&self.lines(messages, names));
        Some(out)
    }

    /// The `/history` listing.
    pub(crate) fn history(
        &self,
        room: &str,
        messages: &[ChatMessage],
        names: &mut Names,
    ) -> String {
        if self.is_json() {
            return json_line(&json!({"event": "history", "room": room, "messages": messages}));
        }
        if messages.is_empty() {
            return format!("no messages in #{}", clean(room));
        }
        self.lines(messages, names)
    }

    /// Messages, one line each.
    fn lines(&self, messages: &[ChatMessage], names: &mut Names) -> String {
        let lines: Vec<String> = messages
            .iter()
            .map(|m| {
                let who = names.author(&m.from, &m.nick);
                room_line(m.ts, &m.room, &who, &m.text)
            })
            .collect();
        lines.join("\n")
    }

    /// The `/search` listing.
    pub(crate) fn search(&self, query: &str, found: &[ChatMessage], names: &mut Names) -> String {
        if self.is_json() {
            return json_line(&json!({"event": "search", "query": query, "messages": found}));
        }
        if found.is_empty() {
            return format!("nothing found for \"{}\"", clean(query));
        }
        self.lines(found, names)
    }

    /// The `/status` listing.
    pub fn status(&self, status: &Status, log_file: Option<&str>) -> String {
        if self.is_json() {
            return json_line(&json!({"event": "status", "status": status, "log_file": log_file}));
        }
        let mut out = format!(
            "peer id: {}\nnick: {}\naddresses:",
            status.peer_id,
            clean(&status.nick)
        );
        for a in &status.listen_addrs {
            out.push_str(&format!("\n  {a}"));
        }
        out.push_str(&format!(
            "\nreachability: {} (DHT {})",
            status.reachability.as_str(),
            status.dht_mode
        ));
        if !status.external_addrs.is_empty() {
            out.push_str(&format!(" at {}", status.external_addrs.join(" ")));
        }
        if let Some(ssh) = &status.ssh {
            out.push_str(&format!(
                "\nssh: {} (host key {}), {} of {} session(s)",
                ssh.addr, ssh.fingerprint, ssh.sessions, ssh.max_sessions
            ));
        }
        if let Some(relay) = status.relay_server {
            out.push_str(&format!(
                "\nrelay server: {} reservation(s), {} circuit(s)",
                relay.reservations, relay.circuits
            ));
        }
        out.push_str(&format!(
            "\nrooms: {}\npeers: {}\nsent {} / received {} room messages; direct: {} delivered, {} received, {} failed; rejected: {:?}",
            status.rooms.join(", "),
            status.connected_peers,
            status.stats.published,
            status.stats.received,
            status.stats.direct_sent,
            status.stats.direct_received,
            status.stats.direct_failed,
            status.stats.rejected,
        ));
        if let Some(log) = log_file {
            out.push_str(&format!("\nlog: {log}"));
        }
        out
    }
}

/// One `--json` line. serde_json leaves U+2028, U+2029 and the C1 controls
/// (U+0085 among them) unescaped, and a reader that splits on every line
/// terminator would cut such an event in two; they only occur inside
/// strings, where `\uXXXX` is the same character.
fn json_line(value: &impl serde::Serialize) -> String {
    let raw = serde_json::to_string(value).unwrap_or_else(|e| {
        json!({"event": "error", "message": format!("cannot encode an event: {e}")}).to_string()
    });
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}') {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_lines_are_sanitized() {
        let r = Renderer::new(Style::Human);
        let line = r
            .event(
                &Event::Message {
                    room: "lobby".into(),
                    id: "1".into(),
                    from: "12D3KooWabcdef".into(),
                    nick: "ev\x1b[2Jil".into(),
                    text: "hi\u{202e}there\x1b]0;pwned\x07".into(),
                    ts: 0,
                    recovered: false,
                },
                &mut Names::default(),
                &Notice::Quiet,
            )
            .expect("line");
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{line:?}"
        );
        assert!(line.contains("\\x1b[2J"));
    }

    fn message(from: &str, nick: &str, text: &str) -> Event {
        Event::Message {
            room: "lobby".into(),
            id: "1".into(),
            from: from.into(),
            nick: nick.into(),
            text: text.into(),
            ts: 0,
            recovered: false,
        }
    }

    #[test]
    fn equal_nicks_get_a_suffix_and_actions_read_as_actions() {
        let r = Renderer::new(Style::Human);
        let mut names = Names::default();
        let mut line = |e: &Event| r.event(e, &mut names, &Notice::Quiet).expect("line");
        assert!(line(&message("12D3KooWaaaaaa", "sam", "hi")).ends_with("#lobby <sam> hi"));
        let b = line(&message("12D3KooWbbbbbb", "sam", "/me waves"));
        assert!(b.ends_with("#lobby * sam#bbbbbb waves"), "{b}");
        let r = Renderer::new(Style::Human);
        let receipt = Event::Receipt {
            id: "x".into(),
            to: "12D3KooWbbbbbb".into(),
        };
        let line = r.event(&receipt, &mut names, &Notice::Quiet);
        assert_eq!(line.as_deref(), Some("  ✓ delivered to sam#bbbbbb"));
        let rename = Notice::Renamed {
            old: "sam".into(),
            new: "samuel".into(),
        };
        let nick = Event::PeerNick {
            peer: "p".into(),
            nick: "samuel".into(),
        };
        assert_eq!(
            r.event(&nick, &mut names, &rename).as_deref(),
            Some("* sam → samuel")
        );
        assert_eq!(r.event(&nick, &mut names, &Notice::Quiet), None);
    }

    #[test]
    fn json_lines_escape_every_line_terminator() {
        let r = Renderer::new(Style::Json);
        let text = "a\u{2028}b\u{2029}c\u{85}d\u{9b}e\nf\rg";
        let line = r
            .event(
                &Event::Message {
                    room: "lobby".into(),
                    id: "1".into(),
                    from: "p".into(),
                    nick: "n\u{2028}".into(),
                    text: text.into(),
                    ts: 0,
                    recovered: false,
                },
                &mut Names::default(),
                &Notice::Quiet,
            )
            .expect("line");
        assert_eq!(line.lines().count(), 1, "{line:?}");
        assert!(
            !line
                .chars()
                .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')),
            "{line:?}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["text"], text, "the same text once parsed");
        let line = r.error("x\u{2029}y");
        assert!(line.contains("\\u2029"), "{line}");
    }

    #[test]
    fn a_nick_with_a_format_character_is_shown_escaped_with_its_peer() {
        let mut names = Names::default();
        assert_eq!(
            names.author("12D3KooWcccccc", "ali\u{202e}ce"),
            "ali\\u{202e}ce#cccccc"
        );
        assert_eq!(
            names.author("12D3KooWdddddd", "\u{feff}bob"),
            "\\u{feff}bob#dddddd"
        );
    }

    #[test]
    fn errors_are_dim_in_a_terminal_only() {
        let plain = Renderer::new(Style::Human);
        assert_eq!(plain.error("no \x1b[31m"), "error: no \\x1b[31m");
        let dim = Renderer::new(Style::Human).with_dim_errors(true);
        assert_eq!(dim.error("gone"), "\x1b[2merror: gone\x1b[0m");
    }

    #[test]
    fn a_message_from_another_day_shows_its_date() {
        let now = chrono::Utc::now().timestamp_millis() as u64;
        assert_eq!(time(now).len(), "12:34:56".len());
        let long_ago = time(86_400_000 * 400);
        assert!(long_ago.starts_with("1971-02-"), "{long_ago}");
    }

    #[test]
    fn json_lines_have_the_event_tag() {
        let r = Renderer::new(Style::Json);
        let line = r
            .event(
                &Event::Receipt {
                    id: "x".into(),
                    to: "p".into(),
                },
                &mut Names::default(),
                &Notice::Quiet,
            )
            .expect("line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["event"], "receipt");
        assert_eq!(v["id"], "x");
    }
}
