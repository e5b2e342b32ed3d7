//! Probe tiers. `--probes all` attaches every program for the whole recording. The default
//! tier duty-cycles the hooks whose figures no verdict needs event by event: they are attached
//! one interval in every [`EVERY`] (one in up to [`MAX_EVERY`] where a sample costs more than
//! [`BUDGET`] of the host per interval of the cycle: [`spacing`]) and detached the rest, and
//! analysis estimates their figures from the intervals they were attached in (each interval
//! records what was detached: `Interval.detached`).
//!
//! Duty-cycled now:
//! - `irq:softirq_entry`/`softirq_exit` (softirq time per vector, ~11 runs per request under
//!   connection churn, a sixth of the programs' time; no verdict reads it, the host's total
//!   softirq time comes from `/proc/stat` every interval);
//! - `sock:sock_send_length`/`sock_recv_length` (request turns per socket, half the programs'
//!   time under churn): pools and requests in flight are Little's-law averages, which the
//!   sampled intervals estimate. A turn that began before an attach is dropped, in the kernel
//!   and in user space (`SOCK_EPOCH`), so no busy time is counted across a gap.
//!
//! - `sched:sched_switch`/`sched_waking` (hundreds of thousands of runs a second in a
//!   context-switch storm), where `sched_switch` reads each thread's kernel run-time total:
//!   on-CPU time is then exact in every interval (user space brings every thread up to its
//!   total from /proc/<tid>/schedstat at each read, `MapReader::refresh_all_threads`), and
//!   what only the events give (off-CPU time by reason, who woke whom, run-queue waits,
//!   switch counts) is estimated from the sampled intervals. A wait that began before an
//!   attach is counted from the attach (`DUTY_EPOCH`, `Counter::OffCpuClipped`).
//!
//! The connection-setup program is attached with them, and also on demand: in every interval
//! after one whose always-read figures show a connection failing to set up
//! (`probes/demand.rs`). Retransmits, resets and drops stay attached in every interval.
use aya::{
    Ebpf,
    maps::{Array, HashMap, PerCpuArray, PerCpuValues},
    programs::{BtfTracePoint, RawTracePoint, TracePoint},
};

use super::{
    demand::{CONNTRACK_QUESTION, ON_DEMAND, PORTS_QUESTION},
    loader::{Attached, LinkHandle, Probes, error_chain, program},
};

/// Which programs run when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Tier {
    /// Duty-cycle the hooks no verdict reads event by event (docs/overhead.md).
    #[default]
    Default,
    /// Every program attached for the whole recording.
    All,
}

/// The duty-cycled tracepoints, in detach order: a softirq's exit still runs after its entry
/// program is gone, so no entry timestamp is left behind.
pub const CYCLED: &[&str] = &[
    "irq/softirq_entry",
    "irq/softirq_exit",
    "sock/sock_send_length",
    "sock/sock_recv_length",
    "sched/sched_switch",
    "sched/sched_waking",
    // Only `sched_waking` reads what it marks: off with it.
    "timer/hrtimer_expire_entry",
];

/// Whether a cycled tracepoint id is one of the scheduler hooks, or the timer hook whose marks
/// only `sched_waking` reads (kept attached with them where they cannot be cycled).
pub fn is_sched(id: &str) -> bool {
    id.starts_with(crate::recording::SCHED_PROBES) || id == "timer/hrtimer_expire_entry"
}

/// Whether a cycled tracepoint id is one of the connection-use (request turn) hooks.
pub fn is_conn_use(id: &str) -> bool {
    id.starts_with(crate::recording::CONN_USE_PROBES)
}

/// Attached one interval in every this many at most: interval [`PHASE`], then every
/// [`EVERY`]th after (2, 7, 12...), and the first (the programs attach at start). Not the
/// first alone: analysis drops a run's first interval as its ramp-up, and a 6-second recording
/// would keep no sample.
pub const EVERY: u32 = 5;
pub const PHASE: u32 = 2;
/// Where a sample of the cycled programs costs more than [`BUDGET`] of the host per
/// interval of the cycle, the samples are spaced further apart, up to one in this many: a
/// sample's figures are sums over events, and one second of a context-switch storm holds
/// hundreds of thousands (the storm costs a quarter of its throughput while they run).
pub const MAX_EVERY: u32 = 10;
/// The cycled programs' cost, averaged over their cycle, as a share of the host (their
/// priced run time in the last sample over its CPU capacity, divided by the spacing).
pub const BUDGET: f64 = 0.01;

/// The spacing that keeps a sample costing `share` of the host (while attached) under
/// [`BUDGET`] on average, between [`EVERY`] and [`MAX_EVERY`].
pub fn spacing(share: f64) -> u32 {
    let needed = (share / BUDGET).ceil();
    if needed.is_finite() && needed > EVERY as f64 {
        (needed as u32).min(MAX_EVERY)
    } else {
        EVERY
    }
}

/// The per-CPU entry timestamps the softirq exit program pairs with.
const SINCE_MAP: &str = "SOFTIRQ_SINCE";

/// When the cycled programs were last attached (CLOCK_MONOTONIC ns).
const EPOCH_MAP: &str = "DUTY_EPOCH";

/// The handshakes the connection-setup program is timing (socket address -> start): emptied
/// when it detaches, since the ends of those handshakes will go unseen.
const HANDSHAKES_MAP: &str = "HANDSHAKES";

/// The duty cycle of one session.
pub struct DutyCycle {
    /// The cycled tracepoints that attached (ids), in [`CYCLED`] order.
    ids: Vec<String>,
    /// The tracepoints attached in the samples and on demand ([`ON_DEMAND`]) that attached.
    demand: Vec<String>,
    attached: bool,
    demand_attached: bool,
    /// Why the interval just read asked for the [`ON_DEMAND`] programs (`DutyCycle::ask`).
    question: Option<String>,
    /// Why they run through the interval now under way, when a question (not a sample)
    /// attached them.
    running_for: Option<String>,
    intervals: u32,
    /// The interval (numbered as `intervals` counts reads) the next sample runs in: [`PHASE`],
    /// then [`spacing`] of the last sample's cost after it.
    next_sample: u32,
    /// The host's CPUs (the capacity a sample's cost is a share of).
    cpus: f64,
    /// CLOCK_MONOTONIC ns of the last attach of the connection-use programs (0 before the
    /// first detach): turns that began earlier are not in flight (`session/pools.rs`).
    epoch_ns: u64,
    /// Attach or detach failures, said once in the recording's limitations.
    pub errors: Vec<String>,
}

impl DutyCycle {
    /// None for `--probes all`, or when none of the cycled tracepoints attached.
    pub fn new(tier: Tier, probes: &Probes) -> Option<Self> {
        if tier == Tier::All {
            return None;
        }
        // Without the kernel's run-time totals on-CPU time is summed from the switches
        // themselves, and a detached `sched_switch` would lose it.
        let ids: Vec<String> = CYCLED
            .iter()
            .filter(|id| probes.links.contains_key(**id))
            .filter(|id| probes.run_time_totals || !is_sched(id))
            .map(|id| id.to_string())
            .collect();
        let demand: Vec<String> = ON_DEMAND
            .iter()
            .filter(|id| probes.links.contains_key(**id))
            .map(|id| id.to_string())
            .collect();
        let cpus = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        (!ids.is_empty() || !demand.is_empty()).then(|| Self::start(ids, demand, cpus))
    }

    /// A cycle at its start: the programs attached (they attach with the session).
    fn start(ids: Vec<String>, demand: Vec<String>, cpus: f64) -> Self {
        Self {
            ids,
            demand,
            attached: true,
            demand_attached: true,
            question: None,
            running_for: None,
            intervals: 0,
            next_sample: PHASE,
            cpus,
            epoch_ns: 0,
            errors: Vec::new(),
        }
    }

    /// The header's line: what the tier does.
    pub fn describe(tier: Tier, cycle: Option<&Self>) -> String {
        match (tier, cycle) {
            (Tier::All, _) => "all: every probe attached in every interval (--probes all)".into(),
            (Tier::Default, Some(c)) => {
                let parts = if c.demand.is_empty() {
                    String::new()
                } else {
                    format!(
                        " except {}, attached in the same intervals and on demand: in every interval after one with SYN or SYN-ACK retransmits, failed attempts, listen drops, failed connects, {:.0}% of the ephemeral ports held outside TIME_WAIT, the conntrack table {:.0}% full or traffic in another network namespace (opens and failed attempts elsewhere from the kernel's Tcp: counters)",
                        c.demand.join(", "),
                        PORTS_QUESTION * 100.0,
                        CONNTRACK_QUESTION * 100.0
                    )
                };
                format!(
                    "default: {} attached 1 interval in every {EVERY} (the first, then interval {PHASE} and every {EVERY}th after, up to every {MAX_EVERY}th where a sample costs more than {:.0}% of the host per interval of the cycle; their figures estimated from those intervals; Interval.detached names the others); every other probe in every interval{parts}",
                    c.ids.join(", "),
                    BUDGET * 100.0
                )
            }
            (Tier::Default, None) => {
                "default: nothing to duty-cycle here; every probe in every interval".into()
            }
        }
    }

    /// What was detached through the interval that just ended.
    pub fn detached(&self) -> Vec<String> {
        let cycled = self.ids.iter().filter(|_| !self.attached);
        let demand = self.demand.iter().filter(|_| !self.demand_attached);
        cycled.chain(demand).cloned().collect()
    }

    /// When the cycled programs were last attached (0: never detached).
    pub fn epoch_ns(&self) -> u64 {
        self.epoch_ns
    }

    /// Whether the scheduler programs are among the cycled ones: every read then brings every
    /// thread's on-CPU time up to its kernel total.
    pub fn cycles_sched(&self) -> bool {
        self.ids.iter().any(|id| is_sched(id))
    }

    /// Whether the interval that starts at this read runs the cycled programs.
    fn want(&self) -> bool {
        self.intervals == self.next_sample
    }

    /// After a read, before [`Self::after_read`]: the interval just read, with the cost in it
    /// of the programs a sample attaches, the cycled ones and the [`ON_DEMAND`] ones
    /// (`programs`: `{program: [ns, runs]}`, `seconds` long). If it was a sample (not the first
    /// interval, which only the start attached), the next sample comes [`spacing`] of its cost
    /// later.
    pub fn observe(
        &mut self,
        programs: &std::collections::BTreeMap<String, [u64; 2]>,
        seconds: f64,
    ) {
        if self.intervals != self.next_sample + 1 {
            return;
        }
        // What a sample adds: the cycled programs and those attached with them ([`ON_DEMAND`],
        // which otherwise only a question attaches: that time answers it and is not budgeted).
        let ns: u64 = self
            .ids
            .iter()
            .chain(&self.demand)
            .filter_map(|id| programs.get(id.split_once('/').map_or(id.as_str(), |(_, tp)| tp)))
            .map(|p| p[0])
            .sum();
        let share = ns as f64 / 1e9 / (seconds * self.cpus).max(1e-9);
        self.next_sample += spacing(share);
    }

    /// Whether the interval starting at this read goes without the cycled programs (after
    /// [`Self::before_read`]).
    pub fn next_detached(&self) -> bool {
        !self.want()
    }

    /// At each interval's end, before its maps are read: counts the interval, and attaches the
    /// cycled programs if the next interval runs them (before the read, so the next
    /// interval's first snapshot is taken with them running).
    pub fn before_read(&mut self, probes: &mut Probes) {
        self.intervals += 1;
        if self.want() && !self.attached {
            match attach(probes, &self.ids) {
                Ok(epoch) => {
                    self.epoch_ns = epoch;
                    self.attached = true;
                }
                Err(e) => self.note(e),
            }
        }
        if self.want() {
            self.attach_demand(probes);
        }
    }

    /// After a read, before [`Self::after_read`]: why the interval just read asks for the
    /// [`ON_DEMAND`] programs in the next one ([`super::demand::setup_question`]), if it does.
    pub fn ask(&mut self, question: Option<String>) {
        self.question = question;
    }

    /// Why the [`ON_DEMAND`] programs ran through the interval that just ended, when a
    /// question rather than a sample had them attached (`Interval.on_demand`).
    pub fn on_demand(&self) -> Option<String> {
        self.running_for.clone()
    }

    /// Whether the [`ON_DEMAND`] programs run through the interval starting now: in a sample,
    /// or when the last read asked for them.
    fn demand_wanted(&self) -> bool {
        self.want() || self.question.is_some()
    }

    /// The question the [`ON_DEMAND`] programs run for in the interval starting now.
    fn running_for_question(&self) -> Option<String> {
        let reason = self.question.as_ref().filter(|_| !self.want())?;
        let ids = self.demand.join(", ");
        self.demand_attached.then(|| format!("{ids}: {reason}"))
    }

    fn attach_demand(&mut self, probes: &mut Probes) {
        if self.demand_attached {
            return;
        }
        match attach_links(probes, &self.demand) {
            Ok(()) => self.demand_attached = true,
            Err(e) => self.note(e),
        }
    }

    /// After the read: detaches the cycled programs if the next interval goes without them.
    /// After, not before: a detach waits for the kernel to finish the programs' runs (tens of
    /// ms for the perf-event links of classic tracepoints), and the interval that ends here
    /// ran them up to its read; detaching first lost what happened meanwhile (busy sockets
    /// read as idle: 1.7 of 2 connections in use instead of 1.97).
    ///
    /// The [`ON_DEMAND`] programs stay (or attach) while the last read asked for them
    /// ([`Self::ask`]). Returns whether the cycled programs were detached here: the caller
    /// then empties what they track per socket (`Sampler::forget_sockets`), since closes
    /// may go unseen until the next sample.
    pub fn after_read(&mut self, probes: &mut Probes) -> bool {
        // The busiest program first: a classic tracepoint's detach can take tens of ms.
        if self.demand_wanted() {
            self.attach_demand(probes);
        } else if self.demand_attached {
            match detach(probes, &self.demand).and_then(|()| clear_handshakes(&mut probes.ebpf)) {
                Ok(()) => self.demand_attached = false,
                Err(e) => self.note(e),
            }
        }
        self.running_for = self.running_for_question();
        let mut released = false;
        if !self.want() && self.attached {
            match detach(probes, &self.ids) {
                Ok(()) => {
                    self.attached = false;
                    released = true;
                }
                Err(e) => self.note(e),
            }
        }
        released
    }

    fn note(&mut self, e: String) {
        if !self.errors.contains(&e) {
            self.errors.push(e);
        }
    }
}

fn detach(probes: &mut Probes, ids: &[String]) -> Result<(), String> {
    for id in ids {
        let Some(Attached {
            program: name,
            link,
        }) = probes.links.get_mut(id)
        else {
            continue;
        };
        let Some(handle) = link.take() else {
            continue;
        };
        let done = match handle {
            LinkHandle::Btf(l) => program::<BtfTracePoint>(&mut probes.ebpf, name)?
                .detach(l)
                .map_err(|e| error_chain(&e)),
            LinkHandle::Raw(l) => program::<RawTracePoint>(&mut probes.ebpf, name)?
                .detach(l)
                .map_err(|e| error_chain(&e)),
            LinkHandle::Classic(l) => program::<TracePoint>(&mut probes.ebpf, name)?
                .detach(l)
                .map_err(|e| error_chain(&e)),
        };
        done.map_err(|e| format!("detaching {id}: {e}"))?;
    }
    Ok(())
}

/// Attaches in reverse order (exit before entry), after clearing the entry timestamps a
/// detach may have left (an exit never pairs with an entry from before the gap) and stamping
/// the epoch (a turn never completes across the gap; a wait is counted from it). The epoch.
fn attach(probes: &mut Probes, ids: &[String]) -> Result<u64, String> {
    clear_since(&mut probes.ebpf)?;
    let epoch = stamp_epoch(&mut probes.ebpf)?;
    attach_links(probes, ids)?;
    Ok(epoch)
}

/// Attaches the detached links of `ids`, in reverse order.
fn attach_links(probes: &mut Probes, ids: &[String]) -> Result<(), String> {
    for id in ids.iter().rev() {
        let Some(Attached {
            program: name,
            link,
        }) = probes.links.get_mut(id)
        else {
            continue;
        };
        if link.is_some() {
            continue;
        }
        let (group, tp) = id.split_once('/').unwrap_or(("", id));
        let handle = if name.ends_with("_btf") {
            program::<BtfTracePoint>(&mut probes.ebpf, name)?
                .attach()
                .map(LinkHandle::Btf)
                .map_err(|e| error_chain(&e))
        } else if name.ends_with("_raw") {
            program::<RawTracePoint>(&mut probes.ebpf, name)?
                .attach(tp)
                .map(LinkHandle::Raw)
                .map_err(|e| error_chain(&e))
        } else {
            program::<TracePoint>(&mut probes.ebpf, name)?
                .attach(group, tp)
                .map(LinkHandle::Classic)
                .map_err(|e| error_chain(&e))
        };
        *link = Some(handle.map_err(|e| format!("attaching {id} again: {e}"))?);
    }
    Ok(())
}

/// Writes now (CLOCK_MONOTONIC, the clock `bpf_ktime_get_ns` reads) as the cycled programs'
/// epoch, before they attach: every event they see after is later.
fn stamp_epoch(ebpf: &mut Ebpf) -> Result<u64, String> {
    let now = super::reader::monotonic_ns();
    let Some(map) = ebpf.map_mut(EPOCH_MAP) else {
        return Ok(now);
    };
    let mut epoch: Array<_, u64> = Array::try_from(map).map_err(|e| format!("{EPOCH_MAP}: {e}"))?;
    epoch
        .set(0, now, 0)
        .map_err(|e| format!("writing {EPOCH_MAP}: {e}"))?;
    Ok(now)
}

/// Empties the handshakes being timed, once their program is detached: their ends will go
/// unseen, and a socket that later reuses the address must not finish one of them.
fn clear_handshakes(ebpf: &mut Ebpf) -> Result<(), String> {
    let Some(map) = ebpf.map_mut(HANDSHAKES_MAP) else {
        return Ok(());
    };
    // The value (`HandshakeStart`: start ns, `ConnKey`) is only removed, never read.
    let mut started: HashMap<_, u64, [u64; 2]> =
        HashMap::try_from(map).map_err(|e| format!("{HANDSHAKES_MAP}: {e}"))?;
    let keys: Vec<u64> = started.keys().filter_map(Result::ok).collect();
    for k in keys {
        // Gone meanwhile is as good as removed.
        let _ = started.remove(&k);
    }
    Ok(())
}

fn clear_since(ebpf: &mut Ebpf) -> Result<(), String> {
    let Some(map) = ebpf.map_mut(SINCE_MAP) else {
        return Ok(());
    };
    let mut since: PerCpuArray<_, u64> =
        PerCpuArray::try_from(map).map_err(|e| format!("{SINCE_MAP}: {e}"))?;
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| format!("{SINCE_MAP}: {e}"))?;
    let zeros =
        PerCpuValues::try_from(vec![0u64; cpus]).map_err(|e| format!("{SINCE_MAP}: {e}"))?;
    since
        .set(0, zeros, 0)
        .map_err(|e| format!("clearing {SINCE_MAP}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_says_what_each_tier_does() {
        let c = DutyCycle::start(
            CYCLED.iter().map(|s| s.to_string()).collect(),
            vec![crate::recording::SETUP_PROBE.into()],
            2.0,
        );
        let text = DutyCycle::describe(Tier::Default, Some(&c));
        assert!(
            text.contains("irq/softirq_entry, irq/softirq_exit, sock/sock_send_length, sock/sock_recv_length, sched/sched_switch, sched/sched_waking, timer/hrtimer_expire_entry attached 1 interval in every 5")
        );
        assert!(DutyCycle::describe(Tier::All, None).starts_with("all:"));
        assert!(text.contains(
            "except sock/inet_sock_set_state, attached in the same intervals and on demand"
        ));
        assert!(c.detached().is_empty());
        assert!(c.cycles_sched());
        assert!(is_sched("timer/hrtimer_expire_entry") && !is_sched("sock/sock_send_length"));
        let paused = DutyCycle {
            attached: false,
            ..c
        };
        assert_eq!(paused.detached().len(), CYCLED.len());
        let both = DutyCycle {
            demand_attached: false,
            ..paused
        };
        assert!(
            both.detached()
                .contains(&crate::recording::SETUP_PROBE.to_string())
        );
    }

    /// The connection-setup program runs in the samples, and after any interval that asked for
    /// it, for as long as the intervals go on asking.
    #[test]
    fn the_setup_program_runs_in_samples_and_while_intervals_ask_for_it() {
        let mut c = DutyCycle::start(
            vec!["irq/softirq_entry".into()],
            vec![crate::recording::SETUP_PROBE.into()],
            2.0,
        );
        let mut ran = Vec::new();
        for read in 1..=12u32 {
            c.intervals = read;
            // Failures from interval 4 to 5 (read at 5 and 6).
            c.ask(
                (5..=6)
                    .contains(&read)
                    .then(|| "3 SYN or SYN-ACK retransmits".into()),
            );
            if c.demand_wanted() {
                ran.push(read);
            }
            c.observe(&Default::default(), 1.0);
        }
        // Samples at 2, 7 and 12; asked for after the reads at 5 and 6.
        assert_eq!(ran, [2, 5, 6, 7, 12]);
        // What the interval says it ran for.
        c.intervals = 5;
        c.ask(Some("2 listen drops".into()));
        assert_eq!(
            c.running_for_question().as_deref(),
            Some("sock/inet_sock_set_state: 2 listen drops")
        );
        c.intervals = c.next_sample;
        assert_eq!(c.running_for_question(), None, "a sample needs no question");
    }

    /// Samples one interval in five while they are cheap; spaced out to keep their average
    /// cost at the budget where one costs more (a context-switch storm), never beyond one
    /// in ten, and back to five when the cost falls.
    #[test]
    fn samples_are_spaced_by_what_the_last_one_cost() {
        assert_eq!(spacing(0.0), EVERY);
        assert_eq!(spacing(0.04), EVERY);
        assert_eq!(spacing(0.053), 6);
        assert_eq!(spacing(0.08), 8);
        assert_eq!(spacing(0.25), MAX_EVERY);
        assert_eq!(spacing(f64::NAN), EVERY);
        let mut c = DutyCycle::start(
            vec!["sched/sched_switch".into(), "irq/softirq_entry".into()],
            Vec::new(),
            2.0,
        );
        let cost = |ms: u64| {
            let mut m = std::collections::BTreeMap::new();
            m.insert("sched_switch".to_string(), [ms * 1_000_000, 1000]);
            m.insert("inet_sock_set_state".to_string(), [900_000_000, 1000]);
            m
        };
        let mut sampled = Vec::new();
        for read in 1..=50u32 {
            c.intervals = read;
            if c.want() {
                sampled.push(read);
            }
            // Interval 1 (after the first, which only the start attached) cost nothing to
            // observe; a storm from interval 5 to 30: 200 ms of 2 CPU-seconds in a sample
            // (10%); 40 ms (2%) before and after.
            let ms = if (6..=30).contains(&read) { 200 } else { 40 };
            c.observe(&cost(ms), 1.0);
        }
        // 2, then 7 (the sample at 2 cost 2%), then 17, 27 and 37 (each storm sample 10%),
        // then back to one in five once a sample is cheap again (37 cost 2%).
        assert_eq!(sampled, [2, 7, 17, 27, 37, 42, 47]);
        assert_eq!(sampled[4] - sampled[3], MAX_EVERY);
    }

    /// The connection-setup program runs in every sample, so its cost there spaces them too.
    #[test]
    fn a_sample_is_priced_with_the_setup_program_it_attaches() {
        let mut c = DutyCycle::start(
            vec!["sock/sock_send_length".into()],
            vec![crate::recording::SETUP_PROBE.into()],
            2.0,
        );
        let mut m = std::collections::BTreeMap::new();
        // 40 ms each of 2 CPU-seconds: 2% alone, 4% together.
        m.insert("sock_send_length".to_string(), [40_000_000, 1000]);
        m.insert("inet_sock_set_state".to_string(), [40_000_000, 1000]);
        c.intervals = PHASE + 1;
        c.observe(&m, 1.0);
        assert_eq!(c.next_sample, PHASE + EVERY);
        m.insert("inet_sock_set_state".to_string(), [90_000_000, 1000]);
        c.intervals = c.next_sample + 1;
        c.observe(&m, 1.0);
        assert_eq!(c.next_sample, PHASE + EVERY + 7, "6.5%: one in seven");
    }
}
