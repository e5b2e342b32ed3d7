//! Reads every source once per interval and assembles the interval: kernel maps (as deltas),
//! host counters, listen queues, and chokepoint's own CPU.
use std::collections::{BTreeMap, HashMap, HashSet};

use aya::Ebpf;

use super::{
    assemble::{ListenOwners, assemble},
    conn_use::{ConnUse, UseWindow},
    network::NetSampler,
    processes::ProcessTable,
    self_cpu_ns, unix_ns,
};
use crate::{
    collect::{
        self,
        capacity::{self, Capacity},
        cgroup::ThrottleCollector,
        send_limits::SendLimitCollector,
    },
    probes::{
        reader::{self, KernelSnapshot, MapReader},
        stats::{self, Windows},
    },
    recording::{Interval, Role},
};

pub struct Sampler {
    maps: MapReader,
    host: Option<collect::host::HostCollector>,
    drop_reasons: BTreeMap<u32, String>,
    softirq_names: BTreeMap<u32, String>,
    prev: KernelSnapshot,
    /// The snapshot before `prev`, handed back to the reader to refill: two snapshots take
    /// turns, so their tables keep their capacity (`MapReader::snapshot_into`).
    spare: KernelSnapshot,
    prev_unix_ns: u64,
    prev_cpu_ns: u64,
    index: u32,
    owners: ListenOwners,
    /// Threads whose exit event arrived; forgotten after their last figures are read.
    exited: Vec<u32>,
    /// Capacity of each process in play, read once when it first shows up.
    capacities: HashMap<u32, Option<Capacity>>,
    throttle: ThrottleCollector,
    /// The network path (None until `set_network`).
    net: Option<NetSampler>,
    conn_use: ConnUse,
    send_limits: SendLimitCollector,
    /// The run-time statistics windows (on 1 s in every 10 s): they price the programs' runs.
    windows: Windows,
    /// Processes already described in the recording (forgotten when they exit).
    described: HashSet<u32>,
}

/// A process busier than this in an interval gets its capacity and cgroup watched.
const BUSY_CORES: f64 = 0.2;

impl Sampler {
    /// Takes the baselines: the first interval holds only what happens after this call.
    pub fn new(
        ebpf: &Ebpf,
        maps: MapReader,
        mut host: Option<collect::host::HostCollector>,
        drop_reasons: BTreeMap<u32, String>,
        softirq_names: BTreeMap<u32, String>,
    ) -> Self {
        let prev = maps.snapshot(ebpf);
        if let Some(h) = host.as_mut() {
            let _ = h.sample();
        }
        let prev_unix_ns = unix_ns();
        Self {
            maps,
            host,
            drop_reasons,
            softirq_names,
            prev,
            spare: KernelSnapshot::default(),
            prev_unix_ns,
            prev_cpu_ns: self_cpu_ns(),
            index: 0,
            owners: ListenOwners::new(),
            exited: Vec::new(),
            capacities: HashMap::new(),
            throttle: ThrottleCollector::new(),
            net: None,
            conn_use: ConnUse::default(),
            send_limits: SendLimitCollector::default(),
            windows: Windows::new(prev_unix_ns),
            described: HashSet::new(),
        }
    }

    /// The number now names another process: its capacity (affinity, cgroup) is read again.
    pub fn pid_reused(&mut self, pid: u32) {
        self.capacities.remove(&pid);
    }

    /// Adds the network-path readings (its baselines are already taken) to every interval.
    pub fn set_network(&mut self, net: NetSampler) {
        self.net = Some(net);
    }

    /// Every read brings every thread's on-CPU time up to its kernel total: the duty cycle
    /// detaches `sched_switch`, whose switch-outs otherwise do it.
    pub fn refresh_all_threads(&mut self) {
        self.maps.refresh_all_threads = true;
    }

    /// Empties the per-socket tables once the connection-use programs are detached (the duty
    /// cycle does it after each sample): the connection-setup program may be detached too, so
    /// closes go unseen until the next sample, and an entry kept across the gap could be
    /// continued by a new socket at the same address. The next sample sees the sockets in
    /// use afresh, from their first send or receive (a turn across the gap is dropped anyway).
    pub fn forget_sockets(&mut self) {
        self.maps.clear_sockets();
        self.prev.sockets.clear();
        self.prev.retired.clear();
    }

    /// Chokepoint's own network namespace as device rows name it (None without the network
    /// readings).
    pub fn own_netns(&self) -> Option<String> {
        self.net.as_ref().and_then(NetSampler::own_netns)
    }

    pub fn thread_exited(&mut self, tid: u32) {
        self.exited.push(tid);
    }

    /// What the probe tier did with the connection-use programs through the interval the
    /// next `take` ends.
    pub fn set_use_window(&mut self, window: UseWindow) {
        self.conn_use.window = window;
    }

    /// Whether the duty cycle keeps programs detached in the interval that starts at the next
    /// read: statistics windows alternate between the two states, and each interval's runs
    /// are priced from windows in its own.
    pub fn next_detached(&mut self, detached: bool) {
        self.windows.next_interval(detached);
    }

    pub fn take(&mut self, ebpf: &Ebpf, table: &mut ProcessTable) -> Interval {
        let mut stages = Stages::start();
        let mut cur = std::mem::take(&mut self.spare);
        self.maps.snapshot_into(ebpf, &mut cur);
        let now = unix_ns();
        // Right after the read: a window's figures are the growth between two reads.
        let measured = stats::deltas(&self.prev.programs, &cur.programs);
        let runs = reader::run_deltas(&self.prev, &cur);
        if let Some(r) = &runs {
            self.windows.price_what_runs(r, now);
        }
        let tick = self.windows.tick(
            self.prev_unix_ns,
            now,
            &cur.programs,
            stats::measured_all(&measured, runs.as_ref()),
        );
        stages.lap("kernel_maps");
        self.refresh_owners(&cur);
        let k = assemble(
            &self.prev,
            &cur,
            &self.drop_reasons,
            &self.softirq_names,
            &self.owners,
            table,
        );
        stages.lap("processes");
        let host = self.host.as_mut().map(|h| h.sample());
        stages.lap("host");
        let listeners = collect::listeners::listen_queues().unwrap_or_default();
        stages.lap("listeners");
        let mut processes = k.processes;
        let secs = now.saturating_sub(self.prev_unix_ns).max(1) as f64 / 1e9;
        for p in &mut processes {
            let in_play = matches!(p.role, Role::LoadGenerator | Role::Server)
                || p.oncpu_ns as f64 / 1e9 / secs >= BUSY_CORES;
            if !in_play || p.role == Role::Kernel {
                continue;
            }
            let throttle = &mut self.throttle;
            let capacity = self.capacities.entry(p.pid).or_insert_with(|| {
                // A process gone meanwhile, or without a cgroup, just has no capacity figure.
                let _ = throttle.watch(p.pid);
                capacity::process_capacity(p.pid)
            });
            if let Some(c) = capacity {
                p.capacity_cores = Some(c.cores);
                p.capacity_limited_by = Some(c.limited_by);
            }
        }
        let cgroups = self.throttle.sample();
        stages.lap("cgroups");
        let net = match self.net.as_mut() {
            Some(n) => {
                let pids: Vec<u32> = processes
                    .iter()
                    .filter(|p| matches!(p.role, Role::LoadGenerator | Role::Server))
                    .map(|p| p.pid)
                    .collect();
                let ports: Vec<u16> = k
                    .connections
                    .iter()
                    .filter(|c| c.direction == crate::recording::Direction::Active)
                    .map(|c| c.port)
                    .collect();
                n.sample(&pids, &ports)
            }
            None => Default::default(),
        };
        stages.lap("network");
        let pools = self
            .conn_use
            .take(&self.prev, &mut cur, &mut self.maps, &listeners, table);
        stages.lap("sockets");
        // Served ports: those that accepted connections while recording, and those whose
        // (possibly older) connections carried requests.
        let mut owners: HashMap<u16, String> = self
            .owners
            .iter()
            .map(|(port, (_, comm))| (*port, comm.clone()))
            .collect();
        for row in &pools.inbound {
            owners.entry(row.port).or_insert_with(|| row.comm.clone());
        }
        let ports: HashSet<u16> = owners.keys().copied().collect();
        // Without sock_diag the figures are missing, as without this collector.
        let send_limits = self.send_limits.sample(&ports, &owners).unwrap_or_default();
        stages.lap("send_limits");
        // Facts of the processes seen for the first time (not kernel threads, not us).
        let described: Vec<_> = processes
            .iter()
            .filter(|p| !matches!(p.role, Role::Kernel | Role::Profiler))
            .filter(|p| self.described.insert(p.pid))
            .filter_map(|p| collect::processes::facts(p.pid))
            .collect();
        stages.lap("processes");
        let mut overhead = k.overhead;
        self.fill_bpf_cost(&mut overhead, measured, runs, tick);
        overhead.sockets_tracked = pools.tracked;
        overhead.socket_evictions = pools.evictions;
        let mut interval = Interval {
            index: self.index,
            start_unix_ns: self.prev_unix_ns,
            end_unix_ns: now,
            tcp: k.tcp,
            connect_latency: k.connect_latency,
            handshake_latency: k.handshake_latency,
            drops: k.drops,
            connections: k.connections,
            processes,
            host,
            listeners,
            overhead,
            forks: k.forks,
            exits: k.exits,
            wakes: k.wakes,
            thread_wakes: k.thread_wakes,
            wake_totals: k.wake_totals,
            described,
            softirqs: k.softirqs,
            cgroups,
            devices: net.devices,
            qdiscs: net.qdiscs,
            conntrack: net.conntrack,
            nat: net.nat,
            topology: net.topology,
            net_errors: net.errors,
            net_packets: super::network::device_packets(&self.prev.net_devices, &cur.net_devices),
            device_drops: super::network::device_drops(
                &self.prev.device_drops,
                &cur.device_drops,
                &self.drop_reasons,
            ),
            pools: pools.pools,
            inbound: pools.inbound,
            send_limits,
            marks: Vec::new(),
            detached: Vec::new(),
            on_demand: None,
        };
        // Threads that exited before this read had their last switch-out counted: forget them
        // so the map cannot fill with the dead.
        self.maps.forget_threads(&self.exited);
        // A process is gone when its main thread exits: a reused pid is described again.
        for tid in &self.exited {
            self.described.remove(tid);
        }
        let exited: HashSet<u32> = self.exited.iter().copied().collect();
        let gone: Vec<_> = cur
            .wakes
            .keys()
            .filter(|k| exited.contains(&k.waker_tid) || exited.contains(&k.wakee_tid))
            .copied()
            .collect();
        self.maps.forget_wakes(&gone);
        for key in &gone {
            cur.wakes.remove(key);
        }
        // The process table, listening-port owners and capacities keep live tasks only.
        table.forget(&self.exited);
        self.owners.retain(|_, (pid, _)| !exited.contains(pid));
        self.capacities.retain(|pid, _| !exited.contains(pid));
        self.throttle.unwatch(&exited);
        for tid in self.exited.drain(..) {
            cur.threads.remove(&tid);
        }
        stages.lap("forget_exited");
        interval.overhead.stages = stages.spent;
        // Read once, after all of this interval's work, so none of it falls between intervals.
        let cpu_ns = self_cpu_ns();
        interval.overhead.user_cpu_ns = cpu_ns.saturating_sub(self.prev_cpu_ns);
        self.prev_cpu_ns = cpu_ns;
        self.spare = std::mem::replace(&mut self.prev, cur);
        self.prev_unix_ns = now;
        self.index += 1;
        interval
    }

    /// The programs' cost in the interval: their own run counts, the kernel's figures while
    /// statistics were on, the other runs priced at the latest windows.
    fn fill_bpf_cost(
        &self,
        overhead: &mut crate::recording::OverheadInterval,
        measured: BTreeMap<String, [u64; 2]>,
        runs: Option<BTreeMap<String, u64>>,
        tick: stats::Tick,
    ) {
        let prices = self.windows.prices(tick.detached);
        let cost = stats::interval_cost(runs.as_ref(), &measured, &prices);
        overhead.bpf_run_ns = cost.bpf_run_ns;
        overhead.bpf_runs = cost.bpf_runs;
        overhead.programs = cost.programs;
        overhead.estimated_ns = cost.estimated_ns;
        overhead.unpriced_runs = cost.unpriced_runs;
        overhead.measured = Some(measured);
        overhead.sampled = tick.sampled_ns > 0;
        overhead.sampled_ns = tick.sampled_ns;
        overhead.windows = tick.closed.into_iter().collect();
    }

    /// Finds the owner of each listening port that accepted connections and is not known yet.
    fn refresh_owners(&mut self, cur: &KernelSnapshot) {
        let unknown: Vec<u16> = cur
            .connections
            .keys()
            .filter(|k| {
                k.direction == chokepoint_common::DIRECTION_PASSIVE
                    && !self.owners.contains_key(&k.port)
            })
            .map(|k| k.port)
            .collect();
        if unknown.is_empty() {
            return;
        }
        // Unreadable /proc entries only leave the owner unknown (the row keeps its port).
        if let Ok(found) = collect::processes::listening_owners(&unknown) {
            for (port, owner) in found {
                self.owners.insert(port, (owner.pid, owner.comm));
            }
        }
        // Servers in other network namespaces (containers) listen in their own socket tables.
        if let Some(net) = &self.net {
            let left: Vec<u16> = unknown
                .into_iter()
                .filter(|p| !self.owners.contains_key(p))
                .collect();
            if !left.is_empty() {
                for (port, owner) in net.listening_owners(&left) {
                    self.owners.insert(port, (owner.pid, owner.comm));
                }
            }
        }
    }
}

/// This thread's CPU time per stage of `take`: where chokepoint's own user-space cost goes.
struct Stages {
    last_ns: u64,
    spent: BTreeMap<String, u64>,
}

impl Stages {
    fn start() -> Self {
        Self {
            last_ns: thread_cpu_ns(),
            spent: BTreeMap::new(),
        }
    }

    fn lap(&mut self, stage: &str) {
        let now = thread_cpu_ns();
        *self.spent.entry(stage.to_string()).or_default() += now.saturating_sub(self.last_ns);
        self.last_ns = now;
    }
}

fn thread_cpu_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}
