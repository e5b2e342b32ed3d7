//! `chokepoint diff A B`: two analyses (before and after a change) compared figure by figure.
//! Throughput and latency first, then the verdict, every figure that moved beyond the noise
//! floor (largest relative change first), the hops of each request path and the pools.
//! Renders to JSON (this module's types, docs/reports.md) and Markdown (`markdown.rs`).
mod markdown;
mod paths;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

pub use self::markdown::render as markdown;
use super::figures::{self, Figure};
use crate::analysis::{Analysis, VerdictKind};

/// The version of the diff JSON's shape.
pub const SCHEMA_VERSION: u32 = 1;

/// A change smaller than this share of the larger of the two values is noise...
pub const RELATIVE_NOISE: f64 = 0.15;

/// ...and so is one smaller than this in the figure's unit (a rate of 0 against 0.4/s, a
/// share of 1% against 2%). A figure moves only when it passes both.
pub fn absolute_noise(unit: &str) -> f64 {
    match unit {
        "fraction" | "ratio" => 0.02,
        "cores" => 0.05,
        "1/s" => 1.0,
        "ms" => 0.5,
        "s" | "s/s" => 0.05,
        "count" | "requests" | "threads" | "connections" | "sockets" | "entries" => 1.0,
        _ => 0.0,
    }
}

/// The noise floor a diff judged by, written into its JSON so a reader knows the rule.
#[derive(Debug, Clone, Serialize)]
pub struct NoiseFloor {
    pub relative: f64,
    pub absolute: BTreeMap<&'static str, f64>,
    pub rule: &'static str,
}

impl NoiseFloor {
    fn new() -> Self {
        let units = [
            "fraction",
            "ratio",
            "cores",
            "1/s",
            "ms",
            "s",
            "s/s",
            "count",
            "requests",
            "threads",
            "connections",
            "sockets",
            "entries",
        ];
        NoiseFloor {
            relative: RELATIVE_NOISE,
            absolute: units.iter().map(|u| (*u, absolute_noise(u))).collect(),
            rule: "a figure moved when |after - before| >= relative x max(|before|, |after|) and >= absolute[unit]; a figure only one run has counts as 0 in the other",
        }
    }
}

/// Whether a change from `before` to `after` is beyond the noise floor.
pub fn moved(before: f64, after: f64, unit: &str) -> bool {
    let d = (after - before).abs();
    d > 0.0 && d >= RELATIVE_NOISE * before.abs().max(after.abs()) && d >= absolute_noise(unit)
}

/// One figure in both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub key: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub unit: String,
    /// None when the figure is not in that run (a pool that appeared, evidence of a rule
    /// that only one run evaluated).
    pub before: Option<f64>,
    pub after: Option<f64>,
    /// after - before (a missing side counts as 0).
    pub change: f64,
    /// change / |before|; None when before is 0 or missing.
    pub relative_change: Option<f64>,
    /// Beyond the noise floor.
    pub moved: bool,
}

impl Change {
    pub fn of(before: Option<&Figure>, after: Option<&Figure>) -> Option<Self> {
        let f = before.or(after)?;
        let (b, a) = (before.map(|f| f.value), after.map(|f| f.value));
        let (b0, a0) = (b.unwrap_or(0.0), a.unwrap_or(0.0));
        Some(Change {
            key: f.key.clone(),
            name: f.name.clone(),
            labels: f.labels.clone(),
            unit: f.unit.clone(),
            before: b,
            after: a,
            change: a0 - b0,
            relative_change: (b0 != 0.0).then(|| (a0 - b0) / b0.abs()),
            moved: moved(b0, a0, &f.unit),
        })
    }

    /// How far it moved, 0..=1: |change| / max(|before|, |after|) (1 for a figure from or
    /// to zero, or one that changed sign); the order of `moved[]`.
    pub fn score(&self) -> f64 {
        let (b, a) = (self.before.unwrap_or(0.0), self.after.unwrap_or(0.0));
        let m = b.abs().max(a.abs());
        if m == 0.0 {
            0.0
        } else {
            ((a - b).abs() / m).min(1.0)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VerdictChange {
    pub before: VerdictKind,
    pub after: VerdictKind,
    pub changed: bool,
    pub summary_before: String,
    pub summary_after: String,
}

/// One side of the comparison, named as the user named it.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub recording: String,
    pub duration_seconds: f64,
    pub window: crate::analysis::Window,
}

/// The whole comparison (docs/reports.md).
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub schema_version: u32,
    pub chokepoint_version: String,
    /// Whether anything moved beyond the noise floor: the verdict kind, a figure, a hop or a
    /// pool. A recording against itself is false.
    pub changed: bool,
    pub noise_floor: NoiseFloor,
    pub before: Side,
    pub after: Side,
    pub verdict: VerdictChange,
    /// The load generator's throughput (requests/s), when either run has one.
    pub throughput: Option<Change>,
    /// The load generator's latency figures either run has (mean, p50 ... max).
    pub latency: Vec<Change>,
    /// Every figure beyond the noise floor, the largest relative change first.
    pub moved: Vec<Change>,
    /// Per request path (client → server), the hops whose figures moved or that one run
    /// lacks.
    pub hops: Vec<paths::HopChange>,
    /// Pools that moved, appeared or went away.
    pub pools: Vec<paths::PoolChange>,
}

/// Compares two analyses; `names` are how the user named the two recordings.
pub fn diff(before: &Analysis, after: &Analysis, names: [&str; 2]) -> Diff {
    let (fb, fa) = (figures::figures(before), figures::figures(after));
    let keys: BTreeSet<&String> = fb.keys().chain(fa.keys()).collect();
    let all: Vec<Change> = keys
        .into_iter()
        .filter_map(|k| Change::of(fb.get(k), fa.get(k)))
        .collect();
    let throughput = all.iter().find(|c| c.key == figures::THROUGHPUT).cloned();
    let latency: Vec<Change> = figures::LATENCY
        .iter()
        .filter_map(|(name, _)| all.iter().find(|c| c.key == *name).cloned())
        .collect();
    let mut moved: Vec<Change> = all.into_iter().filter(|c| c.moved).collect();
    moved.sort_by(|x, y| {
        let both = |c: &Change| c.before.is_some() && c.after.is_some();
        y.score()
            .total_cmp(&x.score())
            .then(both(y).cmp(&both(x)))
            .then(y.change.abs().total_cmp(&x.change.abs()))
            .then(x.key.cmp(&y.key))
    });
    let hops = paths::hops(before, after);
    let pools = paths::pools(before, after);
    let verdict = VerdictChange {
        before: before.verdict.kind,
        after: after.verdict.kind,
        changed: before.verdict.kind != after.verdict.kind,
        summary_before: before.verdict.summary.clone(),
        summary_after: after.verdict.summary.clone(),
    };
    let changed = verdict.changed || !moved.is_empty() || !hops.is_empty() || !pools.is_empty();
    let side = |a: &Analysis, name: &str| Side {
        recording: name.to_string(),
        duration_seconds: a.duration_seconds,
        window: a.window.clone(),
    };
    Diff {
        schema_version: SCHEMA_VERSION,
        chokepoint_version: env!("CARGO_PKG_VERSION").to_string(),
        changed,
        noise_floor: NoiseFloor::new(),
        before: side(before, names[0]),
        after: side(after, names[1]),
        verdict,
        throughput,
        latency,
        moved,
        hops,
        pools,
    }
}
