//! The CPU candidates: the load generator at its capacity, a CPU quota throttling the
//! workload, the host's CPUs saturated, and one thread pegged while its service has room.
use crate::analysis::verdict::*;

pub(in crate::analysis::verdict) fn cpu(w: &WindowFigures) -> Candidate {
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
    // The kernel's own account of CPU contention: the share of the window in which some
    // runnable task waited for a CPU. A host that busy with tasks queueing that often is out
    // of CPU even when its busy share dips under the bar (work handed from process to process
    // through a chain of proxies leaves gaps in which everyone waits on everyone).
    let queueing = w.pressure.as_ref().map(|p| p.cpu_some);
    let contended = busy.is_some_and(|b| b >= CPU_CONTENDED_BUSY)
        && queueing.is_some_and(|q| q >= CPU_CONTENDED_SOME);
    let fired = busy.is_some_and(|b| b >= CPU_SATURATED_BUSY) || contended;
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
            Some(">= 0.40 with the host >= 0.80 busy"),
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
        Some(b) if contended && b < CPU_SATURATED_BUSY => format!(
            "host CPU {} busy on {} CPUs with tasks waiting for a CPU {} of the time ({})",
            pct(b),
            w.cpus,
            pct(queueing.unwrap_or(0.0)),
            w.top_text()
        ),
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
            if b >= CPU_SATURATED_BUSY {
                (b - CPU_SATURATED_BUSY) / (1.0 - CPU_SATURATED_BUSY)
            } else if contended {
                // Under the busy bar: no stronger than a host just at it.
                0.3 * queueing.unwrap_or(0.0)
            } else {
                0.0
            }
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
        counter: format!(
            "{text}: below the 90% threshold{}",
            match queueing {
                Some(q) => format!(
                    ", and tasks waited for a CPU {} of the time (PSI cpu some; >= 40% counts from 80% busy)",
                    pct(q)
                ),
                None => String::new(),
            }
        ),
    }
}

pub(in crate::analysis::verdict) fn throttled(w: &WindowFigures) -> Candidate {
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

pub(in crate::analysis::verdict) fn generator(w: &WindowFigures) -> Candidate {
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
    // Confined to fewer CPUs than the host has (affinity, a quota) and sharing them: what it
    // ran plus what it waited runnable for reaches its capacity, so it wants more CPU than
    // its CPUs give it (others' threads take part of them).
    let confined = capacity < w.cpus as f64;
    let demand = gen_cores + w.generator_runq;
    let starved = confined
        && share_of_capacity >= GENERATOR_CONFINED_SHARE
        && demand >= GENERATOR_SATURATED * capacity;
    let fired = !gens.is_empty()
        && (share_of_capacity >= GENERATOR_SATURATED || eats_host || pegged_single || starved);
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
            "generator.runqueue_threads",
            w.generator_runq,
            "threads",
            Some("confined: cores + this >= 0.90 of capacity, with >= 0.60 used"),
            "sched:sched_wakeup/sched_switch run-queue time of its processes",
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
            "Load-generator-bound: the load generator ({}) uses {:.2} of {} cores ({}){} while the workload uses {:.2}; the test measures the generator, not the system under test.",
            names.join(", "),
            gen_cores,
            capacity,
            pct(share_of_capacity),
            if starved && share_of_capacity < GENERATOR_SATURATED {
                format!(
                    " and waits runnable {:.2} threads more for the CPUs it may use",
                    w.generator_runq
                )
            } else {
                String::new()
            },
            workload_cores
        ),
        evidence,
        counter: if gens.is_empty() {
            "no load-generator process seen (no command, and no known load tool running)".into()
        } else {
            format!(
                "the generator uses {gen_cores:.2} of {capacity} cores ({}) and waits runnable {:.2} threads more, no thread of it pegged alone",
                pct(share_of_capacity),
                w.generator_runq
            )
        },
    }
}

pub(in crate::analysis::verdict) fn single_thread(w: &WindowFigures) -> Candidate {
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
