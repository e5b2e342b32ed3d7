//! Processes from procfs: identity, descendants, which process owns a listening port, and CPU time
//! (to cross-check the eBPF on-CPU figures). A process exiting mid-read is normal: it reads as `None`
//! or is skipped, never an error.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CollectError;
use super::listeners::listen_queues;

/// One process, from /proc/<pid>/stat and /proc/<pid>/cmdline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    /// Executable name as the kernel keeps it (at most 15 bytes).
    pub comm: String,
    /// Arguments; empty for kernel threads and zombies.
    pub cmdline: Vec<String>,
    /// Start time after boot, clock ticks (`starttime`); with pid it names a process uniquely.
    pub start_time_ticks: u64,
    /// Threads in the process (`num_threads`).
    pub threads: u64,
}

/// The process that owns a listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerInfo {
    pub pid: u32,
    pub comm: String,
}

fn process(pid: u32) -> Option<procfs::process::Process> {
    procfs::process::Process::new(i32::try_from(pid).ok()?).ok()
}

/// The process `pid`, or `None` when it does not exist (or exited while being read).
pub fn process_info(pid: u32) -> Option<ProcessInfo> {
    let process = process(pid)?;
    let stat = process.stat().ok()?;
    Some(ProcessInfo {
        pid,
        ppid: u32::try_from(stat.ppid).unwrap_or(0),
        comm: stat.comm,
        cmdline: process.cmdline().unwrap_or_default(),
        start_time_ticks: stat.starttime,
        threads: u64::try_from(stat.num_threads).unwrap_or(0),
    })
}

/// What a process is, for the recording (`described[]`): None when it is gone.
pub fn facts(pid: u32) -> Option<crate::recording::ProcessFacts> {
    let info = process_info(pid)?;
    let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    let exe = std::fs::read_link(dir.join("exe"))
        .ok()
        .map(|p| p.display().to_string());
    let netns = std::fs::read_link(dir.join("ns/net")).ok().and_then(|l| {
        l.to_str()?
            .strip_prefix("net:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    });
    Some(crate::recording::ProcessFacts {
        pid,
        ppid: (info.ppid != 0).then_some(info.ppid),
        comm: info.comm,
        exe,
        cmdline: info
            .cmdline
            .into_iter()
            .take(32)
            .map(|mut a| {
                if a.len() > 256 {
                    let mut end = 256;
                    while !a.is_char_boundary(end) {
                        end -= 1;
                    }
                    a.truncate(end);
                }
                a
            })
            .collect(),
        netns,
    })
}

/// Pids of every process now in /proc, ascending.
fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

/// `root_pid` followed by all its descendants (children, their children, ...) found through each
/// process's ppid, breadth first. Empty when `root_pid` does not exist.
pub fn process_tree_of(root_pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut root_alive = false;
    for pid in all_pids() {
        let Some(stat) = process(pid).and_then(|p| p.stat().ok()) else {
            continue;
        };
        if pid == root_pid {
            root_alive = true;
        }
        if let Ok(ppid) = u32::try_from(stat.ppid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    if !root_alive {
        return Vec::new();
    }
    let mut tree = vec![root_pid];
    let mut queue = VecDeque::from([root_pid]);
    while let Some(pid) = queue.pop_front() {
        for &child in children.get(&pid).into_iter().flatten() {
            // pid 0's children include pid 0's own kernel threads; never loop.
            if child != pid && !tree.contains(&child) {
                tree.push(child);
                queue.push_back(child);
            }
        }
    }
    tree
}

/// For each of `ports` that has a listening TCP socket, the process holding it: the socket inodes
/// from `listen_queues` matched against /proc/<pid>/fd links. When several processes share the
/// socket (a pre-fork server), the lowest pid is reported. Unreadable processes are skipped; the
/// scan stops once every port has an owner.
pub fn listening_owners(ports: &[u16]) -> Result<HashMap<u16, OwnerInfo>, CollectError> {
    let wanted: HashSet<u16> = ports.iter().copied().collect();
    let port_of_inode: HashMap<u64, u16> = listen_queues()?
        .into_iter()
        .filter(|q| wanted.contains(&q.port) && q.inode != 0)
        .map(|q| (q.inode, q.port))
        .collect();
    let ports_listening: HashSet<u16> = port_of_inode.values().copied().collect();
    let mut owners = HashMap::new();
    if port_of_inode.is_empty() {
        return Ok(owners);
    }
    for pid in all_pids() {
        for inode in socket_inodes(pid) {
            let Some(&port) = port_of_inode.get(&inode) else {
                continue;
            };
            if owners.contains_key(&port) {
                continue;
            }
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim_end().to_owned())
                .unwrap_or_default();
            owners.insert(port, OwnerInfo { pid, comm });
        }
        if owners.len() == ports_listening.len() {
            break;
        }
    }
    Ok(owners)
}

/// Inodes of the sockets open in `pid` (links `socket:[N]` in /proc/<pid>/fd); empty if unreadable.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let dir = format!("/proc/{pid}/fd");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let target = std::fs::read_link(entry.ok()?.path()).ok()?;
            parse_socket_link(&target)
        })
        .collect()
}

/// `socket:[12345]` to 12345.
fn parse_socket_link(target: &Path) -> Option<u64> {
    target
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// User plus system CPU time of the whole process (all its threads, not its reaped children),
/// seconds, from `utime` + `stime` of /proc/<pid>/stat. `None` if the process is gone.
pub fn proc_pid_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = process(pid)?.stat().ok()?;
    let ticks = procfs::ticks_per_second().max(1);
    Some((stat.utime + stat.stime) as f64 / ticks as f64)
}

/// One thread's run-time total so far (ns), from /proc/<tid>/schedstat; None when it is gone.
pub fn thread_run_time(tid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/schedstat")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// A thread's process id and name (`Tgid` of /proc/<tid>/status, /proc/<tid>/comm padded to
/// the kernel's 16 bytes); None when it is gone.
pub fn thread_identity(tid: u32) -> Option<(u32, [u8; 16])> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let tgid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()?;
    let name = std::fs::read_to_string(format!("/proc/{tid}/comm")).unwrap_or_default();
    let mut comm = [0u8; 16];
    for (c, b) in comm.iter_mut().take(15).zip(name.trim_end().bytes()) {
        *c = b;
    }
    Some((tgid, comm))
}

/// Every thread on the host with the kernel's run-time total so far (`se.sum_exec_runtime`,
/// the first field of /proc/<pid>/task/<tid>/schedstat): (tid, pid, ns). Threads that vanish
/// while being read are left out.
pub fn thread_run_times() -> Vec<(u32, u32, u64)> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in all.flatten() {
        let Ok(tasks) = p.tasks() else { continue };
        for t in tasks.flatten() {
            if let Ok(s) = t.schedstat() {
                out.push((t.tid as u32, t.pid as u32, s.sum_exec_runtime));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_process_is_described_by_its_executable_arguments_and_namespace() {
        let me = std::process::id();
        let f = facts(me).expect("we exist");
        let exe = std::env::current_exe().expect("our executable");
        assert_eq!(f.exe.as_deref(), exe.to_str());
        assert!(!f.cmdline.is_empty());
        let ns = std::fs::read_link("/proc/self/ns/net").expect("a network namespace");
        assert_eq!(
            f.netns.map(|n| format!("net:[{n}]")),
            ns.to_str().map(str::to_string)
        );
        assert_eq!(facts(u32::MAX - 1), None);
    }

    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::collect::listeners::tests::listener_with_backlog;

    #[test]
    fn run_times_include_this_thread_and_grow() {
        let me = nix::unistd::gettid().as_raw() as u32;
        let find = || {
            thread_run_times()
                .into_iter()
                .find(|t| t.0 == me)
                .expect("this thread is listed")
        };
        let (_, pid, before) = find();
        assert_eq!(pid, std::process::id());
        // Spin until this thread's own CPU clock moved 20 ms (however busy the host is).
        let cpu = || {
            let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
                .expect("thread CPU clock");
            t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
        };
        let start = cpu();
        while cpu() < start + 20_000_000 {
            std::hint::black_box(0u64);
        }
        let (_, _, after) = find();
        assert!(after >= before + 20_000_000, "{before} -> {after}");
    }

    #[test]
    fn socket_links_parse() {
        assert_eq!(parse_socket_link(Path::new("socket:[4242]")), Some(4242));
        assert_eq!(parse_socket_link(Path::new("pipe:[4242]")), None);
        assert_eq!(parse_socket_link(Path::new("/dev/null")), None);
        assert_eq!(parse_socket_link(Path::new("socket:[x]")), None);
    }

    #[test]
    fn live_process_info_of_self() {
        let me = std::process::id();
        let info = process_info(me).expect("we exist");
        assert_eq!(info.pid, me);
        assert_eq!(info.ppid, std::os::unix::process::parent_id());
        assert!(info.threads >= 1);
        assert!(info.start_time_ticks > 0);
        let exe = std::env::current_exe().expect("current exe");
        let exe_name = exe
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name");
        // comm is the executable name cut to 15 bytes.
        assert!(
            exe_name.starts_with(&info.comm),
            "{exe_name} vs {}",
            info.comm
        );
        let first_arg = std::env::args().next().expect("argv[0]");
        assert_eq!(info.cmdline.first(), Some(&first_arg));
    }

    #[test]
    fn missing_process_is_none() {
        // Above the largest pid_max the kernel allows (2^22).
        let impossible = 5_000_000;
        assert_eq!(process_info(impossible), None);
        assert_eq!(proc_pid_cpu_seconds(impossible), None);
        assert!(process_tree_of(impossible).is_empty());
    }

    #[test]
    fn live_process_tree_includes_child_and_grandchild() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 5 & echo $!; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("piped stdout")),
            &mut line,
        )
        .expect("read grandchild pid");
        let grandchild: u32 = line.trim().parse().expect("pid printed");

        let tree = process_tree_of(std::process::id());
        let sh_pid = child.id();
        let cleanup = |child: &mut std::process::Child| {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(grandchild as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.kill();
            let _ = child.wait();
        };
        let sub = process_tree_of(sh_pid);
        cleanup(&mut child);
        assert_eq!(tree.first(), Some(&std::process::id()));
        assert!(tree.contains(&sh_pid), "{tree:?}");
        assert!(tree.contains(&grandchild), "{tree:?}");
        assert_eq!(sub, vec![sh_pid, grandchild]);
    }

    #[test]
    fn live_listening_owner_is_us() {
        let listener = listener_with_backlog(5);
        let port = listener.local_addr().expect("local addr").port();
        // Port 1 is (almost certainly) not listening here: it must be absent, not an error.
        let owners = listening_owners(&[port, 1]).expect("listen queues readable");
        let owner = owners.get(&port).expect("our port has an owner");
        assert_eq!(owner.pid, std::process::id());
        let my_comm = process_info(std::process::id()).expect("we exist").comm;
        assert_eq!(owner.comm, my_comm);
        assert!(!owners.contains_key(&1));
    }

    fn rusage_self_seconds() -> f64 {
        use nix::sys::resource::{UsageWho, getrusage};
        let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
        let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        seconds(usage.user_time()) + seconds(usage.system_time())
    }

    #[test]
    fn live_cpu_seconds_agree_with_getrusage() {
        let me = std::process::id();
        let start = proc_pid_cpu_seconds(me).expect("we exist");
        // Spin until the kernel has charged us 0.3 s of CPU (wall time varies on a busy machine).
        let spin_from = rusage_self_seconds();
        let deadline = Instant::now() + Duration::from_secs(20);
        while rusage_self_seconds() - spin_from < 0.3 && Instant::now() < deadline {
            std::hint::black_box(0u64);
        }
        let before = rusage_self_seconds();
        let ours = proc_pid_cpu_seconds(me).expect("we exist");
        let after = rusage_self_seconds();
        assert!(
            ours - start >= 0.2,
            "spun 0.3 s, /proc says {}",
            ours - start
        );
        // /proc counts in ticks (10 ms); allow a few ticks either side of the rusage window.
        assert!(
            ours >= before - 0.05 && ours <= after + 0.05,
            "/proc {ours} vs rusage {before}..{after}"
        );
    }
}
