//! Scenario 5: what one node costs as a process (memory idle and holding
//! messages, time to listening, binary size, CPU per relayed message),
//! beside a bare libp2p peer process measured the same way.

use std::time::Duration;

use anyhow::Context;
use p2p_chat::limits::RING_CAP;
use serde_json::json;

use crate::{
    Plan,
    cost::{Proc, Program, Relay, our_binary},
    report::Figure,
};

const BARE: &str = "bare libp2p process";

#[derive(Default)]
struct Acc {
    start_ms: Vec<f64>,
    health_ms: Vec<f64>,
    idle_mib: Vec<f64>,
    held_mib: Vec<f64>,
    cpu_ms: Vec<f64>,
    lost: usize,
}

/// Relays `n` messages through `middle`; CPU ms per 1,000 and RSS after.
async fn relay(
    middle: &Proc,
    program: Program,
    n: usize,
    window: usize,
) -> anyhow::Result<(f64, f64, usize)> {
    let mut relay = Relay::through(&middle.addr, program, n + 10_000).await?;
    let result = async {
        relay.link.warm_up(Duration::from_secs(20)).await?;
        let before = middle.cpu_s()?;
        let (_, lost) = relay.link.windowed(n, window).await?;
        let cpu = middle.cpu_s()? - before;
        anyhow::Ok((cpu * 1e3 * 1000.0 / n as f64, middle.rss_mib()?, lost))
    }
    .await;
    relay.stop();
    result
}

/// Runs scenario 5.
pub(crate) async fn run(plan: &Plan) -> anyhow::Result<Vec<Figure>> {
    let bin = our_binary()?;
    let mut ours = Acc::default();
    let mut bare = Acc::default();
    for _ in 0..plan.reps {
        for (program, acc) in [(Program::Ours, &mut ours), (Program::Bare, &mut bare)] {
            let p = Proc::start(program, &bin)
                .await
                .with_context(|| format!("starting {program:?}"))?;
            acc.start_ms.push(p.start.as_secs_f64() * 1e3);
            acc.health_ms
                .extend(p.health.map(|d| d.as_secs_f64() * 1e3));
            tokio::time::sleep(plan.idle_wait).await;
            acc.idle_mib.push(p.rss_mib()?);
            let r = relay(&p, program, plan.relay_n, plan.window).await;
            p.stop().await;
            let (cpu, held, lost) = r.with_context(|| format!("relaying through {program:?}"))?;
            acc.cpu_ms.push(cpu);
            acc.held_mib.push(held);
            acc.lost += lost;
        }
    }
    let idle = json!({"wait_after_listening_s": plan.idle_wait.as_secs_f64(), "peers": 0});
    let start = json!({"until": "first listening line on stdout with --json"});
    let held = json!({
        "messages_relayed": plan.relay_n,
        "messages_held": plan.relay_n,
        "in_memory_ring": plan.relay_n.min(RING_CAP),
        "history": "durable store in a data dir",
        "peers": 2,
        "lost": ours.lost,
    });
    let cpu = json!({"messages": plan.relay_n, "text_bytes": crate::load::TEXT_BYTES, "window": plan.window, "lost": ours.lost, "bare_lost": bare.lost});
    let mut out = Vec::new();
    let mut fig =
        |name: &str, params: serde_json::Value, unit: &'static str, o: &[f64], b: &[f64]| {
            out.extend(Figure::new(name, params, unit, o).map(|f| f.against(BARE, b)));
        };
    fig("cost.idle_rss", idle, "MiB", &ours.idle_mib, &bare.idle_mib);
    fig(
        "cost.start_to_listening",
        start,
        "ms",
        &ours.start_ms,
        &bare.start_ms,
    );
    fig(
        "cost.start_to_health",
        json!({"until": "first 200 from GET /health", "baseline_until": "the bare process's listening line (it has no HTTP)"}),
        "ms",
        &ours.health_ms,
        &bare.start_ms,
    );
    fig(
        "cost.rss_holding_messages",
        held,
        "MiB",
        &ours.held_mib,
        &bare.held_mib,
    );
    fig(
        "cost.cpu_per_1000_relayed",
        cpu,
        "ms",
        &ours.cpu_ms,
        &bare.cpu_ms,
    );
    let size = std::fs::metadata(&bin)?.len() as f64 / (1024.0 * 1024.0);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    out.extend(Figure::new(
        "cost.binary_size",
        json!({"profile": profile, "binary": "p2p-chat"}),
        "MiB",
        &[size],
    ));
    Ok(out)
}
