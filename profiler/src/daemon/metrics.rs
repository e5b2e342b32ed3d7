//! The daemon's OpenMetrics registry (`--metrics-listen`): every interval's counts added to
//! `chokepoint_*` counters in base units, the rolling verdict as `chokepoint_bottleneck_info`.
//! Labels are bounded: services are the busiest names (at most [`MAX_SERVICES`], the rest
//! `other`), reasons come from the kernel's fixed lists; never a pid or a socket tuple.
use std::{
    collections::BTreeSet,
    sync::{Arc, RwLock, atomic::AtomicU64},
};

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{MetricType, TypedMetric, counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};

use crate::{
    analysis::{Family as VerdictFamily, Verdict},
    recording::{Interval, LogHistogram, Role},
};

/// Distinct `service` label values at most; later names are counted as `other`.
pub const MAX_SERVICES: usize = 32;
/// A process is a service when it serves or generates load, or is among this many busiest.
const TOP_PROCESSES: usize = 8;

type Labels = Vec<(String, String)>;
type SecondsCounter = Counter<f64, AtomicU64>;
type F64Gauge = Gauge<f64, AtomicU64>;

/// Every metric the daemon exports, registered once.
pub struct Metrics {
    registry: Registry,
    intervals: Counter,
    intervals_sched_sampled: Counter,
    tcp_active_opens: Counter,
    tcp_passive_opens: Counter,
    tcp_connect_failed: Counter,
    tcp_syn_retransmits: Counter,
    tcp_synack_retransmits: Counter,
    tcp_resets_sent: Counter,
    tcp_resets_received: Counter,
    drops: Family<Labels, Counter>,
    runqueue_wait: RunQueueHistogram,
    offcpu: Family<Labels, SecondsCounter>,
    host_cpu_busy: F64Gauge,
    service_cpu: Family<Labels, SecondsCounter>,
    service_runqueue: Family<Labels, SecondsCounter>,
    service_capacity: Family<Labels, F64Gauge>,
    profiler_cpu: SecondsCounter,
    profiler_bpf: SecondsCounter,
    profiler_bpf_runs: Counter,
    profiler_lost: Family<Labels, Counter>,
    bottleneck: BottleneckInfo,
    services: BTreeSet<String>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chokepoint");
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let intervals = counter(
            &mut registry,
            "intervals",
            "Intervals read since the daemon started",
        );
        let intervals_sched_sampled = counter(
            &mut registry,
            "intervals_sched_sampled",
            "Intervals in which the scheduler programs ran: the off-CPU and run-queue counters grow in these only (1 in 5 in the default tier, every one with --probes all)",
        );
        let tcp_active_opens = counter(
            &mut registry,
            "tcp_active_opens",
            "Outbound TCP connections started (SYN sent)",
        );
        let tcp_passive_opens = counter(
            &mut registry,
            "tcp_passive_opens",
            "Inbound TCP connections accepted on a listening socket (SYN received)",
        );
        let tcp_connect_failed = counter(
            &mut registry,
            "tcp_connect_failed",
            "Outbound TCP connections that failed before they were established",
        );
        let tcp_syn_retransmits =
            counter(&mut registry, "tcp_syn_retransmits", "SYN retransmissions");
        let tcp_synack_retransmits = counter(
            &mut registry,
            "tcp_synack_retransmits",
            "SYN-ACK retransmissions",
        );
        let tcp_resets_sent = counter(&mut registry, "tcp_resets_sent", "TCP resets sent");
        let tcp_resets_received =
            counter(&mut registry, "tcp_resets_received", "TCP resets received");
        let drops = Family::<Labels, Counter>::default();
        registry.register(
            "drops",
            "Packets the kernel freed as dropped (skb:kfree_skb), by the kernel's drop reason",
            drops.clone(),
        );
        let runqueue_wait = RunQueueHistogram::default();
        registry.register_with_unit(
            "runqueue_wait",
            "Time threads waited runnable in a CPU's run queue before running (log2 buckets)",
            Unit::Seconds,
            runqueue_wait.clone(),
        );
        let offcpu = Family::<Labels, SecondsCounter>::default();
        registry.register_with_unit(
            "offcpu",
            "Time threads spent blocked off-CPU, by the system call blocked in",
            Unit::Seconds,
            offcpu.clone(),
        );
        let host_cpu_busy = F64Gauge::default();
        registry.register_with_unit(
            "host_cpu_busy",
            "Share of the host's CPU time busy in the last interval",
            Unit::Other("ratio".into()),
            host_cpu_busy.clone(),
        );
        let service_cpu = Family::<Labels, SecondsCounter>::default();
        registry.register_with_unit(
            "service_cpu",
            "CPU time (on-CPU) of a service: the processes of one name",
            Unit::Seconds,
            service_cpu.clone(),
        );
        let service_runqueue = Family::<Labels, SecondsCounter>::default();
        registry.register_with_unit(
            "service_runqueue_wait",
            "Run-queue wait of a service's threads",
            Unit::Seconds,
            service_runqueue.clone(),
        );
        let service_capacity = Family::<Labels, F64Gauge>::default();
        registry.register_with_unit(
            "service_capacity",
            "Cores a service's processes may use (affinity, CPU quota, online CPUs) in the last interval",
            Unit::Other("cores".into()),
            service_capacity.clone(),
        );
        let profiler_cpu = SecondsCounter::default();
        registry.register_with_unit(
            "profiler_cpu",
            "chokepoint's own CPU time in user space (user + system)",
            Unit::Seconds,
            profiler_cpu.clone(),
        );
        let profiler_bpf = SecondsCounter::default();
        registry.register_with_unit(
            "profiler_bpf",
            "Time spent inside chokepoint's kernel programs (measured in windows, priced between)",
            Unit::Seconds,
            profiler_bpf.clone(),
        );
        let profiler_bpf_runs = counter(
            &mut registry,
            "profiler_bpf_runs",
            "Runs of chokepoint's kernel programs",
        );
        let profiler_lost = Family::<Labels, Counter>::default();
        registry.register(
            "profiler_lost_events",
            "Events whose contribution was lost (map full, ring buffer full)",
            profiler_lost.clone(),
        );
        let bottleneck = BottleneckInfo::default();
        registry.register(
            "bottleneck",
            "The rolling verdict over the last intervals: what limits throughput now",
            bottleneck.clone(),
        );
        Self {
            registry,
            intervals,
            intervals_sched_sampled,
            tcp_active_opens,
            tcp_passive_opens,
            tcp_connect_failed,
            tcp_syn_retransmits,
            tcp_synack_retransmits,
            tcp_resets_sent,
            tcp_resets_received,
            drops,
            runqueue_wait,
            offcpu,
            host_cpu_busy,
            service_cpu,
            service_runqueue,
            service_capacity,
            profiler_cpu,
            profiler_bpf,
            profiler_bpf_runs,
            profiler_lost,
            bottleneck,
            services: BTreeSet::new(),
        }
    }

    /// Adds one interval's counts.
    pub fn observe(&mut self, iv: &Interval) {
        self.intervals.inc();
        let t = &iv.tcp;
        self.tcp_active_opens.inc_by(t.active_opens);
        self.tcp_passive_opens.inc_by(t.passive_opens);
        self.tcp_connect_failed.inc_by(t.connect_failed);
        self.tcp_syn_retransmits.inc_by(t.syn_retransmits);
        self.tcp_synack_retransmits.inc_by(t.synack_retransmits);
        self.tcp_resets_sent.inc_by(t.resets_sent);
        self.tcp_resets_received.inc_by(t.resets_received);
        for (reason, n) in &iv.drops {
            self.drops
                .get_or_create(&label("reason", reason))
                .inc_by(*n);
        }
        let mut runq = LogHistogram::default();
        let mut runq_ns = 0;
        // Off-CPU time and run-queue waits come from the scheduler programs, which the
        // default tier attaches 1 interval in 5: counted where they ran, never as zeros.
        if iv.sched_measured() {
            self.intervals_sched_sampled.inc();
            for p in &iv.processes {
                runq.add(&p.runq_latency);
                runq_ns += p.runq_ns;
                for (reason, ns) in &p.offcpu_reason_ns {
                    self.offcpu
                        .get_or_create(&label("reason", reason))
                        .inc_by(*ns as f64 / 1e9);
                }
            }
        }
        self.runqueue_wait.add(&runq, runq_ns);
        if let Some(cpu) = iv.host.as_ref().and_then(|h| h.cpu.as_ref()) {
            self.host_cpu_busy.set(cpu.busy_fraction);
        }
        self.services(iv);
        let o = &iv.overhead;
        self.profiler_cpu.inc_by(o.user_cpu_ns as f64 / 1e9);
        self.profiler_bpf.inc_by(o.bpf_run_ns as f64 / 1e9);
        self.profiler_bpf_runs.inc_by(o.bpf_runs);
        self.profiler_lost
            .get_or_create(&label("kind", "map-full"))
            .inc_by(o.map_update_failures);
        self.profiler_lost
            .get_or_create(&label("kind", "ring-buffer-full"))
            .inc_by(o.ring_buffer_full);
    }

    /// Per-service figures: servers, load generators and the busiest processes, by name.
    fn services(&mut self, iv: &Interval) {
        let mut busiest: Vec<_> = iv
            .processes
            .iter()
            .filter(|p| p.role != Role::Kernel)
            .collect();
        busiest.sort_by_key(|p| std::cmp::Reverse(p.oncpu_ns));
        let mut capacity: Vec<(String, f64)> = Vec::new();
        for (rank, p) in busiest.iter().enumerate() {
            let named = matches!(p.role, Role::Server | Role::LoadGenerator | Role::Profiler)
                || rank < TOP_PROCESSES;
            if !named {
                continue;
            }
            let name = self.service_name(&p.comm);
            let labels = label("service", &name);
            self.service_cpu
                .get_or_create(&labels)
                .inc_by(p.oncpu_ns as f64 / 1e9);
            if iv.sched_measured() {
                self.service_runqueue
                    .get_or_create(&labels)
                    .inc_by(p.runq_ns as f64 / 1e9);
            }
            if let Some(cap) = p.capacity_cores {
                match capacity.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, c)) => *c = c.max(cap),
                    None => capacity.push((name, cap)),
                }
            }
        }
        for (name, cap) in capacity {
            self.service_capacity
                .get_or_create(&label("service", &name))
                .set(cap);
        }
    }

    /// The label a process name is exported under: itself while fewer than [`MAX_SERVICES`]
    /// names have been seen, else `other`.
    fn service_name(&mut self, comm: &str) -> String {
        if self.services.contains(comm) {
            return comm.to_string();
        }
        if self.services.len() < MAX_SERVICES {
            self.services.insert(comm.to_string());
            return comm.to_string();
        }
        "other".to_string()
    }

    /// The rolling verdict: `kind`, `family` and, where the verdict names one, the `service`.
    pub fn set_verdict(&mut self, v: &Verdict) {
        let mut labels = vec![
            ("kind".to_string(), v.kind.as_str().to_string()),
            (
                "family".to_string(),
                serde_json::to_value(v.family)
                    .ok()
                    .and_then(|f| f.as_str().map(str::to_string))
                    .unwrap_or_default(),
            ),
        ];
        // A verdict that names no bottleneck names no service either.
        if let Some(service) = (v.family != VerdictFamily::None)
            .then(|| {
                v.evidence
                    .iter()
                    .find_map(|e| e.labels.get("process").cloned())
            })
            .flatten()
            .map(|p| self.service_name(&p))
        {
            labels.push(("service".to_string(), service));
        }
        self.bottleneck.set(labels);
    }

    /// The OpenMetrics text (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn label(name: &str, value: &str) -> Labels {
    vec![(name.to_string(), value.to_string())]
}

/// Run-queue waits as the kernel programs bucket them (log2 of ns), exported as a histogram
/// in seconds from 1 µs to 16 s; the sum is the exact total wait.
#[derive(Debug, Clone, Default)]
pub struct RunQueueHistogram(Arc<RwLock<(LogHistogram, u64)>>);

/// Buckets `[2^i, 2^(i+1))` ns for i below this fold into the first bound (1.024 µs).
const FIRST_BUCKET: usize = 9;
/// ... and from this one up into +Inf (2^35 ns = 34 s).
const LAST_BUCKET: usize = 34;

impl RunQueueHistogram {
    fn add(&self, h: &LogHistogram, sum_ns: u64) {
        if let Ok(mut g) = self.0.write() {
            g.0.add(h);
            g.1 += sum_ns;
        }
    }

    /// (upper bound in seconds, count in that bucket alone), the last bound +Inf.
    fn buckets(h: &LogHistogram) -> Vec<(f64, u64)> {
        let mut out: Vec<(f64, u64)> = (FIRST_BUCKET..LAST_BUCKET)
            .map(|i| ((1u64 << (i + 1)) as f64 / 1e9, 0))
            .collect();
        out.push((f64::MAX, 0));
        for (i, n) in h.0.iter().enumerate() {
            let at = i.clamp(FIRST_BUCKET, LAST_BUCKET) - FIRST_BUCKET;
            out[at].1 += n;
        }
        out
    }
}

impl TypedMetric for RunQueueHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for RunQueueHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (h, sum_ns) = self.0.read().map(|g| g.clone()).unwrap_or_default();
        encoder.encode_histogram::<NoLabelSet>(
            sum_ns as f64 / 1e9,
            h.count(),
            &Self::buckets(&h),
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// An info metric whose labels change: the current verdict (one sample, value 1).
#[derive(Debug, Clone, Default)]
pub struct BottleneckInfo(Arc<RwLock<Option<Labels>>>);

impl BottleneckInfo {
    fn set(&self, labels: Labels) {
        if let Ok(mut g) = self.0.write() {
            *g = Some(labels);
        }
    }
}

impl TypedMetric for BottleneckInfo {
    const TYPE: MetricType = MetricType::Info;
}

impl EncodeMetric for BottleneckInfo {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        match self.0.read().ok().and_then(|g| g.clone()) {
            Some(labels) => encoder.encode_info(&labels),
            None => Ok(()),
        }
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
