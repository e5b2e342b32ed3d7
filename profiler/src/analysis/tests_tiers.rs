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
