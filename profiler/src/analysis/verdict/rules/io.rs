//! Disk: a service blocked uninterruptibly at least as long as it runs.
use crate::analysis::verdict::*;

pub(in crate::analysis::verdict) fn io(w: &WindowFigures) -> Candidate {
    let secs = w.seconds.max(1e-9);
    // What waits on storage most: a service (its own blocked time against its own CPU: the
    // services every rule judges, analysis::services), or the load generator itself when the
    // load is disk I/O (fio, sysbench fileio, a backup job under `chokepoint run`): whoever
    // issues the writes is held back by the disk, generator or not.
    let generators: Vec<&ProcessSummary> = w
        .processes
        .iter()
        .filter(|p| {
            p.role == Role::LoadGenerator && !crate::analysis::services::is_wrapper(&p.comm)
        })
        .collect();
    let generator = generators
        .iter()
        .max_by(|a, b| a.offcpu_seconds.io.total_cmp(&b.offcpu_seconds.io))
        .map(|top| {
            (
                top.comm.clone(),
                generators.iter().map(|p| p.offcpu_seconds.io).sum::<f64>(),
                generators.iter().map(|p| p.cpu_seconds).sum::<f64>(),
            )
        });
    let worst = w
        .services
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.blocked_uninterruptible * secs,
                s.cores * secs,
            )
        })
        .chain(generator)
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
    // The kernel's own stall accounting: the share of time every runnable task of the host
    // waited on I/O at once (PSI io "full"). With it, a smaller service (one synchronous
    // writer, half its time in D) shows the disk holding all of the host's work back.
    let io_full = w.pressure.as_ref().map_or(0.0, |p| p.io_full);
    let stalled = blocked >= IO_BLOCKED_THREADS_WITH_STALLS && io_full >= IO_FULL_STALLS;
    let fired = (blocked >= IO_BLOCKED_THREADS || stalled) && io >= oncpu;
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
                Some(">= 0.50 (>= 0.25 with PSI io full >= 0.10) and >= on-CPU"),
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
