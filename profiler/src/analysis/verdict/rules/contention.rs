//! Contention: lock hand-over chains inside a service (by their mechanism: work waiting on the
//! service's own threads) and pools or concurrency caps with requests queued behind them.
use crate::analysis::verdict::*;

/// Lock contention, by its mechanism rather than by who wakes whom: work is waiting at a
/// service (requests in flight there beyond those on a CPU or at an upstream), and the
/// threads that could do it are blocked until another thread of the same service wakes them,
/// more of them than idle workers explain (an idle pool parks its workers on a condition
/// variable and its dispatcher wakes them: sibling wake-ups and futex sleeps alone prove
/// nothing). Timed sleeps, disk waits and upstream waits each explain waiting work on their
/// own: when they explain as much, this is not the verdict.
pub(in crate::analysis::verdict) fn lock_contention(w: &WindowFigures) -> Candidate {
    let kind = VerdictKind::LockContention;
    let busy = w.host_busy.unwrap_or(0.0);
    let best = w
        .services
        .iter()
        .filter(|s| s.inflight > 0.0 || s.blocked_on_siblings > 0.0)
        .max_by(|a, b| {
            let score = |s: &crate::analysis::services::ServiceFigures| {
                if closed_system(s) {
                    s.blocked_on_siblings
                } else if serialised_in_user_space(s, busy, w.cpus) {
                    waiting_in_user_space(s)
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
    let timed = s.blocked_timed();
    let disk = s.blocked_uninterruptible;
    let rival = timed.max(disk);
    let measured_inflight = s.inflight > 0.0;
    let in_kernel = serialised_by_own_threads(s) && busy < CPU_SATURATED_BUSY;
    let user_space = serialised_in_user_space(s, busy, w.cpus);
    let in_user_space = !in_kernel && user_space;
    let fired = in_kernel || in_user_space;
    let parked = waiting_in_user_space(s);
    let runnable = s.runnable;
    let unexplained = (waiting - timed - disk - runnable).max(0.0);
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
    } else if let Some(share) = s.top_waker_share.filter(|x| *x >= LOCK_ONE_WAKER_SHARE) {
        format!(
            "{name}: {waiting:.1} requests wait and {held:.1} threads are blocked on its own threads, but one thread{} ends {} of those waits: they wait for what it hands out (a dispatcher, an event loop), not for a lock passed between holders",
            s.top_waker_tid.map_or(String::new(), |t| format!(" ({t})")),
            pct(share)
        )
    } else if held < LOCK_EXPLAINS * waiting && unexplained >= LOCK_EXPLAINS * waiting {
        let room = room_cores(s, w.cpus);
        format!(
            "{name}: {waiting:.1} requests wait and no timer, disk or CPU wait explains most of them ({held:.1} threads blocked on its own threads, {parked:.1} requests parked in user space), but a lock taken in user space keeps one holder computing: {:.2} cores busy (needs >= {USER_LOCK_CORES_MIN}), {room:.2} cores of room (needs >= {USER_LOCK_ROOM_CORES}), its hottest thread {} of its CPU (needs < {}), host {} busy",
            s.cores,
            pct(s.hottest_thread_share_of_cpu()),
            pct(USER_LOCK_SPREAD),
            pct(busy)
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
        strength: if in_user_space {
            ((unexplained / waiting.max(1e-9)) - LOCK_EXPLAINS) / (1.0 - LOCK_EXPLAINS)
        } else if closed {
            (s.blocked_on_siblings / s.blocked.max(1e-9) - LOCK_SELF_DRIVEN)
                / (1.0 - LOCK_SELF_DRIVEN)
        } else {
            // Both mechanisms can hold at once (threads blocked on the holder and requests
            // parked unread): the waiting work either explains counts.
            let by = if user_space { held.max(unexplained) } else { held };
            ((by / waiting.max(1e-9)) - LOCK_EXPLAINS) / (1.0 - LOCK_EXPLAINS)
        },
        summary: if in_user_space {
            format!(
                "Lock-contention: {name} has {:.1} requests in flight but {:.2} cores busy, spread over its {} threads (the hottest does {} of it) with {:.2} cores of room and the host {} busy; {unexplained:.1} requests wait for no timer, disk or CPU ({held:.1} threads blocked on its own threads beyond idle ones, {parked:.1} requests parked in user space): one holder at a time computes while the rest wait for it: a lock (or one-at-a-time section) in the runtime or the application.",
                s.inflight,
                s.cores,
                s.threads,
                pct(s.hottest_thread_share_of_cpu()),
                room_cores(s, w.cpus),
                pct(busy)
            )
        } else if closed {
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
        evidence: [
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
                &format!("service.{name}.requests_parked_in_user_space"),
                parked,
                "requests",
                Some(">= 0.50 of requests waiting, with >= 0.8 cores busy spread over threads"),
                "waiting - threads blocked on own threads, in timed sleeps, in disk waits, runnable",
            ),
            ev(
                &format!("service.{name}.threads_runnable"),
                runnable,
                "threads",
                None,
                "sched:sched_switch/sched_wakeup run-queue time",
            ),
            ev(
                &format!("service.{name}.hottest_thread_share_of_cpu"),
                s.hottest_thread_share_of_cpu(),
                "fraction",
                Some("< 0.80 (user-space lock: work moves between threads)"),
                "sched:sched_switch per-thread on-CPU time",
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
        ]
        .into_iter()
        .chain(s.top_waker_share.map(|share| {
            ev(
                &format!("service.{name}.top_waker_share"),
                share,
                "fraction",
                Some("< 0.67 (hand-overs between holders, not hand-outs by one thread)"),
                "sched:sched_waking waker -> wakee thread pairs, off-CPU time ended",
            )
        }))
        .collect(),
        counter,
    }
}

pub(in crate::analysis::verdict) fn pool_saturated(w: &WindowFigures) -> Candidate {
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
    // A cap on sockets that come and go is inferred from the level its requests hold, and any
    // steady closed-loop load holds a level: there the cap is shown only by the requests
    // waiting behind it, and only when they outnumber those it lets through. Fewer is within
    // what the holder's own handling (connects, relaying, waiting for a CPU) keeps inside it.
    let queue_beyond_handling = !p.churned || p.queued >= p.in_use;
    let fired = full
        && p.queued >= POOL_QUEUED_MIN
        && queue_beyond_handling
        && !p.multiplexed
        && !upstream_cpu_bound
        && !upstream_locked;
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
            &format!("pool.{name}.turns_per_inbound_request"),
            p.requests_per_s / p.inbound_per_s.max(1e-9),
            "ratio",
            Some(">= 0.90 (fewer: multiplexed, not judged)"),
            "the pool's turns/s over the holder's inbound requests/s",
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
    } else if p.multiplexed {
        format!(
            "{} -> {} ({}): {:.0} turns/s carried {} {:.0} requests/s: requests share its connections (HTTP/2 or gRPC streams, pipelining) or are answered without them, so {:.1} connections in use do not bound the requests upstream, and whether {:.1} more in flight inside {} are upstream or queued for a cap is not measured",
            p.process,
            p.upstream,
            p.endpoint,
            p.requests_per_s,
            p.process,
            p.inbound_per_s,
            p.in_use,
            p.queued,
            p.process
        )
    } else if !queue_beyond_handling {
        format!(
            "{} -> {} ({}): a new connection per request, {:.1} requests in flight upstream and only {:.1} more inside {} ({} of its requests): no more than its own connects and relaying hold, no cap queues them",
            p.process,
            p.upstream,
            p.endpoint,
            p.in_use,
            p.queued,
            p.process,
            pct(p.queued / p.inbound_concurrency.max(1e-9))
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
