//! The network candidates: a shaper on the load's path at its rate, or served sockets held
//! back by their receivers while the server blocks in socket writes (delivery).
use crate::analysis::verdict::*;

/// (namespace, device) pairs the load's paths cross: device hops, and every device of a
/// namespace hop's namespace. Empty when no path is known.
pub(in crate::analysis::verdict) fn on_paths(r: &Recording) -> Vec<(String, Option<String>)> {
    let secs = crate::analysis::window::recording_seconds(r);
    let all: Vec<&Interval> = r.intervals.iter().collect();
    let processes = summary::processes(&all, 0.01);
    let devices = crate::analysis::paths::devices(r, secs);
    crate::analysis::paths::paths(r, secs, &devices, &processes)
        .iter()
        .flat_map(|p| &p.hops)
        .filter_map(|h| {
            let netns = h.netns.clone()?;
            Some(match h.kind {
                // Entered by a known device: that device; else any of the namespace's.
                crate::analysis::paths::HopKind::Netns => (netns, h.device.clone()),
                _ => (netns, Some(h.name.clone())),
            })
        })
        .collect()
}

/// Network-bound: a shaper on the load's path at its rate, or else served sockets whose sends
/// the peers hold back while the server's threads wait in socket writes (delivery).
pub(in crate::analysis::verdict) fn network_bandwidth(
    w: &WindowFigures,
    on_paths: &[(String, Option<String>)],
) -> Candidate {
    let shaper = shaper_bandwidth(w, on_paths);
    if shaper.fired {
        return shaper;
    }
    let delivery = send_limited(w);
    if delivery.fired {
        return delivery;
    }
    Candidate {
        counter: format!("{}; {}", shaper.counter, delivery.counter),
        evidence: shaper
            .evidence
            .into_iter()
            .chain(delivery.evidence)
            .collect(),
        ..shaper
    }
}

/// The served port whose sockets were held back the most, with its owner's blocked-send time.
pub(in crate::analysis::verdict) fn send_limited(w: &WindowFigures) -> Candidate {
    let secs = w.seconds.max(1e-9);
    let held = |f: &&summary::SendLimitSummary| f.rwnd_limited_seconds + f.sndbuf_limited_seconds;
    let Some(f) = w
        .send_limits
        .iter()
        .max_by(|a, b| held(a).total_cmp(&held(b)))
        .filter(|f| f.busy_seconds > 0.0)
    else {
        return Candidate {
            kind: VerdictKind::NetworkBandwidth,
            fired: false,
            strength: 0.0,
            summary: String::new(),
            evidence: Vec::new(),
            counter: "no served socket had data waiting to be sent (tcp_info busy time 0)".into(),
        };
    };
    let owner = f.owner.clone().unwrap_or_else(|| "?".into());
    // The owner's threads blocked in write/send calls, per second of the window.
    let blocked = w
        .processes
        .iter()
        .filter(|p| Some(&p.comm) == f.owner.as_ref())
        .filter_map(|p| p.offcpu_seconds.by_reason.get("write"))
        // Not `sum`: an empty sum of floats is -0.0, printed "-0.00".
        .fold(0.0, |a, b| a + b)
        / secs;
    let share = f.limited_share;
    let busy = w.host_busy.unwrap_or(0.0);
    // Some socket is held back through the window: a full send buffer seen in a sample
    // (sock_diag once an interval, so it can be missed), or the kernel's own limited-time
    // counters adding up to one socket held back at least half the window.
    let held_per_s = held(&f) / secs;
    let held_back = f.full_send_buffers_peak > 0 || held_per_s >= SEND_HELD_SOCKETS;
    let fired = share >= SEND_LIMITED_SHARE
        && held_back
        && blocked >= SEND_BLOCKED_PER_S
        && busy < CPU_SATURATED_BUSY;
    let src = "tcp_info over sock_diag (served sockets)";
    let key = |m: &str| format!("send_limits.{}.{m}", f.port);
    let evidence = vec![
        ev(
            &key("limited_share"),
            share,
            "fraction",
            Some(">= 0.50 of busy time"),
            src,
        ),
        ev(
            &key("rwnd_limited_s"),
            f.rwnd_limited_seconds,
            "s",
            None,
            src,
        ),
        ev(
            &key("sndbuf_limited_s"),
            f.sndbuf_limited_seconds,
            "s",
            None,
            src,
        ),
        ev(&key("busy_s"), f.busy_seconds, "s", None, src),
        ev(
            &key("full_send_buffers_peak"),
            f.full_send_buffers_peak as f64,
            "sockets",
            Some(">= 1, or held back >= 0.50 s/s"),
            "sock_diag SKMEMINFO (queued >= 90% of sndbuf)",
        ),
        ev(
            &key("held_back_per_s"),
            held_per_s,
            "s/s",
            Some(">= 0.50, or a full send buffer"),
            src,
        ),
        ev(
            &key("sockets_peak"),
            f.sockets_peak as f64,
            "sockets",
            None,
            src,
        ),
        ev(
            &format!("process.{owner}.offcpu_write_per_s"),
            blocked,
            "s/s",
            Some(">= 0.50"),
            "sched_switch (blocked system call)",
        ),
    ];
    let text = format!(
        "{owner}'s sockets on port {} were held back {} of the {:.1} s they had data to send ({:.1} s by the peers' receive windows, {:.1} s by their send buffers: {held_per_s:.2} s/s), up to {} of {} had full send buffers, and its threads waited {blocked:.2} s/s blocked in socket writes",
        f.port,
        pct(share),
        f.busy_seconds,
        f.rwnd_limited_seconds,
        f.sndbuf_limited_seconds,
        f.full_send_buffers_peak,
        f.sockets_peak,
    );
    Candidate {
        kind: VerdictKind::NetworkBandwidth,
        fired,
        strength: ((share - SEND_LIMITED_SHARE) / (1.0 - SEND_LIMITED_SHARE)).clamp(0.0, 1.0),
        summary: format!(
            "Network-bound (delivery): {text}, while host CPU is {} busy: the receivers take data slower than it is sent, and a sender that blocks on one full buffer stalls everyone behind it.",
            w.host_busy.map_or("not measured".into(), pct)
        ),
        evidence,
        counter: format!(
            "{text}: needs >= 50% held back, a full send buffer (or >= 0.50 s/s held back) and >= 0.50 s/s blocked in writes with the CPUs below 90%"
        ),
    }
}

pub(in crate::analysis::verdict) fn shaper_bandwidth(
    w: &WindowFigures,
    on_paths: &[(String, Option<String>)],
) -> Candidate {
    let secs = w.seconds.max(1e-9);
    // With the load's paths known, only shapers on them count: another device's shaper
    // carrying other traffic at its rate does not hold this load back.
    let on_path = |s: &ShaperFigures| {
        on_paths.is_empty()
            || on_paths
                .iter()
                .any(|(ns, dev)| *ns == s.netns && dev.as_ref().is_none_or(|d| *d == s.device))
    };
    let used = |s: &ShaperFigures| s.bytes as f64 / secs / s.rate as f64;
    // Queueing: packets waited for tokens, were dropped, or sat in the queue.
    let queued = |s: &ShaperFigures| s.drops > 0 || s.overlimits > 0 || s.peak_backlog_packets > 0;
    let busiest = |only_on_path: bool| {
        w.shapers
            .iter()
            .filter(|s| !only_on_path || on_path(s))
            .max_by(|a, b| used(a).total_cmp(&used(b)))
    };
    let best = busiest(true).or_else(|| busiest(false));
    let Some(s) = best else {
        return Candidate {
            kind: VerdictKind::NetworkBandwidth,
            fired: false,
            strength: 0.0,
            summary: String::new(),
            evidence: Vec::new(),
            counter: "no rate-limiting qdisc (tbf, htb) on the devices in use".into(),
        };
    };
    let u = used(s);
    let fired = u >= BANDWIDTH_USED && queued(s) && on_path(s);
    let name = format!("{} {} {}", s.netns, s.device, s.kind);
    let src = "rtnetlink qdisc statistics";
    let evidence = vec![
        ev(
            &format!("qdisc.{}.{}.bytes_per_s", s.device, s.handle),
            s.bytes as f64 / secs,
            "B/s",
            None,
            src,
        ),
        ev(
            &format!("qdisc.{}.{}.rate", s.device, s.handle),
            s.rate as f64,
            "B/s",
            None,
            "qdisc options (tbf rate, htb ceil)",
        ),
        ev(
            &format!("qdisc.{}.{}.used", s.device, s.handle),
            u,
            "fraction",
            Some(">= 0.90 with drops, overlimits or backlog"),
            src,
        ),
        ev(
            &format!("qdisc.{}.{}.drops", s.device, s.handle),
            s.drops as f64,
            "count",
            None,
            src,
        ),
        ev(
            &format!("qdisc.{}.{}.overlimits", s.device, s.handle),
            s.overlimits as f64,
            "count",
            None,
            src,
        ),
        ev(
            &format!("qdisc.{}.{}.backlog_packets_peak", s.device, s.handle),
            s.peak_backlog_packets as f64,
            "packets",
            None,
            src,
        ),
    ];
    let text = format!(
        "{name} ({}) carries {:.0} KB/s of its {:.0} KB/s rate ({}), {} drops, {} overlimits, up to {} packets queued",
        s.handle,
        s.bytes as f64 / secs / 1e3,
        s.rate as f64 / 1e3,
        pct(u),
        s.drops,
        s.overlimits,
        s.peak_backlog_packets
    );
    Candidate {
        kind: VerdictKind::NetworkBandwidth,
        fired,
        strength: ((u - BANDWIDTH_USED) / (1.0 - BANDWIDTH_USED)).clamp(0.0, 1.0),
        summary: format!(
            "Network-bandwidth-bound: {text}, while host CPU is {} busy.",
            w.host_busy.map_or("not measured".into(), pct)
        ),
        evidence,
        counter: if on_path(s) {
            format!("{text}: below 90% of its rate or no queueing")
        } else {
            format!("{text}, but no path of the load crosses it")
        },
    }
}
