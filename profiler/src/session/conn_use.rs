//! Per-interval connection pools from the `SOCKETS` map: socket deltas, listener owners for
//! naming, closed sockets deleted after their last read, LRU evictions counted. The figures
//! themselves are computed by the pure `pools` module.
use std::collections::{HashMap, HashSet};

use super::{
    pools::{self, Names},
    processes::ProcessTable,
    retired,
};
use crate::{
    collect,
    probes::reader::{KernelSnapshot, MapReader},
    recording::{InboundRow, ListenQueue, PoolRow},
};

pub struct PoolFigures {
    pub pools: Vec<PoolRow>,
    pub inbound: Vec<InboundRow>,
    pub tracked: u64,
    pub evictions: u64,
}

/// What the probe tier did with the connection-use programs through an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UseWindow {
    /// Detached through the interval: it has no figures (closed sockets are still deleted).
    pub detached: bool,
    /// When they were last attached (CLOCK_MONOTONIC ns; 0: never detached): turns that began
    /// earlier straddle a gap and are not in flight.
    pub since_ns: u64,
}

#[derive(Default)]
pub struct ConnUse {
    /// Listening port -> owner's name, looked up once per port.
    owners: HashMap<u16, Option<String>>,
    /// Set by the session before each read.
    pub window: UseWindow,
}

impl ConnUse {
    /// Figures of the interval between `prev` and `cur`; closed sockets are then deleted from
    /// the map and from `cur` (which becomes the next interval's `prev`).
    pub fn take(
        &mut self,
        prev: &KernelSnapshot,
        cur: &mut KernelSnapshot,
        maps: &mut MapReader,
        listeners: &[ListenQueue],
        table: &mut ProcessTable,
    ) -> PoolFigures {
        let interval_ns = cur.monotonic_ns.saturating_sub(prev.monotonic_ns);
        let listening: HashSet<u16> = listeners.iter().map(|q| q.port).collect();
        let UseWindow { detached, since_ns } = self.window;
        let mut deltas = Vec::with_capacity(cur.sockets.len() + cur.retired.len());
        let mut wanted_ports = Vec::new();
        for (sk, s) in cur.sockets.iter().filter(|_| !detached) {
            let before = prev.sockets.get(sk).map(|p| (p, prev.monotonic_ns));
            let d = pools::socket_delta(before, s, cur.monotonic_ns, interval_ns, since_ns);
            let local_peer = pools::remote_is_local(s);
            let port = d.remote.port();
            if local_peer && listening.contains(&port) && !self.owners.contains_key(&port) {
                wanted_ports.push(port);
            }
            deltas.push((d, local_peer));
        }
        // Closed sockets whose memory was reused before this read: their last figures, folded
        // by identity, against what the last read saw of them.
        if !detached {
            deltas.extend(retired::deltas(
                &cur.retired,
                (&prev.sockets, prev.monotonic_ns),
                &cur.sockets,
                interval_ns,
                since_ns,
            ));
        }
        let retired: Vec<_> = cur.retired.iter().map(|(k, _)| *k).collect();
        maps.forget_retired(&retired);
        // The programs fold retiring sockets under their service port or endpoint: tell them
        // which ports listen and which are ephemeral.
        maps.update_listening(&listening);
        if !wanted_ports.is_empty() {
            wanted_ports.sort_unstable();
            wanted_ports.dedup();
            // An unreadable /proc only leaves the upstream named by its port.
            let found = collect::processes::listening_owners(&wanted_ports).unwrap_or_default();
            for port in wanted_ports {
                let name = found.get(&port).map(|o| o.comm.clone());
                self.owners.insert(port, name);
            }
        }
        let comms: HashMap<u32, String> = deltas
            .iter()
            .map(|(d, _)| d.pid)
            .collect::<HashSet<u32>>()
            .into_iter()
            .map(|pid| (pid, table.learn(pid, "").comm.clone()))
            .collect();
        let comm = |pid: u32| comms.get(&pid).cloned().unwrap_or_default();
        let listener = |port: u16| self.owners.get(&port).cloned().flatten();
        let names = Names {
            listening: &listening,
            comm: &comm,
            listener: &listener,
        };
        let (pools, inbound) = pools::group(&deltas, interval_ns, &names);

        // Only LRU eviction removes entries besides us: those read last time (and not closed
        // then, so not deleted by us) that are gone now. Counting inserts instead would race
        // with the map read (counters and map are not read at one instant).
        let evictions = prev
            .sockets
            .keys()
            .filter(|k| !cur.sockets.contains_key(k))
            .count() as u64;

        let closed: Vec<u64> = cur
            .sockets
            .iter()
            .filter(|(_, s)| s.closed != 0)
            .map(|(k, _)| *k)
            .collect();
        maps.forget_sockets(&closed);
        for k in &closed {
            cur.sockets.remove(k);
        }
        PoolFigures {
            pools,
            inbound,
            tracked: cur.sockets.len() as u64,
            evictions,
        }
    }
}
