//! Reads the kernel programs' maps into a cumulative snapshot; `session` turns consecutive
//! snapshots into per-interval deltas.
use std::collections::HashMap;

use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuHashMap},
};
use chokepoint_common::{
    COUNTER_SLOTS, ConnCounts, ConnKey, DROP_REASON_SLOTS, HIST_BUCKETS, HISTOGRAM_KINDS,
    NetDevCounts, NetDevKey, SOFTIRQ_VECTORS, SockUse, ThreadCpu, WakeCounts, WakeKey,
};

use super::tracepoints::TRACEPOINTS;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("map {0} is missing from the kernel object")]
    MissingMap(&'static str),
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
}

/// Cumulative values since the programs were loaded.
#[derive(Debug, Clone, Default)]
pub struct KernelSnapshot {
    pub counters: Vec<u64>,
    /// `HISTOGRAM_KINDS` histograms of `HIST_BUCKETS` log2 buckets each.
    pub histograms: Vec<u64>,
    pub drops: Vec<u64>,
    pub connections: HashMap<ConnKey, ConnCounts>,
    pub threads: HashMap<u32, ThreadCpu>,
    pub wakes: HashMap<WakeKey, WakeCounts>,
    /// Per softirq vector: ns, then runs (`2 * SOFTIRQ_VECTORS`).
    pub softirqs: Vec<u64>,
    /// Per program: (run time ns, run count), from the kernel's BPF statistics.
    pub programs: HashMap<String, (u64, u64)>,
    /// Packets and bytes per device name and direction (network-path programs).
    pub net_devices: HashMap<NetDevKey, NetDevCounts>,
    /// TCP sockets that sent or received, by `struct sock` address.
    pub sockets: HashMap<u64, SockUse>,
    /// CLOCK_MONOTONIC when the sockets were read: the clock their turns are stamped with.
    pub monotonic_ns: u64,
}

/// Handles to the maps, taken once.
pub struct MapReader {
    counters: PerCpuArray<MapData, u64>,
    histograms: PerCpuArray<MapData, u64>,
    drops: PerCpuArray<MapData, u64>,
    connections: PerCpuHashMap<MapData, ConnKey, ConnCounts>,
    threads: BpfHashMap<MapData, u32, ThreadCpu>,
    wakes: PerCpuHashMap<MapData, WakeKey, WakeCounts>,
    softirqs: PerCpuArray<MapData, u64>,
    net_devices: Option<PerCpuHashMap<MapData, NetDevKey, NetDevCounts>>,
    sockets: BpfHashMap<MapData, u64, SockUse>,
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ReadError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(ReadError::MissingMap(name))?;
    T::try_from(map).map_err(|source| ReadError::Map { name, source })
}

fn sum_per_cpu(map: &PerCpuArray<MapData, u64>, slots: u32) -> Vec<u64> {
    (0..slots)
        .map(|i| map.get(&i, 0).map(|v| v.iter().copied().sum()).unwrap_or(0))
        .collect()
}

impl MapReader {
    pub fn new(ebpf: &mut Ebpf) -> Result<Self, ReadError> {
        Ok(Self {
            counters: take(ebpf, "COUNTERS")?,
            histograms: take(ebpf, "HISTOGRAMS")?,
            drops: take(ebpf, "DROP_REASONS")?,
            connections: take(ebpf, "CONNECTIONS")?,
            threads: take(ebpf, "THREADS")?,
            wakes: take(ebpf, "WAKES")?,
            softirqs: take(ebpf, "SOFTIRQS")?,
            // An object built before the network-path programs has no such map.
            net_devices: take(ebpf, "NET_DEVICES").ok(),
            sockets: take(ebpf, "SOCKETS")?,
        })
    }

    pub fn snapshot(&self, ebpf: &Ebpf) -> KernelSnapshot {
        let mut connections = HashMap::new();
        for (key, values) in self.connections.iter().flatten() {
            let mut total = ConnCounts::default();
            for v in values.iter() {
                total.opens += v.opens;
                total.established += v.established;
                total.failed += v.failed;
            }
            connections.insert(key, total);
        }
        KernelSnapshot {
            counters: sum_per_cpu(&self.counters, COUNTER_SLOTS),
            histograms: sum_per_cpu(&self.histograms, HISTOGRAM_KINDS * HIST_BUCKETS as u32),
            drops: sum_per_cpu(&self.drops, DROP_REASON_SLOTS),
            connections,
            threads: self.threads.iter().flatten().collect(),
            wakes: self
                .wakes
                .iter()
                .flatten()
                .map(|(k, per_cpu)| {
                    let mut total = WakeCounts::default();
                    for v in per_cpu.iter() {
                        total.wakes += v.wakes;
                        total.offcpu_ns += v.offcpu_ns;
                    }
                    (k, total)
                })
                .collect(),
            softirqs: sum_per_cpu(&self.softirqs, 2 * SOFTIRQ_VECTORS),
            programs: program_stats(ebpf),
            net_devices: self
                .net_devices
                .iter()
                .flat_map(|m| m.iter().flatten())
                .map(|(k, per_cpu)| {
                    let mut total = NetDevCounts::default();
                    for v in per_cpu.iter() {
                        total.packets += v.packets;
                        total.bytes += v.bytes;
                    }
                    (k, total)
                })
                .collect(),
            sockets: self.sockets.iter().flatten().collect(),
            monotonic_ns: monotonic_ns(),
        }
    }

    /// Forgets threads that have exited (their last figures were already read).
    pub fn forget_threads(&mut self, tids: &[u32]) {
        for tid in tids {
            let _ = self.threads.remove(tid);
        }
    }
}

impl MapReader {
    /// Forgets closed sockets (their last figures were already read); returns how many went.
    pub fn forget_sockets(&mut self, keys: &[u64]) -> u64 {
        keys.iter()
            .filter(|k| self.sockets.remove(k).is_ok())
            .count() as u64
    }
}

fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

fn program_stats(ebpf: &Ebpf) -> HashMap<String, (u64, u64)> {
    let mut out = HashMap::new();
    for name in super::socket_syscalls::PROGRAMS {
        if let Some(info) = ebpf.program(name).and_then(|p| p.info().ok())
            && info.run_count() > 0
        {
            out.insert(
                name.to_string(),
                (info.run_time().as_nanos() as u64, info.run_count()),
            );
        }
    }
    for tp in TRACEPOINTS {
        // Whichever variant was loaded: the fast one, `_compat` or `_raw`.
        for name in [
            tp.program.to_string(),
            format!("{}_compat", tp.program),
            format!("{}_raw", tp.program),
        ] {
            if let Some(info) = ebpf.program(&name).and_then(|p| p.info().ok()) {
                let stats = (info.run_time().as_nanos() as u64, info.run_count());
                out.insert(tp.program.to_string(), stats);
            }
        }
    }
    out
}
