//! siege: its log file (one row per run, so a file is often a sweep) and its summary, as
//! JSON (siege 4.1+) or text (`Transactions: 200 hits`).
use std::{collections::BTreeMap, io::BufRead};

use serde_json::Value;

use super::super::{
    Clock, Latency, Offered, Point, Timeline, TimelineError,
    text::{Ctx, Lines, after, datetime_s, num, read_text, word},
};

/// `Date & Time, Trans, Elap Time, Data Trans, Resp Time, Trans Rate, Throughput,
/// Concurrent, OKAY, Failed`; the date (when the run ended, local time) is read as UTC.
pub(crate) fn log<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut lines = Lines::new(input);
    let mut t = Timeline::empty(ctx.format, &ctx.path);
    t.clock = Clock::Absolute;
    let (mut lat_sum, mut max_c) = (0.0, 0.0f64);
    while let Some(l) = lines.next_line(ctx)? {
        let (n, line) = (l.n, l.bytes);
        let Ok(s) = std::str::from_utf8(line) else {
            ctx.skip(n, "not UTF-8");
            continue;
        };
        if s.trim().is_empty() || s.contains("Date & Time") {
            continue;
        }
        let f: Vec<&str> = s.split(',').map(str::trim).collect();
        if f.len() != 10 {
            ctx.skip(
                n,
                format!(
                    "{} fields, expected 10{}",
                    f.len(),
                    if l.unterminated {
                        " (truncated line)"
                    } else {
                        ""
                    }
                ),
            );
            continue;
        }
        let Some(end) = datetime_s(f[0]) else {
            ctx.skip(n, format!("bad date {:?}", f[0]));
            continue;
        };
        let v: Option<Vec<f64>> = f[1..].iter().map(|x| num(x)).collect();
        let Some(v) = v else {
            ctx.skip(n, "bad number");
            continue;
        };
        let (elapsed, resp_s, rate, conc, ok, failed) =
            (v[1], v[3], v[4], v[6], v[7] as u64, v[8] as u64);
        let mut kinds = BTreeMap::new();
        if failed > 0 {
            kinds.insert("other".to_string(), failed);
        }
        t.requests += ok + failed;
        t.errors += failed;
        t.duration_seconds += elapsed;
        lat_sum += resp_s * 1000.0 * ok as f64;
        max_c = max_c.max(conc);
        t.points.push(Point {
            start_s: end - elapsed,
            seconds: elapsed.max(1e-3),
            requests: ok + failed,
            errors: failed,
            throughput_per_s: rate,
            errors_by_kind: kinds,
            latency_ms: Some(Latency {
                mean: Some(resp_s * 1000.0),
                ..Latency::default()
            }),
            offered: Some(Offered {
                concurrency: Some(conc),
                rate_per_s: None,
                source: "measured".into(),
            }),
        });
    }
    if t.points.is_empty() {
        return Err(ctx.err(lines.number.max(1), "no run rows"));
    }
    t.points.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    t.start_unix_s = t.points.first().map(|p| p.start_s);
    if t.errors > 0 {
        t.errors_by_kind.insert("other".into(), t.errors);
    }
    t.throughput_per_s = if t.duration_seconds > 0.0 {
        t.requests as f64 / t.duration_seconds
    } else {
        0.0
    };
    let ok = t.requests - t.errors;
    t.latency_ms = (ok > 0).then(|| Latency {
        mean: Some(lat_sum / ok as f64),
        ..Latency::default()
    });
    t.offered = Some(Offered {
        concurrency: Some(max_c),
        rate_per_s: None,
        source: "measured".into(),
    });
    t.warnings.push(
        "siege log: one row per run (times are local, read as UTC); rows may form a sweep".into(),
    );
    Ok(t)
}

pub(crate) fn text<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let text = read_text(input, ctx)?;
    let mut t = Timeline::empty(ctx.format, &ctx.path);
    // JSON: take the object from its first `{` to its last `}` (siege prints lines around it).
    let json = text
        .find('{')
        .zip(text.rfind('}'))
        // A `}` before the first `{` (garbage, a truncated file) is no object.
        .and_then(|(a, b)| text.get(a..=b))
        .and_then(|object| serde_json::from_str::<Value>(object).ok());
    let get = |json_key: &str, text_key: &str| -> Option<f64> {
        match &json {
            Some(v) => v.get(json_key).and_then(Value::as_f64),
            None => after(&text, text_key).map(word).and_then(num),
        }
    };
    let ok = get("successful_transactions", "Successful transactions:")
        .or_else(|| get("transactions", "Transactions:"));
    let ok = ok.ok_or_else(|| ctx.err(1, "no transactions figure (truncated output?)"))? as u64;
    let failed = get("failed_transactions", "Failed transactions:").unwrap_or(0.0) as u64;
    t.requests = ok + failed;
    t.errors = failed;
    if failed > 0 {
        t.errors_by_kind.insert("other".into(), failed);
    }
    t.duration_seconds = get("elapsed_time", "Elapsed time:").unwrap_or(0.0);
    t.throughput_per_s = get("transaction_rate", "Transaction rate:").unwrap_or(0.0);
    t.latency_ms = Some(Latency {
        mean: get("response_time", "Response time:").map(|s| s * 1000.0),
        max: get("longest_transaction", "Longest transaction:").map(|s| s * 1000.0),
        ..Latency::default()
    });
    t.offered = get("concurrency", "Concurrency:").map(|c| Offered {
        concurrency: Some(c),
        rate_per_s: None,
        source: "measured".into(),
    });
    Ok(t)
}
