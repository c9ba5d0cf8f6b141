//! The sidecar's flags (`--http`, `--no-http`, `--http-token-file`,
//! `--http-allowed-host`) and the access rules that follow from them: which
//! token, if any, guards the API, and whether the node may start at all.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
};
use zeroize::Zeroizing;

use clap::Args;

use super::{Error, auth::Token};

/// Default address of the HTTP sidecar.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8081);
/// Environment variable holding the bearer token (never a flag: command
/// lines are visible to every user of the machine).
pub const TOKEN_ENV: &str = "P2P_CHAT_HTTP_TOKEN";

/// Flags of the HTTP sidecar.
#[derive(Debug, Clone, Args)]
#[group(id = "http-sidecar")]
#[command(next_help_heading = "HTTP API")]
pub struct Config {
    /// Address of the HTTP API (health, readiness, metrics, send, events).
    /// Any address other than loopback needs a token (P2P_CHAT_HTTP_TOKEN or
    /// --http-token-file).
    #[arg(long = "http", env = "P2P_CHAT_HTTP", default_value_t = DEFAULT_ADDR)]
    pub addr: SocketAddr,

    /// Do not serve the HTTP API.
    #[arg(long = "no-http", env = "P2P_CHAT_NO_HTTP")]
    pub disabled: bool,

    /// File holding the bearer token that sending, history and the event
    /// stream require (otherwise read from P2P_CHAT_HTTP_TOKEN).
    #[arg(
        long = "http-token-file",
        env = "P2P_CHAT_HTTP_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub token_file: Option<PathBuf>,

    /// Extra host name the API answers to (repeatable), e.g. a Service's DNS
    /// name. IP addresses and `localhost` are always accepted; other Host
    /// headers are refused, against DNS rebinding.
    #[arg(
        long = "http-allowed-host",
        env = "P2P_CHAT_HTTP_ALLOWED_HOSTS",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
}

impl Config {
    /// Loopback on a free port, no token, no extra hosts.
    pub fn for_tests() -> Self {
        Config {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            disabled: false,
            token_file: None,
            allowed_hosts: Vec::new(),
        }
    }

    /// The token: from `--http-token-file` if given, else from
    /// [`TOKEN_ENV`]; surrounding whitespace is ignored. Then checks that a
    /// non-loopback address has one: without it anyone who can reach the
    /// port could post as this node.
    pub fn token(&self) -> Result<Option<Token>, Error> {
        let token = match self.token_text()? {
            Some(raw) => Some(Token::new(raw.trim()).ok_or(Error::EmptyToken)?),
            None => None,
        };
        if token.is_none() && !self.addr.ip().is_loopback() {
            return Err(Error::NoToken(self.addr));
        }
        Ok(token)
    }

    /// Where the token comes from, for a person: the file, the variable, or
    /// none (loopback only).
    pub fn token_source(&self) -> String {
        match &self.token_file {
            Some(path) => format!("token in {}", path.display()),
            None if std::env::var_os(TOKEN_ENV).is_some() => format!("token from ${TOKEN_ENV}"),
            None => "no token: loopback only".into(),
        }
    }

    /// The token's text as configured (file or environment), for a local
    /// client of the API (`p2p-chat invite`).
    pub fn token_text(&self) -> Result<Option<Zeroizing<String>>, Error> {
        Ok(match &self.token_file {
            Some(path) => Some(Zeroizing::new(std::fs::read_to_string(path).map_err(
                |e| Error::TokenFile {
                    path: path.clone(),
                    reason: e.to_string(),
                },
            )?)),
            None => std::env::var(TOKEN_ENV).ok().map(Zeroizing::new),
        })
    }

    /// The URL of `/health` on this address, as a local client reaches it.
    pub fn health_url(&self) -> String {
        format!("{}/health", self.base_url())
    }

    /// The API's URL as a local client reaches it: an unspecified address
    /// (`0.0.0.0`, `::`) becomes loopback.
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_token() {
        let cfg = Config {
            addr: "0.0.0.0:8081".parse().expect("addr"),
            token_file: Some(PathBuf::from("/nonexistent/token")),
            ..Config::for_tests()
        };
        assert!(matches!(cfg.token(), Err(Error::TokenFile { .. })));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").expect("write token");
        let cfg = Config {
            token_file: Some(path.clone()),
            ..cfg
        };
        let token = cfg.token().expect("token read").expect("token present");
        assert!(token.matches("s3cret"));
        std::fs::write(&path, "  \n").expect("write token");
        assert!(matches!(cfg.token(), Err(Error::EmptyToken)));
    }

    #[test]
    fn flags_and_healthcheck_subcommand_parse() {
        use clap::Parser;
        let cfg = crate::Config::try_parse_from(["p2p-chat"]).expect("no flags is valid");
        assert_eq!(cfg.http.addr, DEFAULT_ADDR);
        assert!(!cfg.http.disabled);
        let cfg = crate::Config::try_parse_from([
            "p2p-chat",
            "--http",
            "0.0.0.0:9000",
            "--http-allowed-host",
            "chat.example,node-0.chat",
            "healthcheck",
            "--url",
            "http://127.0.0.1:9000/health",
        ])
        .expect("valid flags");
        assert_eq!(cfg.http.allowed_hosts, ["chat.example", "node-0.chat"]);
        assert!(matches!(
            cfg.command,
            Some(crate::config::Command::Healthcheck { url: Some(_) })
        ));
        assert!(crate::Config::try_parse_from(["p2p-chat", "--http", "nope"]).is_err());
    }

    #[test]
    fn health_url_reaches_unspecified_binds_on_loopback() {
        let cfg = Config {
            addr: "0.0.0.0:9000".parse().expect("addr"),
            ..Config::for_tests()
        };
        assert_eq!(cfg.health_url(), "http://127.0.0.1:9000/health");
        let cfg = Config {
            addr: "[::]:9000".parse().expect("addr"),
            ..Config::for_tests()
        };
        assert_eq!(cfg.health_url(), "http://[::1]:9000/health");
    }
}
