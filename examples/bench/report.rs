//! Figures and how they are reported: the median of several repetitions
//! with its min-max, beside a baseline measured in the same run, printed as
//! a table and written as one JSON object per figure.

use std::{fmt::Write as _, path::Path};

use serde_json::{Value, json};

/// The median, min and max of one quantity over repetitions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) reps: usize,
}

impl Spread {
    /// None when there is no finite value to summarise.
    pub(crate) fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            reps: n,
        })
    }
}

/// The `p`-th percentile (0..=100) of samples, nearest rank.
pub(crate) fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// One reported figure.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    pub(crate) name: String,
    pub(crate) params: Value,
    pub(crate) unit: &'static str,
    pub(crate) value: Spread,
    /// What the baseline is, e.g. "bare libp2p".
    pub(crate) baseline_name: Option<String>,
    pub(crate) baseline: Option<Spread>,
}

impl Figure {
    /// A figure from per-repetition values; None if nothing was measured.
    pub(crate) fn new(name: &str, params: Value, unit: &'static str, ours: &[f64]) -> Option<Self> {
        Some(Figure {
            name: name.to_owned(),
            params,
            unit,
            value: Spread::of(ours)?,
            baseline_name: None,
            baseline: None,
        })
    }

    /// Adds the baseline (per-repetition values) it is compared with.
    pub(crate) fn against(mut self, name: &str, values: &[f64]) -> Self {
        self.baseline_name = Some(name.to_owned());
        self.baseline = Spread::of(values);
        self
    }

    /// Ours / baseline, medians.
    pub(crate) fn ratio(&self) -> Option<f64> {
        let b = self.baseline?;
        (b.median != 0.0).then(|| self.value.median / b.median)
    }

    fn to_json(&self, sha: &str, date: &str) -> Value {
        let spread =
            |s: &Spread| json!({"median": s.median, "min": s.min, "max": s.max, "reps": s.reps});
        json!({
            "name": self.name,
            "params": self.params,
            "value": self.value.median,
            "unit": self.unit,
            "min": self.value.min,
            "max": self.value.max,
            "reps": self.value.reps,
            "baseline_name": self.baseline_name,
            "baseline_value": self.baseline.map(|b| b.median),
            "baseline": self.baseline.as_ref().map(spread),
            "ratio": self.ratio(),
            "git_sha": sha,
            "date": date,
        })
    }
}

/// A short commit id of the work tree, or "unknown".
pub(crate) fn git_sha() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Now, UTC, as `YYYY-MM-DD HH:MM`.
pub(crate) fn utc_now() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Writes every figure as a JSON array.
pub(crate) fn write_json(
    path: &Path,
    figures: &[Figure],
    sha: &str,
    date: &str,
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let all: Vec<Value> = figures.iter().map(|f| f.to_json(sha, date)).collect();
    std::fs::write(path, serde_json::to_string_pretty(&all)?)?;
    Ok(())
}

fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn cell(s: &Spread) -> String {
    format!("{} ({}–{})", num(s.median), num(s.min), num(s.max))
}

fn params_text(params: &Value) -> String {
    match params {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The table as Markdown: figure, params, ours, baseline, ratio.
pub(crate) fn table(figures: &[Figure]) -> String {
    let mut out = String::from(
        "| figure | params | ours: median (min–max) | unit | baseline | baseline: median (min–max) | ratio |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for f in figures {
        let base = f.baseline.as_ref().map(cell).unwrap_or_else(|| "–".into());
        let ratio = f
            .ratio()
            .map(|r| format!("{r:.2}"))
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            f.name,
            params_text(&f.params),
            cell(&f.value),
            f.unit,
            f.baseline_name.as_deref().unwrap_or("–"),
            base,
            ratio
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_percentiles() {
        let s = Spread::of(&[3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.reps), (2.0, 1.0, 3.0, 3));
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert!(Spread::of(&[]).is_none());
    }
}
