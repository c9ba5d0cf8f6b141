//! What the open routes (`/status`, `/rooms`) show to a caller without the
//! token: the node's public face, nothing that is the user's own. Private
//! are where history is kept (a path on this machine, with the user's
//! name in it), what the store's failure said (it names that path), and
//! the names of encrypted rooms (the name is never on the wire: only the
//! members know it). A caller with the token, or any caller when no token
//! is configured (loopback only, where the guarded routes are open too),
//! sees everything.

use serde_json::{Value, json};

use crate::node::{RoomInfo, Status};

/// `/status` for a caller without the token: encrypted rooms counted, not
/// named; no store path or store error text. `rooms` is read before
/// `status`.
pub(super) fn status(status: &Status, rooms: &[RoomInfo]) -> Value {
    // Plain as `rooms` (read first) says: a room joined since is hidden.
    let plain = |name: &str| rooms.iter().any(|r| !r.encrypted && r.room == name);
    let mut value = json!(status);
    if let Some(map) = value.as_object_mut() {
        let public: Vec<&String> = status.rooms.iter().filter(|r| plain(r)).collect();
        let hidden = status.rooms.len() - public.len();
        map.insert("rooms".into(), json!(public));
        map.insert("encrypted_rooms".into(), json!(hidden));
        map.remove("history");
        if status.store_error.is_some() {
            map.insert("store_error".into(), json!("the history store is failing"));
        }
    }
    value
}

/// `/rooms` for a caller without the token: the plain rooms only.
pub(super) fn rooms(rooms: Vec<RoomInfo>) -> Vec<RoomInfo> {
    rooms.into_iter().filter(|r| !r.encrypted).collect()
}
