//! Who is who: the processes seen by the probes, their parents, names and roles. Learns from
//! the kernel's fork events (exact, even for short-lived processes) and from /proc.
use std::collections::{HashMap, HashSet};

use crate::recording::Role;

/// Load generators recognised by name when `record` runs without a command.
pub const KNOWN_LOAD_GENERATORS: &[&str] = &[
    "k6",
    "hey",
    "wrk",
    "wrk2",
    "ab",
    "vegeta",
    "oha",
    "locust",
    "jmeter",
    "pgbench",
    "siege",
    "gatling",
    "h2load",
    "bombardier",
    "ghz",
];

#[derive(Debug, Clone)]
pub struct ProcEntry {
    pub ppid: Option<u32>,
    pub comm: String,
    /// argv[0]'s basename and, for interpreters, the script (java -jar, python locust).
    pub cmdline: Vec<String>,
}

#[derive(Debug, Default)]
pub struct ProcessTable {
    entries: HashMap<u32, ProcEntry>,
    /// From fork events: new task id -> the process that forked it. Thread ids land here too;
    /// they are never looked up as processes, so they do no harm.
    forked_by: HashMap<u32, u32>,
    /// Tasks forked by the load root or its descendants while recording: the load tree without
    /// walking parents that may have exited (and been forgotten) since.
    load_members: HashSet<u32>,
    load_root: Option<u32>,
    profiler_pid: u32,
    reused: u64,
}

impl ProcessTable {
    pub fn new(profiler_pid: u32, load_root: Option<u32>) -> Self {
        Self {
            profiler_pid,
            load_root,
            ..Default::default()
        }
    }

    pub fn set_load_root(&mut self, pid: u32) {
        self.load_root = Some(pid);
    }

    /// A new task `child`. Returns true when the id was known as a process: it exited and the
    /// kernel reused the number, so what was learnt about it (name, parent, role) is dropped.
    pub fn forked(&mut self, child: u32, parent_tgid: u32) -> bool {
        self.forked_by.insert(child, parent_tgid);
        if Some(parent_tgid) == self.load_root || self.load_members.contains(&parent_tgid) {
            self.load_members.insert(child);
        } else {
            self.load_members.remove(&child);
        }
        let reused = self.entries.remove(&child).is_some();
        self.reused += u64::from(reused);
        reused
    }

    /// Tasks that exited and whose last figures were read: what was kept about them goes, so
    /// the table holds live tasks only, however many come and go (a daemon runs for weeks).
    pub fn forget(&mut self, tids: &[u32]) {
        for tid in tids {
            self.forked_by.remove(tid);
            self.entries.remove(tid);
            self.load_members.remove(tid);
        }
    }

    /// How many tasks the table holds (entries, fork parents, load-tree members).
    #[cfg(test)]
    pub fn len(&self) -> (usize, usize, usize) {
        (
            self.entries.len(),
            self.forked_by.len(),
            self.load_members.len(),
        )
    }

    /// Process ids reused by a new task during the recording.
    pub fn reused(&self) -> u64 {
        self.reused
    }

    /// Reads /proc for a process seen for the first time; `fallback_comm` (the kernel's thread
    /// name) is used when it already exited.
    pub fn learn(&mut self, pid: u32, fallback_comm: &str) -> &ProcEntry {
        let forked_by = self.forked_by.get(&pid).copied();
        let entry = self
            .entries
            .entry(pid)
            .or_insert_with(|| match read_proc(pid) {
                Some(mut e) => {
                    if e.ppid.is_none() {
                        e.ppid = forked_by;
                    }
                    e
                }
                None => ProcEntry {
                    ppid: forked_by,
                    comm: fallback_comm.to_string(),
                    cmdline: Vec::new(),
                },
            });
        if entry.comm.is_empty() {
            entry.comm = fallback_comm.to_string();
        }
        entry
    }

    pub fn get(&self, pid: u32) -> Option<&ProcEntry> {
        self.entries.get(&pid)
    }

    fn parent(&self, pid: u32) -> Option<u32> {
        self.entries
            .get(&pid)
            .and_then(|e| e.ppid)
            .or_else(|| self.forked_by.get(&pid).copied())
    }

    /// Whether `pid` is the load root or descends from it.
    pub fn in_load_tree(&self, pid: u32) -> bool {
        let Some(root) = self.load_root else {
            return false;
        };
        if pid == root || self.load_members.contains(&pid) {
            return true;
        }
        // Processes that predate the recording: their parents as /proc or forks gave them.
        let mut cur = pid;
        for _ in 0..64 {
            if cur == root {
                return true;
            }
            match self.parent(cur) {
                Some(p) if p != cur && p > 1 => cur = p,
                _ => return false,
            }
        }
        false
    }

    pub fn role(&self, pid: u32, servers: &HashSet<u32>) -> Role {
        if pid == self.profiler_pid {
            return Role::Profiler;
        }
        if self.in_load_tree(pid) {
            return Role::LoadGenerator;
        }
        let entry = self.entries.get(&pid);
        if pid == 2 || entry.and_then(|e| e.ppid) == Some(2) {
            return Role::Kernel;
        }
        if self.load_root.is_none()
            && entry.is_some_and(|e| is_known_generator(&e.comm, &e.cmdline))
        {
            return Role::LoadGenerator;
        }
        // Pre-forking servers (nginx, PostgreSQL, gunicorn) accept in children of the process
        // that owns the listening socket.
        if servers.contains(&pid) || self.parent(pid).is_some_and(|p| servers.contains(&p)) {
            return Role::Server;
        }
        Role::Other
    }
}

pub fn is_known_generator(comm: &str, cmdline: &[String]) -> bool {
    let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    if KNOWN_LOAD_GENERATORS.contains(&comm) {
        return true;
    }
    // Interpreted tools: `java -jar ApacheJMeter.jar`, `python3 .../locust`, `gatling.sh`.
    cmdline.iter().take(4).any(|arg| {
        let b = base(arg).to_ascii_lowercase();
        KNOWN_LOAD_GENERATORS
            .iter()
            .any(|g| b == *g || b.starts_with(&format!("{g}.")))
            || b.contains("jmeter")
            || b.contains("gatling")
    })
}

fn read_proc(pid: u32) -> Option<ProcEntry> {
    let info = crate::collect::processes::process_info(pid)?;
    Some(ProcEntry {
        ppid: Some(info.ppid).filter(|&p| p > 0),
        comm: info.comm,
        cmdline: info.cmdline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_events_make_the_load_tree() {
        let mut t = ProcessTable::new(1, Some(100));
        t.forked(200, 100);
        t.forked(300, 200);
        t.forked(400, 999);
        assert!(t.in_load_tree(100));
        assert!(t.in_load_tree(300));
        assert!(!t.in_load_tree(400));
        assert_eq!(t.role(300, &HashSet::new()), Role::LoadGenerator);
        assert_eq!(t.role(1, &HashSet::new()), Role::Profiler);
        assert_eq!(t.role(400, &HashSet::from([400])), Role::Server);
        t.forked(401, 400);
        assert_eq!(
            t.role(401, &HashSet::from([400])),
            Role::Server,
            "a worker of the owner"
        );
    }

    /// A fork storm under a daemon for weeks: what exited is forgotten, and a grandchild
    /// whose parent exited (and was forgotten) is still in the load tree.
    #[test]
    fn exited_tasks_are_forgotten_and_the_load_tree_survives_them() {
        let mut t = ProcessTable::new(1, Some(100));
        for i in 0..10_000u32 {
            let child = 1000 + i;
            t.forked(child, 100);
            t.learn(4_000_000_000 - i, "gone");
            t.forget(&[child, 4_000_000_000 - i]);
        }
        assert_eq!(t.len(), (0, 0, 0), "nothing of the dead is kept");
        t.forked(200, 100);
        t.forked(300, 200);
        t.forget(&[200]);
        assert!(t.in_load_tree(300), "its parent exited first");
        t.forked(400, 300);
        assert!(t.in_load_tree(400));
        // A reused id outside the tree is not a member any more.
        t.forget(&[300, 400]);
        t.forked(300, 999);
        assert!(!t.in_load_tree(300));
    }

    #[test]
    fn a_reused_pid_forgets_the_process_that_had_it() {
        // Beyond pid_max: /proc has no such process, so the fallback name is used.
        let pid = 4_000_000_000;
        let mut t = ProcessTable::new(1, None);
        assert_eq!(t.learn(pid, "old-name").comm, "old-name");
        assert!(!t.forked(pid + 1, 1), "a new id is not a reuse");
        assert!(t.forked(pid, 1), "the id of a known process is");
        assert_eq!(t.learn(pid, "new-name").comm, "new-name");
        assert_eq!(t.reused(), 1);
    }

    #[test]
    fn generators_are_known_by_name_and_by_script() {
        assert!(is_known_generator("wrk", &[]));
        assert!(is_known_generator(
            "java",
            &["java".into(), "-jar".into(), "/opt/ApacheJMeter.jar".into()]
        ));
        assert!(is_known_generator(
            "python3",
            &["python3".into(), "/usr/bin/locust".into()]
        ));
        assert!(!is_known_generator(
            "nginx",
            &["nginx: worker process".into()]
        ));
    }
}
