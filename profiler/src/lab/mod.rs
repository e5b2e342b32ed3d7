//! `chokepoint lab`: built-in bottleneck scenarios with real servers and real load generators.
//! Each scenario sets up a system with a designed cause, runs its generator under
//! `chokepoint run`, and checks the verdict against that cause (docs/lab.md).
pub mod cli;
pub mod fanout;
pub mod guard;
pub mod matrix;
pub mod netlab;
pub mod runner;
pub mod scenarios;
pub mod server;
mod tools;
mod upstream;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("installing the SIGINT/SIGTERM handler: {0}")]
    Signal(#[source] nix::Error),
    #[error("starting {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} exited during start-up ({status})")]
    ServiceDied { what: String, status: String },
    #[error("{what} did not accept connections on 127.0.0.1:{port} in time")]
    NotReady { what: String, port: u16 },
    #[error("{what} failed ({status}): {output}")]
    StepFailed {
        what: String,
        status: String,
        output: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("finding a free port: {0}")]
    Port(#[source] std::io::Error),
    #[error("user `{0}` not found")]
    NoUser(String),
    #[error("{}: not a chokepoint JSON result: {detail}", path.display())]
    BadResult { path: PathBuf, detail: String },
    #[error("interrupted")]
    Interrupted,
}
