//! What a recording says while it runs: the first line (what attached, where it records, how
//! to stop) and a one-line status per interval (elapsed, connections/s, host CPU, the busiest
//! process against the cores it may use). Both go to stderr, so stdout stays the command's.
use std::{path::Path, time::Duration};

use crate::{
    cli::stderr_write,
    probes::loader::LEFT_OUT,
    recording::{Interval, ProbeStatus, Role},
};

/// "attached 23 programs (19 raw tracepoints, 19 of them BTF), 0 unavailable; recording to X;
/// Ctrl-C stops".
pub fn first_line(probes: &ProbeStatus, out: &Path, command: bool) -> String {
    let unavailable = probes
        .failed
        .iter()
        .filter(|f| f.reason != LEFT_OUT)
        .count();
    let left_out = probes.failed.len() - unavailable;
    let (raw, btf) = (probes.raw.len(), probes.btf.len());
    let mut s = format!(
        "chokepoint: attached {} programs ({raw} raw tracepoints",
        probes.attached.len()
    );
    if btf > 0 {
        s.push_str(&format!(", {btf} of them BTF"));
    }
    s.push_str(&format!("), {unavailable} unavailable"));
    if left_out > 0 {
        s.push_str(&format!(", {left_out} left out by choice"));
    }
    s.push_str(&format!("; recording to {}; ", out.display()));
    s.push_str(if command {
        "Ctrl-C stops the command and still analyses"
    } else {
        "Ctrl-C stops"
    });
    s
}

/// One interval in a line: `12s  4.1k conn/s  host CPU 87%  busiest nginx 1.62 of 2 cores`.
pub fn status_line(iv: &Interval, elapsed: Duration) -> String {
    let seconds = (iv.end_unix_ns.saturating_sub(iv.start_unix_ns)) as f64 / 1e9;
    let per_s = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    let opens = per_s(iv.tcp.active_opens.max(iv.tcp.passive_opens));
    let mut s = format!("{:>4}s  {} conn/s", elapsed.as_secs(), rate(opens));
    if let Some(cpu) = iv.host.as_ref().and_then(|h| h.cpu.as_ref()) {
        s.push_str(&format!("  host CPU {:.0}%", cpu.busy_fraction * 100.0));
    }
    let busiest = iv
        .processes
        .iter()
        .filter(|p| p.role != Role::Profiler && p.role != Role::Kernel)
        .max_by_key(|p| p.oncpu_ns);
    if let Some(p) = busiest
        && seconds > 0.0
        && p.oncpu_ns > 0
    {
        let cores = p.oncpu_ns as f64 / 1e9 / seconds;
        s.push_str(&format!("  busiest {} {cores:.2}", p.comm));
        if let Some(cap) = p.capacity_cores {
            s.push_str(&format!(" of {cap:.0} cores"));
        } else {
            s.push_str(" cores");
        }
    }
    s
}

/// A rate in three significant figures at most: `950`, `4.5k`, `12k`, `1.2M`.
fn rate(x: f64) -> String {
    match x {
        x if x >= 1e6 => format!("{:.1}M", x / 1e6),
        x if x >= 1e4 => format!("{:.0}k", x / 1e3),
        x if x >= 1e3 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

/// Draws the status where a person watches: redrawn in place on a terminal for `record`;
/// for `run`, where the command owns the terminal's current line (progress bars), a full
/// line every ten intervals instead. Nothing when stderr is not a terminal.
pub struct LiveStatus {
    enabled: bool,
    in_place: bool,
    shown: u64,
    drawn: bool,
}

impl LiveStatus {
    pub fn new(command: bool) -> Self {
        Self {
            enabled: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            in_place: !command,
            shown: 0,
            drawn: false,
        }
    }

    pub fn show(&mut self, iv: &Interval, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        self.shown += 1;
        let line = status_line(iv, elapsed);
        if self.in_place {
            stderr_write(format!("\r\x1b[2K{line}").as_bytes());
            self.drawn = true;
        } else if self.shown.is_multiple_of(10) {
            stderr_write(format!("chokepoint: {line}\n").as_bytes());
        }
    }

    /// Ends the in-place line so what follows starts on a line of its own.
    pub fn finish(&mut self) {
        if self.drawn {
            stderr_write(b"\n");
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::fixtures,
        recording::{Family, ProbeFailure, ProcessInterval},
    };

    #[test]
    fn the_first_line_counts_what_attached_and_what_did_not() {
        let mut probes = fixtures::header().probes;
        probes.raw = vec!["sched/sched_switch".into()];
        probes.failed = vec![
            ProbeFailure {
                id: "net/netif_rx".into(),
                family: Family::NetworkPath,
                reason: LEFT_OUT.into(),
            },
            ProbeFailure {
                id: "tcp/tcp_probe".into(),
                family: Family::ConnectionSetup,
                reason: "no such tracepoint".into(),
            },
        ];
        let line = first_line(&probes, Path::new("x.rec"), true);
        assert!(
            line.starts_with(
                "chokepoint: attached 5 programs (1 raw tracepoints), 1 unavailable, 1 left out by choice; recording to x.rec"
            ),
            "{line}"
        );
        assert!(line.ends_with("Ctrl-C stops the command and still analyses"));
        probes.btf = probes.raw.clone();
        let line = first_line(&probes, Path::new("x.rec"), true);
        assert!(
            line.contains("(1 raw tracepoints, 1 of them BTF), 1 unavailable"),
            "{line}"
        );
    }

    #[test]
    fn the_status_names_the_busiest_workload_against_its_cores() {
        let mut iv = fixtures::interval(0, 0.87);
        iv.end_unix_ns = iv.start_unix_ns + 2_000_000_000;
        iv.tcp.passive_opens = 9_000;
        let proc = |comm: &str, role, oncpu_ns| ProcessInterval {
            comm: comm.into(),
            role,
            oncpu_ns,
            capacity_cores: Some(2.0),
            ..fixtures::process(1, comm, role, &[])
        };
        iv.processes = vec![
            proc("chokepoint", Role::Profiler, 3_900_000_000),
            proc("nginx", Role::Server, 3_240_000_000),
            proc("wrk", Role::LoadGenerator, 1_000_000_000),
        ];
        let line = status_line(&iv, Duration::from_secs(12));
        assert_eq!(
            line,
            "  12s  4.5k conn/s  host CPU 87%  busiest nginx 1.62 of 2 cores"
        );
    }
}
