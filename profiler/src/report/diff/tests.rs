//! Diffs of the recorded lab fixtures: a run against itself, and a keep-alive run against a
//! connection-churn one.
use super::*;
use crate::report::fixture;

#[test]
fn a_recording_against_itself_has_not_changed() {
    for name in [
        "nginx-keepalive-cpu",
        "accept-overflow",
        "pool-too-small-http",
    ] {
        let a = fixture(name);
        let d = diff(&a, &a, ["a.rec", "a.rec"]);
        assert!(!d.changed, "{name}: {:?}", d.moved);
        assert!(d.moved.is_empty() && d.hops.is_empty() && d.pools.is_empty());
        assert!(!d.verdict.changed);
        let t = d
            .throughput
            .as_ref()
            .expect("a load generator's throughput");
        assert_eq!(t.change, 0.0);
        let json = serde_json::to_value(diff(&a, &a, ["a.rec", "a.rec"])).expect("json");
        assert_eq!(json["changed"], false);
        assert_eq!(json["verdict"]["before"], json["verdict"]["after"]);
        assert_eq!(json["moved"].as_array().map(Vec::len), Some(0));
        let md = markdown(&d);
        assert!(md.contains("Nothing moved beyond the noise floor"), "{md}");
    }
}

#[test]
fn keep_alive_against_churn_names_the_verdict_and_the_connection_rate() {
    let before = fixture("nginx-keepalive-cpu");
    let after = fixture("accept-overflow");
    let d = diff(&before, &after, ["keepalive.rec", "churn.rec"]);
    assert!(d.changed);
    let json = serde_json::to_value(&d).expect("json");
    assert_eq!(json["verdict"]["before"], "cpu-saturated");
    assert_eq!(json["verdict"]["after"], "connection-setup");
    let moved: Vec<&str> = d.moved.iter().map(|c| c.key.as_str()).collect();
    for key in [
        "tcp.passive_opens_per_s",
        "tcp.opens_per_s",
        "load.throughput_per_s",
    ] {
        assert!(moved.contains(&key), "{key} not in {moved:?}");
    }
    let opens = d
        .moved
        .iter()
        .find(|c| c.key == "tcp.opens_per_s")
        .expect("opens");
    assert!(opens.before == Some(0.0) && opens.after.is_some_and(|v| v > 400.0));
    // Largest relative change first.
    assert!(d.moved.windows(2).all(|w| w[0].score() >= w[1].score()));
    let md = markdown(&d);
    assert!(md.contains("`cpu-saturated` → `connection-setup`"), "{md}");
    assert!(md.contains("`tcp.opens_per_s`"), "{md}");
    assert!(md.contains("| throughput |"), "{md}");
}

#[test]
fn the_noise_floor_needs_both_a_relative_and_an_absolute_change() {
    assert!(!moved(100.0, 110.0, "1/s"), "10% is noise");
    assert!(moved(100.0, 120.0, "1/s"));
    assert!(
        !moved(0.0, 0.5, "1/s"),
        "half a connection per second is noise"
    );
    assert!(moved(0.0, 2.0, "1/s"));
    assert!(!moved(0.50, 0.51, "fraction"));
    assert!(moved(0.50, 0.60, "fraction"));
    assert!(!moved(1.0, 1.0, "cores"));
}

#[test]
fn pids_do_not_keep_two_runs_apart() {
    let a = fixture("nginx-keepalive-cpu");
    let mut b = a.clone();
    for e in &mut b.verdict.evidence {
        e.metric = e
            .metric
            .replace("[12017]", "[99]")
            .replace("[12019]", "[98]");
        for id in ["pid", "tid"] {
            if let Some(v) = e.labels.get_mut(id) {
                *v = format!("9{v}");
            }
        }
    }
    for p in &mut b.paths {
        p.client = p.client.replace("[12019]", "[98]");
    }
    assert!(!diff(&a, &b, ["a", "b"]).changed);
}

#[test]
fn evidence_names_carry_no_pid_and_name_with_labels_identify_a_row() {
    for name in [
        "nginx-keepalive-cpu",
        "lock-contention",
        "cpu-throttled",
        "bandwidth-limited-veth",
    ] {
        let a = fixture(name);
        let mut seen = std::collections::BTreeSet::new();
        for e in &a.verdict.evidence {
            assert!(!e.name.is_empty(), "{name}: {}", e.metric);
            assert!(
                !e.name.contains('[') && !e.name.bytes().any(|b| b.is_ascii_digit()),
                "{name}: {} -> {}",
                e.metric,
                e.name
            );
            assert!(
                seen.insert(crate::report::figures::key_of(&e.name, &e.labels)),
                "{name}: two rows are {} {:?}",
                e.name,
                e.labels
            );
        }
    }
}
