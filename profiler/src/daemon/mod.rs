//! `chokepoint daemon`: the probes attached once and kept attached; named recordings started
//! and stopped over a control API on a root-only Unix socket (and on loopback HTTP when
//! asked), phase marks, the current figures and a rolling verdict over the last intervals,
//! OpenMetrics on `--metrics-listen`. SIGTERM or SIGINT ends every recording and detaches.
//! One daemon per host: a second one finds the first's lock and says so.
pub mod api;
pub mod client;
pub mod hub;
pub mod metrics;
pub mod otlp;

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::session::{OpenOptions as SessionOptions, Session};

pub const DEFAULT_SOCKET: &str = "/run/chokepoint/control.sock";
pub const DEFAULT_DIR: &str = "/var/lib/chokepoint";

/// `chokepoint daemon`.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// The control socket (root only, mode 0600).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET, env = "CHOKEPOINT_SOCKET")]
    pub socket: PathBuf,
    /// Also serve the control API over HTTP on this loopback address (e.g. 127.0.0.1:9465, or
    /// :9465). It has no authentication: loopback only.
    #[arg(long, value_name = "ADDR", value_parser = parse_loopback)]
    pub http: Option<SocketAddr>,
    /// Serve OpenMetrics at http://ADDR/metrics (off by default; `:9464` listens on loopback,
    /// give a host such as 0.0.0.0:9464 to be scraped from elsewhere).
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,
    /// Push the same metrics as OTLP/HTTP protobuf to this collector (http://HOST:4318; the
    /// path defaults to /v1/metrics). Failures are counted and retried with backoff; they
    /// never hold up recording.
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = otlp::parse_endpoint)]
    pub otlp_endpoint: Option<otlp::Endpoint>,
    /// How often to push to --otlp-endpoint.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = crate::cli::parse_duration)]
    pub otlp_interval: Duration,
    /// Where named recordings are written (NAME.rec).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Sampling interval (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = crate::cli::parse_duration)]
    pub interval: Duration,
    /// The rolling verdict covers the last N intervals.
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub window: usize,
    #[command(flatten)]
    pub probes: crate::cli::ProbeArgs,
}

/// `:9464` → 127.0.0.1:9464; `HOST:PORT` as given.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{s}`: not a port (use :9464 or HOST:PORT)"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse()
        .map_err(|_| format!("`{s}` is not an address like 127.0.0.1:9464, [::1]:9464 or :9464"))
}

/// As [`parse_listen`], and refused unless it is a loopback address.
pub fn parse_loopback(s: &str) -> Result<SocketAddr, String> {
    let addr = parse_listen(s)?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "`{s}`: the control API has no authentication and listens on loopback only (127.0.0.1, ::1)"
        ));
    }
    Ok(addr)
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "a chokepoint daemon is already running{pid} (lock {lock}); stop it first, or give this one another --socket"
    )]
    Running { pid: String, lock: PathBuf },
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held for the daemon's life: `<socket>.lock`, locked, with the daemon's pid in it.
struct InstanceLock {
    _file: nix::fcntl::Flock<File>,
}

impl InstanceLock {
    fn take(socket: &Path) -> Result<Self, DaemonError> {
        let path = lock_path(socket);
        let lock_err = |source| DaemonError::Lock {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(lock_err)?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(mut locked) => {
                let pid = std::process::id().to_string();
                let _ = locked.set_len(0);
                let _ = locked.rewind();
                let _ = locked.write_all(pid.as_bytes());
                Ok(Self { _file: locked })
            }
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                Err(DaemonError::Running {
                    pid: if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                    lock: path,
                })
            }
            Err((_, errno)) => Err(lock_err(errno.into())),
        }
    }
}

fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Creates a directory only root may enter, when it does not exist.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Binds the control socket with mode 0600 (a stale socket left by a killed daemon is
/// replaced: the lock says none is running).
fn bind_socket(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(parent) = path.parent() {
        private_dir(parent)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the stale {}", path.display())),
    }
    // No moment in which the socket is open to others: umask first, then chmod to be sure.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = tokio::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", path.display()))?;
    Ok(listener)
}

async fn bind_tcp(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("{what}: binding {addr}"))
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(args: &DaemonArgs) -> anyhow::Result<i32> {
    if let Some(parent) = args.socket.parent() {
        private_dir(parent)?;
    }
    let _lock = InstanceLock::take(&args.socket)?;
    private_dir(&args.dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(serve(args))?;
    Ok(crate::cli::exit::OK)
}

async fn serve(args: &DaemonArgs) -> anyhow::Result<()> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing signal handlers")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing signal handlers")?;
    let unix = bind_socket(&args.socket)?;
    let http = match args.http {
        Some(a) => Some(bind_tcp(a, "--http").await?),
        None => None,
    };
    let metrics = match args.metrics_listen {
        Some(a) => Some(bind_tcp(a, "--metrics-listen").await?),
        None => None,
    };
    let session = Session::open(&SessionOptions {
        interval: args.interval,
        command: None,
        skip_families: args.probes.skip(),
        exact_overhead: args.probes.exact_overhead,
        tier: args.probes.probes,
    })?;
    let hub = Arc::new(Mutex::new(hub::Hub::new(
        session.header().clone(),
        args.dir.clone(),
        args.window,
        session.marks(),
    )));
    let control = api::router(hub.clone(), args.interval);
    let mut servers = tokio::task::JoinSet::new();
    if let Some(endpoint) = args.otlp_endpoint.clone() {
        let status = otlp::SharedStatus::new(Mutex::new(otlp::OtlpStatus {
            endpoint: endpoint.to_string(),
            ..Default::default()
        }));
        if let Ok(mut h) = hub.lock() {
            h.otlp = Some(status.clone());
        }
        let snapshot = {
            let hub = hub.clone();
            move || hub.lock().map(|h| h.metrics.encode()).unwrap_or_default()
        };
        let header = session.header();
        servers.spawn(otlp::run(
            endpoint,
            args.otlp_interval,
            header.hostname.clone(),
            header.started_unix_ns,
            snapshot,
            status,
        ));
    }
    servers.spawn(serve_on(axum::serve(unix, control.clone()).into_future()));
    if let Some(l) = http {
        servers.spawn(serve_on(axum::serve(l, control).into_future()));
    }
    if let Some(l) = metrics {
        servers.spawn(serve_on(
            axum::serve(l, api::metrics_router(hub.clone())).into_future(),
        ));
    }
    let probes = &session.header().probes;
    let mut line = format!(
        "chokepoint daemon: attached {} programs; control socket {}",
        probes.attached.len(),
        args.socket.display()
    );
    if let Some(a) = args.http {
        line.push_str(&format!("; API on http://{a}/v1/"));
    }
    if let Some(a) = args.metrics_listen {
        line.push_str(&format!("; metrics on http://{a}/metrics"));
    }
    if let Some(e) = &args.otlp_endpoint {
        line.push_str(&format!("; OTLP to {e} every {:?}", args.otlp_interval));
    }
    line.push_str(&format!(
        "; recordings in {}; SIGTERM stops\n",
        args.dir.display()
    ));
    crate::cli::stderr_write(line.as_bytes());

    let stop = async move {
        tokio::select! {
            _ = sigint.recv() => "signal",
            _ = sigterm.recv() => "signal",
        }
    };
    let mut sink = hub::HubSink(hub);
    session.run(&mut [&mut sink], stop).await;
    servers.abort_all();
    let _ = std::fs::remove_file(&args.socket);
    crate::cli::stderr_write(b"chokepoint daemon: detached, every recording ended\n");
    Ok(())
}

async fn serve_on(f: impl std::future::IntoFuture<Output = std::io::Result<()>>) {
    if let Err(e) = f.into_future().await {
        crate::errln!("chokepoint daemon: a listener failed: {e}");
    }
}

#[cfg(test)]
mod deploy_tests;
#[cfg(test)]
mod tests;
