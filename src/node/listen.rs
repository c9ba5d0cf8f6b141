//! Binding the listen addresses at start, so a bad or taken address fails
//! the start with its name, and the default port falls back to a free one.

use libp2p::{Multiaddr, Swarm, multiaddr::Protocol};

use super::{DEFAULT_PORT, Error, Options, behaviour::Behaviour, default_listen};

pub(super) fn listen(swarm: &mut Swarm<Behaviour>, cfg: &Options) -> Result<(), Error> {
    if !cfg.listen.is_empty() {
        for addr in &cfg.listen {
            listen_on(swarm, addr).map_err(|reason| Error::Listen {
                addr: addr.clone(),
                reason,
            })?;
        }
        return Ok(());
    }
    // Defaults: the well-known port, or any free port if it is taken.
    for addr in default_listen(DEFAULT_PORT) {
        if let Err(e) = listen_on(swarm, &addr) {
            let fallback = with_port_zero(&addr);
            tracing::warn!(%addr, reason = %e, %fallback, "default port taken");
            listen_on(swarm, &fallback).map_err(|reason| Error::Listen {
                addr: fallback,
                reason,
            })?;
        }
    }
    Ok(())
}

/// Binds one listen address. libp2p's TCP listener sets SO_REUSEPORT, so a
/// second node on a taken port would silently share it; a plain probe bind
/// first turns that into "address already in use".
fn listen_on(swarm: &mut Swarm<Behaviour>, addr: &Multiaddr) -> Result<(), String> {
    let mut ip = None;
    let mut tcp_port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(port) if port != 0 => tcp_port = Some(port),
            _ => {}
        }
    }
    if let (Some(ip), Some(port)) = (ip, tcp_port) {
        std::net::TcpListener::bind((ip, port)).map_err(|e| io_reason(&e))?;
    }
    swarm
        .listen_on(addr.clone())
        .map(|_| ())
        .map_err(|e| listen_reason(&e))
}

fn io_reason(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        "address already in use".into()
    } else {
        e.to_string()
    }
}

fn listen_reason(e: &libp2p::TransportError<std::io::Error>) -> String {
    match e {
        libp2p::TransportError::MultiaddrNotSupported(_) => "transport not supported".into(),
        libp2p::TransportError::Other(io) => io_reason(io),
    }
}

fn with_port_zero(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .map(|p| match p {
            Protocol::Tcp(_) => Protocol::Tcp(0),
            Protocol::Udp(_) => Protocol::Udp(0),
            other => other,
        })
        .collect()
}
