//! Connection tracking (netfilter conntrack): how full the table is and the per-CPU failure
//! counters, from procfs; and the NAT translations of one port, from a ctnetlink dump. A full table
//! or growing `insert_failed` / `drop` / `early_drop` means new connections are being refused
//! before any socket sees them.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
    conntrack::{
        ConntrackAttribute, ConntrackMessage, IPTuple, ProtoInfo, ProtoInfoTCP, ProtoTuple, Status,
        Tuple,
    },
};
use netlink_sys::protocols::NETLINK_NETFILTER;
use serde::{Deserialize, Serialize};

use super::CollectError;
use super::net::{Exchange, request};
use crate::recording::ConntrackStats;

const COUNT: &str = "/proc/sys/net/netfilter/nf_conntrack_count";
const MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";
const STAT: &str = "/proc/net/stat/nf_conntrack";
/// The column of the stat file that is the table size (the same on every CPU line), not a counter.
const ENTRIES_COLUMN: &str = "entries";

/// The conntrack table of the caller's network namespace; `Ok(None)` when conntrack is not loaded
/// (no nf_conntrack_count). Needs no privileges.
pub fn stats() -> Result<Option<ConntrackStats>, CollectError> {
    let Some(count) = read_optional(COUNT)? else {
        return Ok(None);
    };
    let count = parse_number(COUNT, &count)?;
    let max = match read_optional(MAX)? {
        Some(text) => parse_number(MAX, &text)?,
        None => return Ok(None),
    };
    let Some(stat) = read_optional(STAT)? else {
        return Ok(None);
    };
    let (cpus, counters) = parse_stat(STAT, &stat)?;
    Ok(Some(ConntrackStats {
        count,
        max,
        cpus,
        counters,
    }))
}

/// The file's contents, or `None` if it does not exist.
fn read_optional(path: &str) -> Result<Option<String>, CollectError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CollectError::Read {
            path: path.into(),
            source,
        }),
    }
}

fn parse_number(path: &str, text: &str) -> Result<u64, CollectError> {
    let value = text.trim();
    value
        .parse()
        .map_err(|_| CollectError::parse(path, 1, format!("{value:?} is not an integer")))
}

/// Parses /proc/net/stat/nf_conntrack: a header line of column names, then one line per CPU of
/// hexadecimal values. Returns the number of CPU lines and each column but `entries` summed.
pub(crate) fn parse_stat(
    path: &str,
    text: &str,
) -> Result<(usize, BTreeMap<String, u64>), CollectError> {
    let mut lines = text.lines().enumerate();
    let names: Vec<&str> = match lines.next() {
        Some((_, header)) => header.split_whitespace().collect(),
        None => return Err(CollectError::parse(path, 1, "empty file, no header line")),
    };
    if names.is_empty() {
        return Err(CollectError::parse(path, 1, "empty header line"));
    }
    let mut totals: BTreeMap<String, u64> = names
        .iter()
        .filter(|n| **n != ENTRIES_COLUMN)
        .map(|n| ((*n).to_owned(), 0))
        .collect();
    let mut cpus = 0;
    for (number, line) in lines {
        let line_no = number + 1;
        let values: Vec<&str> = line.split_whitespace().collect();
        if values.is_empty() {
            continue;
        }
        if values.len() != names.len() {
            return Err(CollectError::parse(
                path,
                line_no,
                format!("{} values for {} columns", values.len(), names.len()),
            ));
        }
        for (name, value) in names.iter().zip(values) {
            let value = u64::from_str_radix(value, 16).map_err(|_| {
                CollectError::parse(
                    path,
                    line_no,
                    format!("{name}: {value:?} is not hexadecimal"),
                )
            })?;
            if let Some(total) = totals.get_mut(*name) {
                *total = total.saturating_add(value);
            }
        }
        cpus += 1;
    }
    Ok((cpus, totals))
}

/// One tracked connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConntrackEntry {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, or the protocol number.
    pub protocol: String,
    /// The first packet's direction, as the client sent it.
    pub original: FlowTuple,
    /// What the reply looks like: after DNAT its source is the real backend, after SNAT its
    /// destination is the translated address.
    pub reply: FlowTuple,
    /// Destination NAT applied (IPS_DST_NAT): `original.destination` was rewritten to
    /// `reply.source`.
    pub dst_nat: bool,
    /// Source NAT applied (IPS_SRC_NAT, masquerade included).
    pub src_nat: bool,
    /// Traffic seen in both directions (IPS_SEEN_REPLY).
    pub seen_reply: bool,
    /// TCP state of the entry (`ESTABLISHED`, `TIME_WAIT`, ...); `None` for other protocols.
    pub tcp_state: Option<String>,
    /// Seconds until the entry expires.
    pub timeout_seconds: Option<u32>,
}

/// Addresses and ports of one direction of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowTuple {
    pub source: IpAddr,
    pub destination: IpAddr,
    /// `None` for protocols without ports (ICMP).
    pub source_port: Option<u16>,
    pub destination_port: Option<u16>,
}

impl Default for FlowTuple {
    fn default() -> Self {
        FlowTuple {
            source: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            destination: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            source_port: None,
            destination_port: None,
        }
    }
}

/// Connections of the caller's namespace whose service side uses `port`: the original
/// destination port (the port clients connect to, before DNAT) or the reply source port (the
/// backend's port, after DNAT). Read with one ctnetlink dump of the whole table (IPv4 and IPv6),
/// filtered here: the cost grows with the table size. Empty when conntrack is not loaded.
/// Needs CAP_NET_ADMIN.
pub fn entries_for_port(port: u16) -> Result<Vec<ConntrackEntry>, CollectError> {
    entries_for_ports(&[port])
}

/// `entries_for_port` for several ports with one dump (the dump is what costs).
pub fn entries_for_ports(ports: &[u16]) -> Result<Vec<ConntrackEntry>, CollectError> {
    if read_optional(COUNT)?.is_none() {
        return Ok(Vec::new());
    }
    let mut entries = Vec::new();
    let message = NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, 0),
        ConntrackMessage::Get(Vec::new()),
    );
    request(
        NETLINK_NETFILTER,
        message,
        Exchange::Dump,
        "ctnetlink conntrack dump",
        |reply| {
            if let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attributes)) = reply.inner
            {
                let entry = entry_from_attributes(&attributes);
                let wanted = |p: Option<u16>| p.is_some_and(|p| ports.contains(&p));
                if wanted(entry.original.destination_port) || wanted(entry.reply.source_port) {
                    entries.push(entry);
                }
            }
            Ok(())
        },
    )?;
    Ok(entries)
}

pub(crate) fn entry_from_attributes(attributes: &[ConntrackAttribute]) -> ConntrackEntry {
    let mut original = FlowTuple::default();
    let mut reply = FlowTuple::default();
    let mut protocol = None;
    let mut status = Status::empty();
    let mut tcp_state = None;
    let mut timeout_seconds = None;
    for attribute in attributes {
        match attribute {
            ConntrackAttribute::CtaTupleOrig(tuples) => {
                original = flow_tuple(tuples, &mut protocol);
            }
            ConntrackAttribute::CtaTupleReply(tuples) => {
                reply = flow_tuple(tuples, &mut protocol);
            }
            ConntrackAttribute::CtaStatus(s) => status = *s,
            ConntrackAttribute::CtaTimeout(t) => timeout_seconds = Some(*t),
            ConntrackAttribute::CtaProtoInfo(infos) => {
                for info in infos {
                    if let ProtoInfo::TCP(tcp) = info {
                        for item in tcp {
                            if let ProtoInfoTCP::State(state) = item {
                                tcp_state = Some(tcp_state_name(*state));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    ConntrackEntry {
        protocol: protocol.map(protocol_name).unwrap_or_default(),
        original,
        reply,
        dst_nat: status.contains(Status::DstNat),
        src_nat: status.contains(Status::SrcNat),
        seen_reply: status.contains(Status::SeenReply),
        tcp_state,
        timeout_seconds,
    }
}

fn flow_tuple(tuples: &[Tuple], protocol: &mut Option<u8>) -> FlowTuple {
    let mut flow = FlowTuple::default();
    for tuple in tuples {
        match tuple {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => flow.source = *a,
                        IPTuple::DestinationAddress(a) => flow.destination = *a,
                        _ => {}
                    }
                }
            }
            Tuple::Proto(items) => {
                for item in items {
                    match item {
                        ProtoTuple::Protocol(p) => *protocol = Some(u8::from(*p)),
                        ProtoTuple::SourcePort(p) => flow.source_port = Some(*p),
                        ProtoTuple::DestinationPort(p) => flow.destination_port = Some(*p),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    flow
}

fn protocol_name(number: u8) -> String {
    match number {
        1 => "icmp".to_owned(),
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        58 => "icmpv6".to_owned(),
        132 => "sctp".to_owned(),
        other => other.to_string(),
    }
}

/// enum tcp_conntrack (include/uapi/linux/netfilter/nf_conntrack_tcp.h).
fn tcp_state_name(state: u8) -> String {
    let name = match state {
        0 => "NONE",
        1 => "SYN_SENT",
        2 => "SYN_RECV",
        3 => "ESTABLISHED",
        4 => "FIN_WAIT",
        5 => "CLOSE_WAIT",
        6 => "LAST_ACK",
        7 => "TIME_WAIT",
        8 => "CLOSE",
        9 => "SYN_SENT2",
        other => return other.to_string(),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::net::testnet::{SERVER_PORT, TestNet, unavailable};
    use netlink_packet_netfilter::conntrack::Protocol;

    const HEADER: &str = "entries  clashres found new invalid ignore delete chainlength insert \
        insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete \
        search_restart";

    #[test]
    fn stat_sums_hex_columns_over_cpus_without_entries() {
        let text = format!(
            "{HEADER}\n\
             0000001a  00000001 00000000 00000000 0000000f 00000000 00000000 00000000 00000000 \
             00000002 0000000a 00000000 00000001  00000000 00000000 00000000 000000ff\n\
             0000001a  00000000 00000000 00000000 00000001 00000000 00000000 00000000 00000000 \
             00000003 00000000 00000004 00000000  00000000 00000000 00000000 00000001\n"
        );
        let (cpus, totals) = parse_stat("stat", &text).expect("valid file");
        assert_eq!(cpus, 2);
        assert!(
            !totals.contains_key("entries"),
            "entries is the count, not a counter"
        );
        assert_eq!(totals["invalid"], 16);
        assert_eq!(totals["insert_failed"], 5);
        assert_eq!(totals["drop"], 10);
        assert_eq!(totals["early_drop"], 4);
        assert_eq!(totals["icmp_error"], 1);
        assert_eq!(totals["search_restart"], 256);
        assert_eq!(totals["clashres"], 1);
        assert_eq!(totals.len(), 16);
    }

    #[test]
    fn stat_errors_name_the_line() {
        let bad_hex = format!(
            "{HEADER}\n{}\n{}\n",
            "0 ".repeat(17),
            "0 ".repeat(16) + "zz"
        );
        let err = parse_stat("/proc/net/stat/nf_conntrack", &bad_hex).expect_err("bad hex");
        assert_eq!(
            err.to_string(),
            "/proc/net/stat/nf_conntrack:3: search_restart: \"zz\" is not hexadecimal"
        );
        let short = format!("{HEADER}\n0 0 0\n");
        let err = parse_stat("f", &short).expect_err("short line");
        assert_eq!(err.to_string(), "f:2: 3 values for 17 columns");
        assert!(parse_stat("f", "").is_err());
        assert!(parse_number("c", "12x\n").is_err());
        assert_eq!(parse_number("c", "12\n").expect("a number"), 12);
    }

    #[test]
    fn delta_treats_new_and_reset_counters_as_zero() {
        let stats = |count: u64, pairs: &[(&str, u64)]| ConntrackStats {
            count,
            max: 100,
            cpus: 2,
            counters: pairs.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect(),
        };
        let earlier = stats(10, &[("drop", 5), ("insert_failed", 9)]);
        let later = stats(40, &[("drop", 8), ("insert_failed", 2), ("early_drop", 3)]);
        let delta = later.delta_since(&earlier);
        assert_eq!(delta.count, 40);
        assert_eq!(delta.drop(), 3);
        assert_eq!(delta.insert_failed(), 0);
        assert_eq!(delta.early_drop(), 0, "first seen: no baseline");
        assert_eq!(later.fill_fraction(), 0.4);
        assert_eq!(later.get("no_such_column"), 0);
    }

    #[test]
    fn entry_shows_dnat_and_masquerade() {
        let ip = |a: [u8; 4]| IpAddr::V4(Ipv4Addr::from(a));
        let tuple = |src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16| {
            vec![
                Tuple::Ip(vec![
                    IPTuple::SourceAddress(ip(src)),
                    IPTuple::DestinationAddress(ip(dst)),
                ]),
                Tuple::Proto(vec![
                    ProtoTuple::Protocol(Protocol::Tcp),
                    ProtoTuple::SourcePort(sport),
                    ProtoTuple::DestinationPort(dport),
                ]),
            ]
        };
        let attributes = vec![
            ConntrackAttribute::CtaTupleOrig(tuple([127, 0, 0, 1], [127, 0, 0, 1], 40000, 18080)),
            ConntrackAttribute::CtaTupleReply(tuple([198, 18, 5, 2], [198, 18, 5, 1], 80, 40000)),
            ConntrackAttribute::CtaStatus(Status::SrcNat | Status::DstNat | Status::SeenReply),
            ConntrackAttribute::CtaTimeout(117),
            ConntrackAttribute::CtaProtoInfo(vec![ProtoInfo::TCP(vec![ProtoInfoTCP::State(7)])]),
        ];
        let entry = entry_from_attributes(&attributes);
        assert_eq!(entry.protocol, "tcp");
        assert_eq!(entry.original.destination, ip([127, 0, 0, 1]));
        assert_eq!(entry.original.destination_port, Some(18080));
        assert_eq!(entry.reply.source, ip([198, 18, 5, 2]));
        assert_eq!(entry.reply.source_port, Some(80));
        assert_eq!(entry.reply.destination, ip([198, 18, 5, 1]));
        assert!(entry.dst_nat && entry.src_nat && entry.seen_reply);
        assert_eq!(entry.tcp_state.as_deref(), Some("TIME_WAIT"));
        assert_eq!(entry.timeout_seconds, Some(117));
    }

    #[test]
    fn stats_read_here_if_loaded() {
        match stats().expect("procfs readable") {
            None => eprintln!("conntrack not loaded here"),
            Some(s) => {
                assert!(s.max > 0);
                assert!(s.cpus >= 1);
                assert!(s.counters.contains_key("insert_failed"));
            }
        }
    }

    #[test]
    fn live_dnat_entries_and_count() {
        if let Some(reason) = unavailable() {
            eprintln!("skipping live_dnat_entries_and_count: {reason}");
            return;
        }
        // The DNAT rule of the fixture loads nf_conntrack and nf_nat if they are modules.
        let net = TestNet::build();
        let connections = 3;
        let server = net.serve(connections);
        for _ in 0..connections {
            assert_eq!(net.send_through_nat(1000), 1000);
        }
        server.join().expect("server thread");
        let stats = stats()
            .expect("procfs readable")
            .expect("conntrack loaded by the DNAT rule");
        // Closed connections stay tracked (TIME_WAIT) for minutes: ours are still counted.
        assert!(stats.count >= connections as u64, "count {}", stats.count);
        assert!(stats.count <= stats.max);
        let entries = entries_for_port(net.nat_port).expect("ctnetlink dump");
        let ours: Vec<&ConntrackEntry> = entries
            .iter()
            .filter(|e| e.reply.source == IpAddr::V4(net.ns_ip))
            .collect();
        eprintln!(
            "conntrack: count {} of max {}, {} entries for port {}, e.g. {:?}",
            stats.count,
            stats.max,
            ours.len(),
            net.nat_port,
            ours.first()
        );
        assert_eq!(ours.len(), connections, "{entries:?}");
        for entry in ours {
            assert_eq!(entry.protocol, "tcp");
            assert_eq!(entry.original.destination, IpAddr::V4(Ipv4Addr::LOCALHOST));
            assert_eq!(entry.original.destination_port, Some(net.nat_port));
            assert_eq!(entry.reply.source_port, Some(SERVER_PORT));
            // Masquerade: the backend answers the bridge address, not 127.0.0.1.
            assert_eq!(entry.reply.destination, IpAddr::V4(net.bridge_ip));
            assert!(entry.dst_nat && entry.src_nat && entry.seen_reply);
            assert!(entry.tcp_state.is_some());
        }
        // The backend's port finds the same entries from the reply side.
        let by_backend = entries_for_port(SERVER_PORT).expect("ctnetlink dump");
        assert!(
            by_backend
                .iter()
                .filter(|e| e.reply.source == IpAddr::V4(net.ns_ip))
                .count()
                >= connections
        );
    }
}
