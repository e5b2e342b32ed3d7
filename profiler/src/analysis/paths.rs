//! The request path of each client→server flow group: the hops a connection crosses (loopback,
//! a user-space proxy, NAT, bridge, veth, a namespace boundary, a device), each with what it
//! carried over the recording. Built from the recording alone: connection rows (who accepts on
//! which port, who connects where), conntrack NAT mappings, the topology and the device table.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::{IpAddr, SocketAddr},
};

use serde::{Deserialize, Serialize};

use super::summary::ProcessSummary;
use crate::recording::{Direction, Link, NatMapping, Recording, Role, Topology};

/// A proxy opens at least half as many upstream connections as it accepts: about as many when
/// both sides open one per request, far more when clients keep their connections alive and
/// upstream ones are opened per request. Fewer means outbound connections unrelated to the
/// requests (a health check, a log shipper).
const PROXY_MIN_CONNECTS_PER_ACCEPT: f64 = 0.5;
/// Flow groups reported, busiest first.
const MAX_PATHS: usize = 8;
/// Hops followed from one client before giving up (a proxy chain, or a loop).
const MAX_HOPS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HopKind {
    Loopback,
    Proxy,
    Bridge,
    Veth,
    Nat,
    Netns,
    Device,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    pub kind: HopKind,
    pub name: String,
    /// Device hops: received + sent per second over the recording (link statistics).
    pub packets_per_s: Option<f64>,
    pub bytes_per_s: Option<f64>,
    /// Device hops: packets the device and its qdiscs dropped.
    pub drops: Option<u64>,
    /// Proxy hops: the proxy's CPU over the host's capacity (0..1). Device hops: the estimated
    /// softirq share (`DeviceSummary::softirq_cpu_share`).
    pub cpu_share: Option<f64>,
    /// Proxy hops: its pid (the listening socket's owner).
    pub pid: Option<u32>,
    /// Namespace of a device hop, as `net:[inode] name`.
    pub netns: Option<String>,
    /// What else is known: a proxy's accept and connect rates, a NAT mapping's entries.
    pub detail: Option<String>,
    /// Proxy and NAT hops: the mean TCP connect time (SYN sent -> established) of the
    /// connections made to this hop's port, ms: the set-up latency paid to reach it. Compared
    /// along a path it shows what each tier adds.
    pub connect_ms: Option<f64>,
    /// Proxy hops: the proxy's CPU per request it passes on, µs (its cores over the requests
    /// per second: upstream connects when it opens one per request, else requests served).
    pub cpu_us_per_request: Option<f64>,
    /// Namespace hops: the device the path enters the namespace by (the veth's peer), when
    /// known; without it every device of the namespace is taken to be on the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

impl Hop {
    fn new(kind: HopKind, name: impl Into<String>) -> Self {
        Hop {
            kind,
            name: name.into(),
            packets_per_s: None,
            bytes_per_s: None,
            drops: None,
            cpu_share: None,
            pid: None,
            netns: None,
            detail: None,
            connect_ms: None,
            cpu_us_per_request: None,
            device: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetPath {
    /// The connecting process, `comm[pid]`.
    pub client: String,
    /// The port it connected to.
    pub port: u16,
    pub connections_per_s: f64,
    pub hops: Vec<Hop>,
    /// The process serving the last hop (`comm[pid]`, or `port N` when its owner is unknown).
    pub server: String,
    /// The path on one line: `wrk → lo → nginx (proxy, pid 12) → ... → nginx`.
    pub text: String,
}

/// Traffic of one device over the whole recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceSummary {
    pub netns: String,
    pub name: String,
    pub kind: String,
    pub rx_packets_per_s: f64,
    pub tx_packets_per_s: f64,
    pub rx_bytes_per_s: f64,
    pub tx_bytes_per_s: f64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    /// Drops of the device's qdiscs.
    pub qdisc_drops: u64,
    /// An estimate: the host's NET_RX + NET_TX softirq time apportioned by the device's share of
    /// all devices' packets, over the host's capacity (0..1). Null without softirq figures.
    pub softirq_cpu_share: Option<f64>,
}

/// Packets per device name from the opt-in per-packet programs (`--packet-probes`), over the
/// recording (all namespaces together, as the programs see names only), busiest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacketSummary {
    pub name: String,
    pub xmit_packets_per_s: f64,
    pub receive_packets_per_s: f64,
    /// Queued to a CPU's backlog by `netif_rx` (software devices: loopback, veth...).
    pub backlog_packets_per_s: f64,
    pub xmit_packets: u64,
    pub receive_packets: u64,
    pub backlog_packets: u64,
}

pub fn packets(r: &Recording, seconds: f64) -> Vec<PacketSummary> {
    let secs = seconds.max(1e-9);
    let mut by: BTreeMap<&str, PacketSummary> = BTreeMap::new();
    for d in r.intervals.iter().flat_map(|iv| &iv.net_packets) {
        let s = by.entry(&d.name).or_insert_with(|| PacketSummary {
            name: d.name.clone(),
            ..Default::default()
        });
        s.xmit_packets += d.xmit_packets;
        s.receive_packets += d.receive_packets;
        s.backlog_packets += d.backlog_packets;
    }
    let mut out: Vec<PacketSummary> = by
        .into_values()
        .map(|mut s| {
            s.xmit_packets_per_s = s.xmit_packets as f64 / secs;
            s.receive_packets_per_s = s.receive_packets as f64 / secs;
            s.backlog_packets_per_s = s.backlog_packets as f64 / secs;
            s
        })
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.xmit_packets + s.receive_packets + s.backlog_packets));
    out
}

/// The conntrack table over the whole recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConntrackSummary {
    pub max: u64,
    pub peak_count: u64,
    pub peak_fill: f64,
    pub insert_failed: u64,
    pub drop: u64,
    pub early_drop: u64,
    /// NAT translations found for the ports clients connected to.
    pub nat: Vec<NatMapping>,
}

pub fn devices(r: &Recording, seconds: f64) -> Vec<DeviceSummary> {
    let secs = seconds.max(1e-9);
    let mut by: BTreeMap<(String, String), DeviceSummary> = BTreeMap::new();
    for iv in &r.intervals {
        for d in &iv.devices {
            let s = by
                .entry((d.netns.clone(), d.name.clone()))
                .or_insert_with(|| DeviceSummary {
                    netns: d.netns.clone(),
                    name: d.name.clone(),
                    kind: d.kind.clone(),
                    ..Default::default()
                });
            s.rx_packets_per_s += d.rx_packets as f64 / secs;
            s.tx_packets_per_s += d.tx_packets as f64 / secs;
            s.rx_bytes_per_s += d.rx_bytes as f64 / secs;
            s.tx_bytes_per_s += d.tx_bytes as f64 / secs;
            s.rx_dropped += d.rx_dropped;
            s.tx_dropped += d.tx_dropped;
        }
        for q in &iv.qdiscs {
            // htb classes repeat their qdisc's drops.
            if q.qdisc.kind == "htb-class" {
                continue;
            }
            if let Some(s) = by.get_mut(&(q.netns.clone(), q.qdisc.device.clone())) {
                s.qdisc_drops += q.qdisc.delta.drops;
            }
        }
    }
    let mut out: Vec<DeviceSummary> = by.into_values().collect();
    // Packet processing is charged to no process: apportion the network softirqs by packets.
    // Measured in the intervals the softirq programs ran in, scaled to the whole recording.
    let all_ivs: Vec<&crate::recording::Interval> = r.intervals.iter().collect();
    let sampled: Vec<&crate::recording::Interval> =
        super::summary::softirq_sampled(&all_ivs).collect();
    let scale = super::summary::seconds(&all_ivs) / super::summary::seconds(&sampled).max(1e-9);
    let softirq_ns: u64 = (all_ivs
        .iter()
        .flat_map(|iv| iv.softirqs.iter())
        .filter(|(name, _)| matches!(name.as_str(), "NET_RX" | "NET_TX"))
        .map(|(_, f)| f.ns as f64)
        .sum::<f64>()
        * if sampled.is_empty() { 0.0 } else { scale }) as u64;
    let packets = |d: &DeviceSummary| d.rx_packets_per_s + d.tx_packets_per_s;
    let all: f64 = out.iter().map(packets).sum();
    if softirq_ns > 0 && all > 0.0 {
        let capacity = f64::from(r.header.cpus.max(1)) * secs;
        for d in &mut out {
            d.softirq_cpu_share = Some(softirq_ns as f64 / 1e9 * packets(d) / all / capacity);
        }
    }
    out.sort_by(|a, b| {
        (b.rx_bytes_per_s + b.tx_bytes_per_s).total_cmp(&(a.rx_bytes_per_s + a.tx_bytes_per_s))
    });
    out
}

pub fn conntrack(r: &Recording) -> Option<ConntrackSummary> {
    let mut out: Option<ConntrackSummary> = None;
    for iv in &r.intervals {
        if let Some(ct) = &iv.conntrack {
            let c = out.get_or_insert_with(Default::default);
            let fill = ct.count as f64 / ct.max.max(1) as f64;
            if fill >= c.peak_fill {
                c.peak_fill = fill;
                c.peak_count = ct.count;
                c.max = ct.max;
            }
            c.insert_failed += ct.get("insert_failed");
            c.drop += ct.get("drop");
            c.early_drop += ct.get("early_drop");
        }
    }
    let nat = nat_mappings(r);
    if out.is_none() && !nat.is_empty() {
        out = Some(ConntrackSummary::default());
    }
    if let Some(c) = out.as_mut() {
        c.nat = nat;
    }
    out
}

/// NAT mappings seen during the run, one per (original, translated), with the most entries.
fn nat_mappings(r: &Recording) -> Vec<NatMapping> {
    let mut by: BTreeMap<(String, String), NatMapping> = BTreeMap::new();
    for m in r.intervals.iter().flat_map(|iv| &iv.nat) {
        let e = by
            .entry((m.original.clone(), m.translated.clone()))
            .or_insert_with(|| m.clone());
        e.entries = e.entries.max(m.entries);
    }
    by.into_values().collect()
}

/// A connecting process and the remote port: (pid, comm, port).
type ActiveKey = (Option<u32>, String, u16);

/// Connection opens over the recording.
#[derive(Default)]
struct Flows {
    /// (pid, comm, remote port) -> opens.
    active: BTreeMap<ActiveKey, u64>,
    /// Listening port -> (owner pid, owner comm, accepted opens).
    passive: BTreeMap<u16, (Option<u32>, Option<String>, u64)>,
    /// Requests sent over kept-alive (pooled) connections: (pid, comm, remote port) ->
    /// request/response turns, from the connection-use probes.
    pooled: BTreeMap<(u32, String, u16), f64>,
    /// Requests served per listening port (all owners together), from the same probes.
    served: BTreeMap<u16, f64>,
    /// Remote port -> (set-up ns summed, established) of the connects made to it.
    connect_setup: BTreeMap<u16, (u64, u64)>,
}

fn flows(r: &Recording) -> Flows {
    let mut f = Flows::default();
    for c in r.intervals.iter().flat_map(|iv| &iv.connections) {
        match c.direction {
            Direction::Active => {
                *f.active
                    .entry((c.pid, c.comm.clone().unwrap_or_default(), c.port))
                    .or_default() += c.opens;
                let s = f.connect_setup.entry(c.port).or_default();
                s.0 += c.setup_ns;
                s.1 += c.established;
            }
            Direction::Passive => {
                let e = f.passive.entry(c.port).or_default();
                e.0 = e.0.or(c.pid);
                e.1 = e.1.clone().or_else(|| c.comm.clone());
                e.2 += c.opens;
            }
        }
    }
    // The connection-use probes may be sampled (the default tier): their requests over the
    // measured intervals, scaled to the whole recording like the opens counted throughout.
    let (mut all_secs, mut measured_secs) = (0.0, 0.0);
    for iv in &r.intervals {
        let secs = iv.seconds();
        all_secs += secs;
        if !iv.conn_use_measured() {
            continue;
        }
        measured_secs += secs;
        for p in &iv.pools {
            let Some(port) = p.endpoint.rsplit(':').next().and_then(|x| x.parse().ok()) else {
                continue;
            };
            *f.pooled.entry((p.pid, p.comm.clone(), port)).or_default() += p.requests_per_s * secs;
        }
        for i in &iv.inbound {
            *f.served.entry(i.port).or_default() += i.requests_per_s * secs;
        }
    }
    if measured_secs > 0.0 && measured_secs < all_secs {
        let scale = all_secs / measured_secs;
        for v in f.pooled.values_mut().chain(f.served.values_mut()) {
            *v *= scale;
        }
    }
    f
}

/// The latest topology of each namespace: the header's, updated by the intervals'.
fn topologies(r: &Recording) -> Vec<Topology> {
    let mut by: Vec<Topology> = r.header.topology.clone();
    for t in r.intervals.iter().flat_map(|iv| &iv.topology) {
        match by.iter_mut().find(|x| x.netns.inode == t.netns.inode) {
            Some(x) => *x = t.clone(),
            None => by.push(t.clone()),
        }
    }
    by
}

fn contains(net: IpAddr, prefix_len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let bits = u32::from(prefix_len.min(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let bits = u32::from(prefix_len.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// The link a packet to `ip` leaves by in `t`: the longest matching route with an output link.
fn route_link(t: &Topology, ip: IpAddr) -> Option<&Link> {
    t.routes
        .iter()
        .filter(|r| {
            r.oif.is_some() && r.kind == "unicast" && contains(r.destination, r.prefix_len, ip)
        })
        .max_by_key(|r| r.prefix_len)
        .and_then(|r| t.link(r.oif?))
}

/// The prefix length of the route `ip` leaves `t` by, if it has one with an output link.
fn route_prefix(t: &Topology, ip: IpAddr) -> Option<u8> {
    t.routes
        .iter()
        .filter(|r| {
            r.oif.is_some() && r.kind == "unicast" && contains(r.destination, r.prefix_len, ip)
        })
        .map(|r| r.prefix_len)
        .max()
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

struct Context<'a> {
    seconds: f64,
    cpus: f64,
    devices: &'a [DeviceSummary],
    processes: &'a [ProcessSummary],
    ppid: HashMap<u32, u32>,
    /// Each process's network namespace (inode), from its description.
    netns_of: HashMap<u32, u64>,
    topologies: Vec<Topology>,
    nat: Vec<NatMapping>,
    flows: Flows,
}

impl Context<'_> {
    fn device_hop(&self, kind: HopKind, netns: &str, name: &str) -> Hop {
        let mut hop = Hop::new(kind, name);
        hop.netns = Some(netns.to_string());
        if let Some(d) = self
            .devices
            .iter()
            .find(|d| d.netns == netns && d.name == name)
        {
            hop.packets_per_s = Some(d.rx_packets_per_s + d.tx_packets_per_s);
            hop.bytes_per_s = Some(d.rx_bytes_per_s + d.tx_bytes_per_s);
            hop.drops = Some(d.rx_dropped + d.tx_dropped + d.qdisc_drops);
            hop.cpu_share = d.softirq_cpu_share;
        }
        hop
    }

    /// Same service: the same process, or parent and child (a master and its workers).
    fn related(&self, a: u32, b: u32) -> bool {
        a == b || self.ppid.get(&a) == Some(&b) || self.ppid.get(&b) == Some(&a)
    }

    /// Hops from the observer's own namespace's routing to the namespace that owns `ip`.
    fn route_hops(&self, ip: IpAddr, hops: &mut Vec<Hop>) {
        if let Some(own) = self.topologies.first() {
            self.route_hops_from(own, ip, hops);
        }
    }

    /// Hops from `from`'s routing to the namespace that owns `ip`: the link the route leaves
    /// by (a bridge and its veth port toward that namespace, or a veth), the namespace entered
    /// by the veth's peer, and the bridge there when the peer is a bridge port.
    fn route_hops_from(&self, from: &Topology, ip: IpAddr, hops: &mut Vec<Hop>) {
        let Some(link) = route_link(from, ip) else {
            return;
        };
        let own_ns = from.netns.to_string();
        // The namespace that has `ip` as an address of its own.
        let target = self
            .topologies
            .iter()
            .filter(|t| t.netns.inode != from.netns.inode)
            .find(|t| t.addresses.iter().any(|a| a.address == ip));
        let veth = match link.kind.as_str() {
            "bridge" => {
                hops.push(self.device_hop(HopKind::Bridge, &own_ns, &link.name));
                let ports: Vec<&Link> = from
                    .links
                    .iter()
                    .filter(|l| l.master == Some(link.index) && l.kind == "veth")
                    .collect();
                let into_target = ports.iter().copied().find(|l| {
                    let peer_ns = l.peer.as_ref().and_then(|p| p.netns.as_ref());
                    matches!((peer_ns, target), (Some(p), Some(t)) if p.inode == t.netns.inode)
                });
                into_target.or(if ports.len() == 1 {
                    ports.first().copied()
                } else {
                    None
                })
            }
            "veth" => Some(link),
            "loopback" => {
                hops.push(self.device_hop(HopKind::Loopback, &own_ns, &link.name));
                None
            }
            _ => {
                hops.push(self.device_hop(HopKind::Device, &own_ns, &link.name));
                None
            }
        };
        let Some(veth) = veth else { return };
        hops.push(self.device_hop(HopKind::Veth, &own_ns, &veth.name));
        let peer_ns = veth.peer.as_ref().and_then(|p| p.netns.as_ref());
        let inner = peer_ns
            .and_then(|ns| self.topologies.iter().find(|t| t.netns.inode == ns.inode))
            .or(target);
        let Some(t) = inner else { return };
        let own = self.topologies.first().map(|o| o.netns.inode);
        let name = t.netns.name.clone().unwrap_or_else(|| {
            if own == Some(t.netns.inode) {
                "host".into()
            } else {
                format!("net:[{}]", t.netns.inode)
            }
        });
        let mut hop = Hop::new(HopKind::Netns, name);
        let peer = veth.peer.as_ref().and_then(|p| t.link(p.index));
        let inner_ns = t.netns.to_string();
        if let Some(p) = peer {
            let inside = self.device_hop(HopKind::Netns, &inner_ns, &p.name);
            hop.packets_per_s = inside.packets_per_s;
            hop.bytes_per_s = inside.bytes_per_s;
            hop.drops = inside.drops;
            hop.cpu_share = inside.cpu_share;
            hop.detail = Some(format!("via {}", p.name));
            hop.device = Some(p.name.clone());
        }
        hop.netns = Some(inner_ns.clone());
        hops.push(hop);
        // Entered by a bridge port: the bridge forwards (or delivers) what arrives.
        if let Some(bridge) = peer.and_then(|p| t.link(p.master?)) {
            hops.push(self.device_hop(HopKind::Bridge, &inner_ns, &bridge.name));
        }
    }

    /// A process's network namespace: its own as described, else that of a process of the
    /// same service (a listening master that never ran while recording has workers that did).
    fn netns(&self, pid: u32) -> Option<u64> {
        self.netns_of.get(&pid).copied().or_else(|| {
            self.netns_of
                .iter()
                .filter(|(other, _)| self.related(pid, **other))
                .map(|(_, ns)| *ns)
                .min()
        })
    }

    /// The hops between a client and a server in different network namespaces, addressed
    /// without NAT: from the client's namespace's routes to an address the server's
    /// namespace owns. `None` when both share a namespace, or either is unknown (loopback).
    fn between_namespaces(&self, client: Option<u32>, server: Option<u32>) -> Option<Vec<Hop>> {
        let (a, b) = (self.netns(client?)?, self.netns(server?)?);
        if a == b {
            return None;
        }
        let from = self.topologies.iter().find(|t| t.netns.inode == a)?;
        let to = self.topologies.iter().find(|t| t.netns.inode == b)?;
        // The server's own addresses the client has a route to, most specific route first.
        let ip = to
            .addresses
            .iter()
            .map(|x| x.address)
            .filter(|ip| !ip.is_loopback() && !is_link_local(*ip))
            .filter_map(|ip| Some((route_prefix(from, ip)?, ip)))
            .max_by_key(|(prefix, _)| *prefix)
            .map(|(_, ip)| ip)?;
        let mut hops = Vec::new();
        self.route_hops_from(from, ip, &mut hops);
        (!hops.is_empty()).then_some(hops)
    }

    fn cores_of(&self, owner: u32, comm: &str) -> f64 {
        self.processes
            .iter()
            .filter(|p| p.comm == comm && self.related(p.pid, owner))
            .map(|p| p.cores_used)
            .sum()
    }

    /// Follows one client's connections to `port` through proxies and NAT to the server.
    fn follow(&self, mut from: Option<u32>, mut port: u16) -> (Vec<Hop>, String) {
        let secs = self.seconds.max(1e-9);
        let mut hops = Vec::new();
        let mut visited = HashSet::new();
        while visited.insert(port) && hops.len() < MAX_HOPS {
            if let Some(m) = self
                .nat
                .iter()
                .filter(|m| {
                    m.original
                        .parse::<SocketAddr>()
                        .is_ok_and(|a| a.port() == port)
                })
                .max_by_key(|m| m.entries)
            {
                let mut hop = Hop::new(HopKind::Nat, format!("{}→{}", m.original, m.translated));
                hop.connect_ms = self.connect_ms(port);
                hop.detail = Some(match &m.masqueraded_as {
                    Some(src) => {
                        format!("{} {} entries, masqueraded as {src}", m.entries, m.protocol)
                    }
                    None => format!("{} {} entries", m.entries, m.protocol),
                });
                hops.push(hop);
                let Ok(to) = m.translated.parse::<SocketAddr>() else {
                    break;
                };
                self.route_hops(to.ip(), &mut hops);
                return (hops, self.server_name(to.port()));
            }
            // Without NAT: across namespaces by their routes when the two ends live in
            // different ones, else over loopback.
            let server = self.flows.passive.get(&port).and_then(|v| v.0);
            match self.between_namespaces(from, server) {
                Some(between) => hops.extend(between),
                None => {
                    let own_ns = self.topologies.first().map(|t| t.netns.to_string());
                    let lo = self
                        .topologies
                        .first()
                        .and_then(|t| t.links.iter().find(|l| l.kind == "loopback"))
                        .map_or("lo".to_string(), |l| l.name.clone());
                    hops.push(self.device_hop(
                        HopKind::Loopback,
                        own_ns.as_deref().unwrap_or(""),
                        &lo,
                    ));
                }
            }
            let Some((Some(owner), comm, accepts)) = self.flows.passive.get(&port).cloned() else {
                break;
            };
            let comm = comm.unwrap_or_default();
            // Upstream connections of the same service: a proxy opening one per request.
            let mut upstream: BTreeMap<u16, u64> = BTreeMap::new();
            for ((pid, c, p), opens) in &self.flows.active {
                if *c == comm && pid.is_some_and(|pid| self.related(pid, owner)) && *p != port {
                    *upstream.entry(*p).or_default() += opens;
                }
            }
            let next = upstream
                .into_iter()
                .max_by_key(|(_, opens)| *opens)
                .filter(|(_, opens)| {
                    *opens as f64 / accepts.max(1) as f64 >= PROXY_MIN_CONNECTS_PER_ACCEPT
                });
            // (next port, detail, requests per second through the proxy).
            let (next_port, detail, per_s) = match next {
                // One upstream connection per request: its connects count the requests.
                Some((next_port, connects)) => (
                    next_port,
                    format!(
                        "accepts {:.0}/s on port {port}, connects {:.0}/s to port {next_port}",
                        accepts as f64 / secs,
                        connects as f64 / secs
                    ),
                    connects as f64 / secs,
                ),
                // Kept-alive upstream connections: match requests served against requests
                // sent upstream instead of accepts against connects.
                None => match self.pooled_upstream(port, owner, &comm) {
                    Some((next_port, served, sent)) => (
                        next_port,
                        format!(
                            "serves {:.0} requests/s on port {port}, sends {:.0}/s to port {next_port} over kept-alive connections",
                            served / secs,
                            sent / secs
                        ),
                        served / secs,
                    ),
                    None => break,
                },
            };
            let mut hop = Hop::new(HopKind::Proxy, comm.clone());
            hop.connect_ms = self.connect_ms(port);
            hop.pid = Some(owner);
            let cores = self.cores_of(owner, &comm);
            hop.cpu_share = Some(cores / self.cpus.max(1.0));
            hop.cpu_us_per_request = (per_s > 0.0).then(|| cores / per_s * 1e6);
            hop.detail = Some(detail);
            hops.push(hop);
            port = next_port;
            from = Some(owner);
        }
        (hops, self.server_name(port))
    }

    /// Mean connect time to `port`, ms, where connects to it were established.
    fn connect_ms(&self, port: u16) -> Option<f64> {
        let &(ns, n) = self.flows.connect_setup.get(&port)?;
        // Recordings older than the set-up sums carry none (0): unknown, not instant.
        (n > 0 && ns > 0).then(|| ns as f64 / n as f64 / 1e6)
    }

    /// The upstream port a service on `port` sends about as many requests to as it serves,
    /// over pooled connections: (upstream port, requests served, requests sent).
    fn pooled_upstream(&self, port: u16, owner: u32, comm: &str) -> Option<(u16, f64, f64)> {
        let served = self.flows.served.get(&port).copied().unwrap_or(0.0);
        if served <= 0.0 {
            return None;
        }
        let mut sent: BTreeMap<u16, f64> = BTreeMap::new();
        for ((pid, c, p), requests) in &self.flows.pooled {
            if c == comm && self.related(*pid, owner) && *p != port {
                *sent.entry(*p).or_default() += requests;
            }
        }
        sent.into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .filter(|(_, n)| n / served >= PROXY_MIN_CONNECTS_PER_ACCEPT)
            .map(|(p, n)| (p, served, n))
    }

    fn server_name(&self, port: u16) -> String {
        match self.flows.passive.get(&port) {
            Some((Some(pid), Some(comm), _)) => format!("{comm}[{pid}]"),
            _ => format!("port {port}"),
        }
    }
}

/// One line: `wrk → lo → nginx (proxy, pid 12) → nat a→b → br0 → veth0 → netns app → nginx`.
pub fn path_text(client: &str, hops: &[Hop], server: &str) -> String {
    let mut parts = vec![client.to_string()];
    for h in hops {
        parts.push(match h.kind {
            HopKind::Proxy => format!(
                "{} (proxy{})",
                h.name,
                h.pid.map_or(String::new(), |p| format!(", pid {p}"))
            ),
            HopKind::Nat => format!("nat {}", h.name),
            HopKind::Netns => format!("netns {}", h.name),
            _ => h.name.clone(),
        });
    }
    parts.push(server.to_string());
    parts.join(" → ")
}

pub fn paths(
    r: &Recording,
    seconds: f64,
    devices: &[DeviceSummary],
    processes: &[ProcessSummary],
) -> Vec<NetPath> {
    let mut ppid = HashMap::new();
    for p in r.intervals.iter().flat_map(|iv| &iv.processes) {
        if let Some(pp) = p.ppid {
            ppid.insert(p.pid, pp);
        }
    }
    let cx = Context {
        seconds,
        cpus: f64::from(r.header.cpus),
        devices,
        processes,
        ppid,
        netns_of: r
            .intervals
            .iter()
            .flat_map(|iv| &iv.described)
            .filter_map(|f| Some((f.pid, f.netns?)))
            .collect(),
        topologies: topologies(r),
        nat: nat_mappings(r),
        flows: flows(r),
    };
    let generators: HashSet<u32> = r
        .intervals
        .iter()
        .flat_map(|iv| &iv.processes)
        .filter(|p| p.role == Role::LoadGenerator)
        .map(|p| p.pid)
        .collect();
    // Clients: the load generator's connections, else every connecting process that is not
    // itself serving a port (a proxy's upstream side is part of another path).
    let owners: Vec<u32> = cx.flows.passive.values().filter_map(|v| v.0).collect();
    let mut clients: Vec<(&ActiveKey, &u64)> = cx
        .flows
        .active
        .iter()
        .filter(|((pid, _, _), opens)| {
            **opens > 0
                && match pid {
                    Some(pid) if !generators.is_empty() => generators.contains(pid),
                    Some(pid) => !owners.iter().any(|o| cx.related(*pid, *o)),
                    None => false,
                }
        })
        .collect();
    clients.sort_by_key(|(_, opens)| std::cmp::Reverse(**opens));
    clients
        .into_iter()
        .take(MAX_PATHS)
        .map(|((pid, comm, port), opens)| {
            let (hops, server) = cx.follow(*pid, *port);
            let client = match pid {
                Some(p) => format!("{comm}[{p}]"),
                None => comm.clone(),
            };
            NetPath {
                text: path_text(comm, &hops, &server),
                client,
                port: *port,
                connections_per_s: *opens as f64 / seconds.max(1e-9),
                hops,
                server,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::fixtures::{interval, process, recording},
        recording::{
            ConnectionRow, DeviceInterval, LinkAddress, LinkPeer, LinkStats, NetnsId, Route,
        },
    };

    #[test]
    fn packet_counts_are_summed_per_device_busiest_first() {
        let pk = |name: &str, xmit: u64, backlog: u64| crate::recording::DevicePackets {
            name: name.into(),
            xmit_packets: xmit,
            receive_packets: xmit,
            backlog_packets: backlog,
            ..Default::default()
        };
        let mut ivs = vec![interval(0, 0.1), interval(1, 0.1)];
        ivs[0].net_packets = vec![pk("lo", 10, 10), pk("veth0", 100, 90)];
        ivs[1].net_packets = vec![pk("veth0", 300, 310)];
        let out = packets(&recording(ivs), 2.0);
        assert_eq!(out[0].name, "veth0");
        assert_eq!((out[0].xmit_packets, out[0].backlog_packets), (400, 400));
        assert!((out[0].backlog_packets_per_s - 200.0).abs() < 1e-9);
        assert_eq!(out[1].name, "lo");
        assert!(packets(&recording(vec![interval(0, 0.1)]), 1.0).is_empty());
    }

    fn link(
        index: u32,
        name: &str,
        kind: &str,
        master: Option<u32>,
        peer: Option<LinkPeer>,
    ) -> Link {
        Link {
            index,
            name: name.into(),
            kind: kind.into(),
            master,
            peer,
            up: true,
            lower_up: true,
            mtu: Some(1500),
            qdisc: None,
            tx_queue_len: None,
            stats: LinkStats::default(),
        }
    }

    fn ns(inode: u64, name: Option<&str>) -> NetnsId {
        NetnsId {
            inode,
            name: name.map(Into::into),
        }
    }

    fn row(
        pid: Option<u32>,
        comm: &str,
        port: u16,
        direction: Direction,
        opens: u64,
    ) -> ConnectionRow {
        ConnectionRow {
            pid,
            comm: Some(comm.into()).filter(|c: &String| !c.is_empty()),
            port,
            direction,
            opens,
            established: opens,
            failed: 0,
            // A connect to port P takes P µs: each hop's connect time is told by its port.
            setup_ns: opens * u64::from(port) * 1000,
        }
    }

    /// wrk → nginx proxy on 9000 → 127.0.0.1:8080 DNAT'd to 198.18.3.2:80 behind br-x/veth-x.
    fn docker_like(proxy_connects: u64) -> Recording {
        let app = ns(20, Some("ns-x"));
        let own = Topology {
            netns: ns(10, None),
            links: vec![
                link(1, "lo", "loopback", None, None),
                link(4, "br-x", "bridge", None, None),
                link(
                    5,
                    "veth-x",
                    "veth",
                    Some(4),
                    Some(LinkPeer {
                        index: 2,
                        netnsid: Some(0),
                        netns: Some(app.clone()),
                    }),
                ),
            ],
            addresses: Vec::new(),
            routes: vec![Route {
                table: 254,
                kind: "unicast".into(),
                destination: "198.18.3.0".parse().expect("ip"),
                prefix_len: 24,
                gateway: None,
                oif: Some(4),
                preferred_source: None,
                priority: None,
            }],
        };
        let inner = Topology {
            netns: app,
            links: vec![link(2, "eth0", "veth", None, None)],
            addresses: vec![LinkAddress {
                index: 2,
                address: "198.18.3.2".parse().expect("ip"),
                prefix_len: 24,
                scope: "global".into(),
            }],
            routes: Vec::new(),
        };
        let mut r = recording(
            (0..4)
                .map(|i| {
                    let mut iv = interval(i, 0.3);
                    iv.processes
                        .push(process(300, "wrk", Role::LoadGenerator, &[0.3]));
                    iv.processes
                        .push(process(100, "nginx", Role::Server, &[0.0]));
                    let mut worker = process(101, "nginx", Role::Other, &[0.4]);
                    worker.ppid = Some(100);
                    iv.processes.push(worker);
                    iv.connections = vec![
                        row(Some(300), "wrk", 9000, Direction::Active, 1000),
                        row(Some(100), "nginx", 9000, Direction::Passive, 1000),
                        row(Some(101), "nginx", 8080, Direction::Active, proxy_connects),
                        row(None, "", 80, Direction::Passive, proxy_connects),
                    ];
                    iv.devices = vec![DeviceInterval {
                        netns: "net:[10]".into(),
                        name: "veth-x".into(),
                        kind: "veth".into(),
                        tx_packets: 5000,
                        tx_bytes: 4_000_000,
                        tx_dropped: 3,
                        ..Default::default()
                    }];
                    iv.softirqs.insert(
                        "NET_RX".into(),
                        crate::recording::SoftirqFigures {
                            ns: 100_000_000,
                            runs: 10,
                        },
                    );
                    if i == 1 {
                        iv.nat = vec![NatMapping {
                            protocol: "tcp".into(),
                            original: "127.0.0.1:8080".into(),
                            translated: "198.18.3.2:80".into(),
                            masqueraded_as: Some("198.18.3.1".into()),
                            entries: 900,
                        }];
                    }
                    iv
                })
                .collect(),
        );
        r.header.topology = vec![own, inner];
        r
    }

    fn kinds(p: &NetPath) -> Vec<HopKind> {
        p.hops.iter().map(|h| h.kind).collect()
    }

    #[test]
    fn proxy_nat_bridge_veth_and_namespace_hops_in_order() {
        let r = docker_like(1000);
        let a = crate::analysis::analyze(&r, &[]);
        assert_eq!(a.paths.len(), 1, "{:?}", a.paths);
        let p = &a.paths[0];
        use HopKind::*;
        assert_eq!(kinds(p), vec![Loopback, Proxy, Nat, Bridge, Veth, Netns]);
        assert_eq!(
            p.text,
            "wrk → lo → nginx (proxy, pid 100) → nat 127.0.0.1:8080→198.18.3.2:80 → br-x → veth-x → netns ns-x → port 80"
        );
        // Connect time to each tier: wrk -> nginx on 9000, nginx -> the DNAT'd 8080.
        let ms = |i: usize| p.hops[i].connect_ms.map(|m| (m * 1000.0).round() / 1000.0);
        assert_eq!((ms(1), ms(2)), (Some(9.0), Some(8.08)));
        assert_eq!(ms(4), None, "device hops carry no connect time");
        let veth = &p.hops[4];
        assert_eq!(veth.drops, Some(3 * r.intervals.len() as u64));
        assert_eq!(veth.packets_per_s, Some(5000.0));
        // The only device with packets gets all of 0.1 s/s of NET_RX softirq, on 2 CPUs.
        assert!(
            veth.cpu_share.is_some_and(|c| (c - 0.05).abs() < 1e-9),
            "{veth:?}"
        );
        let proxy = &p.hops[1];
        assert!(
            proxy.cpu_share.is_some_and(|c| (c - 0.2).abs() < 1e-9),
            "{proxy:?}"
        );
        // 0.4 cores for 1000 upstream connects (requests) a second.
        assert!(
            proxy
                .cpu_us_per_request
                .is_some_and(|us| (us - 400.0).abs() < 1e-6),
            "{proxy:?}"
        );
        assert_eq!(a.conntrack.as_ref().map(|c| c.nat.len()), Some(1));
    }

    #[test]
    fn kept_alive_clients_with_per_request_upstream_connections_still_make_a_proxy() {
        let mut r = docker_like(1000);
        for iv in &mut r.intervals {
            iv.connections[0].opens = 16;
            iv.connections[1].opens = 16;
        }
        let a = crate::analysis::analyze(&r, &[]);
        assert_eq!(
            a.paths[0].hops[1].kind,
            HopKind::Proxy,
            "{}",
            a.paths[0].text
        );
    }

    #[test]
    fn a_proxy_with_a_kept_alive_upstream_pool_is_found_by_its_requests() {
        // Two upstream connections for 1000 accepted: not a per-request proxy by connects...
        let r = docker_like(2);
        let a = crate::analysis::analyze(&r, &[]);
        assert_ne!(a.paths[0].hops.get(1).map(|h| h.kind), Some(HopKind::Proxy));
        // ...but it serves 500 requests/s and sends 480/s upstream over those two.
        let mut r = docker_like(2);
        for iv in &mut r.intervals {
            iv.inbound.push(crate::recording::InboundRow {
                pid: 100,
                comm: "nginx".into(),
                port: 9000,
                connections: 64,
                concurrency: 3.0,
                requests_per_s: 500.0,
            });
            iv.pools.push(crate::analysis::fixtures::pool(
                "nginx", "app", 2, 0.5, 3.0, 500.0,
            ));
            let p = iv.pools.last_mut().expect("pushed");
            p.pid = 101;
            p.endpoint = "127.0.0.1:8080".into();
            p.requests_per_s = 480.0;
        }
        let a = crate::analysis::analyze(&r, &[]);
        let proxy = &a.paths[0].hops[1];
        assert_eq!(proxy.kind, HopKind::Proxy, "{}", a.paths[0].text);
        let detail = proxy.detail.as_deref().unwrap_or_default();
        assert!(
            detail.contains("sends 480/s to port 8080 over kept-alive"),
            "{detail}"
        );
        assert!(
            a.paths[0].hops.iter().any(|h| h.kind == HopKind::Nat),
            "{}",
            a.paths[0].text
        );
    }

    #[test]
    fn only_a_shaper_on_the_loads_path_is_network_bandwidth() {
        let with_shaper = |device: &str| {
            let mut r = docker_like(1000);
            for iv in &mut r.intervals {
                let mut q = crate::analysis::fixtures::shaper(device, 125_000, 124_000, 5, 300, 2);
                q.netns = "net:[10]".into();
                iv.qdiscs.push(q);
            }
            crate::analysis::analyze(&r, &[]).verdict
        };
        let on = with_shaper("veth-x");
        assert_eq!(
            on.kind,
            crate::analysis::VerdictKind::NetworkBandwidth,
            "{}",
            on.summary
        );
        let off = with_shaper("eth9");
        assert_ne!(off.kind, crate::analysis::VerdictKind::NetworkBandwidth);
        let why = off
            .ruled_out
            .iter()
            .find(|r| r.kind == crate::analysis::VerdictKind::NetworkBandwidth)
            .expect("ruled out");
        assert!(
            why.reason.contains("no path of the load crosses it"),
            "{}",
            why.reason
        );
    }

    #[test]
    fn a_process_whose_connects_do_not_follow_its_accepts_is_not_a_proxy() {
        let r = docker_like(50);
        let a = crate::analysis::analyze(&r, &[]);
        let p = &a.paths[0];
        assert_eq!(kinds(p), vec![HopKind::Loopback]);
        assert_eq!(p.server, "nginx[100]");
    }

    /// wrk and nginx on two sides of br-x/veth-x, no NAT: a host-side client reaches the
    /// namespace's own address (`client_inside` false), or a client inside reaches the host's
    /// address on the bridge. Both namespaces' topologies, and each process's namespace.
    fn direct(client_inside: bool) -> Recording {
        let mut r = docker_like(0);
        let (host, app) = (ns(10, None), ns(20, Some("ns-x")));
        r.header.topology[0].addresses.push(LinkAddress {
            index: 4,
            address: "198.18.3.1".parse().expect("ip"),
            prefix_len: 24,
            scope: "global".into(),
        });
        let inner = &mut r.header.topology[1];
        inner.links[0].peer = Some(LinkPeer {
            index: 5,
            netnsid: Some(0),
            netns: Some(host),
        });
        inner.routes.push(Route {
            table: 254,
            kind: "unicast".into(),
            destination: "0.0.0.0".parse().expect("ip"),
            prefix_len: 0,
            gateway: Some("198.18.3.1".parse().expect("ip")),
            oif: Some(2),
            preferred_source: None,
            priority: None,
        });
        let (wrk_ns, nginx_ns) = if client_inside {
            (app.inode, 10)
        } else {
            (10, app.inode)
        };
        for iv in &mut r.intervals {
            iv.nat.clear();
            iv.connections = vec![
                row(Some(300), "wrk", 80, Direction::Active, 1000),
                row(Some(100), "nginx", 80, Direction::Passive, 1000),
            ];
        }
        // The listening master (100) never ran: only its worker (101) is described.
        for (pid, comm, inode) in [(300, "wrk", wrk_ns), (101, "nginx", nginx_ns)] {
            r.intervals[0]
                .described
                .push(crate::recording::ProcessFacts {
                    pid,
                    comm: comm.into(),
                    netns: Some(inode),
                    ..Default::default()
                });
        }
        r
    }

    #[test]
    fn a_namespace_reached_by_its_own_address_is_reached_through_the_bridge_and_veth() {
        use HopKind::*;
        let a = crate::analysis::analyze(&direct(false), &[]);
        let p = &a.paths[0];
        assert_eq!(kinds(p), vec![Bridge, Veth, Netns], "{}", p.text);
        assert_eq!(p.text, "wrk → br-x → veth-x → netns ns-x → nginx[100]");
        assert_eq!(p.hops[2].device.as_deref(), Some("eth0"));
        // From inside the namespace to the host's address on the bridge: the other way.
        let a = crate::analysis::analyze(&direct(true), &[]);
        let p = &a.paths[0];
        assert_eq!(kinds(p), vec![Veth, Netns, Bridge], "{}", p.text);
        assert_eq!(p.text, "wrk → eth0 → netns host → br-x → nginx[100]");
        assert_eq!(p.hops[1].device.as_deref(), Some("veth-x"));
        // Both in one namespace (or no namespaces recorded): loopback, as before.
        let mut same = direct(false);
        for f in &mut same.intervals[0].described {
            f.netns = Some(10);
        }
        assert_eq!(
            kinds(&crate::analysis::analyze(&same, &[]).paths[0]),
            vec![Loopback]
        );
    }

    #[test]
    fn a_shaper_on_either_side_of_a_directly_addressed_veth_is_on_the_path() {
        let verdict = |client_inside: bool, netns: &str, device: &str| {
            let mut r = direct(client_inside);
            for iv in &mut r.intervals {
                let mut q = crate::analysis::fixtures::shaper(device, 125_000, 124_000, 5, 300, 2);
                q.netns = netns.into();
                iv.qdiscs.push(q);
            }
            crate::analysis::analyze(&r, &[]).verdict
        };
        use crate::analysis::VerdictKind::NetworkBandwidth;
        // Responses leave the namespace by its eth0, or the host by veth-x toward it.
        let inside = verdict(false, "net:[20] ns-x", "eth0");
        assert_eq!(inside.kind, NetworkBandwidth, "{}", inside.summary);
        let host_side = verdict(true, "net:[10]", "veth-x");
        assert_eq!(host_side.kind, NetworkBandwidth, "{}", host_side.summary);
        // A shaper in the namespace but on a device the path does not use is beside it.
        let beside = verdict(false, "net:[20] ns-x", "eth1");
        assert_ne!(beside.kind, NetworkBandwidth, "{}", beside.summary);
    }
}
