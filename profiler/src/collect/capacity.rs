//! How many cores a process may use: the fewest of its CPU affinity mask, the CFS quota of its
//! cgroup (or a parent's) and the online CPUs. "CPU-bound at 100%" means something different for a
//! process pinned to one core or capped at 0.2 cores than for one that may use the whole host.

use nix::sched::{CpuSet, sched_getaffinity};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::CollectError;
use super::cgroup::{cpu_cgroup_of, effective_quota};
use super::error::read_to_string;
use crate::recording::LimitedBy;

const ONLINE: &str = "/sys/devices/system/cpu/online";

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

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};

    use super::*;

    #[test]
    fn cpu_lists() {
        let parse = |text: &str| parse_cpu_list("/proc/1/status", 9, text).expect(text);
        assert_eq!(parse("0-1,3"), vec![0, 1, 3]);
        assert_eq!(parse("0\n"), vec![0]);
        assert_eq!(parse("\t0-3,8-11"), vec![0, 1, 2, 3, 8, 9, 10, 11]);
        assert_eq!(parse("2,0-2"), vec![0, 1, 2]);
        assert_eq!(parse(""), Vec::<u32>::new());
        for bad in ["3-1", "a", "0-", "1,,2", "-1", "0-99999999"] {
            let err = parse_cpu_list("/proc/1/status", 9, bad).expect_err(bad);
            assert!(err.to_string().starts_with("/proc/1/status:9:"), "{err}");
        }
    }

    #[test]
    fn combine_picks_the_smallest_limit() {
        assert_eq!(combine(2, None, 2), (2.0, LimitedBy::Host));
        assert_eq!(combine(1, None, 4), (1.0, LimitedBy::Affinity));
        assert_eq!(combine(4, Some(0.2), 4), (0.2, LimitedBy::CgroupQuota));
        assert_eq!(combine(1, Some(1.5), 4), (1.0, LimitedBy::Affinity));
        assert_eq!(combine(4, Some(8.0), 2), (2.0, LimitedBy::Host));
        // A quota equal to the CPUs still throttles bursts: it is named.
        assert_eq!(combine(2, Some(2.0), 2), (2.0, LimitedBy::CgroupQuota));
        // A mask naming CPUs that are offline is no limit.
        assert_eq!(combine(8, None, 2), (2.0, LimitedBy::Host));
    }

    #[test]
    fn limited_by_is_kebab_case_json() {
        let json =
            serde_json::to_string(&[LimitedBy::Affinity, LimitedBy::CgroupQuota, LimitedBy::Host])
                .expect("serializes");
        assert_eq!(json, r#"["affinity","cgroup-quota","host"]"#);
    }

    fn affinity_count(pid: u32) -> u32 {
        let set = sched_getaffinity(Pid::from_raw(pid as i32)).expect("sched_getaffinity");
        (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).expect("in range"))
            .count() as u32
    }

    #[test]
    fn live_capacity_of_self() {
        let me = std::process::id();
        let capacity = process_capacity(me).expect("we exist");
        let online = std::fs::read_to_string(ONLINE).expect("online CPUs");
        let online = parse_cpu_list(ONLINE, 1, &online).expect("parses").len() as u32;
        assert_eq!(capacity.host_cores, online);
        assert_eq!(capacity.affinity_cores, affinity_count(me));
        let status = std::fs::read_to_string(format!("/proc/{me}/status")).expect("status");
        assert_eq!(
            status_cpus_allowed(me),
            Some(affinity_count(me)),
            "{status}"
        );
        let floor = f64::from(capacity.affinity_cores.min(capacity.host_cores));
        let expected = capacity.quota_cores.map_or(floor, |q| q.min(floor));
        assert_eq!(capacity.cores, expected);
        assert!(capacity.errors.is_empty(), "{:?}", capacity.errors);
    }

    #[test]
    fn missing_process_has_no_capacity() {
        assert_eq!(process_capacity(5_000_000), None);
        assert_eq!(affinity_cores(5_000_000), None);
    }

    struct Reaped(Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn live_affinity_pinned_to_cpu0() {
        let child = Reaped(
            Command::new("sleep")
                .arg("30")
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn sleep"),
        );
        let pid = child.0.id();
        let mut only_cpu0 = CpuSet::new();
        only_cpu0.set(0).expect("cpu 0 in range");
        nix::sched::sched_setaffinity(Pid::from_raw(pid as i32), &only_cpu0)
            .expect("set the child's affinity");
        let capacity = process_capacity(pid).expect("child alive");
        eprintln!("capacity of a child pinned to CPU 0: {capacity:?}");
        assert_eq!(capacity.affinity_cores, 1);
        let expected = capacity.quota_cores.map_or(1.0, |q| q.min(1.0));
        assert_eq!(capacity.cores, expected);
        if capacity.host_cores < 2 {
            eprintln!("one online CPU: the pin limits nothing, limited_by not checked");
            return;
        }
        match capacity.quota_cores {
            Some(q) if q <= 1.0 => assert_eq!(capacity.limited_by, LimitedBy::CgroupQuota),
            _ => assert_eq!(capacity.limited_by, LimitedBy::Affinity),
        }
    }
}
