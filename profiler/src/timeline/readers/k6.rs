//! k6: `--out json` (one JSON object per line), `--out csv`, `--summary-export` and
//! `handleSummary` JSON, and the end-of-test summary it prints.
use std::{borrow::Cow, io::BufRead};

use serde::Deserialize;
use serde_json::Value;

use crate::skipped::json_reason;

use super::super::{
    Clock, Latency, Offered, Timeline, TimelineError,
    series::{Outcome, Series},
    text::{Ctx, Lines, after, duration_s, num, read_text, rfc3339_s, word},
};

#[derive(Deserialize)]
struct PointLine<'a> {
    #[serde(borrow)]
    data: Data<'a>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    time: Cow<'a, str>,
    value: f64,
    #[serde(borrow, default)]
    tags: Option<Tags<'a>>,
}

#[derive(Deserialize, Default)]
struct Tags<'a> {
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    expected_response: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    error_code: Option<Cow<'a, str>>,
}

/// A request's outcome from k6's tags: k6 error codes 1050 (request timeout) and 1211 (dial
/// timeout) are timeouts, 1010 and 1100..1299 (DNS, TCP) connection errors.
fn outcome(status: Option<&str>, expected: Option<&str>, error_code: Option<&str>) -> Outcome {
    let code: Option<u32> = error_code.and_then(|c| c.trim().parse().ok());
    match code {
        Some(1050 | 1211) => return Outcome::Timeout,
        Some(1010 | 1100..=1299) => return Outcome::Connection,
        _ => {}
    }
    let status: Option<u16> = status.and_then(|s| s.trim().parse().ok());
    match (status, expected) {
        (Some(0), _) => Outcome::Connection,
        (Some(s), Some("false")) if s >= 400 => Outcome::Status(s),
        (_, Some("false")) => Outcome::Other,
        (_, Some("true")) => Outcome::Ok,
        (Some(s), _) => Outcome::http(s),
        (None, _) => Outcome::Ok,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Metric {
    Reqs,
    ReqDuration,
    Vus,
    Iterations,
    IterationDuration,
    WsMessages,
    /// A script's own `Trend` of times (`new Trend(name, true)`), by index in `Both::custom`.
    CustomTime(usize),
}

/// k6's own trends of times: anything else declared `"type":"trend","contains":"time"` is a
/// script's (e.g. a WebSocket test timing its messages).
const BUILTIN_TIME_TRENDS: &[&str] = &[
    "http_req_duration",
    "http_req_blocked",
    "http_req_connecting",
    "http_req_tls_handshaking",
    "http_req_sending",
    "http_req_waiting",
    "http_req_receiving",
    "iteration_duration",
    "group_duration",
    "ws_connecting",
    "ws_session_duration",
    "ws_ping",
    "grpc_req_duration",
];

fn metric(name: &[u8]) -> Option<Metric> {
    Some(match name {
        b"http_reqs" => Metric::Reqs,
        b"http_req_duration" => Metric::ReqDuration,
        b"vus" => Metric::Vus,
        b"iterations" => Metric::Iterations,
        b"iteration_duration" => Metric::IterationDuration,
        b"ws_msgs_received" => Metric::WsMessages,
        _ => return None,
    })
}

/// HTTP requests when there are any, else WebSocket messages received (a WebSocket test's
/// iterations are whole sessions, often one per VU at the very end), else iterations (gRPC,
/// browser tests).
struct Both {
    http: Series,
    ws: Series,
    iters: Series,
    /// The script's own time trends, each with its points so far and a copy of the WebSocket
    /// series taking that trend's points as latency (which one is used is known at the end).
    custom: Vec<CustomTrend>,
}

/// A script's own time trend, and the WebSocket series with its points as latency.
struct CustomTrend {
    name: String,
    points: u64,
    /// Points below zero (sender and receiver clocks that disagree): left out, and said.
    negative: u64,
    ws: Series,
}

impl Both {
    fn new() -> Both {
        Both {
            http: Series::new(1.0),
            ws: Series::new(1.0),
            iters: Series::new(1.0),
            custom: Vec::new(),
        }
    }

    /// A `Metric` line: remembers a script's time trend so its points are read.
    fn declare(&mut self, v: &Value) {
        let data = v.get("data");
        let field = |k: &str| data.and_then(|d| d.get(k)).and_then(Value::as_str);
        if let (Some(name), Some("trend"), Some("time")) =
            (field("name"), field("type"), field("contains"))
            && !BUILTIN_TIME_TRENDS.contains(&name)
            && !self.custom.iter().any(|c| c.name == name)
        {
            self.custom.push(CustomTrend {
                name: name.to_string(),
                points: 0,
                negative: 0,
                ws: self.ws.clone(),
            });
        }
    }

    fn metric(&self, name: &[u8]) -> Option<Metric> {
        metric(name).or_else(|| {
            self.custom
                .iter()
                .position(|c| c.name.as_bytes() == name)
                .map(Metric::CustomTime)
        })
    }

    fn finish(mut self, ctx: &Ctx, first_line: u64) -> Result<Timeline, TimelineError> {
        let mut t = if self.http.requests() > 0 {
            self.http.finish(ctx.format, &ctx.path, Clock::Absolute)
        } else if self.ws.requests() > 0 {
            // The script's time trend with the most points, if it has one, is the latency.
            self.custom.sort_by_key(|c| std::cmp::Reverse(c.points));
            let (series, latency) = match self.custom.into_iter().next() {
                Some(c) if c.points > c.negative => {
                    let mut said = format!("latency from the script's time trend {}", c.name);
                    if c.negative > 0 {
                        said.push_str(&format!(
                            " ({} of its {} values below zero left out: the sender's and the receiver's clocks or resolutions differ)",
                            c.negative, c.points
                        ));
                    }
                    (c.ws, said)
                }
                _ => (
                    self.ws,
                    "without latency (the script has no time Trend of its own)".to_string(),
                ),
            };
            let mut t = series.finish(ctx.format, &ctx.path, Clock::Absolute);
            t.warnings.push(format!(
                "no http_reqs: requests are WebSocket messages received (ws_msgs_received), {latency}"
            ));
            t
        } else if self.iters.requests() > 0 {
            let mut t = self.iters.finish(ctx.format, &ctx.path, Clock::Absolute);
            t.warnings
                .push("no http_reqs: requests are k6 iterations".into());
            t
        } else {
            return Err(ctx.err(first_line, "no http_reqs or iterations points"));
        };
        // The vus gauge went into the http series only; copy it to points without it.
        if t.offered.is_none() {
            t.warnings
                .push("no vus points: offered load unknown".into());
        }
        Ok(t)
    }

    fn feed(&mut self, m: Metric, t: f64, value: f64, tags: &Tags<'_>) {
        match m {
            Metric::Reqs => {
                let o = outcome(
                    tags.status.as_deref(),
                    tags.expected_response.as_deref(),
                    tags.error_code.as_deref(),
                );
                self.http.request(t, o, value.max(0.0).round() as u64);
            }
            Metric::ReqDuration => self.http.latency(t, value / 1000.0),
            Metric::Vus => {
                self.http.offered(t, value);
                self.ws.offered(t, value);
                self.iters.offered(t, value);
                for c in &mut self.custom {
                    c.ws.offered(t, value);
                }
            }
            Metric::WsMessages => {
                let n = value.max(0.0).round() as u64;
                self.ws.request(t, Outcome::Ok, n);
                for c in &mut self.custom {
                    c.ws.request(t, Outcome::Ok, n);
                }
            }
            Metric::Iterations => self
                .iters
                .request(t, Outcome::Ok, value.max(0.0).round() as u64),
            Metric::IterationDuration => self.iters.latency(t, value / 1000.0),
            Metric::CustomTime(i) => {
                let c = &mut self.custom[i];
                c.points += 1;
                if value < 0.0 {
                    c.negative += 1;
                } else {
                    c.ws.latency(t, value / 1000.0);
                }
            }
        }
    }
}

const POINT_PREFIX: &[u8] = b"{\"metric\":\"";
const POINT_TYPE: &[u8] = b"\",\"type\":\"Point\"";

/// One JSON object per line. A line that does not read is left out and noted (`--strict`
/// refuses the file afterwards).
pub(crate) fn json<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut lines = Lines::new(input);
    let mut both = Both::new();
    while let Some(l) = lines.next_line(ctx)? {
        let line = super::trim(l.bytes);
        if line.is_empty() {
            continue;
        }
        if let Err(reason) = json_line(&mut both, line) {
            ctx.skip(l.n, reason);
        }
    }
    both.finish(ctx, 1)
}

/// One line of `--out json`: a Point fed to its series, a Metric declared, or why not.
fn json_line(both: &mut Both, line: &[u8]) -> Result<(), String> {
    // Fast path: k6 itself writes `{"metric":"NAME","type":"Point",...`; points of metrics
    // not read are passed over without parsing them (a cut or corrupt one costs nothing).
    let fast = line.strip_prefix(POINT_PREFIX).and_then(|rest| {
        let end = rest.iter().position(|&b| b == b'"')?;
        rest[end..]
            .starts_with(POINT_TYPE)
            .then(|| both.metric(&rest[..end]))
    });
    let m = match fast {
        Some(None) => return Ok(()),
        Some(Some(m)) => m,
        // Anything else (another writer's key order or spacing, a Metric line): parsed.
        None => {
            let v: Value = serde_json::from_slice(line)
                .map_err(|e| format!("bad JSON: {}", json_reason(&e)))?;
            match (
                v.get("type").and_then(Value::as_str),
                v.get("metric").and_then(Value::as_str),
            ) {
                (Some("Metric"), _) => {
                    both.declare(&v);
                    return Ok(());
                }
                (Some("Point"), Some(name)) => match both.metric(name.as_bytes()) {
                    Some(m) => m,
                    None => return Ok(()),
                },
                _ => return Err("neither a k6 Point nor a Metric line".into()),
            }
        }
    };
    let p: PointLine<'_> =
        serde_json::from_slice(line).map_err(|e| format!("bad point: {}", json_reason(&e)))?;
    let t = rfc3339_s(&p.data.time).ok_or_else(|| format!("bad time {:?}", p.data.time))?;
    if !p.data.value.is_finite() {
        return Err("value is not a finite number".into());
    }
    both.feed(
        m,
        t,
        p.data.value,
        p.data.tags.as_ref().unwrap_or(&Tags::default()),
    );
    Ok(())
}

pub(crate) fn csv<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    let headers = rdr
        .byte_headers()
        .map_err(|e| ctx.err(1, format!("bad header: {e}")))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h == name.as_bytes());
    let (Some(name_i), Some(time_i), Some(value_i)) =
        (col("metric_name"), col("timestamp"), col("metric_value"))
    else {
        return Err(ctx.err(1, "missing metric_name, timestamp or metric_value column"));
    };
    let (status_i, expected_i, code_i) =
        (col("status"), col("expected_response"), col("error_code"));
    let mut both = Both::new();
    let mut rec = ::csv::ByteRecord::new();
    // The line an empty result is blamed on: the first data row, or the header when none.
    let mut blame = 1;
    loop {
        let more = next_record(&mut rdr, &mut rec, ctx)?;
        if !more {
            break;
        }
        let n = rec.position().map_or(0, |p| p.line());
        blame = 2;
        let Some(m) = rec.get(name_i).and_then(metric) else {
            continue;
        };
        let field = |i: Option<usize>| {
            i.and_then(|i| rec.get(i))
                .and_then(|b| std::str::from_utf8(b).ok())
                .filter(|s| !s.is_empty())
        };
        let Some(ts) = field(Some(time_i)) else {
            ctx.skip(n, "missing timestamp");
            continue;
        };
        let Some(t) = num(ts).or_else(|| rfc3339_s(ts)) else {
            ctx.skip(n, format!("bad timestamp {ts:?}"));
            continue;
        };
        let Some(value) = field(Some(value_i)).and_then(num) else {
            ctx.skip(n, "bad metric_value");
            continue;
        };
        let tags = Tags {
            status: field(status_i).map(Cow::Borrowed),
            expected_response: field(expected_i).map(Cow::Borrowed),
            error_code: field(code_i).map(Cow::Borrowed),
        };
        both.feed(m, t, value, &tags);
    }
    both.finish(ctx, blame)
}

pub(crate) fn csv_err(ctx: &Ctx, e: &::csv::Error) -> TimelineError {
    let line = e.position().map_or(0, |p| p.line());
    match e.kind() {
        ::csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => ctx.err(line, unequal(*expected_len, *len)),
        _ => ctx.err(line, e.to_string()),
    }
}

fn unequal(expected_len: u64, len: u64) -> String {
    format!("{len} fields where the header has {expected_len} (truncated or mixed file?)")
}

/// The next CSV record (false at the end); a row with another number of fields than the
/// header is left out and noted, and reading goes on with the next.
pub(crate) fn next_record<R: std::io::Read>(
    rdr: &mut ::csv::Reader<R>,
    rec: &mut ::csv::ByteRecord,
    ctx: &Ctx,
) -> Result<bool, TimelineError> {
    loop {
        match rdr.read_byte_record(rec) {
            Ok(more) => return Ok(more),
            Err(e) => match e.kind() {
                ::csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => ctx.skip(
                    e.position().map_or(0, |p| p.line()),
                    unequal(*expected_len, *len),
                ),
                _ => return Err(csv_err(ctx, &e)),
            },
        }
    }
}

/// `--summary-export` (`metrics.NAME.{count,rate,avg,...}`) or `handleSummary`'s data
/// (`metrics.NAME.values.{...}`, `state.testRunDurationMs`).
pub(crate) fn summary<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let text = read_text(input, ctx)?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| ctx.err(e.line() as u64, format!("bad JSON: {e}")))?;
    let metrics = v
        .get("metrics")
        .ok_or_else(|| ctx.err(1, "no `metrics` object"))?;
    let stat = |metric: &str, key: &str| -> Option<f64> {
        let m = metrics.get(metric)?;
        m.get("values").unwrap_or(m).get(key)?.as_f64()
    };
    let mut t = Timeline::empty(ctx.format, &ctx.path);
    let (count_metric, dur_metric) = if stat("http_reqs", "count").is_some() {
        ("http_reqs", "http_req_duration")
    } else {
        ("iterations", "iteration_duration")
    };
    let count = stat(count_metric, "count")
        .ok_or_else(|| ctx.err(1, "no http_reqs or iterations count"))?;
    t.requests = count.max(0.0).round() as u64;
    let rate = stat(count_metric, "rate").unwrap_or(0.0);
    let run_ms = v
        .get("state")
        .and_then(|s| s.get("testRunDurationMs"))
        .and_then(Value::as_f64);
    t.duration_seconds =
        run_ms
            .map(|ms| ms / 1000.0)
            .unwrap_or(if rate > 0.0 { count / rate } else { 0.0 });
    t.throughput_per_s = if rate > 0.0 {
        rate
    } else if t.duration_seconds > 0.0 {
        count / t.duration_seconds
    } else {
        0.0
    };
    // The failed-request Rate's `passes` counts true values: the failures.
    let failed = stat("http_req_failed", "passes").or_else(|| {
        stat("http_req_failed", "value")
            .or_else(|| stat("http_req_failed", "rate"))
            .map(|r| r * count)
    });
    t.errors = failed.unwrap_or(0.0).max(0.0).round() as u64;
    if t.errors > 0 {
        t.errors_by_kind.insert("other".into(), t.errors);
    }
    let ms = |k: &str| stat(dur_metric, k);
    if ms("avg").is_some() || ms("med").is_some() {
        t.latency_ms = Some(Latency {
            mean: ms("avg"),
            p50: ms("med").or_else(|| ms("p(50)")),
            p90: ms("p(90)"),
            p95: ms("p(95)"),
            p99: ms("p(99)"),
            max: ms("max"),
        });
    }
    if let Some(vus) = stat("vus_max", "max")
        .or_else(|| stat("vus_max", "value"))
        .or_else(|| stat("vus", "max"))
    {
        t.offered = Some(Offered {
            concurrency: Some(vus),
            rate_per_s: None,
            source: "configured".into(),
        });
    }
    Ok(t)
}

/// The printed end-of-test summary: `http_reqs....: 189 37.2/s`,
/// `http_req_failed....: 7.93% 15 out of 189` (v1) or `0.00% ✓ 0 ✗ 189` (v0),
/// `http_req_duration....: avg=4.31ms min=... med=... max=... p(90)=... p(95)=...`.
pub(crate) fn text<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let text = read_text(input, ctx)?;
    let value = |metric: &str| -> Option<(u64, &str)> {
        text.lines().enumerate().find_map(|(i, l)| {
            let l = l.trim_start().trim_start_matches(['✓', '✗', ' ']);
            let rest = l.strip_prefix(metric)?;
            if !rest.starts_with('.') && !rest.starts_with(':') {
                return None;
            }
            let (_, v) = rest.split_once(':')?;
            Some((i as u64 + 1, v.trim()))
        })
    };
    let mut t = Timeline::empty(ctx.format, &ctx.path);
    let (count_metric, dur_metric) = if value("http_reqs").is_some() {
        ("http_reqs", "http_req_duration")
    } else {
        ("iterations", "iteration_duration")
    };
    let (line, reqs) =
        value(count_metric).ok_or_else(|| ctx.err(1, "no http_reqs or iterations line"))?;
    let mut words = reqs.split_whitespace();
    let count = words
        .next()
        .and_then(num)
        .ok_or_else(|| ctx.err(line, "bad request count"))?;
    let rate = words.next().and_then(|r| num(r.trim_end_matches("/s")));
    t.requests = count as u64;
    if let Some(r) = rate.filter(|r| *r > 0.0) {
        t.throughput_per_s = r;
        t.duration_seconds = count / r;
    }
    if let Some((_, failed)) = value("http_req_failed") {
        let out_of = failed
            .split_once(" out of ")
            .and_then(|(a, _)| a.split_whitespace().last().and_then(num));
        let checkmark = failed.split_once('✓').and_then(|(_, r)| num(word(r)));
        if let Some(e) = out_of.or(checkmark) {
            t.errors = e as u64;
            if t.errors > 0 {
                t.errors_by_kind.insert("other".into(), t.errors);
            }
        }
    }
    if let Some((_, d)) = value(dur_metric) {
        let get = |k: &str| {
            d.split_whitespace()
                .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .and_then(duration_s)
                .map(|s| s * 1000.0)
        };
        t.latency_ms = Some(Latency {
            mean: get("avg"),
            p50: get("med"),
            p90: get("p(90)"),
            p95: get("p(95)"),
            p99: get("p(99)"),
            max: get("max"),
        });
    }
    if let Some((_, v)) = value("vus_max").or_else(|| value("vus")) {
        let max = v
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("max="))
            .and_then(num)
            .or_else(|| num(word(v)));
        t.offered = max.map(|c| Offered {
            concurrency: Some(c),
            rate_per_s: None,
            source: "configured".into(),
        });
    }
    if let Some(running) = after(&text, "running (") {
        // `running (0m05.0s), 0/8 VUs, ...`: the run's length.
        if let Some(d) = running.split(')').next().and_then(duration_s) {
            t.duration_seconds = d;
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(line: &[u8]) -> Value {
        serde_json::from_slice(line).expect("JSON")
    }

    #[test]
    fn a_scripts_own_time_trends_are_declared_and_builtin_ones_are_not() {
        let mut both = Both::new();
        both.declare(&value(br#"{"type":"Metric","data":{"name":"delivery_ms","type":"trend","contains":"time","thresholds":[],"submetrics":null},"metric":"delivery_ms"}"#));
        both.declare(&value(br#"{"type":"Metric","data":{"name":"ws_connecting","type":"trend","contains":"time"},"metric":"ws_connecting"}"#));
        both.declare(&value(br#"{"type":"Metric","data":{"name":"bytes_seen","type":"trend","contains":"default"},"metric":"bytes_seen"}"#));
        both.declare(&value(br#"{"type":"Metric","data":{"name":"delivery_ms","type":"trend","contains":"time"},"metric":"delivery_ms"}"#));
        assert_eq!(
            both.custom
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["delivery_ms"]
        );
        assert!(matches!(
            both.metric(b"delivery_ms"),
            Some(Metric::CustomTime(0))
        ));
        assert!(both.metric(b"bytes_seen").is_none());
        assert!(matches!(both.metric(b"http_reqs"), Some(Metric::Reqs)));
    }

    #[test]
    fn outcomes_from_tags() {
        assert_eq!(outcome(Some("200"), Some("true"), None), Outcome::Ok);
        assert_eq!(
            outcome(Some("500"), Some("false"), Some("1500")),
            Outcome::Status(500)
        );
        assert_eq!(
            outcome(Some("0"), Some("false"), Some("1212")),
            Outcome::Connection
        );
        assert_eq!(
            outcome(Some("0"), Some("false"), Some("1050")),
            Outcome::Timeout
        );
        assert_eq!(outcome(Some("404"), None, None), Outcome::Status(404));
        assert_eq!(outcome(Some("200"), Some("false"), None), Outcome::Other);
    }
}
