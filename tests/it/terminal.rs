//! The line front end in a real terminal (tmux): what a person sees.

use std::{
    process::{Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use crate::{cli::Proc, support::WAIT};

pub const BIN: &str = env!("CARGO_BIN_EXE_p2p-chat");

/// A tmux server of its own, with one window running a command.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(command: &str) -> Tmux {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let socket = format!("p2p-chat-test-{}-{n}", std::process::id());
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                "220",
                "-y",
                "50",
                command,
            ])
            .status()
            .expect("tmux runs (installed by scripts/install-deps.sh)");
        assert!(status.success());
        Tmux { socket }
    }

    /// Types `keys` and Enter.
    pub fn keys(&self, keys: &str) {
        self.typed(keys);
        self.press("Enter");
    }

    /// Types `text` without Enter.
    pub fn typed(&self, text: &str) {
        if !text.is_empty() {
            let ok = Command::new("tmux")
                .args(["-L", &self.socket, "send-keys", "-l", text])
                .status()
                .expect("tmux");
            assert!(ok.success());
        }
    }

    /// Presses one key, by tmux's name for it (e.g. `C-c`).
    pub fn press(&self, key: &str) {
        let ok = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", key])
            .status()
            .expect("tmux");
        assert!(ok.success());
    }

    /// The screen and what scrolled off it.
    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-J", "-S", "-"])
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`; returns the screen.
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_for_n(text, 1)
    }

    /// Waits until the screen shows `text` `n` times; returns the screen.
    pub fn wait_for_n(&self, text: &str, n: usize) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if screen.matches(text).count() >= n {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {text:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last line with anything on it: where the cursor is.
    pub fn last_line(&self) -> String {
        self.screen()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the line with the cursor reads `line` (trailing spaces
    /// aside).
    pub fn wait_for_prompt(&self, line: &str) {
        let deadline = Instant::now() + WAIT;
        while self.last_line().trim_end() != line.trim_end() {
            assert!(
                Instant::now() < deadline,
                "the last line never read {line:?}:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the command in the window has exited.
    pub fn wait_ended(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let alive = Command::new("tmux")
                .args(["-L", &self.socket, "has-session"])
                .stderr(Stdio::null())
                .status()
                .expect("tmux")
                .success();
            if !alive {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still running:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Tmux {
    /// Runs a tmux command against this server.
    pub fn tmux(&self, args: &[&str]) {
        let ok = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .status()
            .expect("tmux");
        assert!(ok.success(), "tmux {args:?}");
    }

    /// The visible screen only (not what scrolled off).
    pub fn visible(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// Alice's node in tmux, and the address others dial.
fn alice() -> (Tmux, String) {
    let tmux = Tmux::start(&format!(
        "{BIN} --ui line --ephemeral --no-mdns --nick alice --listen /ip4/127.0.0.1/tcp/0 2>/dev/null"
    ));
    let (_, addr) = dial_hint(&tmux);
    (tmux, addr)
}

/// Waits for the dial hint; returns the screen and the address in it. The
/// hint is a command that works as pasted: this binary's path.
fn dial_hint(tmux: &Tmux) -> (String, String) {
    let hint = format!("{BIN} --dial ");
    let screen = tmux.wait_for(&hint);
    let addr = screen
        .lines()
        .find_map(|l| l.trim().strip_prefix(&hint))
        .expect("dial line")
        .trim()
        .to_owned();
    (screen, addr)
}

/// Bob's node in `--json` mode, in `room` (encrypted with `passphrase`),
/// dialing Alice; returned once it knows her nick.
fn bob(addr: &str, room: &str, passphrase: Option<&str>) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(["--ephemeral", "--no-mdns", "--json", "--nick", "bob"])
        .args(["--room", room, "--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--dial", addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if let Some(pass) = passphrase {
        cmd.env("P2P_CHAT_PASSPHRASE", pass);
    }
    let mut bob = Proc::from_child(cmd.spawn().expect("binary starts"));
    bob.event("peer_nick", |v| v["nick"] == "alice");
    bob
}

#[test]
fn join_asks_for_the_passphrase_without_echoing_it() {
    let (tmux, addr) = alice();
    // Asked for only when the user says the room is encrypted; an empty
    // answer cancels.
    tmux.keys("/join vault --encrypted");
    let question = "passphrase for #vault (hidden, empty line cancels):";
    tmux.wait_for(question);
    tmux.keys("");
    tmux.wait_for("not joined #vault: cancelled");
    tmux.keys("/join vault --encrypted");
    // Typed once the question is asked again, with echo off.
    tmux.wait_for_n(question, 2);
    tmux.keys("typed but never shown");
    let screen = tmux.wait_for("current room: #vault");
    assert!(!screen.contains("typed but never shown"), "{screen}");

    // A member who has the same passphrase reads and is read.
    let mut bob = bob(&addr, "vault", Some("typed but never shown"));
    bob.send("hello through the vault");
    tmux.wait_for("#vault <bob> hello through the vault");
    tmux.keys("hi bob");
    bob.event("message", |v| v["text"] == "hi bob" && v["room"] == "vault");
    tmux.keys("/rooms");
    tmux.wait_for("#vault");
    tmux.wait_for("encrypted, 1 member(s)");
    tmux.keys("/quit");
}

/// The old traps: a plain `/join` made the next chat line the passphrase,
/// and a chat line `quit` ended the program.
#[test]
fn a_plain_join_asks_nothing_and_quit_is_text() {
    let (tmux, addr) = alice();
    let mut bob = bob(&addr, "plans", None);
    tmux.keys("/join plans");
    tmux.wait_for("current room: #plans");
    // The next line is a message, not a passphrase.
    tmux.keys("my first words");
    bob.event("message", |v| {
        v["text"] == "my first words" && v["room"] == "plans"
    });
    tmux.keys("quit");
    bob.event("message", |v| v["text"] == "quit" && v["room"] == "plans");
    tmux.keys("/rooms");
    let screen = tmux.wait_for("#plans ");
    let plans = screen
        .lines()
        .find(|l| l.contains("#plans ") && l.contains("member(s)"))
        .expect("the room's line");
    assert!(!plans.contains("encrypted"), "stays plain: {plans}");
    bob.send("still here?");
    tmux.wait_for("#plans <bob> still here?");
    tmux.keys("/quit");
}

/// Ctrl+C while the hidden passphrase prompt has echo off, and Ctrl+C at
/// the line editor's prompt (raw mode): the program stops and the shell
/// gets its terminal back as it was.
#[test]
fn ctrl_c_at_either_prompt_leaves_the_terminal_as_it_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tmux = Tmux::start("bash --norc --noprofile");
    // Round 3 is SIGTERM (a service manager, `kill`) while the editor has
    // the terminal in raw mode.
    for (round, hidden, sigterm) in [(1, true, false), (2, false, false), (3, false, true)] {
        let before = dir.path().join(format!("before{round}"));
        let after = dir.path().join(format!("after{round}"));
        tmux.keys(&format!(
            "stty -a > {}; {BIN} --ui line --ephemeral --no-mdns --nick alice{round} --no-http \
             --listen /ip4/127.0.0.1/tcp/0 2>/dev/null; stty -a > {}; echo exited-{round}-with-$?",
            before.display(),
            after.display()
        ));
        tmux.wait_for_n("others join with:", round);
        if hidden {
            tmux.keys("/join vault --encrypted");
            tmux.wait_for("passphrase for #vault (hidden, empty line cancels):");
        } else {
            tmux.wait_for_prompt("#lobby>");
            tmux.typed("half a line");
        }
        if sigterm {
            let killed = Command::new("pkill")
                .args(["-TERM", "-f", "--", &format!("--nick alice{round} ")])
                .status()
                .expect("pkill");
            assert!(killed.success());
        } else {
            tmux.press("C-c");
        }
        tmux.wait_for(&format!("exited-{round}-with-0"));
        let (before, after) = (
            std::fs::read_to_string(before).expect("stty before"),
            std::fs::read_to_string(after).expect("stty after"),
        );
        assert!(before.contains(" echo "), "{before}");
        assert_eq!(before, after, "the terminal's settings are as before");
    }
}

/// Lines from the network are printed above the prompt while a person
/// types: the line being typed stays whole, on the prompt, and is sent
/// whole.
#[test]
fn incoming_messages_print_above_the_line_being_typed() {
    let (tmux, addr) = alice();
    let mut bob = bob(&addr, "lobby", None);
    tmux.wait_for_prompt("#lobby>");
    let typed = "I am typing a long sentence here, slowly, while bob talks";
    let mut words = typed.split_inclusive(' ');
    for n in 0..50 {
        bob.send(&format!("message {n:02} from bob"));
        if let Some(word) = words.next() {
            tmux.typed(word);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for word in words {
        tmux.typed(word);
    }
    let screen = tmux.wait_for("<bob> message 49 from bob");
    for n in 0..50 {
        let line = format!("#lobby <bob> message {n:02} from bob");
        assert!(
            screen.lines().any(|l| l.ends_with(&line)),
            "{line:?} on a line of its own:\n{screen}"
        );
    }
    tmux.wait_for_prompt(&format!("#lobby> {typed}"));
    tmux.press("Enter");
    bob.event("message", |v| v["text"] == typed);
    tmux.keys("/quit");
}

/// Input history survives a restart without a passphrase or a line sent to
/// an encrypted room; Up and Ctrl+R find it; Tab completes commands and
/// rooms; Ctrl+D on an empty line quits.
#[test]
fn input_history_keeps_no_secrets_and_tab_completes() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let cmd = format!(
        "{BIN} --ui line --data-dir {} --no-mdns --no-http --nick alice \
         --listen /ip4/127.0.0.1/tcp/0 2>/dev/null",
        dir.path().display()
    );
    let tmux = Tmux::start(&cmd);
    tmux.wait_for_prompt("#lobby>");
    tmux.typed("/jo");
    tmux.press("Tab");
    tmux.wait_for_prompt("#lobby> /join");
    tmux.keys("dev");
    tmux.wait_for_prompt("#dev>");
    tmux.keys("plain words");
    tmux.wait_for("(pending: no peer in #dev yet; sent when one joins) plain words");
    tmux.wait_for_prompt("#dev>");
    tmux.keys("/join vault hunter2");
    tmux.wait_for_prompt("#vault>");
    tmux.keys("vault words");
    tmux.wait_for("sent when one joins) vault words");
    tmux.wait_for_prompt("#vault>");
    tmux.typed("/sw");
    tmux.press("Tab");
    tmux.typed("d");
    tmux.press("Tab");
    tmux.wait_for_prompt("#vault> /switch dev");
    tmux.press("Enter");
    tmux.wait_for_prompt("#dev>");
    tmux.press("C-d");
    tmux.wait_ended();

    let file = dir.path().join("input_history");
    let kept = std::fs::read_to_string(&file).expect("input history");
    for line in ["/join dev", "plain words", "/switch dev"] {
        assert!(kept.lines().any(|l| l == line), "{line:?} kept:\n{kept}");
    }
    assert!(!kept.contains("hunter2"), "no passphrase:\n{kept}");
    assert!(
        !kept.contains("vault words"),
        "no encrypted room's text:\n{kept}"
    );
    let mode = std::fs::metadata(&file).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the user reads it");

    let tmux = Tmux::start(&cmd);
    tmux.wait_for_prompt("#lobby>");
    tmux.press("Up");
    tmux.wait_for_prompt("#lobby> /switch dev");
    tmux.press("C-u");
    tmux.press("C-r");
    tmux.typed("plain");
    tmux.wait_for_prompt("(reverse-i-search)`plain': plain words");
    tmux.press("Enter");
    tmux.wait_for_prompt("#lobby>");
    tmux.wait_for("#lobby yet; sent when one joins) plain words");
    tmux.keys("/quit");
    tmux.wait_ended();
}

/// People are named by nick in every notice; the full peer id only in
/// `/whois`; a nick change reads old → new; /names, /me.
#[test]
fn notices_name_people_by_nick() {
    let (tmux, addr) = alice();
    let mut bob = bob(&addr, "lobby", None);
    let bob_id = Proc::peer_id(&bob.address());
    tmux.wait_for("* bob connected");
    bob.send("/nick bobby");
    tmux.wait_for("* bob → bobby");
    bob.send("/me waves");
    tmux.wait_for("#lobby * bobby waves");
    tmux.wait_for_prompt("#lobby>");
    tmux.keys("/msg bobby just between us");
    tmux.wait_for("✓ delivered to bobby");
    tmux.keys("/names");
    tmux.wait_for("#lobby: alice (you), bobby");
    tmux.keys("/whois bobby");
    tmux.wait_for(&format!("bobby: peer id {bob_id}, connected ("));
    bob.kill();
    let screen = tmux.wait_for("* bobby disconnected");
    for line in screen
        .lines()
        .filter(|l| !l.contains("/whois") && !l.contains("peer id"))
    {
        assert!(!line.contains(&bob_id), "a full peer id in {line:?}");
    }
    tmux.keys("/quit");
}

/// Two members with different passphrases are both told, naming each
/// other and both key ids; `/rooms` and `/history` count what was not read.
#[test]
fn a_wrong_passphrase_is_told_on_both_sides_with_the_key_ids() {
    let (tmux, addr) = alice();
    tmux.keys("/join plans first passphrase");
    tmux.wait_for_prompt("#plans>");
    let mut bob = bob(&addr, "plans", Some("second passphrase"));
    tmux.wait_for("* bob connected");
    tmux.keys("can you read me?");
    let told = bob.event("unreadable", |v| v["room"] == "plans" && v["count"] == 1);
    let (alices, bobs) = (
        told["theirs"].as_str().expect("alice's key id").to_owned(),
        told["ours"].as_str().expect("bob's key id").to_owned(),
    );
    assert_ne!(alices, bobs);
    bob.send("and you me?");
    tmux.wait_for(&format!(
        "* 1 message(s) from bob in #plans use key {bobs}, yours is {alices}: \
         one of you has another passphrase"
    ));
    tmux.keys("/rooms");
    tmux.wait_for("0 pending, 1 unreadable");
    tmux.keys("/history");
    tmux.wait_for("(1 message(s) in #plans could not be read");
    let screen = tmux.screen();
    assert!(!screen.contains("and you me?"), "{screen}");
    tmux.keys("/quit");
}

/// The banner says where the HTTP API and the log are; logs stay out of
/// the chat; on start and on `/join` a room's last 20 messages are shown
/// after a line counting the earlier ones.
#[test]
fn the_banner_backlog_and_log_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().display().to_string();
    let first = Tmux::start(&format!(
        "RUST_LOG=debug {BIN} --ui line --data-dir {data} --no-mdns --nick alice --http 127.0.0.1:0 \
         --listen /ip4/127.0.0.1/tcp/0"
    ));
    let (screen, addr) = dial_hint(&first);
    assert!(
        screen.contains("  HTTP API http://127.0.0.1:")
            && screen.contains("(no token: loopback only)"),
        "{screen}"
    );
    let mut bob = bob(&addr, "lobby", None);
    for n in 0..25 {
        bob.send(&format!("old message {n:02}"));
        // Distinct times: the store orders messages of one millisecond by
        // their hash, and "the last 20" should be the last 20 sent.
        std::thread::sleep(Duration::from_millis(3));
    }
    first.wait_for("<bob> old message 24");
    first.keys("/status");
    let log = dir.path().join("p2p-chat.log");
    first.wait_for(&format!("log: {}", log.display()));
    let screen = first.screen();
    for level in [" DEBUG ", " INFO ", " WARN "] {
        assert!(
            !screen.contains(level),
            "no log line in the chat:\n{screen}"
        );
    }
    let logged = std::fs::read_to_string(&log).expect("log file");
    assert!(logged.contains(" DEBUG "), "RUST_LOG still works");
    let mode = std::fs::metadata(&log).expect("log").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    first.keys("/quit");
    first.wait_ended();
    bob.kill();

    let again = Tmux::start(&format!(
        "{BIN} --ui line --data-dir {data} --no-mdns --no-http --nick alice --room dev \
         --listen /ip4/127.0.0.1/tcp/0 2>/dev/null"
    ));
    again.wait_for_prompt("#dev>");
    again.keys("/join lobby");
    let screen = again.wait_for("— 5 earlier message(s) in #lobby, /history N for more —");
    let mut shown: Vec<&str> = screen
        .lines()
        .filter_map(|l| l.split("<bob> old message ").nth(1))
        .collect();
    shown.sort();
    let want: Vec<String> = (5..25).map(|n| format!("{n:02}")).collect();
    assert_eq!(shown, want, "{screen}");
    again.keys("/quit");
}

/// A member who joined without the passphrase is told the room is
/// encrypted and how to join it, as soon as a sealed message arrives.
#[test]
fn a_plain_join_of_an_encrypted_room_says_how_to_read_it() {
    let (tmux, addr) = alice();
    tmux.keys("/join vault");
    tmux.wait_for_prompt("#vault>");
    let mut bob = bob(&addr, "vault", Some("the passphrase"));
    tmux.wait_for("* bob connected");
    bob.send("sealed words");
    tmux.wait_for("* 1 message(s) from bob in #vault are encrypted (key ");
    tmux.wait_for("and you joined without a passphrase: /join vault --encrypted to read them");
    assert!(!tmux.screen().contains("sealed words"));
    tmux.keys("/quit");
}

#[test]
fn an_invite_ticket_shown_as_a_qr_code_is_joined_with_slash_join() {
    let (alice, _) = alice();
    alice.keys("/invite --qr");
    let screen = alice.wait_for("invite to #lobby");
    assert!(
        screen.contains('▀') || screen.contains('▄'),
        "a QR code drawn in half blocks:\n{screen}"
    );
    let ticket = screen
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("p2pchat1"))
        .expect("the ticket on a line of its own")
        .to_owned();
    let bob = Tmux::start(&format!(
        "{BIN} --ui line --ephemeral --no-mdns --nick bob --room elsewhere --listen /ip4/127.0.0.1/tcp/0 2>/dev/null"
    ));
    bob.wait_for_prompt("#elsewhere> ");
    bob.keys("/join p2pchat1garbled");
    bob.wait_for("not a valid invite ticket");
    bob.keys(&format!("/join {ticket}"));
    bob.wait_for("joined #lobby");
    alice.wait_for("* bob connected");
    bob.wait_for_prompt("#lobby> ");
    bob.keys("hello by ticket");
    alice.wait_for("<bob> hello by ticket");
}
