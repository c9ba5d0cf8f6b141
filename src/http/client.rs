//! A client of a running node's sidecar, for the subcommands that ask it
//! rather than start a node: `p2p-chat healthcheck` (is `/health` UP? for a
//! container HEALTHCHECK in an image that has no curl) and `p2p-chat
//! invite` (a ticket from `/rooms/{room}/invite`).

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, Uri, body::Bytes, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The most of an answer read.
const MAX_ANSWER: usize = 4096;

/// Why the node did not answer as asked. One line each.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not an `http://host:port/path` URL.
    #[error("invalid URL '{0}': give e.g. http://127.0.0.1:8081/health")]
    Url(String),
    /// No answer in time.
    #[error("no answer from {url} within {} s", .timeout.as_secs_f32())]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// The connection or the exchange failed.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The node answered, but not UP.
    #[error("{url} answered {status}: {body}")]
    Down {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The answer, on one line.
        body: String,
    },
}

/// Succeeds if `url` answers 200 with `{"status":"UP"}` within `timeout`.
pub async fn healthcheck(url: &str, timeout: Duration) -> Result<(), ClientError> {
    match tokio::time::timeout(timeout, check(url)).await {
        Ok(result) => result,
        Err(_) => Err(ClientError::Timeout {
            url: url.to_owned(),
            timeout,
        }),
    }
}

async fn check(url: &str) -> Result<(), ClientError> {
    let (status, body) = fetch(url, "/health", None).await?;
    let up = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .is_some_and(|v| v["status"] == "UP");
    if status.is_success() && up {
        return Ok(());
    }
    Err(down(url, status, &body))
}

/// `p2p-chat invite`: asks a running node at `base` (its sidecar's URL) for
/// an invite ticket to `room`, with `token` if one is configured.
pub async fn fetch_invite(
    base: &str,
    room: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<serde_json::Value, ClientError> {
    let base = base.trim_end_matches('/');
    let room = utf8_percent_encode(room, PATH_SEGMENT);
    let url = format!("{base}/rooms/{room}/invite");
    let asked = async {
        let (status, body) = fetch(&url, "/", token).await?;
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) if status.is_success() && v["ticket"].is_string() => Ok(v),
            _ => Err(down(&url, status, &body)),
        }
    };
    match tokio::time::timeout(timeout, asked).await {
        Ok(result) => result,
        Err(_) => Err(ClientError::Timeout { url, timeout }),
    }
}

/// What a room name may not hold unescaped in one path segment: all but
/// RFC 3986's unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn down(url: &str, status: hyper::StatusCode, body: &[u8]) -> ClientError {
    let body = String::from_utf8_lossy(body);
    ClientError::Down {
        url: url.to_owned(),
        status: status.as_u16(),
        body: crate::sanitize::for_terminal(&body.split_whitespace().collect::<Vec<_>>().join(" ")),
    }
}

/// GETs `url` (its path, or `default_path`), with a bearer `token`.
async fn fetch(
    url: &str,
    default_path: &str,
    token: Option<&str>,
) -> Result<(hyper::StatusCode, Bytes), ClientError> {
    let bad_url = || ClientError::Url(url.to_owned());
    let uri: Uri = url.parse().map_err(|_| bad_url())?;
    if uri.scheme_str() != Some("http") {
        return Err(bad_url());
    }
    let authority = uri.authority().ok_or_else(bad_url)?.clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let path = match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("/") | Some("") => default_path,
        Some(p) => p,
    };
    let unreachable = |reason: String| ClientError::Unreachable {
        url: url.to_owned(),
        reason,
    };
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let driver = tokio::spawn(connection);
    let mut request = Request::get(path)
        .header(header::HOST, authority.as_str())
        .header(header::CONNECTION, "close");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Empty::<Bytes>::new()).map_err(|_| bad_url())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .to_bytes();
    driver.abort();
    Ok((status, body))
}
