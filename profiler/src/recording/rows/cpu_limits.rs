//! What limits a process's CPU: which limit sets its capacity (`ProcessInterval`), and the CFS
//! throttling of its cgroup (`Interval::cgroups`). `collect::capacity` and `collect::cgroup`
//! fill them from the affinity mask and the cgroup files.

use serde::{Deserialize, Serialize};

/// Which limit sets `Capacity::cores`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitedBy {
    /// The affinity mask allows fewer CPUs than are online (taskset, cpuset cgroup).
    Affinity,
    /// A CFS bandwidth quota (`cpu.cfs_quota_us`, `cpu.max`) on its cgroup or a parent.
    CgroupQuota,
    /// Nothing but the online CPUs.
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// What one watched cgroup did between two `ThrottleCollector::sample` calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupThrottle {
    /// Path inside the hierarchy (`/system.slice/nginx.service`).
    pub cgroup: String,
    pub version: CgroupVersion,
    /// The watched processes in it that are still alive, ascending.
    pub pids: Vec<u32>,
    /// Wall time since this cgroup's previous sample (0 for its first).
    pub elapsed_seconds: f64,
    /// CFS periods in which the limiting cgroup had runnable tasks.
    pub nr_periods: u64,
    /// Periods in which it ran out of quota.
    pub nr_throttled: u64,
    /// Time its tasks were held off the CPU for lack of quota, ns.
    pub throttled_time_ns: u64,
    /// CPU time used by the cgroup (all CPUs), ns; `None` when no counter covers the same cgroup.
    pub usage_ns: Option<u64>,
    /// The tightest quota on the cgroup or a parent, in cores; `None` when unlimited.
    pub quota_cores: Option<f64>,
    /// The cgroup that sets that quota; the throttling counters are read from it, since that is
    /// where the kernel counts them. `None` without a quota (counters then from `cgroup` itself).
    pub quota_cgroup: Option<String>,
    /// Problems this interval; a cgroup that disappeared is reported here once, then dropped.
    pub errors: Vec<String>,
}
