//! locust `--csv PREFIX`: `PREFIX_stats_history.csv` (a row per second per endpoint plus an
//! `Aggregated` row, with cumulative totals) and `PREFIX_stats.csv` (the final table).
use std::{collections::BTreeMap, io::BufRead};

use super::{
    super::{
        Clock, Latency, Offered, Point, Timeline, TimelineError,
        text::{Ctx, num},
    },
    k6::{csv_err, next_record},
};

fn columns<R: BufRead>(
    rdr: &mut ::csv::Reader<R>,
    ctx: &Ctx,
    need: &[&str],
) -> Result<Vec<Option<usize>>, TimelineError> {
    let h = rdr.byte_headers().map_err(|e| csv_err(ctx, &e))?.clone();
    let cols: Vec<Option<usize>> = need
        .iter()
        .map(|n| h.iter().position(|c| c == n.as_bytes()))
        .collect();
    Ok(cols)
}

fn field(rec: &::csv::ByteRecord, i: Option<usize>) -> Option<&str> {
    i.and_then(|i| rec.get(i))
        .and_then(|b| std::str::from_utf8(b).ok())
}

/// Percentile columns hold `N/A` before the first request.
fn ms(rec: &::csv::ByteRecord, i: Option<usize>) -> Option<f64> {
    field(rec, i).and_then(num)
}

pub(crate) fn history<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut rdr = ::csv::ReaderBuilder::new().from_reader(input);
    let c = columns(
        &mut rdr,
        ctx,
        &[
            "Timestamp",
            "User Count",
            "Name",
            "Total Request Count",
            "Total Failure Count",
            "50%",
            "90%",
            "95%",
            "99%",
            "100%",
            "Total Average Response Time",
        ],
    )?;
    let [Some(_), Some(_), Some(_), Some(_), Some(_), ..] = c[..] else {
        return Err(ctx.err(
            1,
            "missing Timestamp, User Count, Name or Total * Count columns",
        ));
    };
    let mut t = Timeline::empty(ctx.format, &ctx.path);
    t.clock = Clock::Absolute;
    let mut rec = ::csv::ByteRecord::new();
    let (mut prev_t, mut prev_req, mut prev_fail): (Option<f64>, u64, u64) = (None, 0, 0);
    let (mut max_users, mut last_mean) = (0.0f64, None);
    while next_record(&mut rdr, &mut rec, ctx)? {
        let n = rec.position().map_or(0, |p| p.line());
        if field(&rec, c[2]) != Some("Aggregated") {
            continue;
        }
        let num_at = |i: Option<usize>| field(&rec, i).and_then(num);
        let (Some(ts), Some(users), Some(total), Some(failed)) =
            (num_at(c[0]), num_at(c[1]), num_at(c[3]), num_at(c[4]))
        else {
            ctx.skip(
                n,
                "bad Timestamp, User Count, Total Request Count or Total Failure Count",
            );
            continue;
        };
        let (total, failed) = (total as u64, failed as u64);
        max_users = max_users.max(users);
        last_mean = ms(&rec, c[10]).or(last_mean);
        let start = prev_t.unwrap_or(ts - 1.0);
        let seconds = (ts - start).max(1e-3);
        let (requests, errors) = (
            total.saturating_sub(prev_req),
            failed.saturating_sub(prev_fail),
        );
        let mut kinds = BTreeMap::new();
        if errors > 0 {
            kinds.insert("other".to_string(), errors);
        }
        t.points.push(Point {
            start_s: start,
            seconds,
            requests,
            errors,
            throughput_per_s: requests as f64 / seconds,
            errors_by_kind: kinds,
            latency_ms: ms(&rec, c[5]).map(|p50| Latency {
                mean: None,
                p50: Some(p50),
                p90: ms(&rec, c[6]),
                p95: ms(&rec, c[7]),
                p99: ms(&rec, c[8]),
                max: ms(&rec, c[9]),
            }),
            offered: Some(Offered {
                concurrency: Some(users),
                rate_per_s: None,
                source: "configured".into(),
            }),
        });
        (prev_t, prev_req, prev_fail) = (Some(ts), total, failed);
    }
    // Leading rows before the first request carry no information.
    let first = t
        .points
        .iter()
        .position(|p| p.requests > 0)
        .unwrap_or(t.points.len());
    t.points.drain(..first);
    if t.points.is_empty() {
        return Err(ctx.err(rdr.position().line(), "no Aggregated rows with requests"));
    }
    t.requests = prev_req;
    t.errors = prev_fail;
    if t.errors > 0 {
        t.errors_by_kind.insert("other".into(), t.errors);
    }
    t.start_unix_s = t.points.first().map(|p| p.start_s);
    t.duration_seconds = t.points.iter().map(|p| p.seconds).sum();
    t.throughput_per_s = t.requests as f64 / t.duration_seconds.max(1e-3);
    t.interval_seconds = 1.0;
    t.latency_ms = last_mean.map(|m| Latency {
        mean: Some(m),
        ..Latency::default()
    });
    t.offered = Some(Offered {
        concurrency: Some(max_users),
        rate_per_s: None,
        source: "configured".into(),
    });
    Ok(t)
}

pub(crate) fn stats<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut rdr = ::csv::ReaderBuilder::new().from_reader(input);
    let c = columns(
        &mut rdr,
        ctx,
        &[
            "Name",
            "Request Count",
            "Failure Count",
            "Average Response Time",
            "Requests/s",
            "50%",
            "90%",
            "95%",
            "99%",
            "100%",
        ],
    )?;
    let mut rec = ::csv::ByteRecord::new();
    while next_record(&mut rdr, &mut rec, ctx)? {
        let n = rec.position().map_or(0, |p| p.line());
        if field(&rec, c[0]) != Some("Aggregated") {
            continue;
        }
        let mut t = Timeline::empty(ctx.format, &ctx.path);
        t.requests = field(&rec, c[1])
            .and_then(num)
            .ok_or_else(|| ctx.err(n, "bad Request Count"))? as u64;
        t.errors = field(&rec, c[2])
            .and_then(num)
            .ok_or_else(|| ctx.err(n, "bad Failure Count"))? as u64;
        if t.errors > 0 {
            t.errors_by_kind.insert("other".into(), t.errors);
        }
        t.throughput_per_s = field(&rec, c[4]).and_then(num).unwrap_or(0.0);
        if t.throughput_per_s > 0.0 {
            t.duration_seconds = t.requests as f64 / t.throughput_per_s;
        }
        t.latency_ms = Some(Latency {
            mean: ms(&rec, c[3]),
            p50: ms(&rec, c[5]),
            p90: ms(&rec, c[6]),
            p95: ms(&rec, c[7]),
            p99: ms(&rec, c[8]),
            max: ms(&rec, c[9]),
        });
        return Ok(t);
    }
    Err(ctx.err(rdr.position().line(), "no Aggregated row"))
}
