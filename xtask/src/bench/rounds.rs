//! Interleaved rounds of one workload beside each observer: none, an idle observer (`sleep`),
//! `chokepoint record` in its default tier, `chokepoint record --probes all`, and bpftrace
//! counting at the same hooks (the reference). Every observer is started and settled before
//! its load; ratios are against the idle observer of the same round, so the method's own bias
//! (the pause, a process more) cancels. Used by the connection-churn and the context-switch
//! storm benchmarks alike.
use std::path::Path;

use super::{
    BenchArgs, Floor, GOAL_CPU_PERCENT, Overhead, Programs, median, reference, spread, verdict,
    with_idle, with_recorder,
};

/// What the rounds measured (throughputs in the workload's own unit).
pub struct Rounds {
    pub without: Vec<f64>,
    pub idles: Vec<f64>,
    /// Beside the default tier.
    pub with: Vec<f64>,
    /// The default tier's recordings' own cost figures.
    pub costs: Vec<Overhead>,
    /// with / idle, per round.
    pub normalised: Vec<f64>,
    pub idle_ratios: Vec<f64>,
    pub all_ratios: Vec<f64>,
    pub all_cpu: Vec<f64>,
    /// bpftrace / idle, per round (empty when bpftrace is missing).
    pub traced: Vec<f64>,
    pub floor: Floor,
}

/// Runs `args.rounds` interleaved rounds of `run` (a throughput), alternating the order so
/// drift (thermal, TIME_WAIT build-up) hits all sides alike, and prints each round.
pub fn interleaved(
    args: &BenchArgs,
    bin: &Path,
    dir: &Path,
    seconds: u32,
    unit: &str,
    run: &dyn Fn() -> anyhow::Result<f64>,
) -> anyhow::Result<Rounds> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bpftrace = reference::bpftrace();
    let trace = |round| {
        bpftrace
            .as_ref()
            .map(|b| reference::with_bpftrace(b, dir, round, run))
            .transpose()
    };
    let mut r = Rounds {
        without: Vec::new(),
        idles: Vec::new(),
        with: Vec::new(),
        costs: Vec::new(),
        normalised: Vec::new(),
        idle_ratios: Vec::new(),
        all_ratios: Vec::new(),
        all_cpu: Vec::new(),
        traced: Vec::new(),
        floor: Floor::default(),
    };
    for round in 1..=args.rounds {
        let recorded = |programs| with_recorder(bin, dir, round, seconds, programs, run);
        let (a, idle, (b, cost), empty, tr, everything) = if round % 2 == 1 {
            let a = run()?;
            let idle = with_idle(run)?;
            let empty = args.empty.then(|| recorded(Programs::Empty)).transpose()?;
            let b = recorded(Programs::Real)?;
            let all = recorded(Programs::All)?;
            (a, idle, b, empty, trace(round)?, all)
        } else {
            let tr = trace(round)?;
            let all = recorded(Programs::All)?;
            let b = recorded(Programs::Real)?;
            let empty = args.empty.then(|| recorded(Programs::Empty)).transpose()?;
            let idle = with_idle(run)?;
            (run()?, idle, b, empty, tr, all)
        };
        println!(
            "          --probes all {:>9.0} {unit}   vs idle {:.3}   own CPU {:.2}%",
            everything.0,
            everything.0 / idle,
            everything.1.cpu_percent(cpus)
        );
        r.all_ratios.push(everything.0 / idle);
        r.all_cpu.push(everything.1.cpu_percent(cpus));
        if let Some(t) = tr {
            println!(
                "          bpftrace ({} tracepoints, counting) {t:>9.0} {unit}   vs idle {:.3}",
                reference::bpftrace_probes(),
                t / idle
            );
            r.traced.push(t / idle);
        }
        let (bpf_s, user_s, load_s) = cost.cpu_parts();
        println!(
            "round {round:>2}: without {a:>9.0} {unit}   idle observer {idle:>9.0}   with {b:>9.0} {unit}   ratio {:.3} (vs idle {:.3})   own CPU {:.2}% \
             (bpf {:.3} s + user {:.3} s over the load's {:.1} s)   {:.0} events, {:.0} lost, {:.0} ns/event in BPF",
            b / a,
            b / idle,
            cost.cpu_percent(cpus),
            bpf_s,
            user_s,
            load_s,
            cost.events,
            cost.lost_events,
            cost.bpf_ns_per_event(),
        );
        if let Some((e, empty_cost)) = empty {
            r.floor.round(a, idle, e, empty_cost, cpus);
        }
        r.without.push(a);
        r.idles.push(idle);
        r.with.push(b);
        r.idle_ratios.push(idle / a);
        // Against the idle observer of the same round: the method's own bias cancels.
        r.normalised.push(b / idle);
        r.costs.push(cost);
    }
    Ok(r)
}

impl Rounds {
    /// The medians, each against its goal (`goal_ratio`: the default tier's throughput over
    /// the idle observer's).
    pub fn print(&self, cpus: usize, unit: &str, goal_ratio: f64) {
        let costs = &self.costs;
        let ratio = median(
            &self
                .with
                .iter()
                .zip(&self.without)
                .map(|(b, a)| b / a)
                .collect::<Vec<_>>(),
        );
        let cpu = median(
            &costs
                .iter()
                .map(|c| c.cpu_percent(cpus))
                .collect::<Vec<_>>(),
        );
        let events_per_s = median(
            &costs
                .iter()
                .map(|c| c.events / c.duration_seconds.max(1e-9))
                .collect::<Vec<_>>(),
        );
        println!("\n==> bench: medians over {} rounds", self.with.len());
        println!(
            "without chokepoint      {:>9.0} {unit}",
            median(&self.without)
        );
        println!(
            "idle observer (sleep)   {:>9.0} {unit}",
            median(&self.idles)
        );
        println!(
            "with chokepoint record  {:>9.0} {unit} (default tier)",
            median(&self.with)
        );
        let (lo, hi) = spread(&self.normalised);
        let normalised = median(&self.normalised);
        println!(
            "ratio with/without      {ratio:.3}   idle/without {:.3} (the method's own bias)",
            median(&self.idle_ratios)
        );
        println!(
            "ratio with/idle         {normalised:.3}   rounds {lo:.3}-{hi:.3}   (goal >= {goal_ratio}: {})",
            verdict(normalised >= goal_ratio)
        );
        println!(
            "own CPU                 {cpu:.2}% of the host ({cpus} CPUs x the intervals inside the load)   (goal <= {GOAL_CPU_PERCENT}%: {})",
            verdict(cpu <= GOAL_CPU_PERCENT)
        );
        println!(
            "per event               {:.0} ns in BPF, {:.0} ns all-in; {events_per_s:.0} events/s; {:.0} lost in all",
            median(
                &costs
                    .iter()
                    .map(Overhead::bpf_ns_per_event)
                    .collect::<Vec<_>>()
            ),
            median(
                &costs
                    .iter()
                    .map(Overhead::all_ns_per_event)
                    .collect::<Vec<_>>()
            ),
            costs.iter().map(|c| c.lost_events).sum::<f64>(),
        );
        let (lo_all, hi_all) = spread(&self.all_ratios);
        println!(
            "--probes all/idle       {:.3}   rounds {lo_all:.3}-{hi_all:.3}   own CPU {:.2}% of the host",
            median(&self.all_ratios),
            median(&self.all_cpu)
        );
        if self.traced.is_empty() {
            println!("bpftrace reference      not installed (`cargo xtask setup` installs it)");
        } else {
            let t = median(&self.traced);
            let (lo, hi) = spread(&self.traced);
            println!(
                "bpftrace/idle           {t:.3}   rounds {lo:.3}-{hi:.3}   (--probes all ahead of the reference: {})",
                if median(&self.all_ratios) > t {
                    "yes"
                } else {
                    "no"
                }
            );
        }
        self.floor.print(cpus);
    }
}
