//! Real servers and load generators for chokepoint's end-to-end tests and benchmarks: servers
//! on loopback in private temp dirs (stopped on drop, also when a test panics, and by the kernel
//! if the test process dies), tool lookup, the binary under test, wrk, and the kernel's own
//! counters to compare with.
//!
//! This crate must not depend on `chokepoint` (whose build script compiles the kernel
//! programs): xtask uses it for the benchmark, and xtask has to build on a machine where the
//! eBPF toolchain is not installed yet (`cargo xtask setup` installs it).
//!
//! ```no_run
//! use chokepoint_testbed::{Nginx, Wrk, kernel_counter};
//! let nginx = Nginx::config().workers(2).keepalive(false).start();
//! let before = kernel_counter("Tcp", "PassiveOpens");
//! let report = Wrk::new(&nginx.url()).seconds(2).close(true).run();
//! assert!(kernel_counter("Tcp", "PassiveOpens") - before >= report.requests);
//! ```
//!
//! A guard's server gets its stop signal when the thread that started it exits: keep guards
//! on the test's own thread.
mod counters;
mod net;
mod nginx;
mod pgbouncer;
mod postgres;
mod server;
mod tools;
mod wrk;

use std::{io, path::PathBuf};

pub use counters::{Counters, kernel_counter};
pub use net::{HttpResponse, free_port, http_get, loopback, wait_for_port};
pub use nginx::{Nginx, NginxConfig, StubStatus};
pub use pgbouncer::{PgBouncer, PoolMode};
pub use postgres::{Postgres, PostgresConfig, psql};
pub use server::{ServerProcess, group_members, process_alive};
pub use tools::{
    CHOKEPOINT_TIMEOUT, chokepoint_bin, output_within, printed, run_chokepoint, run_for_json, tool,
    try_tool, workload_bin, workspace_root,
};
pub use wrk::{Wrk, WrkReport};

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what} exited ({status}) before it was ready; its output ends:\n{log}")]
    Exited {
        what: &'static str,
        status: String,
        log: String,
    },
    #[error("{what}: not ready after {secs} s; its log ends:\n{log}")]
    NotReady {
        what: String,
        secs: f64,
        log: String,
    },
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("{what}: {detail}")]
    Http { what: String, detail: String },
    #[error(
        "no user `{0}` on this machine: run `cargo xtask setup` (the postgresql package creates it)"
    )]
    NoUser(String),
}

impl FixtureError {
    pub fn io(path: &std::path::Path, source: io::Error) -> Self {
        FixtureError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
