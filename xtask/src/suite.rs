//! `cargo xtask test`: set-up, format check, release build (with the kernel programs), unit
//! and integration tests, clippy, then the end-to-end tests as root against the release
//! binary. Every stage streams its output; a table of stages and a total closes the run.
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, bail};

use crate::{env, setup};

#[derive(Debug, Default, clap::Args)]
pub struct TestArgs {
    /// Skip the end-to-end tests (no root needed then, but for set-up).
    #[arg(long)]
    pub quick: bool,
    /// Only set-up, build and the end-to-end tests (for iterating on one of them).
    #[arg(long, conflicts_with = "quick")]
    pub e2e_only: bool,
    /// Skip `cargo xtask setup` (when you know everything is installed).
    #[arg(long)]
    pub no_setup: bool,
    /// Filter passed to the end-to-end test binary (`cargo xtask test -- opens`).
    #[arg(last = true, value_name = "FILTER")]
    pub filter: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pass,
    Fail,
    Skipped,
}

struct Stage {
    name: &'static str,
    outcome: Outcome,
    seconds: f64,
    note: String,
}

/// Test counts summed over every `test result:` line cargo's test harness printed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl Counts {
    /// Adds the counts of one `test result: ok. 3 passed; 0 failed; 1 ignored; ...` line.
    pub fn add_line(&mut self, line: &str) -> bool {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return false;
        };
        let Some((_, fields)) = rest.split_once(". ") else {
            return false;
        };
        for field in fields.split(';') {
            let mut words = field.split_whitespace();
            let (Some(n), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
        true
    }
}

struct Runner {
    stages: Vec<Stage>,
    counts: Counts,
}

impl Runner {
    fn record(&mut self, name: &'static str, started: Instant, result: anyhow::Result<()>) -> bool {
        let seconds = started.elapsed().as_secs_f64();
        let (outcome, note) = match result {
            Ok(()) => (Outcome::Pass, String::new()),
            Err(e) => (Outcome::Fail, format!("{e:#}")),
        };
        if outcome == Outcome::Fail {
            eprintln!("xtask test: stage {name} FAILED: {note}");
        }
        self.stages.push(Stage {
            name,
            outcome,
            seconds,
            note,
        });
        outcome == Outcome::Pass
    }

    fn skip(&mut self, name: &'static str, why: &str) {
        self.stages.push(Stage {
            name,
            outcome: Outcome::Skipped,
            seconds: 0.0,
            note: why.to_string(),
        });
    }

    /// Runs one cargo command as a stage, streaming its output and counting test results.
    fn cargo(&mut self, name: &'static str, args: &[&str], extra_env: &[(&str, String)]) -> bool {
        banner(name, args);
        let started = Instant::now();
        let mut cmd = env::cargo();
        cmd.args(args);
        // The suite's binaries must carry their kernel programs, whatever the caller's shell
        // exported for quick pure-logic builds; a stage that wants the skip says so below.
        cmd.env_remove("AYA_BUILD_SKIP");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let result = stream(&mut cmd, &mut self.counts);
        self.record(name, started, result)
    }
}

fn banner(name: &str, args: &[&str]) {
    println!("\n==> xtask test: {name}: cargo {}", args.join(" "));
}

/// Runs `cmd` with stdout passed through line by line (and parsed for test counts); stderr
/// goes straight to ours.
fn stream(cmd: &mut Command, counts: &mut Counts) -> anyhow::Result<()> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.context("reading the command's output")?;
            println!("{line}");
            counts.add_line(&line);
        }
    }
    let status = child.wait().context("waiting for the command")?;
    if !status.success() {
        bail!("exited with {status}");
    }
    Ok(())
}

pub fn test(args: &TestArgs) -> anyhow::Result<()> {
    let total = Instant::now();
    let mut r = Runner {
        stages: Vec::new(),
        counts: Counts::default(),
    };
    let e2e = !args.quick;
    if e2e && !env::is_root() {
        bail!(
            "the end-to-end tests load eBPF programs and start servers: run as root, or use \
             `cargo xtask test --quick` for format, build, unit tests and clippy"
        );
    }

    if args.no_setup {
        r.skip("setup", "--no-setup");
    } else if env::is_root() {
        println!("==> xtask test: setup");
        let started = Instant::now();
        let result = setup::setup();
        r.record("setup", started, result);
    } else {
        r.skip("setup", "not root");
    }

    if !args.e2e_only {
        r.cargo("fmt", &["fmt", "--all", "--", "--check"], &[]);
    }
    let built = r.cargo("build", &["build", "--release"], &[]);
    if !args.e2e_only {
        r.cargo("unit tests", &["test", "--release", "--no-fail-fast"], &[]);
        // --release reuses the release build's proc-macros and dependency build scripts.
        // Clippy compiles our own build script apart (through its wrapper), so it would build
        // the kernel programs a second time: skip that, the release build has them.
        r.cargo(
            "clippy",
            &[
                "clippy",
                "--release",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            &[("AYA_BUILD_SKIP", "1".to_string())],
        );
        // The fuzz targets (their own workspace and target dir) type-check against today's
        // readers; without libFuzzer, so stable suffices. `cargo xtask fuzz` runs them.
        r.cargo(
            "fuzz targets (check)",
            &[
                "check",
                "--manifest-path",
                "fuzz/Cargo.toml",
                "--no-default-features",
                "--bins",
            ],
            &[("AYA_BUILD_SKIP", "1".to_string())],
        );
    }
    if !e2e {
        r.skip("e2e", "--quick");
    } else if !built {
        r.skip("e2e", "the release build failed");
    } else {
        let bin = env::chokepoint_release_bin()?;
        // --no-fail-fast: one failing test file must not hide the results of the others.
        let mut e2e_args = vec![
            "test",
            "--release",
            "--no-fail-fast",
            "-p",
            "chokepoint-tests",
            "-p",
            "chokepoint-testbed",
            "--",
            "--test-threads=1",
        ];
        e2e_args.extend(args.filter.iter().map(String::as_str));
        println!("CHOKEPOINT_BIN={}", bin.display());
        r.cargo(
            "e2e",
            &e2e_args,
            &[("CHOKEPOINT_BIN", bin.display().to_string())],
        );
    }

    println!("\n==> xtask test: summary");
    for s in &r.stages {
        let word = match s.outcome {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Skipped => "skipped",
        };
        let note = if s.note.is_empty() {
            String::new()
        } else {
            format!("  ({})", s.note)
        };
        println!("{:<12} {word:<8} {:>7.1} s{note}", s.name, s.seconds);
    }
    println!(
        "{:<12} {:<8} {:>7.1} s",
        "total",
        "",
        total.elapsed().as_secs_f64()
    );
    let c = r.counts;
    println!(
        "tests: {} passed, {} failed, {} skipped",
        c.passed, c.failed, c.ignored
    );
    let failed: Vec<&str> = r
        .stages
        .iter()
        .filter(|s| s.outcome == Outcome::Fail)
        .map(|s| s.name)
        .collect();
    if !failed.is_empty() {
        bail!("failed stage(s): {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        test: TestArgs,
    }

    #[test]
    fn a_filter_after_double_dash_reaches_the_e2e_run() {
        let cli = Cli::try_parse_from(["test", "--quick"]).expect("parses");
        assert!(cli.test.quick && cli.test.filter.is_empty());
        let cli =
            Cli::try_parse_from(["test", "--e2e-only", "--", "opens", "--exact"]).expect("parses");
        assert!(cli.test.e2e_only);
        assert_eq!(cli.test.filter, ["opens", "--exact"]);
        assert!(Cli::try_parse_from(["test", "--quick", "--e2e-only"]).is_err());
    }

    #[test]
    fn counts_sum_over_result_lines_and_ignore_the_rest() {
        let mut c = Counts::default();
        assert!(c.add_line(
            "test result: ok. 12 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.50s"
        ));
        assert!(c.add_line(
            "test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 5 filtered out"
        ));
        assert!(!c.add_line("test foo ... ok"));
        assert!(!c.add_line("running 3 tests"));
        assert_eq!(
            c,
            Counts {
                passed: 15,
                failed: 1,
                ignored: 2
            }
        );
    }
}
