//! Host-wide rows of an interval (`Interval::host`): CPU time, TCP counters, socket gauges,
//! ephemeral-port use and pressure stall information. `collect::host` fills them from procfs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What changed on the host between two `HostCollector::sample` calls. A section is `None` when its
/// source could not be read this time (the reason is in `errors`); `pressure` is also `None` on
/// kernels without /proc/pressure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInterval {
    /// Wall time since the previous sample (0 for the first).
    pub elapsed_seconds: f64,
    pub cpu: Option<CpuInterval>,
    pub tcp: Option<TcpInterval>,
    pub sockets: Option<SocketGauges>,
    pub ephemeral_ports: Option<EphemeralPorts>,
    pub pressure: Option<PressureInterval>,
    /// One message per source that failed this interval.
    pub errors: Vec<String>,
}

/// Host-wide CPU time spent in each state during the interval, summed over all CPUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuInterval {
    pub user_seconds: f64,
    pub nice_seconds: f64,
    pub system_seconds: f64,
    pub irq_seconds: f64,
    pub softirq_seconds: f64,
    pub iowait_seconds: f64,
    pub steal_seconds: f64,
    pub idle_seconds: f64,
    /// (total - idle - iowait) / total over the interval; 0 when no time passed.
    pub busy_fraction: f64,
    /// The same fraction for each CPU line of /proc/stat, in file order (cpu0, cpu1, ...).
    pub per_cpu_busy_fraction: Vec<f64>,
}

/// Deltas of every `Tcp:` (/proc/net/snmp) and `TcpExt:` (/proc/net/netstat) counter.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TcpInterval {
    /// Counter name (as the kernel spells it, e.g. `ActiveOpens`, `ListenOverflows`) to its
    /// increase over the interval. The two groups share no names.
    pub counters: BTreeMap<String, u64>,
    /// `Tcp: CurrEstab` at the end of the interval: connections in ESTABLISHED or CLOSE_WAIT.
    pub curr_estab: u64,
}

macro_rules! counter_accessors {
    ($($(#[$doc:meta])* $method:ident => $name:literal;)*) => {
        impl TcpInterval {
            $(
                $(#[$doc])*
                pub fn $method(&self) -> u64 {
                    self.get($name)
                }
            )*
        }
    };
}

impl TcpInterval {
    /// Delta of a counter by its kernel name; 0 when this kernel does not have it.
    pub fn get(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

counter_accessors! {
    /// Connections this host opened (SYN_SENT entered from CLOSED).
    active_opens => "ActiveOpens";
    /// Connections this host accepted (SYN_RECV entered from LISTEN).
    passive_opens => "PassiveOpens";
    /// Connection attempts that failed (SYN_SENT/SYN_RECV to CLOSED, or SYN_RECV to LISTEN).
    attempt_fails => "AttemptFails";
    /// Resets of ESTABLISHED or CLOSE_WAIT connections.
    estab_resets => "EstabResets";
    /// Segments sent with RST.
    out_rsts => "OutRsts";
    /// Segments retransmitted.
    retrans_segs => "RetransSegs";
    /// Segments received in error.
    in_errs => "InErrs";
    /// SYNs or handshakes dropped because a listener's accept queue was full.
    listen_overflows => "ListenOverflows";
    /// All drops at a listener (includes the overflows).
    listen_drops => "ListenDrops";
    /// SYN and SYN-ACK retransmissions.
    syn_retrans => "TCPSynRetrans";
    /// Retransmission timeouts.
    timeouts => "TCPTimeouts";
    /// Connections reset because data arrived after close.
    abort_on_data => "TCPAbortOnData";
    /// Connections reset because the user closed with unread data.
    abort_on_close => "TCPAbortOnClose";
    /// Connections reset for lack of memory.
    abort_on_memory => "TCPAbortOnMemory";
    /// Segments dropped because the socket backlog (owned by user) was full.
    backlog_drop => "TCPBacklogDrop";
    /// SYNs dropped because the SYN (request) queue was full and cookies were off.
    req_q_full_drop => "TCPReqQFullDrop";
    /// SYN cookies sent because the SYN queue was full.
    req_q_full_do_cookies => "TCPReqQFullDoCookies";
    /// SYN cookies sent.
    syncookies_sent => "SyncookiesSent";
    /// Data segments sent (not counting pure ACKs or retransmits).
    orig_data_sent => "TCPOrigDataSent";
}

/// Socket gauges at the end of the interval, from /proc/net/sockstat and sockstat6.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocketGauges {
    /// `sockets: used`: all sockets of every family.
    pub sockets_used: u64,
    /// `TCP: inuse`: IPv4 TCP sockets (listening and connected) in use.
    pub tcp_inuse: u64,
    /// `TCP6: inuse` from sockstat6; `None` without IPv6.
    pub tcp6_inuse: Option<u64>,
    /// `TCP: orphan`: closed by their owner but not yet finished (v4 and v6).
    pub tcp_orphan: u64,
    /// `TCP: tw`: TIME_WAIT sockets (v4 and v6).
    pub tcp_time_wait: u64,
    /// `TCP: alloc`: allocated TCP sockets (v4 and v6), including orphans.
    pub tcp_alloc: u64,
    /// `TCP: mem`: pages of memory TCP buffers use (compare with net.ipv4.tcp_mem).
    pub tcp_mem_pages: u64,
}

/// How `EphemeralPorts::in_use` was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EphemeralCountMethod {
    /// One inet_diag dump of every TCP socket (v4 and v6, all states), counting local ports in range.
    SockDiag,
    /// sockstat's TCP inuse + TCP6 inuse + tw: an upper bound (used when it is small enough to
    /// rule out port pressure, or when sock_diag failed).
    SockstatUpperBound,
    /// As a setting only (never reported): the upper bound while it is under a quarter of the
    /// range, the exact dump above that, repeated no more often than keeps its cost under 0.5%
    /// of a CPU (the last exact count is reported in between). The default: the dump costs
    /// about 2 µs per socket.
    Adaptive,
}

/// Use of the ephemeral (local) port range at the end of the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EphemeralPorts {
    /// net.ipv4.ip_local_port_range, inclusive.
    pub range_low: u64,
    pub range_high: u64,
    /// Ports in the range.
    pub range_size: u64,
    /// TCP sockets (any state, TIME_WAIT included) whose local port is in the range.
    pub in_use: u64,
    /// in_use / range_size (can exceed 1: a port can be reused toward different peers).
    pub in_use_fraction: f64,
    pub method: EphemeralCountMethod,
}

/// Pressure stall information for the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PressureInterval {
    pub cpu: Option<PressureResource>,
    pub io: Option<PressureResource>,
    pub memory: Option<PressureResource>,
}

/// One /proc/pressure file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PressureResource {
    /// Some task was stalled on the resource.
    pub some: PressureStall,
    /// All non-idle tasks were stalled at once (absent for cpu on older kernels).
    pub full: Option<PressureStall>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PressureStall {
    /// The kernel's own 10-second running average at the end of the interval, percent.
    pub avg10_percent: f64,
    /// Stall time accumulated during the interval (delta of `total=`), microseconds.
    pub stall_us: u64,
}
