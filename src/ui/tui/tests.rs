//! The client's state and drawing, without a terminal: key presses against
//! [`State`], and whole screens drawn into ratatui's test backend.

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use ratatui::{Terminal, backend::TestBackend};

use super::{
    draw,
    state::{Action, Entry, Mark, Member, Said, State, StatusLine, Target},
};
use crate::{
    node::Event,
    ui::session::{Known, Model, tests::room},
};

fn key(code: KeyCode) -> TermEvent {
    TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn with(code: KeyCode, modifiers: KeyModifiers) -> TermEvent {
    TermEvent::Key(KeyEvent::new(code, modifiers))
}

fn typed(state: &mut State, known: &Known, text: &str) {
    for c in text.chars() {
        state.on_event(&key(KeyCode::Char(c)), known);
    }
}

/// A session model in #lobby with #plans (encrypted) and #dev, knowing
/// alice and bob.
fn model() -> Model {
    let mut m = Model::new(Some("lobby".into()));
    m.set_rooms(&[
        room("lobby", false),
        room("plans", true),
        room("dev", false),
    ]);
    for (peer, nick) in [
        ("12D3KooWalice0000A1", "alice"),
        ("12D3KooWbob00000B2", "bob"),
    ] {
        m.observe(&Event::PeerNick {
            peer: peer.into(),
            nick: nick.into(),
        });
    }
    m.set_me("carol");
    m
}

fn said(id: &str, who: &str, text: &str, mine: bool, mark: Mark) -> Entry {
    Entry::said(&Said {
        id: Some(id),
        ts: 0,
        from: if mine {
            "12D3KooWcarol000C3"
        } else {
            "12D3KooWalice0000A1"
        },
        who,
        text,
        mine,
        mention: !mine && text.contains("carol"),
        mark,
        recovered: false,
    })
}

fn fixed_clock(ts: u64) -> String {
    format!("12:{:02}", ts / 60_000 % 60)
}

/// A state in #lobby with a few lines, as the loop would have made it.
fn state(size: (u16, u16)) -> State {
    let m = model();
    let mut s = State::new(size);
    s.clock = fixed_clock;
    s.set_rooms(m.rooms());
    s.set_focus(Target::Room("lobby".into()));
    s.load(
        "lobby",
        vec![
            said("m1", "alice", "hi all", false, Mark::None),
            said("m2", "carol", "hello alice", true, Mark::Saved),
            said("m3", "alice", "carol: lunch?", false, Mark::None),
            said("m4", "carol", "/me waves", true, Mark::Pending),
        ],
        true,
    );
    s.push(
        Target::Direct("12D3KooWbob00000B2".into()),
        said("d1", "bob", "psst", false, Mark::None),
    );
    s.set_label(&Target::Direct("12D3KooWbob00000B2".into()), "bob".into());
    s.counts.insert("dev".into(), (3, 1));
    s.pending.insert("lobby".into(), 1);
    s.members = vec![
        Member {
            who: "carol".into(),
            peer: "12D3KooWcarol000C3".into(),
            connected: true,
            rtt_ms: None,
            connection: "direct",
            me: true,
        },
        Member {
            who: "alice".into(),
            peer: "12D3KooWalice0000A1".into(),
            connected: true,
            rtt_ms: Some(3.2),
            connection: "relayed",
            me: false,
        },
    ];
    s.status = StatusLine {
        peer_id: "12D3KooWcarol000C3".into(),
        nick: "carol".into(),
        reachability: "private".into(),
        peers: 2,
        http: Some("http://127.0.0.1:7420".into()),
        ssh: Some(1),
    };
    s
}

/// The screen as text, one line per row, trailing blanks trimmed.
fn screen(state: &State) -> String {
    let (w, h) = state.size;
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    terminal.draw(|f| draw::draw(f, state)).expect("drawn");
    let buffer = terminal.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        for x in 0..w {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn the_layout_at_a_wide_size_shows_rooms_messages_members_status_and_input() {
    let s = state((100, 12));
    // (The lock is two columns wide: its cell is followed by an empty one.)
    let expected = "\
rooms              │                                                    │members 2
1 #dev 3 @1        │                                                    │● carol (you)
2 #lobby ⋯1        │                                                    │● alice …0000A1 3ms relayed
3 #plans 🔒         │                                                    │
4 @bob 1           │                                                    │
                   │                                                    │
                   │12:00 <alice> hi all                                │
                   │12:00 <carol> hello alice ✓                         │
                   │12:00 <alice> carol: lunch?                         │
                   │12:00 * carol waves ⋯ pending                       │
 carol · 12D3KooW…l000C3 · private · 2 peers · HTTP http://127.0.0.1:7420 · SSH 1 session
#lobby>
";
    assert_eq!(screen(&s), expected);
}

#[test]
fn the_layout_at_a_narrow_size_keeps_messages_and_input_and_wraps() {
    let mut s = state((40, 8));
    s.push(
        Target::Room("lobby".into()),
        said(
            "m5",
            "alice",
            "a long line that has to wrap here",
            false,
            Mark::None,
        ),
    );
    let expected = "\
12:00 <alice> hi all
12:00 <carol> hello alice ✓
12:00 <alice> carol: lunch?
12:00 * carol waves ⋯ pending
12:00 <alice> a long line that has to wr
      ap here
 carol · 12D3KooW…l000C3 · private · 2 p
#lobby>
";
    // No rooms or members pane under 44 columns.
    assert_eq!(screen(&s), expected);
}

#[test]
fn network_strings_are_neutralised_in_every_pane() {
    let mut s = state((100, 12));
    s.push(
        Target::Room("lobby".into()),
        said("evil", "alice", "\x1b[2Jgone\x07", false, Mark::None),
    );
    let got = screen(&s);
    assert!(!got.contains('\x1b') && !got.contains('\x07'), "{got:?}");
    assert!(got.contains("gone"), "{got}");
}

#[test]
fn a_passphrase_being_typed_is_not_drawn() {
    let mut s = state((100, 12));
    let known = model().known();
    let known = known.lock().expect("lock");
    s.secret = Some("passphrase for #vault (hidden, empty line cancels): ".into());
    typed(&mut s, &known, "hunter2");
    let got = screen(&s);
    assert!(
        !got.contains("hunter2") && !got.contains("*******"),
        "{got}"
    );
    assert!(got.contains("passphrase for #vault"), "{got}");
    assert_eq!(
        s.on_event(&key(KeyCode::Enter), &known),
        Action::Submit("hunter2".into())
    );
}

#[test]
fn alt_digits_and_ctrl_n_p_move_between_conversations() {
    let mut s = state((100, 12));
    let known = Known::default();
    let alt = |c| with(KeyCode::Char(c), KeyModifiers::ALT);
    let ctrl = |c| with(KeyCode::Char(c), KeyModifiers::CONTROL);
    assert_eq!(
        s.on_event(&alt('1'), &known),
        Action::Focus(Target::Room("dev".into()))
    );
    assert_eq!(
        s.on_event(&alt('4'), &known),
        Action::Focus(Target::Direct("12D3KooWbob00000B2".into()))
    );
    assert_eq!(s.on_event(&alt('9'), &known), Action::Nothing);
    assert_eq!(
        s.on_event(&ctrl('n'), &known),
        Action::Focus(Target::Room("plans".into()))
    );
    assert_eq!(
        s.on_event(&ctrl('p'), &known),
        Action::Focus(Target::Room("dev".into()))
    );
    s.set_focus(Target::Direct("12D3KooWbob00000B2".into()));
    assert_eq!(
        s.counts(&Target::Direct("12D3KooWbob00000B2".into())),
        (0, 0)
    );
    assert_eq!(
        s.on_event(&ctrl('n'), &known),
        Action::Focus(Target::Room("dev".into()))
    );
}

#[test]
fn page_up_past_the_buffer_asks_for_the_page_before_the_oldest_message() {
    let mut s = State::new((60, 8));
    s.clock = fixed_clock;
    s.set_rooms(vec![("lobby".into(), false)]);
    s.set_focus(Target::Room("lobby".into()));
    let page = |from: usize, to: usize| {
        (from..to)
            .map(|i| {
                said(
                    &format!("m{i:03}"),
                    "alice",
                    &format!("line {i}"),
                    false,
                    Mark::None,
                )
            })
            .collect::<Vec<_>>()
    };
    // The newest 15, not all there is.
    s.load("lobby", page(15, 30), false);
    let known = Known::default();
    // Six rows of messages: one page up is 5 rows, within the 15 held.
    assert_eq!(s.on_event(&key(KeyCode::PageUp), &known), Action::Redraw);
    assert!(screen(&s).contains("line 24"), "{}", screen(&s));
    // The next would pass the top: the page before m015 is asked for.
    assert_eq!(
        s.on_event(&key(KeyCode::PageUp), &known),
        Action::Older {
            room: "lobby".into(),
            before: "m015".into()
        }
    );
    s.prepend("lobby", page(5, 15), false);
    s.scroll_into_page("lobby");
    let got = screen(&s);
    assert!(got.contains("line 15") && !got.contains("line 25"), "{got}");
    assert!(got.contains("scrolled back"), "{got}");
    // New lines while scrolled back do not move the view.
    s.push(
        Target::Room("lobby".into()),
        said("new", "bob", "fresh", false, Mark::None),
    );
    assert_eq!(screen(&s).replace("back, 1 new", "back, 0 new"), got);
    // Back down to the bottom: following again, the new line shown.
    for _ in 0..10 {
        s.on_event(&key(KeyCode::PageDown), &known);
    }
    let got = screen(&s);
    assert!(
        got.contains("fresh") && !got.contains("scrolled back"),
        "{got}"
    );
}

#[test]
fn up_and_down_walk_input_history_and_keep_the_draft() {
    let mut s = State::new((80, 10));
    let known = Known::default();
    s.remember("/rooms".into());
    s.remember("hello".into());
    typed(&mut s, &known, "dra");
    s.on_event(&key(KeyCode::Up), &known);
    assert_eq!(s.input.value(), "hello");
    s.on_event(&key(KeyCode::Up), &known);
    assert_eq!(s.input.value(), "/rooms");
    s.on_event(&key(KeyCode::Up), &known);
    assert_eq!(s.input.value(), "/rooms");
    s.on_event(&key(KeyCode::Down), &known);
    s.on_event(&key(KeyCode::Down), &known);
    assert_eq!(s.input.value(), "dra");
}

#[test]
fn tab_completes_nicks_rooms_and_commands_cycling_through_candidates() {
    let mut s = State::new((80, 10));
    let m = model();
    let known = m.known();
    let known = known.lock().expect("lock");
    typed(&mut s, &known, "/jo");
    s.on_event(&key(KeyCode::Tab), &known);
    assert_eq!(s.input.value(), "/join ");
    typed(&mut s, &known, "p");
    s.on_event(&key(KeyCode::Tab), &known);
    assert_eq!(s.input.value(), "/join plans");
    s.input = tui_input::Input::default();
    typed(&mut s, &known, "a");
    s.on_event(&key(KeyCode::Tab), &known);
    assert_eq!(s.input.value(), "alice: ");
    s.input = tui_input::Input::default();
    typed(&mut s, &known, "see #");
    s.on_event(&key(KeyCode::Tab), &known);
    assert_eq!(s.input.value(), "see #dev");
    s.on_event(&key(KeyCode::Tab), &known);
    assert_eq!(s.input.value(), "see #lobby");
    s.on_event(&key(KeyCode::Tab), &known);
    assert_eq!(s.input.value(), "see #plans");
}

#[test]
fn a_paste_is_one_line_and_ctrl_c_and_ctrl_d_end() {
    let mut s = State::new((80, 10));
    let known = Known::default();
    s.on_event(&TermEvent::Paste("two\nlines".into()), &known);
    assert_eq!(s.input.value(), "two lines");
    // Ctrl+D deletes while there is text, ends on an empty line.
    let ctrl = |c| with(KeyCode::Char(c), KeyModifiers::CONTROL);
    s.on_event(&key(KeyCode::Home), &known);
    assert_eq!(s.on_event(&ctrl('d'), &known), Action::Redraw);
    assert_eq!(s.input.value(), "wo lines");
    s.input = tui_input::Input::default();
    assert_eq!(s.on_event(&ctrl('d'), &known), Action::Quit);
    assert_eq!(s.on_event(&ctrl('c'), &known), Action::Interrupt);
}

#[test]
fn a_resize_redraws_at_the_new_size() {
    let mut s = state((100, 12));
    let known = Known::default();
    assert_eq!(
        s.on_event(&TermEvent::Resize(50, 10), &known),
        Action::Redraw
    );
    let got = screen(&s);
    assert_eq!(got.lines().count(), 10);
    assert!(got.contains("rooms") && !got.contains("members"), "{got}");
}

#[test]
fn marks_follow_our_messages_and_a_reload_keeps_notices() {
    let mut s = state((100, 12));
    let lobby = Target::Room("lobby".into());
    s.mark(&lobby, "m4", Mark::Saved);
    assert!(screen(&s).contains("* carol waves ✓"));
    let bob = Target::Direct("12D3KooWbob00000B2".into());
    s.push(
        bob.clone(),
        said("local-1", "carol", "on my way", true, Mark::Sending),
    );
    s.mark_direct(
        &bob,
        "local-1",
        Some("real-id"),
        Mark::Failed("timed out".into()),
    );
    s.set_focus(bob.clone());
    assert!(
        screen(&s).contains("<carol> on my way ✗ timed out"),
        "{}",
        screen(&s)
    );
    assert!(s.has(&bob, "real-id", 10));
    s.set_focus(lobby.clone());
    s.notice("error: something", true);
    s.all_stale();
    assert_eq!(s.stale_focus(), Some("lobby".into()));
    s.load(
        "lobby",
        vec![said("m9", "alice", "after the gap", false, Mark::None)],
        true,
    );
    let got = screen(&s);
    assert!(
        got.contains("after the gap") && got.contains("error: something"),
        "{got}"
    );
    assert!(!got.contains("hi all"), "{got}");
}
