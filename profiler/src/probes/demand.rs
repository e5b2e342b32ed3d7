//! Hooks attached on demand. The connection-setup program (`sock:inet_sock_set_state`) runs
//! about nine times per connection when both ends are on the host (every state change of both
//! sockets): under connection churn it was most of the default tier's cost, and an empty
//! program at the same hook already cost 1.3 % of the host at 22k connections a second.
//!
//! What it gives that the kernel does not count: opens, failures and handshake times per
//! process and port, and the failures the kernel's counters miss (a `connect()` refused for want
//! of a local port, a connect abandoned by its caller). Opens themselves the kernel counts in
//! every interval (`Tcp: ActiveOpens PassiveOpens`, which the program's counts matched within
//! 1 %), and every way a connection fails to set up leaves a trace in the kernel's counters or in
//! the always-attached programs first: a SYN or SYN-ACK retransmitted, a failed attempt
//! (`AttemptFails`), a listener's drop (`ListenDrops`, which includes its overflows), the
//! ephemeral port range filling up, the conntrack table filling up. The kernel keeps those
//! counters per network namespace, and chokepoint reads its own namespace's: traffic in any
//! other (a container's) keeps the program attached.
//!
//! So the default tier attaches it with the duty-cycled programs (the samples: its figures
//! per process and port are estimated from them), and in every interval after one that shows
//! such a trace ([`setup_question`]), for as long as the traces go on: a failing setup is then
//! counted event by event, and the interval in which it began has the kernel's own counts
//! (`TcpCounts::from_kernel_counters`).
use crate::recording::Interval;

/// The tracepoint ids attached on demand.
pub const ON_DEMAND: &[&str] = &["sock/inet_sock_set_state"];

/// The share of the ephemeral port range held by sockets not in TIME_WAIT from which a
/// `connect()` may find no free port (EADDRNOTAVAIL has no kernel counter).
pub const PORTS_QUESTION: f64 = 0.5;

/// The conntrack fill from which new flows may be dropped (their SYNs are then retransmitted,
/// which asks the question too, one interval later).
pub const CONNTRACK_QUESTION: f64 = 0.9;

/// Why the interval just read asks for the connection-setup program in the next one: every
/// trace a failing connection setup leaves in what is read in every interval, or None.
///
/// The kernel's TCP counters are per network namespace, and the host collector reads those of
/// chokepoint's own (`own_netns`, as device rows name it; None: not known). Traffic through
/// the devices of any other namespace (a container's) is a question too: connections set up
/// there are not in those counters, so the program counts them.
pub fn setup_question(iv: &Interval, own_netns: Option<&str>) -> Option<String> {
    let mut why = Vec::new();
    let foreign: std::collections::BTreeSet<&str> = iv
        .devices
        .iter()
        .filter(|d| own_netns.is_none_or(|own| d.netns != own))
        .filter(|d| d.rx_packets + d.tx_packets > 0)
        .map(|d| d.netns.as_str())
        .collect();
    if !foreign.is_empty() {
        why.push(format!(
            "traffic in {} other network namespaces (their TCP counters are not read)",
            foreign.len()
        ));
    }
    let retransmits = iv.tcp.syn_retransmits + iv.tcp.synack_retransmits;
    if retransmits > 0 {
        why.push(format!("{retransmits} SYN or SYN-ACK retransmits"));
    }
    // Counted only while the program runs: failures go on (EADDRNOTAVAIL among them).
    if iv.tcp.connect_failed > 0 && !iv.tcp.from_kernel_counters {
        why.push(format!("{} failed connects", iv.tcp.connect_failed));
    }
    let host = iv.host.as_ref();
    if let Some(t) = host.and_then(|h| h.tcp.as_ref()) {
        if t.attempt_fails() > 0 {
            why.push(format!(
                "{} failed attempts (AttemptFails)",
                t.attempt_fails()
            ));
        }
        let dropped = t.listen_drops().max(t.listen_overflows());
        if dropped > 0 {
            why.push(format!("{dropped} listen drops"));
        }
    }
    if let Some(p) = host.and_then(|h| h.ephemeral_ports.as_ref()) {
        // TIME_WAIT holds most ports under churn without being the question: a connect may
        // take over a TIME_WAIT port (tcp_tw_reuse, on for loopback by default). Where it may
        // not, an EADDRNOTAVAIL is seen by the next sample and asks from there on.
        let time_wait = host
            .and_then(|h| h.sockets.as_ref())
            .map_or(0, |s| s.tcp_time_wait);
        let held = p.in_use.saturating_sub(time_wait) as f64 / p.range_size.max(1) as f64;
        if held >= PORTS_QUESTION {
            why.push(format!(
                "{:.0}% of the ephemeral port range held by sockets not in TIME_WAIT",
                held * 100.0
            ));
        }
    }
    if let Some(c) = &iv.conntrack
        && c.max > 0
        && c.count as f64 >= CONNTRACK_QUESTION * c.max as f64
    {
        why.push(format!("conntrack table {} of {}", c.count, c.max));
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// The interval's connection-setup counts from the kernel's own counters, where the program
/// did not run through it: opens (`ActiveOpens`, `PassiveOpens`) and failed attempts
/// (`AttemptFails`: SYN_SENT or SYN_RECV to CLOSE, both ends). Established counts, closes and
/// EADDRNOTAVAIL have no such counter and stay 0.
pub fn setup_from_kernel(iv: &mut Interval) {
    let Some(t) = iv.host.as_ref().and_then(|h| h.tcp.as_ref()) else {
        return;
    };
    let tcp = &mut iv.tcp;
    tcp.active_opens = t.active_opens();
    tcp.passive_opens = t.passive_opens();
    tcp.connect_failed = t.attempt_fails();
    tcp.from_kernel_counters = true;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{EphemeralCountMethod, EphemeralPorts, SocketGauges, TcpInterval};

    fn interval(counters: &[(&str, u64)], ports: f64) -> Interval {
        let mut iv = crate::analysis::fixtures::interval(0, 0.5);
        let host = iv.host.as_mut().expect("a host row");
        host.tcp = Some(TcpInterval {
            counters: counters.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            curr_estab: 0,
        });
        host.ephemeral_ports = Some(EphemeralPorts {
            range_low: 32768,
            range_high: 60999,
            range_size: 28232,
            in_use: (ports * 28232.0) as u64,
            in_use_fraction: ports,
            method: EphemeralCountMethod::SockDiag,
        });
        iv
    }

    #[test]
    fn healthy_churn_asks_nothing() {
        let iv = interval(&[("ActiveOpens", 20_000), ("PassiveOpens", 20_000)], 0.2);
        assert_eq!(setup_question(&iv, None), None);
    }

    #[test]
    fn every_trace_of_a_failing_setup_asks() {
        type Counters<'a> = &'a [(&'a str, u64)];
        let cases: [(Counters, f64, &str); 4] = [
            (&[("AttemptFails", 3)], 0.0, "3 failed attempts"),
            (
                &[("ListenOverflows", 7), ("ListenDrops", 7)],
                0.0,
                "7 listen drops",
            ),
            (&[], 0.6, "60% of the ephemeral port range held"),
            (&[], 0.0, ""),
        ];
        for (counters, ports, expect) in cases {
            let mut iv = interval(counters, ports);
            if expect.is_empty() {
                // The always-attached retransmit program's count.
                iv.tcp.syn_retransmits = 2;
            }
            let q = setup_question(&iv, None).expect("a question");
            assert!(
                q.contains(if expect.is_empty() { "2 SYN" } else { expect }),
                "{q}"
            );
        }
        // A failure the program counted (EADDRNOTAVAIL leaves no kernel counter) keeps it on;
        // the kernel's own AttemptFails copied into a detached interval asks through
        // AttemptFails, not twice.
        let mut iv = interval(&[], 0.0);
        iv.tcp.connect_failed = 4;
        assert_eq!(
            setup_question(&iv, None).as_deref(),
            Some("4 failed connects")
        );
        iv.tcp.from_kernel_counters = true;
        assert_eq!(setup_question(&iv, None), None);
    }

    #[test]
    fn ports_held_in_time_wait_ask_nothing() {
        // Churn: the range 99% in use, nearly all of it TIME_WAIT.
        let mut iv = interval(&[("ActiveOpens", 20_000)], 0.99);
        let host = iv.host.as_mut().expect("host");
        host.sockets = Some(SocketGauges {
            sockets_used: 100,
            tcp_inuse: 50,
            tcp6_inuse: None,
            tcp_orphan: 0,
            tcp_time_wait: 27_500,
            tcp_alloc: 50,
            tcp_mem_pages: 0,
        });
        assert_eq!(setup_question(&iv, None), None);
    }

    #[test]
    fn traffic_in_another_namespace_asks() {
        let mut iv = interval(&[], 0.0);
        let row = |netns: &str, packets: u64| crate::recording::DeviceInterval {
            netns: netns.into(),
            name: "veth0".into(),
            kind: "veth".into(),
            rx_packets: packets,
            tx_packets: packets,
            rx_bytes: 0,
            tx_bytes: 0,
            rx_dropped: 0,
            tx_dropped: 0,
        };
        iv.devices = vec![row("net:[1]", 500), row("net:[2] lab", 0)];
        assert_eq!(setup_question(&iv, Some("net:[1]")), None, "idle there");
        iv.devices.push(row("net:[3] app", 40));
        let q = setup_question(&iv, Some("net:[1]")).expect("a question");
        assert!(q.contains("traffic in 1 other network namespaces"), "{q}");
    }

    #[test]
    fn a_detached_interval_takes_opens_and_failures_from_the_kernel() {
        let mut iv = interval(
            &[
                ("ActiveOpens", 900),
                ("PassiveOpens", 880),
                ("AttemptFails", 5),
            ],
            0.0,
        );
        iv.tcp.syn_retransmits = 3;
        setup_from_kernel(&mut iv);
        assert_eq!(
            (
                iv.tcp.active_opens,
                iv.tcp.passive_opens,
                iv.tcp.connect_failed
            ),
            (900, 880, 5)
        );
        assert!(iv.tcp.from_kernel_counters);
        // What the always-attached programs counted stays.
        assert_eq!(iv.tcp.syn_retransmits, 3);
    }
}
