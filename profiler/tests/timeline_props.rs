//! Property tests: no reader panics or takes long on arbitrary bytes, on any prefix of a real
//! file, or on a real file with a span of it overwritten; errors always name the input and a
//! line that exists in it, and so do the lines a reader skipped.
use std::{io::Cursor, path::Path};

use chokepoint::timeline::{Format, TimelineError, read_as, read_from};
use proptest::prelude::*;

const FIXTURES: &[&str] = &[
    "k6.json",
    "k6.csv",
    "k6-summary.json",
    "k6-stdout.txt",
    "hey-c8.csv",
    "hey.txt",
    "wrk-latency.txt",
    "ab-gnuplot.tsv",
    "ab-percentiles.csv",
    "ab.txt",
    "vegeta.json",
    "vegeta.csv",
    "vegeta-report.json",
    "oha.json",
    "locust_stats_history.csv",
    "locust_stats.csv",
    "jmeter.jtl.csv",
    "jmeter.jtl.xml",
    "simulation.log",
    "pgbench-log.txt",
    "pgbench-aggregate.txt",
    "pgbench.txt",
    "siege.log",
    "siege.txt",
];

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/timeline")
        .join(name);
    std::fs::read(p).expect("fixture readable")
}

fn check(bytes: &[u8], result: Result<chokepoint::timeline::Timeline, TimelineError>) {
    let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    match result {
        Ok(t) => {
            let s = &t.skipped_lines;
            assert!(s.count <= lines && s.lines.iter().all(|l| (1..=lines).contains(&l.line)));
            assert!(t.errors <= t.requests.max(t.errors));
            assert!(t.duration_seconds.is_finite() && t.duration_seconds >= 0.0);
            for p in &t.points {
                assert!(p.start_s.is_finite() && p.seconds > 0.0 && p.throughput_per_s.is_finite());
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("input"), "{msg}");
            if let TimelineError::Parse { line, .. } = e {
                assert!(line <= lines, "line {line} of {lines}: {msg}");
            }
        }
    }
}

proptest! {
    // 64 cases keep the suite quick; PROPTEST_CASES=N searches harder.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), f in 0..Format::ALL.len()) {
        check(&bytes, read_from(Cursor::new(&bytes), Path::new("input")));
        check(&bytes, read_as(Cursor::new(&bytes), Path::new("input"), Format::ALL[f]));
    }

    #[test]
    fn every_prefix_of_a_real_file_reads_or_names_its_line(i in 0..FIXTURES.len(), frac in 0.0f64..1.0) {
        let raw = fixture(FIXTURES[i]);
        let cut = &raw[..(raw.len() as f64 * frac) as usize];
        check(cut, read_from(Cursor::new(cut), Path::new("input")));
    }

    #[test]
    fn overwritten_spans_never_panic(i in 0..FIXTURES.len(), at in 0.0f64..1.0, junk in proptest::collection::vec(any::<u8>(), 1..64)) {
        let mut raw = fixture(FIXTURES[i]);
        let start = ((raw.len() as f64 * at) as usize).min(raw.len().saturating_sub(1));
        for (k, b) in junk.iter().enumerate() {
            if let Some(x) = raw.get_mut(start + k) {
                *x = *b;
            }
        }
        check(&raw, read_from(Cursor::new(&raw), Path::new("input")));
        let f = Format::ALL[i % Format::ALL.len()];
        check(&raw, read_as(Cursor::new(&raw), Path::new("input"), f));
    }
}
