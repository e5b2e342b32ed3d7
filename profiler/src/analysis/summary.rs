//! Sums over intervals: connection totals, host CPU, per-process CPU, the profiler's overhead.
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::overhead::{Estimate, ProgramTotals};
use crate::recording::{
    Interval, LimitedBy, LogHistogram, PressureResource, Recording, Role, TcpCounts,
};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl LatencySummary {
    pub fn of(h: &LogHistogram) -> Self {
        let ms = |ns: Option<f64>| ns.map(|v| v / 1e6);
        Self {
            samples: h.count(),
            p50_ms: ms(h.quantile_ns(0.5)),
            p99_ms: ms(h.quantile_ns(0.99)),
            max_ms: ms(h.max_ns()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    pub tcp_active_opens: u64,
    pub tcp_passive_opens: u64,
    pub tcp_active_opens_per_s: f64,
    pub tcp_passive_opens_per_s: f64,
    pub connect_failed: u64,
    /// Failed connects refused with EADDRNOTAVAIL: the ephemeral port range was used up (a
    /// subset of `connect_failed`).
    #[serde(default)]
    pub connect_addr_unavailable: u64,
    pub closes: u64,
    pub syn_retransmits: u64,
    pub synack_retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    pub skb_drops: u64,
    pub drops_by_reason: BTreeMap<String, u64>,
    /// `{device: {reason: count}}` (raw `skb:kfree_skb`; `-` for packets without a device).
    #[serde(default)]
    pub drops_by_device: BTreeMap<String, BTreeMap<String, u64>>,
    /// From the kernel's own counters (/proc/net/netstat), for cross-checking.
    pub listen_overflows: u64,
    pub listen_drops: u64,
    pub connect_latency: LatencySummary,
    pub handshake_latency: LatencySummary,
    /// Highest TIME_WAIT population seen (/proc/net/sockstat).
    pub time_wait_max: u64,
    /// Deepest accept queue seen against its limit, per listening port.
    pub accept_queue_max: BTreeMap<u16, [u64; 2]>,
}

pub fn tcp_sum<'a>(intervals: impl IntoIterator<Item = &'a Interval>) -> TcpCounts {
    let mut t = TcpCounts::default();
    for iv in intervals {
        t.add(&iv.tcp);
    }
    t
}

pub fn seconds(intervals: &[&Interval]) -> f64 {
    intervals.iter().map(|iv| iv.seconds()).sum()
}

pub fn totals(r: &Recording) -> Totals {
    let all: Vec<&Interval> = r.intervals.iter().collect();
    let tcp = tcp_sum(all.iter().copied());
    let secs = seconds(&all).max(1e-9);
    let mut connect = LogHistogram::default();
    let mut handshake = LogHistogram::default();
    let mut drops = BTreeMap::new();
    let mut by_device: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let (mut overflows, mut listen_drops, mut tw) = (0, 0, 0);
    let mut queues: BTreeMap<u16, [u64; 2]> = BTreeMap::new();
    for iv in &all {
        connect.add(&iv.connect_latency);
        handshake.add(&iv.handshake_latency);
        for (k, v) in &iv.drops {
            *drops.entry(k.clone()).or_insert(0) += v;
        }
        for d in &iv.device_drops {
            let device = if d.device.is_empty() { "-" } else { &d.device };
            *by_device
                .entry(device.to_string())
                .or_default()
                .entry(d.reason.clone())
                .or_insert(0) += d.count;
        }
        if let Some(t) = iv.host.as_ref().and_then(|h| h.tcp.as_ref()) {
            overflows += t.listen_overflows();
            listen_drops += t.listen_drops();
        }
        if let Some(s) = iv.host.as_ref().and_then(|h| h.sockets.as_ref()) {
            tw = tw.max(s.tcp_time_wait);
        }
        for l in &iv.listeners {
            let limit = l.accept_queue_limit.unwrap_or(0);
            let e = queues.entry(l.port).or_insert([0, limit]);
            e[0] = e[0].max(l.accept_queue_len);
            e[1] = e[1].max(limit);
        }
    }
    queues.retain(|_, q| q[0] > 0);
    Totals {
        tcp_active_opens: tcp.active_opens,
        tcp_passive_opens: tcp.passive_opens,
        tcp_active_opens_per_s: tcp.active_opens as f64 / secs,
        tcp_passive_opens_per_s: tcp.passive_opens as f64 / secs,
        connect_failed: tcp.connect_failed,
        connect_addr_unavailable: tcp.connect_addr_unavailable,
        closes: tcp.closes,
        syn_retransmits: tcp.syn_retransmits,
        synack_retransmits: tcp.synack_retransmits,
        resets_sent: tcp.resets_sent,
        resets_received: tcp.resets_received,
        skb_drops: tcp.skb_drops,
        drops_by_reason: drops,
        drops_by_device: by_device,
        listen_overflows: overflows,
        listen_drops,
        connect_latency: LatencySummary::of(&connect),
        handshake_latency: LatencySummary::of(&handshake),
        time_wait_max: tw,
        accept_queue_max: queues,
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostSummary {
    /// The host's name, as it was recorded.
    #[serde(default)]
    pub name: String,
    /// The kernel release (`uname -r`).
    #[serde(default)]
    pub kernel: String,
    /// CPU model, memory and OS, where the recording has them (recordings before 0.1 do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    pub cpus: u32,
    /// Share of all CPUs busy (not idle, not iowait), over the whole run.
    pub busy_fraction: f64,
    pub softirq_fraction: f64,
    pub iowait_fraction: f64,
    pub steal_fraction: f64,
    /// Softirq time per vector as a share of all CPUs (`NET_RX`, `NET_TX`, `TIMER`...), from
    /// the softirq probes.
    pub softirq_by_vector: BTreeMap<String, f64>,
    /// Pressure stall information (/proc/pressure), None where the kernel has no PSI.
    #[serde(default)]
    pub pressure: Option<PressureSummary>,
}

/// Share of the window in which some (or all non-idle) tasks were stalled waiting for a
/// resource: the kernel's own measure of "would have run, had the resource been free".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PressureSummary {
    pub cpu_some: f64,
    pub io_some: f64,
    pub io_full: f64,
    pub memory_some: f64,
    pub memory_full: f64,
}

/// Stall time over the window's wall time, per resource; None when no interval had PSI.
pub fn pressure(intervals: &[&Interval]) -> Option<PressureSummary> {
    let (mut seconds, mut s) = (0.0, PressureSummary::default());
    for iv in intervals {
        let Some(p) = iv.host.as_ref().and_then(|h| h.pressure.as_ref()) else {
            continue;
        };
        seconds += iv.seconds();
        let us = |r: &Option<PressureResource>, full: bool| -> f64 {
            r.as_ref()
                .and_then(|r| if full { r.full.as_ref() } else { Some(&r.some) })
                .map_or(0.0, |st| st.stall_us as f64 / 1e6)
        };
        s.cpu_some += us(&p.cpu, false);
        s.io_some += us(&p.io, false);
        s.io_full += us(&p.io, true);
        s.memory_some += us(&p.memory, false);
        s.memory_full += us(&p.memory, true);
    }
    if seconds <= 0.0 {
        return None;
    }
    let f = |x: f64| (x / seconds).min(1.0);
    Some(PressureSummary {
        cpu_some: f(s.cpu_some),
        io_some: f(s.io_some),
        io_full: f(s.io_full),
        memory_some: f(s.memory_some),
        memory_full: f(s.memory_full),
    })
}

/// The intervals in which the softirq programs were attached (all of them with `--probes
/// all` and in older recordings).
pub fn softirq_sampled<'a>(
    intervals: &'a [&'a Interval],
) -> impl Iterator<Item = &'a Interval> + 'a {
    intervals.iter().copied().filter(|iv| iv.softirq_measured())
}

/// A count summed over the sampled intervals, scaled to all of them.
fn scaled(n: u64, scale: f64) -> u64 {
    (n as f64 * scale).round() as u64
}

/// How much longer the intervals are than those of them in which the scheduler programs were
/// attached: what their event figures (off-CPU time, wake-ups, switches, run-queue waits)
/// summed over the attached intervals are multiplied by to stand for all of them. 1 with
/// `--probes all` and in older recordings; 0 when none was attached (nothing to scale).
pub fn sched_scale(intervals: &[&Interval]) -> f64 {
    let measured: f64 = intervals
        .iter()
        .filter(|iv| iv.sched_measured())
        .map(|iv| iv.seconds())
        .sum();
    if measured <= 0.0 {
        return 0.0;
    }
    seconds(intervals) / measured
}

pub fn host(intervals: &[&Interval], cpus: u32) -> HostSummary {
    let (mut total, mut busy, mut softirq, mut iowait, mut steal) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for iv in intervals {
        let Some(c) = iv.host.as_ref().and_then(|h| h.cpu.as_ref()) else {
            continue;
        };
        let t = c.user_seconds
            + c.nice_seconds
            + c.system_seconds
            + c.irq_seconds
            + c.softirq_seconds
            + c.iowait_seconds
            + c.steal_seconds
            + c.idle_seconds;
        total += t;
        busy += c.busy_fraction * t;
        softirq += c.softirq_seconds;
        iowait += c.iowait_seconds;
        steal += c.steal_seconds;
    }
    let f = |x: f64| if total > 0.0 { x / total } else { 0.0 };
    // Over the intervals the softirq programs ran in (the default tier attaches them one
    // interval in five): a share of the capacity of those intervals. What little a detached interval holds (the µs around a switch) belongs to the attached
    // time, so every interval's figures count over the attached intervals' capacity.
    let sampled: Vec<&Interval> = softirq_sampled(intervals).collect();
    let capacity_ns = cpus.max(1) as f64 * seconds(&sampled) * 1e9;
    let mut softirq_by_vector = BTreeMap::new();
    if !sampled.is_empty() {
        for (name, s) in intervals.iter().flat_map(|iv| &iv.softirqs) {
            *softirq_by_vector.entry(name.clone()).or_insert(0.0) +=
                s.ns as f64 / capacity_ns.max(1.0);
        }
    }
    HostSummary {
        name: String::new(),
        kernel: String::new(),
        cpu_model: None,
        memory_bytes: None,
        os: None,
        pressure: pressure(intervals),
        softirq_by_vector,
        cpus,
        busy_fraction: f(busy),
        softirq_fraction: f(softirq),
        iowait_fraction: f(iowait),
        steal_fraction: f(steal),
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunQueue {
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
}

/// Off-CPU time of a process's threads that ended with a wake-up, by the state they blocked in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OffCpu {
    /// Interruptible sleep: locks (futex), sockets, epoll/poll, timers.
    pub sleep: f64,
    /// Uninterruptible: disk I/O and some kernel locks.
    pub io: f64,
    /// The same time by the system call blocked in: `lock` (futex), `events` (epoll, poll,
    /// select), `read`, `write`, `accept`, `sleep`, `disk`, `other`, `unknown`.
    pub by_reason: BTreeMap<String, f64>,
}

/// Who woke a process, and how often.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Waker {
    pub pid: u32,
    pub comm: String,
    pub wakes: u64,
    /// The off-CPU time these wake-ups ended.
    #[serde(default)]
    pub offcpu_seconds: f64,
    /// `self` (its own threads), `sibling` (same name and parent: another worker of the same
    /// service), `idle` (an interrupt on an idle CPU), `other`.
    pub relation: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadSummary {
    pub tid: u32,
    pub comm: String,
    pub cpu_seconds: f64,
    /// On-CPU share of one core over the intervals it ran in.
    pub core_share: f64,
    /// The threads that woke it most (the recording's `thread_wakes`).
    #[serde(default)]
    pub woken_by: Vec<ThreadWaker>,
}

/// A thread that woke another, how often, and the off-CPU time those wake-ups ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadWaker {
    pub tid: u32,
    pub pid: u32,
    pub comm: String,
    pub wakes: u64,
    pub offcpu_seconds: f64,
    /// As for processes: `self` (a thread of the same process), `sibling`, `idle`, `other`.
    pub relation: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessSummary {
    pub pid: u32,
    pub comm: String,
    pub role: Role,
    /// On-CPU time measured by the scheduler probes.
    pub cpu_seconds: f64,
    /// Average cores used over the intervals the process was seen in.
    pub cores_used: f64,
    /// Busiest thread's on-CPU share of one core, in its busiest interval.
    pub max_thread_share: f64,
    pub threads_seen: usize,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub runqueue_us: RunQueue,
    pub offcpu_seconds: OffCpu,
    /// Cores it may use (affinity, cgroup quota, online CPUs) and what limits it; null when
    /// it was not read (idle processes, or gone before it was).
    pub capacity_cores: Option<f64>,
    pub limited_by: Option<LimitedBy>,
    /// CFS periods its cgroup was throttled in, and the time held off the CPU.
    pub throttled_periods: u64,
    pub throttled_seconds: f64,
    /// The hottest few threads.
    pub threads: Vec<ThreadSummary>,
    /// The processes that woke it most.
    pub woken_by: Vec<Waker>,
}

pub fn processes(intervals: &[&Interval], min_cpu_seconds: f64) -> Vec<ProcessSummary> {
    struct Acc {
        comm: String,
        role: Role,
        oncpu: u64,
        seen_secs: f64,
        max_thread: f64,
        tids: std::collections::HashSet<u32>,
        vol: u64,
        invol: u64,
        runq: LogHistogram,
        off: OffCpu,
        threads: HashMap<u32, (String, u64, f64)>,
        ppid: Option<u32>,
        capacity: Option<(f64, LimitedBy)>,
    }
    let mut by_pid: HashMap<u32, Acc> = HashMap::new();
    // Off-CPU time, wake-ups, switches and run-queue waits come from the scheduler programs,
    // which the default tier samples: summed over the intervals they ran in, then scaled.
    let scale = sched_scale(intervals);
    for iv in intervals {
        let secs = iv.seconds().max(1e-9);
        let events = iv.sched_measured();
        for p in &iv.processes {
            let a = by_pid.entry(p.pid).or_insert_with(|| Acc {
                comm: p.comm.clone(),
                role: p.role,
                oncpu: 0,
                seen_secs: 0.0,
                max_thread: 0.0,
                tids: Default::default(),
                vol: 0,
                invol: 0,
                runq: LogHistogram::default(),
                off: OffCpu::default(),
                threads: HashMap::new(),
                ppid: p.ppid,
                capacity: None,
            });
            if let (Some(c), Some(by)) = (p.capacity_cores, p.capacity_limited_by) {
                a.capacity = Some((c, by));
            }
            // A role learned later (server, load generator) wins over `other`.
            if a.role == Role::Other {
                a.role = p.role;
            }
            a.oncpu += p.oncpu_ns;
            a.seen_secs += secs;
            for t in &p.threads {
                a.tids.insert(t.tid);
                a.max_thread = a.max_thread.max(t.oncpu_ns as f64 / 1e9 / secs);
                let e = a.threads.entry(t.tid).or_insert((t.comm.clone(), 0, 0.0));
                e.1 += t.oncpu_ns;
                e.2 += secs;
            }
            if !events {
                continue;
            }
            a.vol += p.voluntary;
            a.invol += p.involuntary;
            a.runq.add(&p.runq_latency);
            a.off.sleep += p.offcpu_sleep_ns as f64 / 1e9;
            a.off.io += p.offcpu_io_ns as f64 / 1e9;
            for (reason, ns) in &p.offcpu_reason_ns {
                *a.off.by_reason.entry(reason.clone()).or_insert(0.0) += *ns as f64 / 1e9;
            }
        }
    }
    // Throttling of each process's cgroup.
    let mut throttled: HashMap<u32, (u64, f64)> = HashMap::new();
    for iv in intervals {
        for cg in &iv.cgroups {
            for pid in &cg.pids {
                let e = throttled.entry(*pid).or_default();
                e.0 += cg.nr_throttled;
                e.1 += cg.throttled_time_ns as f64 / 1e9;
            }
        }
    }
    // Wake-ups: who woke each process, and each thread.
    let mut woken: HashMap<u32, HashMap<u32, (String, u64, u64)>> = HashMap::new();
    // wakee tid -> (waker pid, waker tid) -> (wakes, off-CPU ns ended).
    type ByWaker = HashMap<(u32, u32), (u64, u64)>;
    let mut thread_woken: HashMap<u32, ByWaker> = HashMap::new();
    for iv in intervals.iter().filter(|iv| iv.sched_measured()) {
        for w in &iv.wakes {
            let e = woken
                .entry(w.wakee_pid)
                .or_default()
                .entry(w.waker_pid)
                .or_insert((w.waker_comm.clone(), 0, 0));
            e.1 += w.wakes;
            e.2 += w.offcpu_ns;
        }
        for w in &iv.thread_wakes {
            let e = thread_woken
                .entry(w.wakee_tid)
                .or_default()
                .entry((w.waker_pid, w.waker_tid))
                .or_default();
            e.0 += w.wakes;
            e.1 += w.offcpu_ns;
        }
    }
    let thread_names: HashMap<u32, String> = by_pid
        .values()
        .flat_map(|a| a.threads.iter().map(|(tid, t)| (*tid, t.0.clone())))
        .collect();
    let info: HashMap<u32, (String, Option<u32>)> = by_pid
        .iter()
        .map(|(pid, a)| (*pid, (a.comm.clone(), a.ppid)))
        .collect();
    let thread_wakers = |tid: u32, pid: u32, comm: &str, ppid: Option<u32>| {
        let mut out: Vec<ThreadWaker> = thread_woken
            .get(&tid)
            .map(|m| {
                m.iter()
                    .map(|(&(wpid, wtid), &(n, off))| {
                        let process = info.get(&wpid).map_or("?", |i| i.0.as_str());
                        ThreadWaker {
                            tid: wtid,
                            pid: wpid,
                            comm: match (wpid, thread_names.get(&wtid)) {
                                (0, _) => "idle".into(),
                                (_, Some(name)) => name.clone(),
                                (_, None) => process.to_string(),
                            },
                            wakes: scaled(n, scale),
                            offcpu_seconds: off as f64 / 1e9 * scale,
                            relation: relation(pid, comm, ppid, wpid, process, &info).into(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Ties broken by thread id: the summary must not depend on hash order.
        out.sort_by_key(|w| (std::cmp::Reverse(w.wakes), w.tid));
        out.truncate(3);
        out
    };
    let mut out: Vec<ProcessSummary> = by_pid
        .into_iter()
        .filter(|(_, a)| {
            a.oncpu as f64 / 1e9 >= min_cpu_seconds
                || matches!(a.role, Role::LoadGenerator | Role::Server)
        })
        .map(|(pid, a)| {
            let mut threads: Vec<ThreadSummary> = a
                .threads
                .iter()
                .map(|(tid, (comm, ns, secs))| ThreadSummary {
                    tid: *tid,
                    comm: comm.clone(),
                    cpu_seconds: *ns as f64 / 1e9,
                    core_share: (*ns as f64 / 1e9 / secs.max(1e-9)).min(1.0),
                    woken_by: Vec::new(),
                })
                .collect();
            threads.sort_by(|a, b| {
                b.cpu_seconds
                    .total_cmp(&a.cpu_seconds)
                    .then(a.tid.cmp(&b.tid))
            });
            threads.truncate(5);
            for t in &mut threads {
                t.woken_by = thread_wakers(t.tid, pid, &a.comm, a.ppid);
            }
            let mut woken_by: Vec<Waker> = woken
                .get(&pid)
                .map(|m| {
                    m.iter()
                        .map(|(wpid, (comm, n, off))| Waker {
                            pid: *wpid,
                            comm: comm.clone(),
                            wakes: scaled(*n, scale),
                            offcpu_seconds: *off as f64 / 1e9 * scale,
                            relation: relation(pid, &a.comm, a.ppid, *wpid, comm, &info).into(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            woken_by.sort_by_key(|w| (std::cmp::Reverse(w.wakes), w.pid));
            woken_by.truncate(5);
            ProcessSummary {
                pid,
                comm: a.comm,
                role: a.role,
                cpu_seconds: a.oncpu as f64 / 1e9,
                cores_used: a.oncpu as f64 / 1e9 / a.seen_secs.max(1e-9),
                max_thread_share: a.max_thread.min(1.0),
                threads_seen: a.tids.len(),
                voluntary_switches: scaled(a.vol, scale),
                involuntary_switches: scaled(a.invol, scale),
                runqueue_us: RunQueue {
                    p50_us: a.runq.quantile_ns(0.5).map(|v| v / 1e3),
                    p99_us: a.runq.quantile_ns(0.99).map(|v| v / 1e3),
                    max_us: a.runq.max_ns().map(|v| v / 1e3),
                },
                offcpu_seconds: OffCpu {
                    sleep: a.off.sleep * scale,
                    io: a.off.io * scale,
                    by_reason: a
                        .off
                        .by_reason
                        .into_iter()
                        .map(|(r, s)| (r, s * scale))
                        .collect(),
                },
                capacity_cores: a.capacity.map(|c| c.0),
                limited_by: a.capacity.map(|c| c.1),
                throttled_periods: throttled.get(&pid).map_or(0, |t| t.0),
                throttled_seconds: throttled.get(&pid).map_or(0.0, |t| t.1),
                threads,
                woken_by,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.cpu_seconds
            .total_cmp(&a.cpu_seconds)
            .then(a.pid.cmp(&b.pid))
    });
    out
}

/// How a waker relates to the process it woke.
pub fn relation(
    pid: u32,
    comm: &str,
    ppid: Option<u32>,
    waker: u32,
    waker_comm: &str,
    info: &HashMap<u32, (String, Option<u32>)>,
) -> &'static str {
    if waker == 0 {
        return "idle";
    }
    if waker == pid {
        return "self";
    }
    let waker_ppid = info.get(&waker).and_then(|i| i.1);
    // Another worker of the same service: same name and same parent (PostgreSQL backends,
    // nginx workers), or the service's own parent process.
    if (waker_comm == comm && waker_ppid.is_some() && waker_ppid == ppid) || Some(waker) == ppid {
        return "sibling";
    }
    "other"
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Overhead {
    /// Time spent inside chokepoint's kernel programs: the best estimate (`estimate` says how
    /// it was made when the kernel's statistics did not measure every run).
    pub bpf_cpu_seconds: f64,
    /// chokepoint's own process CPU (user + system), reading maps and files.
    pub user_cpu_seconds: f64,
    /// Program runs: every tracepoint hit is one event.
    pub events: u64,
    /// Events whose contribution was lost (map full, ring buffer full).
    pub lost_events: u64,
    /// Context switches the kernel's `sched_switch` tracepoint never reported (a switch-out
    /// seen on a CPU without the switch-in before it): a run-queue wait each.
    #[serde(default)]
    pub switches_unmatched: u64,
    /// Waits that straddled an attach of the duty-cycled scheduler programs, counted from the
    /// attach (their start unseen): 0 with `--probes all`.
    #[serde(default)]
    pub offcpu_clipped: u64,
    /// Both of the above as a share of the host's CPU capacity over the run.
    pub cpu_share_of_host: f64,
    pub bpf_ns_per_event: Option<f64>,
    /// Per program: run time in seconds (best estimate) and runs.
    pub programs: BTreeMap<String, (f64, u64)>,
    /// Of `user_cpu_seconds`, the CPU seconds of each stage of reading an interval.
    #[serde(default)]
    pub stages: BTreeMap<String, f64>,
    /// How the programs' time was found: runs counted by the programs, priced at the ns per
    /// run the statistics windows measured (how many windows, over how long, how far off it
    /// may be). None for recordings whose statistics measured every run themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
}

pub fn overhead(intervals: &[Interval], cpus: u32, seconds: f64) -> Overhead {
    let mut o = Overhead::default();
    let (mut bpf_ns, mut user_ns) = (0u64, 0u64);
    // Recordings whose programs count their runs: every run is priced again at the windows
    // of the whole recording (the intervals priced theirs at the windows so far).
    let counted = intervals.iter().any(|iv| iv.overhead.measured.is_some());
    let mut totals: BTreeMap<String, ProgramTotals> = BTreeMap::new();
    let mut windows = Vec::new();
    for iv in intervals {
        bpf_ns += iv.overhead.bpf_run_ns;
        user_ns += iv.overhead.user_cpu_ns;
        o.events += iv.overhead.bpf_runs;
        o.lost_events += iv.overhead.map_update_failures + iv.overhead.ring_buffer_full;
        o.switches_unmatched += iv.overhead.switches_unmatched;
        o.offcpu_clipped += iv.overhead.offcpu_clipped;
        let detached = !iv.detached.is_empty();
        for (name, [ns, runs]) in &iv.overhead.programs {
            let e = o.programs.entry(name.clone()).or_insert((0.0, 0));
            e.0 += *ns as f64 / 1e9;
            e.1 += runs;
            let t = totals.entry(name.clone()).or_default();
            t.runs += runs;
            if detached {
                t.detached_runs += runs;
            }
        }
        for (name, [ns, runs]) in iv.overhead.measured.iter().flatten() {
            let t = totals.entry(name.clone()).or_default();
            t.measured_ns += ns;
            t.measured_runs += runs;
            if detached {
                t.detached_measured_runs += runs;
            }
        }
        windows.extend(iv.overhead.windows.iter().cloned());
        for (stage, ns) in &iv.overhead.stages {
            *o.stages.entry(stage.clone()).or_default() += *ns as f64 / 1e9;
        }
    }
    if counted {
        let (ns, estimate) = super::overhead::estimate(&totals, &windows);
        for (name, ns) in &ns {
            if let Some(e) = o.programs.get_mut(name) {
                e.0 = *ns as f64 / 1e9;
            }
        }
        bpf_ns = ns.values().sum();
        o.estimate = Some(estimate);
    }
    o.bpf_cpu_seconds = bpf_ns as f64 / 1e9;
    o.user_cpu_seconds = user_ns as f64 / 1e9;
    let capacity = cpus.max(1) as f64 * seconds;
    if capacity > 0.0 {
        o.cpu_share_of_host = (o.bpf_cpu_seconds + o.user_cpu_seconds) / capacity;
    }
    if o.events > 0 {
        o.bpf_ns_per_event = Some(bpf_ns as f64 / o.events as f64);
    }
    o
}

/// A listening port's served sockets over some intervals: what held back their sends
/// (`recording::SendLimit`), most held back first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendLimitSummary {
    pub port: u16,
    pub owner: Option<String>,
    pub sockets_peak: u64,
    pub full_send_buffers_peak: u64,
    pub busy_seconds: f64,
    pub rwnd_limited_seconds: f64,
    pub sndbuf_limited_seconds: f64,
    /// (rwnd + sndbuf limited) / busy.
    pub limited_share: f64,
}

pub fn send_limits(intervals: &[&Interval]) -> Vec<SendLimitSummary> {
    let mut by_port: BTreeMap<u16, SendLimitSummary> = BTreeMap::new();
    for l in intervals.iter().flat_map(|iv| &iv.send_limits) {
        let f = by_port.entry(l.port).or_insert_with(|| SendLimitSummary {
            port: l.port,
            ..Default::default()
        });
        if l.owner.is_some() {
            f.owner.clone_from(&l.owner);
        }
        f.sockets_peak = f.sockets_peak.max(l.sockets);
        f.full_send_buffers_peak = f.full_send_buffers_peak.max(l.full_send_buffers);
        f.busy_seconds += l.busy_us as f64 / 1e6;
        f.rwnd_limited_seconds += l.rwnd_limited_us as f64 / 1e6;
        f.sndbuf_limited_seconds += l.sndbuf_limited_us as f64 / 1e6;
    }
    let mut out: Vec<SendLimitSummary> = by_port
        .into_values()
        .map(|mut f| {
            if f.busy_seconds > 0.0 {
                f.limited_share =
                    (f.rwnd_limited_seconds + f.sndbuf_limited_seconds) / f.busy_seconds;
            }
            f
        })
        .collect();
    out.sort_by(|a, b| {
        (b.rwnd_limited_seconds + b.sndbuf_limited_seconds)
            .total_cmp(&(a.rwnd_limited_seconds + a.sndbuf_limited_seconds))
    });
    out
}
