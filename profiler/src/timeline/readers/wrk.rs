//! wrk and wrk2 output (with or without `--latency`).
use std::io::BufRead;

use super::super::{
    Latency, Offered, Timeline, TimelineError,
    text::{Ctx, after, duration_s, num, read_text, si_num, word},
};

/// `N requests in 2.01s, 7.86MB read`, `Socket errors: connect 0, read 0, write 0, timeout 12`,
/// `Non-2xx or 3xx responses: N`, `Requests/sec: X`, `Latency  avg stdev max`, the latency
/// distribution (`50%  477.00us`, wrk2: `50.000%  1.23ms`), `T threads and C connections`.
pub(crate) fn text<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let text = read_text(input, ctx)?;
    let mut t = Timeline::empty(ctx.format, &ctx.path);
    let (line_no, summary) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| {
            l.contains(" requests in ")
                .then_some((i as u64 + 1, l.trim()))
        })
        .ok_or_else(|| ctx.err(1, "no `N requests in T` line (truncated output?)"))?;
    let (count, rest) = summary
        .split_once(" requests in ")
        .ok_or_else(|| ctx.err(line_no, "bad summary line"))?;
    t.requests = num(count).ok_or_else(|| ctx.err(line_no, "bad request count"))? as u64;
    t.duration_seconds = duration_s(rest.split(',').next().unwrap_or(""))
        .ok_or_else(|| ctx.err(line_no, "bad duration"))?;
    t.throughput_per_s =
        after(&text, "Requests/sec:")
            .and_then(num)
            .unwrap_or(if t.duration_seconds > 0.0 {
                t.requests as f64 / t.duration_seconds
            } else {
                0.0
            });
    if let Some(s) = after(&text, "Socket errors:") {
        for part in s.split(',') {
            let (kind, n) = (
                word(part),
                part.split_whitespace().nth(1).and_then(num).unwrap_or(0.0) as u64,
            );
            if n == 0 {
                continue;
            }
            let kind = match kind {
                "timeout" => "timeout",
                "connect" | "read" | "write" => "connection",
                _ => "other",
            };
            t.errors += n;
            *t.errors_by_kind.entry(kind.into()).or_default() += n;
        }
    }
    if let Some(n) = after(&text, "Non-2xx or 3xx responses:").and_then(num) {
        t.errors += n as u64;
        *t.errors_by_kind
            .entry("http-non-2xx-3xx".into())
            .or_default() += n as u64;
    }
    let mut lat = Latency::default();
    if let Some(l) = text
        .lines()
        .find(|l| l.trim_start().starts_with("Latency ") && !l.contains("Distribution"))
    {
        let f: Vec<&str> = l.split_whitespace().collect();
        lat.mean = f.get(1).and_then(|s| duration_s(s)).map(|s| s * 1000.0);
        lat.max = f.get(3).and_then(|s| duration_s(s)).map(|s| s * 1000.0);
    }
    for l in text.lines() {
        let mut w = l.split_whitespace();
        let (Some(p), Some(v), None) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        let Some(p) = p.strip_suffix('%').and_then(num) else {
            continue;
        };
        let Some(ms) = duration_s(v).map(|s| s * 1000.0) else {
            continue;
        };
        match (p * 1000.0).round() as i64 {
            50_000 => lat.p50 = Some(ms),
            90_000 => lat.p90 = Some(ms),
            95_000 => lat.p95 = Some(ms),
            99_000 => lat.p99 = Some(ms),
            100_000 => lat.max = Some(ms),
            _ => {}
        }
    }
    t.latency_ms = Some(lat);
    if let Some(c) = text.lines().find_map(|l| {
        l.split_once(" threads and ")
            .map(|(_, c)| word(c).to_string())
    }) {
        t.offered = si_num(&c).map(|c| Offered {
            concurrency: Some(c),
            rate_per_s: None,
            source: "configured".into(),
        });
    }
    Ok(t)
}
