//! Host-wide counters the kernel already keeps, read once per interval: CPU time (/proc/stat), TCP
//! MIB counters (/proc/net/snmp, /proc/net/netstat), socket gauges (/proc/net/sockstat{,6}),
//! ephemeral-port use (sock_diag) and pressure stall information (/proc/pressure).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use procfs::CurrentSI;

use super::procfiles::{
    CounterGroup, PressureFile, parse_counter_pairs, parse_port_range, parse_pressure,
    parse_sockstat,
};
use super::sockdiag::{FAMILIES, TcpStates, for_each_tcp_socket};
use super::{CollectError, error::read_to_string};
use crate::recording::{
    CpuInterval, EphemeralCountMethod, EphemeralPorts, HostInterval, PressureInterval,
    PressureResource, PressureStall, SocketGauges, TcpInterval,
};

const STAT: &str = "/proc/stat";
const SNMP: &str = "/proc/net/snmp";
const NETSTAT: &str = "/proc/net/netstat";
const SOCKSTAT: &str = "/proc/net/sockstat";
const SOCKSTAT6: &str = "/proc/net/sockstat6";
const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
const PRESSURE_DIR: &str = "/proc/pressure";

/// The local ports connect() picks from (`net.ipv4.ip_local_port_range`, inclusive); None
/// where it cannot be read.
pub fn ephemeral_range() -> Option<(u16, u16)> {
    let text = read_to_string(PORT_RANGE).ok()?;
    parse_port_range(PORT_RANGE, &text).ok()
}

/// `Tcp:` fields of /proc/net/snmp that are settings or gauges, not counters: no delta for them.
const TCP_GAUGES: [&str; 5] = ["RtoAlgorithm", "RtoMin", "RtoMax", "MaxConn", "CurrEstab"];

/// CPU ticks in each state, as /proc/stat counts them (`user` already contains `guest`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuTicks {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTicks {
    fn from_procfs(time: &procfs::CpuTime) -> Self {
        CpuTicks {
            user: time.user,
            nice: time.nice,
            system: time.system,
            idle: time.idle,
            iowait: time.iowait.unwrap_or(0),
            irq: time.irq.unwrap_or(0),
            softirq: time.softirq.unwrap_or(0),
            steal: time.steal.unwrap_or(0),
        }
    }

    fn total(&self) -> u64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }

    /// Field-wise increase; iowait can go backwards on some kernels, so each field saturates at 0.
    fn since(&self, earlier: &CpuTicks) -> CpuTicks {
        CpuTicks {
            user: self.user.saturating_sub(earlier.user),
            nice: self.nice.saturating_sub(earlier.nice),
            system: self.system.saturating_sub(earlier.system),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            irq: self.irq.saturating_sub(earlier.irq),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }

    fn busy_fraction(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        (total - self.idle - self.iowait) as f64 / total as f64
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CpuSnapshot {
    pub total: CpuTicks,
    pub per_cpu: Vec<CpuTicks>,
}

pub(crate) fn cpu_interval(
    earlier: &CpuSnapshot,
    later: &CpuSnapshot,
    ticks_per_second: f64,
) -> CpuInterval {
    let delta = later.total.since(&earlier.total);
    let seconds = |ticks: u64| ticks as f64 / ticks_per_second;
    CpuInterval {
        user_seconds: seconds(delta.user),
        nice_seconds: seconds(delta.nice),
        system_seconds: seconds(delta.system),
        irq_seconds: seconds(delta.irq),
        softirq_seconds: seconds(delta.softirq),
        iowait_seconds: seconds(delta.iowait),
        steal_seconds: seconds(delta.steal),
        idle_seconds: seconds(delta.idle),
        busy_fraction: delta.busy_fraction(),
        // A CPU that went offline or came online between samples pairs up by position only.
        per_cpu_busy_fraction: later
            .per_cpu
            .iter()
            .zip(&earlier.per_cpu)
            .map(|(now, then)| now.since(then).busy_fraction())
            .collect(),
    }
}

/// The `Tcp` and `TcpExt` groups at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TcpSnapshot {
    pub tcp: CounterGroup,
    pub tcp_ext: CounterGroup,
}

impl TcpSnapshot {
    pub(crate) fn parse(snmp: &str, netstat: &str) -> Result<Self, CollectError> {
        let mut snmp_groups = parse_counter_pairs(SNMP, snmp)?;
        let mut netstat_groups = parse_counter_pairs(NETSTAT, netstat)?;
        let tcp = snmp_groups
            .remove("Tcp")
            .ok_or_else(|| CollectError::parse(SNMP, 1, "no `Tcp:` group"))?;
        let tcp_ext = netstat_groups
            .remove("TcpExt")
            .ok_or_else(|| CollectError::parse(NETSTAT, 1, "no `TcpExt:` group"))?;
        Ok(TcpSnapshot { tcp, tcp_ext })
    }
}

pub(crate) fn tcp_interval(earlier: &TcpSnapshot, later: &TcpSnapshot) -> TcpInterval {
    let mut counters = BTreeMap::new();
    let groups = [
        (&earlier.tcp, &later.tcp),
        (&earlier.tcp_ext, &later.tcp_ext),
    ];
    for (then, now) in groups {
        for (name, value) in now {
            if TCP_GAUGES.contains(&name.as_str()) {
                continue;
            }
            // A counter new since the last sample starts from its current value.
            let before = then.get(name).copied().unwrap_or(*value);
            let delta = u64::try_from(value.saturating_sub(before)).unwrap_or(0);
            counters.entry(name.clone()).or_insert(delta);
        }
    }
    let curr_estab = later
        .tcp
        .get("CurrEstab")
        .and_then(|v| u64::try_from(*v).ok())
        .unwrap_or(0);
    TcpInterval {
        counters,
        curr_estab,
    }
}

pub(crate) fn socket_gauges(
    sockstat: &str,
    sockstat6: Option<&str>,
) -> Result<SocketGauges, CollectError> {
    let groups = parse_sockstat(SOCKSTAT, sockstat)?;
    let field = |group: &str, key: &str| {
        groups
            .get(group)
            .and_then(|g| g.get(key))
            .copied()
            .ok_or_else(|| CollectError::parse(SOCKSTAT, 1, format!("no `{group}: {key}` field")))
    };
    let tcp6_inuse = match sockstat6 {
        Some(text) => {
            let groups6 = parse_sockstat(SOCKSTAT6, text)?;
            groups6.get("TCP6").and_then(|g| g.get("inuse")).copied()
        }
        None => None,
    };
    Ok(SocketGauges {
        sockets_used: field("sockets", "used")?,
        tcp_inuse: field("TCP", "inuse")?,
        tcp6_inuse,
        tcp_orphan: field("TCP", "orphan")?,
        tcp_time_wait: field("TCP", "tw")?,
        tcp_alloc: field("TCP", "alloc")?,
        tcp_mem_pages: field("TCP", "mem")?,
    })
}

pub(crate) fn pressure_stall(
    earlier: Option<&PressureFile>,
    later: &PressureFile,
) -> PressureResource {
    let stall = |then: Option<u64>, now: &super::procfiles::PressureRecord| PressureStall {
        avg10_percent: now.avg10_percent,
        stall_us: now.total_us.saturating_sub(then.unwrap_or(now.total_us)),
    };
    PressureResource {
        some: stall(earlier.map(|e| e.some.total_us), &later.some),
        full: later
            .full
            .as_ref()
            .map(|full| stall(earlier.and_then(|e| e.full.map(|f| f.total_us)), full)),
    }
}

/// Counts TCP sockets whose local port lies in `low..=high`, over v4 and v6, every state.
fn count_ports_in_range(low: u16, high: u16) -> Result<u64, CollectError> {
    let mut in_use = 0u64;
    for family in FAMILIES {
        for_each_tcp_socket(family, TcpStates::all(), "ephemeral port count", |socket| {
            if (low..=high).contains(&socket.local.port()) {
                in_use += 1;
            }
        })?;
    }
    Ok(in_use)
}

fn read_cpu() -> Result<CpuSnapshot, CollectError> {
    let stats = procfs::KernelStats::current().map_err(|source| CollectError::Procfs {
        path: STAT.to_owned(),
        source,
    })?;
    Ok(CpuSnapshot {
        total: CpuTicks::from_procfs(&stats.total),
        per_cpu: stats.cpu_time.iter().map(CpuTicks::from_procfs).collect(),
    })
}

fn read_tcp() -> Result<TcpSnapshot, CollectError> {
    TcpSnapshot::parse(&read_to_string(SNMP)?, &read_to_string(NETSTAT)?)
}

fn read_sockets() -> Result<SocketGauges, CollectError> {
    let sockstat = read_to_string(SOCKSTAT)?;
    // sockstat6 is missing when IPv6 is disabled.
    let sockstat6 = read_to_string(SOCKSTAT6).ok();
    socket_gauges(&sockstat, sockstat6.as_deref())
}

/// Reads /proc counters once per call and reports their change since the previous call.
#[derive(Debug)]
pub struct HostCollector {
    ticks_per_second: f64,
    last_sample: Option<Instant>,
    cpu: Option<CpuSnapshot>,
    tcp: Option<TcpSnapshot>,
    pressure: [Option<PressureFile>; 3],
    ephemeral_method: EphemeralCountMethod,
    /// The last exact count (Adaptive mode), reused until `next_exact`: the dump's cost is kept
    /// under `DUMP_BUDGET` of one CPU by spacing dumps by their own measured duration.
    last_exact: Option<u64>,
    next_exact: Option<Instant>,
}

/// Share of one CPU the adaptive ephemeral-port dump may use on average.
const DUMP_BUDGET: f64 = 0.005;

const PRESSURE_RESOURCES: [&str; 3] = ["cpu", "io", "memory"];

impl HostCollector {
    /// Checks that /proc/stat and the TCP counter files can be read here.
    pub fn new() -> Result<Self, CollectError> {
        read_cpu()?;
        read_tcp()?;
        let ticks = procfs::ticks_per_second();
        Ok(HostCollector {
            // sysconf(_SC_CLK_TCK) is 100 on every Linux; guard the division all the same.
            ticks_per_second: if ticks == 0 { 100.0 } else { ticks as f64 },
            last_sample: None,
            cpu: None,
            tcp: None,
            pressure: [None, None, None],
            ephemeral_method: EphemeralCountMethod::Adaptive,
            last_exact: None,
            next_exact: None,
        })
    }

    /// Chooses how ephemeral ports are counted. `SockDiag` is exact but costs about
    /// 2 µs per TCP socket on the host each sample; `SockstatUpperBound` costs nothing extra.
    pub fn with_ephemeral_count_method(mut self, method: EphemeralCountMethod) -> Self {
        self.ephemeral_method = method;
        self
    }

    /// What changed since the previous call; the first call returns zero deltas (the baseline).
    pub fn sample(&mut self) -> HostInterval {
        let now = Instant::now();
        let elapsed_seconds = self
            .last_sample
            .map_or(0.0, |then| now.duration_since(then).as_secs_f64());
        self.last_sample = Some(now);
        let mut errors = Vec::new();

        let cpu = match read_cpu() {
            Ok(current) => {
                let earlier = self.cpu.as_ref().unwrap_or(&current);
                let interval = cpu_interval(earlier, &current, self.ticks_per_second);
                self.cpu = Some(current);
                Some(interval)
            }
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        };

        let tcp = match read_tcp() {
            Ok(current) => {
                let earlier = self.tcp.as_ref().unwrap_or(&current);
                let interval = tcp_interval(earlier, &current);
                self.tcp = Some(current);
                Some(interval)
            }
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        };

        let sockets = match read_sockets() {
            Ok(gauges) => Some(gauges),
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        };

        let ephemeral_ports = match self.ephemeral_ports(sockets.as_ref()) {
            Ok(ports) => Some(ports),
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        };

        let pressure = self.pressure(&mut errors);

        HostInterval {
            elapsed_seconds,
            cpu,
            tcp,
            sockets,
            ephemeral_ports,
            pressure,
            errors,
        }
    }

    fn ephemeral_ports(
        &mut self,
        sockets: Option<&SocketGauges>,
    ) -> Result<EphemeralPorts, CollectError> {
        let (low, high) = parse_port_range(PORT_RANGE, &read_to_string(PORT_RANGE)?)?;
        let range_size = u64::from(high - low) + 1;
        let upper_bound = sockets.map(|s| {
            (
                s.tcp_inuse + s.tcp6_inuse.unwrap_or(0) + s.tcp_time_wait,
                EphemeralCountMethod::SockstatUpperBound,
            )
        });
        // The exact dump costs about 2 µs per socket on the host; while the cheap upper bound is
        // under a quarter of the range, port pressure is ruled out without it.
        if let (EphemeralCountMethod::Adaptive, Some((bound, method))) =
            (self.ephemeral_method, upper_bound)
            && bound * 4 < range_size
        {
            return Ok(EphemeralPorts {
                range_low: u64::from(low),
                range_high: u64::from(high),
                range_size,
                in_use: bound,
                in_use_fraction: bound as f64 / range_size as f64,
                method,
            });
        }
        let counted = match self.ephemeral_method {
            EphemeralCountMethod::Adaptive
                if self.next_exact.is_some_and(|t| Instant::now() < t)
                    && self.last_exact.is_some() =>
            {
                Ok((self.last_exact.unwrap_or(0), EphemeralCountMethod::SockDiag))
            }
            EphemeralCountMethod::Adaptive => {
                let started = Instant::now();
                let counted = count_ports_in_range(low, high);
                let took = started.elapsed();
                self.next_exact = Some(started + took.div_f64(DUMP_BUDGET));
                self.last_exact = counted.as_ref().ok().copied();
                counted.map(|count| (count, EphemeralCountMethod::SockDiag))
            }
            EphemeralCountMethod::SockDiag => {
                count_ports_in_range(low, high).map(|count| (count, EphemeralCountMethod::SockDiag))
            }
            EphemeralCountMethod::SockstatUpperBound => Err(CollectError::parse(
                SOCKSTAT,
                1,
                "sockstat unreadable, so no upper bound on ephemeral ports",
            )),
        };
        let (in_use, method) = match (counted, upper_bound) {
            (Ok(exact), _) => exact,
            (Err(_), Some(bound)) => bound,
            (Err(e), None) => return Err(e),
        };
        Ok(EphemeralPorts {
            range_low: u64::from(low),
            range_high: u64::from(high),
            range_size,
            in_use,
            in_use_fraction: in_use as f64 / range_size as f64,
            method,
        })
    }

    fn pressure(&mut self, errors: &mut Vec<String>) -> Option<PressureInterval> {
        if !Path::new(PRESSURE_DIR).is_dir() {
            return None;
        }
        let mut resources: [Option<PressureResource>; 3] = [None, None, None];
        for (index, name) in PRESSURE_RESOURCES.iter().enumerate() {
            let path = format!("{PRESSURE_DIR}/{name}");
            let parsed = read_to_string(&path).and_then(|text| parse_pressure(&path, &text));
            match parsed {
                Ok(current) => {
                    resources[index] =
                        Some(pressure_stall(self.pressure[index].as_ref(), &current));
                    self.pressure[index] = Some(current);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        let [cpu, io, memory] = resources;
        Some(PressureInterval { cpu, io, memory })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks(user: u64, system: u64, idle: u64, iowait: u64, steal: u64) -> CpuTicks {
        CpuTicks {
            user,
            system,
            idle,
            iowait,
            steal,
            ..CpuTicks::default()
        }
    }

    #[test]
    fn cpu_interval_converts_ticks_and_computes_busy_fraction() {
        let earlier = CpuSnapshot {
            total: ticks(100, 50, 1000, 10, 0),
            per_cpu: vec![ticks(50, 25, 500, 5, 0), ticks(50, 25, 500, 5, 0)],
        };
        let later = CpuSnapshot {
            // +60 user, +20 system, +100 idle, +20 iowait: busy 80 of 200.
            total: ticks(160, 70, 1100, 30, 0),
            // cpu0 fully busy (+80 user), cpu1 idle (+100 idle, +20 iowait).
            per_cpu: vec![ticks(110, 45, 500, 5, 0), ticks(50, 25, 600, 25, 0)],
        };
        let interval = cpu_interval(&earlier, &later, 100.0);
        assert_eq!(interval.user_seconds, 0.6);
        assert_eq!(interval.system_seconds, 0.2);
        assert_eq!(interval.idle_seconds, 1.0);
        assert_eq!(interval.iowait_seconds, 0.2);
        assert!((interval.busy_fraction - 0.4).abs() < 1e-12);
        assert_eq!(interval.per_cpu_busy_fraction, vec![1.0, 0.0]);
    }

    #[test]
    fn cpu_interval_tolerates_iowait_going_backwards_and_no_time() {
        let earlier = CpuSnapshot {
            total: ticks(10, 0, 10, 50, 0),
            per_cpu: vec![],
        };
        let later = CpuSnapshot {
            total: ticks(20, 0, 10, 40, 0),
            per_cpu: vec![],
        };
        let interval = cpu_interval(&earlier, &later, 100.0);
        assert_eq!(interval.iowait_seconds, 0.0);
        assert_eq!(interval.busy_fraction, 1.0);
        let none = cpu_interval(&later, &later, 100.0);
        assert_eq!(none.busy_fraction, 0.0);
    }

    const SNMP_A: &str = "Ip: Forwarding\nIp: 1\n\
        Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens CurrEstab RetransSegs\n\
        Tcp: 1 200 120000 -1 100 40 7 9\n";
    const SNMP_B: &str = "Ip: Forwarding\nIp: 1\n\
        Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens CurrEstab RetransSegs\n\
        Tcp: 1 200 120000 -1 105 43 2 9\n";
    const NETSTAT_A: &str = "TcpExt: ListenOverflows ListenDrops TCPTimeouts\nTcpExt: 3 4 0\n\
        IpExt: InOctets\nIpExt: 5\n";
    const NETSTAT_B: &str = "TcpExt: ListenOverflows ListenDrops TCPTimeouts TCPNew\n\
        TcpExt: 13 14 2 6\nIpExt: InOctets\nIpExt: 9\n";

    #[test]
    fn tcp_interval_takes_deltas_of_counters_only() {
        let a = TcpSnapshot::parse(SNMP_A, NETSTAT_A).expect("valid A");
        let b = TcpSnapshot::parse(SNMP_B, NETSTAT_B).expect("valid B");
        let interval = tcp_interval(&a, &b);
        assert_eq!(interval.active_opens(), 5);
        assert_eq!(interval.passive_opens(), 3);
        assert_eq!(interval.retrans_segs(), 0);
        assert_eq!(interval.listen_overflows(), 10);
        assert_eq!(interval.listen_drops(), 10);
        assert_eq!(interval.timeouts(), 2);
        assert_eq!(interval.curr_estab, 2);
        // Gauges and settings carry no delta; other groups are not mixed in.
        for absent in ["MaxConn", "RtoMin", "CurrEstab", "InOctets", "Forwarding"] {
            assert!(!interval.counters.contains_key(absent), "{absent}");
        }
        // A counter that appears only in the later sample has no baseline: delta 0.
        assert_eq!(interval.counters.get("TCPNew"), Some(&0));
        let baseline = tcp_interval(&b, &b);
        assert!(baseline.counters.values().all(|&d| d == 0));
    }

    #[test]
    fn tcp_snapshot_requires_its_groups() {
        let err = TcpSnapshot::parse("Ip: A\nIp: 1\n", NETSTAT_A).expect_err("no Tcp group");
        assert!(err.to_string().contains("/proc/net/snmp"), "{err}");
        let err = TcpSnapshot::parse(SNMP_A, "IpExt: A\nIpExt: 1\n").expect_err("no TcpExt");
        assert!(err.to_string().contains("/proc/net/netstat"), "{err}");
    }

    #[test]
    fn socket_gauges_from_sockstat() {
        let sockstat =
            "sockets: used 11\nTCP: inuse 5 orphan 1 tw 3 alloc 9 mem 244\nUDP: inuse 0 mem 0\n";
        let gauges = socket_gauges(sockstat, Some("TCP6: inuse 2\nUDP6: inuse 0\n"))
            .expect("valid sockstat");
        assert_eq!(
            gauges,
            SocketGauges {
                sockets_used: 11,
                tcp_inuse: 5,
                tcp6_inuse: Some(2),
                tcp_orphan: 1,
                tcp_time_wait: 3,
                tcp_alloc: 9,
                tcp_mem_pages: 244,
            }
        );
        let err = socket_gauges("sockets: used 1\nTCP: inuse 5\n", None).expect_err("no tw");
        assert!(err.to_string().contains("TCP: orphan"), "{err}");
    }

    #[test]
    fn pressure_deltas() {
        let a = parse_pressure("p", "some avg10=1.00 avg60=0 avg300=0 total=1000\nfull avg10=0.50 avg60=0 avg300=0 total=400\n")
            .expect("valid");
        let b = parse_pressure("p", "some avg10=2.00 avg60=0 avg300=0 total=1750\nfull avg10=0.25 avg60=0 avg300=0 total=500\n")
            .expect("valid");
        let stall = pressure_stall(Some(&a), &b);
        assert_eq!(stall.some.stall_us, 750);
        assert_eq!(stall.some.avg10_percent, 2.0);
        let full = stall.full.expect("full present");
        assert_eq!(full.stall_us, 100);
        assert_eq!(full.avg10_percent, 0.25);
        assert_eq!(pressure_stall(None, &b).some.stall_us, 0);
    }

    #[test]
    fn adaptive_counting_reports_which_method_it_used() {
        let mut adaptive = HostCollector::new().expect("proc files readable");
        let ports = adaptive.sample().ephemeral_ports.expect("counted");
        assert_ne!(ports.method, EphemeralCountMethod::Adaptive);
        if ports.method == EphemeralCountMethod::SockstatUpperBound {
            assert!(
                ports.in_use * 4 < ports.range_size,
                "bound used only while small: {ports:?}"
            );
        }
    }

    #[test]
    fn live_sockstat_upper_bound_is_not_below_the_exact_count() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let address = listener.local_addr().expect("local addr");
        let _clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(address).expect("connect loopback"))
            .collect();
        let mut exact = HostCollector::new()
            .expect("proc files readable")
            .with_ephemeral_count_method(EphemeralCountMethod::SockDiag);
        let mut bound = HostCollector::new()
            .expect("proc files readable")
            .with_ephemeral_count_method(EphemeralCountMethod::SockstatUpperBound);
        let bound = bound.sample().ephemeral_ports.expect("bound computed");
        let exact = exact.sample().ephemeral_ports.expect("exact computed");
        assert_eq!(bound.method, EphemeralCountMethod::SockstatUpperBound);
        assert_eq!(exact.method, EphemeralCountMethod::SockDiag);
        // Other tests open and close sockets meanwhile: allow a little slack.
        assert!(bound.in_use + 20 >= exact.in_use, "{bound:?} vs {exact:?}");
        assert!(bound.in_use >= 3, "{bound:?}");
    }

    #[test]
    fn live_first_sample_is_baseline_and_active_opens_counts_connections() {
        let mut collector = HostCollector::new().expect("proc files readable");
        let first = collector.sample();
        let first_tcp = first.tcp.expect("tcp counters read");
        assert!(
            first_tcp.counters.values().all(|&d| d == 0),
            "{first_tcp:?}"
        );
        let first_cpu = first.cpu.expect("cpu read");
        assert_eq!(first_cpu.busy_fraction, 0.0);
        assert!(!first_cpu.per_cpu_busy_fraction.is_empty());

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let address = listener.local_addr().expect("local addr");
        let mut clients = Vec::new();
        for _ in 0..5 {
            clients.push(std::net::TcpStream::connect(address).expect("connect loopback"));
        }
        // Burn a little CPU so the interval has non-idle time.
        let spin_until = Instant::now() + std::time::Duration::from_millis(50);
        while Instant::now() < spin_until {
            std::hint::black_box(0u64);
        }

        let second = collector.sample();
        assert!(second.errors.is_empty(), "{:?}", second.errors);
        let json = serde_json::to_string(&second).expect("serializes");
        let back: HostInterval = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back.tcp, second.tcp);
        assert!(second.elapsed_seconds > 0.0);
        let tcp = second.tcp.expect("tcp counters read");
        assert!(
            tcp.active_opens() >= 5,
            "active opens {}",
            tcp.active_opens()
        );
        assert!(
            tcp.passive_opens() >= 5,
            "passive opens {}",
            tcp.passive_opens()
        );
        let cpu = second.cpu.expect("cpu read");
        assert!(
            cpu.busy_fraction > 0.0 && cpu.busy_fraction <= 1.0,
            "{cpu:?}"
        );
        let sockets = second.sockets.expect("sockstat read");
        assert!(sockets.tcp_inuse >= 11, "listener + 5 pairs: {sockets:?}");
        let ports = second.ephemeral_ports.expect("ephemeral ports counted");
        assert_ne!(ports.method, EphemeralCountMethod::Adaptive);
        assert_eq!(ports.range_size, ports.range_high - ports.range_low + 1);
        // Our 5 clients' local ports come from the ephemeral range.
        assert!(ports.in_use >= 5, "{ports:?}");
        drop(clients);
    }
}
