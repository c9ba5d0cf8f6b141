//! Scenarios 1 and 2: a room message over one hop (latency at a fixed
//! pace, sustained throughput) and a direct message's round trip, ours
//! beside bare libp2p and raw TCP, repetitions interleaved so that the
//! machine's noise falls on all systems alike.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use serde_json::json;

use crate::{
    Plan, floor,
    load::{Link, RoundTrip, TEXT_BYTES, round_trips},
    pairs::{BarePair, Ours},
    plot::{Series, cdf},
    report::{Figure, percentile},
};

const BARE: &str = "bare libp2p";
const FLOOR: &str = "raw TCP";
/// Round trips of one repetition must finish within this.
const RTT_LIMIT: Duration = Duration::from_secs(120);

/// Per-repetition results of one system.
#[derive(Default)]
struct Acc {
    p50: Vec<f64>,
    p99: Vec<f64>,
    tput: Vec<f64>,
    lost: usize,
    samples: Vec<f64>,
}

/// Runs scenarios 1 and 2; returns the figures and the latency CDFs.
pub(crate) async fn run(plan: &Plan) -> anyhow::Result<(Vec<Figure>, Vec<Series>)> {
    let cap = plan.reps * (plan.lat_n + plan.tput_n) + 100_000;
    let ours_tcp = Ours::start(false).await.context("our TCP pair")?;
    let ours_quic = Ours::start(true).await.context("our QUIC pair")?;
    let bare_tcp = BarePair::start(false, cap).await.context("bare TCP pair")?;
    let bare_quic = BarePair::start(true, cap).await.context("bare QUIC pair")?;
    let mut links: Vec<(&str, Link)> = vec![
        ("ours tcp plain", ours_tcp.link(false, cap).await?),
        ("ours tcp sealed", ours_tcp.link(true, cap).await?),
        ("ours quic plain", ours_quic.link(false, cap).await?),
        ("ours quic sealed", ours_quic.link(true, cap).await?),
        ("bare tcp", bare_tcp.link()),
        ("bare quic", bare_quic.link()),
        ("floor tcp", floor::link(cap).await?),
    ];
    for (name, link) in &mut links {
        link.warm_up(Duration::from_secs(20))
            .await
            .with_context(|| format!("warming up {name}"))?;
    }
    let mut acc: BTreeMap<&str, Acc> = BTreeMap::new();
    for _ in 0..plan.reps {
        for (name, link) in &mut links {
            let a = acc.entry(name).or_default();
            let lat = link.paced(plan.lat_n, plan.lat_rate).await?;
            a.p50.push(percentile(&lat.ms, 50.0));
            a.p99.push(percentile(&lat.ms, 99.0));
            a.lost += lat.lost;
            a.samples.extend(&lat.ms);
            let (tput, lost) = link.windowed(plan.tput_n, plan.window).await?;
            a.tput.push(tput);
            a.lost += lost;
        }
    }
    let mut figures = room_figures(plan, &acc);
    let dm = direct(plan, &ours_tcp, &bare_tcp).await;
    ours_tcp.stop().await;
    ours_quic.stop().await;
    bare_tcp.stop();
    bare_quic.stop();
    figures.extend(dm?);
    let series = [
        ("ours tcp plain", "ours, TCP"),
        ("ours tcp sealed", "ours, TCP, encrypted room"),
        ("ours quic plain", "ours, QUIC"),
        ("bare tcp", "bare libp2p, TCP"),
        ("bare quic", "bare libp2p, QUIC"),
        ("floor tcp", "raw TCP lines"),
    ]
    .iter()
    .filter_map(|(key, label)| acc.get(key).map(|a| cdf(label, &a.samples)))
    .collect();
    Ok((figures, series))
}

fn room_figures(plan: &Plan, acc: &BTreeMap<&str, Acc>) -> Vec<Figure> {
    let mut out = Vec::new();
    let get = |k: &str| acc.get(k);
    for transport in ["tcp", "quic"] {
        let Some(bare) = get(&format!("bare {transport}")) else {
            continue;
        };
        for (room, key) in [("plain", "plain"), ("encrypted", "sealed")] {
            let Some(ours) = get(&format!("ours {transport} {key}")) else {
                continue;
            };
            let params = |extra: serde_json::Value| {
                let mut p = json!({"transport": transport, "room": room, "text_bytes": TEXT_BYTES});
                if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
                    p.extend(e.clone());
                }
                p
            };
            let lat = json!({"rate_per_s": plan.lat_rate, "msgs": plan.lat_n, "lost": ours.lost});
            out.extend(
                Figure::new("room.latency.p50", params(lat.clone()), "ms", &ours.p50)
                    .map(|f| f.against(BARE, &bare.p50)),
            );
            out.extend(
                Figure::new("room.latency.p99", params(lat), "ms", &ours.p99)
                    .map(|f| f.against(BARE, &bare.p99)),
            );
            let tp = json!({"msgs": plan.tput_n, "window": plan.window, "lost": ours.lost});
            let fig = Figure::new("room.throughput", params(tp), "msg/s", &ours.tput);
            if room == "plain" {
                out.extend(fig.map(|f| f.against(BARE, &bare.tput)));
            } else if let Some(plain) = get(&format!("ours {transport} plain")) {
                out.extend(fig.map(|f| f.against("ours, plain room", &plain.tput)));
            }
        }
    }
    if let (Some(ours), Some(floor)) = (get("ours tcp plain"), get("floor tcp")) {
        let p = json!({"transport": "tcp", "room": "plain", "text_bytes": TEXT_BYTES, "rate_per_s": plan.lat_rate});
        out.extend(
            Figure::new("room.latency.p50", p.clone(), "ms", &ours.p50)
                .map(|f| f.against(FLOOR, &floor.p50)),
        );
        out.extend(
            Figure::new("room.latency.p99", p.clone(), "ms", &ours.p99)
                .map(|f| f.against(FLOOR, &floor.p99)),
        );
        out.extend(
            Figure::new("room.throughput", p, "msg/s", &ours.tput)
                .map(|f| f.against(FLOOR, &floor.tput)),
        );
    }
    out
}

/// Scenario 2: direct-message round trips, one at a time and 32 in flight.
async fn direct(plan: &Plan, ours: &Ours, bare: &BarePair) -> anyhow::Result<Vec<Figure>> {
    let mut out = Vec::new();
    for inflight in [1usize, 32] {
        let systems: Vec<(&str, Vec<RoundTrip>)> = vec![
            ("ours", ours.round_trips(inflight)),
            (BARE, bare.round_trips(inflight)),
            (FLOOR, floor::round_trips(inflight).await?),
        ];
        // Connections and streams are warm before timing.
        for (name, trips) in &systems {
            round_trips(trips, inflight * 2, RTT_LIMIT)
                .await
                .with_context(|| format!("warming up {name} round trips"))?;
        }
        let mut acc: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for _ in 0..plan.reps {
            for (name, trips) in &systems {
                let ms = round_trips(trips, plan.dm_n, RTT_LIMIT)
                    .await
                    .with_context(|| format!("{name} round trips"))?;
                let e = acc.entry(name).or_default();
                e.0.push(percentile(&ms, 50.0));
                e.1.push(percentile(&ms, 99.0));
            }
        }
        let params = json!({"inflight": inflight, "requests": plan.dm_n, "text_bytes": TEXT_BYTES});
        if let (Some(o), Some(b)) = (acc.get("ours"), acc.get(BARE)) {
            out.extend(
                Figure::new("dm.rtt.p50", params.clone(), "ms", &o.0)
                    .map(|f| f.against(BARE, &b.0)),
            );
            out.extend(
                Figure::new("dm.rtt.p99", params.clone(), "ms", &o.1)
                    .map(|f| f.against(BARE, &b.1)),
            );
        }
        if let (Some(o), Some(t)) = (acc.get("ours"), acc.get(FLOOR)) {
            out.extend(
                Figure::new("dm.rtt.p50", params, "ms", &o.0).map(|f| f.against(FLOOR, &t.0)),
            );
        }
    }
    Ok(out)
}
