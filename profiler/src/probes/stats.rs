//! The kernel's BPF run-time statistics (run_time_ns / run_cnt per program): the probes' own
//! cost, measured. Enabled through BPF_ENABLE_STATS, whose effect ends when the returned guard
//! (a file descriptor) is dropped; where that syscall is missing, through the
//! `kernel.bpf_stats_enabled` sysctl, restored by the guard.
use std::{fs, os::fd::OwnedFd};

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

pub enum StatsGuard {
    Fd(#[allow(dead_code, reason = "held for its Drop")] OwnedFd),
    Sysctl { previous: String },
}

impl StatsGuard {
    pub fn enable() -> Result<Self, String> {
        match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
            Ok(fd) => Ok(Self::Fd(fd)),
            Err(syscall) => {
                let previous = fs::read_to_string(SYSCTL).map_err(|e| {
                    format!("BPF_ENABLE_STATS failed ({syscall}) and {SYSCTL}: {e}")
                })?;
                fs::write(SYSCTL, "1").map_err(|e| {
                    format!("BPF_ENABLE_STATS failed ({syscall}) and writing {SYSCTL}: {e}")
                })?;
                Ok(Self::Sysctl {
                    previous: previous.trim().to_string(),
                })
            }
        }
    }
}

impl Drop for StatsGuard {
    fn drop(&mut self) {
        if let Self::Sysctl { previous } = self {
            let _ = fs::write(SYSCTL, previous.as_bytes());
        }
    }
}
