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

pub fn choose(r: &Recording, timelines: &[Timeline]) -> Window {
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
