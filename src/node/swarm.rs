//! Builds the swarm: TCP (Noise + Yamux) and QUIC, DNS names, circuits
//! through relays, our behaviour,
//! with bandwidth and gossipsub metrics registered in the node's registry.

use std::time::Duration;

use libp2p::{
    PeerId, Swarm, SwarmBuilder, Transport,
    core::{muxing::StreamMuxerBox, transport::Boxed, upgrade},
    identity::Keypair,
    noise, tcp, yamux,
};
use prometheus_client::registry::Registry;

use super::Options;
use super::{Error, behaviour::Behaviour};

/// How long a connection with no protocol using it stays open. Longer than
/// libp2p's 10 s so peers that only exchange direct messages stay connected;
/// `trim.rs` closes unused connections when there are too many.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a TCP dial may take, connect and handshakes together. Most
/// NATs drop what comes in unasked without a word, and the kernel would
/// retry a SYN for two minutes: an AutoNAT dial-back must fail well inside
/// the 10 s its client waits, or the address is never judged. QUIC's own
/// handshake timeout is 5 s too.
const TCP_DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// TCP with Noise and Yamux, as libp2p's builder makes it, with a
/// [`TCP_DIAL_TIMEOUT`].
fn tcp_transport(
    key: &Keypair,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(
        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .upgrade(upgrade::Version::V1Lazy)
            .authenticate(noise::Config::new(key)?)
            .multiplex(yamux::Config::default())
            .timeout(TCP_DIAL_TIMEOUT)
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
    )
}

pub(crate) fn build(
    keypair: Keypair,
    cfg: &Options,
    registry: &mut Registry,
) -> Result<Swarm<Behaviour>, Error> {
    let transport = |e: &dyn std::fmt::Display| Error::Transport(e.to_string());
    let mut behaviour_error = None;
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_quic()
        .with_other_transport(tcp_transport)
        .map_err(|e| transport(&e))?
        .with_dns()
        .map_err(|e| transport(&format!("reading the DNS configuration: {e}")))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| transport(&e))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(
            |key, relay| match Behaviour::new(key, relay, cfg, registry) {
                Ok(b) => Ok(b),
                Err(e) => {
                    let msg = e.to_string();
                    behaviour_error = Some(e);
                    Err(msg.into())
                }
            },
        );
    let swarm = match swarm {
        Ok(builder) => builder,
        Err(e) => return Err(behaviour_error.unwrap_or_else(|| transport(&e))),
    };
    Ok(swarm
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build())
}
