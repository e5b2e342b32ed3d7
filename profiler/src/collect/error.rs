//! The one error type of the collectors: every variant names the file (or netlink request) it came from.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: String,
        /// 1-based line number within the file.
        line: usize,
        reason: String,
    },
    #[error("procfs could not read {path}: {source}")]
    Procfs {
        path: String,
        #[source]
        source: procfs::ProcError,
    },
    #[error("sock_diag netlink request ({what}) failed: {source}")]
    Netlink {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("sock_diag netlink reply ({what}) could not be decoded: {reason}")]
    NetlinkDecode { what: &'static str, reason: String },
}

impl CollectError {
    pub(crate) fn parse(path: &str, line: usize, reason: impl Into<String>) -> Self {
        CollectError::Parse {
            path: path.to_owned(),
            line,
            reason: reason.into(),
        }
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_to_string(path: &str) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map_err(|source| CollectError::Read {
        path: PathBuf::from(path),
        source,
    })
}
