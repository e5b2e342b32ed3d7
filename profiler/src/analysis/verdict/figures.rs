//! The figures of the analysis window that the rules read, computed once per window.
use crate::analysis::verdict::*;

/// Figures of the analysis window that the rules look at.
pub(in crate::analysis::verdict) struct WindowFigures {
    pub(in crate::analysis::verdict) seconds: f64,
    pub(in crate::analysis::verdict) cpus: u32,
    pub(in crate::analysis::verdict) host_busy: Option<f64>,
    pub(in crate::analysis::verdict) host_iowait: f64,
    pub(in crate::analysis::verdict) pressure: Option<summary::PressureSummary>,
    pub(in crate::analysis::verdict) opens: u64,
    pub(in crate::analysis::verdict) syn_retransmits: u64,
    pub(in crate::analysis::verdict) synack_retransmits: u64,
    pub(in crate::analysis::verdict) connect_failed: u64,
    /// Failed connects refused for want of a local port (a subset of `connect_failed`).
    pub(in crate::analysis::verdict) addr_unavailable: u64,
    pub(in crate::analysis::verdict) listen_overflows: u64,
    pub(in crate::analysis::verdict) setup_failures: u64,
    pub(in crate::analysis::verdict) connect: LatencySummary,
    pub(in crate::analysis::verdict) processes: Vec<ProcessSummary>,
    pub(in crate::analysis::verdict) cgroups: Vec<CgroupFigures>,
    pub(in crate::analysis::verdict) pools: Vec<crate::analysis::pools::PoolSummary>,
    pub(in crate::analysis::verdict) conntrack: Option<ConntrackFigures>,
    pub(in crate::analysis::verdict) shapers: Vec<ShaperFigures>,
    /// Served sockets' send limits per listening port, summed over the window.
    pub(in crate::analysis::verdict) send_limits: Vec<summary::SendLimitSummary>,
    /// Peak share of the ephemeral port range in use, and peak TIME_WAIT sockets.
    pub(in crate::analysis::verdict) ephemeral_peak: Option<f64>,
    pub(in crate::analysis::verdict) time_wait_peak: Option<u64>,
    /// The workload's services (processes grouped by job), busiest first.
    pub(in crate::analysis::verdict) services: Vec<crate::analysis::services::ServiceFigures>,
    /// The load generator's cores while it ran: its processes' CPU summed per interval (so
    /// runs that followed one another are steps, never added up), averaged over the intervals
    /// in which any of them ran; and the cores those processes could use together (their
    /// capacities summed per interval, at most the host's, the largest such sum).
    pub(in crate::analysis::verdict) generator_cores: f64,
    pub(in crate::analysis::verdict) generator_capacity: Option<f64>,
    /// The generator's threads runnable but waiting for a CPU, on average over the same
    /// intervals (run-queue time over wall time): the CPU it wanted and did not get.
    pub(in crate::analysis::verdict) generator_runq: f64,
}

/// The conntrack table over the window: its fullest reading and the failures counted.
#[derive(Default)]
pub(in crate::analysis::verdict) struct ConntrackFigures {
    pub(in crate::analysis::verdict) max: u64,
    pub(in crate::analysis::verdict) peak_count: u64,
    pub(in crate::analysis::verdict) peak_fill: f64,
    pub(in crate::analysis::verdict) insert_failed: u64,
    pub(in crate::analysis::verdict) drop: u64,
    pub(in crate::analysis::verdict) early_drop: u64,
}

impl ConntrackFigures {
    pub(in crate::analysis::verdict) fn failures(&self) -> u64 {
        self.insert_failed + self.drop + self.early_drop
    }
}

/// One rate-limiting qdisc (tbf, an htb class) over the window.
#[derive(Default)]
pub(in crate::analysis::verdict) struct ShaperFigures {
    pub(in crate::analysis::verdict) netns: String,
    pub(in crate::analysis::verdict) device: String,
    pub(in crate::analysis::verdict) kind: String,
    pub(in crate::analysis::verdict) handle: String,
    pub(in crate::analysis::verdict) rate: u64,
    pub(in crate::analysis::verdict) bytes: u64,
    pub(in crate::analysis::verdict) drops: u64,
    pub(in crate::analysis::verdict) overlimits: u64,
    pub(in crate::analysis::verdict) peak_backlog_packets: u64,
}

/// One CPU cgroup's throttling over the window.
#[derive(Default)]
pub(in crate::analysis::verdict) struct CgroupFigures {
    pub(in crate::analysis::verdict) path: String,
    pub(in crate::analysis::verdict) quota_cores: Option<f64>,
    pub(in crate::analysis::verdict) periods: u64,
    pub(in crate::analysis::verdict) throttled: u64,
    pub(in crate::analysis::verdict) throttled_seconds: f64,
    pub(in crate::analysis::verdict) pids: Vec<u32>,
}

impl WindowFigures {
    pub(in crate::analysis::verdict) fn of(intervals: &[&Interval], cpus: u32) -> Self {
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
        // Run-queue waits come from the scheduler programs: over the intervals they ran in.
        let (mut gen_runq_ns, mut gen_runq_secs) = (0u64, 0.0);
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
            if iv.sched_measured() {
                gen_runq_ns += gens.iter().map(|p| p.runq_ns).sum::<u64>();
                gen_runq_secs += iv.end_unix_ns.saturating_sub(iv.start_unix_ns) as f64 / 1e9;
            }
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
        let generator_runq = if gen_runq_secs > 0.0 {
            gen_runq_ns as f64 / 1e9 / gen_runq_secs
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
            pools: crate::analysis::pools::summarize(intervals),
            services: crate::analysis::services::services(intervals),
            generator_cores,
            generator_capacity,
            generator_runq,
        }
    }

    /// The service a process belongs to.
    pub(in crate::analysis::verdict) fn service_of(
        &self,
        pid: u32,
    ) -> Option<&crate::analysis::services::ServiceFigures> {
        self.services.iter().find(|s| s.pids.contains(&pid))
    }

    /// Processes doing the work: not the generator, chokepoint, the kernel or a wrapper
    /// (a shell, `timeout`, `env`, `make`: they start the work and wait for it).
    pub(in crate::analysis::verdict) fn workload(&self) -> impl Iterator<Item = &ProcessSummary> {
        self.processes.iter().filter(|p| {
            matches!(p.role, Role::Server | Role::Other)
                && !crate::analysis::services::is_wrapper(&p.comm)
        })
    }

    pub(in crate::analysis::verdict) fn generator_cores(&self) -> f64 {
        self.generator_cores
    }

    pub(in crate::analysis::verdict) fn top_text(&self) -> String {
        self.processes
            .iter()
            .filter(|p| p.role != Role::Profiler)
            .take(3)
            .map(|p| format!("{} {:.2} cores", p.comm, p.cores_used))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
