#![allow(clippy::unwrap_used)]
use std::path::{Path, PathBuf};

use super::*;
use crate::analysis::fixtures::{self, SEC};

fn lab(name: &str) -> Recording {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lab")
        .join(format!("{name}.rec"));
    Recording::read(&path).unwrap()
}

/// Opens per second that rise and fall (a ramp with a dip), as a load test's do.
fn varying(n: u32, hostname: &str) -> Recording {
    let mut r = fixtures::steady(n, |i| {
        let mut iv = fixtures::interval(i, 0.3);
        // A load that wanders without repeating (a linear congruential sequence).
        let mut x = 12345u64;
        for _ in 0..=i {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        iv.tcp.passive_opens = 100 + (x >> 33) % 900;
        iv
    });
    r.header.hostname = hostname.into();
    r
}

fn moved(mut r: Recording, seconds: f64) -> Recording {
    // A clock `seconds` ahead: every time reads later.
    shift(&mut r, -seconds);
    r
}

#[test]
fn a_clock_ahead_is_found_from_the_connections_both_hosts_count() {
    let a = varying(40, "gen");
    let b = moved(varying(40, "db"), 4.0);
    let c = estimate_offset(&a, &b);
    assert_eq!(c.seconds, 4.0, "{c:?}");
    assert!(c.method.contains("connection opens"), "{c:?}");
    assert!(c.correlation.unwrap() > 0.99);
    assert_eq!(c.uncertainty_seconds, Some(0.5));
    // Behind works the same way.
    let c = estimate_offset(&a, &moved(varying(40, "db"), -7.0));
    assert_eq!(c.seconds, -7.0, "{c:?}");
    // In step: 0.
    assert_eq!(estimate_offset(&a, &varying(40, "db")).seconds, 0.0);
}

/// Two daemons on one clock read their intervals at their own phase: one's midpoints at
/// x.99 s, the other's 20 ms later, at (x+1).01 s. The same signal, so the offset is 0, not
/// the 1 s that binning by whole seconds of each one's own midpoints made of it (CI, twice).
#[test]
fn hosts_whose_intervals_straddle_a_second_boundary_are_in_step() {
    // `varying` centres its intervals on x.5 s: 0.49 s later they are centred on x.99 s.
    let a = moved(varying(40, "gen"), 0.49);
    let b = moved(varying(40, "db"), 0.51);
    let c = estimate_offset(&a, &b);
    assert_eq!(c.seconds, 0.0, "{c:?}");
    assert!(c.correlation.unwrap() > 0.99, "{c:?}");
    // A real offset is still found whatever the phases.
    let c = estimate_offset(&a, &moved(varying(40, "db"), 3.51));
    assert_eq!(c.seconds, 3.0, "{c:?}");
}

#[test]
fn a_constant_rate_gives_no_offset_to_estimate_and_says_so() {
    let flat = |h: &str| {
        let mut r = fixtures::steady(20, |i| {
            let mut iv = fixtures::interval(i, 0.3);
            iv.tcp.passive_opens = 500;
            iv
        });
        r.header.hostname = h.into();
        r
    };
    let c = estimate_offset(&flat("a"), &moved(flat("b"), 3.0));
    assert_eq!(c.method, "assumed");
    assert_eq!(c.seconds, 0.0);
    assert!(c.reason.contains("no variation"), "{}", c.reason);
}

/// Keep-alive loads open their connections once, at the start: two such bursts line up at
/// any offset, so they are not taken as a clock signal.
#[test]
fn one_burst_of_opens_is_no_clock_signal() {
    let burst = |h: &str| {
        let mut r = fixtures::steady(20, |i| {
            let mut iv = fixtures::interval(i, 0.3);
            iv.tcp.passive_opens = if i == 1 { 64 } else { 0 };
            iv
        });
        r.header.hostname = h.into();
        r
    };
    let c = estimate_offset(&burst("a"), &moved(burst("b"), 8.0));
    assert_eq!(c.method, "assumed", "{c:?}");
}

#[test]
fn a_real_recording_on_a_clock_ahead_is_placed_back() {
    let a = lab("accept-overflow-hey");
    let b = moved(lab("accept-overflow-hey"), 3.0);
    let c = estimate_offset(&a, &b);
    assert_eq!(c.seconds, 3.0, "{c:?}");
    assert!(c.correlation.unwrap() > 0.9, "{c:?}");
}

fn verdict(kind: VerdictKind, family: Family, confidence: f64) -> Verdict {
    Verdict {
        kind,
        family,
        summary: format!("{} here", kind.as_str()),
        evidence: Vec::new(),
        ruled_out: Vec::new(),
        secondary: Vec::new(),
        confidence,
        missing: Vec::new(),
    }
}

#[test]
fn the_host_with_a_bottleneck_decides_and_the_others_are_ruled_out() {
    let v = merge_verdicts(&[
        (
            "gen".into(),
            verdict(VerdictKind::NotSaturated, Family::None, 0.8),
        ),
        (
            "db".into(),
            verdict(VerdictKind::LockContention, Family::Contention, 0.85),
        ),
    ]);
    assert_eq!(v.kind, VerdictKind::LockContention);
    assert!(v.summary.starts_with("on host db:"), "{}", v.summary);
    assert_eq!(v.ruled_out.len(), 1);
    assert!(v.ruled_out[0].reason.starts_with("host gen:"));
}

#[test]
fn two_hosts_with_bottlenecks_of_close_confidence_are_inconclusive() {
    let hosts = [
        (
            "a".to_string(),
            verdict(VerdictKind::CpuSaturated, Family::Cpu, 0.8),
        ),
        (
            "b".to_string(),
            verdict(VerdictKind::PoolSaturated, Family::Contention, 0.75),
        ),
    ];
    let v = merge_verdicts(&hosts);
    assert_eq!(v.kind, VerdictKind::Inconclusive);
    assert!(v.missing[0].contains("host a") && v.missing[0].contains("host b"));
    // One clearly ahead decides, the other is secondary.
    let mut hosts = hosts;
    hosts[1].1.confidence = 0.5;
    let v = merge_verdicts(&hosts);
    assert_eq!(v.kind, VerdictKind::CpuSaturated);
    assert_eq!(v.secondary, vec![VerdictKind::PoolSaturated]);
}

#[test]
fn no_host_with_a_bottleneck_is_not_saturated() {
    let v = merge_verdicts(&[
        (
            "a".into(),
            verdict(VerdictKind::NotSaturated, Family::None, 0.9),
        ),
        (
            "b".into(),
            verdict(VerdictKind::NotSaturated, Family::None, 0.7),
        ),
    ]);
    assert_eq!(v.kind, VerdictKind::NotSaturated);
    assert_eq!(v.confidence, 0.7);
    assert_eq!(v.ruled_out.len(), 2);
}

/// Two real lab recordings as two hosts: a CPU-saturated server and a database with idle
/// connections, put in the same minute. The whole names the saturated host, with its own
/// evidence, and rules out the other with that host's own verdict.
#[test]
fn two_real_hosts_give_one_verdict_naming_the_host() {
    let a = lab("cpu-saturated-hey");
    let alone = crate::analysis::analyze(&a, &[]).verdict;
    let mut b = lab("db-idle-connections");
    let to_a = (b.header.started_unix_ns as f64 - a.header.started_unix_ns as f64) / 1e9;
    shift(&mut b, to_a);
    b.header.hostname = "db-host".into();
    let b_alone = crate::analysis::analyze(&b, &[]).verdict;
    assert_eq!(b_alone.family, Family::None, "{b_alone:?}");
    let m = analyze_hosts(
        vec![
            (PathBuf::from("a.rec"), a.clone()),
            (PathBuf::from("b.rec"), b),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(m.hosts.len(), 2);
    assert_eq!(m.hosts[0].clock.method, "reference");
    assert_eq!(m.verdict.kind, alone.kind, "{}", render(&m));
    let name = &a.header.hostname;
    assert!(
        m.verdict.summary.starts_with(&format!("on host {name}")),
        "{}",
        m.verdict.summary
    );
    assert!(
        m.verdict
            .evidence
            .iter()
            .all(|e| e.labels.get("host") == Some(name))
    );
    assert!(
        m.verdict
            .ruled_out
            .iter()
            .any(|r| r.reason.starts_with("host db-host:")),
        "{:?}",
        m.verdict.ruled_out
    );
    let text = render(&m);
    assert!(text.contains("db-host"), "{text}");
    // Whatever the JSON gives back reads again.
    let json = serde_json::to_string(&m).unwrap();
    let back: MultiHost = serde_json::from_str(&json).unwrap();
    assert_eq!(back.verdict.kind, m.verdict.kind);
    assert_eq!(back.verdict.summary, m.verdict.summary);
    assert_eq!(back.hosts.len(), 2);
}

#[test]
fn recordings_that_do_not_overlap_are_refused_with_their_spans() {
    let a = varying(10, "a");
    let b = moved(varying(10, "b"), -1000.0);
    let err = analyze_hosts(
        vec![(PathBuf::from("a.rec"), a), (PathBuf::from("b.rec"), b)],
        &[],
    )
    .unwrap_err();
    assert!(err.contains("do not overlap"), "{err}");
    assert!(err.contains("b.rec covers"), "{err}");
}

#[test]
fn hosts_sharing_a_hostname_are_told_apart_by_file() {
    let names = host_names(&[
        (PathBuf::from("/x/ns1.rec"), varying(3, "box")),
        (PathBuf::from("/x/ns2.rec"), varying(3, "box")),
        (PathBuf::from("/x/gen.rec"), varying(3, "gen")),
    ]);
    assert_eq!(names, vec!["box/ns1", "box/ns2", "gen/gen"]);
    let names = host_names(&[
        (PathBuf::from("/a/test.rec"), varying(3, "box")),
        (PathBuf::from("/b/test.rec"), varying(3, "box")),
    ]);
    assert_eq!(names, vec!["box#1", "box#2"]);
    let names = host_names(&[
        (PathBuf::from("/a/test.rec"), varying(3, "gen")),
        (PathBuf::from("/b/test.rec"), varying(3, "db")),
    ]);
    assert_eq!(names, vec!["gen", "db"]);
    let _ = SEC;
}
