//! p2p-chat: a decentralized chat node on libp2p.
//!
//! # Layout
//!
//! * [`config`]: flags and environment variables, with embedded defaults.
//! * [`node`]: one task owns the libp2p swarm; [`Node`] is the cloneable
//!   handle every front end uses, and [`node::Event`] what it broadcasts.
//!   Inside, parts decide without I/O (rooms, sync, direct messages, peers)
//!   and the event loop does what they decide (`docs/design.md` has the
//!   file table).
//! * [`limits`]: sizes and validation: our own input refused when invalid,
//!   peers' held to the limits.
//! * [`protocol`]: wire types, topic names, and the checks of a frame.
//! * [`crypto`]: room keys (Argon2id) and sealing (AES-256-GCM).
//! * [`store`]: the durable history (redb) and its one writer thread.
//! * [`sync`]: history reconciliation between peers (Negentropy).
//! * [`identity`]: the persistent ed25519 key.
//! * [`sanitize`]: making untrusted strings safe for a terminal.
//! * [`ui`]: the terminal front end (line mode and `--json`).
//! * [`http`]: the HTTP sidecar (health, readiness, API, events, metrics).
//! * [`shutdown`]: SIGINT / SIGTERM.
//!
//! ```no_run
//! # async fn demo() -> Result<(), p2p_chat::node::Error> {
//! let cfg = p2p_chat::Config::for_tests();
//! let (node, mut events, _task) = p2p_chat::Node::spawn(&cfg).await?;
//! node.publish("lobby", "hello").await?;
//! while let Ok(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```

pub mod config;
pub mod crypto;
pub mod http;
pub mod identity;
pub mod limits;
pub mod node;
pub mod protocol;
pub mod sanitize;
pub mod shutdown;
pub mod ssh;
pub mod store;
pub mod sync;
pub mod ticket;
pub mod ui;

pub use config::Config;
pub use node::{Event, Node};
