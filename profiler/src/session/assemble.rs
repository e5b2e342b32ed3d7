//! Turns two consecutive kernel snapshots into one interval's figures: deltas of counters,
//! histograms, connections and threads, grouped by process.
use std::collections::{BTreeMap, HashMap, HashSet};

use chokepoint_common::{
    Counter, DIRECTION_PASSIVE, HIST_BUCKETS, Histogram, OFF_IO, OFF_SLEEP, SOFTIRQ_VECTORS,
    ThreadCpu, off_reason,
};

use super::processes::ProcessTable;
use crate::{
    probes::reader::KernelSnapshot,
    recording::{
        ConnectionRow, Direction, LogHistogram, OverheadInterval, ProcessInterval, SoftirqFigures,
        TcpCounts, ThreadInterval, ThreadWakeRow, WakeRow, WakeTotal,
    },
};

/// Kernel-side figures of one interval, before host counters are added.
pub struct KernelInterval {
    pub tcp: TcpCounts,
    pub connect_latency: LogHistogram,
    pub handshake_latency: LogHistogram,
    pub drops: BTreeMap<String, u64>,
    pub connections: Vec<ConnectionRow>,
    pub processes: Vec<ProcessInterval>,
    pub overhead: OverheadInterval,
    pub forks: u64,
    pub exits: u64,
    pub wakes: Vec<WakeRow>,
    pub thread_wakes: Vec<ThreadWakeRow>,
    pub wake_totals: Vec<WakeTotal>,
    pub softirqs: BTreeMap<String, SoftirqFigures>,
}

fn counter(s: &KernelSnapshot, c: Counter) -> u64 {
    s.counters.get(c as usize).copied().unwrap_or(0)
}

fn delta(prev: &KernelSnapshot, cur: &KernelSnapshot, c: Counter) -> u64 {
    counter(cur, c).saturating_sub(counter(prev, c))
}

fn histogram(prev: &KernelSnapshot, cur: &KernelSnapshot, h: Histogram) -> LogHistogram {
    let start = h as usize * HIST_BUCKETS;
    LogHistogram(
        (start..start + HIST_BUCKETS)
            .map(|i| {
                cur.histograms
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(prev.histograms.get(i).copied().unwrap_or(0))
            })
            .collect(),
    )
}

pub fn comm_str(comm: &[u8; 16]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

fn thread_delta(prev: Option<&ThreadCpu>, cur: &ThreadCpu) -> ThreadCpu {
    let Some(p) = prev else { return *cur };
    let mut d = *cur;
    d.oncpu_ns = cur.oncpu_ns.saturating_sub(p.oncpu_ns);
    d.voluntary = cur.voluntary.saturating_sub(p.voluntary);
    d.involuntary = cur.involuntary.saturating_sub(p.involuntary);
    d.runq_ns = cur.runq_ns.saturating_sub(p.runq_ns);
    d.runq_count = cur.runq_count.saturating_sub(p.runq_count);
    for (a, b) in d.offcpu_ns.iter_mut().zip(p.offcpu_ns.iter()) {
        *a = a.saturating_sub(*b);
    }
    for (a, b) in d.offcpu_reason_ns.iter_mut().zip(p.offcpu_reason_ns.iter()) {
        *a = a.saturating_sub(*b);
    }
    for (a, b) in d.runq_hist.iter_mut().zip(p.runq_hist.iter()) {
        *a = a.saturating_sub(*b);
    }
    d
}

/// Who owns each listening port (filled by the caller from /proc).
pub type ListenOwners = HashMap<u16, (u32, String)>;

pub fn assemble(
    prev: &KernelSnapshot,
    cur: &KernelSnapshot,
    drop_names: &BTreeMap<u32, String>,
    softirq_names: &BTreeMap<u32, String>,
    listen_owners: &ListenOwners,
    table: &mut ProcessTable,
) -> KernelInterval {
    let tcp = TcpCounts {
        active_opens: delta(prev, cur, Counter::ActiveOpens),
        passive_opens: delta(prev, cur, Counter::PassiveOpens),
        active_established: delta(prev, cur, Counter::ActiveEstablished),
        passive_established: delta(prev, cur, Counter::PassiveEstablished),
        connect_failed: delta(prev, cur, Counter::ConnectFailed),
        closes: delta(prev, cur, Counter::Closes),
        syn_retransmits: delta(prev, cur, Counter::SynRetransmits),
        synack_retransmits: delta(prev, cur, Counter::SynAckRetransmits),
        resets_sent: delta(prev, cur, Counter::ResetsSent),
        resets_received: delta(prev, cur, Counter::ResetsReceived),
        skb_drops: delta(prev, cur, Counter::SkbDrops),
        connect_addr_unavailable: delta(prev, cur, Counter::ConnectAddrNotAvail),
        from_kernel_counters: false,
    };

    let mut drops = BTreeMap::new();
    for (reason, (&c, &p)) in cur
        .drops
        .iter()
        .zip(prev.drops.iter().chain(std::iter::repeat(&0)))
        .enumerate()
    {
        let n = c.saturating_sub(p);
        if n > 0 {
            let name = drop_names
                .get(&(reason as u32))
                .cloned()
                .unwrap_or_else(|| format!("reason-{reason}"));
            drops.insert(name, n);
        }
    }

    // Threads, grouped by process.
    let mut by_pid: HashMap<u32, Vec<(u32, ThreadCpu)>> = HashMap::new();
    for (&tid, t) in &cur.threads {
        let d = thread_delta(prev.threads.get(&tid), t);
        if d.oncpu_ns == 0
            && d.voluntary == 0
            && d.involuntary == 0
            && d.runq_count == 0
            && d.offcpu_ns == [0, 0]
        {
            continue;
        }
        // A thread not yet seen switching out has no tgid; a main thread's tid is its pid.
        let pid = if d.tgid != 0 { d.tgid } else { tid };
        by_pid.entry(pid).or_default().push((tid, d));
    }

    let mut connections = Vec::new();
    let mut servers = HashSet::new();
    for (key, c) in &cur.connections {
        let p = prev.connections.get(key).copied().unwrap_or_default();
        let (opens, established, failed) = (
            c.opens.saturating_sub(p.opens),
            c.established.saturating_sub(p.established),
            c.failed.saturating_sub(p.failed),
        );
        let setup_ns = c.setup_ns.saturating_sub(p.setup_ns);
        if opens == 0 && established == 0 && failed == 0 {
            continue;
        }
        let (direction, pid, comm) = if key.direction == DIRECTION_PASSIVE {
            let owner = listen_owners.get(&key.port);
            if let Some((pid, _)) = owner {
                servers.insert(*pid);
            }
            (
                Direction::Passive,
                owner.map(|o| o.0),
                owner.map(|o| o.1.clone()),
            )
        } else {
            let comm = table.learn(key.tgid, "").comm.clone();
            (Direction::Active, Some(key.tgid), Some(comm))
        };
        connections.push(ConnectionRow {
            pid,
            comm,
            port: key.port,
            direction,
            opens,
            established,
            failed,
            setup_ns,
        });
    }
    connections.sort_by(|a, b| b.opens.cmp(&a.opens).then(a.port.cmp(&b.port)));

    let mut processes = Vec::new();
    for (pid, threads) in by_pid {
        let main_comm = threads
            .iter()
            .find(|(tid, _)| *tid == pid)
            .or(threads.first())
            .map(|(_, t)| comm_str(&t.comm))
            .unwrap_or_default();
        let entry = table.learn(pid, &main_comm).clone();
        let mut p = ProcessInterval {
            pid,
            ppid: entry.ppid,
            comm: entry.comm,
            role: table.role(pid, &servers),
            oncpu_ns: 0,
            voluntary: 0,
            involuntary: 0,
            runq_ns: 0,
            runq_count: 0,
            runq_latency: LogHistogram(vec![0; HIST_BUCKETS]),
            capacity_cores: None,
            capacity_limited_by: None,
            offcpu_sleep_ns: 0,
            offcpu_io_ns: 0,
            offcpu_reason_ns: BTreeMap::new(),
            threads: Vec::new(),
        };
        for (tid, t) in threads {
            p.oncpu_ns += t.oncpu_ns;
            p.voluntary += t.voluntary;
            p.involuntary += t.involuntary;
            p.runq_ns += t.runq_ns;
            p.runq_count += t.runq_count;
            p.runq_latency.add(&LogHistogram(t.runq_hist.to_vec()));
            p.offcpu_sleep_ns += t.offcpu_ns[OFF_SLEEP];
            p.offcpu_io_ns += t.offcpu_ns[OFF_IO];
            for (name, ns) in off_reason::NAMES.iter().zip(t.offcpu_reason_ns) {
                if ns > 0 {
                    *p.offcpu_reason_ns.entry((*name).to_string()).or_insert(0) += ns;
                }
            }
            p.threads.push(ThreadInterval {
                tid,
                comm: comm_str(&t.comm),
                oncpu_ns: t.oncpu_ns,
                voluntary: t.voluntary,
                involuntary: t.involuntary,
                runq_ns: t.runq_ns,
                runq_count: t.runq_count,
                offcpu_sleep_ns: t.offcpu_ns[OFF_SLEEP],
                offcpu_io_ns: t.offcpu_ns[OFF_IO],
            });
        }
        p.threads.sort_by_key(|t| std::cmp::Reverse(t.oncpu_ns));
        p.threads.truncate(16);
        processes.push(p);
    }
    processes.sort_by_key(|p| std::cmp::Reverse(p.oncpu_ns));

    let (wakes, thread_wakes, wake_totals) = wake_rows(prev, cur, table);

    let vectors = SOFTIRQ_VECTORS as usize;
    let at = |s: &KernelSnapshot, i: usize| s.softirqs.get(i).copied().unwrap_or(0);
    let mut softirqs = BTreeMap::new();
    for v in 0..vectors {
        let ns = at(cur, v).saturating_sub(at(prev, v));
        let runs = at(cur, vectors + v).saturating_sub(at(prev, vectors + v));
        if runs > 0 {
            let name = softirq_names
                .get(&(v as u32))
                .cloned()
                .unwrap_or_else(|| format!("vec-{v}"));
            softirqs.insert(name, SoftirqFigures { ns, runs });
        }
    }

    let mut overhead = OverheadInterval {
        map_update_failures: delta(prev, cur, Counter::MapUpdateFailed),
        ring_buffer_full: delta(prev, cur, Counter::RingBufferFull),
        switches_unmatched: delta(prev, cur, Counter::SwitchUnmatched),
        offcpu_clipped: delta(prev, cur, Counter::OffCpuClipped),
        ..Default::default()
    };
    for (name, &(ns, runs)) in &cur.programs {
        let (pns, pruns) = prev.programs.get(name).copied().unwrap_or((0, 0));
        let (dns, druns) = (ns.saturating_sub(pns), runs.saturating_sub(pruns));
        overhead.bpf_run_ns += dns;
        overhead.bpf_runs += druns;
        overhead.programs.insert(name.clone(), [dns, druns]);
    }

    KernelInterval {
        tcp,
        connect_latency: histogram(prev, cur, Histogram::ConnectLatency),
        handshake_latency: histogram(prev, cur, Histogram::HandshakeLatency),
        drops,
        connections,
        processes,
        overhead,
        forks: delta(prev, cur, Counter::ProcessForks),
        exits: delta(prev, cur, Counter::ThreadExits),
        wakes,
        thread_wakes,
        wake_totals,
        softirqs,
    }
}

/// The interval's wake-ups: per process pair (summed over their threads) and per thread pair,
/// each the 64 busiest; and all of them per wakee process and waker name.
fn wake_rows(
    prev: &KernelSnapshot,
    cur: &KernelSnapshot,
    table: &mut ProcessTable,
) -> (Vec<WakeRow>, Vec<ThreadWakeRow>, Vec<WakeTotal>) {
    let name = |table: &mut ProcessTable, pid: u32| {
        if pid == 0 {
            "idle".to_string()
        } else {
            table.learn(pid, "").comm.clone()
        }
    };
    let mut by_process: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
    let mut threads: Vec<ThreadWakeRow> = Vec::new();
    for (key, c) in &cur.wakes {
        let p = prev.wakes.get(key).copied().unwrap_or_default();
        let n = c.wakes.saturating_sub(p.wakes);
        if n == 0 {
            continue;
        }
        let off = c.offcpu_ns.saturating_sub(p.offcpu_ns);
        let e = by_process
            .entry((key.waker_tgid, key.wakee_tgid))
            .or_default();
        e.0 += n;
        e.1 += off;
        threads.push(ThreadWakeRow {
            waker_pid: key.waker_tgid,
            waker_tid: key.waker_tid,
            wakee_pid: key.wakee_tgid,
            wakee_tid: key.wakee_tid,
            wakes: n,
            offcpu_ns: off,
        });
    }
    let mut wakes: Vec<WakeRow> = by_process
        .into_iter()
        .map(|((waker, wakee), (n, off))| WakeRow {
            waker_pid: waker,
            waker_comm: name(table, waker),
            wakee_pid: wakee,
            wakee_comm: name(table, wakee),
            wakes: n,
            offcpu_ns: off,
        })
        .collect();
    let mut totals: BTreeMap<(u32, String), (u64, u64)> = BTreeMap::new();
    for w in &wakes {
        let e = totals
            .entry((w.wakee_pid, w.waker_comm.clone()))
            .or_default();
        e.0 += w.wakes;
        e.1 += w.offcpu_ns;
    }
    let totals = totals
        .into_iter()
        .map(|((wakee_pid, waker_comm), (wakes, offcpu_ns))| WakeTotal {
            wakee_pid,
            waker_comm,
            wakes,
            offcpu_ns,
        })
        .collect();
    wakes.sort_by_key(|w| std::cmp::Reverse(w.wakes));
    wakes.truncate(64);
    threads.sort_by_key(|w| std::cmp::Reverse(w.wakes));
    threads.truncate(64);
    (wakes, threads, totals)
}

#[cfg(test)]
mod tests {
    use chokepoint_common::{COUNTER_SLOTS, ConnCounts, ConnKey, DIRECTION_ACTIVE};

    use super::*;

    fn snapshot() -> KernelSnapshot {
        KernelSnapshot {
            counters: vec![0; COUNTER_SLOTS as usize],
            histograms: vec![0; 2 * HIST_BUCKETS],
            drops: vec![0; 256],
            ..Default::default()
        }
    }

    fn thread(tgid: u32, oncpu: u64, comm: &str) -> ThreadCpu {
        let mut t = ThreadCpu {
            tgid,
            oncpu_ns: oncpu,
            ..Default::default()
        };
        t.comm[..comm.len()].copy_from_slice(comm.as_bytes());
        t
    }

    #[test]
    fn deltas_group_threads_into_processes_and_name_drops() {
        // Pids above the default pid_max, so /proc lookups find nothing real.
        const P: u32 = 4_194_310;
        const Q: u32 = 4_194_312;
        let prev = {
            let mut s = snapshot();
            s.counters[Counter::ActiveOpens as usize] = 10;
            s.threads.insert(P + 1, thread(P, 1_000, "worker"));
            s
        };
        let cur = {
            let mut s = snapshot();
            s.counters[Counter::ActiveOpens as usize] = 25;
            s.drops[3] = 4;
            s.histograms[HIST_BUCKETS + 5] = 2;
            s.threads.insert(P, thread(P, 500, "srv"));
            s.threads.insert(P + 1, thread(P, 3_000, "worker"));
            s.threads.insert(Q, thread(Q, 0, "idle"));
            s.connections.insert(
                ConnKey {
                    tgid: 0,
                    port: 80,
                    direction: DIRECTION_PASSIVE,
                },
                ConnCounts {
                    opens: 7,
                    established: 7,
                    failed: 0,
                    setup_ns: 7_000,
                },
            );
            s.connections.insert(
                ConnKey {
                    tgid: P,
                    port: 5432,
                    direction: DIRECTION_ACTIVE,
                },
                ConnCounts {
                    opens: 2,
                    established: 1,
                    failed: 1,
                    setup_ns: 250_000,
                },
            );
            s
        };
        let names = BTreeMap::from([(3, "NO_SOCKET".to_string())]);
        let owners = ListenOwners::from([(80u16, (P, "srv".to_string()))]);
        let mut table = ProcessTable::new(1, None);
        let iv = assemble(&prev, &cur, &names, &BTreeMap::new(), &owners, &mut table);
        assert_eq!(iv.tcp.active_opens, 15);
        assert_eq!(iv.drops.get("NO_SOCKET"), Some(&4));
        assert_eq!(iv.handshake_latency.count(), 2);
        assert_eq!(iv.processes.len(), 1, "the idle thread did nothing");
        let p = &iv.processes[0];
        assert_eq!(p.pid, P);
        assert_eq!(p.oncpu_ns, 500 + 2_000);
        assert_eq!(p.threads[0].tid, P + 1, "hottest thread first");
        assert_eq!(
            p.role,
            crate::recording::Role::Server,
            "owns the port that accepted"
        );
        let passive = iv
            .connections
            .iter()
            .find(|c| c.direction == Direction::Passive)
            .expect("row");
        assert_eq!((passive.pid, passive.opens), (Some(P), 7));
    }
}
