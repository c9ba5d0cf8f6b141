//! Readiness: whether the node can do its job yet (listening, in a room,
//! connected to a configured peer), as a readiness probe asks it.

use serde::Serialize;

use super::event_loop::EventLoop;

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

impl EventLoop {
    pub(super) fn readiness(&self) -> Readiness {
        let (dial_targets, dial_connected) = self.redial.counts();
        let reason = if self.listen_addrs.is_empty() {
            Some("not listening on any address yet".to_owned())
        } else if self.rooms.is_empty() {
            Some("not in any room".to_owned())
        } else if let Some(e) = self.archive.error() {
            Some(format!("degraded: history not saved ({e})"))
        } else if dial_targets > 0
            && dial_connected == 0
            && !(self.redial.only_bootstrap() && self.peers.len() > 0)
        {
            Some(format!(
                "no --dial/--bootstrap peer is connected yet ({dial_targets} given)"
            ))
        } else {
            None
        };
        Readiness {
            ready: reason.is_none(),
            reason,
            listening: self.listen_addrs.len(),
            rooms: self.rooms.len(),
            dial_targets,
            dial_connected,
        }
    }
}
