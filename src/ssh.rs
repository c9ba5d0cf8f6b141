//! SSH access: anyone with a standard SSH client and a key in the node's
//! `authorized_keys` reaches its chat, with nothing to install. A front end
//! of the [`Node`] handle like the terminal and the HTTP API: a session with
//! a PTY gets the full-screen client, fed by the channel; one without gets
//! line mode (`ssh host /rooms`, `ssh host < lines.txt`), exit status 0 at
//! the end of its input. Public keys only; each key is a user of this node.

mod channel;
pub mod keys;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use russh::{
    Channel, ChannelId, MethodKind, MethodSet,
    keys::PublicKey,
    server::{Auth, ChannelOpenHandle, Msg, Server as _, Session},
};

use crate::node::Node;
pub use keys::KeyError;

/// How often the authorized keys file is read again.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// What the SSH server starts with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The authorized keys file.
    pub authorized_keys: PathBuf,
    /// Where the host key is kept; None: a fresh one in memory.
    pub host_key_dir: Option<PathBuf>,
    /// Connections open at once.
    pub max_sessions: usize,
    /// A connection idle this long is closed.
    pub idle: Duration,
    /// The room a session starts in.
    pub room: String,
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// A key problem.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The address could not be bound.
    #[error("cannot listen for SSH on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The host key's fingerprint (`SHA256:…`).
    pub fingerprint: String,
}

/// What every connection shares.
#[derive(Debug)]
struct Shared {
    node: Node,
    users: RwLock<Vec<keys::User>>,
    sessions: AtomicUsize,
    max_sessions: usize,
    room: String,
}

impl Shared {
    fn user_of(&self, key: &PublicKey) -> Option<String> {
        let users = self
            .users
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        users
            .iter()
            .find(|u| u.key.key_data() == key.key_data())
            .map(|u| u.name.clone())
    }
}

/// Starts the server: refuses to when no key may log in (one line saying
/// how to add one), else serves until the process ends.
pub async fn start(node: Node, options: Options) -> Result<Running, SshError> {
    let bytes = keys::read_file(&options.authorized_keys)?;
    let users = keys::users_in(&options.authorized_keys, bytes.as_deref())?;
    if users.is_empty() {
        return Err(KeyError::NoKeys {
            path: options.authorized_keys.clone(),
        }
        .into());
    }
    let host = keys::host_key(options.host_key_dir.as_deref())?;
    let fingerprint = keys::fingerprint(host.public_key());
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| SshError::Bind {
            addr: options.addr,
            reason: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| SshError::Bind {
        addr: options.addr,
        reason: e.to_string(),
    })?;
    let config = russh::server::Config {
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        keys: vec![host],
        inactivity_timeout: Some(options.idle),
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        nodelay: true,
        ..Default::default()
    };
    let shared = Arc::new(Shared {
        node,
        users: RwLock::new(users),
        sessions: AtomicUsize::new(0),
        max_sessions: options.max_sessions,
        room: options.room.clone(),
    });
    tokio::spawn(reload(
        shared.clone(),
        options.authorized_keys.clone(),
        bytes,
    ));
    let shared_node = shared.node.clone();
    tokio::spawn(async move {
        let mut server = Listener { shared };
        if let Err(e) = server.run_on_socket(Arc::new(config), &listener).await {
            tracing::error!(error = %e, "ssh server stopped");
        }
    });
    tracing::info!(%addr, %fingerprint, "ssh listening");
    shared_node.ssh_started(addr.to_string(), fingerprint.clone(), options.max_sessions);
    Ok(Running { addr, fingerprint })
}

/// Reads the authorized keys again when the file changes from `last`
/// (its bytes when the server started; None: missing or unreadable).
async fn reload(shared: Arc<Shared>, path: PathBuf, mut last: Option<Vec<u8>>) {
    loop {
        tokio::time::sleep(RELOAD_EVERY).await;
        let now = keys::read_file(&path);
        let bytes = now.as_ref().ok().and_then(Option::as_ref);
        if bytes == last.as_ref() {
            continue;
        }
        last = bytes.cloned();
        // Unreadable: no one gets in until it can be read again.
        let users = now.and_then(|bytes| keys::users_in(&path, bytes.as_deref()));
        let users = users.unwrap_or_else(|e| {
            tracing::error!("ssh: {e}");
            Vec::new()
        });
        tracing::info!(users = users.len(), path = %path.display(), "ssh: authorized keys read again");
        *shared
            .users
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = users;
    }
}

/// Makes a handler per connection.
struct Listener {
    shared: Arc<Shared>,
}

impl russh::server::Server for Listener {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        Connection {
            shared: self.shared.clone(),
            peer,
            user: None,
        }
    }

    fn handle_session_error(&mut self, error: russh::Error) {
        tracing::debug!(%error, "ssh connection ended");
    }
}

/// One SSH connection.
struct Connection {
    shared: Arc<Shared>,
    peer: Option<SocketAddr>,
    /// Who logged in (counted among the sessions open).
    user: Option<String>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.user.is_some() {
            let before = self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
            self.shared.node.ssh_sessions(before.saturating_sub(1));
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.shared.user_of(offer.public_key) {
            Some(_) => Auth::Accept,
            None => {
                let peer = self.peer.map(|p| p.to_string()).unwrap_or_default();
                tracing::info!(%peer, key = %keys::fingerprint(offer.public_key), "ssh: refused: key not in authorized_keys");
                self.shared.node.ssh_refused("unknown_key");
                Auth::reject()
            }
        })
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let peer = self.peer.map(|p| p.to_string()).unwrap_or_default();
        let Some(name) = self.shared.user_of(key.public_key) else {
            tracing::warn!(%peer, key = %keys::fingerprint(key.public_key), "ssh: refused: unknown key");
            self.shared.node.ssh_refused("unknown_key");
            return Ok(Auth::reject());
        };
        let open = self.shared.sessions.fetch_add(1, Ordering::Relaxed);
        if open >= self.shared.max_sessions {
            self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(%peer, user = %name, max = self.shared.max_sessions, "ssh: refused: too many sessions");
            self.shared.node.ssh_refused("too_many_sessions");
            return Ok(Auth::reject());
        }
        self.shared.node.ssh_sessions(open + 1);
        tracing::info!(%peer, user = %name, "ssh: logged in");
        self.user = Some(name);
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(user) = self.user.clone() else {
            return Ok(());
        };
        reply.accept().await;
        let handle = session.handle();
        let shared = self.shared.clone();
        tokio::spawn(channel::serve(
            channel,
            handle,
            channel::Context {
                node: shared.node.clone(),
                user,
                room: shared.room.clone(),
            },
        ));
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }
}
