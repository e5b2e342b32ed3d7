//! Analysis: pure functions over a recording plus load-generator timelines. Nothing here
//! touches the kernel or the clock, so every verdict can be replayed offline and unit-tested.
pub mod hosts;
mod overhead;
mod paths;
pub mod phases;
pub mod pools;
pub mod series;
pub mod services;
mod summary;
mod verdict;
mod window;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_tiers;
#[cfg(test)]
mod tests_user_space;

use serde::{Deserialize, Serialize};

pub use self::{
    overhead::{Estimate, Price},
    paths::{ConntrackSummary, DeviceSummary, Hop, HopKind, NetPath},
    summary::{HostSummary, LatencySummary, Overhead, ProcessSummary, Totals},
    verdict::{Evidence, Family, Op, RuledOut, Threshold, Verdict, VerdictKind, keys},
    window::Window,
};
use crate::{
    recording::{ProbeStatus, Recording},
    timeline::Timeline,
};

/// The version of the JSON result's shape (`schema_version`).
pub const SCHEMA_VERSION: u32 = 1;

/// The result of one analysis: the JSON contract documented in docs/json.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Analysis {
    /// The version of this JSON's shape (docs/json.md): bumped when a key changes meaning or
    /// goes away; new keys do not bump it.
    #[serde(default)]
    pub schema_version: u32,
    /// The chokepoint that made this analysis (the recording's own is in its header).
    #[serde(default)]
    pub chokepoint_version: String,
    pub verdict: Verdict,
    pub duration_seconds: f64,
    pub window: Window,
    pub totals: Totals,
    pub host: HostSummary,
    pub processes: Vec<ProcessSummary>,
    pub overhead: Overhead,
    pub load: Vec<LoadSummary>,
    pub command: Option<Vec<String>>,
    pub exit_code: Option<i32>,
    /// The signal that killed the command, when one did (then `exit_code` is null).
    #[serde(default)]
    pub exit_signal: Option<i32>,
    pub probes: ProbeStatus,
    /// Everything that limits this analysis: probes missing, a truncated recording, a load
    /// file whose clock is far from the recording's.
    pub limitations: Vec<String>,
    /// Lines of the recording and of the load files that did not read and were left out, one
    /// entry per file that had any (docs/json.md); `--strict` refuses such files instead.
    #[serde(default)]
    pub skipped_lines: Vec<crate::skipped::SkippedLines>,
    /// For each client→server flow group, the hops its connections crossed.
    #[serde(default)]
    pub paths: Vec<NetPath>,
    /// Conntrack table fill, failures and NAT translations over the recording.
    #[serde(default)]
    pub conntrack: Option<ConntrackSummary>,
    /// Per-device traffic per namespace over the recording, busiest first.
    #[serde(default)]
    pub devices: Vec<DeviceSummary>,
    /// Packets per device name from the per-packet programs (`--packet-probes`); empty without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packets: Vec<paths::PacketSummary>,
    /// Connection pools over the analysis window, most queued first.
    #[serde(default)]
    pub pools: Vec<pools::PoolSummary>,
    /// Served ports over the analysis window: what held back their sockets' sends, most held
    /// back first.
    #[serde(default)]
    pub send_limits: Vec<summary::SendLimitSummary>,
    /// Per-interval series for charts (docs/json.md): host CPU, CPU per service, run-queue
    /// latency, off-CPU time by reason, connections, the load's own points.
    #[serde(default)]
    pub series: series::Series,
    /// Phase marks in the recording (`chokepoint mark`), in time order.
    #[serde(default)]
    pub marks: Vec<PhaseMark>,
    /// The recording split at its marks, each span with its own verdict (`phases.rs`); empty
    /// without marks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<phases::Phase>,
}

/// A phase mark, at its time since the recording started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseMark {
    pub at_seconds: f64,
    pub unix_ns: u64,
    pub text: String,
}

/// A load generator's own figures, as read from its output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadSummary {
    pub format: String,
    pub source: String,
    pub requests: u64,
    pub errors: u64,
    pub duration_seconds: f64,
    pub throughput_per_s: f64,
    /// The generator's own latency over its run (ms), as far as its output says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<crate::timeline::Latency>,
}

/// Runs split out of one shell command's output (`<hey output, run K of N>`) without a
/// concurrency of their own get it from the command line of the K-th such generator process
/// the recording described (`described[]`): each run's own `-c`, whatever the script did to
/// compute it.
fn runs_from_their_processes(timelines: &mut [Timeline], recording: &Recording) {
    let described: Vec<&crate::recording::ProcessFacts> = recording
        .intervals
        .iter()
        .flat_map(|iv| &iv.described)
        .collect();
    for t in timelines.iter_mut() {
        if t.offered.as_ref().is_some_and(|o| o.concurrency.is_some()) {
            continue;
        }
        let name = t.source.display().to_string();
        let Some(rest) = name.strip_prefix('<') else {
            continue;
        };
        let Some((tool, run)) = rest.split_once(" output, run ") else {
            continue;
        };
        let Some((k, n)) = run
            .trim_end_matches('>')
            .split_once(" of ")
            .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        else {
            continue;
        };
        let runs: Vec<_> = described.iter().filter(|f| f.comm == tool).collect();
        if runs.len() != n || k == 0 || k > n {
            continue;
        }
        // The generator's own arguments, read as the timeline reads a command's (`-c 8`, `-c8`).
        let c = crate::timeline::opt(&runs[k - 1].cmdline, &["-c"])
            .first()
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(c) = c {
            t.offered = Some(crate::timeline::Offered {
                concurrency: Some(c),
                rate_per_s: None,
                source: "command line".into(),
            });
        }
    }
}

pub fn analyze(recording: &Recording, extra_load: &[Timeline]) -> Analysis {
    let mut timelines: Vec<Timeline> = recording
        .end
        .as_ref()
        .map(|e| e.load.clone())
        .unwrap_or_default();
    // `--load F` naming the file the command's own arguments already pointed at is one timeline.
    for t in extra_load {
        if !timelines.iter().any(|have| have.source == t.source) {
            timelines.push(t.clone());
        }
    }

    runs_from_their_processes(&mut timelines, recording);
    let mut limitations = recording.header.limitations.clone();
    limitations.extend(recording.warnings.iter().cloned());
    if let Some(end) = &recording.end {
        limitations.extend(end.load_errors.iter().map(|e| format!("load output: {e}")));
        if end.pids_reused > 0 {
            limitations.push(format!(
                "{} process ids were reused by new processes during the recording: a pid's rows before and after its reuse belong to different processes",
                end.pids_reused
            ));
        }
    }
    // Network readings that failed during the run (a namespace gone, no permission).
    for iv in &recording.intervals {
        for e in &iv.net_errors {
            let text = format!("network path: {e}");
            if !limitations.contains(&text) {
                limitations.push(text);
            }
        }
    }
    let mut skipped_lines: Vec<_> = std::iter::once(&recording.skipped)
        .chain(timelines.iter().map(|t| &t.skipped_lines))
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    skipped_lines.dedup_by(|a, b| a.file == b.file);
    limitations.extend(timelines.iter().filter_map(|t| t.skipped_lines.summary()));
    let (start_s, end_s) = window::recording_span(recording);
    for t in &timelines {
        if let Some(w) = t.clock_skew_warning(start_s, end_s) {
            limitations.push(w);
        }
    }

    let evicted: u64 = recording
        .intervals
        .iter()
        .map(|iv| iv.overhead.socket_evictions)
        .sum();
    if evicted > 0 {
        limitations.push(format!(
            "{evicted} sockets were evicted from the kernel's SOCKETS map before they were read: their connections are missing from pools[]"
        ));
    }
    let unmatched: u64 = recording
        .intervals
        .iter()
        .map(|iv| iv.overhead.switches_unmatched)
        .sum();
    if unmatched > 0 {
        limitations.push(format!(
            "the kernel did not report {unmatched} context switches (sched_switch): the run-queue waits they ended are missing"
        ));
    }
    let cycled = recording
        .intervals
        .iter()
        .filter(|iv| !iv.detached.is_empty())
        .count();
    if cycled > 0 {
        let mut figures = Vec::new();
        let mut detached = String::new();
        if let Some(iv) = recording
            .intervals
            .iter()
            .find(|iv| !iv.detached.is_empty())
        {
            if !iv.softirq_measured() {
                figures.push("softirq time per vector");
            }
            if !iv.conn_use_measured() {
                figures.push("connection pools and requests in flight");
            }
            if !iv.sched_measured() {
                figures.push("off-CPU time and its reasons, wake-ups, run-queue waits and switch counts; on-CPU time is the kernel's own total in every interval");
            }
            if iv.setup_counted() && !iv.handshakes_timed() {
                figures.push("connect and handshake latency, and the connection rows' established, failed and setup time; opens, failures and closes are counted in every interval");
            }
            detached = iv
                .detached
                .iter()
                .filter(|id| *id != crate::recording::SETUP_PROBE)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
        }
        if !detached.is_empty() {
            limitations.push(format!(
                "probe tier `default`: {detached} detached in {cycled} of {} intervals; their figures ({}) are estimated from the other intervals (--probes all measures every interval)",
                recording.intervals.len(),
                figures.join("; ")
            ));
        }
        let uncounted = recording
            .intervals
            .iter()
            .filter(|iv| !iv.setup_counted())
            .count();
        if uncounted > 0 {
            limitations.push(format!(
                "probe tier `default`: {} detached in {uncounted} of {} intervals (attached in the sampled intervals and after any interval showing a connection failing to set up): there, opens and failed attempts are the kernel's own counts (Tcp: ActiveOpens, PassiveOpens, AttemptFails), and connections per process and port, connect and handshake latency, established counts, closes and EADDRNOTAVAIL are estimated from the intervals it ran in; in an interval it is attached in, the opens before its attach (a few ms) go uncounted",
                crate::recording::SETUP_PROBE,
                recording.intervals.len()
            ));
        }
        // Where it ran on demand, and why: the first reason stands for a run of them.
        let asked: Vec<(u32, &str)> = recording
            .intervals
            .iter()
            .filter_map(|iv| iv.on_demand.as_deref().map(|why| (iv.index, why)))
            .collect();
        if let Some((first, why)) = asked.first() {
            limitations.push(format!(
                "probe tier `default`: attached on demand in {} of {} intervals, first in interval {first} ({why})",
                asked.len(),
                recording.intervals.len()
            ));
        }
    }
    let window = window::choose(recording, &timelines);
    let all: Vec<_> = recording.intervals.iter().collect();
    let cpus = recording.header.cpus;
    let seconds = window::recording_seconds(recording);
    let totals = summary::totals(recording);
    let mut host = summary::host(&all, cpus);
    host.name = recording.header.hostname.clone();
    host.kernel = recording.header.kernel.clone();
    if let Some(inv) = &recording.header.inventory {
        host.cpu_model = inv.cpu_model.clone();
        host.memory_bytes = inv.memory_bytes;
        host.os = inv.os.clone();
    }
    // Processes under 10 ms of CPU are noise in a summary (they stay in the recording).
    let processes = summary::processes(&all, 0.01);
    let overhead = summary::overhead(&recording.intervals, cpus, seconds);
    let load = timelines
        .iter()
        .map(|t| LoadSummary {
            format: t.format.to_string(),
            source: t.source.display().to_string(),
            requests: t.requests,
            errors: t.errors,
            duration_seconds: t.duration_seconds,
            throughput_per_s: if t.duration_seconds > 0.0 {
                t.requests as f64 / t.duration_seconds
            } else {
                0.0
            },
            latency_ms: t.latency_ms.clone(),
        })
        .collect();
    let verdict = verdict::decide(&verdict::Inputs {
        recording,
        window: &window,
    });

    let devices = paths::devices(recording, seconds);
    let packets = paths::packets(recording, seconds);
    let paths = paths::paths(recording, seconds, &devices, &processes);
    let conntrack = paths::conntrack(recording);
    let pools = pools::summarize(&window.intervals(recording).collect::<Vec<_>>());
    let send_limits = summary::send_limits(&window.intervals(recording).collect::<Vec<_>>());
    let series = series::series(recording, &window, &timelines);
    let marks: Vec<PhaseMark> = recording
        .intervals
        .iter()
        .flat_map(|iv| &iv.marks)
        .map(|m| PhaseMark {
            at_seconds: m.unix_ns.saturating_sub(recording.header.started_unix_ns) as f64 / 1e9,
            unix_ns: m.unix_ns,
            text: m.text.clone(),
        })
        .collect();
    let phases = phases::phases(recording, &timelines, &marks, &series);
    Analysis {
        phases,
        marks,
        series,
        schema_version: SCHEMA_VERSION,
        chokepoint_version: env!("CARGO_PKG_VERSION").to_string(),
        paths,
        conntrack,
        devices,
        packets,
        verdict,
        duration_seconds: seconds,
        window,
        totals,
        host,
        processes,
        overhead,
        load,
        command: recording.header.command.clone(),
        exit_code: recording.end.as_ref().and_then(|e| e.exit_code),
        exit_signal: recording.end.as_ref().and_then(|e| e.exit_signal),
        probes: recording.header.probes.clone(),
        limitations,
        skipped_lines,
        pools,
        send_limits,
    }
}
