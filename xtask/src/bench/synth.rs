//! Large inputs built from the real fixtures for `cargo xtask bench --limits`: a long
//! recording from a short one (its intervals repeated with their clocks moved on), and large
//! load-tool files from small ones (their requests repeated with their times moved on), plus
//! the straight-line fit the memory growth is read from.
use std::io::Write;

use anyhow::{Context, bail};
use serde_json::Value;

/// A recording of `intervals` intervals made from `text` (a recording: header, intervals, an
/// optional end line): its intervals repeated in order, every `*_unix_ns` value of the n-th
/// copy moved on by n times the original's span, indexes renumbered, the end line as long
/// after the last one as it was in the original. A last interval cut short (less than half
/// the longest) is left out. The header is kept as it is.
pub fn repeat_recording(text: &str, intervals: usize) -> anyhow::Result<String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().context("an empty recording")?;
    let mut source = Vec::new();
    let mut end: Option<Value> = None;
    for (n, line) in lines.enumerate() {
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("line {}: not JSON", n + 2))?;
        match v.get("kind").and_then(Value::as_str) {
            Some("interval") => source.push(v),
            Some("end") => end = Some(v),
            _ => bail!("line {}: neither an interval nor an end line", n + 2),
        }
    }
    let ns = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64);
    // A last interval cut short by the end of the run would be repeated as a gap.
    let length = |v: &Value| {
        ns(v, "end_unix_ns")
            .unwrap_or(0)
            .saturating_sub(ns(v, "start_unix_ns").unwrap_or(0))
    };
    let longest = source.iter().map(length).max().unwrap_or(0);
    if source.len() > 1 && source.last().is_some_and(|v| 2 * length(v) < longest) {
        source.pop();
    }
    let (Some(first), Some(last)) = (source.first(), source.last()) else {
        bail!("the recording has no intervals");
    };
    let start = ns(first, "start_unix_ns").context("no start_unix_ns")?;
    let last_end = ns(last, "end_unix_ns").context("no end_unix_ns")?;
    let span = last_end.saturating_sub(start).max(1);
    let mut out = String::with_capacity(text.len() * intervals / source.len().max(1) + 1024);
    out.push_str(header);
    out.push('\n');
    let mut written_end = last_end;
    for i in 0..intervals {
        let mut v = source[i % source.len()].clone();
        shift_unix_ns(&mut v, (i / source.len()) as u64 * span);
        written_end = ns(&v, "end_unix_ns").unwrap_or(written_end);
        v["index"] = Value::from(i as u64);
        out.push_str(&serde_json::to_string(&v)?);
        out.push('\n');
    }
    if let Some(mut end) = end {
        // As long after the last interval as the original's end was.
        let after = ns(&end, "ended_unix_ns").map_or(0, |e| e.saturating_sub(last_end));
        end["ended_unix_ns"] = Value::from(written_end + after);
        out.push_str(&serde_json::to_string(&end)?);
        out.push('\n');
    }
    Ok(out)
}

/// Adds `by` to every unsigned number under a key ending in `_unix_ns`, at any depth.
fn shift_unix_ns(v: &mut Value, by: u64) {
    match v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value.as_u64() {
                    Some(t) if key.ends_with("_unix_ns") => *value = Value::from(t + by),
                    _ => shift_unix_ns(value, by),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| shift_unix_ns(item, by)),
        _ => {}
    }
}

/// Where a load-tool file keeps its times, and in what unit.
#[derive(Debug, Clone, Copy)]
pub enum Times {
    /// Field `index` of lines split at `sep`, a number of `per_second` units.
    Column {
        sep: char,
        index: usize,
        per_second: i64,
    },
    /// A JSON string value after `key` (e.g. `"time":"`), an RFC 3339 UTC time.
    JsonIso { key: &'static str },
    /// An attribute value after `attr` (e.g. ` ts="`), a number of `per_second` units.
    Attr { attr: &'static str, per_second: i64 },
    /// Every field of lines split at `sep` made of exactly `digits` digits (Gatling's epoch
    /// milliseconds, wherever the record type puts them).
    Digits {
        sep: char,
        digits: usize,
        per_second: i64,
    },
}

impl Times {
    /// `line` with each time in it replaced by `f(time)` (kept where `f` gives `None`).
    fn map(&self, line: &str, f: &mut dyn FnMut(&str) -> Option<String>) -> String {
        match *self {
            Times::Column { sep, index, .. } => line
                .split(sep)
                .enumerate()
                .map(|(i, field)| match i == index {
                    true => f(field).unwrap_or_else(|| field.to_string()),
                    false => field.to_string(),
                })
                .collect::<Vec<_>>()
                .join(&sep.to_string()),
            Times::Digits { sep, digits, .. } => line
                .split(sep)
                .map(|field| {
                    match field.len() == digits && field.bytes().all(|b| b.is_ascii_digit()) {
                        true => f(field).unwrap_or_else(|| field.to_string()),
                        false => field.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join(&sep.to_string()),
            Times::JsonIso { key } => replace_after(line, key, '"', f),
            Times::Attr { attr, .. } => replace_after(line, attr, '"', f),
        }
    }

    /// Whole seconds of one time.
    fn seconds(&self, token: &str) -> Option<i64> {
        match *self {
            Times::JsonIso { .. } => iso_seconds(token),
            Times::Column { per_second, .. }
            | Times::Attr { per_second, .. }
            | Times::Digits { per_second, .. } => {
                let whole = token.split('.').next()?;
                Some(whole.parse::<i64>().ok()?.div_euclid(per_second))
            }
        }
    }

    /// One time moved on by `secs` seconds.
    fn shift(&self, token: &str, secs: i64) -> Option<String> {
        match *self {
            Times::JsonIso { .. } => iso_shift(token, secs),
            Times::Column { per_second, .. }
            | Times::Attr { per_second, .. }
            | Times::Digits { per_second, .. } => number_shift(token, secs * per_second),
        }
    }
}

/// Every value that follows `key` up to `until`, passed through `f`.
fn replace_after(
    line: &str,
    key: &str,
    until: char,
    f: &mut dyn FnMut(&str) -> Option<String>,
) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut rest = line;
    while let Some(at) = rest.find(key) {
        let value_start = at + key.len();
        out.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        let value_end = rest.find(until).unwrap_or(rest.len());
        let value = &rest[..value_end];
        out.push_str(&f(value).unwrap_or_else(|| value.to_string()));
        rest = &rest[value_end..];
    }
    out.push_str(rest);
    out
}

/// A decimal number with `delta` added to its whole part (`"0.0009"` + 1 = `"1.0009"`),
/// digits after the point kept as written.
pub fn number_shift(token: &str, delta: i64) -> Option<String> {
    let (whole, frac) = match token.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (token, None),
    };
    let n: i64 = whole.parse().ok()?;
    let shifted = n.checked_add(delta)?;
    Some(match frac {
        Some(f) => format!("{shifted}.{f}"),
        None => shifted.to_string(),
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (`civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Unix seconds of `YYYY-MM-DDTHH:MM:SS...` (what follows the seconds, a fraction and a
/// zone, is not read: the times of one file share their zone).
fn iso_seconds(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(n(0..4)?, n(5..7)?, n(8..10)?);
    Some(days * 86_400 + n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?)
}

/// An RFC 3339 time moved on by `secs` seconds, its fraction and zone kept as written.
pub fn iso_shift(ts: &str, secs: i64) -> Option<String> {
    let t = iso_seconds(ts)? + secs;
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{}",
        s / 3600,
        (s / 60) % 60,
        s % 60,
        &ts[19..]
    ))
}

/// How to make a load-tool file larger and keep it valid.
#[derive(Debug, Clone, Copy)]
pub struct Growth {
    /// Lines written once at the start (a CSV header, an XML opening).
    pub head: usize,
    /// Lines written once at the end (an XML closing tag).
    pub tail: usize,
    pub times: Times,
}

/// Writes `text` to `out` with its body (the lines between `head` and `tail`) repeated until
/// at least `target` bytes are written, each copy's times moved on by the body's span in
/// whole seconds (at least 1 s): a longer run of the same load. Returns bytes written.
pub fn grow(text: &str, growth: Growth, target: u64, out: &mut impl Write) -> anyhow::Result<u64> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= growth.head + growth.tail {
        bail!("no lines between the head and the tail");
    }
    let (head, rest) = lines.split_at(growth.head);
    let (body, tail) = rest.split_at(rest.len() - growth.tail);
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for line in body {
        growth.times.map(line, &mut |t| {
            if let Some(s) = growth.times.seconds(t) {
                lo = lo.min(s);
                hi = hi.max(s);
            }
            None
        });
    }
    if lo > hi {
        bail!("no times found in the body ({:?})", growth.times);
    }
    let span = hi - lo + 1;
    let mut written = 0u64;
    let mut put = |line: &str, written: &mut u64| -> std::io::Result<()> {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        *written += line.len() as u64 + 1;
        Ok(())
    };
    for line in head {
        put(line, &mut written)?;
    }
    let mut copy = 0i64;
    while written < target {
        for line in body {
            let shifted = growth
                .times
                .map(line, &mut |t| growth.times.shift(t, copy * span));
            put(&shifted, &mut written)?;
        }
        copy += 1;
    }
    for line in tail {
        put(line, &mut written)?;
    }
    Ok(written)
}

/// Growth per hour of `y` over time `t` (seconds), by least squares over the second half of
/// the samples (the first half holds the start-up: maps filling, buffers reaching size).
/// `None` with fewer than two samples in that half.
pub fn growth_per_hour(samples: &[(f64, f64)]) -> Option<f64> {
    let half = &samples[samples.len() / 2..];
    if half.len() < 2 {
        return None;
    }
    let n = half.len() as f64;
    let mean_t = half.iter().map(|s| s.0).sum::<f64>() / n;
    let mean_y = half.iter().map(|s| s.1).sum::<f64>() / n;
    let var: f64 = half.iter().map(|s| (s.0 - mean_t).powi(2)).sum();
    if var <= 0.0 {
        return None;
    }
    let cov: f64 = half.iter().map(|s| (s.0 - mean_t) * (s.1 - mean_y)).sum();
    Some(cov / var * 3600.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_the_slope_of_the_second_half() {
        // Start-up jump in the first half, then 1 MiB per 100 s.
        let samples: Vec<(f64, f64)> = (0..10)
            .map(|i| {
                let t = f64::from(i) * 10.0;
                let y = if i < 5 {
                    5.0 * t
                } else {
                    1000.0 + t * 10_486.0
                };
                (t, y)
            })
            .collect();
        let g = growth_per_hour(&samples).expect("fits");
        assert!((g - 10_486.0 * 3600.0).abs() < 1e-3, "{g}");
        let flat = [(0.0, 7.0), (10.0, 7.0), (20.0, 7.0), (30.0, 7.0)];
        assert_eq!(growth_per_hour(&flat), Some(0.0));
        assert_eq!(growth_per_hour(&[(0.0, 1.0), (10.0, 2.0)]), None);
        assert_eq!(growth_per_hour(&[(5.0, 1.0), (5.0, 2.0), (5.0, 3.0)]), None);
    }

    #[test]
    fn times_move_on_across_days_and_units() {
        assert_eq!(
            iso_shift("2026-12-31T23:59:58.775393408Z", 3).as_deref(),
            Some("2027-01-01T00:00:01.775393408Z")
        );
        assert_eq!(
            iso_shift("2028-02-28T12:00:00+00:00", 86_400).as_deref(),
            Some("2028-02-29T12:00:00+00:00")
        );
        assert_eq!(iso_seconds("2026-11-23T08:34:31Z"), Some(1_795_422_871));
        assert_eq!(iso_seconds("not a time"), None);
        assert_eq!(number_shift("0.0009", 1).as_deref(), Some("1.0009"));
        assert_eq!(
            number_shift("1795422900000", 5000).as_deref(),
            Some("1795422905000")
        );
        assert_eq!(number_shift("abc", 1), None);
    }

    #[test]
    fn grown_files_keep_their_head_and_tail_and_move_times_on() {
        let csv = "t,v\n100,a\n101,b\n";
        let growth = Growth {
            head: 1,
            tail: 0,
            times: Times::Column {
                sep: ',',
                index: 0,
                per_second: 1,
            },
        };
        let mut out = Vec::new();
        grow(csv, growth, 20, &mut out).expect("grows");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "t,v\n100,a\n101,b\n102,a\n103,b\n"
        );
        let xml = "<r>\n<s ts=\"1000\" t=\"1\"/>\n</r>\n";
        let growth = Growth {
            head: 1,
            tail: 1,
            times: Times::Attr {
                attr: " ts=\"",
                per_second: 1000,
            },
        };
        let mut out = Vec::new();
        grow(xml, growth, 30, &mut out).expect("grows");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "<r>\n<s ts=\"1000\" t=\"1\"/>\n<s ts=\"2000\" t=\"1\"/>\n</r>\n"
        );
        let json = "{\"time\":\"2026-11-23T08:34:31.5Z\",\"v\":1}\n";
        let growth = Growth {
            head: 0,
            tail: 0,
            times: Times::JsonIso { key: "\"time\":\"" },
        };
        let mut out = Vec::new();
        grow(json, growth, 60, &mut out).expect("grows");
        assert!(
            String::from_utf8(out)
                .expect("utf-8")
                .ends_with("{\"time\":\"2026-11-23T08:34:32.5Z\",\"v\":1}\n")
        );
    }

    #[test]
    fn repeated_recordings_renumber_and_move_their_clocks() {
        let rec = concat!(
            "{\"kind\":\"header\",\"started_unix_ns\":5}\n",
            "{\"kind\":\"interval\",\"index\":0,\"start_unix_ns\":10,\"end_unix_ns\":20,\"overhead\":{\"windows\":[{\"start_unix_ns\":11,\"end_unix_ns\":12}]}}\n",
            "{\"kind\":\"interval\",\"index\":1,\"start_unix_ns\":20,\"end_unix_ns\":30}\n",
            "{\"kind\":\"end\",\"ended_unix_ns\":31}\n",
        );
        let long = repeat_recording(rec, 5).expect("repeats");
        let lines: Vec<Value> = long
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[0]["started_unix_ns"], 5);
        let starts: Vec<u64> = lines[1..6]
            .iter()
            .map(|v| v["start_unix_ns"].as_u64().expect("start"))
            .collect();
        assert_eq!(starts, [10, 20, 30, 40, 50]);
        assert_eq!(lines[5]["index"], 4);
        assert_eq!(lines[5]["overhead"]["windows"][0]["end_unix_ns"], 52);
        assert_eq!(lines[6]["ended_unix_ns"], 61);
        assert!(repeat_recording("{\"kind\":\"header\"}\n", 3).is_err());
    }
}
