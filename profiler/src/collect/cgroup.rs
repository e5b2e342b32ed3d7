//! Control groups of the processes of interest: where a process's CPU controller files are (cgroup
//! v1 or v2), the CFS quota that binds it (its own or a parent's), and per-interval throttling.
//! The sources are /proc/<pid>/cgroup, /proc/self/mountinfo and the cgroup files themselves.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Instant;

use procfs::FromRead;
use serde::{Deserialize, Serialize};

use super::CollectError;
use super::error::read_to_string;

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Options that can appear among a v1 cgroup mount's super options but are not controllers.
const V1_MOUNT_OPTIONS: [&str; 9] = [
    "rw",
    "ro",
    "xattr",
    "noprefix",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
    "nofavordynmods",
    "release_agent",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// A cgroup hierarchy mounted in our mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub version: CgroupVersion,
    /// v1: the controllers bound to the hierarchy (`cpu`, `cpuacct`, `name=systemd`, ...); v2: empty.
    pub controllers: Vec<String>,
    /// The directory of the hierarchy this mount shows (`/` unless only a sub-tree is mounted).
    pub root: String,
    pub mount_point: PathBuf,
}

impl CgroupMount {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    /// The directory of the cgroup `path` (as /proc/<pid>/cgroup names it) under this mount, or
    /// `None` when the cgroup lies outside the mounted sub-tree.
    fn dir_of(&self, path: &str) -> Option<PathBuf> {
        let root = self.root.trim_end_matches('/');
        let rest = path.strip_prefix(root)?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        let rest = rest.trim_start_matches('/');
        if rest.is_empty() {
            return Some(self.mount_point.clone());
        }
        Some(self.mount_point.join(rest))
    }
}

/// Parses mountinfo text (`/proc/self/mountinfo`) and keeps the cgroup (v1) and cgroup2 mounts.
pub fn parse_mountinfo(path: &str, text: &str) -> Result<Vec<CgroupMount>, CollectError> {
    let mut mounts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let info = procfs::process::MountInfo::from_line(line)
            .map_err(|e| CollectError::parse(path, index + 1, format!("bad mount line: {e}")))?;
        let version = match info.fs_type.as_str() {
            "cgroup" => CgroupVersion::V1,
            "cgroup2" => CgroupVersion::V2,
            _ => continue,
        };
        let mut controllers: Vec<String> = match version {
            CgroupVersion::V1 => info
                .super_options
                .iter()
                .filter(|(key, _)| !V1_MOUNT_OPTIONS.contains(&key.as_str()))
                .map(|(key, value)| match value {
                    Some(value) => format!("{key}={value}"),
                    None => key.clone(),
                })
                .collect(),
            CgroupVersion::V2 => Vec::new(),
        };
        controllers.sort();
        mounts.push(CgroupMount {
            version,
            controllers,
            root: info.root,
            mount_point: info.mount_point,
        });
    }
    Ok(mounts)
}

/// The cgroup mounts of our mount namespace.
pub fn cgroup_mounts() -> Result<Vec<CgroupMount>, CollectError> {
    parse_mountinfo(MOUNTINFO, &read_to_string(MOUNTINFO)?)
}

/// One line of /proc/<pid>/cgroup: `4:cpu,cpuacct:/docker/abc` (v1) or `0::/user.slice` (v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// v1 hierarchy id; 0 for the v2 hierarchy.
    pub hierarchy: u32,
    /// v1 controllers of the hierarchy; empty for v2.
    pub controllers: Vec<String>,
    /// The cgroup's path inside its hierarchy.
    pub path: String,
}

/// Parses /proc/<pid>/cgroup text.
pub fn parse_proc_cgroup(path: &str, text: &str) -> Result<Vec<Membership>, CollectError> {
    let mut memberships = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = index + 1;
        // procfs skips a line without three fields silently; such a line is malformed here.
        if line.splitn(3, ':').count() != 3 {
            return Err(CollectError::parse(
                path,
                line_no,
                format!("expected `hierarchy:controllers:path`, found {line:?}"),
            ));
        }
        let parsed = procfs::ProcessCGroups::from_read(line.as_bytes())
            .map_err(|e| CollectError::parse(path, line_no, format!("bad cgroup line: {e}")))?;
        memberships.extend(parsed.0.into_iter().map(|group| Membership {
            hierarchy: group.hierarchy,
            controllers: group.controllers,
            path: group.pathname,
        }));
    }
    Ok(memberships)
}

/// Where one process's CPU controller files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuCgroup {
    pub version: CgroupVersion,
    /// Path inside the hierarchy, as /proc/<pid>/cgroup shows it (`/chokepoint-test-42`).
    pub path: String,
    /// The cgroup's directory: v1 `cpu.cfs_quota_us`, `cpu.stat`; v2 `cpu.max`, `cpu.stat`.
    pub dir: PathBuf,
    /// Mount point of the hierarchy: the walk up through parents stops here.
    pub mount_point: PathBuf,
    /// Directory with a CPU usage counter for the same cgroup: v2 `dir` (cpu.stat `usage_usec`); v1
    /// the cpuacct directory (`cpuacct.usage`) when cpuacct shares the cpu hierarchy or the process
    /// has the same path in both. `None` otherwise: a different cgroup's usage would mislead.
    pub usage_dir: Option<PathBuf>,
}

/// Finds the cgroup that controls CPU for a process: the v1 hierarchy with the `cpu` controller
/// when one is mounted and the process has a line for it, else the v2 hierarchy.
pub fn locate_cpu_cgroup(mounts: &[CgroupMount], memberships: &[Membership]) -> Option<CpuCgroup> {
    let v1_line = |controller: &str| {
        memberships
            .iter()
            .find(|m| m.hierarchy != 0 && m.controllers.iter().any(|c| c == controller))
    };
    let v1_mount = |controller: &str, path: &str| {
        mounts
            .iter()
            .filter(|m| m.version == CgroupVersion::V1 && m.has(controller))
            .find_map(|m| Some((m, m.dir_of(path)?)))
    };
    if let Some(cpu) = v1_line("cpu")
        && let Some((mount, dir)) = v1_mount("cpu", &cpu.path)
    {
        let usage_dir = if mount.has("cpuacct") {
            Some(dir.clone())
        } else {
            v1_line("cpuacct")
                .filter(|acct| acct.path == cpu.path)
                .and_then(|acct| v1_mount("cpuacct", &acct.path))
                .map(|(_, dir)| dir)
        };
        return Some(CpuCgroup {
            version: CgroupVersion::V1,
            path: cpu.path.clone(),
            dir,
            mount_point: mount.mount_point.clone(),
            usage_dir,
        });
    }
    let unified = memberships
        .iter()
        .find(|m| m.hierarchy == 0 && m.controllers.is_empty())?;
    let (mount, dir) = mounts
        .iter()
        .filter(|m| m.version == CgroupVersion::V2)
        .find_map(|m| Some((m, m.dir_of(&unified.path)?)))?;
    Some(CpuCgroup {
        version: CgroupVersion::V2,
        path: unified.path.clone(),
        usage_dir: Some(dir.clone()),
        dir,
        mount_point: mount.mount_point.clone(),
    })
}

/// The CPU cgroup of `pid`. `Ok(None)` when no mounted hierarchy holds it; an error when
/// /proc/<pid>/cgroup cannot be read (the process is gone) or a file is malformed.
pub fn cpu_cgroup_of(pid: u32) -> Result<Option<CpuCgroup>, CollectError> {
    let file = format!("/proc/{pid}/cgroup");
    let memberships = parse_proc_cgroup(&file, &read_to_string(&file)?)?;
    Ok(locate_cpu_cgroup(&cgroup_mounts()?, &memberships))
}

/// A CFS bandwidth limit and the cgroup that sets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    /// quota / period: how many CPUs' worth of time the cgroup may use per period.
    pub cores: f64,
    /// Path (inside the hierarchy) of the cgroup whose limit this is.
    pub cgroup: String,
    pub dir: PathBuf,
}

/// Parses v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`; a negative quota (-1) means no limit.
pub fn parse_v1_quota(
    quota_path: &str,
    quota_text: &str,
    period_path: &str,
    period_text: &str,
) -> Result<Option<f64>, CollectError> {
    let quota: i64 = parse_single(quota_path, quota_text)?;
    if quota < 0 {
        return Ok(None);
    }
    let period: i64 = parse_single(period_path, period_text)?;
    if period <= 0 {
        return Err(CollectError::parse(
            period_path,
            1,
            format!("period {period} is not positive"),
        ));
    }
    Ok(Some(quota as f64 / period as f64))
}

/// Parses v2 `cpu.max`: `max 100000` (no limit) or `20000 100000` (quota and period, µs).
pub fn parse_cpu_max(path: &str, text: &str) -> Result<Option<f64>, CollectError> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let (quota, period) = match fields.as_slice() {
        [quota, period] => (*quota, *period),
        _ => {
            return Err(CollectError::parse(
                path,
                1,
                format!("expected `quota period`, found {:?}", text.trim()),
            ));
        }
    };
    let period: u64 = period
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| CollectError::parse(path, 1, format!("bad period {period:?}")))?;
    if quota == "max" {
        return Ok(None);
    }
    let quota: u64 = quota
        .parse()
        .map_err(|_| CollectError::parse(path, 1, format!("bad quota {quota:?}")))?;
    Ok(Some(quota as f64 / period as f64))
}

/// Parses a file holding one integer.
fn parse_single<T: std::str::FromStr>(path: &str, text: &str) -> Result<T, CollectError> {
    let trimmed = text.trim();
    trimmed.parse().map_err(|_| {
        CollectError::parse(path, 1, format!("expected one integer, found {trimmed:?}"))
    })
}

/// Parses `key value` lines (cgroup `cpu.stat`) into a map.
pub fn parse_flat_keyed(path: &str, text: &str) -> Result<BTreeMap<String, u64>, CollectError> {
    let mut values = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(key), Some(value), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(CollectError::parse(
                path,
                index + 1,
                format!("expected `key value`, found {line:?}"),
            ));
        };
        let value = value.parse().map_err(|_| {
            CollectError::parse(
                path,
                index + 1,
                format!("value {value:?} of {key} is not an unsigned integer"),
            )
        })?;
        values.insert(key.to_owned(), value);
    }
    Ok(values)
}

fn path_str(path: &Path) -> String {
    path.display().to_string()
}

/// Reads a file that may be absent: `Ok(None)` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, CollectError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CollectError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The limit set on one cgroup directory itself, ignoring its parents. A missing file is no limit
/// (the v2 root has no `cpu.max`, nor does a cgroup whose parent has not enabled `cpu`).
fn own_quota(version: CgroupVersion, dir: &Path) -> Result<Option<f64>, CollectError> {
    match version {
        CgroupVersion::V1 => {
            let quota_path = dir.join("cpu.cfs_quota_us");
            let period_path = dir.join("cpu.cfs_period_us");
            let Some(quota) = read_optional(&quota_path)? else {
                return Ok(None);
            };
            let period = read_to_string(&path_str(&period_path))?;
            parse_v1_quota(
                &path_str(&quota_path),
                &quota,
                &path_str(&period_path),
                &period,
            )
        }
        CgroupVersion::V2 => {
            let path = dir.join("cpu.max");
            match read_optional(&path)? {
                Some(text) => parse_cpu_max(&path_str(&path), &text),
                None => Ok(None),
            }
        }
    }
}

/// The tightest quota on `cgroup` and every parent up to the hierarchy's root: a parent's limit
/// binds all its descendants together. `None` when no level sets one. An error names the file; a
/// cgroup directory that no longer exists is a `Read` error with `NotFound`.
pub fn effective_quota(cgroup: &CpuCgroup) -> Result<Option<Quota>, CollectError> {
    if !cgroup.dir.is_dir() {
        return Err(CollectError::Read {
            path: cgroup.dir.clone(),
            source: std::io::Error::new(ErrorKind::NotFound, "cgroup directory is gone"),
        });
    }
    let mut best: Option<Quota> = None;
    let mut dir = cgroup.dir.clone();
    let mut path = cgroup.path.clone();
    loop {
        if let Some(cores) = own_quota(cgroup.version, &dir)?
            && best.as_ref().is_none_or(|b| cores < b.cores)
        {
            best = Some(Quota {
                cores,
                cgroup: path.clone(),
                dir: dir.clone(),
            });
        }
        if dir == cgroup.mount_point || !dir.starts_with(&cgroup.mount_point) {
            break;
        }
        let Some(parent) = dir.parent() else { break };
        dir = parent.to_owned();
        path = match path.trim_end_matches('/').rsplit_once('/') {
            Some(("", _)) | None => "/".to_owned(),
            Some((parent, _)) => parent.to_owned(),
        };
    }
    Ok(best)
}

/// Cumulative counters of one cgroup at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    nr_periods: u64,
    nr_throttled: u64,
    throttled_time_ns: u64,
    usage_ns: Option<u64>,
}

impl Counters {
    fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            nr_periods: self.nr_periods.saturating_sub(earlier.nr_periods),
            nr_throttled: self.nr_throttled.saturating_sub(earlier.nr_throttled),
            throttled_time_ns: self
                .throttled_time_ns
                .saturating_sub(earlier.throttled_time_ns),
            usage_ns: match (self.usage_ns, earlier.usage_ns) {
                (Some(now), Some(then)) => Some(now.saturating_sub(then)),
                _ => None,
            },
        }
    }
}

/// Reads throttling from `throttle_dir` (where the binding quota is) and usage from `usage_dir`.
fn read_counters(
    version: CgroupVersion,
    throttle_dir: &Path,
    usage_dir: Option<&Path>,
) -> Result<Counters, CollectError> {
    let stat_path = throttle_dir.join("cpu.stat");
    let stat = parse_flat_keyed(
        &path_str(&stat_path),
        &read_to_string(&path_str(&stat_path))?,
    )?;
    let field = |name: &str| stat.get(name).copied().unwrap_or(0);
    // A v2 cgroup without the cpu controller has only the usage lines: no throttling to report.
    let throttled_time_ns = match version {
        CgroupVersion::V1 => field("throttled_time"),
        CgroupVersion::V2 => field("throttled_usec").saturating_mul(1000),
    };
    let usage_ns = match (version, usage_dir) {
        (_, None) => None,
        (CgroupVersion::V1, Some(dir)) => {
            let path = path_str(&dir.join("cpuacct.usage"));
            Some(parse_single(&path, &read_to_string(&path)?)?)
        }
        (CgroupVersion::V2, Some(dir)) => {
            let path = path_str(&dir.join("cpu.stat"));
            let usage = parse_flat_keyed(&path, &read_to_string(&path)?)?;
            usage.get("usage_usec").map(|us| us.saturating_mul(1000))
        }
    };
    Ok(Counters {
        nr_periods: field("nr_periods"),
        nr_throttled: field("nr_throttled"),
        throttled_time_ns,
        usage_ns,
    })
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

#[derive(Debug)]
struct Watched {
    cgroup: CpuCgroup,
    pids: Vec<u32>,
    /// The last reading, the time it was taken and the directory its throttling came from.
    last: Option<(Instant, PathBuf, Counters)>,
}

/// Samples CFS throttling of the cgroups of chosen processes, once per interval.
#[derive(Debug, Default)]
pub struct ThrottleCollector {
    /// Keyed by the cgroup's directory, so two processes in one cgroup share an entry.
    watched: BTreeMap<PathBuf, Watched>,
}

impl ThrottleCollector {
    pub fn new() -> Self {
        ThrottleCollector::default()
    }

    /// Watches the CPU cgroup of `pid`. Returns its path, or `None` when no mounted hierarchy
    /// holds it; an error when the process is gone or its files are unreadable.
    pub fn watch(&mut self, pid: u32) -> Result<Option<String>, CollectError> {
        let Some(cgroup) = cpu_cgroup_of(pid)? else {
            return Ok(None);
        };
        let path = cgroup.path.clone();
        self.watch_cgroup(cgroup, pid);
        Ok(Some(path))
    }

    pub(crate) fn watch_cgroup(&mut self, cgroup: CpuCgroup, pid: u32) {
        let entry = self
            .watched
            .entry(cgroup.dir.clone())
            .or_insert_with(|| Watched {
                cgroup,
                pids: Vec::new(),
                last: None,
            });
        if !entry.pids.contains(&pid) {
            entry.pids.push(pid);
            entry.pids.sort_unstable();
        }
    }

    /// Cgroup paths being watched.
    pub fn cgroups(&self) -> Vec<String> {
        self.watched
            .values()
            .map(|w| w.cgroup.path.clone())
            .collect()
    }

    /// One entry per watched cgroup with the counters' increase since its previous sample (all 0
    /// on its first). Never fails: problems go to each entry's `errors`.
    pub fn sample(&mut self) -> Vec<CgroupThrottle> {
        let mut out = Vec::with_capacity(self.watched.len());
        let mut gone = Vec::new();
        for (key, watched) in &mut self.watched {
            let (entry, vanished) = sample_one(watched);
            if vanished {
                gone.push(key.clone());
            }
            out.push(entry);
        }
        for key in gone {
            self.watched.remove(&key);
        }
        out
    }
}

fn sample_one(watched: &mut Watched) -> (CgroupThrottle, bool) {
    let now = Instant::now();
    let cgroup = &watched.cgroup;
    watched
        .pids
        .retain(|pid| Path::new(&format!("/proc/{pid}")).exists());
    let mut entry = CgroupThrottle {
        cgroup: cgroup.path.clone(),
        version: cgroup.version,
        pids: watched.pids.clone(),
        elapsed_seconds: 0.0,
        nr_periods: 0,
        nr_throttled: 0,
        throttled_time_ns: 0,
        usage_ns: None,
        quota_cores: None,
        quota_cgroup: None,
        errors: Vec::new(),
    };
    let reading = effective_quota(cgroup).and_then(|quota| {
        let throttle_dir = quota.as_ref().map_or(&cgroup.dir, |q| &q.dir).clone();
        let counters = read_counters(cgroup.version, &throttle_dir, cgroup.usage_dir.as_deref())?;
        Ok((quota, throttle_dir, counters))
    });
    let (quota, throttle_dir, counters) = match reading {
        Ok(reading) => reading,
        Err(e) => {
            let vanished = !cgroup.dir.is_dir();
            entry.errors.push(if vanished {
                format!("cgroup {} vanished: {e}", cgroup.path)
            } else {
                e.to_string()
            });
            return (entry, vanished);
        }
    };
    entry.quota_cores = quota.as_ref().map(|q| q.cores);
    entry.quota_cgroup = quota.map(|q| q.cgroup);
    match &watched.last {
        // Counters of a different limiting cgroup (the quota moved) do not compare: start again.
        Some((then, dir, earlier)) if *dir == throttle_dir => {
            let delta = counters.since(earlier);
            entry.elapsed_seconds = now.duration_since(*then).as_secs_f64();
            entry.nr_periods = delta.nr_periods;
            entry.nr_throttled = delta.nr_throttled;
            entry.throttled_time_ns = delta.throttled_time_ns;
            entry.usage_ns = delta.usage_ns;
        }
        _ => entry.usage_ns = counters.usage_ns.map(|_| 0),
    }
    watched.last = Some((now, throttle_dir, counters));
    (entry, false)
}
