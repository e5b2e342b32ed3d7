//! The human summary printed after `run`, `record` and `analyze`: the verdict sentence first
//! (verdict.rs), then connections, CPU, processes, load, network and overhead, in aligned
//! tables (table.rs) with scaled units (units.rs).
use std::fmt::Write;

use self::{
    table::{Align, Table, items_wrapped, list, wrap},
    units::{bound_ms, bound_us, bytes_per_s, cores, count, duration, duration_ms, num, percent},
};
use crate::analysis::{Analysis, HopKind, LatencySummary};

mod table;
pub(crate) mod units;
pub(crate) mod verdict;

#[cfg(test)]
mod tests;

/// Width prose is wrapped at.
const COLUMNS: usize = 100;

pub fn render(a: &Analysis) -> String {
    let mut s = String::new();
    verdict::render(&mut s, a);
    render_pools(&mut s, a);
    render_send_limits(&mut s, a);
    render_packets(&mut s, a);
    connections(&mut s, a);
    cpu(&mut s, a);
    processes(&mut s, a);
    load(&mut s, a);
    marks(&mut s, a);
    phases(&mut s, a);
    network(&mut s, a);
    overhead(&mut s, a);
    if !a.limitations.is_empty() {
        let _ = writeln!(s, "limitations:");
        for l in &a.limitations {
            s.push_str(&wrap(l, COLUMNS, "  - ", "    "));
        }
    }
    s
}

/// Phase marks (`chokepoint mark`), at their time since the recording started.
fn marks(s: &mut String, a: &Analysis) {
    if a.marks.is_empty() {
        return;
    }
    let _ = writeln!(s, "marks:");
    for m in &a.marks {
        s.push_str(&wrap(
            &format!("{:>7.1}s  {}", m.at_seconds, m.text),
            COLUMNS,
            "  ",
            "            ",
        ));
    }
}

/// The recording split at its marks, each phase with its own verdict.
fn phases(s: &mut String, a: &Analysis) {
    if a.phases.is_empty() {
        return;
    }
    let _ = writeln!(s, "phases (split at the marks, each analysed alone):");
    use Align::{Left as L, Right as R};
    let mut t = Table::new(2, &[L, R, R, L, R, R, R]).header(&[
        "phase",
        "from",
        "to",
        "verdict",
        "conf",
        "host busy",
        "conns/s",
    ]);
    for p in &a.phases {
        t.row(vec![
            p.label.clone(),
            format!("{:.1}s", p.start_s),
            format!("{:.1}s", p.end_s),
            p.verdict.as_str().to_string(),
            format!("{:.0}%", p.confidence * 100.0),
            percent(p.host_busy),
            num(p.connections_per_s),
        ]);
    }
    s.push_str(&t.render());
}

/// A log2-bucketed latency: its quantiles as the bucket bounds they are.
fn latency(l: &LatencySummary, what: &str) -> String {
    if l.samples == 0 {
        return "no samples".into();
    }
    format!(
        "p50 {}, p99 {}, max {} ({} {what} timed, log2 buckets)",
        bound_ms(l.p50_ms),
        bound_ms(l.p99_ms),
        bound_ms(l.max_ms),
        count(l.samples)
    )
}

/// "80 (45/s)".
fn with_rate(n: u64, per_s: f64) -> String {
    format!("{} ({}/s)", count(n), num(per_s))
}

fn connections(s: &mut String, a: &Analysis) {
    let t = &a.totals;
    let _ = writeln!(s, "connections:");
    let mut failed = format!("failed connects {}", count(t.connect_failed));
    if t.connect_addr_unavailable > 0 {
        let _ = write!(
            failed,
            " ({} for want of a local port: EADDRNOTAVAIL)",
            count(t.connect_addr_unavailable)
        );
    }
    let opens = [
        format!(
            "active opens {}",
            with_rate(t.tcp_active_opens, t.tcp_active_opens_per_s)
        ),
        format!(
            "passive opens {}",
            with_rate(t.tcp_passive_opens, t.tcp_passive_opens_per_s)
        ),
        failed,
        format!("closes {}", count(t.closes)),
    ];
    s.push_str(&items_wrapped(&opens, COLUMNS, "  ", "    "));
    let trouble = [
        format!("SYN retransmits {}", count(t.syn_retransmits)),
        format!("SYN-ACK retransmits {}", count(t.synack_retransmits)),
        format!(
            "resets sent {} / received {}",
            count(t.resets_sent),
            count(t.resets_received)
        ),
        format!("listen overflows {}", count(t.listen_overflows)),
        format!("listen drops {}", count(t.listen_drops)),
        format!("TIME_WAIT at most {}", count(t.time_wait_max)),
    ];
    s.push_str(&items_wrapped(&trouble, COLUMNS, "  ", "    "));
    let mut lat = Table::new(2, &[Align::Left, Align::Left]);
    lat.row(vec![
        "connect latency".into(),
        latency(&t.connect_latency, "connects"),
    ]);
    lat.row(vec![
        "handshake latency".into(),
        latency(&t.handshake_latency, "handshakes"),
    ]);
    s.push_str(&lat.render());
    if !t.drops_by_reason.is_empty() {
        let mut d: Vec<_> = t.drops_by_reason.iter().collect();
        d.sort_by(|a, b| b.1.cmp(a.1));
        let d: Vec<String> = d
            .iter()
            .take(6)
            .map(|(k, v)| format!("{k} {}", count(**v)))
            .collect();
        s.push_str(&list("packet drops by reason:", &d, COLUMNS, 2));
    }
    for (device, reasons) in t.drops_by_device.iter().take(8) {
        let mut r: Vec<_> = reasons.iter().collect();
        r.sort_by(|a, b| b.1.cmp(a.1));
        let r: Vec<String> = r
            .iter()
            .take(4)
            .map(|(k, v)| format!("{k} {}", count(**v)))
            .collect();
        let device = if device == "-" { "no device" } else { device };
        s.push_str(&list(&format!("drops on {device}:"), &r, COLUMNS, 2));
    }
    for (port, [q, limit]) in &t.accept_queue_max {
        let _ = writeln!(
            s,
            "  accept queue of port {port} peaked at {} of {}",
            count(*q),
            count(*limit)
        );
    }
}

fn cpu(s: &mut String, a: &Analysis) {
    let h = &a.host;
    let _ = writeln!(
        s,
        "cpu: host {} busy on {} CPUs (softirq {}, iowait {}, steal {})",
        percent(h.busy_fraction),
        h.cpus,
        percent(h.softirq_fraction),
        percent(h.iowait_fraction),
        percent(h.steal_fraction)
    );
    if let Some(p) = &h.pressure {
        let stalled = [
            format!("cpu some {}", percent(p.cpu_some)),
            format!("io some {} full {}", percent(p.io_some), percent(p.io_full)),
            format!(
                "memory some {} full {}",
                percent(p.memory_some),
                percent(p.memory_full)
            ),
        ];
        s.push_str(&list(
            "pressure (PSI, share of the time stalled):",
            &stalled,
            COLUMNS,
            2,
        ));
    }
}

fn processes(s: &mut String, a: &Analysis) {
    if a.processes.is_empty() {
        return;
    }
    use Align::{Left as L, Right as R};
    let mut t = Table::new(2, &[R, L, L, R, R, R, R, R, R, R, R]).header(&[
        "pid",
        "comm",
        "role",
        "on CPU",
        "cores",
        "hot thread",
        "threads",
        "run queue p50",
        "p99",
        "asleep",
        "in I/O",
    ]);
    for p in a.processes.iter().take(10) {
        t.row(vec![
            p.pid.to_string(),
            p.comm.clone(),
            serde_json::to_value(p.role)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            duration(p.cpu_seconds),
            cores(p.cores_used),
            percent(p.max_thread_share),
            p.threads_seen.to_string(),
            bound_us(p.runqueue_us.p50_us),
            bound_us(p.runqueue_us.p99_us),
            duration(p.offcpu_seconds.sleep),
            duration(p.offcpu_seconds.io),
        ]);
    }
    s.push_str(&t.render());
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
            .map(|w| {
                format!(
                    "{} [{}] {} times ({})",
                    w.comm,
                    w.pid,
                    count(w.wakes),
                    w.relation
                )
            })
            .collect();
        s.push_str(&list(
            &format!("{} [{}] woken by:", p.comm, p.pid),
            &by,
            COLUMNS,
            2,
        ));
    }
}

fn load(s: &mut String, a: &Analysis) {
    for l in &a.load {
        let what = if l.format.starts_with("pgbench") {
            "transactions"
        } else {
            "requests"
        };
        let rate = if l.duration_seconds > 0.0 {
            format!("{} {what}/s", num(l.throughput_per_s))
        } else {
            "no rate (no duration)".into()
        };
        let line = format!(
            "{} ({}): {} {what}, {} errors in {}: {rate}",
            l.format,
            l.source,
            count(l.requests),
            count(l.errors),
            duration(l.duration_seconds)
        );
        s.push_str(&wrap(&line, COLUMNS, "load: ", "      "));
    }
}

/// Paths (one line each), the conntrack table, and the busiest devices.
fn network(s: &mut String, a: &Analysis) {
    if a.paths.is_empty() && a.conntrack.is_none() && a.devices.is_empty() {
        return;
    }
    let _ = writeln!(s, "network:");
    for p in &a.paths {
        let first = format!("  path at {} connections/s: ", num(p.connections_per_s));
        s.push_str(&wrap(&p.text, COLUMNS, &first, "      "));
        for h in &p.hops {
            let mut figures = Vec::new();
            if let (Some(pk), Some(b)) = (h.packets_per_s, h.bytes_per_s) {
                figures.push(format!("{} packets/s, {}", num(pk), bytes_per_s(b)));
            }
            if let Some(d) = h.drops.filter(|d| *d > 0) {
                figures.push(format!("{} drops", count(d)));
            }
            match (h.cpu_share, h.kind) {
                (Some(c), HopKind::Proxy) => {
                    figures.push(format!("{} of host CPU", percent(c)));
                    if let Some(us) = h.cpu_us_per_request {
                        figures.push(format!("{} CPU per request", duration(us / 1e6)));
                    }
                }
                (Some(c), _) => figures.push(format!("~{} of host CPU in softirq", percent(c))),
                (None, _) => {}
            }
            if let Some(ms) = h.connect_ms {
                figures.push(format!("connect to it {}", duration_ms(ms)));
            }
            if let Some(d) = &h.detail {
                figures.push(d.clone());
            }
            if !figures.is_empty() {
                s.push_str(&list(&format!("{}:", h.name), &figures, COLUMNS, 4));
            }
        }
    }
    if let Some(c) = &a.conntrack {
        let _ = writeln!(
            s,
            "  conntrack: {} of {} entries at its fullest ({}), insert failed {}, drop {}, early drop {}",
            count(c.peak_count),
            count(c.max),
            percent(c.peak_fill),
            count(c.insert_failed),
            count(c.drop),
            count(c.early_drop)
        );
    }
    if a.devices.is_empty() {
        return;
    }
    use Align::{Left as L, Right as R};
    let mut t = Table::new(2, &[L, L, R, R, R, R, R, L]).header(&[
        "device",
        "kind",
        "rx packets/s",
        "rx",
        "tx packets/s",
        "tx",
        "drops",
        "namespace",
    ]);
    for d in a.devices.iter().take(6) {
        t.row(vec![
            d.name.clone(),
            d.kind.clone(),
            num(d.rx_packets_per_s),
            bytes_per_s(d.rx_bytes_per_s),
            num(d.tx_packets_per_s),
            bytes_per_s(d.tx_bytes_per_s),
            count(d.rx_dropped + d.tx_dropped + d.qdisc_drops),
            d.netns.clone(),
        ]);
    }
    s.push_str(&t.render());
}

fn overhead(s: &mut String, a: &Analysis) {
    let o = &a.overhead;
    let per_event = o
        .bpf_ns_per_event
        .map_or("-".into(), |ns| duration(ns / 1e9));
    let mut line = format!(
        "{} in kernel programs ({} events, {per_event} per event), {} in chokepoint itself: {} of the host; {} events lost",
        duration(o.bpf_cpu_seconds),
        count(o.events),
        duration(o.user_cpu_seconds),
        percent(o.cpu_share_of_host),
        count(o.lost_events)
    );
    // Sampled statistics: the programs' time is an estimate, and says from what.
    if let Some(e) = o.estimate.as_ref().filter(|e| e.windows > 0) {
        line.push_str(&format!(
            "; the programs' time is estimated: every run counted, priced at the ns per run of {} sampled statistics window{} ({} measured directly){}",
            e.windows,
            if e.windows == 1 { "" } else { "s" },
            percent(e.measured_share),
            e.relative_error
                .map_or(String::new(), |r| format!(", within about ±{}", percent(r)))
        ));
    }
    s.push_str(&wrap(&line, COLUMNS, "overhead: ", "  "));
}

/// The per-packet programs' counts (`--packet-probes`), busiest devices first.
fn render_packets(s: &mut String, a: &Analysis) {
    if a.packets.is_empty() {
        return;
    }
    let _ = writeln!(s, "packets (per-packet programs):");
    use Align::{Left as L, Right as R};
    let mut t =
        Table::new(2, &[L, R, R, R]).header(&["device", "sent/s", "received/s", "to backlog/s"]);
    for p in a.packets.iter().take(8) {
        t.row(vec![
            p.name.clone(),
            num(p.xmit_packets_per_s),
            num(p.receive_packets_per_s),
            num(p.backlog_packets_per_s),
        ]);
    }
    s.push_str(&t.render());
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
    let _ = writeln!(s, "sends held back:");
    use Align::{Left as L, Right as R};
    let mut t = Table::new(2, &[L, R, R, R, R, R, R]).header(&[
        "process",
        "port",
        "sockets",
        "full buffers",
        "data to send",
        "held by peer window",
        "by send buffer",
    ]);
    for l in held {
        t.row(vec![
            l.owner.clone().unwrap_or_else(|| "?".into()),
            l.port.to_string(),
            count(l.sockets_peak),
            count(l.full_send_buffers_peak),
            duration(l.busy_seconds),
            duration(l.rwnd_limited_seconds),
            duration(l.sndbuf_limited_seconds),
        ]);
    }
    s.push_str(&t.render());
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
    let _ = writeln!(s, "pools:");
    use Align::{Left as L, Right as R};
    let mut t = Table::new(2, &[L, L, L, R, R, R, R, R, R]).header(&[
        "process",
        "upstream",
        "endpoint",
        "size",
        "in use",
        "used",
        "queued",
        "wait",
        "requests/s",
    ]);
    let churned = busy.iter().any(|p| p.churned);
    let multiplexed = busy.iter().any(|p| p.multiplexed);
    for p in busy {
        t.row(vec![
            p.process.clone(),
            p.upstream.clone(),
            p.endpoint.clone(),
            if p.churned {
                format!("{:.1}*", p.ceiling)
            } else {
                format!("{:.1}", p.size)
            },
            format!("{:.2}", p.in_use),
            percent(p.utilisation),
            if p.multiplexed {
                format!("{:.1}+", p.queued)
            } else {
                format!("{:.1}", p.queued)
            },
            duration_ms(p.wait_ms_estimate),
            num(p.requests_per_s),
        ]);
    }
    s.push_str(&t.render());
    if churned {
        s.push_str(
            "  * a new connection per request: the ceiling of requests in flight, not sockets\n",
        );
    }
    if multiplexed {
        s.push_str(
            "  + fewer turns than the holder's requests (HTTP/2, gRPC, pipelining): requests share connections, so this is no queue\n",
        );
    }
}
