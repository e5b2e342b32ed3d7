//! The daemon's state between intervals, fed by the session as one [`Sink`]: the named
//! recordings open now, the rolling window of the last intervals (and its verdict), the
//! metrics registry. Everything it keeps is bounded: the window by its length, process facts
//! by the window, marks by [`RECENT_MARKS`].
use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde::Serialize;
use tokio::sync::oneshot;

use super::metrics::Metrics;
use crate::{
    analysis::{self, Verdict},
    recording::{End, Finished, Header, Interval, Mark, ProcessFacts, Recording, RecordingWriter},
    session::{MarkSender, Sink},
    skipped::SkippedLines,
};

/// The rolling verdict is analysed again every this many intervals.
pub const ROLLING_EVERY: u64 = 5;
/// Marks kept for `status` (all of them are in the recordings).
pub const RECENT_MARKS: usize = 16;
/// A recording's name: what its file is called (`NAME.rec` in `--dir`).
pub const MAX_NAME: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(
        "a recording name is 1 to {MAX_NAME} letters, digits, `.`, `_` or `-`, not starting with `.`: `{0}`"
    )]
    BadName(String),
    #[error("a recording named `{0}` is already open")]
    Open(String),
    #[error("{0} exists: choose another name")]
    Exists(PathBuf),
    #[error("no open recording named `{0}`")]
    Unknown(String),
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `stop` answers once the recording's last interval is written.
#[derive(Debug, Clone, Serialize)]
pub struct Stopped {
    pub name: String,
    pub path: PathBuf,
    pub intervals: u32,
    /// False when a write failed (a full disk): the file holds `intervals` only.
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

struct Open {
    path: PathBuf,
    writer: RecordingWriter,
    intervals: u32,
    /// Processes this recording has described (`Interval.described`).
    described: BTreeSet<u32>,
    waiters: Vec<oneshot::Sender<Stopped>>,
}

/// The rolling verdict and what it covers.
#[derive(Debug, Clone, Serialize)]
pub struct Rolling {
    pub intervals: usize,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    /// How long the analysis took, ms.
    pub analysis_ms: f64,
    pub verdict: Verdict,
}

pub struct Hub {
    header: Header,
    dir: PathBuf,
    window_len: usize,
    window: VecDeque<Interval>,
    /// The facts of processes in the window, with the index of the last interval they ran in.
    facts: HashMap<u32, (ProcessFacts, u32)>,
    open: BTreeMap<String, Open>,
    /// Recordings that ended since the last `status`, most recent last (at most 16).
    ended: VecDeque<Stopped>,
    marks: VecDeque<Mark>,
    mark_sender: MarkSender,
    pub metrics: Metrics,
    /// The OTLP exporter's counts, when `--otlp-endpoint` is given.
    pub otlp: Option<super::otlp::SharedStatus>,
    rolling: Option<Rolling>,
    analysing: bool,
    seen: u64,
}

pub type Shared = Arc<Mutex<Hub>>;

impl Hub {
    pub fn new(header: Header, dir: PathBuf, window_len: usize, marks: MarkSender) -> Self {
        Self {
            header,
            dir,
            window_len: window_len.max(1),
            window: VecDeque::new(),
            facts: HashMap::new(),
            open: BTreeMap::new(),
            ended: VecDeque::new(),
            marks: VecDeque::new(),
            mark_sender: marks,
            metrics: Metrics::new(),
            otlp: None,
            rolling: None,
            analysing: false,
            seen: 0,
        }
    }

    /// Opens `NAME.rec` in the recordings directory; it takes the interval under way.
    pub fn start(&mut self, name: &str) -> Result<PathBuf, HubError> {
        if !valid_name(name) {
            return Err(HubError::BadName(name.chars().take(80).collect()));
        }
        if self.open.contains_key(name) {
            return Err(HubError::Open(name.into()));
        }
        let path = self.dir.join(format!("{name}.rec"));
        if path.exists() {
            return Err(HubError::Exists(path));
        }
        let mut header = self.header.clone();
        // The recording starts with the interval under way: the one after the last read.
        if let Some(last) = self.window.back() {
            let offset = last.end_unix_ns.saturating_sub(header.started_unix_ns);
            header.started_unix_ns = last.end_unix_ns;
            header.started_monotonic_ns += offset;
        }
        let writer =
            RecordingWriter::create(&path, &header).map_err(|source| HubError::Create {
                path: path.clone(),
                source,
            })?;
        self.open.insert(
            name.to_string(),
            Open {
                path: path.clone(),
                writer,
                intervals: 0,
                described: BTreeSet::new(),
                waiters: Vec::new(),
            },
        );
        Ok(path)
    }

    /// Ends the recording after the interval under way; the answer comes when it is written.
    pub fn stop(&mut self, name: &str) -> Result<oneshot::Receiver<Stopped>, HubError> {
        let open = self
            .open
            .get_mut(name)
            .ok_or_else(|| HubError::Unknown(name.chars().take(80).collect()))?;
        let (tx, rx) = oneshot::channel();
        open.waiters.push(tx);
        Ok(rx)
    }

    /// A mark for the next interval; false when too many are waiting for it.
    pub fn mark(&self, text: String) -> bool {
        self.mark_sender.mark(text)
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "pid": std::process::id(),
            "started_unix_ns": self.header.started_unix_ns,
            "interval_seconds": self.header.interval_seconds,
            "intervals_read": self.seen,
            "window_intervals": self.window.len(),
            "dir": self.dir,
            "recordings": self.open.iter().map(|(name, o)| serde_json::json!({
                "name": name, "path": o.path, "intervals": o.intervals,
                "stopping": !o.waiters.is_empty(),
            })).collect::<Vec<_>>(),
            "ended": self.ended,
            "marks": self.marks,
            "probes": {
                "attached": self.header.probes.attached.len(),
                "failed": self.header.probes.failed.len(),
            },
            "otlp": self.otlp.as_ref().and_then(|s| s.lock().ok().map(|s| s.clone())),
        })
    }

    /// The last interval in figures people read.
    pub fn figures(&self) -> Option<serde_json::Value> {
        let iv = self.window.back()?;
        let s = iv.seconds().max(1e-9);
        let mut busiest: Vec<_> = iv.processes.iter().collect();
        busiest.sort_by_key(|p| std::cmp::Reverse(p.oncpu_ns));
        Some(serde_json::json!({
            "start_unix_ns": iv.start_unix_ns,
            "end_unix_ns": iv.end_unix_ns,
            "seconds": iv.seconds(),
            "tcp_active_opens_per_s": iv.tcp.active_opens as f64 / s,
            "tcp_passive_opens_per_s": iv.tcp.passive_opens as f64 / s,
            "tcp_connect_failed_per_s": iv.tcp.connect_failed as f64 / s,
            "tcp_syn_retransmits_per_s": iv.tcp.syn_retransmits as f64 / s,
            "host_cpu_busy": iv.host.as_ref().and_then(|h| h.cpu.as_ref()).map(|c| c.busy_fraction),
            "drops": iv.drops,
            "processes": busiest.iter().take(10).map(|p| serde_json::json!({
                "pid": p.pid, "comm": p.comm, "role": p.role,
                "cores": p.oncpu_ns as f64 / 1e9 / s,
                "capacity_cores": p.capacity_cores,
                "runqueue_wait_cores": p.runq_ns as f64 / 1e9 / s,
            })).collect::<Vec<_>>(),
        }))
    }

    pub fn rolling(&self) -> Option<&Rolling> {
        self.rolling.as_ref()
    }

    /// The window as a recording, every process described in its first interval.
    fn window_recording(&self) -> Recording {
        let mut intervals: Vec<Interval> = self.window.iter().cloned().collect();
        if let Some(first) = intervals.first_mut() {
            let have: BTreeSet<u32> = first.described.iter().map(|f| f.pid).collect();
            first.described.extend(
                self.facts
                    .iter()
                    .filter(|(pid, _)| !have.contains(pid))
                    .map(|(_, (f, _))| f.clone()),
            );
        }
        let mut header = self.header.clone();
        if let Some(first) = intervals.first() {
            header.started_unix_ns = first.start_unix_ns;
        }
        Recording {
            header,
            intervals,
            end: None,
            warnings: Vec::new(),
            skipped: SkippedLines::new(Path::new("<daemon window>")),
        }
    }

    fn remember(&mut self, iv: &Interval) {
        self.seen += 1;
        for f in &iv.described {
            self.facts.insert(f.pid, (f.clone(), iv.index));
        }
        for p in &iv.processes {
            if let Some(entry) = self.facts.get_mut(&p.pid) {
                entry.1 = iv.index;
            }
        }
        self.window.push_back(iv.clone());
        while self.window.len() > self.window_len {
            self.window.pop_front();
        }
        // Facts of processes that did not run in the window are forgotten.
        let oldest = self.window.front().map(|w| w.index).unwrap_or(0);
        self.facts.retain(|_, (_, last)| *last >= oldest);
        for m in &iv.marks {
            self.marks.push_back(m.clone());
        }
        while self.marks.len() > RECENT_MARKS {
            self.marks.pop_front();
        }
    }

    /// Appends the interval to every open recording; ends those asked to stop and those
    /// whose file could not be written (said once; the daemon goes on).
    fn write(&mut self, iv: &Interval) {
        let names: Vec<String> = self.open.keys().cloned().collect();
        for name in names {
            let Some(open) = self.open.get_mut(&name) else {
                continue;
            };
            let mut row = iv.clone();
            row.index = open.intervals;
            let missing: Vec<ProcessFacts> = row
                .processes
                .iter()
                .filter(|p| !open.described.contains(&p.pid))
                .filter(|p| !row.described.iter().any(|f| f.pid == p.pid))
                .filter_map(|p| self.facts.get(&p.pid).map(|(f, _)| f.clone()))
                .collect();
            row.described.extend(missing);
            open.described.extend(row.processes.iter().map(|p| p.pid));
            // Bounded by the window: a process whose facts were forgotten (it did not run for
            // a window) is described again if it comes back (or if its pid is reused).
            open.described.retain(|pid| self.facts.contains_key(pid));
            let failed = open.writer.interval(&row).map(|e| e.to_string());
            if failed.is_none() {
                open.intervals += 1;
            }
            let stop = failed.is_some() || !open.waiters.is_empty();
            if !stop {
                continue;
            }
            let Some(open) = self.open.remove(&name) else {
                continue;
            };
            let reason = if failed.is_some() {
                "write-failed"
            } else {
                "stopped"
            };
            self.finish(name, open, reason, failed);
        }
    }

    fn finish(&mut self, name: String, open: Open, reason: &str, failed: Option<String>) {
        let end = End {
            ended_unix_ns: crate::session::now_unix_ns(),
            reason: reason.to_string(),
            exit_code: None,
            exit_signal: None,
            load: Vec::new(),
            load_errors: Vec::new(),
            pids_reused: 0,
        };
        let error = match open.writer.end(&end) {
            Finished::Written => failed,
            // What a failed write kept in memory is let go: the daemon's memory stays bounded.
            Finished::InMemory { error, .. } => Some(error.to_string()),
        };
        if let Some(e) = &error {
            crate::errln!(
                "chokepoint daemon: recording {name} stopped: cannot write {}: {e}; the file holds its first {} intervals; the daemon goes on",
                open.path.display(),
                open.intervals
            );
        }
        let stopped = Stopped {
            name,
            path: open.path,
            intervals: open.intervals,
            complete: error.is_none(),
            error,
        };
        for w in open.waiters {
            let _ = w.send(stopped.clone());
        }
        self.ended.push_back(stopped);
        while self.ended.len() > 16 {
            self.ended.pop_front();
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The hub as the session's sink: it locks the shared state for each interval.
pub struct HubSink(pub Shared);

impl Sink for HubSink {
    fn interval(&mut self, iv: &Interval) {
        let Ok(mut hub) = self.0.lock() else { return };
        hub.metrics.observe(iv);
        hub.remember(iv);
        hub.write(iv);
        // Every ROLLING_EVERY intervals (and at the first): each analysis copies the whole
        // window, which at 60 intervals under churn is megabytes a time.
        if hub.analysing || (hub.rolling.is_some() && hub.seen % ROLLING_EVERY != 0) {
            return;
        }
        // The rolling verdict, off the session's thread; one at a time.
        hub.analysing = true;
        let recording = hub.window_recording();
        let shared = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let t = std::time::Instant::now();
            let a = analysis::analyze(&recording, &[]);
            let rolling = Rolling {
                intervals: recording.intervals.len(),
                start_unix_ns: recording.intervals.first().map_or(0, |i| i.start_unix_ns),
                end_unix_ns: recording.intervals.last().map_or(0, |i| i.end_unix_ns),
                analysis_ms: t.elapsed().as_secs_f64() * 1e3,
                verdict: a.verdict,
            };
            if let Ok(mut hub) = shared.lock() {
                hub.metrics.set_verdict(&rolling.verdict);
                hub.rolling = Some(rolling);
                hub.analysing = false;
            }
        });
    }

    /// The daemon stopped: every recording ends with the session's last interval.
    fn end(&mut self, end: &End) {
        let Ok(mut hub) = self.0.lock() else { return };
        let names: Vec<String> = hub.open.keys().cloned().collect();
        for name in names {
            if let Some(open) = hub.open.remove(&name) {
                hub.finish(name, open, &end.reason, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_names_are_file_names_without_paths() {
        for good in ["stage-3", "run_1.2", "A"] {
            assert!(valid_name(good), "{good}");
        }
        let long = "x".repeat(MAX_NAME + 1);
        for bad in [
            "",
            ".hidden",
            "../etc/passwd",
            "a/b",
            "a b",
            "ü",
            long.as_str(),
            "a\0b",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
