//! Builders for small synthetic recordings: each rule is tested on both sides of its threshold.
use std::collections::BTreeMap;

use crate::recording::{
    CpuInterval, Header, HostInterval, Interval, LogHistogram, OverheadInterval, PoolRow,
    ProbeStatus, ProcessInterval, Recording, Role, TcpCounts, TcpInterval, ThreadInterval, WakeRow,
    pools::{queued, wait_ms},
};

pub const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SEC;

pub fn header() -> Header {
    Header {
        format_version: crate::recording::FORMAT_VERSION,
        chokepoint_version: "test".into(),
        hostname: "test".into(),
        kernel: "6.18".into(),
        cpus: 2,
        started_unix_ns: T0,
        started_monotonic_ns: 0,
        interval_seconds: 1.0,
        command: None,
        command_pid: None,
        profiler_pid: 1,
        probes: ProbeStatus {
            attached: vec![
                "sock/inet_sock_set_state".into(),
                "sock/sock_send_length".into(),
                "sock/sock_recv_length".into(),
                "sched/sched_switch".into(),
                "sched/sched_waking".into(),
            ],
            failed: Vec::new(),
            portable_reads: Vec::new(),
            raw: Vec::new(),
            btf: Vec::new(),
        },
        bpf_stats: "test".into(),
        drop_reasons: Vec::new(),
        limitations: Vec::new(),
        topology: Vec::new(),
        inventory: None,
        tier: String::new(),
    }
}

/// A one-second interval with the host `busy` (0..1) on 2 CPUs.
pub fn interval(index: u32, busy: f64) -> Interval {
    let idle = 2.0 * (1.0 - busy);
    Interval {
        index,
        start_unix_ns: T0 + index as u64 * SEC,
        end_unix_ns: T0 + (index as u64 + 1) * SEC,
        tcp: TcpCounts::default(),
        connect_latency: LogHistogram(vec![0; 36]),
        handshake_latency: LogHistogram(vec![0; 36]),
        drops: BTreeMap::new(),
        connections: Vec::new(),
        processes: Vec::new(),
        host: Some(HostInterval {
            elapsed_seconds: 1.0,
            cpu: Some(CpuInterval {
                user_seconds: 2.0 * busy,
                nice_seconds: 0.0,
                system_seconds: 0.0,
                irq_seconds: 0.0,
                softirq_seconds: 0.0,
                iowait_seconds: 0.0,
                steal_seconds: 0.0,
                idle_seconds: idle,
                busy_fraction: busy,
                per_cpu_busy_fraction: vec![busy, busy],
            }),
            tcp: Some(TcpInterval::default()),
            sockets: None,
            ephemeral_ports: None,
            pressure: None,
            errors: Vec::new(),
        }),
        listeners: Vec::new(),
        overhead: OverheadInterval::default(),
        forks: 0,
        exits: 0,
        wakes: Vec::new(),
        thread_wakes: Vec::new(),
        wake_totals: Vec::new(),
        described: Vec::new(),
        softirqs: BTreeMap::new(),
        cgroups: Vec::new(),
        devices: Vec::new(),
        qdiscs: Vec::new(),
        conntrack: None,
        nat: Vec::new(),
        topology: Vec::new(),
        net_errors: Vec::new(),
        net_packets: Vec::new(),
        device_drops: Vec::new(),
        pools: Vec::new(),
        inbound: Vec::new(),
        send_limits: Vec::new(),
        marks: Vec::new(),
        detached: Vec::new(),
        on_demand: None,
    }
}

/// A process with one thread per entry of `thread_cores` (cores used in a 1 s interval).
pub fn process(pid: u32, comm: &str, role: Role, thread_cores: &[f64]) -> ProcessInterval {
    let threads: Vec<ThreadInterval> = thread_cores
        .iter()
        .enumerate()
        .map(|(i, c)| ThreadInterval {
            tid: pid + i as u32,
            comm: comm.into(),
            oncpu_ns: (c * SEC as f64) as u64,
            ..Default::default()
        })
        .collect();
    ProcessInterval {
        pid,
        ppid: Some(1000),
        comm: comm.into(),
        role,
        oncpu_ns: threads.iter().map(|t| t.oncpu_ns).sum(),
        voluntary: 0,
        involuntary: 0,
        runq_ns: 0,
        runq_count: 0,
        runq_latency: LogHistogram(vec![0; 36]),
        capacity_cores: None,
        capacity_limited_by: None,
        offcpu_sleep_ns: 0,
        offcpu_io_ns: 0,
        offcpu_reason_ns: BTreeMap::new(),
        threads,
    }
}

pub fn wake(waker: (u32, &str), wakee: (u32, &str), wakes: u64) -> WakeRow {
    WakeRow {
        waker_pid: waker.0,
        waker_comm: waker.1.into(),
        wakee_pid: wakee.0,
        wakee_comm: wakee.1.into(),
        wakes,
        offcpu_ns: 0,
    }
}

pub fn recording(intervals: Vec<Interval>) -> Recording {
    Recording {
        header: header(),
        intervals,
        end: None,
        warnings: Vec::new(),
        skipped: crate::skipped::SkippedLines::new(std::path::Path::new("fixture.rec")),
    }
}

/// `n` copies of an interval made by `f(index)`.
pub fn steady(n: u32, f: impl Fn(u32) -> Interval) -> Recording {
    recording((0..n).map(f).collect())
}

/// A conntrack reading: `count` of `max` entries, with these counter increases.
pub fn conntrack(
    count: u64,
    max: u64,
    insert_failed: u64,
    drop: u64,
    early_drop: u64,
) -> crate::recording::ConntrackInterval {
    crate::recording::ConntrackInterval {
        count,
        max,
        counters: BTreeMap::from([
            ("insert_failed".to_string(), insert_failed),
            ("drop".to_string(), drop),
            ("early_drop".to_string(), early_drop),
        ]),
    }
}

/// A tbf qdisc on `device` with `rate` bytes/s that sent `bytes` in the interval.
pub fn shaper(
    device: &str,
    rate: u64,
    bytes: u64,
    drops: u64,
    overlimits: u64,
    backlog_packets: u64,
) -> crate::recording::QdiscRow {
    crate::recording::QdiscRow {
        netns: "net:[4026532290] app".into(),
        qdisc: crate::recording::QdiscInterval {
            ifindex: 5,
            device: device.into(),
            kind: "tbf".into(),
            handle: "8001:".into(),
            parent: "root".into(),
            rate_bytes_per_second: Some(rate),
            delta: crate::recording::QdiscStats {
                bytes,
                packets: bytes / 1500,
                drops,
                overlimits,
                requeues: 0,
                backlog_bytes: backlog_packets * 1500,
                backlog_packets,
            },
        },
    }
}

/// A pool of `size` connections from `comm` to `upstream` with `in_use` of them busy, behind
/// `inbound` requests in flight at `inbound_per_s`; queued and wait as the session computes them.
pub fn pool(
    comm: &str,
    upstream: &str,
    size: u32,
    in_use: f64,
    inbound: f64,
    inbound_per_s: f64,
) -> PoolRow {
    let utilisation = in_use / f64::from(size);
    let q = queued(utilisation, inbound, in_use);
    PoolRow {
        // The processes of the pool tests: pgbouncer 50, pgbench 300, anything else 60.
        pid: match comm {
            "pgbouncer" => 50,
            "pgbench" => 300,
            _ => 60,
        },
        comm: comm.into(),
        upstream: upstream.into(),
        // Each upstream at its own port (PostgreSQL's, PgBouncer's, an HTTP one).
        endpoint: match upstream {
            "postgres" => "127.0.0.1:5432",
            "pgbouncer" => "127.0.0.1:6432",
            _ => "127.0.0.1:8080",
        }
        .into(),
        size,
        in_use,
        utilisation,
        requests_per_s: in_use * 190.0,
        inbound_concurrency: inbound,
        inbound_per_s,
        queued: q,
        wait_ms_estimate: wait_ms(q, inbound_per_s),
    }
}

/// `not-saturated` that says it cannot account for some requests (`verdict/unmeasured.rs`):
/// held to its confidence, the summary naming them with `says`, `missing[]` saying what would
/// tell a cap apart.
#[track_caller]
pub fn assert_unsure(a: &super::Analysis, says: &str) {
    let v = &a.verdict;
    assert_eq!(v.kind, super::VerdictKind::NotSaturated, "{}", v.summary);
    assert!(
        v.confidence <= super::verdict::UNACCOUNTED_CONFIDENCE,
        "{}",
        v.confidence
    );
    assert!(v.summary.contains(says), "{}", v.summary);
    assert_eq!(v.missing.len(), 1, "{:?}", v.missing);
}
