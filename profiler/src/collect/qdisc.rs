//! Queueing disciplines (traffic shaping and queues) per device, with their configured rate where
//! the kind has one and their counters: an RTM_GETQDISC dump, plus RTM_GETTCLASS for HTB classes.
//! A shaper that is the bottleneck shows as `overlimits` and `drops` growing and a standing
//! backlog.

use std::collections::HashMap;
use std::path::Path;

use netlink_packet_core::{Nla, NlasIterator};
use netlink_packet_route::{
    RouteNetlinkMessage,
    tc::{TcAttribute, TcHandle, TcMessage, TcOption, TcStats2},
};
use netlink_sys::protocols::NETLINK_ROUTE;

use super::CollectError;
use super::net::{Exchange, in_netns, request};
use super::topology::dump_links;
use crate::recording::{Qdisc, QdiscInterval, QdiscStats, TrafficClass};

/// TC_H_ROOT: the parent of a root qdisc.
const TC_H_ROOT: u32 = 0xFFFF_FFFF;
/// TC_H_INGRESS: the parent of `ingress` and `clsact`.
const TC_H_INGRESS: u32 = 0xFFFF_FFF1;
/// TCA_STATS2 member carrying a 64-bit packet count (Linux 5.8+); TCA_STATS_BASIC's is 32-bit.
const TCA_STATS_PKT64: u16 = 8;
/// tbf options (include/uapi/linux/pkt_sched.h): struct tc_tbf_qopt, and the rate when ≥ 2^32 B/s.
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
/// htb class options: struct tc_htb_opt, and the rate / ceil when ≥ 2^32 B/s.
const TCA_HTB_PARMS: u16 = 1;
const TCA_HTB_RATE64: u16 = 6;
const TCA_HTB_CEIL64: u16 = 7;
/// struct tc_ratespec is 12 bytes: cell_log u8, linklayer u8, overhead u16, cell_align i16,
/// mpu u16, then `rate` u32 (bytes per second) at offset 8.
const RATESPEC_LEN: usize = 12;
const RATESPEC_RATE_OFFSET: usize = 8;

/// Per-qdisc change from `earlier` to `later` (both from `qdiscs()`, same namespace). Qdiscs are
/// matched by device index, handle, parent and kind; one absent from `earlier` is left out.
pub fn deltas(later: &[Qdisc], earlier: &[Qdisc]) -> Vec<QdiscInterval> {
    later
        .iter()
        .filter_map(|q| {
            let before = earlier.iter().find(|e| {
                e.ifindex == q.ifindex
                    && e.handle == q.handle
                    && e.parent == q.parent
                    && e.kind == q.kind
            })?;
            Some(QdiscInterval {
                ifindex: q.ifindex,
                device: q.device.clone(),
                kind: q.kind.clone(),
                handle: q.handle.clone(),
                parent: q.parent.clone(),
                rate_bytes_per_second: q.rate_bytes_per_second,
                delta: q.stats.delta_since(&before.stats),
            })
        })
        .collect()
}

/// Every qdisc of every device in the caller's network namespace, sorted by device index then
/// handle. Needs no privileges.
pub fn qdiscs() -> Result<Vec<Qdisc>, CollectError> {
    let names: HashMap<u32, String> = dump_links()?
        .into_iter()
        .map(|l| (l.index, l.name))
        .collect();
    let mut found = Vec::new();
    request(
        NETLINK_ROUTE,
        RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()),
        Exchange::Dump,
        "rtnetlink qdisc dump",
        |reply| {
            if let RouteNetlinkMessage::NewQueueDiscipline(message) = reply {
                found.push(qdisc_from_message(&message, &names));
            }
            Ok(())
        },
    )?;
    for qdisc in found.iter_mut().filter(|q| q.kind == "htb") {
        qdisc.classes = classes_of(qdisc.ifindex, &qdisc.handle)?;
    }
    found.sort_by(|a, b| (a.ifindex, &a.parent, &a.handle).cmp(&(b.ifindex, &b.parent, &b.handle)));
    Ok(found)
}

/// `qdiscs()` of the namespace at `netns_path`, read from a thread that enters it (needs
/// CAP_SYS_ADMIN).
pub fn qdiscs_in(netns_path: &Path) -> Result<Vec<Qdisc>, CollectError> {
    in_netns(netns_path, qdiscs)
}

pub(crate) fn qdisc_from_message(message: &TcMessage, names: &HashMap<u32, String>) -> Qdisc {
    let ifindex = u32::try_from(message.header.index).unwrap_or(0);
    let parts = TcParts::of(message);
    let rate = match parts.kind.as_str() {
        "tbf" => parts.options.as_deref().and_then(tbf_rate),
        _ => None,
    };
    Qdisc {
        ifindex,
        device: names.get(&ifindex).cloned().unwrap_or_default(),
        kind: parts.kind,
        handle: format_handle(handle_u32(message.header.handle)),
        parent: format_parent(handle_u32(message.header.parent)),
        rate_bytes_per_second: rate,
        stats: parts.stats,
        classes: Vec::new(),
    }
}

/// The classes of the qdisc with `handle` (`"1:"`) on device `ifindex`.
fn classes_of(ifindex: u32, handle: &str) -> Result<Vec<TrafficClass>, CollectError> {
    let index = i32::try_from(ifindex).map_err(|_| CollectError::NetlinkDecode {
        what: "rtnetlink class dump",
        reason: format!("interface index {ifindex} out of range"),
    })?;
    let mut classes = Vec::new();
    request(
        NETLINK_ROUTE,
        RouteNetlinkMessage::GetTrafficClass(TcMessage::with_index(index)),
        Exchange::Dump,
        "rtnetlink class dump",
        |reply| {
            if let RouteNetlinkMessage::NewTrafficClass(message) = reply {
                let classid = handle_u32(message.header.handle);
                // Classes of this qdisc share its major number.
                if format_handle(classid & 0xFFFF_0000) != handle {
                    return Ok(());
                }
                let parts = TcParts::of(&message);
                let (rate, ceil) = match parts.kind.as_str() {
                    "htb" => parts.options.as_deref().map(htb_rates).unwrap_or_default(),
                    _ => (None, None),
                };
                classes.push(TrafficClass {
                    classid: format_class(classid),
                    parent: format_parent(handle_u32(message.header.parent)),
                    kind: parts.kind,
                    rate_bytes_per_second: rate,
                    ceil_bytes_per_second: ceil,
                    stats: parts.stats,
                });
            }
            Ok(())
        },
    )?;
    classes.sort_by(|a, b| a.classid.cmp(&b.classid));
    Ok(classes)
}

/// The attributes of a qdisc or class reply that matter here.
struct TcParts {
    kind: String,
    /// The raw TCA_OPTIONS payload (nested attributes) for kinds the crate does not decode.
    options: Option<Vec<u8>>,
    stats: QdiscStats,
}

impl TcParts {
    fn of(message: &TcMessage) -> TcParts {
        let mut kind = String::new();
        let mut options = None;
        let mut stats2 = None;
        let mut stats1 = None;
        for attribute in &message.attributes {
            match attribute {
                TcAttribute::Kind(k) => kind = k.clone(),
                TcAttribute::Options(opts) => {
                    // Kinds the crate does not know (tbf, htb) come as one opaque TCA_OPTIONS.
                    if let [TcOption::Other(nla)] = opts.as_slice() {
                        let mut value = vec![0; nla.value_len()];
                        nla.emit_value(&mut value);
                        options = Some(value);
                    }
                }
                TcAttribute::Stats2(members) => stats2 = Some(stats_from_stats2(members)),
                TcAttribute::Stats(s) => {
                    stats1 = Some(QdiscStats {
                        bytes: s.bytes,
                        packets: u64::from(s.packets),
                        drops: u64::from(s.drops),
                        overlimits: u64::from(s.overlimits),
                        requeues: 0,
                        backlog_bytes: u64::from(s.backlog),
                        backlog_packets: u64::from(s.qlen),
                    })
                }
                _ => {}
            }
        }
        TcParts {
            kind,
            options,
            stats: stats2.or(stats1).unwrap_or_default(),
        }
    }
}

fn stats_from_stats2(members: &[TcStats2]) -> QdiscStats {
    let mut stats = QdiscStats::default();
    let mut packets64 = None;
    for member in members {
        match member {
            TcStats2::Basic(basic) => {
                stats.bytes = basic.bytes;
                stats.packets = u64::from(basic.packets);
            }
            TcStats2::Queue(queue) => {
                stats.drops = u64::from(queue.drops);
                stats.overlimits = u64::from(queue.overlimits);
                stats.requeues = u64::from(queue.requeues);
                stats.backlog_bytes = u64::from(queue.backlog);
                stats.backlog_packets = u64::from(queue.qlen);
            }
            TcStats2::Other(nla) if nla.kind() == TCA_STATS_PKT64 && nla.value_len() == 8 => {
                let mut value = [0u8; 8];
                nla.emit_value(&mut value);
                packets64 = Some(u64::from_ne_bytes(value));
            }
            _ => {}
        }
    }
    if let Some(packets) = packets64 {
        stats.packets = packets;
    }
    stats
}

/// tbf's configured rate in bytes per second from its TCA_OPTIONS payload.
pub(crate) fn tbf_rate(options: &[u8]) -> Option<u64> {
    let mut rate32 = None;
    let mut rate64 = None;
    for (kind, value) in nested(options) {
        match kind {
            TCA_TBF_PARMS => rate32 = ratespec_rate(value, 0),
            TCA_TBF_RATE64 => rate64 = u64_ne(value),
            _ => {}
        }
    }
    rate64.or(rate32)
}

/// htb class (rate, ceil) in bytes per second from its TCA_OPTIONS payload.
pub(crate) fn htb_rates(options: &[u8]) -> (Option<u64>, Option<u64>) {
    let (mut rate, mut ceil, mut rate64, mut ceil64) = (None, None, None, None);
    for (kind, value) in nested(options) {
        match kind {
            TCA_HTB_PARMS => {
                rate = ratespec_rate(value, 0);
                ceil = ratespec_rate(value, RATESPEC_LEN);
            }
            TCA_HTB_RATE64 => rate64 = u64_ne(value),
            TCA_HTB_CEIL64 => ceil64 = u64_ne(value),
            _ => {}
        }
    }
    (rate64.or(rate), ceil64.or(ceil))
}

/// (type, payload) of each attribute in `buffer`; stops at the first malformed one.
fn nested(buffer: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    const HEADER_LEN: usize = 4;
    NlasIterator::new(buffer)
        .map_while(Result::ok)
        .filter_map(|nla| {
            let (kind, len) = (nla.kind(), nla.value_length());
            let bytes: &[u8] = nla.into_inner();
            Some((kind, bytes.get(HEADER_LEN..HEADER_LEN + len)?))
        })
}

/// The `rate` of the tc_ratespec at `offset` in `value` (host byte order, as the kernel writes it).
fn ratespec_rate(value: &[u8], offset: usize) -> Option<u64> {
    let start = offset + RATESPEC_RATE_OFFSET;
    let bytes: [u8; 4] = value.get(start..start + 4)?.try_into().ok()?;
    Some(u64::from(u32::from_ne_bytes(bytes)))
}

fn u64_ne(value: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(u64::from_ne_bytes(bytes))
}

fn handle_u32(handle: TcHandle) -> u32 {
    (u32::from(handle.major) << 16) | u32::from(handle.minor)
}

/// A qdisc handle as `tc` prints it: the major number in hex and a colon (`8001:`).
fn format_handle(handle: u32) -> String {
    format!("{:x}:", handle >> 16)
}

/// A class id as `tc` prints it: `1:10` (hex).
fn format_class(classid: u32) -> String {
    format!("{:x}:{:x}", classid >> 16, classid & 0xFFFF)
}

fn format_parent(parent: u32) -> String {
    match parent {
        TC_H_ROOT => "root".to_owned(),
        TC_H_INGRESS => "ingress".to_owned(),
        other => format_class(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::net::testnet::{TBF_RATE_BYTES, TestNet, unavailable};
    use netlink_packet_core::DefaultNla;
    use netlink_packet_route::tc::{TcStatsBasic, TcStatsQueue};
    use std::time::Instant;

    /// One netlink attribute: length, type, payload, padding to 4 bytes (host byte order).
    fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
        let length = u16::try_from(4 + payload.len()).expect("small attribute");
        let mut out = Vec::new();
        out.extend(length.to_ne_bytes());
        out.extend(kind.to_ne_bytes());
        out.extend(payload);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    /// struct tc_ratespec with the given rate (cell_log 0, linklayer ethernet, cell_align -1).
    fn ratespec(rate: u32) -> Vec<u8> {
        let mut out = vec![0u8, 1];
        out.extend(0u16.to_ne_bytes());
        out.extend((-1i16).to_ne_bytes());
        out.extend(0u16.to_ne_bytes());
        out.extend(rate.to_ne_bytes());
        out
    }

    fn tbf_parms(rate: u32) -> Vec<u8> {
        let mut qopt = ratespec(rate);
        qopt.extend(ratespec(0)); // peakrate
        for field in [3000u32, 25_600, 2047] {
            qopt.extend(field.to_ne_bytes()); // limit, buffer, mtu
        }
        nla(TCA_TBF_PARMS, &qopt)
    }

    #[test]
    fn tbf_rate_from_parms_and_rate64() {
        assert_eq!(tbf_rate(&tbf_parms(125_000)), Some(125_000));
        // Above 4 GB/s the kernel clamps the 32-bit field and adds TCA_TBF_RATE64.
        let mut options = tbf_parms(u32::MAX);
        options.extend(nla(TCA_TBF_RATE64, &6_250_000_000u64.to_ne_bytes()));
        assert_eq!(tbf_rate(&options), Some(6_250_000_000));
        // A truncated PARMS gives no rate rather than a wrong one.
        assert_eq!(
            tbf_rate(&nla(TCA_TBF_PARMS, &ratespec(125_000)[..10])),
            None
        );
        assert_eq!(tbf_rate(&[]), None);
        // A malformed attribute stops the walk instead of panicking.
        assert_eq!(tbf_rate(&[0xFF, 0xFF, 1, 0, 7]), None);
    }

    #[test]
    fn htb_class_rate_and_ceil() {
        let mut opt = ratespec(250_000);
        opt.extend(ratespec(500_000));
        for field in [1600u32, 1600, 25_000, 0, 0] {
            opt.extend(field.to_ne_bytes()); // buffer, cbuffer, quantum, level, prio
        }
        let parms = nla(TCA_HTB_PARMS, &opt);
        assert_eq!(htb_rates(&parms), (Some(250_000), Some(500_000)));
        let mut with64 = parms.clone();
        with64.extend(nla(TCA_HTB_CEIL64, &5_000_000_000u64.to_ne_bytes()));
        assert_eq!(htb_rates(&with64), (Some(250_000), Some(5_000_000_000)));
    }

    #[test]
    fn handles_print_like_tc() {
        assert_eq!(format_handle(0x8001_0000), "8001:");
        assert_eq!(format_handle(0), "0:");
        assert_eq!(format_parent(TC_H_ROOT), "root");
        assert_eq!(format_parent(TC_H_INGRESS), "ingress");
        assert_eq!(format_parent(0x0001_0010), "1:10");
        assert_eq!(format_class(0x00ab_0001), "ab:1");
    }

    #[test]
    fn stats2_prefers_64_bit_packets() {
        let mut basic = TcStatsBasic::default();
        basic.bytes = 9_000_000_000;
        basic.packets = 5;
        let mut queue = TcStatsQueue::default();
        queue.qlen = 2;
        queue.backlog = 3000;
        queue.drops = 7;
        queue.requeues = 1;
        queue.overlimits = 40;
        let mut members = vec![TcStats2::Basic(basic), TcStats2::Queue(queue)];
        let stats = stats_from_stats2(&members);
        assert_eq!(stats.bytes, 9_000_000_000);
        assert_eq!(stats.packets, 5);
        assert_eq!((stats.drops, stats.overlimits, stats.requeues), (7, 40, 1));
        assert_eq!((stats.backlog_bytes, stats.backlog_packets), (3000, 2));
        members.push(TcStats2::Other(DefaultNla::new(
            TCA_STATS_PKT64,
            (u64::from(u32::MAX) + 6).to_ne_bytes().to_vec(),
        )));
        assert_eq!(stats_from_stats2(&members).packets, u64::from(u32::MAX) + 6);
    }

    #[test]
    fn deltas_keep_backlog_and_match_by_identity() {
        let qdisc = |ifindex: u32, handle: &str, bytes: u64, backlog: u64| Qdisc {
            ifindex,
            device: format!("if{ifindex}"),
            kind: "tbf".to_owned(),
            handle: handle.to_owned(),
            parent: "root".to_owned(),
            rate_bytes_per_second: Some(125_000),
            stats: QdiscStats {
                bytes,
                packets: bytes / 1000,
                backlog_bytes: backlog,
                ..QdiscStats::default()
            },
            classes: Vec::new(),
        };
        let earlier = vec![qdisc(2, "8001:", 10_000, 500), qdisc(3, "8002:", 1, 0)];
        let later = vec![qdisc(2, "8001:", 30_000, 100), qdisc(3, "8003:", 5, 0)];
        let d = deltas(&later, &earlier);
        assert_eq!(d.len(), 1, "8003: replaced 8002: and has no baseline");
        assert_eq!(d[0].delta.bytes, 20_000);
        assert_eq!(d[0].delta.packets, 20);
        assert_eq!(d[0].delta.backlog_bytes, 100);
    }

    #[test]
    fn qdiscs_of_own_namespace() {
        // Every device has a qdisc entry, noqueue included; reading needs no privileges.
        let all = qdiscs().expect("qdisc dump");
        let links = dump_links().expect("link dump");
        for q in &all {
            assert!(!q.kind.is_empty());
            assert!(
                links
                    .iter()
                    .any(|l| l.index == q.ifindex && l.name == q.device)
            );
        }
    }

    #[test]
    fn live_tbf_and_htb_rates_and_counts() {
        if let Some(reason) = unavailable() {
            eprintln!("skipping live_tbf_and_htb_rates_and_counts: {reason}");
            return;
        }
        let net = TestNet::build();
        // HTB in the namespace on the return path, with one class.
        let ns = net.netns.as_str();
        for args in [
            vec![
                "tc",
                "-n",
                ns,
                "qdisc",
                "add",
                "dev",
                &net.veth_ns,
                "root",
                "handle",
                "1:",
            ],
            vec![
                "tc",
                "-n",
                ns,
                "class",
                "add",
                "dev",
                &net.veth_ns,
                "parent",
                "1:",
            ],
        ] {
            let mut args: Vec<&str> = args;
            if args[3] == "qdisc" {
                args.extend(["htb", "default", "10"]);
            } else {
                args.extend(["classid", "1:10", "htb", "rate", "2mbit", "ceil", "4mbit"]);
            }
            let status = std::process::Command::new(args[0])
                .args(&args[1..])
                .status()
                .expect("run tc");
            assert!(status.success(), "{}", args.join(" "));
        }

        let host_veth = dump_links()
            .expect("links")
            .into_iter()
            .find(|l| l.name == net.veth_host)
            .expect("host veth");
        let find_tbf = |all: &[Qdisc]| {
            all.iter()
                .find(|q| q.ifindex == host_veth.index && q.parent == "root")
                .cloned()
                .expect("root qdisc on the host veth")
        };
        let before = qdiscs().expect("qdiscs");
        let tbf = find_tbf(&before);
        assert_eq!(tbf.kind, "tbf");
        assert_eq!(tbf.device, net.veth_host);
        assert_eq!(tbf.rate_bytes_per_second, Some(TBF_RATE_BYTES));

        let inside_before = qdiscs_in(&net.netns_path).expect("qdiscs in the namespace");
        assert!(inside_before.iter().all(|q| q.kind != "tbf"));
        let htb = inside_before
            .iter()
            .find(|q| q.kind == "htb")
            .expect("htb in the namespace");
        assert_eq!(
            (htb.device.as_str(), htb.handle.as_str()),
            (net.veth_ns.as_str(), "1:")
        );
        let class = htb
            .classes
            .iter()
            .find(|c| c.classid == "1:10")
            .expect("class 1:10");
        assert_eq!(class.rate_bytes_per_second, Some(250_000));
        assert_eq!(class.ceil_bytes_per_second, Some(500_000));

        // 100 kB uphill through the 125 kB/s shaper (4 kB burst): it must throttle.
        let payload = 100_000;
        let server = net.serve(1);
        let started = Instant::now();
        assert_eq!(net.send_through_nat(payload), payload as u64);
        let elapsed = started.elapsed().as_secs_f64();
        server.join().expect("server thread");
        let after = qdiscs().expect("qdiscs again");
        let inside_after = qdiscs_in(&net.netns_path).expect("namespace qdiscs again");
        let delta = deltas(&after, &before)
            .into_iter()
            .find(|d| d.ifindex == host_veth.index && d.kind == "tbf")
            .expect("tbf delta")
            .delta;
        let achieved = delta.bytes as f64 / elapsed;
        eprintln!(
            "tbf: {} B / {} pkts in {elapsed:.2} s = {achieved:.0} B/s (rate {TBF_RATE_BYTES}), \
             overlimits {}, drops {}, requeues {}",
            delta.bytes, delta.packets, delta.overlimits, delta.drops, delta.requeues
        );
        assert!(delta.bytes >= payload as u64);
        assert!(delta.packets > 0);
        assert!(
            delta.overlimits > 0,
            "100 kB over a 4 kB burst waits on the rate"
        );
        // The shaper held: at most the rate plus the burst, with slack for timing.
        assert!(achieved < TBF_RATE_BYTES as f64 * 1.25, "{achieved} B/s");
        let htb_delta = deltas(&inside_after, &inside_before)
            .into_iter()
            .find(|d| d.kind == "htb")
            .expect("htb delta")
            .delta;
        assert!(
            htb_delta.packets > 0,
            "the ACKs and the answer leave through htb"
        );
    }
}
