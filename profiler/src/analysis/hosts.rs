//! Several hosts' recordings of one load test (`chokepoint analyze A.rec B.rec ...`): the
//! generator on one host, services on others, a daemon recording on each. The recordings are
//! put on one clock (the first one's), cut to the span they all cover, each analysed in that
//! span with every host's load timeline, and one verdict is drawn from the hosts' verdicts,
//! naming the host, with every other host's verdict as what was ruled out.
//!
//! Clocks: hosts keep their own wall clocks. The offset of each recording from the first is
//! estimated from a signal both hosts see: the connections one host opens to another are
//! counted at both ends (`tcp.active_opens` at the client, `tcp.passive_opens` at the server),
//! so the per-second opens of the two recordings rise and fall together, shifted by the clocks'
//! offset. The lag with the best correlation is the offset, to the resolution of the intervals;
//! without a signal that correlates (a constant rate, no connections between the hosts), the
//! recorded wall clocks are assumed to agree (NTP keeps them within milliseconds), and that is
//! said.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{
    Analysis, SCHEMA_VERSION,
    verdict::{Family, RuledOut, Verdict, VerdictKind},
};
use crate::{recording::Recording, timeline::Timeline};

/// The largest clock offset looked for, seconds.
pub const MAX_OFFSET_S: i64 = 30;
/// At least this many seconds of both signals must overlap at a lag, both non-zero, for it
/// to count: the rise and fall of any two short load tests correlate somewhat, so a lag is
/// only believed over a stretch long enough to hold several changes of rate.
const MIN_PAIRS: usize = 10;
/// A lag is believed when its correlation is at least this...
pub const MIN_CORRELATION: f64 = 0.8;
/// ...and, when the recorded clocks also overlap, beats lag 0 by this much (NTP keeps hosts'
/// clocks within milliseconds: the recorded clocks are believed unless the signal clearly
/// says otherwise).
const BEAT_ZERO_BY: f64 = 0.1;
/// Lag 0 is kept unless another lag correlates better by more than this (the recorded clocks
/// win ties).
const ZERO_LAG_TOLERANCE: f64 = 0.02;
/// Two hosts' bottleneck verdicts closer in confidence than this make the whole `inconclusive`.
pub const CONFIDENCE_MARGIN: f64 = 0.15;

/// How one recording's clock was placed on the first one's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockOffset {
    /// How far this recording's clock is ahead of the first recording's (subtracted from its
    /// times).
    pub seconds: f64,
    /// `reference`, `cross-correlation of connection opens per second`,
    /// `cross-correlation of device bytes per second`, or `assumed`.
    pub method: String,
    /// The correlation at the chosen lag (None when assumed).
    pub correlation: Option<f64>,
    /// How far off the offset may be: half an interval when estimated; None when assumed.
    pub uncertainty_seconds: Option<f64>,
    /// Why, in a sentence.
    pub reason: String,
}

/// One host's part of a multi-host analysis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostAnalysis {
    /// The host's name (the recording's hostname; the file's name is added when two
    /// recordings share a hostname, as network namespaces on one machine do).
    pub host: String,
    pub recording: String,
    pub clock: ClockOffset,
    pub analysis: Analysis,
}

/// `analyze A.rec B.rec ...` (docs/json.md, "Several hosts").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MultiHost {
    pub schema_version: u32,
    pub chokepoint_version: String,
    /// The verdict over every host: the one host whose verdict names a bottleneck, ranked by
    /// confidence when several do.
    pub verdict: Verdict,
    /// The span every recording covers, on the first recording's clock.
    pub start_unix_s: f64,
    pub end_unix_s: f64,
    pub duration_seconds: f64,
    pub hosts: Vec<HostAnalysis>,
    pub limitations: Vec<String>,
}

fn mid_ns(iv: &crate::recording::Interval) -> i64 {
    (iv.start_unix_ns / 2 + iv.end_unix_ns / 2) as i64
}

/// Where within a second the reference's intervals are centred (ns past the second).
fn phase_ns(r: &Recording) -> i64 {
    r.intervals
        .get(1)
        .or(r.intervals.first())
        .map_or(0, |iv| mid_ns(iv).rem_euclid(1_000_000_000))
}

/// A per-second signal of a recording, keyed by whole seconds of its own clock, the seconds
/// centred on `phase` ns past each second (the reference's interval midpoints). Two hosts read
/// their intervals at their own phase: binned by whole seconds, one's midpoints at x.99 and
/// the other's at (x+1).01 s of the same clock fall in seconds one apart, and the same signal
/// reads as a clock 1 s off (seen in CI); centred on one grid they fall in the same second.
fn per_second(
    r: &Recording,
    phase: i64,
    f: impl Fn(&crate::recording::Interval) -> f64,
) -> BTreeMap<i64, f64> {
    let mut out = BTreeMap::new();
    for iv in &r.intervals {
        let key = (mid_ns(iv) - phase + 500_000_000).div_euclid(1_000_000_000);
        *out.entry(key).or_insert(0.0) += f(iv);
    }
    out
}

fn opens(iv: &crate::recording::Interval) -> f64 {
    (iv.tcp.active_opens + iv.tcp.passive_opens) as f64
}

fn device_bytes(iv: &crate::recording::Interval) -> f64 {
    iv.devices
        .iter()
        .map(|d| (d.rx_bytes + d.tx_bytes) as f64)
        .sum()
}

/// Pearson correlation of `a[t]` with `b[t + lag]` over the seconds both have.
pub fn correlation(a: &BTreeMap<i64, f64>, b: &BTreeMap<i64, f64>, lag: i64) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .filter_map(|(t, x)| b.get(&(t + lag)).map(|y| (*x, *y)))
        .collect();
    // Both signals active in enough of the same seconds: a single burst at each start (the
    // connections of a keep-alive load) lines up with any other burst and proves nothing.
    let active = pairs.iter().filter(|(x, y)| *x > 0.0 && *y > 0.0).count();
    if pairs.len() < MIN_PAIRS || active < MIN_PAIRS {
        return None;
    }
    let n = pairs.len() as f64;
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in &pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some(sxy / (sxx * syy).sqrt())
}

/// The lag (seconds) of `b` against `a` that correlates best, with its correlation. Lags
/// within [`ZERO_LAG_TOLERANCE`] of the best are as good: the smallest of them is taken (the
/// recorded clocks are believed unless the signal says otherwise; a periodic load repeats
/// its correlation every period).
fn best_lag(a: &BTreeMap<i64, f64>, b: &BTreeMap<i64, f64>) -> Option<(i64, f64)> {
    let scored: Vec<(i64, f64)> = (-MAX_OFFSET_S..=MAX_OFFSET_S)
        .filter_map(|lag| correlation(a, b, lag).map(|r| (lag, r)))
        .collect();
    let best = scored.iter().map(|s| s.1).fold(f64::MIN, f64::max);
    scored
        .into_iter()
        .filter(|(_, r)| *r >= best - ZERO_LAG_TOLERANCE)
        .min_by_key(|(lag, _)| lag.abs())
}

/// How far `other`'s clock is ahead of `reference`'s, and how that was found.
pub fn estimate_offset(reference: &Recording, other: &Recording) -> ClockOffset {
    let step = other.header.interval_seconds.max(0.001);
    let mut tried = Vec::new();
    for (what, f) in [
        (
            "connection opens",
            opens as fn(&crate::recording::Interval) -> f64,
        ),
        ("device bytes", device_bytes),
    ] {
        let phase = phase_ns(reference);
        let (a, b) = (per_second(reference, phase, f), per_second(other, phase, f));
        let zero = correlation(&a, &b, 0);
        match best_lag(&a, &b) {
            Some((lag, r))
                if r >= MIN_CORRELATION
                    && (lag == 0 || zero.is_none_or(|r0| r >= r0 + BEAT_ZERO_BY)) =>
            {
                return ClockOffset {
                    seconds: lag as f64,
                    method: format!("cross-correlation of {what} per second"),
                    correlation: Some(r),
                    uncertainty_seconds: Some(step / 2.0),
                    reason: format!(
                        "the {what} per second of both recordings correlate best (r = {r:.2}) with this one {} by {lag} s",
                        if lag >= 0 { "ahead" } else { "behind" }
                    ),
                };
            }
            Some((lag, r)) => tried.push(format!("{what}: best r = {r:.2} at {lag} s")),
            None => tried.push(format!("{what}: no variation to correlate")),
        }
    }
    ClockOffset {
        seconds: 0.0,
        method: "assumed".into(),
        correlation: None,
        uncertainty_seconds: None,
        reason: format!(
            "no signal both hosts see correlates above {MIN_CORRELATION} ({}): the recorded wall clocks are taken as they are (NTP keeps them within milliseconds; check when they may be off)",
            tried.join("; ")
        ),
    }
}

/// Moves every time of a recording by `-seconds` (onto the reference clock).
pub fn shift(r: &mut Recording, seconds: f64) {
    let ns = (seconds * 1e9).round() as i64;
    let by = |t: &mut u64| *t = (*t as i64 - ns).max(0) as u64;
    by(&mut r.header.started_unix_ns);
    for iv in &mut r.intervals {
        by(&mut iv.start_unix_ns);
        by(&mut iv.end_unix_ns);
        for m in &mut iv.marks {
            by(&mut m.unix_ns);
        }
    }
    if let Some(end) = r.end.as_mut() {
        by(&mut end.ended_unix_ns);
        for t in &mut end.load {
            t.shift_clock(-seconds);
        }
    }
}

/// Keeps the intervals whose midpoint lies in `[start, end]` (unix seconds).
pub fn restrict(r: &mut Recording, start: f64, end: f64) {
    r.intervals.retain(|iv| {
        let mid = (iv.start_unix_ns as f64 + iv.end_unix_ns as f64) / 2e9;
        mid >= start && mid <= end
    });
}

fn span(r: &Recording) -> Option<(f64, f64)> {
    let first = r.intervals.first()?;
    let last = r.intervals.last()?;
    Some((
        first.start_unix_ns as f64 / 1e9,
        last.end_unix_ns as f64 / 1e9,
    ))
}

/// A host's evidence, each figure labelled with the host it was measured on.
fn host_evidence(host: &str, v: &Verdict) -> Vec<super::verdict::Evidence> {
    v.evidence
        .iter()
        .cloned()
        .map(|mut e| {
            e.labels.insert("host".into(), host.to_string());
            e
        })
        .collect()
}

/// One verdict from the hosts' verdicts. A host whose verdict names a bottleneck (any family
/// but none) is where throughput stops; others are ruled out with their own verdicts. When
/// several do, the most confident wins if it leads by [`CONFIDENCE_MARGIN`]; otherwise the
/// whole is `inconclusive` and names both.
pub fn merge_verdicts(hosts: &[(String, Verdict)]) -> Verdict {
    let mut named: Vec<&(String, Verdict)> = hosts
        .iter()
        .filter(|(_, v)| v.family != Family::None)
        .collect();
    named.sort_by(|a, b| b.1.confidence.total_cmp(&a.1.confidence));
    let others_ruled_out = |winner: Option<&str>| -> Vec<RuledOut> {
        hosts
            .iter()
            .filter(|(h, _)| Some(h.as_str()) != winner)
            .map(|(h, v)| RuledOut {
                kind: v.kind,
                reason: format!("host {h}: {}", v.summary),
            })
            .collect()
    };
    match named.as_slice() {
        [] => {
            let unsure: Vec<&(String, Verdict)> = hosts
                .iter()
                .filter(|(_, v)| v.kind == VerdictKind::Inconclusive)
                .collect();
            if let Some((h, v)) = unsure.first() {
                let mut out = v.clone();
                out.summary = format!("on host {h}: {}", v.summary);
                out.evidence = host_evidence(h, v);
                out.ruled_out = others_ruled_out(Some(h));
                return out;
            }
            let confidence = hosts
                .iter()
                .map(|(_, v)| v.confidence)
                .fold(1.0_f64, f64::min);
            Verdict {
                kind: VerdictKind::NotSaturated,
                family: Family::None,
                summary: format!(
                    "no host of the {} recorded limits throughput: each one's verdict is not-saturated",
                    hosts.len()
                ),
                evidence: hosts
                    .iter()
                    .flat_map(|(h, v)| host_evidence(h, v))
                    .collect(),
                ruled_out: others_ruled_out(None),
                secondary: Vec::new(),
                confidence,
                missing: Vec::new(),
            }
        }
        [first, rest @ ..] => {
            if let Some(second) = rest.first()
                && first.1.confidence - second.1.confidence < CONFIDENCE_MARGIN
                && first.1.kind != second.1.kind
            {
                return Verdict {
                    kind: VerdictKind::Inconclusive,
                    family: Family::None,
                    summary: format!(
                        "two hosts each show a bottleneck and neither leads: {} on {} ({:.2}) and {} on {} ({:.2})",
                        first.1.kind.as_str(),
                        first.0,
                        first.1.confidence,
                        second.1.kind.as_str(),
                        second.0,
                        second.1.confidence
                    ),
                    evidence: host_evidence(&first.0, &first.1)
                        .into_iter()
                        .chain(host_evidence(&second.0, &second.1))
                        .collect(),
                    ruled_out: others_ruled_out(None),
                    secondary: vec![first.1.kind, second.1.kind],
                    confidence: 1.0 - (first.1.confidence - second.1.confidence),
                    missing: vec![format!(
                        "which of host {} ({}) and host {} ({}) limits the load: run again with one of them given more room and see which moves throughput",
                        first.0, first.1.summary, second.0, second.1.summary
                    )],
                };
            }
            let (h, v) = first;
            let mut out = v.clone();
            out.summary = format!("on host {h}: {}", v.summary);
            out.evidence = host_evidence(h, v);
            out.ruled_out = others_ruled_out(Some(h));
            out.ruled_out.extend(v.ruled_out.iter().cloned());
            for (_, other) in rest {
                if !out.secondary.contains(&other.kind) {
                    out.secondary.push(other.kind);
                }
            }
            out
        }
    }
}

/// Names for the hosts: the hostname; the file's stem added when two share a hostname; the
/// position on the command line when that is still not enough (daemons in network namespaces
/// of one machine, each writing `test.rec`).
fn host_names(recordings: &[(PathBuf, Recording)]) -> Vec<String> {
    let unique = |names: &[String]| {
        names
            .iter()
            .enumerate()
            .all(|(i, n)| !names[..i].contains(n))
    };
    let hostnames: Vec<String> = recordings
        .iter()
        .map(|(_, r)| r.header.hostname.clone())
        .collect();
    if unique(&hostnames) {
        return hostnames;
    }
    let with_stem: Vec<String> = recordings
        .iter()
        .map(|(path, r)| {
            let stem = Path::new(path)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{}/{stem}", r.header.hostname)
        })
        .collect();
    if unique(&with_stem) {
        return with_stem;
    }
    hostnames
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{h}#{}", i + 1))
        .collect()
}

/// The whole: offsets, the shared span, each host analysed in it with every host's load
/// timelines (and `extra_load`), one verdict.
pub fn analyze_hosts(
    mut recordings: Vec<(PathBuf, Recording)>,
    extra_load: &[Timeline],
) -> Result<MultiHost, String> {
    if recordings.len() < 2 {
        return Err("several hosts need at least two recordings".into());
    }
    let names = host_names(&recordings);
    let mut clocks = vec![ClockOffset {
        seconds: 0.0,
        method: "reference".into(),
        correlation: None,
        uncertainty_seconds: Some(0.0),
        reason: "the first recording's clock is the one the others are placed on".into(),
    }];
    for i in 1..recordings.len() {
        let clock = estimate_offset(&recordings[0].1, &recordings[i].1);
        shift(&mut recordings[i].1, clock.seconds);
        clocks.push(clock);
    }
    let spans: Vec<(f64, f64)> = recordings
        .iter()
        .map(|(p, r)| span(r).ok_or_else(|| format!("{}: no intervals", p.display())))
        .collect::<Result<_, _>>()?;
    let start = spans.iter().map(|s| s.0).fold(f64::MIN, f64::max);
    let end = spans.iter().map(|s| s.1).fold(f64::MAX, f64::min);
    if end - start < 1.0 {
        let each: Vec<String> = recordings
            .iter()
            .zip(&spans)
            .map(|((p, _), (a, b))| format!("{} covers {a:.0}–{b:.0}", p.display()))
            .collect();
        return Err(format!(
            "the recordings do not overlap in time (unix seconds on the first one's clock: {})",
            each.join(", ")
        ));
    }
    // Every host's load timelines (now on the reference clock) and the extra ones, for all.
    let mut load: Vec<Timeline> = extra_load.to_vec();
    for (_, r) in &recordings {
        for t in r.end.iter().flat_map(|e| &e.load) {
            if !load.iter().any(|have| have.source == t.source) {
                load.push(t.clone());
            }
        }
    }
    let mut limitations = Vec::new();
    let mut hosts = Vec::new();
    for (((path, mut r), name), clock) in recordings.into_iter().zip(names).zip(clocks) {
        restrict(&mut r, start, end);
        if clock.method == "assumed" {
            limitations.push(format!("host {name}: clock offset {}", clock.reason));
        }
        let analysis = super::analyze(&r, &load);
        hosts.push(HostAnalysis {
            host: name,
            recording: path.display().to_string(),
            clock,
            analysis,
        });
    }
    let verdict = merge_verdicts(
        &hosts
            .iter()
            .map(|h| (h.host.clone(), h.analysis.verdict.clone()))
            .collect::<Vec<_>>(),
    );
    Ok(MultiHost {
        schema_version: SCHEMA_VERSION,
        chokepoint_version: env!("CARGO_PKG_VERSION").into(),
        verdict,
        start_unix_s: start,
        end_unix_s: end,
        duration_seconds: end - start,
        hosts,
        limitations,
    })
}

/// The text `analyze` prints for several hosts.
pub fn render(m: &MultiHost) -> String {
    let mut out = format!(
        "verdict: {} (confidence {:.2}) — {}\n",
        m.verdict.kind.as_str(),
        m.verdict.confidence,
        m.verdict.summary
    );
    out.push_str(&format!(
        "hosts: {} recordings over the {:.0} s they all cover\n",
        m.hosts.len(),
        m.duration_seconds
    ));
    for h in &m.hosts {
        let clock = match h.clock.method.as_str() {
            "reference" => "reference clock".to_string(),
            "assumed" => "clock assumed in step (no shared signal)".to_string(),
            method => format!(
                "clock {:+.0} s ± {:.1} s ({method}, r = {:.2})",
                h.clock.seconds,
                h.clock.uncertainty_seconds.unwrap_or(f64::NAN),
                h.clock.correlation.unwrap_or(f64::NAN)
            ),
        };
        out.push_str(&format!(
            "  {}: {} (confidence {:.2}) — {}\n      {} · host CPU {:.0}% busy · {}\n",
            h.host,
            h.analysis.verdict.kind.as_str(),
            h.analysis.verdict.confidence,
            h.analysis.verdict.summary,
            clock,
            h.analysis.host.busy_fraction * 100.0,
            h.recording
        ));
    }
    if !m.verdict.ruled_out.is_empty() {
        out.push_str("ruled out:\n");
        for r in &m.verdict.ruled_out {
            out.push_str(&format!("  {}: {}\n", r.kind.as_str(), r.reason));
        }
    }
    for l in &m.limitations {
        out.push_str(&format!("limitation: {l}\n"));
    }
    out
}

#[cfg(test)]
#[path = "hosts_tests.rs"]
mod tests;
