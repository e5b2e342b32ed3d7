//! The foundation end to end: real probes in the real kernel, real nginx, real wrk.
//! Needs root; run through `cargo xtask test`.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use chokepoint_tests::{
    Nginx, chokepoint_bin, kernel_counter, left_behind, program_ids, run_chokepoint, tool,
};
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    run_chokepoint(args)
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("result is JSON")
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chokepoint-e2e-{}-{name}", std::process::id()))
}

#[test]
fn connection_opens_match_the_kernels_own_counters() {
    opens_match_nstat(Programs::Btf);
}

#[test]
fn the_raw_connection_setup_program_counts_the_same_opens() {
    // The fallback for kernels that refuse the BTF program.
    opens_match_nstat(Programs::Raw);
}

#[test]
fn the_classic_connection_setup_program_counts_the_same_opens() {
    // The fallback for kernels without raw tracepoints or BTF socket offsets.
    opens_match_nstat(Programs::Classic);
}

/// nginx under wrk `Connection: close`: our opens equal the kernel's own counters, through
/// the `inet_sock_set_state` program of `programs`.
fn opens_match_nstat(programs: Programs) {
    let nginx = Nginx::start();
    let before = program_ids();
    let tag = format!("{programs:?}");
    let (rec, out) = (
        tmp(&format!("opens-{tag}.rec")),
        tmp(&format!("opens-{tag}.json")),
    );
    let active0 = kernel_counter("Tcp", "ActiveOpens");
    let passive0 = kernel_counter("Tcp", "PassiveOpens");
    let url = format!("http://127.0.0.1:{}/", nginx.port());
    let wrk = tool("wrk");
    let mut cmd = Command::new(chokepoint_bin());
    cmd.args([
        "run",
        "--out",
        rec.to_str().expect("utf-8"),
        "--json",
        out.to_str().expect("utf-8"),
        "--",
        wrk.to_str().expect("utf-8"),
        "-t2",
        "-c32",
        "-d3s",
        "-H",
        "Connection: close",
        &url,
    ]);
    force(&mut cmd, programs);
    let o = chokepoint_tests::output_within(&mut cmd, Duration::from_secs(60));
    let active = kernel_counter("Tcp", "ActiveOpens") - active0;
    let passive = kernel_counter("Tcp", "PassiveOpens") - passive0;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        attached_as(&rec, "sock/inet_sock_set_state"),
        programs,
        "which program path counted the opens"
    );
    let r = json(&out);
    let ours_active = r["totals"]["tcp_active_opens"]
        .as_u64()
        .expect("active opens");
    let ours_passive = r["totals"]["tcp_passive_opens"]
        .as_u64()
        .expect("passive opens");
    assert!(active > 5_000, "wrk made real churn: {active}");
    // Where the default tier attaches the program at a sample's start, the opens between the
    // interval's first read and the attach go uncounted: a few ms, tens on a loaded CI host
    // (measured: 1.06 % short over a 3-s run with two attaches).
    let within =
        |ours: u64, kernel: u64| (ours as f64 - kernel as f64).abs() <= kernel as f64 * 0.02;
    assert!(
        within(ours_active, active),
        "active opens: ours {ours_active}, kernel {active}"
    );
    assert!(
        within(ours_passive, passive),
        "passive opens: ours {ours_passive}, kernel {passive}"
    );
    // The default tier runs the connection-setup program where it samples (and on demand):
    // there its opens match the kernel's counts of the same interval and every handshake is
    // timed; elsewhere the interval says so and carries the kernel's own counts.
    let text = std::fs::read_to_string(&rec).expect("recording");
    let intervals: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .filter(|l| l["kind"] == "interval")
        .collect();
    let (mut counted_seen, mut detached_seen) = (false, false);
    for iv in &intervals[..intervals.len().saturating_sub(1)] {
        let kernel = iv["host"]["tcp"]["counters"]["ActiveOpens"]
            .as_u64()
            .unwrap_or(0);
        let opens = iv["tcp"]["active_opens"].as_u64().unwrap_or(0);
        let timed: u64 = iv["connect_latency"]
            .as_array()
            .map_or(0, |b| b.iter().filter_map(Value::as_u64).sum());
        let detached = iv["detached"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "sock/inet_sock_set_state"));
        if kernel < 500 {
            continue;
        }
        if detached {
            detached_seen = true;
            assert_eq!(iv["tcp"]["from_kernel_counters"], true, "{}", iv["tcp"]);
            assert_eq!(
                opens, kernel,
                "a detached interval's opens are the kernel's"
            );
            // Up to its detach, a few ms after the read that began the interval.
            assert!(timed * 4 < kernel, "detached: {timed} of {kernel} timed");
        } else {
            counted_seen = true;
            assert!(iv["tcp"]["from_kernel_counters"].is_null(), "{}", iv["tcp"]);
            // The kernel's counters are read a few ms after the maps, and the program attached
            // a few ms after the interval began (3.0 % short once on a loaded CI host).
            assert!(
                (opens as f64 - kernel as f64).abs() <= kernel as f64 * 0.05,
                "counted: ours {opens}, the kernel's {kernel}"
            );
            assert!(timed * 10 >= opens * 9, "counted: {timed} of {opens} timed");
        }
    }
    assert!(
        counted_seen && detached_seen,
        "counted {counted_seen}, detached {detached_seen}"
    );
    // Roles: wrk is the load generator, nginx (master and workers) the server.
    let procs = r["processes"].as_array().expect("processes");
    let role = |comm: &str| {
        procs
            .iter()
            .find(|p| p["comm"] == comm)
            .map(|p| p["role"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(role("wrk").as_deref(), Some("load-generator"));
    assert_eq!(role("nginx").as_deref(), Some("server"));
    for key in ["kind", "family", "summary", "evidence", "ruled_out"] {
        assert!(!r["verdict"][key].is_null(), "verdict.{key} missing");
    }
    assert!(r["overhead"]["events"].as_u64().unwrap_or(0) > 0);
    assert!(r["overhead"]["bpf_cpu_seconds"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(
        left_behind(&before),
        Vec::<u64>::new(),
        "probes detached after the run"
    );
}

/// nginx under wrk `Connection: close` at ~15k connections a second: every connection's
/// socket memory is reused by the next before a read, so each request is counted from the
/// closed sockets' folded figures (`RETIRED`). The requests the pools count match wrk's own.
/// (Kept one entry per closed socket, 8,192 at most, they counted a quarter.)
#[test]
fn a_churning_clients_requests_are_all_counted_by_its_pool_and_the_server() {
    let nginx = Nginx::start();
    let (rec, out) = (tmp("churn-pool.rec"), tmp("churn-pool.json"));
    let url = format!("http://127.0.0.1:{}/", nginx.port());
    let wrk = tool("wrk");
    let o = run(&[
        "run",
        "--probes",
        "all",
        "--out",
        rec.to_str().expect("utf-8"),
        "--json",
        out.to_str().expect("utf-8"),
        "--",
        wrk.to_str().expect("utf-8"),
        "-t1",
        "-c16",
        "-d4s",
        "-H",
        "Connection: close",
        &url,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = json(&out);
    let requests = r["load"][0]["requests"].as_f64().expect("wrk's requests");
    assert!(requests > 5_000.0, "wrk made real churn: {requests}");
    let text = std::fs::read_to_string(&rec).expect("recording");
    let (mut pooled, mut served) = (0.0, 0.0);
    for iv in text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .filter(|l| l["kind"] == "interval")
    {
        let secs = (iv["end_unix_ns"].as_f64().unwrap_or(0.0)
            - iv["start_unix_ns"].as_f64().unwrap_or(0.0))
            / 1e9;
        let rate = |rows: &Value, comm: &str| -> f64 {
            rows.as_array().map_or(0.0, |rows| {
                rows.iter()
                    .filter(|p| p["comm"] == comm)
                    .filter_map(|p| p["requests_per_s"].as_f64())
                    .sum()
            })
        };
        pooled += rate(&iv["pools"], "wrk") * secs;
        served += rate(&iv["inbound"], "nginx") * secs;
    }
    // The last turn of a connection still open at the end, and those of the first read
    // before the programs attached, are the only ones left out.
    for (what, n) in [("wrk's pool", pooled), ("nginx's inbound", served)] {
        assert!(
            (n - requests).abs() <= requests * 0.05,
            "{what} counted {n:.0} requests, wrk made {requests}"
        );
    }
}

#[test]
fn cpu_seconds_of_a_two_thread_burner_match_its_rusage() {
    // Three runs: a slice lost now and then (as once happened when the kernel did not report a
    // switch) fails one of them.
    for attempt in 0..3 {
        burner_cpu_seconds_match_rusage(attempt, Programs::Btf);
    }
}

#[test]
fn the_classic_tracepoint_programs_give_the_same_cpu_seconds() {
    // The fallback for kernels without raw tracepoints or BTF task offsets.
    burner_cpu_seconds_match_rusage(3, Programs::Classic);
}

#[test]
fn the_raw_tracepoint_programs_give_the_same_cpu_seconds() {
    // The fallback for kernels that refuse the BTF programs: helper reads at BTF offsets.
    burner_cpu_seconds_match_rusage(4, Programs::Raw);
}

/// The burner's CPU seconds through `programs` (which the recording must say attached)
/// within 1 % of its rusage. The rusage is read just before it exits, so ours may only be a
/// little larger.
fn burner_cpu_seconds_match_rusage(attempt: u32, programs: Programs) {
    let (ours, rusage, attached) = burner_cpu_seconds(attempt, programs);
    assert_eq!(attached, programs, "which programs the recording says ran");
    assert!(
        (ours - rusage).abs() <= rusage * 0.01,
        "run {attempt} ({programs:?}): ours {ours:.3}s vs rusage {rusage:.3}s"
    );
}

const CLASSIC_ENV: &str = "CHOKEPOINT_CLASSIC_TRACEPOINTS";
const RAW_ENV: &str = "CHOKEPOINT_RAW_TRACEPOINTS";

/// The programs a tracepoint can be attached through, cheapest first.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Programs {
    /// `tp_btf`: the default where the kernel takes it.
    Btf,
    /// Raw tracepoints (`CHOKEPOINT_RAW_TRACEPOINTS`).
    Raw,
    /// Trace records (`CHOKEPOINT_CLASSIC_TRACEPOINTS`).
    Classic,
}

/// Forces `programs`, and makes sure the run inherits no other choice.
fn force(cmd: &mut Command, programs: Programs) {
    for (env, wanted) in [
        (CLASSIC_ENV, programs == Programs::Classic),
        (RAW_ENV, programs == Programs::Raw),
    ] {
        if wanted {
            cmd.env(env, "1");
        } else {
            cmd.env_remove(env);
        }
    }
}

/// How the recording's header says tracepoint `id` was attached.
fn attached_as(rec: &Path, id: &str) -> Programs {
    let listed = |key: &str| header_list(rec, key).iter().any(|t| t == id);
    if listed("btf") {
        Programs::Btf
    } else if listed("raw") {
        Programs::Raw
    } else {
        Programs::Classic
    }
}

/// `chokepoint run` over the CPU burner (`threads` threads for 1.5 s), the command adjusted by
/// `env` first; returns the recording, the JSON result and the run's output, which succeeded.
fn run_burner(
    tag: &str,
    threads: &str,
    env: impl FnOnce(&mut Command),
) -> (PathBuf, PathBuf, Output) {
    let (rec, out) = (tmp(&format!("{tag}.rec")), tmp(&format!("{tag}.json")));
    let burner = chokepoint_tests::workload_bin("cpu-burn");
    let mut cmd = Command::new(chokepoint_bin());
    cmd.args([
        "run",
        "--out",
        rec.to_str().expect("utf-8"),
        "--json",
        out.to_str().expect("utf-8"),
        "--",
        burner.to_str().expect("utf-8"),
        threads,
        "1.5",
    ]);
    env(&mut cmd);
    let o = chokepoint_tests::output_within(&mut cmd, Duration::from_secs(60));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (rec, out, o)
}

/// Runs the two-thread burner under `chokepoint run`: (our cpu_seconds, its own rusage,
/// how sched_switch was attached).
fn burner_cpu_seconds(attempt: u32, programs: Programs) -> (f64, f64, Programs) {
    let (rec, out, o) = run_burner(&format!("burn-{attempt}"), "2", |cmd| force(cmd, programs));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let rusage: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("rusage_seconds="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("burner printed its rusage: {stdout}"));
    let r = json(&out);
    let p = r["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["comm"] == "cpu-burn")
        .expect("the burner is listed");
    assert_eq!(p["role"], "load-generator");
    let attached = attached_as(&rec, "sched/sched_switch");
    (
        p["cpu_seconds"].as_f64().expect("cpu_seconds"),
        rusage,
        attached,
    )
}

/// `cargo xtask bench --empty`'s floor: an empty program at each hook the real ones use, its
/// runs counted in `overhead`, the user-space stages timed as usual, and nothing left attached.
#[test]
fn the_benchmark_floor_attaches_empty_programs_at_the_same_hooks() {
    let before = program_ids();
    let (rec, out, _) = run_burner("empty", "1", |cmd| {
        cmd.env("CHOKEPOINT_EMPTY_PROGRAMS", "1");
        force(cmd, Programs::Btf);
    });
    assert!(
        header_list(&rec, "raw").contains(&"sched/sched_switch".to_string()),
        "the empty program takes the raw hook where the real one would (BTF or raw: the \
         same dispatch)"
    );
    let r = json(&out);
    let programs = r["overhead"]["programs"].as_object().expect("programs");
    let runs = |name: &str| programs.get(name).and_then(|p| p[1].as_u64()).unwrap_or(0);
    // Over 1.5 s of a busy thread there are switches and softirqs at least.
    assert!(runs("empty_raw") > 100, "{programs:?}");
    assert_eq!(runs("sched_switch"), 0, "no real program ran: {programs:?}");
    let stages = r["overhead"]["stages"].as_object().expect("stages");
    assert!(stages.contains_key("kernel_maps"), "{stages:?}");
    let left = left_behind(&before);
    assert!(left.is_empty(), "programs left loaded: {left:?}");
}

/// The tracepoints a recording's header lists under `probes.KEY` (`raw`: through the
/// tracepoint's arguments; `btf`: those of them as BTF tracepoints).
fn header_list(rec: &Path, key: &str) -> Vec<String> {
    let header: Value = std::fs::read_to_string(rec)
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| serde_json::from_str(l).ok()))
        .expect("recording header");
    header["probes"][key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_missing_command_is_named_and_nothing_stays_attached() {
    let before = program_ids();
    let o = run(&[
        "run",
        "--out",
        tmp("missing.rec").to_str().expect("utf-8"),
        "--",
        "no-such-load-tool",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no-such-load-tool"), "{err}");
    assert_eq!(left_behind(&before), Vec::<u64>::new());
}

#[test]
fn without_privileges_it_says_which_and_attaches_nothing() {
    let before = program_ids();
    let o = Command::new(tool("setpriv"))
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(chokepoint_bin())
        .args(["run", "--out", "/tmp/never-written.rec", "--", "true"])
        .output()
        .expect("setpriv runs");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("root") && err.contains("CAP_BPF"), "{err}");
    assert!(!Path::new("/tmp/never-written.rec").exists());
    assert_eq!(left_behind(&before), Vec::<u64>::new());
}

#[test]
fn ctrl_c_is_forwarded_and_still_yields_a_recording_and_a_verdict() {
    let before = program_ids();
    let (rec, out) = (tmp("sigint.rec"), tmp("sigint.json"));
    let child = Command::new(chokepoint_bin())
        .args([
            "run",
            "--out",
            rec.to_str().expect("utf-8"),
            "--json",
            out.to_str().expect("utf-8"),
        ])
        .args(["--", "sleep", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start");
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let o = child.wait_with_output().expect("wait");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped promptly"
    );
    assert_eq!(o.status.code(), Some(130), "killed by the forwarded SIGINT");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("verdict:"), "{stdout}");
    let r = json(&out);
    assert!(r["verdict"]["kind"].is_string());
    let text = std::fs::read_to_string(&rec).expect("recording");
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.contains("\"kind\":\"end\""))
    );
    assert_eq!(left_behind(&before), Vec::<u64>::new());
}

#[test]
fn analyze_replays_a_recording_offline_with_the_same_verdict() {
    let (rec, out1, out2) = (tmp("replay.rec"), tmp("replay1.json"), tmp("replay2.json"));
    let o = run(&[
        "run",
        "--out",
        rec.to_str().expect("utf-8"),
        "--json",
        out1.to_str().expect("utf-8"),
        "--",
        "sleep",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&[
        "analyze",
        rec.to_str().expect("utf-8"),
        "--json",
        out2.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&out1)["verdict"], json(&out2)["verdict"]);
}

#[test]
fn doctor_agrees_with_what_a_run_attaches() {
    let o = run(&["doctor", "--json"]);
    assert!(
        o.status.success(),
        "doctor: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let doctor: Value = serde_json::from_slice(&o.stdout).expect("doctor --json is JSON");
    let checks = doctor["checks"].as_array().expect("checks[]");
    let tracepoints: Vec<(String, bool)> = checks
        .iter()
        .filter_map(|c| {
            let id = c["id"].as_str()?.strip_prefix("tracepoint.")?.to_string();
            Some((id, c["ok"].as_bool()?))
        })
        .collect();
    assert!(
        tracepoints.len() >= 10,
        "doctor lists the probes' tracepoints: {tracepoints:?}"
    );

    let (rec, out) = (tmp("doctor.rec"), tmp("doctor.json"));
    let o = run(&[
        "run",
        "--out",
        rec.to_str().expect("utf-8"),
        "--json",
        out.to_str().expect("utf-8"),
        // Every family, including the per-packet programs that are off by default.
        "--packet-probes",
        "--",
        "true",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = json(&out);
    let attached: Vec<&str> = r["probes"]["attached"]
        .as_array()
        .expect("attached[]")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for (id, ok) in &tracepoints {
        assert_eq!(
            attached.contains(&id.as_str()),
            *ok,
            "doctor says {id} ok={ok}; run attached {attached:?}"
        );
    }
    // And the same facts from the kernel itself: kprobes iff tracefs has kprobe_events.
    let kprobes = checks
        .iter()
        .find(|c| c["id"] == "kprobes")
        .expect("kprobes check");
    assert_eq!(
        kprobes["ok"].as_bool(),
        Some(Path::new("/sys/kernel/tracing/kprobe_events").exists())
    );
}

/// The probe tiers on the real kernel, under real traffic (wrk against nginx, so softirqs run):
/// the default tier keeps the softirq (and connection-use and scheduler) programs attached one interval in
/// five and says which intervals it detached them in, the detached ones hold (next to) nothing, and the analysis
/// estimates the per-vector softirq time from the attached ones; `--probes all` detaches
/// nothing. Nothing stays attached after either.
#[test]
fn the_default_tier_duty_cycles_softirq_programs_and_all_keeps_them() {
    let nginx = Nginx::start();
    let before = program_ids();
    for tier in ["default", "all"] {
        let rec = tmp(&format!("tier-{tier}.rec"));
        let out = tmp(&format!("tier-{tier}.json"));
        let url = nginx.url();
        let r = run(&[
            "run",
            "--probes",
            tier,
            "--out",
            rec.to_str().unwrap(),
            "--force",
            "--json",
            out.to_str().unwrap(),
            "--",
            tool("wrk").to_str().unwrap(),
            "-t1",
            "-c4",
            "-d6s",
            &url,
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let lines: Vec<Value> = std::fs::read_to_string(&rec)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let tier_line = lines[0]["tier"].as_str().unwrap_or("").to_string();
        let intervals: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "interval").collect();
        assert!(intervals.len() >= 6, "{} intervals", intervals.len());
        let softirq_ns = |iv: &Value| -> u64 {
            iv["softirqs"]
                .as_object()
                .map(|m| m.values().filter_map(|v| v["ns"].as_u64()).sum())
                .unwrap_or(0)
        };
        let detached: Vec<bool> = intervals
            .iter()
            .map(|iv| iv["detached"].as_array().is_some_and(|d| !d.is_empty()))
            .collect();
        let analysis = json(&out);
        let by_vector = analysis["host"]["softirq_by_vector"]["NET_RX"]
            .as_f64()
            .unwrap_or(0.0);
        if tier == "all" {
            assert!(tier_line.starts_with("all:"), "{tier_line}");
            assert!(detached.iter().all(|d| !d), "{detached:?}");
        } else {
            assert!(tier_line.starts_with("default:"), "{tier_line}");
            // Interval 0 attached (the programs attach at start), 1 detached, then one in
            // five from interval 2: 2, 7, 12...
            assert_eq!(
                &detached[..6],
                &[false, true, false, true, true, true],
                "{detached:?}"
            );
            let attached_ns: Vec<u64> = intervals
                .iter()
                .zip(&detached)
                .filter(|(_, d)| !**d)
                .map(|(iv, _)| softirq_ns(iv))
                .collect();
            let detached_ns: Vec<u64> = intervals
                .iter()
                .zip(&detached)
                .filter(|(_, d)| **d)
                .map(|(iv, _)| softirq_ns(iv))
                .collect();
            let per_attached = attached_ns.iter().sum::<u64>() / attached_ns.len() as u64;
            let per_detached = detached_ns.iter().sum::<u64>() / detached_ns.len() as u64;
            // What lands in a detached interval is what ran between the read that closed the
            // attached interval before it and the detach (a classic tracepoint's detach takes
            // milliseconds), not its own softirqs: a few ms, against hundreds in an attached one.
            assert!(
                per_detached < per_attached / 10,
                "detached intervals hold {detached_ns:?} ns, an attached one {per_attached} ns"
            );
            assert!(
                analysis["limitations"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x
                        .as_str()
                        .is_some_and(|s| s.starts_with("probe tier `default`")))),
                "{}",
                analysis["limitations"]
            );
        }
        assert!(by_vector > 0.0, "{tier}: NET_RX share {by_vector}");
        // Connection use: rows only where its programs ran; wrk's four kept-alive connections
        // busy (closed loop) whichever intervals measured them.
        for (iv, d) in intervals.iter().zip(&detached) {
            let rows = iv["pools"].as_array().map_or(0, Vec::len)
                + iv["inbound"].as_array().map_or(0, Vec::len);
            let sock_detached = iv["detached"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "sock/sock_send_length"));
            assert_eq!(sock_detached, *d, "{}", iv["detached"]);
            if *d {
                assert_eq!(rows, 0, "{tier}: rows in a detached interval: {iv}");
            }
        }
        let wrk_pool = analysis["pools"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["process"] == "wrk"))
            .unwrap_or_else(|| panic!("{tier}: no wrk pool in {}", analysis["pools"]));
        // Its 4 connections are counted exactly; how busy they read depends on how much of
        // each turn wrk spends on its own CPU (2.46 in one CI run, 2 CPUs shared with nginx),
        // so only a closed loop's floor is asserted: requests outstanding most of the time.
        let size = wrk_pool["size"].as_f64().unwrap_or(0.0);
        let in_use = wrk_pool["in_use"].as_f64().unwrap_or(0.0);
        assert!(
            (3.7..=4.3).contains(&size) && (1.0..=4.05).contains(&in_use),
            "{tier}: wrk's 4 connections, size {size}, in use {in_use}: {wrk_pool}"
        );
        eprintln!(
            "tier {tier}: NET_RX softirq {:.1}% of the host",
            by_vector * 100.0
        );
        // On-CPU time is the kernel's own run-time total in every interval, whether the
        // scheduler programs ran in it or not: the processes' sum follows the host's busy time
        // from /proc/stat (an oracle the programs do not touch) in every interval, and the
        // scheduler's event figures are there only where its programs ran.
        let cpus = lines[0]["cpus"].as_f64().unwrap_or(1.0);
        for (i, (iv, d)) in intervals.iter().zip(&detached).enumerate() {
            let secs = (iv["end_unix_ns"].as_u64().unwrap_or(0)
                - iv["start_unix_ns"].as_u64().unwrap_or(0)) as f64
                / 1e9;
            let Some(busy) = iv["host"]["cpu"]["busy_fraction"].as_f64() else {
                continue;
            };
            let host = busy * cpus;
            let procs: f64 = iv["processes"].as_array().map_or(0.0, |ps| {
                ps.iter()
                    .filter_map(|p| p["oncpu_ns"].as_u64())
                    .sum::<u64>() as f64
            }) / 1e9
                / secs.max(1e-9);
            // Not the last (cut short) interval; a host under 0.2 cores says little.
            if i + 1 < intervals.len() && host > 0.2 {
                assert!(
                    (0.6 * host..=1.15 * host + 0.05).contains(&procs),
                    "{tier}: interval {i} (detached: {d}): processes {procs:.2} cores, host busy {host:.2}"
                );
            }
            let sched_detached = iv["detached"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "sched/sched_switch"));
            assert_eq!(sched_detached, *d, "{}", iv["detached"]);
        }
        let _ = std::fs::remove_file(&rec);
        let _ = std::fs::remove_file(&out);
    }
    assert_eq!(
        left_behind(&before),
        Vec::<u64>::new(),
        "programs left attached"
    );
}
