//! Attribution: each candidate bottleneck's evidence in the analysis window, then a decision.
//! Every rule and threshold is documented, with its reasoning, in docs/attribution.md.
mod figures;
pub mod keys;
mod rules;
mod unmeasured;

use serde::{Deserialize, Serialize};

use self::figures::{ShaperFigures, WindowFigures};
use self::rules::{
    connection::connection_setup,
    contention::{lock_contention, pool_saturated},
    cpu::{cpu, generator, single_thread, throttled},
    io::io,
    network::{network_bandwidth, on_paths},
};

use super::{
    summary::{self, LatencySummary, ProcessSummary},
    window::Window,
};
use crate::recording::{Interval, LimitedBy, LogHistogram, Recording, Role};

/// The fixed vocabulary of verdicts (a contract: extend, never rename; `ALL` lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    CpuSaturated,
    SingleThreadSaturated,
    CpuThrottled,
    LoadGeneratorBound,
    PoolSaturated,
    LockContention,
    ConnectionSetup,
    NetworkBandwidth,
    IoBound,
    NotSaturated,
    Inconclusive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Cpu,
    Contention,
    Connection,
    Network,
    Io,
    Generator,
    None,
}

impl VerdictKind {
    /// Every kind, in the order docs/attribution.md lists them.
    pub const ALL: [VerdictKind; 11] = [
        VerdictKind::CpuSaturated,
        VerdictKind::SingleThreadSaturated,
        VerdictKind::CpuThrottled,
        VerdictKind::LoadGeneratorBound,
        VerdictKind::PoolSaturated,
        VerdictKind::LockContention,
        VerdictKind::ConnectionSetup,
        VerdictKind::NetworkBandwidth,
        VerdictKind::IoBound,
        VerdictKind::NotSaturated,
        VerdictKind::Inconclusive,
    ];

    /// The kind a kebab-case name (`cpu-saturated`) names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn family(self) -> Family {
        use VerdictKind::*;
        match self {
            CpuSaturated | SingleThreadSaturated | CpuThrottled => Family::Cpu,
            LoadGeneratorBound => Family::Generator,
            PoolSaturated | LockContention => Family::Contention,
            ConnectionSetup => Family::Connection,
            NetworkBandwidth => Family::Network,
            IoBound => Family::Io,
            NotSaturated | Inconclusive => Family::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        use VerdictKind::*;
        match self {
            CpuSaturated => "cpu-saturated",
            SingleThreadSaturated => "single-thread-saturated",
            CpuThrottled => "cpu-throttled",
            LoadGeneratorBound => "load-generator-bound",
            PoolSaturated => "pool-saturated",
            LockContention => "lock-contention",
            ConnectionSetup => "connection-setup",
            NetworkBandwidth => "network-bandwidth",
            IoBound => "io-bound",
            NotSaturated => "not-saturated",
            Inconclusive => "inconclusive",
        }
    }
}

/// One measured number behind a conclusion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The key as it always was (`process.nginx[2902].cores`); kept for one release beside
    /// `name` and `labels`.
    pub metric: String,
    /// The key's stable name, without pids, services or devices (`process.cores`;
    /// `keys::stable`).
    #[serde(default)]
    pub name: String,
    /// What the name is about (`{"process": "nginx", "pid": "2902"}`); `pid` and `tid` are
    /// the run's own (`keys::RUN_LABELS`), the others compare across runs.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
    pub unit: String,
    /// The rule's threshold, e.g. ">= 0.90".
    pub threshold: Option<String>,
    /// The same threshold as numbers (`{"op": ">=", "value": 0.9}`), for tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_numeric: Option<Threshold>,
    /// Where the number comes from (probe, procfs file, load tool).
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuledOut {
    pub kind: VerdictKind,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    pub family: Family,
    pub summary: String,
    pub evidence: Vec<Evidence>,
    pub ruled_out: Vec<RuledOut>,
    pub secondary: Vec<VerdictKind>,
    /// 0..1: how clearly the evidence passed its thresholds.
    pub confidence: f64,
    /// What would be needed to decide, when the kind is `inconclusive`.
    pub missing: Vec<String>,
}

/// Thresholds (docs/attribution.md explains each).
pub const CPU_SATURATED_BUSY: f64 = 0.90;
/// ...or at least this busy while runnable tasks waited for a CPU at least this share of the
/// window (PSI `cpu some`).
pub const CPU_CONTENDED_BUSY: f64 = 0.80;
pub const CPU_CONTENDED_SOME: f64 = 0.40;
pub const SETUP_FAILURE_RATIO: f64 = 0.01;
pub const SETUP_FAILURE_MIN: u64 = 5;
pub const HOT_THREAD_SHARE: f64 = 0.90;
pub const GENERATOR_SATURATED: f64 = 0.90;
/// A generator confined to fewer CPUs than the host's that uses this share of them, and whose
/// on-CPU plus run-queue time reaches `GENERATOR_SATURATED` of them, is starved of CPU.
pub const GENERATOR_CONFINED_SHARE: f64 = 0.60;
/// Lock contention: at least one request waiting inside the service on average...
pub const LOCK_WAITING_MIN: f64 = 1.0;
/// ...at least half of it explained by threads blocked on their own service's threads beyond
/// the idle ones (Little's law: blocked threads on average = waiting requests they hold)...
pub const LOCK_EXPLAINS: f64 = 0.5;
/// ...with hand-overs actually happening.
pub const LOCK_HANDOVERS_MIN_PER_S: f64 = 10.0;
/// A service with no requests is a closed system when its own threads end this much of its
/// off-CPU time.
pub const LOCK_SELF_DRIVEN: f64 = 0.9;
/// One thread ending this share of the waits on a service's own threads makes them hand-outs
/// from that thread, not lock hand-overs (two holders passing a lock each end about half).
pub const LOCK_ONE_WAKER_SHARE: f64 = 0.67;
/// A lock whose waiters park in user space (goroutines on a Go `sync.Mutex`, tasks of an
/// async runtime): at least this many cores busy in the service (the holder computing: one
/// holder at a time keeps about one core's worth of work running)...
pub const USER_LOCK_CORES_MIN: f64 = 0.8;
/// ...with at least this much of its CPU capacity unused (the waiting work could run)...
pub const USER_LOCK_ROOM_CORES: f64 = 0.5;
/// ...and the work spread over threads: the hottest thread does less than this share of the
/// service's CPU (one thread doing it all is a thread model, judged as a single thread).
pub const USER_LOCK_SPREAD: f64 = 0.8;
pub const IO_BLOCKED_THREADS: f64 = 0.50;
/// ...or this many, while the host's PSI says every runnable task stalled on I/O together at
/// least this share of the time (`/proc/pressure/io` full).
pub const IO_BLOCKED_THREADS_WITH_STALLS: f64 = 0.25;
pub const IO_FULL_STALLS: f64 = 0.10;
pub const THROTTLED_PERIODS: f64 = 0.20;
pub const THROTTLED_TIME: f64 = 0.05;
pub const CONNTRACK_FULL: f64 = 0.90;
pub const BANDWIDTH_USED: f64 = 0.90;
/// Served sockets held back (peer window or send buffer) this share of their busy time...
pub const SEND_LIMITED_SHARE: f64 = 0.50;
/// ...while the serving process's threads wait blocked in socket writes this many seconds per
/// second (half a thread or more)...
pub const SEND_BLOCKED_PER_S: f64 = 0.50;
/// ...and some socket is held back: a full send buffer seen, or held-back time of at least
/// this many socket-seconds per second (one socket through half the window).
pub const SEND_HELD_SOCKETS: f64 = 0.50;
/// A pool this busy (in use / size) through the window is full (see `recording::pools`).
pub const POOL_SATURATED_USE: f64 = crate::recording::pools::POOL_FULL;
/// Requests waiting for a pool connection on average, at least.
pub const POOL_QUEUED_MIN: f64 = 1.0;
/// `not-saturated` with at least this share of a service's (or a pool holder's) requests in
/// flight held where no measured wait accounts for them (and at least one request) cannot rule
/// out a cap it did not see: its confidence is held to `UNACCOUNTED_CONFIDENCE`
/// (`verdict/unmeasured.rs`).
pub const UNACCOUNTED_WAITING_SHARE: f64 = 0.25;
pub const UNACCOUNTED_CONFIDENCE: f64 = 0.55;

pub struct Inputs<'a> {
    pub recording: &'a Recording,
    pub window: &'a Window,
}

/// One candidate bottleneck, evaluated over the window.
struct Candidate {
    kind: VerdictKind,
    fired: bool,
    /// How far past its threshold (0..1), for confidence.
    strength: f64,
    /// The sentence used when it is the verdict.
    summary: String,
    evidence: Vec<Evidence>,
    /// Why it did not fire (or why it is only secondary).
    counter: String,
}

/// A threshold as a comparison and a number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub op: Op,
    pub value: f64,
}

/// The comparison of a threshold, serialised as its symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "==")]
    Eq,
}

impl Threshold {
    /// `">= 0.90"`, `"< 5%"`, `"> 2 ms"`: the comparison and the first number after it (a
    /// `%` scales it to a fraction, as the values it is compared with are fractions).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let (symbol, op) = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
        ]
        .into_iter()
        .find(|(symbol, _)| t.starts_with(symbol))?;
        let rest = t[symbol.len()..].trim_start();
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
            .unwrap_or(rest.len());
        let mut value: f64 = rest[..end].parse().ok()?;
        if rest[end..].trim_start().starts_with('%') {
            value /= 100.0;
        }
        Some(Threshold { op, value })
    }
}

fn ev(metric: &str, value: f64, unit: &str, threshold: Option<&str>, source: &str) -> Evidence {
    let keys::Stable { name, labels } = keys::stable(metric);
    Evidence {
        metric: metric.into(),
        name,
        labels,
        value,
        unit: unit.into(),
        threshold: threshold.map(Into::into),
        threshold_numeric: threshold.and_then(Threshold::parse),
        source: source.into(),
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// Order in which fired candidates become the verdict: causes before their consequences (a
/// saturated generator or CPU delays accepts, so setup failures then are a symptom).
const PRIORITY: &[VerdictKind] = &[
    VerdictKind::LoadGeneratorBound,
    VerdictKind::CpuThrottled,
    // A shaper sending at its rate with packets queueing caps the flows through it whatever
    // the CPUs do: busy CPUs then cannot be what limits those flows.
    VerdictKind::NetworkBandwidth,
    VerdictKind::CpuSaturated,
    VerdictKind::SingleThreadSaturated,
    VerdictKind::ConnectionSetup,
    VerdictKind::PoolSaturated,
    VerdictKind::LockContention,
    VerdictKind::IoBound,
];

pub fn decide(inputs: &Inputs) -> Verdict {
    let r = inputs.recording;
    let intervals: Vec<&Interval> = inputs.window.intervals(r).collect();
    let attached = |id: &str| r.header.probes.attached.iter().any(|p| p == id);
    let have_sched = attached("sched/sched_switch");
    let have_tcp = attached("sock/inet_sock_set_state");

    let mut missing = Vec::new();
    if intervals.is_empty() {
        missing.push("no recorded intervals in the analysis window".to_string());
    }
    if !have_sched && !have_tcp {
        missing.push("neither the scheduler nor the TCP probes were attached".to_string());
    }
    if !missing.is_empty() {
        return Verdict {
            kind: VerdictKind::Inconclusive,
            family: Family::None,
            summary: format!("Inconclusive: {}.", missing.join("; ")),
            evidence: Vec::new(),
            ruled_out: Vec::new(),
            secondary: Vec::new(),
            confidence: 0.0,
            missing,
        };
    }

    let w = WindowFigures::of(&intervals, r.header.cpus.max(1));
    let mut candidates = Vec::new();
    if have_sched {
        candidates.push(generator(&w));
    }
    if have_sched {
        candidates.push(throttled(&w));
    }
    candidates.push(cpu(&w));
    if have_sched {
        candidates.push(single_thread(&w));
    }
    if have_tcp {
        candidates.push(connection_setup(&w));
    }
    candidates.push(network_bandwidth(&w, &on_paths(r)));
    if have_sched {
        candidates.push(lock_contention(&w));
        candidates.push(io(&w));
    }
    let have_conn_use = attached("sock/sock_send_length") && attached("sock/sock_recv_length");
    // The default tier samples connection use: a window can hold no measured interval.
    let conn_use_measured = intervals.iter().any(|iv| iv.conn_use_measured());
    if have_conn_use && conn_use_measured {
        candidates.push(pool_saturated(&w));
    }

    let primary = PRIORITY
        .iter()
        .find_map(|k| candidates.iter().position(|c| c.kind == *k && c.fired));
    let (kind, summary, mut evidence, confidence) = match primary {
        Some(i) => {
            let c = &candidates[i];
            (
                c.kind,
                c.summary.clone(),
                c.evidence.clone(),
                0.5 + 0.5 * c.strength.clamp(0.0, 1.0),
            )
        }
        None => {
            let busy = w.host_busy.map_or("not measured".into(), pct);
            (
                VerdictKind::NotSaturated,
                {
                    // A keep-alive load opens next to no connections in the window: say so,
                    // not "0 connections/s" (the text report quotes the load generator's rate).
                    let per_s = w.opens as f64 / w.seconds.max(1e-9);
                    let connections = if w.opens == 0 && w.setup_failures == 0 {
                        "no new connections in the window".to_string()
                    } else if per_s >= 1.0 || w.opens == 0 {
                        format!(
                            "{per_s:.0} new connections/s with {} setup failures",
                            w.setup_failures
                        )
                    } else {
                        format!(
                            "{per_s:.1} new connections/s with {} setup failures",
                            w.setup_failures
                        )
                    };
                    format!(
                        "Not saturated: host CPU {busy} busy, no thread or load generator saturated, {connections}; throughput is set by the offered load (concurrency x latency), not by a resource on this host."
                    )
                },
                Vec::new(),
                w.host_busy
                    .map_or(0.5, |b| (1.0 - b / CPU_SATURATED_BUSY).clamp(0.3, 0.9)),
            )
        }
    };
    // "Set by the offered load" holds only as far as the requests inside the services are
    // accounted for: a cap the rules cannot see is named, and the verdict held unsure.
    let mut missing = Vec::new();
    let mut summary = summary;
    let mut confidence = confidence;
    if kind == VerdictKind::NotSaturated
        && let Some(u) = unmeasured::cap(&w)
    {
        summary.push(' ');
        summary.push_str(&u.sentence);
        missing.push(u.missing);
        evidence.push(u.evidence);
        confidence = confidence.min(UNACCOUNTED_CONFIDENCE);
    }
    let mut ruled_out = Vec::new();
    let mut secondary = Vec::new();
    for c in &candidates {
        if Some(c.kind) == Some(kind) {
            continue;
        }
        if c.fired {
            secondary.push(c.kind);
        } else {
            ruled_out.push(RuledOut {
                kind: c.kind,
                reason: c.counter.clone(),
            });
        }
        // Every candidate's numbers are evidence: what fired and what did not.
        for e in &c.evidence {
            if !evidence.iter().any(|x| x.metric == e.metric) {
                evidence.push(e.clone());
            }
        }
    }
    if !have_sched {
        ruled_out.push(RuledOut {
            kind: VerdictKind::SingleThreadSaturated,
            reason: "not evaluated: the sched_switch probe was not attached".into(),
        });
    }
    if !candidates
        .iter()
        .any(|c| c.kind == VerdictKind::PoolSaturated)
    {
        let reason = if have_conn_use {
            format!(
                "not evaluated: connection use was not measured in any of the window's {} intervals (the default probe tier attaches sock_send_length/sock_recv_length 1 interval in 5; --probes all measures every interval)",
                intervals.len()
            )
        } else {
            "not evaluated: the sock_send_length/sock_recv_length probes were not attached".into()
        };
        ruled_out.push(RuledOut {
            kind: VerdictKind::PoolSaturated,
            reason,
        });
    }
    Verdict {
        kind,
        family: kind.family(),
        summary,
        evidence,
        ruled_out,
        secondary,
        confidence,
        missing,
    }
}

fn process_ev(p: &ProcessSummary) -> Evidence {
    ev(
        &format!("process.{}[{}].cores", p.comm, p.pid),
        p.cores_used,
        "cores",
        None,
        "sched:sched_switch on-CPU time",
    )
}

/// The lock-contention mechanism on one service: work waits inside it, and waits on its own
/// threads beyond its idle ones explain at least half of that, more than timed sleeps or
/// disk waits do, with hand-overs happening. A service that serves no requests (a batch job,
/// threads working through shared state) is judged as a closed system: when at least 90% of
/// its off-CPU time is ended by its own threads, nothing outside gives it work to wait for,
/// so every such wait is a hand-over.
fn serialised_by_own_threads(s: &crate::analysis::services::ServiceFigures) -> bool {
    let rival = s.blocked_timed().max(s.blocked_uninterruptible);
    if s.sibling_wakes_per_s < LOCK_HANDOVERS_MIN_PER_S || handed_out(s) {
        return false;
    }
    if s.inflight > 0.0 {
        let waiting = s.waiting();
        let held = s.blocked_on_siblings_with_work();
        waiting >= LOCK_WAITING_MIN && held >= LOCK_EXPLAINS * waiting && held > rival
    } else {
        closed_system(s)
            && s.blocked_on_siblings >= LOCK_WAITING_MIN
            && s.blocked_on_siblings > rival
    }
}

/// Requests waiting inside a service that no kernel wait accounts for: not threads blocked on
/// its own threads (beyond idle ones), not timed sleeps, not disk waits, not threads waiting
/// for a CPU. Work parked in the runtime itself (goroutines, async tasks, a user-space queue).
fn waiting_in_user_space(s: &crate::analysis::services::ServiceFigures) -> f64 {
    (s.waiting()
        - s.blocked_on_siblings_with_work()
        - s.blocked_timed()
        - s.blocked_uninterruptible
        - s.runnable)
        .max(0.0)
}

/// The lock-contention mechanism when the waiters are not (all) threads in the kernel: work
/// waits inside the service, neither timed sleeps nor disk waits nor the run queue explain
/// most of it (waiters parked in user space, or threads blocked on their own siblings), and
/// the service keeps
/// about one core's worth busy, spread over its threads, with CPU to spare for it and on the
/// host. One holder at a time computing, the rest parked by the runtime: a user-space lock
/// (or any one-at-a-time section). A timed wait in user space (a timer wheel) keeps no core
/// busy, and one thread doing all the work is a single-thread limit, not a lock.
fn serialised_in_user_space(
    s: &crate::analysis::services::ServiceFigures,
    host_busy: f64,
    cpus: u32,
) -> bool {
    let waiting = s.waiting();
    let room = room_cores(s, cpus);
    let rivals = s.blocked_timed() + s.blocked_uninterruptible + s.runnable;
    s.inflight > 0.0
        && waiting >= LOCK_WAITING_MIN
        && waiting - rivals >= LOCK_EXPLAINS * waiting
        && s.cores >= USER_LOCK_CORES_MIN
        && room >= USER_LOCK_ROOM_CORES
        && s.hottest_thread_share_of_cpu() < USER_LOCK_SPREAD
        && host_busy < CPU_SATURATED_BUSY
}

/// The cores a service may use and does not (its capacity, else the host's CPUs, less its use).
fn room_cores(s: &crate::analysis::services::ServiceFigures, cpus: u32) -> f64 {
    s.capacity_cores
        .unwrap_or(f64::from(cpus))
        .min(f64::from(cpus))
        - s.cores
}

/// One thread ends most of the waits on the service's own threads: they wait for what it hands
/// out (a dispatcher's queue, an event loop's tasks), not for a lock passed from holder to
/// holder, where each release wakes the next waiter and the wakers are the waiters.
fn handed_out(s: &crate::analysis::services::ServiceFigures) -> bool {
    s.top_waker_share.is_some_and(|x| x >= LOCK_ONE_WAKER_SHARE)
}

/// No requests measured at the service and its off-CPU time ended by its own threads.
fn closed_system(s: &crate::analysis::services::ServiceFigures) -> bool {
    s.inflight == 0.0 && s.blocked > 0.0 && s.blocked_on_siblings >= LOCK_SELF_DRIVEN * s.blocked
}
