//! The network path's rows: the topology of a namespace (links, addresses, routes), its
//! qdiscs and their counters, and the conntrack table. `collect::topology`, `collect::qdisc`
//! and `collect::conntrack` fill them over netlink and procfs.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A network namespace: its nsfs inode (what `readlink /proc/<pid>/ns/net` shows as
/// `net:[inode]`), and its name when a bind mount in /var/run/netns names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetnsId {
    pub inode: u64,
    pub name: Option<String>,
}

impl std::fmt::Display for NetnsId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "net:[{}] {name}", self.inode),
            None => write!(f, "net:[{}]", self.inode),
        }
    }
}

/// One reading of a network namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub netns: NetnsId,
    /// Sorted by index.
    pub links: Vec<Link>,
    pub addresses: Vec<LinkAddress>,
    /// Every table except `local`; sorted by table, then destination.
    pub routes: Vec<Route>,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `loopback`, `device` (no rtnetlink kind: a physical or virtio NIC), or the kernel's kind
    /// string (`veth`, `bridge`, `dummy`, `tun`, `vxlan`, `ifb`, ...).
    pub kind: String,
    /// Index of the bridge (or bond, VRF) this link is a port of (IFLA_MASTER).
    pub master: Option<u32>,
    /// For a veth: where its other end is (IFLA_LINK + IFLA_LINK_NETNSID).
    pub peer: Option<LinkPeer>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier present (IFF_LOWER_UP): for a veth, its peer is up too.
    pub lower_up: bool,
    pub mtu: Option<u32>,
    /// Kind of the root qdisc (IFLA_QDISC), e.g. `noqueue`, `tbf`, `fq_codel`.
    pub qdisc: Option<String>,
    pub tx_queue_len: Option<u32>,
    pub stats: LinkStats,
}

/// The other end of a veth pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkPeer {
    /// Interface index of the peer, within its own namespace.
    pub index: u32,
    /// The kernel's id for the peer's namespace, local to this namespace (IFLA_LINK_NETNSID);
    /// `None` when the peer is in this same namespace.
    pub netnsid: Option<i32>,
    /// The peer's namespace when known: this one when `netnsid` is `None`, otherwise a named
    /// namespace (/var/run/netns), this process's own or pid 1's, whose id here is `netnsid`.
    pub netns: Option<NetnsId>,
}

/// Interface counters since the interface was created (IFLA_STATS64, or IFLA_STATS on kernels
/// without it). Drops and errors are the kernel's `rx_dropped`/`tx_dropped`,
/// `rx_errors`/`tx_errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

impl LinkStats {
    /// The increase from `earlier` to `self`, field by field; a counter that went down (the
    /// interface was recreated) counts as 0.
    pub fn delta_since(&self, earlier: &LinkStats) -> LinkStats {
        LinkStats {
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(earlier.rx_bytes),
            tx_bytes: self.tx_bytes.saturating_sub(earlier.tx_bytes),
            rx_dropped: self.rx_dropped.saturating_sub(earlier.rx_dropped),
            tx_dropped: self.tx_dropped.saturating_sub(earlier.tx_dropped),
            rx_errors: self.rx_errors.saturating_sub(earlier.rx_errors),
            tx_errors: self.tx_errors.saturating_sub(earlier.tx_errors),
        }
    }
}

/// Traffic of one link between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkTraffic {
    pub index: u32,
    pub name: String,
    pub delta: LinkStats,
}

/// An address assigned to a link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkAddress {
    /// Index of the link it is on.
    pub index: u32,
    pub address: IpAddr,
    pub prefix_len: u8,
    /// `global`, `site`, `link`, `host`, `nowhere`, or the number.
    pub scope: String,
}

/// A route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// 254 is `main`.
    pub table: u32,
    /// `unicast`, `blackhole`, `unreachable`, `prohibit`, `broadcast`, ... (RTN_*).
    pub kind: String,
    /// The destination network; the default route is `0.0.0.0/0` (`::/0`).
    pub destination: IpAddr,
    pub prefix_len: u8,
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    pub preferred_source: Option<IpAddr>,
    pub priority: Option<u32>,
}

impl Topology {
    pub fn link(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }

    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// Per-link traffic since `earlier` (same namespace, taken before `self`). Links are matched
    /// by index and name; a link absent from `earlier` is left out (it has no baseline).
    pub fn traffic_since(&self, earlier: &Topology) -> Vec<LinkTraffic> {
        self.links
            .iter()
            .filter_map(|link| {
                let before = earlier
                    .links
                    .iter()
                    .find(|e| e.index == link.index && e.name == link.name)?;
                Some(LinkTraffic {
                    index: link.index,
                    name: link.name.clone(),
                    delta: link.stats.delta_since(&before.stats),
                })
            })
            .collect()
    }
}

/// One qdisc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qdisc {
    pub ifindex: u32,
    /// Device name; empty if the device vanished between the two dumps.
    pub device: String,
    /// `tbf`, `htb`, `fq_codel`, `noqueue`, `pfifo_fast`, `mq`, `ingress`, ...
    pub kind: String,
    /// As `tc` prints it: `8001:`, `1:`, `0:`.
    pub handle: String,
    /// `root`, `ingress`, or the parent class as `major:minor` (hex, like `tc`).
    pub parent: String,
    /// Configured rate in bytes per second: tbf's `rate`. `None` for kinds without one.
    pub rate_bytes_per_second: Option<u64>,
    pub stats: QdiscStats,
    /// For `htb`: its classes, with their rate and ceil.
    pub classes: Vec<TrafficClass>,
}

/// A class of a classful qdisc (read for `htb`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficClass {
    /// `major:minor`, hex.
    pub classid: String,
    pub parent: String,
    pub kind: String,
    /// Guaranteed rate (htb `rate`), bytes per second.
    pub rate_bytes_per_second: Option<u64>,
    /// Upper bound (htb `ceil`), bytes per second.
    pub ceil_bytes_per_second: Option<u64>,
    pub stats: QdiscStats,
}

/// Counters since the qdisc was created, and the queue now (TCA_STATS2, or the older TCA_STATS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QdiscStats {
    pub bytes: u64,
    pub packets: u64,
    /// Packets dropped (queue full, policing, AQM).
    pub drops: u64,
    /// Times a packet had to wait because the rate was exceeded (shapers), or was marked / dropped
    /// over a limit.
    pub overlimits: u64,
    /// Packets handed back by the driver and queued again.
    pub requeues: u64,
    /// Gauge: bytes queued now.
    pub backlog_bytes: u64,
    /// Gauge: packets queued now.
    pub backlog_packets: u64,
}

impl QdiscStats {
    /// Counters: the increase from `earlier` (a counter that went down counts as 0). Backlog: the
    /// value in `self`.
    pub fn delta_since(&self, earlier: &QdiscStats) -> QdiscStats {
        QdiscStats {
            bytes: self.bytes.saturating_sub(earlier.bytes),
            packets: self.packets.saturating_sub(earlier.packets),
            drops: self.drops.saturating_sub(earlier.drops),
            overlimits: self.overlimits.saturating_sub(earlier.overlimits),
            requeues: self.requeues.saturating_sub(earlier.requeues),
            backlog_bytes: self.backlog_bytes,
            backlog_packets: self.backlog_packets,
        }
    }
}

/// What one qdisc did between two readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QdiscInterval {
    pub ifindex: u32,
    pub device: String,
    pub kind: String,
    pub handle: String,
    pub parent: String,
    pub rate_bytes_per_second: Option<u64>,
    pub delta: QdiscStats,
}

/// The conntrack table at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConntrackStats {
    /// Entries in the table now (nf_conntrack_count).
    pub count: u64,
    /// Table limit (nf_conntrack_max): at `count == max` new connections are dropped.
    pub max: u64,
    /// Number of CPU lines summed into `counters`.
    pub cpus: usize,
    /// Every counter column of /proc/net/stat/nf_conntrack, by the kernel's column name, summed
    /// over CPUs (`insert_failed`, `drop`, `early_drop`, `icmp_error`, `invalid`,
    /// `search_restart`, `clashres`, `chainlength`, ...). `entries` is left out: it is `count`.
    pub counters: BTreeMap<String, u64>,
}

/// The change between two `ConntrackStats` readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConntrackInterval {
    /// Gauges at the end of the interval.
    pub count: u64,
    pub max: u64,
    /// Increase of each counter; a counter first seen, or that went down, counts as 0.
    pub counters: BTreeMap<String, u64>,
}

macro_rules! conntrack_accessors {
    ($($(#[$doc:meta])* $method:ident => $name:literal;)*) => {
        impl ConntrackStats {
            $( $(#[$doc])* pub fn $method(&self) -> u64 { self.get($name) } )*
        }
        impl ConntrackInterval {
            $( $(#[$doc])* pub fn $method(&self) -> u64 { self.get($name) } )*
        }
    };
}

conntrack_accessors! {
    /// New entries that could not be inserted (a clash that could not be resolved).
    insert_failed => "insert_failed";
    /// Packets dropped because a new entry could not be allocated (table full).
    drop => "drop";
    /// Entries evicted early to make room in a full table.
    early_drop => "early_drop";
    /// Packets whose ICMP error could not be matched to a connection (`icmp_error`).
    icmp_error => "icmp_error";
    /// Packets conntrack could not track (malformed, out of window).
    invalid => "invalid";
    /// Lookups restarted because the hash table was resized or changed under them.
    search_restart => "search_restart";
    /// Insert clashes that were resolved (`clashres`).
    clash_resolved => "clashres";
}

impl ConntrackStats {
    /// A counter by its column name; 0 when this kernel does not have it.
    pub fn get(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// `count / max`; 0 when `max` is 0.
    pub fn fill_fraction(&self) -> f64 {
        if self.max == 0 {
            0.0
        } else {
            self.count as f64 / self.max as f64
        }
    }

    /// The change since `earlier`.
    pub fn delta_since(&self, earlier: &ConntrackStats) -> ConntrackInterval {
        let counters = self
            .counters
            .iter()
            .map(|(name, value)| {
                let before = earlier.counters.get(name).copied().unwrap_or(*value);
                (name.clone(), value.saturating_sub(before))
            })
            .collect();
        ConntrackInterval {
            count: self.count,
            max: self.max,
            counters,
        }
    }
}

impl ConntrackInterval {
    pub fn get(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}
