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
