//! The fixed-rate method: at an offered load below saturation the throughput cannot move, so
//! what an observer costs shows as host CPU instead: the extra busy share of the host (and CPU
//! per request) with it attached, against the idle observer of the same round, indirect
//! effects (cache, scheduler, softirq) included. Quieter than saturated throughput, whose
//! rounds spread by ±15% on this VM.
use std::{cell::Cell, path::Path};

use anyhow::Context;

use super::{
    BenchArgs, Overhead, Programs, median,
    reference::{self, FixedRun},
    spread, with_idle, with_recorder,
};

/// Offered requests per second are split over this many hey workers.
const WORKERS: u32 = 20;

#[derive(Default)]
struct Side {
    runs: Vec<FixedRun>,
}

impl Side {
    fn busy(&self) -> Vec<f64> {
        self.runs.iter().map(|r| r.busy_share).collect()
    }
}

/// Interleaved rounds at `args.fixed_rate` requests/s: without an observer, beside the idle
/// observer, beside `chokepoint record`, beside bpftrace (when installed).
pub fn fixed_rate(args: &BenchArgs, bin: &Path, url: &str, dir: &Path) -> anyhow::Result<()> {
    let hey = chokepoint_testbed::try_tool("hey")
        .context("hey is not installed: run `cargo xtask setup`")?;
    let bpftrace = reference::bpftrace();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rate = args.fixed_rate;
    let seconds = args.seconds.max(4);
    println!(
        "\n==> bench (fixed rate): `hey -z {seconds}s -c {WORKERS} -q {:.0} -disable-keepalive` ({rate} requests/s offered, every one a new connection), {} interleaved rounds; host CPU from /proc/stat",
        rate as f64 / WORKERS as f64,
        args.rounds
    );
    let run = || reference::hey_fixed(&hey, url, rate, WORKERS, seconds);
    run()?;
    let (mut none, mut idle, mut ours, mut tracer) = (
        Side::default(),
        Side::default(),
        Side::default(),
        Side::default(),
    );
    let mut own: Vec<f64> = Vec::new();
    for round in 1..=args.rounds {
        let order: [u8; 4] = if round % 2 == 1 {
            [0, 1, 2, 3]
        } else {
            [3, 2, 1, 0]
        };
        let mut line = format!("round {round:>2}:");
        for side in order {
            let got = Cell::new(FixedRun::default());
            let work = || {
                let r = run()?;
                got.set(r);
                Ok(r.requests_per_s)
            };
            let label = match side {
                0 => {
                    work()?;
                    none.runs.push(got.get());
                    "without"
                }
                1 => {
                    with_idle(work)?;
                    idle.runs.push(got.get());
                    "idle"
                }
                2 => {
                    let (_, cost): (f64, Overhead) =
                        with_recorder(bin, dir, 1000 + round, seconds, Programs::Real, work)?;
                    own.push(cost.cpu_percent(cpus));
                    ours.runs.push(got.get());
                    "chokepoint"
                }
                _ => match &bpftrace {
                    Some(b) => {
                        reference::with_bpftrace(b, dir, 1000 + round, work)?;
                        tracer.runs.push(got.get());
                        "bpftrace"
                    }
                    None => continue,
                },
            };
            let r = got.get();
            line.push_str(&format!(
                "   {label} {:.0} req/s {:.1}% busy",
                r.requests_per_s,
                r.busy_share * 100.0
            ));
        }
        println!("{line}");
    }
    let med_busy = |s: &Side| median(&s.busy()) * 100.0;
    let per_req = |s: &Side| {
        median(
            &s.runs
                .iter()
                .map(|r| r.us_per_request(cpus))
                .collect::<Vec<_>>(),
        )
    };
    println!(
        "\n==> bench (fixed rate): medians over {} rounds",
        args.rounds
    );
    for (name, side) in [
        ("without an observer", &none),
        ("idle observer (sleep)", &idle),
        ("chokepoint record", &ours),
        ("bpftrace (reference)", &tracer),
    ] {
        if side.runs.is_empty() {
            continue;
        }
        println!(
            "{name:<24} {:>6.1}% of the host busy   {:>7.1} µs host CPU per request   {:.0} requests/s",
            med_busy(side),
            per_req(side),
            median(
                &side
                    .runs
                    .iter()
                    .map(|r| r.requests_per_s)
                    .collect::<Vec<_>>()
            )
        );
    }
    // Paired by round against the idle observer: the round's drift cancels.
    let extra = |s: &Side| -> Vec<f64> {
        s.runs
            .iter()
            .zip(&idle.runs)
            .map(|(a, b)| (a.busy_share - b.busy_share) * 100.0)
            .collect()
    };
    let ours_extra = extra(&ours);
    let (lo, hi) = spread(&ours_extra);
    let own_med = median(&own);
    println!(
        "chokepoint's whole cost  {:+.2} points of the host over the idle observer (rounds {lo:+.2} to {hi:+.2}); {:+.1} µs per request   (goal <= {:.0}: {})",
        median(&ours_extra),
        per_req(&ours) - per_req(&idle),
        super::GOAL_CPU_PERCENT,
        super::verdict(median(&ours_extra) <= super::GOAL_CPU_PERCENT)
    );
    println!(
        "its own figure           {own_med:.2}% of the host (programs + user space, from its recordings); the two methods differ by {:.2} points (goal: within 1)",
        (median(&ours_extra) - own_med).abs()
    );
    if !tracer.runs.is_empty() {
        println!(
            "bpftrace's whole cost    {:+.2} points of the host ({} tracepoints, counting only)",
            median(&extra(&tracer)),
            reference::bpftrace_probes()
        );
    } else {
        println!(
            "bpftrace                 not installed: no reference (`cargo xtask setup` installs it)"
        );
    }
    Ok(())
}
