//! How a pool row's derived figures are found (`PoolRow::queued`, `PoolRow::wait_ms_estimate`):
//! when a pool counts as full, the requests queued behind it, and their wait. The recorder
//! writes them with these; the analysis's window summary prices its queue with the same wait,
//! and the verdict calls a pool full at the same share.

/// A pool at or above this utilisation is full: requests beyond its connections queue.
/// Never 1.0: the pooler's own hand-over between a response and the next request leaves a
/// small gap on every connection (docs/attribution.md).
pub const POOL_FULL: f64 = 0.90;

/// Requests waiting for a connection: the process's inbound requests in flight that none of
/// its outbound connections carries, counted only while this pool is full.
pub fn queued(utilisation: f64, inbound_concurrency: f64, outbound_in_use: f64) -> f64 {
    if utilisation >= POOL_FULL {
        (inbound_concurrency - outbound_in_use).max(0.0)
    } else {
        0.0
    }
}

/// Little's law: the average wait is the number waiting over the arrival rate.
pub fn wait_ms(queued: f64, inbound_per_s: f64) -> f64 {
    if queued > 0.0 && inbound_per_s > 0.0 {
        queued / inbound_per_s * 1000.0
    } else {
        0.0
    }
}
