//! What one recording line holds. Field names are part of the documented format.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    CgroupThrottle, ConntrackInterval, HostInterval, LimitedBy, ListenQueue, LogHistogram,
    ProbeStatus, QdiscInterval, SendLimit, StatsWindow, Topology,
};
use crate::timeline::Timeline;

/// One line of the file, tagged by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[expect(clippy::large_enum_variant, reason = "lines are written one at a time")]
pub enum Line {
    Header(Header),
    Interval(Interval),
    End(End),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format_version: u32,
    pub chokepoint_version: String,
    pub hostname: String,
    pub kernel: String,
    pub cpus: u32,
    /// Wall clock and monotonic clock read together at start: the anchors that align the
    /// kernel's timestamps with load generators' wall-clock timelines.
    pub started_unix_ns: u64,
    pub started_monotonic_ns: u64,
    pub interval_seconds: f64,
    /// The load generator `run` started, with its pid; None for `record`.
    pub command: Option<Vec<String>>,
    pub command_pid: Option<u32>,
    /// chokepoint's own pid (its CPU is reported as overhead, not as a workload).
    pub profiler_pid: u32,
    pub probes: ProbeStatus,
    /// How the probes' run time is measured, or why it is not.
    pub bpf_stats: String,
    /// This kernel's names for `enum skb_drop_reason`, as [value, name] pairs.
    pub drop_reasons: Vec<(u32, String)>,
    /// Anything that limits what this recording can tell (missing probes, unreadable files).
    pub limitations: Vec<String>,
    /// The network topology at start: one entry per namespace in use (this one, named ones).
    #[serde(default)]
    pub topology: Vec<Topology>,
    /// What the host is (CPU model, memory, OS), for reports; absent in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    /// The probe tier and what it duty-cycles (`probes::duty`); empty in older recordings
    /// (every probe in every interval).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tier: String,
}

/// The host's inventory at start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub cpu_model: Option<String>,
    pub memory_bytes: Option<u64>,
    /// The OS's name and version (`Debian GNU/Linux 12 (bookworm)`).
    pub os: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The command `run` started and its descendants, or a known load tool under `record`.
    LoadGenerator,
    /// Owns a listening socket that accepted connections in the interval.
    Server,
    /// chokepoint itself.
    Profiler,
    /// Kernel threads.
    Kernel,
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpCounts {
    pub active_opens: u64,
    pub passive_opens: u64,
    pub active_established: u64,
    pub passive_established: u64,
    pub connect_failed: u64,
    pub closes: u64,
    pub syn_retransmits: u64,
    pub synack_retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    pub skb_drops: u64,
    /// `connect()` calls that failed with EADDRNOTAVAIL (no free ephemeral port): a subset of
    /// `connect_failed` (the socket went SYN_SENT -> CLOSE without sending a SYN).
    #[serde(default)]
    pub connect_addr_unavailable: u64,
    /// The connection-setup program was detached through the interval (the default tier:
    /// `probes/demand.rs`): `active_opens`, `passive_opens` and `connect_failed` are the
    /// kernel's own counters (`Tcp: ActiveOpens PassiveOpens AttemptFails`), and what has no
    /// such counter (established, closes, EADDRNOTAVAIL) is 0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_kernel_counters: bool,
}

impl TcpCounts {
    pub fn add(&mut self, o: &TcpCounts) {
        self.active_opens += o.active_opens;
        self.passive_opens += o.passive_opens;
        self.active_established += o.active_established;
        self.passive_established += o.passive_established;
        self.connect_failed += o.connect_failed;
        self.closes += o.closes;
        self.syn_retransmits += o.syn_retransmits;
        self.synack_retransmits += o.synack_retransmits;
        self.resets_sent += o.resets_sent;
        self.resets_received += o.resets_received;
        self.skb_drops += o.skb_drops;
        self.connect_addr_unavailable += o.connect_addr_unavailable;
        self.from_kernel_counters |= o.from_kernel_counters;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Outbound: this process connected.
    Active,
    /// Inbound: accepted on a listening port.
    Passive,
}

/// Connection setup for one (process, port, direction) in one interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRow {
    /// The connecting process (active), or the listening socket's owner (passive) when found.
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Remote port (active) or local listening port (passive).
    pub port: u16,
    pub direction: Direction,
    pub opens: u64,
    pub established: u64,
    pub failed: u64,
    /// Sum of the established connections' set-up times (active: SYN_SENT -> ESTABLISHED,
    /// passive: SYN_RECV -> ESTABLISHED), ns: with `established`, the mean per port.
    #[serde(default)]
    pub setup_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadInterval {
    pub tid: u32,
    pub comm: String,
    pub oncpu_ns: u64,
    pub voluntary: u64,
    pub involuntary: u64,
    pub runq_ns: u64,
    pub runq_count: u64,
    /// Off-CPU time ended by a wake-up in the interval: blocked interruptibly (locks, sockets,
    /// events, timers) and uninterruptibly (disk I/O).
    #[serde(default)]
    pub offcpu_sleep_ns: u64,
    #[serde(default)]
    pub offcpu_io_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInterval {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: String,
    pub role: Role,
    pub oncpu_ns: u64,
    pub voluntary: u64,
    pub involuntary: u64,
    pub runq_ns: u64,
    pub runq_count: u64,
    pub runq_latency: LogHistogram,
    /// Cores the process may use: min(affinity, cgroup quota, online CPUs), and which limits.
    #[serde(default)]
    pub capacity_cores: Option<f64>,
    #[serde(default)]
    pub capacity_limited_by: Option<LimitedBy>,
    #[serde(default)]
    pub offcpu_sleep_ns: u64,
    #[serde(default)]
    pub offcpu_io_ns: u64,
    /// The same off-CPU time by the system call blocked in (`lock`, `events`, `read`, `write`,
    /// `accept`, `sleep`, `disk`, `other`, `unknown`), non-zero only.
    #[serde(default)]
    pub offcpu_reason_ns: BTreeMap<String, u64>,
    /// Threads that ran in the interval, hottest first.
    pub threads: Vec<ThreadInterval>,
}

/// What the profiler cost and lost in the interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverheadInterval {
    /// Time spent inside the kernel programs, and how many runs. The runs are the programs' own
    /// counts (exact); the time is the best estimate: what the kernel's run-time statistics
    /// measured while on (`measured`), plus the other runs priced at the latest statistics
    /// windows' ns per run (`estimated_ns`). Older recordings (no `measured`) measured all of it.
    pub bpf_run_ns: u64,
    pub bpf_runs: u64,
    /// chokepoint's own user + system CPU outside the programs.
    pub user_cpu_ns: u64,
    /// Events whose contribution was lost: map full, ring buffer full.
    pub map_update_failures: u64,
    pub ring_buffer_full: u64,
    /// Per program: [run time ns, runs], as `bpf_run_ns` and `bpf_runs`.
    pub programs: BTreeMap<String, [u64; 2]>,
    /// Per program: [run time ns, runs] the kernel's statistics measured in this interval,
    /// non-zero only (they are on only in the windows, unless `--exact-overhead`). None in
    /// recordings made before the programs counted their own runs: there `programs` is this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<BTreeMap<String, [u64; 2]>>,
    /// Of `bpf_run_ns`, the part priced rather than measured.
    #[serde(default)]
    pub estimated_ns: u64,
    /// Runs of programs no window has priced yet (they ran only before the first window that
    /// saw them): not in `bpf_run_ns` (the summary prices them from all windows).
    #[serde(default)]
    pub unpriced_runs: u64,
    /// Whether a statistics window was open in this interval, and for how long.
    #[serde(default)]
    pub sampled: bool,
    #[serde(default)]
    pub sampled_ns: u64,
    /// The statistics windows that ended at this interval's end, with what each measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<StatsWindow>,
    /// Sockets left in the kernel's `SOCKETS` LRU map after the read (closed ones deleted),
    /// and entries the map evicted since the last read (seen then, not closed, gone now):
    /// connections whose figures were lost.
    #[serde(default)]
    pub sockets_tracked: u64,
    #[serde(default)]
    pub socket_evictions: u64,
    /// Switch-outs on a CPU whose switch-in the kernel never reported (some hypervisor agents'
    /// threads are switched in and never out): run-queue figures of the thread switched in
    /// then are longer than true; on-CPU time is not affected where BTF gave the run-time
    /// totals (see `probes.portable_reads`).
    #[serde(default)]
    pub switches_unmatched: u64,
    /// Waits (off-CPU periods, waits for a CPU) that began before the duty-cycled scheduler
    /// programs were last attached and ended after: counted from the attach, their start
    /// unseen (0 with `--probes all`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offcpu_clipped: u64,
    /// chokepoint's own CPU (this thread's, in ns) per stage of reading the interval: kernel
    /// maps, /proc files, sock_diag dumps... `user_cpu_ns` less their sum is the rest (ring
    /// buffer, writing the recording, the runtime).
    #[serde(default)]
    pub stages: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDrop {
    pub device: String,
    pub reason: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub index: u32,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub tcp: TcpCounts,
    /// SYN_SENT -> ESTABLISHED, per connection.
    pub connect_latency: LogHistogram,
    /// SYN_RECV -> ESTABLISHED of accepted connections.
    pub handshake_latency: LogHistogram,
    /// `skb:kfree_skb` drops by this kernel's reason name (non-zero only).
    pub drops: BTreeMap<String, u64>,
    pub connections: Vec<ConnectionRow>,
    /// Processes that ran or set up connections in the interval, busiest first.
    pub processes: Vec<ProcessInterval>,
    /// Host counters from procfs (None if they could not be read).
    pub host: Option<HostInterval>,
    pub listeners: Vec<ListenQueue>,
    pub overhead: OverheadInterval,
    pub forks: u64,
    pub exits: u64,
    /// Who woke whom (process level), busiest pairs first.
    #[serde(default)]
    pub wakes: Vec<WakeRow>,
    /// Who woke whom (thread level), busiest pairs first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thread_wakes: Vec<ThreadWakeRow>,
    /// Every wake-up of the interval, per wakee process and waker name (`idle` for an
    /// interrupt on an idle CPU): not cut to the busiest pairs, so the off-CPU time a process's
    /// wakers ended adds up to all of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wake_totals: Vec<WakeTotal>,
    /// What each process in `processes` is, the first interval it appears in: the facts the
    /// rules group and name it by (executable, command line, network namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub described: Vec<ProcessFacts>,
    /// Softirq time and runs per vector (`NET_RX`, `NET_TX`, `TIMER`...), non-zero only.
    #[serde(default)]
    pub softirqs: BTreeMap<String, SoftirqFigures>,
    /// CFS throttling of the CPU cgroups of the processes in play (generator, servers, busy
    /// processes).
    #[serde(default)]
    pub cgroups: Vec<CgroupThrottle>,
    /// Per-device traffic per namespace from netlink link statistics (non-zero rows only).
    #[serde(default)]
    pub devices: Vec<DeviceInterval>,
    /// Qdisc counters per device: configured rates, bytes, drops, overlimits, backlog.
    #[serde(default)]
    pub qdiscs: Vec<QdiscRow>,
    /// Conntrack table fill and counter increases (None when conntrack is not loaded).
    #[serde(default)]
    pub conntrack: Option<ConntrackInterval>,
    /// NAT translations found in the conntrack table for ports first connected to in the
    /// interval.
    #[serde(default)]
    pub nat: Vec<NatMapping>,
    /// Namespaces whose links changed (or that appeared) in the interval: their new topology.
    #[serde(default)]
    pub topology: Vec<Topology>,
    /// Network readings that failed in the interval (a namespace gone, no permission).
    #[serde(default)]
    pub net_errors: Vec<String>,
    /// Per-device packets and bytes from the network-path kernel programs.
    #[serde(default)]
    pub net_packets: Vec<DevicePackets>,
    /// Packets dropped per device and reason (raw `skb:kfree_skb`; `device` empty when the
    /// packet had none, e.g. a drop in the socket layer).
    #[serde(default)]
    pub device_drops: Vec<DeviceDrop>,
    /// Outbound TCP connections grouped by (process, remote endpoint): connection pools.
    #[serde(default)]
    pub pools: Vec<PoolRow>,
    /// Inbound TCP connections grouped by (process, listening port).
    #[serde(default)]
    pub inbound: Vec<InboundRow>,
    /// What held back the served sockets' sends, per listening port (tcp_info over sock_diag).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub send_limits: Vec<SendLimit>,
    /// Phase marks made during the interval (`chokepoint mark "stage 3: 1000 VUs"`), in the
    /// order they were made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
    /// Tracepoints (`irq/softirq_entry`) the default tier's duty cycle kept detached through
    /// this interval (`probes::duty`): their figures here are missing, not zero; in recordings
    /// of 2026-12-07's fourth session, parts of attached programs it paused with them
    /// (`sock/inet_sock_set_state#handshakes`: no handshake timed). Empty with `--probes all`
    /// and in older recordings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detached: Vec<String>,
    /// Why programs attached on demand (`probes::demand`) ran through this interval outside a
    /// sample: `<tracepoint ids>: <what the interval before showed>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand: Option<String>,
}

/// A phase mark: a load tool's (or a person's) note of what changed, at a wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub unix_ns: u64,
    pub text: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftirqFigures {
    pub ns: u64,
    pub runs: u64,
}

/// Wake-ups of `wakee` processes by `waker` processes in one interval. `waker_pid` 0 is the
/// idle task: a wake-up from an interrupt (a packet, a timer) on an idle CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeRow {
    pub waker_pid: u32,
    pub waker_comm: String,
    pub wakee_pid: u32,
    pub wakee_comm: String,
    pub wakes: u64,
    /// Off-CPU time these wake-ups ended.
    pub offcpu_ns: u64,
}

/// One process as /proc shows it when it is first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessFacts {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: String,
    /// `/proc/<pid>/exe`, where readable (not for kernel threads).
    pub exe: Option<String>,
    /// The first arguments (at most 32, each at most 256 bytes).
    pub cmdline: Vec<String>,
    /// The inode of its network namespace (`/proc/<pid>/ns/net`).
    pub netns: Option<u64>,
}

/// All wake-ups of one process by processes of one name in one interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeTotal {
    pub wakee_pid: u32,
    pub waker_comm: String,
    pub wakes: u64,
    /// Off-CPU time these wake-ups ended.
    pub offcpu_ns: u64,
}

/// Wake-ups of one thread by another in one interval (`waker_tid` 0: the idle task). Thread
/// names are in `processes[].threads[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadWakeRow {
    pub waker_pid: u32,
    pub waker_tid: u32,
    pub wakee_pid: u32,
    pub wakee_tid: u32,
    pub wakes: u64,
    /// Off-CPU time these wake-ups ended.
    pub offcpu_ns: u64,
}

impl Interval {
    pub fn seconds(&self) -> f64 {
        self.end_unix_ns.saturating_sub(self.start_unix_ns) as f64 / 1e9
    }

    /// Whether the softirq programs ran through the interval (always with `--probes all`
    /// and in older recordings).
    pub fn softirq_measured(&self) -> bool {
        !self
            .detached
            .iter()
            .any(|id| id.starts_with(SOFTIRQ_PROBES))
    }

    /// Whether the connection-use programs (request turns: `pools`, `inbound`) ran through
    /// the interval. The default tier detaches them 4 intervals in 5: pool and in-flight
    /// figures are then averages over the measured intervals.
    pub fn conn_use_measured(&self) -> bool {
        !self
            .detached
            .iter()
            .any(|id| id.starts_with(CONN_USE_PROBES))
    }

    /// Whether the connection-setup program ran through the interval. The default tier
    /// attaches it in the intervals it samples and on demand (`probes/demand.rs`); elsewhere
    /// the opens and failed attempts are the kernel's own counts (`TcpCounts`), and the
    /// connection rows (per process and port) and the latency histograms are empty.
    pub fn setup_counted(&self) -> bool {
        !self.detached.iter().any(|id| id == SETUP_PROBE)
    }

    /// Whether the connection-setup program timed handshakes through the interval: where it
    /// ran, except in recordings of 2026-12-07 (fourth session) to the fifth, which paused the
    /// timing alone (`HANDSHAKE_TIMING`). The latency histograms and the connection rows'
    /// `established`, `failed` and `setup_ns` cover the timed intervals' handshakes.
    pub fn handshakes_timed(&self) -> bool {
        self.setup_counted() && !self.detached.iter().any(|id| id == HANDSHAKE_TIMING)
    }

    /// Whether the scheduler programs ran through the interval. On-CPU time is exact in
    /// every interval (the kernel's run-time totals); what only their events give (off-CPU
    /// time and its reasons, wake-ups, run-queue waits, switch counts) is, in the default
    /// tier, an average over the intervals where this holds.
    pub fn sched_measured(&self) -> bool {
        !self.detached.iter().any(|id| id.starts_with(SCHED_PROBES))
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How the ids in `Interval.detached` of the scheduler programs begin.
pub const SCHED_PROBES: &str = "sched/sched_";
/// How the ids in `Interval.detached` of the softirq programs begin.
pub const SOFTIRQ_PROBES: &str = "irq/softirq_";
/// How the ids in `Interval.detached` of the connection-use programs begin.
pub const CONN_USE_PROBES: &str = "sock/sock_";
/// The connection-setup program's id in `Interval.detached`.
pub const SETUP_PROBE: &str = "sock/inet_sock_set_state";
/// The part of the connection-setup program the duty cycle paused with the cycled programs
/// in recordings made between 2026-12-07's fourth and fifth sessions (a program id, `#`, the
/// part); since, the whole program is attached on demand (`SETUP_PROBE`).
pub const HANDSHAKE_TIMING: &str = "sock/inet_sock_set_state#handshakes";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct End {
    pub ended_unix_ns: u64,
    /// `command-exited`, `signal`, `duration`.
    pub reason: String,
    pub exit_code: Option<i32>,
    /// The signal that killed the command (`exit_code` is then None). Absent in recordings
    /// made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<i32>,
    /// Timelines read from the load generator's own output when `run` recognised it.
    pub load: Vec<Timeline>,
    pub load_errors: Vec<String>,
    /// Process ids the kernel handed to a new process during the recording after their first
    /// owner exited: rows before and after the reuse are different processes.
    #[serde(default)]
    pub pids_reused: u64,
}

/// Traffic of one network device in one interval, from the kernel's link statistics over
/// netlink (exact, and free: no probe). Non-zero rows only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInterval {
    /// The namespace, as `NetnsId` prints it: `net:[4026531840]` or `net:[4026532290] name`.
    pub netns: String,
    pub name: String,
    /// `loopback`, `veth`, `bridge`, `device`, ... (the link's kind).
    pub kind: String,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// One qdisc's counter increases in one interval (backlog is the value at the interval's end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QdiscRow {
    pub netns: String,
    #[serde(flatten)]
    pub qdisc: QdiscInterval,
}

/// A NAT translation seen in the conntrack table: connections to `original` (the address
/// clients used) were sent to `translated` (the reply tuple's source, the real backend).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatMapping {
    pub protocol: String,
    /// `127.0.0.1:8080`.
    pub original: String,
    /// `198.18.3.2:80`.
    pub translated: String,
    /// Source NAT too (masquerade): the backend sees `masqueraded_as`.
    pub masqueraded_as: Option<String>,
    /// Entries of this mapping in the table when it was read.
    pub entries: u64,
}

/// Packets and bytes per device seen by the `net:net_dev_xmit` / `net:netif_receive_skb`
/// programs in one interval (all namespaces: the kernel programs see device names only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePackets {
    pub name: String,
    pub xmit_packets: u64,
    pub xmit_bytes: u64,
    pub receive_packets: u64,
    pub receive_bytes: u64,
    /// Queued to a CPU's backlog by `netif_rx` (software devices: loopback, veth...).
    #[serde(default)]
    pub backlog_packets: u64,
    #[serde(default)]
    pub backlog_bytes: u64,
}

/// One connection pool in one interval: a process's outbound TCP connections to one remote
/// endpoint, and how busy they were (docs/recording.md has the definitions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolRow {
    pub pid: u32,
    pub comm: String,
    /// The upstream's name: the local process listening on the port, else a well-known port's
    /// label (PostgreSQL, pgbouncer, MySQL, Redis, HTTP), else `remote`.
    pub upstream: String,
    /// `address:port` of the remote end (`[::]:port` for IPv6, whose address is not read).
    pub endpoint: String,
    /// Connections open to the endpoint during the interval.
    pub size: u32,
    /// Connections busy on average (Little's law: busy time / interval); a connection is busy
    /// from its request (first send) to its response (first receive).
    pub in_use: f64,
    pub utilisation: f64,
    /// Completed request/response turns per second over the pool.
    pub requests_per_s: f64,
    /// The same process's inbound requests in flight on average, and their rate.
    pub inbound_concurrency: f64,
    pub inbound_per_s: f64,
    /// Inbound requests waiting for a pool connection on average (inbound in flight - the
    /// process's outbound in use) when the pool is full; 0 otherwise.
    pub queued: f64,
    /// Their implied wait (Little's law: queued / inbound rate), ms; 0 when nothing queued.
    pub wait_ms_estimate: f64,
}

/// A process's inbound TCP connections on one listening port in one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundRow {
    pub pid: u32,
    pub comm: String,
    pub port: u16,
    pub connections: u32,
    /// Requests in flight on average: busy from receiving a request to sending its response.
    pub concurrency: f64,
    pub requests_per_s: f64,
}
