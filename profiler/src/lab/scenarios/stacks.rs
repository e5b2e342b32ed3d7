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

/// ab is one thread: with keep-alive against nginx (two workers, 512 bytes) it uses its
/// core while nginx has room.
pub(super) fn generator_bound_ab(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = nginx(ctx, "", &[b'x'; 512])?;
    Ok(Setup {
        services: vec![server],
        command: vec![
            tool("ab")?,
            "-q".into(),
            "-k".into(),
            "-c".into(),
            "32".into(),
            "-t".into(),
            ctx.seconds.to_string(),
            "-n".into(),
            "100000000".into(),
            url(port),
        ],
        ..Default::default()
    })
}

/// nginx (master and both workers) in a cgroup with a 0.3-core CFS quota, gzip on 64 KiB
/// responses, and k6 with 8 virtual users: the workers run out of quota every period.
pub(super) fn nginx_throttled_k6(ctx: &Ctx) -> Result<Setup, LabError> {
    let body: Vec<u8> = (0..64 * 1024)
        .map(|i| b"abcdefgh"[i % 8] ^ (i / 97) as u8)
        .collect();
    let (mut server, port) = nginx(
        ctx,
        "gzip on; gzip_types *; gzip_min_length 0; gzip_comp_level 6;",
        &body,
    )?;
    server.confine_cpu(0.3)?;
    let script = ctx.dir.join("throttled.js");
    let text = format!(
        "import http from 'k6/http';\n\
         export const options = {{ vus: 8, duration: '{}s' }};\n\
         export default function () {{ http.get('{}', {{ headers: {{ 'Accept-Encoding': 'gzip' }} }}); }}\n",
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
    let script = ctx.dir.join(format!("{name}.js"));
    let text = format!(
        "const http = require('http');\n\
         http.createServer((req, res) => {{ {handler} }}).listen({port}, '127.0.0.1');\n"
    );
    std::fs::write(&script, text).map_err(io_err(&script))?;
    let log = log_file(ctx, name)?;
    let mut cmd = Command::new(tool("node")?);
    cmd.arg(&script)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err(ctx.dir))?)
        .stderr(log);
    let mut server = Service::spawn(name, cmd, Signal::SIGTERM)?;
    server.wait_for_port(port, Duration::from_secs(10))?;
    Ok((server, port))
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

/// Redis serves every command on one thread: redis-benchmark (2 threads, 50 clients,
/// pipelines of 16) keeps that thread at a core.
pub(super) fn redis_single_thread(ctx: &Ctx) -> Result<Setup, LabError> {
    let port = free_port()?;
    let log = log_file(ctx, "redis")?;
    let mut cmd = Command::new(tool("redis-server")?);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--io-threads", "1"])
        .arg("--dir")
        .arg(ctx.dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err(ctx.dir))?)
        .stderr(log);
    let mut server = Service::spawn("redis-server", cmd, Signal::SIGTERM)?;
    server.wait_for_port(port, Duration::from_secs(10))?;
    // redis-benchmark has no duration flag: `timeout` ends it (a wrapper, never a candidate).
    Ok(Setup {
        services: vec![server],
        command: vec![
            tool("timeout")?,
            "-s".into(),
            "INT".into(),
            ctx.seconds.to_string(),
            tool("redis-benchmark")?,
            "-p".into(),
            port.to_string(),
            "-c".into(),
            "50".into(),
            "-P".into(),
            "16".into(),
            "--threads".into(),
            "2".into(),
            "-n".into(),
            "1000000000".into(),
            "-t".into(),
            "get".into(),
            "-q".into(),
        ],
        ..Default::default()
    })
}
