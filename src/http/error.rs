//! The API's one error shape, `{"error":"<one line>"}` with the right status,
//! and how node errors and axum's extractor rejections map onto it.

use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::node;

/// An error answer of the API.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    message: String,
    /// More fields of the body, beside `error`.
    fields: serde_json::Map<String, serde_json::Value>,
}

impl AppError {
    /// An error with this status and message (made one line).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let message: String = message.into();
        AppError {
            status,
            message: one_line(&message),
            fields: serde_json::Map::new(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401, with a `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, error = %self.message, "http request failed");
        } else {
            tracing::debug!(status = %self.status, error = %self.message, "http request refused");
        }
        let mut body = self.fields;
        body.insert("error".into(), self.message.into());
        let mut response = (self.status, Json(serde_json::Value::Object(body))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<node::Error> for AppError {
    fn from(e: node::Error) -> Self {
        use node::Error as E;
        let status = match &e {
            E::NodeStopped | E::QueueFull(..) | E::Publish { .. } | E::Store(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            E::StoreFailing(_) | E::NotSaved { .. } => StatusCode::INSUFFICIENT_STORAGE,
            E::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::Empty | E::InvalidRoom(_) | E::InvalidNick(_) => StatusCode::BAD_REQUEST,
            E::NotJoined(_) | E::UnknownPeer(_) | E::NotConnected(_) => StatusCode::NOT_FOUND,
            E::AmbiguousNick { .. } => StatusCode::CONFLICT,
            E::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            E::DirectFailed { .. } => StatusCode::BAD_GATEWAY,
            E::Identity(_)
            | E::Transport(_)
            | E::Listen { .. }
            | E::Crypto(_)
            | E::Interrupted { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut error = AppError::new(status, e.to_string());
        match e {
            E::NotSaved { id, published, .. } => {
                error.fields.insert("id".into(), id.into());
                error.fields.insert("published".into(), published.into());
                error.fields.insert("saved".into(), false.into());
            }
            E::StoreFailing(_) => {
                error.fields.insert("published".into(), false.into());
                error.fields.insert("saved".into(), false.into());
            }
            _ => {}
        }
        error
    }
}

/// Malformed JSON is 400, a JSON body of the wrong shape 422, a body that
/// is not `application/json` 415, one over the limit 413; the message is
/// axum's, which names the problem (e.g. "missing field `text`").
impl From<JsonRejection> for AppError {
    fn from(e: JsonRejection) -> Self {
        AppError::new(e.status(), e.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(e: QueryRejection) -> Self {
        AppError::new(e.status(), e.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(e: PathRejection) -> Self {
        AppError::new(e.status(), e.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        let e = AppError::bad_request("a\nb\r\n  c");
        assert_eq!(e.message, "a b c");
    }

    #[test]
    fn node_errors_map_to_statuses() {
        let status = |e| AppError::from(e).status();
        assert_eq!(
            status(node::Error::NodeStopped),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(node::Error::UnknownPeer("x".into())),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(node::Error::Timeout(libp2p::PeerId::random())),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            status(node::Error::TooLarge { size: 2, limit: 1 }),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status(node::Error::StoreFailing("disk full".into())),
            StatusCode::INSUFFICIENT_STORAGE
        );
    }

    #[test]
    fn a_message_not_saved_names_its_id() {
        let e = AppError::from(node::Error::NotSaved {
            id: "m1".into(),
            published: true,
            reason: "No space left on device".into(),
        });
        assert_eq!(e.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(e.fields["id"], "m1");
        assert_eq!(e.fields["published"], true);
        assert_eq!(e.fields["saved"], false);
        assert!(
            e.message.contains("was sent but not saved"),
            "{}",
            e.message
        );
    }
}
