//! The reference observers a benchmark round runs beside chokepoint: bpftrace counting the
//! tracepoints chokepoint's default programs attach to (the anchor the issue measures
//! against), and the host's busy CPU read from `/proc/stat` for the fixed-rate method.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::{Recorder, SETTLE, read};

/// Counting only, one per-CPU count map per tracepoint: the cheapest thing bpftrace does at
/// the hooks chokepoint's default programs use (connection setup and use, scheduler, softirq,
/// drops).
pub const BPFTRACE_SCRIPT: &str = "\
tracepoint:sock:inet_sock_set_state { @set_state = count(); }
tracepoint:tcp:tcp_retransmit_skb { @retransmit = count(); }
tracepoint:skb:kfree_skb { @kfree_skb = count(); }
tracepoint:sock:sock_send_length { @send = count(); }
tracepoint:sock:sock_recv_length { @recv = count(); }
tracepoint:sched:sched_switch { @switch = count(); }
tracepoint:sched:sched_waking { @waking = count(); }
tracepoint:sched:sched_wakeup_new { @wakeup_new = count(); }
tracepoint:irq:softirq_entry { @softirq_entry = count(); }
tracepoint:irq:softirq_exit { @softirq_exit = count(); }
";

/// How many tracepoints the script attaches (printed beside its figures).
pub fn bpftrace_probes() -> usize {
    BPFTRACE_SCRIPT.lines().filter(|l| l.contains('{')).count()
}

/// One run of `workload` beside bpftrace running [`BPFTRACE_SCRIPT`], attached and settled
/// like every other observer; stopped with SIGINT after it.
pub fn with_bpftrace<T>(
    bpftrace: &Path,
    dir: &Path,
    round: u32,
    workload: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let log = dir.join(format!("round-{round}-bpftrace.log"));
    let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut tracer = Recorder(
        Command::new(bpftrace)
            .args(["-e", BPFTRACE_SCRIPT])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", bpftrace.display()))?,
    );
    // bpftrace says "Attaching N probes..." once it is about to attach them.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !read(&log).contains("Attaching") {
        if let Some(status) = tracer.0.try_wait()? {
            bail!(
                "bpftrace exited ({status}) before attaching:\n{}",
                read(&log)
            );
        }
        if Instant::now() > deadline {
            bail!("bpftrace did not attach in 60 s:\n{}", read(&log));
        }
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(SETTLE);
    let result = workload();
    tracer.stop()?;
    result
}

/// Busy and total jiffies of the whole host (`/proc/stat`'s `cpu` line; idle and iowait are
/// not busy).
pub fn host_jiffies() -> anyhow::Result<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_cpu_line(&stat).context("/proc/stat has no cpu line")
}

pub fn parse_cpu_line(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    Some((total - idle, total))
}

/// What one fixed-rate run gave: requests served per second and the host's busy share.
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedRun {
    pub requests_per_s: f64,
    pub busy_share: f64,
}

impl FixedRun {
    /// Host CPU per request, µs (all CPUs together).
    pub fn us_per_request(&self, cpus: usize) -> f64 {
        self.busy_share * cpus as f64 * 1e6 / self.requests_per_s.max(1e-9)
    }
}

/// `hey` at a fixed offered rate: `workers` clients each at `rate / workers` requests a
/// second, every request a new connection, for `seconds`; the host's busy share over the run.
pub fn hey_fixed(
    hey: &Path,
    url: &str,
    rate: u32,
    workers: u32,
    seconds: u32,
) -> anyhow::Result<FixedRun> {
    let per_worker = (rate as f64 / workers as f64).max(1.0);
    let before = host_jiffies()?;
    let out = Command::new(hey)
        .args(["-z", &format!("{seconds}s"), "-c", &workers.to_string()])
        .args(["-q", &format!("{per_worker:.0}"), "-disable-keepalive", url])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", hey.display()))?;
    let after = host_jiffies()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let requests_per_s =
        parse_hey_rate(&text).with_context(|| format!("hey printed no Requests/sec:\n{text}"))?;
    let busy = (after.0 - before.0) as f64 / (after.1 - before.1).max(1) as f64;
    Ok(FixedRun {
        requests_per_s,
        busy_share: busy,
    })
}

pub fn parse_hey_rate(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

pub fn bpftrace() -> Option<PathBuf> {
    chokepoint_testbed::try_tool("bpftrace")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_line_gives_busy_and_total() {
        let stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_cpu_line(stat), Some((160, 1000)));
        assert_eq!(parse_cpu_line("intr 5\n"), None);
    }

    #[test]
    fn hey_rate_and_cost_per_request() {
        let text = "Summary:\n  Total:\t5.0012 secs\n  Requests/sec:\t2998.1234\n";
        assert_eq!(parse_hey_rate(text), Some(2998.1234));
        let run = FixedRun {
            requests_per_s: 2000.0,
            busy_share: 0.5,
        };
        assert!((run.us_per_request(2) - 500.0).abs() < 1e-9);
    }

    #[test]
    fn the_script_counts_at_every_hook_it_names() {
        assert_eq!(bpftrace_probes(), 10);
        assert!(
            BPFTRACE_SCRIPT
                .lines()
                .all(|l| l.is_empty() || l.contains("count()"))
        );
    }
}
