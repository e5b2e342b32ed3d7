//! `chokepoint`: the command line. Parses arguments, runs one command, maps errors to one
//! clear line and an exit status (docs/cli.md: 0 done, 1 runtime error, 2 usage error,
//! 3 `--fail-on` matched; `run` returns the command's own status when it failed).
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use chokepoint::{
    analysis::{self, VerdictKind},
    cli::{self, JsonTarget, ProbeArgs, exit, parse_duration},
    daemon, doctor, errln, lab, outln,
    recording::Recording,
    report,
    session::{self, Options},
    timeline,
};
use clap::{CommandFactory, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  chokepoint run -- wrk -t2 -c64 -d30s http://127.0.0.1:8080/
  chokepoint run --json result.json --fail-on cpu-saturated,pool-saturated -- hey -z 20s -c 50 http://127.0.0.1:8080/
  chokepoint run --out k6.rec -- k6 run script.js
  chokepoint record --out idle.rec --duration 30s
  chokepoint analyze k6.rec --json - | jq .verdict.kind
  chokepoint doctor
  chokepoint lab --list

Exit status: 0 done, 1 runtime error, 2 usage error, 3 a --fail-on kind matched; `run` returns the
command's own status when the command failed. See docs/cli.md.";

/// Measure what stalls a load test's throughput, from the kernel.
#[derive(Debug, Parser)]
#[command(
    name = "chokepoint",
    version,
    about,
    long_about = None,
    after_help = EXAMPLES,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Attach the probes, run a load generator, and name the bottleneck when it exits.
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Record without a command until Ctrl-C, SIGTERM or --duration.
    #[command(
        after_help = "Example:\n  chokepoint record --out idle.rec --duration 30s --json idle.json"
    )]
    Record(RecordArgs),
    /// Analyse a recording offline; several hosts' recordings of one test give one verdict.
    #[command(
        after_help = "Examples:\n  chokepoint analyze run.rec\n  chokepoint analyze run.rec --load k6.json --json - | jq .verdict\n  chokepoint analyze run.rec --fail-on cpu-saturated || echo \"CPU-bound\"\n  chokepoint analyze gen.rec api.rec db.rec --json - | jq '.hosts[] | {host, clock}'"
    )]
    Analyze(AnalyzeArgs),
    /// Compare two recordings: throughput, latency, verdict and the figures that moved.
    #[command(after_help = report::cli::DIFF_HELP)]
    Diff(report::cli::DiffArgs),
    /// Write a report of a recording for people: a Markdown memo.
    #[command(after_help = report::cli::REPORT_HELP)]
    Report(report::cli::ReportArgs),
    /// Stay attached: named recordings, marks, metrics and a rolling verdict over a control socket.
    #[command(after_help = DAEMON_HELP)]
    Daemon(daemon::DaemonArgs),
    /// Add a phase mark ("stage 3: 1000 VUs") to the running daemon's recordings.
    #[command(
        after_help = "Example:\n  chokepoint mark \"stage 3: 1000 VUs\"\n\nThe same over HTTP (daemon started with --http 127.0.0.1:9465):\n  curl -s -XPOST -d '{\"text\":\"stage 3\"}' http://127.0.0.1:9465/v1/marks"
    )]
    Mark(daemon::client::MarkArgs),
    /// Control the running daemon: start and stop named recordings, read figures and the verdict.
    #[command(
        after_help = "Examples:\n  chokepoint ctl start nightly\n  chokepoint ctl stop nightly     # prints the recording's path\n  chokepoint ctl verdict | jq .verdict.kind"
    )]
    Ctl(daemon::client::CtlArgs),
    /// Say what this kernel and this user allow.
    Doctor(doctor::cli::DoctorArgs),
    /// Read load-generator output files: per-interval table, knee and USL fit.
    Timeline(timeline::cli::TimelineArgs),
    /// Run built-in bottleneck scenarios and check each verdict.
    Lab(lab::cli::LabArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  chokepoint completions bash > /etc/bash_completion.d/chokepoint"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (chokepoint.1 and one per subcommand) into a directory.
    #[command(after_help = "Example:\n  chokepoint man --dir /usr/local/share/man/man1")]
    Man {
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
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

const DAEMON_HELP: &str = "\
Examples:
  chokepoint daemon --metrics-listen :9464
  chokepoint daemon --http 127.0.0.1:9465 --dir /var/lib/chokepoint

Then `chokepoint ctl start NAME`, `chokepoint mark TEXT`, `chokepoint ctl stop NAME`;
`chokepoint analyze /var/lib/chokepoint/NAME.rec` reads the recording. docs/daemon.md lists
the API and the metrics.";

const RUN_HELP: &str = "\
Examples:
  chokepoint run -- wrk -t2 -c64 -d30s http://127.0.0.1:8080/
  chokepoint run --json - -- hey -z 20s -c 50 http://127.0.0.1:8080/ > result.json
  chokepoint run --fail-on cpu-saturated,cpu-throttled -- k6 run script.js

Exit status: the command's own status when it failed (128 + N when a signal N ended it);
otherwise 3 when the verdict is a --fail-on kind, 0 when not, 1 on a runtime error of
chokepoint's, 2 on a usage error. The command keeps the terminal when chokepoint has one.";

#[derive(Debug, clap::Args)]
struct OutputArgs {
    #[command(flatten)]
    out: cli::JsonOut,
    /// More load-generator output files to line up with the recording.
    #[arg(long = "load", value_name = "FILE")]
    load: Vec<PathBuf>,
    /// Exit with status 3 when the verdict is one of these kinds (comma-separated), e.g.
    /// `cpu-saturated,pool-saturated`, for CI jobs that fail on a bottleneck.
    #[arg(long, value_name = "KIND[,KIND...]", value_delimiter = ',', value_parser = parse_kind)]
    fail_on: Vec<VerdictKind>,
    /// Refuse a recording or load file with a corrupt line (file:line and why) instead of
    /// skipping the line and listing it under `skipped_lines`. A last line cut short is
    /// still only a warning.
    #[arg(long)]
    strict: bool,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Where to write the recording [default: chokepoint.rec, or chokepoint-N.rec when that
    /// exists].
    #[arg(long, value_name = "REC")]
    out: Option<PathBuf>,
    /// Overwrite the recording when it exists.
    #[arg(long)]
    force: bool,
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
    /// Overwrite the recording when it exists.
    #[arg(long)]
    force: bool,
    /// Stop after this long (e.g. 30s, 2m).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Sampling interval (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    probes: ProbeArgs,
}
#[derive(Debug, clap::Args)]
struct AnalyzeArgs {
    /// A recording written by `run`, `record` or the daemon; more than one are the hosts of
    /// one test (the first one's clock is the reference; docs/cli.md).
    #[arg(required = true, num_args = 1..)]
    recording: Vec<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
}

fn parse_kind(s: &str) -> Result<VerdictKind, String> {
    VerdictKind::parse(s.trim()).ok_or_else(|| {
        let known: Vec<&str> = VerdictKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("`{s}` is not a verdict kind (known: {})", known.join(", "))
    })
}

/// A usage error found after parsing (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// Where a new recording goes: the path asked for, which must not exist unless `--force`; or
/// by default chokepoint.rec, or the first free chokepoint-N.rec (an old one is never lost).
fn recording_path(asked: Option<&Path>, force: bool) -> Result<PathBuf, UsageError> {
    match asked {
        Some(p) if p.exists() && !force => Err(UsageError(format!(
            "{} exists: pass --force to overwrite it, or another --out",
            p.display()
        ))),
        Some(p) => Ok(p.to_path_buf()),
        None if force => Ok(PathBuf::from("chokepoint.rec")),
        None => Ok((1..)
            .map(|n| match n {
                1 => PathBuf::from("chokepoint.rec"),
                n => PathBuf::from(format!("chokepoint-{n}.rec")),
            })
            .find(|p| !p.exists())
            .unwrap_or_else(|| PathBuf::from("chokepoint.rec"))),
    }
}

/// Before attaching: a `--load` file that exists must read (a wrong or truncated file fails at
/// once); a missing one may be what the command is about to write (`k6 run --out json=F`).
fn check_load(files: &[PathBuf], strict: bool) -> anyhow::Result<()> {
    for f in files.iter().filter(|f| f.exists()) {
        timeline::read_file_with(f, strict).with_context(|| format!("--load {}", f.display()))?;
    }
    Ok(())
}

/// After the run: the timelines that read; each one that does not is named (the recording is
/// analysed without it rather than lost).
fn read_load(files: &[PathBuf], strict: bool) -> (Vec<timeline::Timeline>, Vec<String>) {
    let mut timelines = Vec::new();
    let mut failed = Vec::new();
    for f in files {
        match timeline::read_file_with(f, strict).with_context(|| format!("--load {}", f.display()))
        {
            Ok(t) => timelines.push(t),
            Err(e) => {
                errln!("chokepoint: {e:#}; analysed without it");
                failed.push(format!("{e:#}: analysed without this timeline"));
            }
        }
    }
    (timelines, failed)
}

/// Analyse, write the JSON (before any printing, so a reader that closes the pipe early
/// cannot cost the file), print the summary; the status `--fail-on` asks for. `in_memory`: a
/// session whose recording could not be written whole (a full disk) hands it over as it is.
/// A JSON file that cannot be written is an error after the summary is printed.
fn conclude(rec: &Path, output: &OutputArgs, in_memory: Option<Recording>) -> anyhow::Result<i32> {
    let recording = match in_memory {
        Some(r) => r,
        None => Recording::read_with(rec, output.strict)?,
    };
    let (mut load, failed) = read_load(&output.load, output.strict);
    let anchor = recording.header.started_unix_ns;
    for t in &mut load {
        t.anchor(anchor);
    }
    let mut analysis = analysis::analyze(&recording, &load);
    analysis.limitations.extend(failed);
    let text = report::text::render(&analysis);
    let footer = format!("recording: {}", rec.display());
    present(
        output,
        &analysis,
        &text,
        analysis.verdict.kind,
        Some(&footer),
    )
}

/// Writes the JSON result where `--json` asks and prints the text (a blank line apart from the
/// command's own output; the verdict sentence in its colour, removed where colour is not
/// wanted), then `footer`; the status `--fail-on` asks for. A JSON file that cannot be written
/// is an error after the text is printed.
fn present(
    output: &OutputArgs,
    result: &impl serde::Serialize,
    text: &str,
    kind: VerdictKind,
    footer: Option<&str>,
) -> anyhow::Result<i32> {
    let json = match &output.out.json {
        Some(target) => target
            .write(result)
            .with_context(|| format!("writing the JSON result to {target}")),
        None => Ok(()),
    };
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    cli::human(&format!(
        "\n{}\n{rest}",
        cli::verdict_style(kind.as_str(), first)
    ));
    if let (Some(JsonTarget::File(path)), Ok(())) = (&output.out.json, &json) {
        outln!("JSON result: {}", path.display());
    }
    if let Some(footer) = footer {
        outln!("{footer}");
    }
    json?;
    Ok(fail_on_status(kind, &output.fail_on))
}

/// `analyze A.rec B.rec ...`: several hosts' recordings of one test, one verdict.
fn conclude_hosts(recs: &[PathBuf], output: &OutputArgs) -> anyhow::Result<i32> {
    let mut recordings = Vec::new();
    for rec in recs {
        recordings.push((rec.clone(), Recording::read_with(rec, output.strict)?));
    }
    let (mut load, failed) = read_load(&output.load, output.strict);
    let anchor = recordings[0].1.header.started_unix_ns;
    for t in &mut load {
        t.anchor(anchor);
    }
    let mut multi =
        analysis::hosts::analyze_hosts(recordings, &load).map_err(|e| anyhow::anyhow!(e))?;
    multi.limitations.extend(failed);
    let text = analysis::hosts::render(&multi);
    present(output, &multi, &text, multi.verdict.kind, None)
}

/// The recording a session kept in memory when writing it failed, and what to say after the
/// summary (the run's status is then 1).
fn unwritten(finished: chokepoint::recording::Finished) -> (Option<Recording>, Option<String>) {
    match finished {
        chokepoint::recording::Finished::Written => (None, None),
        chokepoint::recording::Finished::InMemory {
            error,
            written,
            recording,
        } => {
            let said = format!(
                "chokepoint: the recording {} is incomplete ({error}): it holds the first {written} of {} intervals; the verdict above covers them all",
                recording.skipped.file.display(),
                recording.intervals.len()
            );
            (Some(*recording), Some(said))
        }
    }
}

/// After the summary: a recording that could not be written whole is said again (status 1).
fn said_unwritten(said: Option<String>) -> bool {
    said.inspect(|s| errln!("{s}")).is_some()
}

/// 3 when the verdict is one of the `--fail-on` kinds, else 0.
fn fail_on_status(kind: VerdictKind, fail_on: &[VerdictKind]) -> i32 {
    if fail_on.contains(&kind) {
        errln!(
            "chokepoint: the verdict is {} (--fail-on): exit status {}",
            kind.as_str(),
            exit::FAIL_ON
        );
        exit::FAIL_ON
    } else {
        exit::OK
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE as u8 } else { 0 });
        }
    };
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            errln!("chokepoint: {e:#}");
            let code = if e.downcast_ref::<UsageError>().is_some() {
                exit::USAGE
            } else {
                exit::ERROR
            };
            ExitCode::from(code as u8)
        }
    }
}

/// `--json -` anywhere: the JSON takes stdout, so the human text moves to stderr.
fn route_human(json: Option<&JsonTarget>) {
    if JsonTarget::is_stdout(json) {
        cli::human_to_stderr();
    }
}

/// `SIGKILL` for 9: the name a signal number goes by here.
fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => {
            route_human(args.output.out.json.as_ref());
            let out = recording_path(args.out.as_deref(), args.force)?;
            // Fail on unreadable --load files before attaching anything.
            check_load(&args.output.load, args.output.strict)?;
            let outcome = runtime()?.block_on(session::record(Options {
                out,
                interval: args.interval,
                command: Some(args.command.clone()),
                duration: None,
                skip_families: args.probes.skip(),
                exact_overhead: args.probes.exact_overhead,
                tier: args.probes.probes,
            }))?;
            let (in_memory, said) = unwritten(outcome.finished);
            let fail_on = conclude(&outcome.recording, &args.output, in_memory)?;
            let unwritten = said_unwritten(said);
            Ok(match outcome.exit_code {
                Some(0) if unwritten => exit::ERROR,
                Some(0) => fail_on,
                Some(code) => {
                    errln!(
                        "chokepoint: `{}` exited with status {code}",
                        args.command[0]
                    );
                    code
                }
                // Killed by a signal (e.g. the Ctrl-C we forwarded): 128 + signal, as shells do.
                None => match outcome.exit_signal {
                    Some(signal) => {
                        errln!(
                            "chokepoint: `{}` was killed by signal {signal} ({})",
                            args.command[0],
                            signal_name(signal)
                        );
                        128 + signal
                    }
                    None => exit::ERROR,
                },
            })
        }
        Command::Record(args) => {
            route_human(args.output.out.json.as_ref());
            let out = recording_path(Some(&args.out), args.force)?;
            check_load(&args.output.load, args.output.strict)?;
            let outcome = runtime()?.block_on(session::record(Options {
                out,
                interval: args.interval,
                command: None,
                duration: args.duration,
                skip_families: args.probes.skip(),
                exact_overhead: args.probes.exact_overhead,
                tier: args.probes.probes,
            }))?;
            let (in_memory, said) = unwritten(outcome.finished);
            let status = conclude(&outcome.recording, &args.output, in_memory)?;
            Ok(if said_unwritten(said) {
                exit::ERROR
            } else {
                status
            })
        }
        Command::Analyze(args) => {
            route_human(args.output.out.json.as_ref());
            match args.recording.as_slice() {
                [one] => conclude(one, &args.output, None),
                several => conclude_hosts(several, &args.output),
            }
        }
        Command::Diff(args) => report::cli::run_diff(&args),
        Command::Report(args) => report::cli::run_report(&args),
        Command::Daemon(args) => daemon::run(&args),
        Command::Mark(args) => daemon::client::run_mark(&args),
        Command::Ctl(args) => daemon::client::run_ctl(&args),
        Command::Doctor(args) => {
            route_human(args.out.json.as_ref());
            doctor::cli::run(&args)
        }
        Command::Timeline(args) => {
            route_human(args.out.json.as_ref());
            timeline::cli::run(&args)
        }
        Command::Lab(args) => {
            route_human(args.out.json.as_ref());
            lab::cli::run(&args)
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "chokepoint", &mut out);
            cli::stdout_write(&out);
            Ok(exit::OK)
        }
        Command::Man { dir } => {
            write_man_pages(&dir)?;
            Ok(exit::OK)
        }
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

/// chokepoint.1, and chokepoint-run.1 etc. for each visible subcommand.
fn write_man_pages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cmd = Cli::command();
    let mut pages = vec![("chokepoint".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("chokepoint-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let mut text = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut text)
            .context("rendering a man page")?;
        let path = dir.join(format!("{name}.1"));
        cli::write_file(&path, &text)?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod deploy_cli_tests;

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
        Cli::command().debug_assert();
    }

    #[test]
    fn fail_on_takes_known_kinds_separated_by_commas() {
        let cli = Cli::try_parse_from([
            "chokepoint",
            "analyze",
            "x.rec",
            "--fail-on",
            "cpu-saturated,pool-saturated",
        ])
        .expect("parses");
        let Command::Analyze(a) = cli.command else {
            panic!("analyze")
        };
        assert_eq!(
            a.output.fail_on,
            [VerdictKind::CpuSaturated, VerdictKind::PoolSaturated]
        );
        let err = Cli::try_parse_from(["chokepoint", "analyze", "x.rec", "--fail-on", "cpu"])
            .expect_err("an unknown kind is a usage error");
        assert!(err.use_stderr());
        assert!(err.to_string().contains("known: cpu-saturated"), "{err}");
    }

    #[test]
    fn json_takes_a_file_or_stdout() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["chokepoint", "analyze", "x.rec"];
            argv.extend(args);
            match Cli::try_parse_from(argv).expect("parses").command {
                Command::Analyze(a) => a.output.out.json,
                _ => panic!("analyze"),
            }
        };
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&["--json", "-"]), Some(JsonTarget::Stdout));
        assert_eq!(parse(&["--json"]), Some(JsonTarget::Stdout));
        assert_eq!(
            parse(&["--json", "r.json"]),
            Some(JsonTarget::File("r.json".into()))
        );
    }

    #[test]
    fn a_new_recording_never_replaces_an_old_one_unless_forced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = dir.path().join("old.rec");
        std::fs::write(&old, "x").expect("write");
        let err = recording_path(Some(&old), false).expect_err("exists");
        assert!(err.0.contains("--force"), "{}", err.0);
        assert_eq!(recording_path(Some(&old), true).expect("forced"), old);
        let fresh = dir.path().join("new.rec");
        assert_eq!(recording_path(Some(&fresh), false).expect("free"), fresh);

        // The default name moves on to the first free chokepoint-N.rec.
        let cwd = std::env::current_dir().expect("cwd");
        std::env::set_current_dir(dir.path()).expect("cd");
        let first = recording_path(None, false);
        std::fs::write("chokepoint.rec", "x").expect("write");
        std::fs::write("chokepoint-2.rec", "x").expect("write");
        let third = recording_path(None, false);
        std::env::set_current_dir(cwd).expect("cd back");
        assert_eq!(first.expect("free"), PathBuf::from("chokepoint.rec"));
        assert_eq!(third.expect("free"), PathBuf::from("chokepoint-3.rec"));
    }

    /// Every `chokepoint ...` line in the README's and docs/cli.md's code blocks parses with
    /// today's flags, so the examples cannot drift from the CLI.
    #[test]
    fn the_documented_examples_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut checked = 0;
        for doc in ["README.md", "docs/cli.md"] {
            let text = std::fs::read_to_string(root.join(doc)).expect("the doc exists");
            let mut in_code = false;
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("```") {
                    in_code = !in_code;
                    continue;
                }
                let line = line.trim().trim_start_matches("$ ");
                if !in_code || !line.starts_with("chokepoint ") {
                    continue;
                }
                // Up to a pipe or a redirection: what follows is the shell's.
                let line = line.split(['|', '>']).next().unwrap_or(line);
                let words = shell_words::split(line)
                    .unwrap_or_else(|e| panic!("{doc}:{}: {e}: {line}", n + 1));
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("{doc}:{}: `{line}` does not parse:\n{e}", n + 1);
                }
                checked += 1;
            }
        }
        assert!(checked >= 8, "only {checked} examples found");
        // The examples in --help too.
        for help in [EXAMPLES, RUN_HELP] {
            for line in help
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("chokepoint "))
            {
                let line = line.split(['|', '>']).next().unwrap_or(line);
                let words = shell_words::split(line).expect("words");
                Cli::try_parse_from(&words)
                    .unwrap_or_else(|e| panic!("--help example `{line}`: {e}"));
            }
        }
    }

    /// `--help` of every command against its snapshot in profiler/tests/snapshots/help/
    /// (`SNAPSHOTS=overwrite cargo test -p chokepoint --bin chokepoint help` rewrites them).
    #[test]
    fn help_matches_its_snapshots() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/help");
        let overwrite = std::env::var("SNAPSHOTS").is_ok_and(|v| v == "overwrite");
        let mut root = Cli::command().term_width(100);
        let mut pages = vec![(
            "chokepoint".to_string(),
            root.render_long_help().to_string(),
        )];
        root.build();
        for sub in root
            .get_subcommands_mut()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            let name = format!("chokepoint-{}", sub.get_name());
            pages.push((name, sub.render_long_help().to_string()));
        }
        let mut stale = Vec::new();
        for (name, text) in pages {
            let path = dir.join(format!("{name}.txt"));
            if overwrite {
                std::fs::create_dir_all(&dir).expect("snapshot dir");
                std::fs::write(&path, &text).expect("write snapshot");
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if want != text {
                stale.push(format!("{}:\n{text}", path.display()));
            }
        }
        assert!(
            stale.is_empty(),
            "--help differs from its snapshot (SNAPSHOTS=overwrite to accept):\n{}",
            stale.join("\n")
        );
    }
}
