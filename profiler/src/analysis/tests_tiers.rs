//! The default tier's duty cycle: figures of probes attached one interval in five are
//! estimated from those intervals, the same as with every probe attached throughout.
use super::fixtures::{self, SEC};
use crate::recording::{Interval, SoftirqFigures};

/// 10 intervals with 100 ms of NET_RX softirq each; with `cycled`, the programs ran only in
/// intervals 0 and 5 (the others recorded nothing and say so).
fn softirq_run(cycled: bool) -> crate::recording::Recording {
    fixtures::steady(10, |i| {
        let mut iv: Interval = fixtures::interval(i, 0.5);
        if cycled && i % 5 != 0 {
            iv.detached = vec!["irq/softirq_entry".into(), "irq/softirq_exit".into()];
        } else {
            iv.softirqs.insert(
                "NET_RX".into(),
                SoftirqFigures {
                    ns: SEC / 10,
                    runs: 1000,
                },
            );
        }
        iv
    })
}

#[test]
fn softirq_time_per_vector_is_estimated_from_the_intervals_it_was_measured_in() {
    let all = super::analyze(&softirq_run(false), &[]);
    let cycled = super::analyze(&softirq_run(true), &[]);
    let rx = |a: &super::Analysis| a.host.softirq_by_vector["NET_RX"];
    // 0.1 s of 2 CPU-seconds per interval.
    assert!((rx(&all) - 0.05).abs() < 1e-9, "{}", rx(&all));
    assert!(
        (rx(&cycled) - rx(&all)).abs() < 1e-9,
        "duty-cycled {} vs all {}",
        rx(&cycled),
        rx(&all)
    );
}

/// `recording` as the default tier records it with the connection-use programs attached one
/// interval in five (the first, then 2, 7...): the other intervals carry no pool or inbound
/// rows and say why.
fn conn_use_cycled(mut recording: crate::recording::Recording) -> crate::recording::Recording {
    for (i, iv) in recording.intervals.iter_mut().enumerate() {
        if i != 0 && i % 5 != 2 {
            iv.pools.clear();
            iv.inbound.clear();
            iv.detached = vec![
                "sock/sock_send_length".into(),
                "sock/sock_recv_length".into(),
            ];
        }
    }
    recording
}

#[test]
fn pools_and_requests_in_flight_are_estimated_from_the_intervals_they_were_measured_in() {
    // A full pool (2 of 2 busy, 23 requests in flight at the bouncer) and one with room.
    for (size, in_use) in [(2, 1.92), (30, 21.0)] {
        let all = super::tests::pooled(size, in_use, 0, 0.1, 0.3);
        let cycled = conn_use_cycled(all.clone());
        let a = super::analyze(&all, &[]);
        let c = super::analyze(&cycled, &[]);
        assert_eq!(
            a.verdict.kind, c.verdict.kind,
            "size {size}: {:#?}",
            c.verdict.ruled_out
        );
        assert!((a.verdict.confidence - c.verdict.confidence).abs() < 1e-9);
        assert_eq!(a.pools.len(), c.pools.len());
        for (x, y) in a.pools.iter().zip(&c.pools) {
            assert_eq!(x.process, y.process);
            for (f, g) in [
                (x.size, y.size),
                (x.in_use, y.in_use),
                (x.queued, y.queued),
                (x.requests_per_s, y.requests_per_s),
                (x.inbound_concurrency, y.inbound_concurrency),
            ] {
                assert!((f - g).abs() < 1e-9, "{x:?} vs {y:?}");
            }
        }
        let inflight = |r: &crate::recording::Recording| {
            super::services::services(&r.intervals.iter().collect::<Vec<_>>())
                .into_iter()
                .map(|s| (s.name, s.inflight, s.upstream_inflight))
                .collect::<Vec<_>>()
        };
        for (x, y) in inflight(&all).into_iter().zip(inflight(&cycled)) {
            assert_eq!(x.0, y.0);
            assert!(
                (x.1 - y.1).abs() < 1e-9 && (x.2 - y.2).abs() < 1e-9,
                "{x:?} vs {y:?}"
            );
        }
        assert!(
            c.limitations
                .iter()
                .any(|l| l.contains("connection pools and requests in flight")),
            "{:?}",
            c.limitations
        );
    }
}

#[test]
fn a_window_without_a_measured_interval_says_pools_were_not_measured_not_absent() {
    // Connection use detached in every interval of the window (a run shorter than the duty
    // cycle's period, or a window between two samples).
    let mut r = super::tests::pooled(2, 1.92, 0, 0.1, 0.3);
    for iv in &mut r.intervals {
        iv.pools.clear();
        iv.inbound.clear();
        iv.detached = vec![
            "sock/sock_send_length".into(),
            "sock/sock_recv_length".into(),
        ];
    }
    let a = super::analyze(&r, &[]);
    assert_ne!(a.verdict.kind, super::VerdictKind::PoolSaturated);
    let why = a
        .verdict
        .ruled_out
        .iter()
        .find(|o| o.kind == super::VerdictKind::PoolSaturated)
        .expect("pool-saturated ruled out");
    assert!(
        why.reason
            .starts_with("not evaluated: connection use was not measured"),
        "{}",
        why.reason
    );
}

/// A writer blocked on disk 0.8 s a second, recorded by the default tier with the scheduler
/// programs attached only in `sampled` of 10 intervals.
fn io_waits_sampled_in(sampled: &[u32]) -> crate::recording::Recording {
    fixtures::steady(10, |i| {
        let mut iv = fixtures::interval(i, 0.2);
        let mut p = fixtures::process(100, "writer", crate::recording::Role::Other, &[0.1]);
        if sampled.contains(&i) {
            p.offcpu_io_ns = 800_000_000;
        } else {
            iv.detached = vec!["sched/sched_switch".into(), "sched/sched_waking".into()];
        }
        iv.processes.push(p);
        iv
    })
}

#[test]
fn a_window_between_two_samples_is_widened_to_the_nearest_not_read_as_no_wait() {
    // The steady-run window (intervals 1..=8) falls between the samples in 0 and 9: before,
    // the writer's waits read as none in it.
    let a = super::analyze(&io_waits_sampled_in(&[0, 9]), &[]);
    assert_eq!(
        a.verdict.kind,
        super::VerdictKind::IoBound,
        "{}",
        a.verdict.summary
    );
    assert_eq!(a.window.intervals, 9, "{}", a.window.reason);
    assert!(
        a.window
            .reason
            .contains("widened by 1 interval(s) to interval 9 (after it)"),
        "{}",
        a.window.reason
    );
    // With a sample inside it, the window is left as it is.
    let a = super::analyze(&io_waits_sampled_in(&[0, 4, 9]), &[]);
    assert_eq!(a.verdict.kind, super::VerdictKind::IoBound);
    assert_eq!(a.window.intervals, 8, "{}", a.window.reason);
    assert!(!a.window.reason.contains("widened"));
}
