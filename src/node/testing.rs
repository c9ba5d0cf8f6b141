//! What the node's unit tests share.

use libp2p::{PeerId, request_response::OutboundRequestId};

use crate::sync::{self, SyncRequest, SyncResponse};

/// A request id as the swarm would hand out: ids come from a counter the
/// swarm owns, so the tests take them from real behaviours.
pub(super) fn request_ids(n: usize) -> Vec<OutboundRequestId> {
    use libp2p::request_response::{self, ProtocolSupport};
    let mut behaviour: request_response::cbor::Behaviour<SyncRequest, SyncResponse> =
        request_response::cbor::Behaviour::new(
            [(sync::PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default(),
        );
    let peer = PeerId::random();
    (0..n)
        .map(|i| {
            behaviour.send_request(
                &peer,
                SyncRequest::Fetch {
                    topic: i.to_string(),
                    ids: Vec::new(),
                },
            )
        })
        .collect()
}
