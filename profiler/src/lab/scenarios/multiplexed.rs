//! Upstreams multiplexed over HTTP/2: many requests in flight on one connection, so a busy
//! connection is no full pool slot and the requests beyond the connections are upstream, not
//! queued. Two proxies (haproxy with `proto h2`, a Node.js proxy on one `http2` session) in
//! front of a Node.js HTTP/2 server that answers each stream after a 10 ms timer. Oracle: the
//! upstream's own count of streams open at once (logged every second).
use super::{Ctx, LabError, Setup, free_port, haproxy_with, hey, stacks::node_script, wrk};
use crate::lab::guard::Service;

/// A Node.js HTTP/2 server without TLS (prior knowledge) answering every stream after 10 ms;
/// every second it logs the streams it had open at once on average (the oracle).
fn h2_upstream(ctx: &Ctx) -> Result<(Service, u16), LabError> {
    let port = free_port()?;
    let text = format!(
        "const http2 = require('http2');\n\
         let open = 0, area = 0, last = Date.now(), served = 0;\n\
         function mark() {{ const now = Date.now(); area += open * (now - last); last = now; }}\n\
         setInterval(() => {{ mark(); console.log(`streams_open_avg ${{(area / 1000).toFixed(2)}} \
         served_per_s ${{served}}`); area = 0; served = 0; }}, 1000);\n\
         http2.createServer((req, res) => {{ mark(); open++; \
         setTimeout(() => {{ mark(); open--; served++; res.end('ok'); }}, 10); }})\
         .listen({port}, '127.0.0.1');\n"
    );
    Ok((node_script(ctx, "node-h2", port, &text)?, port))
}

/// haproxy forwarding to the HTTP/2 upstream with `http-reuse always`: its threads multiplex
/// every client's requests as streams on a connection or two; `maxconn 64` leaves room for all.
pub(super) fn h2_upstream_room_haproxy(ctx: &Ctx) -> Result<Setup, LabError> {
    let (upstream, upstream_port) = h2_upstream(ctx)?;
    let (proxy, port) = haproxy_with(
        ctx,
        &format!(
            "  http-reuse always\n  server up 127.0.0.1:{upstream_port} proto h2 maxconn 64\n"
        ),
    )?;
    Ok(Setup {
        services: vec![proxy, upstream],
        command: wrk(ctx, 1, 8, port, &[])?,
        ..Default::default()
    })
}

/// A Node.js proxy taking HTTP/1.1 and forwarding every request as a stream of one `http2`
/// client session to the upstream: one connection, all requests in flight on it.
pub(super) fn h2_upstream_room_node(ctx: &Ctx) -> Result<Setup, LabError> {
    let (upstream, upstream_port) = h2_upstream(ctx)?;
    let port = free_port()?;
    let text = format!(
        "const http = require('http'), http2 = require('http2');\n\
         const session = http2.connect('http://127.0.0.1:{upstream_port}');\n\
         http.createServer((req, res) => {{\n\
           const s = session.request({{ ':path': req.url }});\n\
           s.on('response', () => {{}});\n\
           s.on('error', () => {{ res.statusCode = 502; res.end(); }});\n\
           s.pipe(res);\n\
           s.end();\n\
         }}).listen({port}, '127.0.0.1');\n"
    );
    let proxy = node_script(ctx, "node-h2-proxy", port, &text)?;
    Ok(Setup {
        services: vec![proxy, upstream],
        command: hey(ctx, 32, port, &[])?,
        ..Default::default()
    })
}
