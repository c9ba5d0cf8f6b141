//! Scenario 3: one message to every peer of a mesh of N, for each N of the
//! plan, ours beside bare libp2p; and how the time grows with N.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::{
    Plan,
    mesh::{BareMesh, Mesh, OursMesh},
    plot::Series,
    report::{Figure, percentile},
};

const BARE: &str = "bare libp2p";
/// How long one message may take to reach every peer.
const REACH_LIMIT: Duration = Duration::from_secs(5);

/// Per-repetition results on one mesh.
#[derive(Default)]
struct Acc {
    p50: Vec<f64>,
    p99: Vec<f64>,
    reached: Vec<f64>,
    formed_s: f64,
}

async fn measure(mesh: &mut Mesh, plan: &Plan, who: &str) -> anyhow::Result<Acc> {
    mesh.warm_up(10).await?;
    let mut acc = Acc {
        formed_s: mesh.formed_s,
        ..Default::default()
    };
    for _ in 0..plan.mesh_reps {
        let p = mesh.run(plan.mesh_msgs, REACH_LIMIT).await?;
        acc.p50.push(percentile(&p.ms, 50.0));
        acc.p99.push(percentile(&p.ms, 99.0));
        acc.reached.push(p.ms.len() as f64 / plan.mesh_msgs as f64);
        eprintln!(
            "bench:   {who}: formed in {:.1} s, p50 {:.2} ms, p99 {:.2} ms, {} of {} unreached",
            mesh.formed_s,
            percentile(&p.ms, 50.0),
            percentile(&p.ms, 99.0),
            p.unreached,
            plan.mesh_msgs
        );
    }
    Ok(acc)
}

/// Runs scenario 3; returns the figures and propagation-vs-N series.
pub(crate) async fn run(plan: &Plan) -> anyhow::Result<(Vec<Figure>, Vec<Series>)> {
    let mut out = Vec::new();
    let mut by_n: Vec<(usize, Acc, Acc)> = Vec::new();
    let total = (plan.mesh_msgs * plan.mesh_reps) as f64;
    for &n in &plan.mesh_sizes {
        let (ours, mut mesh) = OursMesh::start(n)
            .await
            .with_context(|| format!("our mesh of {n}"))?;
        let settled_s = ours.settle().await?;
        let (mean, max) = ours.degree().await?;
        let dials = ours.dials()? / n as f64;
        eprintln!(
            "bench:   ours, n={n}: settled {settled_s:.1} s after forming, {mean:.1} peers per node (at most {max}), {dials:.0} dials per node"
        );
        let counted_before = ours.counted_duplicates().await?;
        let ours_before = ours.receptions()?;
        let o = measure(&mut mesh, plan, &format!("ours, n={n}")).await;
        let counted = ours.counted_duplicates().await? - counted_before;
        let ours_after = ours.receptions()?;
        let repeats = mesh.reach.repeats();
        let ours_degree = ours.degree().await?;
        ours.stop().await;
        let o = o.with_context(|| format!("our mesh of {n}"))?;

        let (bare, mut mesh) = BareMesh::start(n, 0x5eed + n as u64)
            .await
            .with_context(|| format!("bare mesh of {n}"))?;
        let before = bare.receptions()?;
        let b = measure(&mut mesh, plan, &format!("bare, n={n}")).await;
        let after = bare.receptions()?;
        let bare_degree = bare.degree().await?;
        bare.stop();
        let b = b.with_context(|| format!("bare mesh of {n}"))?;

        let params = json!({"n": n, "msgs_per_rep": plan.mesh_msgs, "join": "one bootstrap peer"});
        let fig = |name: &str, unit: &'static str, ours: &[f64], bare: &[f64]| {
            Figure::new(name, params.clone(), unit, ours).map(|f| f.against(BARE, bare))
        };
        out.extend(fig("mesh.reach_all.p50", "ms", &o.p50, &b.p50));
        out.extend(fig("mesh.reach_all.p99", "ms", &o.p99, &b.p99));
        out.extend(fig(
            "mesh.reached_every_peer",
            "fraction",
            &o.reached,
            &b.reached,
        ));
        out.extend(fig("mesh.formed", "s", &[o.formed_s], &[b.formed_s]));
        // Measured after connections settle (see `OursMesh::settle`).
        out.extend(Figure::new(
            "mesh.settled_after_formed",
            json!({"n": n}),
            "s",
            &[settled_s],
        ));
        // Discovery's cost until then: every dial is a handshake.
        out.extend(Figure::new(
            "mesh.dials_per_node",
            json!({"n": n, "until": "settled"}),
            "count",
            &[dials],
        ));
        // Connections per peer: what flood publishing and gossip fan out to.
        let degree = json!({"n": n, "ours_max": ours_degree.1, "bare_max": bare_degree.1});
        out.extend(
            Figure::new(
                "mesh.connections_per_peer",
                degree,
                "mean",
                &[ours_degree.0],
            )
            .map(|f| f.against(BARE, &[bare_degree.0])),
        );
        // What the node can tell about duplicates: ids it saw twice after
        // gossipsub's own filter, by its status counter and by its events.
        out.extend(Figure::new(
            "mesh.duplicates_per_msg.node_counted",
            json!({"n": n, "source": "status stats.rejected.duplicate, summed over nodes", "repeated_events": repeats}),
            "count",
            &[counted as f64 / total],
        ));
        // On the wire: gossipsub's own counters, every node's and every bare
        // peer's, summed.
        let dupes = |before: (f64, f64), after: (f64, f64)| {
            ((after.0 - before.0) - (after.1 - before.1)) / total
        };
        out.extend(
            Figure::new(
                "mesh.duplicates_per_msg.wire",
                json!({"n": n, "source": "gossipsub metrics, summed over peers", "receptions_per_msg": (ours_after.0 - ours_before.0) / total, "bare_receptions_per_msg": (after.0 - before.0) / total}),
                "count",
                &[dupes(ours_before, ours_after)],
            )
            .map(|f| f.against(BARE, &[dupes(before, after)])),
        );
        by_n.push((n, o, b));
    }
    if let (Some(first), Some(last)) = (by_n.first(), by_n.last())
        && by_n.len() > 1
    {
        out.extend(
            Figure::new(
                "mesh.reach_all.p99.growth",
                json!({"n": last.0, "vs_n": first.0}),
                "ms",
                &last.1.p99,
            )
            .map(|f| f.against(&format!("ours, n={}", first.0), &first.1.p99)),
        );
    }
    let median = |v: &[f64]| percentile(v, 50.0);
    let line = |label: &str, pick: &dyn Fn(&(usize, Acc, Acc)) -> f64| Series {
        label: label.to_owned(),
        points: by_n.iter().map(|e| (e.0 as f64, pick(e))).collect(),
    };
    let series = vec![
        line("ours p50", &|e| median(&e.1.p50)),
        line("ours p99", &|e| median(&e.1.p99)),
        line("bare libp2p p50", &|e| median(&e.2.p50)),
        line("bare libp2p p99", &|e| median(&e.2.p99)),
    ];
    Ok((out, series))
}
