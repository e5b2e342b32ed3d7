//! `chokepoint`: the command line. Parses arguments, runs one command, maps errors to one
//! clear line and an exit status.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use chokepoint::{
    analysis, doctor, lab,
    recording::Recording,
    report,
    session::{self, Options},
    timeline,
};
use clap::{Parser, Subcommand};

/// Measure what stalls a load test's throughput, from the kernel.
#[derive(Debug, Parser)]
#[command(name = "chokepoint", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Attach the probes, run a load generator, and name the bottleneck when it exits.
    Run(RunArgs),
    /// Record without a command until Ctrl-C, SIGTERM or --duration.
    Record(RecordArgs),
    /// Analyse a recording offline.
    Analyze(AnalyzeArgs),
    /// Say what this kernel and this user allow.
    Doctor(doctor::cli::DoctorArgs),
    /// Read load-generator output files: per-interval table, knee and USL fit.
    Timeline(timeline::cli::TimelineArgs),
    /// Run built-in bottleneck scenarios and check each verdict.
    Lab(lab::cli::LabArgs),
    /// The lab's HTTP test server.
    #[command(hide = true)]
    LabServer(lab::server::ServerArgs),
    /// The lab's WebSocket fan-out server.
    #[command(hide = true)]
    LabFanout(lab::fanout::FanoutArgs),
    /// The lab's slow WebSocket readers.
    #[command(hide = true)]
    LabWsReader(lab::fanout::ReaderArgs),
}

#[derive(Debug, clap::Args)]
struct OutputArgs {
    /// Write the JSON result here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// More load-generator output files to line up with the recording.
    #[arg(long = "load", value_name = "FILE")]
    load: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Where to write the recording.
    #[arg(long, value_name = "REC", default_value = "chokepoint.rec")]
    out: PathBuf,
    /// Sampling interval (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    probes: ProbeArgs,
    /// The load generator and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct RecordArgs {
    /// Where to write the recording.
    #[arg(long, value_name = "REC")]
    out: PathBuf,
    /// Stop after this long (e.g. 30s, 2m).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    probes: ProbeArgs,
}

#[derive(Debug, clap::Args)]
struct ProbeArgs {
    /// Also attach the per-packet programs on net:net_dev_xmit and net:netif_receive_skb
    /// (about 200 ns per packet, several packets per request and device). Off by default: the
    /// kernel's link statistics give the same per-device counts at no cost on the packet path.
    #[arg(long)]
    packet_probes: bool,
    /// Keep the kernel's run-time statistics on for the whole recording: the programs' time
    /// measured, not estimated. They cost two clock reads per program run (several percent of
    /// throughput under connection churn); by default they are on 1 s in every 10 s and the
    /// programs' own run counts are priced at what those windows measured.
    #[arg(long)]
    exact_overhead: bool,
}

impl ProbeArgs {
    fn skip(&self) -> Vec<chokepoint::probes::tracepoints::Family> {
        let mut skip = Vec::new();
        if !self.packet_probes {
            skip.push(chokepoint::probes::tracepoints::Family::NetworkPath);
        }
        skip
    }
}

#[derive(Debug, clap::Args)]
struct AnalyzeArgs {
    /// A recording written by `run` or `record`.
    recording: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 1s, 500ms, 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m, h)")),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("`{s}` must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Before attaching: a `--load` file that exists must read (a wrong or truncated file fails at
/// once); a missing one may be what the command is about to write (`k6 run --out json=F`).
fn check_load(files: &[PathBuf]) -> anyhow::Result<()> {
    for f in files.iter().filter(|f| f.exists()) {
        timeline::read_file(f).with_context(|| format!("--load {}", f.display()))?;
    }
    Ok(())
}

/// After the run: the timelines that read; each one that does not is named (the recording is
/// analysed without it rather than lost).
fn read_load(files: &[PathBuf]) -> (Vec<timeline::Timeline>, Vec<String>) {
    let mut timelines = Vec::new();
    let mut failed = Vec::new();
    for f in files {
        match timeline::read_file(f).with_context(|| format!("--load {}", f.display())) {
            Ok(t) => timelines.push(t),
            Err(e) => {
                eprintln!("chokepoint: {e:#}; analysed without it");
                failed.push(format!("{e:#}: analysed without this timeline"));
            }
        }
    }
    (timelines, failed)
}

/// Analyse, print the summary, write the JSON.
fn conclude(
    rec: &std::path::Path,
    output: &OutputArgs,
    anchor_ns: Option<u64>,
) -> anyhow::Result<analysis::Analysis> {
    let recording = Recording::read(rec)?;
    let (mut load, failed) = read_load(&output.load);
    let anchor = anchor_ns.unwrap_or(recording.header.started_unix_ns);
    for t in &mut load {
        t.anchor(anchor);
    }
    let mut analysis = analysis::analyze(&recording, &load);
    analysis.limitations.extend(failed);
    print!("{}", report::text::render(&analysis));
    if let Some(path) = &output.json {
        report::json::write(&analysis, path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON result: {}", path.display());
    }
    println!("recording: {}", rec.display());
    Ok(analysis)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("chokepoint: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => {
            // Fail on unreadable --load files before attaching anything.
            check_load(&args.output.load)?;
            let outcome = runtime()?.block_on(session::record(Options {
                out: args.out,
                interval: args.interval,
                command: Some(args.command.clone()),
                duration: None,
                skip_families: args.probes.skip(),
                exact_overhead: args.probes.exact_overhead,
            }))?;
            conclude(&outcome.recording, &args.output, None)?;
            Ok(match outcome.exit_code {
                Some(0) => 0,
                Some(code) => {
                    eprintln!(
                        "chokepoint: `{}` exited with status {code}",
                        args.command[0]
                    );
                    code
                }
                // Killed by a signal (e.g. the Ctrl-C we forwarded): 128 + signal, as shells do.
                None if outcome.signalled => 130,
                None => 1,
            })
        }
        Command::Record(args) => {
            check_load(&args.output.load)?;
            let outcome = runtime()?.block_on(session::record(Options {
                out: args.out,
                interval: args.interval,
                command: None,
                duration: args.duration,
                skip_families: args.probes.skip(),
                exact_overhead: args.probes.exact_overhead,
            }))?;
            conclude(&outcome.recording, &args.output, None)?;
            Ok(0)
        }
        Command::Analyze(args) => {
            conclude(&args.recording, &args.output, None)?;
            Ok(0)
        }
        Command::Doctor(args) => doctor::cli::run(&args),
        Command::Timeline(args) => timeline::cli::run(&args),
        Command::Lab(args) => lab::cli::run(&args),
        Command::LabServer(args) => {
            lab::server::run(&args).context("lab-server")?;
            Ok(0)
        }
        Command::LabFanout(args) => {
            lab::fanout::run(&args).context("lab-fanout")?;
            Ok(0)
        }
        Command::LabWsReader(args) => {
            lab::fanout::run_reader(&args).context("lab-ws-reader")?;
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
