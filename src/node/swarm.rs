//! Builds the swarm: TCP (Noise + Yamux) and QUIC, DNS names, circuits
//! through relays, our behaviour,
//! with bandwidth and gossipsub metrics registered in the node's registry.

use std::time::Duration;

use libp2p::{Swarm, SwarmBuilder, identity::Keypair, noise, tcp, yamux};
use prometheus_client::registry::Registry;

use super::Options;
use super::{Error, behaviour::Behaviour};

/// How long a connection with no protocol using it stays open. Longer than
/// libp2p's 10 s so peers that only exchange direct messages stay connected;
/// `trim.rs` closes unused connections when there are too many.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) fn build(
    keypair: Keypair,
    cfg: &Options,
    registry: &mut Registry,
) -> Result<Swarm<Behaviour>, Error> {
    let transport = |e: &dyn std::fmt::Display| Error::Transport(e.to_string());
    let mut behaviour_error = None;
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| transport(&e))?
        .with_quic()
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
