//! Negative controls that look like a bottleneck and are not: a CPU quota that is there but
//! never reached, and a storm of new connections that the server accepts as fast as they
//! come. Third-party servers (nginx) and generators (k6, hey).
use super::{Ctx, LabError, Setup, hey, io_err, k6_run, nginx, url};

/// 64 KiB of text that gzip compresses at some cost per request.
fn compressible() -> Vec<u8> {
    (0..64 * 1024)
        .map(|i| b"abcdefgh"[i % 8] ^ (i / 97) as u8)
        .collect()
}

/// The `nginx-throttled-k6` server (gzip level 6 of 64 KiB) in a cgroup whose quota is 1.5
/// cores, and k6 with 4 virtual users pausing 50 ms between requests (about 80 requests/s):
/// the workers need a small fraction of their quota and are never throttled.
pub(super) fn nginx_quota_room(ctx: &Ctx) -> Result<Setup, LabError> {
    let (mut server, port) = nginx(
        ctx,
        "gzip on; gzip_types *; gzip_min_length 0; gzip_comp_level 6;",
        &compressible(),
    )?;
    server.confine_cpu(1.5)?;
    let script = ctx.dir.join("quota-room.js");
    let text = format!(
        "import http from 'k6/http';\nimport {{ sleep }} from 'k6';\n\
         export const options = {{ vus: 4, duration: '{}s' }};\n\
         export default function () {{ http.get('{}', {{ headers: {{ 'Accept-Encoding': 'gzip' }} }}); sleep(0.05); }}\n",
        ctx.seconds,
        url(port)
    );
    std::fs::write(&script, text).map_err(io_err(&script))?;
    let out = ctx.dir.join("k6.json");
    Ok(Setup {
        services: vec![server],
        command: k6_run(&script, &out)?,
        load: vec![out],
        ..Default::default()
    })
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
