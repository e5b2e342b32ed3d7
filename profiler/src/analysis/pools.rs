//! Connection pools over the analysis window: each interval's pool rows grouped by (process
//! name, upstream, endpoint) and averaged (docs/json.md, `pools[]`).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::recording::Interval;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSummary {
    /// The process name holding the connections (all its processes together).
    pub process: String,
    pub upstream: String,
    pub endpoint: String,
    /// Averages over the window's intervals (an interval without the pool counts as zero).
    pub size: f64,
    pub in_use: f64,
    /// in_use / size.
    pub utilisation: f64,
    pub queued: f64,
    /// Little's law over the window: queued / inbound request rate.
    pub wait_ms_estimate: f64,
    pub requests_per_s: f64,
    pub inbound_concurrency: f64,
    pub inbound_per_s: f64,
    /// Intervals of the window in which the pool carried or held connections.
    pub intervals: usize,
}

/// Pools of the window, most queued first, then busiest.
pub fn summarize(intervals: &[&Interval]) -> Vec<PoolSummary> {
    #[derive(Default)]
    struct Acc {
        size: f64,
        in_use: f64,
        queued: f64,
        requests: f64,
        inbound: f64,
        inbound_rate: f64,
        intervals: usize,
    }
    let n = intervals.len().max(1) as f64;
    let mut groups: BTreeMap<(String, String, String), Acc> = BTreeMap::new();
    for iv in intervals {
        let mut seen = Vec::new();
        for p in &iv.pools {
            let key = (p.comm.clone(), p.upstream.clone(), p.endpoint.clone());
            let a = groups.entry(key.clone()).or_default();
            a.size += f64::from(p.size);
            a.in_use += p.in_use;
            a.queued += p.queued;
            a.requests += p.requests_per_s;
            a.inbound += p.inbound_concurrency;
            a.inbound_rate += p.inbound_per_s;
            if !seen.contains(&key) {
                a.intervals += 1;
                seen.push(key);
            }
        }
    }
    let mut out: Vec<PoolSummary> = groups
        .into_iter()
        .map(|((process, upstream, endpoint), a)| {
            let (size, in_use, queued) = (a.size / n, a.in_use / n, a.queued / n);
            let inbound_per_s = a.inbound_rate / n;
            PoolSummary {
                process,
                upstream,
                endpoint,
                size,
                in_use,
                utilisation: if size > 0.0 { in_use / size } else { 0.0 },
                queued,
                wait_ms_estimate: crate::session::pools::wait_ms(queued, inbound_per_s),
                requests_per_s: a.requests / n,
                inbound_concurrency: a.inbound / n,
                inbound_per_s,
                intervals: a.intervals,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.queued
            .total_cmp(&a.queued)
            .then(b.in_use.total_cmp(&a.in_use))
    });
    out
}
