//! pgbench: `-l` per-transaction logs, `--aggregate-interval` logs, and its printed output
//! (`--progress` lines and the final summary).
use std::{collections::BTreeMap, io::BufRead};

use super::{
    super::{
        Clock, Latency, Offered, Point, Timeline, TimelineError,
        series::{Outcome, Series},
        text::{Ctx, Lines, after, num, read_text, word},
    },
    parse_u64, split,
};

/// `client_id transaction_no time script_no time_epoch time_us [schedule_lag] [retries]`:
/// `time` is the latency in µs, or `skipped` / `failed` / `serialization` / `deadlock`;
/// `time_epoch.time_us` is when the transaction finished.
pub(crate) fn log<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut lines = Lines::new(input);
    let mut series = Series::new(1.0);
    while let Some(l) = lines.next_line(ctx)? {
        let (n, line) = (l.n, l.bytes);
        if line.is_empty() {
            continue;
        }
        let (nf, f) = split::<8>(line, b' ');
        if !(6..=8).contains(&nf) {
            ctx.skip(
                n,
                format!(
                    "{} fields, expected 6 to 8{}",
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
        let (Some(_), Some(epoch), Some(us)) = (parse_u64(f[0]), parse_u64(f[4]), parse_u64(f[5]))
        else {
            ctx.skip(n, "bad client_id, time_epoch or time_us");
            continue;
        };
        let done = epoch as f64 + us as f64 / 1e6;
        match f[2] {
            b"skipped" => series.request(done, Outcome::Named("skipped"), 1),
            b"failed" => series.request(done, Outcome::Other, 1),
            b"serialization" => series.request(done, Outcome::Named("serialization"), 1),
            b"deadlock" => series.request(done, Outcome::Named("deadlock"), 1),
            latency => {
                let Some(lat) = parse_u64(latency) else {
                    ctx.skip(n, "bad latency field");
                    continue;
                };
                series.request(done, Outcome::Ok, 1);
                series.latency(done, lat as f64 / 1e6);
            }
        }
    }
    if series.requests() == 0 {
        return Err(ctx.err(lines.number.max(1), "no transaction rows"));
    }
    let mut t = series.finish(ctx.format, &ctx.path, Clock::Absolute);
    t.offered = None;
    t.warnings
        .push("with --sampling-rate the log holds only that fraction of transactions".into());
    Ok(t)
}

/// `interval_start num_transactions sum_latency sum_latency_2 min_latency max_latency
/// [failures ...] [lag ...]` (µs); PostgreSQL 15 and later put failures in field 7.
pub(crate) fn aggregate<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut lines = Lines::new(input);
    let mut t = Timeline::empty(ctx.format, &ctx.path);
    t.clock = Clock::Absolute;
    let (mut sum_us, mut max_us) = (0u64, 0u64);
    let mut rows: Vec<(u64, Point)> = Vec::new();
    while let Some(l) = lines.next_line(ctx)? {
        let (n, line) = (l.n, l.bytes);
        if line.is_empty() {
            continue;
        }
        let (nf, f) = split::<16>(line, b' ');
        let v: Option<Vec<u64>> = f[..nf.min(16)].iter().map(|b| parse_u64(b)).collect();
        let Some(v) = v.filter(|v| (6..=16).contains(&v.len())) else {
            ctx.skip(
                n,
                format!(
                    "expected 6 to 16 integers{}",
                    if l.unterminated {
                        " (truncated line)"
                    } else {
                        ""
                    }
                ),
            );
            continue;
        };
        let (start, count, sum, max) = (v[0], v[1], v[2], v[5]);
        let failures = v.get(6).copied().unwrap_or(0);
        sum_us = sum_us.saturating_add(sum);
        max_us = max_us.max(max);
        t.requests += count + failures;
        t.errors += failures;
        let mut kinds = BTreeMap::new();
        if failures > 0 {
            kinds.insert("other".to_string(), failures);
        }
        rows.push((
            start,
            Point {
                start_s: start as f64,
                seconds: 1.0,
                requests: count + failures,
                errors: failures,
                throughput_per_s: 0.0,
                errors_by_kind: kinds,
                latency_ms: (count > 0).then(|| Latency {
                    mean: Some(sum as f64 / count as f64 / 1000.0),
                    max: Some(max as f64 / 1000.0),
                    ..Latency::default()
                }),
                offered: None,
            },
        ));
    }
    if rows.is_empty() {
        return Err(ctx.err(lines.number.max(1), "no interval rows"));
    }
    // The interval is the smallest step between rows (1 s when there is one row).
    let step = rows
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0))
        .filter(|d| *d > 0)
        .min()
        .unwrap_or(1) as f64;
    for (_, p) in &mut rows {
        p.seconds = step;
        p.throughput_per_s = p.requests as f64 / step;
    }
    if t.errors > 0 {
        t.errors_by_kind.insert("other".into(), t.errors);
    }
    t.interval_seconds = step;
    t.start_unix_s = rows.first().map(|r| r.0 as f64);
    t.duration_seconds = rows.len() as f64 * step;
    t.throughput_per_s = t.requests as f64 / t.duration_seconds;
    let ok = t.requests - t.errors;
    t.latency_ms = (ok > 0).then(|| Latency {
        mean: Some(sum_us as f64 / ok as f64 / 1000.0),
        max: Some(max_us as f64 / 1000.0),
        ..Latency::default()
    });
    t.points = rows.into_iter().map(|r| r.1).collect();
    Ok(t)
}

/// `progress: 1.0 s, 4348.7 tps, lat 0.446 ms stddev 1.977, 0 failed` lines (offsets from
/// the start) and the summary: `number of clients: 2`, `duration: 3 s`, `number of
/// transactions actually processed: 15554`, `number of failed transactions: 0`,
/// `latency average = 0.379 ms`, `tps = 5224.0 (without initial connection time)`.
pub(crate) fn text<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let text = read_text(input, ctx)?;
    let mut t = Timeline::empty(ctx.format, &ctx.path);
    let mut prev = 0.0;
    let (mut sum_ms, mut max_ms) = (0.0, 0.0f64);
    for (i, l) in text.lines().enumerate() {
        let Some(rest) = l.trim().strip_prefix("progress: ") else {
            continue;
        };
        let n = i as u64 + 1;
        let parts: Vec<&str> = rest.split(", ").collect();
        let at = parts
            .first()
            .and_then(|p| p.strip_suffix(" s"))
            .and_then(num);
        let tps = parts
            .get(1)
            .and_then(|p| p.strip_suffix(" tps"))
            .and_then(num);
        let (Some(at), Some(tps)) = (at, tps) else {
            ctx.skip(n, "bad progress time or tps");
            continue;
        };
        let lat = parts
            .get(2)
            .and_then(|p| p.strip_prefix("lat "))
            .map(word)
            .and_then(num);
        let failed = parts
            .iter()
            .find_map(|p| p.strip_suffix(" failed"))
            .and_then(num)
            .unwrap_or(0.0) as u64;
        let seconds = (at - prev).max(1e-3);
        let requests = (tps * seconds).round() as u64 + failed;
        if let Some(l) = lat {
            sum_ms += l * requests as f64;
            max_ms = max_ms.max(l);
        }
        let mut kinds = BTreeMap::new();
        if failed > 0 {
            kinds.insert("other".to_string(), failed);
        }
        t.points.push(Point {
            start_s: prev,
            seconds,
            requests,
            errors: failed,
            throughput_per_s: tps,
            errors_by_kind: kinds,
            latency_ms: lat.map(|l| Latency {
                mean: Some(l),
                ..Latency::default()
            }),
            offered: None,
        });
        prev = at;
    }
    t.requests = t.points.iter().map(|p| p.requests).sum();
    t.errors = t.points.iter().map(|p| p.errors).sum();
    t.duration_seconds = prev;
    if t.requests > 0 {
        t.latency_ms = Some(Latency {
            mean: Some(sum_ms / t.requests as f64),
            ..Latency::default()
        });
    }
    t.interval_seconds = t.points.first().map_or(0.0, |p| p.seconds);
    if let Some(n) = after(&text, "number of transactions actually processed:")
        .map(word)
        .and_then(num)
    {
        t.requests = n as u64;
        t.errors = after(&text, "number of failed transactions:")
            .map(word)
            .and_then(num)
            .unwrap_or(t.errors as f64) as u64;
        t.requests += t.errors;
        t.latency_ms = after(&text, "latency average =")
            .map(word)
            .and_then(num)
            .map(|m| Latency {
                mean: Some(m),
                ..Latency::default()
            });
        if let Some(d) = after(&text, "duration:").map(word).and_then(num) {
            t.duration_seconds = d;
        }
    }
    if t.points.is_empty() && after(&text, "number of transactions actually processed:").is_none() {
        return Err(ctx.err(1, "no progress lines and no summary"));
    }
    if t.errors > 0 {
        t.errors_by_kind.insert("other".into(), t.errors);
    }
    t.throughput_per_s =
        after(&text, "tps =")
            .map(word)
            .and_then(num)
            .unwrap_or(if t.duration_seconds > 0.0 {
                t.requests as f64 / t.duration_seconds
            } else {
                0.0
            });
    t.offered = after(&text, "number of clients:")
        .and_then(num)
        .map(|c| Offered {
            concurrency: Some(c),
            rate_per_s: None,
            source: "configured".into(),
        });
    Ok(t)
}
