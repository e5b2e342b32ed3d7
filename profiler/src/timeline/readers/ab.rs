//! ApacheBench: `-g` gnuplot TSV (one row per request), `-e` percentile CSV and its summary.
use std::io::BufRead;

use super::{
    super::{
        Clock, Latency, Offered, Timeline, TimelineError,
        series::{Outcome, Series},
        text::{Ctx, Lines, after, num, read_text, word},
    },
    parse_f64, split,
};

/// `starttime seconds ctime dtime ttime wait` (tab-separated): `seconds` is the request's unix start
/// (whole seconds), `ttime` its total time in ms. ab writes no row for failed requests.
pub(crate) fn tsv<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut lines = Lines::new(input);
    let mut series = Series::new(1.0);
    while let Some(l) = lines.next_line(ctx)? {
        let (n, line) = (l.n, l.bytes);
        if n == 1 {
            if !line.starts_with(b"starttime\tseconds") {
                return Err(ctx.err(n, "missing the starttime/seconds/... header"));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (nf, fields) = split::<6>(line, b'\t');
        if nf != 6 {
            ctx.skip(
                n,
                format!(
                    "{} fields, expected 6{}",
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
        let (Some(start), Some(total_ms)) = (parse_f64(fields[1]), parse_f64(fields[4])) else {
            ctx.skip(n, "bad seconds or ttime");
            continue;
        };
        let done = start + total_ms / 1000.0;
        series.request(done, Outcome::Ok, 1);
        series.latency(done, total_ms / 1000.0);
    }
    if series.requests() == 0 {
        return Err(ctx.err(lines.number.max(1), "no request rows"));
    }
    let mut t = series.finish(ctx.format, &ctx.path, Clock::Absolute);
    t.offered = None;
    t.warnings
        .push("ab -g holds whole-second start times and no failed requests".into());
    Ok(t)
}

/// `Percentage served,Time in ms` then `0,0.090` ... `100,6.0`: latency only, no counts.
pub(crate) fn csv<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut lines = Lines::new(input);
    let mut lat = Latency::default();
    let mut rows = 0;
    while let Some(l) = lines.next_line(ctx)? {
        let (n, line) = (l.n, l.bytes);
        if n == 1 || line.is_empty() {
            continue;
        }
        let Ok(s) = std::str::from_utf8(line) else {
            ctx.skip(n, "not UTF-8");
            continue;
        };
        let (Some(p), Some(ms)) = s
            .split_once(',')
            .map_or((None, None), |(p, ms)| (num(p), num(ms)))
        else {
            ctx.skip(n, "expected `percent,milliseconds`");
            continue;
        };
        rows += 1;
        match p as u32 {
            50 => lat.p50 = Some(ms),
            90 => lat.p90 = Some(ms),
            95 => lat.p95 = Some(ms),
            99 => lat.p99 = Some(ms),
            100 => lat.max = Some(ms),
            _ => {}
        }
    }
    if rows == 0 {
        return Err(ctx.err(lines.number.max(1), "no percentile rows"));
    }
    let mut t = Timeline::empty(ctx.format, &ctx.path);
    t.latency_ms = Some(lat);
    t.warnings
        .push("ab -e holds latency percentiles only: no request counts".into());
    Ok(t)
}

/// The summary ab prints. Errors are non-2xx responses plus failed connects, receives and
/// exceptions; `Length` failures (a body of another size) are not counted as errors.
pub(crate) fn text<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let text = read_text(input, ctx)?;
    let mut t = Timeline::empty(ctx.format, &ctx.path);
    t.requests = after(&text, "Complete requests:")
        .and_then(num)
        .ok_or_else(|| ctx.err(1, "no `Complete requests:` line (truncated output?)"))?
        as u64;
    t.duration_seconds = after(&text, "Time taken for tests:")
        .map(word)
        .and_then(num)
        .unwrap_or(0.0);
    t.throughput_per_s = after(&text, "Requests per second:")
        .map(word)
        .and_then(num)
        .unwrap_or(0.0);
    if let Some(detail) = after(&text, "Failed requests:").and_then(|_| after(&text, "(Connect:")) {
        // `(Connect: 0, Receive: 0, Length: 12, Exceptions: 0)`
        let detail = format!("Connect:{detail}");
        for part in detail.trim_end_matches(')').split(',') {
            let Some((k, v)) = part.split_once(':') else {
                continue;
            };
            let n = num(v).unwrap_or(0.0) as u64;
            let kind = match k.trim() {
                "Connect" | "Receive" => "connection",
                "Exceptions" => "other",
                _ => continue,
            };
            if n > 0 {
                t.errors += n;
                *t.errors_by_kind.entry(kind.into()).or_default() += n;
            }
        }
    }
    if let Some(n) = after(&text, "Non-2xx responses:").and_then(num) {
        t.errors += n as u64;
        *t.errors_by_kind.entry("http-non-2xx".into()).or_default() += n as u64;
    }
    let pct = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .map(word)
            .and_then(num)
    };
    t.latency_ms = Some(Latency {
        mean: after(&text, "Time per request:").map(word).and_then(num),
        p50: pct("50%"),
        p90: pct("90%"),
        p95: pct("95%"),
        p99: pct("99%"),
        max: pct("100%"),
    });
    t.offered = after(&text, "Concurrency Level:")
        .and_then(num)
        .map(|c| Offered {
            concurrency: Some(c),
            rate_per_s: None,
            source: "configured".into(),
        });
    Ok(t)
}
