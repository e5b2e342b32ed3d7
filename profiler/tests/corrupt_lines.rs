//! Nothing lost to one bad line, and content rather than formatting: the real recordings and
//! load files in tests/fixtures with one byte flipped in the middle still read (that line
//! only left out, named and counted in `skipped_lines`), `--strict` refuses them at that line,
//! a corrupt header is fatal, and JSON re-serialised with other spacing and key order reads
//! to the same timeline.
use std::path::{Path, PathBuf};

use chokepoint::{
    analysis::analyze,
    lab::scenarios,
    recording::Recording,
    timeline::{self, Timeline},
};
use serde::Serialize;

fn fixtures(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    files.sort();
    files
}

/// `raw` with one byte flipped in line `line` (from 1): its first `:` from the line's middle
/// on becomes `;`, so the line is no longer JSON.
fn flip_in_line(raw: &[u8], line: usize) -> Vec<u8> {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            raw.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let (from, to) = (starts[line - 1], starts[line] - 1);
    let at = (from + (to - from) / 2..to)
        .find(|&i| raw[i] == b':')
        .unwrap_or_else(|| panic!("no ':' in the second half of line {line}"));
    let mut out = raw.to_vec();
    out[at] ^= 0x01;
    out
}

fn lines_of(raw: &[u8]) -> usize {
    raw.iter().filter(|b| **b == b'\n').count()
}

#[test]
fn a_recording_with_a_flipped_byte_loses_that_interval_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = fixtures("lab", ".rec");
    assert!(!files.is_empty());
    for file in files {
        let raw = std::fs::read(&file).expect("fixture");
        let whole = Recording::read(&file).expect("the fixture reads");
        let line = lines_of(&raw) / 2 + 1;
        let bad = dir.path().join(file.file_name().expect("name"));
        std::fs::write(&bad, flip_in_line(&raw, line)).expect("write");

        let r = Recording::read(&bad).unwrap_or_else(|e| panic!("{}: {e}", bad.display()));
        let name = bad.display();
        assert_eq!(r.intervals.len(), whole.intervals.len() - 1, "{name}");
        assert!(r.end.is_some(), "{name}");
        assert_eq!(r.skipped.count, 1, "{name}");
        assert_eq!(r.skipped.lines[0].line, line as u64, "{name}");
        let analysis = serde_json::to_value(analyze(&r, &[])).expect("json");
        assert_eq!(analysis["skipped_lines"][0]["count"], 1, "{name}");
        assert_eq!(
            analysis["skipped_lines"][0]["lines"][0]["line"], line,
            "{name}"
        );
        let said = format!("{name}:{line}");
        assert!(
            analysis["limitations"]
                .as_array()
                .expect("limitations")
                .iter()
                .any(|l| l.as_str().is_some_and(|l| l.contains(&said))),
            "{name}: {}",
            analysis["limitations"]
        );
        let msg = Recording::read_with(&bad, true)
            .expect_err("--strict refuses it")
            .to_string();
        assert!(
            msg.starts_with(&format!("{said}: unreadable line")),
            "{msg}"
        );
    }
}

#[test]
fn a_recording_missing_one_interval_still_names_its_cause() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lab/cpu-saturated.rec");
    let raw = std::fs::read(&file).expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("cpu-saturated.rec");
    std::fs::write(&bad, flip_in_line(&raw, lines_of(&raw) / 2 + 1)).expect("write");
    let r = Recording::read(&bad).expect("reads");
    let expected = scenarios::find("cpu-saturated").expect("scenario").expected;
    assert_eq!(analyze(&r, &[]).verdict.kind, expected);
}

#[test]
fn a_corrupt_recording_header_is_fatal_and_names_the_file_and_line() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lab/cpu-saturated.rec");
    let raw = std::fs::read(&file).expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("cpu-saturated.rec");
    std::fs::write(&bad, flip_in_line(&raw, 1)).expect("write");
    let msg = Recording::read(&bad).expect_err("no header").to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:1: not a chokepoint recording header",
            bad.display()
        )),
        "{msg}"
    );
}

#[test]
fn a_k6_json_file_with_a_flipped_byte_loses_that_line_only() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/timeline/k6.json");
    let raw = std::fs::read(&file).expect("fixture");
    let whole = timeline::read_file(&file).expect("reads");
    // An http_reqs point past the middle (points of metrics not read are passed over unparsed:
    // a corrupt one costs nothing).
    let text = String::from_utf8_lossy(&raw);
    let line = text
        .lines()
        .enumerate()
        .skip(lines_of(&raw) / 2)
        .find(|(_, l)| l.starts_with("{\"metric\":\"http_reqs\""))
        .expect("an http_reqs point")
        .0
        + 1;
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("k6.json");
    std::fs::write(&bad, flip_in_line(&raw, line)).expect("write");

    let t = timeline::read_file(&bad).expect("reads what is whole");
    assert_eq!(t.requests, whole.requests - 1);
    assert_eq!(t.skipped_lines.count, 1);
    assert_eq!(t.skipped_lines.lines[0].line, line as u64);
    let json = serde_json::to_value(&t).expect("json");
    assert_eq!(json["skipped_lines"]["count"], 1);
    let said = format!("{}:{line}", bad.display());
    assert!(
        t.warnings.iter().any(|w| w.contains(&said)),
        "{:?}",
        t.warnings
    );
    let msg = timeline::read_file_with(&bad, true)
        .expect_err("--strict refuses it")
        .to_string();
    assert!(msg.starts_with(&format!("{said}: ")), "{msg}");
}

#[test]
fn a_csv_row_with_a_field_missing_costs_that_row_only() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/timeline/locust_stats_history.csv");
    let text = std::fs::read_to_string(&file).expect("fixture");
    let whole = timeline::read_file(&file).expect("reads");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    // A row other than the Aggregated ones the reader uses: one field fewer.
    let k = lines
        .iter()
        .position(|l| l.contains(",GET,") || (l.contains(',') && !l.contains("Aggregated")))
        .filter(|&k| k > 0)
        .unwrap_or(2);
    let cut = lines[k].rfind(',').expect("a comma");
    lines[k].truncate(cut);
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("locust_stats_history.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").expect("write");
    let t = timeline::read_file(&bad).expect("reads");
    assert_eq!(t.skipped_lines.count, 1);
    assert_eq!(t.skipped_lines.lines[0].line, k as u64 + 1);
    assert!(t.requests <= whole.requests);
    assert!(timeline::read_file_with(&bad, true).is_err());
}

/// serde_json's compact output with a space after every `:` and `,`, as Python's
/// `json.dumps` and `jq -c`-less tools write it.
struct Spaced;

impl serde_json::ser::Formatter for Spaced {
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
}

fn spaced(v: &serde_json::Value) -> String {
    let mut out = Vec::new();
    v.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, Spaced,
    ))
    .expect("serialise");
    String::from_utf8(out).expect("utf-8")
}

/// A timeline as JSON with its source left out (the reformatted copy lives elsewhere).
fn comparable(mut t: Timeline) -> serde_json::Value {
    t.source = PathBuf::new();
    t.skipped_lines.file = PathBuf::new();
    serde_json::to_value(&t).expect("json")
}

#[test]
fn every_json_fixture_reformatted_reads_to_the_same_timeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = fixtures("timeline", ".json");
    assert!(files.len() >= 8, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("fixture");
        let name = file.file_name().expect("name");
        let whole = comparable(timeline::read_file(&file).expect("the fixture reads"));
        // One JSON value per line (k6 --out json, vegeta encode) or one document.
        let values: Vec<serde_json::Value> = match serde_json::from_str(&text) {
            Ok(v) => vec![v],
            Err(_) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect(),
        };
        let mut variants = vec![(
            "spaced, keys sorted",
            values.iter().map(spaced).collect::<Vec<_>>().join("\n") + "\n",
        )];
        if values.len() == 1 {
            let pretty = serde_json::to_string_pretty(&values[0]).expect("pretty");
            variants.push(("pretty", pretty));
        }
        for (how, body) in variants {
            let copy = dir.path().join(name);
            std::fs::write(&copy, &body).expect("write");
            let t = timeline::read_file(&copy)
                .unwrap_or_else(|e| panic!("{} {how}: {e}", file.display()));
            assert_eq!(comparable(t), whole, "{} {how}", file.display());
        }
    }
}

#[test]
fn diff_and_report_skip_a_corrupt_line_and_refuse_it_under_strict() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lab/cpu-saturated.rec");
    let raw = std::fs::read(&file).expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("cpu-saturated.rec");
    let line = lines_of(&raw) / 2 + 1;
    std::fs::write(&bad, flip_in_line(&raw, line)).expect("write");
    let said = format!("{}:{line}: unreadable line", bad.display());
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chokepoint"))
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (bad_s, good_s) = (bad.to_str().expect("utf-8"), file.to_str().expect("utf-8"));

    let (code, stdout, stderr) = run(&["diff", good_s, bad_s, "--json", "-"]);
    assert_eq!(code, Some(0), "{stderr}");
    let d: serde_json::Value = serde_json::from_str(&stdout).expect("the diff's JSON");
    assert!(d.get("changed").is_some(), "{stdout}");
    let (code, _, stderr) = run(&["diff", good_s, bad_s, "--json", "-", "--strict"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&said), "{stderr}");

    let (code, stdout, stderr) = run(&["report", bad_s, "--md", "-"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("{}:{line}", bad.display())),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&["report", bad_s, "--md", "-", "--strict"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&said), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
}
