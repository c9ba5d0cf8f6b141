//! The `p2p-chat` binary: parses flags, starts the node and the terminal
//! front end, and exits 0 on a clean stop, 1 with one line on an error.

use std::process::ExitCode;

use anyhow::Context;
use p2p_chat::{
    Config, Node,
    config::LogFormat,
    ui::{self, Style},
};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let mut cfg = Config::from_env_and_args();
    init_tracing(&cfg);
    if let Err(e) = cfg.load_passphrase() {
        return fail(e.into());
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow::Error::from(e).context("starting the runtime")),
    };
    let result = runtime.block_on(run(cfg));
    // stdin's reader thread may still be blocked in read(): do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    let (node, events, task) = Node::spawn(&cfg).await.context("starting the node")?;
    let style = if cfg.json { Style::Json } else { Style::Human };
    let stdin = (!cfg.headless).then(|| tokio::io::BufReader::new(tokio::io::stdin()));
    let exit = ui::run(node.clone(), events, stdin, style, &cfg.room).await;
    tracing::debug!(?exit, "front end ended");
    node.shutdown().await;
    let _ = task.await;
    Ok(())
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("p2p-chat: error: {e:#}");
    ExitCode::FAILURE
}

fn init_tracing(cfg: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(if cfg.headless {
            "warn,libp2p_kad=error,p2p_chat=info"
        } else {
            "warn,libp2p_kad=error"
        })
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
