//! A server process owned by a test: started in its own process group with its output in a
//! log file, stopped on drop (also while a test panics), and told to stop by the kernel
//! (parent-death signal) if the test process dies without unwinding.
use std::{
    fs,
    net::{SocketAddr, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};

use crate::FixtureError;

/// How long a server gets by default to stop after its stop signal before its group is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct ServerProcess {
    name: &'static str,
    child: Child,
    stop_signal: Signal,
    grace: Duration,
    log: PathBuf,
    stopped: bool,
}

impl ServerProcess {
    /// Spawns `cmd` with stdin closed and stdout + stderr appended to `log`. `stop_signal` is
    /// what makes this server shut down quickly (nginx: SIGTERM, postgres: SIGINT).
    pub fn spawn(
        name: &'static str,
        mut cmd: Command,
        stop_signal: Signal,
        log: &Path,
    ) -> Result<Self, FixtureError> {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| FixtureError::io(log, e))?;
        let err = out.try_clone().map_err(|e| FixtureError::io(log, e))?;
        let parent = std::process::id() as libc::pid_t;
        let signo = stop_signal as libc::c_int;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated here.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, signo as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the prctl: then no signal would come.
                if libc::getppid() != parent {
                    libc::raise(signo);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| FixtureError::Spawn {
            what: format!("{name} ({:?})", cmd.get_program()),
            source,
        })?;
        Ok(Self {
            name,
            child,
            stop_signal,
            grace: STOP_GRACE,
            log: log.to_path_buf(),
            stopped: false,
        })
    }

    /// How long `stop` waits after the stop signal before it kills the group.
    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// All live processes of this server: its process group (nginx's workers) and its
    /// descendants (PostgreSQL's backends, which start sessions of their own).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = group_members(self.pid());
        for pid in descendants(self.pid()) {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        pids.sort_unstable();
        pids
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits until `ready` says yes, failing early (with the log) when the server exits.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), FixtureError> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(FixtureError::Exited {
                    what: self.name,
                    status: status.to_string(),
                    log: tail(&self.log_text(), 30),
                });
            }
            if Instant::now() >= deadline {
                return Err(FixtureError::NotReady {
                    what: format!("{} ({what})", self.name),
                    secs: timeout.as_secs_f64(),
                    log: tail(&self.log_text(), 30),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `addr` accepts TCP connections.
    pub fn wait_for_port(
        &mut self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<(), FixtureError> {
        self.wait_until(timeout, &format!("listening on {addr}"), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
    }

    /// Stops the server: its stop signal, then SIGKILL to the whole group after the grace
    /// period; reaps it. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = Pid::from_raw(self.pid() as i32);
        let family = self.pids();
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(pid, self.stop_signal);
            let deadline = Instant::now() + self.grace;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        // Whatever is left (workers of a killed master, a stuck master, orphaned backends).
        let _ = killpg(pid, Signal::SIGKILL);
        for p in &family {
            if process_alive(*p) {
                let _ = kill(Pid::from_raw(*p as i32), Signal::SIGKILL);
            }
        }
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(2);
        while family.iter().any(|p| process_alive(*p)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether `pid` is a live process (zombies count as gone).
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_field(&stat, 0).is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Field `n` after the `(comm)` of a /proc/PID/stat line: 0 is the state, 2 the process group.
fn stat_field(stat: &str, n: usize) -> Option<&str> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(n)
}

/// Live processes whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let want = pgid.to_string();
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            stat_field(&stat, 2) == Some(want.as_str())
                && stat_field(&stat, 0).is_some_and(|s| s != "Z" && s != "X")
        })
        .collect()
}

/// Live descendants of `pid` (children, their children...), from /proc's parent links.
pub fn descendants(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let stat = fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let alive = stat_field(&stat, 0).is_some_and(|s| s != "Z" && s != "X");
            let ppid = stat_field(&stat, 1)?.parse().ok()?;
            alive.then_some((p, ppid))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (p, _) in parents.iter().filter(|(_, pp)| *pp == parent) {
            if !found.contains(p) {
                found.push(*p);
                frontier.push(*p);
            }
        }
    }
    found
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_spaces_and_parens_in_comm() {
        let stat = "4242 (my (odd) name) S 1 4240 4240 0 -1 4194560";
        assert_eq!(stat_field(stat, 0), Some("S"));
        assert_eq!(stat_field(stat, 1), Some("1"));
        assert_eq!(stat_field(stat, 2), Some("4240"));
    }

    #[test]
    fn a_spawned_process_is_gone_after_drop_and_its_group_with_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("sleep.log");
        // A shell that starts a grandchild in the same group and ignores the stop signal:
        // the guard must still leave nothing behind.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' TERM; sleep 300 & echo started; wait"]);
        let mut server = ServerProcess::spawn("sh", cmd, Signal::SIGTERM, &log).expect("sh starts");
        let grace = Duration::from_millis(500);
        server.set_grace(grace);
        server
            .wait_until(Duration::from_secs(5), "printed started", || {
                fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("started")
            })
            .expect("sh prints");
        let pids = server.pids();
        assert!(pids.len() >= 2, "shell and sleep in the group: {pids:?}");
        let started = Instant::now();
        drop(server);
        assert!(started.elapsed() >= grace, "grace period honoured");
        for pid in pids {
            assert!(!process_alive(pid), "pid {pid} survived the guard");
        }
    }

    #[test]
    fn the_kernel_stops_a_server_whose_starting_thread_died_without_dropping_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("orphan.log");
        let pid = thread::spawn(move || {
            let mut cmd = Command::new("sleep");
            cmd.arg("300");
            let server =
                ServerProcess::spawn("sleep", cmd, Signal::SIGTERM, &log).expect("sleep starts");
            let pid = server.pid();
            // As if the test process died: no Drop runs.
            std::mem::forget(server);
            pid
        })
        .join()
        .expect("thread");
        let deadline = Instant::now() + Duration::from_secs(5);
        while process_alive(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !process_alive(pid),
            "sleep {pid} outlived the thread that started it"
        );
    }

    #[test]
    fn an_early_exit_is_reported_with_the_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("fail.log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo bad config on line 3 >&2; exit 7"]);
        let mut server = ServerProcess::spawn("sh", cmd, Signal::SIGTERM, &log).expect("sh starts");
        let err = server
            .wait_until(Duration::from_secs(5), "never", || false)
            .expect_err("exits before ready");
        let text = err.to_string();
        assert!(text.contains("bad config on line 3"), "{text}");
        assert!(text.contains('7'), "{text}");
    }
}
