//! The network path per interval: link statistics and qdiscs of every namespace in use, the
//! conntrack table's fill and counters, and NAT translations of the ports clients connect to.
//! Everything here reads counters the kernel keeps (netlink, procfs): nothing is attached.
//!
//! Namespaces in use are this one, the named ones (`/var/run/netns`, Docker's), and those of the
//! processes in play. They come and go during a run: one that cannot be read any more is dropped
//! with a note in the interval's `net_errors`, never an error of the session.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use crate::{
    collect::{CollectError, conntrack, net, qdisc, topology},
    recording::{
        ConntrackInterval, ConntrackStats, DeviceDrop, DeviceInterval, DevicePackets, NatMapping,
        Qdisc, QdiscInterval, QdiscRow, Topology,
    },
};
use chokepoint_common::{DropDevKey, NET_BACKLOG, NET_XMIT, NetDevCounts, NetDevKey};

/// More namespaces than this are not followed (each costs a thread and four netlink dumps per
/// interval); the rest is noted once.
const MAX_NAMESPACES: usize = 32;
/// Ports whose NAT translations are looked up per interval, all in one conntrack dump (it walks
/// the whole table: about 13 ms for 262,144 buckets here, more with many entries).
const NAT_LOOKUPS_PER_INTERVAL: usize = 16;
/// Lookups of one port that found nothing before it is given up (an entry exists from the
/// connection's first packet, so a second look only covers a race with the interval's end).
const NAT_TRIES: u8 = 2;

/// What the network path adds to one interval.
#[derive(Debug, Default)]
pub struct NetInterval {
    pub devices: Vec<DeviceInterval>,
    pub qdiscs: Vec<QdiscRow>,
    pub conntrack: Option<ConntrackInterval>,
    pub nat: Vec<NatMapping>,
    pub topology: Vec<Topology>,
    pub errors: Vec<String>,
}

struct Watched {
    /// None: chokepoint's own namespace (read without switching).
    path: Option<PathBuf>,
    inode: u64,
    /// Where it was found (`/var/run/netns/x`, `pid 123`), for notes.
    origin: String,
    topology: Topology,
    qdiscs: Vec<Qdisc>,
}

pub struct NetSampler {
    own_inode: u64,
    nsfs_dev: u64,
    watched: Vec<Watched>,
    conntrack: Option<ConntrackStats>,
    /// Port -> lookups that found nothing (u8::MAX once found).
    nat_tries: HashMap<u16, u8>,
    /// Notes already written (each is written once).
    noted: HashSet<String>,
}

fn read(path: Option<&Path>) -> Result<(Topology, Vec<Qdisc>), CollectError> {
    let both = || Ok((topology::snapshot()?, qdisc::qdiscs()?));
    match path {
        None => both(),
        Some(p) => net::in_netns(p, both),
    }
}

/// What makes two topologies the same for the recording: links (not their counters),
/// addresses and routes.
fn same_shape(a: &Topology, b: &Topology) -> bool {
    let links = |t: &Topology| -> Vec<_> {
        t.links
            .iter()
            .map(|l| {
                (
                    l.index,
                    l.name.clone(),
                    l.kind.clone(),
                    l.master,
                    l.peer.as_ref().map(|p| (p.index, p.netnsid)),
                    l.up,
                    l.lower_up,
                    l.qdisc.clone(),
                )
            })
            .collect()
    };
    links(a) == links(b) && a.addresses == b.addresses && a.routes == b.routes
}

/// Device rows of one namespace: the links' counter increases, non-zero only.
pub fn device_rows(later: &Topology, earlier: &Topology) -> Vec<DeviceInterval> {
    let netns = later.netns.to_string();
    later
        .traffic_since(earlier)
        .into_iter()
        .filter(|t| t.delta != Default::default())
        .map(|t| DeviceInterval {
            netns: netns.clone(),
            kind: later
                .link(t.index)
                .map(|l| l.kind.clone())
                .unwrap_or_default(),
            name: t.name,
            rx_packets: t.delta.rx_packets,
            tx_packets: t.delta.tx_packets,
            rx_bytes: t.delta.rx_bytes,
            tx_bytes: t.delta.tx_bytes,
            rx_dropped: t.delta.rx_dropped,
            tx_dropped: t.delta.tx_dropped,
        })
        .collect()
}

/// Qdisc rows of one namespace: shapers (a configured rate) always, others when they moved
/// packets, dropped or hold a backlog.
pub fn qdisc_rows(netns: &str, later: &[Qdisc], earlier: &[Qdisc]) -> Vec<QdiscRow> {
    let mut rows = qdisc::deltas(later, earlier);
    // htb keeps its rates on classes: each class is a row of kind `htb-class` whose rate is
    // its ceil (what it may use at most), else its rate.
    for q in later.iter().filter(|q| q.kind == "htb") {
        let before = earlier
            .iter()
            .find(|e| e.ifindex == q.ifindex && e.handle == q.handle && e.kind == q.kind);
        for class in &q.classes {
            let Some(prev) =
                before.and_then(|b| b.classes.iter().find(|c| c.classid == class.classid))
            else {
                continue;
            };
            rows.push(QdiscInterval {
                ifindex: q.ifindex,
                device: q.device.clone(),
                kind: "htb-class".into(),
                handle: class.classid.clone(),
                parent: class.parent.clone(),
                rate_bytes_per_second: class.ceil_bytes_per_second.or(class.rate_bytes_per_second),
                delta: class.stats.delta_since(&prev.stats),
            });
        }
    }
    rows.into_iter()
        .filter(|q| {
            q.rate_bytes_per_second.is_some()
                || q.delta.packets > 0
                || q.delta.drops > 0
                || q.delta.backlog_packets > 0
        })
        .map(|q| QdiscRow {
            netns: netns.to_string(),
            qdisc: q,
        })
        .collect()
}

/// NAT translations among conntrack entries for connections to `port`: destination-NATed
/// entries grouped by (protocol, original destination, reply source).
pub fn nat_mappings(port: u16, entries: &[conntrack::ConntrackEntry]) -> Vec<NatMapping> {
    let mut grouped: BTreeMap<(String, String, String, Option<String>), u64> = BTreeMap::new();
    for e in entries {
        if !e.dst_nat || e.original.destination_port != Some(port) {
            continue;
        }
        let addr = |ip: std::net::IpAddr, port: Option<u16>| match port {
            Some(p) => std::net::SocketAddr::new(ip, p).to_string(),
            None => ip.to_string(),
        };
        let original = addr(e.original.destination, e.original.destination_port);
        let translated = addr(e.reply.source, e.reply.source_port);
        let masq = e.src_nat.then(|| e.reply.destination.to_string());
        *grouped
            .entry((e.protocol.clone(), original, translated, masq))
            .or_default() += 1;
    }
    grouped
        .into_iter()
        .map(
            |((protocol, original, translated, masqueraded_as), entries)| NatMapping {
                protocol,
                original,
                translated,
                masqueraded_as,
                entries,
            },
        )
        .collect()
}

impl NetSampler {
    /// Takes the baselines. Returns the sampler, the topology of every namespace found, and
    /// limitations (conntrack not loaded, a namespace that could not be read).
    pub fn new() -> (Self, Vec<Topology>, Vec<String>) {
        let mut limitations = Vec::new();
        let own = Path::new("/proc/thread-self/ns/net");
        let (own_inode, nsfs_dev) = std::fs::metadata(own)
            .map(|m| (m.ino(), m.dev()))
            .unwrap_or((0, 0));
        let conntrack = match conntrack::stats() {
            Ok(Some(s)) => Some(s),
            Ok(None) => {
                limitations.push(
                    "conntrack not loaded (no nf_conntrack_count): no conntrack figures, no NAT hops"
                        .to_string(),
                );
                None
            }
            Err(e) => {
                limitations.push(format!("conntrack statistics unreadable: {e}"));
                None
            }
        };
        let mut sampler = Self {
            own_inode,
            nsfs_dev,
            watched: Vec::new(),
            conntrack,
            nat_tries: HashMap::new(),
            noted: HashSet::new(),
        };
        match read(None) {
            Ok((topology, qdiscs)) => sampler.watched.push(Watched {
                path: None,
                inode: own_inode,
                origin: "own".into(),
                topology,
                qdiscs,
            }),
            Err(e) => limitations.push(format!("network topology unreadable: {e}")),
        }
        let mut errors = Vec::new();
        sampler.discover(&[], &mut errors, &mut Vec::new());
        limitations.extend(errors);
        let topologies = sampler.watched.iter().map(|w| w.topology.clone()).collect();
        (sampler, topologies, limitations)
    }

    /// Follows namespaces not watched yet: named ones, and those of `pids`. New ones are read
    /// (their baseline) and their topology is pushed to `appeared`.
    fn discover(&mut self, pids: &[u32], errors: &mut Vec<String>, appeared: &mut Vec<Topology>) {
        let mut candidates: Vec<(PathBuf, u64, String)> = net::named_netns()
            .into_iter()
            .filter(|(_, dev, _)| *dev == self.nsfs_dev)
            .map(|(path, _, inode)| {
                let origin = path.display().to_string();
                (path, inode, origin)
            })
            .collect();
        for pid in pids {
            let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
            // A process gone meanwhile has no namespace to follow.
            if let Ok(meta) = std::fs::metadata(&path) {
                candidates.push((path, meta.ino(), format!("pid {pid}")));
            }
        }
        for (path, inode, origin) in candidates {
            if inode == self.own_inode || self.watched.iter().any(|w| w.inode == inode) {
                continue;
            }
            if self.watched.len() >= MAX_NAMESPACES {
                self.note(
                    errors,
                    format!("more than {MAX_NAMESPACES} network namespaces: the rest not followed"),
                );
                return;
            }
            match read(Some(&path)) {
                Ok((topology, qdiscs)) => {
                    appeared.push(topology.clone());
                    self.watched.push(Watched {
                        path: Some(path),
                        inode,
                        origin,
                        topology,
                        qdiscs,
                    });
                }
                Err(e) => self.note(errors, format!("network namespace of {origin}: {e}")),
            }
        }
    }

    /// Chokepoint's own namespace, as `DeviceInterval.netns` names it: the one whose kernel
    /// counters (`/proc/net/snmp`) the host collector reads.
    pub fn own_netns(&self) -> Option<String> {
        self.watched
            .iter()
            .find(|w| w.path.is_none())
            .map(|w| w.topology.netns.to_string())
    }

    /// Owners of listening `ports` inside the followed namespaces (a server in a container
    /// namespace is not in chokepoint's own socket tables). The first namespace that has a
    /// port wins.
    pub fn listening_owners(
        &self,
        ports: &[u16],
    ) -> HashMap<u16, crate::collect::processes::OwnerInfo> {
        let mut found = HashMap::new();
        for w in &self.watched {
            let Some(path) = w.path.as_deref() else {
                continue;
            };
            let left: Vec<u16> = ports
                .iter()
                .copied()
                .filter(|p| !found.contains_key(p))
                .collect();
            if left.is_empty() {
                break;
            }
            // A namespace gone meanwhile just finds nothing.
            if let Ok(owners) =
                net::in_netns(path, || crate::collect::processes::listening_owners(&left))
            {
                found.extend(owners);
            }
        }
        found
    }

    fn note(&mut self, errors: &mut Vec<String>, text: String) {
        if self.noted.insert(text.clone()) {
            errors.push(text);
        }
    }

    /// One interval: `pids` are the processes in play (their namespaces are followed),
    /// `connected_ports` the remote ports of connections opened in the interval (looked up for
    /// NAT translations once each).
    pub fn sample(&mut self, pids: &[u32], connected_ports: &[u16]) -> NetInterval {
        let mut out = NetInterval::default();
        let mut errors = Vec::new();
        let mut keep = Vec::with_capacity(self.watched.len());
        for mut w in std::mem::take(&mut self.watched) {
            match read(w.path.as_deref()) {
                Ok((topology, qdiscs)) if topology.netns.inode == w.inode || w.path.is_none() => {
                    out.devices.extend(device_rows(&topology, &w.topology));
                    out.qdiscs
                        .extend(qdisc_rows(&topology.netns.to_string(), &qdiscs, &w.qdiscs));
                    if !same_shape(&topology, &w.topology) {
                        out.topology.push(topology.clone());
                    }
                    w.topology = topology;
                    w.qdiscs = qdiscs;
                    keep.push(w);
                }
                // The path now names another namespace: the old one is gone, the new one is
                // discovered afresh below.
                Ok(_) => self.note(
                    &mut errors,
                    format!(
                        "network namespace {} ({}) replaced",
                        w.topology.netns, w.origin
                    ),
                ),
                // Deleted (its bind mount or its process is gone): expected, said plainly.
                Err(CollectError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    self.note(
                        &mut errors,
                        format!(
                            "network namespace {} ({}) went away during the run",
                            w.topology.netns, w.origin
                        ),
                    )
                }
                Err(e) => self.note(
                    &mut errors,
                    format!(
                        "network namespace {} ({}) no longer readable, dropped: {e}",
                        w.topology.netns, w.origin
                    ),
                ),
            }
        }
        self.watched = keep;
        self.discover(pids, &mut errors, &mut out.topology);

        match conntrack::stats() {
            Ok(Some(now)) => {
                if let Some(before) = &self.conntrack {
                    out.conntrack = Some(now.delta_since(before));
                }
                self.conntrack = Some(now);
            }
            Ok(None) => self.conntrack = None,
            Err(e) => self.note(&mut errors, format!("conntrack statistics: {e}")),
        }
        if self.conntrack.is_some() {
            self.look_up_nat(connected_ports, &mut out.nat, &mut errors);
        }
        out.errors = errors;
        out
    }

    fn look_up_nat(&mut self, ports: &[u16], nat: &mut Vec<NatMapping>, errors: &mut Vec<String>) {
        let mut todo: Vec<u16> = ports
            .iter()
            .copied()
            .filter(|p| self.nat_tries.get(p).is_none_or(|t| *t < NAT_TRIES))
            .collect();
        todo.sort_unstable();
        todo.dedup();
        todo.truncate(NAT_LOOKUPS_PER_INTERVAL);
        if todo.is_empty() {
            return;
        }
        // One dump for all of them: it walks the whole table whatever it keeps.
        match conntrack::entries_for_ports(&todo) {
            Ok(entries) => {
                for port in todo {
                    let found = nat_mappings(port, &entries);
                    let tries = self.nat_tries.entry(port).or_default();
                    *tries = if found.is_empty() {
                        tries.saturating_add(1)
                    } else {
                        u8::MAX
                    };
                    nat.extend(found);
                }
            }
            Err(e) => {
                for port in todo {
                    self.nat_tries.insert(port, u8::MAX);
                }
                self.note(errors, format!("conntrack entries (NAT): {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_drops_are_deltas_named_by_reason_most_first() {
        let key = |dev: &str, reason: u32| {
            let mut name = [0u8; 16];
            name[..dev.len()].copy_from_slice(dev.as_bytes());
            DropDevKey { name, reason }
        };
        let reasons = BTreeMap::from([(2, "NO_SOCKET".to_string()), (5, "QDISC_DROP".into())]);
        let prev = HashMap::from([(key("veth1", 5), 10), (key("", 2), 4)]);
        let cur = HashMap::from([
            (key("veth1", 5), 70),
            (key("", 2), 4),
            (key("lo", 2), 3),
            (key("lo", 99), 1),
        ]);
        let rows = device_drops(&prev, &cur, &reasons);
        let got: Vec<(&str, &str, u64)> = rows
            .iter()
            .map(|d| (d.device.as_str(), d.reason.as_str(), d.count))
            .collect();
        assert_eq!(
            got,
            [
                ("veth1", "QDISC_DROP", 60),
                ("lo", "NO_SOCKET", 3),
                ("lo", "reason-99", 1)
            ]
        );
    }
    use crate::{
        collect::conntrack::{ConntrackEntry, FlowTuple},
        recording::{Link, LinkStats, NetnsId},
    };

    fn entry(orig_dport: u16, backend: &str, dst_nat: bool) -> ConntrackEntry {
        let ip = |s: &str| s.parse().expect("test address");
        ConntrackEntry {
            protocol: "tcp".into(),
            original: FlowTuple {
                source: ip("127.0.0.1"),
                destination: ip("127.0.0.1"),
                source_port: Some(40000),
                destination_port: Some(orig_dport),
            },
            reply: FlowTuple {
                source: ip(backend),
                destination: ip("198.18.3.1"),
                source_port: Some(80),
                destination_port: Some(40000),
            },
            dst_nat,
            src_nat: dst_nat,
            seen_reply: true,
            tcp_state: Some("TIME_WAIT".into()),
            timeout_seconds: Some(100),
        }
    }

    #[test]
    fn nat_mappings_group_dnat_entries_of_the_port_only() {
        let entries = vec![
            entry(8080, "198.18.3.2", true),
            entry(8080, "198.18.3.2", true),
            entry(8080, "198.18.3.9", true),
            entry(8080, "127.0.0.1", false),
            entry(9090, "198.18.3.2", true),
        ];
        let found = nat_mappings(8080, &entries);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].original, "127.0.0.1:8080");
        assert_eq!(found[0].translated, "198.18.3.2:80");
        assert_eq!(found[0].entries, 2);
        assert_eq!(found[0].masqueraded_as.as_deref(), Some("198.18.3.1"));
        assert_eq!(found[1].translated, "198.18.3.9:80");
    }

    fn topology(links: &[(u32, &str, u64)]) -> Topology {
        Topology {
            netns: NetnsId {
                inode: 7,
                name: Some("ns-a".into()),
            },
            links: links
                .iter()
                .map(|(index, name, tx)| Link {
                    index: *index,
                    name: (*name).into(),
                    kind: "veth".into(),
                    master: None,
                    peer: None,
                    up: true,
                    lower_up: true,
                    mtu: Some(1500),
                    qdisc: None,
                    tx_queue_len: None,
                    stats: LinkStats {
                        tx_packets: *tx,
                        tx_bytes: tx * 100,
                        ..Default::default()
                    },
                })
                .collect(),
            addresses: Vec::new(),
            routes: Vec::new(),
        }
    }

    #[test]
    fn device_rows_are_nonzero_deltas_named_by_namespace() {
        let before = topology(&[(1, "lo", 5), (2, "veth0", 10)]);
        let after = topology(&[(1, "lo", 5), (2, "veth0", 25), (3, "new0", 4)]);
        let rows = device_rows(&after, &before);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].name, "veth0");
        assert_eq!(rows[0].netns, "net:[7] ns-a");
        assert_eq!(rows[0].tx_packets, 15);
        assert_eq!(rows[0].tx_bytes, 1500);
        assert!(same_shape(
            &before,
            &topology(&[(1, "lo", 9), (2, "veth0", 0)])
        ));
        assert!(!same_shape(&before, &after));
    }
}

/// Per-device packets and bytes of one interval from the network-path programs' cumulative
/// counts, busiest first.
pub fn device_packets(
    prev: &HashMap<NetDevKey, NetDevCounts>,
    cur: &HashMap<NetDevKey, NetDevCounts>,
) -> Vec<DevicePackets> {
    let mut rows: BTreeMap<String, DevicePackets> = BTreeMap::new();
    for (key, now) in cur {
        let before = prev.get(key).copied().unwrap_or_default();
        let packets = now.packets.saturating_sub(before.packets);
        if packets == 0 {
            continue;
        }
        let bytes = now.bytes.saturating_sub(before.bytes);
        let name = super::assemble::comm_str(&key.name);
        let row = rows.entry(name.clone()).or_insert_with(|| DevicePackets {
            name,
            ..Default::default()
        });
        match key.direction {
            NET_XMIT => {
                row.xmit_packets += packets;
                row.xmit_bytes += bytes;
            }
            NET_BACKLOG => {
                row.backlog_packets += packets;
                row.backlog_bytes += bytes;
            }
            _ => {
                row.receive_packets += packets;
                row.receive_bytes += bytes;
            }
        }
    }
    let mut rows: Vec<DevicePackets> = rows.into_values().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.xmit_packets + r.receive_packets));
    rows
}

/// Drops per device and reason in the interval, most first; reasons named as this kernel
/// names them.
pub fn device_drops(
    prev: &HashMap<DropDevKey, u64>,
    cur: &HashMap<DropDevKey, u64>,
    reasons: &BTreeMap<u32, String>,
) -> Vec<DeviceDrop> {
    let mut rows: Vec<DeviceDrop> = cur
        .iter()
        .filter_map(|(key, &now)| {
            let count = now.saturating_sub(prev.get(key).copied().unwrap_or(0));
            (count > 0).then(|| DeviceDrop {
                device: super::assemble::comm_str(&key.name),
                reason: reasons
                    .get(&key.reason)
                    .cloned()
                    .unwrap_or_else(|| format!("reason-{}", key.reason)),
                count,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.device, &a.reason).cmp(&(&b.device, &b.reason)))
    });
    rows
}

#[cfg(test)]
mod packet_tests {
    use super::*;
    use chokepoint_common::{IFNAMSIZ, NET_RECEIVE};

    fn key(name: &str, direction: u32) -> NetDevKey {
        let mut k = NetDevKey {
            name: [0; IFNAMSIZ],
            direction,
        };
        k.name[..name.len()].copy_from_slice(name.as_bytes());
        k
    }

    #[test]
    fn device_packets_are_per_name_deltas_busiest_first() {
        let c = |packets, bytes| NetDevCounts { packets, bytes };
        let prev = HashMap::from([(key("lo", NET_XMIT), c(10, 1000))]);
        let cur = HashMap::from([
            (key("lo", NET_XMIT), c(15, 1600)),
            (key("lo", NET_RECEIVE), c(5, 600)),
            (key("veth1", NET_XMIT), c(40, 4000)),
            (key("eth0", NET_RECEIVE), c(0, 0)),
        ]);
        let rows = device_packets(&prev, &cur);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].name, "veth1");
        assert_eq!(rows[1].name, "lo");
        assert_eq!((rows[1].xmit_packets, rows[1].xmit_bytes), (5, 600));
        assert_eq!((rows[1].receive_packets, rows[1].receive_bytes), (5, 600));
    }
}

#[cfg(test)]
mod qdisc_tests {
    use super::*;
    use crate::recording::{QdiscStats, TrafficClass};

    fn htb(class_bytes: u64, drops: u64) -> Qdisc {
        Qdisc {
            ifindex: 3,
            device: "veth0".into(),
            kind: "htb".into(),
            handle: "1:".into(),
            parent: "root".into(),
            rate_bytes_per_second: None,
            stats: QdiscStats {
                bytes: class_bytes,
                packets: class_bytes / 1000,
                drops,
                ..Default::default()
            },
            classes: vec![TrafficClass {
                classid: "1:10".into(),
                parent: "1:".into(),
                kind: "htb".into(),
                rate_bytes_per_second: Some(100_000),
                ceil_bytes_per_second: Some(250_000),
                stats: QdiscStats {
                    bytes: class_bytes,
                    packets: class_bytes / 1000,
                    ..Default::default()
                },
            }],
        }
    }

    #[test]
    fn htb_classes_become_rows_rated_at_their_ceil() {
        let rows = qdisc_rows("net:[1]", &[htb(900_000, 4)], &[htb(400_000, 1)]);
        assert_eq!(rows.len(), 2, "{rows:?}");
        let class = rows
            .iter()
            .find(|r| r.qdisc.kind == "htb-class")
            .expect("class row");
        assert_eq!(class.qdisc.handle, "1:10");
        assert_eq!(class.qdisc.rate_bytes_per_second, Some(250_000));
        assert_eq!(class.qdisc.delta.bytes, 500_000);
        let root = rows
            .iter()
            .find(|r| r.qdisc.kind == "htb")
            .expect("qdisc row");
        assert_eq!(root.qdisc.delta.drops, 3);
        assert_eq!(root.netns, "net:[1]");
    }
}
