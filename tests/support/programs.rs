//! The BPF programs in the kernel, as bpftool and /proc see them: what a run left behind.
use std::{
    collections::HashSet,
    process::Command,
    time::{Duration, Instant},
};

use chokepoint_testbed::tool;
use serde_json::Value;

/// Ids of the BPF programs loaded in the kernel now.
pub fn program_ids() -> HashSet<u64> {
    let out = Command::new(tool("bpftool"))
        .args(["prog", "show", "-j"])
        .output()
        .expect("bpftool");
    let list: Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_u64())
        .collect()
}

/// Program ids some live process still holds an fd for (`prog_id:` in /proc/*/fdinfo).
pub fn held_program_ids() -> HashSet<u64> {
    let mut held = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return held;
    };
    for p in procs.flatten() {
        let Ok(fds) = std::fs::read_dir(p.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(text) = std::fs::read_to_string(fd.path()) {
                held.extend(
                    text.lines()
                        .filter_map(|l| l.strip_prefix("prog_id:"))
                        .filter_map(|v| v.trim().parse::<u64>().ok()),
                );
            }
        }
    }
    held
}

/// Programs loaded since `before` that no process holds any more: left behind (other
/// chokepoint runs on the same host hold theirs, so they do not count).
/// The kernel frees a program some time after the last fd closed (raw-tracepoint links wait
/// for an RCU grace period), so what is left is asked again for up to five seconds.
pub fn left_behind(before: &HashSet<u64>) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let held = held_program_ids();
        let left: Vec<u64> = program_ids()
            .into_iter()
            .filter(|id| !before.contains(id) && !held.contains(id))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
