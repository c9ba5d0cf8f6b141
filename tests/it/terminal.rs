//! The line front end in a real terminal (tmux): what a person sees.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{cli::Proc, support::WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_p2p-chat");

/// A tmux server of its own, with one window running a command.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let socket = format!("p2p-chat-test-{}", std::process::id());
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

    fn keys(&self, keys: &str) {
        let ok = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-l", keys])
            .status()
            .expect("tmux");
        assert!(ok.success());
        let ok = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "Enter"])
            .status()
            .expect("tmux");
        assert!(ok.success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-J"])
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {text:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
fn join_asks_for_the_passphrase_without_echoing_it() {
    let tmux = Tmux::start(&format!(
        "{BIN} --ephemeral --no-mdns --nick alice --listen /ip4/127.0.0.1/tcp/0 2>/dev/null"
    ));
    let screen = tmux.wait_for("others join with: p2p-chat --dial ");
    let addr = screen
        .lines()
        .find_map(|l| l.trim().strip_prefix("others join with: p2p-chat --dial "))
        .expect("dial line")
        .trim()
        .to_owned();
    tmux.keys("/join vault");
    tmux.wait_for("passphrase for #vault (Enter for an open room):");
    tmux.keys("typed but never shown");
    let screen = tmux.wait_for("current room: #vault");
    assert!(!screen.contains("typed but never shown"), "{screen}");

    // A member who has the same passphrase reads and is read.
    let child = Command::new(BIN)
        .args([
            "--ephemeral",
            "--no-mdns",
            "--json",
            "--nick",
            "bob",
            "--room",
            "vault",
        ])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--dial", &addr])
        .env("P2P_CHAT_PASSPHRASE", "typed but never shown")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut bob = Proc::from_child(child);
    bob.event("peer_nick", |v| v["nick"] == "alice");
    bob.send("hello through the vault");
    tmux.wait_for("#vault <bob> hello through the vault");
    tmux.keys("hi bob");
    bob.event("message", |v| v["text"] == "hi bob" && v["room"] == "vault");
    tmux.keys("/rooms");
    tmux.wait_for("#vault");
    tmux.wait_for("encrypted, 1 member(s)");
    tmux.keys("/quit");
}
