//! Load generators' own timelines: requests, errors, latency and offered load over time, read
//! from whatever file the user already has (format detected from content), aligned to the
//! recording's wall clock, and the plateau / knee that chooses the verdict's window.
//!
//! Every reader streams its input once with constant memory: events go into [`series`], which
//! keeps only the last few open intervals.
pub mod cli;
mod command;
mod detect;
pub mod knee;
mod readers;
mod series;
mod text;

use std::{
    collections::BTreeMap,
    fmt,
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::skipped::SkippedLines;

pub(crate) use command::opt;
pub use command::{ImpliedFile, ImpliedOutput, from_command, from_command_with, implied_output};
pub use detect::detect;
pub use knee::{Knee, Retrograde, Sweep, SweepPoint, Usl, Window, plateau, sweep};

/// The formats chokepoint reads; names are stable (they appear in JSON and recordings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    K6Json,
    K6Csv,
    K6Summary,
    K6Text,
    HeyCsv,
    HeyText,
    WrkText,
    AbTsv,
    AbCsv,
    AbText,
    VegetaJson,
    VegetaCsv,
    VegetaReport,
    OhaJson,
    LocustCsv,
    LocustStats,
    JmeterCsv,
    JmeterXml,
    GatlingLog,
    PgbenchLog,
    PgbenchAggregate,
    PgbenchText,
    SiegeLog,
    SiegeText,
}

impl Format {
    pub const ALL: [Format; 24] = [
        Format::K6Json,
        Format::K6Csv,
        Format::K6Summary,
        Format::K6Text,
        Format::HeyCsv,
        Format::HeyText,
        Format::WrkText,
        Format::AbTsv,
        Format::AbCsv,
        Format::AbText,
        Format::VegetaJson,
        Format::VegetaCsv,
        Format::VegetaReport,
        Format::OhaJson,
        Format::LocustCsv,
        Format::LocustStats,
        Format::JmeterCsv,
        Format::JmeterXml,
        Format::GatlingLog,
        Format::PgbenchLog,
        Format::PgbenchAggregate,
        Format::PgbenchText,
        Format::SiegeLog,
        Format::SiegeText,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::K6Json => "k6-json",
            Format::K6Csv => "k6-csv",
            Format::K6Summary => "k6-summary",
            Format::K6Text => "k6-text",
            Format::HeyCsv => "hey-csv",
            Format::HeyText => "hey-text",
            Format::WrkText => "wrk-text",
            Format::AbTsv => "ab-tsv",
            Format::AbCsv => "ab-csv",
            Format::AbText => "ab-text",
            Format::VegetaJson => "vegeta-json",
            Format::VegetaCsv => "vegeta-csv",
            Format::VegetaReport => "vegeta-report",
            Format::OhaJson => "oha-json",
            Format::LocustCsv => "locust-csv",
            Format::LocustStats => "locust-stats",
            Format::JmeterCsv => "jmeter-csv",
            Format::JmeterXml => "jmeter-xml",
            Format::GatlingLog => "gatling-log",
            Format::PgbenchLog => "pgbench-log",
            Format::PgbenchAggregate => "pgbench-aggregate",
            Format::PgbenchText => "pgbench-text",
            Format::SiegeLog => "siege-log",
            Format::SiegeText => "siege-text",
        }
    }

    /// What the user would call it, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Format::K6Json => "k6 --out json",
            Format::K6Csv => "k6 --out csv",
            Format::K6Summary => "k6 --summary-export / handleSummary JSON",
            Format::K6Text => "k6 end-of-test summary",
            Format::HeyCsv => "hey -o csv",
            Format::HeyText => "hey summary",
            Format::WrkText => "wrk / wrk2 output",
            Format::AbTsv => "ab -g (gnuplot TSV)",
            Format::AbCsv => "ab -e (percentile CSV)",
            Format::AbText => "ab summary",
            Format::VegetaJson => "vegeta encode --to json",
            Format::VegetaCsv => "vegeta encode --to csv",
            Format::VegetaReport => "vegeta report -type=json",
            Format::OhaJson => "oha --json",
            Format::LocustCsv => "locust --csv *_stats_history.csv",
            Format::LocustStats => "locust --csv *_stats.csv",
            Format::JmeterCsv => "JMeter JTL (CSV)",
            Format::JmeterXml => "JMeter JTL (XML)",
            Format::GatlingLog => "Gatling simulation.log",
            Format::PgbenchLog => "pgbench -l transaction log",
            Format::PgbenchAggregate => "pgbench -l --aggregate-interval log",
            Format::PgbenchText => "pgbench output / --progress lines",
            Format::SiegeLog => "siege log",
            Format::SiegeText => "siege summary",
        }
    }

    /// Formats with one line or row per interval or request (as opposed to one summary).
    pub fn has_intervals(self) -> bool {
        !matches!(
            self,
            Format::K6Summary
                | Format::K6Text
                | Format::HeyText
                | Format::WrkText
                | Format::AbCsv
                | Format::AbText
                | Format::VegetaReport
                | Format::OhaJson
                | Format::LocustStats
                | Format::SiegeText
        )
    }

    pub fn known_list() -> String {
        Format::ALL
            .iter()
            .map(|f| format!("{} ({})", f.name(), f.describe()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the timeline's times are measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Clock {
    /// The file holds wall-clock (unix) times.
    Absolute,
    /// Seconds from the start of the run only: not yet placed on the wall clock.
    Offset,
    /// Offsets placed on the wall clock by [`Timeline::anchor`] (the start `run` recorded).
    Anchored,
}

/// Latency summary in milliseconds; a field is None when the source does not say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// The load the generator was asked to offer (or, marked, what it measured).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Offered {
    /// Virtual users, connections or clients (`-c`, VUs, users).
    pub concurrency: Option<f64>,
    /// Requested arrival rate, per second (wrk2 `-R`, vegeta `-rate`, k6 arrival rate).
    pub rate_per_s: Option<f64>,
    /// `configured` (from the file or argv), `measured` (the tool's own average) or
    /// `littles-law` (throughput times mean latency).
    pub source: String,
}

/// One interval of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Start of the interval: unix seconds, or seconds from the run's start when the clock is
    /// `offset`.
    pub start_s: f64,
    pub seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub throughput_per_s: f64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_kind: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered: Option<Offered>,
}

/// A load generator's run as read from its output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timeline {
    pub format: Format,
    pub source: PathBuf,
    pub clock: Clock,
    /// Unix seconds of the first request when the clock is absolute or anchored.
    pub start_unix_s: Option<f64>,
    pub requests: u64,
    pub errors: u64,
    /// `http-<status>`, `timeout`, `connection`, `other`.
    pub errors_by_kind: BTreeMap<String, u64>,
    pub duration_seconds: f64,
    pub throughput_per_s: f64,
    pub latency_ms: Option<Latency>,
    /// The run's offered load as a whole (per-interval values are in the points).
    pub offered: Option<Offered>,
    /// Nominal interval length of `points` (0 when there are none).
    pub interval_seconds: f64,
    pub points: Vec<Point>,
    /// Seconds added to the file's clock (`--clock-offset`).
    pub clock_offset_s: f64,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Lines that did not read and were left out (docs/timeline.md); absent when none.
    #[serde(default, skip_serializing_if = "SkippedLines::is_empty")]
    pub skipped_lines: SkippedLines,
}

impl Timeline {
    pub(crate) fn empty(format: Format, source: &Path) -> Timeline {
        Timeline {
            format,
            source: source.to_path_buf(),
            clock: Clock::Offset,
            start_unix_s: None,
            requests: 0,
            errors: 0,
            errors_by_kind: BTreeMap::new(),
            duration_seconds: 0.0,
            throughput_per_s: 0.0,
            latency_ms: None,
            offered: None,
            interval_seconds: 0.0,
            points: Vec::new(),
            clock_offset_s: 0.0,
            warnings: Vec::new(),
            skipped_lines: SkippedLines::new(source),
        }
    }

    /// `--strict`: the first corrupt line this timeline left out, as the error reading it
    /// would have been (a truncated last line is not refused).
    pub fn strict(&self) -> Result<(), TimelineError> {
        match self.skipped_lines.refused() {
            Some(l) => Err(TimelineError::Parse {
                path: self.source.clone(),
                line: l.line,
                format: self.format,
                reason: format!("{} (--strict)", l.reason),
            }),
            None => Ok(()),
        }
    }

    /// Place an offset-only timeline on the wall clock, its zero at `start_unix_ns` (the
    /// start `run` recorded for the command). A no-op for absolute and already anchored ones.
    pub fn anchor(&mut self, start_unix_ns: u64) {
        if self.clock != Clock::Offset {
            return;
        }
        let start = start_unix_ns as f64 / 1e9 + self.clock_offset_s;
        for p in &mut self.points {
            p.start_s += start;
        }
        self.start_unix_s = Some(start + self.start_unix_s.unwrap_or(0.0));
        self.clock = Clock::Anchored;
    }

    /// Shift the file's clock by `seconds` (a file from a host whose clock is off).
    pub fn shift_clock(&mut self, seconds: f64) {
        self.clock_offset_s += seconds;
        if self.clock == Clock::Offset {
            return;
        }
        for p in &mut self.points {
            p.start_s += seconds;
        }
        if let Some(s) = &mut self.start_unix_s {
            *s += seconds;
        }
    }

    /// Wall-clock span of the run, when it is on the wall clock.
    pub fn span_unix_s(&self) -> Option<(f64, f64)> {
        if self.clock == Clock::Offset {
            return None;
        }
        let start = self
            .points
            .first()
            .map(|p| p.start_s)
            .or(self.start_unix_s)?;
        let end = self
            .points
            .last()
            .map(|p| p.start_s + p.seconds)
            .unwrap_or(start + self.duration_seconds);
        Some((start, end.max(start)))
    }

    /// A warning when this timeline's wall clock lies far (over 10 s) outside the recording.
    pub fn clock_skew_warning(
        &self,
        recording_start_unix_s: f64,
        recording_end_unix_s: f64,
    ) -> Option<String> {
        const SLACK_S: f64 = 10.0;
        let (start, end) = self.span_unix_s()?;
        let gap = if end < recording_start_unix_s {
            end - recording_start_unix_s
        } else if start > recording_end_unix_s {
            start - recording_end_unix_s
        } else {
            0.0
        };
        if gap.abs() <= SLACK_S {
            return None;
        }
        let side = if gap < 0.0 { "before" } else { "after" };
        Some(format!(
            "{} ({}): its clock puts the run {:.0} s {side} the recording; if it comes from another host, pass --clock-offset",
            self.source.display(),
            self.format,
            gap.abs()
        ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: empty file: no load-generator output")]
    Empty { path: PathBuf },
    #[error(
        "{path}: unknown load-generator format (starts with {start:?}); known formats: {known}"
    )]
    Unknown {
        path: PathBuf,
        start: String,
        known: String,
    },
    #[error("{path}:{line}: expected {} ({}): {reason}", format.describe(), format.name())]
    Parse {
        path: PathBuf,
        line: u64,
        format: Format,
        reason: String,
    },
}

/// Detect the format of `path` from its content and read it in one streaming pass.
pub fn read_file(path: &Path) -> Result<Timeline, TimelineError> {
    let file = File::open(path).map_err(|source| TimelineError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_from(BufReader::with_capacity(1 << 18, file), path)
}

/// [`read_file`]; with `strict` a corrupt line is the error instead of a skipped line.
pub fn read_file_with(path: &Path, strict: bool) -> Result<Timeline, TimelineError> {
    let t = read_file(path)?;
    if strict {
        t.strict()?;
    }
    Ok(t)
}

/// [`read_file`] with the file's clock shifted by `clock_offset_s`.
pub fn read_file_with_offset(path: &Path, clock_offset_s: f64) -> Result<Timeline, TimelineError> {
    read_file_shifted(path, clock_offset_s, false)
}

/// [`read_file_with`] with the file's clock shifted by `clock_offset_s`.
pub fn read_file_shifted(
    path: &Path,
    clock_offset_s: f64,
    strict: bool,
) -> Result<Timeline, TimelineError> {
    let mut t = read_file_with(path, strict)?;
    if clock_offset_s != 0.0 {
        t.shift_clock(clock_offset_s);
    }
    Ok(t)
}

/// Detect and read from any buffered reader; `source` names it in errors.
pub fn read_from<R: BufRead>(mut input: R, source: &Path) -> Result<Timeline, TimelineError> {
    let head = input.fill_buf().map_err(|e| TimelineError::Io {
        path: source.to_path_buf(),
        source: e,
    })?;
    let format = detect::detect(head).ok_or_else(|| {
        if head.iter().all(u8::is_ascii_whitespace) {
            TimelineError::Empty {
                path: source.to_path_buf(),
            }
        } else {
            let start: String = String::from_utf8_lossy(&head[..head.len().min(60)]).into();
            TimelineError::Unknown {
                path: source.to_path_buf(),
                start,
                known: Format::known_list(),
            }
        }
    })?;
    read_as(input, source, format)
}

/// Read `input` as `format` (no detection).
pub fn read_as<R: BufRead>(
    input: R,
    source: &Path,
    format: Format,
) -> Result<Timeline, TimelineError> {
    readers::read(input, source, format)
}
