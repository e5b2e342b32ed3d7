//! Connection pools from per-socket turns: busy time per connection as a delta between two
//! reads of `SOCKETS`, then outbound connections grouped by (process, remote endpoint) and
//! inbound ones by (process, listening port), with Little's law figures. Pure: no kernel, no
//! clock, no /proc (names come in through `Names`).
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use chokepoint_common::{SOCK_DIR_RECV, SOCK_DIR_SEND, SockUse};

use crate::recording::{
    InboundRow, PoolRow,
    pools::{queued, wait_ms},
};

/// Rows kept per interval, busiest first.
const MAX_ROWS: usize = 64;

const AF_INET: u16 = 2;

/// One socket's use in one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketDelta {
    pub pid: u32,
    pub local_port: u16,
    pub remote: SocketAddr,
    /// Busy time each way in the interval, including the turn in flight at either end.
    pub out_busy_ns: u64,
    pub in_busy_ns: u64,
    /// Completed turns each way.
    pub out_turns: u64,
    pub in_turns: u64,
    /// Connections the entry held in the interval (more than one when closed sockets' memory
    /// was reused by new ones between two reads).
    pub connections: u32,
}

/// The remote end of a socket as the kernel stored it.
pub fn remote(s: &SockUse) -> SocketAddr {
    let port = u16::from_be(s.dport_be);
    let ip = if s.family == AF_INET {
        IpAddr::V4(Ipv4Addr::from(u32::from_be(s.daddr)))
    } else {
        v6(s.daddr6)
    };
    SocketAddr::new(ip, port)
}

/// An IPv6 address as the kernel stores it; an IPv4-mapped one (a dual-stack socket talking
/// IPv4) as the IPv4 address it is. Unknown (no BTF offsets) reads as `::`.
fn v6(bytes: [u8; 16]) -> IpAddr {
    let a = Ipv6Addr::from(bytes);
    a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4)
}

fn local_ip(s: &SockUse) -> Option<IpAddr> {
    if s.family == AF_INET {
        Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(s.saddr))))
    } else {
        (s.saddr6 != [0; 16]).then(|| v6(s.saddr6))
    }
}

/// Whether `cur` continues the entry `prev` was read from (counters only grow while it does;
/// an entry deleted and inserted again starts from zero).
/// Whether `cur` is the socket `prev` was: the same generation (a reused entry starts its
/// counters afresh, its predecessor's last figures going to `RETIRED`) with counters that
/// only grew.
fn continues(prev: &SockUse, cur: &SockUse) -> bool {
    prev.generation == cur.generation
        && prev.send_calls <= cur.send_calls
        && prev.recv_calls <= cur.recv_calls
}

/// The part of the turn in flight at `now`, per direction: (outbound, inbound). A turn that
/// began before `since_ns` (the programs' last attach, 0 if they never left) straddles a gap
/// in which it may have ended unseen: it is not in flight as far as anyone knows.
pub(super) fn in_flight(s: &SockUse, now_ns: u64, since_ns: u64) -> (u64, u64) {
    if s.turn_start_ns < since_ns {
        return (0, 0);
    }
    let open = now_ns.saturating_sub(s.turn_start_ns);
    match s.last_dir {
        SOCK_DIR_SEND => (open, 0),
        SOCK_DIR_RECV => (0, open),
        _ => (0, 0),
    }
}

/// The interval's delta of one socket read at `prev_ns` (None: first seen) and `now_ns`
/// (CLOCK_MONOTONIC, the clock the kernel stamps turns with). A closed socket's turn in flight
/// ended at its close, which is not stamped: it is not counted. Busy time of connections that
/// reused the entry is attributed to the entry's current 4-tuple and owner. `since_ns`: when
/// the programs were last attached (the duty cycle's `SOCK_EPOCH`; 0 if never detached).
pub fn socket_delta(
    prev: Option<(&SockUse, u64)>,
    cur: &SockUse,
    now_ns: u64,
    interval_ns: u64,
    since_ns: u64,
) -> SocketDelta {
    let prev = prev.filter(|(p, _)| continues(p, cur));
    let (out_now, in_now) = if cur.closed != 0 {
        (0, 0)
    } else {
        in_flight(cur, now_ns, since_ns)
    };
    let (out_then, in_then, base) = match prev {
        Some((p, at)) => {
            let (o, i) = if p.closed != 0 {
                (0, 0)
            } else {
                in_flight(p, at, since_ns)
            };
            (o, i, *p)
        }
        None => (0, 0, SockUse::default()),
    };
    let out = (cur.send_to_recv_ns.saturating_sub(base.send_to_recv_ns) + out_now)
        .saturating_sub(out_then);
    let inb =
        (cur.recv_to_send_ns.saturating_sub(base.recv_to_send_ns) + in_now).saturating_sub(in_then);
    SocketDelta {
        pid: cur.tgid,
        local_port: cur.sport,
        remote: remote(cur),
        // A turn started before the socket was first seen cannot exceed the interval.
        out_busy_ns: out.min(interval_ns),
        in_busy_ns: inb.min(interval_ns),
        out_turns: cur.send_turns.saturating_sub(base.send_turns),
        in_turns: cur.recv_turns.saturating_sub(base.recv_turns),
        // One connection per entry: a reused entry's predecessors are counted from RETIRED
        // (`retired::deltas`).
        connections: 1,
    }
}

/// Whether the remote end is on this host (so its owner can be looked up by port).
pub fn remote_is_local(s: &SockUse) -> bool {
    match (remote(s).ip(), local_ip(s)) {
        (r, Some(l)) => r.is_loopback() || r == l,
        // IPv6 addresses not read (no BTF offsets): a local listener on the port is taken as
        // the peer.
        (IpAddr::V6(r), None) => r.is_unspecified(),
        _ => false,
    }
}

/// Labels of well-known server ports.
pub fn well_known(port: u16) -> Option<&'static str> {
    Some(match port {
        5432 => "PostgreSQL",
        6432 => "pgbouncer",
        3306 => "MySQL",
        6379 => "Redis",
        11211 => "memcached",
        27017 => "MongoDB",
        80 | 8080 | 443 | 8443 => "HTTP",
        _ => return None,
    })
}

/// What the grouping needs to know about the host.
pub struct Names<'a> {
    /// Local ports with a listening socket: a socket on one is inbound.
    pub listening: &'a HashSet<u16>,
    /// Process name by pid.
    pub comm: &'a dyn Fn(u32) -> String,
    /// The local process listening on a port, if any.
    pub listener: &'a dyn Fn(u16) -> Option<String>,
}

fn upstream_name(remote: SocketAddr, local_peer: bool, names: &Names) -> String {
    let port = remote.port();
    if local_peer && let Some(owner) = (names.listener)(port) {
        return owner;
    }
    well_known(port).map_or_else(|| "remote".to_string(), str::to_string)
}

/// Groups one interval's sockets into pools and inbound groups. `local_peer` says, per
/// socket, whether its remote end is on this host.
pub fn group(
    sockets: &[(SocketDelta, bool)],
    interval_ns: u64,
    names: &Names,
) -> (Vec<PoolRow>, Vec<InboundRow>) {
    let secs = interval_ns.max(1) as f64 / 1e9;
    let ns = interval_ns.max(1) as f64;

    #[derive(Default)]
    struct Acc {
        size: u32,
        busy_ns: u64,
        turns: u64,
        local_peer: bool,
    }
    let mut pools: BTreeMap<(u32, SocketAddr), Acc> = BTreeMap::new();
    let mut inbound: BTreeMap<(u32, u16), Acc> = BTreeMap::new();
    for (s, local_peer) in sockets {
        if names.listening.contains(&s.local_port) {
            let a = inbound.entry((s.pid, s.local_port)).or_default();
            a.size += s.connections;
            a.busy_ns += s.in_busy_ns;
            a.turns += s.in_turns;
        } else {
            let a = pools.entry((s.pid, s.remote)).or_default();
            a.size += s.connections;
            a.busy_ns += s.out_busy_ns;
            a.turns += s.out_turns;
            a.local_peer |= *local_peer;
        }
    }

    // Per process: inbound in flight and its rate, and outbound in use over all its pools.
    let mut inbound_of: HashMap<u32, (f64, f64)> = HashMap::new();
    for ((pid, _), a) in &inbound {
        let e = inbound_of.entry(*pid).or_default();
        e.0 += a.busy_ns as f64 / ns;
        e.1 += a.turns as f64 / secs;
    }
    let mut in_use_of: HashMap<u32, f64> = HashMap::new();
    for ((pid, _), a) in &pools {
        *in_use_of.entry(*pid).or_default() += a.busy_ns as f64 / ns;
    }

    let mut rows: Vec<PoolRow> = pools
        .iter()
        .map(|((pid, remote), a)| {
            let in_use = a.busy_ns as f64 / ns;
            let utilisation = in_use / f64::from(a.size.max(1));
            let (concurrency, rate) = inbound_of.get(pid).copied().unwrap_or_default();
            let queued = queued(
                utilisation,
                concurrency,
                in_use_of.get(pid).copied().unwrap_or(in_use),
            );
            PoolRow {
                pid: *pid,
                comm: (names.comm)(*pid),
                upstream: upstream_name(*remote, a.local_peer, names),
                endpoint: remote.to_string(),
                size: a.size,
                in_use,
                utilisation,
                requests_per_s: a.turns as f64 / secs,
                inbound_concurrency: concurrency,
                inbound_per_s: rate,
                queued,
                wait_ms_estimate: wait_ms(queued, rate),
            }
        })
        .collect();
    rows.sort_by(|a, b| b.in_use.total_cmp(&a.in_use).then(a.pid.cmp(&b.pid)));
    rows.truncate(MAX_ROWS);

    let mut inbound_rows: Vec<InboundRow> = inbound
        .iter()
        .map(|((pid, port), a)| InboundRow {
            pid: *pid,
            comm: (names.comm)(*pid),
            port: *port,
            connections: a.size,
            concurrency: a.busy_ns as f64 / ns,
            requests_per_s: a.turns as f64 / secs,
        })
        .collect();
    inbound_rows.sort_by(|a, b| b.concurrency.total_cmp(&a.concurrency));
    inbound_rows.truncate(MAX_ROWS);
    (rows, inbound_rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::pools::POOL_FULL;

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000 * MS;

    #[test]
    fn ipv6_endpoints_are_read_and_mapped_ipv4_is_ipv4() {
        let mut s = SockUse {
            family: 10,
            dport_be: 5432u16.to_be(),
            daddr6: Ipv6Addr::LOCALHOST.octets(),
            saddr6: Ipv6Addr::LOCALHOST.octets(),
            ..Default::default()
        };
        assert_eq!(remote(&s).to_string(), "[::1]:5432");
        assert!(remote_is_local(&s));
        let far: Ipv6Addr = "2001:db8::7".parse().expect("address");
        s.daddr6 = far.octets();
        assert_eq!(remote(&s).to_string(), "[2001:db8::7]:5432");
        assert!(!remote_is_local(&s), "another host");
        // A dual-stack socket talking to 10.0.0.9 stores ::ffff:10.0.0.9.
        s.daddr6 = Ipv4Addr::new(10, 0, 0, 9).to_ipv6_mapped().octets();
        assert_eq!(remote(&s).to_string(), "10.0.0.9:5432");
        // Kernels without the offsets leave the addresses zero: known by port only.
        s.daddr6 = [0; 16];
        s.saddr6 = [0; 16];
        assert!(remote_is_local(&s));
    }

    fn sock(pid: u32, sport: u16, dport: u16) -> SockUse {
        SockUse {
            tgid: pid,
            family: AF_INET,
            saddr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
            daddr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
            sport,
            dport_be: dport.to_be(),
            ..Default::default()
        }
    }

    #[test]
    fn busy_time_counts_the_turn_in_flight_at_both_ends() {
        // At the previous read (t = 10 s) a request sent at 9.5 s was in flight.
        let mut prev = sock(7, 40000, 5432);
        prev.last_dir = SOCK_DIR_SEND;
        prev.turn_start_ns = 9_500 * MS;
        prev.send_calls = 1;
        // In the interval it completed at 10.2 s (0.7 s turn) and another was sent at 10.9 s.
        let mut cur = prev;
        cur.send_to_recv_ns = 700 * MS;
        cur.send_turns = 1;
        cur.turn_start_ns = 10_900 * MS;
        cur.send_calls = 2;
        cur.recv_calls = 1;
        let d = socket_delta(Some((&prev, 10 * SEC)), &cur, 11 * SEC, SEC, 0);
        // 10.0..10.2 plus 10.9..11.0.
        assert_eq!(d.out_busy_ns, 300 * MS);
        assert_eq!(d.out_turns, 1);
        assert_eq!(d.in_busy_ns, 0);
        assert_eq!(d.remote, "127.0.0.1:5432".parse().expect("literal"));
    }

    #[test]
    fn a_turn_from_before_the_programs_last_attach_is_not_in_flight() {
        // Detached from 5 s to 10 s, attached again at 10 s (the epoch). The socket's last
        // event before the gap was a send at 4.8 s; whether its response came in the gap is
        // unknown, so neither read counts it in flight.
        let mut prev = sock(7, 40000, 5432);
        prev.last_dir = SOCK_DIR_SEND;
        prev.turn_start_ns = 4_800 * MS;
        prev.send_calls = 1;
        let d = socket_delta(Some((&prev, 10 * SEC)), &prev, 11 * SEC, SEC, 10 * SEC);
        assert_eq!(d.out_busy_ns, 0);
        // Without the epoch (programs never detached) it would read as a full second busy.
        let d = socket_delta(Some((&prev, 10 * SEC)), &prev, 11 * SEC, SEC, 0);
        assert_eq!(d.out_busy_ns, SEC);
        // Seen again after the attach (the kernel restarted its turn at 10.4 s): in flight
        // from there.
        let mut cur = prev;
        cur.turn_start_ns = 10_400 * MS;
        cur.send_calls = 2;
        let d = socket_delta(Some((&prev, 10 * SEC)), &cur, 11 * SEC, SEC, 10 * SEC);
        assert_eq!((d.out_busy_ns, d.out_turns), (600 * MS, 0));
    }

    #[test]
    fn reused_entries_start_afresh_and_closed_turns_stop() {
        let mut prev = sock(7, 40000, 5432);
        prev.send_calls = 50;
        prev.send_to_recv_ns = 5 * SEC;
        // The entry was reused: the kernel moved the old socket's last figures to RETIRED and
        // started the new socket's counters at zero (generation 1). The old one's delta is
        // read from RETIRED against `prev`...
        let mut retired = prev;
        retired.send_calls = 52;
        retired.send_turns = 2;
        retired.send_to_recv_ns = 5 * SEC + 40 * MS;
        retired.closed = 1;
        let d = socket_delta(Some((&prev, 10 * SEC)), &retired, 11 * SEC, SEC, 0);
        assert_eq!(
            (d.pid, d.out_busy_ns, d.out_turns, d.connections),
            (7, 40 * MS, 2, 1)
        );
        // ...and the new one's counters are its own, whatever the old ones were.
        let mut cur = sock(8, 40001, 5432);
        cur.generation = 1;
        cur.send_calls = 56;
        cur.send_turns = 6;
        cur.send_to_recv_ns = 300 * MS;
        let d = socket_delta(Some((&prev, 10 * SEC)), &cur, 11 * SEC, SEC, 0);
        assert_eq!((d.pid, d.out_busy_ns, d.out_turns), (8, 300 * MS, 6));
        assert_eq!(d.connections, 1);
        // Deleted and inserted again: counters start from zero.
        let mut cur = sock(8, 40001, 6379);
        cur.send_calls = 3;
        cur.send_to_recv_ns = 200 * MS;
        let d = socket_delta(Some((&prev, 10 * SEC)), &cur, 11 * SEC, SEC, 0);
        assert_eq!((d.out_busy_ns, d.connections), (200 * MS, 1));
        cur.last_dir = SOCK_DIR_SEND;
        cur.turn_start_ns = 10_500 * MS;
        cur.closed = 1;
        let d = socket_delta(None, &cur, 11 * SEC, SEC, 0);
        assert_eq!(d.out_busy_ns, 200 * MS, "no turn in flight after close");
    }

    fn delta(pid: u32, local_port: u16, remote_port: u16, out: f64, inb: f64) -> SocketDelta {
        SocketDelta {
            pid,
            local_port,
            remote: SocketAddr::from((Ipv4Addr::LOCALHOST, remote_port)),
            out_busy_ns: (out * SEC as f64) as u64,
            in_busy_ns: (inb * SEC as f64) as u64,
            out_turns: (out * 190.0) as u64,
            in_turns: (inb * 16.0) as u64,
            connections: 1,
        }
    }

    /// 24 clients through a pooler (pid 2, port 6432) with 2 upstream connections to
    /// PostgreSQL (port 5432), each upstream connection busy `upstream_busy` of the time.
    fn pooler(clients: u32, client_busy: f64, upstream: u32, upstream_busy: f64) -> Vec<PoolRow> {
        let mut sockets = Vec::new();
        for i in 0..clients {
            sockets.push((delta(2, 6432, 50000 + i as u16, 0.0, client_busy), true));
        }
        for i in 0..upstream {
            sockets.push((delta(2, 41000 + i as u16, 5432, upstream_busy, 0.0), true));
        }
        let listening = HashSet::from([6432, 5432]);
        let names = Names {
            listening: &listening,
            comm: &|pid| format!("p{pid}"),
            listener: &|port| (port == 5432).then(|| "postgres".to_string()),
        };
        group(&sockets, SEC, &names).0
    }

    #[test]
    fn a_full_pool_queues_the_inbound_excess() {
        let rows = pooler(24, 0.96, 2, 0.96);
        assert_eq!(rows.len(), 1);
        let p = &rows[0];
        assert_eq!((p.size, p.upstream.as_str()), (2, "postgres"));
        assert!((p.in_use - 1.92).abs() < 1e-6, "{p:?}");
        assert!((p.utilisation - 0.96).abs() < 1e-6);
        assert!((p.inbound_concurrency - 23.04).abs() < 1e-6);
        assert!((p.queued - 21.12).abs() < 1e-6, "{p:?}");
        // Little's law on the inbound rate (24 x 0.96 x 16 = 368 turns/s).
        assert!((p.wait_ms_estimate - 21.12 / p.inbound_per_s * 1000.0).abs() < 1e-6);
        assert!(p.wait_ms_estimate > 50.0);
    }

    #[test]
    fn a_pool_with_free_slots_queues_nothing() {
        let rows = pooler(24, 0.96, 30, 0.7);
        let p = &rows[0];
        assert_eq!(p.size, 30);
        assert!(p.utilisation < POOL_FULL);
        assert_eq!((p.queued, p.wait_ms_estimate), (0.0, 0.0));
    }

    #[test]
    fn clients_without_inbound_queue_nothing_and_labels_name_remote_ports() {
        // A load generator's own connections to the pooler: full, but nothing waits behind.
        let sockets: Vec<(SocketDelta, bool)> = (0..4)
            .map(|i| (delta(9, 30000 + i, 6432, 0.99, 0.0), false))
            .collect();
        let listening = HashSet::new();
        let names = Names {
            listening: &listening,
            comm: &|_| "pgbench".into(),
            listener: &|_| None,
        };
        let (rows, inbound) = group(&sockets, SEC, &names);
        assert!(inbound.is_empty());
        assert_eq!(rows[0].upstream, "pgbouncer");
        assert!(rows[0].utilisation > POOL_FULL);
        assert_eq!(rows[0].queued, 0.0);
    }
}
