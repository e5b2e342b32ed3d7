//! CPU truth end to end: real workloads with a designed cause, each recorded by the real probes;
//! the verdict must name that cause. Needs root; run through `cargo xtask test`.
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use chokepoint_tests::{run_chokepoint, workload_bin};
use serde_json::Value;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chokepoint-cpu-{}-{name}", std::process::id()))
}

/// A background workload, killed when dropped.
struct Background(Child);

impl Background {
    fn start(program: &str, args: &[&str]) -> Self {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        // Let it reach its steady state before recording.
        std::thread::sleep(Duration::from_millis(500));
        Self(child)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `chokepoint run -- CMD...` and returns the JSON result.
fn verdict_of(name: &str, command: &[&str]) -> Value {
    let (rec, out) = (tmp(&format!("{name}.rec")), tmp(&format!("{name}.json")));
    let mut args = vec![
        "run".to_string(),
        "--out".into(),
        rec.display().to_string(),
        "--json".into(),
        out.display().to_string(),
        "--".into(),
    ];
    args.extend(command.iter().map(|s| s.to_string()));
    let o = run_chokepoint(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).expect("JSON result written");
    serde_json::from_str(&text).expect("JSON")
}

fn kind(v: &Value) -> &str {
    v["verdict"]["kind"].as_str().unwrap_or("")
}

#[test]
fn threads_handing_one_lock_around_are_lock_contention() {
    let bin = workload_bin("lock-contend");
    let _w = Background::start(bin.to_str().expect("utf-8"), &["8", "8", "20"]);
    let v = verdict_of("lock", &["sleep", "4"]);
    assert_eq!(kind(&v), "lock-contention", "{}", v["verdict"]);
    let p = v["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["comm"] == "lock-contend")
        .expect("listed");
    let lock = p["offcpu_seconds"]["by_reason"]["lock"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(lock > 1.0, "blocked in futex: {}", p["offcpu_seconds"]);
    assert!(p["woken_by"][0]["relation"] == "self", "{}", p["woken_by"]);
    assert!(p["woken_by"][0]["offcpu_seconds"].as_f64().unwrap_or(0.0) > 0.5);
    // Per thread: each hot thread is handed the lock by other threads of its own process.
    let pid = p["pid"].as_u64().expect("pid");
    let threads = p["threads"].as_array().expect("threads");
    assert!(threads.len() >= 4, "{threads:?}");
    for t in threads {
        let first = &t["woken_by"][0];
        assert_eq!(first["pid"].as_u64(), Some(pid), "{t}");
        assert_ne!(first["tid"], t["tid"], "{t}");
        assert_eq!(first["relation"], "self", "{t}");
        assert!(first["wakes"].as_u64().unwrap_or(0) >= 10, "{t}");
        assert!(first["offcpu_seconds"].as_f64().unwrap_or(0.0) > 0.0, "{t}");
    }
}

#[test]
fn one_pegged_thread_with_a_spare_core_is_single_thread_saturated() {
    let bin = workload_bin("cpu-burn");
    let _w = Background::start(bin.to_str().expect("utf-8"), &["1", "30"]);
    let v = verdict_of("single", &["sleep", "4"]);
    assert_eq!(kind(&v), "single-thread-saturated", "{}", v["verdict"]);
}

#[test]
fn a_generator_using_every_core_is_load_generator_bound() {
    let bin = workload_bin("cpu-burn");
    let v = verdict_of("generator", &[bin.to_str().expect("utf-8"), "2", "3"]);
    assert_eq!(kind(&v), "load-generator-bound", "{}", v["verdict"]);
    assert_eq!(v["verdict"]["family"], "generator");
}

#[test]
fn synchronous_disk_writes_are_io_bound() {
    let file = tmp("dsync.dat");
    let target = format!("of={}", file.display());
    let _w = Background::start(
        "dd",
        &[
            "if=/dev/zero",
            &target,
            "bs=4k",
            "count=1000000",
            "oflag=dsync",
        ],
    );
    let v = verdict_of("io", &["sleep", "4"]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(kind(&v), "io-bound", "{}", v["verdict"]);
}

/// A v1 CPU cgroup with a quota, removed (after its tasks are killed) when dropped.
struct QuotaCgroup(PathBuf);

impl QuotaCgroup {
    fn new(cores: f64) -> Self {
        let dir = PathBuf::from(format!(
            "/sys/fs/cgroup/cpu/chokepoint-e2e-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create cgroup (v1 cpu controller mounted?)");
        std::fs::write(dir.join("cpu.cfs_period_us"), "100000").expect("period");
        std::fs::write(
            dir.join("cpu.cfs_quota_us"),
            format!("{}", (cores * 100_000.0) as u64),
        )
        .expect("quota");
        Self(dir)
    }

    fn add(&self, pid: u32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string()).expect("move into cgroup");
    }
}

impl Drop for QuotaCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn a_workload_held_by_its_cgroup_quota_is_cpu_throttled() {
    let cgroup = QuotaCgroup::new(0.3);
    let bin = workload_bin("cpu-burn");
    let w = Background::start(bin.to_str().expect("utf-8"), &["2", "30"]);
    cgroup.add(w.0.id());
    std::thread::sleep(Duration::from_millis(500));
    let v = verdict_of("throttled", &["sleep", "4"]);
    drop(w);
    assert_eq!(kind(&v), "cpu-throttled", "{}", v["verdict"]);
    let p = v["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["comm"] == "cpu-burn")
        .expect("listed");
    let cap = p["capacity_cores"].as_f64().expect("capacity read");
    assert!((cap - 0.3).abs() < 0.01, "capacity {cap}");
    assert_eq!(p["limited_by"], "cgroup-quota");
    assert!(p["throttled_periods"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn a_generator_pinned_to_one_core_is_load_generator_bound() {
    let bin = workload_bin("cpu-burn");
    let v = verdict_of(
        "pinned",
        &[
            "taskset",
            "-c",
            "0",
            bin.to_str().expect("utf-8"),
            "2",
            "1.5",
        ],
    );
    assert_eq!(kind(&v), "load-generator-bound", "{}", v["verdict"]);
    let cap = v["verdict"]["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .find(|e| e["metric"] == "generator.capacity_cores")
        .and_then(|e| e["value"].as_f64());
    assert_eq!(cap, Some(1.0), "one core by affinity");
}

/// Three threads of one process wait three ways for 3 s: `epoll_wait` ended by its own 5-ms
/// timeout, `select` ended by a pipe write from a sibling, and `nanosleep`.
const THREE_WAITS: &str = r#"
import os, select, threading, time
end = time.time() + 3
r, w = os.pipe()
def timed_out():
    ep = select.epoll()
    while time.time() < end:
        ep.poll(0.005)
def waker():
    while time.time() < end:
        time.sleep(0.005)
        os.write(w, b"x")
def woken():
    while time.time() < end:
        if select.select([r], [], [], 1.0)[0]:
            os.read(r, 1)
threads = [threading.Thread(target=f) for f in (timed_out, waker, woken)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"#;

#[test]
fn an_event_wait_its_own_timeout_ends_is_told_from_one_an_event_ends() {
    let (rec, out) = (tmp("waits.rec"), tmp("waits.json"));
    let o = run_chokepoint([
        "run",
        "--probes",
        "all",
        "--out",
        rec.to_str().expect("utf-8"),
        "--json",
        out.to_str().expect("utf-8"),
        "--",
        "python3",
        "-c",
        THREE_WAITS,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("JSON")).expect("JSON");
    let p = v["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["comm"] == "python3")
        .expect("listed");
    let reasons = &p["offcpu_seconds"]["by_reason"];
    let secs = |r: &str| reasons[r].as_f64().unwrap_or(0.0);
    // Each thread waits nearly all of its 3 s.
    assert!(secs("timeout") > 2.0, "epoll_wait timed out: {reasons}");
    assert!(secs("events") > 2.0, "select woken by the pipe: {reasons}");
    assert!(secs("sleep") > 2.0, "nanosleep stays a sleep: {reasons}");
    assert!(secs("timeout") < 3.5 && secs("events") < 3.5, "{reasons}");
}
