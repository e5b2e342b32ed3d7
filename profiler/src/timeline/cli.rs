//! `chokepoint timeline FILE... [--json]`: what each file says, per interval, and where
//! throughput stopped growing.
use std::path::PathBuf;

use serde::Serialize;

use super::{Clock, Latency, Sweep, Timeline, Window, plateau, read_file_shifted, sweep};

#[derive(Debug, clap::Args)]
pub struct TimelineArgs {
    /// Load-generator output files (format detected from content).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub out: crate::cli::JsonOut,
    /// Seconds to add to the files' clocks (a file written on a host whose clock is off).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub clock_offset: f64,
    /// Unix time (seconds) at which offset-only files (hey -o csv, summaries) started.
    #[arg(long)]
    pub start_unix_s: Option<f64>,
    /// Per-interval rows to print per file (the JSON always has all).
    #[arg(long, default_value_t = 60)]
    pub max_rows: usize,
    /// Refuse a file with a corrupt line (file:line and why) instead of skipping the line and
    /// listing it under `skipped_lines`. A last line cut short is still only a warning.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    /// The single file's format, or `mixed`.
    format: String,
    requests: u64,
    errors: u64,
    duration_seconds: f64,
    timelines: &'a [Timeline],
    sweep: Option<&'a Sweep>,
    knee: Option<&'a super::Knee>,
    usl: Option<&'a super::Usl>,
    retrograde: Option<&'a super::Retrograde>,
    plateau: Option<&'a Window>,
    errors_reading: Vec<String>,
}

pub fn run(args: &TimelineArgs) -> anyhow::Result<i32> {
    let mut timelines = Vec::new();
    let mut failures = Vec::new();
    for f in &args.files {
        match read_file_shifted(f, args.clock_offset, args.strict) {
            Ok(mut t) => {
                if let Some(s) = args.start_unix_s {
                    t.anchor((s * 1e9).max(0.0) as u64);
                }
                timelines.push(t);
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    let sw = sweep(&timelines);
    let window = plateau(&timelines);
    let mut formats: Vec<String> = timelines.iter().map(|t| t.format.to_string()).collect();
    formats.dedup();
    let out = Output {
        format: if formats.len() == 1 {
            formats.remove(0)
        } else {
            "mixed".into()
        },
        requests: timelines.iter().map(|t| t.requests).sum(),
        errors: timelines.iter().map(|t| t.errors).sum(),
        duration_seconds: timelines.iter().map(|t| t.duration_seconds).sum(),
        timelines: &timelines,
        sweep: sw.as_ref(),
        knee: sw.as_ref().and_then(|s| s.knee.as_ref()),
        usl: sw.as_ref().and_then(|s| s.usl.as_ref()),
        retrograde: sw.as_ref().and_then(|s| s.retrograde.as_ref()),
        plateau: window.as_ref(),
        errors_reading: failures.clone(),
    };
    if let Some(target) = &args.out.json {
        target.write(&out)?;
    } else {
        print_text(&out, args.max_rows);
    }
    for f in &failures {
        crate::errln!("error: {f}");
    }
    Ok(if failures.is_empty() { 0 } else { 1 })
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn lat_line(l: &Latency) -> String {
    format!(
        "mean {} p50 {} p90 {} p95 {} p99 {} max {} ms",
        opt(l.mean),
        opt(l.p50),
        opt(l.p90),
        opt(l.p95),
        opt(l.p99),
        opt(l.max)
    )
}

fn print_text(out: &Output<'_>, max_rows: usize) {
    for t in out.timelines {
        crate::outln!(
            "{}  format {} ({})",
            t.source.display(),
            t.format,
            t.format.describe()
        );
        crate::outln!(
            "  requests {}  errors {}  duration_seconds {:.3}  throughput {:.1}/s  clock {}",
            t.requests,
            t.errors,
            t.duration_seconds,
            t.throughput_per_s,
            match t.clock {
                Clock::Absolute => "absolute",
                Clock::Offset => "offset-only",
                Clock::Anchored => "anchored",
            }
        );
        if !t.errors_by_kind.is_empty() {
            let kinds: Vec<String> = t
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            crate::outln!("  errors by kind: {}", kinds.join(", "));
        }
        if let Some(l) = &t.latency_ms {
            crate::outln!("  latency: {}", lat_line(l));
        }
        if let Some(o) = &t.offered {
            crate::outln!(
                "  offered: concurrency {} rate {} ({})",
                opt(o.concurrency),
                opt(o.rate_per_s),
                o.source
            );
        }
        for w in &t.warnings {
            crate::outln!("  note: {w}");
        }
        if !t.points.is_empty() {
            crate::outln!(
                "  {:>16} {:>7} {:>8} {:>10} {:>6} {:>9} {:>9} {:>8}",
                "start_s",
                "seconds",
                "requests",
                "req/s",
                "errors",
                "p50 ms",
                "p95 ms",
                "load"
            );
            let step = t.points.len().div_ceil(max_rows.max(1));
            for p in t.points.iter().step_by(step.max(1)) {
                let l = p.latency_ms.as_ref();
                crate::outln!(
                    "  {:>16.3} {:>7.3} {:>8} {:>10.1} {:>6} {:>9} {:>9} {:>8}",
                    p.start_s,
                    p.seconds,
                    p.requests,
                    p.throughput_per_s,
                    p.errors,
                    opt(l.and_then(|l| l.p50)),
                    opt(l.and_then(|l| l.p95)),
                    opt(p.offered.as_ref().and_then(|o| o.concurrency))
                );
            }
            if step > 1 {
                crate::outln!(
                    "  (every {step}th of {} intervals; --json has all)",
                    t.points.len()
                );
            }
        }
        crate::outln!();
    }
    if let Some(s) = out.sweep {
        crate::outln!("sweep: {} levels", s.points.len());
        crate::outln!(
            "  {:>11} {:>12} {:>10} {:>10}  source",
            "concurrency",
            "req/s",
            "mean ms",
            "p95 ms"
        );
        for p in &s.points {
            crate::outln!(
                "  {:>11.1} {:>12.1} {:>10} {:>10}  {} ({})",
                p.concurrency,
                p.throughput_per_s,
                opt(p.latency_mean_ms),
                opt(p.latency_p95_ms),
                p.source,
                p.concurrency_source
            );
        }
        match &s.knee {
            Some(k) => crate::outln!(
                "  knee: concurrency {:.1}, throughput {:.1}/s: {}",
                k.concurrency,
                k.throughput,
                k.reason
            ),
            None => crate::outln!("  knee: none (throughput kept following load)"),
        }
        if let Some(u) = &s.usl {
            crate::outln!(
                "  USL: sigma {:.4} kappa {:.6} lambda {:.1} r2 {:.3} peak concurrency {} peak throughput {}",
                u.sigma,
                u.kappa,
                u.lambda,
                u.r2,
                opt(u.peak_concurrency),
                opt(u.peak_throughput)
            );
        }
        if let Some(r) = &s.retrograde {
            crate::outln!(
                "  retrograde: throughput fell to {:.1}/s at concurrency {:.1} ({:.0}% below the peak at the highest level)",
                r.throughput,
                r.concurrency,
                r.drop_fraction * 100.0
            );
        }
    }
    match out.plateau {
        Some(w) => crate::outln!(
            "analysis window: {:.3} .. {:.3} ({:.1} s), {:.1}/s: {}",
            w.start_unix_s,
            w.end_unix_s,
            w.end_unix_s - w.start_unix_s,
            w.throughput_per_s,
            w.reason
        ),
        None => crate::outln!("analysis window: none (no per-interval timeline on the wall clock)"),
    }
}
