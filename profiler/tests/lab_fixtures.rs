//! Attribution replayed offline over real recordings: each file in `tests/fixtures/lab/` was
//! recorded by `cargo xtask fixtures` from a lab scenario (real servers, real load generators,
//! real probes) whose designed cause is known. Analysing it again must name that cause, so a
//! change to the rules that breaks a real case fails here, without root or a kernel.
use std::path::{Path, PathBuf};

use chokepoint::{analysis::analyze, lab::scenarios, recording::Recording};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lab");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rec"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_recorded_scenario_replays_to_its_designed_verdict() {
    let files = fixtures();
    assert!(!files.is_empty(), "no fixtures: run `cargo xtask fixtures`");
    let mut wrong = Vec::new();
    for file in &files {
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        let scenario = scenarios::find(name)
            .unwrap_or_else(|| panic!("{}: no lab scenario named {name}", file.display()));
        let recording = Recording::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let verdict = analyze(&recording, &[]).verdict;
        if verdict.kind != scenario.expected {
            wrong.push(format!(
                "{name}: expected {}, got {} ({})",
                scenario.expected.as_str(),
                verdict.kind.as_str(),
                verdict.summary
            ));
        }
        assert!(
            !verdict.evidence.is_empty(),
            "{name}: a verdict without evidence"
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_kind_the_lab_designs_for_has_a_recorded_fixture() {
    let recorded: std::collections::BTreeSet<&str> = fixtures()
        .iter()
        .filter_map(|f| scenarios::find(f.file_stem()?.to_str()?))
        .map(|s| s.expected.as_str())
        .collect();
    let missing: Vec<&str> = scenarios::SCENARIOS
        .iter()
        .map(|s| s.expected.as_str())
        .filter(|k| !recorded.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "no recorded fixture for {missing:?}: run `cargo xtask fixtures SCENARIO`"
    );
}

/// The confusion matrix of the recorded fixtures (`chokepoint lab --matrix` over live runs
/// prints the same): diagonal, every kind with a recall of 1, and the calibration printed so
/// `cargo test -- --nocapture` shows how confident the right verdicts were.
#[test]
fn the_fixtures_confusion_matrix_is_diagonal() {
    use chokepoint::lab::matrix::{Outcome, matrix, render};
    let outcomes: Vec<Outcome> = fixtures()
        .iter()
        .map(|file| {
            let name = file.file_stem().and_then(|s| s.to_str()).expect("name");
            let scenario = scenarios::find(name).expect("a scenario");
            let recording = Recording::read(file).expect("readable");
            let v = analyze(&recording, &[]).verdict;
            Outcome {
                expected: scenario.expected.as_str().to_string(),
                got: v.kind.as_str().to_string(),
                confidence: v.confidence,
            }
        })
        .collect();
    let m = matrix(&outcomes);
    println!("{}", render(&m));
    assert!(m.diagonal, "{}", render(&m));
    assert!(
        m.scores.iter().all(|k| k.recall == Some(1.0)),
        "{}",
        render(&m)
    );
}

/// Analysis is a pure function of the recording: the same file analysed twice gives the same
/// JSON and the same text (nothing may depend on hash order).
#[test]
fn analysing_a_recording_twice_gives_the_same_result() {
    for file in fixtures() {
        let recording = Recording::read(&file).expect("readable");
        let once = analyze(&recording, &[]);
        let again = analyze(&recording, &[]);
        assert_eq!(
            serde_json::to_string(&once).expect("json"),
            serde_json::to_string(&again).expect("json"),
            "{}",
            file.display()
        );
        assert_eq!(
            chokepoint::report::text::render(&once),
            chokepoint::report::text::render(&again),
            "{}",
            file.display()
        );
    }
}
