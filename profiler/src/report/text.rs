//! The human summary printed after `run`, `record` and `analyze`.
use std::fmt::Write;

use crate::analysis::{Analysis, LatencySummary};

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| {
        if v < 1.0 {
            format!("{:.0}µs", v * 1000.0)
        } else {
            format!("{v:.1}ms")
        }
    })
}

fn latency(l: &LatencySummary) -> String {
    if l.samples == 0 {
        return "no samples".into();
    }
    format!(
        "p50 {} p99 {} max {} ({} samples, log2 buckets)",
        ms(l.p50_ms),
        ms(l.p99_ms),
        ms(l.max_ms),
        l.samples
    )
}

pub fn render(a: &Analysis) -> String {
    let mut s = String::new();
    let v = &a.verdict;
    let _ = writeln!(s, "\n== chokepoint: {:.1}s recorded ==", a.duration_seconds);
    let _ = writeln!(
        s,
        "verdict: {} ({:?}, confidence {:.2})",
        v.kind.as_str(),
        v.family,
        v.confidence
    );
    let _ = writeln!(s, "  {}", v.summary);
    let _ = writeln!(
        s,
        "  window: {} intervals, {} ({})",
        a.window.intervals, a.window.source, a.window.reason
    );
    if !v.evidence.is_empty() {
        let _ = writeln!(s, "evidence:");
        for e in &v.evidence {
            let _ = writeln!(
                s,
                "  {:<40} {:>12.3} {:<9} {:<28} {}",
                e.metric,
                e.value,
                e.unit,
                e.threshold.as_deref().unwrap_or(""),
                e.source
            );
        }
    }
    if !v.ruled_out.is_empty() {
        let _ = writeln!(s, "ruled out:");
        for r in &v.ruled_out {
            let _ = writeln!(s, "  {:<24} {}", r.kind.as_str(), r.reason);
        }
    }
    if !v.secondary.is_empty() {
        let names: Vec<_> = v.secondary.iter().map(|k| k.as_str()).collect();
        let _ = writeln!(s, "also contributing: {}", names.join(", "));
    }
    for m in &v.missing {
        let _ = writeln!(s, "missing: {m}");
    }

    render_pools(&mut s, a);
    render_send_limits(&mut s, a);
    render_packets(&mut s, a);

    let t = &a.totals;
    let _ = writeln!(s, "connections:");
    let _ = writeln!(
        s,
        "  active opens {} ({:.0}/s), passive opens {} ({:.0}/s), failed connects {} ({} for want of a local port: EADDRNOTAVAIL), closes {}",
        t.tcp_active_opens,
        t.tcp_active_opens_per_s,
        t.tcp_passive_opens,
        t.tcp_passive_opens_per_s,
        t.connect_failed,
        t.connect_addr_unavailable,
        t.closes
    );
    let _ = writeln!(
        s,
        "  SYN retransmits {}, SYN-ACK retransmits {}, resets sent {} / received {}, listen overflows {} drops {}, TIME_WAIT max {}",
        t.syn_retransmits,
        t.synack_retransmits,
        t.resets_sent,
        t.resets_received,
        t.listen_overflows,
        t.listen_drops,
        t.time_wait_max
    );
    let _ = writeln!(s, "  connect latency   {}", latency(&t.connect_latency));
    let _ = writeln!(s, "  handshake latency {}", latency(&t.handshake_latency));
    if !t.drops_by_reason.is_empty() {
        let mut d: Vec<_> = t.drops_by_reason.iter().collect();
        d.sort_by(|a, b| b.1.cmp(a.1));
        let d: Vec<String> = d.iter().take(6).map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "  packet drops by reason: {}", d.join(", "));
    }
    for (device, reasons) in t.drops_by_device.iter().take(8) {
        let mut r: Vec<_> = reasons.iter().collect();
        r.sort_by(|a, b| b.1.cmp(a.1));
        let r: Vec<String> = r.iter().take(4).map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "  drops on {device}: {}", r.join(", "));
    }
    for (port, [q, limit]) in &t.accept_queue_max {
        let _ = writeln!(s, "  accept queue :{port} peaked at {q} of {limit}");
    }

    let _ = writeln!(
        s,
        "cpu: host {:.0}% busy on {} CPUs (softirq {:.1}%, iowait {:.1}%, steal {:.1}%)",
        a.host.busy_fraction * 100.0,
        a.host.cpus,
        a.host.softirq_fraction * 100.0,
        a.host.iowait_fraction * 100.0,
        a.host.steal_fraction * 100.0
    );
    if let Some(p) = &a.host.pressure {
        let _ = writeln!(
            s,
            "  pressure (PSI, share of the time stalled): cpu some {:.1}%, io some {:.1}% full {:.1}%, memory some {:.1}% full {:.1}%",
            p.cpu_some * 100.0,
            p.io_some * 100.0,
            p.io_full * 100.0,
            p.memory_some * 100.0,
            p.memory_full * 100.0
        );
    }
    let _ = writeln!(
        s,
        "  {:>7} {:<16} {:<15} {:>8} {:>6} {:>8} {:>7} {:>10} {:>10} {:>8} {:>8}",
        "pid",
        "comm",
        "role",
        "cpu s",
        "cores",
        "hot thr",
        "threads",
        "runq p50",
        "runq p99",
        "sleep s",
        "io s"
    );
    for p in a.processes.iter().take(10) {
        let us = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}µs"));
        let _ = writeln!(
            s,
            "  {:>7} {:<16} {:<15} {:>8.2} {:>6.2} {:>7.0}% {:>7} {:>10} {:>10} {:>8.2} {:>8.2}",
            p.pid,
            p.comm,
            serde_json::to_value(p.role)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            p.cpu_seconds,
            p.cores_used,
            p.max_thread_share * 100.0,
            p.threads_seen,
            us(p.runqueue_us.p50_us),
            us(p.runqueue_us.p99_us),
            p.offcpu_seconds.sleep,
            p.offcpu_seconds.io
        );
    }
    for p in a
        .processes
        .iter()
        .filter(|p| !p.woken_by.is_empty())
        .take(4)
    {
        let by: Vec<String> = p
            .woken_by
            .iter()
            .take(3)
            .map(|w| format!("{} [{}] {} ({})", w.comm, w.pid, w.wakes, w.relation))
            .collect();
        let _ = writeln!(s, "  {} [{}] woken by: {}", p.comm, p.pid, by.join(", "));
    }
    for l in &a.load {
        let _ = writeln!(
            s,
            "load: {} ({}): {} requests, {} errors, {:.1}s, {:.0}/s",
            l.format, l.source, l.requests, l.errors, l.duration_seconds, l.throughput_per_s
        );
    }
    network(&mut s, a);
    let o = &a.overhead;
    let _ = writeln!(
        s,
        "overhead: {:.3}s in kernel programs ({} events, {} per event), {:.3}s in chokepoint itself: {:.2}% of the host; {} events lost",
        o.bpf_cpu_seconds,
        o.events,
        o.bpf_ns_per_event
            .map_or("-".into(), |v| format!("{v:.0}ns")),
        o.user_cpu_seconds,
        o.cpu_share_of_host * 100.0,
        o.lost_events
    );
    if !a.limitations.is_empty() {
        let _ = writeln!(s, "limitations:");
        for l in &a.limitations {
            let _ = writeln!(s, "  - {l}");
        }
    }
    s
}

/// Paths (one line each), the conntrack table, and the busiest devices.
fn network(s: &mut String, a: &Analysis) {
    if a.paths.is_empty() && a.conntrack.is_none() && a.devices.is_empty() {
        return;
    }
    let _ = writeln!(s, "network:");
    for p in &a.paths {
        let _ = writeln!(s, "  path {:.0} conn/s: {}", p.connections_per_s, p.text);
        for h in &p.hops {
            let mut figures = Vec::new();
            if let (Some(pk), Some(b)) = (h.packets_per_s, h.bytes_per_s) {
                figures.push(format!("{pk:.0} pkt/s, {:.1} MB/s", b / 1e6));
            }
            if let Some(d) = h.drops.filter(|d| *d > 0) {
                figures.push(format!("{d} drops"));
            }
            match (h.cpu_share, h.kind) {
                (Some(c), crate::analysis::HopKind::Proxy) => {
                    figures.push(format!("{:.1}% of host CPU", c * 100.0));
                    if let Some(us) = h.cpu_us_per_request {
                        figures.push(format!("{us:.0} µs CPU per request"));
                    }
                }
                (Some(c), _) => figures.push(format!("~{:.1}% of host CPU in softirq", c * 100.0)),
                (None, _) => {}
            }
            if let Some(ms) = h.connect_ms {
                figures.push(format!("connect to it {ms:.3} ms"));
            }
            if let Some(d) = &h.detail {
                figures.push(d.clone());
            }
            if !figures.is_empty() {
                let _ = writeln!(s, "    {}: {}", h.name, figures.join(", "));
            }
        }
    }
    if let Some(c) = &a.conntrack {
        let _ = writeln!(
            s,
            "  conntrack: {}/{} at its fullest ({:.0}%), insert failed {}, drop {}, early drop {}",
            c.peak_count,
            c.max,
            c.peak_fill * 100.0,
            c.insert_failed,
            c.drop,
            c.early_drop
        );
    }
    for d in a.devices.iter().take(6) {
        let _ = writeln!(
            s,
            "  {:<16} {:<9} rx {:.0} pkt/s {:.1} MB/s, tx {:.0} pkt/s {:.1} MB/s, drops {} ({})",
            d.name,
            d.kind,
            d.rx_packets_per_s,
            d.rx_bytes_per_s / 1e6,
            d.tx_packets_per_s,
            d.tx_bytes_per_s / 1e6,
            d.rx_dropped + d.tx_dropped + d.qdisc_drops,
            d.netns
        );
    }
}

/// The per-packet programs' counts (`--packet-probes`), busiest devices first.
fn render_packets(s: &mut String, a: &Analysis) {
    if a.packets.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "packets (per-packet programs): {:<16} {:>10} {:>10} {:>12}",
        "device", "xmit/s", "receive/s", "backlog/s"
    );
    for p in a.packets.iter().take(8) {
        let _ = writeln!(
            s,
            "                               {:<16} {:>10.0} {:>10.0} {:>12.0}",
            p.name, p.xmit_packets_per_s, p.receive_packets_per_s, p.backlog_packets_per_s
        );
    }
}

/// Served ports whose sockets were held back sending for a tenth of their busy time or more.
fn render_send_limits(s: &mut String, a: &Analysis) {
    let held: Vec<_> = a
        .send_limits
        .iter()
        .filter(|l| l.limited_share >= 0.1 && l.busy_seconds >= 0.1)
        .take(8)
        .collect();
    if held.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "sends held back: {:<16} {:>6} {:>8} {:>8} {:>10} {:>12} {:>7}",
        "process", "port", "sockets", "full", "busy s", "by window s", "by sndbuf s"
    );
    for l in held {
        let _ = writeln!(
            s,
            "                 {:<16} {:>6} {:>8} {:>8} {:>10.1} {:>12.1} {:>7.1}",
            l.owner.as_deref().unwrap_or("?"),
            l.port,
            l.sockets_peak,
            l.full_send_buffers_peak,
            l.busy_seconds,
            l.rwnd_limited_seconds,
            l.sndbuf_limited_seconds
        );
    }
}

/// Connection pools carrying requests in the window, most queued first.
fn render_pools(s: &mut String, a: &Analysis) {
    let busy: Vec<_> = a
        .pools
        .iter()
        .filter(|p| p.in_use >= 0.05 || p.queued > 0.0)
        .take(8)
        .collect();
    if busy.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "pools: {:<16} {:<16} {:<22} {:>6} {:>7} {:>6} {:>7} {:>9} {:>9}",
        "process", "upstream", "endpoint", "size", "in use", "util", "queued", "wait ms", "req/s"
    );
    for p in busy {
        let _ = writeln!(
            s,
            "       {:<16} {:<16} {:<22} {:>6.1} {:>7.2} {:>5.0}% {:>7.1} {:>9.1} {:>9.0}",
            p.process,
            p.upstream,
            p.endpoint,
            p.size,
            p.in_use,
            p.utilisation * 100.0,
            p.queued,
            p.wait_ms_estimate,
            p.requests_per_s
        );
    }
}
