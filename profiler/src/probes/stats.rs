//! The probes' own cost. The kernel's BPF run-time statistics (run_time_ns / run_cnt per
//! program) measure it, but are not free: two clock reads per program run, 5–7 % of throughput
//! under connection churn on the VM chokepoint is developed on. So by default they are on only
//! in short windows (`SCHEDULE`: 1 s in every 10 s, the first one second in), while the
//! programs count their own runs all the time (the per-CPU `RUNS` array, a few ns per run): the
//! windows price a run of each program (ns per run), and every interval's cost is its runs
//! priced at the latest windows' figures, plus what the kernel measured itself during a window.
//! `--exact-overhead` keeps the statistics on throughout instead.
//!
//! Statistics are enabled through BPF_ENABLE_STATS, whose effect ends when the returned guard (a
//! file descriptor) is dropped; where that syscall is missing, through the
//! `kernel.bpf_stats_enabled` sysctl, restored by the guard.
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fs,
    os::fd::OwnedFd,
};

use crate::recording::StatsWindow;

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

pub enum StatsGuard {
    Fd(#[allow(dead_code, reason = "held for its Drop")] OwnedFd),
    Sysctl { previous: String },
}

impl StatsGuard {
    pub fn enable() -> Result<Self, String> {
        match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
            Ok(fd) => Ok(Self::Fd(fd)),
            Err(syscall) => {
                let previous = fs::read_to_string(SYSCTL).map_err(|e| {
                    format!("BPF_ENABLE_STATS failed ({syscall}) and {SYSCTL}: {e}")
                })?;
                fs::write(SYSCTL, "1").map_err(|e| {
                    format!("BPF_ENABLE_STATS failed ({syscall}) and writing {SYSCTL}: {e}")
                })?;
                Ok(Self::Sysctl {
                    previous: previous.trim().to_string(),
                })
            }
        }
    }

    /// What a recording starts with. `exact`: the statistics on throughout, through the
    /// returned guard (the caller holds it to the end). Otherwise no guard is held: the sampler
    /// opens its windows (`Windows`), and this only checks that statistics can be enabled at
    /// all. Also returns the header's `bpf_stats` line (which mode ran, through what), and
    /// pushes a limitation when the statistics are unavailable.
    pub fn for_recording(exact: bool, limitations: &mut Vec<String>) -> (Option<Self>, String) {
        match Self::enable() {
            Ok(guard) => {
                let text = describe(exact, &guard, &SCHEDULE);
                // Sampled: dropping the guard closes this check before anything is attached.
                (exact.then_some(guard), text)
            }
            Err(e) => {
                limitations.push(format!("probe overhead not measured: {e}"));
                (None, format!("unavailable: {e}"))
            }
        }
    }
}

impl Drop for StatsGuard {
    fn drop(&mut self) {
        if let Self::Sysctl { previous } = self {
            let _ = fs::write(SYSCTL, previous.as_bytes());
        }
    }
}

/// The header's `bpf_stats` line.
fn describe(exact: bool, guard: &StatsGuard, schedule: &Schedule) -> String {
    match (exact, guard) {
        (true, StatsGuard::Fd(_)) => {
            "exact: BPF_ENABLE_STATS on throughout (run_time_ns per program)".into()
        }
        (true, StatsGuard::Sysctl { .. }) => {
            "exact: kernel.bpf_stats_enabled on throughout (restored after)".into()
        }
        (false, StatsGuard::Fd(_)) => format!(
            "sampled: {} through BPF_ENABLE_STATS; runs counted by the programs, priced at the windows' ns per run",
            schedule.describe()
        ),
        (false, StatsGuard::Sysctl { .. }) => format!(
            "sampled: {} through kernel.bpf_stats_enabled (restored after each window); runs counted by the programs, priced at the windows' ns per run",
            schedule.describe()
        ),
    }
}

/// When the statistics are on, by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// The first window opens this long after the baselines (so short recordings get one).
    pub first_ns: u64,
    /// Windows open this far apart (start to start)...
    pub every_ns: u64,
    /// ... and last this long (to the sampler's read nearest to it).
    pub window_ns: u64,
}

/// A program is worth an early window once it ran this many times in an interval unpriced...
pub const FIRST_SIGHT_RUNS: u64 = 100;
/// ...and the last window ended at least this long ago.
pub const FIRST_SIGHT_GAP_NS: u64 = 2_000_000_000;
/// A price is taken again (an early window, as for an unpriced program) once a program runs
/// this many times more in an interval than in all the windows behind its price together: a
/// price measured on an idle host (a window during a load test's warm-up: 35 runs of
/// `sched_waking` at 4.7 µs, cache-cold) priced a context-switch storm's 300k runs a second
/// at 5 times what they cost (1.4 s of "BPF time" a second on 2 CPUs).
pub const RESCALE_RUNS: u64 = 10;

pub const SCHEDULE: Schedule = Schedule {
    first_ns: 1_000_000_000,
    every_ns: 10_000_000_000,
    window_ns: 1_000_000_000,
};

impl Schedule {
    pub fn describe(&self) -> String {
        let s = |ns: u64| {
            let secs = ns as f64 / 1e9;
            if secs.fract() == 0.0 {
                format!("{secs:.0} s")
            } else {
                format!("{secs} s")
            }
        };
        format!("{} in every {}", s(self.window_ns), s(self.every_ns))
    }
}

/// The kernel's cumulative statistics per program: (run time ns, runs).
pub type ProgramStats = HashMap<String, (u64, u64)>;

/// Growth of the statistics between two reads, per program: `[ns, runs]`, non-zero only.
pub fn deltas(prev: &ProgramStats, cur: &ProgramStats) -> BTreeMap<String, [u64; 2]> {
    cur.iter()
        .filter_map(|(name, &(ns, runs))| {
            let (pns, pruns) = prev.get(name).copied().unwrap_or((0, 0));
            let d = [ns.saturating_sub(pns), runs.saturating_sub(pruns)];
            (d != [0, 0]).then(|| (name.clone(), d))
        })
        .collect()
}

/// Windows whose prices an interval's unmeasured runs get: the latest few, pooled.
const RECENT: usize = 3;
/// Windows kept: the latest [`RECENT`] of each duty-cycle state.
const KEPT: usize = 2 * RECENT;

/// The sampling windows, opened and closed at the sampler's reads (so a window's figures are
/// the growth between two reads), and the latest windows' prices. `G` is what holds the
/// statistics on (a `StatsGuard`; anything in tests).
pub struct Windows<G = StatsGuard> {
    schedule: Schedule,
    enable: fn() -> Result<G, String>,
    next_start_ns: u64,
    open: Option<Open<G>>,
    recent: VecDeque<StatsWindow>,
    /// The kernel measured (nearly) every run while no window was open: statistics are on by
    /// other means (--exact-overhead, another tool), and windows would add nothing.
    on_anyway: bool,
    /// The duty cycle has programs detached in the interval starting at the next read
    /// (`next_interval`).
    next_detached: bool,
    /// ...and in the interval ending at the next read.
    this_detached: bool,
    /// A duty cycle detaches programs in this recording: scheduled windows alternate between
    /// intervals with the cycled programs attached and intervals without them, as the
    /// programs that stay attached can cost less in the latter (caches shared with the
    /// cycled programs; until the fifth session of 2026-12-07, paused parts of their bodies).
    cycling: bool,
    /// The next window is an early one (`price_what_runs`): it waits for an interval with
    /// every program attached, where every program that runs can be priced.
    early: bool,
}

struct Open<G> {
    _guard: G,
    start_unix_ns: u64,
    baseline: ProgramStats,
    detached: bool,
}

/// What one read saw of the windows.
#[derive(Debug, Default, PartialEq)]
pub struct Tick {
    /// How long statistics were on in the interval that ends at this read.
    pub sampled_ns: u64,
    /// The window that ended at this read.
    pub closed: Option<StatsWindow>,
    /// The duty cycle had programs detached in the interval that ends at this read: its runs
    /// are priced from windows in the same state (`Windows::prices`).
    pub detached: bool,
}

impl Windows<StatsGuard> {
    pub fn new(now_ns: u64) -> Self {
        Self::with(SCHEDULE, StatsGuard::enable, now_ns)
    }
}

impl<G> Windows<G> {
    pub fn with(schedule: Schedule, enable: fn() -> Result<G, String>, now_ns: u64) -> Self {
        Self {
            schedule,
            enable,
            next_start_ns: now_ns + schedule.first_ns,
            open: None,
            recent: VecDeque::new(),
            on_anyway: false,
            next_detached: false,
            this_detached: false,
            cycling: false,
            early: false,
        }
    }

    /// Whether the interval that starts at the next read has duty-cycled programs detached.
    /// A scheduled window opens in the state the latest window did not price: the first with
    /// every program attached (or the cycled ones would go unpriced), then one without them,
    /// and so on; an early one (a program unpriced or outgrowing its price) with every
    /// program attached. A window waits at most the duty cycle's spacing between samples.
    pub fn next_interval(&mut self, detached: bool) {
        self.next_detached = detached;
        self.cycling |= detached;
    }

    /// Whether a window may open over an interval in this state.
    fn wants(&self, detached: bool) -> bool {
        if !self.cycling || self.early {
            return !detached;
        }
        match self.recent.back() {
            None => !detached,
            Some(last) => last.detached != detached,
        }
    }

    /// At each read of the maps: `prev_ns` the previous read, `now_ns` this one, `stats` the
    /// kernel's statistics just read, `measured_all` whether they measured (nearly) every run
    /// since the previous read (the function `measured_all`). Closes the window when this read is the one
    /// nearest to its end, or opens one when this read is the one nearest to its start;
    /// windows open and close only here, so the figures between two reads are a window's or
    /// nothing, unless the statistics are on anyway: then no window opens.
    pub fn tick(
        &mut self,
        prev_ns: u64,
        now_ns: u64,
        stats: &ProgramStats,
        measured_all: bool,
    ) -> Tick {
        let half_gap = now_ns.saturating_sub(prev_ns) / 2;
        let mut tick = Tick {
            detached: self.this_detached,
            ..Tick::default()
        };
        self.this_detached = self.next_detached;
        if self.open.is_none() {
            self.on_anyway = measured_all;
        }
        if let Some(open) = &self.open {
            tick.sampled_ns = now_ns.saturating_sub(open.start_unix_ns.max(prev_ns));
            if now_ns + half_gap >= open.start_unix_ns + self.schedule.window_ns {
                let open = self.open.take().expect("checked");
                let window = StatsWindow {
                    start_unix_ns: open.start_unix_ns,
                    end_unix_ns: now_ns,
                    programs: deltas(&open.baseline, stats),
                    detached: open.detached,
                };
                drop(open);
                // Reads further apart than a window make windows longer: keep them as rare.
                let len = window.end_unix_ns - window.start_unix_ns;
                let every = self.schedule.every_ns.max(
                    (len as u128 * self.schedule.every_ns as u128
                        / self.schedule.window_ns.max(1) as u128) as u64,
                );
                self.next_start_ns = window.start_unix_ns + every;
                self.recent.push_back(window.clone());
                if self.recent.len() > KEPT {
                    self.recent.pop_front();
                }
                tick.closed = Some(window);
            }
        } else if !self.on_anyway
            && self.wants(self.next_detached)
            && now_ns + half_gap >= self.next_start_ns
        {
            match (self.enable)() {
                Ok(guard) => {
                    self.early = false;
                    self.open = Some(Open {
                        _guard: guard,
                        start_unix_ns: now_ns,
                        baseline: stats.clone(),
                        detached: self.next_detached,
                    })
                }
                // Unavailable (the header says so): try again a period later.
                Err(_) => self.next_start_ns = now_ns + self.schedule.every_ns,
            }
        }
        tick
    }

    /// A program ran `runs` times (this interval's counts) and no window has priced it yet
    /// (a load that started after the first window, a program attached by the duty cycle):
    /// the next window opens at the next read, at most one such early window every
    /// [`FIRST_SIGHT_GAP_NS`], so every program that runs gets a price soon after it starts.
    pub fn price_what_runs(&mut self, runs: &BTreeMap<String, u64>, now_ns: u64) {
        if self.open.is_some() || self.on_anyway {
            return;
        }
        let seen = self.priced_runs();
        let unpriced = runs.iter().any(|(name, &n)| {
            n >= FIRST_SIGHT_RUNS
                && seen
                    .get(name.as_str())
                    .is_none_or(|&priced| n > RESCALE_RUNS * priced)
        });
        let last_end = self.recent.back().map_or(0, |w| w.end_unix_ns);
        if unpriced && now_ns >= last_end + FIRST_SIGHT_GAP_NS {
            self.next_start_ns = self.next_start_ns.min(now_ns);
            self.early = true;
        }
    }

    /// Per program, [ns, runs] summed over the latest [`RECENT`] windows that saw it run
    /// (`detached`: of those in that duty-cycle state, None: of either): what its price is
    /// taken from.
    fn pooled(&self, detached: Option<bool>) -> BTreeMap<&str, [u64; 2]> {
        let mut sums: BTreeMap<&str, ([u64; 2], usize)> = BTreeMap::new();
        let windows = self.recent.iter().rev();
        for w in windows.filter(|w| detached.is_none_or(|d| w.detached == d)) {
            for (name, &[ns, runs]) in &w.programs {
                let e = sums.entry(name).or_default();
                if runs > 0 && e.1 < RECENT {
                    e.0[0] += ns;
                    e.0[1] += runs;
                    e.1 += 1;
                }
            }
        }
        sums.into_iter()
            .filter(|(_, (s, _))| s[1] > 0)
            .map(|(name, (s, _))| (name, s))
            .collect()
    }

    /// How many runs of each program the windows behind its price saw.
    fn priced_runs(&self) -> BTreeMap<&str, u64> {
        self.pooled(None)
            .into_iter()
            .map(|(name, [_, runs])| (name, runs))
            .collect()
    }

    /// ns per run of each program over the latest windows that saw it run in an interval in
    /// the same duty-cycle state (`detached`), else in the other: a program that stays
    /// attached skips its paused parts while the others are detached, and costs less then.
    pub fn prices(&self, detached: bool) -> BTreeMap<String, f64> {
        let mut pooled = self.pooled(Some(!detached));
        pooled.extend(self.pooled(Some(detached)));
        pooled
            .into_iter()
            .map(|(name, [ns, runs])| (name.to_string(), ns as f64 / runs as f64))
            .collect()
    }
}

/// Whether the kernel's statistics counted at least 90 % of the runs the programs counted
/// (false without runs, or without the programs' counts).
pub fn measured_all(
    measured: &BTreeMap<String, [u64; 2]>,
    runs: Option<&BTreeMap<String, u64>>,
) -> bool {
    let counted: u64 = runs.map_or(0, |r| r.values().sum());
    let kernel: u64 = measured.values().map(|m| m[1]).sum();
    counted > 0 && kernel * 10 >= counted * 9
}

/// One interval's cost of the kernel programs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntervalCost {
    /// `{program: [best estimate of run time ns, runs]}`.
    pub programs: BTreeMap<String, [u64; 2]>,
    pub bpf_run_ns: u64,
    pub bpf_runs: u64,
    /// Of `bpf_run_ns`, the part priced rather than measured.
    pub estimated_ns: u64,
    /// Runs of programs no window has priced yet (not in `bpf_run_ns`).
    pub unpriced_runs: u64,
}

/// Per program: the kernel's measured ns (`measured`, over the part of the interval the
/// statistics were on), plus the runs it did not measure priced at `prices` ns per run. `runs`
/// are the programs' own counts (`RUNS`); None without them, when the measured runs are all
/// there is.
pub fn interval_cost(
    runs: Option<&BTreeMap<String, u64>>,
    measured: &BTreeMap<String, [u64; 2]>,
    prices: &BTreeMap<String, f64>,
) -> IntervalCost {
    let mut names: Vec<&String> = measured.keys().collect();
    if let Some(r) = runs {
        names.extend(r.keys());
    }
    names.sort_unstable();
    names.dedup();
    let mut cost = IntervalCost::default();
    for name in names {
        let [mns, mruns] = measured.get(name).copied().unwrap_or([0, 0]);
        let counted = runs.map_or(mruns, |r| r.get(name).copied().unwrap_or(0));
        // Both counts are read a few µs apart: never fewer runs than the kernel measured.
        let total = counted.max(mruns);
        if total == 0 && mns == 0 {
            continue;
        }
        let rest = total - mruns;
        let priced = match prices.get(name) {
            Some(&p) => (rest as f64 * p).round() as u64,
            None => {
                cost.unpriced_runs += rest;
                0
            }
        };
        cost.estimated_ns += priced;
        cost.bpf_run_ns += mns + priced;
        cost.bpf_runs += total;
        cost.programs.insert(name.clone(), [mns + priced, total]);
    }
    cost
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn stats(entries: &[(&str, u64, u64)]) -> ProgramStats {
        entries
            .iter()
            .map(|&(n, ns, runs)| (n.to_string(), (ns, runs)))
            .collect()
    }

    fn window(start: u64, programs: &[(&str, u64, u64)]) -> StatsWindow {
        StatsWindow {
            start_unix_ns: start,
            end_unix_ns: start + S,
            programs: programs
                .iter()
                .map(|&(n, ns, runs)| (n.to_string(), [ns, runs]))
                .collect(),
            detached: false,
        }
    }

    fn map<V: Copy>(entries: &[(&str, V)]) -> BTreeMap<String, V> {
        entries.iter().map(|&(n, v)| (n.to_string(), v)).collect()
    }

    #[test]
    fn schedule_reads_as_said_in_the_header() {
        assert_eq!(SCHEDULE.describe(), "1 s in every 10 s");
        let guard = StatsGuard::Sysctl {
            previous: "0".into(),
        };
        let text = describe(false, &guard, &SCHEDULE);
        std::mem::forget(guard);
        assert!(text.starts_with("sampled: 1 s in every 10 s through kernel.bpf_stats_enabled"));
    }

    #[test]
    fn deltas_keep_programs_that_moved() {
        let prev = stats(&[("a", 100, 10), ("b", 5, 1)]);
        let cur = stats(&[("a", 400, 13), ("b", 5, 1), ("c", 7, 1)]);
        assert_eq!(deltas(&prev, &cur), map(&[("a", [300, 3]), ("c", [7, 1])]));
    }

    #[test]
    fn windows_open_one_second_in_and_close_at_the_nearest_read() {
        let mut w: Windows<()> = Windows::with(SCHEDULE, || Ok(()), 0);
        let mut kernel = stats(&[("a", 0, 0)]);
        // Reads every second, a few ms late each time (the sampler's own work).
        let read = |i: u64| i * S + 3_000_000;
        let mut prev = 0;
        let mut sampled = Vec::new();
        let mut closed = Vec::new();
        for i in 1..=25 {
            let now = read(i);
            let t = w.tick(prev, now, &kernel, false);
            if t.sampled_ns > 0 {
                sampled.push(i);
            }
            if let Some(c) = t.closed {
                closed.push(c);
            }
            // Statistics move only while a window is open.
            if w.open.is_some() {
                let e = kernel.get_mut("a").expect("a");
                e.0 += 500_000;
                e.1 += 1_000;
            }
            prev = now;
        }
        // Opened at reads 1, 11, 21; each closed at the next read.
        assert_eq!(sampled, vec![2, 12, 22]);
        assert_eq!(closed.len(), 3);
        assert_eq!(closed[0].start_unix_ns, read(1));
        assert_eq!(closed[0].end_unix_ns, read(2));
        assert_eq!(closed[1].start_unix_ns, read(11));
        assert_eq!(closed[0].programs["a"], [500_000, 1_000]);
        assert_eq!(w.prices(false), map(&[("a", 500.0)]));
    }

    /// A load that starts after the first window (the bench's settle pause, a daemon started
    /// before the test): the programs it wakes get a window at the next read instead of 10 s
    /// later, and only one such window every 2 s.
    #[test]
    fn a_program_that_starts_running_unpriced_gets_an_early_window() {
        let mut w: Windows<()> = Windows::with(SCHEDULE, || Ok(()), 0);
        let kernel = stats(&[("a", 0, 0)]);
        let mut opened = Vec::new();
        let mut prev = 0;
        for i in 1..=12u64 {
            let now = i * S;
            // From read 4 on, `b` runs and no window has seen it.
            let runs = if i >= 4 {
                map_runs(&[("b", 5_000)])
            } else {
                BTreeMap::new()
            };
            w.price_what_runs(&runs, now);
            let was_open = w.open.is_some();
            w.tick(prev, now, &kernel, false);
            if !was_open && w.open.is_some() {
                opened.push(i);
            }
            prev = now;
        }
        // The scheduled one at 1 s; `b` at 4 s (2 s after the first closed at 2 s), then again
        // at 7 s (still unpriced: the fake statistics never move; 2 s after that one closed).
        assert_eq!(opened[..3], [1, 4, 7]);
        // A program with few runs does not count.
        let mut w: Windows<()> = Windows::with(SCHEDULE, || Ok(()), 0);
        w.tick(0, S, &kernel, false);
        w.tick(S, 2 * S, &kernel, false);
        w.price_what_runs(&map_runs(&[("b", 10)]), 5 * S);
        assert_eq!(w.next_start_ns, 11 * S);
    }

    /// The default tier's duty cycle: programs attached in intervals 0, 2, 7, 12... Windows
    /// alternate between the two states: the first waits for an interval the cycled programs
    /// run in (with windows due at reads 1, 11, 21 they would never run in one), the next
    /// opens over one without them, where the programs that stay attached cost less.
    #[test]
    fn windows_alternate_between_intervals_with_and_without_the_cycled_programs() {
        let mut w: Windows<()> = Windows::with(SCHEDULE, || Ok(()), 0);
        let kernel = stats(&[("a", 0, 0)]);
        let attached = |interval: u64| interval == 0 || interval % 5 == 2;
        let mut opened = Vec::new();
        let mut prev = 0;
        for i in 1..=30u64 {
            let now = i * S;
            // Read i ends interval i - 1 and starts interval i.
            w.next_interval(!attached(i));
            let was_open = w.open.is_some();
            let tick = w.tick(prev, now, &kernel, false);
            // The tick says the state of the interval that ended (i - 1).
            assert_eq!(tick.detached, i > 1 && !attached(i - 1), "read {i}");
            if !was_open && w.open.is_some() {
                opened.push(i);
            }
            prev = now;
        }
        // Due at 1 s: waits for interval 2; due at 12 s, an attached one: waits for 13; due
        // at 23 s: waits for 27.
        assert_eq!(opened, [2, 13, 27]);
        let states: Vec<bool> = w.recent.iter().map(|w| w.detached).collect();
        assert_eq!(states, [false, true, false]);
    }

    /// An early window (here: the first window priced an idle host, then the load started in
    /// a detached interval) waits for an interval with every program attached, whatever the
    /// alternation would pick: the cycled programs' price is what it must take again.
    #[test]
    fn an_early_window_waits_for_the_cycled_programs() {
        let mut w: Windows<()> = Windows::with(SCHEDULE, || Ok(()), 0);
        let attached = |interval: u64| interval == 0 || interval % 5 == 2;
        let mut opened = Vec::new();
        let mut prev = 0;
        for i in 1..=9u64 {
            let now = i * S;
            // The load from 3 s on: 200k runs an interval against the idle window's 35.
            let runs = if i == 3 {
                35
            } else {
                200_000 * i.saturating_sub(3)
            };
            if i > 3 {
                w.price_what_runs(&map_runs(&[("b", 200_000)]), now);
            }
            w.next_interval(!attached(i));
            let was_open = w.open.is_some();
            w.tick(prev, now, &stats(&[("b", runs * 200, runs)]), false);
            if !was_open && w.open.is_some() {
                opened.push(i);
            }
            prev = now;
        }
        assert_eq!(opened, [2, 7]);
    }

    /// A program that stays attached is priced from windows in the same state as the
    /// interval whose runs are priced, where there is one: the connection-setup program times
    /// handshakes only where the cycled programs run, and costs less without.
    #[test]
    fn runs_are_priced_from_windows_in_the_same_duty_cycle_state() {
        let mut w: Windows<()> = Windows::with(SCHEDULE, || Ok(()), 0);
        w.recent
            .push_back(window(0, &[("setup", 2250, 10), ("switch", 4000, 10)]));
        let mut paused = window(10 * S, &[("setup", 1200, 10)]);
        paused.detached = true;
        w.recent.push_back(paused);
        assert_eq!(w.prices(false)["setup"], 225.0);
        assert_eq!(w.prices(true)["setup"], 120.0);
        // Not seen in a window without the cycled programs: the other state's price.
        assert_eq!(w.prices(true)["switch"], 400.0);
    }

    /// A window on an idle host (a load test's warm-up) prices a program from a few dozen
    /// cache-cold runs: once it runs far more, its price is taken again at the next read.
    #[test]
    fn a_price_from_a_few_runs_is_taken_again_when_the_program_runs_far_more() {
        let mut w: Windows<()> = Windows::with(SCHEDULE, || Ok(()), 0);
        // The window at 1-2 s saw 35 runs at 4.7 µs.
        w.tick(0, S, &stats(&[("b", 0, 0)]), false);
        w.tick(S, 2 * S, &stats(&[("b", 164_500, 35)]), false);
        assert_eq!(w.next_start_ns, 11 * S);
        // 200 runs in an interval: on the same scale, the price stands.
        w.price_what_runs(&map_runs(&[("b", 200)]), 5 * S);
        assert_eq!(w.next_start_ns, 11 * S);
        // 300k runs: the storm gets its own price at the next read.
        w.price_what_runs(&map_runs(&[("b", 300_000)]), 5 * S);
        assert_eq!(w.next_start_ns, 5 * S);
        w.tick(4 * S, 5 * S, &stats(&[("b", 164_500, 35)]), false);
        w.tick(5 * S, 6 * S, &stats(&[("b", 70_164_500, 300_035)]), false);
        // Pooled by runs, the idle window barely counts: about 233 ns a run.
        let p = w.prices(false)["b"];
        assert!((p - 70_164_500.0 / 300_035.0).abs() < 1.0, "{p}");
        // And with the storm priced, the same rate opens nothing more early.
        w.price_what_runs(&map_runs(&[("b", 300_000)]), 9 * S);
        assert_eq!(w.next_start_ns, 15 * S);
    }

    fn map_runs(v: &[(&str, u64)]) -> BTreeMap<String, u64> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn windows_span_several_short_intervals_and_stay_rare_with_long_ones() {
        let kernel = stats(&[]);
        // 300 ms reads: the window closes at the read nearest 1 s after it opened.
        let mut w: Windows<()> = Windows::with(SCHEDULE, || Ok(()), 0);
        let reads: Vec<u64> = (1..=10).map(|i| i * 300_000_000).collect();
        let mut prev = 0;
        let mut ends = Vec::new();
        for &now in &reads {
            if let Some(c) = w.tick(prev, now, &kernel, false).closed {
                ends.push((c.start_unix_ns, c.end_unix_ns));
            }
            prev = now;
        }
        assert_eq!(ends, vec![(900_000_000, 1_800_000_000)]);
        // 5 s reads: a window is one interval, and the next one opens 50 s later.
        let mut w: Windows<()> = Windows::with(SCHEDULE, || Ok(()), 0);
        let mut prev = 0;
        let mut opened = Vec::new();
        for i in 1..=25 {
            let now = i * 5 * S;
            let t = w.tick(prev, now, &kernel, false);
            if t.sampled_ns > 0 {
                opened.push(i - 1);
            }
            prev = now;
        }
        assert_eq!(opened, vec![1, 11, 21]);
    }

    #[test]
    fn windows_that_cannot_open_are_retried_a_period_later() {
        let mut w: Windows<()> = Windows::with(SCHEDULE, || Err("no".into()), 0);
        let kernel = stats(&[]);
        for i in 1..=30 {
            let t = w.tick((i - 1) * S, i * S, &kernel, false);
            assert_eq!(t, Tick::default());
        }
        assert_eq!(w.next_start_ns, 31 * S);
    }

    #[test]
    fn no_window_opens_while_the_statistics_are_on_anyway() {
        let mut w: Windows<()> = Windows::with(SCHEDULE, || Ok(()), 0);
        let kernel = stats(&[]);
        for i in 1..=15 {
            let t = w.tick((i - 1) * S, i * S, &kernel, true);
            assert_eq!(t, Tick::default());
        }
        // Off again (the other tool stopped): the window that was due opens at once.
        w.tick(15 * S, 16 * S, &kernel, false);
        assert_eq!(w.open.as_ref().map(|o| o.start_unix_ns), Some(16 * S));
        let runs = map(&[("a", 1000)]);
        assert!(measured_all(&map(&[("a", [1, 950])]), Some(&runs)));
        assert!(!measured_all(&map(&[("a", [1, 3])]), Some(&runs)));
        assert!(!measured_all(&map(&[("a", [1, 3])]), None));
    }

    #[test]
    fn prices_pool_the_latest_windows_a_program_ran_in() {
        let mut w: Windows<()> = Windows::with(SCHEDULE, || Ok(()), 0);
        w.recent
            .push_back(window(0, &[("a", 1000, 10), ("b", 300, 1)]));
        w.recent.push_back(window(10 * S, &[("a", 2000, 10)]));
        w.recent
            .push_back(window(20 * S, &[("a", 3000, 10), ("c", 0, 0)]));
        let p = w.prices(false);
        assert_eq!(p["a"], 200.0);
        assert_eq!(p["b"], 300.0);
        assert!(!p.contains_key("c"));
    }

    #[test]
    fn an_interval_prices_the_runs_the_kernel_did_not_measure() {
        let runs = map(&[("a", 1000), ("b", 50), ("new", 7)]);
        // Statistics were on for part of the interval: 400 of a's runs measured.
        let measured = map(&[("a", [100_000, 400])]);
        let prices = map(&[("a", 200.0), ("b", 80.0)]);
        let c = interval_cost(Some(&runs), &measured, &prices);
        assert_eq!(c.programs["a"], [100_000 + 600 * 200, 1000]);
        assert_eq!(c.programs["b"], [4_000, 50]);
        assert_eq!(c.programs["new"], [0, 7]);
        assert_eq!(c.unpriced_runs, 7);
        assert_eq!(c.estimated_ns, 600 * 200 + 4_000);
        assert_eq!(c.bpf_run_ns, 100_000 + 120_000 + 4_000);
        assert_eq!(c.bpf_runs, 1057);
        // Without the programs' counts, the kernel's figures are all there is.
        let c = interval_cost(None, &measured, &prices);
        assert_eq!(c.programs, map(&[("a", [100_000, 400])]));
        assert_eq!(c.estimated_ns, 0);
        // Exact mode: everything measured, nothing priced.
        let all = map(&[("a", [250_000, 1000])]);
        let c = interval_cost(Some(&map(&[("a", 1000)])), &all, &prices);
        assert_eq!((c.bpf_run_ns, c.estimated_ns), (250_000, 0));
    }
}
