//! Parsing what the user types: plain text, or a `/command`.

/// One line of input, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Text for the current room.
    Say(String),
    /// `/msg PEER|NICK text`
    Msg {
        /// Peer id, nick or `nick#suffix`.
        to: String,
        /// The text.
        text: String,
    },
    /// `/join ROOM`, `/join ROOM --encrypted`, `/join ROOM PASSPHRASE`
    Join {
        /// Room name.
        room: String,
        /// Whether and how the room is encrypted.
        key: JoinKey,
    },
    /// `/join TICKET`: dial the inviting node and join its room
    JoinTicket(String),
    /// `/invite [--qr] [ROOM]`: a ticket for the room (default: current)
    Invite {
        /// The room; none: the current one.
        room: Option<String>,
        /// Also draw it as a QR code.
        qr: bool,
    },
    /// `/leave [ROOM]`
    Leave(Option<String>),
    /// `/switch ROOM`
    Switch(String),
    /// `/rooms`
    Rooms,
    /// `/peers`
    Peers,
    /// `/history [N]`
    History(usize),
    /// `/search TEXT`
    Search(String),
    /// `/nick NAME`
    Nick(String),
    /// `/status`
    Status,
    /// `/whois NICK`: who that is, with the full peer id
    Whois(String),
    /// `/names`: the current room's members
    Names,
    /// `/me ACTION`, sent as the text `/me ACTION`
    Me(String),
    /// `/clear`: a clean screen
    Clear,
    /// `/help`
    Help,
    /// `/quit` (`/exit`, `/q`); a bare `quit` is text like any other
    Quit,
    /// Nothing to do (an empty line).
    Nothing,
}

/// How a room is joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinKey {
    /// A plain room: nothing is asked.
    Open,
    /// An encrypted room whose passphrase is asked for next (hidden in a
    /// terminal); an empty answer cancels the join.
    Ask,
    /// An encrypted room with this passphrase (the rest of the line).
    Passphrase(crate::config::Secret),
}

/// The flag of `/join` that asks for a passphrase.
const ENCRYPTED_FLAG: &str = "--encrypted";

/// Default number of messages `/history` shows.
pub(crate) const HISTORY_DEFAULT: usize = 20;

/// Command names Tab completes, in the order `/help` lists them.
pub(crate) const COMMANDS: &[&str] = &[
    "msg", "me", "join", "invite", "leave", "part", "switch", "rooms", "names", "peers", "whois",
    "history", "search", "nick", "status", "clear", "help", "quit",
];

/// The help text.
pub const HELP: &str = "\
commands:
  TEXT                   send TEXT to the current room (//TEXT sends /TEXT)
  /msg PEER|NICK TEXT    direct message, end-to-end encrypted by the connection (Noise)
  /me ACTION             an action in the current room (shown as * you ACTION)
  /join ROOM             join the plain room ROOM and make it current
  /join ROOM --encrypted join the encrypted room ROOM: its passphrase is
                         asked for next, hidden (an empty line cancels);
                         members without it see nothing
  /join ROOM PASSPHRASE  the same with the passphrase given on the line
  /join TICKET           dial the node of an invite ticket and join its room
  /invite [--qr] [ROOM]  an invite ticket for ROOM (default: the current one),
                         as one line (and a QR code with --qr); never the
                         passphrase, which you give the person another way
  /leave [ROOM]          leave ROOM (default: the current one)
  /part [ROOM]           the same as /leave
  /switch ROOM           make a joined ROOM current
  /rooms                 joined rooms, members, pending messages
  /names                 who is in the current room, connected or not
  /peers                 connected peers: nick, peer id, addresses, ping
  /whois NICK            who NICK is: full peer id, connection, addresses
  /history [N]           last N messages of the current room (default 20)
  /search TEXT           messages containing TEXT in the rooms you can read
  /nick NAME             change your nick
  /status                peer id, addresses, counters
  /clear                 clear the screen
  /help                  this text
  /quit                  leave the chat (or Ctrl+D on an empty line)";

/// A room as typed: `#lobby` (an IRC habit, and how rooms are shown) is
/// `lobby`.
fn room_name(typed: &str) -> String {
    typed.strip_prefix('#').unwrap_or(typed).to_owned()
}

/// Parses one line. An error is a one-line message for the user.
pub fn parse(line: &str) -> Result<Input, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(Input::Nothing);
    }
    if let Some(literal) = trimmed.strip_prefix("//") {
        return Ok(Input::Say(format!("/{literal}")));
    }
    let Some(rest) = trimmed.strip_prefix('/') else {
        return Ok(Input::Say(line.to_owned()));
    };
    let (cmd, args) = match rest.split_once(char::is_whitespace) {
        Some((cmd, args)) => (cmd, args.trim()),
        None => (rest, ""),
    };
    let one_arg = |usage: &str| -> Result<String, String> {
        match args.split_whitespace().collect::<Vec<_>>().as_slice() {
            [one] => Ok((*one).to_owned()),
            _ => Err(format!("usage: {usage}")),
        }
    };
    match cmd {
        "msg" | "m" => match args.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => Ok(Input::Msg {
                to: to.to_owned(),
                text: text.trim().to_owned(),
            }),
            _ => Err("usage: /msg PEER|NICK TEXT".into()),
        },
        "join" | "j" if crate::ticket::looks_like_ticket(args) => {
            one_arg("/join TICKET").map(Input::JoinTicket)
        }
        "invite" => {
            let mut words: Vec<&str> = args.split_whitespace().collect();
            let qr = words.first() == Some(&"--qr");
            if qr {
                words.remove(0);
            }
            match words.as_slice() {
                [] => Ok(Input::Invite { room: None, qr }),
                [room] => Ok(Input::Invite {
                    room: Some(room_name(room)),
                    qr,
                }),
                _ => Err("usage: /invite [--qr] [ROOM]".into()),
            }
        }
        "join" | "j" => {
            let (room, key) = match args.split_once(char::is_whitespace) {
                _ if args.is_empty() => {
                    return Err("usage: /join ROOM [--encrypted | PASSPHRASE]".into());
                }
                Some((room, rest)) if rest.trim() == ENCRYPTED_FLAG => (room, JoinKey::Ask),
                Some((room, pass)) => (
                    room,
                    JoinKey::Passphrase(crate::config::Secret::new(pass.trim())),
                ),
                None => (args, JoinKey::Open),
            };
            if room.starts_with('-') {
                return Err(format!(
                    "room names cannot start with '-': /join ROOM {ENCRYPTED_FLAG}"
                ));
            }
            Ok(Input::Join {
                room: room_name(room),
                key,
            })
        }
        "leave" | "part" => match args {
            "" => Ok(Input::Leave(None)),
            _ => one_arg("/leave [ROOM]").map(|r| Input::Leave(Some(room_name(&r)))),
        },
        "switch" | "s" => one_arg("/switch ROOM").map(|r| Input::Switch(room_name(&r))),
        "rooms" => Ok(Input::Rooms),
        "peers" => Ok(Input::Peers),
        "history" => match args {
            "" => Ok(Input::History(HISTORY_DEFAULT)),
            n => n
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .map(Input::History)
                .ok_or_else(|| "usage: /history [N], N a positive number".to_owned()),
        },
        "nick" => one_arg("/nick NAME").map(Input::Nick),
        "search" | "find" => match args {
            "" => Err("usage: /search TEXT".into()),
            text => Ok(Input::Search(text.to_owned())),
        },
        "status" => Ok(Input::Status),
        "whois" => one_arg("/whois NICK").map(Input::Whois),
        "names" | "who" => Ok(Input::Names),
        "me" => match args {
            "" => Err("usage: /me ACTION".into()),
            action => Ok(Input::Me(action.to_owned())),
        },
        "clear" => Ok(Input::Clear),
        "help" | "h" | "?" => Ok(Input::Help),
        "quit" | "exit" | "q" => Ok(Input::Quit),
        other => Err(format!(
            "unknown command /{}: type /help",
            crate::sanitize::for_terminal(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_commands() {
        assert_eq!(parse("hello there"), Ok(Input::Say("hello there".into())));
        assert_eq!(parse("//join"), Ok(Input::Say("/join".into())));
        assert_eq!(parse("  "), Ok(Input::Nothing));
        assert_eq!(
            parse("exit"),
            Ok(Input::Say("exit".into())),
            "text, not a command"
        );
        assert_eq!(parse("quit\n"), Ok(Input::Say("quit".into())));
        assert_eq!(parse("/quit"), Ok(Input::Quit));
        assert_eq!(parse("/exit"), Ok(Input::Quit));
        assert_eq!(
            parse("/msg bob hi  there"),
            Ok(Input::Msg {
                to: "bob".into(),
                text: "hi  there".into()
            })
        );
        assert!(
            matches!(parse("/join dev"), Ok(Input::Join { room, key: JoinKey::Open }) if room == "dev"),
            "a plain room: nothing is asked"
        );
        assert_eq!(
            parse("/join p2pchat1abc"),
            Ok(Input::JoinTicket("p2pchat1abc".into()))
        );
        assert_eq!(
            parse("/invite --qr #plans"),
            Ok(Input::Invite {
                room: Some("plans".into()),
                qr: true
            })
        );
        assert_eq!(
            parse("/invite"),
            Ok(Input::Invite {
                room: None,
                qr: false
            })
        );
        assert!(parse("/invite a b").is_err());
        assert!(matches!(
            parse("/join plans --encrypted"),
            Ok(Input::Join { room, key: JoinKey::Ask }) if room == "plans"
        ));
        assert!(matches!(
            parse("/join dev  two words "),
            Ok(Input::Join { room, key: JoinKey::Passphrase(p) }) if room == "dev" && p.expose() == "two words"
        ));
        assert_eq!(parse("/leave"), Ok(Input::Leave(None)));
        assert!(
            matches!(parse("/join #dev"), Ok(Input::Join { room, .. }) if room == "dev"),
            "#room is how rooms are shown"
        );
        assert_eq!(parse("/switch #dev"), Ok(Input::Switch("dev".into())));
        assert_eq!(parse("/part #dev"), Ok(Input::Leave(Some("dev".into()))));
        assert_eq!(parse("/history 5"), Ok(Input::History(5)));
        assert_eq!(parse("/history"), Ok(Input::History(HISTORY_DEFAULT)));
        assert_eq!(parse("/me waves  hi"), Ok(Input::Me("waves  hi".into())));
        assert_eq!(
            parse("/whois bob#x7Fq2K"),
            Ok(Input::Whois("bob#x7Fq2K".into()))
        );
        assert_eq!(parse("/names"), Ok(Input::Names));
        assert_eq!(parse("/clear"), Ok(Input::Clear));
    }

    #[test]
    fn mistakes_get_a_usage_line() {
        assert_eq!(parse("/msg bob"), Err("usage: /msg PEER|NICK TEXT".into()));
        assert!(
            matches!(parse("/join"), Err(e) if e == "usage: /join ROOM [--encrypted | PASSPHRASE]")
        );
        assert!(parse("/history x").is_err());
        assert!(
            matches!(parse("/join --encrypted plans"), Err(e) if e.contains("/join ROOM --encrypted")),
            "not a room named --encrypted with the passphrase plans"
        );
        assert_eq!(parse("/me"), Err("usage: /me ACTION".into()));
        assert_eq!(parse("/whois"), Err("usage: /whois NICK".into()));
        let err = parse("/frobnicate now").unwrap_err();
        assert!(err.contains("/help"), "{err}");
    }
}
