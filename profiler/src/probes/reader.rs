//! Reads the kernel programs' maps into a cumulative snapshot; `session` turns consecutive
//! snapshots into per-interval deltas.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    os::fd::{AsFd, OwnedFd},
};

use aya::{
    Ebpf,
    maps::{Array, HashMap as BpfHashMap, Map, MapData, PerCpuArray, PerCpuHashMap},
};
use chokepoint_common::{
    COUNTER_SLOTS, ConnCounts, ConnKey, DROP_REASON_SLOTS, DropDevKey, HIST_BUCKETS,
    HISTOGRAM_KINDS, NetDevCounts, NetDevKey, PORT_EPHEMERAL, PORT_LISTENING, RetiredKey,
    RetiredUse, Running, SOFTIRQ_VECTORS, SockUse, THREAD_NEW, ThreadCpu, WakeCounts, WakeKey, run,
};

use super::{batch, tracepoints::TRACEPOINTS};

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
    /// Per program: (run time ns, run count), from the kernel's BPF statistics: they move only
    /// while statistics are on (in the sampling windows, or throughout with --exact-overhead).
    pub programs: HashMap<String, (u64, u64)>,
    /// Every program's runs as it counts them itself (`RUNS`, slot `chokepoint_common::run`),
    /// all the time; empty for an object built before the programs counted.
    pub runs: Vec<u64>,
    /// Packets and bytes per device name and direction (network-path programs).
    pub net_devices: HashMap<NetDevKey, NetDevCounts>,
    /// TCP sockets that sent or received, by `struct sock` address.
    pub sockets: HashMap<u64, SockUse>,
    /// Closed sockets' last figures, folded by identity when their memory was reused before
    /// they were read (`RETIRED`), summed over the CPUs; deleted by user space once read.
    pub retired: Vec<(RetiredKey, RetiredUse)>,
    /// Packets dropped per device and reason (raw `kfree_skb` only).
    pub device_drops: HashMap<DropDevKey, u64>,
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
    /// None for an object built before the map existed.
    retired: Option<PerCpuHashMap<MapData, RetiredKey, RetiredUse>>,
    /// Per local port: listening, ephemeral or neither (`PORT_*`); None for an older object.
    ports: Option<Array<MapData, u8>>,
    /// What `ports` holds now, so that only changes are written.
    ports_written: HashMap<u16, u8>,
    /// `net.ipv4.ip_local_port_range`, as the first [`Self::set_ports`] was given it.
    ephemeral: Option<(u16, u16)>,
    /// Second handles on the big hash maps' fds, for batched reads and deletes
    /// (`probes/batch.rs`); None where they could not be taken. A batch the kernel refuses
    /// falls back to walking the keys.
    batch: Option<BatchFds>,
    device_drops: Option<PerCpuHashMap<MapData, DropDevKey, u64>>,
    running: PerCpuArray<MapData, Running>,
    runs: Option<PerCpuArray<MapData, u64>>,
    /// Whether every read brings every thread (not only those on a CPU) up to its kernel
    /// run-time total: set while the duty cycle detaches `sched_switch`, whose switch-outs
    /// otherwise do it (`probes/duty.rs`).
    pub refresh_all_threads: bool,
}

struct BatchFds {
    sockets: OwnedFd,
    threads: OwnedFd,
    retired: Option<OwnedFd>,
}

impl BatchFds {
    fn of(ebpf: &Ebpf) -> Option<Self> {
        let fd = |name: &str| -> Option<OwnedFd> {
            match ebpf.map(name)? {
                Map::HashMap(m) | Map::LruHashMap(m) | Map::PerCpuHashMap(m) => {
                    m.fd().as_fd().try_clone_to_owned().ok()
                }
                _ => None,
            }
        };
        Some(Self {
            sockets: fd("SOCKETS")?,
            threads: fd("THREADS")?,
            retired: fd("RETIRED"),
        })
    }
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ReadError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(ReadError::MissingMap(name))?;
    T::try_from(map).map_err(|source| ReadError::Map { name, source })
}

/// `out` = each slot of `map` summed over the CPUs, in place.
fn refill_per_cpu(out: &mut Vec<u64>, map: &PerCpuArray<MapData, u64>, slots: u32) {
    out.clear();
    out.extend((0..slots).map(|i| map.get(&i, 0).map(|v| v.iter().copied().sum()).unwrap_or(0)));
}

impl MapReader {
    pub fn new(ebpf: &mut Ebpf) -> Result<Self, ReadError> {
        let batch = BatchFds::of(ebpf);
        Ok(Self {
            batch,
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
            retired: take(ebpf, "RETIRED").ok(),
            ports: take(ebpf, "PORTS").ok(),
            ports_written: HashMap::new(),
            ephemeral: None,
            device_drops: take(ebpf, "DROPS_BY_DEVICE").ok(),
            running: take(ebpf, "RUNNING")?,
            runs: take(ebpf, "RUNS").ok(),
            refresh_all_threads: false,
        })
    }

    pub fn snapshot(&self, ebpf: &Ebpf) -> KernelSnapshot {
        let mut out = KernelSnapshot::default();
        self.snapshot_into(ebpf, &mut out);
        out
    }

    /// Reads every map into `out`, reusing its tables: the sampler hands back the snapshot
    /// before last, so the big copies (sockets, wake-up pairs, threads) keep their capacity
    /// from one interval to the next instead of being grown by doubling from nothing every
    /// second and freed again (what made the heap's high-water mark creep up in steps).
    pub fn snapshot_into(&self, ebpf: &Ebpf, out: &mut KernelSnapshot) {
        out.connections.clear();
        for (key, values) in self.connections.iter().flatten() {
            let mut total = ConnCounts::default();
            for v in values.iter() {
                total.opens += v.opens;
                total.established += v.established;
                total.failed += v.failed;
                total.setup_ns += v.setup_ns;
            }
            out.connections.insert(key, total);
        }
        refill_per_cpu(&mut out.counters, &self.counters, COUNTER_SLOTS);
        refill_per_cpu(
            &mut out.histograms,
            &self.histograms,
            HISTOGRAM_KINDS * HIST_BUCKETS as u32,
        );
        refill_per_cpu(&mut out.drops, &self.drops, DROP_REASON_SLOTS);
        self.threads_into(&mut out.threads);
        out.wakes.clear();
        out.wakes
            .extend(self.wakes.iter().flatten().map(|(k, per_cpu)| {
                let mut total = WakeCounts::default();
                for v in per_cpu.iter() {
                    total.wakes += v.wakes;
                    total.offcpu_ns += v.offcpu_ns;
                }
                (k, total)
            }));
        refill_per_cpu(&mut out.softirqs, &self.softirqs, 2 * SOFTIRQ_VECTORS);
        // Before the statistics: in --exact-overhead the kernel's counts are then never
        // behind the programs' own (a run between the two reads is the kernel's).
        match &self.runs {
            Some(m) => refill_per_cpu(&mut out.runs, m, run::NAMES.len() as u32),
            None => out.runs.clear(),
        }
        out.programs = program_stats(ebpf);
        out.net_devices.clear();
        out.net_devices.extend(
            self.net_devices
                .iter()
                .flat_map(|m| m.iter().flatten())
                .map(|(k, per_cpu)| {
                    let mut total = NetDevCounts::default();
                    for v in per_cpu.iter() {
                        total.packets += v.packets;
                        total.bytes += v.bytes;
                    }
                    (k, total)
                }),
        );
        out.sockets.clear();
        out.retired.clear();
        if !self.read_sockets_batched(out) {
            out.sockets.extend(self.sockets.iter().flatten());
        }
        self.read_retired(&mut out.retired);
        out.device_drops.clear();
        out.device_drops.extend(
            self.device_drops
                .iter()
                .flat_map(|m| m.iter().flatten())
                .map(|(k, per_cpu)| (k, per_cpu.iter().sum())),
        );
        out.monotonic_ns = monotonic_ns();
    }

    /// The threads' figures, with the slices still running brought up to now: a thread's
    /// on-CPU time is added at switch-out, so a thread that spins through the read would
    /// otherwise show its slice in a later interval (lumpy per-interval shares), and its last
    /// slice not at all. The kernel's total for it (/proc/<tid>/schedstat) minus the total at
    /// its last switch-out is what the entry does not hold yet.
    ///
    /// With [`Self::refresh_all_threads`] every thread is brought up to date that way, not
    /// only those on a CPU: while `sched_switch` is detached no switch-out adds anything.
    /// What an entry holds less its total at the last switch-out (`oncpu_ns` -
    /// `exec_runtime_ns`) does not change at a switch-out, so each read's figure is the
    /// thread's whole on-CPU time whether the programs ran or not, and the growth between two
    /// reads is what it ran in between. A thread born while they were detached has no process
    /// id or name in its entry yet: both come from procfs.
    fn threads_into(&self, threads: &mut HashMap<u32, ThreadCpu>) {
        threads.clear();
        let mut rows: Vec<(u32, ThreadCpu)> = Vec::new();
        match &self.batch {
            Some(b) if batch::lookup_all(b.threads.as_fd(), &mut rows).is_ok() => {
                threads.extend(rows)
            }
            _ => threads.extend(self.threads.iter().flatten()),
        }
        let bring_up =
            |tid: u32, t: &mut ThreadCpu| match crate::collect::processes::thread_run_time(tid) {
                Some(now) => {
                    t.oncpu_ns += now.saturating_sub(t.exec_runtime_ns);
                    t.exec_runtime_ns = t.exec_runtime_ns.max(now);
                }
                // Gone since the map was copied: it exited meanwhile, and `sched_process_exit`
                // brought its entry to its final total before procfs let it go. Without this the
                // copy's stale total read as less than the last read's (a load generator ending
                // at a read lost that interval's CPU, and the next one had it twice).
                None => {
                    if let Ok(fresh) = self.threads.get(&tid, 0) {
                        *t = fresh;
                    }
                }
            };
        if self.refresh_all_threads {
            for (&tid, t) in threads.iter_mut() {
                if t.exec_runtime_ns == 0 && t.flags & THREAD_NEW == 0 {
                    continue;
                }
                bring_up(tid, t);
                if (t.tgid == 0 || t.comm[0] == 0)
                    && let Some((tgid, comm)) = crate::collect::processes::thread_identity(tid)
                {
                    if t.tgid == 0 {
                        t.tgid = tgid;
                    }
                    if t.comm[0] == 0 {
                        t.comm = comm;
                    }
                }
            }
            return;
        }
        let on_cpu = self
            .running
            .get(&0, 0)
            .map(|v| v.iter().map(|r| r.tid).collect::<Vec<_>>());
        for tid in on_cpu.unwrap_or_default().into_iter().filter(|&t| t != 0) {
            let Some(t) = threads.get_mut(&tid).filter(|t| t.exec_runtime_ns != 0) else {
                continue;
            };
            bring_up(tid, t);
        }
    }

    /// Gives every thread already running its kernel run-time total so far, so the first
    /// switch-out after attaching counts only the time since (the part before the recording is
    /// not ours; without this the first slice of a thread that predates us is unknown). An
    /// entry the programs already made keeps what they wrote, but gains the total if it has none.
    pub fn seed_threads(&mut self, threads: &[(u32, u32, u64)]) {
        for &(tid, tgid, run_ns) in threads {
            let seed = run_ns.max(1);
            match self.threads.get(&tid, 0) {
                Ok(mut t) if t.exec_runtime_ns == 0 && t.flags & THREAD_NEW == 0 => {
                    t.exec_runtime_ns = seed;
                    let _ = self.threads.insert(tid, t, 0);
                }
                Ok(_) => {}
                Err(_) => {
                    let t = ThreadCpu {
                        tgid,
                        exec_runtime_ns: seed,
                        ..Default::default()
                    };
                    // NOEXIST: a program may have created it meanwhile; it then wins.
                    let _ = self.threads.insert(tid, t, 1);
                }
            }
        }
    }

    /// Forgets threads that have exited (their last figures were already read).
    pub fn forget_threads(&mut self, tids: &[u32]) {
        for tid in tids {
            let _ = self.threads.remove(tid);
        }
    }

    /// Forgets wake-up pairs of exited threads (their last figures were already read), so
    /// thread churn cannot fill the map.
    pub fn forget_wakes(&mut self, keys: &[WakeKey]) {
        for key in keys {
            let _ = self.wakes.remove(key);
        }
    }
}

impl MapReader {
    /// Forgets retired sockets (read already); returns how many went.
    pub fn forget_retired(&mut self, keys: &[RetiredKey]) -> u64 {
        if let Some(fd) = self.batch.as_ref().and_then(|b| b.retired.as_ref())
            && let Ok(n) = batch::delete(fd.as_fd(), keys)
        {
            return n as u64;
        }
        let Some(map) = self.retired.as_mut() else {
            return 0;
        };
        keys.iter().filter(|k| map.remove(k).is_ok()).count() as u64
    }

    /// Deletes every socket entry and every retired one (their programs detached).
    pub fn clear_sockets(&mut self) {
        let mut snapshot = KernelSnapshot::default();
        let keys: Vec<u64> = if self.read_sockets_batched(&mut snapshot) {
            snapshot.sockets.into_keys().collect()
        } else {
            self.sockets.keys().filter_map(Result::ok).collect()
        };
        self.forget_sockets(&keys);
        // Few entries (folded by identity): a key walk.
        if let Some(map) = self.retired.as_mut() {
            let keys: Vec<RetiredKey> = map.keys().filter_map(Result::ok).collect();
            for k in &keys {
                let _ = map.remove(k);
            }
        }
    }

    /// Sockets in a few batched reads; false (nothing read) where the kernel refuses batches.
    fn read_sockets_batched(&self, out: &mut KernelSnapshot) -> bool {
        let Some(b) = &self.batch else {
            return false;
        };
        let mut rows: Vec<(u64, SockUse)> = Vec::new();
        if batch::lookup_all(b.sockets.as_fd(), &mut rows).is_err() {
            return false;
        }
        out.sockets.extend(rows);
        true
    }

    /// Retired sockets' folded figures, summed over the CPUs (a few entries: one per served
    /// port and client address, or per endpoint).
    fn read_retired(&self, out: &mut Vec<(RetiredKey, RetiredUse)>) {
        out.clear();
        out.extend(
            self.retired
                .iter()
                .flat_map(|m| m.iter().flatten())
                .map(|(k, per_cpu)| {
                    let mut total = RetiredUse::default();
                    for v in per_cpu.iter() {
                        total.add(v);
                    }
                    (k, total)
                }),
        );
    }

    /// Tells the programs which local ports listen and which are ephemeral (`PORTS`), so a
    /// retiring socket is folded under its service port or endpoint. Only changes are written.
    pub fn set_ports(&mut self, listening: &HashSet<u16>, ephemeral: Option<(u16, u16)>) {
        self.ephemeral = ephemeral;
        self.update_listening(listening);
    }

    /// [`Self::set_ports`] with the ephemeral range it was given: the listeners that came or
    /// went since.
    pub fn update_listening(&mut self, listening: &HashSet<u16>) {
        let ephemeral = self.ephemeral;
        let Some(map) = self.ports.as_mut() else {
            return;
        };
        let kind = |port: u16| {
            if listening.contains(&port) {
                PORT_LISTENING
            } else if ephemeral.is_some_and(|(lo, hi)| (lo..=hi).contains(&port)) {
                PORT_EPHEMERAL
            } else {
                0
            }
        };
        // The first call writes the ephemeral range and the listeners (the map starts zeroed);
        // later ones the listeners that came or went.
        let candidates: Vec<u16> = if self.ports_written.is_empty() {
            let range = ephemeral.map_or(Vec::new(), |(lo, hi)| (lo..=hi).collect());
            range.into_iter().chain(listening.iter().copied()).collect()
        } else {
            let gone = self
                .ports_written
                .iter()
                .filter(|(_, k)| **k == PORT_LISTENING)
                .map(|(p, _)| *p);
            listening.iter().copied().chain(gone).collect()
        };
        for port in candidates {
            let k = kind(port);
            if self.ports_written.get(&port).copied().unwrap_or(0) == k {
                continue;
            }
            if map.set(u32::from(port), k, 0).is_ok() {
                if k == 0 {
                    self.ports_written.remove(&port);
                } else {
                    self.ports_written.insert(port, k);
                }
            }
        }
    }

    /// Forgets closed sockets (their last figures were already read); returns how many went.
    pub fn forget_sockets(&mut self, keys: &[u64]) -> u64 {
        if let Some(b) = &self.batch
            && let Ok(n) = batch::delete(b.sockets.as_fd(), keys)
        {
            return n as u64;
        }
        keys.iter()
            .filter(|k| self.sockets.remove(k).is_ok())
            .count() as u64
    }
}

/// Runs per program between two snapshots, from the programs' own counts (non-zero only);
/// None when the object has no `RUNS`.
pub fn run_deltas(prev: &KernelSnapshot, cur: &KernelSnapshot) -> Option<BTreeMap<String, u64>> {
    if cur.runs.is_empty() {
        return None;
    }
    Some(
        run::NAMES
            .iter()
            .zip(&cur.runs)
            .enumerate()
            .filter_map(|(i, (name, &now))| {
                let d = now.saturating_sub(prev.runs.get(i).copied().unwrap_or(0));
                (d > 0).then(|| (name.to_string(), d))
            })
            .collect(),
    )
}

/// CLOCK_MONOTONIC ns: the clock `bpf_ktime_get_ns` reads.
pub(crate) fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

fn program_stats(ebpf: &Ebpf) -> HashMap<String, (u64, u64)> {
    let mut out = HashMap::new();
    let empty = ["empty_raw", "empty_tp"];
    for name in super::socket_syscalls::PROGRAMS.iter().chain(&empty) {
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
        // Whichever variant was loaded: the fast one, `_compat`, `_raw` or `_btf`.
        for name in [
            tp.program.to_string(),
            format!("{}_compat", tp.program),
            format!("{}_raw", tp.program),
            format!("{}_btf", tp.program),
        ] {
            if let Some(info) = ebpf.program(&name).and_then(|p| p.info().ok()) {
                let stats = (info.run_time().as_nanos() as u64, info.run_count());
                out.insert(tp.program.to_string(), stats);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_counts_its_runs_in_a_slot_of_its_own_name() {
        let programs = TRACEPOINTS
            .iter()
            .map(|tp| tp.program)
            .chain(super::super::socket_syscalls::PROGRAMS.iter().copied())
            .chain(["empty_raw", "empty_tp"]);
        for name in programs {
            assert!(run::NAMES.contains(&name), "{name} has no RUNS slot");
        }
    }

    #[test]
    fn run_deltas_name_the_programs_that_ran() {
        let mut prev = KernelSnapshot {
            runs: vec![0; run::NAMES.len()],
            ..Default::default()
        };
        let mut cur = prev.clone();
        cur.runs[run::SCHED_SWITCH as usize] = 40;
        prev.runs[run::SCHED_SWITCH as usize] = 10;
        cur.runs[run::EMPTY_TP as usize] = 3;
        let d = run_deltas(&prev, &cur).expect("RUNS read");
        assert_eq!(d.len(), 2);
        assert_eq!(d["sched_switch"], 30);
        assert_eq!(d["empty_tp"], 3);
        assert_eq!(run_deltas(&prev, &KernelSnapshot::default()), None);
    }
}
