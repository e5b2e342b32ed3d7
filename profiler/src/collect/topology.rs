//! The network path as the kernel sees it in one network namespace: links (loopback, veth, bridge,
//! devices) with their bridge master, veth peer and traffic counters, addresses and routes. Read
//! over rtnetlink (RTM_GETLINK / RTM_GETADDR / RTM_GETROUTE dumps), never from `ip` output.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressMessage, AddressScope},
    link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage},
    nsid::{NsidAttribute, NsidMessage},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteType},
};
use netlink_sys::protocols::NETLINK_ROUTE;

use super::CollectError;
use super::net::{Exchange, current_netns, in_netns, named_netns, netns_at, request};

use crate::recording::{Link, LinkAddress, LinkPeer, LinkStats, NetnsId, Route, Topology};

/// The kernel's `local` routing table: routes it derives from every local address. Left out.
const RT_TABLE_LOCAL: u32 = 255;
/// Unnamed namespaces a container-side veth's peer is likely in: this process's own (the main
/// thread's, where `snapshot_in` was called from) and the host's (pid 1's).
const UNNAMED_PEER_NETNS: [&str; 2] = ["/proc/self/ns/net", "/proc/1/ns/net"];

/// The topology of the caller's network namespace. Needs no privileges.
pub fn snapshot() -> Result<Topology, CollectError> {
    let netns = current_netns()?;
    read_topology(netns)
}

/// The topology of the namespace at `netns_path` (`/var/run/netns/NAME` or `/proc/<pid>/ns/net`),
/// read from a thread that enters it (needs CAP_SYS_ADMIN). A path under a netns directory names
/// the namespace by its file name.
pub fn snapshot_in(netns_path: &Path) -> Result<Topology, CollectError> {
    in_netns(netns_path, || {
        let mut netns = current_netns()?;
        if netns.name.is_none() && !netns_path.starts_with("/proc") {
            netns.name = netns_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
        }
        read_topology(netns)
    })
}

fn read_topology(netns: NetnsId) -> Result<Topology, CollectError> {
    let mut links = dump_links()?;
    if links
        .iter()
        .any(|l| l.peer.as_ref().is_some_and(|p| p.netnsid.is_some()))
    {
        let peers = peer_namespaces();
        for peer in links.iter_mut().filter_map(|l| l.peer.as_mut()) {
            peer.netns = match peer.netnsid {
                None => Some(netns.clone()),
                Some(id) => peers.get(&id).cloned(),
            };
        }
    } else {
        for peer in links.iter_mut().filter_map(|l| l.peer.as_mut()) {
            peer.netns = Some(netns.clone());
        }
    }
    Ok(Topology {
        netns,
        links,
        addresses: dump_addresses()?,
        routes: dump_routes()?,
    })
}

/// Every link of the caller's namespace, sorted by index.
pub(crate) fn dump_links() -> Result<Vec<Link>, CollectError> {
    let what = "rtnetlink link dump";
    let mut links = Vec::new();
    request(
        NETLINK_ROUTE,
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        Exchange::Dump,
        what,
        |reply| {
            if let RouteNetlinkMessage::NewLink(message) = reply {
                links.push(link_from_message(&message));
            }
            Ok(())
        },
    )?;
    links.sort_by_key(|l| l.index);
    Ok(links)
}

pub(crate) fn link_from_message(message: &LinkMessage) -> Link {
    let header = &message.header;
    let mut name = String::new();
    let mut info_kind = None;
    let mut master = None;
    let mut link = None;
    let mut link_netnsid = None;
    let mut mtu = None;
    let mut qdisc = None;
    let mut tx_queue_len = None;
    let mut stats64 = None;
    let mut stats32 = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        info_kind = Some(kind.clone());
                    }
                }
            }
            LinkAttribute::Controller(index) => master = Some(*index),
            LinkAttribute::Link(index) => link = Some(*index),
            LinkAttribute::LinkNetNsId(id) => link_netnsid = Some(*id),
            LinkAttribute::Mtu(m) => mtu = Some(*m),
            LinkAttribute::Qdisc(q) => qdisc = Some(q.clone()),
            LinkAttribute::TxQueueLen(q) => tx_queue_len = Some(*q),
            LinkAttribute::Stats64(s) => {
                stats64 = Some(LinkStats {
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    rx_bytes: s.rx_bytes,
                    tx_bytes: s.tx_bytes,
                    rx_dropped: s.rx_dropped,
                    tx_dropped: s.tx_dropped,
                    rx_errors: s.rx_errors,
                    tx_errors: s.tx_errors,
                })
            }
            LinkAttribute::Stats(s) => {
                stats32 = Some(LinkStats {
                    rx_packets: u64::from(s.rx_packets),
                    tx_packets: u64::from(s.tx_packets),
                    rx_bytes: u64::from(s.rx_bytes),
                    tx_bytes: u64::from(s.tx_bytes),
                    rx_dropped: u64::from(s.rx_dropped),
                    tx_dropped: u64::from(s.tx_dropped),
                    rx_errors: u64::from(s.rx_errors),
                    tx_errors: u64::from(s.tx_errors),
                })
            }
            _ => {}
        }
    }
    let is_veth = matches!(info_kind, Some(InfoKind::Veth));
    let kind = if header.link_layer_type == LinkLayerType::Loopback {
        "loopback".to_owned()
    } else {
        match &info_kind {
            Some(kind) => kind.to_string(),
            None => "device".to_owned(),
        }
    };
    // A veth whose peer is gone (or not yet created) reports IFLA_LINK 0.
    let peer = match link {
        Some(index) if is_veth && index != 0 => Some(LinkPeer {
            index,
            netnsid: link_netnsid,
            netns: None,
        }),
        _ => None,
    };
    Link {
        index: header.index,
        name,
        kind,
        master,
        peer,
        up: header.flags.contains(LinkFlags::Up),
        lower_up: header.flags.contains(LinkFlags::LowerUp),
        mtu,
        qdisc,
        tx_queue_len,
        stats: stats64.or(stats32).unwrap_or_default(),
    }
}

/// Maps the ids this namespace has given to other namespaces (IFLA_LINK_NETNSID) to those
/// namespaces, for the ones we can name: every named namespace, this process's and pid 1's. Asks the
/// kernel with RTM_GETNSID + NETNSA_FD; a namespace that cannot be opened or has no id here is
/// skipped.
fn peer_namespaces() -> HashMap<i32, NetnsId> {
    let mut candidates: Vec<(std::path::PathBuf, Option<String>)> = named_netns()
        .into_iter()
        .map(|(path, _, _)| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            (path, name)
        })
        .collect();
    candidates.extend(UNNAMED_PEER_NETNS.map(|path| (path.into(), None)));
    let mut found = HashMap::new();
    for (path, name) in candidates {
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        let Ok(Some(id)) = nsid_of(&file) else {
            continue;
        };
        if let Ok(netns) = netns_at(&path, name) {
            // A named namespace wins over an unnamed entry for the same id.
            found.entry(id).or_insert(netns);
        }
    }
    found
}

/// The id the caller's namespace uses for the namespace open as `file`; `None` when it has none.
fn nsid_of(file: &std::fs::File) -> Result<Option<i32>, CollectError> {
    let mut message = NsidMessage::default();
    message.header.family = AddressFamily::Unspec;
    let fd = u32::try_from(file.as_raw_fd()).map_err(|_| CollectError::NetlinkDecode {
        what: "rtnetlink nsid request",
        reason: "negative file descriptor".to_owned(),
    })?;
    message.attributes.push(NsidAttribute::Fd(fd));
    let mut id = None;
    request(
        NETLINK_ROUTE,
        RouteNetlinkMessage::GetNsId(message),
        Exchange::Single,
        "rtnetlink nsid request",
        |reply| {
            if let RouteNetlinkMessage::NewNsId(message) = reply {
                for attribute in message.attributes {
                    if let NsidAttribute::Id(value) = attribute {
                        // NETNSA_NSID_NOT_ASSIGNED is -1.
                        id = (value >= 0).then_some(value);
                    }
                }
            }
            Ok(())
        },
    )?;
    Ok(id)
}

fn dump_addresses() -> Result<Vec<LinkAddress>, CollectError> {
    let mut addresses = Vec::new();
    request(
        NETLINK_ROUTE,
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        Exchange::Dump,
        "rtnetlink address dump",
        |reply| {
            if let RouteNetlinkMessage::NewAddress(message) = reply {
                addresses.extend(address_from_message(&message));
            }
            Ok(())
        },
    )?;
    addresses.sort_by_key(|a| (a.index, a.address));
    Ok(addresses)
}

pub(crate) fn address_from_message(message: &AddressMessage) -> Option<LinkAddress> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on point-to-point links
    // and the same as IFA_LOCAL elsewhere (IPv6 sends only IFA_ADDRESS).
    let mut local = None;
    let mut address = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    Some(LinkAddress {
        index: message.header.index,
        address: local.or(address)?,
        prefix_len: message.header.prefix_len,
        scope: scope_name(message.header.scope),
    })
}

fn scope_name(scope: AddressScope) -> String {
    match scope {
        AddressScope::Universe => "global".to_owned(),
        AddressScope::Site => "site".to_owned(),
        AddressScope::Link => "link".to_owned(),
        AddressScope::Host => "host".to_owned(),
        AddressScope::Nowhere => "nowhere".to_owned(),
        other => u8::from(other).to_string(),
    }
}

fn dump_routes() -> Result<Vec<Route>, CollectError> {
    let mut routes = Vec::new();
    request(
        NETLINK_ROUTE,
        RouteNetlinkMessage::GetRoute(RouteMessage::default()),
        Exchange::Dump,
        "rtnetlink route dump",
        |reply| {
            if let RouteNetlinkMessage::NewRoute(message) = reply {
                routes.extend(route_from_message(&message));
            }
            Ok(())
        },
    )?;
    routes.sort_by_key(|r| (r.table, r.destination, r.prefix_len));
    Ok(routes)
}

/// `None` for routes of the `local` table and of families other than IPv4/IPv6.
pub(crate) fn route_from_message(message: &RouteMessage) -> Option<Route> {
    let header = &message.header;
    let mut table = u32::from(header.table);
    let mut destination = None;
    let mut gateway = None;
    let mut oif = None;
    let mut preferred_source = None;
    let mut priority = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => destination = route_ip(a),
            RouteAttribute::Gateway(a) => gateway = route_ip(a),
            RouteAttribute::PrefSource(a) => preferred_source = route_ip(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => priority = Some(*p),
            _ => {}
        }
    }
    if table == RT_TABLE_LOCAL {
        return None;
    }
    let unspecified = match header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    Some(Route {
        table,
        kind: route_kind(header.kind),
        destination: destination.unwrap_or(unspecified),
        prefix_len: header.destination_prefix_length,
        gateway,
        oif,
        preferred_source,
        priority,
    })
}

fn route_ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn route_kind(kind: RouteType) -> String {
    let name = match kind {
        RouteType::Unicast => "unicast",
        RouteType::Local => "local",
        RouteType::Broadcast => "broadcast",
        RouteType::Anycast => "anycast",
        RouteType::Multicast => "multicast",
        RouteType::BlackHole => "blackhole",
        RouteType::Unreachable => "unreachable",
        RouteType::Prohibit => "prohibit",
        RouteType::Throw => "throw",
        RouteType::Nat => "nat",
        other => return u8::from(other).to_string(),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::net::testnet::{TBF_RATE_BYTES, TestNet, unavailable};
    use netlink_packet_route::link::{LinkHeader, Stats64};
    use std::os::unix::fs::MetadataExt;

    fn link_message(
        index: u32,
        layer: LinkLayerType,
        flags: LinkFlags,
        attributes: Vec<LinkAttribute>,
    ) -> LinkMessage {
        let header = LinkHeader {
            index,
            link_layer_type: layer,
            flags,
            ..LinkHeader::default()
        };
        let mut message = LinkMessage::default();
        message.header = header;
        message.attributes = attributes;
        message
    }

    fn stats64(rx_packets: u64, tx_bytes: u64, rx_dropped: u64) -> Stats64 {
        let mut stats = Stats64::default();
        stats.rx_packets = rx_packets;
        stats.tx_bytes = tx_bytes;
        stats.rx_dropped = rx_dropped;
        stats
    }

    #[test]
    fn veth_link_keeps_master_peer_and_stats64() {
        let message = link_message(
            7,
            LinkLayerType::Ether,
            LinkFlags::Up | LinkFlags::LowerUp,
            vec![
                LinkAttribute::IfName("vethab12".to_owned()),
                LinkAttribute::Mtu(1500),
                LinkAttribute::Qdisc("tbf".to_owned()),
                LinkAttribute::Controller(3),
                LinkAttribute::Link(2),
                LinkAttribute::LinkNetNsId(4),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
                LinkAttribute::Stats64(stats64(11, 2222, 3)),
            ],
        );
        let link = link_from_message(&message);
        assert_eq!(link.index, 7);
        assert_eq!(link.name, "vethab12");
        assert_eq!(link.kind, "veth");
        assert_eq!(link.master, Some(3));
        let peer = link.peer.expect("a veth with IFLA_LINK has a peer");
        assert_eq!((peer.index, peer.netnsid), (2, Some(4)));
        assert!(link.up && link.lower_up);
        assert_eq!(link.mtu, Some(1500));
        assert_eq!(link.qdisc.as_deref(), Some("tbf"));
        assert_eq!(link.stats.rx_packets, 11);
        assert_eq!(link.stats.tx_bytes, 2222);
        assert_eq!(link.stats.rx_dropped, 3);
    }

    #[test]
    fn kinds_loopback_device_and_bridge() {
        let lo = link_message(
            1,
            LinkLayerType::Loopback,
            LinkFlags::Up | LinkFlags::Loopback,
            vec![LinkAttribute::IfName("lo".to_owned())],
        );
        assert_eq!(link_from_message(&lo).kind, "loopback");
        // A NIC has no IFLA_INFO_KIND, and its IFLA_LINK (if any) is not a peer.
        let nic = link_message(
            2,
            LinkLayerType::Ether,
            LinkFlags::empty(),
            vec![
                LinkAttribute::IfName("eth0".to_owned()),
                LinkAttribute::Link(2),
            ],
        );
        let nic = link_from_message(&nic);
        assert_eq!(nic.kind, "device");
        assert_eq!(nic.peer, None);
        assert!(!nic.up);
        let bridge = link_message(
            3,
            LinkLayerType::Ether,
            LinkFlags::Up,
            vec![LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )])],
        );
        assert_eq!(link_from_message(&bridge).kind, "bridge");
        // A veth whose peer is gone says IFLA_LINK 0.
        let orphan = link_message(
            4,
            LinkLayerType::Ether,
            LinkFlags::Up,
            vec![
                LinkAttribute::Link(0),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
            ],
        );
        assert_eq!(link_from_message(&orphan).peer, None);
    }

    #[test]
    fn traffic_since_matches_links_by_index_and_name() {
        let link = |index: u32, name: &str, rx: u64, tx: u64| Link {
            index,
            name: name.to_owned(),
            kind: "veth".to_owned(),
            master: None,
            peer: None,
            up: true,
            lower_up: true,
            mtu: Some(1500),
            qdisc: None,
            tx_queue_len: None,
            stats: LinkStats {
                rx_bytes: rx,
                tx_bytes: tx,
                ..LinkStats::default()
            },
        };
        let topo = |links| Topology {
            netns: NetnsId {
                inode: 1,
                name: None,
            },
            links,
            addresses: Vec::new(),
            routes: Vec::new(),
        };
        let earlier = topo(vec![link(2, "a", 100, 10), link(3, "b", 5, 5)]);
        // `b` was recreated with a new index, `c` is new; `a` moved on; index 3 is reused.
        let later = topo(vec![
            link(2, "a", 150, 40),
            link(3, "c", 1, 1),
            link(9, "b", 7, 7),
        ]);
        let traffic = later.traffic_since(&earlier);
        assert_eq!(traffic.len(), 1);
        assert_eq!(traffic[0].name, "a");
        assert_eq!(traffic[0].delta.rx_bytes, 50);
        assert_eq!(traffic[0].delta.tx_bytes, 30);
        // A counter that went down counts as 0.
        let reset = link(2, "a", 1, 1)
            .stats
            .delta_since(&earlier.links[0].stats);
        assert_eq!(reset, LinkStats::default());
    }

    #[test]
    fn routes_skip_local_table_and_fill_default_destination() {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.table = 254;
        message.header.kind = RouteType::Unicast;
        message.header.destination_prefix_length = 0;
        message.attributes = vec![
            RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(198, 18, 0, 1))),
            RouteAttribute::Oif(4),
        ];
        let route = route_from_message(&message).expect("a main-table route");
        assert_eq!(route.destination, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(route.prefix_len, 0);
        assert_eq!(
            route.gateway,
            Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)))
        );
        assert_eq!(route.oif, Some(4));
        assert_eq!(route.kind, "unicast");
        message
            .attributes
            .push(RouteAttribute::Table(RT_TABLE_LOCAL));
        assert_eq!(route_from_message(&message), None);
    }

    #[test]
    fn address_prefers_ifa_local() {
        let mut message = AddressMessage::default();
        message.header.index = 5;
        message.header.prefix_len = 24;
        message.header.scope = AddressScope::Universe;
        message.attributes = vec![
            AddressAttribute::Address(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 9))),
            AddressAttribute::Local(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2))),
        ];
        let address = address_from_message(&message).expect("an address");
        assert_eq!(address.address, IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2)));
        assert_eq!((address.index, address.prefix_len), (5, 24));
        assert_eq!(address.scope, "global");
    }

    #[test]
    fn snapshot_of_own_namespace_has_loopback() {
        let topology = snapshot().expect("rtnetlink dumps need no privileges");
        let lo = topology.link_by_name("lo").expect("every namespace has lo");
        assert_eq!(lo.kind, "loopback");
        assert!(
            topology
                .addresses
                .iter()
                .any(|a| a.index == lo.index && a.address == IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "127.0.0.1 on lo: {:?}",
            topology.addresses
        );
        let inode = std::fs::metadata("/proc/self/ns/net")
            .expect("own netns")
            .ino();
        assert_eq!(topology.netns.inode, inode);
    }

    #[test]
    fn live_docker_like_topology() {
        if let Some(reason) = unavailable() {
            eprintln!("skipping live_docker_like_topology: {reason}");
            return;
        }
        let net = TestNet::build();
        let host = snapshot().expect("host topology");
        let bridge = host.link_by_name(&net.bridge).expect("bridge listed");
        assert_eq!(bridge.kind, "bridge");
        assert!(bridge.up);
        let veth = host.link_by_name(&net.veth_host).expect("host veth listed");
        assert_eq!(veth.kind, "veth");
        assert_eq!(veth.master, Some(bridge.index));
        assert_eq!(veth.qdisc.as_deref(), Some("tbf"));
        let peer = veth.peer.clone().expect("veth has a peer");
        assert!(peer.netnsid.is_some(), "peer is in another namespace");
        let peer_netns = peer.netns.clone().expect("peer namespace resolved");
        assert_eq!(peer_netns.name.as_deref(), Some(net.netns.as_str()));
        assert!(host.addresses.iter().any(|a| a.index == bridge.index
            && a.address == IpAddr::V4(net.bridge_ip)
            && a.prefix_len == 24));
        let subnet = IpAddr::V4(Ipv4Addr::from(u32::from(net.bridge_ip) & 0xFFFF_FF00));
        assert!(
            host.routes.iter().any(|r| r.destination == subnet
                && r.prefix_len == 24
                && r.oif == Some(bridge.index)),
            "connected route of the bridge: {:?}",
            host.routes
        );

        let inside = snapshot_in(&net.netns_path).expect("namespace topology");
        assert_eq!(inside.netns, peer_netns);
        assert_ne!(inside.netns.inode, host.netns.inode);
        let ns_veth = inside
            .link_by_name(&net.veth_ns)
            .expect("netns veth listed");
        assert_eq!(ns_veth.index, peer.index, "host veth's peer index");
        assert_eq!(
            inside.link_by_name("lo").map(|l| l.kind.as_str()),
            Some("loopback")
        );
        let back = ns_veth.peer.clone().expect("netns veth has a peer");
        assert_eq!(back.index, veth.index);
        // The process's own namespace resolves the way back.
        assert_eq!(back.netns.map(|n| n.inode), Some(host.netns.inode));
        assert!(
            inside
                .addresses
                .iter()
                .any(|a| a.index == ns_veth.index && a.address == IpAddr::V4(net.ns_ip))
        );

        // Traffic through the DNAT crosses host veth tx and netns veth rx.
        let server = net.serve(2);
        let sent = 20_000;
        assert_eq!(net.send_through_nat(sent), sent as u64);
        assert_eq!(net.send_through_nat(sent), sent as u64);
        assert_eq!(server.join().expect("server thread"), vec![20_000, 20_000]);
        // Let the last ACKs and FINs cross and the shaper drain before reading.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let host_after = snapshot().expect("host topology again");
        let inside_after = snapshot_in(&net.netns_path).expect("namespace again");
        let host_traffic = host_after.traffic_since(&host);
        let out = host_traffic
            .iter()
            .find(|t| t.name == net.veth_host)
            .expect("host veth traffic");
        let inside_traffic = inside_after.traffic_since(&inside);
        let arrived = inside_traffic
            .iter()
            .find(|t| t.name == net.veth_ns)
            .expect("netns veth traffic");
        eprintln!(
            "host veth tx {} B / {} pkts, netns veth rx {} B / {} pkts (payload {} B; tbf {} B/s)",
            out.delta.tx_bytes,
            out.delta.tx_packets,
            arrived.delta.rx_bytes,
            arrived.delta.rx_packets,
            2 * sent,
            TBF_RATE_BYTES
        );
        assert!(out.delta.tx_bytes >= 2 * sent as u64);
        assert!(arrived.delta.rx_bytes >= 2 * sent as u64);
        // What one end sends the other receives; the two readings are a few ms apart, so allow a
        // few small control packets (ACK, FIN) sent in between.
        let packets = out.delta.tx_packets.abs_diff(arrived.delta.rx_packets);
        let bytes = out.delta.tx_bytes.abs_diff(arrived.delta.rx_bytes);
        assert!(
            packets <= 4 && bytes <= 4 * 100,
            "tx {out:?} vs rx {arrived:?}"
        );
    }
}
