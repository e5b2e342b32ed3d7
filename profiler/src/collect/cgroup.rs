//! Control groups of the processes of interest: where a process's CPU controller files are (cgroup
//! v1 or v2), the CFS quota that binds it (its own or a parent's), and per-interval throttling.
//! The sources are /proc/<pid>/cgroup, /proc/self/mountinfo and the cgroup files themselves.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Instant;

use procfs::FromRead;

use super::CollectError;
use super::error::read_to_string;
use crate::recording::{CgroupThrottle, CgroupVersion};

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

    /// Processes that exited: no longer watched, and a cgroup none of whose watched processes
    /// is left is dropped (the set stays as large as what runs, not what ever ran).
    pub fn unwatch(&mut self, exited: &std::collections::HashSet<u32>) {
        for w in self.watched.values_mut() {
            w.pids.retain(|p| !exited.contains(p));
        }
        self.watched.retain(|_, w| !w.pids.is_empty());
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

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use super::*;

    /// This machine's cgroup mounts, plus a line that is not a cgroup.
    const MOUNTINFO_HYBRID: &str = "\
23 1 253:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const MOUNTINFO_COMOUNTED: &str = "\
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct
";

    /// A container: only its own sub-tree of the v2 hierarchy is mounted.
    const MOUNTINFO_CONTAINER_V2: &str = "\
700 650 0:30 /kubepods/pod1/ctr /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate
";

    fn memberships(text: &str) -> Vec<Membership> {
        parse_proc_cgroup("/proc/1/cgroup", text).expect("literal parses")
    }

    fn mounts(text: &str) -> Vec<CgroupMount> {
        parse_mountinfo(MOUNTINFO, text).expect("literal parses")
    }

    #[test]
    fn mountinfo_keeps_cgroup_mounts_with_their_controllers() {
        let parsed = mounts(MOUNTINFO_HYBRID);
        let summary: Vec<(CgroupVersion, Vec<&str>, &str)> = parsed
            .iter()
            .map(|m| {
                (
                    m.version,
                    m.controllers.iter().map(String::as_str).collect(),
                    m.mount_point.to_str().expect("utf-8"),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (CgroupVersion::V1, vec!["cpu"], "/sys/fs/cgroup/cpu"),
                (CgroupVersion::V1, vec!["cpuacct"], "/sys/fs/cgroup/cpuacct"),
                (CgroupVersion::V1, vec!["cpuset"], "/sys/fs/cgroup/cpuset"),
                (
                    CgroupVersion::V1,
                    vec!["name=systemd"],
                    "/sys/fs/cgroup/systemd"
                ),
                (CgroupVersion::V2, vec![], "/sys/fs/cgroup/unified"),
            ]
        );
        let comounted = mounts(MOUNTINFO_COMOUNTED);
        assert_eq!(comounted[0].controllers, vec!["cpu", "cpuacct"]);
        let container = mounts(MOUNTINFO_CONTAINER_V2);
        assert_eq!(container[0].root, "/kubepods/pod1/ctr");
    }

    #[test]
    fn mountinfo_error_names_the_line() {
        let text = format!("{MOUNTINFO_COMOUNTED}garbage\n");
        let err = parse_mountinfo(MOUNTINFO, &text).expect_err("second line is garbage");
        assert!(
            err.to_string().starts_with("/proc/self/mountinfo:2:"),
            "{err}"
        );
    }

    #[test]
    fn proc_cgroup_lines_v1_and_v2() {
        let parsed =
            memberships("12:cpu,cpuacct:/docker/abc\n1:name=systemd:/a:b\n0::/user.slice\n");
        assert_eq!(
            parsed,
            vec![
                Membership {
                    hierarchy: 12,
                    controllers: vec!["cpu".into(), "cpuacct".into()],
                    path: "/docker/abc".into(),
                },
                Membership {
                    hierarchy: 1,
                    controllers: vec!["name=systemd".into()],
                    path: "/a:b".into(),
                },
                Membership {
                    hierarchy: 0,
                    controllers: vec![],
                    path: "/user.slice".into(),
                },
            ]
        );
        for bad in ["0::/\nnonsense\n", "0::/\nx:cpu:/\n"] {
            let err = parse_proc_cgroup("/proc/1/cgroup", bad).expect_err("bad line");
            assert!(err.to_string().starts_with("/proc/1/cgroup:2:"), "{err}");
        }
    }

    #[test]
    fn locate_v1_with_separate_cpuacct_hierarchy() {
        let mounts = mounts(MOUNTINFO_HYBRID);
        let same = memberships("3:cpuset:/\n2:cpuacct:/job\n1:cpu:/job\n0::/\n");
        let found = locate_cpu_cgroup(&mounts, &same).expect("cpu hierarchy mounted");
        assert_eq!(found.version, CgroupVersion::V1);
        assert_eq!(found.path, "/job");
        assert_eq!(found.dir, Path::new("/sys/fs/cgroup/cpu/job"));
        assert_eq!(found.mount_point, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(
            found.usage_dir.as_deref(),
            Some(Path::new("/sys/fs/cgroup/cpuacct/job"))
        );
        // In another cpuacct cgroup its usage would be someone else's: none.
        let differ = memberships("2:cpuacct:/\n1:cpu:/job\n0::/\n");
        let found = locate_cpu_cgroup(&mounts, &differ).expect("cpu hierarchy mounted");
        assert_eq!(found.usage_dir, None);
        // The root cgroup is the mount point itself.
        let root = memberships("2:cpuacct:/\n1:cpu:/\n0::/\n");
        let found = locate_cpu_cgroup(&mounts, &root).expect("cpu hierarchy mounted");
        assert_eq!(found.dir, Path::new("/sys/fs/cgroup/cpu"));
    }

    #[test]
    fn locate_v1_comounted_and_v2_and_container() {
        let found = locate_cpu_cgroup(
            &mounts(MOUNTINFO_COMOUNTED),
            &memberships("4:cpu,cpuacct:/docker/abc\n"),
        )
        .expect("co-mounted hierarchy");
        assert_eq!(
            found.dir,
            Path::new("/sys/fs/cgroup/cpu,cpuacct/docker/abc")
        );
        assert_eq!(found.usage_dir.as_deref(), Some(found.dir.as_path()));

        let pure_v2 = mounts("41 31 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n");
        let found = locate_cpu_cgroup(&pure_v2, &memberships("0::/system.slice/nginx.service\n"))
            .expect("v2 hierarchy");
        assert_eq!(found.version, CgroupVersion::V2);
        assert_eq!(
            found.dir,
            Path::new("/sys/fs/cgroup/system.slice/nginx.service")
        );
        assert_eq!(found.usage_dir.as_deref(), Some(found.dir.as_path()));

        // No v1 cpu hierarchy mounted: the v1 line is ignored and v2 used.
        let found =
            locate_cpu_cgroup(&pure_v2, &memberships("4:cpu:/x\n0::/y\n")).expect("v2 hierarchy");
        assert_eq!(found.path, "/y");

        let container = mounts(MOUNTINFO_CONTAINER_V2);
        let inside = memberships("0::/kubepods/pod1/ctr/app\n");
        let found = locate_cpu_cgroup(&container, &inside).expect("inside the mounted sub-tree");
        assert_eq!(found.dir, Path::new("/sys/fs/cgroup/app"));
        // A sibling that merely shares the prefix is outside it.
        let outside = memberships("0::/kubepods/pod1/ctr2\n");
        assert_eq!(locate_cpu_cgroup(&container, &outside), None);
        assert_eq!(locate_cpu_cgroup(&[], &inside), None);
    }

    #[test]
    fn quota_files_v1_and_v2() {
        let v1 = |q: &str, p: &str| parse_v1_quota("q", q, "p", p);
        assert_eq!(v1("20000\n", "100000\n").expect("valid"), Some(0.2));
        assert_eq!(v1("150000\n", "50000\n").expect("valid"), Some(3.0));
        assert_eq!(v1("-1\n", "100000\n").expect("valid"), None);
        assert!(v1("x\n", "100000\n").is_err());
        assert!(v1("20000\n", "0\n").is_err());
        assert_eq!(parse_cpu_max("m", "max 100000\n").expect("valid"), None);
        assert_eq!(
            parse_cpu_max("m", "50000 100000\n").expect("valid"),
            Some(0.5)
        );
        for bad in ["", "max\n", "50000 0\n", "-5 100000\n", "1 2 3\n"] {
            let err = parse_cpu_max("/cg/cpu.max", bad).expect_err(bad);
            assert!(err.to_string().starts_with("/cg/cpu.max:1:"), "{err}");
        }
    }

    #[test]
    fn cpu_stat_parses_and_names_bad_lines() {
        let stat = parse_flat_keyed(
            "s",
            "usage_usec 120\nnr_periods 7\nnr_throttled 3\nthrottled_usec 90\n",
        )
        .expect("valid");
        assert_eq!(stat.get("nr_throttled"), Some(&3));
        assert_eq!(stat.len(), 4);
        let err = parse_flat_keyed("/cg/cpu.stat", "nr_periods 1\nnr_throttled -1\n")
            .expect_err("negative");
        assert!(err.to_string().starts_with("/cg/cpu.stat:2:"), "{err}");
        assert!(parse_flat_keyed("s", "a 1 2\n").is_err());
    }

    fn write(path: &Path, text: &str) {
        fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// A fake hierarchy in a temporary directory: `mount/a/b`.
    fn fake_tree(version: CgroupVersion) -> (tempfile::TempDir, CpuCgroup) {
        let root = tempfile::tempdir().expect("tempdir");
        let mount = root.path().join("mount");
        let dir = mount.join("a").join("b");
        fs::create_dir_all(&dir).expect("mkdir");
        let cgroup = CpuCgroup {
            version,
            path: "/a/b".into(),
            dir: dir.clone(),
            mount_point: mount,
            usage_dir: Some(dir),
        };
        (root, cgroup)
    }

    fn set_v1_quota(dir: &Path, quota: &str) {
        write(&dir.join("cpu.cfs_quota_us"), quota);
        write(&dir.join("cpu.cfs_period_us"), "100000\n");
    }

    #[test]
    fn effective_quota_is_the_tightest_up_the_tree_v1() {
        let (_root, cgroup) = fake_tree(CgroupVersion::V1);
        let a = cgroup.mount_point.join("a");
        set_v1_quota(&cgroup.mount_point, "-1\n");
        set_v1_quota(&a, "50000\n");
        set_v1_quota(&cgroup.dir, "-1\n");
        let quota = effective_quota(&cgroup)
            .expect("readable")
            .expect("parent limits");
        assert_eq!((quota.cores, quota.cgroup.as_str()), (0.5, "/a"));
        assert_eq!(quota.dir, a);
        set_v1_quota(&cgroup.dir, "20000\n");
        let quota = effective_quota(&cgroup)
            .expect("readable")
            .expect("own limit");
        assert_eq!((quota.cores, quota.cgroup.as_str()), (0.2, "/a/b"));
        set_v1_quota(&a, "-1\n");
        set_v1_quota(&cgroup.dir, "-1\n");
        assert_eq!(effective_quota(&cgroup).expect("readable"), None);
        set_v1_quota(&a, "bogus\n");
        let err = effective_quota(&cgroup).expect_err("bad parent file");
        assert!(err.to_string().contains("cpu.cfs_quota_us:1:"), "{err}");
    }

    #[test]
    fn effective_quota_is_the_tightest_up_the_tree_v2() {
        let (_root, cgroup) = fake_tree(CgroupVersion::V2);
        // The root has no cpu.max; `a` limits; `b` says max.
        write(
            &cgroup.mount_point.join("a").join("cpu.max"),
            "150000 100000\n",
        );
        write(&cgroup.dir.join("cpu.max"), "max 100000\n");
        let quota = effective_quota(&cgroup)
            .expect("readable")
            .expect("parent limits");
        assert_eq!((quota.cores, quota.cgroup.as_str()), (1.5, "/a"));
        write(&cgroup.dir.join("cpu.max"), "25000 50000\n");
        let quota = effective_quota(&cgroup)
            .expect("readable")
            .expect("own limit");
        assert_eq!((quota.cores, quota.cgroup.as_str()), (0.5, "/a/b"));
        fs::remove_dir_all(&cgroup.dir).expect("rmdir");
        let err = effective_quota(&cgroup).expect_err("gone");
        assert!(
            matches!(err, CollectError::Read { ref source, .. } if source.kind() == ErrorKind::NotFound)
        );
    }

    fn v2_stat(dir: &Path, usage_us: u64, periods: u64, throttled: u64, throttled_us: u64) {
        write(
            &dir.join("cpu.stat"),
            &format!(
                "usage_usec {usage_us}\nuser_usec 0\nsystem_usec 0\nnr_periods {periods}\n\
                 nr_throttled {throttled}\nthrottled_usec {throttled_us}\nnr_bursts 0\nburst_usec 0\n"
            ),
        );
    }

    #[test]
    fn exited_processes_are_unwatched_and_their_cgroup_dropped_with_the_last() {
        let (_root, cgroup) = fake_tree(CgroupVersion::V2);
        write(&cgroup.dir.join("cpu.max"), "20000 100000\n");
        v2_stat(&cgroup.dir, 5_000, 10, 4, 300);
        let mut collector = ThrottleCollector::new();
        let (me, parent) = (std::process::id(), std::os::unix::process::parent_id());
        collector.watch_cgroup(cgroup.clone(), me);
        collector.watch_cgroup(cgroup.clone(), parent);
        collector.unwatch(&std::collections::HashSet::from([parent]));
        assert_eq!(collector.sample()[0].pids, vec![me]);
        collector.unwatch(&std::collections::HashSet::from([me]));
        assert!(collector.cgroups().is_empty());
        assert!(collector.sample().is_empty());
    }

    #[test]
    fn collector_v2_deltas_and_a_vanishing_cgroup() {
        let (_root, cgroup) = fake_tree(CgroupVersion::V2);
        write(&cgroup.dir.join("cpu.max"), "20000 100000\n");
        v2_stat(&cgroup.dir, 5_000, 10, 4, 300);
        let mut collector = ThrottleCollector::new();
        let me = std::process::id();
        let parent = std::os::unix::process::parent_id();
        collector.watch_cgroup(cgroup.clone(), me);
        collector.watch_cgroup(cgroup.clone(), parent);
        collector.watch_cgroup(cgroup.clone(), me);

        let first = collector.sample();
        assert_eq!(first.len(), 1, "two pids, one cgroup: {first:?}");
        let mut pids = vec![me, parent];
        pids.sort_unstable();
        assert_eq!(first[0].pids, pids);
        assert_eq!(
            (
                first[0].nr_periods,
                first[0].nr_throttled,
                first[0].throttled_time_ns
            ),
            (0, 0, 0)
        );
        assert_eq!(first[0].usage_ns, Some(0));
        assert_eq!(first[0].quota_cores, Some(0.2));
        assert_eq!(first[0].quota_cgroup.as_deref(), Some("/a/b"));

        v2_stat(&cgroup.dir, 205_000, 20, 11, 1_300);
        let second = collector.sample();
        let s = &second[0];
        assert_eq!((s.nr_periods, s.nr_throttled), (10, 7));
        assert_eq!(s.throttled_time_ns, 1_000_000);
        assert_eq!(s.usage_ns, Some(200_000_000));
        assert!(s.elapsed_seconds > 0.0);
        assert!(s.errors.is_empty(), "{:?}", s.errors);

        fs::remove_dir_all(&cgroup.dir).expect("rmdir");
        let third = collector.sample();
        assert_eq!(third.len(), 1);
        assert!(
            third[0].errors.iter().any(|e| e.contains("/a/b vanished")),
            "{:?}",
            third[0].errors
        );
        assert!(collector.sample().is_empty(), "reported once, then dropped");
        assert!(collector.cgroups().is_empty());
    }

    #[test]
    fn collector_v1_reads_throttling_where_the_quota_is() {
        let (_root, mut cgroup) = fake_tree(CgroupVersion::V1);
        let a = cgroup.mount_point.join("a");
        let acct = cgroup.mount_point.join("acct");
        fs::create_dir_all(&acct).expect("mkdir");
        cgroup.usage_dir = Some(acct.clone());
        set_v1_quota(&cgroup.mount_point, "-1\n");
        set_v1_quota(&a, "30000\n");
        set_v1_quota(&cgroup.dir, "-1\n");
        let stat = |dir: &Path, periods: u64, throttled: u64, ns: u64| {
            write(
                &dir.join("cpu.stat"),
                &format!("nr_periods {periods}\nnr_throttled {throttled}\nthrottled_time {ns}\n"),
            );
        };
        stat(&cgroup.dir, 0, 0, 0);
        stat(&a, 100, 50, 9_000);
        write(&acct.join("cpuacct.usage"), "1000\n");
        let mut collector = ThrottleCollector::new();
        collector.watch_cgroup(cgroup.clone(), std::process::id());
        collector.sample();
        stat(&a, 110, 58, 10_000);
        write(&acct.join("cpuacct.usage"), "4000\n");
        let s = collector.sample().remove(0);
        assert_eq!(s.version, CgroupVersion::V1);
        assert_eq!(
            (s.nr_periods, s.nr_throttled, s.throttled_time_ns),
            (10, 8, 1_000)
        );
        assert_eq!(s.usage_ns, Some(3_000));
        assert_eq!(s.quota_cgroup.as_deref(), Some("/a"));
        assert_eq!(s.quota_cores, Some(0.3));

        // The quota moves to the cgroup itself: a new baseline, not a delta across two counters.
        set_v1_quota(&cgroup.dir, "10000\n");
        let s = collector.sample().remove(0);
        assert_eq!(s.quota_cgroup.as_deref(), Some("/a/b"));
        assert_eq!((s.nr_periods, s.throttled_time_ns), (0, 0));

        // A malformed file is an error for the interval, not a vanished cgroup.
        write(&cgroup.dir.join("cpu.stat"), "nr_periods x\n");
        let s = collector.sample().remove(0);
        assert!(
            s.errors.iter().any(|e| e.contains("cpu.stat:1:")),
            "{:?}",
            s.errors
        );
        assert_eq!(collector.cgroups(), vec!["/a/b".to_owned()]);
    }

    pub(crate) fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// Cgroups made by a live test and the processes in them: the processes are killed and the
    /// directories removed on drop, so a failing test leaves nothing behind.
    pub(crate) struct LiveCgroups {
        dirs: Vec<PathBuf>,
        children: Vec<Child>,
    }

    impl LiveCgroups {
        fn new() -> Self {
            LiveCgroups {
                dirs: Vec::new(),
                children: Vec::new(),
            }
        }

        fn mkdir(&mut self, dir: PathBuf) {
            fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            self.dirs.push(dir);
        }

        /// Starts a shell that spins forever and returns its pid.
        fn spawn_burner(&mut self) -> u32 {
            let child = Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn sh");
            let pid = child.id();
            self.children.push(child);
            pid
        }

        fn teardown(&mut self) {
            for child in &mut self.children {
                let _ = child.kill();
                let _ = child.wait();
            }
            self.children.clear();
            // Deepest first; a cgroup may stay busy for a moment after its last task is reaped.
            for dir in self.dirs.drain(..).rev() {
                for _ in 0..100 {
                    if !dir.exists() || fs::remove_dir(&dir).is_ok() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    impl Drop for LiveCgroups {
        fn drop(&mut self) {
            self.teardown();
        }
    }

    /// The v1 `cpu` mount and, when separate, the v1 `cpuacct` mount; `None` (with the reason
    /// printed) when the live tests cannot run here.
    fn live_v1_mounts(test: &str) -> Option<(PathBuf, Option<PathBuf>)> {
        if !is_root() {
            eprintln!("skipping {test}: needs root to create cgroups");
            return None;
        }
        let mounts = cgroup_mounts().expect("mountinfo readable");
        let v1 = |controller: &str| {
            mounts
                .iter()
                .find(|m| m.version == CgroupVersion::V1 && m.root == "/" && m.has(controller))
        };
        let Some(cpu) = v1("cpu") else {
            eprintln!("skipping {test}: no cgroup v1 hierarchy with the cpu controller is mounted");
            return None;
        };
        let acct = v1("cpuacct")
            .filter(|acct| !acct.has("cpu"))
            .map(|acct| acct.mount_point.clone());
        Some((cpu.mount_point.clone(), acct))
    }

    fn move_into(dir: &Path, pid: u32) {
        write(&dir.join("cgroup.procs"), &pid.to_string());
    }

    /// A baseline sample and one about a second later, plus the CPU time /proc/<pid>/stat charged
    /// the (only) process of the cgroup over a window enclosing both, in ns.
    fn one_interval(
        collector: &mut ThrottleCollector,
        pid: u32,
    ) -> (Vec<CgroupThrottle>, CgroupThrottle, f64) {
        let cpu = || crate::collect::processes::proc_pid_cpu_seconds(pid).expect("burner alive");
        let before = cpu();
        let baseline = collector.sample();
        std::thread::sleep(Duration::from_secs(1));
        let interval = collector.sample().remove(0);
        let after = cpu();
        (baseline, interval, (after - before) * 1e9)
    }

    /// The cgroup's usage counter agrees with the process's own CPU time (10 ms ticks in /proc).
    fn assert_usage_matches(interval: &CgroupThrottle, proc_ns: f64) -> f64 {
        let usage = interval.usage_ns.expect("a usage counter for this cgroup") as f64;
        assert!(
            (usage - proc_ns).abs() <= 30e6,
            "cgroup usage {usage} ns vs /proc/<pid>/stat {proc_ns} ns: {interval:?}"
        );
        assert!(usage > 0.0, "{interval:?}");
        usage
    }

    #[test]
    fn live_v1_quota_throttles_a_burner() {
        let Some((cpu_mount, acct_mount)) = live_v1_mounts("live_v1_quota_throttles_a_burner")
        else {
            return;
        };
        let name = format!("chokepoint-test-{}-quota", std::process::id());
        let mut live = LiveCgroups::new();
        let dir = cpu_mount.join(&name);
        live.mkdir(dir.clone());
        write(&dir.join("cpu.cfs_period_us"), "100000");
        write(&dir.join("cpu.cfs_quota_us"), "20000");
        let acct_dir = acct_mount.map(|m| m.join(&name));
        if let Some(acct_dir) = &acct_dir {
            live.mkdir(acct_dir.clone());
        }
        let pid = live.spawn_burner();
        move_into(&dir, pid);
        if let Some(acct_dir) = &acct_dir {
            move_into(acct_dir, pid);
        }
        let path = format!("/{name}");

        let capacity = crate::collect::capacity::process_capacity(pid).expect("burner alive");
        eprintln!("capacity of the burner: {capacity:?}");
        assert_eq!(capacity.cgroup.as_deref(), Some(path.as_str()));
        assert_eq!(capacity.quota_cores, Some(0.2));
        assert_eq!(capacity.cores, 0.2);
        assert_eq!(
            capacity.limited_by,
            crate::recording::LimitedBy::CgroupQuota
        );
        assert!(capacity.errors.is_empty(), "{:?}", capacity.errors);

        let mut collector = ThrottleCollector::new();
        assert_eq!(
            collector.watch(pid).expect("burner alive"),
            Some(path.clone())
        );
        let (baseline, interval, proc_ns) = one_interval(&mut collector, pid);
        assert_eq!(baseline.len(), 1);
        let b = &baseline[0];
        assert_eq!(
            (b.nr_periods, b.nr_throttled, b.throttled_time_ns),
            (0, 0, 0)
        );
        eprintln!("one interval of the burner's cgroup: {interval:?}; /proc says {proc_ns} ns");
        assert_eq!(interval.pids, vec![pid]);
        assert_eq!(interval.quota_cores, Some(0.2));
        assert!(interval.errors.is_empty(), "{:?}", interval.errors);
        // 100 ms periods over about a second, the burner always runnable.
        assert!(interval.nr_periods >= 5, "{interval:?}");
        assert!(
            interval.nr_throttled >= 1 && interval.nr_throttled <= interval.nr_periods,
            "{interval:?}"
        );
        assert!(interval.throttled_time_ns > 0, "{interval:?}");
        if acct_dir.is_some() {
            let usage = assert_usage_matches(&interval, proc_ns);
            // Used some CPU, and no more than the quota allows. The sample edges fall mid-period,
            // so allow a couple of periods' quota (20 ms each) of slack; unthrottled it would use
            // about a whole second.
            let allowed = 0.2 * interval.elapsed_seconds * 1e9 + 50e6;
            assert!(usage <= allowed, "{usage} ns over {allowed} allowed");
        }

        // Remove the cgroup under the collector: reported once, then forgotten.
        live.teardown();
        let after = collector.sample();
        assert_eq!(after.len(), 1);
        assert!(
            after[0].errors.iter().any(|e| e.contains("vanished")),
            "{:?}",
            after[0].errors
        );
        assert!(collector.sample().is_empty());
    }

    #[test]
    fn live_v1_parent_quota_binds_its_child() {
        let Some((cpu_mount, _)) = live_v1_mounts("live_v1_parent_quota_binds_its_child") else {
            return;
        };
        let name = format!("chokepoint-test-{}-parent", std::process::id());
        let mut live = LiveCgroups::new();
        let parent = cpu_mount.join(&name);
        let child = parent.join("child");
        live.mkdir(parent.clone());
        live.mkdir(child.clone());
        write(&parent.join("cpu.cfs_period_us"), "100000");
        write(&parent.join("cpu.cfs_quota_us"), "30000");
        let pid = live.spawn_burner();
        move_into(&child, pid);

        let capacity = crate::collect::capacity::process_capacity(pid).expect("burner alive");
        eprintln!("capacity of the burner under a limited parent: {capacity:?}");
        assert_eq!(capacity.cgroup, Some(format!("/{name}/child")));
        assert_eq!(capacity.quota_cgroup, Some(format!("/{name}")));
        assert_eq!(capacity.quota_cores, Some(0.3));
        assert_eq!(capacity.cores, 0.3);

        let mut collector = ThrottleCollector::new();
        collector.watch(pid).expect("burner alive");
        collector.sample();
        std::thread::sleep(Duration::from_secs(1));
        let interval = collector.sample().remove(0);
        eprintln!("one interval under the parent's quota: {interval:?}");
        assert_eq!(interval.cgroup, format!("/{name}/child"));
        assert!(interval.nr_throttled >= 1, "{interval:?}");
        assert!(interval.throttled_time_ns > 0, "{interval:?}");
        // The kernel counts the throttling where the quota is: the child's own counters stay 0.
        let own = parse_flat_keyed(
            "child cpu.stat",
            &fs::read_to_string(child.join("cpu.stat")).expect("child cpu.stat"),
        )
        .expect("cpu.stat parses");
        assert_eq!(own.get("nr_throttled"), Some(&0), "{own:?}");
    }

    #[test]
    fn live_v2_usage_and_throttling() {
        let test = "live_v2_usage_and_throttling";
        if !is_root() {
            eprintln!("skipping {test}: needs root to create cgroups");
            return;
        }
        let mounts = cgroup_mounts().expect("mountinfo readable");
        let Some(v2) = mounts
            .iter()
            .find(|m| m.version == CgroupVersion::V2 && m.root == "/")
        else {
            eprintln!("skipping {test}: no cgroup v2 hierarchy is mounted");
            return;
        };
        let root_controllers = fs::read_to_string(v2.mount_point.join("cgroup.controllers"))
            .expect("v2 root cgroup.controllers");
        let has_cpu = root_controllers.split_whitespace().any(|c| c == "cpu");
        if has_cpu {
            // Children get cpu.max only once the parent hands the controller down.
            write(&v2.mount_point.join("cgroup.subtree_control"), "+cpu");
        } else {
            eprintln!(
                "{test}: the cpu controller is bound to v1 here (v2 offers {:?}): checking v2 \
                 usage only; v2 quota and throttling are covered by the literal-file tests",
                root_controllers.trim()
            );
        }
        let name = format!("chokepoint-test-{}-v2", std::process::id());
        let mut live = LiveCgroups::new();
        let dir = v2.mount_point.join(&name);
        live.mkdir(dir.clone());
        if has_cpu {
            write(&dir.join("cpu.max"), "20000 100000");
        }
        let pid = live.spawn_burner();
        move_into(&dir, pid);
        let path = format!("/{name}");
        let file = format!("/proc/{pid}/cgroup");
        let memberships =
            parse_proc_cgroup(&file, &fs::read_to_string(&file).expect("cgroup file"))
                .expect("parses");
        let unified = memberships
            .iter()
            .find(|m| m.hierarchy == 0)
            .expect("a v2 line");
        assert_eq!(unified.path, path);
        // Where v1 owns cpu, `locate_cpu_cgroup` picks v1; watch the v2 cgroup directly.
        let v2_only: Vec<CgroupMount> = mounts
            .iter()
            .filter(|m| m.version == CgroupVersion::V2)
            .cloned()
            .collect();
        let cgroup = locate_cpu_cgroup(&v2_only, &memberships).expect("v2 cgroup located");
        assert_eq!(cgroup.dir, dir);
        let mut collector = ThrottleCollector::new();
        collector.watch_cgroup(cgroup, pid);
        let (_, interval, proc_ns) = one_interval(&mut collector, pid);
        eprintln!("one interval of the v2 cgroup: {interval:?}; /proc says {proc_ns} ns");
        assert!(interval.errors.is_empty(), "{:?}", interval.errors);
        let usage = assert_usage_matches(&interval, proc_ns);
        if has_cpu {
            assert_eq!(interval.quota_cores, Some(0.2));
            assert!(interval.nr_throttled >= 1, "{interval:?}");
            assert!(interval.throttled_time_ns > 0, "{interval:?}");
            assert!(
                usage <= 0.2 * interval.elapsed_seconds * 1e9 + 50e6,
                "{interval:?}"
            );
        } else {
            assert_eq!(interval.quota_cores, None);
            assert_eq!((interval.nr_periods, interval.nr_throttled), (0, 0));
            // One single-threaded burner: never more than one CPU's worth.
            assert!(
                usage <= interval.elapsed_seconds * 1e9 + 30e6,
                "{interval:?}"
            );
        }
    }
}
