//! Services, not pids: the processes doing one job (prefork and `SO_REUSEPORT` workers,
//! PostgreSQL backends, a master and its workers) grouped together, and the figures the rules
//! judge a service by, computed once over the analysis window: cores against capacity, the
//! requests in flight at it, the threads it has, and what its off-CPU time waited for.
//!
//! A process belongs to the service of its topmost ancestor with the same name: nginx's master
//! and workers are one service, two nginx instances with different masters are two. Wrappers
//! (shells, `timeout`, `env`, `make`...), the profiler and kernel threads are never services.
use std::collections::{BTreeMap, BTreeSet};

use crate::recording::{Interval, Role};

/// Programs that start other programs and wait for them: never the workload, whatever their
/// place in the process tree.
pub const WRAPPERS: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "zsh",
    "fish",
    "ksh",
    "busybox",
    "timeout",
    "env",
    "make",
    "gmake",
    "nohup",
    "xargs",
    "time",
    "nice",
    "ionice",
    "taskset",
    "chrt",
    "setsid",
    "stdbuf",
    "sudo",
    "su",
    "runuser",
    "script",
    "tini",
    "dumb-init",
    "cargo",
    "npx",
    "watch",
    "flock",
    "parallel",
];

pub fn is_wrapper(comm: &str) -> bool {
    WRAPPERS.contains(&comm)
}

/// One service over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceFigures {
    /// The processes' name (`nginx`), with `#2`... when two services share a name.
    pub name: String,
    pub role: Option<Role>,
    /// The smallest pid of the service (as a rule its master).
    pub anchor_pid: u32,
    pub pids: Vec<u32>,
    /// Distinct threads that ran in the window.
    pub threads: usize,
    /// Cores used on average, and the cores its processes may use (the largest capacity any of
    /// them reported: processes of one service share a cgroup and affinity as a rule).
    pub cores: f64,
    pub capacity_cores: Option<f64>,
    /// The hottest thread's share of one core.
    pub max_thread_share: f64,
    /// Inbound requests in flight on average and their rate, over every port the service
    /// serves: `inflight_read` from the service's reading of a request to its response,
    /// `inflight` the larger of that and what its local clients have in flight to it (from
    /// their send: requests waiting unread in its sockets are in flight at the service too).
    pub inflight: f64,
    pub inflight_read: f64,
    pub inbound_per_s: f64,
    /// Requests in flight on average on the service's own outbound connections (waiting for
    /// an upstream).
    pub upstream_inflight: f64,
    /// Threads blocked on average, by what they waited in (`lock`, `events`, `read`, `sleep`,
    /// `disk`...), and in all: off-CPU seconds over window seconds.
    pub blocked_by_reason: BTreeMap<String, f64>,
    pub blocked: f64,
    pub blocked_uninterruptible: f64,
    /// Threads runnable but waiting for a CPU on average (run-queue time over window time).
    pub runnable: f64,
    /// Threads blocked on average until another thread of the same service woke them (the
    /// off-CPU time that sibling and own-thread wake-ups ended, over window seconds), and the
    /// rate and share of those wake-ups among all of the service's wake-ups.
    pub blocked_on_siblings: f64,
    pub sibling_wakes_per_s: f64,
    pub sibling_wake_share: f64,
    /// Of the off-CPU time its threads' wake-ups of each other ended, the share one thread
    /// ended (the one that ended most, from waker -> wakee thread pairs), and that thread:
    /// near 1 when one thread hands work out (a dispatcher, an event loop posting tasks to
    /// helpers), about 1/k when k holders pass a lock along. `None` without thread pairs.
    pub top_waker_share: Option<f64>,
    pub top_waker_tid: Option<u32>,
}

impl ServiceFigures {
    /// Requests in flight that are neither on a CPU nor waiting for an upstream: work waiting
    /// for something inside the service (a worker, a lock, the disk, a timer).
    pub fn waiting(&self) -> f64 {
        (self.inflight - self.cores - self.upstream_inflight).max(0.0)
    }

    /// Threads that can be waiting for a sibling without holding work: every thread beyond
    /// those the requests in flight keep busy (an idle worker parked until the dispatcher
    /// hands it a request is woken by a sibling too).
    pub fn idle_threads(&self) -> f64 {
        (self.threads as f64 - self.inflight).max(0.0)
    }

    /// Threads blocked on a sibling beyond what idle workers explain: waiters that hold work.
    pub fn blocked_on_siblings_with_work(&self) -> f64 {
        (self.blocked_on_siblings - self.idle_threads()).max(0.0)
    }

    /// The hottest thread's share of the service's CPU: near 1 when one thread does the work
    /// (an event loop), lower when the work moves between threads.
    pub fn hottest_thread_share_of_cpu(&self) -> f64 {
        if self.cores > 0.0 {
            (self.max_thread_share / self.cores).min(1.0)
        } else {
            0.0
        }
    }

    pub fn blocked_in(&self, reason: &str) -> f64 {
        self.blocked_by_reason.get(reason).copied().unwrap_or(0.0)
    }

    /// Threads waiting for time to pass: asleep on purpose (`sleep`), or in a wait that its
    /// own timeout ended (`timeout`: an event loop's or a timed lock's timer expired and woke
    /// it). Neither is a hand-over or a queue: no other party ended the wait.
    pub fn blocked_timed(&self) -> f64 {
        self.blocked_in("sleep") + self.blocked_in("timeout")
    }
}

#[derive(Default)]
struct Acc {
    comm: String,
    role: Option<Role>,
    pids: BTreeSet<u32>,
    tids: BTreeSet<u32>,
    oncpu_ns: u64,
    runq_ns: u64,
    capacity: Option<f64>,
    thread_ns: BTreeMap<u32, u64>,
    inflight: f64,
    inflight_at_clients: f64,
    /// Off-CPU time ended by wake-ups from another thread of the service, per waker thread.
    ended_by_waker: BTreeMap<u32, u64>,
    inbound_per_s: f64,
    upstream: f64,
    reason_ns: BTreeMap<String, u64>,
    sleep_ns: u64,
    io_ns: u64,
    sibling_ns: u64,
    sibling_wakes: u64,
    wakes: u64,
}

/// The port of an `address:port` endpoint (`[::]:port` too).
fn endpoint_port(endpoint: &str) -> Option<u16> {
    endpoint.rsplit_once(':')?.1.parse().ok()
}

/// Which service each pid of the window belongs to: `(name, anchor)`. A process joins its
/// parent when both have the same name (a master and its workers); workers whose parent did
/// not run in the window (PostgreSQL backends under an idle postmaster) join each other when
/// they share that parent and have no workers of their own. The anchor is the smallest pid of
/// the group.
pub fn service_keys(intervals: &[&Interval]) -> BTreeMap<u32, (String, u32)> {
    let mut parent: BTreeMap<u32, (String, Option<u32>)> = BTreeMap::new();
    for iv in intervals {
        for p in &iv.processes {
            let e = parent.entry(p.pid).or_insert((p.comm.clone(), p.ppid));
            if e.1.is_none() {
                e.1 = p.ppid;
            }
        }
    }
    let mut up: BTreeMap<u32, u32> = parent.keys().map(|&p| (p, p)).collect();
    fn find(up: &mut BTreeMap<u32, u32>, mut x: u32) -> u32 {
        while let Some(&p) = up.get(&x) {
            if p == x {
                break;
            }
            x = p;
        }
        x
    }
    let union = |up: &mut BTreeMap<u32, u32>, a: u32, b: u32| {
        let (ra, rb) = (find(up, a), find(up, b));
        let (lo, hi) = (ra.min(rb), ra.max(rb));
        up.insert(hi, lo);
    };
    let mut has_worker: BTreeSet<u32> = BTreeSet::new();
    for (&pid, (comm, ppid)) in &parent {
        if let Some(pp) = ppid
            && parent.get(pp).is_some_and(|(c, _)| c == comm)
        {
            has_worker.insert(*pp);
            union(&mut up, pid, *pp);
        }
    }
    let mut orphans: BTreeMap<(&str, u32), u32> = BTreeMap::new();
    for (&pid, (comm, ppid)) in &parent {
        let Some(pp) = ppid else { continue };
        if parent.contains_key(pp) || has_worker.contains(&pid) {
            continue;
        }
        match orphans.get(&(comm.as_str(), *pp)) {
            Some(&first) => union(&mut up, pid, first),
            None => {
                orphans.insert((comm.as_str(), *pp), pid);
            }
        }
    }
    parent
        .iter()
        .map(|(&pid, (comm, _))| (pid, (comm.clone(), find(&mut up, pid))))
        .collect()
}

/// The window's services, busiest first. Only servers and other processes: the load
/// generator, the profiler, kernel threads and wrappers are left out.
pub fn services(intervals: &[&Interval]) -> Vec<ServiceFigures> {
    let keys = service_keys(intervals);
    let mut accs: BTreeMap<(String, u32), Acc> = BTreeMap::new();
    let window_ns: u64 = intervals
        .iter()
        .map(|iv| iv.end_unix_ns.saturating_sub(iv.start_unix_ns))
        .sum();
    // Requests in flight and upstream come from the connection-use programs, which the
    // default tier samples: averages over the intervals they ran in.
    let n_use = intervals
        .iter()
        .filter(|iv| iv.conn_use_measured())
        .count()
        .max(1) as f64;
    let key_of = |pid: u32| keys.get(&pid).cloned().unwrap_or_default();
    for iv in intervals {
        for p in &iv.processes {
            if !matches!(p.role, Role::Server | Role::Other) || is_wrapper(&p.comm) {
                continue;
            }
            let a = accs.entry(key_of(p.pid)).or_default();
            a.comm.clone_from(&p.comm);
            // A service with a listening socket anywhere is a server.
            if a.role != Some(Role::Server) {
                a.role = Some(p.role);
            }
            a.pids.insert(p.pid);
            a.oncpu_ns += p.oncpu_ns;
            a.capacity = match (a.capacity, p.capacity_cores) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            };
            for t in &p.threads {
                a.tids.insert(t.tid);
                *a.thread_ns.entry(t.tid).or_default() += t.oncpu_ns;
            }
            // What only the scheduler programs' events give: from the intervals they ran in.
            if !iv.sched_measured() {
                continue;
            }
            a.runq_ns += p.runq_ns;
            for (r, ns) in &p.offcpu_reason_ns {
                *a.reason_ns.entry(r.clone()).or_default() += ns;
            }
            a.sleep_ns += p.offcpu_sleep_ns;
            a.io_ns += p.offcpu_io_ns;
        }
    }
    // Which service serves each port (only ports one service serves: two namespaces may each
    // have a server on port 80).
    let mut port_owner: BTreeMap<u16, Option<(String, u32)>> = BTreeMap::new();
    for iv in intervals {
        for r in &iv.inbound {
            let key = key_of(r.pid);
            port_owner
                .entry(r.port)
                .and_modify(|k| {
                    if k.as_ref() != Some(&key) {
                        *k = None;
                    }
                })
                .or_insert(Some(key));
        }
    }
    for iv in intervals {
        for r in &iv.inbound {
            if let Some(a) = accs.get_mut(&key_of(r.pid)) {
                a.inflight += r.concurrency / n_use;
                a.inbound_per_s += r.requests_per_s / n_use;
            }
        }
        // The same requests as the service's local clients see them: from their send to the
        // response, so requests that arrived and wait unread in the service's sockets count.
        for p in &iv.pools {
            let Some(port) = endpoint_port(&p.endpoint) else {
                continue;
            };
            let Some(Some(owner)) = port_owner.get(&port) else {
                continue;
            };
            if *owner == key_of(p.pid) {
                continue;
            }
            if let Some(a) = accs.get_mut(owner) {
                a.inflight_at_clients += p.in_use / n_use;
            }
        }
        for p in &iv.pools {
            if let Some(a) = accs.get_mut(&key_of(p.pid)) {
                a.upstream += p.in_use / n_use;
            }
        }
        if !iv.sched_measured() {
            continue;
        }
        if iv.wake_totals.is_empty() {
            // Older recordings: the busiest process pairs only.
            for w in &iv.wakes {
                let wakee = key_of(w.wakee_pid);
                let Some(a) = accs.get_mut(&wakee) else {
                    continue;
                };
                a.wakes += w.wakes;
                if w.waker_pid != 0 && key_of(w.waker_pid) == wakee {
                    a.sibling_wakes += w.wakes;
                    a.sibling_ns += w.offcpu_ns;
                }
            }
        }
        // Thread pairs within the service: who ended its threads' waits.
        for w in &iv.thread_wakes {
            if w.waker_tid == w.wakee_tid || w.waker_pid == 0 {
                continue;
            }
            let wakee = key_of(w.wakee_pid);
            if key_of(w.waker_pid) != wakee {
                continue;
            }
            if let Some(a) = accs.get_mut(&wakee) {
                *a.ended_by_waker.entry(w.waker_tid).or_default() += w.offcpu_ns;
            }
        }
        // Every wake-up, by waker name: a waker of the service's own name is one of its own.
        for w in &iv.wake_totals {
            let wakee = key_of(w.wakee_pid);
            let Some(a) = accs.get_mut(&wakee) else {
                continue;
            };
            a.wakes += w.wakes;
            if w.waker_comm == wakee.0 {
                a.sibling_wakes += w.wakes;
                a.sibling_ns += w.offcpu_ns;
            }
        }
    }
    let per_s = |ns: u64| {
        if window_ns > 0 {
            ns as f64 / window_ns as f64
        } else {
            0.0
        }
    };
    // Off-CPU time, wake-ups and run-queue waits: over the intervals the scheduler programs
    // ran in (all of them with --probes all).
    let sched_ns: u64 = intervals
        .iter()
        .filter(|iv| iv.sched_measured())
        .map(|iv| iv.end_unix_ns.saturating_sub(iv.start_unix_ns))
        .sum();
    let secs = sched_ns as f64 / 1e9;
    let per_sched_s = |ns: u64| {
        if sched_ns > 0 {
            ns as f64 / sched_ns as f64
        } else {
            0.0
        }
    };
    let mut out: Vec<ServiceFigures> = accs
        .into_iter()
        .map(|((_, anchor), a)| ServiceFigures {
            name: a.comm,
            role: a.role,
            anchor_pid: anchor,
            pids: a.pids.into_iter().collect(),
            threads: a.tids.len(),
            cores: per_s(a.oncpu_ns),
            capacity_cores: a.capacity,
            max_thread_share: per_s(a.thread_ns.values().copied().max().unwrap_or(0)),
            inflight: a.inflight.max(a.inflight_at_clients),
            inflight_read: a.inflight,
            inbound_per_s: a.inbound_per_s,
            upstream_inflight: a.upstream,
            blocked_by_reason: a
                .reason_ns
                .into_iter()
                .map(|(r, ns)| (r, per_sched_s(ns)))
                .collect(),
            blocked: per_sched_s(a.sleep_ns + a.io_ns),
            blocked_uninterruptible: per_sched_s(a.io_ns),
            runnable: per_sched_s(a.runq_ns),
            blocked_on_siblings: per_sched_s(a.sibling_ns),
            sibling_wakes_per_s: if secs > 0.0 {
                a.sibling_wakes as f64 / secs
            } else {
                0.0
            },
            sibling_wake_share: a.sibling_wakes as f64 / a.wakes.max(1) as f64,
            top_waker_share: {
                let all: u64 = a.ended_by_waker.values().sum();
                (all > 0).then(|| {
                    a.ended_by_waker.values().copied().max().unwrap_or(0) as f64 / all as f64
                })
            },
            top_waker_tid: a
                .ended_by_waker
                .iter()
                .max_by_key(|(_, ns)| **ns)
                .map(|(tid, _)| *tid),
        })
        .collect();
    out.sort_by(|a, b| b.cores.total_cmp(&a.cores));
    // Two services of the same name (two nginx instances) keep apart in text and keys.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for s in &mut out {
        let k = seen.entry(s.name.clone()).or_default();
        *k += 1;
        if *k > 1 {
            s.name = format!("{}#{k}", s.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::fixtures,
        recording::{InboundRow, WakeRow},
    };

    fn proc(
        pid: u32,
        ppid: u32,
        comm: &str,
        role: Role,
        cores: &[f64],
    ) -> crate::recording::ProcessInterval {
        let mut p = fixtures::process(pid, comm, role, cores);
        p.ppid = Some(ppid);
        p
    }

    #[test]
    fn workers_join_their_master_and_wrappers_are_never_services() {
        let mut iv = fixtures::interval(0, 0.9);
        iv.processes = vec![
            proc(100, 1, "nginx", Role::Server, &[0.0]),
            proc(101, 100, "nginx", Role::Server, &[0.95]),
            proc(102, 100, "nginx", Role::Server, &[0.93]),
            // A second nginx instance under another master.
            proc(200, 1, "nginx", Role::Server, &[0.1]),
            proc(300, 1, "bash", Role::Other, &[0.2]),
        ];
        let s = services(&[&iv]);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].name, "nginx");
        assert_eq!(s[0].pids, [100, 101, 102]);
        assert!((s[0].cores - 1.88).abs() < 1e-9, "{}", s[0].cores);
        assert!((s[0].max_thread_share - 0.95).abs() < 1e-9);
        assert_eq!(s[1].name, "nginx#2");
        assert!(is_wrapper("timeout") && !is_wrapper("postgres"));
    }

    #[test]
    fn waiting_on_siblings_counts_only_what_idle_threads_cannot_explain() {
        let mut iv = fixtures::interval(0, 0.2);
        // 16 backends plus the postmaster, 16 requests in flight, 15 backends blocked on the
        // one that holds the lock (woken by it, the next holder).
        iv.processes = (0..=16)
            .map(|i| {
                let mut p = proc(
                    500 + i,
                    if i == 0 { 1 } else { 500 },
                    "postgres",
                    Role::Server,
                    &[0.01],
                );
                p.offcpu_sleep_ns = if i == 0 { 0 } else { 940_000_000 };
                p
            })
            .collect();
        iv.inbound = vec![InboundRow {
            pid: 500,
            comm: "postgres".into(),
            port: 5432,
            connections: 16,
            concurrency: 16.0,
            requests_per_s: 500.0,
        }];
        iv.wakes = vec![
            WakeRow {
                waker_pid: 501,
                waker_comm: "postgres".into(),
                wakee_pid: 502,
                wakee_comm: "postgres".into(),
                wakes: 500,
                offcpu_ns: 15_000_000_000,
            },
            WakeRow {
                waker_pid: 900,
                waker_comm: "pgbench".into(),
                wakee_pid: 502,
                wakee_comm: "postgres".into(),
                wakes: 500,
                offcpu_ns: 100_000_000,
            },
        ];
        let s = &services(&[&iv])[0];
        assert_eq!(s.threads, 17);
        assert!((s.inflight - 16.0).abs() < 1e-9);
        assert!((s.blocked_on_siblings - 15.0).abs() < 1e-9);
        assert!((s.sibling_wake_share - 0.5).abs() < 1e-9);
        // One thread beyond the requests in flight could be idle: 14 waiters hold work.
        assert!((s.blocked_on_siblings_with_work() - 14.0).abs() < 1e-9);
        assert!(s.waiting() > 15.0);

        // The same wake-ups in an idle pool of 64 workers with 4 requests in flight: every
        // sibling-ended wait can be an idle worker's.
        let mut idle = iv.clone();
        idle.processes = (0..64)
            .map(|i| {
                proc(
                    500 + i,
                    if i == 0 { 1 } else { 500 },
                    "postgres",
                    Role::Server,
                    &[0.0],
                )
            })
            .collect();
        idle.inbound[0].concurrency = 4.0;
        let s = &services(&[&idle])[0];
        assert_eq!(s.blocked_on_siblings_with_work(), 0.0);
    }
}
