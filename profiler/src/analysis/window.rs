//! The analysis window: where throughput stalled. The load generator's plateau when its
//! timeline says; otherwise the run without its ramp-up and tear-down edges.
use serde::{Deserialize, Serialize};

use crate::{
    recording::{Interval, Recording},
    timeline::{self, Timeline},
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    pub start_unix_s: f64,
    pub end_unix_s: f64,
    /// How many recording intervals fall in it.
    pub intervals: usize,
    /// `load-plateau`, `steady-run` or `whole-run`.
    pub source: String,
    pub reason: String,
}

impl Window {
    /// Intervals whose midpoint lies inside the window.
    pub fn intervals<'a>(&self, r: &'a Recording) -> impl Iterator<Item = &'a Interval> + 'a {
        let (a, b) = (self.start_unix_s, self.end_unix_s);
        r.intervals.iter().filter(move |iv| {
            let mid = (iv.start_unix_ns + iv.end_unix_ns) as f64 / 2e9;
            mid >= a && mid <= b
        })
    }
}

pub fn recording_span(r: &Recording) -> (f64, f64) {
    let start = r.header.started_unix_ns as f64 / 1e9;
    let end = r
        .intervals
        .last()
        .map_or(start, |iv| iv.end_unix_ns as f64 / 1e9);
    (start, end)
}

pub fn recording_seconds(r: &Recording) -> f64 {
    let (a, b) = recording_span(r);
    (b - a).max(0.0)
}

/// An interval counts as active when connections were set up in it or something ran.
fn active(iv: &Interval) -> bool {
    iv.tcp.active_opens + iv.tcp.passive_opens > 0
        || iv
            .processes
            .iter()
            .any(|p| p.role != crate::recording::Role::Profiler && p.oncpu_ns > 0)
}

/// The window, widened where the default tier left it without a sample of the duty-cycled
/// programs (a plateau shorter than the cycle's spacing): see [`with_a_sample`].
pub fn choose(r: &Recording, timelines: &[Timeline]) -> Window {
    let w = chosen(r, timelines);
    with_a_sample(r, timelines, w)
}

/// Whether every duty-cycled program ran in the interval (the scheduler and the
/// connection-use programs: what off-CPU reasons, wake-ups, pools and requests in flight
/// come from).
fn sampled(iv: &Interval) -> bool {
    iv.sched_measured() && iv.conn_use_measured()
}

/// How far (in intervals) a window is widened at most to take in a sample: the duty cycle's
/// widest spacing.
const WIDEN_AT_MOST: usize = crate::probes::duty::MAX_EVERY as usize;

/// A window none of whose intervals had the duty-cycled programs attached reads their
/// figures as zero: no off-CPU time, no wake-ups, no pool. Widen it to the nearest interval
/// that had them, within [`WIDEN_AT_MOST`] intervals and inside the load (the load
/// generator's run when a timeline places it, else an active interval), and say so. The
/// window is then a little wider than the plateau; a wait the load holds steady reads the
/// same in the interval next to it.
fn with_a_sample(r: &Recording, timelines: &[Timeline], w: Window) -> Window {
    let inside: Vec<usize> = r
        .intervals
        .iter()
        .enumerate()
        .filter(|(_, iv)| {
            let mid = (iv.start_unix_ns + iv.end_unix_ns) as f64 / 2e9;
            mid >= w.start_unix_s && mid <= w.end_unix_s
        })
        .map(|(i, _)| i)
        .collect();
    let (Some(&first), Some(&last)) = (inside.first(), inside.last()) else {
        return w;
    };
    if inside.iter().any(|&i| sampled(&r.intervals[i])) {
        return w;
    }
    let spans: Vec<(f64, f64)> = timelines.iter().filter_map(|t| t.span_unix_s()).collect();
    let in_load = |iv: &Interval| {
        let mid = (iv.start_unix_ns + iv.end_unix_ns) as f64 / 2e9;
        if spans.is_empty() {
            active(iv)
        } else {
            spans.iter().any(|&(a, b)| mid >= a && mid <= b)
        }
    };
    let candidate = |i: usize| r.intervals.get(i).filter(|iv| sampled(iv) && in_load(iv));
    // Nearest first; on a tie the one after the window (a ramp-down holds the
    // plateau's connections, a ramp-up is still opening them).
    let found = (1..=WIDEN_AT_MOST).find_map(|d| {
        if let Some(iv) = candidate(last + d) {
            return Some((last + d, iv));
        }
        first
            .checked_sub(d)
            .and_then(|i| candidate(i).map(|iv| (i, iv)))
    });
    let Some((k, iv)) = found else {
        return w;
    };
    let (start, end) = if k > last {
        (
            w.start_unix_s,
            w.end_unix_s.max(iv.end_unix_ns as f64 / 1e9),
        )
    } else {
        (
            w.start_unix_s.min(iv.start_unix_ns as f64 / 1e9),
            w.end_unix_s,
        )
    };
    let widened = Window {
        start_unix_s: start,
        end_unix_s: end,
        ..w.clone()
    };
    let n = widened.intervals(r).count();
    Window {
        intervals: n,
        reason: format!(
            "{}; widened by {} interval(s) to interval {} ({}), the nearest in which the default tier's sampled programs ran (off-CPU reasons, wake-ups, pools and requests in flight come from those)",
            w.reason,
            n.saturating_sub(w.intervals),
            iv.index,
            if k > last { "after it" } else { "before it" },
        ),
        ..widened
    }
}

fn chosen(r: &Recording, timelines: &[Timeline]) -> Window {
    if let Some(p) = timeline::plateau(timelines) {
        let w = Window {
            start_unix_s: p.start_unix_s,
            end_unix_s: p.end_unix_s,
            intervals: 0,
            source: "load-plateau".into(),
            reason: p.reason,
        };
        let n = w.intervals(r).count();
        if n > 0 {
            return Window { intervals: n, ..w };
        }
    }
    let (start, end) = recording_span(r);
    let first = r.intervals.iter().position(active);
    let last = r.intervals.iter().rposition(active);
    if let (Some(first), Some(last)) = (first, last) {
        // Drop the ramp-up and the last, partial interval when enough remain.
        let (a, b) = if last >= first + 4 {
            (first + 1, last - 1)
        } else {
            (first, last)
        };
        return Window {
            start_unix_s: r.intervals[a].start_unix_ns as f64 / 1e9,
            end_unix_s: r.intervals[b].end_unix_ns as f64 / 1e9,
            intervals: b - a + 1,
            source: "steady-run".into(),
            reason: format!(
                "no load timeline with a plateau; active intervals {}..={} without the first and last",
                first, last
            ),
        };
    }
    Window {
        start_unix_s: start,
        end_unix_s: end,
        intervals: r.intervals.len(),
        source: "whole-run".into(),
        reason: "nothing ran or connected: the whole recording".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures;

    /// 20 intervals, the duty-cycled programs attached in `sampled` only.
    fn cycled(sampled: &[u32]) -> Recording {
        fixtures::steady(20, |i| {
            let mut iv = fixtures::interval(i, 0.5);
            iv.processes.push(fixtures::process(
                100,
                "server",
                crate::recording::Role::Server,
                &[0.5],
            ));
            if !sampled.contains(&i) {
                iv.detached = vec!["sched/sched_switch".into(), "sock/sock_send_length".into()];
            }
            iv
        })
    }

    fn over(r: &Recording, first: usize, last: usize) -> Window {
        Window {
            start_unix_s: r.intervals[first].start_unix_ns as f64 / 1e9,
            end_unix_s: r.intervals[last].end_unix_ns as f64 / 1e9,
            intervals: last - first + 1,
            source: "load-plateau".into(),
            reason: "plateau".into(),
        }
    }

    #[test]
    fn a_window_takes_in_the_nearest_sample_and_no_further() {
        let r = cycled(&[2, 12]);
        // Intervals 4..=8: the sample in 2 is two before, the one in 12 four after.
        let w = with_a_sample(&r, &[], over(&r, 4, 8));
        assert_eq!(w.intervals, 7, "{}", w.reason);
        assert!((w.start_unix_s - r.intervals[2].start_unix_ns as f64 / 1e9).abs() < 1e-9);
        assert!(
            w.reason.contains("to interval 2 (before it)"),
            "{}",
            w.reason
        );
        assert_eq!(w.intervals(&r).filter(|iv| sampled(iv)).count(), 1);
        // A sample further than the widest spacing is not taken: the window stays.
        let r = cycled(&[19]);
        let w = with_a_sample(&r, &[], over(&r, 0, 3));
        assert_eq!(w.intervals, 4);
        assert_eq!(w.reason, "plateau");
    }
}
