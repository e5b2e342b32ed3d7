//! The timeline readers over files the real tools wrote (see fixtures/timeline/record.sh) and
//! fixtures written from the tools' documented formats. Expected figures are counted from the
//! files independently, or cross-checked between two formats of the same run.
use std::{
    fs,
    io::Cursor,
    path::{Path, PathBuf},
};

use chokepoint::timeline::{
    self, Clock, Format, Timeline, TimelineError, from_command, plateau, read_as, read_file,
    read_from, sweep,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/timeline")
        .join(name)
}

fn read(name: &str) -> Timeline {
    read_file(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn text(name: &str) -> String {
    fs::read_to_string(fixture(name)).expect("fixture readable")
}

#[test]
fn every_fixture_is_detected_as_its_format() {
    let cases = [
        ("k6.json", Format::K6Json),
        ("k6-ws.json", Format::K6Json),
        ("k6.csv", Format::K6Csv),
        ("k6-summary.json", Format::K6Summary),
        ("k6-handlesummary.json", Format::K6Summary),
        ("k6-stdout.txt", Format::K6Text),
        ("hey-c2.csv", Format::HeyCsv),
        ("hey.txt", Format::HeyText),
        ("wrk-latency.txt", Format::WrkText),
        ("wrk-errors.txt", Format::WrkText),
        ("ab-gnuplot.tsv", Format::AbTsv),
        ("ab-percentiles.csv", Format::AbCsv),
        ("ab.txt", Format::AbText),
        ("vegeta.json", Format::VegetaJson),
        ("vegeta.csv", Format::VegetaCsv),
        ("vegeta-report.json", Format::VegetaReport),
        ("oha.json", Format::OhaJson),
        ("locust_stats_history.csv", Format::LocustCsv),
        ("locust_stats.csv", Format::LocustStats),
        ("jmeter.jtl.csv", Format::JmeterCsv),
        ("jmeter.jtl.xml", Format::JmeterXml),
        ("simulation.log", Format::GatlingLog),
        ("pgbench-log.txt", Format::PgbenchLog),
        ("pgbench-aggregate.txt", Format::PgbenchAggregate),
        ("pgbench.txt", Format::PgbenchText),
        ("pgbench-progress.txt", Format::PgbenchText),
        ("siege.log", Format::SiegeLog),
        ("siege.txt", Format::SiegeText),
    ];
    for (name, format) in cases {
        let t = read(name);
        assert_eq!(t.format, format, "{name}");
        if !t.format.has_intervals() {
            assert!(t.points.is_empty(), "{name}");
        }
        // The name round-trips through serde as the stable kebab-case string.
        let json = serde_json::to_value(&t).expect("serialises");
        assert_eq!(json["format"], format.name(), "{name}");
        let back: Timeline = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back.requests, t.requests);
    }
}

/// Lines of a k6 JSON file that are points of `metric` and contain `needle`.
fn k6_points(text: &str, metric: &str, needle: &str) -> u64 {
    let prefix = format!("{{\"metric\":\"{metric}\",\"type\":\"Point\"");
    text.lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(needle))
        .count() as u64
}

/// A WebSocket test has no http_reqs, and its iterations are whole sessions (one per VU, at
/// the end): its requests are the messages received, spread over the run.
#[test]
fn k6_websocket_json_counts_messages_received() {
    let raw = text("k6-ws.json");
    let t = read("k6-ws.json");
    let messages = k6_points(&raw, "ws_msgs_received", "");
    assert!(messages > 50, "{messages}");
    assert_eq!(t.requests, messages);
    assert!(t.points.iter().filter(|p| p.requests > 0).count() >= 2);
    assert!(
        t.warnings.iter().any(|w| w.contains("ws_msgs_received")),
        "{:?}",
        t.warnings
    );
    // The script times each message itself (a k6 Trend of times): that is the latency.
    assert!(
        t.warnings
            .iter()
            .any(|w| w.contains("time trend delivery_ms")),
        "{:?}",
        t.warnings
    );
    let values: Vec<f64> = raw
        .lines()
        .filter(|l| l.starts_with(r#"{"metric":"delivery_ms","type":"Point""#))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON point");
            v["data"]["value"].as_f64().expect("a number")
        })
        .collect();
    assert!(values.len() > 50, "{}", values.len());
    let max = values.iter().copied().fold(0.0, f64::max);
    let latency = t.latency_ms.expect("latency from delivery_ms");
    // HDR histograms keep 3 significant digits; a 0 ms value is recorded as 1 µs.
    let got = latency.max.expect("a maximum");
    assert!(
        (got - max).abs() <= max * 0.01 + 0.002,
        "max {got} vs the file's {max}"
    );
    assert!(t.points.iter().any(|p| p.latency_ms.is_some()));
}

#[test]
fn k6_json_counts_match_the_file_and_every_other_k6_output() {
    let raw = text("k6.json");
    let t = read("k6.json");
    assert_eq!(t.requests, k6_points(&raw, "http_reqs", ""));
    let failed = k6_points(&raw, "http_reqs", "\"expected_response\":\"false\"");
    assert!(failed > 0, "the recording script makes /err requests");
    assert_eq!(t.errors, failed);
    assert_eq!(
        t.errors_by_kind.get("http-500"),
        Some(&k6_points(&raw, "http_reqs", "\"status\":\"500\""))
    );
    assert_eq!(t.clock, Clock::Absolute);
    assert_eq!(t.points.iter().map(|p| p.requests).sum::<u64>(), t.requests);
    // VUs ramp in this run: offered load is known per interval.
    let vus: Vec<f64> = t
        .points
        .iter()
        .filter_map(|p| p.offered.as_ref()?.concurrency)
        .collect();
    assert!(
        vus.iter().copied().fold(0.0, f64::max) > vus.iter().copied().fold(f64::INFINITY, f64::min)
    );
    for other in ["k6.csv", "k6-summary.json", "k6-stdout.txt"] {
        let o = read(other);
        assert_eq!((o.requests, o.errors), (t.requests, t.errors), "{other}");
    }
    let csv = read("k6.csv");
    let (a, b) = (
        t.latency_ms.and_then(|l| l.p50),
        csv.latency_ms.and_then(|l| l.p50),
    );
    assert_eq!(a, b, "same samples, same histogram");
}

#[test]
fn hey_csv_counts_rows_and_statuses() {
    for name in ["hey-c2.csv", "hey-c8.csv", "hey-c32.csv", "hey-errors.csv"] {
        let raw = text(name);
        let rows: Vec<&str> = raw.lines().skip(1).filter(|l| !l.is_empty()).collect();
        let t = read(name);
        assert_eq!(t.requests, rows.len() as u64, "{name}");
        let errors = rows
            .iter()
            .filter(|r| {
                r.split(',')
                    .nth(6)
                    .is_some_and(|s| s.starts_with('4') || s.starts_with('5'))
            })
            .count();
        assert_eq!(t.errors, errors as u64, "{name}");
        assert_eq!(t.clock, Clock::Offset);
        let max_rt = rows
            .iter()
            .filter_map(|r| r.split(',').next()?.parse::<f64>().ok())
            .fold(0.0, f64::max);
        let max = t.latency_ms.as_ref().and_then(|l| l.max).expect("latency");
        assert!(
            (max - max_rt * 1000.0).abs() <= max_rt * 1000.0 * 0.01 + 0.01,
            "{name}: {max} vs {max_rt}"
        );
    }
    assert!(read("hey-errors.csv").errors > 0);
}

#[test]
fn hey_text_totals_match_its_status_distribution() {
    let raw = text("hey.txt");
    let t = read("hey.txt");
    let responses: u64 = raw
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix('[')?
                .split_once(']')?
                .1
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(t.requests, responses);
    let rps: f64 = raw
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:")?.trim().parse().ok())
        .expect("rps");
    assert_eq!(t.throughput_per_s, rps);
}

#[test]
fn wrk_reads_requests_errors_and_connections() {
    let raw = text("wrk-latency.txt");
    let t = read("wrk-latency.txt");
    let count: u64 = raw
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ")?.0.parse().ok())
        .expect("count");
    assert_eq!(t.requests, count);
    assert_eq!(t.errors, 0);
    let conns: f64 = raw
        .lines()
        .find_map(|l| {
            l.split_once(" threads and ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("conns");
    assert_eq!(t.offered.as_ref().and_then(|o| o.concurrency), Some(conns));
    let l = t.latency_ms.expect("latency");
    assert!(l.p50 <= l.p90 && l.p90 <= l.p99, "{l:?}");
    let e = read("wrk-errors.txt");
    assert!(e.errors > 0 && e.errors <= e.requests);
}

#[test]
fn ab_summary_and_gnuplot_agree() {
    let tsv = read("ab-gnuplot.tsv");
    let sum = read("ab.txt");
    assert_eq!(tsv.requests, sum.requests);
    assert_eq!(
        tsv.requests,
        text("ab-gnuplot.tsv").lines().count() as u64 - 1
    );
    assert_eq!(sum.offered.as_ref().and_then(|o| o.concurrency), Some(8.0));
    let errs = read("ab-errors.txt");
    assert_eq!(errs.errors, errs.requests, "every /err request is a 500");
    let pct = read("ab-percentiles.csv");
    assert!(
        pct.latency_ms.as_ref().and_then(|l| l.p50) <= pct.latency_ms.as_ref().and_then(|l| l.max)
    );
}

#[test]
fn pgbench_log_progress_and_summary() {
    let log = read("pgbench-log.txt");
    assert_eq!(log.requests, text("pgbench-log.txt").lines().count() as u64);
    let agg = read("pgbench-aggregate.txt");
    let agg_total: u64 = text("pgbench-aggregate.txt")
        .lines()
        .filter_map(|l| l.split(' ').nth(1)?.parse::<u64>().ok())
        .sum();
    assert_eq!(agg.requests, agg_total);
    let summary = read("pgbench.txt");
    let progress = read("pgbench-progress.txt");
    // Progress lines round tps x seconds; the summary counts exactly. Same run: within 1%.
    let (a, b) = (summary.requests as f64, progress.requests as f64);
    assert!((a - b).abs() / a < 0.01, "{a} vs {b}");
    assert_eq!(
        progress.points.len(),
        text("pgbench-progress.txt")
            .lines()
            .filter(|l| l.starts_with("progress:"))
            .count()
    );
    assert_eq!(
        summary.offered.as_ref().and_then(|o| o.concurrency),
        Some(2.0)
    );
}

#[test]
fn siege_log_rows_form_a_sweep_and_the_summary_reads() {
    let t = read("siege.log");
    let rows = text("siege.log").lines().skip(1).count();
    assert_eq!(t.points.len(), rows);
    let s = sweep(std::slice::from_ref(&t)).expect("three runs at three concurrencies");
    assert_eq!(s.points.len(), rows);
    assert!(s.usl.is_some());
    let sum = read("siege.txt");
    assert!(sum.requests > 0 && sum.duration_seconds > 0.0);
}

#[test]
fn locust_history_totals_match_the_stats_table() {
    let h = read("locust_stats_history.csv");
    let s = read("locust_stats.csv");
    assert_eq!((h.requests, h.errors), (s.requests, s.errors));
    assert_eq!(h.points.iter().map(|p| p.requests).sum::<u64>(), h.requests);
    assert!(
        h.points
            .iter()
            .all(|p| p.offered.as_ref().and_then(|o| o.concurrency).is_some())
    );
}

#[test]
fn vegeta_json_csv_and_report_agree() {
    let j = read("vegeta.json");
    let c = read("vegeta.csv");
    let r = read("vegeta-report.json");
    assert_eq!((j.requests, j.errors), (c.requests, c.errors));
    assert_eq!(j.requests, r.requests);
    assert_eq!(j.errors_by_kind.get("timeout"), Some(&1));
    assert_eq!(
        j.errors_by_kind.get("http-503"),
        r.errors_by_kind.get("http-503")
    );
}

#[test]
fn jmeter_csv_and_xml_agree_and_gatling_reads() {
    let c = read("jmeter.jtl.csv");
    let x = read("jmeter.jtl.xml");
    assert_eq!((c.requests, c.errors), (x.requests, x.errors));
    assert_eq!(
        c.requests,
        text("jmeter.jtl.csv").lines().count() as u64 - 1
    );
    assert_eq!(c.points.len(), x.points.len());
    let g = read("simulation.log");
    let raw = text("simulation.log");
    assert_eq!(
        g.requests,
        raw.lines().filter(|l| l.starts_with("REQUEST")).count() as u64
    );
    assert_eq!(
        g.errors,
        raw.lines()
            .filter(|l| l.starts_with("REQUEST") && l.contains("\tKO\t"))
            .count() as u64
    );
}

#[test]
fn oha_reads_status_and_error_distributions() {
    let t = read("oha.json");
    let v: serde_json::Value = serde_json::from_str(&text("oha.json")).expect("json");
    let codes: u64 = v["statusCodeDistribution"]
        .as_object()
        .expect("codes")
        .values()
        .filter_map(|n| n.as_u64())
        .sum();
    let errs: u64 = v["errorDistribution"]
        .as_object()
        .expect("errors")
        .values()
        .filter_map(|n| n.as_u64())
        .sum();
    assert_eq!(t.requests, codes + errs);
}

#[test]
fn oha_errors_are_counted_by_status() {
    let t = read("oha-errors.json");
    let v: serde_json::Value = serde_json::from_str(&text("oha-errors.json")).expect("json");
    let failed = v["statusCodeDistribution"]["500"].as_u64().expect("500s");
    assert!(failed > 0);
    assert_eq!(t.errors, failed);
    assert_eq!(t.errors_by_kind.get("http-500"), Some(&failed));
}

// ---- bad input ----

fn err_of(bytes: &[u8]) -> TimelineError {
    match read_from(Cursor::new(bytes), Path::new("input.txt")) {
        Ok(t) => panic!("expected an error, read {} as {}", t.requests, t.format),
        Err(e) => e,
    }
}

fn read_bytes(bytes: &[u8]) -> Timeline {
    read_from(Cursor::new(bytes), Path::new("input.txt")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_truncated_last_line_is_skipped_with_a_warning_even_under_strict() {
    for name in [
        "k6.json",
        "hey-c8.csv",
        "ab-gnuplot.tsv",
        "pgbench-log.txt",
        "vegeta.json",
        "simulation.log",
    ] {
        let raw = fs::read(fixture(name)).expect("fixture");
        // Cut line 10 (a data line in every one of these files) inside its first fields.
        let starts: Vec<usize> = std::iter::once(0)
            .chain(
                raw.iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        let cut = starts[9] + ((starts[10] - starts[9]) / 2).min(12);
        let t = read_bytes(&raw[..cut]);
        let s = &t.skipped_lines;
        assert_eq!(s.count, 1, "{name}: {s:?}");
        assert!(
            s.lines[0].line == 10 && s.lines[0].truncated,
            "{name}: {s:?}"
        );
        assert!(
            t.warnings
                .iter()
                .any(|w| w.starts_with("input.txt:10: last line is truncated")),
            "{name}: {:?}",
            t.warnings
        );
        t.strict()
            .unwrap_or_else(|e| panic!("{name}: strict refused a cut last line: {e}"));
    }
}

#[test]
fn a_foreign_line_in_the_middle_costs_that_line_and_strict_names_it() {
    let raw = text("hey-c2.csv");
    let whole = read_bytes(raw.as_bytes());
    let mut lines: Vec<&str> = raw.lines().collect();
    lines.insert(20, "{\"metric\":\"http_reqs\",\"type\":\"Point\"}");
    let t = read_bytes(lines.join("\n").as_bytes());
    assert_eq!(t.requests, whole.requests);
    assert_eq!(t.skipped_lines.count, 1);
    assert_eq!(t.skipped_lines.lines[0].line, 21);
    assert!(
        t.warnings.iter().any(|w| w.contains("input.txt:21:")),
        "{:?}",
        t.warnings
    );
    let msg = t.strict().expect_err("--strict refuses it").to_string();
    assert!(
        msg.contains("input.txt:21:") && msg.contains("hey -o csv"),
        "{msg}"
    );
}

#[test]
fn garbage_lists_the_known_formats_and_empty_says_so() {
    let msg = err_of(b"lorem ipsum dolor sit amet\nconsectetur\n").to_string();
    for f in Format::ALL {
        assert!(msg.contains(f.name()), "{msg} lacks {f}");
    }
    assert!(matches!(err_of(b"  \n\n"), TimelineError::Empty { .. }));
    let missing = read_file(Path::new("/nonexistent/k6.json")).expect_err("no such file");
    assert!(missing.to_string().contains("/nonexistent/k6.json"));
}

#[test]
fn a_clock_far_from_the_recording_is_flagged_and_an_offset_fixes_it() {
    let t = read("k6.json");
    let (a, b) = t.span_unix_s().expect("absolute clock");
    assert!(t.clock_skew_warning(a - 1.0, b + 1.0).is_none());
    let w = t
        .clock_skew_warning(a + 3600.0, b + 3600.0)
        .expect("an hour apart");
    assert!(w.contains("k6.json") && w.contains("--clock-offset"), "{w}");
    let shifted = timeline::read_file_with_offset(&fixture("k6.json"), 3600.0).expect("reads");
    assert!(shifted.clock_skew_warning(a + 3600.0, b + 3600.0).is_none());
}

#[test]
fn offset_only_timelines_are_anchored_where_run_started() {
    let mut t = read("hey-c8.csv");
    assert!(t.span_unix_s().is_none());
    let first = t.points[0].start_s;
    t.anchor(1_700_000_000_000_000_000);
    assert_eq!(t.clock, Clock::Anchored);
    assert!((t.points[0].start_s - (1_700_000_000.0 + first)).abs() < 1e-6);
    let mut abs = read("k6.json");
    let before = abs.points[0].start_s;
    abs.anchor(1);
    assert_eq!(
        abs.points[0].start_s, before,
        "absolute clocks are not moved"
    );
}

#[test]
fn from_command_reads_the_printed_summary_and_the_files_named_in_argv() {
    let argv = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let start = 1_700_000_000_000_000_000;
    let hey = from_command(
        &argv("hey -n 600 -c 8 -o csv http://x/"),
        text("hey-c8.csv").as_bytes(),
        start,
    );
    let t = hey
        .into_iter()
        .next()
        .expect("one timeline")
        .expect("reads");
    assert_eq!((t.format, t.clock), (Format::HeyCsv, Clock::Anchored));
    assert_eq!(t.offered.as_ref().and_then(|o| o.concurrency), Some(8.0));
    let json = fixture("k6.json");
    let cmd = format!("k6 run --out json={} script.js", json.display());
    let k6 = from_command(&argv(&cmd), text("k6-stdout.txt").as_bytes(), start);
    let formats: Vec<Format> = k6
        .iter()
        .map(|r| r.as_ref().expect("reads").format)
        .collect();
    assert_eq!(formats, vec![Format::K6Text, Format::K6Json]);
    let wrk = from_command(
        &argv("timeout 10 wrk -c20 -d2s http://x/"),
        text("wrk-latency.txt").as_bytes(),
        start,
    );
    assert_eq!(wrk.len(), 1);
    assert!(
        wrk[0]
            .as_ref()
            .is_ok_and(|t| t.start_unix_s == Some(1_700_000_000.0))
    );
    let bad = from_command(
        &argv("ab -n 10 http://x/"),
        b"apr_socket_connect(): Connection refused (111)\n",
        start,
    );
    assert!(
        bad[0]
            .as_ref()
            .is_err_and(|e| e.to_string().contains("ab summary"))
    );
}

#[test]
fn a_sweep_of_hey_runs_gives_levels_and_a_window() {
    // Three hey runs placed one after another, as a sweep script would run them.
    let mut runs = Vec::new();
    for (i, (name, c)) in [
        ("hey-c2.csv", 2.0),
        ("hey-c8.csv", 8.0),
        ("hey-c32.csv", 32.0),
    ]
    .iter()
    .enumerate()
    {
        let raw = text(name);
        let argv = vec![
            "hey".to_string(),
            "-c".into(),
            format!("{c}"),
            "-o".into(),
            "csv".into(),
            "http://x/".into(),
        ];
        let mut t = from_command(
            &argv,
            raw.as_bytes(),
            (1_700_000_000 + 10 * i as u64) * 1_000_000_000,
        )
        .remove(0)
        .expect("reads");
        assert_eq!(t.offered.as_ref().and_then(|o| o.concurrency), Some(*c));
        t.source = fixture(name);
        runs.push(t);
    }
    let s = sweep(&runs).expect("a sweep");
    let cs: Vec<f64> = s.points.iter().map(|p| p.concurrency).collect();
    assert_eq!(cs, vec![2.0, 8.0, 32.0]);
    let u = s.usl.as_ref().expect("fit");
    assert!(u.r2.is_finite() && (0.0..=1.0).contains(&u.sigma));
    let w = plateau(&runs).expect("a window");
    let best = runs.iter().map(|t| t.throughput_per_s).fold(0.0, f64::max);
    assert!(w.throughput_per_s <= best * 1.0001);
    assert!(
        w.start_unix_s >= 1_700_000_000.0 && w.end_unix_s <= 1_700_000_031.0,
        "{w:?}"
    );
}

#[test]
fn read_as_checks_the_format_it_was_told() {
    let e = read_as(
        Cursor::new(text("k6.json")),
        Path::new("k6.json"),
        Format::HeyCsv,
    )
    .expect_err("not hey");
    assert!(e.to_string().contains("k6.json:1:"), "{e}");
}

#[test]
fn a_closing_brace_before_the_opening_one_is_not_a_siege_json_object() {
    // Found by the property test: `}` ... `{` once sliced the text backwards and panicked.
    let input = "} Transactions: 12 hits\n{ garbage";
    let e = read_as(
        Cursor::new(input.as_bytes()),
        Path::new("siege.txt"),
        Format::SiegeText,
    );
    match e {
        Ok(t) => assert_eq!(t.requests, 12),
        Err(e) => assert!(e.to_string().starts_with("siege.txt"), "{e}"),
    }
}
