//! `cargo xtask bench --limits`: the limits docs/benchmarks.md publishes, each measured and
//! printed with its goal: the analysis time of a 10-minute recording (a real lab recording's
//! intervals repeated), timeline ingest MB/s per load-tool format (the real fixtures grown to
//! 50 MiB), and the memory and lost events of `chokepoint record` and `chokepoint daemon`
//! beside nginx under connection churn.
use std::{
    fs,
    io::{BufWriter, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chokepoint_testbed::{Nginx, Wrk, try_tool};
use serde_json::Value;

use super::{
    BenchArgs, Overhead, Recorder, median,
    synth::{Growth, Times, grow, growth_per_hour, repeat_recording},
    verdict,
};
use crate::env;

/// Goals from issue #19.
const GOAL_ANALYSIS_SECONDS: f64 = 1.0;
const GOAL_K6_MB_PER_S: f64 = 150.0;
const GOAL_RSS_MIB: f64 = 64.0;

/// Ten minutes of 1-second intervals.
const LONG_INTERVALS: usize = 600;
/// Each timeline input is grown to at least this size.
const TIMELINE_BYTES: u64 = 50 << 20;
/// Memory is sampled this often under churn.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

const MIB: f64 = (1u64 << 20) as f64;

pub fn limits(args: &BenchArgs, bin: &Path) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("chokepoint-limits-")
        .tempdir()
        .context("temp dir")?;
    let fixtures = env::workspace_root().join("profiler/tests/fixtures");
    println!("==> limits: {}", bin.display());
    analysis_time(bin, &fixtures.join("lab"), work.path())?;
    timeline_ingest(bin, &fixtures.join("timeline"), work.path())?;
    if args.limits_duration == 0 {
        println!("\n==> limits: --limits-duration 0: no churn run (memory, lost events)");
    } else if !env::is_root() {
        println!("\n==> limits: not root: no churn run (memory, lost events need the probes)");
    } else {
        churn(bin, work.path(), args.limits_duration)?;
    }
    Ok(())
}

/// `chokepoint ARGS` once; its stdout, or why it failed.
fn chokepoint(bin: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "chokepoint {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// Median wall time of `runs` runs of `chokepoint ARGS`.
fn timed(bin: &Path, args: &[&str], runs: usize) -> anyhow::Result<f64> {
    let mut secs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        chokepoint(bin, args)?;
        secs.push(t.elapsed().as_secs_f64());
    }
    Ok(median(&secs))
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

/// (a) `chokepoint analyze` of ten minutes of recording: the lab recording with the most bytes
/// per interval, its intervals repeated to 600.
fn analysis_time(bin: &Path, lab: &Path, dir: &Path) -> anyhow::Result<()> {
    let mut best: Option<(f64, PathBuf, String)> = None;
    for entry in fs::read_dir(lab).with_context(|| format!("reading {}", lab.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "rec") {
            continue;
        }
        let text = fs::read_to_string(&path)?;
        let intervals = text.matches("\"kind\":\"interval\"").count().max(1);
        let per_interval = text.len() as f64 / intervals as f64;
        if best.as_ref().is_none_or(|b| per_interval > b.0) {
            best = Some((per_interval, path, text));
        }
    }
    let (per_interval, source, text) = best.context("no .rec fixtures")?;
    let long = dir.join("ten-minutes.rec");
    fs::write(&long, repeat_recording(&text, LONG_INTERVALS)?)?;
    let size = fs::metadata(&long)?.len();
    let long_s = path_str(&long)?;
    let answer: Value =
        serde_json::from_slice(&chokepoint(bin, &["analyze", long_s, "--json", "-"])?)
            .context("analyze --json - printed no JSON")?;
    let duration = answer
        .get("duration_seconds")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    if duration < 0.9 * LONG_INTERVALS as f64 {
        bail!("the long recording analyses as {duration:.0} s, not ten minutes");
    }
    let secs = timed(bin, &["analyze", long_s, "--json", "-"], 5)?;
    println!(
        "\n==> limits (a): `chokepoint analyze ten-minutes.rec --json -`: {LONG_INTERVALS} intervals ({duration:.0} s) \
         from {} ({:.1} KiB per interval, the largest of the lab recordings), {:.1} MiB",
        source.file_name().unwrap_or_default().to_string_lossy(),
        per_interval / 1024.0,
        size as f64 / MIB,
    );
    println!(
        "analysis of a 10-minute recording   {secs:.3} s (median of 5)   (goal < {GOAL_ANALYSIS_SECONDS} s: {})",
        verdict(secs < GOAL_ANALYSIS_SECONDS)
    );
    Ok(())
}

/// One load-tool format: its name as `timeline` detects it, its fixture, how it grows.
struct Format {
    name: &'static str,
    fixture: &'static str,
    growth: Growth,
}

const fn column(sep: char, index: usize, per_second: i64) -> Times {
    Times::Column {
        sep,
        index,
        per_second,
    }
}

/// Every per-request or per-interval format with a fixture. Summaries (one figure per run)
/// do not grow with a test's length and are left out, and so is locust's history CSV (its
/// counts are cumulative, a row per second: 50 MiB of it is days of a test).
fn formats() -> Vec<Format> {
    let f = |name, fixture, head, tail, times| Format {
        name,
        fixture,
        growth: Growth { head, tail, times },
    };
    vec![
        f(
            "k6-json",
            "k6.json",
            0,
            0,
            Times::JsonIso { key: "\"time\":\"" },
        ),
        f("k6-csv", "k6.csv", 1, 0, column(',', 1, 1)),
        f("hey-csv", "hey-c8.csv", 1, 0, column(',', 7, 1)),
        f("ab-tsv", "ab-gnuplot.tsv", 1, 0, column('\t', 1, 1)),
        f("jmeter-csv", "jmeter.jtl.csv", 1, 0, column(',', 0, 1000)),
        f(
            "jmeter-xml",
            "jmeter.jtl.xml",
            2,
            1,
            Times::Attr {
                attr: " ts=\"",
                per_second: 1000,
            },
        ),
        f(
            "vegeta-csv",
            "vegeta.csv",
            0,
            0,
            column(',', 0, 1_000_000_000),
        ),
        f(
            "vegeta-json",
            "vegeta.json",
            0,
            0,
            Times::JsonIso {
                key: "\"timestamp\":\"",
            },
        ),
        f(
            "gatling-log",
            "simulation.log",
            1,
            0,
            Times::Digits {
                sep: '\t',
                digits: 13,
                per_second: 1000,
            },
        ),
        f("pgbench-log", "pgbench-log.txt", 0, 0, column(' ', 4, 1)),
        f(
            "pgbench-aggregate",
            "pgbench-aggregate.txt",
            0,
            0,
            column(' ', 0, 1),
        ),
    ]
}

/// (b) `chokepoint timeline FILE --json -` on each format's fixture grown to 50 MiB.
fn timeline_ingest(bin: &Path, fixtures: &Path, dir: &Path) -> anyhow::Result<()> {
    println!(
        "\n==> limits (b): `chokepoint timeline FILE --json -`, each fixture grown to >= {} MiB (its requests repeated, times moved on); MB = 2^20 bytes, median of 3",
        TIMELINE_BYTES >> 20
    );
    println!(
        "{:<18} {:>8} {:>10} {:>9} {:>8}",
        "format", "MiB", "requests", "seconds", "MB/s"
    );
    for format in formats() {
        let source = fixtures.join(format.fixture);
        let text =
            fs::read_to_string(&source).with_context(|| format!("reading {}", source.display()))?;
        let big = dir.join(format!("big-{}", format.fixture));
        let bytes = {
            let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(&big)?);
            let n = grow(&text, format.growth, TIMELINE_BYTES, &mut out)
                .with_context(|| format!("growing {}", format.fixture))?;
            out.flush()?;
            n
        };
        let big_s = path_str(&big)?;
        let answer: Value =
            serde_json::from_slice(&chokepoint(bin, &["timeline", big_s, "--json", "-"])?)
                .with_context(|| format!("timeline --json - of {}", format.fixture))?;
        let detected = answer.get("format").and_then(Value::as_str).unwrap_or("?");
        if detected != format.name {
            bail!(
                "{} grown to {} MiB reads as {detected}, not {}",
                format.fixture,
                bytes >> 20,
                format.name
            );
        }
        let requests = answer
            .get("requests")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let secs = timed(bin, &["timeline", big_s, "--json", "-"], 3)?;
        let mb_s = bytes as f64 / MIB / secs;
        let goal = match format.name {
            "k6-json" => format!(
                "   (goal >= {GOAL_K6_MB_PER_S} MB/s: {})",
                verdict(mb_s >= GOAL_K6_MB_PER_S)
            ),
            _ => String::new(),
        };
        println!(
            "{:<18} {:>8.1} {requests:>10.0} {secs:>9.3} {mb_s:>8.1}{goal}",
            format.name,
            bytes as f64 / MIB
        );
        let _ = fs::remove_file(&big);
    }
    Ok(())
}

/// Resident memory of a process, bytes (`VmRSS`, `RssAnon`, or `VmHWM` for its peak).
fn status_bytes(pid: u32, key: &str) -> Option<f64> {
    status_field(pid, key).map(|kib| kib * 1024.0)
}

/// A number of `/proc/PID/status` (`Threads:`; the kB figures as kB).
fn status_field(pid: u32, key: &str) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `GET /metrics` of the daemon: its body and the wall time the answer took.
fn scrape(port: u16) -> anyhow::Result<(String, f64)> {
    let t = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).context("connecting to /metrics")?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(text.as_str(), |(_, b)| b)
        .to_string();
    Ok((body, t.elapsed().as_secs_f64()))
}

/// The sum of the samples of one metric in a /metrics body.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `GET /metrics` of the daemon: the sum of its lost-events counters and its intervals.
fn daemon_metrics(port: u16) -> anyhow::Result<(f64, f64)> {
    let (text, _) = scrape(port)?;
    Ok((
        metric_sum(&text, "chokepoint_profiler_lost_events_total"),
        metric_sum(&text, "chokepoint_intervals_total"),
    ))
}

/// CPU time of every thread of a process, seconds (`/proc/PID/task/*/schedstat`: ns, exact,
/// where `/proc/PID/stat` counts in 10-ms ticks).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let text = fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(ns as f64 / 1e9)
}

/// What one `/metrics` scrape costs the daemon: its CPU over `n` back-to-back scrapes, less
/// what it spends in the same time without them (its interval sampling), per scrape.
fn scrape_cost(pid: u32, port: u16, n: usize) -> anyhow::Result<()> {
    let quiet = Duration::from_secs(5);
    let c0 = cpu_seconds(pid).unwrap_or(0.0);
    thread::sleep(quiet);
    let base_rate = (cpu_seconds(pid).unwrap_or(0.0) - c0) / quiet.as_secs_f64();
    let c1 = cpu_seconds(pid).unwrap_or(0.0);
    let t = Instant::now();
    let (mut walls, mut bytes): (Vec<f64>, usize) = (Vec::new(), 0usize);
    for _ in 0..n {
        let (body, wall) = scrape(port)?;
        walls.push(wall);
        bytes = body.len();
    }
    let elapsed = t.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid).unwrap_or(0.0) - c1 - base_rate * elapsed).max(0.0);
    println!(
        "scrape cost of /metrics             {:.2} ms of daemon CPU per scrape, {:.2} ms wall (median of {n}), {:.1} KiB per answer",
        cpu / n as f64 * 1e3,
        median(&walls) * 1e3,
        bytes as f64 / 1024.0
    );
    Ok(())
}

/// Waits until `path` exists (the observer has attached its probes).
fn wait_for(path: &Path, observer: &mut Recorder, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        if let Some(status) = observer.0.try_wait()? {
            bail!(
                "exited ({status}) before attaching:\n{}",
                super::read(&log.to_path_buf())
            );
        }
        if Instant::now() > deadline {
            bail!(
                "no {} in 60 s:\n{}",
                path.display(),
                super::read(&log.to_path_buf())
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn spawn(bin: &Path, args: &[&str], log: &Path) -> anyhow::Result<Recorder> {
    let out = fs::File::create(log)?;
    Ok(Recorder(
        Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting chokepoint {}", args.join(" ")))?,
    ))
}

/// (c) `chokepoint record` and `chokepoint daemon` side by side beside nginx under connection
/// churn for `seconds`: memory every 10 s, then lost events and the recording's size.
fn churn(bin: &Path, dir: &Path, seconds: u32) -> anyhow::Result<()> {
    let wrk_bin = try_tool("wrk").context("wrk is not installed: run `cargo xtask setup`")?;
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let nginx = Nginx::config()
        .workers(cpus as u32)
        .try_start()
        .context("starting nginx")?;
    let wrk = Wrk::new(&nginx.url())
        .threads(2)
        .connections(64)
        .seconds(seconds)
        .close(true);
    let rec = dir.join("churn.rec");
    let rec_s = path_str(&rec)?.to_string();
    let mut recorder = spawn(
        bin,
        &[
            "record",
            "--out",
            &rec_s,
            "--duration",
            &format!("{}s", seconds + 120),
        ],
        &dir.join("record.log"),
    )?;
    wait_for(&rec, &mut recorder, &dir.join("record.log")).context("chokepoint record")?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let socket = dir.join("daemon/control.sock");
    let (socket_s, recs_s) = (
        path_str(&socket)?.to_string(),
        path_str(&dir.join("daemon-recordings"))?.to_string(),
    );
    let mut daemon = spawn(
        bin,
        &[
            "daemon",
            "--socket",
            &socket_s,
            "--dir",
            &recs_s,
            "--metrics-listen",
            &format!("127.0.0.1:{port}"),
        ],
        &dir.join("daemon.log"),
    )?;
    wait_for(&socket, &mut daemon, &dir.join("daemon.log")).context("chokepoint daemon")?;
    thread::sleep(Duration::from_secs(3));
    println!(
        "\n==> limits (c): `chokepoint record` and `chokepoint daemon` beside nginx ({cpus} workers) under `wrk {}`, VmRSS every {} s",
        env::shell_words(&wrk.args()),
        SAMPLE_EVERY.as_secs()
    );
    let load = {
        let wrk_bin = wrk_bin.clone();
        thread::spawn(move || wrk.run_with(&wrk_bin))
    };
    let (rpid, dpid) = (recorder.0.id(), daemon.0.id());
    let (mut rss_r, mut rss_d) = (Vec::new(), Vec::new());
    // A scrape every sample, as Prometheus would: the encoder runs all along.
    let mut scrape_walls = Vec::new();
    let cpu0 = (cpu_seconds(rpid), cpu_seconds(dpid));
    let start = Instant::now();
    let mut next = start;
    loop {
        let finished = load.is_finished();
        let last_t = rss_r.last().map_or(-1.0, |s: &(f64, f64)| s.0);
        if Instant::now() >= next || (finished && start.elapsed().as_secs_f64() - last_t > 1.0) {
            let t = start.elapsed().as_secs_f64();
            let (r, d) = (status_bytes(rpid, "VmRSS:"), status_bytes(dpid, "VmRSS:"));
            println!(
                "t={t:>6.0} s   record {:>7.1} MiB   daemon {:>7.1} MiB   threads {} / {}   anonymous {:.1} / {:.1} MiB",
                r.unwrap_or(0.0) / MIB,
                d.unwrap_or(0.0) / MIB,
                status_field(rpid, "Threads:").unwrap_or(0.0),
                status_field(dpid, "Threads:").unwrap_or(0.0),
                status_bytes(rpid, "RssAnon:").unwrap_or(0.0) / MIB,
                status_bytes(dpid, "RssAnon:").unwrap_or(0.0) / MIB,
            );
            rss_r.extend(r.map(|r| (t, r)));
            rss_d.extend(d.map(|d| (t, d)));
            if let Ok((_, wall)) = scrape(port) {
                scrape_walls.push(wall);
            }
            next += SAMPLE_EVERY;
        }
        if finished {
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    let peaks = (status_bytes(rpid, "VmHWM:"), status_bytes(dpid, "VmHWM:"));
    let load_secs = start.elapsed().as_secs_f64();
    let cpu1 = (cpu_seconds(rpid), cpu_seconds(dpid));
    let report = load
        .join()
        .map_err(|_| anyhow::anyhow!("wrk failed (see its panic above)"))?;
    let (daemon_lost, daemon_intervals) = daemon_metrics(port)?;
    scrape_cost(dpid, port, 200)?;
    let daemon_status = daemon.stop()?;
    let record_status = recorder.stop()?;
    drop(nginx);
    if !record_status.success() || !daemon_status.success() {
        bail!("record exited {record_status}, daemon {daemon_status}");
    }
    println!(
        "load                                {:.0} requests/s, every one a new connection ({} socket errors)",
        report.requests_per_sec, report.socket_errors
    );
    for (name, samples, peak) in [("record", &rss_r, peaks.0), ("daemon", &rss_d, peaks.1)] {
        print_memory(name, samples, peak);
    }
    for (name, before, after) in [("record", cpu0.0, cpu1.0), ("daemon", cpu0.1, cpu1.1)] {
        if let (Some(a), Some(b)) = (before, after) {
            let cores = (b - a) / load_secs.max(1e-9);
            println!(
                "CPU of chokepoint {name:<7}          {cores:.3} cores over {load_secs:.0} s ({:.1} % of the host), user space only (its kernel programs are in the recording's overhead)",
                cores / cpus as f64 * 100.0
            );
        }
    }
    if !scrape_walls.is_empty() {
        println!(
            "scrapes during the load             {} (one per sample), median {:.2} ms wall",
            scrape_walls.len(),
            median(&scrape_walls) * 1e3
        );
    }

    let size = fs::metadata(&rec)?.len() as f64;
    let json = dir.join("churn.json");
    let t = Instant::now();
    chokepoint(bin, &["analyze", &rec_s, "--json", path_str(&json)?])?;
    let analysis_secs = t.elapsed().as_secs_f64();
    let answer: Value = serde_json::from_str(&fs::read_to_string(&json)?)?;
    let cost = Overhead::from_json(&answer)?;
    let minutes = cost.duration_seconds / 60.0;
    println!(
        "recording size                      {:.2} MiB per minute ({:.1} MiB over {:.0} s; analysed in {analysis_secs:.2} s)",
        size / MIB / minutes.max(1e-9),
        size / MIB,
        cost.duration_seconds
    );
    println!(
        "lost events (record)                {:.0} of {:.0} events ({:.2e} of them)",
        cost.lost_events,
        cost.events,
        cost.lost_events / cost.events.max(1.0)
    );
    println!(
        "lost events (daemon)                {daemon_lost:.0} over {daemon_intervals:.0} intervals (chokepoint_profiler_lost_events_total)"
    );
    // How the person reading the report sees loss: the overhead line and the limitations.
    let text = String::from_utf8_lossy(&chokepoint(bin, &["analyze", &rec_s])?).into_owned();
    let limitations = answer
        .get("limitations")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .filter(|s| s.contains("lost") || s.contains("evicted"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    println!("as the report shows it:");
    let mut in_overhead = false;
    for line in text.lines() {
        in_overhead = line.starts_with("overhead: ")
            || (in_overhead && line.starts_with("  "))
            || line.contains("evicted");
        if in_overhead {
            println!("    {}", line.trim());
        }
    }
    for l in limitations {
        println!("    limitation: {l}");
    }
    Ok(())
}

fn print_memory(name: &str, samples: &[(f64, f64)], peak: Option<f64>) {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        println!("{name}: no memory samples");
        return;
    };
    let peak = peak.unwrap_or(last.1).max(last.1);
    let growth = growth_per_hour(samples);
    let growth_text = growth.map_or("too few samples".into(), |g| {
        format!("{:+.2} MiB/h", g / MIB)
    });
    println!(
        "RSS of chokepoint {name:<7}          start {:.1} MiB, end {:.1} MiB, peak {:.1} MiB, growth {growth_text} (fit over the second half)   (goal <= {GOAL_RSS_MIB} MiB: {})",
        first.1 / MIB,
        last.1 / MIB,
        peak / MIB,
        verdict(peak <= GOAL_RSS_MIB * MIB)
    );
    // A daemon runs for days: the goal holds only if the growth does not carry it past.
    if let Some(g) = growth.filter(|g| *g > 0.0) {
        let hours = ((GOAL_RSS_MIB * MIB - last.1) / g).max(0.0);
        println!(
            "                                    at that growth, {GOAL_RSS_MIB} MiB is reached after {hours:.1} h   (goal over a day: {})",
            verdict(hours >= 24.0)
        );
    }
}
