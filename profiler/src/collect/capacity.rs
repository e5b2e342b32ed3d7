//! How many cores a process may use: the fewest of its CPU affinity mask, the CFS quota of its
//! cgroup (or a parent's) and the online CPUs. "CPU-bound at 100%" means something different for a
//! process pinned to one core or capped at 0.2 cores than for one that may use the whole host.

use nix::sched::{CpuSet, sched_getaffinity};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::CollectError;
use super::cgroup::{cpu_cgroup_of, effective_quota};
use super::error::read_to_string;

const ONLINE: &str = "/sys/devices/system/cpu/online";

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// min(affinity_cores, quota_cores, host_cores).
    pub cores: f64,
    /// CPUs in the affinity mask of the process's main thread.
    pub affinity_cores: u32,
    /// The tightest quota on its cgroup or a parent, in cores; `None` when unlimited or unknown.
    pub quota_cores: Option<f64>,
    /// Online CPUs.
    pub host_cores: u32,
    /// Path of its CPU cgroup inside the hierarchy; `None` when no hierarchy holds it.
    pub cgroup: Option<String>,
    /// The cgroup that sets `quota_cores` (the process's own or a parent).
    pub quota_cgroup: Option<String>,
    pub limited_by: LimitedBy,
    /// Sources that could not be read (the quota is then unknown, and reported as `None`).
    pub errors: Vec<String>,
}

/// The cores `pid` may use, or `None` when the process does not exist.
pub fn process_capacity(pid: u32) -> Option<Capacity> {
    let affinity_cores = affinity_cores(pid)?;
    let mut errors = Vec::new();
    let host_cores = host_cores().unwrap_or_else(|e| {
        errors.push(e.to_string());
        affinity_cores
    });
    let (cgroup, quota) = match cpu_cgroup_of(pid) {
        Ok(Some(cgroup)) => match effective_quota(&cgroup) {
            Ok(quota) => (Some(cgroup.path), quota),
            Err(e) => {
                errors.push(e.to_string());
                (Some(cgroup.path), None)
            }
        },
        Ok(None) => (None, None),
        Err(CollectError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return None;
        }
        Err(e) => {
            errors.push(e.to_string());
            (None, None)
        }
    };
    let quota_cores = quota.as_ref().map(|q| q.cores);
    let (cores, limited_by) = combine(affinity_cores, quota_cores, host_cores);
    Some(Capacity {
        cores,
        affinity_cores,
        quota_cores,
        host_cores,
        cgroup,
        quota_cgroup: quota.map(|q| q.cgroup),
        limited_by,
        errors,
    })
}

/// The smallest limit and which one it is. A quota wins ties (it is set on purpose and throttles
/// even when equal to the CPUs); an affinity mask that allows every online CPU limits nothing.
fn combine(affinity: u32, quota: Option<f64>, host: u32) -> (f64, LimitedBy) {
    let (cpus, by) = if affinity < host {
        (affinity, LimitedBy::Affinity)
    } else {
        (host, LimitedBy::Host)
    };
    match quota {
        Some(quota) if quota <= f64::from(cpus) => (quota, LimitedBy::CgroupQuota),
        _ => (f64::from(cpus), by),
    }
}

/// CPUs in the affinity mask of `pid` (its main thread): sched_getaffinity, or the
/// `Cpus_allowed_list` of /proc/<pid>/status if that call is refused. `None` when the process is gone.
pub fn affinity_cores(pid: u32) -> Option<u32> {
    let raw = i32::try_from(pid).ok()?;
    match sched_getaffinity(Pid::from_raw(raw)) {
        Ok(set) => {
            let count = (0..CpuSet::count())
                .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
                .count();
            u32::try_from(count).ok()
        }
        Err(nix::errno::Errno::ESRCH) => None,
        Err(_) => status_cpus_allowed(pid),
    }
}

fn status_cpus_allowed(pid: u32) -> Option<u32> {
    let path = format!("/proc/{pid}/status");
    let text = read_to_string(&path).ok()?;
    let (index, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.starts_with("Cpus_allowed_list:"))?;
    let list = line.trim_start_matches("Cpus_allowed_list:");
    let cpus = parse_cpu_list(&path, index + 1, list).ok()?;
    u32::try_from(cpus.len()).ok()
}

/// Online CPUs, from /sys/devices/system/cpu/online.
pub fn host_cores() -> Result<u32, CollectError> {
    let cpus = parse_cpu_list(ONLINE, 1, &read_to_string(ONLINE)?)?;
    u32::try_from(cpus.len()).map_err(|_| CollectError::parse(ONLINE, 1, "too many CPUs"))
}

/// Parses the kernel's CPU list format (`0-1,3`, `0`, `0-3,8-11`) into CPU numbers, ascending
/// and without repeats. `line` is where `text` sits in `path`, for errors.
pub fn parse_cpu_list(path: &str, line: usize, text: &str) -> Result<Vec<u32>, CollectError> {
    let bad = |reason: String| CollectError::parse(path, line, reason);
    let number = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| bad(format!("{s:?} is not a CPU number")))
    };
    let mut cpus = Vec::new();
    let text = text.trim();
    if text.is_empty() {
        return Ok(cpus);
    }
    for part in text.split(',') {
        match part.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (number(low)?, number(high)?);
                if low > high {
                    return Err(bad(format!("range {part:?} runs backwards")));
                }
                // Guards against a corrupt line allocating billions of entries.
                if high - low > 1 << 16 {
                    return Err(bad(format!("range {part:?} is implausibly wide")));
                }
                cpus.extend(low..=high);
            }
            None => cpus.push(number(part)?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}
