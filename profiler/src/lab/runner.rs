//! One scenario, start to finish: set up, run the generator under `chokepoint run`, tear down,
//! read the verdict and compare it with the designed cause.
use std::{
    ffi::OsStr,
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{self, Signal},
    unistd::Pid,
};
use serde::Serialize;

use super::{
    LabError,
    guard::{self, TempDir},
    scenarios::{Ctx, Scenario},
    tools,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub expected: String,
    pub status: Status,
    /// The verdict's kind, when there was one.
    pub got: Option<String>,
    /// The verdict's summary, or why there is no verdict / why the scenario was skipped.
    pub detail: String,
    /// Failed scenarios: why the analysis ruled the designed kind out (its own words).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
    pub confidence: Option<f64>,
    /// Cores used by processes that are neither the scenario's servers nor its generator.
    pub bystander_cores: Option<f64>,
    /// Host CPU busy fraction just before the load started: others' work distorts verdicts.
    pub host_busy_before: Option<f64>,
    pub seconds: f64,
    /// Where the recording and JSON result are (only when kept).
    pub recording: Option<PathBuf>,
    pub json: Option<PathBuf>,
}

pub struct Options<'a> {
    pub exe: &'a Path,
    pub seconds: u64,
    /// Where recordings and JSON results go.
    pub results: &'a Path,
    pub keep: bool,
}

pub fn run(s: &Scenario, opts: &Options) -> ScenarioResult {
    let start = Instant::now();
    let mut result = ScenarioResult {
        scenario: s.name.into(),
        expected: s.expected.as_str().into(),
        status: Status::Failed,
        got: None,
        detail: String::new(),
        why_not: None,
        confidence: None,
        host_busy_before: None,
        bystander_cores: None,
        seconds: 0.0,
        recording: None,
        json: None,
    };
    if let Some(missing) = s.tools.iter().find(|t| tools::find(t).is_none()) {
        result.status = Status::Skipped;
        result.detail = format!(
            "{} not installed: run cargo xtask setup",
            tools::display_name(missing)
        );
        return result;
    }
    let rec = opts.results.join(format!("{}.rec", s.name));
    let json = opts.results.join(format!("{}.json", s.name));
    let log = opts.results.join(format!("{}.log", s.name));
    result.host_busy_before = wait_for_quiet();
    match attempt(s, opts, &rec, &json, &log) {
        Ok((verdict, window)) => {
            let window_ok = window.is_none_or(|w| w == verdict.window);
            result.status = if verdict.kind == s.expected.as_str() && window_ok {
                Status::Passed
            } else {
                Status::Failed
            };
            result.got = Some(verdict.kind);
            result.detail = match window {
                Some(w) if !window_ok => format!(
                    "decided on the {} window, not the {w} one: {}",
                    verdict.window, verdict.summary
                ),
                _ => verdict.summary,
            };
            if result.status == Status::Failed {
                result.why_not = verdict
                    .ruled_out
                    .iter()
                    .find(|(kind, _)| kind == s.expected.as_str())
                    .map(|(_, reason)| reason.clone());
            }
            result.confidence = verdict.confidence;
            result.bystander_cores = Some(verdict.bystander_cores);
        }
        Err(e) => result.detail = e.to_string(),
    }
    if opts.keep {
        result.recording = rec.exists().then_some(rec);
        result.json = json.exists().then_some(json);
    }
    result.seconds = start.elapsed().as_secs_f64();
    result
}

struct Verdict {
    kind: String,
    /// `window.source`: where the verdict was decided.
    window: String,
    summary: String,
    /// (kind, reason) of every kind the analysis ruled out.
    ruled_out: Vec<(String, String)>,
    confidence: Option<f64>,
    bystander_cores: f64,
}

fn attempt(
    s: &Scenario,
    opts: &Options,
    rec: &Path,
    json: &Path,
    log: &Path,
) -> Result<(Verdict, Option<&'static str>), LabError> {
    let mut dir = TempDir::new(s.name)?;
    if opts.keep {
        dir.keep();
    }
    let ctx = Ctx {
        exe: opts.exe,
        seconds: opts.seconds,
        dir: dir.path(),
    };
    let setup = (s.setup)(&ctx)?;
    if guard::stop_requested() {
        return Err(LabError::Interrupted);
    }
    let status = run_generator(opts.exe, &setup.command, &setup.load, rec, json, log)?;
    let window = setup.window;
    // Servers stop before the result is read, whatever it says.
    drop(setup);
    if guard::stop_requested() {
        return Err(LabError::Interrupted);
    }
    read_verdict(json)
        .map(|v| (v, window))
        .map_err(|e| match e {
            LabError::Io { .. } => LabError::StepFailed {
                what: "chokepoint run".into(),
                status,
                output: tail(log),
            },
            e => e,
        })
}

/// `chokepoint run --out REC --json FILE [--load F]... -- CMD`, waited for while watching the stop flag.
fn run_generator(
    exe: &Path,
    command: &[String],
    load: &[PathBuf],
    rec: &Path,
    json: &Path,
    log: &Path,
) -> Result<String, LabError> {
    let out = File::create(log).map_err(|source| LabError::Io {
        path: log.to_path_buf(),
        source,
    })?;
    let err = out.try_clone().map_err(|source| LabError::Io {
        path: log.to_path_buf(),
        source,
    })?;
    let mut child = Command::new(exe)
        .arg("run")
        .arg("--out")
        .arg(rec)
        .arg("--json")
        .arg(json)
        .args(
            load.iter()
                .flat_map(|f| [OsStr::new("--load"), f.as_os_str()]),
        )
        .arg("--")
        .args(command)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|source| LabError::Spawn {
            what: "chokepoint run".into(),
            source,
        })?;
    let mut interrupted_at: Option<Instant> = None;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.to_string()),
            Ok(None) => {}
            Err(source) => {
                return Err(LabError::Spawn {
                    what: "chokepoint run".into(),
                    source,
                });
            }
        }
        if guard::stop_requested() {
            let pid = Pid::from_raw(child.id() as i32);
            match interrupted_at {
                // `run` forwards the interrupt to the generator and writes what it has.
                None => {
                    let _ = signal::kill(pid, Signal::SIGINT);
                    interrupted_at = Some(Instant::now());
                }
                Some(t) if t.elapsed() > Duration::from_secs(10) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(LabError::Interrupted);
                }
                Some(_) => {}
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_verdict(path: &Path) -> Result<Verdict, LabError> {
    let text = std::fs::read_to_string(path).map_err(|source| LabError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |detail: &str| LabError::BadResult {
        path: path.to_path_buf(),
        detail: detail.into(),
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let verdict = &v["verdict"];
    Ok(Verdict {
        kind: verdict["kind"]
            .as_str()
            .ok_or_else(|| bad("no verdict.kind"))?
            .to_string(),
        summary: verdict["summary"].as_str().unwrap_or_default().to_string(),
        ruled_out: verdict["ruled_out"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r["kind"].as_str()?.into(), r["reason"].as_str()?.into())))
            .collect(),
        window: v["window"]["source"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        confidence: verdict["confidence"].as_f64(),
        // CPU seconds over the run, not each process's cores while it lived: many short-lived
        // bystanders (a compiler's processes) would otherwise add up to more than the host has.
        bystander_cores: v["processes"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["role"] == "other")
                    .filter_map(|p| p["cpu_seconds"].as_f64())
                    .sum::<f64>()
            })
            .unwrap_or(0.0)
            / v["duration_seconds"].as_f64().unwrap_or(0.0).max(1e-9),
    })
}

/// Busy fraction above which the host is not quiet enough for a designed bottleneck.
pub const QUIET_BUSY: f64 = 0.25;
const QUIET_WAIT: Duration = Duration::from_secs(20);

/// Wait (a while) for the host to be quiet; returns the last busy fraction seen.
fn wait_for_quiet() -> Option<f64> {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < QUIET_WAIT && !guard::stop_requested() {
        last = host_busy(Duration::from_secs(1));
        if last.is_none_or(|b| b < QUIET_BUSY) {
            break;
        }
    }
    last
}

/// Host CPU busy fraction over `over`, from /proc/stat (idle and iowait count as not busy).
fn host_busy(over: Duration) -> Option<f64> {
    let a = cpu_times()?;
    std::thread::sleep(over);
    let b = cpu_times()?;
    let total = b.0.checked_sub(a.0)?;
    let idle = b.1.checked_sub(a.1)?;
    (total > 0).then(|| 1.0 - idle as f64 / total as f64)
}

/// (total, idle + iowait) jiffies of the `cpu` line.
fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user already).
    let total: u64 = v.iter().take(8).sum();
    Some((total, v.get(3)? + v.get(4)?))
}

/// The last lines of a log, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}
