//! The scenarios: each sets up a system whose bottleneck is known by construction and says
//! which load generator to run against it. docs/lab.md explains the physics of each.
use std::{
    fs::File,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use nix::sys::signal::Signal;

use super::{
    LabError,
    guard::{Service, free_port},
    tools,
};
use crate::analysis::VerdictKind;

mod controls;
mod direct;
mod disk;
mod multiplexed;
mod runtimes;
mod stacks;

/// What a scenario's set-up gets.
pub struct Ctx<'a> {
    /// This chokepoint binary (runs the lab-server).
    pub exe: &'a Path,
    /// Seconds of load.
    pub seconds: u64,
    /// The scenario's own temporary directory (logs, data), removed afterwards.
    pub dir: &'a Path,
}

/// A running system and the load generator to point at it. Dropping it stops the servers.
#[derive(Default)]
pub struct Setup {
    pub services: Vec<Service>,
    pub command: Vec<String>,
    /// The generator's own output files, handed to `chokepoint run --load`.
    pub load: Vec<PathBuf>,
    /// The analysis window the verdict must come from (`window.source`), where it matters.
    pub window: Option<&'static str>,
}

pub struct Scenario {
    pub name: &'static str,
    pub expected: VerdictKind,
    pub description: &'static str,
    /// In the quick `default` subset.
    pub default: bool,
    /// Programs it needs (`postgres:NAME` for PostgreSQL's versioned bin directory).
    pub tools: &'static [&'static str],
    /// The servers it drives (`lab-server`, `lab-proxy` and `lab-fanout` are chokepoint's own;
    /// the rest third-party software), and the load generator.
    pub servers: &'static [&'static str],
    pub generator: &'static str,
    pub setup: fn(&Ctx) -> Result<Setup, LabError>,
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "cpu-saturated",
        expected: VerdictKind::CpuSaturated,
        description: "lab-server, 4 workers x 300 us CPU per request, wrk keep-alive: the server eats both cores",
        default: true,
        tools: &["wrk"],
        servers: &["lab-server"],
        generator: "wrk",
        setup: cpu_saturated,
    },
    Scenario {
        name: "cpu-saturated-hey",
        expected: VerdictKind::CpuSaturated,
        description: "the same server, 1 ms CPU per request, driven by hey (a different, CPU-hungrier generator)",
        default: false,
        tools: &["hey"],
        servers: &["lab-server"],
        generator: "hey",
        setup: cpu_saturated_hey,
    },
    Scenario {
        name: "single-thread",
        expected: VerdictKind::SingleThreadSaturated,
        description: "lab-server with one worker thread, 1 ms CPU per request, wrk: one core pegged, one idle",
        default: true,
        tools: &["wrk"],
        servers: &["lab-server"],
        generator: "wrk",
        setup: single_thread,
    },
    Scenario {
        name: "single-thread-ab",
        expected: VerdictKind::SingleThreadSaturated,
        description: "the one-worker server driven by ab -k (single-threaded generator, HTTP/1.0 keep-alive)",
        default: false,
        tools: &["ab"],
        servers: &["lab-server"],
        generator: "ab",
        setup: single_thread_ab,
    },
    Scenario {
        name: "slow-upstream",
        expected: VerdictKind::NotSaturated,
        description: "lab-server, 32 workers each sleeping 20 ms per request (a slow backend), wrk -c8: nothing on this host is busy",
        default: true,
        tools: &["wrk"],
        servers: &["lab-server"],
        generator: "wrk",
        setup: slow_upstream,
    },
    Scenario {
        name: "lock-contention",
        expected: VerdictKind::LockContention,
        description: "PostgreSQL (fsync off), pgbench -c16: every transaction updates the same row and works ~2 ms holding its lock",
        default: false,
        tools: &["pgbench", "postgres:initdb", "postgres:postgres", "psql"],
        servers: &["postgresql"],
        generator: "pgbench",
        setup: lock_contention,
    },
    Scenario {
        name: "lock-contention-advisory",
        expected: VerdictKind::LockContention,
        description: "PostgreSQL, pgbench -c16: every statement takes the same advisory lock and holds it through a 2 ms pg_sleep: one holder at a time (<= 500 statements/s), 15 backends queued on it while both cores idle",
        default: false,
        tools: &["pgbench", "postgres:initdb", "postgres:postgres", "psql"],
        servers: &["postgresql"],
        generator: "pgbench",
        setup: lock_contention_advisory,
    },
    Scenario {
        name: "db-timed-waits",
        expected: VerdictKind::NotSaturated,
        description: "the control: PostgreSQL, pgbench -c16, every statement a 10 ms pg_sleep and no lock: 16 backends busy waiting on timers, woken by the clients and the timer, not by each other",
        default: false,
        tools: &["pgbench", "postgres:initdb", "postgres:postgres", "psql"],
        servers: &["postgresql"],
        generator: "pgbench",
        setup: db_timed_waits,
    },
    Scenario {
        name: "lock-contention-mutex",
        expected: VerdictKind::LockContention,
        description: "lab-server, 8 workers each holding one shared mutex 400 us per request, wrk -c16: the workers queue on the lock and hand it to each other",
        default: false,
        tools: &["wrk"],
        servers: &["lab-server"],
        generator: "wrk",
        setup: lock_contention_mutex,
    },
    Scenario {
        name: "pool-too-small",
        expected: VerdictKind::PoolSaturated,
        description: "pgbench -c24 through a PgBouncer pool of 2 server connections to PostgreSQL, every transaction pg_sleep(5 ms): 22 requests queue for the pool while both cores idle",
        default: false,
        tools: &[
            "pgbench",
            "pgbouncer",
            "postgres:initdb",
            "postgres:postgres",
        ],
        servers: &["pgbouncer", "postgresql"],
        generator: "pgbench",
        setup: pool_too_small,
    },
    Scenario {
        name: "pool-too-small-http",
        expected: VerdictKind::PoolSaturated,
        description: "lab-proxy (32 workers) calling a lab-server upstream that waits 5 ms per request through a pool of 2 keep-alive connections, wrk -c16: 14 requests queue for the pool",
        default: false,
        tools: &["wrk"],
        servers: &["lab-proxy", "lab-server"],
        generator: "wrk",
        setup: pool_too_small_http,
    },
    Scenario {
        name: "proxy-cap-haproxy",
        expected: VerdictKind::PoolSaturated,
        description: "haproxy in front of an upstream that waits 10 ms per request, `server ... maxconn 4` and `option http-server-close` (a new upstream connection per request), wrk -c32: 4 requests in flight upstream, 28 queued in haproxy",
        default: false,
        tools: &["haproxy", "wrk"],
        servers: &["haproxy", "lab-server"],
        generator: "wrk",
        setup: proxy_cap_haproxy,
    },
    Scenario {
        name: "proxy-room-haproxy",
        expected: VerdictKind::NotSaturated,
        description: "the control: the same haproxy and upstream, `maxconn 64`, wrk -c8: every request goes upstream at once (8 in flight there, a new connection each), nothing queues in the proxy",
        default: false,
        tools: &["haproxy", "wrk"],
        servers: &["haproxy", "lab-server"],
        generator: "wrk",
        setup: proxy_room_haproxy,
    },
    Scenario {
        name: "accept-overflow",
        expected: VerdictKind::ConnectionSetup,
        description: "lab-server with backlog 4 accepting one connection per 2 ms, wrk with a new connection per request: SYNs dropped",
        default: true,
        tools: &["wrk"],
        servers: &["lab-server"],
        generator: "wrk",
        setup: accept_overflow,
    },
    Scenario {
        name: "accept-overflow-hey",
        expected: VerdictKind::ConnectionSetup,
        description: "the same slow-accepting server (backlog 4), hey -c50 with keep-alive disabled: a different generator's connection storm",
        default: false,
        tools: &["hey"],
        servers: &["lab-server"],
        generator: "hey",
        setup: accept_overflow_hey,
    },
    Scenario {
        name: "slow-upstream-hey",
        expected: VerdictKind::NotSaturated,
        description: "the slow backend (32 workers, 20 ms sleep per request) driven by hey -c16: throughput set by concurrency x latency",
        default: false,
        tools: &["hey"],
        servers: &["lab-server"],
        generator: "hey",
        setup: slow_upstream_hey,
    },
    Scenario {
        name: "nginx-keepalive-cpu",
        expected: VerdictKind::CpuSaturated,
        description: "nginx (2 workers) serving a small file, wrk keep-alive -c64: both cores busy",
        default: false,
        tools: &["nginx", "wrk"],
        servers: &["nginx"],
        generator: "wrk",
        setup: nginx_keepalive,
    },
    Scenario {
        name: "generator-pinned",
        expected: VerdictKind::LoadGeneratorBound,
        description: "wrk -t2 pinned to one core with taskset against a cheap 4-worker lab-server: the generator has one core for two threads",
        default: false,
        tools: &["wrk", "taskset"],
        servers: &["lab-server"],
        generator: "wrk",
        setup: generator_pinned,
    },
    Scenario {
        name: "generator-pinned-nginx",
        expected: VerdictKind::LoadGeneratorBound,
        description: "hey -c50 pinned to one core with taskset against nginx (2 workers, small file): the Go generator spends its core while nginx has room",
        default: false,
        tools: &["hey", "nginx", "taskset"],
        servers: &["nginx"],
        generator: "hey",
        setup: generator_pinned_nginx,
    },
    Scenario {
        name: "cpu-throttled",
        expected: VerdictKind::CpuThrottled,
        description: "lab-server, 4 workers x 300 us CPU per request, in a cgroup with a 0.5-core CFS quota, wrk: throttled while the host idles",
        default: false,
        tools: &["wrk"],
        servers: &["lab-server"],
        generator: "wrk",
        setup: cpu_throttled,
    },
    Scenario {
        name: "cpu-throttled-hey",
        expected: VerdictKind::CpuThrottled,
        description: "lab-server, 2 workers x 1 ms CPU per request, in a cgroup with a 1-core CFS quota, hey -c16: half the host idles while the quota holds the workers back",
        default: false,
        tools: &["hey"],
        servers: &["lab-server"],
        generator: "hey",
        setup: cpu_throttled_hey,
    },
    Scenario {
        name: "disk-bound",
        expected: VerdictKind::IoBound,
        description: "dd writing 4 KiB blocks with O_DSYNC (every write waits for the disk) while the load generator idles",
        default: false,
        tools: &["dd", "sleep"],
        servers: &["dd"],
        generator: "sleep",
        setup: disk_bound,
    },
    Scenario {
        name: "disk-bound-64k",
        expected: VerdictKind::IoBound,
        description: "dd writing 64 KiB blocks with O_DSYNC: larger writes, each still waiting for the disk",
        default: false,
        tools: &["dd", "sleep"],
        servers: &["dd"],
        generator: "sleep",
        setup: disk_bound_64k,
    },
    Scenario {
        name: "disk-bound-fio",
        expected: VerdictKind::IoBound,
        description: "fio, one job writing 256 KiB blocks at random offsets with O_DIRECT and O_SYNC: the generator itself waits for the disk on every write while both cores idle",
        default: false,
        tools: &["fio"],
        servers: &["fio"],
        generator: "fio",
        setup: disk::disk_bound_fio,
    },
    Scenario {
        name: "disk-bound-sysbench",
        expected: VerdictKind::IoBound,
        description: "sysbench fileio, random 4 KiB writes with an fsync after every one, one thread, started through sh -c: the writer waits for the disk, the shell is a wrapper",
        default: false,
        tools: &["sysbench", "sh"],
        servers: &["sysbench"],
        generator: "sysbench",
        setup: disk::disk_bound_sysbench,
    },
    Scenario {
        name: "disk-paced-fio",
        expected: VerdictKind::NotSaturated,
        description: "the control: the same fio synchronous writes paced at 100 a second (--rate_iops), a tenth of what the disk sustains: every write still waits for the disk, but fio waits on its own pacing",
        default: false,
        tools: &["fio"],
        servers: &["fio"],
        generator: "fio",
        setup: disk::disk_paced_fio,
    },
    Scenario {
        name: "bandwidth-limited-veth",
        expected: VerdictKind::NetworkBandwidth,
        description: "nginx in a network namespace behind a bridge, a veth and a DNAT'd loopback port, 256 KiB responses through an 8 Mbit/s tbf on the veth, wrk keep-alive -c4",
        default: false,
        tools: &["nginx", "wrk", "ip", "tc", "iptables"],
        servers: &["nginx"],
        generator: "wrk",
        setup: bandwidth_limited_veth,
    },
    Scenario {
        name: "pgbench-select-cpu",
        expected: VerdictKind::CpuSaturated,
        description: "pgbench -S -c8 -j2 (select-only) against PostgreSQL: the backends and pgbench together use both cores, nobody waits on anybody",
        default: false,
        tools: &["postgres:initdb", "postgres:postgres", "psql", "pgbench"],
        servers: &["postgresql"],
        generator: "pgbench",
        setup: stacks::pgbench_select_cpu,
    },
    Scenario {
        name: "db-idle-connections",
        expected: VerdictKind::NotSaturated,
        description: "PostgreSQL with 30 idle client sessions (psql waiting for input) and pgbench -S -c4 at a fixed 100 transactions/s (-R 100): many connections, none busy, nothing queued (the control for pool-saturated and lock-contention)",
        default: false,
        tools: &["postgres:initdb", "postgres:postgres", "psql", "pgbench"],
        servers: &["postgresql"],
        generator: "pgbench",
        setup: stacks::db_idle_connections,
    },
    Scenario {
        name: "generator-pinned-k6",
        expected: VerdictKind::LoadGeneratorBound,
        description: "taskset -c 0 k6 (16 VUs parsing every 2 KiB JSON response 20 times) against nginx (2 workers): k6 uses all of the one core it may use while nginx has room",
        default: false,
        tools: &["nginx", "k6", "taskset"],
        servers: &["nginx"],
        generator: "k6",
        setup: stacks::generator_pinned_k6,
    },
    Scenario {
        name: "nginx-throttled-k6",
        expected: VerdictKind::CpuThrottled,
        description: "nginx (master and 2 workers) in a cgroup with a 0.3-core CFS quota gzipping 64 KiB responses, k6 with 8 VUs: the workers run out of quota in most periods while the host idles",
        default: false,
        tools: &["nginx", "k6"],
        servers: &["nginx"],
        generator: "k6",
        setup: stacks::nginx_throttled_k6,
    },
    Scenario {
        name: "node-single-thread",
        expected: VerdictKind::SingleThreadSaturated,
        description: "Node.js spinning 300 us per request on its one event-loop thread, wrk -c16: that thread holds a core while the other has room",
        default: false,
        tools: &["node", "wrk"],
        servers: &["node"],
        generator: "wrk",
        setup: stacks::node_single_thread,
    },
    Scenario {
        name: "proxy-cap-haproxy-node",
        expected: VerdictKind::PoolSaturated,
        description: "haproxy (maxconn 4, a new upstream connection per request) in front of Node.js answering after a 10 ms timer, hey -c32: 28 requests wait in haproxy's queue while both cores idle",
        default: false,
        tools: &["haproxy", "node", "hey"],
        servers: &["haproxy", "node"],
        generator: "hey",
        setup: stacks::proxy_cap_haproxy_node,
    },
    Scenario {
        name: "redis-single-thread",
        expected: VerdictKind::SingleThreadSaturated,
        description: "redis-benchmark -c8 SINTERCARD of two 4,000-member sets, under timeout, against Redis: the server's one command thread holds a core, the client needs little",
        default: false,
        tools: &["redis-server", "redis-cli", "redis-benchmark", "timeout"],
        servers: &["redis"],
        generator: "redis-benchmark",
        setup: stacks::redis_single_thread,
    },
    Scenario {
        name: "go-mutex",
        expected: VerdictKind::LockContention,
        description: "Go net/http, every request computing 2 ms while holding one sync.Mutex, hey -c16: waiters are goroutines parked in Go's runtime, not threads in the kernel; one holder at a time, a core to spare",
        default: false,
        tools: &["go", "hey"],
        servers: &["go-net-http"],
        generator: "hey",
        setup: runtimes::go_mutex,
    },
    Scenario {
        name: "go-cpu",
        expected: VerdictKind::CpuSaturated,
        description: "the control: the same Go server and 2 ms of work per request without the mutex, wrk -c16: both cores compute",
        default: false,
        tools: &["go", "wrk"],
        servers: &["go-net-http"],
        generator: "wrk",
        setup: runtimes::go_cpu,
    },
    Scenario {
        name: "gunicorn-sync-cpu",
        expected: VerdictKind::CpuSaturated,
        description: "gunicorn, 2 pre-forked sync workers, 3 ms of Python per request, ab -c8 started by a bash -c script: two worker processes share both cores (one service, not two single threads; bash is a wrapper)",
        default: false,
        tools: &["gunicorn", "ab", "bash"],
        servers: &["gunicorn"],
        generator: "ab",
        setup: runtimes::gunicorn_sync_cpu,
    },
    Scenario {
        name: "gunicorn-gthread-sleep",
        expected: VerdictKind::NotSaturated,
        description: "gunicorn's threaded worker (16 threads), every request sleeping 20 ms, wrk -c8: idle threads parked on the worker's queue and the interpreter lock passed around, nothing contended",
        default: false,
        tools: &["gunicorn", "wrk"],
        servers: &["gunicorn"],
        generator: "wrk",
        setup: runtimes::gunicorn_gthread_sleep,
    },
    Scenario {
        name: "gunicorn-gthread-gil",
        expected: VerdictKind::LockContention,
        description: "gunicorn's threaded worker (8 threads), 3 ms of Python per request, wrk -c16: Python's interpreter lock lets one thread compute at a time, the other core idles",
        default: false,
        tools: &["gunicorn", "wrk"],
        servers: &["gunicorn"],
        generator: "wrk",
        setup: runtimes::gunicorn_gthread_gil,
    },
    Scenario {
        name: "bandwidth-direct-netns",
        expected: VerdictKind::NetworkBandwidth,
        description: "hey -c4 on the host -> bridge -> veth -> nginx at the namespace's own address (no NAT, no published port), 256 KiB responses through a tbf 8 Mbit/s shaper on the namespace's side of the veth",
        default: false,
        tools: &["nginx", "hey", "ip", "tc", "iptables"],
        servers: &["nginx"],
        generator: "hey",
        setup: direct::bandwidth_direct_netns,
    },
    Scenario {
        name: "bandwidth-netns-to-host",
        expected: VerdictKind::NetworkBandwidth,
        description: "ab -k -c4 inside a namespace -> veth -> bridge -> Node.js on the host at the bridge's own address, 256 KiB responses through a tbf 8 Mbit/s shaper on the host's side of the veth",
        default: false,
        tools: &["node", "ab", "ip", "tc", "iptables"],
        servers: &["node"],
        generator: "ab",
        setup: direct::bandwidth_netns_to_host,
    },
    Scenario {
        name: "shaper-beside-the-path",
        expected: VerdictKind::NotSaturated,
        description: "hey -c4 -q25 (100 requests/s of 64 KiB) to nginx at one namespace's own address, unshaped, while a curl loop keeps another namespace's tbf 8 Mbit/s shaper full (the control: a shaper at its rate, on no path of the load)",
        default: false,
        tools: &["nginx", "hey", "curl", "ip", "tc", "iptables"],
        servers: &["nginx"],
        generator: "hey",
        setup: direct::shaper_beside_the_path,
    },
    Scenario {
        name: "conntrack-full",
        expected: VerdictKind::ConnectionSetup,
        description: "nginx in a network namespace behind a DNAT'd loopback port, nf_conntrack_max lowered to 256 above the current count (restored after), wrk with a new connection per request: new flows dropped",
        default: false,
        tools: &["nginx", "wrk", "ip", "tc", "iptables"],
        servers: &["nginx"],
        generator: "wrk",
        setup: conntrack_full,
    },
    Scenario {
        name: "h2-upstream-room-haproxy",
        expected: VerdictKind::NotSaturated,
        description: "haproxy forwarding wrk's 8 connections as HTTP/2 streams (proto h2, http-reuse always, maxconn 64) to Node.js answering each after 10 ms: two always-busy upstream connections carry every request at once, nothing queues",
        default: false,
        tools: &["haproxy", "node", "wrk"],
        servers: &["haproxy", "node"],
        generator: "wrk",
        setup: multiplexed::h2_upstream_room_haproxy,
    },
    Scenario {
        name: "h2-upstream-room-node",
        expected: VerdictKind::NotSaturated,
        description: "a Node.js proxy forwarding hey's 32 connections as streams of one HTTP/2 session to Node.js answering each after 10 ms: one busy connection carries all 32 requests, nothing queues",
        default: false,
        tools: &["node", "hey"],
        servers: &["node"],
        generator: "hey",
        setup: multiplexed::h2_upstream_room_node,
    },
    Scenario {
        name: "nginx-new-connections-room",
        expected: VerdictKind::NotSaturated,
        description: "the control for connection-setup: hey -c8 -q100 with keep-alive off against nginx (2 workers, 64-byte page): 800 new connections a second, thousands in TIME_WAIT, every SYN answered and accepted at once",
        default: false,
        tools: &["nginx", "hey"],
        servers: &["nginx"],
        generator: "hey",
        setup: controls::nginx_new_connections_room,
    },
    Scenario {
        name: "nginx-quota-room",
        expected: VerdictKind::NotSaturated,
        description: "the control for cpu-throttled: nginx gzipping 64 KiB responses in a cgroup with a 1.5-core CFS quota, k6 with 4 VUs pausing 50 ms between requests: a quota in place that the workers never reach",
        default: false,
        tools: &["nginx", "k6"],
        servers: &["nginx"],
        generator: "k6",
        setup: controls::nginx_quota_room,
    },
    Scenario {
        name: "conntrack-full-ab",
        expected: VerdictKind::ConnectionSetup,
        description: "the same full conntrack table (nginx in a namespace behind a DNAT'd loopback port, nf_conntrack_max 256 above the current count), ab -c16 without keep-alive: a third generator's new flows dropped",
        default: false,
        tools: &["nginx", "ab", "ip", "tc", "iptables"],
        servers: &["nginx"],
        generator: "ab",
        setup: conntrack_full_ab,
    },
    Scenario {
        name: "concurrency-sweep",
        expected: VerdictKind::SingleThreadSaturated,
        description: "k6 steps 1 -> 32 virtual users against the one-worker server (1 ms CPU per request): throughput stops growing at the knee while latency climbs; the verdict must come from k6's own plateau (window load-plateau)",
        default: false,
        tools: &["k6"],
        servers: &["lab-server"],
        generator: "k6",
        setup: concurrency_sweep,
    },
    Scenario {
        name: "two-hop-proxy",
        expected: VerdictKind::CpuSaturated,
        description: "wrk keep-alive -c64 -> nginx proxy -> nginx proxy (a new upstream connection per request) -> DNAT -> bridge -> veth -> nginx in a namespace: the proxies' CPU saturates both cores; the path shows both proxy hops",
        default: false,
        tools: &["nginx", "wrk", "ip", "tc", "iptables"],
        servers: &["nginx"],
        generator: "wrk",
        setup: two_hop_proxy,
    },
    Scenario {
        name: "websocket-fanout",
        expected: VerdictKind::NetworkBandwidth,
        description: "lab-fanout broadcasts 4 KiB messages 100 times a second to 16 k6 WebSocket clients and 2 slow readers, one blocking send after another through 16 KiB send buffers: the slow readers' full buffers stall delivery to everyone while the CPUs idle",
        default: false,
        tools: &["k6"],
        servers: &["lab-fanout"],
        generator: "k6",
        setup: websocket_fanout,
    },
    Scenario {
        name: "websocket-fanout-keeping-up",
        expected: VerdictKind::NotSaturated,
        description: "the same fan-out (16 KiB send buffers, blocking sends) with only the 16 k6 clients, all reading as fast as it sends: every message delivered within milliseconds, nothing held back (the control for websocket-fanout)",
        default: false,
        tools: &["k6"],
        servers: &["lab-fanout"],
        generator: "k6",
        setup: websocket_fanout_keeping_up,
    },
];

pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

fn tool(name: &str) -> Result<String, LabError> {
    tools::find(name)
        .map(|p| p.to_string_lossy().into_owned())
        .ok_or_else(|| LabError::Spawn {
            what: tools::display_name(name).to_string(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
}

fn log_file(ctx: &Ctx, name: &str) -> Result<File, LabError> {
    let path = ctx.dir.join(format!("{name}.log"));
    File::create(&path).map_err(|source| LabError::Io { path, source })
}

/// Start the lab's own HTTP server with these extra flags; returns it and its port.
fn lab_server(ctx: &Ctx, flags: &[&str]) -> Result<(Service, u16), LabError> {
    lab_server_named(ctx, "lab-server", flags)
}

/// The same, under another process name (and log file).
fn lab_server_named(ctx: &Ctx, name: &str, flags: &[&str]) -> Result<(Service, u16), LabError> {
    let port = free_port()?;
    let log = log_file(ctx, name)?;
    let mut cmd = Command::new(ctx.exe);
    cmd.arg("lab-server")
        .args(["--port", &port.to_string(), "--name", name])
        .args(flags)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|source| LabError::Io {
            path: ctx.dir.join(format!("{name}.log")),
            source,
        })?)
        .stderr(log);
    let mut service = Service::spawn(name, cmd, Signal::SIGTERM)?;
    service.wait_for_port(port, Duration::from_secs(10))?;
    Ok((service, port))
}

/// `k6 run` of `script`, its JSON output to `out`; quiet, and never reporting usage to the
/// internet (the lab uses only local addresses).
fn k6_run(script: &Path, out: &Path) -> Result<Vec<String>, LabError> {
    Ok(vec![
        tool("k6")?,
        "run".into(),
        "--quiet".into(),
        "--no-usage-report".into(),
        "--out".into(),
        format!("json={}", out.display()),
        script.to_string_lossy().into_owned(),
    ])
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/")
}

fn wrk(
    ctx: &Ctx,
    threads: u32,
    conns: u32,
    port: u16,
    extra: &[&str],
) -> Result<Vec<String>, LabError> {
    let mut argv = vec![
        tool("wrk")?,
        format!("-t{threads}"),
        format!("-c{conns}"),
        format!("-d{}s", ctx.seconds),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv.push(url(port));
    Ok(argv)
}

fn cpu_saturated(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = lab_server(ctx, &["--workers", "4", "--cpu-us", "300"])?;
    Ok(Setup {
        services: vec![server],
        command: wrk(ctx, 1, 16, port, &[])?,
        ..Default::default()
    })
}

fn cpu_saturated_hey(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = lab_server(ctx, &["--workers", "4", "--cpu-us", "1000"])?;
    Ok(Setup {
        services: vec![server],
        command: hey(ctx, 16, port, &[])?,
        ..Default::default()
    })
}

fn single_thread(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = lab_server(ctx, &["--workers", "1", "--cpu-us", "1000"])?;
    Ok(Setup {
        services: vec![server],
        command: wrk(ctx, 1, 16, port, &[])?,
        ..Default::default()
    })
}

fn single_thread_ab(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = lab_server(ctx, &["--workers", "1", "--cpu-us", "200"])?;
    Ok(Setup {
        services: vec![server],
        command: vec![
            tool("ab")?,
            "-q".into(),
            "-k".into(),
            "-c".into(),
            "8".into(),
            "-t".into(),
            ctx.seconds.to_string(),
            "-n".into(),
            "10000000".into(),
            url(port),
        ],
        ..Default::default()
    })
}

/// k6 steps through 1, 2, 4 ... 32 virtual users, holding each level; its JSON output is the
/// timeline chokepoint finds the plateau in.
fn concurrency_sweep(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = lab_server(ctx, &["--workers", "1", "--cpu-us", "1000"])?;
    let hold = (ctx.seconds / 3).max(2);
    let stages: Vec<String> = [1, 2, 4, 8, 16, 32]
        .iter()
        .flat_map(|n| {
            [
                format!("{{ duration: '1s', target: {n} }}"),
                format!("{{ duration: '{hold}s', target: {n} }}"),
            ]
        })
        .collect();
    let script = ctx.dir.join("sweep.js");
    let text = format!(
        "import http from 'k6/http';\n\
         export const options = {{ discardResponseBodies: true, stages: [{}] }};\n\
         export default function () {{ http.get('{}'); }}\n",
        stages.join(", "),
        url(port)
    );
    std::fs::write(&script, text).map_err(|source| LabError::Io {
        path: script.clone(),
        source,
    })?;
    let out = ctx.dir.join("k6.json");
    Ok(Setup {
        services: vec![server],
        command: k6_run(&script, &out)?,
        load: vec![out],
        window: Some("load-plateau"),
    })
}

fn slow_upstream(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = lab_server(ctx, &["--workers", "32", "--sleep-us", "20000"])?;
    Ok(Setup {
        services: vec![server],
        command: wrk(ctx, 1, 8, port, &[])?,
        ..Default::default()
    })
}

fn accept_overflow(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = lab_server(
        ctx,
        &[
            "--workers",
            "1",
            "--backlog",
            "4",
            "--accept-delay-us",
            "2000",
        ],
    )?;
    Ok(Setup {
        services: vec![server],
        command: wrk(ctx, 1, 64, port, &["-H", "Connection: close"])?,
        ..Default::default()
    })
}

fn hey(ctx: &Ctx, conns: u32, port: u16, extra: &[&str]) -> Result<Vec<String>, LabError> {
    hey_at(ctx, conns, &url(port), extra)
}

/// `hey -z <seconds>s -c <conns> [extra...] <url>`.
fn hey_at(ctx: &Ctx, conns: u32, url: &str, extra: &[&str]) -> Result<Vec<String>, LabError> {
    let mut argv = vec![
        tool("hey")?,
        "-z".into(),
        format!("{}s", ctx.seconds),
        "-c".into(),
        conns.to_string(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv.push(url.into());
    Ok(argv)
}

fn slow_upstream_hey(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = lab_server(ctx, &["--workers", "32", "--sleep-us", "20000"])?;
    Ok(Setup {
        services: vec![server],
        command: hey(ctx, 16, port, &[])?,
        ..Default::default()
    })
}

fn accept_overflow_hey(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = lab_server(
        ctx,
        &[
            "--workers",
            "1",
            "--backlog",
            "4",
            "--accept-delay-us",
            "2000",
        ],
    )?;
    Ok(Setup {
        services: vec![server],
        command: hey(ctx, 50, port, &["-disable-keepalive"])?,
        ..Default::default()
    })
}

fn lock_contention_mutex(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = lab_server(ctx, &["--workers", "8", "--lock-us", "400"])?;
    Ok(Setup {
        services: vec![server],
        command: wrk(ctx, 1, 16, port, &[])?,
        ..Default::default()
    })
}

/// Run a set-up step to completion; its output goes into the error when it fails.
fn step(what: &str, cmd: &mut Command) -> Result<(), LabError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            what: what.to_string(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    Err(LabError::StepFailed {
        what: what.to_string(),
        status: out.status.to_string(),
        output: text.trim().chars().take(400).collect(),
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every client updates the same row, then works inside the same statement (one round trip)
/// while the row stays locked until the commit: the next client waits for that commit. A bare
/// `UPDATE` holds the lock for tens of microseconds, too short to queue clients on two cores.
const ONE_ROW_HELD: &str = "WITH u AS (UPDATE t SET v = v + 1 WHERE id = 1 RETURNING v) \
     SELECT count(*) FROM u, generate_series(1, 20000) g;\n";

fn lock_contention(ctx: &Ctx) -> Result<Setup, LabError> {
    postgres_one_row(ctx, ONE_ROW_HELD)
}

/// One advisory lock taken by every statement and held (until the statement's transaction
/// ends) through a 2 ms sleep: the holder sleeps, everyone else waits for it.
fn lock_contention_advisory(ctx: &Ctx) -> Result<Setup, LabError> {
    postgres_one_row(ctx, "SELECT pg_advisory_xact_lock(1), pg_sleep(0.002);\n")
}

/// The same server and clients with waits that do not serialise: each backend sleeps 10 ms
/// on its own timer.
fn db_timed_waits(ctx: &Ctx) -> Result<Setup, LabError> {
    postgres_one_row(ctx, "SELECT pg_sleep(0.01);\n")
}

/// A fresh PostgreSQL cluster (fsync off) in the scenario's directory on 127.0.0.1: the
/// server, its port, and the postgres user's (uid, gid).
fn postgres(ctx: &Ctx) -> Result<(Service, u16, (u32, u32)), LabError> {
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .ok_or_else(|| LabError::NoUser("postgres".into()))?;
    let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
    // PostgreSQL refuses to run as root: its data directory belongs to its own user.
    std::fs::set_permissions(ctx.dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err(ctx.dir))?;
    let data = ctx.dir.join("data");
    std::fs::create_dir(&data).map_err(io_err(&data))?;
    std::os::unix::fs::chown(&data, Some(uid), Some(gid)).map_err(io_err(&data))?;
    let as_postgres = |program: &str| {
        let mut c = Command::new(program);
        c.uid(uid).gid(gid).current_dir(&data).env("LC_ALL", "C");
        c
    };
    let data_s = data.to_string_lossy().into_owned();
    step(
        "initdb",
        as_postgres(&tool("postgres:initdb")?).args([
            "-D",
            &data_s,
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]),
    )?;
    let port = free_port()?;
    let log = log_file(ctx, "postgres")?;
    let mut cmd = as_postgres(&tool("postgres:postgres")?);
    cmd.args(["-D", &data_s, "-k", &data_s, "-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=40"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err(&data))?)
        .stderr(log);
    let mut postgres = Service::spawn("postgres", cmd, Signal::SIGINT)?;
    postgres.wait_for_port(port, Duration::from_secs(30))?;
    Ok((postgres, port, (uid, gid)))
}

fn postgres_one_row(ctx: &Ctx, script_text: &str) -> Result<Setup, LabError> {
    let (postgres, port, _) = postgres(ctx)?;
    let port_s = port.to_string();
    let conn = ["-h", "127.0.0.1", "-p", &port_s, "-U", "postgres"];
    step(
        "psql",
        Command::new(tool("psql")?).args(conn).args([
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "CREATE TABLE t (id int PRIMARY KEY, v bigint NOT NULL); INSERT INTO t VALUES (1, 0);",
        ]),
    )?;
    let script = ctx.dir.join("one-row.sql");
    std::fs::write(&script, script_text).map_err(io_err(&script))?;
    let mut command = vec![tool("pgbench")?, "-n".into()];
    command.extend(conn.iter().map(|s| s.to_string()));
    command.extend([
        "-c".into(),
        "16".into(),
        "-j".into(),
        "2".into(),
        "-T".into(),
        ctx.seconds.to_string(),
        "-f".into(),
        script.to_string_lossy().into_owned(),
        "postgres".into(),
    ]);
    Ok(Setup {
        services: vec![postgres],
        command,
        ..Default::default()
    })
}

/// 24 clients, 2 server connections, 5 ms of waiting per transaction on the server: the pool
/// carries at most 2 / 5 ms = 400 transactions/s and the other 22 clients queue in PgBouncer.
fn pool_too_small(ctx: &Ctx) -> Result<Setup, LabError> {
    let (postgres, pg_port, (uid, gid)) = postgres(ctx)?;
    let port = free_port()?;
    let dir = ctx.dir.to_string_lossy().into_owned();
    let users = ctx.dir.join("userlist.txt");
    std::fs::write(&users, "\"postgres\" \"\"\n").map_err(io_err(&users))?;
    let ini = ctx.dir.join("pgbouncer.ini");
    std::fs::write(
        &ini,
        format!(
            "[databases]\n* = host=127.0.0.1 port={pg_port}\n\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {dir}/userlist.txt\n\
             pool_mode = transaction\ndefault_pool_size = 2\nmax_client_conn = 200\n\
             logfile = {dir}/pgbouncer.log\n"
        ),
    )
    .map_err(io_err(&ini))?;
    // PgBouncer refuses to run as root: it runs as postgres, which must write its log.
    let log = ctx.dir.join("pgbouncer.log");
    File::create(&log).map_err(io_err(&log))?;
    std::os::unix::fs::chown(&log, Some(uid), Some(gid)).map_err(io_err(&log))?;
    let stderr = log_file(ctx, "pgbouncer-stderr")?;
    let mut cmd = Command::new(tool("pgbouncer")?);
    cmd.arg(&ini)
        .uid(uid)
        .gid(gid)
        .current_dir(ctx.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let mut bouncer = Service::spawn("pgbouncer", cmd, Signal::SIGTERM)?;
    bouncer.wait_for_port(port, Duration::from_secs(10))?;
    let script = ctx.dir.join("sleep.sql");
    std::fs::write(&script, "SELECT pg_sleep(0.005);\n").map_err(io_err(&script))?;
    let command = vec![
        tool("pgbench")?,
        "-n".into(),
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-U".into(),
        "postgres".into(),
        "-c".into(),
        "24".into(),
        "-j".into(),
        "2".into(),
        "-T".into(),
        ctx.seconds.to_string(),
        "-f".into(),
        script.to_string_lossy().into_owned(),
        "postgres".into(),
    ];
    Ok(Setup {
        // PgBouncer first: it stops before the server it pools for.
        services: vec![bouncer, postgres],
        command,
        ..Default::default()
    })
}

/// The HTTP variant: an application tier with a fixed pool of 2 upstream connections, the
/// upstream waiting 5 ms per request (no CPU), 16 wrk connections: the pool carries at most
/// 400 requests/s and the other 14 requests wait in the front tier for a connection.
fn pool_too_small_http(ctx: &Ctx) -> Result<Setup, LabError> {
    let (upstream, upstream_port) = lab_server(ctx, &["--workers", "16", "--sleep-us", "5000"])?;
    let upstream_port = upstream_port.to_string();
    let (front, port) = lab_server_named(
        ctx,
        "lab-proxy",
        &[
            "--workers",
            "32",
            "--upstream-port",
            &upstream_port,
            "--upstream-pool",
            "2",
        ],
    )?;
    Ok(Setup {
        services: vec![front, upstream],
        command: wrk(ctx, 1, 16, port, &[])?,
        ..Default::default()
    })
}

/// haproxy in the foreground in front of a lab-server that waits 10 ms per request, opening a
/// new upstream connection per request, at most `maxconn` requests upstream at once.
fn haproxy_in_front(ctx: &Ctx, maxconn: u32, clients: u32) -> Result<Setup, LabError> {
    let (upstream, upstream_port) = lab_server(ctx, &["--workers", "64", "--sleep-us", "10000"])?;
    let (proxy, port) = haproxy_at(ctx, maxconn, upstream_port)?;
    Ok(Setup {
        // The proxy first: it stops before the server it forwards to.
        services: vec![proxy, upstream],
        command: wrk(ctx, 1, clients, port, &[])?,
        ..Default::default()
    })
}

/// haproxy in the foreground on a free loopback port, in front of 127.0.0.1:`upstream_port`
/// with a new upstream connection per request and at most `maxconn` requests upstream; its
/// stats socket is `haproxy.sock` in the scenario's directory.
fn haproxy_at(ctx: &Ctx, maxconn: u32, upstream_port: u16) -> Result<(Service, u16), LabError> {
    haproxy_with(
        ctx,
        &format!(
            "  option http-server-close\n  server up 127.0.0.1:{upstream_port} maxconn {maxconn}\n"
        ),
    )
}

/// haproxy in the foreground on a free loopback port with `backend` as the lines of its one
/// backend; its stats socket is `haproxy.sock` in the scenario's directory.
fn haproxy_with(ctx: &Ctx, backend: &str) -> Result<(Service, u16), LabError> {
    let port = free_port()?;
    let cfg = ctx.dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 2000\n  stats socket {dir}/haproxy.sock mode 600 level admin\n\n\
             defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  \
             timeout server 30s\n  timeout queue 30s\n\n\
             frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\n\
             backend be\n{backend}",
            dir = ctx.dir.display()
        ),
    )
    .map_err(io_err(&cfg))?;
    let log = log_file(ctx, "haproxy")?;
    let mut cmd = Command::new(tool("haproxy")?);
    cmd.arg("-db")
        .arg("-f")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err(&cfg))?)
        .stderr(log);
    let mut proxy = Service::spawn("haproxy", cmd, Signal::SIGTERM)?;
    proxy.wait_for_port(port, Duration::from_secs(10))?;
    Ok((proxy, port))
}

/// At most 4 requests upstream: 32 connections' requests queue in haproxy for those 4
/// (<= 400 requests/s at 10 ms each).
fn proxy_cap_haproxy(ctx: &Ctx) -> Result<Setup, LabError> {
    haproxy_in_front(ctx, 4, 32)
}

/// Room for every request: 8 connections, all 8 requests upstream at once (~800/s at 10 ms),
/// nothing queued in the proxy and the host half idle.
fn proxy_room_haproxy(ctx: &Ctx) -> Result<Setup, LabError> {
    haproxy_in_front(ctx, 64, 8)
}

/// nginx in the foreground with its configuration, logs and files in the scenario's directory.
fn nginx(ctx: &Ctx, http_extra: &str, body: &[u8]) -> Result<(Service, u16), LabError> {
    // The workers run as nobody: they must reach the document root.
    std::fs::set_permissions(ctx.dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err(ctx.dir))?;
    let www = ctx.dir.join("www");
    std::fs::create_dir(&www).map_err(io_err(&www))?;
    let index = www.join("index.html");
    std::fs::write(&index, body).map_err(io_err(&index))?;
    let port = free_port()?;
    let d = ctx.dir.display();
    let conf = format!(
        "worker_processes 2;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           keepalive_requests 1000000;\n  {http_extra}\n\
           server {{ listen 127.0.0.1:{port}; root {d}/www; }}\n}}\n"
    );
    let conf_path = ctx.dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(io_err(&conf_path))?;
    let log = log_file(ctx, "nginx")?;
    let mut cmd = Command::new(tool("nginx")?);
    cmd.arg("-p")
        .arg(ctx.dir)
        .arg("-e")
        .arg(ctx.dir.join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err(ctx.dir))?)
        .stderr(log);
    // SIGQUIT: graceful stop of master and workers.
    let mut service = Service::spawn("nginx", cmd, Signal::SIGQUIT)?;
    service.wait_for_port(port, Duration::from_secs(10))?;
    Ok((service, port))
}

fn nginx_keepalive(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = nginx(ctx, "", &[b'x'; 512])?;
    Ok(Setup {
        services: vec![server],
        command: wrk(ctx, 2, 64, port, &[])?,
        ..Default::default()
    })
}

fn generator_pinned(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = lab_server(ctx, &["--workers", "4", "--cpu-us", "0"])?;
    let mut command = vec![tool("taskset")?, "-c".into(), "0".into()];
    command.extend(wrk(ctx, 2, 64, port, &[])?);
    Ok(Setup {
        services: vec![server],
        command,
        ..Default::default()
    })
}

fn generator_pinned_nginx(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = nginx(ctx, "", &[b'x'; 512])?;
    let mut command = vec![tool("taskset")?, "-c".into(), "0".into()];
    command.extend(hey(ctx, 50, port, &[])?);
    Ok(Setup {
        services: vec![server],
        command,
        ..Default::default()
    })
}

fn cpu_throttled(ctx: &Ctx) -> Result<Setup, LabError> {
    let (mut server, port) = lab_server(ctx, &["--workers", "4", "--cpu-us", "300"])?;
    server.confine_cpu(0.5)?;
    Ok(Setup {
        services: vec![server],
        command: wrk(ctx, 1, 16, port, &[])?,
        ..Default::default()
    })
}

fn cpu_throttled_hey(ctx: &Ctx) -> Result<Setup, LabError> {
    let (mut server, port) = lab_server(ctx, &["--workers", "2", "--cpu-us", "1000"])?;
    server.confine_cpu(1.0)?;
    Ok(Setup {
        services: vec![server],
        command: hey(ctx, 16, port, &[])?,
        ..Default::default()
    })
}

fn disk_bound(ctx: &Ctx) -> Result<Setup, LabError> {
    dsync_writer(ctx, "4k")
}

fn disk_bound_64k(ctx: &Ctx) -> Result<Setup, LabError> {
    dsync_writer(ctx, "64k")
}

/// dd writing `block`-sized blocks with O_DSYNC while the "load generator" sleeps.
fn dsync_writer(ctx: &Ctx, block: &str) -> Result<Setup, LabError> {
    let mut cmd = Command::new(tool("dd")?);
    cmd.args(["if=/dev/zero", "count=100000000", "oflag=dsync"])
        .arg(format!("bs={block}"))
        .arg(format!("of={}", ctx.dir.join("dsync.dat").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let writer = Service::spawn("dd", cmd, Signal::SIGTERM)?;
    // Let it settle into its write/wait cycle before recording.
    std::thread::sleep(Duration::from_millis(500));
    Ok(Setup {
        services: vec![writer],
        command: vec![tool("sleep")?, ctx.seconds.to_string()],
        ..Default::default()
    })
}

/// nginx with its configuration in `ctx.dir/<name>`: `listen` and `location` go into its one
/// server block. `netns`: run inside that network namespace (`ip netns exec`).
fn nginx_at(
    ctx: &Ctx,
    name: &str,
    netns: Option<&str>,
    listen: &str,
    location: &str,
    body: &[u8],
) -> Result<Service, LabError> {
    // The workers run as nobody: they must reach the document root.
    std::fs::set_permissions(ctx.dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err(ctx.dir))?;
    let dir = ctx.dir.join(name);
    let www = dir.join("www");
    std::fs::create_dir_all(&www).map_err(io_err(&www))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).map_err(io_err(&dir))?;
    let index = www.join("index.html");
    std::fs::write(&index, body).map_err(io_err(&index))?;
    let d = dir.display();
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           keepalive_requests 1000000;\n\
           server {{ listen {listen} backlog=4096; root {d}/www; location / {{ {location} }} }}\n}}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(io_err(&conf_path))?;
    let log = log_file(ctx, name)?;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new(tool("ip")?);
            c.args(["netns", "exec", ns]).arg(tool("nginx")?);
            c
        }
        None => Command::new(tool("nginx")?),
    };
    cmd.arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err(&dir))?)
        .stderr(log);
    Service::spawn(name, cmd, Signal::SIGQUIT)
}

/// nginx inside a new docker-like network, reachable at 127.0.0.1:<returned port> through the
/// DNAT; the network is removed when the service stops.
fn nginx_in_netns(
    ctx: &Ctx,
    shaper: Option<&str>,
    body: &[u8],
) -> Result<(Service, u16), LabError> {
    let net = super::netlab::LabNet::build(shaper)?;
    let listen = format!("{}:80", net.ns_ip);
    let port = net.nat_port;
    let netns = net.netns.clone();
    // On an error here `net` is dropped, removing the network.
    let mut service = nginx_at(ctx, "nginx-netns", Some(&netns), &listen, "", body)?;
    service.on_stop(move || drop(net));
    service.wait_for_port(port, Duration::from_secs(10))?;
    Ok((service, port))
}

fn bandwidth_limited_veth(ctx: &Ctx) -> Result<Setup, LabError> {
    // 8 Mbit/s = 1 MB/s for the responses leaving the namespace.
    let (server, port) = nginx_in_netns(ctx, Some("8mbit"), &vec![b'x'; 256 * 1024])?;
    Ok(Setup {
        services: vec![server],
        command: wrk(ctx, 1, 4, port, &[])?,
        ..Default::default()
    })
}

/// nginx in a namespace behind a DNAT'd loopback port, with the conntrack table shrunk to 256
/// entries above its fill (restored when the server stops).
fn nginx_behind_full_conntrack(ctx: &Ctx) -> Result<(Service, u16), LabError> {
    // The DNAT rules load conntrack; the table is then shrunk to just above its fill.
    let (mut server, port) = nginx_in_netns(ctx, None, &[b'x'; 64])?;
    let count_path = "/proc/sys/net/netfilter/nf_conntrack_count";
    let count: u64 = std::fs::read_to_string(count_path)
        .map_err(io_err(Path::new(count_path)))?
        .trim()
        .parse()
        .unwrap_or(0);
    let max = super::netlab::Sysctl::set(
        "/proc/sys/net/netfilter/nf_conntrack_max",
        &(count + 256).to_string(),
    )?;
    server.on_stop(move || drop(max));
    Ok((server, port))
}

fn conntrack_full(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = nginx_behind_full_conntrack(ctx)?;
    Ok(Setup {
        services: vec![server],
        command: wrk(ctx, 1, 16, port, &["-H", "Connection: close"])?,
        ..Default::default()
    })
}

/// ab without keep-alive: a new connection per request. `-r` keeps it going past failed
/// connects and `-s 5` bounds each wait, so dropped SYNs cost retransmits, not the run.
fn conntrack_full_ab(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = nginx_behind_full_conntrack(ctx)?;
    Ok(Setup {
        services: vec![server],
        command: vec![
            tool("ab")?,
            "-q".into(),
            "-r".into(),
            "-s".into(),
            "5".into(),
            "-c".into(),
            "16".into(),
            "-t".into(),
            ctx.seconds.to_string(),
            "-n".into(),
            "10000000".into(),
            url(port),
        ],
        ..Default::default()
    })
}

fn two_hop_proxy(ctx: &Ctx) -> Result<Setup, LabError> {
    let (backend, backend_port) = nginx_in_netns(ctx, None, &[b'x'; 1024])?;
    let inner_port = free_port()?;
    // No upstream keep-alive: each request opens a new upstream connection.
    let mut inner = nginx_at(
        ctx,
        "nginx-proxy-inner",
        None,
        &format!("127.0.0.1:{inner_port}"),
        &format!("proxy_pass http://127.0.0.1:{backend_port};"),
        b"",
    )?;
    inner.wait_for_port(inner_port, Duration::from_secs(10))?;
    let outer_port = free_port()?;
    let mut outer = nginx_at(
        ctx,
        "nginx-proxy-outer",
        None,
        &format!("127.0.0.1:{outer_port}"),
        &format!("proxy_pass http://127.0.0.1:{inner_port};"),
        b"",
    )?;
    outer.wait_for_port(outer_port, Duration::from_secs(10))?;
    Ok(Setup {
        // Stopped in this order: the client side first.
        services: vec![outer, inner, backend],
        command: wrk(ctx, 1, 64, outer_port, &[])?,
        ..Default::default()
    })
}

/// A hidden lab subcommand of this binary as a service named `name` (process and log file).
fn lab_process(
    ctx: &Ctx,
    subcommand: &str,
    name: &str,
    flags: &[&str],
) -> Result<Service, LabError> {
    let log = log_file(ctx, name)?;
    let mut cmd = Command::new(ctx.exe);
    cmd.arg(subcommand)
        .args(flags)
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(io_err(&ctx.dir.join(format!("{name}.log"))))?,
        )
        .stderr(log);
    Service::spawn(name, cmd, Signal::SIGTERM)
}

/// One thread broadcasts every message with blocking sends, client after client; the two slow
/// readers connect first, so each round waits for their nearly full 16 KiB send buffers to drain
/// before the 16 k6 clients get anything. k6 measures the delay from the message's timestamp.
fn websocket_fanout(ctx: &Ctx) -> Result<Setup, LabError> {
    websocket_fanout_with(ctx, 2)
}

fn websocket_fanout_keeping_up(ctx: &Ctx) -> Result<Setup, LabError> {
    websocket_fanout_with(ctx, 0)
}

/// The fan-out server, `slow_readers` slow consumers, and 16 k6 WebSocket clients.
fn websocket_fanout_with(ctx: &Ctx, slow_readers: u32) -> Result<Setup, LabError> {
    let port = free_port()?;
    let port_s = port.to_string();
    let mut server = lab_process(
        ctx,
        "lab-fanout",
        "lab-fanout",
        &[
            "--port",
            &port_s,
            "--sndbuf",
            "16384",
            "--message-bytes",
            "4096",
            "--rate",
            "100",
        ],
    )?;
    server.wait_for_port(port, Duration::from_secs(10))?;
    let mut services = Vec::new();
    if slow_readers > 0 {
        services.push(lab_process(
            ctx,
            "lab-ws-reader",
            "ws-reader",
            &["--port", &port_s, "--clients", &slow_readers.to_string()],
        )?);
        // Connected (and first in the broadcast order) before the load starts.
        std::thread::sleep(Duration::from_millis(500));
    }
    // The readers first: the server stops after its clients.
    services.push(server);
    let secs = ctx.seconds;
    let script = ctx.dir.join("fanout.js");
    // One iteration per VU, closed after the run's length: a second iteration would reconnect.
    // `t` carries microseconds; Date.now() has milliseconds, so `t` is floored to compare them.
    let text = format!(
        "import ws from 'k6/ws';\n\
         import {{ Trend }} from 'k6/metrics';\n\
         const delivery = new Trend('delivery_ms', true);\n\
         export const options = {{\n  \
           scenarios: {{ fanout: {{ executor: 'per-vu-iterations', vus: 16, iterations: 1, maxDuration: '{max}s' }} }},\n  \
           summaryTrendStats: ['avg', 'med', 'p(95)', 'max'],\n\
         }};\n\
         export default function () {{\n  \
           ws.connect('ws://127.0.0.1:{port}/', null, function (socket) {{\n    \
             socket.on('message', function (data) {{ delivery.add(Date.now() - Math.floor(JSON.parse(data).t)); }});\n    \
             socket.setTimeout(function () {{ socket.close(); }}, {ms});\n  \
           }});\n\
         }}\n",
        max = secs + 10,
        ms = secs * 1000,
    );
    std::fs::write(&script, text).map_err(io_err(&script))?;
    let out = ctx.dir.join("k6.json");
    Ok(Setup {
        services,
        command: k6_run(&script, &out)?,
        // Its requests are the WebSocket messages received (the k6 reader's fallback).
        load: vec![out],
        window: None,
    })
}
