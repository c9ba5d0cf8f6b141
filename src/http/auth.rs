//! Who may use the API: the bearer token of the sending endpoints and the
//! event stream (compared in constant time, never logged), and the Host
//! header check that keeps a DNS-rebinding web page away from the node.

use std::net::IpAddr;

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AppState, error::AppError};

/// The API's bearer token. Only its SHA-256 digest is kept, so the
/// comparison runs over fixed-size values and the secret itself is in no
/// struct that could be printed.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl Token {
    /// A token from its text; None if empty.
    pub fn new(secret: &str) -> Option<Self> {
        if secret.is_empty() {
            return None;
        }
        Some(Token {
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// Whether `candidate` is this token, in time independent of where they
    /// differ.
    pub fn matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        self.digest.ct_eq(&digest).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Middleware of the guarded routes: with a token configured, requires
/// `Authorization: Bearer <token>`. Without one (only possible on loopback,
/// see [`super::Config::token`]) lets everything through.
pub(super) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match presented(&state, request.headers()) {
        Access::Granted => next.run(request).await,
        Access::WrongToken => {
            AppError::unauthorized("the bearer token is not valid").into_response()
        }
        Access::NoToken => {
            AppError::unauthorized("this endpoint needs 'Authorization: Bearer <token>'")
                .into_response()
        }
    }
}

/// What a request's credentials are worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// The token, or none is configured (loopback only).
    Granted,
    /// A token that is not ours.
    WrongToken,
    /// No `Authorization: Bearer` header while a token is configured.
    NoToken,
}

/// Checks a request's bearer token against the configured one.
pub(super) fn presented(state: &AppState, headers: &axum::http::HeaderMap) -> Access {
    let Some(token) = &state.token else {
        return Access::Granted;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match presented {
        Some(candidate) if token.matches(candidate) => Access::Granted,
        Some(_) => Access::WrongToken,
        None => Access::NoToken,
    }
}

/// Middleware of every route: refuses a Host header that names neither an
/// IP address, nor `localhost`, nor an allowed host. A browser always sends
/// the name it resolved, so a page on `evil.example` rebound to our address
/// is refused; scripts, probes and scrapers that use an address pass.
pub(super) async fn check_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(value) = request.headers().get(header::HOST) {
        let host = value.to_str().ok().map(host_name);
        let allowed = host.is_some_and(|h| {
            h.parse::<IpAddr>().is_ok()
                || h.eq_ignore_ascii_case("localhost")
                || state
                    .allowed_hosts
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(h))
        });
        if !allowed {
            let shown = crate::sanitize::for_terminal(value.to_str().unwrap_or("<not text>"));
            return AppError::bad_request(format!(
                "host '{shown}' is not allowed: use an IP address or add it with --http-allowed-host"
            ))
            .into_response();
        }
    }
    next.run(request).await
}

/// The name part of a Host header: without the port, and without the
/// brackets of an IPv6 literal.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_only_itself_and_never_prints() {
        let token = Token::new("s3cret").expect("non-empty");
        assert!(token.matches("s3cret"));
        assert!(!token.matches("s3cre"));
        assert!(!token.matches("s3cret "));
        assert!(!token.matches(""));
        assert!(Token::new("").is_none());
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn host_names_lose_port_and_brackets() {
        assert_eq!(host_name("127.0.0.1:8081"), "127.0.0.1");
        assert_eq!(host_name("[::1]:8081"), "::1");
        assert_eq!(host_name("example.org"), "example.org");
        assert_eq!(host_name("localhost:1"), "localhost");
    }
}
