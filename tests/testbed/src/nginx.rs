//! A private nginx on 127.0.0.1: its own config, static file, logs and temp dirs in a temp
//! dir; stopped and removed on drop.
use std::{
    fmt::Write as _,
    fs,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use nix::sys::signal::Signal;

use crate::{
    FixtureError,
    net::{free_port, http_get, loopback},
    server::ServerProcess,
    tools::tool,
};

/// How nginx is set up; `Nginx::config()` gives the defaults, `.start()` starts it.
#[derive(Debug, Clone)]
pub struct NginxConfig {
    /// None: a free port.
    pub port: Option<u16>,
    pub worker_processes: u32,
    pub worker_connections: u32,
    /// Size of the static file served at `/` (and at `/file`).
    pub static_bytes: usize,
    /// `proxy_pass` every request (but `/nginx_status`) to this upstream instead.
    pub upstream: Option<SocketAddr>,
    /// Idle keep-alive connections nginx keeps to the upstream; None: a new one per request.
    pub upstream_keepalive: Option<u32>,
    /// Client keep-alive; off makes nginx close after every response.
    pub keepalive: bool,
    /// The listen backlog (accept queue length); None: nginx's default (511).
    pub backlog: Option<u32>,
}

impl Default for NginxConfig {
    fn default() -> Self {
        Self {
            port: None,
            worker_processes: 2,
            worker_connections: 4096,
            static_bytes: 612,
            upstream: None,
            upstream_keepalive: None,
            keepalive: true,
            backlog: None,
        }
    }
}

impl NginxConfig {
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    pub fn workers(mut self, n: u32) -> Self {
        self.worker_processes = n;
        self
    }
    pub fn worker_connections(mut self, n: u32) -> Self {
        self.worker_connections = n;
        self
    }
    pub fn static_bytes(mut self, n: usize) -> Self {
        self.static_bytes = n;
        self
    }
    pub fn proxy_pass(mut self, upstream: SocketAddr) -> Self {
        self.upstream = Some(upstream);
        self
    }
    pub fn upstream_keepalive(mut self, idle: u32) -> Self {
        self.upstream_keepalive = Some(idle);
        self
    }
    pub fn keepalive(mut self, on: bool) -> Self {
        self.keepalive = on;
        self
    }
    pub fn backlog(mut self, n: u32) -> Self {
        self.backlog = Some(n);
        self
    }

    /// Starts nginx and waits until it serves; panics with its error log if it cannot.
    pub fn start(self) -> Nginx {
        self.try_start().unwrap_or_else(|e| panic!("nginx: {e}"))
    }

    pub fn try_start(self) -> Result<Nginx, FixtureError> {
        // A free port can be taken between the check and nginx's bind: retry a chosen one.
        let tries = if self.port.is_some() { 1 } else { 3 };
        let mut last = None;
        for _ in 0..tries {
            match Nginx::launch(self.clone()) {
                Ok(n) => return Ok(n),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(FixtureError::NotReady {
            what: "nginx".into(),
            secs: 0.0,
            log: String::new(),
        }))
    }

    /// The nginx.conf text for this config, with `dir` as the prefix.
    pub fn render(&self, dir: &Path, port: u16) -> String {
        let d = dir.display();
        let mut c = String::new();
        let _ = writeln!(
            c,
            "daemon off;\nmaster_process on;\nworker_processes {};",
            self.worker_processes
        );
        let _ = writeln!(c, "pid {d}/nginx.pid;\nerror_log {d}/error.log warn;");
        let _ = writeln!(
            c,
            "worker_rlimit_nofile {};",
            self.worker_connections * 2 + 64
        );
        let _ = writeln!(
            c,
            "events {{ worker_connections {}; }}",
            self.worker_connections
        );
        c.push_str("http {\n    access_log off;\n    sendfile on;\n    tcp_nopush on;\n");
        if self.keepalive {
            c.push_str("    keepalive_timeout 65s;\n    keepalive_requests 1000000;\n");
        } else {
            c.push_str("    keepalive_timeout 0;\n");
        }
        for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            let _ = writeln!(c, "    {t}_temp_path {d}/tmp/{t};");
        }
        if let Some(up) = self.upstream {
            let _ = writeln!(c, "    upstream backend {{\n        server {up};");
            if let Some(n) = self.upstream_keepalive {
                let _ = writeln!(c, "        keepalive {n};");
            }
            c.push_str("    }\n");
        }
        let backlog = self
            .backlog
            .map(|b| format!(" backlog={b}"))
            .unwrap_or_default();
        let _ = writeln!(
            c,
            "    server {{\n        listen 127.0.0.1:{port}{backlog};"
        );
        c.push_str("        location = /nginx_status { stub_status; }\n");
        if self.upstream.is_some() {
            c.push_str("        location / {\n            proxy_pass http://backend;\n");
            if self.upstream_keepalive.is_some() {
                c.push_str("            proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n");
            }
            c.push_str("        }\n");
        } else {
            let _ = writeln!(
                c,
                "        location / {{ root {d}/www; index index.html; }}\n        location = /file {{ alias {d}/www/index.html; }}"
            );
        }
        c.push_str("    }\n}\n");
        c
    }
}

/// A running nginx; dropping it stops nginx (master and workers) and removes its dir.
pub struct Nginx {
    // Field order: the process stops before its dir goes.
    server: ServerProcess,
    dir: tempfile::TempDir,
    port: u16,
    config: NginxConfig,
}

impl Nginx {
    /// nginx with the defaults: 2 workers, a 612-byte page at `/`, keep-alive on.
    pub fn start() -> Nginx {
        NginxConfig::default().start()
    }

    pub fn config() -> NginxConfig {
        NginxConfig::default()
    }

    fn launch(config: NginxConfig) -> Result<Nginx, FixtureError> {
        let dir = tempfile::Builder::new()
            .prefix("chokepoint-nginx-")
            .tempdir()
            .map_err(|e| FixtureError::io(Path::new("/tmp"), e))?;
        let root = dir.path();
        // Workers run as `nobody` when the master is root: they must read the page.
        fs::set_permissions(root, fs::Permissions::from_mode(0o755))
            .map_err(|e| FixtureError::io(root, e))?;
        for sub in ["www", "tmp"] {
            fs::create_dir(root.join(sub)).map_err(|e| FixtureError::io(root, e))?;
        }
        let page = root.join("www/index.html");
        fs::write(&page, page_bytes(config.static_bytes))
            .map_err(|e| FixtureError::io(&page, e))?;
        let port = config.port.unwrap_or_else(free_port);
        let conf = root.join("nginx.conf");
        fs::write(&conf, config.render(root, port)).map_err(|e| FixtureError::io(&conf, e))?;
        let mut cmd = Command::new(tool("nginx"));
        cmd.arg("-p")
            .arg(root)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(root.join("error.log"));
        let mut server =
            ServerProcess::spawn("nginx", cmd, Signal::SIGTERM, &root.join("stderr.log"))?;
        let master = server.pid();
        let addr = loopback(port);
        // The pid file appears once nginx has bound its port (so `addr` answering is ours, not
        // another server's); then every worker must be up.
        let pid_file = root.join("nginx.pid");
        let want = config.worker_processes as usize + 1;
        let started = server
            .wait_until(Duration::from_secs(10), "pid file and workers", || {
                pid_file.exists() && crate::server::group_members(master).len() >= want
            })
            .and_then(|()| server.wait_for_port(addr, Duration::from_secs(10)));
        if let Err(e) = started {
            let error_log = fs::read_to_string(root.join("error.log")).unwrap_or_default();
            return Err(FixtureError::NotReady {
                what: format!("nginx on {addr}: {e}"),
                secs: 10.0,
                log: crate::server::tail(&error_log, 20),
            });
        }
        Ok(Nginx {
            server,
            dir,
            port,
            config,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// `http://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn master_pid(&self) -> u32 {
        self.server.pid()
    }

    /// The master and its workers.
    pub fn pids(&self) -> Vec<u32> {
        self.server.pids()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn settings(&self) -> &NginxConfig {
        &self.config
    }

    /// The bytes served at `/`.
    pub fn page(&self) -> Vec<u8> {
        page_bytes(self.config.static_bytes)
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn error_log_path(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    /// nginx's own connection counters (stub_status).
    pub fn stub_status(&self) -> StubStatus {
        let r = http_get(self.addr(), "/nginx_status").unwrap_or_else(|e| panic!("{e}"));
        StubStatus::parse(&r.text()).unwrap_or_else(|e| panic!("nginx status page: {e}"))
    }

    /// Stops nginx now (drop does the same).
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

/// A page of exactly `n` bytes (HTML-ish text, ends with a newline when n > 0).
fn page_bytes(n: usize) -> Vec<u8> {
    let pattern = b"chokepoint test page 0123456789 abcdefghijklmnopqrstuvwxyz\n";
    pattern.iter().copied().cycle().take(n).collect()
}

/// nginx's stub_status: connections accepted and handled, requests, and the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StubStatus {
    pub active: u64,
    pub accepts: u64,
    pub handled: u64,
    pub requests: u64,
    pub reading: u64,
    pub writing: u64,
    pub waiting: u64,
}

impl StubStatus {
    /// Parses
    /// ```text
    /// Active connections: 1
    /// server accepts handled requests
    ///  10 10 20
    /// Reading: 0 Writing: 1 Waiting: 0
    /// ```
    pub fn parse(text: &str) -> Result<StubStatus, String> {
        let num = |s: &str, what: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("{what}: `{s}` is not a number"))
        };
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() < 4 {
            return Err(format!("{} lines, want 4", lines.len()));
        }
        let active = lines[0]
            .strip_prefix("Active connections:")
            .ok_or("line 1: no `Active connections:`")?;
        let counts: Vec<&str> = lines[2].split_whitespace().collect();
        if counts.len() != 3 {
            return Err(format!("line 3: `{}` is not three numbers", lines[2]));
        }
        let state: Vec<&str> = lines[3].split_whitespace().collect();
        if state.len() != 6 {
            return Err(format!(
                "line 4: `{}` is not Reading/Writing/Waiting",
                lines[3]
            ));
        }
        Ok(StubStatus {
            active: num(active, "line 1")?,
            accepts: num(counts[0], "line 3")?,
            handled: num(counts[1], "line 3")?,
            requests: num(counts[2], "line 3")?,
            reading: num(state[1], "line 4")?,
            writing: num(state[3], "line 4")?,
            waiting: num(state[5], "line 4")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Read, net::TcpStream};

    use super::*;
    use crate::{net::wait_for_port, server::process_alive};

    #[test]
    fn stub_status_parses_and_rejects_garbage() {
        let s = StubStatus::parse(
            "Active connections: 3 \nserver accepts handled requests\n 10 9 20 \nReading: 0 Writing: 1 Waiting: 2 \n",
        )
        .expect("parses");
        assert_eq!((s.active, s.accepts, s.handled, s.requests), (3, 10, 9, 20));
        assert_eq!((s.reading, s.writing, s.waiting), (0, 1, 2));
        assert!(
            StubStatus::parse("Active connections: x\na\n1 2 3\nReading: 0 Writing: 1 Waiting: 2")
                .is_err()
        );
        assert!(StubStatus::parse("hello").is_err());
    }

    #[test]
    fn config_renders_the_options_asked_for() {
        let dir = Path::new("/tmp/x");
        let plain = Nginx::config().render(dir, 8080);
        assert!(plain.contains("listen 127.0.0.1:8080;"), "{plain}");
        assert!(plain.contains("keepalive_timeout 65s;"));
        assert!(!plain.contains("proxy_pass"));
        let up = loopback(9000);
        let c = Nginx::config()
            .workers(1)
            .backlog(16)
            .keepalive(false)
            .proxy_pass(up)
            .upstream_keepalive(8);
        let text = c.render(dir, 8081);
        for want in [
            "worker_processes 1;",
            "listen 127.0.0.1:8081 backlog=16;",
            "keepalive_timeout 0;",
            "server 127.0.0.1:9000;",
            "keepalive 8;",
            "proxy_pass http://backend;",
            "proxy_http_version 1.1;",
        ] {
            assert!(text.contains(want), "missing `{want}` in\n{text}");
        }
    }

    #[test]
    fn page_has_the_size_asked_for() {
        for n in [0, 1, 612, 100_000] {
            assert_eq!(page_bytes(n).len(), n);
        }
    }

    /// The guard for real: nginx serves the page, counts the request, and is gone after drop.
    #[test]
    fn nginx_serves_its_page_and_is_gone_after_drop() {
        let nginx = Nginx::config().workers(2).static_bytes(10_000).start();
        let pids = nginx.pids();
        assert_eq!(pids.len(), 3, "master and two workers: {pids:?}");
        let r = http_get(nginx.addr(), "/").expect("GET /");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, nginx.page());
        // Over a raw stream too, as a load generator would.
        let mut s = TcpStream::connect(nginx.addr()).expect("connect");
        std::io::Write::write_all(&mut s, b"GET /file HTTP/1.0\r\n\r\n").expect("send");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read");
        assert!(raw.ends_with(&nginx.page()));
        let st = nginx.stub_status();
        assert!(st.accepts >= 3 && st.requests >= 3, "{st:?}");
        let (addr, dir) = (nginx.addr(), nginx.dir().to_path_buf());
        drop(nginx);
        for pid in pids {
            assert!(!process_alive(pid), "nginx pid {pid} survived");
        }
        assert!(!dir.exists(), "{} removed", dir.display());
        assert!(
            !wait_for_port(addr, Duration::from_millis(100)),
            "nothing listens on {addr}"
        );
    }

    #[test]
    fn keepalive_off_closes_after_each_response_and_proxy_reaches_the_upstream() {
        let backend = Nginx::config().static_bytes(123).start();
        let front = Nginx::config()
            .keepalive(false)
            .proxy_pass(backend.addr())
            .start();
        let r = http_get(front.addr(), "/").expect("GET via proxy");
        assert_eq!((r.status, r.body.len()), (200, 123));
        // HTTP/1.1 without `Connection: close` from us: nginx still closes.
        let mut s = TcpStream::connect(front.addr()).expect("connect");
        std::io::Write::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .expect("nginx closed the connection");
        assert!(String::from_utf8_lossy(&raw).contains("Connection: close"));
        assert!(backend.stub_status().requests >= 2);
    }

    #[test]
    fn a_taken_port_fails_with_the_error_log() {
        let first = Nginx::start();
        let err = Nginx::config()
            .port(first.port())
            .try_start()
            .err()
            .expect("port taken");
        assert!(err.to_string().contains("Address already in use"), "{err}");
    }
}
