//! Attribution: each candidate bottleneck's evidence in the analysis window, then a decision.
//! Every rule and threshold is documented, with its reasoning, in docs/attribution.md.
use serde::{Deserialize, Serialize};

use super::{
    summary::{self, LatencySummary, ProcessSummary},
    window::Window,
};
use crate::{
    collect::capacity::LimitedBy,
    recording::{Interval, LogHistogram, Recording, Role},
};

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
    pub metric: String,
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
pub const SETUP_FAILURE_RATIO: f64 = 0.01;
pub const SETUP_FAILURE_MIN: u64 = 5;
pub const HOT_THREAD_SHARE: f64 = 0.90;
pub const GENERATOR_SATURATED: f64 = 0.90;
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
pub const IO_BLOCKED_THREADS: f64 = 0.50;
pub const THROTTLED_PERIODS: f64 = 0.20;
pub const THROTTLED_TIME: f64 = 0.05;
pub const CONNTRACK_FULL: f64 = 0.90;
pub const BANDWIDTH_USED: f64 = 0.90;
/// Served sockets held back (peer window or send buffer) this share of their busy time...
pub const SEND_LIMITED_SHARE: f64 = 0.50;
/// ...while the serving process's threads wait blocked in socket writes this many seconds per
/// second (half a thread or more).
pub const SEND_BLOCKED_PER_S: f64 = 0.50;
/// A pool this busy (in use / size) through the window is full (see `session::pools`).
pub const POOL_SATURATED_USE: f64 = crate::session::pools::POOL_FULL;
/// Requests waiting for a pool connection on average, at least.
pub const POOL_QUEUED_MIN: f64 = 1.0;

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
    Evidence {
        metric: metric.into(),
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
    if attached("sock/sock_send_length") && attached("sock/sock_recv_length") {
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
        ruled_out.push(RuledOut {
            kind: VerdictKind::PoolSaturated,
            reason: "not evaluated: the sock_send_length/sock_recv_length probes were not attached"
                .into(),
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
        missing: Vec::new(),
    }
}

/// Figures of the analysis window that the rules look at.
struct WindowFigures {
    seconds: f64,
    cpus: u32,
    host_busy: Option<f64>,
    host_iowait: f64,
    pressure: Option<summary::PressureSummary>,
    opens: u64,
    syn_retransmits: u64,
    synack_retransmits: u64,
    connect_failed: u64,
    /// Failed connects refused for want of a local port (a subset of `connect_failed`).
    addr_unavailable: u64,
    listen_overflows: u64,
    setup_failures: u64,
    connect: LatencySummary,
    processes: Vec<ProcessSummary>,
    cgroups: Vec<CgroupFigures>,
    pools: Vec<super::pools::PoolSummary>,
    conntrack: Option<ConntrackFigures>,
    shapers: Vec<ShaperFigures>,
    /// Served sockets' send limits per listening port, summed over the window.
    send_limits: Vec<summary::SendLimitSummary>,
    /// Peak share of the ephemeral port range in use, and peak TIME_WAIT sockets.
    ephemeral_peak: Option<f64>,
    time_wait_peak: Option<u64>,
    /// The workload's services (processes grouped by job), busiest first.
    services: Vec<super::services::ServiceFigures>,
    /// The load generator's cores while it ran: its processes' CPU summed per interval (so
    /// runs that followed one another are steps, never added up), averaged over the intervals
    /// in which any of them ran; and the cores those processes could use together (their
    /// capacities summed per interval, at most the host's, the largest such sum).
    generator_cores: f64,
    generator_capacity: Option<f64>,
}

/// The conntrack table over the window: its fullest reading and the failures counted.
#[derive(Default)]
struct ConntrackFigures {
    max: u64,
    peak_count: u64,
    peak_fill: f64,
    insert_failed: u64,
    drop: u64,
    early_drop: u64,
}

impl ConntrackFigures {
    fn failures(&self) -> u64 {
        self.insert_failed + self.drop + self.early_drop
    }
}

/// One rate-limiting qdisc (tbf, an htb class) over the window.
#[derive(Default)]
struct ShaperFigures {
    netns: String,
    device: String,
    kind: String,
    handle: String,
    rate: u64,
    bytes: u64,
    drops: u64,
    overlimits: u64,
    peak_backlog_packets: u64,
}

/// One CPU cgroup's throttling over the window.
#[derive(Default)]
struct CgroupFigures {
    path: String,
    quota_cores: Option<f64>,
    periods: u64,
    throttled: u64,
    throttled_seconds: f64,
    pids: Vec<u32>,
}

impl WindowFigures {
    fn of(intervals: &[&Interval], cpus: u32) -> Self {
        let tcp = summary::tcp_sum(intervals.iter().copied());
        let mut connect = LogHistogram::default();
        let (mut overflows, mut drops) = (0, 0);
        let mut have_host = false;
        for iv in intervals {
            connect.add(&iv.connect_latency);
            if let Some(h) = &iv.host {
                have_host |= h.cpu.is_some();
                if let Some(t) = &h.tcp {
                    overflows += t.listen_overflows();
                    drops += t.listen_drops();
                }
            }
        }
        let host = summary::host(intervals, cpus);
        let listen = overflows.max(drops);
        let mut cgroups: Vec<CgroupFigures> = Vec::new();
        for iv in intervals {
            for cg in &iv.cgroups {
                let i = match cgroups.iter().position(|c| c.path == cg.cgroup) {
                    Some(i) => i,
                    None => {
                        cgroups.push(CgroupFigures {
                            path: cg.cgroup.clone(),
                            ..Default::default()
                        });
                        cgroups.len() - 1
                    }
                };
                let c = &mut cgroups[i];
                c.quota_cores = cg.quota_cores.or(c.quota_cores);
                c.periods += cg.nr_periods;
                c.throttled += cg.nr_throttled;
                c.throttled_seconds += cg.throttled_time_ns as f64 / 1e9;
                for p in &cg.pids {
                    if !c.pids.contains(p) {
                        c.pids.push(*p);
                    }
                }
            }
        }
        let mut conntrack: Option<ConntrackFigures> = None;
        let mut shapers: Vec<ShaperFigures> = Vec::new();
        for iv in intervals {
            if let Some(ct) = &iv.conntrack {
                let c = conntrack.get_or_insert_with(Default::default);
                let fill = ct.count as f64 / ct.max.max(1) as f64;
                if ct.max > 0 && fill >= c.peak_fill {
                    c.peak_fill = fill;
                    c.peak_count = ct.count;
                    c.max = ct.max;
                }
                c.insert_failed += ct.get("insert_failed");
                c.drop += ct.get("drop");
                c.early_drop += ct.get("early_drop");
            }
            for q in &iv.qdiscs {
                let Some(rate) = q.qdisc.rate_bytes_per_second.filter(|r| *r > 0) else {
                    continue;
                };
                let same = |s: &ShaperFigures| {
                    s.netns == q.netns && s.device == q.qdisc.device && s.handle == q.qdisc.handle
                };
                let i = match shapers.iter().position(same) {
                    Some(i) => i,
                    None => {
                        shapers.push(ShaperFigures {
                            netns: q.netns.clone(),
                            device: q.qdisc.device.clone(),
                            kind: q.qdisc.kind.clone(),
                            handle: q.qdisc.handle.clone(),
                            ..Default::default()
                        });
                        shapers.len() - 1
                    }
                };
                let s = &mut shapers[i];
                s.rate = rate;
                s.bytes += q.qdisc.delta.bytes;
                s.drops += q.qdisc.delta.drops;
                s.overlimits += q.qdisc.delta.overlimits;
                s.peak_backlog_packets = s.peak_backlog_packets.max(q.qdisc.delta.backlog_packets);
            }
        }
        let send_limits = summary::send_limits(intervals);
        let (mut gen_ns, mut gen_secs, mut generator_capacity) = (0u64, 0.0, None::<f64>);
        for iv in intervals {
            let gens: Vec<_> = iv
                .processes
                .iter()
                .filter(|p| p.role == Role::LoadGenerator && p.oncpu_ns > 0)
                .collect();
            if gens.is_empty() {
                continue;
            }
            gen_ns += gens.iter().map(|p| p.oncpu_ns).sum::<u64>();
            gen_secs += iv.end_unix_ns.saturating_sub(iv.start_unix_ns) as f64 / 1e9;
            // Busy processes only: a wrapper idling beside the generator adds no capacity.
            let busy: Vec<_> = gens
                .iter()
                .filter(|p| {
                    p.oncpu_ns as f64
                        >= 0.05 * iv.end_unix_ns.saturating_sub(iv.start_unix_ns) as f64
                })
                .collect();
            if !busy.is_empty() && busy.iter().all(|p| p.capacity_cores.is_some()) {
                let cap = busy
                    .iter()
                    .filter_map(|p| p.capacity_cores)
                    .sum::<f64>()
                    .min(cpus as f64);
                generator_capacity = Some(generator_capacity.map_or(cap, |c| c.max(cap)));
            }
        }
        let generator_cores = if gen_secs > 0.0 {
            gen_ns as f64 / 1e9 / gen_secs
        } else {
            0.0
        };
        let ephemeral_peak = intervals
            .iter()
            .filter_map(|iv| iv.host.as_ref()?.ephemeral_ports.as_ref())
            .map(|e| e.in_use_fraction)
            .reduce(f64::max);
        let time_wait_peak = intervals
            .iter()
            .filter_map(|iv| iv.host.as_ref()?.sockets.as_ref())
            .map(|s| s.tcp_time_wait)
            .max();
        WindowFigures {
            conntrack,
            shapers,
            send_limits,
            ephemeral_peak,
            time_wait_peak,
            seconds: summary::seconds(intervals),
            cpus,
            host_busy: have_host.then_some(host.busy_fraction),
            host_iowait: host.iowait_fraction,
            pressure: host.pressure.clone(),
            opens: tcp.active_opens.max(tcp.passive_opens),
            syn_retransmits: tcp.syn_retransmits,
            synack_retransmits: tcp.synack_retransmits,
            connect_failed: tcp.connect_failed,
            addr_unavailable: tcp.connect_addr_unavailable,
            listen_overflows: listen,
            setup_failures: tcp.syn_retransmits
                + tcp.synack_retransmits
                + listen
                + tcp.connect_failed,
            connect: LatencySummary::of(&connect),
            processes: summary::processes(intervals, 0.0),
            cgroups,
            pools: super::pools::summarize(intervals),
            services: super::services::services(intervals),
            generator_cores,
            generator_capacity,
        }
    }

    /// The service a process belongs to.
    fn service_of(&self, pid: u32) -> Option<&super::services::ServiceFigures> {
        self.services.iter().find(|s| s.pids.contains(&pid))
    }

    /// Processes doing the work: not the generator, chokepoint, the kernel or a wrapper
    /// (a shell, `timeout`, `env`, `make`: they start the work and wait for it).
    fn workload(&self) -> impl Iterator<Item = &ProcessSummary> {
        self.processes.iter().filter(|p| {
            matches!(p.role, Role::Server | Role::Other) && !super::services::is_wrapper(&p.comm)
        })
    }

    fn generator_cores(&self) -> f64 {
        self.generator_cores
    }

    fn top_text(&self) -> String {
        self.processes
            .iter()
            .filter(|p| p.role != Role::Profiler)
            .take(3)
            .map(|p| format!("{} {:.2} cores", p.comm, p.cores_used))
            .collect::<Vec<_>>()
            .join(", ")
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

fn cpu(w: &WindowFigures) -> Candidate {
    let busy = w.host_busy;
    // A workload process pinned to fewer CPUs than the host has, using them all.
    let pinned = w.workload().find(|p| {
        p.limited_by == Some(LimitedBy::Affinity)
            && p.capacity_cores
                .is_some_and(|c| p.cores_used >= CPU_SATURATED_BUSY * c)
    });
    if let Some(p) = pinned {
        let cap = p.capacity_cores.unwrap_or(0.0);
        return Candidate {
            kind: VerdictKind::CpuSaturated,
            fired: true,
            strength: (p.cores_used / cap.max(1e-9) - CPU_SATURATED_BUSY)
                / (1.0 - CPU_SATURATED_BUSY),
            summary: format!(
                "CPU-saturated: {} [{}] uses {:.2} of the {cap:.0} cores its affinity allows ({}), while the host is {} busy.",
                p.comm,
                p.pid,
                p.cores_used,
                pct(p.cores_used / cap.max(1e-9)),
                busy.map_or("not measured".into(), pct)
            ),
            evidence: vec![
                process_ev(p),
                ev(
                    &format!("process.{}[{}].capacity_cores", p.comm, p.pid),
                    cap,
                    "cores",
                    Some(">= 90% used"),
                    "affinity mask",
                ),
            ],
            counter: String::new(),
        };
    }
    let fired = busy.is_some_and(|b| b >= CPU_SATURATED_BUSY);
    let mut evidence = Vec::new();
    if let Some(b) = busy {
        evidence.push(ev(
            "host.cpu_busy",
            b,
            "fraction",
            Some(">= 0.90"),
            "/proc/stat",
        ));
    }
    if let Some(p) = &w.pressure {
        evidence.push(ev(
            "host.pressure.cpu_some",
            p.cpu_some,
            "fraction",
            None,
            "/proc/pressure/cpu",
        ));
    }
    evidence.extend(
        w.processes
            .iter()
            .filter(|p| p.role != Role::Profiler)
            .take(3)
            .map(process_ev),
    );
    let text = match busy {
        Some(b) => format!(
            "host CPU {} busy on {} CPUs ({})",
            pct(b),
            w.cpus,
            w.top_text()
        ),
        None => "host CPU not measured (/proc/stat unreadable)".into(),
    };
    Candidate {
        kind: VerdictKind::CpuSaturated,
        fired,
        strength: busy.map_or(0.0, |b| {
            (b - CPU_SATURATED_BUSY) / (1.0 - CPU_SATURATED_BUSY)
        }),
        // A keep-alive load opens no connections in the window: no "at 0 connections/s" (the
        // text report quotes the load generator's own rate).
        summary: match w.opens as f64 / w.seconds.max(1e-9) {
            _ if w.opens == 0 => format!("CPU-saturated: {text} through the window."),
            per_s if per_s < 1.0 => {
                format!(
                    "CPU-saturated: {text} through the window, at {per_s:.1} new connections/s."
                )
            }
            per_s => {
                format!(
                    "CPU-saturated: {text} through the window, at {per_s:.0} new connections/s."
                )
            }
        },
        evidence,
        counter: format!("{text}: below the 90% threshold"),
    }
}

fn throttled(w: &WindowFigures) -> Candidate {
    let secs = w.seconds.max(1e-9);
    let in_play = |pid: &u32| {
        w.processes
            .iter()
            .any(|p| p.pid == *pid && matches!(p.role, Role::Server | Role::Other))
    };
    let worst = w
        .cgroups
        .iter()
        .filter(|c| c.periods > 0 && c.pids.iter().any(in_play))
        .max_by(|a, b| a.throttled_seconds.total_cmp(&b.throttled_seconds));
    let Some(c) = worst else {
        return Candidate {
            kind: VerdictKind::CpuThrottled,
            fired: false,
            strength: 0.0,
            summary: String::new(),
            evidence: Vec::new(),
            counter: if w.cgroups.iter().any(|c| c.quota_cores.is_some()) {
                "no CPU quota of a workload process ran out in the window".into()
            } else {
                "no CPU cgroup quota on the processes in play".into()
            },
        };
    };
    let ratio = c.throttled as f64 / c.periods as f64;
    let held = c.throttled_seconds / secs;
    let fired = ratio >= THROTTLED_PERIODS && held >= THROTTLED_TIME;
    let names: Vec<String> = w
        .processes
        .iter()
        .filter(|p| c.pids.contains(&p.pid))
        .take(3)
        .map(|p| format!("{} [{}]", p.comm, p.pid))
        .collect();
    // CPU the cgroup's processes used, from the scheduler probes (cpuacct may sit in another
    // v1 hierarchy, or be missing).
    let used: f64 = w
        .processes
        .iter()
        .filter(|p| c.pids.contains(&p.pid))
        .map(|p| p.cores_used)
        .sum();
    let quota = c.quota_cores.map_or("no".into(), |q| format!("{q:.2}"));
    Candidate {
        kind: VerdictKind::CpuThrottled,
        fired,
        strength: (ratio - THROTTLED_PERIODS) / (1.0 - THROTTLED_PERIODS),
        summary: format!(
            "CPU-throttled: cgroup {} ({}) with a quota of {quota} cores used {:.2} cores and was throttled in {} of its periods, held off the CPU {:.1}s in {:.0}s; the host is {} busy.",
            c.path,
            names.join(", "),
            used,
            pct(ratio),
            c.throttled_seconds,
            secs,
            w.host_busy.map_or("not measured".into(), pct)
        ),
        evidence: vec![
            ev(
                &format!("cgroup.{}.throttled_periods_share", c.path),
                ratio,
                "fraction",
                Some(">= 0.20"),
                "cpu.stat nr_throttled / nr_periods",
            ),
            ev(
                &format!("cgroup.{}.throttled_seconds_per_s", c.path),
                held,
                "s/s",
                Some(">= 0.05"),
                "cpu.stat throttled_time",
            ),
            ev(
                &format!("cgroup.{}.used_cores", c.path),
                used,
                "cores",
                None,
                "sched:sched_switch on-CPU time of its processes",
            ),
            ev(
                &format!("cgroup.{}.quota_cores", c.path),
                c.quota_cores.unwrap_or(0.0),
                "cores",
                None,
                "cfs_quota_us / cfs_period_us, cpu.max",
            ),
        ],
        counter: format!(
            "cgroup {}: throttled in {} of periods, {:.2}s/s held off (needs >= 20% and >= 0.05 s/s)",
            c.path,
            pct(ratio),
            held
        ),
    }
}

fn generator(w: &WindowFigures) -> Candidate {
    let gen_cores = w.generator_cores();
    let gens: Vec<&ProcessSummary> = w
        .processes
        .iter()
        .filter(|p| p.role == Role::LoadGenerator)
        .collect();
    // Capacity: what the generator's processes may use (affinity, cgroup quota), at most the
    // host; the host's CPUs where a busy generator process's capacity was not read.
    let capacity = w.generator_capacity.unwrap_or(w.cpus as f64);
    let share_of_capacity = gen_cores / capacity;
    let busy = w.host_busy.unwrap_or(0.0);
    // A generator's hottest thread pegged while its other threads cannot help.
    let pegged_single = gens.iter().any(|g| {
        g.threads
            .first()
            .is_some_and(|t| t.core_share >= HOT_THREAD_SHARE)
            && g.threads.iter().skip(1).all(|t| t.core_share < 0.2)
    });
    // Saturated against its capacity, or eating most of a saturated host.
    let eats_host = busy >= CPU_SATURATED_BUSY && gen_cores >= 0.5 * busy * capacity;
    let fired = !gens.is_empty()
        && (share_of_capacity >= GENERATOR_SATURATED || eats_host || pegged_single);
    let workload_cores: f64 = w.workload().map(|p| p.cores_used).sum();
    let mut evidence = vec![
        ev(
            "generator.cores",
            gen_cores,
            "cores",
            None,
            "sched:sched_switch, command's process tree",
        ),
        ev(
            "generator.capacity_cores",
            capacity,
            "cores",
            None,
            "affinity, cgroup quota, online CPUs",
        ),
        ev(
            "generator.share_of_capacity",
            share_of_capacity,
            "fraction",
            Some(">= 0.90"),
            "cores / capacity",
        ),
        ev(
            "workload.cores",
            workload_cores,
            "cores",
            None,
            "servers and other processes",
        ),
    ];
    if let Some(t) = gens
        .iter()
        .filter_map(|g| g.threads.first())
        .max_by(|a, b| a.core_share.total_cmp(&b.core_share))
    {
        evidence.push(ev(
            &format!("generator.thread.{}[{}].core_share", t.comm, t.tid),
            t.core_share,
            "fraction",
            Some(">= 0.90 (single hot thread)"),
            "sched:sched_switch",
        ));
    }
    let names: Vec<String> = gens
        .iter()
        .take(2)
        .map(|g| format!("{} {:.2} cores", g.comm, g.cores_used))
        .collect();
    Candidate {
        kind: VerdictKind::LoadGeneratorBound,
        fired,
        strength: (share_of_capacity.max(if eats_host {
            gen_cores / (busy * capacity).max(1e-9)
        } else {
            0.0
        }) - 0.5)
            * 2.0,
        summary: format!(
            "Load-generator-bound: the load generator ({}) uses {:.2} of {} cores ({}) while the workload uses {:.2}; the test measures the generator, not the system under test.",
            names.join(", "),
            gen_cores,
            capacity,
            pct(share_of_capacity),
            workload_cores
        ),
        evidence,
        counter: if gens.is_empty() {
            "no load-generator process seen (no command, and no known load tool running)".into()
        } else {
            format!(
                "the generator uses {gen_cores:.2} of {capacity} cores ({}), no thread of it pegged alone",
                pct(share_of_capacity)
            )
        },
    }
}

fn single_thread(w: &WindowFigures) -> Candidate {
    let hot = w
        .workload()
        .filter_map(|p| p.threads.first().map(|t| (p, t)))
        .filter(|(_, t)| t.core_share >= HOT_THREAD_SHARE)
        .max_by(|a, b| a.1.core_share.total_cmp(&b.1.core_share));
    let busy = w.host_busy.unwrap_or(0.0);
    match hot {
        Some((p, t)) => {
            // Room: the service (the process and its fellow workers: prefork, SO_REUSEPORT,
            // backends) could use more cores than it does. Two workers each pegging a core
            // of two are a saturated service, not one saturated thread.
            let (service_cores, processes) = w.service_of(p.pid).map_or((p.cores_used, 1), |s| {
                (s.cores.max(p.cores_used), s.pids.len())
            });
            let capacity = p.capacity_cores.unwrap_or(w.cpus as f64);
            let room = capacity - service_cores;
            let fired = room >= 0.5 && busy < CPU_SATURATED_BUSY;
            let of_what = if processes > 1 {
                format!("its service ({processes} {} processes)", p.comm)
            } else {
                "the process".to_string()
            };
            Candidate {
                kind: VerdictKind::SingleThreadSaturated,
                fired,
                strength: (t.core_share - HOT_THREAD_SHARE) / (1.0 - HOT_THREAD_SHARE),
                summary: format!(
                    "Single-thread-saturated: {} thread {} ({}) runs {} of a core while {of_what} uses {service_cores:.2} of {capacity:.0} cores and the host is {} busy.",
                    p.comm,
                    t.tid,
                    t.comm,
                    pct(t.core_share),
                    pct(busy)
                ),
                evidence: vec![
                    ev(
                        &format!("thread.{}[{}].core_share", t.comm, t.tid),
                        t.core_share,
                        "fraction",
                        Some(">= 0.90"),
                        "sched:sched_switch",
                    ),
                    process_ev(p),
                ],
                counter: format!(
                    "{} thread {} is at {} of a core but {of_what} has no spare capacity ({service_cores:.2} of {capacity:.0} cores) or the host is saturated",
                    p.comm,
                    t.tid,
                    pct(t.core_share),
                ),
            }
        }
        None => {
            let top = w
                .workload()
                .filter_map(|p| p.threads.first().map(|t| (p, t)))
                .max_by(|a, b| a.1.core_share.total_cmp(&b.1.core_share));
            Candidate {
                kind: VerdictKind::SingleThreadSaturated,
                fired: false,
                strength: 0.0,
                summary: String::new(),
                evidence: Vec::new(),
                counter: match top {
                    Some((p, t)) => format!(
                        "hottest workload thread {} of {} at {} of a core, below 90%",
                        t.tid,
                        p.comm,
                        pct(t.core_share)
                    ),
                    None => "no workload thread ran".into(),
                },
            }
        }
    }
}

fn connection_setup(w: &WindowFigures) -> Candidate {
    let ratio = w.setup_failures as f64 / w.opens.max(1) as f64;
    let tcp_fired = w.setup_failures >= SETUP_FAILURE_MIN && ratio >= SETUP_FAILURE_RATIO;
    // A full conntrack table drops new connections before TCP sees them.
    let ct_fired = w.conntrack.as_ref().is_some_and(|c| {
        c.peak_fill >= CONNTRACK_FULL
            && c.failures() >= SETUP_FAILURE_MIN
            && c.failures() as f64 / w.opens.max(1) as f64 >= SETUP_FAILURE_RATIO
    });
    let fired = tcp_fired || ct_fired;
    let ct_text = w.conntrack.as_ref().map(|c| {
        format!(
            "conntrack table {}/{} at its fullest ({}), {} insert failures, {} drops, {} early drops",
            c.peak_count,
            c.max,
            pct(c.peak_fill),
            c.insert_failed,
            c.drop,
            c.early_drop
        )
    });
    let mut text = format!(
        "{} setup failures in {} opens ({}: {} SYN and {} SYN-ACK retransmits, {} listen overflows, {} failed connects of which {} for want of a local port)",
        w.setup_failures,
        w.opens,
        // No connection got through at all (e.g. a full conntrack table): a ratio means nothing.
        if w.opens == 0 {
            "none got through".to_string()
        } else {
            format!("{:.1}%", ratio * 100.0)
        },
        w.syn_retransmits,
        w.synack_retransmits,
        w.listen_overflows,
        w.connect_failed,
        w.addr_unavailable
    );
    if let Some(ct) = &ct_text {
        text = if ct_fired {
            format!("{ct}; {text}")
        } else {
            format!("{text}; {ct}")
        };
    }
    let mut evidence = vec![
        ev(
            "tcp.opens_per_s",
            w.opens as f64 / w.seconds.max(1e-9),
            "1/s",
            None,
            "sock:inet_sock_set_state",
        ),
        ev(
            "tcp.syn_retransmits",
            w.syn_retransmits as f64,
            "count",
            None,
            "tcp:tcp_retransmit_skb (SYN_SENT)",
        ),
        ev(
            "tcp.synack_retransmits",
            w.synack_retransmits as f64,
            "count",
            None,
            "tcp:tcp_retransmit_synack",
        ),
        ev(
            "tcp.listen_overflows",
            w.listen_overflows as f64,
            "count",
            None,
            "/proc/net/netstat ListenOverflows/ListenDrops",
        ),
        ev(
            "tcp.connect_failed",
            w.connect_failed as f64,
            "count",
            None,
            "sock:inet_sock_set_state SYN_SENT->CLOSE",
        ),
        ev(
            "tcp.connect_eaddrnotavail",
            w.addr_unavailable as f64,
            "count",
            None,
            "syscalls:sys_exit_connect ret -EADDRNOTAVAIL",
        ),
        ev(
            "tcp.setup_failure_ratio",
            ratio,
            "ratio",
            Some(">= 0.01 and >= 5 events"),
            "failures / opens",
        ),
    ];
    if let Some(p99) = w.connect.p99_ms {
        evidence.push(ev(
            "tcp.connect_latency_p99",
            p99,
            "ms",
            None,
            "SYN_SENT->ESTABLISHED histogram",
        ));
    }
    if let Some(c) = &w.conntrack {
        let src = "nf_conntrack_count/max, /proc/net/stat/nf_conntrack";
        evidence.push(ev(
            "conntrack.fill",
            c.peak_fill,
            "fraction",
            Some(">= 0.90"),
            src,
        ));
        evidence.push(ev("conntrack.max", c.max as f64, "entries", None, src));
        for (metric, v) in [
            ("conntrack.insert_failed", c.insert_failed),
            ("conntrack.drop", c.drop),
            ("conntrack.early_drop", c.early_drop),
        ] {
            evidence.push(ev(metric, v as f64, "count", None, src));
        }
        evidence.push(ev(
            "conntrack.failures",
            c.failures() as f64,
            "count",
            Some(">= 1% of opens and >= 5"),
            src,
        ));
    }
    if let Some(e) = w.ephemeral_peak {
        evidence.push(ev(
            "tcp.ephemeral_ports_in_use_peak",
            e,
            "fraction",
            None,
            "net.ipv4.ip_local_port_range vs local ports of TCP sockets",
        ));
    }
    if let Some(t) = w.time_wait_peak {
        evidence.push(ev(
            "tcp.time_wait_peak",
            t as f64,
            "sockets",
            None,
            "/proc/net/sockstat TCP tw",
        ));
    }
    let ct_strength = w.conntrack.as_ref().map_or(0.0, |c| {
        if ct_fired {
            c.failures() as f64 / w.opens.max(1) as f64 / SETUP_FAILURE_RATIO / 20.0
        } else {
            0.0
        }
    });
    Candidate {
        kind: VerdictKind::ConnectionSetup,
        fired,
        strength: (ratio / SETUP_FAILURE_RATIO / 20.0).max(ct_strength),
        summary: format!(
            "Connection-setup-bound: {text}; connect p99 {} while host CPU is {} busy.",
            w.connect
                .p99_ms
                .map_or("n/a".into(), |v| format!("{v:.1} ms")),
            w.host_busy.map_or("not measured".into(), pct)
        ),
        evidence,
        counter: format!(
            "{text}: below 1% of opens or fewer than 5 (conntrack: table below 90% full or fewer failures)"
        ),
    }
}

/// (namespace, device) pairs the load's paths cross: device hops, and every device of a
/// namespace hop's namespace. Empty when no path is known.
fn on_paths(r: &Recording) -> Vec<(String, Option<String>)> {
    let secs = super::window::recording_seconds(r);
    let all: Vec<&Interval> = r.intervals.iter().collect();
    let processes = summary::processes(&all, 0.01);
    let devices = super::paths::devices(r, secs);
    super::paths::paths(r, secs, &devices, &processes)
        .iter()
        .flat_map(|p| &p.hops)
        .filter_map(|h| {
            let netns = h.netns.clone()?;
            Some(match h.kind {
                super::paths::HopKind::Netns => (netns, None),
                _ => (netns, Some(h.name.clone())),
            })
        })
        .collect()
}

/// Network-bound: a shaper on the load's path at its rate, or else served sockets whose sends
/// the peers hold back while the server's threads wait in socket writes (delivery).
fn network_bandwidth(w: &WindowFigures, on_paths: &[(String, Option<String>)]) -> Candidate {
    let shaper = shaper_bandwidth(w, on_paths);
    if shaper.fired {
        return shaper;
    }
    let delivery = send_limited(w);
    if delivery.fired {
        return delivery;
    }
    Candidate {
        counter: format!("{}; {}", shaper.counter, delivery.counter),
        evidence: shaper
            .evidence
            .into_iter()
            .chain(delivery.evidence)
            .collect(),
        ..shaper
    }
}

/// The served port whose sockets were held back the most, with its owner's blocked-send time.
fn send_limited(w: &WindowFigures) -> Candidate {
    let secs = w.seconds.max(1e-9);
    let held = |f: &&summary::SendLimitSummary| f.rwnd_limited_seconds + f.sndbuf_limited_seconds;
    let Some(f) = w
        .send_limits
        .iter()
        .max_by(|a, b| held(a).total_cmp(&held(b)))
        .filter(|f| f.busy_seconds > 0.0)
    else {
        return Candidate {
            kind: VerdictKind::NetworkBandwidth,
            fired: false,
            strength: 0.0,
            summary: String::new(),
            evidence: Vec::new(),
            counter: "no served socket had data waiting to be sent (tcp_info busy time 0)".into(),
        };
    };
    let owner = f.owner.clone().unwrap_or_else(|| "?".into());
    // The owner's threads blocked in write/send calls, per second of the window.
    let blocked = w
        .processes
        .iter()
        .filter(|p| Some(&p.comm) == f.owner.as_ref())
        .filter_map(|p| p.offcpu_seconds.by_reason.get("write"))
        .sum::<f64>()
        / secs;
    let share = f.limited_share;
    let busy = w.host_busy.unwrap_or(0.0);
    let fired = share >= SEND_LIMITED_SHARE
        && f.full_send_buffers_peak > 0
        && blocked >= SEND_BLOCKED_PER_S
        && busy < CPU_SATURATED_BUSY;
    let src = "tcp_info over sock_diag (served sockets)";
    let key = |m: &str| format!("send_limits.{}.{m}", f.port);
    let evidence = vec![
        ev(
            &key("limited_share"),
            share,
            "fraction",
            Some(">= 0.50 of busy time"),
            src,
        ),
        ev(
            &key("rwnd_limited_s"),
            f.rwnd_limited_seconds,
            "s",
            None,
            src,
        ),
        ev(
            &key("sndbuf_limited_s"),
            f.sndbuf_limited_seconds,
            "s",
            None,
            src,
        ),
        ev(&key("busy_s"), f.busy_seconds, "s", None, src),
        ev(
            &key("full_send_buffers_peak"),
            f.full_send_buffers_peak as f64,
            "sockets",
            Some(">= 1"),
            "sock_diag SKMEMINFO (queued >= 90% of sndbuf)",
        ),
        ev(
            &key("sockets_peak"),
            f.sockets_peak as f64,
            "sockets",
            None,
            src,
        ),
        ev(
            &format!("process.{owner}.offcpu_write_per_s"),
            blocked,
            "s/s",
            Some(">= 0.50"),
            "sched_switch (blocked system call)",
        ),
    ];
    let text = format!(
        "{owner}'s sockets on port {} were held back {} of the {:.1} s they had data to send ({:.1} s by the peers' receive windows, {:.1} s by their send buffers), up to {} of {} had full send buffers, and its threads waited {blocked:.2} s/s blocked in socket writes",
        f.port,
        pct(share),
        f.busy_seconds,
        f.rwnd_limited_seconds,
        f.sndbuf_limited_seconds,
        f.full_send_buffers_peak,
        f.sockets_peak,
    );
    Candidate {
        kind: VerdictKind::NetworkBandwidth,
        fired,
        strength: ((share - SEND_LIMITED_SHARE) / (1.0 - SEND_LIMITED_SHARE)).clamp(0.0, 1.0),
        summary: format!(
            "Network-bound (delivery): {text}, while host CPU is {} busy: the receivers take data slower than it is sent, and a sender that blocks on one full buffer stalls everyone behind it.",
            w.host_busy.map_or("not measured".into(), pct)
        ),
        evidence,
        counter: format!(
            "{text}: needs >= 50% held back, a full send buffer and >= 0.50 s/s blocked in writes with the CPUs below 90%"
        ),
    }
}

fn shaper_bandwidth(w: &WindowFigures, on_paths: &[(String, Option<String>)]) -> Candidate {
    let secs = w.seconds.max(1e-9);
    // With the load's paths known, only shapers on them count: another device's shaper
    // carrying other traffic at its rate does not hold this load back.
    let on_path = |s: &ShaperFigures| {
        on_paths.is_empty()
            || on_paths
                .iter()
                .any(|(ns, dev)| *ns == s.netns && dev.as_ref().is_none_or(|d| *d == s.device))
    };
    let used = |s: &ShaperFigures| s.bytes as f64 / secs / s.rate as f64;
    // Queueing: packets waited for tokens, were dropped, or sat in the queue.
    let queued = |s: &ShaperFigures| s.drops > 0 || s.overlimits > 0 || s.peak_backlog_packets > 0;
    let busiest = |only_on_path: bool| {
        w.shapers
            .iter()
            .filter(|s| !only_on_path || on_path(s))
            .max_by(|a, b| used(a).total_cmp(&used(b)))
    };
    let best = busiest(true).or_else(|| busiest(false));
    let Some(s) = best else {
        return Candidate {
            kind: VerdictKind::NetworkBandwidth,
            fired: false,
            strength: 0.0,
            summary: String::new(),
            evidence: Vec::new(),
            counter: "no rate-limiting qdisc (tbf, htb) on the devices in use".into(),
        };
    };
    let u = used(s);
    let fired = u >= BANDWIDTH_USED && queued(s) && on_path(s);
    let name = format!("{} {} {}", s.netns, s.device, s.kind);
    let src = "rtnetlink qdisc statistics";
    let evidence = vec![
        ev(
            &format!("qdisc.{}.{}.bytes_per_s", s.device, s.handle),
            s.bytes as f64 / secs,
            "B/s",
            None,
            src,
        ),
        ev(
            &format!("qdisc.{}.{}.rate", s.device, s.handle),
            s.rate as f64,
            "B/s",
            None,
            "qdisc options (tbf rate, htb ceil)",
        ),
        ev(
            &format!("qdisc.{}.{}.used", s.device, s.handle),
            u,
            "fraction",
            Some(">= 0.90 with drops, overlimits or backlog"),
            src,
        ),
        ev(
            &format!("qdisc.{}.{}.drops", s.device, s.handle),
            s.drops as f64,
            "count",
            None,
            src,
        ),
        ev(
            &format!("qdisc.{}.{}.overlimits", s.device, s.handle),
            s.overlimits as f64,
            "count",
            None,
            src,
        ),
        ev(
            &format!("qdisc.{}.{}.backlog_packets_peak", s.device, s.handle),
            s.peak_backlog_packets as f64,
            "packets",
            None,
            src,
        ),
    ];
    let text = format!(
        "{name} ({}) carries {:.0} KB/s of its {:.0} KB/s rate ({}), {} drops, {} overlimits, up to {} packets queued",
        s.handle,
        s.bytes as f64 / secs / 1e3,
        s.rate as f64 / 1e3,
        pct(u),
        s.drops,
        s.overlimits,
        s.peak_backlog_packets
    );
    Candidate {
        kind: VerdictKind::NetworkBandwidth,
        fired,
        strength: ((u - BANDWIDTH_USED) / (1.0 - BANDWIDTH_USED)).clamp(0.0, 1.0),
        summary: format!(
            "Network-bandwidth-bound: {text}, while host CPU is {} busy.",
            w.host_busy.map_or("not measured".into(), pct)
        ),
        evidence,
        counter: if on_path(s) {
            format!("{text}: below 90% of its rate or no queueing")
        } else {
            format!("{text}, but no path of the load crosses it")
        },
    }
}

/// Services: workload processes grouped by name (PostgreSQL backends, nginx workers).
fn services(w: &WindowFigures) -> Vec<(String, Vec<&ProcessSummary>)> {
    let mut out: Vec<(String, Vec<&ProcessSummary>)> = Vec::new();
    for p in w.workload() {
        match out.iter_mut().find(|(n, _)| *n == p.comm) {
            Some((_, v)) => v.push(p),
            None => out.push((p.comm.clone(), vec![p])),
        }
    }
    out
}

/// Lock contention, by its mechanism rather than by who wakes whom: work is waiting at a
/// service (requests in flight there beyond those on a CPU or at an upstream), and the
/// threads that could do it are blocked until another thread of the same service wakes them,
/// more of them than idle workers explain (an idle pool parks its workers on a condition
/// variable and its dispatcher wakes them: sibling wake-ups and futex sleeps alone prove
/// nothing). Timed sleeps, disk waits and upstream waits each explain waiting work on their
/// own: when they explain as much, this is not the verdict.
fn lock_contention(w: &WindowFigures) -> Candidate {
    let kind = VerdictKind::LockContention;
    let busy = w.host_busy.unwrap_or(0.0);
    let best = w
        .services
        .iter()
        .filter(|s| s.inflight > 0.0 || s.blocked_on_siblings > 0.0)
        .max_by(|a, b| {
            let score = |s: &super::services::ServiceFigures| {
                if closed_system(s) {
                    s.blocked_on_siblings
                } else {
                    s.blocked_on_siblings_with_work().min(s.waiting())
                }
            };
            score(a)
                .total_cmp(&score(b))
                .then(a.waiting().total_cmp(&b.waiting()))
        });
    let Some(s) = best else {
        return Candidate {
            kind,
            fired: false,
            strength: 0.0,
            summary: String::new(),
            evidence: Vec::new(),
            counter:
                "no service had requests in flight or threads woken by each other in the window"
                    .into(),
        };
    };
    let name = &s.name;
    let waiting = s.waiting();
    let held = s.blocked_on_siblings_with_work();
    let timed = s.blocked_in("sleep");
    let disk = s.blocked_uninterruptible;
    let rival = timed.max(disk);
    let measured_inflight = s.inflight > 0.0;
    let fired = serialised_by_own_threads(s) && busy < CPU_SATURATED_BUSY;
    let mut by_reason: Vec<(&String, &f64)> = s.blocked_by_reason.iter().collect();
    by_reason.sort_by(|a, b| b.1.total_cmp(a.1));
    let blocked_in = by_reason
        .iter()
        .take(2)
        .map(|(r, v)| format!("{r} {v:.1}"))
        .collect::<Vec<_>>()
        .join(", ");
    let closed = closed_system(s);
    let counter = if closed {
        format!(
            "{name}: serves no requests and its own threads end {} of its off-CPU time, but {:.1} threads blocked on them is under one, or timed sleeps/disk waits ({rival:.1}) explain as much",
            pct(s.blocked_on_siblings / s.blocked.max(1e-9)),
            s.blocked_on_siblings
        )
    } else if !measured_inflight {
        format!(
            "{name}: no inbound requests measured (sock_send/recv probes), so no work can be shown waiting; {} of its wake-ups come from its own threads",
            pct(s.sibling_wake_share)
        )
    } else if waiting < LOCK_WAITING_MIN {
        format!(
            "{name}: {:.1} requests in flight against {:.2} cores busy and {:.1} at upstreams: no work waits inside it",
            s.inflight, s.cores, s.upstream_inflight
        )
    } else if held <= rival {
        format!(
            "{name}: {waiting:.1} requests wait, but timed sleeps ({timed:.1} threads) or disk waits ({disk:.1} threads) explain at least as much as waits on its own threads ({held:.1} beyond idle workers)"
        )
    } else {
        format!(
            "{name}: {waiting:.1} requests wait; {held:.1} threads blocked on its own threads beyond its {:.0} idle ones, under half of them",
            s.idle_threads()
        )
    };
    Candidate {
        kind,
        fired,
        strength: if closed {
            (s.blocked_on_siblings / s.blocked.max(1e-9) - LOCK_SELF_DRIVEN)
                / (1.0 - LOCK_SELF_DRIVEN)
        } else {
            ((held / waiting.max(1e-9)) - LOCK_EXPLAINS) / (1.0 - LOCK_EXPLAINS)
        },
        summary: if closed {
            format!(
                "Lock-contention: {name} serves no requests and its {} threads are woken only by each other ({} of their off-CPU time, {:.0} hand-overs/s): {:.1} of them wait at any time for another to let go while {:.2} cores run, blocked in {blocked_in} threads on average, with the host {} busy: the work is serialised, handed from one holder to the next.",
                s.threads,
                pct(s.blocked_on_siblings / s.blocked.max(1e-9)),
                s.sibling_wakes_per_s,
                s.blocked_on_siblings,
                s.cores,
                pct(busy)
            )
        } else {
            format!(
                "Lock-contention: {name} has {:.1} requests in flight but {:.2} cores busy; {held:.1} of its {} threads wait at any time until another of its threads wakes them (more than its {:.0} idle ones could), blocked in {blocked_in} threads on average, while the host is {} busy: the work is serialised, handed from one holder to the next.",
                s.inflight,
                s.cores,
                s.threads,
                s.idle_threads(),
                pct(busy)
            )
        },
        evidence: vec![
            ev(
                &format!("service.{name}.requests_waiting"),
                waiting,
                "requests",
                Some(">= 1"),
                "sock:sock_recv_length/sock_send_length (in flight) - on-CPU - upstream in use",
            ),
            ev(
                &format!("service.{name}.threads_blocked_on_own_with_work"),
                held,
                "threads",
                Some(">= 0.50 of requests waiting"),
                "sched:sched_waking waker -> wakee, off-CPU time ended, beyond idle threads",
            ),
            ev(
                &format!("service.{name}.threads_in_timed_sleep"),
                timed,
                "threads",
                None,
                "sched:sched_switch, blocked in nanosleep/timers",
            ),
            ev(
                &format!("service.{name}.threads_in_disk_wait"),
                disk,
                "threads",
                None,
                "sched:sched_switch state D",
            ),
            ev(
                &format!("service.{name}.requests_in_flight"),
                s.inflight,
                "requests",
                None,
                "sock:sock_recv_length/sock_send_length",
            ),
            ev(
                &format!("service.{name}.threads"),
                s.threads as f64,
                "threads",
                None,
                "sched:sched_switch",
            ),
            ev(
                &format!("service.{name}.handover_share"),
                s.sibling_wake_share,
                "fraction",
                None,
                "sched:sched_waking waker -> wakee",
            ),
            ev(
                &format!("service.{name}.offcpu_ended_by_own_share"),
                s.blocked_on_siblings / s.blocked.max(1e-9),
                "fraction",
                closed.then_some(">= 0.90 (no requests: a closed system)"),
                "sched:sched_waking, off-CPU time ended",
            ),
            ev(
                &format!("service.{name}.handover_per_s"),
                s.sibling_wakes_per_s,
                "1/s",
                Some(">= 10"),
                "sched:sched_waking",
            ),
            ev(
                &format!("service.{name}.oncpu_cores"),
                s.cores,
                "cores",
                None,
                "sched:sched_switch",
            ),
        ],
        counter,
    }
}

fn io(w: &WindowFigures) -> Candidate {
    let secs = w.seconds.max(1e-9);
    // The service that waits on storage most: its own blocked time against its own CPU.
    let worst = services(w)
        .into_iter()
        .map(|(name, procs)| {
            let io: f64 = procs.iter().map(|p| p.offcpu_seconds.io).sum();
            let oncpu: f64 = procs.iter().map(|p| p.cpu_seconds).sum();
            (name, io, oncpu)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let Some((name, io, oncpu)) = worst.filter(|w| w.1 > 0.0) else {
        return Candidate {
            kind: VerdictKind::IoBound,
            fired: false,
            strength: 0.0,
            summary: String::new(),
            evidence: vec![ev(
                "host.iowait",
                w.host_iowait,
                "fraction",
                None,
                "/proc/stat",
            )],
            counter: "no workload thread blocked uninterruptibly (disk) in the window".into(),
        };
    };
    let blocked = io / secs;
    let fired = blocked >= IO_BLOCKED_THREADS && io >= oncpu;
    Candidate {
        kind: VerdictKind::IoBound,
        fired,
        strength: (blocked - IO_BLOCKED_THREADS).min(1.0),
        summary: format!(
            "IO-bound: {name} spent {io:.1}s blocked uninterruptibly (on average {blocked:.2} threads at any time) against {oncpu:.1}s on CPU; host iowait {}.",
            pct(w.host_iowait)
        ),
        evidence: vec![
            ev(
                &format!("service.{name}.offcpu_io_threads"),
                blocked,
                "threads",
                Some(">= 0.50 and >= on-CPU"),
                "sched:sched_switch state D",
            ),
            ev(
                &format!("service.{name}.oncpu_seconds"),
                oncpu,
                "s",
                None,
                "sched:sched_switch",
            ),
            ev("host.iowait", w.host_iowait, "fraction", None, "/proc/stat"),
        ]
        .into_iter()
        .chain(w.pressure.iter().flat_map(|p| {
            [
                ev(
                    "host.pressure.io_some",
                    p.io_some,
                    "fraction",
                    None,
                    "/proc/pressure/io",
                ),
                ev(
                    "host.pressure.io_full",
                    p.io_full,
                    "fraction",
                    None,
                    "/proc/pressure/io",
                ),
            ]
        }))
        .collect(),
        counter: format!(
            "{name} blocked in uninterruptible (disk) waits {blocked:.2} threads on average, {io:.1}s vs {oncpu:.1}s on CPU"
        ),
    }
}

/// The lock-contention mechanism on one service: work waits inside it, and waits on its own
/// threads beyond its idle ones explain at least half of that, more than timed sleeps or
/// disk waits do, with hand-overs happening. A service that serves no requests (a batch job,
/// threads working through shared state) is judged as a closed system: when at least 90% of
/// its off-CPU time is ended by its own threads, nothing outside gives it work to wait for,
/// so every such wait is a hand-over.
fn serialised_by_own_threads(s: &super::services::ServiceFigures) -> bool {
    let rival = s.blocked_in("sleep").max(s.blocked_uninterruptible);
    if s.sibling_wakes_per_s < LOCK_HANDOVERS_MIN_PER_S {
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

/// No requests measured at the service and its off-CPU time ended by its own threads.
fn closed_system(s: &super::services::ServiceFigures) -> bool {
    s.inflight == 0.0 && s.blocked > 0.0 && s.blocked_on_siblings >= LOCK_SELF_DRIVEN * s.blocked
}

fn pool_saturated(w: &WindowFigures) -> Candidate {
    let kind = VerdictKind::PoolSaturated;
    // The pool with most requests behind it: queued, else inbound work in flight, else busy.
    // Queued requests belong to the holder process, so its pools tie on them: the one carrying
    // most requests is the one they wait for. A connection that carried no request is no pool.
    let Some(p) = w
        .pools
        .iter()
        .filter(|p| p.requests_per_s > 0.0)
        .max_by(|a, b| {
            a.queued
                .total_cmp(&b.queued)
                .then(a.inbound_concurrency.total_cmp(&b.inbound_concurrency))
                .then(a.requests_per_s.total_cmp(&b.requests_per_s))
                .then(a.utilisation.total_cmp(&b.utilisation))
        })
    else {
        return Candidate {
            kind,
            fired: false,
            strength: 0.0,
            summary: String::new(),
            evidence: Vec::new(),
            counter: "no process held outbound TCP connections that carried requests".into(),
        };
    };
    let busy = w.host_busy.unwrap_or(0.0);
    // The upstream's own processes: saturated on CPU, or handing work to each other (locks).
    let upstream_cores: f64 = w
        .processes
        .iter()
        .filter(|q| q.comm == p.upstream)
        .map(|q| q.cores_used)
        .sum();
    // Its capacity: the largest any of its processes may use (a shared quota or affinity), else
    // the host's CPUs.
    let upstream_capacity = w
        .processes
        .iter()
        .filter(|q| q.comm == p.upstream)
        .filter_map(|q| q.capacity_cores)
        .fold(None, |m: Option<f64>, c| Some(m.map_or(c, |m| m.max(c))))
        .unwrap_or(w.cpus as f64)
        .min(w.cpus as f64);
    let upstream_cpu_bound = upstream_cores >= CPU_SATURATED_BUSY * upstream_capacity;
    let upstream_service = w.services.iter().find(|s| s.name == p.upstream);
    let upstream_locked = upstream_service.is_some_and(serialised_by_own_threads);
    let full = p.utilisation >= POOL_SATURATED_USE;
    // The host's own saturation is the CPU candidate's (it goes first); here it only keeps a
    // pool that also fills from being hidden, as a secondary contributor.
    let fired = full && p.queued >= POOL_QUEUED_MIN && !upstream_cpu_bound && !upstream_locked;
    let name = format!("{}->{}", p.process, p.upstream);
    let evidence = vec![
        ev(
            &format!("pool.{name}.size"),
            p.size,
            "connections",
            None,
            "sock:sock_send_length/sock_recv_length, per socket",
        ),
        ev(
            &format!("pool.{name}.in_use"),
            p.in_use,
            "connections",
            None,
            "busy time (request sent -> response received) / interval",
        ),
        ev(
            &format!("pool.{name}.utilisation"),
            p.utilisation,
            "fraction",
            Some(">= 0.90"),
            if p.churned {
                "in flight / their ceiling (a connection per request)"
            } else {
                "in use / size"
            },
        ),
        ev(
            &format!("pool.{name}.opens_per_s"),
            p.opens_per_s,
            "1/s",
            None,
            "sock:inet_sock_set_state, the holder's connects to the endpoint",
        ),
        ev(
            &format!("pool.{name}.queued"),
            p.queued,
            "requests",
            Some(">= 1"),
            "inbound in flight - outbound in use",
        ),
        ev(
            &format!("pool.{name}.wait_ms_estimate"),
            p.wait_ms_estimate,
            "ms",
            None,
            "queued / inbound requests per second",
        ),
        ev(
            &format!("service.{}.cores", p.upstream),
            upstream_cores,
            "cores",
            None,
            "sched:sched_switch",
        ),
    ];
    let counter = if !full && p.churned {
        format!(
            "{} -> {} ({}): a new connection per request, {:.1} requests in flight upstream against a ceiling of {:.1}: the level moves, no cap holds it",
            p.process, p.upstream, p.endpoint, p.in_use, p.ceiling
        )
    } else if !full {
        format!(
            "{} -> {} ({}): {:.1} of {:.1} connections in use ({}), free slots: requests do not wait for a connection",
            p.process,
            p.upstream,
            p.endpoint,
            p.in_use,
            p.size,
            pct(p.utilisation)
        )
    } else if p.queued < POOL_QUEUED_MIN {
        format!(
            "{} -> {} pool is {} in use but only {:.1} requests wait behind it",
            p.process,
            p.upstream,
            pct(p.utilisation),
            p.queued
        )
    } else if let Some(u) = upstream_service.filter(|_| upstream_locked) {
        format!(
            "{} -> {} pool is full, but {} serialises its work on locks ({:.1} requests waiting inside it, {:.1} threads blocked on its own threads): the upstream contends for locks",
            p.process,
            p.upstream,
            p.upstream,
            u.waiting(),
            u.blocked_on_siblings_with_work()
        )
    } else {
        format!(
            "{} -> {} pool is full, but the upstream uses {upstream_cores:.2} of the {upstream_capacity:.1} cores it may use: its CPU, not the pool",
            p.process, p.upstream
        )
    };
    Candidate {
        kind,
        fired,
        strength: (p.queued / (p.queued + p.size.min(p.ceiling.max(1.0))).max(1e-9))
            .clamp(0.0, 1.0),
        summary: if p.churned {
            format!(
                "Pool-saturated (concurrency cap): {} opens a new connection to {} ({}) per request ({:.0}/s) and keeps {:.2} requests in flight there, flat at its ceiling of {:.1}, with {:.1} requests queued behind that cap (about {:.1} ms each) while {} uses {upstream_cores:.2} cores and the host is {} busy: a limit on concurrent upstream requests, not the upstream, sets throughput.",
                p.process,
                p.upstream,
                p.endpoint,
                p.opens_per_s,
                p.in_use,
                p.ceiling,
                p.queued,
                p.wait_ms_estimate,
                p.upstream,
                pct(busy)
            )
        } else {
            format!(
                "Pool-saturated: {} holds {:.1} connections to {} ({}), {:.2} in use ({}), with {:.1} requests queued for them (about {:.1} ms each) while {} uses {upstream_cores:.2} cores and the host is {} busy: the pool, not the upstream, sets throughput.",
                p.process,
                p.size,
                p.upstream,
                p.endpoint,
                p.in_use,
                pct(p.utilisation),
                p.queued,
                p.wait_ms_estimate,
                p.upstream,
                pct(busy)
            )
        },
        evidence,
        counter,
    }
}
