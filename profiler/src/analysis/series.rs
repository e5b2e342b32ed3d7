//! Per-interval series for charts (`series` in the JSON): the host's CPU, CPU per service,
//! run-queue latency, off-CPU time by reason, connection opens and failures, and the load
//! generators' own throughput and latency over time. Times are seconds from the recording's
//! first interval, so a chart needs nothing else; the analysis window is given on the same
//! clock.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{pools, services::service_keys, window::Window};
use crate::{
    recording::{Interval, LogHistogram, Recording, Role},
    timeline::{Clock, Timeline},
};

/// How many services get a series of their own; the rest are summed into `other`.
pub const SERVICES_SHOWN: usize = 6;

/// One named line of values, one per interval (or per load point).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Named {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// A load generator's own points.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadSeries {
    pub source: String,
    /// Seconds from the recording's start (the timeline's own start when it has no clock).
    pub start_s: Vec<f64>,
    pub throughput_per_s: Vec<f64>,
    pub errors_per_s: Vec<f64>,
    /// `p50`, `p95`, `p99` and `max` latency (ms) where the tool gives them per interval.
    pub latency_ms: Vec<Named>,
}

/// One pool's use over time: its holder's connections (or its cap's level), those in use,
/// and the requests queued behind it, per interval (0 in an interval without the pool).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolSeries {
    /// `holder->upstream`, as `pools[]` and the diff name it.
    pub pool: String,
    pub endpoint: String,
    pub size: Vec<Option<f64>>,
    pub in_use: Vec<Option<f64>>,
    pub queued: Vec<Option<f64>>,
}

/// How many pools get a series.
pub const POOLS_SHOWN: usize = 4;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Each interval's start and length (s), from the first interval's start.
    pub start_s: Vec<f64>,
    pub seconds: Vec<f64>,
    /// The analysis window on the same clock.
    pub window_s: [f64; 2],
    pub cpus: u32,
    /// Host CPU busy (0..1) per interval.
    pub host_busy: Vec<Option<f64>>,
    /// Cores used per service (processes grouped as `services` groups them), busiest first.
    pub service_cores: Vec<Named>,
    /// Run-queue wait of every process per interval: mean and p99 (µs, log2 buckets).
    pub runqueue_us: Vec<Named>,
    /// Off-CPU time of the load generator, servers and other processes (not the kernel's nor
    /// chokepoint's), by the reason they were blocked, in seconds per second.
    pub offcpu_by_reason: Vec<Named>,
    /// TCP per second: `active_opens`, `passive_opens`, `connect_failed`, `syn_retransmits`,
    /// `resets_sent`, `skb_drops`.
    pub connections_per_s: Vec<Named>,
    pub load: Vec<LoadSeries>,
    /// Pools and concurrency limits per interval, the busiest few (most queued, then most in
    /// use; `POOLS_SHOWN`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolSeries>,
    /// Throughput against concurrency when the load was a sweep (several runs at rising
    /// concurrency, or one run ramping), with its knee and Universal Scalability Law fit
    /// (`timeline::sweep`, as `chokepoint timeline` prints it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<crate::timeline::Sweep>,
}

fn secs(iv: &Interval) -> f64 {
    iv.end_unix_ns.saturating_sub(iv.start_unix_ns) as f64 / 1e9
}

/// Sums per name into one series per name, ordered by total, the tail past `keep` summed
/// into `other`.
fn ranked(per: Vec<BTreeMap<String, f64>>, keep: usize) -> Vec<Named> {
    let mut total: BTreeMap<&str, f64> = BTreeMap::new();
    for m in &per {
        for (k, v) in m {
            *total.entry(k).or_default() += v;
        }
    }
    let mut names: Vec<(&str, f64)> = total.into_iter().filter(|(_, v)| *v > 0.0).collect();
    names.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<&str> = names.iter().take(keep).map(|(n, _)| *n).collect();
    let mut out: Vec<Named> = shown
        .iter()
        .map(|n| Named {
            name: n.to_string(),
            values: per
                .iter()
                .map(|m| Some(*m.get(*n).unwrap_or(&0.0)))
                .collect(),
        })
        .collect();
    if names.len() > keep {
        out.push(Named {
            name: "other".into(),
            values: per
                .iter()
                .map(|m| {
                    Some(
                        m.iter()
                            .filter(|(k, _)| !shown.contains(&k.as_str()))
                            .map(|(_, v)| v)
                            .sum(),
                    )
                })
                .collect(),
        });
    }
    out
}

pub fn series(recording: &Recording, window: &Window, timelines: &[Timeline]) -> Series {
    let ivs = &recording.intervals;
    let Some(first) = ivs.first() else {
        return Series::default();
    };
    let t0 = first.start_unix_ns as f64 / 1e9;
    let all: Vec<&Interval> = ivs.iter().collect();
    let keys = service_keys(&all);
    let mut s = Series {
        start_s: ivs
            .iter()
            .map(|iv| iv.start_unix_ns as f64 / 1e9 - t0)
            .collect(),
        seconds: ivs.iter().map(secs).collect(),
        window_s: [window.start_unix_s - t0, window.end_unix_s - t0],
        cpus: recording.header.cpus,
        host_busy: ivs
            .iter()
            .map(|iv| iv.host.as_ref()?.cpu.as_ref().map(|c| c.busy_fraction))
            .collect(),
        ..Series::default()
    };

    let mut cores = Vec::new();
    let mut offcpu = Vec::new();
    let (mut rq_mean, mut rq_p99) = (Vec::new(), Vec::new());
    for iv in ivs {
        let d = secs(iv).max(1e-9);
        let mut c: BTreeMap<String, f64> = BTreeMap::new();
        let mut off: BTreeMap<String, f64> = BTreeMap::new();
        let mut hist = LogHistogram(Vec::new());
        let (mut rq_ns, mut rq_n) = (0u64, 0u64);
        // Off-CPU reasons and run-queue waits only where the scheduler programs ran (the
        // default tier samples them): a gap, not a zero, elsewhere.
        let events = iv.sched_measured();
        for p in &iv.processes {
            if events {
                hist.add(&p.runq_latency);
                rq_ns += p.runq_ns;
                rq_n += p.runq_count;
            }
            if p.role == Role::Kernel {
                continue;
            }
            let name = keys.get(&p.pid).map_or(&p.comm, |(n, _)| n);
            *c.entry(name.clone()).or_default() += p.oncpu_ns as f64 / 1e9 / d;
            if events && p.role != Role::Profiler {
                for (reason, ns) in &p.offcpu_reason_ns {
                    *off.entry(reason.clone()).or_default() += *ns as f64 / 1e9 / d;
                }
            }
        }
        cores.push(c);
        offcpu.push(off);
        rq_mean.push((rq_n > 0).then(|| rq_ns as f64 / rq_n as f64 / 1e3));
        rq_p99.push(hist.quantile_ns(0.99).map(|ns| ns / 1e3));
    }
    s.service_cores = ranked(cores, SERVICES_SHOWN);
    s.offcpu_by_reason = ranked(offcpu, usize::MAX);
    for named in &mut s.offcpu_by_reason {
        for (v, iv) in named.values.iter_mut().zip(ivs.iter()) {
            if !iv.sched_measured() {
                *v = None;
            }
        }
    }
    s.runqueue_us = vec![
        Named {
            name: "mean".into(),
            values: rq_mean,
        },
        Named {
            name: "p99".into(),
            values: rq_p99,
        },
    ];
    type Count = fn(&crate::recording::TcpCounts) -> u64;
    let tcp: [(&str, Count); 6] = [
        ("active_opens", |t| t.active_opens),
        ("passive_opens", |t| t.passive_opens),
        ("connect_failed", |t| t.connect_failed),
        ("syn_retransmits", |t| t.syn_retransmits),
        ("resets_sent", |t| t.resets_sent),
        ("skb_drops", |t| t.skb_drops),
    ];
    s.connections_per_s = tcp
        .iter()
        .map(|(name, f)| Named {
            name: name.to_string(),
            values: ivs
                .iter()
                .map(|iv| Some(f(&iv.tcp) as f64 / secs(iv).max(1e-9)))
                .collect(),
        })
        .collect();
    s.load = timelines
        .iter()
        .filter(|t| !t.points.is_empty())
        .map(|t| {
            let at = |x: f64| if t.clock == Clock::Offset { x } else { x - t0 };
            let lat = |name: &str, f: fn(&crate::timeline::Latency) -> Option<f64>| Named {
                name: name.into(),
                values: t
                    .points
                    .iter()
                    .map(|p| p.latency_ms.as_ref().and_then(f))
                    .collect(),
            };
            LoadSeries {
                source: t.source.display().to_string(),
                start_s: t.points.iter().map(|p| at(p.start_s)).collect(),
                throughput_per_s: t.points.iter().map(|p| p.throughput_per_s).collect(),
                errors_per_s: t
                    .points
                    .iter()
                    .map(|p| p.errors as f64 / p.seconds.max(1e-9))
                    .collect(),
                latency_ms: [
                    lat("p50", |l| l.p50),
                    lat("p95", |l| l.p95),
                    lat("p99", |l| l.p99),
                    lat("max", |l| l.max),
                ]
                .into_iter()
                .filter(|n| n.values.iter().any(Option::is_some))
                .collect(),
            }
        })
        .collect();
    s.sweep = crate::timeline::sweep(timelines).filter(|w| w.points.len() >= 2);
    s.pools = pool_series(ivs);
    s
}

/// Each pool's rows of an interval summed (a holder's processes together), the busiest
/// `POOLS_SHOWN` kept; None where connection use was not measured.
fn pool_series(ivs: &[Interval]) -> Vec<PoolSeries> {
    let per: Vec<BTreeMap<pools::PoolKey, [f64; 3]>> = ivs
        .iter()
        .map(|iv| {
            let mut m: BTreeMap<pools::PoolKey, [f64; 3]> = BTreeMap::new();
            for (key, p) in pools::of_interval(iv) {
                let e = m.entry(key).or_default();
                e[0] += p.size;
                e[1] += p.in_use;
                e[2] += p.queued;
            }
            m
        })
        .collect();
    let mut total: BTreeMap<&pools::PoolKey, (f64, f64)> = BTreeMap::new();
    for m in &per {
        for (k, v) in m {
            let t = total.entry(k).or_default();
            t.0 += v[2];
            t.1 += v[1];
        }
    }
    let mut keys: Vec<(&pools::PoolKey, (f64, f64))> = total.into_iter().collect();
    keys.sort_by(|a, b| {
        (b.1.0)
            .total_cmp(&a.1.0)
            .then((b.1.1).total_cmp(&a.1.1))
            .then(a.0.cmp(b.0))
    });
    keys.into_iter()
        .take(POOLS_SHOWN)
        .map(|(key, _)| {
            // Unmeasured intervals (connection use detached by the default tier) are gaps.
            let col = |i: usize| -> Vec<Option<f64>> {
                per.iter()
                    .zip(ivs)
                    .map(|(m, iv)| {
                        iv.conn_use_measured()
                            .then(|| m.get(key).map_or(0.0, |v| v[i]))
                    })
                    .collect()
            };
            PoolSeries {
                pool: pools::pool_name(key),
                endpoint: key.2.clone(),
                size: col(0),
                in_use: col(1),
                queued: col(2),
            }
        })
        .collect()
}
