//! Configuration: command-line flags, each also read from a `P2P_CHAT_*`
//! environment variable, with embedded defaults so a node runs with none.

use std::{path::PathBuf, time::Duration};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum, parser::ValueSource};
use libp2p::{Multiaddr, multiaddr::Protocol};
use zeroize::Zeroizing;

pub use crate::{
    crypto::Secret,
    node::{DEFAULT_PORT, RelayLimits, Retention},
    ticket::Ticket,
};

/// Default room.
pub const DEFAULT_ROOM: &str = "lobby";
/// Default gossipsub heartbeat, ms: a room of two has its mesh within about
/// a second.
pub const DEFAULT_HEARTBEAT_MS: u64 = 700;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// How a person at a terminal is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UiMode {
    /// One line per event, a line editor below: pipes, screen readers,
    /// scripts, terminals without full-screen support.
    Line,
    /// Full screen: rooms, messages, members, a status line and input.
    Tui,
}

/// Everything a node and its front ends are started with.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-chat",
    version,
    about = "A decentralized chat node on libp2p"
)]
pub struct Config {
    /// Address to listen on, a TCP or QUIC multiaddr (repeatable). Default:
    /// TCP and QUIC on all interfaces, port 4001, or any free port if taken.
    #[arg(long, env = "P2P_CHAT_LISTEN", value_delimiter = ',', value_parser = parse_listen)]
    pub listen: Vec<Multiaddr>,

    /// Peer to connect to and keep connected (repeatable); `/p2p/ID` optional.
    #[arg(long, env = "P2P_CHAT_DIAL", value_delimiter = ',', value_parser = parse_dial)]
    pub dial: Vec<Multiaddr>,

    /// Kademlia bootstrap peer (repeatable): nodes that know one common peer
    /// find each other through it.
    #[arg(long, env = "P2P_CHAT_BOOTSTRAP", value_delimiter = ',', value_parser = parse_dial)]
    pub bootstrap: Vec<Multiaddr>,

    /// Address where others reach this node (repeatable): a public IP or
    /// DNS name with TCP or QUIC, for operators who know it (a public host,
    /// a forwarded port). Told to peers as this node's; addresses peers
    /// merely observe are not.
    #[arg(long, env = "P2P_CHAT_EXTERNAL", value_delimiter = ',', value_parser = parse_external)]
    pub external: Vec<Multiaddr>,

    /// Circuit relays: the ones to use, and serving as one.
    #[command(flatten)]
    pub relay: RelayConfig,

    /// SSH access to this node's chat.
    #[command(flatten)]
    pub ssh: SshConfig,

    /// An invite ticket (`p2pchat1…`, from `/invite` or `p2p-chat invite`):
    /// dial the inviting node and join its room at start. An encrypted
    /// room's passphrase comes from --passphrase-file or P2P_CHAT_PASSPHRASE.
    #[arg(long, env = "P2P_CHAT_JOIN", value_parser = parse_ticket, conflicts_with = "room")]
    pub join: Option<Ticket>,

    /// Room to join at start.
    #[arg(long, env = "P2P_CHAT_ROOM", default_value = DEFAULT_ROOM, value_parser = parse_room)]
    pub room: String,

    /// File whose first line is the passphrase of --room (an encrypted room).
    #[arg(long, env = "P2P_CHAT_PASSPHRASE_FILE", conflicts_with = "passphrase")]
    pub passphrase_file: Option<PathBuf>,

    /// Passphrase of --room, from the environment variable only: on the
    /// command line every user of the machine could read it.
    #[arg(long, env = "P2P_CHAT_PASSPHRASE", hide_env_values = true, hide = true, value_parser = parse_secret)]
    pub passphrase: Option<Secret>,

    /// Name shown to others. Default: the login name, else a short peer id.
    #[arg(long, env = "P2P_CHAT_NICK", value_parser = parse_nick)]
    pub nick: Option<String>,

    /// Where the identity key lives. Default: the platform data dir
    /// (`$XDG_DATA_HOME/p2p-chat`).
    #[arg(long, env = "P2P_CHAT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Run with a fresh in-memory identity; write nothing to disk.
    #[arg(long, env = "P2P_CHAT_EPHEMERAL", conflicts_with = "data_dir")]
    pub ephemeral: bool,

    /// Turn off LAN discovery by mDNS.
    #[arg(long, env = "P2P_CHAT_NO_MDNS")]
    pub no_mdns: bool,

    /// Print one JSON object per event on stdout, for scripts.
    #[arg(long, env = "P2P_CHAT_JSON")]
    pub json: bool,

    /// The terminal front end: `tui` (full screen; the default when stdin
    /// and stdout are a terminal) or `line` (one line per event). Output
    /// that is not a terminal is always lines.
    #[arg(long, env = "P2P_CHAT_UI", value_enum)]
    pub ui: Option<UiMode>,

    /// Run without reading stdin, until SIGINT or SIGTERM (for containers).
    #[arg(long, env = "P2P_CHAT_HEADLESS")]
    pub headless: bool,

    /// Log format on stderr.
    #[arg(long, env = "P2P_CHAT_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Gossipsub heartbeat in milliseconds.
    #[arg(
        long,
        env = "P2P_CHAT_HEARTBEAT_MS",
        default_value_t = DEFAULT_HEARTBEAT_MS,
        hide = true
    )]
    pub heartbeat_ms: u64,

    /// Recent messages kept in memory per room (older ones are read from
    /// the history store).
    #[arg(long, env = "P2P_CHAT_HISTORY_RING", default_value_t = crate::limits::RING_CAP,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub history_ring: usize,

    /// How much history to keep per room: a count (`10000`), an age (`30d`,
    /// `12h`, `90m`), or both (`10000,30d`). Default: everything.
    #[arg(long, env = "P2P_CHAT_HISTORY_RETENTION", value_parser = parse_retention)]
    pub history_retention: Option<Retention>,

    /// Seconds between history reconciliations with the peers of each room
    /// (also done whenever a peer of a room connects).
    #[arg(long, env = "P2P_CHAT_SYNC_INTERVAL", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub sync_interval: u64,

    /// Seconds to wait for a direct message's receipt.
    #[arg(long, env = "P2P_CHAT_DM_TIMEOUT", default_value_t = 10)]
    pub dm_timeout: u64,

    /// The HTTP sidecar.
    #[command(flatten)]
    pub http: crate::http::Config,

    /// What to do instead of running a node.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands: tools that do not start a node.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Exit 0 if a running node's /health answers UP within 2 s, else 1 with
    /// the reason (for a container HEALTHCHECK).
    Healthcheck {
        /// URL of /health. Default: the --http address (loopback if it is
        /// 0.0.0.0 or ::).
        #[arg(long, env = "P2P_CHAT_HEALTHCHECK_URL")]
        url: Option<String>,
    },
    /// Print an invite ticket for a room of the node running here (asked
    /// over its HTTP sidecar, with its token if one is set); `--qr` also
    /// draws it as a QR code.
    Invite {
        /// The room; default: --room (lobby).
        room: Option<String>,
        /// The sidecar's URL. Default: the --http address (loopback if it
        /// is 0.0.0.0 or ::).
        #[arg(long)]
        url: Option<String>,
        /// Also draw the ticket as a QR code.
        #[arg(long)]
        qr: bool,
    },
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    if s.is_empty() {
        return Err("the passphrase is empty".into());
    }
    Ok(Secret::new(s))
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The passphrase file cannot be read.
    #[error("passphrase file {path}: {reason}")]
    PassphraseFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl Config {
    /// Parses the command line and environment, exiting with status 2 and a
    /// usage message on bad input (as clap does), and refusing a passphrase
    /// given on the command line.
    pub fn from_env_and_args() -> Config {
        let matches = Config::command().get_matches();
        if matches.value_source("passphrase") == Some(ValueSource::CommandLine) {
            Config::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "a passphrase on the command line is visible to every user of this machine: \
                     put it in a file (--passphrase-file FILE) or in P2P_CHAT_PASSPHRASE",
                )
                .exit();
        }
        let mut cfg = Config::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if let Some(ticket) = &cfg.join {
            if ticket.encrypted && cfg.passphrase_file.is_none() && cfg.passphrase.is_none() {
                Config::command()
                    .error(
                        clap::error::ErrorKind::MissingRequiredArgument,
                        format!(
                            "--join: #{} is encrypted: give its passphrase with \
                             --passphrase-file FILE or P2P_CHAT_PASSPHRASE",
                            crate::sanitize::for_terminal(&ticket.room)
                        ),
                    )
                    .exit();
            }
            cfg.room = ticket.room.clone();
        }
        cfg
    }

    /// The data dir the node writes to: `--data-dir`, else the platform's;
    /// None with `--ephemeral` (nothing on disk) or without a home.
    pub fn disk_dir(&self) -> Option<PathBuf> {
        if self.ephemeral {
            return None;
        }
        self.data_dir
            .clone()
            .or_else(crate::identity::default_data_dir)
    }

    /// Reads `--passphrase-file` into `passphrase`, if given.
    pub fn load_passphrase(&mut self) -> Result<(), ConfigError> {
        let Some(path) = &self.passphrase_file else {
            return Ok(());
        };
        let err = |reason: String| ConfigError::PassphraseFile {
            path: path.clone(),
            reason,
        };
        let content =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?);
        let line = content.lines().next().unwrap_or("").trim_end_matches('\r');
        if line.is_empty() {
            return Err(err("the first line is empty".into()));
        }
        self.passphrase = Some(Secret::new(line));
        Ok(())
    }

    /// A config for in-process tests: loopback TCP on a free port, fresh
    /// identity, no mDNS, a fast heartbeat.
    pub fn for_tests() -> Self {
        Config {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0"
                    .parse()
                    .expect("valid literal multiaddr"),
            ],
            dial: Vec::new(),
            bootstrap: Vec::new(),
            external: Vec::new(),
            join: None,
            relay: RelayConfig {
                relays: Vec::new(),
                relay_server: false,
                relay_max_reservations: RelayLimits::default().max_reservations,
                relay_max_circuits: RelayLimits::default().max_circuits,
                relay_max_circuits_per_peer: RelayLimits::default().max_circuits_per_peer,
                relay_circuit_bytes: RelayLimits::default().circuit_bytes,
                relay_circuit_secs: RelayLimits::default().circuit_duration.as_secs(),
            },
            ssh: SshConfig {
                ssh_addr: None,
                ssh_authorized_keys: None,
                ssh_max_sessions: 32,
                ssh_idle_secs: 1800,
            },
            room: DEFAULT_ROOM.into(),
            nick: None,
            passphrase_file: None,
            passphrase: None,
            data_dir: None,
            ephemeral: true,
            no_mdns: true,
            json: false,
            ui: None,
            headless: true,
            log_format: LogFormat::Text,
            heartbeat_ms: 200,
            history_ring: crate::limits::RING_CAP,
            history_retention: None,
            sync_interval: 30,
            dm_timeout: 3,
            http: crate::http::Config::for_tests(),
            command: None,
        }
    }
}

/// SSH access: people reach this node's chat with a standard SSH client.
#[derive(Debug, Clone, clap::Args)]
pub struct SshConfig {
    /// Serve SSH on this address (e.g. `0.0.0.0:2222`); off by default.
    /// Public-key authentication only, against `authorized_keys` in the
    /// data dir (or --ssh-authorized-keys).
    #[arg(long = "ssh", env = "P2P_CHAT_SSH")]
    pub ssh_addr: Option<std::net::SocketAddr>,

    /// The keys allowed in (OpenSSH `authorized_keys` format); each key's
    /// comment, up to any `@`, is its user's name. Default:
    /// `authorized_keys` in the data dir.
    #[arg(long = "ssh-authorized-keys", env = "P2P_CHAT_SSH_AUTHORIZED_KEYS")]
    pub ssh_authorized_keys: Option<PathBuf>,

    /// SSH sessions open at once; one more is refused.
    #[arg(long = "ssh-max-sessions", env = "P2P_CHAT_SSH_MAX_SESSIONS", default_value_t = 32,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub ssh_max_sessions: usize,

    /// Seconds an SSH connection may stay idle before it is closed.
    #[arg(long = "ssh-idle-secs", env = "P2P_CHAT_SSH_IDLE_SECS", default_value_t = 1800,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ssh_idle_secs: u64,
}

/// Circuit relay v2: reaching peers behind NAT through a public node.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayConfig {
    /// A relay to hold a reservation on, so peers reach this node through it
    /// (repeatable): its full address with `/p2p/PEER_ID`. Without one, a
    /// node that finds itself unreachable uses its dial and bootstrap peers
    /// that serve as relays.
    #[arg(long = "relay", env = "P2P_CHAT_RELAY", value_delimiter = ',', value_parser = parse_relay)]
    pub relays: Vec<Multiaddr>,

    /// Serve as a circuit relay for peers behind NAT (for public nodes).
    #[arg(long, env = "P2P_CHAT_RELAY_SERVER")]
    pub relay_server: bool,

    /// Relay server: reservations held at once.
    #[arg(long, env = "P2P_CHAT_RELAY_MAX_RESERVATIONS", default_value_t = RelayLimits::default().max_reservations,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub relay_max_reservations: usize,

    /// Relay server: circuits open at once.
    #[arg(long, env = "P2P_CHAT_RELAY_MAX_CIRCUITS", default_value_t = RelayLimits::default().max_circuits,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub relay_max_circuits: usize,

    /// Relay server: circuits open at once per peer.
    #[arg(long, env = "P2P_CHAT_RELAY_MAX_CIRCUITS_PER_PEER", default_value_t = RelayLimits::default().max_circuits_per_peer,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub relay_max_circuits_per_peer: usize,

    /// Relay server: bytes one circuit may carry, both ways together.
    #[arg(long, env = "P2P_CHAT_RELAY_CIRCUIT_BYTES", default_value_t = RelayLimits::default().circuit_bytes,
          value_parser = clap::value_parser!(u64).range(1024..))]
    pub relay_circuit_bytes: u64,

    /// Relay server: seconds one circuit may stay open (at most a day).
    #[arg(long, env = "P2P_CHAT_RELAY_CIRCUIT_SECS", default_value_t = RelayLimits::default().circuit_duration.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub relay_circuit_secs: u64,
}

impl RelayConfig {
    /// The server's limits, when it serves.
    fn limits(&self) -> Option<RelayLimits> {
        self.relay_server.then(|| RelayLimits {
            max_reservations: self.relay_max_reservations,
            max_circuits: self.relay_max_circuits,
            max_circuits_per_peer: self.relay_max_circuits_per_peer,
            circuit_bytes: self.relay_circuit_bytes,
            circuit_duration: Duration::from_secs(self.relay_circuit_secs),
        })
    }
}

/// The node's part: nothing of the terminal or the HTTP sidecar.
impl From<&Config> for crate::node::Options {
    fn from(cfg: &Config) -> Self {
        crate::node::Options {
            listen: cfg.listen.clone(),
            dial: cfg.dial.clone(),
            bootstrap: cfg.bootstrap.clone(),
            external: cfg.external.clone(),
            relays: cfg.relay.relays.clone(),
            relay_server: cfg.relay.limits(),
            room: cfg.room.clone(),
            nick: cfg.nick.clone(),
            passphrase: cfg.passphrase.clone(),
            data_dir: cfg.data_dir.clone(),
            ephemeral: cfg.ephemeral,
            mdns: !cfg.no_mdns,
            heartbeat: Duration::from_millis(cfg.heartbeat_ms.max(50)),
            dm_timeout: Duration::from_secs(cfg.dm_timeout.max(1)),
            history_ring: cfg.history_ring,
            history_retention: cfg.history_retention,
            sync_interval: Duration::from_secs(cfg.sync_interval.max(1)),
        }
    }
}

fn parse_retention(s: &str) -> Result<Retention, String> {
    let bad = || {
        format!(
            "invalid retention '{s}': give a count (10000), an age (30d, 12h, 90m) or both (10000,30d)"
        )
    };
    let mut r = Retention::default();
    for part in s.split(',').map(str::trim) {
        let unit = match part.chars().last() {
            Some('d') => Some(86_400),
            Some('h') => Some(3_600),
            Some('m') => Some(60),
            Some('s') => Some(1),
            _ => None,
        };
        match unit {
            Some(secs) => {
                let n: u64 = part[..part.len() - 1].parse().map_err(|_| bad())?;
                r.max_age = Some(Duration::from_secs(n.checked_mul(secs).ok_or_else(bad)?));
            }
            None => r.count = Some(part.parse().map_err(|_| bad())?),
        }
    }
    if r.count == Some(0) || r.max_age == Some(Duration::ZERO) {
        return Err(bad());
    }
    Ok(r)
}

const EXAMPLE: &str = "e.g. /ip4/127.0.0.1/tcp/4001 or /ip4/0.0.0.0/udp/4001/quic-v1";

/// Checked before anything is written: a bad nick or room leaves no data
/// dir or key behind.
fn parse_nick(s: &str) -> Result<String, String> {
    crate::limits::own_nick(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_room(s: &str) -> Result<String, String> {
    crate::limits::own_room(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_multiaddr(s: &str) -> Result<Multiaddr, String> {
    s.trim()
        .parse::<Multiaddr>()
        .map_err(|e| format!("invalid multiaddr '{s}': {e} ({EXAMPLE})"))
}

/// Is this a TCP or QUIC address we can listen on or dial?
fn transport_of(addr: &Multiaddr) -> Option<&'static str> {
    let mut it = addr.iter();
    match it.next()? {
        Protocol::Ip4(_)
        | Protocol::Ip6(_)
        | Protocol::Dns(_)
        | Protocol::Dns4(_)
        | Protocol::Dns6(_) => {}
        _ => return None,
    }
    match (it.next()?, it.next()) {
        (Protocol::Tcp(_), None | Some(Protocol::P2p(_))) => Some("tcp"),
        (Protocol::Udp(_), Some(Protocol::QuicV1)) => Some("quic"),
        _ => None,
    }
}

fn parse_listen(s: &str) -> Result<Multiaddr, String> {
    let addr = parse_multiaddr(s)?;
    let ip_first = matches!(
        addr.iter().next(),
        Some(Protocol::Ip4(_) | Protocol::Ip6(_))
    );
    let has_peer = addr.iter().any(|p| matches!(p, Protocol::P2p(_)));
    if !ip_first || has_peer || transport_of(&addr).is_none() {
        return Err(format!(
            "cannot listen on '{s}': give an IP with TCP or QUIC and no /p2p part ({EXAMPLE})"
        ));
    }
    Ok(addr)
}

fn parse_external(s: &str) -> Result<Multiaddr, String> {
    let addr = parse_multiaddr(s)?;
    let has_peer = addr.iter().any(|p| matches!(p, Protocol::P2p(_)));
    let any_port = addr
        .iter()
        .any(|p| matches!(p, Protocol::Tcp(0) | Protocol::Udp(0)));
    if transport_of(&addr).is_none() || has_peer || any_port {
        return Err(format!(
            "cannot use '{s}' as an external address: give a public IP or DNS name with a TCP \
             or QUIC port and no /p2p part (e.g. /ip4/203.0.113.7/tcp/4001 or \
             /dns4/chat.example.org/udp/4001/quic-v1)"
        ));
    }
    Ok(addr)
}

fn parse_ticket(s: &str) -> Result<Ticket, String> {
    s.parse::<Ticket>().map_err(|e| e.to_string())
}

fn parse_relay(s: &str) -> Result<Multiaddr, String> {
    let addr = parse_multiaddr(s)?;
    let peer = matches!(addr.iter().last(), Some(Protocol::P2p(_)));
    if transport_of(&addr).is_none() || !peer {
        return Err(format!(
            "cannot use '{s}' as a relay: give its IP or DNS name with TCP or QUIC and its \
             /p2p/PEER_ID (e.g. /ip4/203.0.113.7/tcp/4001/p2p/12D3Koo...)"
        ));
    }
    Ok(addr)
}

fn parse_dial(s: &str) -> Result<Multiaddr, String> {
    let addr = parse_multiaddr(s)?;
    if transport_of(&addr).is_none() {
        return Err(format!(
            "cannot dial '{s}': give an IP or DNS name with TCP or QUIC, optionally /p2p/PEER_ID \
             (e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo...)"
        ));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_accepts_tcp_and_quic_only() {
        assert!(parse_listen("/ip4/0.0.0.0/tcp/4001").is_ok());
        assert!(parse_listen("/ip6/::/udp/0/quic-v1").is_ok());
        assert!(parse_listen("hello").is_err());
        assert!(parse_listen("/ip4/999.1.1.1/tcp/1").is_err());
        assert!(parse_listen("/ip4/1.2.3.4/tcp/x").is_err());
        assert!(parse_listen("/ip4/1.2.3.4/udp/5").is_err());
        assert!(parse_listen("/dns4/example.org/tcp/1").is_err());
    }

    #[test]
    fn dial_accepts_peer_ids_and_dns() {
        assert!(parse_dial("/dns4/node1/tcp/4001").is_ok());
        assert!(
            parse_dial(
                "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
            )
            .is_ok()
        );
        assert!(parse_dial("/ip4/127.0.0.1/udp/4001/quic-v1").is_ok());
        let err = parse_dial("hello").unwrap_err();
        assert!(err.contains("invalid multiaddr 'hello'"), "{err}");
    }

    #[test]
    fn a_relay_needs_its_peer_id_and_the_server_its_limits() {
        let id = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        assert!(parse_relay(&format!("/ip4/203.0.113.7/tcp/4001/p2p/{id}")).is_ok());
        assert!(
            parse_relay(&format!(
                "/dns4/relay.example.org/udp/4001/quic-v1/p2p/{id}"
            ))
            .is_ok()
        );
        for bad in [
            "/ip4/203.0.113.7/tcp/4001".to_owned(),
            format!("/ip4/203.0.113.7/tcp/4001/p2p/{id}/p2p-circuit"),
            format!("/p2p/{id}"),
        ] {
            let err = parse_relay(&bad).unwrap_err();
            assert!(
                err.contains("as a relay") && err.contains("/p2p/PEER_ID"),
                "{err}"
            );
        }
        let cfg = Config::try_parse_from([
            "p2p-chat",
            "--relay-server",
            "--relay-circuit-bytes",
            "32768",
            "--relay-circuit-secs",
            "20",
        ])
        .expect("parses");
        let limits = crate::node::Options::from(&cfg)
            .relay_server
            .expect("serving");
        assert_eq!(limits.circuit_bytes, 32768);
        assert_eq!(limits.circuit_duration, Duration::from_secs(20));
        assert_eq!(limits.max_circuits, RelayLimits::default().max_circuits);
        let cfg = Config::try_parse_from(["p2p-chat"]).expect("parses");
        assert!(crate::node::Options::from(&cfg).relay_server.is_none());
    }

    #[test]
    fn external_addresses_need_a_port_and_no_peer_id() {
        assert!(parse_external("/ip4/203.0.113.7/tcp/4001").is_ok());
        assert!(parse_external("/dns4/chat.example.org/udp/4001/quic-v1").is_ok());
        for bad in [
            "/ip4/203.0.113.7/tcp/0",
            "/ip4/203.0.113.7",
            "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
        ] {
            let err = parse_external(bad).unwrap_err();
            assert!(err.contains("external address"), "{err}");
        }
        let cfg = Config::try_parse_from([
            "p2p-chat",
            "--external",
            "/ip4/203.0.113.7/tcp/4001",
            "--external",
            "/ip4/203.0.113.7/udp/4001/quic-v1",
        ])
        .expect("valid");
        assert_eq!(cfg.external.len(), 2);
    }

    #[test]
    fn retention_takes_counts_and_ages() {
        assert_eq!(
            parse_retention("500"),
            Ok(Retention {
                count: Some(500),
                max_age: None
            })
        );
        assert_eq!(
            parse_retention("500,2d"),
            Ok(Retention {
                count: Some(500),
                max_age: Some(Duration::from_secs(172_800))
            })
        );
        assert!(
            parse_retention("0").is_err()
                && parse_retention("x").is_err()
                && parse_retention("3w").is_err()
        );
    }

    #[test]
    fn flags_parse_with_defaults() {
        let cfg = Config::try_parse_from(["p2p-chat"]).expect("no flags is valid");
        assert_eq!(cfg.room, DEFAULT_ROOM);
        assert!(cfg.listen.is_empty());
        assert!(Config::try_parse_from(["p2p-chat", "--bogus"]).is_err());
    }
}
