//! The HTML report's charts, built from the analysis's per-interval series: the load's own
//! throughput and latency over time, host CPU, CPU per service against the host's cores,
//! run-queue latency, off-CPU time by reason, connections, and pools (when there are any). Each with the analysis window
//! shaded, a sentence for screen readers and its numbers as a table.
use std::fmt::Write;

use super::svg::{Chart, Line, esc};
use crate::{
    analysis::{Analysis, series::Named},
    report::text::units::num,
};

const SECONDS: &str = "seconds from the start";

/// A chart ready to place, or why there is none.
pub struct Figure<'a> {
    pub id: String,
    pub chart: Chart<'a>,
    /// Shown instead when the chart has no data.
    pub missing: String,
}

fn line(name: &str, xs: &[f64], values: impl IntoIterator<Item = Option<f64>>) -> Line {
    Line {
        name: name.to_string(),
        points: xs.iter().copied().zip(values).collect(),
    }
}

/// Each interval's midpoint: a rate over an interval belongs to its middle.
fn mids(a: &Analysis) -> Vec<f64> {
    let s = &a.series;
    s.start_s
        .iter()
        .zip(&s.seconds)
        .map(|(t, d)| t + d / 2.0)
        .collect()
}

fn named(xs: &[f64], n: &[Named], scale: f64) -> Vec<Line> {
    n.iter()
        .map(|n| line(&n.name, xs, n.values.iter().map(|v| v.map(|v| v * scale))))
        .collect()
}

/// The charts of an analysis, in reading order.
pub fn charts(a: &Analysis) -> Vec<Figure<'_>> {
    let s = &a.series;
    let xs = mids(a);
    let band = Some((s.window_s[0], s.window_s[1], "analysis window"));
    let end = s
        .start_s
        .iter()
        .zip(&s.seconds)
        .map(|(t, d)| t + d)
        .fold(0.0, f64::max);
    let x_range = Some((0.0, end));
    let mut out = Vec::new();

    let mut load = Vec::new();
    let mut latency = Vec::new();
    for l in &s.load {
        let x: Vec<f64> = l.start_s.clone();
        let tool = l.source.rsplit('/').next().unwrap_or(&l.source);
        load.push(line(
            &format!("requests/s ({tool})"),
            &x,
            l.throughput_per_s.iter().map(|v| Some(*v)),
        ));
        if l.errors_per_s.iter().any(|e| *e > 0.0) {
            load.push(line(
                &format!("errors/s ({tool})"),
                &x,
                l.errors_per_s.iter().map(|v| Some(*v)),
            ));
        }
        for n in &l.latency_ms {
            latency.push(line(
                &format!("{} ({tool})", n.name),
                &x,
                n.values.iter().copied(),
            ));
        }
    }
    let no_timeline = "No per-interval timeline from the load generator (its output has a summary only; k6 JSON, vegeta, locust, JMeter and Gatling give one: pass it with --load).".to_string();
    out.push(Figure {
        id: "throughput".into(),
        chart: Chart {
            title: "Throughput over time (the load generator's own)",
            unit: "requests/s",
            lines: load,
            stacked: false,
            band,
            reference: None,
            x_range,
            x_label: SECONDS,
        },
        missing: no_timeline.clone(),
    });
    out.push(Figure {
        id: "latency".into(),
        chart: Chart {
            title: "Latency over time (the load generator's own)",
            unit: "ms",
            lines: latency,
            stacked: false,
            band,
            reference: None,
            x_range,
            x_label: SECONDS,
        },
        missing: no_timeline,
    });
    if let Some(w) = &s.sweep {
        out.push(sweep(w));
    }
    out.push(Figure {
        id: "host-cpu".into(),
        chart: Chart {
            title: "Host CPU busy",
            unit: "% busy",
            lines: vec![line(
                "host CPU",
                &xs,
                s.host_busy.iter().map(|b| b.map(|b| b * 100.0)),
            )],
            stacked: false,
            band,
            reference: Some((100.0, "all CPUs".into())),
            x_range,
            x_label: SECONDS,
        },
        missing: "No host CPU readings (/proc/stat) in the recording.".into(),
    });
    out.push(Figure {
        id: "service-cpu".into(),
        chart: Chart {
            title: "CPU per service, stacked, against the host's cores",
            unit: "cores",
            lines: named(&xs, &s.service_cores, 1.0),
            stacked: true,
            band,
            reference: Some((s.cpus as f64, format!("{} cores", s.cpus))),
            x_range,
            x_label: SECONDS,
        },
        missing: "No process ran on a CPU in the recording.".into(),
    });
    out.push(Figure {
        id: "runqueue".into(),
        chart: Chart {
            title: "Run-queue latency (waiting for a CPU)",
            unit: "µs",
            lines: named(&xs, &s.runqueue_us, 1.0),
            stacked: false,
            band,
            reference: None,
            x_range,
            x_label: SECONDS,
        },
        missing: "No run-queue waits recorded (the sched_switch probe was not attached).".into(),
    });
    out.push(Figure {
        id: "offcpu".into(),
        chart: Chart {
            title: "Off-CPU time by reason (threads blocked on average)",
            unit: "threads",
            lines: named(&xs, &s.offcpu_by_reason, 1.0),
            stacked: true,
            band,
            reference: None,
            x_range,
            x_label: SECONDS,
        },
        missing: "No off-CPU time recorded for the workload (the scheduler probes were not attached, or nothing blocked).".into(),
    });
    out.push(Figure {
        id: "connections".into(),
        chart: Chart {
            title: "Connections: opens, failures, SYN retransmits, resets and drops",
            unit: "per second",
            lines: named(&xs, &s.connections_per_s, 1.0)
                .into_iter()
                .filter(|l| l.points.iter().any(|(_, y)| y.is_some_and(|y| y > 0.0)))
                .collect(),
            stacked: false,
            band,
            reference: None,
            x_range,
            x_label: SECONDS,
        },
        missing: "No TCP connection opened, failed or dropped in the recording (a keep-alive load whose connections were open before it started).".into(),
    });
    if !s.pools.is_empty() {
        let mut lines = Vec::new();
        for p in &s.pools {
            lines.push(line(
                &format!("{} connections", p.pool),
                &xs,
                p.size.iter().copied(),
            ));
            lines.push(line(
                &format!("{} in use", p.pool),
                &xs,
                p.in_use.iter().copied(),
            ));
            if p.queued.iter().any(|q| q.is_some_and(|q| q > 0.0)) {
                lines.push(line(
                    &format!("{} queued", p.pool),
                    &xs,
                    p.queued.iter().copied(),
                ));
            }
        }
        out.push(Figure {
            id: "pools".into(),
            chart: Chart {
                title: "Pools and concurrency limits: connections, in use and queued behind",
                unit: "connections or requests",
                lines,
                stacked: false,
                band,
                reference: None,
                x_range,
                x_label: SECONDS,
            },
            missing: "No pool had connections in the recording.".into(),
        });
    }
    out
}

/// A sentence for screen readers: each line's range and mean.
pub fn describe(c: &Chart) -> String {
    let parts: Vec<String> = c
        .lines
        .iter()
        .map(|l| {
            let v: Vec<f64> = l.points.iter().filter_map(|(_, y)| *y).collect();
            let (lo, hi) = v
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                    (a.min(*x), b.max(*x))
                });
            let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
            if v.is_empty() {
                format!("{}: no values", l.name)
            } else {
                format!(
                    "{}: {} to {} {u}, mean {}",
                    l.name,
                    num(lo),
                    num(hi),
                    num(mean),
                    u = c.unit
                )
            }
        })
        .collect();
    format!("{}. {}.", c.title, parts.join("; "))
}

/// The chart's numbers as a table (the text alternative a reader can copy).
pub fn table(c: &Chart) -> String {
    let mut xs: Vec<f64> = c
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|(x, _)| *x))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
    let mut s = String::from("<table class=\"data\"><thead><tr><th scope=\"col\">s</th>");
    for l in &c.lines {
        let _ = write!(s, "<th scope=\"col\">{}</th>", esc(&l.name));
    }
    s.push_str("</tr></thead><tbody>");
    for x in xs {
        let _ = write!(s, "<tr><td>{x:.1}</td>");
        for l in &c.lines {
            let y = l
                .points
                .iter()
                .find(|(px, _)| (px - x).abs() < 1e-6)
                .and_then(|(_, y)| *y);
            let _ = write!(s, "<td>{}</td>", y.map_or(String::new(), num));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// Throughput against concurrency, measured and as the USL fit predicts it.
fn sweep(w: &crate::timeline::Sweep) -> Figure<'static> {
    let mut pts: Vec<(f64, Option<f64>)> = w
        .points
        .iter()
        .map(|p| (p.concurrency, Some(p.throughput_per_s)))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut lines = vec![Line {
        name: "measured requests/s".into(),
        points: pts.clone(),
    }];
    if let Some(u) = &w.usl {
        let top = pts.last().map_or(1.0, |p| p.0).max(1.0);
        let model = |n: f64| u.lambda * n / (1.0 + u.sigma * (n - 1.0) + u.kappa * n * (n - 1.0));
        lines.push(Line {
            name: format!(
                "USL fit (σ {:.3}, κ {:.4}, R² {:.2})",
                u.sigma, u.kappa, u.r2
            ),
            points: (0..=40)
                .map(|i| {
                    let n = 1.0 + (top - 1.0) * i as f64 / 40.0;
                    (n, Some(model(n)))
                })
                .collect(),
        });
    }
    if let Some(k) = &w.knee {
        lines.push(Line {
            name: format!("knee at concurrency {}", num(k.concurrency)),
            points: vec![(k.concurrency, Some(k.throughput))],
        });
    }
    Figure {
        id: "sweep".into(),
        chart: Chart {
            title: "Throughput against concurrency (the sweep), with the USL fit",
            unit: "requests/s",
            lines,
            stacked: false,
            band: None,
            reference: None,
            x_range: Some((0.0, 1.0)),
            x_label: "concurrency",
        },
        missing: String::new(),
    }
}
