use super::*;

/// A joined room as the node lists it.
pub(crate) fn room(name: &str, encrypted: bool) -> RoomInfo {
    RoomInfo {
        room: name.into(),
        encrypted,
        members: 0,
        mesh_peers: 0,
        pending: 0,
        messages: 0,
        unreadable: 0,
    }
}

fn model() -> Model {
    let mut m = Model::new(Some("lobby".into()));
    m.set_rooms(&[
        room("lobby", false),
        room("plans", true),
        room("dev", false),
    ]);
    for (peer, nick) in [
        ("p1", "alice"),
        ("p2", "Albert"),
        ("p3", "bob"),
        ("p4", "alice"),
    ] {
        m.observe(&Event::PeerNick {
            peer: peer.into(),
            nick: nick.into(),
        });
    }
    m
}

fn tab(m: &Model, line: &str) -> (usize, Vec<String>) {
    let known = m.known();
    let known = known.lock().expect("not poisoned");
    complete(&known, line, line.len())
}

#[test]
fn the_prompt_names_the_current_room() {
    let mut m = model();
    assert_eq!(m.prompt(), "#lobby> ");
    m.set_current(None);
    assert_eq!(m.prompt(), "> ");
    m.set_current(Some("a\u{1b}[2Jb".into()));
    assert!(!m.prompt().contains('\u{1b}'), "{:?}", m.prompt());
}

#[test]
fn tab_completes_commands_rooms_and_nicks() {
    let m = model();
    assert_eq!(tab(&m, "/jo"), (0, vec!["/join ".into()]));
    assert_eq!(
        tab(&m, "/s"),
        (
            0,
            vec!["/search ".into(), "/status ".into(), "/switch ".into()]
        )
    );
    assert_eq!(tab(&m, "/switch p"), (8, vec!["plans".into()]));
    assert_eq!(
        tab(&m, "/join "),
        (6, vec!["dev".into(), "lobby".into(), "plans".into()])
    );
    assert_eq!(tab(&m, "see #d"), (4, vec!["#dev".into()]));
    // A nick at the start of a line is addressed; equal nicks offered once.
    assert_eq!(
        tab(&m, "al"),
        (0, vec!["Albert: ".into(), "alice: ".into()])
    );
    assert_eq!(tab(&m, "hi b"), (3, vec!["bob".into()]));
    assert_eq!(tab(&m, "/msg B"), (5, vec!["bob".into()]));
    assert_eq!(tab(&m, "/nick a"), (6, vec![]), "nothing to offer");
    // The cursor inside the line: only what is before it counts.
    let known = m.known();
    let known = known.lock().expect("not poisoned");
    assert_eq!(complete(&known, "/sw x", 3), (0, vec!["/switch ".into()]));
    assert_eq!(complete(&known, "é", 1), (1, vec![]), "not a char boundary");
}

#[test]
fn nicks_come_from_what_the_node_reports_and_stay_typable() {
    let mut m = Model::new(None);
    m.observe(&Event::Message {
        room: "lobby".into(),
        id: "1".into(),
        from: "p9".into(),
        nick: "carol".into(),
        text: "hi".into(),
        ts: 0,
        recovered: false,
    });
    m.observe(&Event::PeerNick {
        peer: "p8".into(),
        nick: "ca\u{1b}[31mrl".into(),
    });
    assert_eq!(tab(&m, "ca"), (0, vec!["carol: ".into()]));
}

#[test]
fn history_never_keeps_secrets_or_encrypted_text() {
    let mut m = model();
    let keep = |m: &Model, line: &str| m.keep_in_history(&crate::ui::parse(line));
    assert!(keep(&m, "hello"), "text for a plain room");
    assert!(keep(&m, "/join dev"));
    assert!(
        keep(&m, "/join plans --encrypted"),
        "the passphrase is not on it"
    );
    assert!(!keep(&m, "/join plans hunter2"));
    assert!(
        !keep(&m, "/jion plans hunter2"),
        "not understood: may hold one"
    );
    assert!(!keep(&m, "   "));
    m.set_current(Some("plans".into()));
    assert!(
        !keep(&m, "the vault code is 1234"),
        "text for an encrypted room"
    );
    assert!(keep(&m, "/rooms"));
    m.left("plans");
    assert!(!keep(&m, "text"), "a room not known to be plain");
    m.joined("plans", false);
    assert!(keep(&m, "text"));
}

#[test]
fn messages_in_other_rooms_count_as_unread_until_the_room_is_current() {
    let mut m = model();
    let said = |room: &str| Event::Message {
        room: room.into(),
        id: "1".into(),
        from: "p3".into(),
        nick: "bob".into(),
        text: "hi".into(),
        ts: 0,
        recovered: false,
    };
    m.observe(&said("lobby"));
    m.observe(&said("dev"));
    m.observe(&said("dev"));
    assert_eq!(
        (m.unread("lobby"), m.unread("dev")),
        (0, 2),
        "the current room is read"
    );
    m.set_current(Some("dev".into()));
    assert_eq!(m.unread("dev"), 0);
    m.observe(&said("lobby"));
    assert_eq!(m.unread("lobby"), 1);
    m.observe(&Event::Left {
        room: "lobby".into(),
    });
    assert_eq!(m.unread("lobby"), 0);
}

fn message(room: &str, text: &str) -> Event {
    Event::Message {
        room: room.into(),
        id: format!("id-{text}"),
        from: "p1".into(),
        nick: "alice".into(),
        text: text.into(),
        ts: 0,
        recovered: false,
    }
}

#[test]
fn mentions_are_whole_words_in_any_case() {
    for yes in ["bob", "hi bob", "@bob: look", "Bob, lunch?", "BOB!"] {
        assert!(mentions(yes, "bob"), "{yes}");
    }
    for no in ["bobby", "kebob", "b o b", "", "bob_x", "bob-2"] {
        assert!(!mentions(no, "bob"), "{no}");
    }
    assert!(!mentions("anything", ""));
    assert!(mentions("ünï says hi", "Ünï"));
}

#[test]
fn unread_and_mentions_count_in_rooms_not_current_and_clear_on_switch() {
    let mut m = model();
    m.set_me("bob");
    m.observe(&message("lobby", "bob: here"));
    m.observe(&message("dev", "one"));
    m.observe(&message("dev", "bob: look at this"));
    m.observe(&message("dev", "@BOB again"));
    assert_eq!((m.unread("lobby"), m.mentions("lobby")), (0, 0));
    assert_eq!((m.unread("dev"), m.mentions("dev")), (3, 2));
    m.set_current(Some("dev".into()));
    assert_eq!((m.unread("dev"), m.mentions("dev")), (0, 0));
    m.observe(&message("plans", "bob"));
    m.observe(&Event::Left {
        room: "plans".into(),
    });
    assert_eq!((m.unread("plans"), m.mentions("plans")), (0, 0));
}
