//! Two nodes in one process: each sends the other a room message and a
//! direct message, prints what it received, and the program exits 0.
//!
//! `cargo run --example two_peer_chat`

use std::time::Duration;

use p2p_chat::{Config, Event, Node, node::Events};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = Config::for_tests();
    cfg.nick = Some("alice".into());
    let (alice, mut alice_events, _) = Node::spawn(&cfg).await?;
    let alice_addr = wait(&mut alice_events, |e| match e {
        Event::Listening { address } => Some(address.clone()),
        _ => None,
    })
    .await?;

    cfg.nick = Some("bob".into());
    cfg.dial = vec![alice_addr.parse()?];
    let (bob, mut bob_events, _) = Node::spawn(&cfg).await?;
    let bob_id = bob.peer_id().to_string();
    wait(&mut alice_events, |e| match e {
        Event::PeerNick { peer, nick } if *peer == bob_id => Some(nick.clone()),
        _ => None,
    })
    .await?;

    alice.publish("lobby", "hi bob, this is the lobby").await?;
    bob.publish("lobby", "hi alice, lobby here too").await?;
    print_next_text("bob", &mut bob_events).await?;
    print_next_text("alice", &mut alice_events).await?;

    let receipt = alice.send_direct("bob", "just between us").await?;
    println!("alice: direct message {} delivered to bob", receipt.id);
    print_next_text("bob", &mut bob_events).await?;
    let receipt = bob
        .send_direct(&alice.peer_id().to_string(), "agreed")
        .await?;
    println!("bob: direct message {} delivered to alice", receipt.id);
    print_next_text("alice", &mut alice_events).await?;

    alice.shutdown().await;
    bob.shutdown().await;
    Ok(())
}

async fn print_next_text(who: &str, events: &mut Events) -> Result<(), Box<dyn std::error::Error>> {
    let line = wait(events, |e| match e {
        Event::Message {
            room, nick, text, ..
        } => Some(format!("#{room} <{nick}> {text}")),
        Event::Direct { nick, text, .. } => Some(format!("[direct] <{nick}> {text}")),
        _ => None,
    })
    .await?;
    println!("{who} received: {line}");
    Ok(())
}

async fn wait<T>(
    events: &mut Events,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> Result<T, Box<dyn std::error::Error>> {
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Some(v) = pick(&events.recv().await?) {
                return Ok::<T, tokio::sync::broadcast::error::RecvError>(v);
            }
        }
    });
    Ok(found.await??)
}
