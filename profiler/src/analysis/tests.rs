//! Each attribution rule on both sides of its threshold, over synthetic recordings.
use super::{VerdictKind, analyze, fixtures::*};
use crate::recording::Role;

fn kind(r: &crate::recording::Recording) -> VerdictKind {
    analyze(r, &[]).verdict.kind
}

fn server_pair(i: u32, busy: f64, worker_cores: f64) -> crate::recording::Interval {
    let mut iv = interval(i, busy);
    iv.processes
        .push(process(100, "nginx", Role::Server, &[worker_cores]));
    iv.processes
        .push(process(200, "nginx", Role::Server, &[worker_cores]));
    iv.processes
        .push(process(300, "wrk", Role::LoadGenerator, &[0.3]));
    iv
}

#[test]
fn busy_host_is_cpu_saturated_and_a_quiet_one_is_not() {
    assert_eq!(
        kind(&steady(6, |i| server_pair(i, 0.97, 0.8))),
        VerdictKind::CpuSaturated
    );
    let quiet = analyze(&steady(6, |i| server_pair(i, 0.50, 0.35)), &[]);
    assert_eq!(quiet.verdict.kind, VerdictKind::NotSaturated);
    let ruled: Vec<_> = quiet.verdict.ruled_out.iter().map(|r| r.kind).collect();
    assert!(ruled.contains(&VerdictKind::CpuSaturated), "{ruled:?}");
    assert!(
        quiet
            .verdict
            .evidence
            .iter()
            .any(|e| e.metric == "host.cpu_busy" && e.value == 0.5)
    );
}

#[test]
fn setup_failures_above_one_percent_are_connection_setup() {
    let with = |syn: u64| {
        steady(6, move |i| {
            let mut iv = server_pair(i, 0.4, 0.2);
            iv.tcp.active_opens = 1000;
            iv.tcp.passive_opens = 1000;
            iv.tcp.syn_retransmits = syn;
            iv
        })
    };
    assert_eq!(kind(&with(30)), VerdictKind::ConnectionSetup);
    assert_eq!(
        kind(&with(5)),
        VerdictKind::NotSaturated,
        "0.5% is below the 1% threshold"
    );
}

#[test]
fn one_pegged_thread_with_spare_cores_is_single_thread_saturated() {
    let r = steady(6, |i| {
        let mut iv = interval(i, 0.6);
        iv.processes
            .push(process(100, "app", Role::Server, &[0.97, 0.05]));
        iv.processes
            .push(process(300, "hey", Role::LoadGenerator, &[0.1, 0.1]));
        iv
    });
    assert_eq!(kind(&r), VerdictKind::SingleThreadSaturated);
    let r = steady(6, |i| {
        let mut iv = interval(i, 0.6);
        iv.processes
            .push(process(100, "app", Role::Server, &[0.85, 0.05]));
        iv
    });
    assert_eq!(
        kind(&r),
        VerdictKind::NotSaturated,
        "85% of a core is below the rule"
    );
}

#[test]
fn a_generator_eating_the_host_is_generator_bound_not_cpu() {
    let r = steady(6, |i| {
        let mut iv = interval(i, 0.97);
        iv.processes
            .push(process(300, "hey", Role::LoadGenerator, &[0.7, 0.7]));
        iv.processes.push(process(100, "app", Role::Server, &[0.4]));
        iv
    });
    let a = analyze(&r, &[]);
    assert_eq!(a.verdict.kind, VerdictKind::LoadGeneratorBound);
    assert!(a.verdict.secondary.contains(&VerdictKind::CpuSaturated));
    // The server eating the host instead: CPU-saturated, generator ruled out.
    let r = steady(6, |i| {
        let mut iv = interval(i, 0.97);
        iv.processes
            .push(process(300, "hey", Role::LoadGenerator, &[0.2]));
        iv.processes
            .push(process(100, "app", Role::Server, &[0.9, 0.8]));
        iv
    });
    let a = analyze(&r, &[]);
    assert_eq!(a.verdict.kind, VerdictKind::CpuSaturated);
    assert!(
        a.verdict
            .ruled_out
            .iter()
            .any(|r| r.kind == VerdictKind::LoadGeneratorBound)
    );
}

/// A PostgreSQL-like service: `threads` backends, `inflight` requests in flight at it, and per
/// second `on_siblings` threads' worth of off-CPU time ended by its own backends, `timed` in
/// timed sleeps ended by timers, the rest of the off-CPU time ended by the clients.
fn backends(threads: u32, inflight: f64, on_siblings: f64, timed: f64) -> Recording {
    steady(6, move |i| {
        let mut iv = interval(i, 0.3);
        for n in 0..threads {
            let mut p = process(100 + n, "postgres", Role::Server, &[0.01]);
            p.ppid = Some(99);
            p.offcpu_sleep_ns = 900_000_000;
            iv.processes.push(p);
        }
        iv.processes
            .push(process(300, "pgbench", Role::LoadGenerator, &[0.1]));
        iv.inbound.push(crate::recording::InboundRow {
            pid: 100,
            comm: "postgres".into(),
            port: 5432,
            connections: threads,
            concurrency: inflight,
            requests_per_s: 500.0,
        });
        let total = u64::from(threads) * 900_000_000;
        let sibling_ns = (on_siblings * 1e9) as u64;
        let timed_ns = (timed * 1e9) as u64;
        iv.processes[0]
            .offcpu_reason_ns
            .insert("sleep".into(), timed_ns);
        for (waker, ns) in [
            ("postgres", sibling_ns),
            ("idle", timed_ns),
            ("pgbench", total.saturating_sub(sibling_ns + timed_ns)),
        ] {
            iv.wake_totals.push(crate::recording::WakeTotal {
                wakee_pid: 101,
                waker_comm: waker.into(),
                wakes: 500,
                offcpu_ns: ns,
            });
        }
        iv
    })
}

#[test]
fn work_waiting_on_the_services_own_threads_is_lock_contention() {
    // 16 requests in flight, a core's sliver busy, 14 backends blocked until another backend
    // wakes them: the work is serialised.
    let a = analyze(&backends(17, 16.0, 14.0, 0.0), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::LockContention,
        "{}",
        a.verdict.summary
    );
    let held = a
        .verdict
        .evidence
        .iter()
        .find(|e| e.metric == "service.postgres.threads_blocked_on_own_with_work")
        .expect("evidence");
    assert!((held.value - 13.0).abs() < 1e-6, "{held:?}");
}

#[test]
fn sibling_wakes_of_idle_workers_or_timed_waits_are_not_lock_contention() {
    // The same in-flight work waiting on timers (pg_sleep): timed sleeps explain it.
    let a = analyze(&backends(17, 16.0, 1.0, 15.0), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::NotSaturated,
        "{}",
        a.verdict.summary
    );
    let why = a
        .verdict
        .ruled_out
        .iter()
        .find(|r| r.kind == VerdictKind::LockContention)
        .expect("ruled out");
    assert!(why.reason.contains("timed sleeps"), "{}", why.reason);
    // An idle pool: 64 workers parked, 4 requests in flight, the dispatcher (a sibling) waking
    // the idle ones: all of the sibling-ended waiting is idle workers'.
    let a = analyze(&backends(64, 4.0, 58.0, 0.0), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::NotSaturated,
        "{}",
        a.verdict.summary
    );
    // Light load: nothing waits.
    let a = analyze(&backends(17, 0.5, 14.0, 0.0), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::NotSaturated,
        "{}",
        a.verdict.summary
    );
}

/// `backends` with the waits on siblings ended by `wakers` of the service's threads (tids 100..)
/// in the given shares, from thread pairs.
fn backends_woken_by(shares: &[f64]) -> Recording {
    let mut r = backends(17, 16.0, 14.0, 0.0);
    for iv in &mut r.intervals {
        for (n, share) in shares.iter().enumerate() {
            let waker = 100 + n as u32;
            iv.thread_wakes.push(crate::recording::ThreadWakeRow {
                waker_pid: waker,
                waker_tid: waker,
                wakee_pid: 116,
                wakee_tid: 116,
                wakes: 100,
                offcpu_ns: (share * 14e9) as u64,
            });
        }
    }
    r
}

#[test]
fn waits_on_one_thread_handing_out_work_are_not_lock_contention() {
    // The same waiting work and waits on its own threads, ended by four holders in turn: a
    // lock passed along.
    let chain = analyze(&backends_woken_by(&[0.25, 0.25, 0.25, 0.25]), &[]);
    assert_eq!(
        chain.verdict.kind,
        VerdictKind::LockContention,
        "{}",
        chain.verdict.summary
    );
    // Two holders alternating still pass it along.
    let pair = analyze(&backends_woken_by(&[0.5, 0.5]), &[]);
    assert_eq!(pair.verdict.kind, VerdictKind::LockContention);
    // One thread ending 97% of them: an event loop posting tasks, a dispatcher's queue.
    let one = analyze(&backends_woken_by(&[0.97, 0.03]), &[]);
    assert_ne!(
        one.verdict.kind,
        VerdictKind::LockContention,
        "{}",
        one.verdict.summary
    );
    let why = one
        .verdict
        .ruled_out
        .iter()
        .find(|r| r.kind == VerdictKind::LockContention)
        .expect("ruled out");
    assert!(
        why.reason.contains("one thread (100) ends 97%"),
        "{}",
        why.reason
    );
}

#[test]
fn uninterruptible_waits_dominating_are_io_bound() {
    let r = steady(6, |i| {
        let mut iv = interval(i, 0.2);
        let mut p = process(100, "writer", Role::Other, &[0.1]);
        p.offcpu_io_ns = 800_000_000;
        iv.processes.push(p);
        iv
    });
    assert_eq!(kind(&r), VerdictKind::IoBound);
}

#[test]
fn a_confined_generator_that_waits_for_its_cpu_is_generator_bound() {
    // hey pinned to one CPU it shares with nginx: 0.84 of it used, and runnable but waiting
    // `runq` threads more on average.
    let pinned = |runq: f64| {
        steady(6, move |i| {
            let mut iv = interval(i, 0.85);
            let mut hey = process(300, "hey", Role::LoadGenerator, &[0.84]);
            hey.capacity_cores = Some(1.0);
            hey.runq_ns = (runq * 1e9) as u64;
            iv.processes.push(hey);
            iv.processes
                .push(process(100, "nginx", Role::Server, &[0.4, 0.4]));
            iv
        })
    };
    let v = analyze(&pinned(0.3), &[]).verdict;
    assert_eq!(v.kind, VerdictKind::LoadGeneratorBound, "{}", v.summary);
    assert!(
        v.summary.contains("waits runnable 0.30 threads"),
        "{}",
        v.summary
    );
    // Not waiting for its CPU: it has what it wants, 84% is not the generator's limit.
    let v = analyze(&pinned(0.0), &[]).verdict;
    assert_ne!(v.kind, VerdictKind::LoadGeneratorBound, "{}", v.summary);
}

#[test]
fn one_synchronous_writer_half_in_disk_waits_is_io_bound_when_the_host_stalls_on_io() {
    // dd with O_DSYNC on a fast disk: 0.45 threads in D against 0.35 on CPU.
    let writer = |io_full_us: Option<u64>| {
        steady(6, move |i| {
            let mut iv = interval(i, 0.3);
            let mut p = process(100, "dd", Role::Other, &[0.35]);
            p.offcpu_io_ns = 450_000_000;
            iv.processes.push(p);
            if let (Some(us), Some(h)) = (io_full_us, iv.host.as_mut()) {
                let stall = |stall_us| crate::recording::PressureStall {
                    avg10_percent: 0.0,
                    stall_us,
                };
                h.pressure = Some(crate::recording::PressureInterval {
                    cpu: None,
                    io: Some(crate::recording::PressureResource {
                        some: stall(us + 100_000),
                        full: Some(stall(us)),
                    }),
                    memory: None,
                });
            }
            iv
        })
    };
    // Every runnable task stalled on I/O 30% of the time: the disk holds the host's work.
    assert_eq!(kind(&writer(Some(300_000))), VerdictKind::IoBound);
    // Without the stall accounting, or with the host rarely stalled, half a thread is short.
    assert_ne!(kind(&writer(None)), VerdictKind::IoBound);
    assert_ne!(kind(&writer(Some(50_000))), VerdictKind::IoBound);
}

#[test]
fn no_intervals_or_no_probes_is_inconclusive_with_what_is_missing() {
    let a = analyze(&recording(Vec::new()), &[]);
    assert_eq!(a.verdict.kind, VerdictKind::Inconclusive);
    assert!(!a.verdict.missing.is_empty());
    let mut r = steady(3, |i| interval(i, 0.99));
    r.header.probes.attached.clear();
    assert_eq!(kind(&r), VerdictKind::Inconclusive);
}

#[test]
fn cpu_only_recording_still_decides_cpu_without_the_tcp_probe() {
    let mut r = steady(6, |i| server_pair(i, 0.95, 0.9));
    r.header.probes.attached.retain(|p| p.starts_with("sched/"));
    assert_eq!(kind(&r), VerdictKind::CpuSaturated);
}

#[test]
fn the_window_skips_ramp_up_and_tear_down() {
    // Busy only in the middle; first and last intervals idle.
    let r = steady(7, |i| {
        server_pair(i, if (1..6).contains(&i) { 0.95 } else { 0.05 }, 0.8)
    });
    let a = analyze(&r, &[]);
    assert_eq!(a.window.source, "steady-run");
    assert_eq!(a.window.intervals, 5);
    assert_eq!(a.verdict.kind, VerdictKind::CpuSaturated);
}

fn throttle(
    pids: &[u32],
    periods: u64,
    throttled: u64,
    held_ns: u64,
) -> crate::recording::CgroupThrottle {
    serde_json::from_value(serde_json::json!({
        "cgroup": "/lab", "version": "v1", "pids": pids, "elapsed_seconds": 1.0,
        "nr_periods": periods, "nr_throttled": throttled, "throttled_time_ns": held_ns,
        "usage_ns": 300_000_000u64, "quota_cores": 0.3, "quota_cgroup": "/lab", "errors": []
    }))
    .expect("a CgroupThrottle")
}

#[test]
fn a_workload_held_off_by_its_quota_is_cpu_throttled() {
    let with = |throttled: u64, held_ns: u64| {
        steady(6, move |i| {
            let mut iv = interval(i, 0.25);
            iv.processes.push(process(100, "app", Role::Server, &[0.3]));
            iv.cgroups.push(throttle(&[100], 10, throttled, held_ns));
            iv
        })
    };
    let a = analyze(&with(8, 600_000_000), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::CpuThrottled,
        "{}",
        a.verdict.summary
    );
    assert!(
        a.verdict
            .evidence
            .iter()
            .any(|e| e.metric.ends_with("throttled_periods_share") && e.value == 0.8)
    );
    assert_eq!(
        kind(&with(1, 10_000_000)),
        VerdictKind::NotSaturated,
        "10% of periods is below the rule"
    );
}

#[test]
fn a_generator_pinned_to_one_core_is_bound_by_that_core() {
    let r = steady(6, |i| {
        let mut iv = interval(i, 0.55);
        let mut g = process(300, "wrk", Role::LoadGenerator, &[0.5, 0.48]);
        g.capacity_cores = Some(1.0);
        g.capacity_limited_by = Some(crate::recording::LimitedBy::Affinity);
        iv.processes.push(g);
        iv.processes
            .push(process(100, "nginx", Role::Server, &[0.1]));
        iv
    });
    let a = analyze(&r, &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::LoadGeneratorBound,
        "{}",
        a.verdict.summary
    );
    // Without the affinity limit the same generator has room on a 2-CPU host.
    let r = steady(6, |i| {
        let mut iv = interval(i, 0.55);
        iv.processes
            .push(process(300, "wrk", Role::LoadGenerator, &[0.5, 0.48]));
        iv.processes
            .push(process(100, "nginx", Role::Server, &[0.1]));
        iv
    });
    assert_eq!(kind(&r), VerdictKind::NotSaturated);
}

#[test]
fn pressure_stall_time_becomes_a_share_of_the_window_and_cpu_evidence() {
    use crate::recording::{PressureInterval, PressureResource, PressureStall};
    let stall = |us| PressureResource {
        some: PressureStall {
            avg10_percent: 0.0,
            stall_us: us,
        },
        full: Some(PressureStall {
            avg10_percent: 0.0,
            stall_us: us / 2,
        }),
    };
    let r = steady(4, |i| {
        let mut iv = server_pair(i, 0.97, 0.8);
        if let Some(h) = iv.host.as_mut() {
            h.pressure = Some(PressureInterval {
                cpu: Some(stall(400_000)),
                io: Some(stall(100_000)),
                memory: None,
            });
        }
        iv
    });
    let a = analyze(&r, &[]);
    let p = a.host.pressure.as_ref().expect("PSI summarised");
    assert!((p.cpu_some - 0.4).abs() < 1e-9, "{p:?}");
    assert!((p.io_full - 0.05).abs() < 1e-9, "{p:?}");
    assert_eq!(p.memory_some, 0.0);
    assert!(
        a.verdict
            .evidence
            .iter()
            .any(|e| e.metric == "host.pressure.cpu_some" && (e.value - 0.4).abs() < 1e-9),
        "{:?}",
        a.verdict.evidence
    );
    let none = analyze(&steady(4, |i| server_pair(i, 0.97, 0.8)), &[]);
    assert!(none.host.pressure.is_none(), "no PSI, no figures");
}

#[test]
fn a_full_conntrack_table_dropping_connections_is_connection_setup() {
    let with = |count: u64, drops: u64| {
        steady(6, move |i| {
            let mut iv = server_pair(i, 0.3, 0.1);
            iv.tcp.active_opens = 1000;
            iv.tcp.passive_opens = 1000;
            iv.conntrack = Some(conntrack(count, 256, drops, drops, 0));
            iv
        })
    };
    let full = analyze(&with(256, 20), &[]);
    assert_eq!(full.verdict.kind, VerdictKind::ConnectionSetup);
    assert!(
        full.verdict.summary.contains("conntrack table 256/256"),
        "{}",
        full.verdict.summary
    );
    let failures = full
        .verdict
        .evidence
        .iter()
        .find(|e| e.metric == "conntrack.failures")
        .expect("conntrack evidence");
    assert_eq!(failures.value, full.window.intervals as f64 * 40.0);
    // The same failures with a half-empty table are something else (not the table's size).
    assert_eq!(kind(&with(100, 20)), VerdictKind::NotSaturated);
    // A full table that drops nothing is not a bottleneck.
    assert_eq!(kind(&with(256, 0)), VerdictKind::NotSaturated);
}

#[test]
fn a_shaper_at_its_rate_with_queueing_is_network_bandwidth() {
    let with = |bytes: u64, overlimits: u64| {
        steady(6, move |i| {
            let mut iv = server_pair(i, 0.2, 0.05);
            iv.qdiscs
                .push(shaper("cpvh1", 125_000, bytes, 0, overlimits, 3));
            iv
        })
    };
    let limited = analyze(&with(123_000, 400), &[]);
    assert_eq!(limited.verdict.kind, VerdictKind::NetworkBandwidth);
    assert!(
        limited.verdict.summary.contains("cpvh1"),
        "{}",
        limited.verdict.summary
    );
    let used = limited
        .verdict
        .evidence
        .iter()
        .find(|e| e.metric.ends_with(".used"))
        .expect("utilisation evidence");
    assert!((used.value - 0.984).abs() < 1e-9, "{used:?}");
    // A busy host at the same time (other work) does not hide the full shaper.
    let busy = steady(6, |i| {
        let mut iv = server_pair(i, 0.97, 0.8);
        iv.qdiscs
            .push(shaper("cpvh1", 125_000, 124_000, 10, 400, 3));
        iv
    });
    let busy = analyze(&busy, &[]);
    assert_eq!(busy.verdict.kind, VerdictKind::NetworkBandwidth);
    assert!(busy.verdict.secondary.contains(&VerdictKind::CpuSaturated));
    // Half the rate: the shaper is not what limits.
    let half = analyze(&with(60_000, 400), &[]);
    assert_eq!(half.verdict.kind, VerdictKind::NotSaturated);
    assert!(
        half.verdict
            .ruled_out
            .iter()
            .any(|r| r.kind == VerdictKind::NetworkBandwidth)
    );
    // No shaper at all: ruled out, saying so.
    let none = analyze(&steady(6, |i| server_pair(i, 0.2, 0.05)), &[]);
    let why = none
        .verdict
        .ruled_out
        .iter()
        .find(|r| r.kind == VerdictKind::NetworkBandwidth)
        .expect("ruled out");
    assert!(
        why.reason.contains("no rate-limiting qdisc"),
        "{}",
        why.reason
    );
}

/// A fan-out server (one process) whose sockets on port 9000 were held back `held` of their
/// busy time (two sockets' worth of busy time a second) with `full` full send buffers, its
/// threads blocked `blocked_ms` per second in socket writes, the host `busy`.
fn fanout(held: f64, full: u64, blocked_ms: u64, busy: f64) -> crate::recording::Recording {
    fanout_busy(held, full, blocked_ms, busy, 2_000_000)
}

fn fanout_busy(
    held: f64,
    full: u64,
    blocked_ms: u64,
    busy: f64,
    busy_us: u64,
) -> crate::recording::Recording {
    steady(6, move |i| {
        let mut iv = interval(i, busy);
        let mut server = process(100, "lab-fanout", Role::Server, &[0.05]);
        server.offcpu_sleep_ns = 950_000_000;
        server
            .offcpu_reason_ns
            .insert("write".into(), blocked_ms * 1_000_000);
        iv.processes.push(server);
        iv.processes
            .push(process(300, "k6", Role::LoadGenerator, &[0.1]));
        iv.send_limits.push(crate::recording::SendLimit {
            port: 9000,
            owner: Some("lab-fanout".into()),
            sockets: 18,
            full_send_buffers: full,
            busy_us,
            rwnd_limited_us: (busy_us as f64 * held) as u64,
            sndbuf_limited_us: 0,
        });
        iv
    })
}

#[test]
fn sends_held_back_by_receivers_while_the_server_blocks_in_writes_are_network_bound() {
    let stalled = analyze(&fanout(0.9, 2, 900, 0.1), &[]);
    assert_eq!(stalled.verdict.kind, VerdictKind::NetworkBandwidth);
    assert!(
        stalled.verdict.summary.contains("delivery") && stalled.verdict.summary.contains("9000"),
        "{}",
        stalled.verdict.summary
    );
    let share = stalled
        .verdict
        .evidence
        .iter()
        .find(|e| e.metric == "send_limits.9000.limited_share")
        .expect("limited share evidence");
    assert!((share.value - 0.9).abs() < 1e-6, "{share:?}");
    // A full buffer is a snapshot (sock_diag once an interval) and may be missed: sockets
    // held back by their receivers for 1.8 s/s of the window show the same, continuously.
    let unseen = analyze(&fanout(0.9, 0, 900, 0.1), &[]).verdict;
    assert_eq!(
        unseen.kind,
        VerdictKind::NetworkBandwidth,
        "{}",
        unseen.summary
    );
    // Each condition on its other side: receivers keeping up, no full buffer seen and sockets
    // held back 0.18 s/s (none held back for half the window), a server that is not waiting
    // in writes, a saturated CPU (slow receivers are then starved receivers).
    for (r, why) in [
        (fanout(0.3, 2, 900, 0.1), "held back 30%"),
        (
            fanout_busy(0.9, 0, 900, 0.1, 200_000),
            "no full send buffer, held back 0.18 s/s",
        ),
        (fanout(0.9, 2, 200, 0.1), "0.2 s/s blocked in writes"),
        (fanout(0.9, 2, 900, 0.97), "CPUs busy"),
    ] {
        let v = analyze(&r, &[]).verdict;
        assert_ne!(
            v.kind,
            VerdictKind::NetworkBandwidth,
            "{why}: {}",
            v.summary
        );
        if v.kind != VerdictKind::CpuSaturated {
            let reason = &v
                .ruled_out
                .iter()
                .find(|o| o.kind == VerdictKind::NetworkBandwidth)
                .expect("network ruled out")
                .reason;
            assert!(reason.contains("port 9000"), "{why}: {reason}");
        }
    }
}

/// pgbench -> pgbouncer -> postgres: `size` upstream connections with `in_use` busy, 24
/// clients in flight at pgbouncer; postgres workers woken by `sibling` wake-ups of each other.
pub(super) fn pooled(
    size: u32,
    in_use: f64,
    sibling: u64,
    postgres_cores: f64,
    busy: f64,
) -> Recording {
    steady(6, move |i| {
        let mut iv = interval(i, busy);
        iv.processes
            .push(process(50, "pgbouncer", Role::Server, &[0.2]));
        for pid in [100, 101] {
            let mut p = process(pid, "postgres", Role::Server, &[postgres_cores / 2.0]);
            p.offcpu_sleep_ns = 900_000_000;
            iv.processes.push(p);
        }
        iv.processes
            .push(process(300, "pgbench", Role::LoadGenerator, &[0.1]));
        iv.wakes
            .push(wake((101, "postgres"), (100, "postgres"), sibling));
        iv.wakes
            .push(wake((50, "pgbouncer"), (100, "postgres"), 300));
        // The pool's two server connections keep two requests in flight at postgres; with
        // contended row locks one backend waits on the other most of the time.
        iv.inbound.push(crate::recording::InboundRow {
            pid: 100,
            comm: "postgres".into(),
            port: 5432,
            connections: 2,
            concurrency: in_use,
            requests_per_s: 370.0,
        });
        if sibling > 0 {
            iv.wake_totals.push(crate::recording::WakeTotal {
                wakee_pid: 100,
                waker_comm: "postgres".into(),
                wakes: sibling,
                offcpu_ns: 1_500_000_000,
            });
        }
        iv.pools
            .push(pool("pgbouncer", "postgres", size, in_use, 23.0, 370.0));
        // pgbench's own connections to pgbouncer: all busy, nothing behind them.
        iv.pools
            .push(pool("pgbench", "pgbouncer", 24, 23.5, 0.0, 0.0));
        iv
    })
}

use crate::recording::Recording;

#[test]
fn a_full_pool_with_requests_queued_is_pool_saturated() {
    let a = analyze(&pooled(2, 1.92, 0, 0.1, 0.3), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::PoolSaturated,
        "{:?}",
        a.verdict
    );
    assert_eq!(a.verdict.family, super::Family::Contention);
    let queued = a
        .verdict
        .evidence
        .iter()
        .find(|e| e.metric == "pool.pgbouncer->postgres.queued")
        .expect("queued evidence");
    // pgbouncer's 23 requests in flight less the 1.92 its pool carries and the 0.2 on its CPU.
    assert!(
        (queued.value - (23.0 - 1.92 - 0.2)).abs() < 1e-6,
        "{queued:?}"
    );
    assert!(
        a.verdict
            .ruled_out
            .iter()
            .any(|r| r.kind == VerdictKind::LockContention)
    );
    // The JSON summary: the bouncer's pool first (most queued), pgbench's after it.
    assert_eq!(a.pools[0].process, "pgbouncer");
    assert!((a.pools[0].size - 2.0).abs() < 1e-9);
    assert!(a.pools[0].wait_ms_estimate > 50.0);
    assert_eq!(a.pools[1].queued, 0.0);
}

#[test]
fn a_slow_upstream_with_free_slots_is_not_pool_saturated() {
    let a = analyze(&pooled(30, 21.0, 0, 0.1, 0.3), &[]);
    assert_eq!(a.verdict.kind, VerdictKind::NotSaturated);
    let why = a
        .verdict
        .ruled_out
        .iter()
        .find(|r| r.kind == VerdictKind::PoolSaturated)
        .expect("pool ruled out");
    assert!(why.reason.contains("free slots"), "{}", why.reason);
}

#[test]
fn a_full_pool_in_front_of_contended_row_locks_is_lock_contention() {
    let a = analyze(&pooled(2, 1.95, 2000, 0.1, 0.3), &[]);
    assert_eq!(a.verdict.kind, VerdictKind::LockContention);
    let why = a
        .verdict
        .ruled_out
        .iter()
        .find(|r| r.kind == VerdictKind::PoolSaturated)
        .expect("pool ruled out");
    assert!(why.reason.contains("locks"), "{}", why.reason);
}

#[test]
fn a_full_pool_in_front_of_a_cpu_bound_upstream_is_cpu_saturated() {
    let a = analyze(&pooled(2, 1.95, 0, 1.9, 0.97), &[]);
    assert_eq!(a.verdict.kind, VerdictKind::CpuSaturated);
    assert!(!a.verdict.secondary.contains(&VerdictKind::PoolSaturated));
    let why = a
        .verdict
        .ruled_out
        .iter()
        .find(|r| r.kind == VerdictKind::PoolSaturated)
        .expect("pool ruled out");
    assert!(why.reason.contains("its CPU"), "{}", why.reason);
    // A host busy with something else: the pool still queues, and is said to.
    let a = analyze(&pooled(2, 1.95, 0, 0.1, 0.97), &[]);
    assert_eq!(a.verdict.kind, VerdictKind::CpuSaturated);
    assert!(a.verdict.secondary.contains(&VerdictKind::PoolSaturated));
}

#[test]
fn without_the_send_and_receive_probes_pools_are_not_evaluated() {
    let mut r = pooled(2, 1.92, 0, 0.1, 0.3);
    r.header
        .probes
        .attached
        .retain(|p| !p.starts_with("sock/sock_"));
    let a = analyze(&r, &[]);
    assert_ne!(a.verdict.kind, VerdictKind::PoolSaturated);
    assert!(
        a.verdict
            .ruled_out
            .iter()
            .any(|o| o.kind == VerdictKind::PoolSaturated && o.reason.starts_with("not evaluated"))
    );
}

#[test]
fn a_full_pool_in_front_of_an_upstream_held_by_its_quota_is_not_pool_saturated() {
    // postgres may use half a core (its cgroup quota) and uses 0.48 of it.
    let mut r = pooled(2, 1.95, 0, 0.48, 0.3);
    for iv in &mut r.intervals {
        for p in iv.processes.iter_mut().filter(|p| p.comm == "postgres") {
            p.capacity_cores = Some(0.5);
            p.capacity_limited_by = Some(crate::recording::LimitedBy::CgroupQuota);
        }
    }
    let a = analyze(&r, &[]);
    assert_ne!(a.verdict.kind, VerdictKind::PoolSaturated);
    assert!(
        a.verdict
            .ruled_out
            .iter()
            .any(|o| o.kind == VerdictKind::PoolSaturated && o.reason.contains("0.5 cores"))
    );
    // The same upstream without a quota leaves the pool as the limit.
    assert_eq!(
        kind(&pooled(2, 1.95, 0, 0.48, 0.3)),
        VerdictKind::PoolSaturated
    );
}

#[test]
fn a_load_file_the_command_already_named_is_one_timeline() {
    use crate::{
        recording::End,
        timeline::{Format, Timeline},
    };
    let k6 = std::path::Path::new("k6.json");
    let mut r = steady(3, |i| interval(i, 0.5));
    r.end = Some(End {
        ended_unix_ns: 0,
        reason: "command-exited".into(),
        exit_code: Some(0),
        exit_signal: None,
        load: vec![Timeline::empty(Format::K6Json, k6)],
        load_errors: Vec::new(),
        pids_reused: 0,
    });
    let other = std::path::Path::new("hey.csv");
    let extra = [
        Timeline::empty(Format::K6Json, k6),
        Timeline::empty(Format::HeyCsv, other),
    ];
    let a = analyze(&r, &extra);
    let sources: Vec<&str> = a.load.iter().map(|l| l.source.as_str()).collect();
    assert_eq!(sources, ["k6.json", "hey.csv"]);
}

#[test]
fn each_hot_thread_names_the_threads_that_woke_it_and_the_waits_they_ended() {
    use crate::recording::ThreadWakeRow;
    let r = steady(3, |i| {
        let mut iv = interval(i, 0.3);
        iv.processes.push(process(
            100,
            "contend",
            Role::LoadGenerator,
            &[0.2, 0.1, 0.1],
        ));
        let row = |waker: (u32, u32), wakee: u32, wakes: u64, off_ms: u64| ThreadWakeRow {
            waker_pid: waker.0,
            waker_tid: waker.1,
            wakee_pid: 100,
            wakee_tid: wakee,
            wakes,
            offcpu_ns: off_ms * 1_000_000,
        };
        iv.thread_wakes = vec![
            row((100, 101), 100, 400, 300),
            row((100, 102), 100, 100, 50),
            row((0, 0), 100, 10, 5),
            row((100, 100), 101, 250, 200),
        ];
        iv
    });
    let all: Vec<_> = r.intervals.iter().collect();
    let p = super::summary::processes(&all, 0.0)
        .into_iter()
        .find(|p| p.pid == 100)
        .expect("the process");
    let main = p.threads.iter().find(|t| t.tid == 100).expect("thread 100");
    let first = &main.woken_by[0];
    assert_eq!((first.tid, first.pid, first.wakes), (101, 100, 1200));
    assert_eq!(first.relation, "self");
    assert!((first.offcpu_seconds - 0.9).abs() < 1e-9);
    assert_eq!(main.woken_by[1].tid, 102);
    assert_eq!(main.woken_by[2].relation, "idle");
    let second = p.threads.iter().find(|t| t.tid == 101).expect("thread 101");
    assert_eq!(second.woken_by[0].tid, 100);
}

#[test]
fn overhead_sums_programs_and_user_space_stages_over_intervals() {
    let mut a = interval(0, 0.5);
    a.overhead.bpf_run_ns = 300_000_000;
    a.overhead.bpf_runs = 1_000_000;
    a.overhead.user_cpu_ns = 40_000_000;
    a.overhead.stages.insert("send_limits".into(), 10_000_000);
    a.overhead.stages.insert("host".into(), 2_000_000);
    let mut b = interval(1, 0.5);
    b.overhead.bpf_run_ns = 100_000_000;
    b.overhead.bpf_runs = 1_000_000;
    b.overhead.user_cpu_ns = 20_000_000;
    b.overhead.stages.insert("send_limits".into(), 6_000_000);
    let o = super::summary::overhead(&[a, b], 2, 2.0);
    assert_eq!(o.events, 2_000_000);
    assert_eq!(o.bpf_ns_per_event, Some(200.0));
    assert!(
        (o.stages["send_limits"] - 0.016).abs() < 1e-12,
        "{:?}",
        o.stages
    );
    assert!((o.stages["host"] - 0.002).abs() < 1e-12);
    // (0.4 s + 0.06 s) over 2 CPUs x 2 s.
    assert!((o.cpu_share_of_host - 0.115).abs() < 1e-12);
}

#[test]
fn thresholds_read_as_a_comparison_and_a_number() {
    use super::{Op, Threshold};
    let t = |s| Threshold::parse(s);
    assert_eq!(
        t(">= 0.90"),
        Some(Threshold {
            op: Op::Ge,
            value: 0.9
        })
    );
    assert_eq!(
        t(">= 1% of opens and >= 5"),
        Some(Threshold {
            op: Op::Ge,
            value: 0.01
        })
    );
    assert_eq!(
        t("< 5"),
        Some(Threshold {
            op: Op::Lt,
            value: 5.0
        })
    );
    assert_eq!(t(">= on-CPU seconds"), None);
    assert_eq!(t("about 3"), None);
    let json = serde_json::to_value(t("<= 0.5")).expect("serialises");
    assert_eq!(json, serde_json::json!({"op": "<=", "value": 0.5}));
}

#[test]
fn every_verdict_kind_parses_from_its_name() {
    for k in VerdictKind::ALL {
        assert_eq!(VerdictKind::parse(k.as_str()), Some(k));
    }
    assert_eq!(VerdictKind::parse("cpu"), None);
}

#[test]
fn threads_without_requests_woken_only_by_each_other_are_a_closed_system_in_contention() {
    // 8 threads, 7.2 threads' worth of off-CPU time a second, all of it ended by each other.
    let a = analyze(&backends(8, 0.0, 7.2, 0.0), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::LockContention,
        "{}",
        a.verdict.summary
    );
    assert!(
        a.verdict.summary.contains("serves no requests"),
        "{}",
        a.verdict.summary
    );
    // Half of it ended by clients: something outside gives them work, and without requests
    // measured nothing shows that work waits.
    let a = analyze(&backends(8, 0.0, 3.6, 0.0), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::NotSaturated,
        "{}",
        a.verdict.summary
    );
}

/// haproxy (`maxconn 4`) in front of a slow upstream: 32 requests in flight inbound, 4 upstream,
/// 5 sockets seen per interval; with `opens` connects a second to the upstream's port.
fn capped_proxy(opens: u64) -> Recording {
    proxy(opens, 4.0, 32.0)
}

/// haproxy opening `opens` upstream connections a second, with `upstream` requests in flight
/// there and `inbound` in flight from its clients.
fn proxy(opens: u64, upstream: f64, inbound: f64) -> Recording {
    steady(6, move |i| {
        let mut iv = interval(i, 0.2);
        iv.processes
            .push(process(60, "haproxy", Role::Server, &[0.1]));
        iv.processes
            .push(process(70, "upstream", Role::Server, &[0.05]));
        iv.processes
            .push(process(300, "wrk", Role::LoadGenerator, &[0.1]));
        iv.pools
            .push(pool("haproxy", "upstream", 5, upstream, inbound, 760.0));
        iv.connections.push(crate::recording::ConnectionRow {
            pid: Some(60),
            comm: Some("haproxy".into()),
            port: 8080,
            direction: crate::recording::Direction::Active,
            opens,
            established: opens,
            failed: 0,
            setup_ns: 0,
        });
        iv
    })
}

#[test]
fn a_proxy_opening_a_connection_per_request_behind_a_cap_is_pool_saturated() {
    let a = analyze(&capped_proxy(760), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::PoolSaturated,
        "{}",
        a.verdict.summary
    );
    assert!(
        a.verdict.summary.contains("concurrency cap"),
        "{}",
        a.verdict.summary
    );
    assert!(a.pools[0].churned);
    assert!((a.pools[0].queued - (32.0 - 4.0 - 0.1)).abs() < 1e-6);
    // The same figures with persistent sockets: 4 of 5 busy leaves a free one, so requests
    // waiting in the proxy are not waiting for a connection.
    let a = analyze(&capped_proxy(0), &[]);
    assert_ne!(
        a.verdict.kind,
        VerdictKind::PoolSaturated,
        "{}",
        a.verdict.summary
    );
}

#[test]
fn a_proxy_with_room_keeps_its_own_handling_inside_it_without_a_cap() {
    // `maxconn 64` and 8 clients on a contended host: 7.5 requests upstream, 8.7 inside the
    // proxy. The 1.1 between them is its connects and relaying, not a queue behind a cap.
    let a = analyze(&proxy(760, 7.5, 8.7), &[]);
    assert!(a.pools[0].churned);
    assert!(a.pools[0].queued >= 1.0, "{:?}", a.pools[0]);
    assert_ne!(
        a.verdict.kind,
        VerdictKind::PoolSaturated,
        "{}",
        a.verdict.summary
    );
    let pool = a
        .verdict
        .ruled_out
        .iter()
        .find(|r| r.kind == VerdictKind::PoolSaturated)
        .expect("pool-saturated is ruled out");
    assert!(
        pool.reason.contains("no cap queues them"),
        "{}",
        pool.reason
    );
    // 1.1 of 8.7 requests inside it: too few for a cap to matter, the verdict stays sure.
    assert!(a.verdict.missing.is_empty(), "{:?}", a.verdict.missing);
}

#[test]
fn a_proxy_with_a_cap_just_under_its_clients_is_named_as_unmeasured() {
    // `maxconn 4` with 6 clients: 4 upstream, 1.9 inside the proxy. Fewer than it sends upstream,
    // so the pool rule cannot tell a cap from handling; the verdict must not claim it is sure.
    let a = analyze(&proxy(760, 4.0, 6.0), &[]);
    assert_unsure(&a, "inside haproxy are not at its upstream");
    assert!(
        a.verdict.missing.iter().any(|m| m.contains("show stat")),
        "{:?}",
        a.verdict.missing
    );
    assert!(
        a.verdict
            .evidence
            .iter()
            .any(|e| e.metric == "pool.haproxy->upstream.unjudged_queued"),
        "{:?}",
        a.verdict.evidence
    );
}

/// haproxy forwarding 8 clients' requests (700/s) over 2 upstream connections; each of its
/// turns carries `per_turn` requests.
fn two_connections_upstream(per_turn: f64) -> Recording {
    steady(6, move |i| {
        let mut iv = interval(i, 0.3);
        iv.processes
            .push(process(60, "haproxy", Role::Server, &[0.1]));
        iv.processes.push(process(70, "node", Role::Server, &[0.1]));
        iv.processes
            .push(process(300, "wrk", Role::LoadGenerator, &[0.1]));
        let mut p = pool("haproxy", "node", 2, 1.95, 7.7, 700.0);
        p.requests_per_s = 700.0 / per_turn;
        iv.pools.push(p);
        iv
    })
}

#[test]
fn requests_multiplexed_on_busy_connections_are_not_queued_for_them() {
    // HTTP/2 streams: 2 connections always busy with 400 turns/s for 700 requests/s, so the
    // 5.6 requests in flight in the proxy beyond them are upstream on the same connections.
    let a = analyze(&two_connections_upstream(1.75), &[]);
    assert!(a.pools[0].multiplexed, "{:?}", a.pools[0]);
    assert_ne!(
        a.verdict.kind,
        VerdictKind::PoolSaturated,
        "{}",
        a.verdict.summary
    );
    let pool = a
        .verdict
        .ruled_out
        .iter()
        .find(|r| r.kind == VerdictKind::PoolSaturated)
        .expect("pool-saturated is ruled out");
    assert!(
        pool.reason.contains("share its connections"),
        "{}",
        pool.reason
    );
    // Upstream as streams, or queued for a cap on them (`maxconn` with `proto h2`): the turns
    // cannot tell, so the verdict names them and is not sure.
    assert_unsure(&a, "streams multiplexed");
    // One request per turn: the same two busy connections are a full pool with a queue.
    let a = analyze(&two_connections_upstream(1.0), &[]);
    assert!(!a.pools[0].multiplexed, "{:?}", a.pools[0]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::PoolSaturated,
        "{}",
        a.verdict.summary
    );
}

#[test]
fn runs_of_a_shell_loop_take_their_concurrency_from_their_own_processes() {
    use crate::{recording::ProcessFacts, timeline::Timeline};
    let mut r = steady(6, |i| interval(i, 0.3));
    for (i, c) in [(0usize, "1"), (2, "4"), (4, "16")] {
        r.intervals[i].described.push(ProcessFacts {
            pid: 1000 + i as u32,
            ppid: Some(999),
            comm: "hey".into(),
            exe: Some("/usr/bin/hey".into()),
            cmdline: vec![
                "hey".into(),
                "-z".into(),
                "2s".into(),
                "-c".into(),
                c.into(),
            ],
            netns: None,
        });
    }
    let run = |k: usize| {
        let mut t = Timeline::empty(
            crate::timeline::Format::HeyText,
            std::path::Path::new(&format!("<hey output, run {k} of 3>")),
        );
        t.requests = 100;
        t.duration_seconds = 1.0;
        t.throughput_per_s = 100.0;
        t
    };
    let timelines: Vec<Timeline> = (1..=3).map(run).collect();
    let mut with_load = r.clone();
    with_load.end = Some(crate::recording::End {
        ended_unix_ns: 0,
        reason: "command-exited".into(),
        exit_code: Some(0),
        exit_signal: None,
        load: timelines,
        load_errors: Vec::new(),
        pids_reused: 0,
    });
    let mut t: Vec<Timeline> = with_load.end.as_ref().expect("end").load.clone();
    super::runs_from_their_processes(&mut t, &with_load);
    let levels: Vec<Option<f64>> = t
        .iter()
        .map(|t| t.offered.as_ref().and_then(|o| o.concurrency))
        .collect();
    assert_eq!(levels, [Some(1.0), Some(4.0), Some(16.0)]);
}
