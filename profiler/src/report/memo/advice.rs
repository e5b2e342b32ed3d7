//! What to try next, per kind of bottleneck: the usual remedies, in the order they usually pay,
//! and how to confirm the cause with other tools before changing anything.
use crate::analysis::VerdictKind;

/// The remedies for one kind: a sentence saying what the verdict means, then steps.
pub struct Advice {
    pub meaning: &'static str,
    pub steps: &'static [&'static str],
}

pub fn advice(kind: VerdictKind) -> Advice {
    use VerdictKind::*;
    match kind {
        CpuSaturated => Advice {
            meaning: "The host's CPUs are all busy: more load only queues for them.",
            steps: &[
                "Find where the cycles go in the busiest service: `perf top -p PID` or `perf record -g -p PID`, then a flame graph.",
                "Cut the work per request: caching, cheaper serialisation, fewer system calls per request, TLS session reuse.",
                "If the load generator runs on the same host, move it to another one: its cores are taken from the server.",
                "Otherwise add cores or hosts; throughput should grow with them until another limit appears.",
            ],
        },
        SingleThreadSaturated => Advice {
            meaning: "One thread does the work while the other cores wait: the program is serialised on it.",
            steps: &[
                "Run more workers or threads (nginx `worker_processes`, Redis `io-threads`, Node cluster mode, more event loops).",
                "Shard the work (several instances behind a balancer) when the program cannot run it in parallel.",
                "Profile that thread alone (`perf record -g -t TID`) and move blocking or heavy work off it.",
            ],
        },
        CpuThrottled => Advice {
            meaning: "The cgroup's CPU quota stops the service before the host's CPUs are busy.",
            steps: &[
                "Raise or remove the quota (`cpu.max`, Docker `--cpus`, Kubernetes `limits.cpu`).",
                "Match the number of worker threads to the quota: more threads than quota cores burn the period early and stall until the next one.",
                "Check `nr_throttled` in the cgroup's `cpu.stat` after the change.",
            ],
        },
        LoadGeneratorBound => Advice {
            meaning: "The load generator, not the system under test, is the limit: the measured throughput is a floor of what the server can do.",
            steps: &[
                "Give the generator more threads or cores (`wrk -t`, k6 on more cores), or run it on another machine.",
                "Use a cheaper generator or a simpler script: per-request scripting and checks cost the generator CPU.",
                "Run several generators in parallel and add up their throughput.",
            ],
        },
        PoolSaturated => Advice {
            meaning: "A connection pool or concurrency limit is full and requests queue for a slot.",
            steps: &[
                "Raise the pool size or the limit, and the upstream's own connection limit with it (`max_connections`, `maxconn`).",
                "Shorten how long each request holds a connection: slow queries, transactions held open, work done while holding it.",
                "If the upstream itself is slow, a bigger pool only moves the queue there: look at the upstream next.",
            ],
        },
        LockContention => Advice {
            meaning: "The service's threads wait on each other (a lock, a shared queue): more threads will not help.",
            steps: &[
                "Find the lock: `perf lock`, bcc's `offcputime`, the runtime's own mutex profile (Go `mutex`, Java JFR lock events), `pg_locks` for PostgreSQL.",
                "Shorten the critical section, shard the shared state, or use per-thread or lock-free structures.",
                "Fewer, busier threads can outrun many waiting ones: try lowering the thread count.",
            ],
        },
        ConnectionSetup => Advice {
            meaning: "Opening connections is the cost: handshakes fail, retry or queue before any request is served.",
            steps: &[
                "Reuse connections: keep-alive in the client and on the proxy's upstream side (HTTP/1.1 keep-alive, a connection pool).",
                "When listen overflows show, raise the accept backlog (`net.core.somaxconn` and the server's own backlog) and accept faster.",
                "When local ports run out (EADDRNOTAVAIL, TIME_WAIT), widen `net.ipv4.ip_local_port_range` or enable `net.ipv4.tcp_tw_reuse`.",
                "When conntrack is full, raise `net.netfilter.nf_conntrack_max` or keep the flows out of conntrack.",
            ],
        },
        NetworkBandwidth => Advice {
            meaning: "A link or traffic shaper sends at its rate and packets queue behind it, or receivers cannot keep up.",
            steps: &[
                "Check the shaper (`tc -s qdisc show`): its rate, its backlog and drops.",
                "Send less: compression, smaller payloads, fewer round trips.",
                "When sends wait on slow readers (full send buffers, zero windows), fix the readers or add back-pressure instead of buffering.",
            ],
        },
        IoBound => Advice {
            meaning: "Threads wait on the disk: the device's latency or throughput sets the pace.",
            steps: &[
                "Confirm on the device: `iostat -x 1` (utilisation, await) or bcc's `biolatency`.",
                "Batch and buffer writes; fsync less often (group commit) where durability allows.",
                "Keep hot data in memory, use larger blocks for sequential I/O, or move to faster storage.",
            ],
        },
        NotSaturated => Advice {
            meaning: "Nothing on this host is full: throughput is set by the offered load (concurrency x latency).",
            steps: &[
                "Raise the load generator's concurrency or rate until something saturates, then record again.",
                "Look for the latency outside this host: a remote database, an API, another tier.",
                "Run a concurrency sweep and read it with `chokepoint timeline` to find the knee.",
            ],
        },
        Inconclusive => Advice {
            meaning: "The recording could not decide.",
            steps: &[
                "See what was missing (above) and `chokepoint doctor` for the probes this kernel allows.",
                "Record a longer, steady load, and give the load generator's output with `--load`.",
            ],
        },
    }
}
