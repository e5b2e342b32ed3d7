//! Pure readers of the /proc and /sys text doctor looks at.

/// Capability numbers (linux/capability.h).
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// The effective capability set from /proc/<pid>/status (`CapEff:\t000001fffeffffff`).
pub fn cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

pub fn has_cap(set: u64, cap: u32) -> bool {
    cap < 64 && set & (1 << cap) != 0
}

/// One /proc/mounts line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub fstype: String,
    pub options: Vec<String>,
}

/// Parses /proc/mounts; lines with fewer than four fields are skipped. Paths keep the
/// kernel's octal escapes decoded (`\040` is a space).
pub fn mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (source, target, fstype, options) = (f.next()?, f.next()?, f.next()?, f.next()?);
            Some(Mount {
                source: unescape(source),
                target: unescape(target),
                fstype: fstype.to_string(),
                options: options.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// cgroup v1 controllers by mount point: the options of `cgroup` mounts minus the generic
/// mount options (`rw`, `relatime`, `name=...`).
pub fn cgroup_v1_controllers(mounts: &[Mount]) -> Vec<(String, String)> {
    const GENERIC: &[&str] = &[
        "rw",
        "ro",
        "relatime",
        "noatime",
        "nosuid",
        "nodev",
        "noexec",
        "clone_children",
        "noprefix",
        "xattr",
    ];
    let mut out = Vec::new();
    for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
        for opt in &m.options {
            if !GENERIC.contains(&opt.as_str()) && !opt.contains('=') {
                out.push((opt.clone(), m.target.clone()));
            }
        }
    }
    out
}

/// Counts CPUs in a list like `0-3,6,8-9` (/sys/devices/system/cpu/online).
pub fn cpu_list_len(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                b.checked_sub(a)? + 1
            }
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff_is_read_as_hex_and_bits_are_numbered_from_zero() {
        let status =
            "Name:\tcat\nCapPrm:\t0000000000000000\nCapEff:\t000001fffeffffff\nCapBnd:\t0\n";
        let set = cap_eff(status).expect("CapEff present");
        assert_eq!(set, 0x1fffeffffff);
        for cap in [CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF] {
            assert!(has_cap(set, cap), "cap {cap}");
        }
        // Bit 24 (CAP_SYS_RESOURCE) is the one cleared in that mask.
        assert!(!has_cap(set, 24));
        assert!(!has_cap(set, 41));
        assert!(!has_cap(set, 200));
    }

    #[test]
    fn only_bpf_and_perfmon() {
        let set = cap_eff("CapEff:\t000000c000000000\n").expect("parses");
        assert!(has_cap(set, CAP_BPF) && has_cap(set, CAP_PERFMON));
        assert!(!has_cap(set, CAP_SYS_ADMIN) && !has_cap(set, CAP_NET_ADMIN));
    }

    #[test]
    fn missing_or_bad_cap_eff_is_none() {
        assert_eq!(cap_eff("CapPrm:\t0\n"), None);
        assert_eq!(cap_eff("CapEff:\tzz\n"), None);
        assert_eq!(cap_eff(""), None);
    }

    const MOUNTS: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,xattr,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
nodev /sys/kernel/tracing tracefs rw,relatime 0 0
/dev/sda1 /mnt/with\\040space ext4 rw 0 0
short line
";

    #[test]
    fn mounts_are_parsed_with_escapes_and_short_lines_skipped() {
        let m = mounts(MOUNTS);
        assert_eq!(m.len(), 8);
        let tracefs = m
            .iter()
            .find(|m| m.fstype == "tracefs")
            .expect("tracefs line");
        assert_eq!(tracefs.target, "/sys/kernel/tracing");
        assert_eq!(tracefs.source, "nodev");
        assert_eq!(m[7].target, "/mnt/with space");
        assert_eq!(
            m[0].options,
            ["rw", "nosuid", "nodev", "noexec", "relatime"]
        );
    }

    #[test]
    fn cgroup_controllers_exclude_mount_options_and_named_hierarchies() {
        let c = cgroup_v1_controllers(&mounts(MOUNTS));
        let names: Vec<&str> = c.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["cpu", "cpuacct", "memory"]);
        assert_eq!(c[0].1, "/sys/fs/cgroup/cpu,cpuacct");
    }

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(cpu_list_len("0-1\n"), Some(2));
        assert_eq!(cpu_list_len("0-3,6,8-9"), Some(7));
        assert_eq!(cpu_list_len("0"), Some(1));
        assert_eq!(cpu_list_len("3-1"), None);
        assert_eq!(cpu_list_len("x"), None);
    }
}
