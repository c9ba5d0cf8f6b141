//! Separate hosts on one LAN (network namespaces on a bridge): what needs
//! real interfaces, such as mDNS discovery.

use std::process::Stdio;

use crate::{cli::Proc, lab::Lab};

const BIN: &str = env!("CARGO_BIN_EXE_p2p-chat");

#[test]
fn mdns_finds_peers_on_the_lan_with_no_dial_flag() {
    let lab = Lab::new(2);
    let start = |i: usize, nick: &str| {
        let child = lab
            .command(i, BIN)
            .args([
                "--ephemeral",
                "--json",
                "--nick",
                nick,
                "--listen",
                "/ip4/0.0.0.0/tcp/4001",
            ])
            .env("P2P_CHAT_HEARTBEAT_MS", "200")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("binary starts in the namespace");
        Proc::from_child(child)
    };
    let mut a = start(0, "alice");
    let mut b = start(1, "bob");
    let b_addr = b.event("listening", |v| {
        v["address"]
            .as_str()
            .is_some_and(|s| s.contains(&Lab::ip(1)))
    });
    let b_id = Proc::peer_id(b_addr["address"].as_str().expect("address"));
    a.event("peer_connected", |v| v["peer"] == b_id.as_str());
    b.send("found you on the LAN");
    a.event("message", |v| {
        v["text"] == "found you on the LAN" && v["nick"] == "bob"
    });
}
