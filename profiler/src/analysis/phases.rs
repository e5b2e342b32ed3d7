//! Phases: the recording split at its marks (`chokepoint mark "stage 3: 1000 VUs"`, or the
//! daemon's `POST /v1/marks`), each span analysed as a recording of its own, so a load test of
//! several stages gets a verdict per stage beside the verdict of the whole run. An interval
//! belongs to the phase its midpoint falls in; the span before the first mark is a phase when
//! it holds an interval. The load's own throughput per phase is taken from the generator's
//! points whose midpoint falls in it.
use serde::{Deserialize, Serialize};

use super::{
    PhaseMark,
    series::Series,
    verdict::{self, VerdictKind},
    window,
};
use crate::{recording::Recording, timeline::Timeline};

/// One span between marks, with its own verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// The mark that starts it, or `before the first mark`.
    pub label: String,
    /// Seconds from the recording's first interval, as `series` counts them.
    pub start_s: f64,
    pub end_s: f64,
    pub intervals: usize,
    pub verdict: VerdictKind,
    pub confidence: f64,
    /// The phase's verdict sentence.
    pub summary: String,
    /// Host CPU busy (0..1), mean over the phase's intervals.
    pub host_busy: f64,
    /// New TCP connections (active and passive opens) per second.
    pub connections_per_s: f64,
    /// The load generators' own requests per second in the phase, when they gave points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_per_s: Option<f64>,
}

/// The label of the phase before any mark.
pub const BEFORE_FIRST: &str = "before the first mark";

pub fn phases(
    recording: &Recording,
    timelines: &[Timeline],
    marks: &[PhaseMark],
    series: &Series,
) -> Vec<Phase> {
    let Some(first) = recording.intervals.first() else {
        return Vec::new();
    };
    if marks.is_empty() {
        return Vec::new();
    }
    let t0 = first.start_unix_ns as f64 / 1e9;
    let mut bounds: Vec<(f64, String)> = vec![(f64::NEG_INFINITY, BEFORE_FIRST.to_string())];
    let mut sorted: Vec<&PhaseMark> = marks.iter().collect();
    sorted.sort_by_key(|m| m.unix_ns);
    bounds.extend(
        sorted
            .iter()
            .map(|m| (m.unix_ns as f64 / 1e9 - t0, m.text.clone())),
    );
    let mid = |iv: &crate::recording::Interval| {
        (iv.start_unix_ns as f64 + iv.end_unix_ns as f64) / 2e9 - t0
    };
    let mut out = Vec::new();
    for (i, (from, label)) in bounds.iter().enumerate() {
        let to = bounds.get(i + 1).map_or(f64::INFINITY, |b| b.0);
        let intervals: Vec<_> = recording
            .intervals
            .iter()
            .filter(|iv| (*from..to).contains(&mid(iv)))
            .cloned()
            .collect();
        let (Some(a), Some(b)) = (intervals.first(), intervals.last()) else {
            continue;
        };
        let (start_s, end_s) = (
            a.start_unix_ns as f64 / 1e9 - t0,
            b.end_unix_ns as f64 / 1e9 - t0,
        );
        let n = intervals.len();
        let secs: f64 = intervals
            .iter()
            .map(|iv| iv.end_unix_ns.saturating_sub(iv.start_unix_ns) as f64 / 1e9)
            .sum();
        let host_busy = intervals
            .iter()
            .filter_map(|iv| iv.host.as_ref()?.cpu.as_ref().map(|c| c.busy_fraction))
            .sum::<f64>()
            / n as f64;
        let opens: u64 = intervals
            .iter()
            .map(|iv| iv.tcp.active_opens + iv.tcp.passive_opens)
            .sum();
        let sub = Recording {
            header: recording.header.clone(),
            intervals,
            end: recording.end.clone(),
            warnings: Vec::new(),
            skipped: recording.skipped.clone(),
        };
        let w = window::choose(&sub, timelines);
        let v = verdict::decide(&verdict::Inputs {
            recording: &sub,
            window: &w,
        });
        out.push(Phase {
            label: label.clone(),
            start_s,
            end_s,
            intervals: n,
            verdict: v.kind,
            confidence: v.confidence,
            summary: v.summary,
            host_busy,
            connections_per_s: opens as f64 / secs.max(1e-9),
            throughput_per_s: load_rate(series, start_s, end_s),
        });
    }
    out
}

/// Requests per second of the generators' points whose midpoint is in [from, to).
fn load_rate(series: &Series, from: f64, to: f64) -> Option<f64> {
    let (mut requests, mut seconds) = (0.0, 0.0);
    for l in &series.load {
        for (i, (&start, &rate)) in l.start_s.iter().zip(&l.throughput_per_s).enumerate() {
            let next = l.start_s.get(i + 1).copied().unwrap_or(start + 1.0);
            let len = (next - start).max(0.0);
            if (from..to).contains(&(start + len / 2.0)) {
                requests += rate * len;
                seconds += len;
            }
        }
    }
    (seconds > 0.0).then(|| requests / seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::{analyze, fixtures},
        recording::{Mark, Role},
    };

    /// A recording idle for 4 intervals, then CPU-bound for 6, with a mark at the change.
    fn staged() -> Recording {
        let mut r = fixtures::steady(10, |i| {
            let busy = if i < 4 { 0.05 } else { 1.0 };
            let mut iv = fixtures::interval(i, busy);
            let cores: &[f64] = if i < 4 { &[0.05] } else { &[0.99, 0.99] };
            iv.processes
                .push(fixtures::process(100, "api", Role::Server, cores));
            iv
        });
        let at = r.intervals[4].start_unix_ns + 1;
        r.intervals[4].marks.push(Mark {
            unix_ns: at,
            text: "stage 2: full load".into(),
        });
        r
    }

    #[test]
    fn marks_split_the_run_into_phases_each_with_its_own_verdict() {
        let r = staged();
        let a = analyze(&r, &[]);
        assert_eq!(a.phases.len(), 2, "{:?}", a.phases);
        let (before, after) = (&a.phases[0], &a.phases[1]);
        assert_eq!(before.label, BEFORE_FIRST);
        assert_eq!(after.label, "stage 2: full load");
        assert_eq!(before.intervals + after.intervals, r.intervals.len());
        assert_eq!(before.intervals, 4);
        assert!((before.end_s - after.start_s).abs() < 1e-6);
        assert!(
            before.host_busy < 0.2 && after.host_busy > 0.9,
            "{:?}",
            a.phases
        );
        // The idle stage has nothing saturated; the loaded one has both cores busy. The run as
        // a whole mixes the two, which is what phases are for.
        assert_eq!(before.verdict, VerdictKind::NotSaturated, "{:?}", a.phases);
        assert_eq!(after.verdict, VerdictKind::CpuSaturated, "{:?}", a.phases);
    }

    #[test]
    fn without_marks_there_are_no_phases() {
        let r = fixtures::steady(5, |i| fixtures::interval(i, 0.5));
        assert!(analyze(&r, &[]).phases.is_empty());
    }
}
