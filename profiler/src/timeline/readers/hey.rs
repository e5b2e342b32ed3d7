//! hey: `-o csv` (one row per request, offsets from the start) and its printed summary.
use std::io::BufRead;

use super::{
    super::{
        Clock, Latency, Offered, Timeline, TimelineError,
        series::{Outcome, Series},
        text::{Ctx, Lines, after, duration_s, num, read_text, word},
    },
    parse_f64, parse_u64, split,
};

/// `response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset`
/// in seconds; hey writes no row for requests that failed without a response.
pub(crate) fn csv<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut lines = Lines::new(input);
    let mut series = Series::new(1.0);
    let mut header = false;
    while let Some(l) = lines.next_line(ctx)? {
        let (n, line) = (l.n, l.bytes);
        if !header {
            if !line.starts_with(b"response-time,") {
                return Err(ctx.err(n, "missing the response-time,... header"));
            }
            header = true;
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (nf, fields) = split::<8>(line, b',');
        if nf != 8 {
            ctx.skip(
                n,
                format!(
                    "{} fields, expected 8{}",
                    nf,
                    if l.unterminated {
                        " (truncated line)"
                    } else {
                        ""
                    }
                ),
            );
            continue;
        }
        let (Some(rt), Some(status), Some(offset)) = (
            parse_f64(fields[0]),
            parse_u64(fields[6]),
            parse_f64(fields[7]),
        ) else {
            ctx.skip(n, "bad response-time, status-code or offset");
            continue;
        };
        let done = offset + rt;
        series.request(done, Outcome::http(u16::try_from(status).unwrap_or(0)), 1);
        series.latency(done, rt);
    }
    if series.requests() == 0 {
        return Err(ctx.err(lines.number.max(1), "no request rows"));
    }
    let mut t = series.finish(ctx.format, &ctx.path, Clock::Offset);
    t.offered = None;
    t.start_unix_s = None;
    Ok(t)
}

/// The summary: `Total: 0.4781 secs`, `Requests/sec: 4183.3`, `Average: ...`, the latency
/// distribution (`50% in 0.0006 secs`), status codes (`[200] 2000 responses`) and
/// `Error distribution:` (`[12] Get ...: dial tcp ...: connection refused`).
pub(crate) fn text<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let text = read_text(input, ctx)?;
    let mut t = Timeline::empty(ctx.format, &ctx.path);
    let total = after(&text, "Total:")
        .and_then(duration_s)
        .ok_or_else(|| ctx.err(1, "no `Total:` line"))?;
    t.duration_seconds = total;
    t.throughput_per_s = after(&text, "Requests/sec:").and_then(num).unwrap_or(0.0);
    let sec_ms = |key: &str| after(&text, key).and_then(duration_s).map(|s| s * 1000.0);
    let pct = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .and_then(|r| r.trim().strip_prefix("in "))
            .and_then(duration_s)
            .map(|s| s * 1000.0)
    };
    t.latency_ms = Some(Latency {
        mean: sec_ms("Average:"),
        p50: pct("50%"),
        p90: pct("90%"),
        p95: pct("95%"),
        p99: pct("99%"),
        max: sec_ms("Slowest:"),
    });
    let mut section = "";
    for l in text.lines() {
        let l = l.trim();
        if l.ends_with("distribution:") {
            section = if l.starts_with("Status code") {
                "status"
            } else if l.starts_with("Error") {
                "error"
            } else {
                ""
            };
            continue;
        }
        let Some(rest) = l.strip_prefix('[') else {
            continue;
        };
        let Some((inside, what)) = rest.split_once(']') else {
            continue;
        };
        match section {
            "status" => {
                let (Ok(code), Some(count)) = (inside.trim().parse::<u16>(), num(word(what)))
                else {
                    continue;
                };
                let count = count as u64;
                t.requests += count;
                if let Outcome::Status(s) = Outcome::http(code) {
                    t.errors += count;
                    *t.errors_by_kind.entry(format!("http-{s}")).or_default() += count;
                }
            }
            "error" => {
                let Some(count) = num(inside).map(|c| c as u64) else {
                    continue;
                };
                let kind = if what.contains("Timeout") || what.contains("timeout") {
                    "timeout"
                } else if what.contains("connection") || what.contains("dial") {
                    "connection"
                } else {
                    "other"
                };
                t.requests += count;
                t.errors += count;
                *t.errors_by_kind.entry(kind.into()).or_default() += count;
            }
            _ => {}
        }
    }
    if t.requests == 0 {
        t.requests = (t.throughput_per_s * total).round() as u64;
    }
    // hey prints no -c: Little's law (in flight = throughput x mean latency) estimates it.
    if let Some(mean) = t.latency_ms.as_ref().and_then(|l| l.mean) {
        t.offered = Some(Offered {
            concurrency: Some(t.throughput_per_s * mean / 1000.0),
            rate_per_s: None,
            source: "littles-law".into(),
        });
    }
    Ok(t)
}
