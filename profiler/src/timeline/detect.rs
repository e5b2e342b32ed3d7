//! Format detection from the first bytes of a file: headers, key names and banners each tool
//! writes, checked from the most specific to the least. JSON is recognised by its content
//! (parsed, so spacing and key order do not matter), never by byte patterns.
use serde_json::{Map, Value};

use super::Format;

/// JSON lines looked at: the first that parses decides (an earlier corrupt one is skipped).
const JSON_LINES_TRIED: usize = 8;

/// The format of the output starting with `head`, or None when no known tool wrote it.
pub fn detect(head: &[u8]) -> Option<Format> {
    let text = String::from_utf8_lossy(&head[..head.len().min(64 * 1024)]);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    let first = t.lines().next().unwrap_or("").trim();
    let has = |s: &str| t.contains(s);

    if first.starts_with('{') {
        if let Some(f) = json_lines(t) {
            return Some(f);
        }
        if first.contains("\"transactions\"") || has("\"transaction_rate\"") {
            return Some(Format::SiegeText);
        }
        if has("\"latencyPercentiles\"") || has("\"statusCodeDistribution\"") {
            return Some(Format::OhaJson);
        }
        if has("\"latencies\"") && has("\"status_codes\"") {
            return Some(Format::VegetaReport);
        }
        if has("\"metrics\"")
            && (has("\"root_group\"") || has("\"http_reqs\"") || has("\"iterations\""))
        {
            return Some(Format::K6Summary);
        }
        return None;
    }
    if first.starts_with("metric_name,timestamp,metric_value") {
        return Some(Format::K6Csv);
    }
    if first.starts_with("response-time,DNS+dialup,DNS,Request-write") {
        return Some(Format::HeyCsv);
    }
    if first.starts_with("starttime\tseconds\tctime\tdtime\tttime\twait") {
        return Some(Format::AbTsv);
    }
    if first.starts_with("Percentage served,Time in ms") {
        return Some(Format::AbCsv);
    }
    if first.starts_with("Timestamp,User Count,Type,Name,Requests/s") {
        return Some(Format::LocustCsv);
    }
    if first.starts_with("Type,Name,Request Count,Failure Count")
        || first.starts_with("Method,Name,# requests")
    {
        return Some(Format::LocustStats);
    }
    if first.starts_with("timeStamp,") && first.contains("elapsed") {
        return Some(Format::JmeterCsv);
    }
    if first.starts_with("<?xml") && has("<testResults") || first.starts_with("<testResults") {
        return Some(Format::JmeterXml);
    }
    if first.contains("Date & Time") && first.contains("Trans") && first.contains("Concurrent") {
        return Some(Format::SiegeLog);
    }
    if first.starts_with("RUN\t")
        || first.starts_with("REQUEST\t")
        || first.starts_with("USER\t")
        || first.starts_with("ASSERTION\t")
    {
        return Some(Format::GatlingLog);
    }
    if has("Requests/sec:") && (has("Thread Stats") || has("threads and") || has("requests in")) {
        return Some(Format::WrkText);
    }
    if has("Summary:") && has("Requests/sec:") && (has("Response time histogram") || has("Total:"))
    {
        return Some(Format::HeyText);
    }
    if has("Requests per second:") && (has("Complete requests:") || has("This is ApacheBench")) {
        return Some(Format::AbText);
    }
    if has("Transactions:") && has("hits") && has("Availability:") {
        return Some(Format::SiegeText);
    }
    if has("http_reqs") && (has("TOTAL RESULTS") || has("....: ") || has("execution:"))
        || has("iterations....")
    {
        return Some(Format::K6Text);
    }
    if first.starts_with("progress: ")
        || has("number of transactions actually processed")
        || first.starts_with("pgbench (")
        || (first.starts_with("starting vacuum") && has("progress:"))
    {
        return Some(Format::PgbenchText);
    }
    if let Some(f) = pgbench_log(first) {
        return Some(f);
    }
    if vegeta_csv(first) {
        return Some(Format::VegetaCsv);
    }
    None
}

/// One JSON object per line: k6 `--out json` (`type` Point or Metric, a `metric` name) or
/// vegeta results (`attack`, `seq`, `code`), whatever the spacing and key order.
fn json_lines(text: &str) -> Option<Format> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(JSON_LINES_TRIED)
        .filter(|l| l.starts_with('{'))
        .find_map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(o)) => Some(json_line_format(&o)),
            _ => None,
        })
        .flatten()
}

fn json_line_format(o: &Map<String, Value>) -> Option<Format> {
    let s = |k: &str| o.get(k).and_then(Value::as_str);
    if matches!(s("type"), Some("Point" | "Metric")) && s("metric").is_some() {
        return Some(Format::K6Json);
    }
    if ["attack", "seq", "code"].iter().all(|k| o.contains_key(*k)) {
        return Some(Format::VegetaJson);
    }
    None
}

/// pgbench -l: `client tx time script epoch usec [lag]` (time may be `skipped`/`failed`);
/// --aggregate-interval: `epoch count sum sum2 min max ...` (the first field a unix time).
fn pgbench_log(first: &str) -> Option<Format> {
    let f: Vec<&str> = first.split(' ').collect();
    let int = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if (6..=8).contains(&f.len())
        && int(f[0])
        && int(f[1])
        && (int(f[2]) || matches!(f[2], "skipped" | "failed"))
        && int(f[3])
        && int(f[4])
        && f[4].len() >= 9
        && int(f[5])
    {
        return Some(Format::PgbenchLog);
    }
    if (6..=15).contains(&f.len()) && f[0].len() >= 9 && f.iter().all(|s| int(s)) {
        return Some(Format::PgbenchAggregate);
    }
    None
}

/// vegeta CSV: `timestamp_ns,code,latency_ns,bytes_out,bytes_in,error,body,attack,seq,...`.
fn vegeta_csv(first: &str) -> bool {
    let mut f = first.split(',');
    let ts = f.next().unwrap_or("");
    let code = f.next().unwrap_or("");
    let lat = f.next().unwrap_or("");
    ts.len() >= 18
        && ts.bytes().all(|b| b.is_ascii_digit())
        && code.len() <= 3
        && code.bytes().all(|b| b.is_ascii_digit())
        && !lat.is_empty()
        && lat.bytes().all(|b| b.is_ascii_digit())
}
