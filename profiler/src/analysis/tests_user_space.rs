//! Waiters the kernel does not see: a lock whose waiters park in user space (goroutines on a Go
//! `sync.Mutex`), against a single event-loop thread and user-space timers, which look alike
//! from the kernel; and requests in flight counted from the clients' side when the server has
//! not read them yet.
use super::{VerdictKind, analyze, fixtures::*};
use crate::recording::{InboundRow, Interval, Recording, Role};

/// A server (pid 70) whose threads used `thread_cores`, with `inflight` requests in flight
/// (as it read them) and the host `busy`, driven by hey.
fn runtime_server(thread_cores: &'static [f64], inflight: f64, busy: f64) -> Recording {
    steady(6, move |i| server_interval(i, thread_cores, inflight, busy))
}

fn server_interval(i: u32, thread_cores: &[f64], inflight: f64, busy: f64) -> Interval {
    let mut iv = interval(i, busy);
    let mut p = process(70, "go-http", Role::Server, thread_cores);
    p.capacity_cores = Some(2.0);
    // sysmon's timed sleep: one thread asleep on a timer all the time.
    p.offcpu_sleep_ns = 1_000_000_000;
    p.offcpu_reason_ns.insert("sleep".into(), 1_000_000_000);
    iv.processes.push(p);
    iv.processes
        .push(process(300, "hey", Role::LoadGenerator, &[0.1]));
    iv.inbound.push(InboundRow {
        pid: 70,
        comm: "go-http".into(),
        port: 8080,
        connections: 16,
        concurrency: inflight,
        requests_per_s: 490.0,
    });
    iv
}

#[test]
fn requests_parked_in_user_space_behind_one_computing_holder_are_lock_contention() {
    // One core's worth spread over three threads (the holder moves), 16 requests in flight,
    // the host 58% busy: 14 requests wait and no kernel wait explains them.
    let a = analyze(&runtime_server(&[0.6, 0.3, 0.15], 16.0, 0.58), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::LockContention,
        "{}",
        a.verdict.summary
    );
    assert!(
        a.verdict.summary.contains("parked in user space"),
        "{}",
        a.verdict.summary
    );
    assert!(a.verdict.confidence > 0.8, "{}", a.verdict.confidence);
}

#[test]
fn one_thread_doing_all_the_work_is_not_a_user_space_lock() {
    // An event loop at 85% of a core (under the single-thread bar) with its helpers idle: the
    // requests wait for that thread, not for a lock passed between threads.
    let a = analyze(&runtime_server(&[0.85, 0.01, 0.01], 16.0, 0.5), &[]);
    assert_ne!(
        a.verdict.kind,
        VerdictKind::LockContention,
        "{}",
        a.verdict.summary
    );
    let why = a
        .verdict
        .ruled_out
        .iter()
        .find(|r| r.kind == VerdictKind::LockContention)
        .expect("lock ruled out");
    assert!(why.reason.contains("hottest thread"), "{}", why.reason);
}

#[test]
fn requests_waiting_on_user_space_timers_keep_no_core_busy_and_are_not_a_lock() {
    // Node.js answering after a timer: 16 requests in flight, next to no CPU.
    let a = analyze(&runtime_server(&[0.04, 0.01], 16.0, 0.1), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::NotSaturated,
        "{}",
        a.verdict.summary
    );
}

#[test]
fn requests_held_where_nothing_measured_waits_keep_not_saturated_unsure() {
    // Timers of an async runtime, streams on a multiplexed upstream and a cap in user space
    // look alike: 16 requests held with no kernel wait for them. Not a confident verdict.
    let a = analyze(&runtime_server(&[0.04, 0.01], 16.0, 0.1), &[]);
    assert_unsure(&a, "wait on nothing the rules can name");
    assert!(
        a.verdict
            .evidence
            .iter()
            .any(|e| e.metric == "service.go-http.unaccounted" && e.value > 14.0),
        "{:?}",
        a.verdict.evidence
    );
    // The same requests asleep on timers the kernel sees (a thread each): accounted for.
    let r = steady(6, |i| {
        let mut iv = server_interval(i, &[0.04, 0.01], 16.0, 0.1);
        let p = &mut iv.processes[0];
        p.offcpu_sleep_ns = 17_000_000_000;
        p.offcpu_reason_ns.insert("sleep".into(), 17_000_000_000);
        iv
    });
    let a = analyze(&r, &[]);
    assert_eq!(a.verdict.kind, VerdictKind::NotSaturated);
    assert!(a.verdict.missing.is_empty(), "{:?}", a.verdict.missing);
    assert!(a.verdict.confidence > 0.8, "{}", a.verdict.confidence);
}

#[test]
fn event_waits_their_own_timeouts_end_are_timed_waits() {
    // PostgreSQL's pg_sleep: a backend per request waits in epoll_wait with a timeout. Waits
    // that some other party ends (an event) account for nothing; the same waits ended by their
    // own timers (the wake-up came from an expiring sleeper timer) are time passing.
    let held = |reason: &str| {
        steady(6, |i| {
            let mut iv = server_interval(i, &[0.04, 0.01], 16.0, 0.1);
            let p = &mut iv.processes[0];
            p.offcpu_sleep_ns = 17_000_000_000;
            p.offcpu_reason_ns.insert(reason.into(), 17_000_000_000);
            iv
        })
    };
    let a = analyze(&held("events"), &[]);
    assert_unsure(&a, "wait on nothing the rules can name");
    let a = analyze(&held("timeout"), &[]);
    assert_eq!(a.verdict.kind, VerdictKind::NotSaturated);
    assert!(a.verdict.missing.is_empty(), "{:?}", a.verdict.missing);
    assert!(a.verdict.confidence > 0.8, "{}", a.verdict.confidence);
}

#[test]
fn a_busy_host_is_not_a_user_space_lock() {
    let a = analyze(&runtime_server(&[0.6, 0.3, 0.15], 16.0, 0.95), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::CpuSaturated,
        "{}",
        a.verdict.summary
    );
}

#[test]
fn requests_the_server_has_not_read_yet_are_in_flight_at_it() {
    // The server reads one request at a time (1.2 in flight as it reads them) while its
    // clients have 16 in flight to its port: the other 14.8 wait unread in its sockets.
    let r = steady(6, |i| {
        let mut iv = server_interval(i, &[0.5, 0.3, 0.2], 1.2, 0.55);
        let mut to_server = pool("hey", "go-http", 16, 16.0, 0.0, 0.0);
        to_server.endpoint = "127.0.0.1:8080".into();
        iv.pools.push(to_server);
        iv
    });
    let a = analyze(&r, &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::LockContention,
        "{}",
        a.verdict.summary
    );
    assert!(
        a.verdict.summary.contains("16.0 requests in flight"),
        "{}",
        a.verdict.summary
    );
    // Without the clients' side, nothing shows the work waiting.
    let a = analyze(&runtime_server(&[0.5, 0.3, 0.2], 1.2, 0.55), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::NotSaturated,
        "{}",
        a.verdict.summary
    );
}

/// Three proxy processes sharing the host `busy`, with runnable tasks waiting for a CPU
/// `some` of each 1 s interval (PSI).
fn proxies(busy: f64, some: f64) -> Recording {
    use crate::recording::{PressureInterval, PressureResource, PressureStall};
    steady(6, move |i| {
        let mut iv = interval(i, busy);
        for (pid, cores) in [(100, 0.7), (101, 0.5), (102, 0.3)] {
            iv.processes
                .push(process(pid, "nginx", Role::Server, &[cores]));
        }
        iv.processes
            .push(process(300, "wrk", Role::LoadGenerator, &[0.2]));
        let stall = |us: u64| PressureStall {
            avg10_percent: 0.0,
            stall_us: us,
        };
        if let Some(h) = iv.host.as_mut() {
            h.pressure = Some(PressureInterval {
                cpu: Some(PressureResource {
                    some: stall((some * 1e6) as u64),
                    full: None,
                }),
                io: None,
                memory: None,
            });
        }
        iv
    })
}

#[test]
fn a_host_short_of_the_busy_bar_with_tasks_queueing_for_cpu_is_cpu_saturated() {
    // Measured in two-hop-proxy: 85-90% busy, tasks waiting for a CPU 42-44% of the time.
    let a = analyze(&proxies(0.86, 0.43), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::CpuSaturated,
        "{}",
        a.verdict.summary
    );
    assert!(
        a.verdict.summary.contains("waiting for a CPU"),
        "{}",
        a.verdict.summary
    );
    assert!(a.verdict.confidence < 0.9, "{}", a.verdict.confidence);
    // As busy, with little queueing: the gaps are room.
    let a = analyze(&proxies(0.86, 0.15), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::NotSaturated,
        "{}",
        a.verdict.summary
    );
    // Queueing on a host with room (a cgroup quota, a burst): not the host's CPU.
    let a = analyze(&proxies(0.6, 0.5), &[]);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::NotSaturated,
        "{}",
        a.verdict.summary
    );
}
