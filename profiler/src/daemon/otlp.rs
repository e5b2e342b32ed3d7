//! OTLP metrics export (`chokepoint daemon --otlp-endpoint URL`): every `--otlp-interval` the
//! same registry `/metrics` serves is turned into an OTLP `ExportMetricsServiceRequest`
//! (OpenTelemetry's own protobuf definitions, `opentelemetry-proto`) and POSTed to
//! `URL/v1/metrics` over HTTP/1.1 (`application/x-protobuf`). One source for both exporters:
//! the OpenMetrics text is parsed back, so a series has the same value on both.
//!
//! Names are OTel style and translate back to the Prometheus names: `chokepoint_offcpu_seconds_total`
//! is `chokepoint.offcpu` with unit `s` (a monotonic sum), `chokepoint_host_cpu_busy_ratio` is
//! `chokepoint.host_cpu_busy` with unit `1` (a gauge). A collector's Prometheus exporter adds
//! the unit suffix and `_total` back.
//!
//! An endpoint that does not answer never blocks the recording: the exporter runs on its own
//! task, each attempt has a timeout, failures are counted and retried with a doubling backoff
//! (up to [`MAX_BACKOFF`]); the status API shows the counts and the last error.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, bail};
use http_body_util::Full;
use hyper::{Method, Request, body::Bytes};
use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    metrics::v1::{
        AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
        ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
    },
    resource::v1::Resource,
};
use prost::Message;
use serde::Serialize;

/// The longest wait between two attempts after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// One attempt (connect, send, answer) gives up after this.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to send: `http://HOST:PORT[/path]`. Without a path (or with `/`) the OTLP/HTTP
/// default `/v1/metrics` is used; a path is taken as the full metrics URL (as
/// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub authority: String,
    pub path: String,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

/// Parses `--otlp-endpoint`.
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let rest = match s.split_once("://") {
        Some(("http", rest)) => rest,
        Some(("https", _)) => {
            return Err(format!(
                "`{s}`: https is not built in; send to a local collector over http (http://127.0.0.1:4318)"
            ));
        }
        Some((scheme, _)) => return Err(format!("`{s}`: scheme {scheme} is not http")),
        None => return Err(format!("`{s}`: not a URL like http://127.0.0.1:4318")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || !authority.contains(':') {
        return Err(format!(
            "`{s}`: give host and port (OTLP/HTTP listens on 4318: http://127.0.0.1:4318)"
        ));
    }
    let path = if path.is_empty() || path == "/" {
        "/v1/metrics".to_string()
    } else {
        path.to_string()
    };
    Ok(Endpoint {
        authority: authority.to_string(),
        path,
    })
}

/// What the exporter has done, for `/v1/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OtlpStatus {
    pub endpoint: String,
    pub exported: u64,
    pub failed: u64,
    /// Consecutive failures now (0 after a success).
    pub failing_in_a_row: u64,
    pub last_error: Option<String>,
    /// Seconds until the next attempt when the last one failed.
    pub backoff_seconds: Option<f64>,
}

pub type SharedStatus = Arc<Mutex<OtlpStatus>>;

/// The wait after `failures` consecutive failures: the interval doubled each time, at most
/// [`MAX_BACKOFF`]; the interval itself after a success.
pub fn backoff(interval: Duration, failures: u64) -> Duration {
    if failures == 0 {
        return interval;
    }
    let factor = 1u32 << failures.min(16) as u32;
    interval
        .saturating_mul(factor)
        .min(MAX_BACKOFF.max(interval))
}

/// One sample line: its name, labels and value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// A metric family read back from the OpenMetrics text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextFamily {
    pub name: String,
    pub kind: String,
    pub unit: String,
    pub help: String,
    /// (sample name, labels, value)
    pub samples: Vec<Sample>,
}

/// Parses OpenMetrics text as `prometheus-client` writes it: `# HELP`, `# TYPE`, `# UNIT`,
/// samples `name{a="b",...} value`, `# EOF`. Lines it cannot read are skipped.
pub fn parse_text(text: &str) -> Vec<TextFamily> {
    let mut families: Vec<TextFamily> = Vec::new();
    let family = |families: &mut Vec<TextFamily>, name: &str| -> usize {
        match families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                families.push(TextFamily {
                    name: name.to_string(),
                    ..Default::default()
                });
                families.len() - 1
            }
        }
    };
    for line in text.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (Some(key), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let value = parts.next().unwrap_or("").to_string();
            let i = match key {
                "TYPE" | "UNIT" | "HELP" => family(&mut families, name),
                _ => continue,
            };
            match key {
                "TYPE" => families[i].kind = value,
                "UNIT" => families[i].unit = value,
                _ => families[i].help = value,
            }
            continue;
        }
        let Some((name, labels, value)) = parse_sample(line) else {
            continue;
        };
        // The family is the longest declared name the sample's name starts with.
        let owner = families
            .iter()
            .enumerate()
            .filter(|(_, f)| name.starts_with(&f.name))
            .max_by_key(|(_, f)| f.name.len())
            .map(|(i, _)| i);
        if let Some(i) = owner {
            families[i].samples.push((name, labels, value));
        }
    }
    families
}

fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (head, value) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            let labels = parse_labels(&line[open + 1..close])?;
            let value = line[close + 1..].split_whitespace().next()?;
            ((line[..open].to_string(), labels), value)
        }
        None => {
            let mut parts = line.split_whitespace();
            let name = parts.next()?;
            ((name.to_string(), Vec::new()), parts.next()?)
        }
    };
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((head.0, head.1, value))
}

/// `a="x",b="y \"q\""` (escapes `\\`, `\"`, `\n`).
fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((key.trim().to_string(), value));
    }
}

/// The OTel name and unit of a Prometheus family: the `chokepoint_` prefix becomes
/// `chokepoint.`, and a unit the Prometheus translation appends again is taken off the name.
pub fn otel_name(family: &TextFamily) -> (String, String) {
    let (stem, unit) = match family.unit.as_str() {
        "seconds" => (family.name.strip_suffix("_seconds"), "s"),
        "bytes" => (family.name.strip_suffix("_bytes"), "By"),
        "ratio" => (family.name.strip_suffix("_ratio"), "1"),
        _ => (None, ""),
    };
    let (stem, unit) = match stem {
        Some(stem) => (stem, unit),
        None if family.name.ends_with("_ratio") => (family.name.trim_end_matches("_ratio"), "1"),
        None => (family.name.as_str(), ""),
    };
    let name = match stem.strip_prefix("chokepoint_") {
        Some(rest) => format!("chokepoint.{rest}"),
        None => stem.to_string(),
    };
    (name, unit.to_string())
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn attributes(labels: &[(String, String)]) -> Vec<KeyValue> {
    labels
        .iter()
        .filter(|(k, _)| k != "le")
        .map(|(k, v)| kv(k, v))
        .collect()
}

fn number(labels: &[(String, String)], value: f64, start: u64, now: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attributes(labels),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(
            if value.fract() == 0.0 && value.abs() < 9.0e15 && value.is_finite() {
                number_data_point::Value::AsInt(value as i64)
            } else {
                number_data_point::Value::AsDouble(value)
            },
        ),
        ..Default::default()
    }
}

/// One OTLP metric of a parsed family (None for a family with nothing to send).
fn metric_of(f: &TextFamily, start: u64, now: u64) -> Option<Metric> {
    if f.samples.is_empty() {
        return None;
    }
    let (name, unit) = otel_name(f);
    let data = match f.kind.as_str() {
        "counter" => metric::Data::Sum(Sum {
            data_points: f
                .samples
                .iter()
                .filter(|(n, _, _)| n.ends_with("_total"))
                .map(|(_, l, v)| number(l, *v, start, now))
                .collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        "histogram" => metric::Data::Histogram(Histogram {
            data_points: vec![histogram_point(f, start, now)],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
        // gauge, info, unknown: the value as it is now (an info metric's is 1).
        _ => metric::Data::Gauge(Gauge {
            data_points: f
                .samples
                .iter()
                .map(|(_, l, v)| number(l, *v, start, now))
                .collect(),
        }),
    };
    let name = if f.kind == "info" {
        format!("{name}_info")
    } else {
        name
    };
    Some(Metric {
        name,
        description: f.help.clone(),
        unit,
        data: Some(data),
        ..Default::default()
    })
}

/// The histogram's cumulative `_bucket{le}` samples as OTLP's explicit bounds and per-bucket
/// counts (the +Inf bucket is the last count, not a bound).
fn histogram_point(f: &TextFamily, start: u64, now: u64) -> HistogramDataPoint {
    let value_of = |suffix: &str| {
        f.samples
            .iter()
            .find(|(n, _, _)| n.ends_with(suffix))
            .map_or(0.0, |(_, _, v)| *v)
    };
    let mut buckets: Vec<(f64, f64)> = f
        .samples
        .iter()
        .filter(|(n, _, _)| n.ends_with("_bucket"))
        .filter_map(|(_, l, v)| {
            let le = l.iter().find(|(k, _)| k == "le")?.1.as_str();
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, *v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut counts = Vec::with_capacity(buckets.len());
    let mut prev = 0.0;
    for (_, cumulative) in &buckets {
        counts.push((cumulative - prev).max(0.0) as u64);
        prev = *cumulative;
    }
    HistogramDataPoint {
        start_time_unix_nano: start,
        time_unix_nano: now,
        count: value_of("_count") as u64,
        sum: Some(value_of("_sum")),
        bucket_counts: counts,
        explicit_bounds: buckets
            .iter()
            .map(|(b, _)| *b)
            .filter(|b| b.is_finite())
            .collect(),
        ..Default::default()
    }
}

/// The export request for one OpenMetrics text.
pub fn request(text: &str, host: &str, start: u64, now: u64) -> ExportMetricsServiceRequest {
    let metrics = parse_text(text)
        .iter()
        .filter_map(|f| metric_of(f, start, now))
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "chokepoint"),
                    kv("service.version", env!("CARGO_PKG_VERSION")),
                    kv("host.name", host),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "chokepoint".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// One POST; Ok when the receiver answered 2xx.
pub async fn post(endpoint: &Endpoint, body: Vec<u8>) -> anyhow::Result<()> {
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(endpoint.authority.as_str())
            .await
            .with_context(|| format!("connecting to {endpoint}"))?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(endpoint.path.as_str())
            .header(hyper::header::HOST, endpoint.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(Bytes::from(body)))
            .context("building the request")?;
        let (status, answer) = super::client::exchange(stream, req)
            .await
            .with_context(|| format!("talking to {endpoint}"))?;
        if !status.is_success() {
            bail!(
                "{endpoint} answered {status}: {}",
                String::from_utf8_lossy(&answer[..answer.len().min(200)])
            );
        }
        Ok(())
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => bail!("{endpoint}: no answer in {} s", ATTEMPT_TIMEOUT.as_secs()),
    }
}

/// The exporter's loop: waits, snapshots the registry (`snapshot` gives the OpenMetrics text),
/// sends, and backs off on failure. Never returns; abort its task to stop it.
pub async fn run(
    endpoint: Endpoint,
    interval: Duration,
    host: String,
    start_unix_ns: u64,
    snapshot: impl Fn() -> String,
    status: SharedStatus,
) {
    let mut failures = 0u64;
    loop {
        tokio::time::sleep(backoff(interval, failures)).await;
        let now = crate::session::now_unix_ns();
        let body = request(&snapshot(), &host, start_unix_ns, now).encode_to_vec();
        let result = post(&endpoint, body).await;
        let Ok(mut s) = status.lock() else {
            continue;
        };
        match result {
            Ok(()) => {
                failures = 0;
                s.exported += 1;
                s.failing_in_a_row = 0;
                s.backoff_seconds = None;
            }
            Err(e) => {
                failures += 1;
                s.failed += 1;
                s.failing_in_a_row = failures;
                s.last_error = Some(format!("{e:#}"));
                s.backoff_seconds = Some(backoff(interval, failures).as_secs_f64());
            }
        }
    }
}

#[cfg(test)]
#[path = "otlp_tests.rs"]
mod tests;
