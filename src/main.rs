//! The `p2p-chat` binary: parses flags, starts the node, the HTTP sidecar
//! and the terminal front end, and exits 0 on a clean stop, 1 with one line
//! on an error.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use p2p_chat::{
    Config, Node,
    config::{Command, LogFormat, UiMode},
    http, shutdown, ssh,
    ui::{self, Style},
};
use tracing_subscriber::{EnvFilter, fmt::writer::BoxMakeWriter};

fn main() -> ExitCode {
    let mut cfg = Config::from_env_and_args();
    let log_file = init_tracing(&cfg);
    if let Err(e) = cfg.load_passphrase() {
        return fail(e.into());
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow::Error::from(e).context("starting the runtime")),
    };
    let result = runtime.block_on(run(cfg, log_file));
    // stdin's reader thread may still be blocked in read(): do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// How long `healthcheck` waits for `/health`.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the node task may take to close its connections on a stop.
const NODE_STOP_TIMEOUT: Duration = Duration::from_secs(1);

async fn run(cfg: Config, log_file: Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(Command::Healthcheck { url }) = &cfg.command {
        let url = url.clone().unwrap_or_else(|| cfg.http.health_url());
        http::healthcheck(&url, HEALTHCHECK_TIMEOUT).await?;
        println!("UP");
        return Ok(());
    }
    if let Some(Command::Invite { room, url, qr }) = &cfg.command {
        let base = url.clone().unwrap_or_else(|| cfg.http.base_url());
        let room = room.clone().unwrap_or_else(|| cfg.room.clone());
        let room = room.strip_prefix('#').unwrap_or(&room);
        let token = cfg.http.token_text()?;
        let answer = http::fetch_invite(
            &base,
            room,
            token.as_deref().map(|t| t.trim()),
            HEALTHCHECK_TIMEOUT,
        )
        .await
        .with_context(|| {
            format!("no node answered at {base} (is p2p-chat running with its HTTP API there?)")
        })?;
        let ticket = answer["ticket"].as_str().unwrap_or_default();
        if *qr {
            println!("{}", ui::qr(ticket));
        }
        println!("{ticket}");
        return Ok(());
    }
    // From here on SIGINT/SIGTERM stop everything in order, even mid-start.
    let stop_signal = shutdown::listen().context("listening for signals")?;
    // Checked before anything starts: a refusal leaves no trace behind.
    let token = (!cfg.http.disabled).then(|| cfg.http.token()).transpose()?;
    let (node, events, task) = Node::spawn(&cfg).await.context("starting the node")?;
    if let Some(ticket) = &cfg.join {
        // The room is joined at start; the dial's outcome is an event.
        if let Err(e) = node.reach(ticket.addrs.clone()).await {
            tracing::warn!(error = %e, "cannot dial the node of the invite ticket");
        }
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = match token {
        Some(token) => Some(bind_http(&cfg, node.clone(), token).await?),
        None => None,
    };
    let http = match &server {
        Some(server) => Some(format!(
            "http://{} ({})",
            server.local_addr()?,
            cfg.http.token_source()
        )),
        None => None,
    };
    let server = server.map(|server| {
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }))
    });
    let notes = match start_ssh(&cfg, &node).await {
        Some(Ok(running)) => vec![format!(
            "SSH on {} (host key {})",
            running.addr, running.fingerprint
        )],
        Some(Err(e)) => {
            // The node runs on without SSH; the line says how to fix it:
            // in the log, and in the banner (--json has none: stderr, if
            // the log is not there already).
            tracing::error!("ssh: {e}");
            if cfg.json && log_file.is_some() {
                eprintln!("p2p-chat: ssh: {e}");
            }
            vec![format!("SSH off: {e}")]
        }
        None => Vec::new(),
    };
    let style = if cfg.json { Style::Json } else { Style::Human };
    let full_screen = match cfg.ui {
        Some(mode) => mode == UiMode::Tui,
        None => ui::is_terminal(),
    };
    let front = if cfg.headless {
        ui::Front::Headless
    } else if style == Style::Human && full_screen {
        ui::Front::FullScreen {
            history: input_history(&cfg),
        }
    } else if style == Style::Human && ui::is_terminal() {
        ui::Front::Terminal {
            history: input_history(&cfg),
        }
    } else {
        ui::Front::Lines(tokio::io::BufReader::new(tokio::io::stdin()))
    };
    // The session ends on /quit, end of input, or SIGINT/SIGTERM; then
    // everything stops in order: HTTP (in-flight requests finish), the node.
    let exit = tokio::select! {
        exit = ui::run(node.clone(), events, front, ui::Options {
            style,
            room: cfg.room.clone(),
            program: program(),
            http,
            log_file,
            notes,
        }) => exit,
        () = stop_signal => ui::Exit::Signal,
    };
    tracing::debug!(?exit, "front end ended");
    let _ = stop.send(());
    if let Some(server) = server {
        let _ = server.await;
    }
    let _ = tokio::time::timeout(NODE_STOP_TIMEOUT, async {
        node.shutdown().await;
        let _ = task.await;
    })
    .await;
    Ok(())
}

/// Starts the SSH server when `--ssh` is given.
async fn start_ssh(
    cfg: &Config,
    node: &p2p_chat::Node,
) -> Option<Result<ssh::Running, anyhow::Error>> {
    let addr = cfg.ssh.ssh_addr?;
    let data_dir = cfg.disk_dir();
    let authorized_keys = match cfg.ssh.ssh_authorized_keys.clone().or_else(|| {
        data_dir
            .as_ref()
            .map(|d| d.join(ssh::keys::AUTHORIZED_KEYS_FILE))
    }) {
        Some(path) => path,
        None => {
            return Some(Err(anyhow::anyhow!(
                "--ephemeral has no data dir for authorized_keys: give --ssh-authorized-keys FILE"
            )));
        }
    };
    let options = ssh::Options {
        addr,
        authorized_keys,
        host_key_dir: data_dir,
        max_sessions: cfg.ssh.ssh_max_sessions,
        idle: Duration::from_secs(cfg.ssh.ssh_idle_secs),
        // (A --join ticket's room, once the config is read.)
        room: cfg.room.clone(),
    };
    Some(ssh::start(node.clone(), options).await.map_err(Into::into))
}

/// The input history file: in the data dir, or none with `--ephemeral`
/// (history stays in memory).
fn input_history(cfg: &Config) -> Option<std::path::PathBuf> {
    Some(cfg.disk_dir()?.join(ui::INPUT_HISTORY_FILE))
}

/// Binds the sidecar. If the default address is taken (another node on this
/// machine), serves on a free port instead, as the p2p listener does.
async fn bind_http(
    cfg: &Config,
    node: Node,
    token: Option<http::Token>,
) -> anyhow::Result<http::Server> {
    let hosts = cfg.http.allowed_hosts.clone();
    let bound = http::Server::bind(cfg.http.addr, node.clone(), token.clone(), hosts.clone()).await;
    let server = match bound {
        Err(http::Error::Bind { reason, .. }) if cfg.http.addr == http::DEFAULT_ADDR => {
            let any_port = std::net::SocketAddr::new(cfg.http.addr.ip(), 0);
            let server = http::Server::bind(any_port, node, token, hosts).await?;
            let address = server.local_addr()?;
            tracing::warn!(default = %cfg.http.addr, %reason, %address, "default http address taken");
            server
        }
        other => other?,
    };
    tracing::info!(address = %server.local_addr()?, "http api listening");
    Ok(server)
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("p2p-chat: error: {e:#}");
    ExitCode::FAILURE
}

/// This program as it was started, for a dial hint that works when pasted:
/// the path it was run by (`target/release/p2p-chat` after `cargo run`), or
/// its name when found on the PATH.
fn program() -> String {
    std::env::args()
        .next()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "p2p-chat".into())
}

/// Logs of an interactive session go to this file, not into the chat.
const LOG_FILE: &str = "p2p-chat.log";
/// A log file past this size is moved to `.1` at start.
const LOG_FILE_MAX: u64 = 10 * 1024 * 1024;

/// Where an interactive session writes its logs: the data dir, or the temp
/// dir with `--ephemeral`. None (stderr) for headless nodes, `--json` and
/// pipes.
fn log_path(cfg: &Config) -> Option<PathBuf> {
    if cfg.headless || cfg.json || !ui::is_terminal() {
        return None;
    }
    if cfg.ephemeral {
        // A name nobody can guess and create first (it is opened only if new).
        let name = format!("p2p-chat-{}-{}.log", std::process::id(), ulid::Ulid::new());
        return Some(std::env::temp_dir().join(name));
    }
    Some(cfg.disk_dir()?.join(LOG_FILE))
}

/// Opens the log file (mode 0600, appended; moved aside when large; a
/// new data dir is made 0700 as the node makes it). With `--ephemeral` the
/// file must be new: one that exists in the temp dir is someone else's.
fn open_log(path: &std::path::Path, ephemeral: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if let Some(dir) = path.parent()
        && !ephemeral
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > LOG_FILE_MAX) {
        std::fs::rename(path, path.with_extension("log.1"))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.append(true).mode(0o600);
    if ephemeral {
        options.create_new(true);
    } else {
        options.create(true);
    }
    options.open(path)
}

/// Sets up logging; returns the log file when logs go to one.
fn init_tracing(cfg: &Config) -> Option<PathBuf> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(if cfg.headless {
            "warn,libp2p_kad=error,p2p_chat=info"
        } else {
            "warn,libp2p_kad=error"
        })
    });
    let file = log_path(cfg).and_then(|path| match open_log(&path, cfg.ephemeral) {
        Ok(file) => Some((path, file)),
        Err(e) => {
            eprintln!(
                "p2p-chat: logging to stderr: cannot open {}: {e}",
                path.display()
            );
            None
        }
    });
    let (writer, path) = match file {
        Some((path, file)) => (BoxMakeWriter::new(std::sync::Mutex::new(file)), Some(path)),
        None => (BoxMakeWriter::new(std::io::stderr), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // No colour codes in a file.
    let builder = if path.is_some() {
        builder.with_ansi(false)
    } else {
        builder
    };
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    path
}
