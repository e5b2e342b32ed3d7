//! `chokepoint lab`: pick scenarios, run them one by one, print the table and the tally.

use anyhow::Context;
use serde::Serialize;

use super::{
    guard::{self, TempDir},
    matrix,
    runner::{self, ScenarioResult, Status},
    scenarios::{SCENARIOS, Scenario, find},
};

#[derive(Debug, clap::Args)]
pub struct LabArgs {
    /// List the scenarios with their expected verdicts and exit (with `--json`: `[{name,
    /// expect, servers, generator, default, description}]`).
    #[arg(long)]
    pub list: bool,
    /// After the runs, print the confusion matrix (designed cause x verdict), precision and
    /// recall per kind and the calibration of confidence (in the JSON as `matrix`). Without
    /// scenarios named, runs `all`.
    #[arg(long)]
    pub matrix: bool,
    /// Scenarios to run, or `default` (the quick subset) or `all`. Default: `default`.
    #[arg(value_name = "SCENARIO")]
    pub scenarios: Vec<String>,
    /// Keep the recordings, JSON results and logs, and print where they are.
    #[arg(long)]
    pub keep: bool,
    /// Seconds of load per scenario.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(2..=600))]
    pub seconds: u64,
    #[command(flatten)]
    pub out: crate::cli::JsonOut,
}

#[derive(Serialize)]
struct Report<'a> {
    passed: usize,
    failed: usize,
    skipped: usize,
    scenarios: &'a [ScenarioResult],
    #[serde(skip_serializing_if = "Option::is_none")]
    matrix: Option<matrix::Matrix>,
}

/// A scenario as `lab --list --json` shows it.
#[derive(Serialize)]
struct Listed {
    name: &'static str,
    expect: &'static str,
    servers: &'static [&'static str],
    generator: &'static str,
    default: bool,
    description: &'static str,
}

/// The matrix of the runs that produced a verdict (skipped scenarios are not outcomes).
fn outcomes(results: &[ScenarioResult]) -> Vec<matrix::Outcome> {
    results
        .iter()
        .filter(|r| r.status != Status::Skipped)
        .map(|r| matrix::Outcome {
            expected: r.expected.clone(),
            got: r.got.clone().unwrap_or_else(|| "none".into()),
            confidence: r.confidence.unwrap_or(0.0),
        })
        .collect()
}

fn select(names: &[String]) -> anyhow::Result<Vec<&'static Scenario>> {
    let mut out: Vec<&'static Scenario> = Vec::new();
    let names: Vec<&str> = if names.is_empty() {
        vec!["default"]
    } else {
        names.iter().map(String::as_str).collect()
    };
    for name in names {
        let picked: Vec<&'static Scenario> = match name {
            "default" => SCENARIOS.iter().filter(|s| s.default).collect(),
            "all" => SCENARIOS.iter().collect(),
            _ => vec![find(name).with_context(|| {
                let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
                format!(
                    "unknown scenario `{name}` (known: {}, or default, all)",
                    known.join(", ")
                )
            })?],
        };
        for s in picked {
            if !out.iter().any(|x| x.name == s.name) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn list() {
    let width = SCENARIOS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in SCENARIOS {
        crate::outln!(
            "{:width$}  {:24}  {}{}",
            s.name,
            s.expected.as_str(),
            s.description,
            if s.default { " [default]" } else { "" },
        );
    }
}

/// Shorten to `max` characters on a character boundary.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

/// Cores of unrelated work above which a row gets a warning.
const BYSTANDER_CORES: f64 = 0.25;

const NAME_W: usize = 24;
const KIND_W: usize = 24;

fn row(r: &ScenarioResult) -> String {
    let status = match r.status {
        Status::Passed => "pass",
        Status::Failed => "FAIL",
        Status::Skipped => "skipped",
    };
    format!(
        "{:NAME_W$}  {:KIND_W$}  {:KIND_W$}  {:7}  {:>4.0}s  {}",
        r.scenario,
        r.expected,
        r.got.as_deref().unwrap_or("-"),
        status,
        r.seconds,
        shorten(&r.detail, 110)
    )
}

pub fn run(args: &LabArgs) -> anyhow::Result<i32> {
    if args.list {
        match &args.out.json {
            Some(target) => {
                let listed: Vec<Listed> = SCENARIOS
                    .iter()
                    .map(|s| Listed {
                        name: s.name,
                        expect: s.expected.as_str(),
                        servers: s.servers,
                        generator: s.generator,
                        default: s.default,
                        description: s.description,
                    })
                    .collect();
                target.write(&listed)?;
            }
            None => list(),
        }
        return Ok(0);
    }
    let scenarios = if args.matrix && args.scenarios.is_empty() {
        select(&["all".to_string()])?
    } else {
        select(&args.scenarios)?
    };
    guard::install_stop_handler()?;
    let exe = std::env::current_exe().context("finding this chokepoint binary")?;
    let mut results_dir = TempDir::new("results")?;
    if args.keep {
        results_dir.keep();
    }
    crate::outln!(
        "{:NAME_W$}  {:KIND_W$}  {:KIND_W$}  {:7}  {:>5}  evidence",
        "scenario",
        "expected",
        "got",
        "result",
        "time"
    );
    let opts = runner::Options {
        exe: &exe,
        seconds: args.seconds,
        results: results_dir.path(),
        keep: args.keep,
    };
    let mut results = Vec::new();
    for s in scenarios {
        if guard::stop_requested() {
            break;
        }
        let r = runner::run(s, &opts);
        crate::outln!("{}", row(&r));
        if r.status == Status::Failed {
            // The table shortens the evidence: a failure shows all of it, and why the
            // designed kind was ruled out.
            crate::outln!("    verdict: {}", r.detail);
            if let Some(why) = &r.why_not {
                crate::outln!("    why not {}: {why}", r.expected);
            }
        }
        if let Some(b) = r.host_busy_before.filter(|b| *b >= runner::QUIET_BUSY) {
            crate::outln!(
                "    note: the host was already {:.0}% busy before the load started; other work distorts the verdict",
                b * 100.0
            );
        }
        if let Some(c) = r.bystander_cores.filter(|c| *c >= BYSTANDER_CORES) {
            crate::outln!(
                "    note: processes outside the scenario used {c:.2} cores during the load; other work distorts the verdict"
            );
        }
        if let (Some(rec), Some(json)) = (&r.recording, &r.json) {
            crate::outln!("    recording {}  json {}", rec.display(), json.display());
        }
        results.push(r);
    }
    if args.keep {
        crate::outln!("kept: {}", results_dir.path().display());
    }
    let count = |st: Status| results.iter().filter(|r| r.status == st).count();
    let (passed, failed, skipped) = (
        count(Status::Passed),
        count(Status::Failed),
        count(Status::Skipped),
    );
    let matrix = args.matrix.then(|| matrix::matrix(&outcomes(&results)));
    if let Some(m) = &matrix {
        crate::outln!("\n{}", matrix::render(m));
    }
    if let Some(target) = &args.out.json {
        let report = Report {
            passed,
            failed,
            skipped,
            scenarios: &results,
            matrix,
        };
        target.write(&report).context("writing the lab's results")?;
    }
    let interrupted = guard::stop_requested();
    if interrupted {
        crate::outln!("lab: interrupted");
    }
    if skipped > 0 {
        crate::outln!("lab: {passed} passed, {failed} failed, {skipped} skipped");
    } else {
        crate::outln!("lab: {passed} passed, {failed} failed");
    }
    Ok(if failed == 0 && !interrupted { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_expands_groups_without_duplicates() {
        let default = select(&[]).expect("default");
        assert!(!default.is_empty());
        assert!(default.iter().all(|s| s.default));
        let all = select(&["all".into(), "single-thread".into()]).expect("all");
        assert_eq!(all.len(), SCENARIOS.len());
        assert!(select(&["no-such-thing".into()]).is_err());
    }

    #[test]
    fn scenario_names_are_unique() {
        for s in SCENARIOS {
            assert_eq!(SCENARIOS.iter().filter(|x| x.name == s.name).count(), 1);
        }
    }

    #[test]
    fn long_summaries_are_shortened() {
        assert_eq!(shorten("abcdef", 10), "abcdef");
        assert_eq!(shorten("abcdefghijkl", 8), "abcde...");
    }
}
