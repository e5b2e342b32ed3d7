//! Connection pools end to end: pgbench with many clients through a real PgBouncer in front
//! of a real PostgreSQL, every transaction `pg_sleep(5 ms)` on the server. With a pool of 2
//! the requests queue for the pool: chokepoint must say `pool-saturated` with figures that
//! agree with PgBouncer's own `SHOW POOLS` and PostgreSQL's `pg_stat_activity`; with a pool
//! big enough for every client it must not. Also: a connection opened before the recording is
//! measured, UDP is ignored, short-lived connections leave the kernel map small; and the lab's
//! pool scenarios (PgBouncer, the lab's own HTTP tiers) against PostgreSQL row-lock contention.
//! Needs root; run through `cargo xtask test`.
use std::{
    path::PathBuf,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use chokepoint_tests::{
    CHOKEPOINT_TIMEOUT, PgBouncer, PoolMode, Postgres, chokepoint_bin, output_within, printed,
    run_chokepoint, run_for_json, tool,
};
use serde_json::Value;

const CLIENTS: u32 = 24;
const SECONDS: u32 = 6;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chokepoint-pool-{}-{name}", std::process::id()))
}

/// psql with a header row (`-A`, `|`-separated), as user postgres on 127.0.0.1.
fn query(port: u16, db: &str, sql: &str) -> Option<Vec<Vec<String>>> {
    let out = output_within(
        Command::new(tool("psql"))
            .args(["-X", "-q", "-A", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &port.to_string(), "-d", db, "-c", sql]),
        Duration::from_secs(10),
    );
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(
        text.lines()
            .filter(|l| !l.starts_with('(') && !l.is_empty())
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect(),
    )
}

/// A column of the first data row whose `database` column is `postgres`.
fn pool_column(rows: &[Vec<String>], column: &str) -> Option<f64> {
    let header = rows.first()?;
    let db = header.iter().position(|h| h == "database")?;
    let col = header.iter().position(|h| h == column)?;
    rows.iter()
        .skip(1)
        .find(|r| r.get(db).is_some_and(|d| d == "postgres"))?
        .get(col)?
        .parse()
        .ok()
}

/// The servers' own view, sampled while the load runs: PgBouncer's clients waiting for a
/// server connection, and PostgreSQL's client backends running a query (without ours).
#[derive(Default)]
struct ServerView {
    cl_waiting: Vec<f64>,
    /// PgBouncer's server connections linked to a client: the pool in use, its own view.
    sv_active: Vec<f64>,
    pg_active: Vec<f64>,
}

impl ServerView {
    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len().max(1) as f64
    }

    /// The steady state: the middle sample, which the ramp-up (clients connecting while
    /// PgBouncer opens its server connections one by one) does not move.
    fn median(v: &[f64]) -> f64 {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }
}

fn sample_servers(pg: u16, bouncer: u16, stop: Arc<AtomicBool>) -> thread::JoinHandle<ServerView> {
    thread::spawn(move || {
        let mut view = ServerView::default();
        while !stop.load(Ordering::Relaxed) {
            let pools = query(bouncer, "pgbouncer", "SHOW POOLS");
            let active = query(
                pg,
                "postgres",
                "select count(*) from pg_stat_activity where state = 'active' \
                 and backend_type = 'client backend' and pid <> pg_backend_pid()",
            );
            // Only while every pgbench client is connected (not before the run or after it).
            if let (Some(pools), Some(active)) = (pools, active)
                && let Some(waiting) = pool_column(&pools, "cl_waiting")
                && let Some(clients) = pool_column(&pools, "cl_active")
                && let Some(servers) = pool_column(&pools, "sv_active")
                && clients + waiting >= f64::from(CLIENTS)
                && let Some(n) = active.get(1).and_then(|r| r.first()?.parse().ok())
            {
                view.cl_waiting.push(waiting);
                view.sv_active.push(servers);
                view.pg_active.push(n);
            }
            thread::sleep(Duration::from_millis(250));
        }
        view
    })
}

/// pgbench through a PgBouncer pool of `pool_size` under `chokepoint run`; the JSON result and
/// the servers' view sampled meanwhile.
fn pgbench_through_pool(name: &str, pool_size: u32) -> (Value, ServerView) {
    pgbench_through_pool_via(name, pool_size, Via::Btf)
}

/// Which programs read connection use.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// The socket tracepoints as BTF tracepoints (the default where the kernel takes them).
    Btf,
    /// The socket tracepoints as raw tracepoints (`CHOKEPOINT_RAW_TRACEPOINTS`).
    Raw,
    /// The socket tracepoints' trace records (kernels without raw tracepoints or BTF).
    Classic,
    /// The read/write/send/recv system calls (kernels without the socket tracepoints).
    Syscalls,
}

/// The same, with connection use read `via` the given programs.
fn pgbench_through_pool_via(name: &str, pool_size: u32, via: Via) -> (Value, ServerView) {
    let pg = Postgres::config().setting("max_connections", "100").start();
    let bouncer = PgBouncer::start(pg.port(), pool_size, PoolMode::Transaction);
    let script = tmp(&format!("{name}.sql"));
    std::fs::write(&script, "SELECT pg_sleep(0.005);\n").expect("write pgbench script");
    let (rec, json) = (tmp(&format!("{name}.rec")), tmp(&format!("{name}.json")));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_servers(pg.port(), bouncer.port(), stop.clone());
    let clients = CLIENTS.to_string();
    let seconds = SECONDS.to_string();
    let port = bouncer.port().to_string();
    let args: Vec<String> = [
        "run",
        "--out",
        &rec.display().to_string(),
        "--json",
        &json.display().to_string(),
        "--",
        &tool("pgbench").display().to_string(),
        "-n",
        "-c",
        &clients,
        "-j",
        "2",
        "-T",
        &seconds,
        "-f",
        &script.display().to_string(),
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
        "postgres",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut cmd = Command::new(chokepoint_bin());
    cmd.args(&args);
    for (env, wanted) in [
        (SOCKET_SYSCALLS, via == Via::Syscalls),
        (CLASSIC_ENV, via == Via::Classic),
        (RAW_ENV, via == Via::Raw),
    ] {
        if wanted {
            cmd.env(env, "1");
        } else {
            cmd.env_remove(env);
        }
    }
    let out = output_within(&mut cmd, CHOKEPOINT_TIMEOUT);
    stop.store(true, Ordering::Relaxed);
    let view = sampler.join().expect("sampler thread");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("JSON result written");
    let mut result: Value = serde_json::from_str(&text).expect("JSON");
    result["probe_cost"] = probe_cost(&rec);
    for f in [&script, &rec, &json] {
        let _ = std::fs::remove_file(f);
    }
    (result, view)
}

/// The new programs' cost over the recording: [ns per run, runs per second] each, from the
/// kernel's BPF statistics in `overhead.programs`.
fn probe_cost(rec: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(rec).expect("recording written");
    let mut totals: std::collections::BTreeMap<String, (f64, f64, f64)> = Default::default();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("recording line is JSON");
        if v["kind"] != "interval" {
            continue;
        }
        let secs = (v["end_unix_ns"].as_f64().unwrap_or(0.0)
            - v["start_unix_ns"].as_f64().unwrap_or(0.0))
            / 1e9;
        if let Some(programs) = v["overhead"]["programs"].as_object() {
            for (name, figures) in programs {
                let t = totals.entry(name.clone()).or_default();
                t.0 += figures[0].as_f64().unwrap_or(0.0);
                t.1 += figures[1].as_f64().unwrap_or(0.0);
                t.2 += secs;
            }
        }
    }
    totals
        .into_iter()
        .filter(|(_, t)| t.1 > 0.0)
        .map(|(name, (ns, runs, secs))| {
            (name, serde_json::json!([ns / runs, runs / secs.max(1e-9)]))
        })
        .collect::<serde_json::Map<String, Value>>()
        .into()
}

/// PgBouncer's pool of server connections to PostgreSQL in the result.
fn bouncer_pool(v: &Value) -> &Value {
    v["pools"]
        .as_array()
        .expect("pools[]")
        .iter()
        .find(|p| p["process"] == "pgbouncer" && p["upstream"] == "postgres")
        .unwrap_or_else(|| panic!("no pgbouncer -> postgres pool in {:#}", v["pools"]))
}

fn num(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

/// Cores used in the window by processes that are not part of the test (another build on a
/// shared machine): they can decide the verdict on their own.
fn foreign_cores(v: &Value) -> f64 {
    const OURS: &[&str] = &["pgbench", "pgbouncer", "postgres", "psql", "chokepoint"];
    v["processes"]
        .as_array()
        .expect("processes[]")
        .iter()
        .filter(|p| p["role"] != "kernel" && p["role"] != "profiler")
        .filter(|p| {
            !OURS
                .iter()
                .any(|o| p["comm"].as_str().is_some_and(|c| c.starts_with(o)))
        })
        .filter(|p| !p["comm"].as_str().is_some_and(|c| c.starts_with("a_pool")))
        .map(|p| p["cores_used"].as_f64().unwrap_or(0.0))
        .sum()
}

#[test]
fn a_pool_of_two_for_24_clients_is_pool_saturated() {
    // The pool figures are checked on every attempt; the verdict is retried (at most three
    // runs) when it went elsewhere with pool-saturated still firing as a secondary, or while
    // unrelated processes used half a core or more (the test host is shared).
    for attempt in 1..=3 {
        let (v, view) = pgbench_through_pool("small", 2);
        let btf = v["probes"]["btf"].as_array().expect("probes.btf");
        assert!(
            btf.iter().any(|t| t == "sock/sock_send_length"),
            "the socket programs are BTF tracepoints where the kernel takes them: {btf:?}"
        );
        check_small_pool(&v, &view);
        let foreign = foreign_cores(&v);
        if v["verdict"]["kind"] == "pool-saturated" {
            return;
        }
        let secondary = v["verdict"]["secondary"]
            .as_array()
            .is_some_and(|s| s.iter().any(|k| k == "pool-saturated"));
        assert!(
            (foreign >= 0.5 || secondary) && attempt < 3,
            "verdict {:#} with {foreign:.2} cores of unrelated processes (attempt {attempt})",
            v["verdict"]
        );
        println!(
            "attempt {attempt}: {} decided the verdict ({foreign:.2} cores of unrelated processes); again",
            v["verdict"]["kind"]
        );
    }
}

/// Kernels without `sock:sock_send_length`/`sock_recv_length` read the turns from the
/// read/write/send/recv system calls: the same pool, the same figures against PgBouncer's view.
#[test]
fn the_system_call_fallback_sees_the_same_pool() {
    let (v, view) = pgbench_through_pool_via("small-syscalls", 2, Via::Syscalls);
    let attached: Vec<&str> = v["probes"]["attached"]
        .as_array()
        .expect("probes.attached")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        attached.contains(&"syscalls/sys_exit_recvfrom"),
        "{attached:?}"
    );
    assert!(!attached.contains(&"sock/sock_send_length"), "{attached:?}");
    check_small_pool(&v, &view);
}

/// The trace-record programs of `sock:sock_send_length`/`sock_recv_length` (the fallback for
/// kernels without raw tracepoints or BTF socket offsets) see the same pool.
#[test]
fn the_classic_socket_programs_see_the_same_pool() {
    let (v, view) = pgbench_through_pool_via("small-classic", 2, Via::Classic);
    let raw = v["probes"]["raw"].as_array().expect("probes.raw");
    assert!(!raw.iter().any(|t| t == "sock/sock_send_length"), "{raw:?}");
    check_small_pool(&v, &view);
}

const SOCKET_SYSCALLS: &str = "CHOKEPOINT_SOCKET_SYSCALLS";
const CLASSIC_ENV: &str = "CHOKEPOINT_CLASSIC_TRACEPOINTS";
const RAW_ENV: &str = "CHOKEPOINT_RAW_TRACEPOINTS";

/// The raw-tracepoint programs of the socket tracepoints (the fallback for kernels that refuse
/// the BTF ones: helper reads instead of plain loads) see the same pool.
#[test]
fn the_raw_socket_programs_see_the_same_pool() {
    let (v, view) = pgbench_through_pool_via("small-raw", 2, Via::Raw);
    let listed = |key: &str| {
        v["probes"][key]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t == "sock/sock_send_length"))
    };
    assert!(listed("raw") && !listed("btf"), "{}", v["probes"]);
    check_small_pool(&v, &view);
}

fn check_small_pool(v: &Value, view: &ServerView) {
    let pool = bouncer_pool(v);
    let (size, in_use, queued) = (num(pool, "size"), num(pool, "in_use"), num(pool, "queued"));
    let waiting = ServerView::mean(&view.cl_waiting);
    let active = ServerView::mean(&view.pg_active);
    let linked = ServerView::mean(&view.sv_active);
    let context = format!(
        "pool {pool}\nSHOW POOLS cl_waiting {waiting:.1} sv_active {linked:.2} over {} samples, pg_stat_activity active {active:.2}\npools {}\nprobe cost [ns/run, runs/s] {}\nverdict {:#}",
        view.cl_waiting.len(),
        v["pools"],
        v["probe_cost"],
        v["verdict"]
    );
    println!("{context}");
    assert!(
        view.cl_waiting.len() >= 3,
        "too few server samples: {context}"
    );
    assert!((size - 2.0).abs() < 0.3, "size: {context}");
    assert!(in_use >= 1.8, "in use: {context}");
    // Requests queued for the pool as PgBouncer counts them.
    assert!(
        (queued - waiting).abs() <= (0.15 * waiting).max(2.0),
        "queued vs cl_waiting: {context}"
    );
    // Connections in use as PgBouncer counts them (linked to a client).
    assert!(
        (linked - in_use).abs() <= 0.3,
        "in use vs sv_active: {context}"
    );
    // And as PostgreSQL counts them: running a query. The server's view excludes the time a
    // response waits for PgBouncer to read it (the slot is still taken), which grows when the
    // host is busy: in use is at least the active count, and not far above it.
    assert!(
        in_use >= active - 0.1 && in_use - active <= 0.6,
        "in use vs pg_stat_activity active: {context}"
    );
    assert!(num(pool, "wait_ms_estimate") > 0.0, "{context}");
}

#[test]
fn a_pool_big_enough_for_every_client_is_not_pool_saturated() {
    let (v, view) = pgbench_through_pool("large", 30);
    let pool = bouncer_pool(&v);
    let context = format!(
        "pool {pool}\ncl_waiting mean {:.1} median {:.1}\nverdict {:#}",
        ServerView::mean(&view.cl_waiting),
        ServerView::median(&view.cl_waiting),
        v["verdict"]
    );
    println!("{context}");
    assert_ne!(v["verdict"]["kind"], "pool-saturated", "{context}");
    // Every connection can be busy (one per client), but no request waits for one: the
    // clients' requests in flight at PgBouncer are the ones its server connections carry.
    let (in_use, inbound) = (num(pool, "in_use"), num(pool, "inbound_concurrency"));
    assert!(num(pool, "queued") < 1.0, "{context}");
    assert!((inbound - in_use).abs() < 1.0, "{context}");
    assert!(ServerView::median(&view.cl_waiting) < 1.0, "{context}");
    // The pool grew past the small one's 2 to serve the clients in parallel.
    assert!(num(pool, "size") >= 8.0, "{context}");
}

/// A TCP server in this process: each request of `size` bytes gets the same bytes back after
/// `delay`; a connection ends when the client closes it.
fn echo_server(size: usize, delay: Duration) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                let mut buf = vec![0u8; size];
                while conn.read_exact(&mut buf).is_ok() {
                    thread::sleep(delay);
                    if conn.write_all(&buf).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn pre_existing_connections_are_measured_and_udp_and_closed_sockets_leave_no_trace() {
    use std::{
        io::{Read, Write},
        net::{TcpStream, UdpSocket},
    };
    let pooled = echo_server(64, Duration::from_millis(2));
    let churn = echo_server(1, Duration::ZERO);
    // Connected, and already used, before chokepoint attaches its probes.
    let mut client = TcpStream::connect(pooled).expect("connect");
    let mut buf = [7u8; 64];
    client.write_all(&buf).expect("send");
    client.read_exact(&mut buf).expect("receive");
    let udp_rx = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let udp_port = udp_rx.local_addr().expect("udp addr").port();
    let udp_tx = UdpSocket::bind("127.0.0.1:0").expect("bind udp");

    let stop = Arc::new(AtomicBool::new(false));
    let turns = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                client.write_all(&buf).expect("send");
                client.read_exact(&mut buf).expect("receive");
                let _ = udp_tx.send_to(&buf, ("127.0.0.1", udp_port));
                n += 1;
            }
            n
        })
    };
    let short_lived = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut c = TcpStream::connect(churn).expect("connect");
                let mut b = [1u8];
                c.write_all(&b).expect("send");
                c.read_exact(&mut b).expect("receive");
                n += 1;
            }
            n
        })
    };
    let (rec, json) = (tmp("bad-input.rec"), tmp("bad-input.json"));
    let out = run_chokepoint([
        "run",
        "--out",
        &rec.display().to_string(),
        "--json",
        &json.display().to_string(),
        "--",
        "sleep",
        "5",
    ]);
    stop.store(true, Ordering::Relaxed);
    let (turns, opened) = (
        turns.join().expect("client thread"),
        short_lived.join().expect("churn thread"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON")).expect("JSON");
    let recording = std::fs::read_to_string(&rec).expect("recording");
    println!("probe cost [ns/run, runs/s] {}", probe_cost(&rec));
    let _ = std::fs::remove_file(&rec);
    let _ = std::fs::remove_file(&json);
    let pools = v["pools"].as_array().expect("pools[]");
    let context = format!("{turns} turns, {opened} short connections\npools {pools:#?}");

    // The pre-existing connection: one connection, busy nearly all the time (2 ms per turn).
    let pool = pools
        .iter()
        .find(|p| p["endpoint"] == pooled.to_string())
        .unwrap_or_else(|| panic!("no pool to {pooled}: {context}"));
    assert!((num(pool, "size") - 1.0).abs() < 0.2, "{context}");
    assert!(num(pool, "in_use") >= 0.7, "{context}");
    assert!(num(pool, "requests_per_s") >= 100.0, "{context}");
    // UDP is ignored.
    assert!(
        !pools.iter().any(|p| p["endpoint"]
            .as_str()
            .is_some_and(|e| e.ends_with(&format!(":{udp_port}")))),
        "{context}"
    );
    // Short-lived connections were seen, then deleted once closed: the map does not grow.
    assert!(opened >= 500, "{context}");
    let churn_pool = pools
        .iter()
        .find(|p| p["endpoint"] == churn.to_string())
        .unwrap_or_else(|| panic!("no pool to {churn}: {context}"));
    // Every short connection counts (about opened / 5 s per interval), though their sockets'
    // memory is reused between reads.
    assert!(num(churn_pool, "size") >= opened as f64 / 20.0, "{context}");
    let intervals: Vec<Value> = recording
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("recording line is JSON"))
        .filter(|l| l["kind"] == "interval")
        .collect();
    let tracked: Vec<u64> = intervals
        .iter()
        .map(|iv| {
            iv["overhead"]["sockets_tracked"]
                .as_u64()
                .expect("sockets_tracked")
        })
        .collect();
    let evicted: u64 = intervals
        .iter()
        .map(|iv| {
            iv["overhead"]["socket_evictions"]
                .as_u64()
                .expect("socket_evictions")
        })
        .sum();
    println!("{context}\nsockets tracked per interval {tracked:?}");
    assert_eq!(evicted, 0, "{tracked:?} {context}");
    assert!(
        tracked.iter().all(|&t| t < 200),
        "closed sockets stay in the map: {tracked:?} {context}"
    );
    drop(udp_rx);
}

/// The lab's pool scenarios (PgBouncer and the lab's own HTTP tiers) and PostgreSQL row-lock
/// contention, which fills no pool and must stay `lock-contention`. A scenario whose verdict
/// went elsewhere is run again (the test host is shared: others' CPU load and listen overflows
/// are host-wide), at most three times in all: a verdict wrong every time, or an error, fails.
#[test]
fn lab_pool_scenarios_and_row_locks_get_their_designed_verdicts() {
    let mut pending = vec!["pool-too-small", "pool-too-small-http", "lock-contention"];
    for attempt in 1..=3 {
        let json = tmp("lab.json");
        let mut args = vec!["lab".to_string()];
        args.extend(pending.iter().map(|s| s.to_string()));
        args.extend(["--seconds", "6", "--json"].map(String::from));
        args.push(json.display().to_string());
        let out = run_chokepoint(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default())
                .unwrap_or_else(|e| panic!("lab --json: {e}\n{stdout}"));
        let _ = std::fs::remove_file(&json);
        let scenarios = report["scenarios"].as_array().expect("scenarios");
        assert_eq!(scenarios.len(), pending.len(), "{stdout}");
        let mut again = Vec::new();
        for s in scenarios {
            if s["status"] == "passed" {
                assert_eq!(s["got"], s["expected"], "{s}");
                continue;
            }
            // Only a verdict that went elsewhere is retried (other engineers' load on a shared
            // host: CPU, or host-wide listen overflows), never an error.
            assert!(
                s["status"] == "failed" && s["got"].is_string() && attempt < 3,
                "attempt {attempt}: {s}\n{stdout}"
            );
            println!("attempt {attempt}: {s}; again");
            let name = s["scenario"].as_str().expect("scenario name");
            again.extend(pending.iter().filter(|p| **p == name));
        }
        if again.is_empty() {
            return;
        }
        pending = again;
    }
}

/// Two kept-alive IPv6 connections over ::1, each doing request/response turns with a 2 ms
/// server-side pause: a pool of two, almost always busy.
const IPV6_POOL: &str = r#"
import socket, sys, threading, time
srv = socket.socket(socket.AF_INET6)
srv.bind(("::1", 0))
srv.listen(16)
port = srv.getsockname()[1]
def serve(c):
    while c.recv(64):
        time.sleep(0.002)
        c.sendall(b"pong")
def accept():
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
def client():
    c = socket.create_connection(("::1", port))
    end = time.time() + float(sys.argv[1])
    while time.time() < end:
        c.sendall(b"ping")
        c.recv(64)
clients = [threading.Thread(target=client) for _ in range(2)]
for t in clients:
    t.start()
for t in clients:
    t.join()
print(f"port={port}")
"#;

#[test]
fn an_ipv6_pool_is_named_by_its_ipv6_endpoint() {
    let (stdout, json) = run_for_json(&["python3", "-c", IPV6_POOL, "3"]);
    let port = printed(&stdout, "port");
    let endpoint = format!("[::1]:{port}");
    let pool = json["pools"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["endpoint"] == endpoint.as_str()))
        .unwrap_or_else(|| panic!("a pool to {endpoint}: {}", json["pools"]));
    let (size, in_use) = (
        pool["size"].as_f64().expect("size"),
        pool["in_use"].as_f64().expect("in_use"),
    );
    assert!((size - 2.0).abs() < 0.3, "two connections: {pool}");
    assert!(in_use > 1.0 && in_use <= 2.05, "mostly busy: {pool}");
}
