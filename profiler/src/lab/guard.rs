//! Tear-down that happens whatever way a scenario ends: processes killed and reaped in `Drop`,
//! temporary directories removed, and a flag that SIGINT/SIGTERM set so the lab stops between
//! steps instead of dying with servers left behind.
use std::{
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal},
    unistd::Pid,
};

use super::LabError;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Make SIGINT and SIGTERM set the stop flag instead of killing the lab.
pub fn install_stop_handler() -> Result<(), LabError> {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { signal::sigaction(sig, &action) }.map_err(LabError::Signal)?;
    }
    Ok(())
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// A server process (and its process group) that is stopped when dropped.
pub struct Service {
    name: String,
    child: Child,
    /// The polite stop signal (PostgreSQL: SIGINT for a fast shutdown).
    stop: Signal,
    /// A CPU cgroup it was moved into, removed after it stops.
    cgroup: Option<PathBuf>,
    /// Run after it stopped: remove what was set up for it (a network namespace, a sysctl).
    teardown: Vec<Box<dyn FnOnce() + Send>>,
}

impl Service {
    /// Start `cmd` in its own process group (so a terminal's Ctrl-C reaches the lab, which
    /// tears down in order) and have the kernel kill it if the lab itself dies.
    pub fn spawn(name: &str, mut cmd: Command, stop: Signal) -> Result<Self, LabError> {
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            what: name.to_string(),
            source,
        })?;
        Ok(Service {
            name: name.to_string(),
            child,
            stop,
            cgroup: None,
            teardown: Vec::new(),
        })
    }

    /// Moves the service into a new cgroup-v1 CPU cgroup with a CFS quota of `cores`.
    pub fn confine_cpu(&mut self, cores: f64) -> Result<(), LabError> {
        let dir = PathBuf::from(format!("/sys/fs/cgroup/cpu/chokepoint-lab-{}", self.pid()));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LabError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        self.cgroup = Some(dir.clone());
        let period = dir.join("cpu.cfs_period_us");
        std::fs::write(&period, "100000").map_err(io(&period))?;
        let quota = dir.join("cpu.cfs_quota_us");
        std::fs::write(&quota, format!("{}", (cores * 100_000.0) as u64)).map_err(io(&quota))?;
        // Every process of the service's group: a master's workers forked before this.
        let procs = dir.join("cgroup.procs");
        for pid in group_members(self.pid()) {
            std::fs::write(&procs, pid.to_string()).map_err(io(&procs))?;
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `f` once the service has stopped (also when the scenario fails or is interrupted).
    pub fn on_stop(&mut self, f: impl FnOnce() + Send + 'static) {
        self.teardown.push(Box::new(f));
    }

    /// Wait until the service accepts TCP connections on 127.0.0.1:`port`.
    pub fn wait_for_port(&mut self, port: u16, timeout: Duration) -> Result<(), LabError> {
        self.wait_for(
            std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
            timeout,
        )
    }

    /// Waits until `addr` accepts a connection (a server on a bridge's or a namespace's own
    /// address).
    pub fn wait_for(
        &mut self,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<(), LabError> {
        let port = addr.port();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(LabError::ServiceDied {
                    what: self.name.clone(),
                    status: status.to_string(),
                });
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if stop_requested() {
                return Err(LabError::Interrupted);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(LabError::NotReady {
            what: self.name.clone(),
            port,
        })
    }
}

/// The processes of process group `pgid` (the leader first), from /proc.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut pids = vec![pgid];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // Field 5 of stat, after the parenthesised name (which may hold spaces).
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let group = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<u32>().ok());
        if group == Some(pgid) && pid != pgid {
            pids.push(pid);
        }
    }
    pids
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop_group();
        if let Some(dir) = self.cgroup.take() {
            // Empty once the group is gone; the kernel may take a moment to notice.
            for _ in 0..50 {
                if std::fs::remove_dir(&dir).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for f in self.teardown.drain(..) {
            f();
        }
    }
}

impl Service {
    fn stop_group(&mut self) {
        let group = Pid::from_raw(-(self.child.id() as i32));
        if let Ok(Some(_)) = self.child.try_wait() {
            // The leader is gone; its group may not be.
            let _ = signal::kill(group, Signal::SIGKILL);
            return;
        }
        let _ = signal::kill(Pid::from_raw(self.child.id() as i32), self.stop);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = signal::kill(group, Signal::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = signal::kill(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A directory removed with everything in it when dropped, unless kept.
pub struct TempDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> Result<Self, LabError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("chokepoint-lab-{label}-"))
            .tempdir()
            .map_err(|source| LabError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        Ok(TempDir {
            path: dir.path().to_path_buf(),
            dir: Some(dir),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leave the directory in place when dropped.
    pub fn keep(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = d.keep();
        }
    }
}

/// A port on 127.0.0.1 nobody listens on right now.
pub fn free_port() -> Result<u16, LabError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(LabError::Port)?;
    Ok(l.local_addr().map_err(LabError::Port)?.port())
}
