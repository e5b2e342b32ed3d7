//! The probes' rows: which kernel programs attached (`Header::probes`), by family, and the
//! windows of run-time statistics that priced their runs (`OverheadInterval::windows`).
//! `probes::loader` and `probes::stats` fill them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a probe family measures; a failure to attach one names the family in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    ConnectionSetup,
    Cpu,
    /// Packets and bytes per device (`net:net_dev_xmit`, `net:netif_receive_skb`, `net:netif_rx`).
    NetworkPath,
    /// Per-connection request/response turns: connection pools.
    ConnectionUse,
}

/// A probe that could not be attached, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeFailure {
    pub id: String,
    pub family: Family,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeStatus {
    pub attached: Vec<String>,
    pub failed: Vec<ProbeFailure>,
    /// Tracepoints attached through their `_compat` programs (correct, somewhat slower, no
    /// blocked-system-call reasons), with why: the record layout differs from the built-in one,
    /// or the kernel refused the fast program.
    #[serde(default)]
    pub portable_reads: Vec<String>,
    /// Tracepoints attached through their raw-tracepoint programs (the kernel's own arguments,
    /// read at BTF offsets: no trace record is built, the cheapest way in).
    #[serde(default)]
    pub raw: Vec<String>,
    /// Those of `raw` attached as BTF tracepoints (`tp_btf`): the same arguments as typed
    /// pointers, so the program's reads of kernel memory are plain loads, not helper calls.
    /// The others in `raw` run as raw tracepoints (`raw_tp`): the kernel refused the BTF one,
    /// or `CHOKEPOINT_RAW_TRACEPOINTS` asked for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub btf: Vec<String>,
}

/// One window of run-time statistics: when, and per program what the kernel measured over it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsWindow {
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    /// `{program: [run time ns, runs]}`, programs that ran only.
    pub programs: BTreeMap<String, [u64; 2]>,
    /// The default tier's duty cycle had its programs detached (and the parts it pauses
    /// paused) through the window: its prices are for intervals in that state.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detached: bool,
}

impl StatsWindow {
    pub fn seconds(&self) -> f64 {
        self.end_unix_ns.saturating_sub(self.start_unix_ns) as f64 / 1e9
    }
}
