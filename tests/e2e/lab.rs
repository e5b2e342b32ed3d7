//! `chokepoint lab` end to end: the default scenarios, each a real server and a real load
//! generator under `chokepoint run`, must all get their designed verdict and leave nothing
//! behind. Needs root; run through `cargo xtask test`.
use std::{
    collections::BTreeSet,
    process::{Command, Stdio},
};

use chokepoint_tests::chokepoint_bin;
use serde_json::Value;

/// Temporary directories the lab creates (and must remove).
fn lab_dirs() -> BTreeSet<String> {
    std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir readable")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("chokepoint-lab-"))
        .collect()
}

/// Running processes named `lab-server` (the lab's own test server).
fn lab_servers() -> usize {
    std::fs::read_dir("/proc")
        .expect("/proc readable")
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_name().to_str()?.parse::<u32>().ok()?;
            std::fs::read_to_string(e.path().join("comm")).ok()
        })
        .filter(|c| c.trim() == "lab-server")
        .count()
}

/// Runs `chokepoint lab SCENARIO...` and checks the table, the JSON and the teardown.
fn lab_passes(scenarios: &[&str]) {
    let dirs_before = lab_dirs();
    let servers_before = lab_servers();
    let json = std::env::temp_dir().join(format!("chokepoint-e2e-lab-{}.json", std::process::id()));
    let out = Command::new(chokepoint_bin())
        .arg("lab")
        .args(scenarios)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .output()
        .expect("chokepoint lab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "lab failed:\n{stdout}\n{stderr}");

    let last = stdout.lines().last().expect("lab printed something");
    let counts: Vec<u64> = last
        .trim_start_matches("lab: ")
        .split(", ")
        .map(|part| {
            part.split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad summary line `{last}`"))
        })
        .collect();
    assert!(
        last.starts_with("lab: ") && last.contains(" passed, 0 failed"),
        "{last}"
    );
    assert!(counts[0] >= 1, "no scenario passed: {last}\n{stdout}");

    // The JSON agrees with the table, and every pass is a real match of kinds.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("lab wrote --json"))
            .expect("JSON");
    let _ = std::fs::remove_file(&json);
    let results = report["scenarios"].as_array().expect("scenarios");
    assert_eq!(report["passed"].as_u64(), Some(counts[0]));
    assert_eq!(report["failed"].as_u64(), Some(0));
    for s in results {
        match s["status"].as_str() {
            Some("passed") => assert_eq!(s["got"], s["expected"], "{s}"),
            Some("skipped") => assert!(
                s["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("not installed")),
                "{s}"
            ),
            other => panic!("unexpected status {other:?}: {s}"),
        }
    }

    // Torn down: no server left running, no temporary directory left behind.
    assert_eq!(
        lab_servers(),
        servers_before,
        "lab-server processes left running"
    );
    let left: Vec<String> = lab_dirs().difference(&dirs_before).cloned().collect();
    assert!(left.is_empty(), "temporary directories left: {left:?}");
}

#[test]
fn default_scenarios_get_their_designed_verdicts() {
    lab_passes(&[]);
}

/// Two of the CPU-truth stories outside the quick subset: PostgreSQL backends queueing on one
/// row's lock (lock-contention, not idleness), and a Go load generator pinned to one core
/// against nginx (load-generator-bound, not the server).
#[test]
fn row_lock_contention_and_a_pinned_generator_get_their_verdicts() {
    lab_passes(&["lock-contention", "generator-pinned-nginx"]);
}

/// The classic sweep to collapse: k6 steps from 1 to 32 virtual users against a one-worker
/// server. The verdict must name the saturated thread and come from the plateau chokepoint
/// found in k6's own timeline (the lab fails the scenario otherwise).
#[test]
fn a_concurrency_sweep_is_decided_on_k6s_plateau() {
    lab_passes(&["concurrency-sweep"]);
}

/// The WebSocket fan-out story and its control: two slow readers' full send buffers stall a
/// blocking broadcast to 16 k6 clients (network-bandwidth, delivery), and without them the
/// same fan-out keeps up (not-saturated).
#[test]
fn a_fanout_stalled_by_slow_readers_is_network_bound_and_its_control_is_not() {
    lab_passes(&["websocket-fanout", "websocket-fanout-keeping-up"]);
}

/// Mechanisms on third-party servers, each beside the control that looks like it and is not:
/// PostgreSQL backends queued on one advisory lock (lock-contention) and the same backends
/// waiting on timers (not-saturated); haproxy holding requests behind `maxconn 4` with a new
/// upstream connection per request (pool-saturated, a concurrency cap) and the same proxy with
/// room (not-saturated).
#[test]
fn locks_and_concurrency_caps_on_third_party_servers_and_their_controls() {
    lab_passes(&[
        "lock-contention-advisory",
        "db-timed-waits",
        "proxy-cap-haproxy",
        "proxy-room-haproxy",
    ]);
}

/// Servers reached directly across a bridge and a veth, by a namespace's or the bridge's own
/// address (no NAT): a shaper on the namespace side (nginx, hey), one on the host side in the
/// other direction (Node.js, ab inside the namespace), and a full shaper beside the path.
#[test]
fn shapers_on_paths_into_namespaces_reached_directly_and_one_beside_them() {
    lab_passes(&[
        "bandwidth-direct-netns",
        "bandwidth-netns-to-host",
        "shaper-beside-the-path",
    ]);
}

/// An upstream multiplexed over HTTP/2 (haproxy `proto h2` in front of Node.js): two busy
/// connections carry every request at once, no pool is full (not-saturated); and disk I/O as
/// the load itself: fio waiting on synchronous writes (io-bound) and the same writes paced far
/// below the disk (not-saturated).
#[test]
fn multiplexed_upstreams_and_disk_load_from_the_generator_itself() {
    lab_passes(&[
        "h2-upstream-room-haproxy",
        "disk-bound-fio",
        "disk-paced-fio",
    ]);
}
