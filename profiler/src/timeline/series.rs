//! Turns a stream of per-request events into per-interval points with constant memory: only
//! intervals within `OPEN_INTERVALS` of the newest event keep a latency histogram; older ones
//! are closed into a [`Point`] (a late request still counts there, without its latency).
use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::{Clock, Format, Latency, Offered, Point, Timeline};

const OPEN_INTERVALS: i64 = 30;
/// Latencies are recorded in microseconds, up to an hour.
const MAX_US: u64 = 3_600_000_000;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    /// An HTTP (or other protocol) status that counts as an error.
    Status(u16),
    Timeout,
    Connection,
    Other,
    /// A tool-specific kind (`skipped`, `serialization`, `deadlock`).
    Named(&'static str),
}

impl Outcome {
    /// From an HTTP status: 1xx-3xx succeed; 0 means no response at all.
    pub fn http(status: u16) -> Outcome {
        match status {
            0 => Outcome::Connection,
            100..=399 => Outcome::Ok,
            s => Outcome::Status(s),
        }
    }

    fn kind(self) -> Option<String> {
        match self {
            Outcome::Ok => None,
            Outcome::Status(s) => Some(format!("http-{s}")),
            Outcome::Timeout => Some("timeout".into()),
            Outcome::Connection => Some("connection".into()),
            Outcome::Other => Some("other".into()),
            Outcome::Named(k) => Some(k.into()),
        }
    }
}

fn hist(sigfig: u8) -> Histogram<u64> {
    #[expect(clippy::expect_used, reason = "constant, valid bounds")]
    Histogram::new_with_bounds(1, MAX_US, sigfig).expect("valid histogram bounds")
}

pub(crate) fn latency_of(h: &Histogram<u64>) -> Option<Latency> {
    if h.is_empty() {
        return None;
    }
    let ms = |v: u64| Some(v as f64 / 1000.0);
    Some(Latency {
        mean: Some(h.mean() / 1000.0),
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
    })
}

#[derive(Default, Clone)]
struct Open {
    requests: u64,
    errors: u64,
    kinds: BTreeMap<String, u64>,
    hist: Option<Histogram<u64>>,
    load_sum: f64,
    load_n: u32,
}

#[derive(Clone)]
pub(crate) struct Series {
    interval: f64,
    open: BTreeMap<i64, Open>,
    closed: BTreeMap<i64, Point>,
    newest: i64,
    total: Histogram<u64>,
    requests: u64,
    errors: u64,
    kinds: BTreeMap<String, u64>,
    first_s: f64,
    last_s: f64,
    offered_max: Option<f64>,
}

impl Series {
    pub fn new(interval: f64) -> Series {
        Series {
            interval,
            open: BTreeMap::new(),
            closed: BTreeMap::new(),
            newest: i64::MIN,
            total: hist(3),
            requests: 0,
            errors: 0,
            kinds: BTreeMap::new(),
            first_s: f64::INFINITY,
            last_s: f64::NEG_INFINITY,
            offered_max: None,
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    fn key(&self, t: f64) -> i64 {
        (t / self.interval).floor() as i64
    }

    fn seen(&mut self, t: f64) {
        self.first_s = self.first_s.min(t);
        self.last_s = self.last_s.max(t);
    }

    /// The open interval for `t`, closing the ones that fell behind; None when `t` belongs to
    /// an interval already closed.
    fn slot(&mut self, t: f64) -> Option<&mut Open> {
        let k = self.key(t);
        if k > self.newest {
            self.newest = k;
            while let Some(entry) = self.open.first_entry() {
                if *entry.key() > k - OPEN_INTERVALS {
                    break;
                }
                let (key, o) = entry.remove_entry();
                let p = self.close(key, o);
                self.closed.insert(key, p);
            }
        }
        if self.closed.contains_key(&k) {
            return None;
        }
        Some(self.open.entry(k).or_default())
    }

    fn close(&self, key: i64, o: Open) -> Point {
        Point {
            start_s: key as f64 * self.interval,
            seconds: self.interval,
            requests: o.requests,
            errors: o.errors,
            throughput_per_s: o.requests as f64 / self.interval,
            errors_by_kind: o.kinds,
            latency_ms: o.hist.as_ref().and_then(latency_of),
            offered: (o.load_n > 0).then(|| Offered {
                concurrency: Some(o.load_sum / f64::from(o.load_n)),
                rate_per_s: None,
                source: "configured".into(),
            }),
        }
    }

    /// A request that finished at `t` (seconds); `count` requests at once for aggregated rows.
    pub fn request(&mut self, t: f64, outcome: Outcome, count: u64) {
        self.seen(t);
        self.requests += count;
        let kind = outcome.kind();
        if let Some(k) = &kind {
            self.errors += count;
            *self.kinds.entry(k.clone()).or_default() += count;
        }
        let key = self.key(t);
        let apply = |requests: &mut u64, errors: &mut u64, kinds: &mut BTreeMap<String, u64>| {
            *requests += count;
            if let Some(k) = kind {
                *errors += count;
                *kinds.entry(k).or_default() += count;
            }
        };
        match self.slot(t) {
            Some(o) => apply(&mut o.requests, &mut o.errors, &mut o.kinds),
            None => {
                if let Some(p) = self.closed.get_mut(&key) {
                    apply(&mut p.requests, &mut p.errors, &mut p.errors_by_kind);
                    p.throughput_per_s = p.requests as f64 / p.seconds;
                }
            }
        }
    }

    /// A latency (seconds) of a request that finished at `t`.
    pub fn latency(&mut self, t: f64, seconds: f64) {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return;
        }
        self.seen(t);
        let us = ((seconds * 1e6).round() as u64).clamp(1, MAX_US);
        self.total.saturating_record(us);
        if let Some(o) = self.slot(t) {
            o.hist.get_or_insert_with(|| hist(2)).saturating_record(us);
        }
    }

    /// Offered concurrency (VUs, users) sampled at `t`.
    pub fn offered(&mut self, t: f64, concurrency: f64) {
        if !concurrency.is_finite() {
            return;
        }
        self.offered_max = Some(self.offered_max.unwrap_or(0.0).max(concurrency));
        if let Some(o) = self.slot(t) {
            o.load_sum += concurrency;
            o.load_n += 1;
        }
    }

    /// The timeline: `clock` says whether the times fed in were unix seconds or offsets.
    pub fn finish(mut self, format: Format, source: &std::path::Path, clock: Clock) -> Timeline {
        let open = std::mem::take(&mut self.open);
        for (k, o) in open {
            let p = self.close(k, o);
            self.closed.insert(k, p);
        }
        let mut t = Timeline::empty(format, source);
        t.clock = clock;
        t.requests = self.requests;
        t.errors = self.errors;
        t.errors_by_kind = self.kinds;
        t.latency_ms = latency_of(&self.total);
        t.interval_seconds = self.interval;
        if self.first_s.is_finite() {
            t.duration_seconds = (self.last_s - self.first_s).max(0.0);
            if clock == Clock::Absolute {
                t.start_unix_s = Some(self.first_s);
            }
        }
        t.throughput_per_s = if t.duration_seconds > 0.0 {
            t.requests as f64 / t.duration_seconds
        } else {
            0.0
        };
        t.offered = self.offered_max.map(|c| Offered {
            concurrency: Some(c),
            rate_per_s: None,
            source: "configured".into(),
        });
        // Fill gaps with empty intervals so a stall shows as zero throughput, not a jump.
        let mut points = Vec::with_capacity(self.closed.len());
        let mut prev: Option<i64> = None;
        for (k, p) in self.closed {
            if let Some(pk) = prev {
                for gap in pk + 1..k.min(pk + 3600) {
                    points.push(Point {
                        start_s: gap as f64 * self.interval,
                        seconds: self.interval,
                        requests: 0,
                        errors: 0,
                        throughput_per_s: 0.0,
                        errors_by_kind: BTreeMap::new(),
                        latency_ms: None,
                        offered: None,
                    });
                }
            }
            prev = Some(k);
            points.push(p);
        }
        // The first and last intervals are partial: measure them from the events' span.
        if self.first_s.is_finite() {
            let n = points.len();
            for (i, p) in points.iter_mut().enumerate() {
                if i != 0 && i + 1 != n {
                    continue;
                }
                let a = p.start_s.max(self.first_s);
                let b = (p.start_s + p.seconds).min(self.last_s);
                p.start_s = a;
                p.seconds = (b - a).max(1e-3);
                p.throughput_per_s = p.requests as f64 / p.seconds;
            }
        }
        t.points = points;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_requests_errors_and_latency_per_interval() {
        let mut s = Series::new(1.0);
        for i in 0..100 {
            let t = 10.0 + f64::from(i) * 0.03; // 10.00 .. 12.97
            let outcome = if i % 10 == 0 {
                Outcome::http(503)
            } else {
                Outcome::Ok
            };
            s.request(t, outcome, 1);
            s.latency(t, 0.002);
        }
        let t = s.finish(Format::HeyCsv, std::path::Path::new("x"), Clock::Offset);
        assert_eq!(t.requests, 100);
        assert_eq!(t.errors, 10);
        assert_eq!(t.errors_by_kind.get("http-503"), Some(&10));
        assert_eq!(t.points.len(), 3);
        assert_eq!(t.points.iter().map(|p| p.requests).sum::<u64>(), 100);
        let p50 = t.latency_ms.and_then(|l| l.p50).expect("latency");
        assert!((p50 - 2.0).abs() < 0.01, "{p50}");
    }

    #[test]
    fn late_events_count_in_closed_intervals_and_gaps_are_zero() {
        let mut s = Series::new(1.0);
        s.request(0.5, Outcome::Ok, 1);
        s.request(100.5, Outcome::Ok, 1);
        s.request(0.7, Outcome::Timeout, 1);
        let t = s.finish(Format::HeyCsv, std::path::Path::new("x"), Clock::Offset);
        assert_eq!(
            t.points.first().map(|p| (p.requests, p.errors)),
            Some((2, 1))
        );
        assert_eq!(t.points.len(), 101);
        assert_eq!(t.points[50].requests, 0);
    }
}
