//! Faults end to end, with the real probes: a recording whose disk fills up mid-run, a
//! recorder killed with SIGKILL or stopped with SIGTERM, a load command killed by a signal, a
//! ring buffer that overflows, tracepoints missing or changed at start.
//! Needs root; run through `cargo xtask test`.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use chokepoint_tests::{
    chokepoint_bin, left_behind, output_within, program_ids, run_chokepoint, workload_bin,
};
use serde_json::Value;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chokepoint-e2e-{}-{name}", std::process::id()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Sends `signal` to `pid` (our own child).
fn kill(pid: u32, signal: i32) {
    // SAFETY: plain kill(2) of a child of this test.
    unsafe { libc::kill(pid as i32, signal) };
}

/// Waits until the recording at `path` holds at least `lines` lines (header, intervals).
fn wait_for_lines(path: &Path, lines: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(path).map_or(0, |t| t.lines().count()) < lines {
        assert!(
            Instant::now() < deadline,
            "{} never grew to {lines} lines",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted and removed when dropped.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = std::env::temp_dir().join(format!("chokepoint-e2e-{}-full", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mount -t tmpfs -o size={size} {}", dir.display());
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("result is JSON")
}

/// The disk fills after a few intervals (each is tens of KiB): the error names the file, the
/// session carries on in memory, and the verdict and the JSON cover the whole run.
#[test]
fn a_full_disk_costs_the_file_not_the_verdict() {
    let disk = SmallDisk::mount("64k");
    let rec = disk.dir.join("full.rec");
    let out = std::env::temp_dir().join(format!("chokepoint-e2e-{}-full.json", std::process::id()));
    let o = run_chokepoint([
        "record",
        "--out",
        rec.to_str().expect("utf-8"),
        "--duration",
        "8s",
        "--json",
        out.to_str().expect("utf-8"),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    let said = format!("cannot write recording {}", rec.display());
    assert!(
        stderr.contains(&said) && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert!(stderr.contains("is incomplete"), "{stderr}");
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("verdict:"), "{stdout}\n{stderr}");

    let r = json_file(&out);
    let _ = std::fs::remove_file(&out);
    assert!(r["verdict"]["kind"].is_string());
    let seconds = r["duration_seconds"].as_f64().expect("duration");
    assert!(seconds >= 7.0, "the whole run is analysed: {seconds} s");
    let limitations = r["limitations"].to_string();
    assert!(
        limitations.contains("writing it failed after"),
        "{limitations}"
    );

    // The file holds a readable prefix: its header and the intervals before the disk filled.
    let written = chokepoint::recording::Recording::read(&rec).expect("the prefix reads");
    assert!(written.end.is_none());
    assert!((written.intervals.len() as f64) < seconds - 1.0);
}

/// `kill -9` of the recorder: no cleanup code runs, yet the kernel frees every program with
/// the last fd, and what reached the file analyses (no end line, said so).
#[test]
fn kill_9_mid_recording_leaves_nothing_attached_and_a_readable_recording() {
    let before = program_ids();
    let rec = tmp("killed.rec");
    let mut child = Command::new(chokepoint_bin())
        .args(["record", "--force", "--out", rec.to_str().expect("utf-8")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    wait_for_lines(&rec, 4); // the header and three intervals
    kill(child.id(), libc::SIGKILL);
    let status = child.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert_eq!(
        left_behind(&before),
        Vec::<u64>::new(),
        "programs left attached"
    );

    let analyze = |path: &Path| -> Output {
        let json = path.with_extension("json");
        let o = run_chokepoint([
            "analyze",
            path.to_str().expect("utf-8"),
            "--json",
            json.to_str().expect("utf-8"),
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(json_file(&json)["verdict"]["kind"].is_string());
        let _ = std::fs::remove_file(json);
        o
    };
    let o = analyze(&rec);
    let said = text(&o.stdout) + &text(&o.stderr);
    assert!(said.contains("verdict:"), "{said}");
    assert!(
        said.contains("no end line: the recording was cut short"),
        "{said}"
    );

    // A kill between two writes leaves whole lines; one in the middle of a write leaves half
    // of one: cut the last interval in two to see that case too.
    let bytes = std::fs::read(&rec).expect("recording");
    let last_start = bytes[..bytes.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .expect("several lines");
    let cut = tmp("killed-cut.rec");
    let cut_at = last_start + (bytes.len() - last_start) / 2;
    std::fs::write(&cut, &bytes[..cut_at]).expect("write");
    let o = analyze(&cut);
    let said = text(&o.stdout) + &text(&o.stderr);
    assert!(said.contains("last line is truncated"), "{said}");
    let _ = std::fs::remove_file(&rec);
    let _ = std::fs::remove_file(&cut);
}

/// SIGTERM (what a service manager or `timeout` sends) is forwarded to the command like
/// Ctrl-C; the recording is flushed to its end line, analysed, and everything detached.
#[test]
fn sigterm_is_forwarded_flushed_and_detached() {
    let before = program_ids();
    let (rec, out) = (tmp("sigterm.rec"), tmp("sigterm.json"));
    let child = Command::new(chokepoint_bin())
        .args(["run", "--force", "--out", rec.to_str().expect("utf-8")])
        .args(["--json", out.to_str().expect("utf-8"), "--", "sleep", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    wait_for_lines(&rec, 3);
    kill(child.id(), libc::SIGTERM);
    let started = Instant::now();
    let o = child.wait_with_output().expect("wait");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped promptly"
    );
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(128 + 15), "{stderr}");
    assert!(
        stderr.contains("`sleep` was killed by signal 15 (SIGTERM)"),
        "{stderr}"
    );
    assert!(text(&o.stdout).contains("verdict:"), "{}", text(&o.stdout));
    let r = json_file(&out);
    assert!(r["verdict"]["kind"].is_string());
    assert_eq!(r["exit_signal"], 15);
    let recording = std::fs::read_to_string(&rec).expect("recording");
    let last = recording.lines().last().unwrap_or_default();
    assert!(last.contains("\"kind\":\"end\""), "{last}");
    assert_eq!(left_behind(&before), Vec::<u64>::new());
    let _ = std::fs::remove_file(&rec);
    let _ = std::fs::remove_file(&out);
}

/// A load command that dies of a signal is not a success and not a plain failure: the signal is
/// named on stderr, in the exit status (128 + N) and in the JSON.
#[test]
fn a_load_command_killed_by_a_signal_is_reported_as_such() {
    let (rec, out) = (tmp("sigkilled.rec"), tmp("sigkilled.json"));
    let o = run_chokepoint([
        "run",
        "--force",
        "--out",
        rec.to_str().expect("utf-8"),
        "--json",
        out.to_str().expect("utf-8"),
        "--",
        "sh",
        "-c",
        "sleep 1; kill -KILL $$",
    ]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(128 + 9), "{stderr}");
    assert!(
        stderr.contains("`sh` was killed by signal 9 (SIGKILL)"),
        "{stderr}"
    );
    assert!(text(&o.stdout).contains("verdict:"));
    let r = json_file(&out);
    assert_eq!(r["exit_signal"], 9);
    assert!(r["exit_code"].is_null());
    let _ = std::fs::remove_file(&rec);
    let _ = std::fs::remove_file(&out);
}

/// A ring buffer too small for a thread storm (a page: about 85 fork/exit events, against the
/// 256 KiB built in, which this host's storms never fill): what did not fit is counted per
/// interval in the recording, summed in the JSON and shown in the overhead line.
#[test]
fn an_overflowing_ring_buffer_is_counted_and_shown() {
    let (rec, out) = (tmp("ring.rec"), tmp("ring.json"));
    let storm = workload_bin("thread-storm");
    let mut cmd = Command::new(chokepoint_bin());
    cmd.env("CHOKEPOINT_TEST_RING_BYTES", "4096")
        .args(["run", "--force", "--out", rec.to_str().expect("utf-8")])
        .args(["--json", out.to_str().expect("utf-8"), "--"])
        .arg(&storm)
        .args(["2", "20000"]);
    let o = output_within(&mut cmd, Duration::from_secs(120));
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(stdout.contains("threads=40000"), "{stdout}");
    let r = json_file(&out);
    let lost = r["overhead"]["lost_events"].as_u64().expect("lost_events");
    let forks = r["overhead"]["programs"]["sched_process_fork"][1]
        .as_u64()
        .expect("fork program runs");
    assert!(forks >= 40_000, "every fork ran the program: {forks}");
    assert!(lost > 0, "4 KiB cannot hold {forks} forks and their exits");
    let recorded: u64 = std::fs::read_to_string(&rec)
        .expect("recording")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l["overhead"]["ring_buffer_full"].as_u64())
        .sum();
    assert!(
        recorded > 0 && recorded <= lost,
        "{recorded} in the file, {lost} in the JSON"
    );
    let flat = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(!flat.contains("; 0 events lost"), "{stdout}");
    assert!(flat.contains("events lost"), "{stdout}");
    let _ = std::fs::remove_file(&rec);
    let _ = std::fs::remove_file(&out);
}

/// A tracepoint missing (its tracefs directory empty) and one whose format changed (a field
/// renamed), seen through bind mounts in a mount namespace of chokepoint's own: each is named
/// with its reason, and the rest attach and run to a verdict.
#[test]
fn a_missing_or_changed_tracepoint_is_named_and_the_rest_runs() {
    let events = Path::new("/sys/kernel/tracing/events");
    let real = events.join("tcp/tcp_retransmit_skb/format");
    let format = std::fs::read_to_string(&real).expect("tracefs mounted");
    assert!(format.contains("field:int state;"), "{format}");
    let changed = tmp("changed.format");
    std::fs::write(
        &changed,
        format.replace("field:int state;", "field:int state_was;"),
    )
    .expect("write");
    let empty = tmp("vanished");
    std::fs::create_dir_all(&empty).expect("dir");
    let (rec, out) = (tmp("tracepoints.rec"), tmp("tracepoints.json"));
    let script = format!(
        "mount --bind '{}' '{}' && mount --bind '{}' '{}' && exec \"$@\"",
        changed.display(),
        real.display(),
        empty.display(),
        events.join("tcp/tcp_send_reset").display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
    ])
    .arg(chokepoint_bin())
    .args(["run", "--force", "--out", rec.to_str().expect("utf-8")])
    .args(["--json", out.to_str().expect("utf-8"), "--", "sleep", "2"]);
    let o = output_within(&mut cmd, Duration::from_secs(60));
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("2 unavailable"), "{stderr}");
    assert!(text(&o.stdout).contains("verdict:"));
    let r = json_file(&out);
    let reason = |id: &str| -> String {
        r["probes"]["failed"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["id"] == id)
            .and_then(|f| f["reason"].as_str())
            .unwrap_or_else(|| panic!("{id} not among the failed: {}", r["probes"]))
            .to_string()
    };
    assert!(reason("tcp/tcp_retransmit_skb").contains("no field `state`"));
    assert!(reason("tcp/tcp_send_reset").contains("not available"));
    let attached = r["probes"]["attached"].to_string();
    for id in [
        "sched/sched_switch",
        "sock/inet_sock_set_state",
        "tcp/tcp_receive_reset",
    ] {
        assert!(attached.contains(id), "{id} attached: {attached}");
    }
    let limitations = r["limitations"].to_string();
    assert!(
        limitations.contains("tcp/tcp_send_reset not attached"),
        "{limitations}"
    );
    // The mounts were chokepoint's namespace's only.
    assert!(
        std::fs::read_to_string(&real)
            .expect("format")
            .contains("field:int state;")
    );
    for path in [&rec, &out, &changed] {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_dir(&empty);
}
