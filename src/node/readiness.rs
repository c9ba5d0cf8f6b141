//! Readiness: whether the node can do its job yet (listening, in a room,
//! connected to a configured peer), as a readiness probe asks it. Decided
//! from counts the event loop gathers.

use serde::Serialize;

/// Whether the node can serve: what a readiness probe asks.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// True when listening, in at least one room, and connected to at least
    /// one `--dial`/`--bootstrap` peer where any were given (with only
    /// `--bootstrap` peers given, to any peer: the way in has done its job).
    pub ready: bool,
    /// Why not, in one line, when not ready.
    pub reason: Option<String>,
    /// Listen addresses bound.
    pub listening: usize,
    /// Rooms joined.
    pub rooms: usize,
    /// `--dial` and `--bootstrap` addresses given.
    pub dial_targets: usize,
    /// How many of them are connected.
    pub dial_connected: usize,
}

/// What readiness is decided from.
pub(super) struct Inputs<'a> {
    pub(super) listening: usize,
    pub(super) rooms: usize,
    /// The store's failure, while failing.
    pub(super) store_error: Option<&'a str>,
    pub(super) dial_targets: usize,
    pub(super) dial_connected: usize,
    /// Only `--bootstrap` addresses were given, no `--dial`.
    pub(super) only_bootstrap: bool,
    pub(super) peers: usize,
}

/// Whether the node is ready, and if not why.
pub(super) fn decide(i: Inputs<'_>) -> Readiness {
    let reason = if i.listening == 0 {
        Some("not listening on any address yet".to_owned())
    } else if i.rooms == 0 {
        Some("not in any room".to_owned())
    } else if i.store_error.is_some() {
        // Not its text: /ready is open, and the text names a path.
        Some(
            "degraded: history not saved (the store is failing; /status with the token says why)"
                .to_owned(),
        )
    } else if i.dial_targets > 0 && i.dial_connected == 0 && !(i.only_bootstrap && i.peers > 0) {
        Some(format!(
            "no --dial/--bootstrap peer is connected yet ({} given)",
            i.dial_targets
        ))
    } else {
        None
    };
    Readiness {
        ready: reason.is_none(),
        reason,
        listening: i.listening,
        rooms: i.rooms,
        dial_targets: i.dial_targets,
        dial_connected: i.dial_connected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs<'static> {
        Inputs {
            listening: 1,
            rooms: 1,
            store_error: None,
            dial_targets: 0,
            dial_connected: 0,
            only_bootstrap: false,
            peers: 0,
        }
    }

    #[test]
    fn ready_once_listening_in_a_room_and_connected_to_a_dial_target() {
        assert!(decide(inputs()).ready);
        let not = |i| decide(i).reason.unwrap_or_default();
        assert!(
            not(Inputs {
                listening: 0,
                ..inputs()
            })
            .contains("not listening")
        );
        assert!(
            not(Inputs {
                rooms: 0,
                ..inputs()
            })
            .contains("not in any room")
        );
        let failing = Inputs {
            store_error: Some("disk full"),
            ..inputs()
        };
        let reason = not(failing);
        assert!(reason.contains("degraded: history not saved"), "{reason}");
        assert!(
            !reason.contains("disk full"),
            "no error text on an open route"
        );
        let waiting = Inputs {
            dial_targets: 2,
            ..inputs()
        };
        assert!(not(waiting).contains("(2 given)"));
        let bootstrapped = Inputs {
            dial_targets: 1,
            only_bootstrap: true,
            peers: 3,
            ..inputs()
        };
        assert!(decide(bootstrapped).ready, "the way in has done its job");
    }
}
