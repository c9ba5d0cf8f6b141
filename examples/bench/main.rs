//! The benchmark harness: real nodes started through `Node::spawn` (and the
//! real binary as a process) on 127.0.0.1, each figure beside a baseline
//! measured in the same run, the median of several repetitions with its
//! min-max.
//!
//! ```text
//! cargo run --release --example bench -- --full    # the figures for the docs
//! cargo run --example bench -- --quick             # tiny sizes: every scenario runs
//! ```
//!
//! Baselines: a bare rust-libp2p peer (gossipsub and request-response with
//! libp2p's defaults, no application logic) and raw TCP lines between two
//! tokio tasks. Prints a Markdown table, writes `target/bench/results.json`
//! and draws SVG plots (into `docs/` for `--full`, `target/bench/` else).
//! `--quick` asserts nothing about speed: only that every scenario ran and
//! produced its figures; it exits non-zero otherwise.

mod acks;
mod bare;
mod cost;
mod floor;
mod footprint;
mod history;
mod load;
mod mesh;
mod pairs;
mod plot;
mod propagation;
mod report;
mod screen;
mod two_peers;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use report::Figure;

/// Sizes of one run.
pub(crate) struct Plan {
    full: bool,
    /// Run only this scenario (`two-peers`, `mesh`, `cost`, ...), e.g. to
    /// profile it; nothing is checked and no plot goes to `docs/`.
    only: Option<String>,
    pub(crate) reps: usize,
    pub(crate) lat_n: usize,
    pub(crate) lat_rate: f64,
    pub(crate) tput_n: usize,
    pub(crate) window: usize,
    pub(crate) dm_n: usize,
    pub(crate) mesh_sizes: Vec<usize>,
    pub(crate) mesh_msgs: usize,
    pub(crate) mesh_reps: usize,
    pub(crate) relay_n: usize,
    pub(crate) idle_wait: Duration,
    /// Messages per run of the acknowledgement scenario.
    pub(crate) ack_n: usize,
    /// History sizes a fresh node catches up on.
    pub(crate) sync_sizes: Vec<usize>,
    pub(crate) sync_reps: usize,
    /// Room messages in the full-screen client's burst.
    pub(crate) screen_msgs: usize,
    /// Keys typed into the client in a real terminal.
    pub(crate) screen_keys: usize,
    /// Upper bound on one scenario.
    limit: Duration,
}

impl Plan {
    /// Tiny sizes for a debug build (where signing alone costs
    /// milliseconds per message): every scenario runs, in well under a
    /// minute.
    fn quick() -> Plan {
        Plan {
            full: false,
            only: None,
            reps: 2,
            lat_n: 10,
            lat_rate: 100.0,
            tput_n: 20,
            window: 16,
            dm_n: 8,
            mesh_sizes: vec![5, 10],
            mesh_msgs: 5,
            mesh_reps: 1,
            relay_n: 20,
            idle_wait: Duration::from_millis(200),
            ack_n: 40,
            sync_sizes: vec![200],
            sync_reps: 1,
            screen_msgs: 300,
            screen_keys: 20,
            limit: Duration::from_secs(120),
        }
    }

    fn full() -> Plan {
        Plan {
            full: true,
            only: None,
            reps: 5,
            lat_n: 2000,
            lat_rate: 1000.0,
            tput_n: 5000,
            window: 256,
            dm_n: 1000,
            // BENCH_MESH_SIZES=10,100 runs other sizes (for a diagnosis).
            mesh_sizes: std::env::var("BENCH_MESH_SIZES")
                .ok()
                .and_then(|s| s.split(',').map(|n| n.trim().parse().ok()).collect())
                .unwrap_or_else(|| vec![10, 30, 100]),
            mesh_msgs: 200,
            mesh_reps: 2,
            relay_n: 100_000,
            idle_wait: Duration::from_secs(1),
            ack_n: 2000,
            sync_sizes: vec![10_000, 100_000],
            sync_reps: 3,
            screen_msgs: 10_000,
            screen_keys: 200,
            limit: Duration::from_secs(900),
        }
    }
}

/// Figures every run must produce.
const EXPECTED: &[&str] = &[
    "room.latency.p50",
    "room.latency.p99",
    "room.throughput",
    "dm.rtt.p50",
    "dm.rtt.p99",
    "mesh.reach_all.p50",
    "mesh.reach_all.p99",
    "mesh.reach_all.p99.growth",
    "mesh.duplicates_per_msg.wire",
    "cost.idle_rss",
    "cost.start_to_listening",
    "cost.start_to_health",
    "cost.rss_holding_messages",
    "cost.cpu_per_1000_relayed",
    "cost.binary_size",
    "history.sync.catch_up",
    "history.sync.bytes_per_payload_byte",
    "crypto.key_derivation",
    "ack.publish.rate",
    "ack.http_post.rate",
    "screen.frame.p50",
    "screen.frame.p99",
    "screen.key_to_frame.p50",
    "screen.key_to_frame.p99",
    "screen.key_sent_to_frame.p99",
    "screen.frames_per_1000_messages",
    "screen.key_to_screen.tmux.p50",
];

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The in-process nodes' logs, on stderr, when RUST_LOG asks for them.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let mut plan = match args.first().map(String::as_str) {
        Some("--quick") => Plan::quick(),
        Some("--full") => Plan::full(),
        Some("--bare-node") => {
            return match cost::bare_node().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            };
        }
        _ => {
            eprintln!(
                "usage: bench --quick | --full [--only two-peers|mesh|history|cost|acks|screen]"
            );
            return ExitCode::from(2);
        }
    };
    match (args.get(1).map(String::as_str), args.get(2)) {
        (None, _) => {}
        (Some("--only"), Some(name))
            if ["two-peers", "mesh", "history", "cost", "acks", "screen"]
                .contains(&name.as_str()) =>
        {
            plan.only = Some(name.clone());
        }
        _ => {
            eprintln!(
                "usage: bench --quick | --full [--only two-peers|mesh|history|cost|acks|screen]"
            );
            return ExitCode::from(2);
        }
    }
    match run(&plan).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("bench: error: {e:#}");
    ExitCode::FAILURE
}

/// Runs one scenario within the plan's bound, keeping its error.
async fn scenario<T>(
    (key, name): (&str, &str),
    plan: &Plan,
    failures: &mut Vec<String>,
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> Option<T> {
    if plan.only.as_deref().is_some_and(|only| only != key) {
        return None;
    }
    eprintln!("bench: {name}...");
    let t = std::time::Instant::now();
    let result = match tokio::time::timeout(plan.limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!("did not finish within {:?}", plan.limit)),
    };
    eprintln!("bench: {name} took {:.1} s", t.elapsed().as_secs_f64());
    result
        .map_err(|e| failures.push(format!("{name}: {e:#}")))
        .ok()
}

/// The target directory this harness was built into.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

async fn run(plan: &Plan) -> anyhow::Result<bool> {
    let (sha, date) = (report::git_sha(), report::utc_now());
    let mut failures = Vec::new();
    let mut figures: Vec<Figure> = Vec::new();
    let mut cdf = Vec::new();
    let mut prop = Vec::new();
    if let Some((f, s)) = scenario(
        ("two-peers", "room and direct messages"),
        plan,
        &mut failures,
        two_peers::run(plan),
    )
    .await
    {
        eprintln!("{}", report::table(&f));
        figures.extend(f);
        cdf = s;
    }
    if let Some((f, s)) = scenario(
        ("mesh", "mesh propagation"),
        plan,
        &mut failures,
        propagation::run(plan),
    )
    .await
    {
        eprintln!("{}", report::table(&f));
        figures.extend(f);
        prop = s;
    }
    if let Some(f) = scenario(
        ("history", "history sync and key derivation"),
        plan,
        &mut failures,
        history::run(plan),
    )
    .await
    {
        eprintln!("{}", report::table(&f));
        figures.extend(f);
    }
    if let Some(f) = scenario(
        ("acks", "publish acknowledgements"),
        plan,
        &mut failures,
        acks::run_all(plan),
    )
    .await
    {
        eprintln!("{}", report::table(&f));
        figures.extend(f);
    }
    if let Some(f) = scenario(
        ("screen", "full-screen client"),
        plan,
        &mut failures,
        screen::run(plan),
    )
    .await
    {
        eprintln!("{}", report::table(&f));
        figures.extend(f);
    }
    if let Some(f) = scenario(
        ("cost", "process cost"),
        plan,
        &mut failures,
        footprint::run(plan),
    )
    .await
    {
        eprintln!("{}", report::table(&f));
        figures.extend(f);
    }

    let table = report::table(&figures);
    let mode = if plan.full { "--full" } else { "--quick" };
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("bench {mode} ({profile} build), commit {sha}, {date}\n\n{table}");
    let out = target_dir().join("bench");
    report::write_json(&out.join("results.json"), &figures, &sha, &date)?;
    std::fs::write(
        out.join("table.md"),
        format!("`bench {mode}` ({profile} build), commit `{sha}`, {date}\n\n{table}"),
    )?;
    let plots = if plan.full && plan.only.is_none() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs")
    } else {
        out.clone()
    };
    std::fs::create_dir_all(&plots)?;
    let title = format!("Room message, 1 hop, 256 B at {}/s ({sha})", plan.lat_rate);
    if let Err(e) = plot::latency_cdf(&plots.join("bench-latency-cdf.svg"), &title, &cdf) {
        failures.push(format!("latency plot: {e:#}"));
    }
    let title = format!("One message to every peer ({sha})");
    if let Err(e) = plot::propagation(&plots.join("bench-propagation.svg"), &title, &prop) {
        failures.push(format!("propagation plot: {e:#}"));
    }
    eprintln!(
        "bench: wrote {} and plots in {}",
        out.join("results.json").display(),
        plots.display()
    );

    if plan.only.is_none() {
        expect_all(plan, &figures, &mut failures);
    }
    for e in &failures {
        eprintln!("bench: FAILED: {e}");
    }
    Ok(failures.is_empty())
}

/// Checks that every scenario produced its figures.
fn expect_all(plan: &Plan, figures: &[Figure], failures: &mut Vec<String>) {
    for name in EXPECTED {
        if !figures.iter().any(|f| f.name == *name) {
            failures.push(format!("figure {name} missing"));
        }
    }
    for n in &plan.mesh_sizes {
        if !figures
            .iter()
            .any(|f| f.name == "mesh.reach_all.p99" && f.params["n"] == *n)
        {
            failures.push(format!("mesh of {n}: no propagation figure"));
        }
    }
    for f in figures {
        if f.baseline_name.is_some() && f.baseline.is_none() {
            failures.push(format!("{}: its baseline measured nothing", f.name));
        }
    }
}
