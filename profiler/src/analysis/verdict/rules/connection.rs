//! Connection setup: SYNs and SYN-ACKs retransmitted, listen queues overflowing, connects
//! failing (for want of a local port too), a full conntrack table dropping new flows.
use crate::analysis::verdict::*;

pub(in crate::analysis::verdict) fn connection_setup(w: &WindowFigures) -> Candidate {
    let ratio = w.setup_failures as f64 / w.opens.max(1) as f64;
    let tcp_fired = w.setup_failures >= SETUP_FAILURE_MIN && ratio >= SETUP_FAILURE_RATIO;
    // A full conntrack table drops new connections before TCP sees them.
    let ct_fired = w.conntrack.as_ref().is_some_and(|c| {
        c.peak_fill >= CONNTRACK_FULL
            && c.failures() >= SETUP_FAILURE_MIN
            && c.failures() as f64 / w.opens.max(1) as f64 >= SETUP_FAILURE_RATIO
    });
    let fired = tcp_fired || ct_fired;
    let ct_text = w.conntrack.as_ref().map(|c| {
        format!(
            "conntrack table {}/{} at its fullest ({}), {} insert failures, {} drops, {} early drops",
            c.peak_count,
            c.max,
            pct(c.peak_fill),
            c.insert_failed,
            c.drop,
            c.early_drop
        )
    });
    let mut text = format!(
        "{} setup failures in {} opens ({}: {} SYN and {} SYN-ACK retransmits, {} listen overflows, {} failed connects of which {} for want of a local port)",
        w.setup_failures,
        w.opens,
        // No connection got through at all (e.g. a full conntrack table): a ratio means nothing.
        if w.opens == 0 {
            "none got through".to_string()
        } else {
            format!("{:.1}%", ratio * 100.0)
        },
        w.syn_retransmits,
        w.synack_retransmits,
        w.listen_overflows,
        w.connect_failed,
        w.addr_unavailable
    );
    if let Some(ct) = &ct_text {
        text = if ct_fired {
            format!("{ct}; {text}")
        } else {
            format!("{text}; {ct}")
        };
    }
    let mut evidence = vec![
        ev(
            "tcp.opens_per_s",
            w.opens as f64 / w.seconds.max(1e-9),
            "1/s",
            None,
            "sock:inet_sock_set_state",
        ),
        ev(
            "tcp.syn_retransmits",
            w.syn_retransmits as f64,
            "count",
            None,
            "tcp:tcp_retransmit_skb (SYN_SENT)",
        ),
        ev(
            "tcp.synack_retransmits",
            w.synack_retransmits as f64,
            "count",
            None,
            "tcp:tcp_retransmit_synack",
        ),
        ev(
            "tcp.listen_overflows",
            w.listen_overflows as f64,
            "count",
            None,
            "/proc/net/netstat ListenOverflows/ListenDrops",
        ),
        ev(
            "tcp.connect_failed",
            w.connect_failed as f64,
            "count",
            None,
            "sock:inet_sock_set_state SYN_SENT->CLOSE",
        ),
        ev(
            "tcp.connect_eaddrnotavail",
            w.addr_unavailable as f64,
            "count",
            None,
            "sock:inet_sock_set_state SYN_SENT->CLOSE with no local port",
        ),
        ev(
            "tcp.setup_failure_ratio",
            ratio,
            "ratio",
            Some(">= 0.01 and >= 5 events"),
            "failures / opens",
        ),
    ];
    if let Some(p99) = w.connect.p99_ms {
        evidence.push(ev(
            "tcp.connect_latency_p99",
            p99,
            "ms",
            None,
            "SYN_SENT->ESTABLISHED histogram",
        ));
    }
    if let Some(c) = &w.conntrack {
        let src = "nf_conntrack_count/max, /proc/net/stat/nf_conntrack";
        evidence.push(ev(
            "conntrack.fill",
            c.peak_fill,
            "fraction",
            Some(">= 0.90"),
            src,
        ));
        evidence.push(ev("conntrack.max", c.max as f64, "entries", None, src));
        for (metric, v) in [
            ("conntrack.insert_failed", c.insert_failed),
            ("conntrack.drop", c.drop),
            ("conntrack.early_drop", c.early_drop),
        ] {
            evidence.push(ev(metric, v as f64, "count", None, src));
        }
        evidence.push(ev(
            "conntrack.failures",
            c.failures() as f64,
            "count",
            Some(">= 1% of opens and >= 5"),
            src,
        ));
    }
    if let Some(e) = w.ephemeral_peak {
        evidence.push(ev(
            "tcp.ephemeral_ports_in_use_peak",
            e,
            "fraction",
            None,
            "net.ipv4.ip_local_port_range vs local ports of TCP sockets",
        ));
    }
    if let Some(t) = w.time_wait_peak {
        evidence.push(ev(
            "tcp.time_wait_peak",
            t as f64,
            "sockets",
            None,
            "/proc/net/sockstat TCP tw",
        ));
    }
    let ct_strength = w.conntrack.as_ref().map_or(0.0, |c| {
        if ct_fired {
            c.failures() as f64 / w.opens.max(1) as f64 / SETUP_FAILURE_RATIO / 20.0
        } else {
            0.0
        }
    });
    Candidate {
        kind: VerdictKind::ConnectionSetup,
        fired,
        strength: (ratio / SETUP_FAILURE_RATIO / 20.0).max(ct_strength),
        summary: format!(
            "Connection-setup-bound: {text}; connect p99 {} while host CPU is {} busy.",
            w.connect
                .p99_ms
                .map_or("n/a".into(), |v| format!("{v:.1} ms")),
            w.host_busy.map_or("not measured".into(), pct)
        ),
        evidence,
        counter: format!(
            "{text}: below 1% of opens or fewer than 5 (conntrack: table below 90% full or fewer failures)"
        ),
    }
}
