//! The human summary over analyses of synthetic recordings: what a newcomer reads first, how
//! evidence is laid out, and how figures are printed.
use super::{render, table::width, verdict};
use crate::{
    analysis::{
        Analysis, Evidence, LatencySummary, LoadSummary, VerdictKind, analyze, fixtures::*,
    },
    recording::{Interval, Role},
};

/// Two nginx workers and wrk on a host `busy` (0..1): keep-alive, no connection opened.
fn server_pair(i: u32, busy: f64, worker_cores: f64) -> Interval {
    let mut iv = interval(i, busy);
    iv.processes
        .push(process(100, "nginx", Role::Server, &[worker_cores]));
    iv.processes
        .push(process(200, "nginx", Role::Server, &[worker_cores]));
    iv.processes
        .push(process(300, "wrk", Role::LoadGenerator, &[0.3]));
    iv
}

fn wrk(requests: u64, seconds: f64) -> LoadSummary {
    LoadSummary {
        format: "wrk-text".into(),
        source: "<wrk output>".into(),
        requests,
        errors: 0,
        duration_seconds: seconds,
        throughput_per_s: requests as f64 / seconds,
        latency_ms: None,
    }
}

/// A saturated host under a keep-alive wrk run of 6213 requests/s.
fn saturated() -> Analysis {
    let mut a = analyze(&steady(6, |i| server_pair(i, 0.97, 0.8)), &[]);
    assert_eq!(a.verdict.kind, VerdictKind::CpuSaturated, "{:?}", a.verdict);
    a.load.push(wrk(62_130, 10.0));
    a
}

/// A copy of one of the analysis's evidence rows under another name and value (built from an
/// existing row so that fields added to `Evidence` need no change here).
fn row(a: &Analysis, metric: &str, value: f64, unit: &str) -> Evidence {
    let mut e = a.verdict.evidence[0].clone();
    e.metric = metric.into();
    e.value = value;
    e.unit = unit.into();
    e.threshold = None;
    e.source = "test".into();
    e
}

/// The lines from the one starting with `title` up to the next section title (a line that
/// does not start with a space).
fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| !l.starts_with(title))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .collect()
}

/// The text with its wrapped lines joined: prose checks should not depend on where it broke.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Character column at which `needle` starts in `line`.
fn column(line: &str, needle: &str) -> Option<usize> {
    line.find(needle).map(|b| width(&line[..b]))
}

#[test]
fn the_first_line_is_the_verdict_with_the_load_generators_rate() {
    let a = saturated();
    let text = render(&a);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("CPU-saturated at 6.21k requests/s (wrk): host CPU 97% busy"),
        "{text}"
    );
    // Keep-alive: no connection was opened, and the summary does not say it ran at zero.
    assert!(!text.contains("0 connections/s"), "{text}");
    assert!(!text.contains("0 new connections/s"), "{text}");
    // The sentence may wrap; the verdict's name follows it.
    let kind = text
        .lines()
        .skip(1)
        .find(|l| !l.starts_with(' '))
        .unwrap_or_default();
    assert_eq!(
        kind,
        format!(
            "verdict: cpu-saturated (family: CPU, confidence {:.2}); 6 s recorded",
            a.verdict.confidence
        )
    );
}

#[test]
fn without_a_load_generator_the_rate_is_new_connections_and_only_once() {
    let mut a = analyze(
        &steady(6, |i| {
            let mut iv = server_pair(i, 0.97, 0.8);
            iv.tcp.active_opens = 1500;
            iv.tcp.passive_opens = 1500;
            iv
        }),
        &[],
    );
    assert_eq!(a.verdict.kind, VerdictKind::CpuSaturated);
    assert!(
        a.verdict.summary.ends_with("at 1500 new connections/s."),
        "{}",
        a.verdict.summary
    );
    let text = render(&a);
    assert_eq!(text.matches("connections/s").take(2).count(), 1, "{text}");
    let cpu_summary = a.verdict.summary.clone();
    // No load generator output, but its connections' path: their rate is the figure.
    a.verdict.summary = "Lock-contention: nginx hands work over.".into();
    a.paths = vec![
        serde_json::from_value(serde_json::json!({
            "client": "wrk[300]", "port": 80, "connections_per_s": 1234.0, "hops": [],
            "server": "nginx[100]", "text": "wrk → lo → nginx[100]"
        }))
        .expect("a path"),
    ];
    assert!(
        render(&a).starts_with("Lock-contention at 1.23k new connections/s: nginx hands"),
        "{}",
        render(&a)
    );
    // Connections outside any load path are no figure.
    a.paths.clear();
    assert!(render(&a).starts_with("Lock-contention: nginx"));
    // A load generator's rate comes first once there is one.
    a.verdict.summary = cpu_summary;
    a.load.push(LoadSummary {
        format: "pgbench-log".into(),
        ..wrk(3000, 2.0)
    });
    let first = render(&a).lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with("CPU-saturated at 1.5k transactions/s (pgbench):"),
        "{first}"
    );
}

#[test]
fn the_quoted_load_is_the_one_the_plateau_came_from_with_its_errors() {
    let mut a = saturated();
    a.load.insert(
        0,
        LoadSummary {
            format: "k6-json".into(),
            source: "/tmp/k6.json".into(),
            errors: 50,
            ..wrk(1000, 10.0)
        },
    );
    // A timeline without a duration has no rate to quote.
    a.load.push(wrk(5_000_000, 0.0));
    assert!(
        verdict::load_figure(&a).is_some_and(|f| f == "6.21k requests/s (wrk)"),
        "{:?}",
        verdict::load_figure(&a)
    );
    a.window.source = "load-plateau".into();
    a.window.reason = "/tmp/k6.json (k6-json): 4 intervals within 10% of the peak 110/s".into();
    assert_eq!(
        verdict::load_figure(&a).as_deref(),
        Some("100 requests/s (k6, 5% errors)")
    );
    let text = render(&a);
    assert!(
        flat(&text).contains(
            "window: 4 intervals (4 s of the 6 s recorded), the plateau of the load's timeline: /tmp/k6.json (k6-json): 4 intervals"
        ),
        "{text}"
    );
}

#[test]
fn family_and_window_are_words_not_rust() {
    let text = render(&saturated());
    assert!(text.contains("(family: CPU,"), "{text}");
    assert!(!text.contains("Cpu"), "{text}");
    assert!(!text.contains("..="), "{text}");
    // Six active intervals (1-6): the window drops the first and the last.
    assert!(
        flat(&text).contains(
            "window: intervals 2–5 (4 s of the 6 s recorded): the steady part of the run, active intervals 1–6 without the first and the last"
        ),
        "{text}"
    );
}

#[test]
fn the_deciding_evidence_comes_before_what_was_ruled_out_and_the_rest_after() {
    let a = saturated();
    let text = render(&a);
    let pos = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing:\n{text}"))
    };
    assert!(pos("evidence for cpu-saturated:") < pos("host.cpu_busy"));
    assert!(pos("host.cpu_busy") < pos("ruled out:"));
    assert!(pos("ruled out:") < pos("figures of the other candidates"));
    assert!(pos("figures of the other candidates") < pos("generator.cores"));
    assert!(pos("generator.cores") < pos("connections:"));
    let ruled = section(&text, "ruled out:");
    assert!(
        ruled
            .iter()
            .any(|l| l.starts_with("  load-generator-bound ")),
        "{text}"
    );
    // The threshold is in the unit the value is printed in.
    let busy = section(&text, "evidence for")
        .into_iter()
        .find(|l| l.contains("host.cpu_busy"))
        .unwrap_or_default();
    assert!(
        busy.contains(" 97  %") && busy.contains("  >= 90%  ") && busy.ends_with("  /proc/stat"),
        "{busy}"
    );
}

#[test]
fn zero_evidence_is_folded_into_one_line() {
    let a = saturated();
    let zeros: Vec<&str> = a
        .verdict
        .evidence
        .iter()
        .filter(|e| e.value == 0.0)
        .map(|e| e.metric.as_str())
        .collect();
    assert!(zeros.len() >= 5, "the fixture has zero rows: {zeros:?}");
    let text = render(&a);
    let other = section(&text, "figures of the other candidates");
    let folded: String = other
        .iter()
        .skip_while(|l| !l.trim_start().starts_with("also zero:"))
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(!folded.is_empty(), "no also-zero line:\n{text}");
    for z in &zeros {
        assert!(folded.contains(z), "{z} not folded:\n{text}");
        assert_eq!(text.matches(z).count(), 1, "{z} printed twice:\n{text}");
    }
    assert!(
        other.iter().all(|l| !l.contains(" 0  ")),
        "a zero row left:\n{text}"
    );
}

#[test]
fn columns_stay_aligned_with_a_sixty_character_name() {
    let mut a = saturated();
    let long = format!("process.{}[42].cores", "x".repeat(42));
    assert_eq!(width(&long), 60);
    let e = row(&a, &long, 1.25, "cores");
    a.verdict.evidence.insert(1, e);
    let text = render(&a);
    let rows = section(&text, "evidence for cpu-saturated:");
    let at = rows
        .iter()
        .position(|l| l.trim() == long)
        .unwrap_or_else(|| panic!("the long name is not on its own line:\n{text}"));
    let values = &rows[at + 1];
    assert!(
        values.trim_start().starts_with("1.25  cores"),
        "its values follow on the next line: {values}\n{text}"
    );
    let units: Vec<Option<usize>> = rows
        .iter()
        .filter(|l| l.trim() != long)
        .map(|l| column(l, "  %").or(column(l, "  cores")).map(|c| c + 2))
        .collect();
    assert!(units.len() >= 3, "{text}");
    assert!(
        units.windows(2).all(|w| w[0].is_some() && w[0] == w[1]),
        "unit columns {units:?}:\n{text}"
    );
    assert!(
        units[0].is_some_and(|c| c < 60),
        "the long name did not widen the column: {units:?}\n{text}"
    );
}

#[test]
fn figures_are_scaled_and_whole_counts_have_no_decimals() {
    let mut a = saturated();
    let big = row(&a, "conntrack.max", 262_144.0, "entries");
    a.verdict.evidence.push(big);
    let slow = row(&a, "service.nginx.oncpu_seconds", 0.00042, "s");
    a.verdict.evidence.push(slow);
    a.totals.time_wait_max = 2_723;
    a.totals.closes = 1_702_801;
    a.overhead.bpf_cpu_seconds = 0.32;
    a.overhead.events = 1_702_801;
    a.overhead.bpf_ns_per_event = Some(188.0);
    let text = render(&a);
    assert!(!text.contains(".000"), "{text}");
    assert!(!text.contains("262144"), "{text}");
    let figures = section(&text, "figures of the other candidates");
    assert!(
        figures
            .iter()
            .any(|l| l.contains("conntrack.max") && l.contains("262k  entries")),
        "{text}"
    );
    assert!(
        figures
            .iter()
            .any(|l| l.contains("service.nginx.oncpu_seconds") && l.contains("420  µs")),
        "{text}"
    );
    let text = flat(&text);
    assert!(text.contains("TIME_WAIT at most 2.72k"), "{text}");
    assert!(text.contains("closes 1.7M"), "{text}");
    assert!(
        text.contains("overhead: 320 ms in kernel programs (1.7M events, 188 ns per event)"),
        "{text}"
    );
}

#[test]
fn log2_quantiles_print_as_bucket_bounds() {
    let mut a = saturated();
    a.totals.connect_latency = LatencySummary {
        samples: 65,
        p50_ms: Some(1.4),
        p99_ms: Some(3.0),
        max_ms: Some(4.194_304),
    };
    a.processes[0].runqueue_us.p50_us = Some(25.0);
    a.processes[0].runqueue_us.p99_us = Some(1584.0);
    let first = format!("  {} {}", a.processes[0].pid, a.processes[0].comm);
    let text = render(&a);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("connect latency"))
        .unwrap_or_default();
    assert!(
        line.contains("p50 < 2.1 ms, p99 < 4.2 ms, max < 4.2 ms (65 connects timed, log2 buckets)"),
        "{text}"
    );
    let handshake = text
        .lines()
        .find(|l| l.trim_start().starts_with("handshake latency"))
        .unwrap_or_default();
    assert!(handshake.ends_with("no samples"), "{handshake}");
    // Run-queue quantiles come from the same kind of histogram.
    let table = section(&text, "cpu:");
    assert!(table.iter().any(|l| l.contains("run queue p50")), "{text}");
    let row = table
        .iter()
        .find(|l| flat(l).starts_with(first.trim()))
        .unwrap_or_else(|| panic!("no row {first:?}:\n{text}"));
    assert!(row.contains("< 32.8 µs  < 2.1 ms"), "{row}");
}

#[test]
fn a_not_saturated_run_lists_every_figure_checked() {
    let a = analyze(&steady(6, |i| server_pair(i, 0.50, 0.35)), &[]);
    assert_eq!(a.verdict.kind, VerdictKind::NotSaturated);
    let text = render(&a);
    assert!(
        text.starts_with("Not saturated: host CPU 50% busy"),
        "{text}"
    );
    assert!(
        flat(&text).contains("no new connections in the window"),
        "{text}"
    );
    assert!(
        text.contains("verdict: not-saturated (family: none,"),
        "{text}"
    );
    assert!(!text.contains("evidence for"), "{text}");
    let checked = section(&text, "figures checked");
    assert!(
        checked.iter().any(|l| l.contains("host.cpu_busy")),
        "{text}"
    );
}

#[test]
fn sampled_overhead_says_it_is_an_estimate_and_how_far_off() {
    let mut a = saturated();
    let plain = flat(&render(&a));
    assert!(!plain.contains("estimated"), "{plain}");
    a.overhead.estimate = Some(crate::analysis::Estimate {
        windows: 3,
        sampled_seconds: 3.0,
        measured_share: 0.095,
        relative_error: Some(0.106),
        ..Default::default()
    });
    let text = flat(&render(&a));
    assert!(
        text.contains("priced at the ns per run of 3 sampled statistics windows"),
        "{text}"
    );
    assert!(text.contains("±11%"), "{text}");
}

#[test]
fn a_churned_pool_shows_its_ceiling_not_its_sockets() {
    let mut a = saturated();
    a.pools = vec![crate::analysis::pools::PoolSummary {
        process: "haproxy".into(),
        upstream: "lab-server".into(),
        endpoint: "127.0.0.1:33071".into(),
        size: 345.0,
        in_use: 3.61,
        utilisation: 0.98,
        queued: 27.0,
        wait_ms_estimate: 79.4,
        requests_per_s: 340.0,
        inbound_concurrency: 31.8,
        inbound_per_s: 340.0,
        intervals: 7,
        churned: true,
        opens_per_s: 340.0,
        ceiling: 3.67,
        multiplexed: false,
    }];
    let text = render(&a);
    let row = text
        .lines()
        .find(|l| l.contains("haproxy") && l.contains("127.0.0.1:33071"))
        .expect("the pool's row");
    assert!(row.contains("3.7*"), "{row}");
    assert!(!row.contains("345"), "{row}");
    assert!(text.contains("a new connection per request"), "{text}");
}

#[test]
fn a_multiplexed_pool_marks_its_queue_as_none() {
    let mut a = saturated();
    a.pools = vec![crate::analysis::pools::PoolSummary {
        process: "haproxy".into(),
        upstream: "node".into(),
        endpoint: "127.0.0.1:35655".into(),
        size: 2.0,
        in_use: 1.96,
        utilisation: 0.98,
        queued: 4.7,
        wait_ms_estimate: 6.7,
        requests_per_s: 401.0,
        inbound_concurrency: 7.7,
        inbound_per_s: 700.0,
        intervals: 5,
        churned: false,
        opens_per_s: 0.0,
        ceiling: 1.96,
        multiplexed: true,
    }];
    let text = render(&a);
    let row = text
        .lines()
        .find(|l| l.contains("haproxy") && l.contains("127.0.0.1:35655"))
        .expect("the pool's row");
    assert!(row.contains("4.7+"), "{row}");
    assert!(text.contains("requests share connections"), "{text}");
}
