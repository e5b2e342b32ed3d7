//! One file per family of candidates; each rule returns a `Candidate` with its evidence and
//! what would have made it fire (docs/attribution.md).
pub mod connection;
pub mod contention;
pub mod cpu;
pub mod io;
pub mod network;
