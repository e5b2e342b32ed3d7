//! `cargo xtask bench`: chokepoint's cost beside nginx under connection churn. Interleaved
//! A/B rounds of wrk (every request a new connection) without and with `chokepoint record`
//! running; prints each round, the median throughput ratio and the profiler's own CPU from
//! its recording. Figures, not a pass/fail test.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chokepoint_testbed::{Nginx, Wrk, try_tool};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::env;

mod fixed;
mod limits;
mod reference;
mod rounds;
mod synth;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Interleaved rounds (each: wrk without an observer, beside an idle observer, beside
    /// `chokepoint record`; every observer settled 3 s before its load).
    #[arg(long, default_value_t = 8)]
    pub rounds: u32,
    /// Seconds of wrk per run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u32,
    /// Run the timeline reader benchmark instead (`--example timeline_bench`).
    #[arg(long)]
    pub timeline: bool,
    /// Run the scheduler-probe benchmark instead: a context-switch storm (threads passing a
    /// byte over socket pairs) beside the same observers as the churn rounds (none, idle,
    /// the default tier, `--probes all`, bpftrace).
    #[arg(long, conflicts_with = "timeline")]
    pub sched: bool,
    /// Add a run to each round: `chokepoint record` with an empty program at every hook
    /// (`CHOKEPOINT_EMPTY_PROGRAMS`), duty-cycled as the default tier cycles the real ones:
    /// the floor the default tier's hooks alone cost.
    #[arg(long, conflicts_with = "timeline")]
    pub empty: bool,
    /// Measure the limits docs/benchmarks.md publishes instead: analysis time of a 10-minute
    /// recording, timeline ingest MB/s per load-tool format, and `record`/`daemon` memory and
    /// lost events under connection churn (that part as root).
    #[arg(long, conflicts_with_all = ["timeline", "sched", "empty"])]
    pub limits: bool,
    /// After the saturated rounds, the fixed-rate method at this many requests/s (well below
    /// saturation; 0: skip it): the extra host CPU with each observer.
    #[arg(long, default_value_t = 3000, value_name = "RPS")]
    pub fixed_rate: u32,
    /// Seconds of connection churn for the memory figures of `--limits` (0: none).
    #[arg(long, default_value_t = 600, requires = "limits")]
    pub limits_duration: u32,
}

/// The recorder variants a round runs beside the workload.
#[derive(Clone, Copy, PartialEq)]
enum Programs {
    /// The default tier.
    Real,
    /// `--probes all`: every program attached throughout.
    All,
    Empty,
}

/// Every observer, the idle one included, is started and left this long before its load: the
/// steady state beside a real load test, and the same pause on both sides of the comparison
/// (a pause lets TIME_WAIT drain, which favours whatever runs after one).
const SETTLE: Duration = Duration::from_secs(3);

/// Goals from the issue: throughput kept, and the profiler's own CPU small.
const GOAL_RATIO: f64 = 0.97;
/// The context-switch storm's goal for the default tier (issue #16).
const GOAL_STORM_RATIO: f64 = 0.95;
const GOAL_CPU_PERCENT: f64 = 2.0;

/// chokepoint's cost over one recording, from `analyze --json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Overhead {
    pub bpf_cpu_seconds: f64,
    pub user_cpu_seconds: f64,
    pub events: f64,
    pub lost_events: f64,
    pub duration_seconds: f64,
    /// Per program (by function name, `_compat` variants folded in): run seconds and runs.
    pub programs: Vec<(String, f64, f64)>,
    /// User-space CPU seconds per stage of reading an interval (`overhead.stages`).
    pub stages: Vec<(String, f64)>,
    /// The same cost over the recording's intervals that lay inside the load: the recorder
    /// settles before the load and idles through that pause, so the whole recording's
    /// average understates what it costs beside the load (5 s of load in an 8-s recording:
    /// by about a third).
    pub during_load: Option<LoadCost>,
}

/// chokepoint's cost over the intervals inside the load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadCost {
    pub seconds: f64,
    pub bpf_cpu_seconds: f64,
    pub user_cpu_seconds: f64,
}

impl LoadCost {
    /// Sums the intervals of a recording (JSON lines) that lay inside `[start, end]`
    /// (Unix ns); None when none did.
    pub fn of(recording: &str, start_ns: u64, end_ns: u64) -> Option<Self> {
        let mut c = LoadCost {
            seconds: 0.0,
            bpf_cpu_seconds: 0.0,
            user_cpu_seconds: 0.0,
        };
        for line in recording.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let n = |ptr: &str| v.pointer(ptr).and_then(serde_json::Value::as_u64);
            let (Some(a), Some(b)) = (n("/start_unix_ns"), n("/end_unix_ns")) else {
                continue;
            };
            if v["kind"] != "interval" || a < start_ns || b > end_ns {
                continue;
            }
            c.seconds += (b - a) as f64 / 1e9;
            c.bpf_cpu_seconds += n("/overhead/bpf_run_ns").unwrap_or(0) as f64 / 1e9;
            c.user_cpu_seconds += n("/overhead/user_cpu_ns").unwrap_or(0) as f64 / 1e9;
        }
        (c.seconds > 0.0).then_some(c)
    }
}

impl Overhead {
    pub fn from_json(v: &serde_json::Value) -> anyhow::Result<Overhead> {
        let num = |ptr: &str| {
            v.pointer(ptr)
                .and_then(serde_json::Value::as_f64)
                .with_context(|| format!("the JSON result has no number at {ptr}"))
        };
        Ok(Overhead {
            bpf_cpu_seconds: num("/overhead/bpf_cpu_seconds")?,
            user_cpu_seconds: num("/overhead/user_cpu_seconds")?,
            events: num("/overhead/events")?,
            lost_events: num("/overhead/lost_events")?,
            duration_seconds: num("/duration_seconds")?,
            programs: v
                .pointer("/overhead/programs")
                .and_then(serde_json::Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(name, pair)| {
                            let secs = pair.get(0)?.as_f64()?;
                            let runs = pair.get(1)?.as_f64()?;
                            Some((name.trim_end_matches("_compat").to_string(), secs, runs))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            stages: v
                .pointer("/overhead/stages")
                .and_then(serde_json::Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(name, secs)| Some((name.clone(), secs.as_f64()?)))
                        .collect()
                })
                .unwrap_or_default(),
            during_load: None,
        })
    }

    /// Own CPU (kernel programs + user side) as a percentage of the host's capacity, over
    /// the intervals inside the load where the recording was read for them, else over the
    /// whole recording.
    pub fn cpu_percent(&self, cpus: usize) -> f64 {
        let (seconds, used) = match self.during_load {
            Some(l) => (l.seconds, l.bpf_cpu_seconds + l.user_cpu_seconds),
            None => (
                self.duration_seconds,
                self.bpf_cpu_seconds + self.user_cpu_seconds,
            ),
        };
        let capacity = cpus as f64 * seconds;
        if capacity > 0.0 {
            100.0 * used / capacity
        } else {
            0.0
        }
    }

    /// (programs' CPU seconds, user-space CPU seconds, seconds) that `cpu_percent` is of.
    pub fn cpu_parts(&self) -> (f64, f64, f64) {
        match self.during_load {
            Some(l) => (l.bpf_cpu_seconds, l.user_cpu_seconds, l.seconds),
            None => (
                self.bpf_cpu_seconds,
                self.user_cpu_seconds,
                self.duration_seconds,
            ),
        }
    }

    /// Nanoseconds inside the kernel programs per event.
    pub fn bpf_ns_per_event(&self) -> f64 {
        if self.events > 0.0 {
            self.bpf_cpu_seconds * 1e9 / self.events
        } else {
            0.0
        }
    }

    /// Runs of one program over the recording.
    pub fn program_runs(&self, name: &str) -> f64 {
        self.programs
            .iter()
            .filter(|p| p.0 == name)
            .map(|p| p.2)
            .sum()
    }

    /// Nanoseconds per run of one program (NaN when it never ran).
    pub fn program_ns_per_run(&self, name: &str) -> f64 {
        let secs: f64 = self
            .programs
            .iter()
            .filter(|p| p.0 == name)
            .map(|p| p.1)
            .sum();
        let runs = self.program_runs(name);
        if runs > 0.0 {
            secs * 1e9 / runs
        } else {
            f64::NAN
        }
    }

    /// Nanoseconds of all own CPU (kernel programs + user side) per event.
    pub fn all_ns_per_event(&self) -> f64 {
        if self.events > 0.0 {
            (self.bpf_cpu_seconds + self.user_cpu_seconds) * 1e9 / self.events
        } else {
            0.0
        }
    }
}

pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    if args.timeline {
        let status = env::cargo()
            .args([
                "run",
                "--release",
                "-p",
                "chokepoint",
                "--example",
                "timeline_bench",
            ])
            .stdin(Stdio::null())
            .status()
            .context("running cargo")?;
        if !status.success() {
            bail!("timeline_bench failed ({status})");
        }
        return Ok(());
    }
    if args.limits {
        build(&[&["-p", "chokepoint"]])?;
        return limits::limits(args, &env::chokepoint_release_bin()?);
    }
    if !env::is_root() {
        bail!("the benchmark loads eBPF programs: run `cargo xtask bench` as root");
    }
    if args.rounds == 0 || args.seconds == 0 {
        bail!("--rounds and --seconds must be at least 1");
    }
    build(&[
        &["-p", "chokepoint"],
        &["-p", "chokepoint-tests", "--bin", "ping-pong"],
    ])?;
    let bin = env::chokepoint_release_bin()?;
    if args.sched {
        return sched_bench(args, &bin);
    }
    let wrk_bin = try_tool("wrk").context("wrk is not installed: run `cargo xtask setup`")?;
    let work = tempfile::Builder::new()
        .prefix("chokepoint-bench-")
        .tempdir()
        .context("temp dir")?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let nginx = Nginx::config()
        .workers(cpus as u32)
        .try_start()
        .context("starting nginx")?;
    let wrk = Wrk::new(&nginx.url())
        .threads(2)
        .connections(64)
        .seconds(args.seconds)
        .close(true);
    println!(
        "==> bench: nginx {} ({} workers), `wrk {}`, {} interleaved rounds, {cpus} CPUs",
        nginx.url(),
        cpus,
        env::shell_words(&wrk.args()),
        args.rounds
    );
    // Warm-up: page cache, nginx's workers, TIME_WAIT steady state.
    Wrk {
        seconds: 2,
        ..wrk.clone()
    }
    .run_with(&wrk_bin);

    let run = || Ok(wrk.run_with(&wrk_bin).requests_per_sec);
    let r = rounds::interleaved(args, &bin, work.path(), wrk.seconds, "req/s", &run)?;
    r.print(cpus, "req/s", GOAL_RATIO);
    print_programs(&r.costs, "request", &r.with);
    print_stages(&r.costs);
    if args.fixed_rate > 0 {
        fixed::fixed_rate(args, &bin, &nginx.url(), work.path())?;
    }
    drop(nginx);
    Ok(())
}

/// `cargo build --release` of each set of targets (the binaries the benchmark runs).
fn build(targets: &[&[&str]]) -> anyhow::Result<()> {
    println!("==> bench: cargo build --release");
    for targets in targets {
        let status = env::cargo()
            .args(["build", "--release"])
            .args(*targets)
            .stdin(Stdio::null())
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!(
                "cargo build --release {} failed ({status})",
                targets.join(" ")
            );
        }
    }
    Ok(())
}

/// `--empty`: the rounds with an empty program at every hook, in the default tier (the duty
/// cycle takes the same hooks as with the real programs), against the same rounds' runs
/// without chokepoint and beside the idle observer.
#[derive(Default)]
struct Floor {
    ratios: Vec<f64>,
    idle_ratios: Vec<f64>,
    costs: Vec<Overhead>,
}

impl Floor {
    fn round(&mut self, without: f64, idle: f64, empty: f64, cost: Overhead, cpus: usize) {
        println!(
            "          empty programs {empty:>9.0}   ratio {:.3} (vs idle {:.3})   own CPU {:.2}%   {:.0} ns/event in BPF",
            empty / without,
            empty / idle,
            cost.cpu_percent(cpus),
            cost.bpf_ns_per_event(),
        );
        self.ratios.push(empty / without);
        self.idle_ratios.push(empty / idle);
        self.costs.push(cost);
    }

    fn print(&self, cpus: usize) {
        if self.costs.is_empty() {
            return;
        }
        let cpu: Vec<f64> = self.costs.iter().map(|c| c.cpu_percent(cpus)).collect();
        println!(
            "empty programs          ratio {:.3}, with/idle {:.3} (rounds {:.3}-{:.3}), own CPU {:.2}% of the host: what the default tier's hooks alone cost, duty cycle included",
            median(&self.ratios),
            median(&self.idle_ratios),
            self.idle_ratios
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min),
            self.idle_ratios
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max),
            median(&cpu),
        );
    }
}

/// User space: CPU milliseconds per second of recording for each stage, medians over rounds.
fn print_stages(costs: &[Overhead]) {
    let mut names: Vec<&str> = costs
        .iter()
        .flat_map(|c| c.stages.iter().map(|(name, _)| name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let per_s = |c: &Overhead, secs: f64| 1e3 * secs / c.duration_seconds.max(1e-9);
    let mut rows: Vec<(String, f64)> = names
        .iter()
        .map(|name| {
            let ms = costs
                .iter()
                .map(|c| {
                    let secs = c
                        .stages
                        .iter()
                        .filter(|(n, _)| n == name)
                        .map(|s| s.1)
                        .sum();
                    per_s(c, secs)
                })
                .collect::<Vec<_>>();
            (name.to_string(), median(&ms))
        })
        .collect();
    let rest = costs
        .iter()
        .map(|c| {
            per_s(
                c,
                c.user_cpu_seconds - c.stages.iter().map(|s| s.1).sum::<f64>(),
            )
        })
        .collect::<Vec<_>>();
    rows.push(("rest (ring buffer, writing, runtime)".into(), median(&rest)));
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("\nuser-space stage                       CPU ms per second");
    for (name, ms) in rows {
        println!("{name:<38} {ms:>8.2}");
    }
}

/// Per program: runs per unit of work (`per`, e.g. a request), ns per run and share of the
/// programs' time, medians over the rounds; the table that says where the cost is.
fn print_programs(costs: &[Overhead], per: &str, work_per_s: &[f64]) {
    let mut names: Vec<&str> = costs
        .iter()
        .flat_map(|c| c.programs.iter().map(|(name, _, _)| name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let med = |f: &dyn Fn(&Overhead, f64) -> f64| {
        let values: Vec<f64> = costs
            .iter()
            .zip(work_per_s)
            .map(|(c, &w)| f(c, w))
            .filter(|v| v.is_finite())
            .collect();
        median(&values)
    };
    let mut rows: Vec<(&str, f64, f64, f64)> = names
        .into_iter()
        .map(|name| {
            let runs_per_unit =
                med(&|c, w| c.program_runs(name) / c.duration_seconds.max(1e-9) / w.max(1e-9));
            let ns = med(&|c, _| c.program_ns_per_run(name));
            let share = med(&|c, _| {
                let seconds: f64 = c
                    .programs
                    .iter()
                    .filter(|(n, _, _)| n == name)
                    .map(|(_, s, _)| s)
                    .sum();
                100.0 * seconds / c.bpf_cpu_seconds.max(1e-12)
            });
            (name, runs_per_unit, ns, share)
        })
        .filter(|row| row.1 > 0.0)
        .collect();
    rows.sort_by(|a, b| b.3.total_cmp(&a.3));
    println!("\nprogram                  runs/{per:<8} ns/run   share of BPF time");
    for (name, runs, ns, share) in rows {
        println!("{name:<24} {runs:>8.2}   {ns:>7.0}   {share:>5.1}%");
    }
}

/// The scheduler probes' cost at a high context-switch rate: interleaved rounds of
/// `ping-pong` beside each observer (`rounds::interleaved`), the default tier judged against
/// its storm goal.
fn sched_bench(args: &BenchArgs, bin: &Path) -> anyhow::Result<()> {
    let ping_pong = bin.with_file_name("ping-pong");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pairs = cpus.to_string();
    let seconds = args.seconds.to_string();
    let work = tempfile::Builder::new()
        .prefix("chokepoint-bench-")
        .tempdir()
        .context("temp dir")?;
    let storm = || -> anyhow::Result<f64> {
        let out = Command::new(&ping_pong)
            .args([&pairs, &seconds])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", ping_pong.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let n: f64 = text
            .trim()
            .strip_prefix("round_trips=")
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("ping-pong printed `{}`", text.trim()))?;
        Ok(n / args.seconds as f64)
    };
    println!(
        "==> bench: `ping-pong {pairs} {seconds}` (thread pairs passing a byte over socket pairs), {} interleaved rounds, {cpus} CPUs",
        args.rounds
    );
    storm()?;
    let r = rounds::interleaved(
        args,
        bin,
        work.path(),
        args.seconds,
        "round trips/s",
        &storm,
    )?;
    r.print(cpus, "round trips/s", GOAL_STORM_RATIO);
    let med = |f: &dyn Fn(&Overhead) -> f64| median(&r.costs.iter().map(f).collect::<Vec<_>>());
    println!(
        "sched_switch runs       {:>9.0} /s over the recording (the default tier attaches it 1 interval in 5 to 10: not the switch rate)",
        med(&|c| c.program_runs("sched_switch") / c.duration_seconds.max(1e-9))
    );
    for program in ["sched_switch", "sched_waking", "sched_wakeup_new"] {
        println!(
            "{program:<23} {:>6.0} ns per event",
            med(&|c| c.program_ns_per_run(program))
        );
    }
    print_programs(&r.costs, "trip", &r.with);
    print_stages(&r.costs);
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// One run of `workload` (returning its throughput) with `chokepoint record` beside it;
/// returns the throughput and the recording's cost.
/// The smallest and largest of a set of figures.
fn spread(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

fn with_recorder(
    bin: &Path,
    dir: &Path,
    round: u32,
    seconds: u32,
    programs: Programs,
    workload: impl FnOnce() -> anyhow::Result<f64>,
) -> anyhow::Result<(f64, Overhead)> {
    let tag = match programs {
        Programs::Real => "",
        Programs::All => "-all",
        Programs::Empty => "-empty",
    };
    let rec = dir.join(format!("round-{round}{tag}.rec"));
    let json = dir.join(format!("round-{round}{tag}.json"));
    let log = dir.join(format!("round-{round}{tag}.log"));
    let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut command = Command::new(bin);
    if programs == Programs::Empty {
        // `chokepoint::probes::loader::EMPTY_ENV`.
        command.env("CHOKEPOINT_EMPTY_PROGRAMS", "1");
    }
    // --duration only bounds a recorder we failed to stop; it is stopped right after wrk.
    command.arg("record");
    if programs == Programs::All {
        command.args(["--probes", "all"]);
    }
    let mut recorder = Recorder(
        command
            .arg("--out")
            .arg(&rec)
            .arg("--duration")
            .arg(format!("{}s", seconds + 60))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?,
    );
    // The recording file is written once the probes are attached.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fs::metadata(&rec).is_ok_and(|m| m.len() > 0) {
        if let Some(status) = recorder.0.try_wait()? {
            bail!(
                "chokepoint record exited ({status}) before recording:\n{}",
                read(&log)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "chokepoint record wrote no {} in 30 s:\n{}",
                rec.display(),
                read(&log)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(SETTLE);
    let load_start = unix_ns();
    let rps = workload()?;
    let load_end = unix_ns();
    let status = recorder.stop()?;
    if !status.success() {
        bail!("chokepoint record failed ({status}):\n{}", read(&log));
    }
    let analyzed = Command::new(bin)
        .arg("analyze")
        .arg(&rec)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .output()
        .context("running chokepoint analyze")?;
    if !analyzed.status.success() {
        bail!(
            "chokepoint analyze {} failed ({}): {}",
            rec.display(),
            analyzed.status,
            String::from_utf8_lossy(&analyzed.stderr)
        );
    }
    let value: serde_json::Value = serde_json::from_str(&read(&json))
        .with_context(|| format!("{} is not JSON", json.display()))?;
    let mut cost = Overhead::from_json(&value).with_context(|| json.display().to_string())?;
    cost.during_load = LoadCost::of(&read(&rec), load_start, load_end);
    // Recordings are large; keep the disk tidy across rounds.
    let _ = fs::remove_file(&rec);
    Ok((rps, cost))
}

fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn read(path: &PathBuf) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// A running `chokepoint record`, interrupted and reaped on every exit path.
/// The idle observer: a process that does nothing, started and settled like the recorder, so
/// the method's own bias (the pause, a process more) is measured in the same rounds.
fn with_idle(workload: impl FnOnce() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let mut idle = Recorder(
        Command::new("sleep")
            .arg("3600")
            .stdin(Stdio::null())
            .spawn()
            .context("starting the idle observer (sleep)")?,
    );
    thread::sleep(SETTLE);
    let rps = workload();
    let _ = idle.0.kill();
    let _ = idle.0.wait();
    rps
}

struct Recorder(Child);

impl Recorder {
    /// Ctrl-C, as a person would; the recorder then writes its end record and exits.
    fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.0.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.0.kill();
                bail!("chokepoint record did not stop within 60 s of SIGINT");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGINT);
            thread::sleep(Duration::from_secs(2));
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_is_taken_over_the_intervals_inside_the_load() {
        let line = |a: u64, b: u64, bpf: u64, user: u64| {
            format!(
                r#"{{"kind":"interval","start_unix_ns":{a},"end_unix_ns":{b},"overhead":{{"bpf_run_ns":{bpf},"user_cpu_ns":{user}}}}}"#
            )
        };
        let s = 1_000_000_000u64;
        // Settling (idle), two intervals of load, the interval the load ended in.
        let rec = [
            r#"{"kind":"header"}"#.to_string(),
            line(0, s, 0, 10_000_000),
            line(s, 2 * s, 0, 10_000_000),
            line(2 * s, 3 * s, 60_000_000, 20_000_000),
            line(3 * s, 4 * s, 60_000_000, 20_000_000),
            line(4 * s, 5 * s, 30_000_000, 15_000_000),
        ]
        .join("\n");
        let l = LoadCost::of(&rec, 2 * s - 1000, 4 * s + s / 2).expect("two intervals");
        assert_eq!(l.seconds, 2.0);
        assert!((l.bpf_cpu_seconds - 0.12).abs() < 1e-12);
        assert!((l.user_cpu_seconds - 0.04).abs() < 1e-12);
        let mut o = Overhead {
            bpf_cpu_seconds: 0.15,
            user_cpu_seconds: 0.075,
            events: 1.0,
            lost_events: 0.0,
            duration_seconds: 5.0,
            programs: Vec::new(),
            stages: Vec::new(),
            during_load: None,
        };
        // Over the recording: 0.225 s of 10 CPU-seconds; over the load: 0.16 of 4.
        assert!((o.cpu_percent(2) - 2.25).abs() < 1e-9);
        o.during_load = Some(l);
        assert!((o.cpu_percent(2) - 4.0).abs() < 1e-9);
        assert_eq!(LoadCost::of(&rec, 10 * s, 11 * s), None);
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn overhead_reads_the_documented_keys_and_derives_shares() {
        let v = serde_json::json!({
            "duration_seconds": 10.0,
            "overhead": {"bpf_cpu_seconds": 0.2, "user_cpu_seconds": 0.1, "events": 1_000_000, "lost_events": 3}
        });
        let o = Overhead::from_json(&v).expect("parses");
        assert!((o.cpu_percent(2) - 1.5).abs() < 1e-9);
        assert!((o.bpf_ns_per_event() - 200.0).abs() < 1e-9);
        assert!((o.all_ns_per_event() - 300.0).abs() < 1e-9);
        let missing = serde_json::json!({"duration_seconds": 1.0, "overhead": {}});
        let err = Overhead::from_json(&missing).expect_err("missing keys");
        assert!(
            err.to_string().contains("/overhead/bpf_cpu_seconds"),
            "{err}"
        );
    }
}
