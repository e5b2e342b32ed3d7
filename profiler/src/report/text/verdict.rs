//! The top of the human summary: the verdict sentence with the load's own throughput, the
//! window in words, the evidence that decided it, what was ruled out, and the figures the
//! other candidates were judged on (zeros folded into one line).
use std::fmt::Write;

use super::{
    COLUMNS,
    table::{Align, Table, list, width, wrap},
    units::{duration, num, percent, ranges_in_words, threshold, value_parts},
};
use crate::analysis::{Analysis, Evidence, Family, LoadSummary, VerdictKind};

/// Widest an evidence name may be before it gets a line of its own.
const METRIC_COLUMN: usize = 44;

/// The family of a verdict in words.
pub fn family(f: Family) -> &'static str {
    match f {
        Family::Cpu => "CPU",
        Family::Contention => "contention",
        Family::Connection => "connection setup",
        Family::Network => "network",
        Family::Io => "disk I/O",
        Family::Generator => "load generator",
        Family::None => "none",
    }
}

/// The load-generator timeline whose throughput the headline quotes: the one the window's
/// plateau was found in, else the one with most requests. Timelines without a duration (a
/// summary without timing) have no meaningful rate and are skipped.
pub(crate) fn quoted_load(a: &Analysis) -> Option<&LoadSummary> {
    let usable = || {
        a.load
            .iter()
            .filter(|l| l.requests > 0 && l.duration_seconds >= 0.5)
    };
    let most = |x: &&LoadSummary, y: &&LoadSummary| {
        x.requests
            .cmp(&y.requests)
            .then(x.duration_seconds.total_cmp(&y.duration_seconds))
    };
    if a.window.source == "load-plateau"
        && let Some(l) = usable()
            .filter(|l| !l.source.is_empty() && a.window.reason.starts_with(&l.source))
            .max_by(most)
    {
        return Some(l);
    }
    usable().max_by(most)
}

/// The tool's name from its format: `wrk-text` → `wrk`.
fn tool(format: &str) -> &str {
    format.split('-').next().unwrap_or(format)
}

/// The throughput the headline quotes: the load generator's requests (or pgbench's
/// transactions) per second, else the new connections per second of the load's busiest path
/// (client to server). A keep-alive load opens almost no connections: its rate is the
/// generator's, never "0 connections/s".
pub fn load_figure(a: &Analysis) -> Option<String> {
    if let Some(l) = quoted_load(a) {
        let what = if l.format.starts_with("pgbench") {
            "transactions"
        } else {
            "requests"
        };
        let errors = if l.errors > 0 {
            format!(
                ", {} errors",
                percent(l.errors as f64 / l.requests.max(1) as f64)
            )
        } else {
            String::new()
        };
        return Some(format!(
            "{} {what}/s ({}{errors})",
            num(l.throughput_per_s),
            tool(&l.format)
        ));
    }
    // Connections of processes that are no load (a disk job's odd DNS lookup) say nothing
    // about its throughput: only the load's paths count.
    a.paths
        .first()
        .filter(|p| p.connections_per_s >= 0.5)
        .map(|p| format!("{} new connections/s", num(p.connections_per_s)))
}

/// The verdict's sentence with the load's figure after its label: "CPU-saturated at 55.3k
/// requests/s (wrk): host CPU 100% busy ...".
pub fn headline(a: &Analysis) -> String {
    let summary = a.verdict.summary.trim();
    let figure = load_figure(a).filter(|f| {
        // Without a load generator the rate is connections: do not say it twice.
        !(f.ends_with("connections/s") && summary.contains("connections/s"))
    });
    let Some(figure) = figure else {
        return summary.to_string();
    };
    match summary.split_once(": ") {
        Some((label, rest)) if width(label) <= 40 => format!("{label} at {figure}: {rest}"),
        _ => format!("{} (at {figure}).", summary.trim_end_matches('.')),
    }
}

/// The first `A..=B` of integers in `text`.
fn inclusive_range(text: &str) -> Option<(usize, usize)> {
    let i = text.find("..=")?;
    let before = &text[..i];
    let start = before
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |j| j + 1);
    let after = &text[i + 3..];
    let end = after
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(after.len());
    Some((before[start..].parse().ok()?, after[..end].parse().ok()?))
}

/// The analysis window in words: which intervals (counted from 1), how long, and why.
pub fn window(a: &Analysis) -> String {
    let w = &a.window;
    let secs = (w.end_unix_s - w.start_unix_s).max(0.0);
    let n = w.intervals;
    let intervals = if n == 1 { "interval" } else { "intervals" };
    let span = format!(
        "{} of the {} recorded",
        duration(secs),
        duration(a.duration_seconds)
    );
    match w.source.as_str() {
        "steady-run" => match inclusive_range(&w.reason) {
            // window::choose drops the first and last active interval when enough remain.
            Some((x, y)) if y >= x + 2 && n == y - x - 1 => format!(
                "intervals {}–{} ({span}): the steady part of the run, active intervals {}–{} without the first and the last (no load timeline had a plateau)",
                x + 2,
                y,
                x + 1,
                y + 1
            ),
            Some((x, y)) if y >= x && n == y - x + 1 => format!(
                "{intervals} {} ({span}): the active part of the run, too short to drop its edges (no load timeline had a plateau)",
                super::units::range(x + 1, y + 1)
            ),
            _ => format!(
                "{n} {intervals} ({span}), the steady part of the run: {}",
                ranges_in_words(&w.reason)
            ),
        },
        "load-plateau" => format!(
            "{n} {intervals} ({span}), the plateau of the load's timeline: {}",
            ranges_in_words(&w.reason)
        ),
        "whole-run" => format!(
            "the whole recording, {n} {intervals} ({}): {}",
            duration(secs),
            ranges_in_words(&w.reason)
        ),
        other => format!(
            "{n} {intervals} ({span}), {other}: {}",
            ranges_in_words(&w.reason)
        ),
    }
}

/// Whether an evidence row is one of `kind`'s own figures (the metric names verdict.rs gives
/// each candidate's evidence).
fn belongs(kind: VerdictKind, metric: &str) -> bool {
    let process = metric.starts_with("process.");
    let service = metric.starts_with("service.");
    match kind {
        VerdictKind::LoadGeneratorBound => {
            metric.starts_with("generator.") || metric == "workload.cores"
        }
        VerdictKind::CpuThrottled => metric.starts_with("cgroup."),
        VerdictKind::CpuSaturated => {
            metric == "host.cpu_busy"
                || metric == "host.pressure.cpu_some"
                || (process && (metric.ends_with(".cores") || metric.ends_with(".capacity_cores")))
        }
        VerdictKind::SingleThreadSaturated => {
            metric.starts_with("thread.") || (process && metric.ends_with(".cores"))
        }
        VerdictKind::ConnectionSetup => {
            metric.starts_with("tcp.") || metric.starts_with("conntrack.")
        }
        VerdictKind::NetworkBandwidth => {
            metric.starts_with("qdisc.")
                || metric.starts_with("send_limits.")
                || (process && metric.ends_with(".offcpu_write_per_s"))
        }
        VerdictKind::LockContention => {
            service
                && (metric.contains(".handover_")
                    || metric.ends_with(".offcpu_sleep_seconds")
                    || metric.ends_with(".oncpu_seconds"))
        }
        VerdictKind::IoBound => {
            metric == "host.iowait"
                || metric.starts_with("host.pressure.io_")
                || (service
                    && (metric.ends_with(".offcpu_io_threads")
                        || metric.ends_with(".oncpu_seconds")))
        }
        VerdictKind::PoolSaturated => {
            metric.starts_with("pool.") || (service && metric.ends_with(".cores"))
        }
        VerdictKind::NotSaturated | VerdictKind::Inconclusive => false,
    }
}

/// How many of the first evidence rows are the verdict's own: the analysis lists the deciding
/// candidate's figures first, then every other candidate's.
pub fn deciding_rows(kind: VerdictKind, evidence: &[Evidence]) -> usize {
    evidence
        .iter()
        .take_while(|e| belongs(kind, &e.metric))
        .count()
}

/// Evidence rows in aligned columns (name, value, unit, threshold, and the source when
/// `sources`); rows whose value is zero are folded into one "also zero:" line after them.
pub fn evidence_rows(rows: &[&Evidence], indent: usize, sources: bool) -> String {
    let mut t = Table::new(
        indent,
        &[
            Align::Left,
            Align::Right,
            Align::Left,
            Align::Left,
            Align::Left,
        ],
    )
    .first_column_at_most(METRIC_COLUMN);
    let mut zero = Vec::new();
    for e in rows {
        if e.value == 0.0 {
            zero.push(e.metric.clone());
            continue;
        }
        let (number, unit) = value_parts(e.value, &e.unit);
        t.row(vec![
            e.metric.clone(),
            number,
            unit,
            e.threshold
                .as_deref()
                .map_or(String::new(), |th| threshold(th, &e.unit)),
            if sources {
                e.source.clone()
            } else {
                String::new()
            },
        ]);
    }
    let mut s = t.render();
    if !zero.is_empty() {
        let label = if t.is_empty() {
            "all zero:"
        } else {
            "also zero:"
        };
        s.push_str(&list(label, &zero, COLUMNS, indent));
    }
    s
}

/// The verdict: its sentence, kind, window, evidence, what was ruled out and the other
/// candidates' figures.
pub fn render(s: &mut String, a: &Analysis) {
    let v = &a.verdict;
    s.push_str(&wrap(&headline(a), COLUMNS, "", "  "));
    let _ = writeln!(
        s,
        "verdict: {} (family: {}, confidence {:.2}); {} recorded",
        v.kind.as_str(),
        family(v.family),
        v.confidence,
        duration(a.duration_seconds)
    );
    s.push_str(&wrap(&window(a), COLUMNS, "window: ", "        "));
    for m in &v.missing {
        s.push_str(&wrap(m, COLUMNS, "missing: ", "         "));
    }
    if !v.secondary.is_empty() {
        let names: Vec<String> = v.secondary.iter().map(|k| k.as_str().into()).collect();
        s.push_str(&list("also contributing:", &names, COLUMNS, 0));
    }
    let all: Vec<&Evidence> = v.evidence.iter().collect();
    let own = deciding_rows(v.kind, &v.evidence);
    let fired = !matches!(
        v.kind,
        VerdictKind::NotSaturated | VerdictKind::Inconclusive
    );
    let (own, others) = if fired && own == 0 {
        // Names this report does not know: keep every row together, as the analysis gave it.
        let _ = writeln!(s, "evidence:");
        s.push_str(&evidence_rows(&all, 2, true));
        (0, Vec::new())
    } else {
        (own, all[own..].to_vec())
    };
    if own > 0 {
        let _ = writeln!(s, "evidence for {}:", v.kind.as_str());
        s.push_str(&evidence_rows(&all[..own], 2, true));
    }
    if !v.ruled_out.is_empty() {
        let _ = writeln!(s, "ruled out:");
        let w = v
            .ruled_out
            .iter()
            .map(|r| width(r.kind.as_str()))
            .max()
            .unwrap_or(0);
        for r in &v.ruled_out {
            let first = format!("  {:<w$}  ", r.kind.as_str());
            let rest = " ".repeat(w + 4);
            s.push_str(&wrap(&r.reason, COLUMNS, &first, &rest));
        }
    }
    if !others.is_empty() {
        // Their sources would double the width of these rows: the JSON has them.
        let title = if own > 0 || fired {
            "figures of the other candidates (sources in the JSON):"
        } else {
            "figures checked (sources in the JSON):"
        };
        let _ = writeln!(s, "{title}");
        s.push_str(&evidence_rows(&others, 2, false));
    }
}
