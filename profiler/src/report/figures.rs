//! An analysis flattened into figures two runs can compare: each a stable name, labels without
//! pids or tids, a value and a unit. The load's own throughput and latency, the connection
//! rates and failures per second, the host's CPU, and every evidence value of the verdict
//! (by its stable name, `analysis::keys`). Figures that share a name and labels once the pids
//! are dropped (two nginx workers' `process.cores`) are summed when they are amounts (cores,
//! rates, counts, seconds) and the largest kept when they are shares.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    analysis::{Analysis, keys},
    report::text::verdict::quoted_load,
};

/// One comparable number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// `name{label=value,...}`: what a figure is matched by.
    pub key: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub unit: String,
}

/// Units whose figures add up when pids are dropped.
fn additive(unit: &str) -> bool {
    matches!(
        unit,
        "cores" | "1/s" | "count" | "s" | "s/s" | "requests" | "threads" | "connections"
    )
}

/// `name{a=1,b=2}`, or the bare name without labels.
pub fn key_of(name: &str, labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// `nginx[2902]` → `nginx`: a process named without its run's pid.
pub fn without_pid(s: &str) -> &str {
    match s
        .strip_suffix(']')
        .and_then(|i| i.rfind('[').map(|o| (i, o)))
    {
        Some((inner, open)) if inner[open + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            &inner[..open]
        }
        _ => s,
    }
}

#[derive(Default)]
struct Collector {
    figures: BTreeMap<String, Figure>,
}

impl Collector {
    fn add(&mut self, name: &str, labels: BTreeMap<String, String>, value: f64, unit: &str) {
        if !value.is_finite() {
            return;
        }
        let key = key_of(name, &labels);
        match self.figures.get_mut(&key) {
            Some(f) if additive(unit) => f.value += value,
            Some(f) => f.value = f.value.max(value),
            None => {
                self.figures.insert(
                    key.clone(),
                    Figure {
                        key,
                        name: name.to_string(),
                        labels,
                        value,
                        unit: unit.to_string(),
                    },
                );
            }
        }
    }

    fn plain(&mut self, name: &str, value: f64, unit: &str) {
        self.add(name, BTreeMap::new(), value, unit);
    }
}

/// The names of the load's own figures, which a diff reports first.
pub const THROUGHPUT: &str = "load.throughput_per_s";
pub const LATENCY: [(&str, &str); 6] = [
    ("load.latency_mean_ms", "mean"),
    ("load.latency_p50_ms", "p50"),
    ("load.latency_p90_ms", "p90"),
    ("load.latency_p95_ms", "p95"),
    ("load.latency_p99_ms", "p99"),
    ("load.latency_max_ms", "max"),
];

/// Every comparable figure of an analysis, by key.
pub fn figures(a: &Analysis) -> BTreeMap<String, Figure> {
    let mut c = Collector::default();
    if let Some(l) = quoted_load(a) {
        c.plain(THROUGHPUT, l.throughput_per_s, "1/s");
        c.plain(
            "load.error_share",
            l.errors as f64 / l.requests.max(1) as f64,
            "fraction",
        );
        if let Some(lat) = &l.latency_ms {
            let values = [lat.mean, lat.p50, lat.p90, lat.p95, lat.p99, lat.max];
            for ((name, _), v) in LATENCY.iter().zip(values) {
                if let Some(v) = v {
                    c.plain(name, v, "ms");
                }
            }
        }
    }
    let t = &a.totals;
    let per_s = |n: u64| n as f64 / a.duration_seconds.max(1e-9);
    c.plain("tcp.active_opens_per_s", t.tcp_active_opens_per_s, "1/s");
    c.plain("tcp.passive_opens_per_s", t.tcp_passive_opens_per_s, "1/s");
    for (name, n) in [
        ("tcp.connect_failed_per_s", t.connect_failed),
        ("tcp.syn_retransmits_per_s", t.syn_retransmits),
        ("tcp.synack_retransmits_per_s", t.synack_retransmits),
        ("tcp.resets_sent_per_s", t.resets_sent),
        ("tcp.resets_received_per_s", t.resets_received),
        ("tcp.listen_overflows_per_s", t.listen_overflows),
        ("tcp.listen_drops_per_s", t.listen_drops),
        ("tcp.skb_drops_per_s", t.skb_drops),
    ] {
        c.plain(name, per_s(n), "1/s");
    }
    if let Some(p99) = t.connect_latency.p99_ms {
        c.plain("tcp.connect_latency_p99_ms", p99, "ms");
    }
    c.plain("host.busy_fraction", a.host.busy_fraction, "fraction");
    c.plain("host.softirq_fraction", a.host.softirq_fraction, "fraction");
    c.plain("host.iowait_fraction", a.host.iowait_fraction, "fraction");
    for e in &a.verdict.evidence {
        // An analysis written before evidence had names: split its key here.
        let s = if e.name.is_empty() {
            keys::stable(&e.metric)
        } else {
            keys::Stable {
                name: e.name.clone(),
                labels: e.labels.clone(),
            }
        };
        let labels = s
            .labels
            .into_iter()
            .filter(|(k, _)| !keys::RUN_LABELS.contains(&k.as_str()))
            .collect();
        c.add(&s.name, labels, e.value, &e.unit);
    }
    c.figures
}
