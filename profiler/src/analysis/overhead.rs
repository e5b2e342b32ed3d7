//! The probes' cost over a whole recording: each program's runs priced at the ns per run of
//! the statistics windows the recording holds (`OverheadInterval::windows`), and how far that
//! estimate may be off. `probes::stats` prices each interval as it is read; this prices the
//! recording again at all its windows.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::recording::StatsWindow;

/// A program's figures over a whole recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgramTotals {
    pub runs: u64,
    pub measured_ns: u64,
    pub measured_runs: u64,
    /// Of `runs`, those in intervals the duty cycle had its programs detached in, and of
    /// those, the ones the kernel measured: priced from the windows in that state.
    pub detached_runs: u64,
    pub detached_measured_runs: u64,
}

impl ProgramTotals {
    /// Runs outside the windows, in intervals with the cycled programs attached and without.
    fn unmeasured(&self) -> [u64; 2] {
        let detached = self
            .detached_runs
            .saturating_sub(self.detached_measured_runs);
        let all = self.runs.saturating_sub(self.measured_runs);
        [all.saturating_sub(detached), detached]
    }
}

/// How the programs' time of a recording was found, when the kernel did not measure every run:
/// its runs priced at the ns per run of the statistics windows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Statistics windows, and the seconds they covered together.
    pub windows: u32,
    pub sampled_seconds: f64,
    /// Of the programs' time, the share the kernel measured itself (in the windows); the rest
    /// is runs outside them priced at the windows' ns per run.
    pub measured_share: f64,
    /// How far the total may be off (one standard error, relative): each window's own prices
    /// give a total; the spread of those totals (windows weighted by their runs) over the
    /// square root of the windows' effective number. None with fewer than two windows; rough
    /// with few.
    pub relative_error: Option<f64>,
    /// Runs of programs no window saw run: their time is missing from the estimate.
    pub unpriced_runs: u64,
    /// Per program: the price its runs got.
    pub programs: BTreeMap<String, Price>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// Run time over runs, pooled over every window it ran in.
    pub ns_per_run: f64,
    /// Standard deviation of the windows' own ns per run (weighted by their runs), relative to
    /// `ns_per_run` (None with fewer than two windows).
    pub relative_spread: Option<f64>,
    /// Windows it ran in.
    pub windows: u32,
    /// Where the default tier's duty cycle detached programs: the ns per run of the windows
    /// taken with them detached, which priced this program's runs in such intervals (a
    /// program that stays attached skips its paused parts then). None where no such window
    /// saw it run: its runs were priced at `ns_per_run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns_per_run_detached: Option<f64>,
}

/// Each program's ns over a recording (what the kernel measured, plus its other runs priced at
/// the pooled ns per run of all `windows`), and how that estimate was made.
pub fn estimate(
    totals: &BTreeMap<String, ProgramTotals>,
    windows: &[StatsWindow],
) -> (BTreeMap<String, u64>, Estimate) {
    let mut est = Estimate {
        windows: windows.len() as u32,
        sampled_seconds: windows
            .iter()
            .map(StatsWindow::seconds)
            .fold(0.0, |a, b| a + b),
        ..Default::default()
    };
    let rate = |[ns, runs]: [u64; 2]| ns as f64 / runs as f64;
    for name in totals.keys() {
        let seen: Vec<[u64; 2]> = windows
            .iter()
            .filter_map(|w| w.programs.get(name).copied().filter(|f| f[1] > 0))
            .collect();
        if seen.is_empty() {
            continue;
        }
        let pooled = rate([
            seen.iter().map(|f| f[0]).sum(),
            seen.iter().map(|f| f[1]).sum(),
        ]);
        // A state's own price stands only where its windows saw a fair sample of the runs it
        // prices: one window taken while the host idled (before a load) sees a few cold runs,
        // and would price every run of the load in that state at their cost.
        let to_price = totals[name].unmeasured()[1];
        let detached = state_price(windows, name, true)
            .filter(|&(_, runs)| runs as f64 >= STATE_PRICE_MIN_SHARE * to_price as f64)
            .map(|(ns, _)| ns);
        let attached = state_price(windows, name, false).map(|(ns, _)| ns);
        // Weighted by runs: a window where the program barely ran says little of its price.
        let rates: Vec<(f64, f64)> = seen.iter().map(|&f| (rate(f), f[1] as f64)).collect();
        est.programs.insert(
            name.clone(),
            Price {
                ns_per_run: pooled,
                relative_spread: weighted_sd(&rates).map(|sd| relative(sd, pooled)),
                windows: seen.len() as u32,
                ns_per_run_detached: detached.filter(|_| attached.is_some()),
            },
        );
    }
    // The total with a given price per program; `None` prices: the pooled one.
    let total_with = |price: &dyn Fn(&str) -> Option<f64>| -> f64 {
        totals
            .iter()
            .map(|(name, t)| {
                let rest = t.runs.saturating_sub(t.measured_runs) as f64;
                let p = price(name).or_else(|| est.programs.get(name).map(|p| p.ns_per_run));
                t.measured_ns as f64 + p.map_or(0.0, |p| rest * p)
            })
            .sum()
    };
    let mut ns = BTreeMap::new();
    let mut measured = 0u64;
    for (name, t) in totals {
        let [attached, detached] = t.unmeasured();
        let priced = match est.programs.get(name) {
            Some(p) => match p.ns_per_run_detached {
                // The attached price pooled over those windows alone: the pooled one
                // weighs in the detached windows too.
                Some(pd) => {
                    let pa = state_price(windows, name, false).map_or(p.ns_per_run, |(ns, _)| ns);
                    (attached as f64 * pa + detached as f64 * pd).round() as u64
                }
                None => ((attached + detached) as f64 * p.ns_per_run).round() as u64,
            },
            None => {
                est.unpriced_runs += attached + detached;
                0
            }
        };
        measured += t.measured_ns;
        ns.insert(name.clone(), t.measured_ns + priced);
    }
    let total: u64 = ns.values().sum();
    est.measured_share = if total > 0 {
        measured as f64 / total as f64
    } else {
        0.0
    };
    // Each window's own prices applied to the whole recording, weighted by the runs the
    // window saw (an idle window before the load started weighs little).
    let per_window: Vec<(f64, f64)> = windows
        .iter()
        .map(|w| {
            let total =
                total_with(&|name| w.programs.get(name).filter(|f| f[1] > 0).map(|&f| rate(f)));
            (total, w.programs.values().map(|f| f[1]).sum::<u64>() as f64)
        })
        .collect();
    // The pooled figure is a mean over the windows: its error shrinks with their number.
    let v1: f64 = per_window.iter().map(|w| w.1).sum();
    let v2: f64 = per_window.iter().map(|w| w.1 * w.1).sum();
    let effective = if v2 > 0.0 { v1 * v1 / v2 } else { 0.0 };
    est.relative_error =
        weighted_sd(&per_window).map(|sd| relative(sd / effective.sqrt(), total as f64));
    (ns, est)
}

/// ns per run of `name` over the windows taken in one duty-cycle state (`detached`: with the
/// cycled programs detached), where any saw it run, and the runs that price is taken from.
fn state_price(windows: &[StatsWindow], name: &str, detached: bool) -> Option<(f64, u64)> {
    let [ns, runs] = windows
        .iter()
        .filter(|w| w.detached == detached)
        .filter_map(|w| w.programs.get(name))
        .fold([0, 0], |a, f| [a[0] + f[0], a[1] + f[1]]);
    (runs > 0).then(|| (ns as f64 / runs as f64, runs))
}

/// The runs a duty-cycle state's windows must have seen, as a share of the runs in that state
/// they price, for their own price to be used (else the pooled one). Windows 1 s in 10 under a
/// steady load see about a tenth.
pub const STATE_PRICE_MIN_SHARE: f64 = 0.01;

fn relative(sd: f64, of: f64) -> f64 {
    if of > 0.0 { sd / of } else { 0.0 }
}

/// Standard deviation of `(value, weight)` pairs, weights as reliability weights (with equal
/// weights: the sample standard deviation). None for fewer than two weighted values.
fn weighted_sd(values: &[(f64, f64)]) -> Option<f64> {
    let v1: f64 = values.iter().map(|v| v.1).sum();
    let v2: f64 = values.iter().map(|v| v.1 * v.1).sum();
    let denominator = v1 - v2 / v1;
    if values.iter().filter(|v| v.1 > 0.0).count() < 2 || denominator <= 0.0 {
        return None;
    }
    let mean = values.iter().map(|v| v.0 * v.1).sum::<f64>() / v1;
    let var = values
        .iter()
        .map(|v| v.1 * (v.0 - mean).powi(2))
        .sum::<f64>()
        / denominator;
    Some(var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

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
    fn a_recording_is_priced_at_the_pooled_windows_with_their_spread() {
        let windows = [
            window(0, &[("a", 90_000, 1000), ("b", 1_000, 10)]),
            window(10 * S, &[("a", 110_000, 1000)]),
        ];
        let totals = map(&[
            (
                "a",
                ProgramTotals {
                    runs: 20_000,
                    measured_ns: 200_000,
                    measured_runs: 2000,
                    ..Default::default()
                },
            ),
            (
                "b",
                ProgramTotals {
                    runs: 110,
                    measured_ns: 1_000,
                    measured_runs: 10,
                    ..Default::default()
                },
            ),
            (
                "never",
                ProgramTotals {
                    runs: 5,
                    ..Default::default()
                },
            ),
        ]);
        let (ns, est) = estimate(&totals, &windows);
        // a: 200 µs measured + 18000 runs at 100 ns; b: 1 µs + 100 runs at 100 ns.
        assert_eq!(ns["a"], 200_000 + 1_800_000);
        assert_eq!(ns["b"], 1_000 + 10_000);
        assert_eq!(ns["never"], 0);
        assert_eq!(est.windows, 2);
        assert!((est.sampled_seconds - 2.0).abs() < 1e-12);
        assert_eq!(est.unpriced_runs, 5);
        assert!((est.measured_share - 201_000.0 / 2_011_000.0).abs() < 1e-12);
        let a = &est.programs["a"];
        assert_eq!((a.ns_per_run, a.windows), (100.0, 2));
        // Window rates 90 and 110: sd 14.14, 14 % of 100.
        assert!((a.relative_spread.expect("two windows") - 0.141_421).abs() < 1e-5);
        assert_eq!(est.programs["b"].relative_spread, None);
        // Window totals: a at 90 and 110 ns (b at 100 in both): 1.831 and 2.191 ms, spread
        // 0.2546 ms of 2.011 ms.
        // Weights 1010 and 1000 runs: about two windows' worth, so the error is about the
        // spread over the square root of 2.
        let e = est.relative_error.expect("two windows");
        assert!(
            (e - 254_558.4 / 2_011_000.0 / 2f64.sqrt()).abs() < 1e-4,
            "{e}"
        );
    }

    #[test]
    fn a_window_that_barely_saw_a_program_weighs_little_in_its_spread() {
        // Before the load started: 10 runs at 1000 ns; then two busy windows at 100 and 110.
        let windows = [
            window(0, &[("a", 10_000, 10)]),
            window(10 * S, &[("a", 100_000, 1000)]),
            window(20 * S, &[("a", 110_000, 1000)]),
        ];
        let totals = map(&[(
            "a",
            ProgramTotals {
                runs: 100_000,
                measured_ns: 220_000,
                measured_runs: 2010,
                ..Default::default()
            },
        )]);
        let (_, est) = estimate(&totals, &windows);
        let a = &est.programs["a"];
        assert!((a.ns_per_run - 220_000.0 / 2010.0).abs() < 1e-9);
        // Unweighted, the rates 1000, 100, 110 would spread by 470 % of the price.
        let spread = a.relative_spread.expect("three windows");
        assert!(spread > 0.5 && spread < 1.0, "{spread}");
        assert!(weighted_sd(&[(5.0, 1.0), (7.0, 1.0)]).expect("two") - 2f64.sqrt() < 1e-12);
        assert_eq!(weighted_sd(&[(5.0, 1.0), (7.0, 0.0)]), None);
    }

    #[test]
    fn one_window_gives_an_estimate_without_an_error_bound() {
        let windows = [window(0, &[("a", 100_000, 1000)])];
        let totals = map(&[(
            "a",
            ProgramTotals {
                runs: 10_000,
                measured_ns: 100_000,
                measured_runs: 1000,
                ..Default::default()
            },
        )]);
        let (ns, est) = estimate(&totals, &windows);
        assert_eq!(ns["a"], 1_000_000);
        assert_eq!(est.relative_error, None);
        assert!((est.measured_share - 0.1).abs() < 1e-12);
        // No windows at all: only what was measured, the rest unpriced.
        let (ns, est) = estimate(&totals, &[]);
        assert_eq!(ns["a"], 100_000);
        assert_eq!((est.windows, est.unpriced_runs), (0, 9000));
        assert!(est.sampled_seconds.is_sign_positive());
    }

    /// The default tier: a program priced in both duty-cycle states gets each state's price
    /// for the runs in intervals of that state; one seen in only one state gets that price
    /// for all its runs.
    #[test]
    fn runs_are_priced_at_the_windows_of_their_duty_cycle_state() {
        let mut paused = window(10 * S, &[("setup", 12_000, 100)]);
        paused.detached = true;
        let windows = [
            window(0, &[("setup", 22_500, 100), ("switch", 40_000, 100)]),
            paused,
        ];
        let totals = map(&[
            (
                "setup",
                ProgramTotals {
                    runs: 10_200,
                    measured_ns: 34_500,
                    measured_runs: 200,
                    detached_runs: 8_100,
                    detached_measured_runs: 100,
                },
            ),
            (
                "switch",
                ProgramTotals {
                    runs: 2_100,
                    measured_ns: 40_000,
                    measured_runs: 100,
                    detached_runs: 100,
                    detached_measured_runs: 0,
                },
            ),
        ]);
        let (ns, est) = estimate(&totals, &windows);
        // setup: 2,000 unmeasured runs attached at 225 ns, 8,000 detached at 120 ns.
        assert_eq!(ns["setup"], 34_500 + 450_000 + 960_000);
        assert_eq!(est.programs["setup"].ns_per_run_detached, Some(120.0));
        // switch: seen attached only, all 2,000 unmeasured runs at 400 ns.
        assert_eq!(ns["switch"], 40_000 + 800_000);
        assert_eq!(est.programs["switch"].ns_per_run_detached, None);
    }

    /// The only window of a state, taken while the host idled before the load, saw 20 cold
    /// runs at 400 ns: it does not price the 100,000 runs of the load in that state.
    #[test]
    fn a_state_whose_windows_saw_a_few_runs_is_priced_at_the_pooled_price() {
        let mut idle = window(0, &[("drops", 8_000, 20)]);
        idle.detached = true;
        let windows = [idle, window(10 * S, &[("drops", 1_000_000, 10_000)])];
        let totals = map(&[(
            "drops",
            ProgramTotals {
                runs: 130_020,
                measured_ns: 1_008_000,
                measured_runs: 10_020,
                detached_runs: 100_020,
                detached_measured_runs: 20,
            },
        )]);
        let (ns, est) = estimate(&totals, &windows);
        assert_eq!(est.programs["drops"].ns_per_run_detached, None);
        // Every unmeasured run at the pooled price, 1,008,000 ns / 10,020 runs.
        let pooled: f64 = 1_008_000.0 / 10_020.0;
        let expected = 1_008_000 + (120_000.0 * pooled).round() as u64;
        assert!(
            ns["drops"].abs_diff(expected) <= 1,
            "{} {expected}",
            ns["drops"]
        );
    }
}
