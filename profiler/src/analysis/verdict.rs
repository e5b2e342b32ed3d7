//! Attribution: each candidate bottleneck's evidence in the analysis window, then a decision.
//! Every rule and threshold is documented, with its reasoning, in docs/attribution.md.
use serde::{Deserialize, Serialize};

use super::{
    summary::{self, LatencySummary, ProcessSummary},
    window::Window,
};
use crate::recording::{Interval, LogHistogram, Recording, Role};

/// The fixed vocabulary of verdicts (a contract: extend, never rename).
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

pub struct Inputs<'a> {
    pub recording: &'a Recording,
    pub window: &'a Window,
}

/// Figures of the analysis window that the rules look at.
struct WindowFigures {
    seconds: f64,
    host_busy: Option<f64>,
    opens: u64,
    passive_opens: u64,
    syn_retransmits: u64,
    synack_retransmits: u64,
    connect_failed: u64,
    listen_overflows: u64,
    listen_drops: u64,
    resets_sent: u64,
    connect: LatencySummary,
    top: Vec<ProcessSummary>,
}

fn figures(intervals: &[&Interval], cpus: u32) -> WindowFigures {
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
    WindowFigures {
        seconds: summary::seconds(intervals),
        host_busy: have_host.then_some(host.busy_fraction),
        opens: tcp.active_opens.max(tcp.passive_opens),
        passive_opens: tcp.passive_opens,
        syn_retransmits: tcp.syn_retransmits,
        synack_retransmits: tcp.synack_retransmits,
        connect_failed: tcp.connect_failed,
        listen_overflows: overflows,
        listen_drops: drops,
        resets_sent: tcp.resets_sent,
        connect: LatencySummary::of(&connect),
        top: summary::processes(intervals, 0.0),
    }
}

fn ev(metric: &str, value: f64, unit: &str, threshold: Option<&str>, source: &str) -> Evidence {
    Evidence {
        metric: metric.into(),
        value,
        unit: unit.into(),
        threshold: threshold.map(Into::into),
        source: source.into(),
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

pub fn decide(inputs: &Inputs) -> Verdict {
    let r = inputs.recording;
    let intervals: Vec<&Interval> = inputs.window.intervals(r).collect();
    let cpus = r.header.cpus.max(1);
    let attached = |prefix: &str| {
        r.header
            .probes
            .attached
            .iter()
            .any(|p| p.starts_with(prefix))
    };
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

    let f = figures(&intervals, cpus);
    let secs = f.seconds.max(1e-9);

    // Connection setup: SYNs lost and retried, accept queues overflowing, connects failing.
    let setup_failures = f.syn_retransmits
        + f.synack_retransmits
        + f.listen_drops.max(f.listen_overflows)
        + f.connect_failed;
    let setup_ratio = setup_failures as f64 / f.opens.max(1) as f64;
    let setup_bad = setup_failures >= SETUP_FAILURE_MIN && setup_ratio >= SETUP_FAILURE_RATIO;
    let mut setup_evidence = vec![
        ev(
            "tcp.opens_per_s",
            f.opens as f64 / secs,
            "1/s",
            None,
            "sock:inet_sock_set_state",
        ),
        ev(
            "tcp.syn_retransmits",
            f.syn_retransmits as f64,
            "count",
            None,
            "tcp:tcp_retransmit_skb (SYN_SENT)",
        ),
        ev(
            "tcp.synack_retransmits",
            f.synack_retransmits as f64,
            "count",
            None,
            "tcp:tcp_retransmit_synack",
        ),
        ev(
            "tcp.listen_overflows",
            f.listen_overflows as f64,
            "count",
            None,
            "/proc/net/netstat ListenOverflows",
        ),
        ev(
            "tcp.connect_failed",
            f.connect_failed as f64,
            "count",
            None,
            "sock:inet_sock_set_state SYN_SENT->CLOSE",
        ),
        ev(
            "tcp.setup_failure_ratio",
            setup_ratio,
            "ratio",
            Some(">= 0.01 and >= 5 events"),
            "failures / opens",
        ),
    ];
    if let Some(p99) = f.connect.p99_ms {
        setup_evidence.push(ev(
            "tcp.connect_latency_p99",
            p99,
            "ms",
            None,
            "SYN_SENT->ESTABLISHED histogram",
        ));
    }

    // CPU: the host's CPUs busy.
    let busy = f.host_busy;
    let cpu_bad = busy.is_some_and(|b| b >= CPU_SATURATED_BUSY);
    let mut cpu_evidence = Vec::new();
    if let Some(b) = busy {
        cpu_evidence.push(ev(
            "host.cpu_busy",
            b,
            "fraction",
            Some(">= 0.90"),
            "/proc/stat",
        ));
    }
    for p in f.top.iter().filter(|p| p.role != Role::Profiler).take(3) {
        cpu_evidence.push(ev(
            &format!("process.{}[{}].cores", p.comm, p.pid),
            p.cores_used,
            "cores",
            None,
            "sched:sched_switch on-CPU time",
        ));
    }
    let top_text = f
        .top
        .iter()
        .filter(|p| p.role != Role::Profiler)
        .take(3)
        .map(|p| format!("{} {:.2} cores", p.comm, p.cores_used))
        .collect::<Vec<_>>()
        .join(", ");

    let setup_text = format!(
        "{} setup failures in {} opens ({:.1}%: {} SYN and {} SYN-ACK retransmits, {} listen overflows, {} failed connects)",
        setup_failures,
        f.opens,
        setup_ratio * 100.0,
        f.syn_retransmits,
        f.synack_retransmits,
        f.listen_overflows,
        f.connect_failed
    );
    let cpu_text = match busy {
        Some(b) => format!("host CPU {} busy on {} CPUs ({})", pct(b), cpus, top_text),
        None => "host CPU not measured (/proc/stat unreadable)".to_string(),
    };

    let rule_out_cpu = RuledOut {
        kind: VerdictKind::CpuSaturated,
        reason: match busy {
            Some(b) => format!(
                "host CPU {} busy, below the 90% threshold ({})",
                pct(b),
                top_text
            ),
            None => "host CPU not measured".into(),
        },
    };
    let rule_out_setup = RuledOut {
        kind: VerdictKind::ConnectionSetup,
        reason: format!("{setup_text}: below 1% of opens or fewer than 5"),
    };

    let (kind, summary, evidence, mut ruled_out, secondary, confidence) = if cpu_bad {
        let b = busy.unwrap_or(0.0);
        let secondary = if setup_bad {
            vec![VerdictKind::ConnectionSetup]
        } else {
            vec![]
        };
        let mut ruled = Vec::new();
        if !setup_bad {
            ruled.push(rule_out_setup);
        }
        (
            VerdictKind::CpuSaturated,
            format!(
                "CPU-saturated: {cpu_text} through the window, at {:.0} connections/s.",
                f.opens as f64 / secs
            ),
            [cpu_evidence, setup_evidence].concat(),
            ruled,
            secondary,
            ((b - CPU_SATURATED_BUSY) / (1.0 - CPU_SATURATED_BUSY) * 0.5 + 0.5).clamp(0.5, 1.0),
        )
    } else if setup_bad {
        (
            VerdictKind::ConnectionSetup,
            format!(
                "Connection-setup-bound: {setup_text} while {}; connect p99 {}.",
                cpu_text,
                f.connect
                    .p99_ms
                    .map_or("n/a".into(), |v| format!("{v:.1} ms"))
            ),
            [setup_evidence, cpu_evidence].concat(),
            vec![rule_out_cpu],
            vec![],
            (setup_ratio / SETUP_FAILURE_RATIO / 10.0).clamp(0.5, 1.0),
        )
    } else {
        (
            VerdictKind::NotSaturated,
            format!(
                "Not saturated: {cpu_text}; {} connections/s with {setup_text}. Throughput is set by the offered load (concurrency x latency), not by a host resource.",
                format_args!("{:.0}", f.opens as f64 / secs)
            ),
            [cpu_evidence, setup_evidence].concat(),
            vec![rule_out_cpu, rule_out_setup],
            vec![],
            busy.map_or(0.5, |b| (1.0 - b / CPU_SATURATED_BUSY).clamp(0.3, 0.9)),
        )
    };
    let _ = (f.passive_opens, f.resets_sent);
    if !have_sched {
        ruled_out.push(RuledOut {
            kind: VerdictKind::SingleThreadSaturated,
            reason: "not evaluated: sched_switch probe not attached".into(),
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
