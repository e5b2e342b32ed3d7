//! A private PostgreSQL on 127.0.0.1: a fresh cluster (initdb, trust auth, fsync off) in a
//! temp dir, run as the `postgres` user with its unix socket in the same dir; stopped and
//! removed on drop.
use std::{
    fs,
    net::SocketAddr,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use nix::{
    sys::signal::Signal,
    unistd::{User, chown},
};

use crate::{
    FixtureError,
    net::{free_port, loopback},
    server::ServerProcess,
    tools::{output_within, tool},
};

/// The OS user that owns and runs the cluster (the Debian package creates it).
const OS_USER: &str = "postgres";

pub(crate) fn postgres_user() -> Result<User, FixtureError> {
    User::from_name(OS_USER)
        .ok()
        .flatten()
        .ok_or_else(|| FixtureError::NoUser(OS_USER.to_string()))
}

/// Makes `path` owned by `user` (the servers that refuse root run as that user).
pub(crate) fn give_to(path: &Path, user: &User) -> Result<(), FixtureError> {
    chown(path, Some(user.uid), Some(user.gid))
        .map_err(|e| FixtureError::io(path, std::io::Error::from(e)))
}

/// `cmd` will run as `user`, from `dir`.
pub(crate) fn run_as(cmd: &mut Command, user: &User, dir: &Path) {
    cmd.uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .current_dir(dir)
        .env("HOME", dir);
}

#[derive(Debug, Clone, Default)]
pub struct PostgresConfig {
    /// None: a free port.
    pub port: Option<u16>,
    /// Extra `-c name=value` settings (max_connections, shared_buffers...).
    pub settings: Vec<(String, String)>,
}

impl PostgresConfig {
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_string(), value.to_string()));
        self
    }

    pub fn start(self) -> Postgres {
        self.try_start().unwrap_or_else(|e| panic!("postgres: {e}"))
    }

    pub fn try_start(self) -> Result<Postgres, FixtureError> {
        Postgres::launch(self)
    }
}

/// A running PostgreSQL server; dropping it stops it (fast shutdown) and removes the cluster.
pub struct Postgres {
    server: ServerProcess,
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    pub fn start() -> Postgres {
        PostgresConfig::default().start()
    }

    pub fn config() -> PostgresConfig {
        PostgresConfig::default()
    }

    fn launch(config: PostgresConfig) -> Result<Postgres, FixtureError> {
        let user = postgres_user()?;
        let dir = tempfile::Builder::new()
            .prefix("chokepoint-postgres-")
            .tempdir()
            .map_err(|e| FixtureError::io(Path::new("/tmp"), e))?;
        let root = dir.path();
        fs::set_permissions(root, fs::Permissions::from_mode(0o755))
            .map_err(|e| FixtureError::io(root, e))?;
        let (data, sock) = (root.join("data"), root.join("sock"));
        for d in [&data, &sock] {
            fs::create_dir(d).map_err(|e| FixtureError::io(d, e))?;
            give_to(d, &user)?;
        }
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700))
            .map_err(|e| FixtureError::io(&data, e))?;

        let mut initdb = Command::new(tool("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--no-instructions",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run_as(&mut initdb, &user, root);
        let out = output_within(&mut initdb, Duration::from_secs(120));
        if !out.status.success() {
            return Err(FixtureError::Command {
                what: "initdb".into(),
                detail: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }

        let port = config.port.unwrap_or_else(free_port);
        let mut cmd = Command::new(tool("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&sock);
        let mut settings: Vec<(String, String)> = [
            ("listen_addresses", "127.0.0.1"),
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("max_connections", "200"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        settings.extend(config.settings);
        for (k, v) in &settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        run_as(&mut cmd, &user, root);
        let log = root.join("postgres.log");
        fs::File::create(&log).map_err(|e| FixtureError::io(&log, e))?;
        let mut server = ServerProcess::spawn("postgres", cmd, Signal::SIGINT, &log)?;
        let isready = tool("pg_isready");
        let port_s = port.to_string();
        server.wait_until(Duration::from_secs(30), "pg_isready", || {
            Command::new(&isready)
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port_s,
                    "-U",
                    "postgres",
                    "-t",
                    "1",
                ])
                .status()
                .is_ok_and(|s| s.success())
        })?;
        Ok(Postgres { server, dir, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// The unix socket directory (`psql -h DIR`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The postmaster's pid.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// The postmaster and its backends and workers.
    pub fn pids(&self) -> Vec<u32> {
        self.server.pids()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        self.server.log_text()
    }

    /// Runs SQL through psql over TCP; returns its unaligned, tuples-only output. Panics with
    /// psql's error when it fails.
    pub fn psql(&self, sql: &str) -> String {
        psql(self.port, sql)
    }

    /// Stops the server now (drop does the same).
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

/// psql against 127.0.0.1:`port` as user postgres, database postgres.
pub fn psql(port: u16, sql: &str) -> String {
    let out = output_within(
        Command::new(tool("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &port.to_string(), "-d", "postgres", "-c", sql]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "psql -p {port} -c {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{net::wait_for_port, server::process_alive};

    #[test]
    fn postgres_answers_queries_and_is_gone_after_drop() {
        let pg = Postgres::config().setting("max_connections", "50").start();
        assert_eq!(pg.psql("select 6 * 7"), "42");
        assert_eq!(pg.psql("show fsync"), "off");
        assert_eq!(pg.psql("show max_connections"), "50");
        let socket = pg.socket_dir().join(format!(".s.PGSQL.{}", pg.port()));
        assert!(socket.exists(), "{} exists", socket.display());
        let pids = pg.pids();
        assert!(pids.len() >= 2, "postmaster and its workers: {pids:?}");
        let (addr, dir) = (pg.addr(), pg.dir().to_path_buf());
        drop(pg);
        for pid in pids {
            assert!(!process_alive(pid), "postgres pid {pid} survived");
        }
        assert!(!dir.exists());
        assert!(!wait_for_port(addr, Duration::from_millis(100)));
    }
}
