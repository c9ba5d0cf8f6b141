//! The full-screen client in a real terminal (tmux), with the real binary:
//! two people chat full screen through a third node, switch rooms, scroll
//! back into the store, resize, and get their terminal back on every way
//! out.

use std::{path::Path, process::Command, time::Duration};

use crate::{
    cli::Proc,
    terminal::{BIN, Tmux},
};

/// A shell in tmux, `width` x `height`.
fn shell(width: u16, height: u16) -> Tmux {
    let tmux = Tmux::start("bash --norc --noprofile");
    tmux.tmux(&[
        "resize-window",
        "-x",
        &width.to_string(),
        "-y",
        &height.to_string(),
    ]);
    tmux
}

/// Starts the client in `tmux`'s shell with the terminal's settings saved
/// before and after to `dir/before-N` and `dir/after-N`; the shell echoes
/// `exited-N-with-CODE` when it ends.
fn client(tmux: &Tmux, dir: &Path, round: u32, args: &str) {
    tmux.keys(&format!(
        "clear; stty -a > {dir}/before-{round}; {BIN} --no-mdns --no-http \
         --listen /ip4/127.0.0.1/tcp/0 {args} 2>/dev/null; \
         stty -a > {dir}/after-{round}; echo exited-{round}-with-$?",
        dir = dir.display()
    ));
}

/// After `round` ended: the terminal's settings are as before, and the main
/// screen is back (nothing of the client's screen on it).
fn restored(tmux: &Tmux, dir: &Path, round: u32) {
    let screen = tmux.wait_for(&format!("exited-{round}-with-0"));
    assert!(
        !tmux.visible().contains("members"),
        "the alternate screen is left:\n{screen}"
    );
    let read = |name: String| std::fs::read_to_string(dir.join(name)).expect("stty output");
    let (before, after) = (
        read(format!("before-{round}")),
        read(format!("after-{round}")),
    );
    assert!(
        before.contains(" echo ") && before.contains(" icanon "),
        "{before}"
    );
    // The first line is the size, which a resize changes.
    let modes = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(
        modes(&before),
        modes(&after),
        "round {round}: the terminal's settings are as before"
    );
}

/// Waits until `tmux`'s visible screen satisfies `ok`.
fn wait_until(tmux: &Tmux, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + crate::support::WAIT;
    loop {
        let screen = tmux.visible();
        if ok(&screen) {
            return screen;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never {what}:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_people_chat_full_screen_switch_rooms_scroll_back_and_resize() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("alice");
    // Carol, a plain node both dial: she also fills #lobby's history.
    let mut carol = Proc::start(&["--json", "--nick", "carol"]);
    let hub = carol.address();

    // The full-screen client is the default in a terminal.
    let alice = shell(150, 30);
    client(
        &alice,
        dir.path(),
        1,
        &format!("--data-dir {} --nick alice --dial {hub}", data.display()),
    );
    let bob = shell(100, 24);
    client(
        &bob,
        dir.path(),
        2,
        &format!("--ephemeral --nick bob --dial {hub}"),
    );
    carol.event("peer_nick", |v| v["nick"] == "alice");
    carol.event("peer_nick", |v| v["nick"] == "bob");
    // The panes: rooms, members (carol is in #lobby), status line, input.
    wait_until(&alice, "showed its panes", |s| {
        s.contains("rooms")
            && s.contains("1 #lobby")
            && s.contains("● carol")
            && s.contains("#lobby>")
    });
    wait_until(&bob, "listed alice", |s| s.contains("● alice"));

    // A line typed in Alice's client shows in Bob's, and hers is marked saved.
    alice.keys("hello from alice");
    bob.wait_for("<alice> hello from alice");
    alice.wait_for("<alice> hello from alice ✓");
    carol.event("message", |v| v["text"] == "hello from alice");

    // Rooms: joined ones listed; the new one is shown; Alt+2 goes back.
    alice.keys("/join dev");
    wait_until(&alice, "listed #dev first", |s| {
        s.contains("1 #dev") && s.contains("2 #lobby") && s.contains("#dev>")
    });
    bob.keys("/join dev");
    wait_until(&bob, "switched to #dev", |s| s.contains("#dev>"));
    // (Bob's message may race his subscription reaching Alice: history
    // sync brings it either way.)
    bob.keys("bob in dev");
    alice.wait_for("<bob> bob in dev");
    alice.press("M-2");
    wait_until(&alice, "showed #lobby", |s| {
        s.contains("#lobby>") && s.contains("hello from alice") && !s.contains("bob in dev")
    });
    // Unread and mention counts for the room not shown.
    bob.keys("alice: look at this");
    wait_until(&alice, "counted #dev's unread line and mention", |s| {
        s.contains("1 #dev 1 @1")
    });
    // Bob's /msg opens a direct conversation; its line is marked delivered.
    bob.keys("/msg alice psst");
    bob.wait_for("<bob> psst ✓ delivered");
    wait_until(&alice, "listed the direct conversation", |s| {
        s.contains("3 @bob 1")
    });
    // A command typed in the direct conversation that makes a room current
    // shows that room.
    bob.keys("/switch dev");
    wait_until(&bob, "showed #dev again", |s| s.contains("#dev>"));

    // A passphrase is asked for in the input line and not echoed.
    alice.keys("/join vault --encrypted");
    alice.wait_for("passphrase for #vault (hidden, empty line cancels):");
    alice.typed("hunter2");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alice.screen().contains("hunter2"), "{}", alice.screen());
    alice.press("Enter");
    wait_until(&alice, "joined the encrypted room", |s| {
        s.contains("#vault>") && s.contains("#vault 🔒")
    });
    assert!(!alice.screen().contains("hunter2"));
    alice.press("M-2");
    wait_until(&alice, "showed #lobby", |s| s.contains("#lobby>"));

    // Resize: the members pane goes below 72 columns, the lines rewrap.
    alice.tmux(&["resize-window", "-x", "60", "-y", "20"]);
    wait_until(&alice, "redrawn at 60 columns", |s| {
        !s.contains("members") && s.contains("rooms") && s.lines().all(|l| l.chars().count() <= 60)
    });

    // Fill #lobby past what the client reads at start (200 messages).
    for n in 1..=230 {
        carol.send(&format!("backlog {n:03}"));
    }
    alice.wait_for("<carol> backlog 230");
    // /quit: the terminal is as it was.
    alice.keys("/quit");
    restored(&alice, dir.path(), 1);

    // Again: the newest lines are shown; PgUp pages back into the store.
    client(
        &alice,
        dir.path(),
        3,
        &format!("--data-dir {} --nick alice --dial {hub}", data.display()),
    );
    wait_until(&alice, "showed the newest lines", |s| {
        s.contains("backlog 230")
    });
    let mut pages = 0;
    while !alice.visible().contains("backlog 001") {
        alice.press("PPage");
        pages += 1;
        assert!(
            pages < 60,
            "never scrolled back to the first line:\n{}",
            alice.visible()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(alice.visible().contains("scrolled back"));
    alice.press("C-c");
    restored(&alice, dir.path(), 3);

    // SIGTERM (a service manager, `kill`) also gives the terminal back.
    client(
        &alice,
        dir.path(),
        4,
        &format!("--data-dir {} --nick alice", data.display()),
    );
    wait_until(&alice, "started", |s| s.contains("#lobby>"));
    let killed = Command::new("pkill")
        .args([
            "-TERM",
            "-f",
            "--",
            &format!("--data-dir {} --nick alice", data.display()),
        ])
        .status()
        .expect("pkill");
    assert!(killed.success());
    restored(&alice, dir.path(), 4);
    bob.press("C-c");
    restored(&bob, dir.path(), 2);
}

/// A ratatui test backend the test can read while the client draws on it.
#[derive(Clone)]
struct Shared(std::sync::Arc<std::sync::Mutex<ratatui::backend::TestBackend>>);

impl Shared {
    fn new(width: u16, height: u16) -> Shared {
        Shared(std::sync::Arc::new(std::sync::Mutex::new(
            ratatui::backend::TestBackend::new(width, height),
        )))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ratatui::backend::TestBackend> {
        self.0.lock().expect("not poisoned")
    }

    /// The screen as text.
    fn text(&self) -> String {
        let backend = self.lock();
        let buffer = backend.buffer();
        let mut out = String::new();
        for y in 0..buffer.area.height {
            for x in 0..buffer.area.width {
                out.push_str(buffer[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }
}

impl ratatui::backend::Backend for Shared {
    type Error = std::convert::Infallible;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a ratatui::buffer::Cell)>,
    {
        self.lock().draw(content)
    }
    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        self.lock().hide_cursor()
    }
    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.lock().show_cursor()
    }
    fn get_cursor_position(&mut self) -> Result<ratatui::layout::Position, Self::Error> {
        self.lock().get_cursor_position()
    }
    fn set_cursor_position<P: Into<ratatui::layout::Position>>(
        &mut self,
        position: P,
    ) -> Result<(), Self::Error> {
        self.lock().set_cursor_position(position)
    }
    fn clear(&mut self) -> Result<(), Self::Error> {
        self.lock().clear()
    }
    fn clear_region(&mut self, kind: ratatui::backend::ClearType) -> Result<(), Self::Error> {
        self.lock().clear_region(kind)
    }
    fn size(&self) -> Result<ratatui::layout::Size, Self::Error> {
        self.lock().size()
    }
    fn window_size(&mut self) -> Result<ratatui::backend::WindowSize, Self::Error> {
        self.lock().window_size()
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.lock().flush()
    }
}

/// The full-screen client on `node` in `#lobby`, on a test screen, fed
/// keys from the returned sender.
fn in_process(
    node: p2p_chat::Node,
    events: p2p_chat::node::Events,
    size: (u16, u16),
    user: Option<&'static str>,
) -> (
    Shared,
    futures::channel::mpsc::UnboundedSender<crossterm::event::Event>,
    tokio::task::JoinHandle<(p2p_chat::ui::Exit, p2p_chat::ui::Frames)>,
) {
    use futures::StreamExt as _;
    let screen = Shared::new(size.0, size.1);
    let (keys, key_stream) = futures::channel::mpsc::unbounded();
    let client = tokio::spawn(p2p_chat::ui::full_screen(
        node,
        events,
        key_stream.map(Ok),
        screen.clone(),
        size,
        "lobby",
        user,
    ));
    (screen, keys, client)
}

/// More messages than the event channel holds arrive while the client
/// cannot keep up (its screen is held): it reads the room again from the
/// store rather than show a gap or append old lines below new ones, and
/// scrolling back shows every message once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The screen's lock is held across awaits on purpose: that is the stall.
#[allow(clippy::await_holding_lock)]
async fn a_client_that_fell_behind_reads_the_room_again_from_the_store() {
    use crate::support::{TestNode, eventually};
    use crossterm::event::{Event as Key, KeyCode, KeyEvent, KeyModifiers};

    const N: usize = 4_400;
    const SIZE: (u16, u16) = (100, 200);
    let a = TestNode::start_with("alice", &[]).await;
    let b = TestNode::start_with("bob", &[&a]).await;
    b.wait_members("lobby", 1).await;
    let stored = |n: u64| {
        let node = a.node.clone();
        async move {
            node.rooms()
                .await
                .expect("rooms")
                .iter()
                .any(|r| r.room == "lobby" && r.messages >= n)
        }
    };
    b.node.publish("lobby", "before").await.expect("published");
    eventually("alice stored the first", || stored(1)).await;
    let (screen, keys, client) = in_process(a.node.clone(), a.events, SIZE, None);
    eventually("the first line on screen", || async {
        screen.text().contains("<bob> before")
    })
    .await;
    // The screen is held: the client blocks at its next frame while the
    // burst overflows its event channel.
    let held = screen.lock();
    for n in 0..N {
        b.node
            .publish("lobby", &format!("burst {n:04}"))
            .await
            .expect("published");
    }
    eventually("alice stored the burst", || stored(N as u64 + 1)).await;
    drop(held);
    let last = format!("burst {:04}", N - 1);
    eventually("the newest line on screen", || async {
        screen.text().contains(&last)
    })
    .await;
    // Back to the first line, page by page: every message, in order.
    let numbers = |text: &str| -> Vec<usize> {
        text.lines()
            .filter_map(|l| l.split("<bob> burst ").nth(1))
            .filter_map(|n| n.get(..4)?.parse().ok())
            .collect()
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut order_bad = None;
    for _ in 0..100 {
        let text = screen.text();
        let shown = numbers(&text);
        // Oldest first (messages of one millisecond are in the store's
        // order, by id hash), each once.
        let once: std::collections::BTreeSet<_> = shown.iter().collect();
        if once.len() != shown.len() || !shown.windows(2).all(|w| w[1].abs_diff(w[0]) < 100) {
            order_bad.get_or_insert(text.clone());
        }
        seen.extend(shown);
        if text.contains("<bob> before") {
            break;
        }
        keys.unbounded_send(Key::Key(KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE)))
            .expect("client running");
        // One screen per key: wait for it to be drawn.
        eventually("the page drawn", || async { screen.text() != text }).await;
    }
    let text = screen.text();
    assert!(
        text.contains("<bob> before"),
        "scrolled to the top:\n{text}"
    );
    assert_eq!(order_bad, None, "lines in order on every screen");
    let missing: Vec<usize> = (0..N).filter(|n| !seen.contains(n)).collect();
    assert_eq!(
        missing,
        Vec::<usize>::new(),
        "every message shown once scrolled through"
    );
    keys.unbounded_send(Key::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )))
    .expect("client running");
    let (exit, frames) = tokio::time::timeout(crate::support::WAIT, client)
        .await
        .expect("client ends")
        .expect("client task");
    assert_eq!(exit, p2p_chat::ui::Exit::Signal);
    assert!(frames.reloads >= 1, "{frames:?}");
}

/// A remote user's client (as over SSH) typing faster than the rate: the
/// direct messages past it are refused with a line on screen at once, the
/// others go out as `carol@alice`, and every line typed is one or the
/// other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_user_past_the_rate_is_told_at_once() {
    use crate::support::{TestNode, eventually, wait_for};
    use crossterm::event::{Event as Key, KeyCode, KeyEvent, KeyModifiers};
    use p2p_chat::node::Event;

    const SIZE: (u16, u16) = (120, 60);
    let a = TestNode::start_with("alice", &[]).await;
    let mut b = TestNode::start_with("bob", &[&a]).await;
    b.wait_members("lobby", 1).await;
    let bob = b.addr.rsplit('/').next().expect("peer id").to_owned();
    let (screen, keys, client) = in_process(a.node.clone(), a.events, SIZE, Some("carol"));
    eventually("the client drawn", || async {
        screen.text().contains("#lobby>")
    })
    .await;
    let press = |code| {
        keys.unbounded_send(Key::Key(KeyEvent::new(code, KeyModifiers::NONE)))
            .expect("client running");
    };
    for n in 0..40 {
        for c in format!("/msg {bob} dm {n:02}").chars() {
            press(KeyCode::Char(c));
        }
        press(KeyCode::Enter);
    }
    eventually("the refusal on screen", || async {
        screen
            .text()
            .contains("not sent: at most 5 messages a second")
    })
    .await;
    let first = wait_for(
        &mut b.events,
        |e| matches!(e, Event::Direct { text, .. } if text == "dm 00"),
    )
    .await;
    assert!(
        matches!(&first, Event::Direct { nick, .. } if nick == "carol@alice"),
        "{first:?}"
    );
    let text = screen.text();
    assert!(!text.contains("usage"), "{text}");
    keys.unbounded_send(Key::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )))
    .expect("client running");
    tokio::time::timeout(crate::support::WAIT, client)
        .await
        .expect("client ends")
        .expect("client task");
}
