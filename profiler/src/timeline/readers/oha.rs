//! oha `--json` (or `--output-format json`): a summary in seconds.
use std::io::BufRead;

use serde_json::Value;

use super::{
    super::{
        Latency, Offered, Timeline, TimelineError,
        series::Outcome,
        text::{Ctx, read_text},
    },
    vegeta::error_outcome,
};

pub(crate) fn json<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let text = read_text(input, ctx)?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| ctx.err(e.line() as u64, format!("bad JSON: {e}")))?;
    let s = v
        .get("summary")
        .ok_or_else(|| ctx.err(1, "no `summary` object"))?;
    let f = |k: &str| s.get(k).and_then(Value::as_f64);
    let mut t = Timeline::empty(ctx.format, &ctx.path);
    t.duration_seconds = f("total").unwrap_or(0.0);
    t.throughput_per_s = f("requestsPerSec").unwrap_or(0.0);
    if let Some(codes) = v.get("statusCodeDistribution").and_then(Value::as_object) {
        for (code, n) in codes {
            let n = n.as_u64().unwrap_or(0);
            t.requests += n;
            if let Outcome::Status(c) = Outcome::http(code.parse().unwrap_or(0)) {
                t.errors += n;
                *t.errors_by_kind.entry(format!("http-{c}")).or_default() += n;
            }
        }
    }
    if let Some(errs) = v.get("errorDistribution").and_then(Value::as_object) {
        for (msg, n) in errs {
            let n = n.as_u64().unwrap_or(0);
            let kind = match error_outcome(0, msg) {
                Outcome::Timeout => "timeout",
                Outcome::Connection => "connection",
                _ => "other",
            };
            t.requests += n;
            t.errors += n;
            *t.errors_by_kind.entry(kind.into()).or_default() += n;
        }
    }
    if t.requests == 0 {
        t.requests = (t.throughput_per_s * t.duration_seconds).round() as u64;
    }
    let p = v.get("latencyPercentiles");
    let pct = |k: &str| {
        p.and_then(|p| p.get(k))
            .and_then(Value::as_f64)
            .map(|s| s * 1000.0)
    };
    t.latency_ms = Some(Latency {
        mean: f("average").map(|s| s * 1000.0),
        p50: pct("p50"),
        p90: pct("p90"),
        p95: pct("p95"),
        p99: pct("p99"),
        max: f("slowest").map(|s| s * 1000.0),
    });
    if let Some(mean) = f("average") {
        t.offered = Some(Offered {
            concurrency: Some(t.throughput_per_s * mean),
            rate_per_s: None,
            source: "littles-law".into(),
        });
    }
    Ok(t)
}
