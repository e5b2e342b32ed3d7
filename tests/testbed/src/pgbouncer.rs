//! A private PgBouncer on 127.0.0.1 in front of a PostgreSQL port: trust auth, every
//! database forwarded, a chosen pool size and mode. Runs as `postgres` (PgBouncer refuses
//! root); stopped and removed on drop.
use std::{
    fmt, fs, net::SocketAddr, os::unix::fs::PermissionsExt, path::Path, process::Command,
    time::Duration,
};

use nix::sys::signal::Signal;

use crate::{
    FixtureError,
    net::{free_port, loopback},
    postgres::{give_to, postgres_user, psql, run_as},
    server::ServerProcess,
    tools::tool,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    Session,
    Transaction,
    Statement,
}

impl fmt::Display for PoolMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        })
    }
}

pub struct PgBouncer {
    server: ServerProcess,
    dir: tempfile::TempDir,
    port: u16,
}

impl PgBouncer {
    /// PgBouncer forwarding to PostgreSQL on 127.0.0.1:`pg_port` with `pool_size` server
    /// connections per database/user pair; panics with its log if it cannot start.
    pub fn start(pg_port: u16, pool_size: u32, pool_mode: PoolMode) -> PgBouncer {
        Self::try_start(pg_port, pool_size, pool_mode).unwrap_or_else(|e| panic!("pgbouncer: {e}"))
    }

    pub fn try_start(
        pg_port: u16,
        pool_size: u32,
        pool_mode: PoolMode,
    ) -> Result<PgBouncer, FixtureError> {
        let user = postgres_user()?;
        let dir = tempfile::Builder::new()
            .prefix("chokepoint-pgbouncer-")
            .tempdir()
            .map_err(|e| FixtureError::io(Path::new("/tmp"), e))?;
        let root = dir.path();
        fs::set_permissions(root, fs::Permissions::from_mode(0o755))
            .map_err(|e| FixtureError::io(root, e))?;
        give_to(root, &user)?;
        let port = free_port();
        let users = root.join("userlist.txt");
        fs::write(&users, "\"postgres\" \"\"\n").map_err(|e| FixtureError::io(&users, e))?;
        let ini = root.join("pgbouncer.ini");
        fs::write(&ini, render(root, port, pg_port, pool_size, pool_mode))
            .map_err(|e| FixtureError::io(&ini, e))?;
        let log = root.join("pgbouncer.log");
        fs::File::create(&log).map_err(|e| FixtureError::io(&log, e))?;
        give_to(&log, &user)?;
        let mut cmd = Command::new(tool("pgbouncer"));
        cmd.arg(&ini);
        run_as(&mut cmd, &user, root);
        // SIGINT is PgBouncer's safe shutdown (waits for clients); SIGTERM its immediate one.
        let mut server =
            ServerProcess::spawn("pgbouncer", cmd, Signal::SIGTERM, &root.join("stderr.log"))?;
        if let Err(e) = server.wait_for_port(loopback(port), Duration::from_secs(10)) {
            let log = fs::read_to_string(&log).unwrap_or_default();
            return Err(FixtureError::NotReady {
                what: format!("pgbouncer on port {port}: {e}"),
                secs: 10.0,
                log: crate::server::tail(&log, 20),
            });
        }
        Ok(PgBouncer { server, dir, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    /// SQL through the pooler (database postgres, user postgres).
    pub fn psql(&self, sql: &str) -> String {
        psql(self.port, sql)
    }

    pub fn stop(&mut self) {
        self.server.stop();
    }
}

fn render(dir: &Path, port: u16, pg_port: u16, pool_size: u32, mode: PoolMode) -> String {
    let d = dir.display();
    format!(
        "[databases]\n\
         * = host=127.0.0.1 port={pg_port}\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {d}/userlist.txt\n\
         admin_users = postgres\n\
         pool_mode = {mode}\n\
         default_pool_size = {pool_size}\n\
         max_client_conn = 2000\n\
         logfile = {d}/pgbouncer.log\n\
         ignore_startup_parameters = extra_float_digits\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{postgres::Postgres, server::process_alive};

    #[test]
    fn pgbouncer_pools_to_postgres_and_is_gone_after_drop() {
        let pg = Postgres::start();
        let bouncer = PgBouncer::start(pg.port(), 3, PoolMode::Transaction);
        assert_eq!(bouncer.psql("select 2 + 2"), "4");
        // The pooler forwarded the query to this PostgreSQL.
        let via = bouncer.psql("select inet_server_port()");
        assert_eq!(via, pg.port().to_string());
        let pid = bouncer.pid();
        assert!(process_alive(pid));
        drop(bouncer);
        assert!(!process_alive(pid), "pgbouncer {pid} survived");
    }

    #[test]
    fn config_carries_pool_size_and_mode() {
        let text = render(Path::new("/tmp/b"), 6432, 5432, 7, PoolMode::Statement);
        for want in [
            "port=5432",
            "listen_port = 6432",
            "default_pool_size = 7",
            "pool_mode = statement",
        ] {
            assert!(text.contains(want), "missing `{want}` in\n{text}");
        }
    }
}
