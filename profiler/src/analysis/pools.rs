//! Connection pools over the analysis window: each interval's pool rows grouped by (process
//! name, upstream, endpoint) and averaged (docs/json.md, `pools[]`).
//!
//! A pool is any cap on concurrent upstream work. Where the holder keeps its upstream
//! connections (a pool of sockets), it is full when its sockets are busy; where it opens a
//! connection per request (a proxy with `http-server-close`, a client without keep-alive),
//! closed sockets are no free slots: the cap is the level the requests in flight upstream
//! hold. Either way the requests queued behind it are the holder's inbound requests in flight
//! that neither its upstream connections nor its own CPU carry, decided here from the
//! recorded figures so a changed rule replays over every recording.
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::recording::{Direction, Interval, pools::POOL_FULL};

/// The port of `address:port` (or `[v6]:port`).
fn endpoint_port(endpoint: &str) -> Option<u16> {
    endpoint.rsplit_once(':')?.1.parse().ok()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSummary {
    /// The process name holding the connections (all its processes together).
    pub process: String,
    pub upstream: String,
    pub endpoint: String,
    /// Averages over the window's intervals in which connection use was measured (all of them
    /// with `--probes all`; an interval without the pool counts as zero).
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
    /// Measured intervals of the window in which the pool carried or held connections.
    pub intervals: usize,
    /// Whether the holder opened about one connection per request to the endpoint (at least
    /// half as many connects as requests): then `size` counts sockets that come and go, and
    /// `utilisation` is the requests in flight against the highest level they held in an
    /// interval (`ceiling`).
    #[serde(default)]
    pub churned: bool,
    #[serde(default)]
    pub opens_per_s: f64,
    #[serde(default)]
    pub ceiling: f64,
    /// Whether the holder took in more requests than this pool carried turns (request sent ->
    /// response received) to the endpoint, fewer than `CARRIED_SHARE` of them: requests share
    /// a turn (HTTP/2 or gRPC streams multiplexed on a connection, pipelining), or the holder
    /// answers some itself. Either way connections in use do not bound the requests upstream
    /// and `queued` (inbound in flight - in use) counts requests that are not waiting for it.
    #[serde(default)]
    pub multiplexed: bool,
}

/// A pool carries the holder's requests one per turn when its turns are at least this share
/// of the holder's inbound requests (measured 0.998-1.000 for PgBouncer, haproxy and lab-proxy
/// forwarding every request; 0.58 for haproxy multiplexing 8 clients' requests as HTTP/2
/// streams on 2 connections).
pub const CARRIED_SHARE: f64 = 0.9;

/// A pool's figures in one interval, before averaging.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntervalPool {
    pub size: f64,
    pub in_use: f64,
    pub queued: f64,
    pub requests_per_s: f64,
    pub inbound_concurrency: f64,
    pub inbound_per_s: f64,
    pub opens_per_s: f64,
    /// Whether the holder opened about one connection per request to the endpoint.
    pub churned: bool,
}

/// (process name, upstream, endpoint): what a pool is named by across intervals and runs.
pub type PoolKey = (String, String, String);

/// `holder->upstream`, as reports and diffs name a pool.
pub fn pool_name(key: &PoolKey) -> String {
    format!("{}->{}", key.0, key.1)
}

/// The pools of one interval, one row per pool row recorded (a holder's processes each have
/// one): the single pass both the window's averages and the per-interval series read.
pub fn of_interval(iv: &Interval) -> Vec<(PoolKey, IntervalPool)> {
    let secs = (iv.end_unix_ns.saturating_sub(iv.start_unix_ns) as f64 / 1e9).max(1e-9);
    // Per holder pid: all its upstream requests in flight, its cores, its connects by port.
    let mut in_use_of: HashMap<u32, f64> = HashMap::new();
    for p in &iv.pools {
        *in_use_of.entry(p.pid).or_default() += p.in_use;
    }
    let cores_of: HashMap<u32, f64> = iv
        .processes
        .iter()
        .map(|p| (p.pid, p.oncpu_ns as f64 / 1e9 / secs))
        .collect();
    let mut opens_of: HashMap<(u32, u16), u64> = HashMap::new();
    for c in &iv.connections {
        if let (Some(pid), Direction::Active) = (c.pid, c.direction) {
            *opens_of.entry((pid, c.port)).or_default() += c.opens;
        }
    }
    iv.pools
        .iter()
        .map(|p| {
            let key = (p.comm.clone(), p.upstream.clone(), p.endpoint.clone());
            let opens_per_s = endpoint_port(&p.endpoint)
                .and_then(|port| opens_of.get(&(p.pid, port)))
                .map_or(0.0, |&o| o as f64 / secs);
            let churned = p.requests_per_s > 0.0 && opens_per_s >= 0.5 * p.requests_per_s;
            let full = churned || p.utilisation >= POOL_FULL;
            let carried = in_use_of.get(&p.pid).copied().unwrap_or(p.in_use)
                + cores_of.get(&p.pid).copied().unwrap_or(0.0);
            let queued = if full {
                (p.inbound_concurrency - carried).max(0.0)
            } else {
                0.0
            };
            let row = IntervalPool {
                size: f64::from(p.size),
                in_use: p.in_use,
                queued,
                requests_per_s: p.requests_per_s,
                inbound_concurrency: p.inbound_concurrency,
                inbound_per_s: p.inbound_per_s,
                opens_per_s,
                churned,
            };
            (key, row)
        })
        .collect()
}

/// Pools of the window, most queued first, then busiest. Averaged over the intervals the
/// connection-use programs ran in (the default tier samples them: `Interval::conn_use_measured`).
pub fn summarize(intervals: &[&Interval]) -> Vec<PoolSummary> {
    let measured: Vec<&Interval> = intervals
        .iter()
        .copied()
        .filter(|iv| iv.conn_use_measured())
        .collect();
    let intervals = &measured[..];
    #[derive(Default)]
    struct Acc {
        size: f64,
        in_use: f64,
        queued: f64,
        requests: f64,
        inbound: f64,
        inbound_rate: f64,
        opens_per_s: f64,
        churned_intervals: usize,
        ceiling: f64,
        intervals: usize,
    }
    let n = intervals.len().max(1) as f64;
    let mut groups: BTreeMap<PoolKey, Acc> = BTreeMap::new();
    for iv in intervals {
        let mut seen = Vec::new();
        for (key, p) in of_interval(iv) {
            let a = groups.entry(key.clone()).or_default();
            a.size += p.size;
            a.in_use += p.in_use;
            a.queued += p.queued;
            a.requests += p.requests_per_s;
            a.inbound += p.inbound_concurrency;
            a.inbound_rate += p.inbound_per_s;
            a.opens_per_s += p.opens_per_s;
            a.churned_intervals += usize::from(p.churned);
            a.ceiling = a.ceiling.max(p.in_use);
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
            let churned = a.churned_intervals * 2 > a.intervals;
            let requests_per_s = a.requests / n;
            let multiplexed =
                !churned && inbound_per_s > 0.0 && requests_per_s < CARRIED_SHARE * inbound_per_s;
            let utilisation = if churned {
                if a.ceiling > 0.0 {
                    in_use / a.ceiling
                } else {
                    0.0
                }
            } else if size > 0.0 {
                in_use / size
            } else {
                0.0
            };
            PoolSummary {
                process,
                upstream,
                endpoint,
                size,
                in_use,
                utilisation,
                queued,
                wait_ms_estimate: crate::recording::pools::wait_ms(queued, inbound_per_s),
                requests_per_s,
                inbound_concurrency: a.inbound / n,
                inbound_per_s,
                intervals: a.intervals,
                churned,
                opens_per_s: a.opens_per_s / n,
                ceiling: a.ceiling,
                multiplexed,
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
