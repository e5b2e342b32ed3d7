//! The verdicts on third-party stacks and generators only, so that no rule can pass by knowing
//! chokepoint's own lab-server: PostgreSQL under pgbench, Node.js, Redis under
//! redis-benchmark, nginx under ab, k6 and hey, haproxy in front of Node.js.
use std::{
    process::{Command, Stdio},
    time::Duration,
};

use nix::sys::signal::Signal;

use super::{
    Ctx, LabError, Setup, free_port, haproxy_at, hey, io_err, k6_run, log_file, nginx, postgres,
    step, tool, url, wrk,
};
use crate::lab::guard::Service;

/// A PostgreSQL cluster with pgbench's tables at scale 1, and the connection flags.
fn pgbench_db(ctx: &Ctx) -> Result<(Service, Vec<String>), LabError> {
    let (postgres, port, _) = postgres(ctx)?;
    let conn: Vec<String> = ["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"]
        .map(String::from)
        .to_vec();
    step(
        "pgbench -i",
        Command::new(tool("pgbench")?)
            .args(["-i", "-q", "-s", "1"])
            .args(&conn)
            .arg("postgres"),
    )?;
    Ok((postgres, conn))
}

fn pgbench(ctx: &Ctx, conn: &[String], flags: &[&str]) -> Result<Vec<String>, LabError> {
    let mut command = vec![tool("pgbench")?, "-n".into()];
    command.extend(conn.iter().cloned());
    command.extend(flags.iter().map(|s| s.to_string()));
    command.extend(["-T".into(), ctx.seconds.to_string(), "postgres".into()]);
    Ok(command)
}

/// pgbench's select-only transactions from 8 clients: the backends and pgbench together use
/// both cores, nobody waits on anybody.
pub(super) fn pgbench_select_cpu(ctx: &Ctx) -> Result<Setup, LabError> {
    let (postgres, conn) = pgbench_db(ctx)?;
    Ok(Setup {
        services: vec![postgres],
        command: pgbench(ctx, &conn, &["-S", "-c", "8", "-j", "2"])?,
        ..Default::default()
    })
}

/// 30 idle client connections (psql sessions waiting for input) and pgbench at a fixed 100
/// select-only transactions/s: many connections, none busy, nothing queued.
pub(super) fn db_idle_connections(ctx: &Ctx) -> Result<Setup, LabError> {
    let (postgres, conn) = pgbench_db(ctx)?;
    let log = log_file(ctx, "idle-sessions")?;
    let psql = format!("{} {} -d postgres -q", tool("psql")?, conn.join(" "));
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!(
            "for i in $(seq 30); do sleep 3600 | {psql} & done; wait"
        ))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err(ctx.dir))?)
        .stderr(log);
    let sessions = Service::spawn("idle-sessions", cmd, Signal::SIGTERM)?;
    // Connected before the load starts.
    std::thread::sleep(Duration::from_millis(700));
    Ok(Setup {
        services: vec![sessions, postgres],
        command: pgbench(ctx, &conn, &["-S", "-c", "4", "-j", "1", "-R", "100"])?,
        ..Default::default()
    })
}

/// k6 pinned to one core (`taskset -c 0`), 16 VUs with a script that parses each response as
/// JSON, against nginx (2 workers, a 2 KiB JSON document): k6 uses all of its core while
/// nginx has room.
pub(super) fn generator_pinned_k6(ctx: &Ctx) -> Result<Setup, LabError> {
    let items: Vec<String> = (0..40)
        .map(|i| format!("{{\"id\":{i},\"name\":\"item-{i}\",\"tags\":[\"a\",\"b\"]}}"))
        .collect();
    let body = format!("[{}]", items.join(","));
    let (server, port) = nginx(ctx, "", body.as_bytes())?;
    let script = ctx.dir.join("pinned.js");
    let text = format!(
        "import http from 'k6/http';\n\
         export const options = {{ vus: 16, duration: '{}s' }};\n\
         export default function () {{\n  \
           const r = http.get('{}');\n  \
           let n = 0;\n  \
           for (let i = 0; i < 20; i++) {{ n += JSON.parse(r.body).length; }}\n  \
           if (n === 0) {{ throw new Error('empty'); }}\n\
         }}\n",
        ctx.seconds,
        url(port)
    );
    std::fs::write(&script, text).map_err(io_err(&script))?;
    let out = ctx.dir.join("k6.json");
    let mut command = vec![tool("taskset")?, "-c".into(), "0".into()];
    command.extend(k6_run(&script, &out)?);
    Ok(Setup {
        services: vec![server],
        command,
        load: vec![out],
        ..Default::default()
    })
}

/// nginx (master and both workers) in a cgroup with a 0.3-core CFS quota, gzip on 64 KiB
/// responses, and k6 with 8 virtual users: the workers run out of quota every period.
pub(super) fn nginx_throttled_k6(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = nginx_gzip_in_quota(ctx, 0.3)?;
    k6_gzip_gets(ctx, server, port, 8, None)
}

/// nginx (master and 2 workers) gzipping (level 6) a 64 KiB compressible page, all of it in a
/// CPU cgroup with a CFS quota of `cores`.
pub(super) fn nginx_gzip_in_quota(ctx: &Ctx, cores: f64) -> Result<(Service, u16), LabError> {
    let body: Vec<u8> = (0..64 * 1024)
        .map(|i| b"abcdefgh"[i % 8] ^ (i / 97) as u8)
        .collect();
    let (mut server, port) = nginx(
        ctx,
        "gzip on; gzip_types *; gzip_min_length 0; gzip_comp_level 6;",
        &body,
    )?;
    server.confine_cpu(cores)?;
    Ok((server, port))
}

/// k6 with `vus` virtual users asking `server` for its page with `Accept-Encoding: gzip`, each
/// sleeping `pause_s` after every request when given; k6's JSON output is the load timeline.
pub(super) fn k6_gzip_gets(
    ctx: &Ctx,
    server: Service,
    port: u16,
    vus: u32,
    pause_s: Option<f64>,
) -> Result<Setup, LabError> {
    let script = ctx.dir.join("gzip-gets.js");
    let pause = pause_s.map_or(String::new(), |s| format!(" sleep({s});"));
    let text = format!(
        "import http from 'k6/http';\nimport {{ sleep }} from 'k6';\n\
         export const options = {{ vus: {vus}, duration: '{}s' }};\n\
         export default function () {{ http.get('{}', {{ headers: {{ 'Accept-Encoding': 'gzip' }} }});{pause} }}\n",
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

/// A Node.js HTTP server on 127.0.0.1:`port` whose handler runs `handler` (JavaScript, with
/// `res` to answer).
fn node(ctx: &Ctx, name: &str, handler: &str) -> Result<(Service, u16), LabError> {
    let port = free_port()?;
    let text = format!(
        "const http = require('http');\n\
         http.createServer((req, res) => {{ {handler} }}).listen({port}, '127.0.0.1');\n"
    );
    Ok((node_script(ctx, name, port, &text)?, port))
}

/// `node SCRIPT` (the JavaScript `text`, written to the scenario's directory) as the service
/// `name`, once it listens on 127.0.0.1:`port`.
pub(super) fn node_script(
    ctx: &Ctx,
    name: &str,
    port: u16,
    text: &str,
) -> Result<Service, LabError> {
    let script = ctx.dir.join(format!("{name}.js"));
    std::fs::write(&script, text).map_err(io_err(&script))?;
    let log = log_file(ctx, name)?;
    let mut cmd = Command::new(tool("node")?);
    cmd.arg(&script)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err(ctx.dir))?)
        .stderr(log);
    let mut server = Service::spawn(name, cmd, Signal::SIGTERM)?;
    server.wait_for_port(port, Duration::from_secs(10))?;
    Ok(server)
}

/// Node.js's one event-loop thread spins 300 µs per request: wrk -c16 keeps it at a core
/// while the other core has room.
pub(super) fn node_single_thread(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = node(
        ctx,
        "node-spin",
        "const end = process.hrtime.bigint() + 300000n; \
         while (process.hrtime.bigint() < end) {} \
         res.end('ok');",
    )?;
    Ok(Setup {
        services: vec![server],
        command: wrk(ctx, 1, 16, port, &[])?,
        ..Default::default()
    })
}

/// haproxy (`maxconn 4`, a new upstream connection per request) in front of Node.js answering
/// each request after a 10 ms timer; hey -c32: 28 requests wait in haproxy's queue.
pub(super) fn proxy_cap_haproxy_node(ctx: &Ctx) -> Result<Setup, LabError> {
    let (upstream, upstream_port) =
        node(ctx, "node-timer", "setTimeout(() => res.end('ok'), 10);")?;
    let (proxy, port) = haproxy_at(ctx, 4, upstream_port)?;
    Ok(Setup {
        services: vec![proxy, upstream],
        command: hey(ctx, 32, port, &[])?,
        ..Default::default()
    })
}

/// Redis serves every command on one thread: `SINTERCARD` of two 4,000-member sets costs the
/// server thousands of lookups and the client one integer, so redis-benchmark (one thread, 8
/// clients, under `timeout`) keeps the command thread at a core with the other core spare.
pub(super) fn redis_single_thread(ctx: &Ctx) -> Result<Setup, LabError> {
    let port = free_port()?;
    let port_s = port.to_string();
    let log = log_file(ctx, "redis")?;
    let mut cmd = Command::new(tool("redis-server")?);
    cmd.args(["--port", &port_s, "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--io-threads", "1"])
        .arg("--dir")
        .arg(ctx.dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err(ctx.dir))?)
        .stderr(log);
    let mut server = Service::spawn("redis-server", cmd, Signal::SIGTERM)?;
    server.wait_for_port(port, Duration::from_secs(10))?;
    step(
        "redis-cli",
        Command::new(tool("redis-cli")?)
            .args(["-p", &port_s])
            .args([
                "EVAL",
                "for i = 1, 4000 do redis.call('SADD', 'a', i); redis.call('SADD', 'b', i * 2) end",
                "0",
            ]),
    )?;
    // redis-benchmark has no duration flag: `timeout` ends it (a wrapper, never a candidate).
    let mut command: Vec<String> = vec![
        tool("timeout")?,
        "-s".into(),
        "INT".into(),
        ctx.seconds.to_string(),
        tool("redis-benchmark")?,
    ];
    command.extend(
        [
            "-p",
            &port_s,
            "-c",
            "8",
            "-n",
            "1000000000",
            "-q",
            "SINTERCARD",
            "2",
            "a",
            "b",
        ]
        .map(String::from),
    );
    Ok(Setup {
        services: vec![server],
        command,
        ..Default::default()
    })
}
