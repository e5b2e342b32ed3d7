//! chokepoint: measure what stalls a load test's throughput, from the kernel.
//!
//! Data flows one way through these modules:
//! `probes` (kernel programs, maps) and `collect` (procfs, netlink) produce samples, filling the
//! row types `recording` defines; `session` assembles them into intervals and `recording`
//! stores them; `timeline` reads load generators' own output; `analysis` is pure functions over
//! a recording plus timelines; `report` renders the analysis as text and JSON. `doctor` says
//! what this kernel allows.
pub mod analysis;
pub mod cli;
pub mod collect;
pub mod daemon;
pub mod doctor;
pub mod lab;
pub mod probes;
pub mod recording;
pub mod report;
pub mod session;
pub mod skipped;
pub mod timeline;
