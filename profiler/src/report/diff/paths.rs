//! The structural half of a diff: request paths' hops and connection pools, matched across
//! the two runs by what they are (client and server names without pids, a hop's place, kind
//! and name; a pool's holder and upstream), with the figures of each that moved.
use std::collections::BTreeMap;

use serde::Serialize;

use super::Change;
use crate::{
    analysis::{
        Analysis, Hop, NetPath,
        pools::{self, PoolSummary},
    },
    report::figures::{Figure, without_pid},
};

/// Whether a hop or pool is in both runs or only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Presence {
    Both,
    /// Only in the second run.
    Added,
    /// Only in the first run.
    Removed,
}

#[derive(Debug, Clone, Serialize)]
pub struct HopChange {
    /// `client → server`, without pids.
    pub path: String,
    /// `N kind name`: the hop's place on its path (from 1), kind and name.
    pub hop: String,
    pub presence: Presence,
    /// The hop's figures beyond the noise floor.
    pub moved: Vec<Change>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolChange {
    /// `holder->upstream`.
    pub pool: String,
    pub presence: Presence,
    pub moved: Vec<Change>,
}

fn figure(name: &str, value: Option<f64>, unit: &str) -> Option<Figure> {
    value.map(|value| Figure {
        key: name.to_string(),
        name: name.to_string(),
        labels: BTreeMap::new(),
        value,
        unit: unit.to_string(),
    })
}

/// The moved ones of a list of figures present on either side.
fn moved(before: &[Option<Figure>], after: &[Option<Figure>]) -> Vec<Change> {
    before
        .iter()
        .zip(after)
        .filter_map(|(b, a)| Change::of(b.as_ref(), a.as_ref()))
        .filter(|c| c.moved)
        .collect()
}

fn hop_figures(h: Option<&Hop>) -> Vec<Option<Figure>> {
    let f = |name, v: fn(&Hop) -> Option<f64>, unit| figure(name, h.and_then(v), unit);
    vec![
        f("packets_per_s", |h| h.packets_per_s, "1/s"),
        f("bytes_per_s", |h| h.bytes_per_s, "B/s"),
        f("drops", |h| h.drops.map(|d| d as f64), "count"),
        f("cpu_share", |h| h.cpu_share, "fraction"),
        f("connect_ms", |h| h.connect_ms, "ms"),
        f("cpu_us_per_request", |h| h.cpu_us_per_request, "us"),
    ]
}

fn path_name(p: &NetPath) -> String {
    format!("{} → {}", without_pid(&p.client), without_pid(&p.server))
}

fn hop_name(i: usize, h: &Hop) -> String {
    let kind = serde_json::to_value(h.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    format!("{} {kind} {}", i + 1, h.name)
}

/// Pairs items by name; with `loose`, what is left unpaired on both sides is paired in order
/// (the busiest path of one run with the busiest of the other, when a server's port changed
/// between runs).
fn pair<'a, T>(
    before: &'a [T],
    after: &'a [T],
    loose: bool,
    name: impl Fn(&T) -> String,
) -> Vec<(Option<&'a T>, Option<&'a T>)> {
    let mut taken = vec![false; after.len()];
    let mut out = Vec::new();
    let mut lone = Vec::new();
    for b in before {
        match (0..after.len()).find(|&i| !taken[i] && name(&after[i]) == name(b)) {
            Some(i) => {
                taken[i] = true;
                out.push((Some(b), Some(&after[i])));
            }
            None => lone.push(b),
        }
    }
    let mut rest = (0..after.len()).filter(|&i| !taken[i]).map(|i| &after[i]);
    for b in lone {
        out.push((Some(b), if loose { rest.next() } else { None }));
    }
    out.extend(rest.map(|a| (None, Some(a))));
    out
}

fn presence<T>(b: Option<&T>, a: Option<&T>) -> Presence {
    match (b, a) {
        (Some(_), Some(_)) => Presence::Both,
        (None, _) => Presence::Added,
        (_, None) => Presence::Removed,
    }
}

/// The hops of each path that moved, appeared or went away.
pub fn hops(before: &Analysis, after: &Analysis) -> Vec<HopChange> {
    let mut out = Vec::new();
    for (pb, pa) in pair(&before.paths, &after.paths, true, path_name) {
        let Some(path) = pa.or(pb) else { continue };
        let hops = |p: Option<&NetPath>| -> Vec<(String, Hop)> {
            p.map(|p| {
                p.hops
                    .iter()
                    .enumerate()
                    .map(|(i, h)| (hop_name(i, h), h.clone()))
                    .collect()
            })
            .unwrap_or_default()
        };
        let (hb, ha) = (hops(pb), hops(pa));
        for (b, a) in pair(&hb, &ha, false, |(n, _)| n.clone()) {
            let Some((name, _)) = b.or(a) else { continue };
            let presence = presence(b, a);
            let moved = moved(
                &hop_figures(b.map(|(_, h)| h)),
                &hop_figures(a.map(|(_, h)| h)),
            );
            if presence != Presence::Both || !moved.is_empty() {
                out.push(HopChange {
                    path: path_name(path),
                    hop: name.clone(),
                    presence,
                    moved,
                });
            }
        }
    }
    out
}

fn pool_figures(p: Option<&PoolSummary>) -> Vec<Option<Figure>> {
    let f = |name, v: fn(&PoolSummary) -> f64, unit| figure(name, p.map(v), unit);
    vec![
        f("size", |p| p.size, "connections"),
        f("in_use", |p| p.in_use, "connections"),
        f("utilisation", |p| p.utilisation, "fraction"),
        f("queued", |p| p.queued, "requests"),
        f("wait_ms_estimate", |p| p.wait_ms_estimate, "ms"),
        f("requests_per_s", |p| p.requests_per_s, "1/s"),
        f("opens_per_s", |p| p.opens_per_s, "1/s"),
    ]
}

fn pool_name(p: &PoolSummary) -> String {
    pools::pool_name(&(p.process.clone(), p.upstream.clone(), p.endpoint.clone()))
}

/// The pools that moved, appeared or went away.
pub fn pools(before: &Analysis, after: &Analysis) -> Vec<PoolChange> {
    pair(&before.pools, &after.pools, false, pool_name)
        .into_iter()
        .filter_map(|(b, a)| {
            let pool = pool_name(b.or(a)?);
            let presence = presence(b, a);
            let moved = moved(&pool_figures(b), &pool_figures(a));
            (presence != Presence::Both || !moved.is_empty()).then_some(PoolChange {
                pool,
                presence,
                moved,
            })
        })
        .collect()
}
