//! Closed sockets whose memory a new socket reused before user space read them: the programs
//! fold their last figures into `RETIRED` by identity, the ephemeral port zeroed (a served
//! port and client address, or an endpoint), and this turns each entry into one interval's
//! delta for the pools. Pure: no kernel, no clock.
use std::collections::HashMap;

use chokepoint_common::{RetiredKey, RetiredUse, SockUse};

use super::pools::{SocketDelta, in_flight, remote, remote_is_local};

/// The interval's deltas of the closed sockets folded into `RETIRED` since the last read (one
/// row per entry: a served port and client address, or an endpoint): each entry's sums less
/// what the last read (`prev`, at `prev_ns`) already counted of the sockets folded into it,
/// their turns in flight then included. A socket the last read saw open whose entry now holds
/// a later generation was folded (user space deletes only closed ones; an entry evicted and
/// inserted again is the rare exception, and counted as an eviction).
pub fn deltas(
    retired: &[(RetiredKey, RetiredUse)],
    prev: (&HashMap<u64, SockUse>, u64),
    cur: &HashMap<u64, SockUse>,
    interval_ns: u64,
    since_ns: u64,
) -> Vec<(SocketDelta, bool)> {
    let (prev, prev_ns) = prev;
    let mut counted: HashMap<RetiredKey, (u64, u64, u64, u64)> = HashMap::new();
    for (sk, p) in prev.iter().filter(|(_, p)| p.closed == 0) {
        if cur.get(sk).is_none_or(|c| c.generation == p.generation) {
            continue;
        }
        let (out_then, in_then) = in_flight(p, prev_ns, since_ns);
        let c = counted.entry(p.retired_key()).or_default();
        c.0 += p.send_to_recv_ns + out_then;
        c.1 += p.recv_to_send_ns + in_then;
        c.2 += p.send_turns;
        c.3 += p.recv_turns;
    }
    retired
        .iter()
        .map(|(k, u)| {
            let (out, inb, out_turns, in_turns) = counted.get(k).copied().unwrap_or_default();
            let s = SockUse {
                tgid: k.tgid,
                family: k.family,
                saddr: k.saddr,
                daddr: k.daddr,
                sport: k.sport,
                dport_be: k.dport_be,
                saddr6: k.saddr6,
                daddr6: k.daddr6,
                ..Default::default()
            };
            let most = interval_ns.saturating_mul(u.connections);
            let d = SocketDelta {
                pid: k.tgid,
                local_port: k.sport,
                remote: remote(&s),
                out_busy_ns: u.send_to_recv_ns.saturating_sub(out).min(most),
                in_busy_ns: u.recv_to_send_ns.saturating_sub(inb).min(most),
                out_turns: u.send_turns.saturating_sub(out_turns),
                in_turns: u.recv_turns.saturating_sub(in_turns),
                connections: u32::try_from(u.connections).unwrap_or(u32::MAX),
            };
            (d, remote_is_local(&s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use chokepoint_common::{KEEP_LOCAL, KEEP_REMOTE, SOCK_DIR_RECV};

    use super::*;

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000 * MS;

    /// A server's accepted socket on port 8080 from 127.0.0.1:`client_port`.
    fn served(client_port: u16, generation: u32) -> SockUse {
        SockUse {
            tgid: 7,
            family: 2,
            saddr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
            daddr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
            sport: 8080,
            dport_be: client_port.to_be(),
            keep: KEEP_LOCAL,
            generation,
            ..Default::default()
        }
    }

    #[test]
    fn sockets_folded_between_two_reads_count_whole_under_their_service_port() {
        // Three requests of 2 ms each, on three connections from different client ports, all
        // opened and closed between two reads: one entry.
        let mut key = None;
        let mut sum = RetiredUse::default();
        for port in [40001, 40002, 40003] {
            let mut s = served(port, 0);
            s.recv_to_send_ns = 2 * MS;
            s.recv_turns = 1;
            let k = s.retired_key();
            assert!(key.is_none_or(|x| x == k), "one entry for all three");
            key = Some(k);
            sum.add(&s.retired_use());
        }
        let key = key.expect("a key");
        assert_eq!((key.sport, key.dport_be), (8080, 0));
        let none = HashMap::new();
        let rows = deltas(&[(key, sum)], (&none, 0), &none, SEC, 0);
        assert_eq!(rows.len(), 1);
        let (d, local) = &rows[0];
        assert!(*local);
        assert_eq!((d.pid, d.local_port, d.connections), (7, 8080, 3));
        assert_eq!((d.in_busy_ns, d.in_turns), (6 * MS, 3));
    }

    #[test]
    fn what_the_last_read_counted_of_a_folded_socket_is_not_counted_again() {
        // At the last read (t = 10 s) the socket had served one 5 ms request and was 300 ms
        // into a second; it finished that one (400 ms in all) and closed, and its memory went
        // to a new socket (generation 1).
        let mut then = served(40001, 0);
        then.recv_to_send_ns = 5 * MS;
        then.recv_turns = 1;
        then.last_dir = SOCK_DIR_RECV;
        then.turn_start_ns = 9_700 * MS;
        let mut last = then;
        last.recv_to_send_ns += 400 * MS;
        last.recv_turns += 1;
        let prev = HashMap::from([(0xffff_1000_u64, then)]);
        let cur = HashMap::from([(0xffff_1000_u64, served(40002, 1))]);
        let retired = [(last.retired_key(), last.retired_use())];
        let rows = deltas(&retired, (&prev, 10 * SEC), &cur, SEC, 0);
        let d = &rows[0].0;
        // 400 ms turn less the 300 ms counted as in flight then; one turn completed since.
        assert_eq!((d.in_busy_ns, d.in_turns, d.connections), (100 * MS, 1, 1));

        // A socket the last read saw closed was deleted then: a new socket at its address
        // starts a fresh entry, and nothing is taken off.
        then.closed = 1;
        let prev = HashMap::from([(0xffff_1000_u64, then)]);
        let rows = deltas(&retired, (&prev, 10 * SEC), &cur, SEC, 0);
        assert_eq!(rows[0].0.in_busy_ns, 405 * MS);
    }

    #[test]
    fn a_client_is_folded_by_endpoint_and_a_socket_of_unknown_ports_keeps_both() {
        let mut c = served(5432, 0);
        (c.sport, c.keep) = (51000, KEEP_REMOTE);
        let k = c.retired_key();
        assert_eq!((k.sport, u16::from_be(k.dport_be)), (0, 5432));
        c.keep = chokepoint_common::KEEP_BOTH;
        let k = c.retired_key();
        assert_eq!((k.sport, u16::from_be(k.dport_be)), (51000, 5432));
    }
}
