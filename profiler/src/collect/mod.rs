//! Host collectors: counters the kernel already keeps, read from user space once per interval
//! (procfs files and sock_diag netlink dumps), which costs far less than per-packet probes.
//! `host` gives host-wide deltas, `listeners` the accept queues, `processes` who owns what.
//! Field-by-field sources are in docs/collectors.md.

pub mod capacity;
pub mod cgroup;
pub mod conntrack;
mod error;
pub mod host;
pub mod inventory;
pub mod listeners;
pub mod net;
pub mod processes;
pub mod procfiles;
pub mod qdisc;
pub mod send_limits;
mod sockdiag;
pub mod topology;

pub use error::CollectError;
