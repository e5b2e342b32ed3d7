//! The command line's conventions (docs/cli.md), through the real binary on real recordings:
//! exit statuses, `--json -`, `--fail-on`, a reader that closes the pipe early, recordings
//! never overwritten by surprise, completions and man pages. No root needed: nothing here
//! attaches probes (`run`'s checks happen before anything is attached).
use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chokepoint"));
    cmd.env_remove("CLICOLOR_FORCE").stdin(Stdio::null());
    cmd
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lab")
        .join(format!("{name}.rec"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("chokepoint starts")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn verdict_of(rec: &Path) -> String {
    let o = run(bin().arg("analyze").arg(rec).args(["--json", "-"]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON only");
    v["verdict"]["kind"].as_str().expect("a kind").to_string()
}

#[test]
fn json_to_stdout_is_json_only_and_the_summary_moves_to_stderr() {
    let o = run(bin()
        .arg("analyze")
        .arg(fixture("cpu-saturated"))
        .args(["--json", "-"]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", text(&o.stdout)));
    assert_eq!(v["schema_version"], 1);
    assert!(
        v["chokepoint_version"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(v["host"]["name"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(v["host"]["kernel"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(v["host"]["cpus"].as_u64().is_some_and(|n| n >= 1));
    // Numeric thresholds beside the text ones.
    let numeric = v["verdict"]["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .filter(|e| e["threshold_numeric"]["op"].is_string())
        .count();
    assert!(numeric > 0, "no numeric threshold in {}", v["verdict"]);
    let summary = text(&o.stderr);
    assert!(summary.contains("cpu-saturated"), "{summary}");
    assert!(
        !summary.contains('\x1b'),
        "no colour when piped: {summary:?}"
    );
}

#[test]
fn fail_on_exits_3_only_when_the_verdict_matches() {
    let rec = fixture("cpu-saturated");
    let kind = verdict_of(&rec);
    let other = if kind == "io-bound" {
        "pool-saturated"
    } else {
        "io-bound"
    };
    let json = tempfile::NamedTempFile::new().expect("tmp");
    let hit = run(bin()
        .arg("analyze")
        .arg(&rec)
        .arg("--fail-on")
        .arg(format!("{other},{kind}"))
        .arg("--json")
        .arg(json.path()));
    assert_eq!(hit.status.code(), Some(3), "{}", text(&hit.stderr));
    assert!(text(&hit.stderr).contains("--fail-on"));
    // The JSON is still written when --fail-on matches.
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(json.path()).expect("json")).expect("JSON");
    assert_eq!(v["verdict"]["kind"], kind.as_str());
    let miss = run(bin().arg("analyze").arg(&rec).args(["--fail-on", other]));
    assert_eq!(miss.status.code(), Some(0), "{}", text(&miss.stderr));
}

#[test]
fn usage_errors_exit_2_and_runtime_errors_exit_1() {
    let unknown_flag = run(bin().args(["analyze", "--no-such-flag", "x.rec"]));
    assert_eq!(unknown_flag.status.code(), Some(2));
    let bad_kind = run(bin()
        .arg("analyze")
        .arg(fixture("cpu-saturated"))
        .args(["--fail-on", "slow"]));
    assert_eq!(bad_kind.status.code(), Some(2));
    assert!(text(&bad_kind.stderr).contains("not a verdict kind"));
    let missing = run(bin().args(["analyze", "/nonexistent/x.rec"]));
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing.stderr));
    assert!(text(&missing.stderr).contains("/nonexistent/x.rec"));
    let help = run(bin().arg("--help"));
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("Exit status"));
}

#[test]
fn an_existing_recording_is_not_overwritten_without_force() {
    let dir = tempfile::tempdir().expect("tmp");
    let old = dir.path().join("old.rec");
    std::fs::write(&old, "keep me").expect("write");
    let o = run(bin().arg("run").arg("--out").arg(&old).args(["--", "true"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&old).expect("read"), "keep me");
    let o = run(bin()
        .args(["record", "--duration", "1s", "--out"])
        .arg(&old));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

#[test]
fn a_reader_that_closes_the_pipe_early_ends_the_output_quietly() {
    let json = tempfile::NamedTempFile::new().expect("tmp");
    let mut child = bin()
        .arg("analyze")
        .arg(fixture("two-hop-proxy"))
        .arg("--json")
        .arg(json.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    // Read one line, then close our end before the rest is written (`| head -1`).
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).expect("some output");
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let status = child.wait().expect("exits");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
    // The JSON file was written before anything was printed.
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(json.path()).expect("json")).expect("JSON");
    assert!(v["verdict"]["kind"].is_string());
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let o = run(bin().args(["completions", "bash"]));
    assert_eq!(o.status.code(), Some(0));
    let script = text(&o.stdout);
    assert!(script.contains("_chokepoint"), "{script}");
    assert!(
        script.contains("--fail-on"),
        "the flags are in the completions"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let o = run(bin().arg("man").arg("--dir").arg(dir.path()));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let run_page = std::fs::read_to_string(dir.path().join("chokepoint-run.1")).expect("page");
    assert!(run_page.contains(".TH"), "roff: {run_page}");
    assert!(run_page.contains("fail\\-on"), "{run_page}");
    assert!(dir.path().join("chokepoint.1").is_file());
}

#[test]
fn colour_only_when_asked_for_or_on_a_terminal_and_never_with_no_color() {
    let rec = fixture("cpu-saturated");
    let plain = run(bin().arg("analyze").arg(&rec));
    assert!(!text(&plain.stdout).contains('\x1b'), "piped: no colour");
    let forced = run(bin().arg("analyze").arg(&rec).env("CLICOLOR_FORCE", "1"));
    assert!(text(&forced.stdout).contains("\x1b[1;31m"), "forced colour");
    let no_color = run(bin()
        .arg("analyze")
        .arg(&rec)
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1"));
    assert!(!text(&no_color.stdout).contains('\x1b'), "NO_COLOR wins");
    // The same words either way.
    assert_eq!(
        text(&plain.stdout),
        text(&forced.stdout)
            .replace("\x1b[1;31m", "")
            .replace("\x1b[0m", "")
    );
}
