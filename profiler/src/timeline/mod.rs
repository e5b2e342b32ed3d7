//! Placeholder until the timeline readers land.
pub mod cli;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timeline {
    pub format: String,
    pub source: PathBuf,
    pub requests: u64,
    pub errors: u64,
    pub duration_seconds: f64,
}

impl Timeline {
    pub fn anchor(&mut self, _start_unix_ns: u64) {}

    pub fn clock_skew_warning(&self, _start: f64, _end: f64) -> Option<String> {
        None
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}: load-generator formats are not supported yet")]
pub struct TimelineError(String);

pub struct Window {
    pub start_unix_s: f64,
    pub end_unix_s: f64,
    pub throughput_per_s: f64,
    pub reason: String,
}

pub fn plateau(_timelines: &[Timeline]) -> Option<Window> {
    None
}

pub fn read_file(path: &Path) -> Result<Timeline, TimelineError> {
    Err(TimelineError(path.display().to_string()))
}

pub fn from_command(
    _argv: &[String],
    _stdout: &[u8],
    _start_unix_ns: u64,
) -> Vec<Result<Timeline, TimelineError>> {
    Vec::new()
}
