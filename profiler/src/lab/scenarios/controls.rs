//! Negative controls that look like a bottleneck and are not: a CPU quota that is there but
//! never reached, and a storm of new connections that the server accepts as fast as they
//! come. Third-party servers (nginx) and generators (k6, hey).
use super::{
    Ctx, LabError, Setup, hey, nginx,
    stacks::{k6_gzip_gets, nginx_gzip_in_quota},
};

/// The `nginx-throttled-k6` server (gzip level 6 of 64 KiB) in a cgroup whose quota is 1.5
/// cores, and k6 with 4 virtual users pausing 50 ms between requests (about 80 requests/s):
/// the workers need a small fraction of their quota and are never throttled.
pub(super) fn nginx_quota_room(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = nginx_gzip_in_quota(ctx, 1.5)?;
    k6_gzip_gets(ctx, server, port, 4, Some(0.05))
}

/// nginx (2 workers, a 64-byte page) and hey with keep-alive off at a fixed 800 requests/s
/// (`-c8 -q100`): 800 new connections a second, every one accepted at once, TIME_WAIT
/// sockets piling up by the thousand, no SYN dropped or retransmitted.
pub(super) fn nginx_new_connections_room(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = nginx(ctx, "", &[b'x'; 64])?;
    Ok(Setup {
        services: vec![server],
        command: hey(ctx, 8, port, &["-q", "100", "-disable-keepalive"])?,
        ..Default::default()
    })
}
