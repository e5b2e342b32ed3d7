//! What a `not-saturated` verdict cannot rule out: requests held somewhere the rules do not
//! see, which a cap could be holding. "Throughput is set by the offered load" holds only as far
//! as the requests inside the services are accounted for (on a CPU, at an upstream connection,
//! on a thread blocked for them, in a timed sleep or a disk wait). Two places are known blind:
//!
//! - a pool the turn model cannot judge, full with requests inside its holder: streams on a
//!   multiplexed upstream (HTTP/2, gRPC), or a connection-per-request proxy with fewer requests
//!   inside it than it sends upstream, where its own handling and a small cap look alike;
//! - a service holding requests that no kernel wait accounts for: timers of an async runtime,
//!   a queue in user space, a concurrency limiter around a call.
//!
//! Either is named with its numbers, `missing[]` says what would tell a cap apart, and the
//! verdict's confidence is held to `UNACCOUNTED_CONFIDENCE`.
use super::figures::WindowFigures;
use super::{
    Evidence, LOCK_WAITING_MIN, POOL_QUEUED_MIN, POOL_SATURATED_USE, UNACCOUNTED_WAITING_SHARE, ev,
    waiting_in_user_space,
};

pub(super) struct Unmeasured {
    /// Appended to the summary.
    pub sentence: String,
    /// For `missing[]`: what would tell a cap apart.
    pub missing: String,
    pub evidence: Evidence,
}

/// The first blind spot holding requests, pools before services (a pool names the upstream).
pub(super) fn cap(w: &WindowFigures) -> Option<Unmeasured> {
    unjudged_pool(w).or_else(|| unaccounted_service(w))
}

/// A full pool with requests inside its holder that the pool rule could not judge.
fn unjudged_pool(w: &WindowFigures) -> Option<Unmeasured> {
    let p = w
        .pools
        .iter()
        .filter(|p| p.requests_per_s > 0.0)
        .filter(|p| p.utilisation >= POOL_SATURATED_USE && p.queued >= POOL_QUEUED_MIN)
        // A cap holding back under a quarter of the holder's requests costs under a quarter of
        // its throughput; a proxy's own handling keeps up to ~11% inside it (haproxy with room
        // on a contended host: 1.0 of 8.7).
        .filter(|p| p.queued >= UNACCOUNTED_WAITING_SHARE * p.inbound_concurrency)
        .filter(|p| p.multiplexed || (p.churned && p.queued < p.in_use))
        .max_by(|a, b| a.queued.total_cmp(&b.queued))?;
    let why = if p.multiplexed {
        format!(
            "its {:.0} turns/s carry {:.0} requests/s (streams multiplexed on its connections), so the connections cannot say how many requests are upstream",
            p.requests_per_s, p.inbound_per_s
        )
    } else {
        format!(
            "a new connection per request, {:.1} upstream and fewer inside {} than that: its own handling and a cap just under its clients look alike",
            p.in_use, p.process
        )
    };
    Some(Unmeasured {
        sentence: format!(
            "But {:.1} requests in flight inside {} are not at its upstream {} ({}): {why}; if a cap holds them there, it was not measured.",
            p.queued, p.process, p.upstream, p.endpoint
        ),
        missing: format!(
            "whether {:.1} requests inside {} wait for a cap on {} ({}): the proxy's own queue (haproxy `show stat` qcur) or the upstream's count of requests in flight tells",
            p.queued, p.process, p.upstream, p.endpoint
        ),
        evidence: ev(
            &format!("pool.{}->{}.unjudged_queued", p.process, p.upstream),
            p.queued,
            "requests",
            Some(&format!(
                ">= 1 and >= {:.0}% of the holder's requests in flight",
                UNACCOUNTED_WAITING_SHARE * 100.0
            )),
            "inbound in flight - outbound in use, a pool the turn model cannot judge",
        ),
    })
}

/// The service holding the most requests that no measured wait accounts for, when they are at
/// least one request and `UNACCOUNTED_WAITING_SHARE` of its requests in flight.
fn unaccounted_service(w: &WindowFigures) -> Option<Unmeasured> {
    let (s, parked) = w
        .services
        .iter()
        .filter(|s| s.inflight > 0.0)
        .map(|s| (s, waiting_in_user_space(s)))
        .filter(|(s, parked)| {
            *parked >= LOCK_WAITING_MIN && *parked >= UNACCOUNTED_WAITING_SHARE * s.inflight
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(Unmeasured {
        sentence: format!(
            "But {parked:.1} of the {:.1} requests in flight at {} wait on nothing the rules can name (not on a CPU, at an upstream connection, in a timed sleep or disk wait, or on a sibling thread): if a cap in user space or on multiplexed upstream streams holds them, it was not measured.",
            s.inflight, s.name
        ),
        missing: format!(
            "what holds {parked:.1} requests inside {}: streams on a multiplexed upstream connection and a queue or timer in user space look alike to the kernel (the service's own statistics, e.g. PostgreSQL's pg_stat_activity wait events, or the upstream's count of requests in flight tell them apart)",
            s.name
        ),
        evidence: ev(
            &format!("service.{}.unaccounted", s.name),
            parked,
            "requests",
            Some(&format!(
                ">= 1 and >= {:.0}% of its requests in flight",
                UNACCOUNTED_WAITING_SHARE * 100.0
            )),
            "in flight - cores - upstream in use - blocked on siblings beyond idle - timed sleeps - disk waits - runnable",
        ),
    })
}
