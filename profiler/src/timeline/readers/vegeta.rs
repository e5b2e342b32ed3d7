//! vegeta: results encoded as JSON lines or CSV (`vegeta encode`), and `vegeta report
//! -type=json`.
use std::{borrow::Cow, io::BufRead};

use serde::Deserialize;
use serde_json::Value;

use super::{
    super::{
        Clock, Latency, Timeline, TimelineError,
        series::{Outcome, Series},
        text::{Ctx, Lines, read_text, rfc3339_s},
    },
    k6::next_record,
};

/// An error string from Go's net/http: timeouts, refused or reset connections, the rest.
pub(crate) fn error_outcome(code: u16, error: &str) -> Outcome {
    if error.is_empty() {
        return Outcome::http(code);
    }
    let e = error.to_ascii_lowercase();
    if e.contains("timeout") || e.contains("deadline exceeded") {
        Outcome::Timeout
    } else if e.contains("connection")
        || e.contains("dial")
        || e.contains("broken pipe")
        || e.contains("eof")
    {
        Outcome::Connection
    } else if code >= 400 {
        Outcome::Status(code)
    } else {
        Outcome::Other
    }
}

#[derive(Deserialize)]
struct Hit<'a> {
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    code: u16,
    latency: u64,
    #[serde(borrow, default)]
    error: Cow<'a, str>,
}

fn add(series: &mut Series, start: f64, latency_ns: u64, code: u16, error: &str) {
    let lat = latency_ns as f64 / 1e9;
    let done = start + lat;
    series.request(done, error_outcome(code, error), 1);
    series.latency(done, lat);
}

pub(crate) fn json<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut lines = Lines::new(input);
    let mut series = Series::new(1.0);
    while let Some(l) = lines.next_line(ctx)? {
        let (n, line) = (l.n, l.bytes);
        if line.is_empty() {
            continue;
        }
        let hit: Hit<'_> = match serde_json::from_slice(line) {
            Ok(hit) => hit,
            Err(e) => {
                ctx.skip(
                    n,
                    format!("bad result: {}", crate::skipped::json_reason(&e)),
                );
                continue;
            }
        };
        let Some(start) = rfc3339_s(&hit.timestamp) else {
            ctx.skip(n, format!("bad timestamp {:?}", hit.timestamp));
            continue;
        };
        add(&mut series, start, hit.latency, hit.code, &hit.error);
    }
    if series.requests() == 0 {
        return Err(ctx.err(lines.number.max(1), "no results"));
    }
    Ok(series.finish(ctx.format, &ctx.path, Clock::Absolute))
}

/// `timestamp_ns,code,latency_ns,bytes_out,bytes_in,error,body_base64,attack,seq[,method,url,headers]`.
pub(crate) fn csv<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut series = Series::new(1.0);
    let mut rec = ::csv::ByteRecord::new();
    while next_record(&mut rdr, &mut rec, ctx)? {
        let n = rec.position().map_or(0, |p| p.line());
        if rec.len() < 6 {
            ctx.skip(
                n,
                format!(
                    "{} fields, expected at least 6 (truncated line?)",
                    rec.len()
                ),
            );
            continue;
        }
        let int = |i: usize| rec.get(i).and_then(super::parse_u64);
        let (Some(ts), Some(code), Some(lat)) = (int(0), int(1), int(2)) else {
            ctx.skip(n, "bad timestamp, code or latency");
            continue;
        };
        let err = std::str::from_utf8(rec.get(5).unwrap_or_default()).unwrap_or("error");
        add(
            &mut series,
            ts as f64 / 1e9,
            lat,
            u16::try_from(code).unwrap_or(0),
            err,
        );
    }
    if series.requests() == 0 {
        return Err(ctx.err(1, "no results"));
    }
    Ok(series.finish(ctx.format, &ctx.path, Clock::Absolute))
}

/// `{"latencies":{"mean":ns,"50th":ns,...},"earliest":..,"duration":ns,"requests":N,
/// "rate":r,"throughput":x,"success":0.99,"status_codes":{"200":n},"errors":[...]}`.
pub(crate) fn report<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let text = read_text(input, ctx)?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| ctx.err(e.line() as u64, format!("bad JSON: {e}")))?;
    let mut t = Timeline::empty(ctx.format, &ctx.path);
    t.requests = v
        .get("requests")
        .and_then(Value::as_u64)
        .ok_or_else(|| ctx.err(1, "no `requests`"))?;
    t.duration_seconds = v.get("duration").and_then(Value::as_f64).unwrap_or(0.0) / 1e9;
    t.throughput_per_s = v.get("throughput").and_then(Value::as_f64).unwrap_or(0.0);
    if let Some(codes) = v.get("status_codes").and_then(Value::as_object) {
        for (code, n) in codes {
            let n = n.as_u64().unwrap_or(0);
            let o = Outcome::http(code.parse().unwrap_or(0));
            if o != Outcome::Ok && n > 0 {
                t.errors += n;
                let kind = match o {
                    Outcome::Status(s) => format!("http-{s}"),
                    _ => "connection".into(),
                };
                *t.errors_by_kind.entry(kind).or_default() += n;
            }
        }
    }
    let l = v.get("latencies");
    let ms = |k: &str| {
        l.and_then(|l| l.get(k))
            .and_then(Value::as_f64)
            .map(|ns| ns / 1e6)
    };
    t.latency_ms = Some(Latency {
        mean: ms("mean"),
        p50: ms("50th"),
        p90: ms("90th"),
        p95: ms("95th"),
        p99: ms("99th"),
        max: ms("max"),
    });
    if let Some(start) = v
        .get("earliest")
        .and_then(Value::as_str)
        .and_then(rfc3339_s)
        .filter(|s| *s > 0.0)
    {
        t.clock = Clock::Absolute;
        t.start_unix_s = Some(start);
    }
    if let Some(rate) = v.get("rate").and_then(Value::as_f64) {
        t.offered = Some(super::super::Offered {
            concurrency: None,
            rate_per_s: Some(rate),
            source: "measured".into(),
        });
    }
    Ok(t)
}
